"""FID Inception-v3 speed: ganforge's extractor against the fid-helper TorchScript as shipped.

Both see the same real MNIST test images (28x28 gray) in the same process, batch by batch
in alternation so that machine noise hits them alike. The reference pipeline is ganforge's
preprocessing (TF1 legacy bilinear to 299, (x-128)/128, gray->rgb), then fid-helper's
``default_1.pt`` TorchScript called in fp32 under ``torch.no_grad`` on contiguous NCHW
batches. ganforge's side is :func:`extract_inception` (BN folded, channels-last, fused
conv+ReLU, one single-threaded stream per core), also shown with ``streams=1`` (plain
multi-threaded ops). Also reported: the max relative feature difference, load times and
the load average (other work on the machine slows both sides).

    .venv/bin/python benchmarks/inception_speed.py [--images 300] [--batch 50] \
        [--json benchmarks/results/inception_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganforge.data import load_source
from ganforge.metrics.inception import (
    extract_inception,
    fid_helper_weights_path,
    load_inception,
    preprocess,
    save_inception_safetensors,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _images(n: int) -> tuple[torch.Tensor, str]:
    """n real MNIST test images (uint8, 1x28x28), or sklearn digits when MNIST is absent."""
    if SHARED_MNIST.is_dir():
        return load_source(f"mnist:{SHARED_MNIST}", resolution=28).data[:n], "mnist test 28x28"
    return load_source("digits", resolution=28).data[:n], "sklearn digits at 28x28"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="images per variant (timed)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/inception_speed.json"))
    args = ap.parse_args()

    images, source = _images(args.images)
    path = fid_helper_weights_path()
    t = time.perf_counter()
    reference = torch.jit.load(str(path), map_location="cpu").eval()
    load_ref = time.perf_counter() - t
    t = time.perf_counter()
    model = load_inception()
    load_ours = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        cache = save_inception_safetensors(model, Path(tmp) / "inception.safetensors")
        t = time.perf_counter()
        load_inception(cache)
        load_cache = time.perf_counter() - t

    def run_reference(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return reference(preprocess(batch).contiguous())

    def run_ours(batch: torch.Tensor) -> torch.Tensor:
        return extract_inception(model, batch, batch_size=args.batch)[0]

    def run_ours_1(batch: torch.Tensor) -> torch.Tensor:
        return extract_inception(model, batch, batch_size=args.batch, streams=1)[0]

    variants = {"reference": run_reference, "ganforge": run_ours, "ganforge_streams1": run_ours_1}
    warm = images[:8]
    for _ in range(2):  # TorchScript's profiling executor optimizes after its first calls
        for fn in variants.values():
            fn(warm)

    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name in variants}
    feats: dict[str, list[torch.Tensor]] = {name: [] for name in variants}
    sizes = [len(b) for b in images.split(args.batch)]
    for batch in images.split(args.batch):
        for name, fn in variants.items():
            t = time.perf_counter()
            feats[name].append(fn(batch))
            times[name].append(time.perf_counter() - t)
            print(f"  {name:<18} batch of {len(batch)}: {len(batch) / times[name][-1]:6.2f} "
                  "img/s", flush=True)
    load_after = os.getloadavg()[0]
    ref_f, our_f = torch.cat(feats["reference"]), torch.cat(feats["ganforge"])
    same_1 = float((torch.cat(feats["ganforge_streams1"]) - our_f).abs().max())
    max_rel = float((our_f - ref_f).abs().max() / ref_f.abs().max())
    row_rel = float(((our_f - ref_f).norm(dim=1) / ref_f.norm(dim=1)).max())
    rate = {k: len(images) / sum(v) for k, v in times.items()}
    median = {k: statistics.median(n / s for n, s in zip(sizes, v, strict=True))
              for k, v in times.items()}
    ratio = rate["ganforge"] / rate["reference"]
    result = {
        "benchmark": "inception_speed", "images": len(images), "source": source,
        "batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "ganforge_img_per_s": round(rate["ganforge"], 3),
        "reference_img_per_s": round(rate["reference"], 3),
        "ratio_ganforge_over_reference": round(ratio, 3),
        "ganforge_streams1_img_per_s": round(rate["ganforge_streams1"], 3),
        "ratio_streams1_over_reference": round(rate["ganforge_streams1"] / rate["reference"], 3),
        "median_batch_ratio": round(median["ganforge"] / median["reference"], 3),
        "rounds": {k: [round(n / s, 3) for n, s in zip(sizes, v, strict=True)]
                   for k, v in times.items()},
        "max_abs_diff_over_max_abs": max_rel,
        "max_row_relative_l2": row_rel,
        "max_abs_diff_streams1_vs_default": same_1,
        "loadavg_1min": [round(load_before, 2), round(load_after, 2)],
        "load_s": {"reference_torchscript": round(load_ref, 3),
                   "ganforge_from_torchscript": round(load_ours, 3),
                   "ganforge_from_safetensors": round(load_cache, 3)},
    }
    print(f"{'variant':<34}{'img/s':>10}")
    print(f"{'ganforge extract_inception':<34}{rate['ganforge']:>10.2f}")
    print(f"{'ganforge, streams=1':<34}{rate['ganforge_streams1']:>10.2f}")
    print(f"{'fid-helper TorchScript (shipped)':<34}{rate['reference']:>10.2f}")
    print(f"ratio ganforge / reference: {ratio:.2f} (median of batches "
          f"{result['median_batch_ratio']:.2f})")
    print(f"max |ours - ref| / max |ref|: {max_rel:.2e}; max row rel L2: {row_rel:.2e}")
    print(f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cpus")
    print(f"load s: torchscript {load_ref:.2f}, ganforge {load_ours:.2f}, "
          f"ganforge cache {load_cache:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
