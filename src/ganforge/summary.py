"""Summaries of runs and exported files (backs ``ganforge info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganforge.checkpoint import STATE_FORMAT, load_state, read_generator_file, read_safetensors
from ganforge.config import read_yaml
from ganforge.errors import CheckpointError
from ganforge.generator import BEST_NAME, EXPORT_NAME
from ganforge.train import rundir


def describe_state(path: Path) -> dict[str, Any]:
    """Step, model and contents of a training-state checkpoint."""
    state, extras = load_state(path)
    recipe = state.get("recipe", {})
    return {"file": str(path), "kind": "training state", "model": extras.get("model"),
            "step": state.get("step"),
            "contains": {"recipe": sorted(recipe), "trainer": sorted(set(state) - {"recipe"})},
            "run": str(path.parent.parent) if path.parent.name == rundir.CHECKPOINTS else None}


def describe_file(path: Path) -> dict[str, Any]:
    """Model, config, step and data recorded in an exported generator or a state file."""
    _, raw_meta = read_safetensors(path)
    if raw_meta.get("format") == STATE_FORMAT:
        return describe_state(path)
    tensors, meta = read_generator_file(path)
    n_params = sum(t.numel() for t in tensors.values())
    out = {"file": str(path), "model": meta.get("model"), "step": meta.get("step"),
           "data": meta.get("data"), "parameters": n_params, "config": meta.get("config")}
    if meta.get("best"):
        out["best"] = meta["best"]
    return out


def describe(path: str | Path) -> dict[str, Any]:
    """Summary of a run directory (config, status, latest metrics) or of one file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a run directory or a .safetensors "
                              "file written by ganforge.")
    if path.is_file():
        return describe_file(path)
    if not rundir.is_run_dir(path):
        raise CheckpointError(f"{path} is neither a ganforge run directory nor a file; pass "
                              "the folder `ganforge train` created or a .safetensors export.")
    config = read_yaml(path / rundir.CONFIG)
    status = rundir.read_status(path)
    metrics = rundir.read_metrics(path)
    ckpts = rundir.checkpoints(path)
    out: dict[str, Any] = {
        "run": str(path), "model": config.get("model"), "data": status.get("data"),
        "status": status.get("status"), "step": status.get("step"),
        "steps": config.get("steps"), "steps_per_s": status.get("steps_per_s"),
        "latest_metrics": metrics[-1] if metrics else None,
        "checkpoints": [str(p) for _, p in ckpts],
        "export": str(path / EXPORT_NAME) if (path / EXPORT_NAME).exists() else None,
        "config": config,
    }
    if status.get("best"):
        out["best"] = {**status["best"], "file": str(path / BEST_NAME)}
    evals = sorted((path / "eval").glob("*.json")) if (path / "eval").is_dir() else []
    if evals:
        out["evaluations"] = [str(p) for p in evals]
    if status.get("message"):
        out["message"] = status["message"]
    return out
