"""``ganforge train --nproc N``: start N training processes on this machine through
torch's elastic launcher (what torchrun uses), each running ``ganforge train --run-dir``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import GanforgeError, StoppedError
from ganforge.train import rundir

LAUNCHED_ENV = "GANFORGE_LAUNCHED_BY_NPROC"


class WorkersFailedError(GanforgeError):
    """One or more training processes failed (after any restarts)."""


def worker_command(run_dir: Path, overrides: dict[str, Any]) -> list[str]:
    """Arguments after ``python``: the command every process runs (and torchrun users
    type after ``torchrun ... -m``)."""
    args = ["-m", "ganforge", "train", "--run-dir", str(run_dir)]
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        args += ["--set", f"{key}={text.removesuffix('...').strip()}"]
    return args


def worker_threads(nproc: int) -> int:
    """Threads per process: the cores shared out, so processes do not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // nproc)


@contextlib.contextmanager
def _ctrl_c_reaches_only_workers() -> Iterator[None]:
    """Ctrl-C goes to the whole foreground process group: the workers stop together
    after saving a checkpoint, while the launcher waits for them instead of killing them."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def launch(run_dir: Path, nproc: int, max_restarts: int = 0,
           overrides: dict[str, Any] | None = None) -> None:
    """Run ``nproc`` workers on ``run_dir`` (it holds config.yaml); a failed worker makes
    the launcher restart all of them, up to ``max_restarts`` times, from the newest
    checkpoint."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", str(worker_threads(nproc)))
    os.environ[LAUNCHED_ENV] = "1"  # the launcher, not the workers, reports the run
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=max_restarts,
                          monitor_interval=0.2, start_method="spawn",
                          signals_to_handle="SIGTERM,SIGHUP,SIGQUIT")
    try:
        with _ctrl_c_reaches_only_workers():
            elastic_launch(config, sys.executable)(*worker_command(run_dir, overrides or {}))
    except ChildFailedError as err:
        failures = sorted(err.failures.items())
        codes = ", ".join(f"rank {rank}: exit code {f.exitcode}" for rank, f in failures)
        status = rundir.read_status(run_dir)
        if status.get("status") == "stopped":
            raise StoppedError(status.get("message", "Stopped.")) from None
        detail = f" ({status['message']})" if status.get("message") else ""
        raise WorkersFailedError(
            f"Training in {run_dir} failed after {max_restarts} restart(s): {codes}"
            f"{detail}. The workers' own messages are above and in {run_dir / rundir.LOG}; "
            f"continue from the newest checkpoint with `ganforge train --resume {run_dir} "
            f"--nproc {nproc}`.") from None


def launch_local(nproc: int, max_restarts: int, overrides: dict[str, Any],
                 resume: Path | None = None, run_dir: Path | None = None) -> Path:
    """``ganforge train --nproc N``: check everything here, once, create the run directory
    (unless resuming), then start the workers on it. Returns the run directory."""
    from ganforge.checkpoint import atomic_write_text
    from ganforge.config import dump_config, set_dotted, validate_config
    from ganforge.data import source_short_name
    from ganforge.errors import ConfigError
    from ganforge.train.distributed import Dist, check_batch_divides, launched_by_torchrun
    from ganforge.train.run import check_resume_changes, prepare

    if launched_by_torchrun():
        raise ConfigError("--nproc starts its own processes; under torchrun drop --nproc (torchrun "
                          "--nproc-per-node sets the number).")
    if nproc < 1 or max_restarts < 0:
        raise ConfigError(f"--nproc must be at least 1 and --max-restarts at least 0 (got "
                          f"{nproc} and {max_restarts}).")
    target = resume or run_dir
    if target is not None and rundir.is_run_dir(target):
        if resume is not None:
            check_resume_changes(target, overrides)
        launch(target, nproc, max_restarts, overrides)
        return target
    if resume is not None:
        raise ConfigError(f"{resume} is not a ganforge run directory (no {rundir.CONFIG}); "
                          "pass the folder that `ganforge train` created.")
    nested: dict[str, Any] = {}
    for key, value in overrides.items():  # --set g_optim.lr=... arrives as a dotted key
        set_dotted(nested, key, value)
    config = validate_config(nested, "the training options")
    check_batch_divides(config.batch_size, Dist(world=nproc))
    _, (resolved, _, _), _ = prepare(config)
    if run_dir is None:
        run_dir = rundir.new_run_dir(config.out, source_short_name(config.data), config.model)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / rundir.CONFIG, dump_config(resolved))
    launch(run_dir, nproc, max_restarts)
    return run_dir


def run_worker(run_dir: Path | None, overrides: dict[str, Any]) -> Any:
    """One process of a torchrun (or ``--nproc``) run: join the process group, start or
    continue the run in ``run_dir``, leave the group cleanly. A graceful stop (Ctrl-C,
    SIGTERM) exits normally, so torchrun does not restart the workers it just stopped."""
    from ganforge.config import read_yaml
    from ganforge.errors import ConfigError
    from ganforge.train import distributed
    from ganforge.train.run import start_or_continue

    if run_dir is None:
        raise ConfigError("Under torchrun every process must know the run directory: add "
                          "--run-dir DIR (a restarted worker then continues that run).")
    device = str(overrides.get("device") or (read_yaml(run_dir / rundir.CONFIG).get("device")
                                             if rundir.is_run_dir(run_dir) else None) or "cpu")
    distributed.init_from_env(device)
    clean = False
    try:
        run = start_or_continue(run_dir, overrides)
        clean = True
        return run
    except StoppedError as err:
        clean = True
        print(f"stopped: {err}", file=sys.stderr)
        return None
    finally:
        distributed.shutdown(clean)
