"""DCGAN training speed (32x32, batch 64): ganforge's step against a plain reference and
against the convolution ceiling of this machine, all measured in the same run.

Variants: fp32, fp32 + channels_last, bf16 autocast, bf16 + channels_last (and, with
--compile, the same under torch.compile).

* steps/s: median of interleaved rounds (variants and implementations alternate, so
  machine noise hits them alike).
* GFLOP per step: counted with torch.utils.flop_counter on one step of each
  implementation (convolutions and matmuls; elementwise work is not counted).
* conv ceiling: every convolution call of ganforge's step (same shapes, dtype, layout
  and gradient needs), replayed alone, forward plus backward, back to back. It is the
  speed the step would have if everything but its convolutions took no time.
* machine peak: the best forward+backward rate of a few large 3x3 convolutions, for
  context (DCGAN's 4x4 and 8x8 feature maps cannot reach it).
* reference: the same architecture written here in the style of the classic PyTorch
  DCGAN example (nn.Sequential G and D, D on real and detached fake, then G through D),
  with the same precision and layout switches applied the plain way.

    .venv/bin/python benchmarks/train_speed.py [--steps 10] [--rounds 5] [--compile] \
        [--device cpu] [--json benchmarks/results/train_speed.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ganforge.config import RunConfig
from ganforge.data import load_source
from ganforge.train.gan import GANRecipe
from ganforge.train.run import resolve
from ganforge.train.stream import DataStream

BATCH, RES = 64, 32


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str
    channels_last: bool
    compile: bool = False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# ------------------------------------------------------------------ implementations
def ganforge_step(variant: Variant, device: torch.device) -> tuple[Callable[[], None],
                                                                   GANRecipe]:
    data = load_source("digits", resolution=RES)
    cfg = RunConfig(data="digits", model="dcgan", batch_size=BATCH, steps=10**6,
                    device=str(device), precision=variant.precision,
                    channels_last=variant.channels_last, compile=variant.compile)
    cfg, spec, model_cfg = resolve(cfg, data)
    torch.manual_seed(0)
    recipe = GANRecipe(cfg, spec, model_cfg, device)
    stream = DataStream(data, BATCH, seed=0, device=device, with_labels=False)
    counter = iter(range(10**9))
    return lambda: recipe.train_step(next(counter), stream), recipe


def reference_step(variant: Variant, device: torch.device) -> Callable[[], None]:
    """The classic example's loop and layers, at 32x32 with ganforge's default widths."""
    nz, ngf, ndf, nc = 100, 64, 64, 1
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1), nn.Tanh()).to(device)
    D = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Flatten(), nn.Linear(ndf * 4 * 16, 1)).to(device)
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    G.to(memory_format=fmt)
    D.to(memory_format=fmt)
    g_run: Callable[..., torch.Tensor] = torch.compile(G) if variant.compile else G
    d_run: Callable[..., torch.Tensor] = torch.compile(D) if variant.compile else D
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = load_source("digits", resolution=RES)
    stream = DataStream(data, BATCH, seed=0, device=device, with_labels=False)

    def step() -> None:
        real, _ = stream.next()
        real = real.contiguous(memory_format=fmt)
        with _autocast(device, variant.precision):
            fake = g_run(torch.randn(BATCH, nz, 1, 1, device=device))
            loss_d = (F.softplus(-d_run(real)).float().mean()
                      + F.softplus(d_run(fake.detach())).float().mean())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with _autocast(device, variant.precision):
            loss_g = F.softplus(-d_run(fake)).float().mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


# ------------------------------------------------------------------ measurement
def step_flops(step: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def interleaved_rates(steps: dict[str, Callable[[], None]], n: int, rounds: int,
                      device: torch.device, warmup: int = 3) -> dict[str, float]:
    """Median steps/s of each entry, alternating entries every round."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            _sync(device)
            t = time.perf_counter()
            for _ in range(n):
                step()
            _sync(device)
            rates[name].append(n / (time.perf_counter() - t))
    return {name: statistics.median(r) for name, r in rates.items()}


@dataclass
class ConvCall:
    module: nn.Module
    shape: tuple[int, ...]
    input_grad: bool
    weight_grad: bool


@contextlib.contextmanager
def recording_convs(*nets: nn.Module) -> Iterator[list[ConvCall]]:
    """Record every convolution call (shape and gradient needs) made inside the block."""
    calls: list[ConvCall] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        calls.append(ConvCall(module, tuple(x.shape), x.requires_grad and
                              torch.is_grad_enabled(), module.weight.requires_grad))

    handles = [m.register_forward_pre_hook(hook) for net in nets for m in net.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def conv_replay(calls: list[ConvCall], variant: Variant, device: torch.device
                ) -> Callable[[], None]:
    """The recorded convolutions alone, each forward then backward, as in the step."""
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    inputs = [torch.randn(c.shape, device=device).contiguous(memory_format=fmt)
              .requires_grad_(c.input_grad) for c in calls]

    def replay() -> None:
        for call, x in zip(calls, inputs, strict=True):
            call.module.weight.requires_grad_(call.weight_grad)
            with _autocast(device, variant.precision):
                out = call.module(x)
            if call.input_grad or call.weight_grad:
                out.backward(torch.ones_like(out))
            call.module.weight.requires_grad_(True)
            x.grad = None
            call.module.zero_grad(set_to_none=True)

    return replay


def machine_peak(precision: str, device: torch.device, n: int, rounds: int) -> float:
    """Best forward+backward GFLOP/s of large 3x3 convolutions (either layout)."""
    best = 0.0
    for channels, side in ((256, 16), (128, 32)):
        for fmt in (torch.contiguous_format, torch.channels_last):
            conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
            conv.to(memory_format=fmt)
            x = torch.randn(BATCH, channels, side, side, device=device)
            x = x.contiguous(memory_format=fmt).requires_grad_(True)

            def run(conv: nn.Module = conv, x: torch.Tensor = x) -> None:
                with _autocast(device, precision):
                    out = conv(x)
                out.backward(torch.ones_like(out))

            flops = step_flops(run)
            rate = interleaved_rates({"conv": run}, n, rounds, device)["conv"]
            best = max(best, flops * rate / 1e9)
    return best


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="add torch.compile variants")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/train_speed.json"))
    args = ap.parse_args()
    device = torch.device(args.device)

    variants = [Variant("fp32", "fp32", False), Variant("fp32+channels_last", "fp32", True),
                Variant("bf16", "bf16", False), Variant("bf16+channels_last", "bf16", True)]
    if args.compile:
        variants += [Variant(v.name + "+compile", v.precision, v.channels_last, True)
                     for v in variants]
    peaks = {p: machine_peak(p, device, args.steps, args.rounds) for p in ("fp32", "bf16")}

    steps: dict[str, Callable[[], None]] = {}
    flops: dict[str, float] = {}
    for v in variants:
        ours, recipe = ganforge_step(v, device)
        ref = reference_step(v, device)
        for _ in range(3 if v.compile else 1):  # compile happens in the first calls
            ours()
            ref()
        with recording_convs(recipe.G, recipe.D) as calls:
            ours()
        steps |= {f"{v.name}/ganforge": ours, f"{v.name}/reference": ref,
                  f"{v.name}/conv_replay": conv_replay(calls, v, device)}
    for name, step in steps.items():
        flops[name] = step_flops(step)
    # every variant and implementation in one interleaved schedule: ratios between
    # variants are as robust to machine noise as ratios within one
    rates = interleaved_rates(steps, args.steps, args.rounds, device)

    rows = []
    for v in variants:
        ceiling = flops[f"{v.name}/conv_replay"] * rates[f"{v.name}/conv_replay"] / 1e9
        ref_rate = rates[f"{v.name}/reference"]
        for impl in ("ganforge", "reference"):
            rate, work = rates[f"{v.name}/{impl}"], flops[f"{v.name}/{impl}"]
            gflops = work * rate / 1e9
            rows.append({
                "variant": v.name, "impl": impl, "steps_per_s": round(rate, 3),
                "gflop_per_step": round(work / 1e9, 3),
                "gflops": round(gflops, 1), "conv_ceiling_gflops": round(ceiling, 1),
                "of_conv_ceiling": round(gflops / ceiling, 3),
                "machine_peak_gflops": round(peaks[v.precision], 1),
                "of_machine_peak": round(gflops / peaks[v.precision], 3),
                "ratio_vs_reference": round(rate / ref_rate, 3),
            })
    base = {r["impl"]: r["steps_per_s"] for r in rows if r["variant"] == "fp32"}
    for r in rows:
        r["speedup_vs_fp32"] = round(r["steps_per_s"] / base[r["impl"]], 3)

    head = (f"{'variant':<28}{'impl':<11}{'steps/s':>8}{'GFLOP':>7}{'GFLOP/s':>9}"
            f"{'ceiling':>9}{'of ceil':>8}{'of peak':>8}{'vs ref':>7}{'vs fp32':>8}")
    print(head)
    for r in rows:
        print(f"{r['variant']:<28}{r['impl']:<11}{r['steps_per_s']:>8.2f}"
              f"{r['gflop_per_step']:>7.1f}{r['gflops']:>9.1f}{r['conv_ceiling_gflops']:>9.1f}"
              f"{r['of_conv_ceiling']:>8.0%}{r['of_machine_peak']:>8.0%}"
              f"{r['ratio_vs_reference']:>7.2f}{r['speedup_vs_fp32']:>8.2f}")
    print(f"machine peak (large 3x3 conv fwd+bwd): fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s")
    result = {"benchmark": "train_speed", "model": "dcgan", "resolution": RES, "batch": BATCH,
              "device": str(device), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "machine_peak_gflops": {k: round(v, 1) for k, v in peaks.items()}, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
