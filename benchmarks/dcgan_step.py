"""DCGAN training-step speed: ganforge's recipe against a plain reference loop.

Both train the same 32x32 DCGAN (batch 64, non-saturating loss, Adam) in the same
process; the reference is written here in the style of the classic PyTorch DCGAN
example (one G forward, D on real and detached fake, then G through D). ganforge's step
adds what the trainer needs (NaN checks, gradient norms, EMA update, data stream).

    .venv/bin/python benchmarks/dcgan_step.py [--steps 20] \
        [--json benchmarks/results/dcgan_step.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.config import RunConfig
from ganforge.data import load_source
from ganforge.registry import get_model
from ganforge.train.gan import GANRecipe
from ganforge.train.run import resolve
from ganforge.train.stream import DataStream


def _rate(step: Callable[[], object], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t)


def _interleaved(steps: dict[str, Callable[[], object]], n: int, rounds: int = 5,
                 warmup: int = 3) -> dict[str, float]:
    """Median steps/s of each variant, alternating variants every round so that machine
    noise (other load, clocks) hits them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            rates[name].append(_rate(step, n))
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="steps per timed round")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/dcgan_step.json"))
    args = ap.parse_args()

    torch.manual_seed(0)
    data = load_source("digits", resolution=32)
    cfg, spec, model_cfg = resolve(RunConfig(data="digits", model="dcgan", batch_size=64,
                                             steps=10**6), data)
    recipe = GANRecipe(cfg, spec, model_cfg, torch.device("cpu"))
    stream = DataStream(data, 64, seed=0, with_labels=False)
    counter = iter(range(10**9))

    # plain reference: same architecture, classic alternating loop
    G = spec.build_generator(get_model("dcgan").make_config(cfg.model_options))
    D = spec.build_discriminator(get_model("dcgan").make_config(cfg.model_options))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_stream = DataStream(data, 64, seed=0, with_labels=False)

    def reference_step() -> None:
        real, _ = real_stream.next()
        fake = G(torch.randn(64, G.z_dim))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    rates = _interleaved({"ganforge": lambda: recipe.train_step(next(counter), stream),
                          "reference": reference_step}, args.steps)
    ganforge_rate, reference_rate = rates["ganforge"], rates["reference"]
    result = {
        "benchmark": "dcgan_step", "resolution": 32, "batch": 64, "channels": 1,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "ganforge_steps_per_s": round(ganforge_rate, 3),
        "reference_steps_per_s": round(reference_rate, 3),
        "ratio_ganforge_over_reference": round(ganforge_rate / reference_rate, 3),
    }
    print(f"{'variant':<22}{'steps/s':>10}")
    print(f"{'ganforge GANRecipe':<22}{ganforge_rate:>10.2f}")
    print(f"{'plain reference':<22}{reference_rate:>10.2f}")
    print(f"ratio ganforge / reference: {result['ratio_ganforge_over_reference']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
