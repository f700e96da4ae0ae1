"""Exact resume: SIGKILL mid-run, resume, and match an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ganforge.checkpoint import load_state
from ganforge.train import rundir

from .conftest import run_cli

STEPS, EVERY = 600, 20


def _train_args(out: Path) -> list[str]:
    return ["train", "--data", "digits", "--model", "dcgan", "--resolution", "16",
            "--steps", str(STEPS), "--out", str(out), "--seed", "11", "--batch-size", "32",
            "--no-progress", "--set", "model_options={g_width: 8, d_width: 8, z_dim: 16}",
            "--set", f"checkpoint_every={EVERY}", "--set", "sample_every=100",
            "--set", "log_every=15", "--set", "r1_gamma=0.1", "--set", "ema_kimg=0.5",
            "--set", "lr_schedule=linear"]


def _final_state(run: Path) -> dict:
    state, _ = load_state(rundir.state_path(run, STEPS))
    return state


def _assert_identical(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}.{i}")
    else:
        assert a == b, where


def test_sigkill_then_resume_is_bit_identical(tmp_path: Path) -> None:
    ref = run_cli(*_train_args(tmp_path / "ref"), check=True)
    ref_run = next((tmp_path / "ref").iterdir())
    assert "run directory" in ref.stdout

    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", *_train_args(tmp_path / "k")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_run = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list((tmp_path / "k").glob("*"))
        if runs and len(rundir.checkpoints(runs[0])) >= 2:  # mid-run, after a few checkpoints
            killed_run = runs[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert killed_run is not None and proc.returncode == -signal.SIGKILL, "run was not killed"
    saved = rundir.checkpoints(killed_run)
    assert saved and saved[0][0] < STEPS, "the kill must land before the end"
    status = json.loads((killed_run / "run.json").read_text())
    assert status["status"] == "running"  # SIGKILL left no chance to clean up

    run_cli("train", "--resume", str(killed_run), check=True)
    _assert_identical(_final_state(ref_run), _final_state(killed_run))
    ref_g, res_g = load_file(ref_run / "generator.safetensors"), load_file(
        killed_run / "generator.safetensors")
    _assert_identical(ref_g, res_g)
    def losses(run: Path) -> list[dict]:  # everything but wall-clock timings
        return [{k: v for k, v in json.loads(line).items() if k not in ("steps_per_s", "time_s")}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    resumed_log = losses(killed_run)
    assert [r["step"] for r in resumed_log] == list(range(15, STEPS + 1, 15)), \
        "each logged step appears exactly once"
    assert resumed_log == losses(ref_run), "log windows straddling the kill average the same"



def test_resume_refuses_changed_settings_and_finished_runs(tmp_path: Path) -> None:
    args = _train_args(tmp_path)
    args[args.index("--steps") + 1] = "20"
    run_cli(*args, check=True)
    run = next(tmp_path.iterdir())
    proc = run_cli("train", "--resume", str(run), "--seed", "3")
    assert proc.returncode == 2 and "Cannot change seed" in proc.stderr
    proc = run_cli("train", "--resume", str(run))
    assert proc.returncode == 2 and "already reached step 20" in proc.stderr
    proc = run_cli("train", "--resume", str(run), "--steps", "40")
    assert proc.returncode == 2 and "would rewind that schedule" in proc.stderr
    proc = run_cli("train", "--resume", str(run), "--steps", "40", "--set",
                   "lr_schedule=constant", "--set", "g_optim.lr=1e-5", "--set",
                   "d_optim.betas=[0.0, 0.9]", "--set", "d_optim.weight_decay=0.01", check=True)
    assert rundir.checkpoints(run)[0][0] == 40
    assert yaml.safe_load((run / "config.yaml").read_text())["g_optim"]["lr"] == 1e-5
    final, _ = load_state(rundir.state_path(run, 40))  # the optimizers use the new settings
    d_group = final["recipe"]["opt_d"]["param_groups"][0]
    assert d_group["betas"] == (0.0, 0.9) and d_group["weight_decay"] == 0.01
    assert final["recipe"]["opt_g"]["param_groups"][0]["lr"] == 1e-5
    before = yaml.safe_load((run / "config.before-step-00000020.yaml").read_text())
    assert before["g_optim"]["lr"] != 1e-5 and before["steps"] == 20
    assert "config changed on resume at step 20" in (run / "log.txt").read_text()
    state = run / "checkpoints" / "state-00000040.safetensors"
    info = run_cli("info", str(state), check=True).stdout
    assert "training state" in info and "step: 40" in info


def test_sigterm_saves_a_checkpoint_and_resume_matches(tmp_path: Path) -> None:
    args = _train_args(tmp_path / "t")
    args[args.index("--steps") + 1] = "10000"
    args[args.index(f"checkpoint_every={EVERY}")] = "checkpoint_every=0"
    args[args.index("lr_schedule=linear")] = "lr_schedule=constant"  # total may change
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        runs = list((tmp_path / "t").glob("*/metrics.jsonl"))
        if runs and runs[0].stat().st_size > 0:  # training is under way
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("training did not start in time")
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    run = next((tmp_path / "t").iterdir())
    (step, _), = rundir.checkpoints(run)  # saved at the stop, off the checkpoint grid
    assert 0 < step < 10000
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"

    total = step + 20
    run_cli("train", "--resume", str(run), "--steps", str(total), check=True)
    ref_args = [a.replace("10000", str(total)) for a in args]
    ref_args[ref_args.index("--out") + 1] = str(tmp_path / "ref")
    run_cli(*ref_args, check=True)
    ref = next((tmp_path / "ref").iterdir())
    ref_state, _ = load_state(rundir.state_path(ref, total))
    res_state, _ = load_state(rundir.state_path(run, total))
    _assert_identical(ref_state, res_state)
