"""torchrun/DDP: identical ranks, the single-process loss curve, restarts after a killed
worker, and the checks that keep a distributed run from starting wrong."""

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
from safetensors import safe_open
from safetensors.torch import load_file

from ganforge.checkpoint import load_state
from ganforge.data import load_source
from ganforge.errors import ConfigError
from ganforge.train import rundir
from ganforge.train.distributed import Dist, check_batch_divides
from ganforge.train.stream import DataStream

from .conftest import REPO, TINY_DCGAN, run_cli

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2"]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("GANFORGE_DEBUG", None)
    return env


def _tiny_dcgan(steps: int) -> dict[str, object]:
    return {"data": "digits", "model": "dcgan", "resolution": 16, "batch_size": 32,
            "steps": steps, "progress": False, "sample_every": 0, "model_options": TINY_DCGAN,
            "ema_kimg": 0.5, "seed": 3}


def test_two_ranks_hold_identical_g_d_and_ema(tmp_path: Path) -> None:
    """After N steps of a BatchNorm DCGAN on 2 gloo processes, every weight and buffer of
    G, D and the EMA generator is bitwise equal on both ranks, and equals the checkpoint."""
    run, out = tmp_path / "run", tmp_path / "ranks"
    out.mkdir()
    proc = subprocess.run([*TORCHRUN, str(REPO / "tests" / "ddp_worker.py"), str(run),
                           str(out), json.dumps(_tiny_dcgan(30))],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [load_file(str(out / f"rank-{r}.safetensors")) for r in (0, 1)]
    with safe_open(str(out / "rank-1.safetensors"), "pt") as f:
        assert f.metadata() == {"world": "2", "step": "30"}
    assert ranks[0].keys() == ranks[1].keys()
    assert any(k.endswith("running_mean") for k in ranks[0])  # BatchNorm buffers included
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    state, _ = load_state(rundir.state_path(run, 30))
    for net in ("G", "D", "G_ema"):
        for key, value in state["recipe"][net].items():
            assert torch.equal(value, ranks[0][f"{net}.{key}"]), f"{net}.{key}"
    # the ranks trained: the EMA moved away from the initial generator's weights
    assert not torch.equal(ranks[0]["G.net.0.weight"], ranks[0]["G_ema.net.0.weight"])
    # only rank 0 wrote files, once: one config, one metrics record per log step
    steps = [r["step"] for r in rundir.read_metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 30


def _losses(run: Path) -> dict[str, list[float]]:
    records = rundir.read_metrics(run)
    return {k: [r[k] for r in records] for k in ("loss_d", "loss_g")}


def test_nproc_loss_curve_matches_single_process(tmp_path: Path) -> None:
    """batch_size is global and each rank trains on its slice of the same batches and
    latents, so 2 processes follow the single-process curve: equal at the start (float
    reduction order aside), and far closer than a run with another seed over the whole
    run. The ring MLP has no BatchNorm, whose per-rank statistics would add noise."""
    common = ["train", "--data", "ring", "--model", "mlp", "--steps", "200", "--no-progress",
              "--set", "sample_every=0", "--set", "log_every=10",
              "--set", "g_optim.lr=2e-4"]  # a dotted key reaches --nproc runs too
    runs = {}
    for name, extra in (("single", []), ("ddp", ["--nproc", "2"]), ("seed1", ["--seed", "1"])):
        out = tmp_path / name
        proc = run_cli(*common, "--out", str(out), *extra, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("run directory:") == 1  # reported once, by the launcher
        (runs[name],) = sorted(out.iterdir())
    status = rundir.read_status(runs["ddp"])
    assert status["processes"] == 2 and status["status"] == "completed"
    single, ddp, other = (_losses(runs[n]) for n in ("single", "ddp", "seed1"))
    for key in ("loss_d", "loss_g"):
        assert ddp[key][:5] == pytest.approx(single[key][:5], abs=2e-3), key
        drift = sum(abs(a - b) for a, b in zip(ddp[key], single[key], strict=True))
        noise = sum(abs(a - b) for a, b in zip(other[key], single[key], strict=True))
        assert drift < 0.3 * noise, (key, drift, noise)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_worker_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    """SIGKILL one worker under torchrun --max-restarts=1: the workers restart from the
    newest checkpoint, reach the target step, and metrics.jsonl has every step once."""
    run, steps = tmp_path / "run", 600
    args = ["-m", "ganforge", "train", "--run-dir", str(run), "--data", "digits",
            "--model", "dcgan", "--resolution", "16", "--batch-size", "32", "--steps",
            str(steps), "--no-progress", "--set", "model_options={g_width: 8, d_width: 8, "
            "z_dim: 16}", "--set", "checkpoint_every=40", "--set", "log_every=5",
            "--set", "sample_every=0"]
    proc = subprocess.Popen([*TORCHRUN, "--max-restarts", "1", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, killed = time.time() + 180, None
        while killed is None and time.time() < deadline and proc.poll() is None:
            done = [r["step"] for r in rundir.read_metrics(run)] if run.exists() else []
            if done and done[-1] >= 100:
                for pid in _children(proc.pid):
                    if _rank_of(pid) == 1:
                        os.kill(pid, signal.SIGKILL)
                        killed = done[-1]
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None and killed < steps, "the worker was not killed mid-run"
    problems = [line for line in stderr.splitlines() if "rror" in line or "rank" in line]
    assert proc.returncode == 0, "\n".join(problems[-25:])
    recorded = [r["step"] for r in rundir.read_metrics(run)]
    assert recorded == sorted(set(recorded)), "a step was recorded twice"
    assert recorded[-1] == steps and recorded == list(range(5, steps + 1, 5))
    log = (run / rundir.LOG).read_text()
    resumed = [line for line in log.splitlines() if " resuming " in line]
    assert len(resumed) == 1 and "on 2 processes" in resumed[0]
    assert f"at step {steps}/" not in resumed[0] and " at step 0/" not in resumed[0]
    assert rundir.read_status(run)["status"] == "completed"


def test_data_stream_shards_are_disjoint_halves_of_the_global_batch() -> None:
    data = load_source("digits", resolution=16)
    whole = DataStream(data, 32, seed=5)
    halves = [DataStream(data, 32, seed=5, dist=Dist(rank=r, world=2)) for r in (0, 1)]
    for _ in range(70):  # past an epoch boundary (1797 // 32 = 56 batches)
        x, _ = whole.next()
        parts = [h.next()[0] for h in halves]
        assert torch.equal(torch.cat(parts), x)


def test_distributed_settings_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of 3"):
        check_batch_divides(64, Dist(world=3))
    proc = run_cli("train", "--out", str(tmp_path), "--nproc", "3", "--batch-size", "64",
                   "--no-progress")
    assert proc.returncode == 2 and "does not split evenly over 3 processes" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing created
    env = {**_env(), "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    for extra, message in ((["--nproc", "2"], "drop --nproc"),
                           ([], "add --run-dir DIR")):
        proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "--out",
                               str(tmp_path), *extra], capture_output=True, text=True,
                              env=env, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
