"""FID sanity on real MNIST: two halves of the test set, a one-class set, and growing
blur and noise, with any feature extractor.

    .venv/bin/python benchmarks/fid_sanity.py --features mnist            # all 10k, seconds
    .venv/bin/python benchmarks/fid_sanity.py --features inception --n 1000

Writes benchmarks/results/fid_sanity-FEATURES.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganforge.data import load_source
from ganforge.metrics.degrade import add_noise, blur
from ganforge.metrics.features import get_extractor
from ganforge.metrics.frechet import fid_from_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", default="mnist")
    ap.add_argument("--n", type=int, default=5000, help="images per set (at most 5000)")
    args = ap.parse_args()
    test = load_source("mnist", resolution=32, split="test")
    x, y = test.data, test.labels
    n = min(args.n, 5000)
    a, b = x[0::2][:n], x[1::2][:n]
    extractor = get_extractor(args.features)
    started = time.perf_counter()
    fa = extractor.extract(a).features

    def fid(images: torch.Tensor) -> float:
        return fid_from_features(fa, extractor.extract(images).features)

    rows = {"halves": fid(b), "one class (digit 1)": fid(x[y == 1][:n])}
    rows |= {f"blur sigma {s}": fid(blur(b, s)) for s in (0.6, 1.0, 1.5)}
    rows |= {f"noise std {s}": fid(add_noise(b, s)) for s in (20, 50, 90)}
    elapsed = time.perf_counter() - started
    print(f"FID with '{args.features}' features, {n} vs {n} MNIST test images")
    for name, value in rows.items():
        print(f"  {name:<22}{value:>12.4f}")
    out = Path(f"benchmarks/results/fid_sanity-{args.features.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"features": args.features, "n": n, "fid": rows,
                               "elapsed_s": round(elapsed, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
