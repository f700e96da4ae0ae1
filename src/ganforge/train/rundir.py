"""Run directories: naming, well-known paths, metrics log and checkpoint discovery."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ganforge.checkpoint import atomic_write_text

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"  # a recipe's per-step record (E-GAN: the surviving mutations)
LOG = "log.txt"
STATUS = "run.json"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
_RUN_RE = re.compile(r"^(\d{4,})-")
_STATE_RE = re.compile(r"^state-(\d+)\.safetensors$")


def new_run_dir(out: str | Path, data_name: str, model: str) -> Path:
    """Create ``OUT/NNNN-data-model`` with the next free index (safe against races)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in out.iterdir() if (m := _RUN_RE.match(p.name))]
    index = max(taken, default=-1) + 1
    while True:
        path = out / f"{index:04d}-{data_name}-{model}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            index += 1


def state_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"state-{step:08d}.safetensors"


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every saved training state, newest first."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STATE_RE.match(p.name))]
    return sorted(found, reverse=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` states (and stale temp files)."""
    for _, path in checkpoints(run_dir)[keep:]:
        path.unlink(missing_ok=True)
    for folder in (run_dir, run_dir / CHECKPOINTS, run_dir / SAMPLES):
        for tmp in folder.glob(".*.tmp"):  # left by a crash mid-write
            tmp.unlink(missing_ok=True)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


def _parse_lines(text: str) -> list[dict[str, Any]]:
    """Records of a JSON-lines text; a line cut short by a crash is dropped."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines after the resumed step (and any
    line a crash cut short) are dropped, so every step appears once."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [r for r in _parse_lines(path.read_text())
                    if r.get("step", 0) <= resume_step]
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl (empty if none)."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    return _parse_lines(path.read_text())


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    atomic_write_text(run_dir / STATUS, json.dumps(status, indent=2) + "\n")


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATUS
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}
