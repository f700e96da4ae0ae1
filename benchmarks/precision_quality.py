"""Does bf16 training cost quality? The README demo's DCGAN (digits, 32x32, batch 64)
trained in fp32 and in bf16 + channels_last with several seeds; FID of each with the
digits-classifier features. The seed-to-seed spread of fp32 is the run-to-run noise
that bf16 is judged against.

    .venv/bin/python benchmarks/precision_quality.py [--steps 800] [--seeds 0 1] \
        [--json benchmarks/results/precision_quality.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import ganforge as gf
from ganforge.train import rundir

SETTINGS = {"fp32": {"precision": "fp32", "channels_last": False},
            "bf16+channels_last": {"precision": "bf16", "channels_last": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n", type=int, default=1000, help="samples per FID side")
    ap.add_argument("--json", type=Path,
                    default=Path("benchmarks/results/precision_quality.json"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name, switches in SETTINGS.items():
            for seed in args.seeds:
                run = gf.train(data="digits", model="dcgan", steps=args.steps, seed=seed,
                               out=out, progress=False, sample_every=0, **switches)
                status = rundir.read_status(run.dir)
                result = gf.evaluate(run.dir, metrics=["fid"], n=args.n, seed=0)
                fid = float(result["metrics"]["fid"])
                rows.append({"setting": name, "seed": seed, "fid": round(fid, 3),
                             "steps_per_s": status["steps_per_s"]})
                print(f"{name:<20} seed {seed}: FID {fid:7.3f}  "
                      f"{status['steps_per_s']:.2f} steps/s", flush=True)
    summary = {}
    for name in SETTINGS:
        fids = [r["fid"] for r in rows if r["setting"] == name]
        speeds = [r["steps_per_s"] for r in rows if r["setting"] == name]
        summary[name] = {"fid_mean": round(statistics.mean(fids), 3),
                         "fid_spread": round(max(fids) - min(fids), 3),
                         "steps_per_s_mean": round(statistics.mean(speeds), 3)}
    print(f"\n{'setting':<20}{'FID mean':>10}{'spread':>8}{'steps/s':>9}")
    for name, s in summary.items():
        print(f"{name:<20}{s['fid_mean']:>10.3f}{s['fid_spread']:>8.3f}"
              f"{s['steps_per_s_mean']:>9.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "precision_quality", "steps": args.steps,
                                     "n": args.n, "features": "digits", "rows": rows,
                                     "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
