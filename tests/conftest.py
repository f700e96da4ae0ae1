"""Shared fixtures: small, seeded settings that keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ganforge.threads import torch_threads

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TINY_DCGAN = {"g_width": 8, "d_width": 8, "z_dim": 16, "embed_dim": 8}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> None:
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small models run faster, and steadier on a busy 2-core machine, on one thread."""
    with torch_threads(1):
        yield


def tiny_image_config(out: Path, **overrides: object) -> dict[str, object]:
    """A DCGAN on digits at 16x16 with narrow layers: ~100 steps/s on 2 cores."""
    cfg: dict[str, object] = {
        "data": "digits", "model": "dcgan", "resolution": 16, "batch_size": 32, "steps": 20,
        "out": str(out), "progress": False, "sample_every": 0, "checkpoint_every": 0,
        "model_options": dict(TINY_DCGAN), "seed": 0,
    }
    cfg.update(overrides)
    return cfg


def run_cli(*args: str, cwd: Path | None = None, check: bool = False,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ganforge ARGS`` in a fresh process (real exit codes and stderr)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GANFORGE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ganforge {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def digit_fids(trained: Any, untrained: Any) -> tuple[dict[str, float], Any, Any]:
    """Fréchet distances of 8x8-pooled pixels to the 16 px ``digits``: of ``trained`` and
    ``untrained`` samples and of the mean digit plus a little noise (the blurry-average
    cheat), each 1,000 samples. Also returns the real and the trained features."""
    import torch
    import torch.nn.functional as F

    from ganforge.data import load_source
    from ganforge.metrics.frechet import fid_from_features

    real_src = load_source("digits", resolution=16)
    real, _ = real_src.batch(torch.arange(len(real_src)))

    def feats(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2).flatten(1)

    mean_digit = real.mean(0, keepdim=True) + 0.01 * torch.randn(1000, *real.shape[1:])
    fid = {name: fid_from_features(feats(real), feats(x))
           for name, x in (("untrained", untrained), ("trained", trained),
                           ("mean", mean_digit))}
    return fid, feats(real), feats(trained)
