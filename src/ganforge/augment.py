"""Differentiable augmentation of what the discriminator sees.

Two methods, both reimplemented from their papers:

- DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN
  Training"): every op of the policy on every image — ``color`` (brightness shift in
  [-0.5, 0.5], saturation scale in [0, 2], contrast scale in [0.5, 1.5], for images in
  [-1, 1]), ``translation`` (integer shift of up to 1/8 of the side, zero padded) and
  ``cutout`` (a zeroed square of half the side at a random position).
- ADA (Karras et al., 2020, "Training Generative Adversarial Networks with Limited
  Data"): each op applied to each sample with probability ``p``. The geometric ops are
  composed into one affine matrix per sample and applied with one bilinear resampling
  (reflection padding); the colour ops are per-sample scalars; ``p`` follows the
  overfitting heuristic r_t = E[sign(D(real))] (:meth:`Augmenter.observe`).

Every op is differentiable w.r.t. the image (gradients reach G, and the real batch for
R1). Random parameters are drawn on the CPU from the augmenter's own generator, for the
global batch of which each process keeps its slice, so a run is reproducible and does
not depend on the device or the number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ganforge.config import AugmentConfig, RunConfig
from ganforge.errors import CheckpointError

Reduce = Callable[[torch.Tensor], torch.Tensor]

_LN2 = math.log(2.0)
# ADA's canonical pipeline order (the order of ``ada_ops`` does not matter)
_PIPELINE = ("xflip", "rotate90", "translate", "scale", "rotate", "aniso", "rotate",
             "fraction")
_COLOR = ("brightness", "contrast", "saturation")


# --------------------------------------------------------------------------- drawing
class _Draws:
    """Per-sample random numbers for one call: drawn for the global batch on the CPU,
    this process's slice kept."""

    def __init__(self, n: int, rank: int, world: int, generator: torch.Generator) -> None:
        self.n, self.lo, self.world, self.g = n, rank * n, world, generator

    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.lo:self.lo + self.n]

    def rand(self, *shape: int) -> torch.Tensor:
        return self._keep(torch.rand((self.n * self.world, *shape), generator=self.g))

    def randn(self, *shape: int) -> torch.Tensor:
        return self._keep(torch.randn((self.n * self.world, *shape), generator=self.g))

    def randint(self, high: int, *shape: int, low: int = 0) -> torch.Tensor:
        return self._keep(torch.randint(low, high, (self.n * self.world, *shape),
                                        generator=self.g))


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample values (N,) as (N, 1, 1, 1) on x's device and dtype."""
    return v.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


def _color_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour channels, the rest): a fourth (alpha) channel is not colour-augmented."""
    return x[:, :3], x[:, 3:]


# --------------------------------------------------------------------------- DiffAugment
def diff_color(x: torch.Tensor, draws: _Draws) -> torch.Tensor:
    """Brightness + U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5), per sample."""
    bright, sat, con = draws.rand(), draws.rand() * 2.0, draws.rand() + 0.5
    rgb, rest = _color_split(x)
    rgb = rgb + (_bcast(bright, rgb) - 0.5)
    mean = rgb.mean(dim=1, keepdim=True)
    rgb = (rgb - mean) * _bcast(sat, rgb) + mean  # 1 channel: rgb == mean, a no-op
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * _bcast(con, rgb) + mean
    return torch.cat([rgb, rest], 1) if rest.shape[1] else rgb


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image moved down by ``dy`` and right by ``dx`` whole pixels (CPU int tensors
    (N,)), zeros shifted in. Differentiable; every output pixel copies at most one input."""
    n, _, h, w = x.shape
    py, px = int(dy.abs().max()) if n else 0, int(dx.abs().max()) if n else 0
    padded = F.pad(x, (px, px, py, py))
    rows = (torch.arange(h)[None, :] - dy[:, None] + py).to(x.device)  # (N, H)
    cols = (torch.arange(w)[None, :] - dx[:, None] + px).to(x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # N,H,W,C
    return out.permute(0, 3, 1, 2)


def diff_translation(x: torch.Tensor, draws: _Draws, ratio: float = 0.125) -> torch.Tensor:
    """Integer shift of up to ``ratio`` of each side, independently in y and x."""
    h, w = x.shape[2:]
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = draws.randint(2 * sy + 1) - sy
    dx = draws.randint(2 * sx + 1) - sx
    return shift_images(x, dy, dx)


def cutout_mask(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor,
                on: torch.Tensor | None = None, size: float = 0.5) -> torch.Tensor:
    """(N, 1, H, W) masks for batch ``x`` (on its device), 0 inside a ``size`` x ``size``
    (fraction of the sides) rectangle centred at relative positions (cy, cx) in [0, 1),
    1 elsewhere (clipped at the edges); all 1 for samples where ``on`` is false."""
    h, w = x.shape[2:]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    inside_y = (ys[None, :] - cy[:, None]).abs() < size / 2  # (N, H), small: on the CPU
    inside_x = (xs[None, :] - cx[:, None]).abs() < size / 2  # (N, W)
    if on is not None:
        inside_y &= on[:, None]
    inside_y, inside_x = inside_y.to(x.device), inside_x.to(x.device)
    inside = inside_y[:, None, :, None] & inside_x[:, None, None, :]
    return (~inside).to(x.dtype)


def diff_cutout(x: torch.Tensor, draws: _Draws) -> torch.Tensor:
    """A zeroed square of half the side at a uniformly random centre, per sample."""
    cy, cx = draws.rand(), draws.rand()
    return x * cutout_mask(x, cy, cx)


_DIFF_OPS: dict[str, Callable[[torch.Tensor, _Draws], torch.Tensor]] = {
    "color": diff_color, "translation": diff_translation, "cutout": diff_cutout}


# --------------------------------------------------------------------------- ADA
def _eye(n: int) -> torch.Tensor:
    return torch.eye(3).expand(n, 3, 3).clone()


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(sx.shape[0])
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    m = _eye(cos.shape[0])
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(tx.shape[0])
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def ada_matrices(ops: set[str], p: float, draws: _Draws, h: int, w: int) -> torch.Tensor:
    """(N, 3, 3) sampling matrices in pixel units about the image centre: output pixel
    ``o`` reads the input at ``M o``. Ops not applied contribute an exact identity.

    All ops' random numbers are drawn whatever ``p`` is, so the generator advances the
    same way every call. The distributions are symmetric, so drawing the sampling
    (inverse) transform directly has the same law as drawing the forward transform.
    """
    n = draws.n
    m = _eye(n)
    one = torch.ones(n)

    def gate(prob: float) -> torch.Tensor:
        return draws.rand() < prob

    # arbitrary rotation comes before and after the anisotropic scaling, each time with
    # probability 1 - sqrt(1 - p), so that at least one happens with probability p
    p_rot = 1 - math.sqrt(max(1 - p, 0.0))
    for op in _PIPELINE:
        if op not in ops:
            continue
        if op == "xflip":
            on, flip = gate(p), draws.randint(2)
            m = m @ _scale(torch.where(on & (flip == 1), -one, one), one)
        elif op == "rotate90":
            on, k = gate(p), draws.randint(4)
            k = torch.where(on, k, 0)
            cos = torch.tensor([1.0, 0.0, -1.0, 0.0])[k]  # exact at multiples of 90 degrees
            sin = torch.tensor([0.0, 1.0, 0.0, -1.0])[k]
            m = m @ _rotation(cos, sin)
        elif op == "translate":
            on, t = gate(p), (draws.rand(2) * 2 - 1) * 0.125
            tx, ty = torch.round(t[:, 0] * w), torch.round(t[:, 1] * h)
            m = m @ _translation(torch.where(on, tx, 0.0), torch.where(on, ty, 0.0))
        elif op == "scale":
            on, s = gate(p), torch.exp(draws.randn() * 0.2 * _LN2)
            s = torch.where(on, s, one)
            m = m @ _scale(s, s)
        elif op == "rotate":
            on, theta = gate(p_rot), (draws.rand() * 2 - 1) * math.pi
            m = m @ _rotation(torch.where(on, torch.cos(theta), one),
                              torch.where(on, torch.sin(theta), 0.0))
        elif op == "aniso":
            on, s = gate(p), torch.exp(draws.randn() * 0.2 * _LN2)
            s = torch.where(on, s, one)
            m = m @ _scale(s, 1 / s)
        elif op == "fraction":
            on, t = gate(p), draws.randn(2) * 0.125
            m = m @ _translation(torch.where(on, t[:, 0] * w, 0.0),
                                 torch.where(on, t[:, 1] * h, 0.0))
    return m


def apply_matrices(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Resample each image through its pixel-unit sampling matrix (bilinear, reflection
    padding); images whose matrix is the identity are passed through exactly."""
    n, _, h, w = x.shape
    moved = ~(m == torch.eye(3)).flatten(1).all(1)
    if not bool(moved.any()):
        return x
    idx = moved.nonzero().squeeze(1)  # on the CPU: no device sync
    to_pixels = torch.diag(torch.tensor([w / 2, h / 2, 1.0]))
    to_unit = torch.diag(torch.tensor([2 / w, 2 / h, 1.0]))
    theta = (to_unit @ m[idx] @ to_pixels)[:, :2].to(x.device, x.dtype)
    sub = x[idx.to(x.device)]
    grid = F.affine_grid(theta, list(sub.shape), align_corners=False)
    warped = F.grid_sample(sub, grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    if idx.numel() == n:
        return warped
    return x.index_put((idx.to(x.device),), warped)


def ada_color(x: torch.Tensor, ops: set[str], p: float, draws: _Draws) -> torch.Tensor:
    """Brightness + N(0, 0.2), contrast x lognormal(0, 0.5 ln 2) about mid-grey (0) and
    saturation x lognormal(0, ln 2) about each pixel's grey level, each with probability p.
    Saturation is a no-op on 1-channel images; a fourth (alpha) channel is left alone."""
    rgb, rest = _color_split(x)
    changed = False
    for op in _COLOR:
        if op not in ops:
            continue
        on, r = draws.rand() < p, draws.randn()
        if not bool(on.any()) or (op == "saturation" and rgb.shape[1] < 3):
            continue
        changed = True
        if op == "brightness":
            rgb = rgb + _bcast(torch.where(on, r * 0.2, 0.0), rgb)
        elif op == "contrast":
            rgb = rgb * _bcast(torch.where(on, torch.exp(r * 0.5 * _LN2), 1.0), rgb)
        else:  # saturation; x + (s - 1)(x - grey) is exactly x where s = 1
            s = torch.where(on, torch.exp(r * _LN2), 1.0)
            rgb = rgb + _bcast(s - 1, rgb) * (rgb - rgb.mean(dim=1, keepdim=True))
    if not changed:
        return x
    return torch.cat([rgb, rest], 1) if rest.shape[1] else rgb


def ada_cutout(x: torch.Tensor, p: float, draws: _Draws) -> torch.Tensor:
    """With probability p, a zeroed rectangle of half the sides at a random centre."""
    on, cy, cx = draws.rand() < p, draws.rand(), draws.rand()
    if not bool(on.any()):
        return x
    return x * cutout_mask(x, cy, cx, on)


# --------------------------------------------------------------------------- augmenter
class Augmenter:
    """Augments image batches for D (``__call__``); under ADA also adapts ``p`` from D's
    real logits (``observe``). State (p, statistics, RNG) is plain tensors and floats."""

    def __init__(self, cfg: AugmentConfig, seed: int, batch_size: int, rank: int = 0,
                 world: int = 1, reduce: Reduce | None = None) -> None:
        if cfg.kind == "none":
            raise ValueError("an Augmenter needs augment.kind diffaugment or ada")
        self.cfg, self.kind = cfg, cfg.kind
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.reduce = reduce
        self.rng = torch.Generator().manual_seed(seed)
        self.p = min(cfg.ada_p, cfg.ada_max_p) if cfg.kind == "ada" else 1.0
        self.rt = 0.0  # r_t of the last adjustment of p
        self._acc = torch.zeros(2)  # (sum of sign(D(real)), number of logits) this interval
        self._calls = 0  # D steps observed this interval

    # ---------------------------------------------------------------- augmenting
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """The augmented batch (NCHW, same dtype); ``generator`` overrides the own one
        (e.g. to give several evaluations the same augmentation)."""
        if x.dim() != 4:
            raise ValueError(f"augmentation needs NCHW image batches, got shape "
                             f"{tuple(x.shape)}")
        draws = _Draws(x.shape[0], self.rank, self.world, generator or self.rng)
        dtype = x.dtype
        with torch.autocast(x.device.type, enabled=False):
            y = x.float()
            if self.kind == "diffaugment":
                for op in self.cfg.policy:
                    y = _DIFF_OPS[op](y, draws)
            else:
                ops = set(self.cfg.ada_ops)
                h, w = y.shape[2:]
                y = apply_matrices(y, ada_matrices(ops, self.p, draws, h, w))
                y = ada_color(y, ops, self.p, draws)
                if "cutout" in ops:
                    y = ada_cutout(y, self.p, draws)
        return y.to(dtype)

    def draw_seed(self) -> int:
        """A seed from the own generator, for a generator shared by several calls."""
        return int(torch.randint(0, 2**62, (1,), generator=self.rng))

    # ---------------------------------------------------------------- ADA
    def observe(self, real_logits: torch.Tensor) -> None:
        """Count sign(D(real)) of one D step; every ``ada_interval`` D steps, move p by
        sign(r_t - ada_target) * batch * interval / (ada_kimg * 1000), within
        [0, ada_max_p]. Distributed, the counts are combined over processes (every
        process calls this equally often), so all hold the same p."""
        if self.kind != "ada":
            return
        signs = real_logits.detach().float().sign()
        step = torch.stack([signs.sum(), torch.tensor(float(signs.numel()),
                                                      device=signs.device)])
        self._acc = self._acc.to(signs.device) + step
        self._calls += 1
        if self._calls < self.cfg.ada_interval:
            return
        acc = self.reduce(self._acc) if self.reduce is not None else self._acc
        total, count = acc.double().cpu().tolist()
        self.rt = total / max(count, 1.0)
        move = self.batch_size * self.cfg.ada_interval / (self.cfg.ada_kimg * 1000.0)
        direction = (self.rt > self.cfg.ada_target) - (self.rt < self.cfg.ada_target)
        self.p = min(max(self.p + direction * move, 0.0), self.cfg.ada_max_p)
        self._acc = torch.zeros(2, device=signs.device)
        self._calls = 0

    def logs(self, real_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scalars for the step logs: ``augment_p`` (ADA's current p) and ``ada_rt``, this
        step's E[sign(D(real))] (its window mean is r_t over the log window)."""
        out = {"ada_rt": real_logits.detach().float().sign().mean()}
        if self.kind == "ada":
            out["augment_p"] = torch.tensor(self.p, device=real_logits.device)
        return out

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "p": float(self.p), "rt": float(self.rt),
                "calls": int(self._calls), "acc": self._acc.detach().cpu().clone(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            rng, acc = state["rng"], state["acc"]
            p, rt, calls = float(state["p"]), float(state["rt"]), int(state["calls"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"The augmentation state in this checkpoint is incomplete "
                                  f"({err!r}); resume from another checkpoint or start a new "
                                  "run.") from None
        self.rng.set_state(rng.cpu())
        self._acc = acc.detach().float().cpu().clone()
        self.rt, self._calls = rt, calls
        if self.kind == "ada" and state.get("kind") == "ada":
            self.p = min(max(p, 0.0), self.cfg.ada_max_p)


def build_augmenter(cfg: RunConfig, rank: int = 0, world: int = 1,
                    reduce: Reduce | None = None) -> Augmenter | None:
    """The run's augmenter (None for ``augment.kind: none``). ``reduce`` averages a tensor
    over processes (``Dist.mean``) so ADA's p agrees on every rank."""
    if cfg.augment.kind == "none":
        return None
    return Augmenter(cfg.augment, cfg.seed + 6, cfg.batch_size, rank, world, reduce)
