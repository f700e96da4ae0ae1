"""Latent-space tools: Z/W interpolation and its writers, attribute vectors, style mixing,
and their commands (interpolate, mix, vector). Tiny untrained generators, seeded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from ganforge.checkpoint import save_generator
from ganforge.errors import CheckpointError, ConfigError
from ganforge.generator import LoadedGenerator, build_generator
from ganforge.latent import (
    AttributeVector,
    apply_vector,
    band_layers,
    interpolate,
    interpolation_latents,
    lerp,
    load_vector,
    mixing_grid,
    save_interpolation,
    save_vector,
    slerp,
    style_mix,
    vector_from_classifier,
    vector_from_labels,
    vector_from_mask,
)
from ganforge.latent.interpolate import mp4_available, parse_seeds
from ganforge.latent.vectors import shift

from .conftest import TINY_DCGAN

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_STYLE = {"channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16,
              "mapping_layers": 2}


def _style(resolution: int = 16, num_classes: int | None = None, seed: int = 0
           ) -> LoadedGenerator:
    torch.manual_seed(seed)
    cfg = {**TINY_STYLE, "resolution": resolution, "num_classes": num_classes}
    return LoadedGenerator(build_generator("stylegan2", cfg), "stylegan2", cfg, {})


def _dcgan(num_classes: int | None = None, seed: int = 0) -> LoadedGenerator:
    torch.manual_seed(seed)
    cfg: dict[str, Any] = {"resolution": 16, **TINY_DCGAN}
    if num_classes:
        cfg["num_classes"] = num_classes
    return LoadedGenerator(build_generator("dcgan", cfg), "dcgan", cfg, {})


def _export(g: LoadedGenerator, path: Path) -> Path:
    save_generator(path, g.module, g.model, g.config)
    return path


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    import ganforge.cli.interpolate
    import ganforge.cli.mix
    import ganforge.cli.vector  # noqa: F401  (register the commands)
    from ganforge.cli.main import app

    return CliRunner().invoke(app, list(args))


def _grid_size(cols: int, rows: int, side: int = 16) -> tuple[int, int]:
    """Pixel size of a PNG grid of side-px images: 2 px padding, upscaled to 64 px."""
    scale = 64 // side
    return scale * (cols * (side + 2) + 2), scale * (rows * (side + 2) + 2)


def _z(g: LoadedGenerator, seed: int) -> torch.Tensor:
    return g.module.sample_latents(1, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- lerp and slerp
def test_lerp_has_exact_endpoints_and_the_mean_at_the_midpoint() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, generator=gen), torch.randn(3, 16, generator=gen) * 3
    out = lerp(a, b, torch.linspace(0, 1, 5))
    assert out.shape == (3, 5, 16)
    assert torch.equal(out[:, 0], a) and torch.equal(out[:, -1], b)
    assert torch.allclose(out[:, 2], (a + b) / 2, atol=1e-6)
    ws = lerp(a.reshape(3, 4, 4), b.reshape(3, 4, 4), [0.0, 0.5, 1.0])  # any trailing shape
    assert ws.shape == (3, 3, 4, 4) and torch.allclose(ws[:, 1], ((a + b) / 2).reshape(3, 4, 4))


def test_slerp_keeps_norms_between_the_endpoints_and_is_exact_at_them() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(4, 32, generator=gen)
    b = torch.randn(4, 32, generator=gen) * torch.tensor([[0.5], [1.0], [2.0], [3.0]])
    t = torch.linspace(0, 1, 9)
    out = slerp(a, b, t)
    assert torch.equal(out[:, 0], a) and torch.equal(out[:, -1], b)
    n, na, nb = out.norm(dim=2), a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    assert (n >= torch.minimum(na, nb) * (1 - 1e-5)).all()
    assert (n <= torch.maximum(na, nb) * (1 + 1e-5)).all()
    # the direction moves along the great circle: equal angles to both ends at t = 1/2
    cos = torch.nn.functional.cosine_similarity
    assert torch.allclose(cos(out[:, 4], a), cos(out[:, 4], b), atol=1e-5)
    # unlike lerp, whose midpoint is shorter than both ends
    assert (lerp(a, b, t)[:, 4].norm(dim=1) < out[:, 4].norm(dim=1)).all()
    for other in (3 * a, -a):  # parallel and antipodal endpoints stay finite
        o = slerp(a, other, t)
        assert torch.isfinite(o).all() and torch.equal(o[:, -1], other)


# ---------------------------------------------------------------- interpolate()
@pytest.mark.parametrize("kind", ["dcgan", "stylegan2"])
def test_interpolation_rows_start_and_end_at_the_seeds_samples(kind: str) -> None:
    g = _dcgan() if kind == "dcgan" else _style()
    x = interpolate(g, [1, 2, 3], steps=4, method="slerp")
    assert x.shape == (2, 4, 1, 16, 16)
    for (r, c), s in {(0, 0): 1, (0, -1): 2, (1, 0): 2, (1, -1): 3}.items():
        assert torch.allclose(x[r, c], g.sample(1, seed=s)[0], atol=1e-5)
    pairs = interpolate(g, "1,2,3,4", steps=3, pairs=True)
    assert pairs.shape == (2, 3, 1, 16, 16)
    assert torch.allclose(pairs[1, 0], g.sample(1, seed=3)[0], atol=1e-5)
    looped = interpolate(g, [1, 2, 3], steps=3, loop=True)
    assert looped.shape[0] == 3 and torch.allclose(looped[2, -1], x[0, 0], atol=1e-5)
    z, y = interpolation_latents(g, [1, 2], steps=3)
    assert y is None and torch.allclose(z[0, 1], (_z(g, 1) + _z(g, 2))[0] / 2, atol=1e-6)


def test_w_interpolation_of_a_conditional_style_generator() -> None:
    g = _style(num_classes=3)
    ws, y = interpolation_latents(g, [1, 2], steps=3, space="w", labels=2, truncation=0.7)
    assert ws.shape == (1, 3, g.module.num_ws, 16) and y.tolist() == [2]
    wa = g.module.mapping(_z(g, 1), y, truncation=0.7)[0]
    wb = g.module.mapping(_z(g, 2), y, truncation=0.7)[0]
    assert torch.allclose(ws[0, 0], wa, atol=1e-6) and torch.allclose(ws[0, 1], (wa + wb) / 2,
                                                                       atol=1e-6)
    x = interpolate(g, [1, 2], steps=3, space="w", labels=[2], truncation=0.7)
    assert torch.allclose(x[0, -1], g.sample(1, seed=2, labels=2, truncation=0.7)[0], atol=1e-5)
    d = _dcgan(num_classes=3)  # conditional z-space model: one label per row
    x = interpolate(d, [1, 2, 3], steps=2, labels=[1, 2])
    assert torch.allclose(x[1, 0], d.sample(1, seed=2, labels=2)[0], atol=1e-6)


def test_user_errors_are_clear() -> None:
    d, g = _dcgan(), _style(resolution=32)
    with pytest.raises(ConfigError, match=r"style-based.*dcgan.*space 'z'"):
        interpolate(d, [1, 2], space="w")
    with pytest.raises(ConfigError, match="slerp is for the Gaussian Z"):
        interpolate(g, [1, 2], space="w", method="slerp")
    with pytest.raises(ConfigError, match="Unknown latent space"):
        interpolate(g, [1, 2], space="x")  # type: ignore[arg-type]
    for bad in ("1,x", "3-1", [1.5, 2], "-2"):
        with pytest.raises(ConfigError, match="non-negative integers"):
            parse_seeds(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        interpolate(d, [1])
    with pytest.raises(ConfigError, match="odd number"):
        interpolate(d, [1, 2, 3], pairs=True)
    with pytest.raises(ConfigError, match="at least 2 steps"):
        interpolate(d, [1, 2], steps=1)
    with pytest.raises(ConfigError, match="unconditional"):
        interpolate(d, [1, 2], labels=1)
    with pytest.raises(ConfigError, match="needs a style-based generator"):
        style_mix(d, [1], [2])
    with pytest.raises(ConfigError, match="Band 'fine' is empty for this 32 px"):
        style_mix(g, [1], [2], band="fine")
    with pytest.raises(ConfigError, match=r"lie in 0\.\.7"):
        band_layers(g, "6-9")
    with pytest.raises(ConfigError, match="Unknown band"):
        band_layers(g, "hair")
    points = LoadedGenerator(build_generator("mlp", {}), "mlp", {}, {})
    with pytest.raises(ConfigError, match="must have shape"):
        save_interpolation("unused.gif", interpolate(points, [1, 2], steps=2))


# ---------------------------------------------------------------- writers
def test_gif_frames_and_png_grid(tmp_path: Path) -> None:
    g = _style()
    x = interpolate(g, [1, 2, 3], steps=5)
    path = save_interpolation(tmp_path / "path.gif", x, duration_ms=40)
    with Image.open(path) as im:
        assert im.n_frames == 9 and im.info["loop"] == 0 and im.info["duration"] == 40
        assert im.size == (128, 128)  # 16 px upscaled for viewing
    looped = interpolate(g, [1, 2, 3], steps=5, loop=True)
    with Image.open(save_interpolation(tmp_path / "loop.gif", looped, loop=True)) as im:
        assert im.n_frames == 12  # 3 rows of 5 share 3 keyframes; the last is the first
    with Image.open(save_interpolation(tmp_path / "pairs.gif", x, pairs=True)) as im:
        assert im.n_frames == 5  # every row at once, one frame per step
    with Image.open(save_interpolation(tmp_path / "grid.png", x)) as im:
        assert im.size == _grid_size(5, 2)
    with pytest.raises(ConfigError, match=r"\.png \(grid\), \.gif or \.mp4"):
        save_interpolation(tmp_path / "x.jpg", x)


def test_mp4_needs_an_encoder(tmp_path: Path) -> None:
    x = interpolate(_dcgan(), [1, 2], steps=3)
    if mp4_available():
        path = save_interpolation(tmp_path / "a.mp4", x)
        assert path.stat().st_size > 0
    else:
        with pytest.raises(ConfigError, match=r"pip install 'imageio\[ffmpeg\]'"):
            save_interpolation(tmp_path / "a.mp4", x)
        assert not (tmp_path / "a.mp4").exists()


# ---------------------------------------------------------------- style mixing
def test_mixing_grid_cells_are_syntheses_of_mixed_ws() -> None:
    g = _style(resolution=64)
    m = style_mix(g, [1, 2, 3], [4, 5], band="coarse")
    assert m.mixed.shape == (2, 3, 1, 64, 64) and m.layers == [0, 1, 2, 3]
    G = g.module
    with torch.no_grad():
        ws_s, ws_d = G.mapping(_z(g, 2)), G.mapping(_z(g, 5))
        direct = G.synthesis(G.mix(ws_d, ws_s, "coarse"))[0]
        assert torch.allclose(m.mixed[1, 1], direct, atol=1e-5)
        assert torch.allclose(m.sources[2], g.sample(1, seed=3)[0], atol=1e-5)
        assert torch.allclose(m.destinations[0], g.sample(1, seed=4)[0], atol=1e-5)
        # coarse-only mixing: fine and middle styles stay the destination's
        styles, own, src = G.styles(m.ws[1, 1:2]), G.styles(ws_d), G.styles(ws_s)
    for key, value in styles.items():
        res = int(key.split(".")[0][1:])
        expected = src[key] if res <= 8 else own[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    assert not torch.allclose(m.mixed[1, 1], m.destinations[1], atol=1e-4)
    grid = mixing_grid(m)
    assert grid.shape == (3, 4, 1, 64, 64) and (grid[0, 0] == 1).all()
    assert torch.equal(grid[0, 1:], m.sources) and torch.equal(grid[1:, 0], m.destinations)
    fine = style_mix(g, [1], [4], band="fine")
    ws_4 = G.mapping(_z(g, 4)).detach()
    assert fine.layers == [8, 9] and torch.allclose(fine.ws[0, 0, :8], ws_4[0, :8], atol=1e-6)
    assert style_mix(g, [1], [4], band="16-32px").layers == [4, 5, 6, 7]


# ---------------------------------------------------------------- attribute vectors
def test_label_vector_points_from_b_mean_to_a_mean(tmp_path: Path) -> None:
    g = _style(num_classes=3)
    v = vector_from_labels(g, a=1, b=2, n=64, seed=3)
    z = g.module.sample_latents(64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mean_a = g.module.mapping(z, torch.full((64,), 1))[:, 0].mean(0)
        mean_b = g.module.mapping(z, torch.full((64,), 2))[:, 0].mean(0)
    assert v.space == "w" and v.vector.shape == (16,)
    assert torch.allclose(v.vector, mean_a - mean_b, atol=1e-5)
    assert torch.allclose(shift(mean_b[None], v, [1.0])[0, 0], mean_a, atol=1e-5)
    # vector arithmetic grids: strength 0 is the seed's own sample
    x = apply_vector(g, v, [1, 2], strengths=[-1, 0, 1], labels=2)
    assert x.shape == (2, 3, 1, 16, 16)
    assert torch.allclose(x[1, 1], g.sample(1, seed=2, labels=2)[0], atol=1e-5)
    assert not torch.allclose(x[1, 2], x[1, 1], atol=1e-4)
    path = save_vector(tmp_path / "v.safetensors", v)
    back = load_vector(path)
    assert torch.equal(back.vector, v.vector) and back.space == "w"
    assert back.meta["a"] == 1 and back.meta["b"] == 2 and back.meta["model"] == "stylegan2"
    with pytest.raises(ConfigError, match="would be noise"):
        vector_from_labels(g, 1, 2, space="z")
    with pytest.raises(ConfigError, match="unconditional"):
        vector_from_labels(_style(), 1, 2)
    with pytest.raises(ConfigError, match=r"8 dimensions but .stylegan2. has w_dim 16"):
        apply_vector(_style(), AttributeVector(torch.ones(8), "w"), [1])
    with pytest.raises(ConfigError, match="style-based"):
        apply_vector(_dcgan(), v, [1])


def test_mask_and_classifier_vectors(tmp_path: Path) -> None:
    from ganforge.metrics.classifier import load_classifier, predict
    from ganforge.visual import quantize

    d = _dcgan()
    n = 40
    mask = torch.arange(n) % 3 == 0
    v = vector_from_mask(d, mask, seed=5)
    z = d.module.sample_latents(n, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(v.vector, z[mask].mean(0) - z[~mask].mean(0), atol=1e-6)
    assert v.space == "z" and v.meta["n_a"] == 14 and v.meta["n_b"] == 26
    with pytest.raises(ConfigError, match="both groups"):
        vector_from_mask(d, torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool))
    with pytest.raises(ConfigError, match="boolean mask"):
        vector_from_mask(d, torch.arange(n))
    g = _style(seed=1)  # classifier groups, in W
    pred = predict(load_classifier("digits"), quantize(g.sample(n, seed=0)))[1].argmax(1)
    a, b = torch.bincount(pred, minlength=10).topk(2).indices.tolist()
    vc = vector_from_classifier(g, a, b, "digits", n=n, seed=0, space="w")
    ws = g.module.mapping(g.module.sample_latents(n, generator=torch.Generator().manual_seed(0)))
    expected = ws[pred == a, 0].mean(0) - ws[pred == b, 0].mean(0)
    assert torch.allclose(vc.vector, expected.detach(), atol=1e-5)
    assert vc.meta["n_a"] == int((pred == a).sum()) and vc.meta["source"] == "classifier:digits"
    missing = next(c for c in range(10) if not (pred == c).any())
    with pytest.raises(ConfigError, match="Draw more samples"):
        vector_from_classifier(g, a, missing, "digits", n=n, space="w")
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(CheckpointError):
        load_vector(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="not a ganforge latent vector"):
        load_vector(_export(d, tmp_path / "g.safetensors"))


# ---------------------------------------------------------------- commands
def test_commands_write_files(tmp_path: Path) -> None:
    style = _export(_style(num_classes=3), tmp_path / "style.safetensors")
    dcgan = _export(_dcgan(), tmp_path / "dcgan.safetensors")
    r = _cli("interpolate", str(style), "--seeds", "1,2,3", "--steps", "4", "--space", "w",
             "--labels", "1", "--truncation", "0.7", "--out", str(tmp_path / "i.png"))
    assert r.exit_code == 0, r.output
    assert "2 rows x 4 steps, lerp in W" in r.output
    assert Image.open(tmp_path / "i.png").size == _grid_size(4, 2)
    r = _cli("interpolate", str(dcgan), "--seeds", "0-2", "--steps", "3", "--method", "slerp",
             "--loop", "--out", str(tmp_path / "i.gif"))
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "i.gif").n_frames == 6
    r = _cli("mix", str(style), "--sources", "1,2,3", "--destinations", "4,5", "--band",
             "0-1", "--out", str(tmp_path / "m.png"))
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "m.png").size == _grid_size(4, 3)
    r = _cli("vector", str(style), "--a", "0", "--b", "2", "--n", "16", "--out",
             str(tmp_path / "v.safetensors"))
    assert r.exit_code == 0, r.output
    assert load_vector(tmp_path / "v.safetensors").meta["source"] == "labels"
    r = _cli("interpolate", str(style), "--seeds", "1,2", "--vector",
             str(tmp_path / "v.safetensors"), "--strengths", "-1,0,1,2", "--labels", "2",
             "--out", str(tmp_path / "v.png"))
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "v.png").size == _grid_size(4, 2)
    # user errors: one line, exit code 2, nothing written
    for args, match in [
        (("mix", str(dcgan), "--out", str(tmp_path / "x.png")), "style-based"),
        (("interpolate", str(dcgan), "--space", "w", "--out", str(tmp_path / "x.png")),
         "style-based"),
        (("interpolate", str(dcgan), "--seeds", "1,b", "--out", str(tmp_path / "x.png")),
         "--seeds must be"),
        (("interpolate", str(dcgan), "--out", str(tmp_path / "x.jpg")), ".gif or .mp4"),
        (("vector", str(dcgan), "--a", "1", "--b", "2", "--out",
          str(tmp_path / "x.safetensors")), "unconditional"),
    ]:
        r = _cli(*args)
        assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output, r.output
    assert not list(tmp_path.glob("x.*"))
    if not mp4_available():
        r = _cli("interpolate", str(dcgan), "--out", str(tmp_path / "x.mp4"))
        assert r.exit_code == 2 and "imageio[ffmpeg]" in r.output
