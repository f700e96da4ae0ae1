"""Precision, memory layout and torch.compile switches: same training, saved state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganforge as gf
from ganforge.checkpoint import load_state
from ganforge.data import MIXTURE_STD, mixture_centers
from ganforge.metrics import mode_stats
from ganforge.train import rundir

from .conftest import tiny_image_config
from .test_learning import RING as RING_LEARNING

RING = {"data": "ring", "model": "mlp", "batch_size": 64, "progress": False,
        "sample_every": 0, "log_every": 1, "seed": 2}


def _losses(run: gf.Run) -> list[tuple[float, float]]:
    return [(r["loss_d"], r["loss_g"]) for r in run.metrics]


def test_channels_last_trains_like_the_default_layout(tmp_path: Path) -> None:
    """NHWC changes how convolutions are computed, not what they compute."""
    runs = [gf.train(tiny_image_config(tmp_path / str(cl), steps=5, log_every=1,
                                       channels_last=cl)) for cl in (False, True)]
    for a, b in zip(_losses(runs[0]), _losses(runs[1]), strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)
    states = [load_state(rundir.state_path(r.dir, 5))[0]["recipe"]["G"] for r in runs]
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-3, atol=1e-4)
    # the export loads and samples whatever the layout it was trained in
    assert gf.load(runs[1].dir).sample(4, seed=0).shape == (4, 1, 16, 16)


def test_bf16_autocast_keeps_fp32_weights_and_close_losses(tmp_path: Path) -> None:
    fp32 = gf.train(tiny_image_config(tmp_path / "fp32", steps=3, log_every=1))
    bf16 = gf.train(tiny_image_config(tmp_path / "bf16", steps=3, log_every=1,
                                      precision="bf16"))
    # bf16 rounds to ~3 significant digits: close to fp32, not equal to it
    first_fp32, first_bf16 = _losses(fp32)[0], _losses(bf16)[0]
    assert first_bf16 == pytest.approx(first_fp32, rel=0.05)
    assert first_bf16 != first_fp32
    state = load_state(rundir.state_path(bf16.dir, 3))[0]["recipe"]
    assert all(v.dtype == torch.float32 for v in state["G"].values() if v.is_floating_point())
    assert state["amp"] == {}  # no gradient scaler outside fp16


def test_fp16_gradient_scaler_state_is_saved_and_resumed_exactly(tmp_path: Path) -> None:
    """fp16 (emulated on the CPU) uses one gradient scaler per network; its scale and
    growth tracker are part of the checkpoint, so a resumed run continues bit for bit."""
    straight = gf.train({**RING, "steps": 8, "precision": "fp16", "out": str(tmp_path / "a"),
                         "checkpoint_every": 4})
    first = gf.train({**RING, "steps": 4, "precision": "fp16", "out": str(tmp_path / "b")})
    resumed = gf.resume(first.dir, steps=8)
    a, _ = load_state(rundir.state_path(straight.dir, 8))
    b, _ = load_state(rundir.state_path(resumed.dir, 8))
    scaler = a["recipe"]["amp"]["G"]
    assert scaler["scale"] > 0 and scaler["_growth_tracker"] >= 0
    assert a["recipe"]["amp"] == b["recipe"]["amp"]
    for key, value in a["recipe"]["G"].items():
        assert torch.equal(value, b["recipe"]["G"][key]), key
    assert "amp_skipped_g" in straight.metrics[0]


def test_bf16_ring_gan_still_learns(tmp_path: Path) -> None:
    run = gf.train(RING_LEARNING, out=str(tmp_path), progress=False, sample_every=0,
                   checkpoint_every=0, seed=0, precision="bf16")
    stats = mode_stats(run.load_generator().sample(2500, seed=123),
                       mixture_centers("ring"), MIXTURE_STD["ring"])
    assert stats.modes_captured >= 7 and stats.high_quality >= 0.75, stats


def test_compiled_training_matches_eager(tmp_path: Path) -> None:
    eager = gf.train({**RING, "steps": 3, "out": str(tmp_path / "eager")})
    compiled = gf.train({**RING, "steps": 3, "out": str(tmp_path / "compiled"),
                         "compile": True})
    for a, b in zip(_losses(eager), _losses(compiled), strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
