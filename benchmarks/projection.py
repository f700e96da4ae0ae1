"""Projection (GAN inversion) and PULSE-style super-resolution of held-out MNIST digits.

Takes a run (``--run``; without it a DCGAN is trained on the MNIST training split for
``--train-steps``), then on ``--n`` seeded digits of the MNIST *test* split:

1. projects them (``--space``; default z, or w for style-based models) and reports the
   mean reconstruction MSE and PSNR (images in [-1, 1]), next to the error of the
   starting latents;
2. area-downscales them to ``--low`` px (8x8 for a 32 px model) and super-resolves them
   back (Z space: z kept on the sphere, as PULSE does), reporting the downscale error,
   how many are within ``--tolerance`` and the full-resolution error to the originals.

Writes ``docs/images/projection.png`` (rows: targets, reconstructions),
``docs/images/super_resolution.png`` (rows: originals, low-res inputs, results) and JSON.

    .venv/bin/python benchmarks/projection.py --run runs/0003-mnist-dcgan [--n 16] \
        [--steps 500] [--space z] [--low 8] [--seed 0] [--threads 2] \
        [--json benchmarks/results/projection.json] [--images docs/images]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import ganforge as gf
from ganforge.checkpoint import atomic_write_text
from ganforge.data import load_source
from ganforge.latent.projection import downscale, is_style_based, project, psnr, super_resolve
from ganforge.visual import save_grid

TRAIN = {"data": "mnist", "split": "train", "model": "dcgan", "batch_size": 64, "seed": 0}


def held_out(n: int, resolution: int, channels: int, seed: int, data: str
             ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``n`` seeded test digits at the model's size, their labels and indices."""
    bundle = load_source(data, resolution=resolution, channels=channels, split="test")
    idx = torch.randperm(len(bundle), generator=torch.Generator().manual_seed(seed))[:n]
    idx = idx.sort().values
    x, y = bundle.batch(idx)
    return x, y if y is not None else torch.zeros(len(idx), dtype=torch.long), idx.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="run directory or .safetensors (default: train)")
    ap.add_argument("--train-steps", type=int, default=2000)
    ap.add_argument("--data", default="mnist", help="MNIST source of the test digits")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--space", default=None, help="z, w or w+ (default z; w if style-based)")
    ap.add_argument("--low", type=int, default=8, help="side of the low-res inputs")
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/projection.json"))
    ap.add_argument("--images", type=Path, default=Path("docs/images"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    tmp = None
    if args.run is None:
        tmp = tempfile.mkdtemp(prefix="projection-bench-")
        run = gf.train({**TRAIN, "steps": args.train_steps, "seed": args.seed}, out=tmp,
                       progress=True, sample_every=0, checkpoint_every=0)
        args.run = run.dir
        print(f"trained {run.dir} in {time.perf_counter() - started:.0f} s", flush=True)
    G = gf.load(args.run)
    c, res, _ = G.module.sample_shape
    space = args.space or ("w" if is_style_based(G.module) else "z")
    if res % args.low:
        raise SystemExit(f"--low {args.low} does not divide the model's {res} px")
    factor = res // args.low
    x, y, index = held_out(args.n, res, c, args.seed, args.data)
    labels = y if G.num_classes else None

    t0 = time.perf_counter()
    proj = project(G, x, space=space, labels=labels, steps=args.steps, seed=args.seed,
                   desc="projection")
    proj_s = time.perf_counter() - t0
    print(f"projection ({space}): mean MSE {float(proj.mse.mean()):.4f}, PSNR "
          f"{float(proj.psnr.mean()):.2f} dB (start: MSE {float(proj.initial_mse.mean()):.4f})",
          flush=True)

    low = downscale(x, factor)
    t0 = time.perf_counter()
    sr = super_resolve(G, low, factor, space=space, labels=labels, steps=args.steps,
                       seed=args.seed, tolerance=args.tolerance)
    sr_s = time.perf_counter() - t0
    full = (sr.reconstruction - x).square().flatten(1).mean(1)
    print(f"super-resolution {args.low}->{res}: downscale MSE {float(sr.mse.mean()):.5f} "
          f"({int(sr.within_tolerance.sum())}/{args.n} within {args.tolerance:g}), "
          f"full-res MSE to the originals {float(full.mean()):.4f} "
          f"(PSNR {float(psnr(full).mean()):.2f} dB)", flush=True)

    args.images.mkdir(parents=True, exist_ok=True)
    save_grid(args.images / "projection.png", torch.cat([x, proj.reconstruction]),
              nrow=args.n)
    up = F.interpolate(low, size=(res, res), mode="nearest")
    save_grid(args.images / "super_resolution.png",
              torch.cat([x, up, sr.reconstruction]), nrow=args.n)

    result: dict[str, Any] = {
        "run": str(args.run), "model": G.model, "step": G.info.get("step"),
        "data": args.data, "split": "test", "index": index, "n": args.n, "seed": args.seed,
        "space": space, "steps": args.steps,
        "projection": {"mean_mse": float(proj.mse.mean()),
                       "mean_psnr": float(proj.psnr.mean()),
                       "mean_initial_mse": float(proj.initial_mse.mean()),
                       "mse": proj.mse.tolist(), "seconds": round(proj_s, 1),
                       "settings": proj.meta},
        "super_resolution": {"low": args.low, "high": res, "factor": factor,
                             "downscale": "average pooling",
                             "mean_downscale_mse": float(sr.mse.mean()),
                             "mean_downscale_psnr": float(sr.psnr.mean()),
                             "tolerance": args.tolerance,
                             "n_within_tolerance": int(sr.within_tolerance.sum()),
                             "mean_initial_downscale_mse": float(sr.initial_mse.mean()),
                             "mean_full_res_mse": float(full.mean()),
                             "mean_full_res_psnr": float(psnr(full).mean()),
                             "seconds": round(sr_s, 1), "settings": sr.meta},
        "images": [str(args.images / "projection.png"),
                   str(args.images / "super_resolution.png")],
        "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}, {result['images'][0]}, {result['images'][1]}")


if __name__ == "__main__":
    main()
