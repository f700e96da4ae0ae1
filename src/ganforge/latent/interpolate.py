"""Interpolation between seeded latents: lerp or slerp in Z, lerp in W (style-based).

Seed ``s`` stands for the latent that ``G.sample(1, seed=s)`` draws, so the end columns of
an interpolation are exactly those samples. Rows are either a path through K keyframe
seeds (K - 1 rows, row i going from seed i to seed i + 1; ``loop`` adds the way back to
the first) or independent pairs of seeds (``pairs=True``); columns are ``steps`` evenly
spaced points, both ends included.

- ``lerp`` in Z: ``(1 - t) a + t b``; endpoints exact, the midpoint is the mean.
- ``slerp`` in Z: the direction moves along the great circle from ``a/|a|`` to ``b/|b|``
  while the norm moves linearly from ``|a|`` to ``|b|``, so every point stays at a
  typical distance from the origin of the Gaussian prior (the midpoint of a lerp is
  shorter than both ends: in d dimensions about ``sqrt(d/2)`` against ``sqrt(d)``).
- ``lerp`` in W: endpoints mapped through ``G.mapping`` (with truncation psi if given),
  then interpolated per ws entry and synthesized; style-based generators only.

Writers: a PNG grid (:func:`ganforge.visual.save_grid`), an animated GIF (Pillow, loops
forever) and an MP4 when an ffmpeg encoder is installed (``pip install
'imageio[ffmpeg]'``). Shared helpers for the other latent tools (seed parsing, seeded
latents, labels, rendering, the style-based check) live here too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ganforge.checkpoint import atomic_write_bytes
from ganforge.errors import ConfigError
from ganforge.generator import draw_latents, expand_labels
from ganforge.models.base import check_truncation, truncation_space

Space = Literal["z", "w"]
Method = Literal["lerp", "slerp"]
LabelsArg = int | Sequence[int] | torch.Tensor | None
SPACES = ("z", "w")
METHODS = ("lerp", "slerp")
ANIMATION_SUFFIXES = (".gif", ".mp4")
MP4_INSTALL = "pip install 'imageio[ffmpeg]'"
_BATCH = 256


# ---------------------------------------------------------------- shared helpers
def module_of(G: Any) -> Any:
    """The generator ``nn.Module`` of a :func:`ganforge.load` result (or ``G`` itself)."""
    return getattr(G, "module", G)


def model_name(G: Any) -> str:
    """The registry name of ``G`` when known, else its class name."""
    return str(getattr(G, "model", None) or type(module_of(G)).__name__)


def is_style_based(G: Any) -> bool:
    """Whether ``G`` (a loaded generator or its module) has a mapping network to W and a
    synthesis network fed ``num_ws`` ws of size ``w_dim`` (W and W+ spaces)."""
    m = module_of(G)
    return callable(getattr(m, "mapping", None)) and callable(getattr(m, "synthesis", None)) \
        and hasattr(m, "num_ws") and hasattr(m, "w_dim")


def require_style_based(G: Any, what: str, fix: str) -> Any:
    """The module of ``G`` if it is style-based, else a ConfigError naming ``fix``."""
    if not is_style_based(G):
        raise ConfigError(f"{what} needs a style-based generator (a mapping network to W and "
                          f"a synthesis network: --model stylegan or stylegan2); '{model_name(G)}' "
                          f"maps z straight to its output. {fix}")
    return module_of(G)


def require_images(G: Any, what: str) -> None:
    """ConfigError unless ``G`` generates images."""
    kind = getattr(module_of(G), "kind", "image")
    if kind != "image":
        raise ConfigError(f"{what} draws images, but '{model_name(G)}' generates {kind}; use "
                          "the tensors of ganforge.latent.interpolate() directly instead.")


def parse_seeds(seeds: str | int | Sequence[int], what: str = "seeds",
                minimum: int = 1) -> list[int]:
    """Seeds from ``"1,2,3"``, ``"0-7"`` (inclusive), an int or a list of ints."""
    if isinstance(seeds, str):
        out: list[int] = []
        for part in (p.strip() for p in seeds.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                if sep and lo.strip():
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    out.extend(range(a, b + 1))
                else:
                    out.append(int(part))
            except ValueError:
                raise ConfigError(f"{what} must be non-negative integers separated by commas, "
                                  f"with optional ranges LO-HI (e.g. 1,2,3 or 0-7), got "
                                  f"{seeds!r}.") from None
    elif isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        out = [int(seeds)]
    else:
        items = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in items):
            raise ConfigError(f"{what} must be a list of non-negative integers, got "
                              f"{seeds!r}.")
        out = [int(s) for s in items]
    if any(s < 0 for s in out):
        raise ConfigError(f"{what} must be non-negative integers, got {out}.")
    if len(out) < minimum:
        raise ConfigError(f"{what}: need at least {minimum} seed{'s' * (minimum > 1)}, got "
                          f"{len(out)} ({seeds!r}); e.g. 1,2,3.")
    return out


def parse_labels(text: str | None, what: str = "--labels") -> list[int] | None:
    """Class labels from ``"3"`` or ``"0,1,2"`` (None stays None)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be integers separated by commas, got "
                          f"'{text}'.") from None


def row_labels(G: Any, n: int, labels: LabelsArg) -> torch.Tensor | None:
    """``n`` labels: None for unconditional models; class 0 by default for conditional
    ones; an int, or a list tiled cyclically to ``n``."""
    return expand_labels(getattr(module_of(G), "num_classes", None), n, labels,
                         default="zero", name=f"'{model_name(G)}'")


def latents_for_seeds(G: Any, seeds: Sequence[int], truncation: float | None = None
                      ) -> torch.Tensor:
    """Z latents (len(seeds), z_dim) on the CPU: row i is what ``G.sample(1, seed=seeds[i],
    truncation=truncation)`` draws (a z-space threshold for z-space generators; style-based
    ones draw plain z and apply psi in W)."""
    return torch.cat([latents_for_seed(G, 1, s, truncation) for s in seeds])


def latents_for_seed(G: Any, n: int, seed: int, truncation: float | None = None
                     ) -> torch.Tensor:
    """The ``n`` Z latents ``G.sample(n, seed=seed, truncation=truncation)`` draws."""
    m = module_of(G)
    t = check_truncation(truncation, truncation_space(m))
    gen = torch.Generator().manual_seed(int(seed))
    return draw_latents(m, n, gen, t, model_name(G)).float()


@contextlib.contextmanager
def evaluating(G: Any) -> Iterator[Any]:
    """The module in eval mode (constant noise for style-based ones), restored after."""
    m = module_of(G)
    was_training = m.training
    m.eval()
    try:
        with torch.no_grad():
            yield m
    finally:
        m.train(was_training)


def _device(m: Any) -> torch.device:
    return next(m.parameters()).device


def to_w(G: Any, z: torch.Tensor, labels: torch.Tensor | None,
         truncation: float | None = None) -> torch.Tensor:
    """``G.mapping(z, labels, psi)``: ws (N, num_ws, w_dim) on the CPU, in batches."""
    check_truncation(truncation, "w")
    with evaluating(G) as m:
        dev = _device(m)
        out = []
        for i in range(0, z.shape[0], _BATCH):
            y = None if labels is None else labels[i:i + _BATCH].to(dev)
            out.append(m.mapping(z[i:i + _BATCH].to(dev), y, truncation).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def render(G: Any, latents: torch.Tensor, space: Space, labels: torch.Tensor | None = None,
           truncation: float | None = None) -> torch.Tensor:
    """Outputs (N, ...) on the CPU for N latents: z (N, z_dim), given to ``forward`` as
    ``G.sample`` does, or ws (N, num_ws, w_dim) given to ``synthesis``."""
    t = check_truncation(truncation, truncation_space(module_of(G)))
    with evaluating(G) as m:
        dev = _device(m)
        out = []
        for i in range(0, latents.shape[0], _BATCH):
            x = latents[i:i + _BATCH].to(dev)
            if space == "w":
                out.append(m.synthesis(x).float().cpu())
                continue
            y = None if labels is None else labels[i:i + _BATCH].to(dev)
            extra = {"truncation": t} if t is not None and truncation_space(m) == "w" else {}
            out.append(m(x, y, **extra).float().cpu())
    return torch.cat(out)


def check_space(G: Any, space: str, method: str = "lerp") -> None:
    """ConfigError for an unknown space or method, or W on a non-style-based generator."""
    if space not in SPACES:
        raise ConfigError(f"Unknown latent space {space!r}; use 'z' (the prior) or 'w' "
                          "(style-based generators).")
    if method not in METHODS:
        raise ConfigError(f"Unknown interpolation method {method!r}; use 'lerp' or 'slerp'.")
    if space == "w":
        require_style_based(G, "Interpolating in W", "Use space 'z' (--space z) instead.")
        if method == "slerp":
            raise ConfigError("slerp is for the Gaussian Z space (it keeps latents at a "
                              "typical norm); W is not spherical, so interpolate there with "
                              "lerp (--method lerp), or use --space z with slerp.")


# ---------------------------------------------------------------- the paths
def _steps(steps: int) -> torch.Tensor:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"An interpolation needs at least 2 steps (both ends), got "
                          f"{steps!r}.")
    return torch.linspace(0, 1, steps, dtype=torch.float64)


def _ends(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor
          ) -> torch.Tensor:
    """Make the t == 0 and t == 1 columns bit-exact copies of a and b."""
    shape = (1, -1) + (1,) * (a.dim() - 1)
    tt = t.reshape(shape)
    out = torch.where(tt == 0, a.unsqueeze(1).to(out.dtype), out)
    return torch.where(tt == 1, b.unsqueeze(1).to(out.dtype), out)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Linear interpolation: (N, *D) endpoints and T weights -> (N, T, *D)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"endpoints must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    tt = t.reshape((1, -1) + (1,) * (a.dim() - 1))
    a64, b64 = a.double().unsqueeze(1), b.double().unsqueeze(1)
    out = (a64 + tt * (b64 - a64)).to(a.dtype)
    return _ends(out, a, b, t)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | Sequence[float],
          eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of directions with linearly interpolated norms: (N, D)
    endpoints and T weights -> (N, T, D). Norms stay between the endpoints' norms;
    (anti)parallel endpoints fall back to lerp."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"slerp takes two (N, D) tensors of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a64, b64 = a.double(), b.double()
    na = a64.norm(dim=1, keepdim=True)
    nb = b64.norm(dim=1, keepdim=True)
    ua, ub = a64 / na.clamp_min(1e-300), b64 / nb.clamp_min(1e-300)
    omega = (ua * ub).sum(1, keepdim=True).clamp(-1, 1).acos().unsqueeze(1)  # N, 1, 1
    so = omega.sin()
    tt = t.reshape(1, -1, 1)
    safe = so.abs() > eps
    so_ = torch.where(safe, so, torch.ones_like(so))
    wa = torch.where(safe, ((1 - tt) * omega).sin() / so_, 1 - tt)
    wb = torch.where(safe, (tt * omega).sin() / so_, tt)
    u = wa * ua.unsqueeze(1) + wb * ub.unsqueeze(1)
    un = u.norm(dim=2, keepdim=True)
    norm = (1 - tt) * na.unsqueeze(1) + tt * nb.unsqueeze(1)
    direct = u / un.clamp_min(1e-300) * norm
    fallback = (1 - tt) * a64.unsqueeze(1) + tt * b64.unsqueeze(1)
    out = torch.where(un > eps, direct, fallback).to(a.dtype)
    return _ends(out, a, b, t)


def endpoint_seeds(seeds: Sequence[int] | str, pairs: bool = False, loop: bool = False
                   ) -> tuple[list[int], list[int]]:
    """(start seeds, end seeds), one of each per row."""
    seeds = parse_seeds(seeds, minimum=2)
    if pairs:
        if len(seeds) % 2:
            raise ConfigError(f"pairs=True takes seeds in pairs (start, end, start, end, "
                              f"...), got an odd number: {seeds}.")
        if loop:
            raise ConfigError("loop closes a path through keyframes; it has no meaning with "
                              "pairs=True. Drop one of them.")
        return seeds[0::2], seeds[1::2]
    starts, ends = seeds[:-1], seeds[1:]
    if loop:
        starts, ends = [*starts, seeds[-1]], [*ends, seeds[0]]
    return starts, ends


def interpolation_latents(G: Any, seeds: Sequence[int] | str, steps: int = 8,
                          space: Space = "z", method: Method = "lerp",
                          labels: LabelsArg = None, truncation: float | None = None,
                          pairs: bool = False, loop: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latents (rows, steps, z_dim) in Z or (rows, steps, num_ws, w_dim) in W, and the
    rows' labels (None for unconditional generators)."""
    check_space(G, space, method)
    t = _steps(steps)
    starts, ends = endpoint_seeds(seeds, pairs, loop)
    y = row_labels(G, len(starts), labels)
    za = latents_for_seeds(G, starts, truncation)
    zb = latents_for_seeds(G, ends, truncation)
    if space == "w":
        return lerp(to_w(G, za, y, truncation), to_w(G, zb, y, truncation), t), y
    return (slerp if method == "slerp" else lerp)(za, zb, t), y


def interpolate(G: Any, seeds: Sequence[int] | str, steps: int = 8, space: Space = "z",
                method: Method = "lerp", labels: LabelsArg = None,
                truncation: float | None = None, pairs: bool = False, loop: bool = False
                ) -> torch.Tensor:
    """Outputs (rows, steps, C, H, W) in [-1, 1] (points: (rows, steps, D)) along the
    interpolation of :func:`interpolation_latents`. ``labels``: for conditional models,
    one class per row (an int or a list tiled to the rows; default class 0);
    ``truncation``: psi for style-based generators, else the z threshold."""
    lat, y = interpolation_latents(G, seeds, steps, space, method, labels, truncation,
                                   pairs, loop)
    rows, cols = lat.shape[:2]
    yy = None if y is None else y.repeat_interleave(cols)
    out = render(G, lat.flatten(0, 1), space, yy, None if space == "w" else truncation)
    return out.unflatten(0, (rows, cols))


# ---------------------------------------------------------------- frames and writers
def path_frames(images: torch.Tensor, loop: bool = False) -> torch.Tensor:
    """One frame per point of a keyframe path (rows joined end to start): (T, C, H, W).
    Each row's first frame repeats the previous row's last and is dropped; with ``loop``
    (the path returns to its start) the final frame is dropped too, so an endless GIF
    does not stall on it."""
    if images.dim() != 5:
        raise ConfigError(f"Expected images (rows, steps, C, H, W), got shape "
                          f"{tuple(images.shape)}.")
    frames = torch.cat([images[0]] + [r[1:] for r in images[1:]])
    return frames[:-1] if loop and frames.shape[0] > 1 else frames


def pair_frames(images: torch.Tensor) -> torch.Tensor:
    """One frame per step showing every row at once: (T, rows, C, H, W)."""
    if images.dim() != 5:
        raise ConfigError(f"Expected images (rows, steps, C, H, W), got shape "
                          f"{tuple(images.shape)}.")
    return images.transpose(0, 1)


def frame_arrays(frames: torch.Tensor, nrow: int | None = None, scale: int | None = None
                 ) -> list[np.ndarray]:
    """uint8 HWC arrays, one per frame of (T, C, H, W) or (T, N, C, H, W) [-1, 1] images
    (a grid of N per frame), upscaled (nearest) to at least 128 px by default."""
    from ganforge.visual import make_grid

    if frames.dim() == 4:
        frames = frames.unsqueeze(1)
    if frames.dim() != 5 or frames.shape[0] == 0:
        raise ConfigError(f"Expected frames (T, C, H, W) or (T, N, C, H, W) with T >= 1, got "
                          f"shape {tuple(frames.shape)}.")
    scale = scale or max(1, 128 // frames.shape[-1])
    pad = 0 if frames.shape[1] == 1 else 2
    out = []
    for f in frames:
        arr = make_grid(f, nrow=nrow or f.shape[0], pad=pad)
        if scale > 1:
            arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
        out.append(arr)
    return out


def _pil_frame(arr: np.ndarray) -> Any:
    from PIL import Image

    c = arr.shape[-1]
    if c in (1, 2):  # grayscale (a second channel is not shown)
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")


def save_gif(path: str | Path, frames: torch.Tensor, duration_ms: int = 100,
             nrow: int | None = None, scale: int | None = None) -> Path:
    """Write an animated GIF that loops forever, ``duration_ms`` per frame (atomic).
    Pillow merges consecutive identical frames into one longer frame."""
    if duration_ms < 1:
        raise ConfigError(f"Frame duration must be at least 1 ms, got {duration_ms}.")
    imgs = [_pil_frame(a) for a in frame_arrays(frames, nrow, scale)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:],
                 duration=int(duration_ms), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def mp4_available() -> bool:
    """Whether an MP4 encoder (imageio with its ffmpeg plugin) is importable."""
    return all(importlib.util.find_spec(n) is not None for n in ("imageio", "imageio_ffmpeg"))


def check_mp4() -> None:
    """ConfigError naming the install command when no MP4 encoder is available."""
    if not mp4_available():
        raise ConfigError("Writing .mp4 needs an ffmpeg encoder, and none is installed in "
                          f"this environment. Install one with `{MP4_INSTALL}` (it brings "
                          "its own ffmpeg binary), or write a .gif or .png instead.")


def save_mp4(path: str | Path, frames: torch.Tensor, fps: float = 10.0,
             nrow: int | None = None, scale: int | None = None) -> Path:
    """Write an H.264 MP4 (needs ``imageio[ffmpeg]``; see :func:`check_mp4`), atomically."""
    check_mp4()
    if not fps > 0:
        raise ConfigError(f"Frames per second must be positive, got {fps}.")
    import imageio.v2 as iio

    arrays = []
    for a in frame_arrays(frames, nrow, scale):
        a = np.repeat(a[..., :1], 3, axis=2) if a.shape[-1] in (1, 2) else a[..., :3]
        h, w = a.shape[:2]  # yuv420p needs even sides
        arrays.append(np.pad(a, ((0, h % 2), (0, w % 2), (0, 0))))
    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch:  # the encoder wants a file name
        tmp = Path(scratch) / "video.mp4"
        with iio.get_writer(tmp, format="FFMPEG", mode="I", fps=float(fps), codec="libx264",
                            pixelformat="yuv420p", macro_block_size=1) as writer:
            for a in arrays:
                writer.append_data(np.ascontiguousarray(a))
        atomic_write_bytes(path, tmp.read_bytes())  # the project's one atomic write
    return path


def save_interpolation(path: str | Path, images: torch.Tensor, *, pairs: bool = False,
                       loop: bool = False, duration_ms: int = 100, fps: float | None = None
                       ) -> Path:
    """Write ``interpolate()`` images by suffix: ``.png`` a grid (rows x steps), ``.gif``
    or ``.mp4`` an animation (a keyframe path walks one image; ``pairs`` animates every
    row at once). ``fps`` defaults to 1000 / duration_ms."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", *ANIMATION_SUFFIXES):
        raise ConfigError(f"--out {path}: use a .png (grid), .gif or .mp4 (animation) file.")
    if images.dim() != 5:
        raise ConfigError(f"{path}: interpolation images must have shape (rows, steps, C, H, "
                          f"W), got {tuple(images.shape)} (points cannot be drawn as frames).")
    if suffix == ".png":
        from ganforge.visual import save_grid

        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(path, images.flatten(0, 1), nrow=images.shape[1])
        return path
    frames = pair_frames(images) if pairs else path_frames(images, loop)
    nrow = None if not pairs else min(images.shape[0], 8)
    if suffix == ".gif":
        return save_gif(path, frames, duration_ms=duration_ms, nrow=nrow)
    return save_mp4(path, frames, fps=fps or 1000.0 / duration_ms, nrow=nrow)
