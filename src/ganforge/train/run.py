"""Starting and resuming runs: config resolution, data, models, the run directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from ganforge.checkpoint import atomic_write_text
from ganforge.config import RunConfig, dump_config, read_yaml, set_dotted, validate_config
from ganforge.data import DataBundle, load_source, source_short_name
from ganforge.data.spec import exclude_classes, limit_samples, standardize_points
from ganforge.errors import ConfigError
from ganforge.models.packing import check_packable
from ganforge.registry import ModelSpec, get_model
from ganforge.train import distributed, rundir
from ganforge.train.acceleration import check_precision
from ganforge.train.evaluation import PeriodicEval, check_eval_metric
from ganforge.train.recipes import build_recipe, check_recipe
from ganforge.train.stream import check_batch_size
from ganforge.train.trainer import Trainer


@dataclass
class Run:
    """A finished (or stopped) run: its directory, resolved config and last step."""

    dir: Path
    config: RunConfig
    step: int

    def load_generator(self, device: str = "cpu") -> Any:
        from ganforge.generator import load

        return load(self.dir, device=device)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return rundir.read_metrics(self.dir)


def pick_device(name: str) -> torch.device:
    """Validate the configured device; under torchrun, ``cuda`` is this process's GPU."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"Unknown device '{name}'; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available to this "
                          "PyTorch build; use --device cpu.")
    dist = distributed.current()
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device


def _model_options(config: RunConfig, spec: ModelSpec, derived: dict[str, Any]
                   ) -> dict[str, Any]:
    options = dict(config.model_options)
    for key, value in derived.items():
        if key not in spec.config_cls.model_fields:
            continue
        if key in options and options[key] != value:
            raise ConfigError(f"model_options.{key}={options[key]!r} contradicts the data/run "
                              f"settings ({key}={value!r}); remove it from model_options.")
        options[key] = value
    # Gradient penalties are per sample; BatchNorm in D mixes the samples of a batch. So
    # WGAN-GP, R1 and R2 default to a D without it (WGAN-GP refuses it, R1/R2 allow it if
    # asked).
    per_sample = config.loss == "wgan-gp" or config.r1_gamma > 0 or config.r2_gamma > 0
    if per_sample and "d_norm" in spec.config_cls.model_fields:
        explicit = "d_norm" in config.model_options
        if config.loss == "wgan-gp" and explicit and options["d_norm"] == "batch":
            raise ConfigError("WGAN-GP penalises per-sample gradients, which BatchNorm in the "
                              "discriminator mixes; set model_options.d_norm: none (this "
                              "cannot change when resuming a run trained with BatchNorm).")
        options.setdefault("d_norm", "none")
    return options


def check_model(config: RunConfig) -> ModelSpec:
    """Fail fast (before loading data) on unknown models or impossible sizes."""
    spec = get_model(config.model)
    early = {"resolution": config.resolution} if spec.kind == "image" else {}
    model_cfg = spec.make_config(_model_options(config, spec, early))
    check_recipe(config, spec)
    if config.augment.kind != "none" and spec.kind != "image":
        raise ConfigError(f"augment.kind={config.augment.kind} augments images (flips, "
                          f"rotations, colour, cutout), but model '{spec.name}' trains on "
                          f"{spec.kind} data; set augment.kind=none (the default) or use an "
                          "image model and data source.")
    if config.pack > 1:
        if config.conditional:
            raise ConfigError(f"pack={config.pack} packs samples of different classes into one "
                              "judgement; packing is for unconditional runs. Drop "
                              "--conditional or set pack: 1.")
        check_packable(spec, model_cfg, config.pack)
    return spec


def resolve(config: RunConfig, data: DataBundle) -> tuple[RunConfig, ModelSpec, BaseModel]:
    """Fill model options from the data (size, channels, classes) and validate them."""
    spec = get_model(config.model)
    if spec.kind != data.kind:
        hint = "mlp" if data.kind == "points" else "dcgan"
        raise ConfigError(f"Model '{config.model}' trains on {spec.kind} data but '{data.spec}' "
                          f"gives {data.kind}; use --model {hint} or another data source.")
    num_classes = None
    if config.conditional:
        if data.num_classes is None:
            raise ConfigError(f"conditional: true needs labels, but '{data.spec}' has none; "
                              "drop --conditional or use labelled data.")
        num_classes = data.num_classes
    derived: dict[str, Any] = {"num_classes": num_classes}
    if data.kind == "image":
        derived |= {"resolution": data.resolution, "channels": data.channels}
    else:
        derived["data_dim"] = data.sample_shape[0]
    model_cfg = spec.make_config(_model_options(config, spec, derived))
    resolved = config.model_copy(update={"model_options": model_cfg.model_dump(mode="json")})
    return resolved, spec, model_cfg


def load_data(config: RunConfig) -> DataBundle:
    """The training data: the source, without ``exclude_classes``, cut to ``data_limit``,
    standardized if asked."""
    data = load_source(config.data, resolution=config.resolution, channels=config.channels,
                       skip_bad=config.skip_bad, split=config.split, seed=config.data_seed)
    data = exclude_classes(data, config.exclude_classes)
    data = limit_samples(data, config.data_limit, config.data_seed)
    return standardize_points(data) if config.standardize else data


def data_transforms(data: DataBundle) -> dict[str, Any]:
    """What training did to its source that evaluation must repeat on the real side: the
    excluded classes and the standardization statistics (exported with the generator)."""
    return {key: data.info[key] for key in ("excluded_classes", "standardize")
            if key in data.info}


def _build(config: RunConfig, run_dir: Path, data: DataBundle,
           resolved: tuple[RunConfig, ModelSpec, BaseModel] | None = None,
           evaluator: PeriodicEval | None = None) -> Trainer:
    resolved_cfg, spec, model_cfg = resolved or resolve(config, data)
    dist = distributed.current()
    distributed.check_batch_divides(resolved_cfg.batch_size, dist)
    device = pick_device(resolved_cfg.device)
    check_precision(resolved_cfg, device)
    torch.manual_seed(resolved_cfg.seed)  # the same initial weights on every rank
    torch.use_deterministic_algorithms(resolved_cfg.deterministic, warn_only=True)
    recipe = build_recipe(resolved_cfg, spec, model_cfg, device, dist)
    if dist.rank > 0:  # per-rank global RNG; rank 0 continues as a single process would
        torch.manual_seed(distributed.rank_seed(resolved_cfg.seed, dist.rank))
    meta = {"data": {"spec": data.spec, "name": data.name, "kind": data.kind,
                     "num_classes": data.num_classes, **data_transforms(data)},
            "run": run_dir.name}
    return Trainer(resolved_cfg, run_dir, recipe, data, device, meta, evaluator, dist)


def prepare(config: RunConfig) -> tuple[DataBundle, tuple[RunConfig, ModelSpec, BaseModel],
                                       torch.device]:
    """Every check that needs no run directory: model, metric, device, precision, data,
    batch size. Run before anything is written (and before ``--nproc`` spawns workers).
    Returns the data, the resolved config and the device."""
    check_model(config)
    check_eval_metric(config)
    device = pick_device(config.device)
    check_precision(config, device)
    data = load_data(config)
    resolved = resolve(config, data)
    check_batch_size(config.batch_size, data)
    dist = distributed.current()
    distributed.check_batch_divides(config.batch_size, dist)
    if config.pack > 1 and (config.batch_size // dist.world) % config.pack:
        raise ConfigError(f"pack={config.pack} needs a batch of whole packs on every process: "
                          f"batch_size {config.batch_size} over {dist.world} process(es) "
                          f"gives {config.batch_size // dist.world}; choose a batch_size that "
                          f"is a multiple of {config.pack * dist.world}.")
    return data, resolved, device


def train(config: RunConfig | dict[str, Any] | None = None, run_dir: str | Path | None = None,
          **overrides: Any) -> Run:
    """Train a GAN from a config (or keyword overrides) in a new run directory
    (``OUT/NNNN-data-model``, or ``run_dir`` when given; it must not hold a run)."""
    if isinstance(config, RunConfig):
        config = config.model_dump()
    config = validate_config({**(config or {}), **overrides}, "the training options")
    if run_dir is not None and (Path(run_dir) / rundir.CONFIG).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with `ganforge train "
                          f"--resume {run_dir}` (or --run-dir, which continues it), or choose "
                          "another directory.")
    return _start(config, None if run_dir is None else Path(run_dir))


def _start(config: RunConfig, run_dir: Path | None) -> Run:
    dist = distributed.current()
    data, resolved, device = prepare(config)  # validate before creating anything on disk
    evaluator = PeriodicEval(resolved[0], data, device) \
        if config.eval_every and dist.is_main else None
    if run_dir is None:
        if dist.enabled:
            raise ConfigError("Under torchrun every process must know the run directory: add "
                              "--run-dir DIR (a restarted worker then continues that run).")
        run_dir = rundir.new_run_dir(config.out, source_short_name(config.data), config.model)
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / rundir.METRICS).unlink(missing_ok=True)  # from an attempt that never saved
    dist.barrier()
    trainer = _build(config, run_dir, data, resolved, evaluator)
    if dist.is_main:
        atomic_write_text(run_dir / rundir.CONFIG, dump_config(trainer.cfg))
    trainer.run()
    return Run(run_dir, trainer.cfg, trainer.step)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``{"g_optim": {"lr": 1}}`` -> ``g_optim.lr``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= _flatten(value, name + ".")
        else:
            out[name] = value
    return out


def _get_dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def start_or_continue(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> Run:
    """Start a run in ``run_dir``, or continue it from its newest checkpoint when it holds
    one: what a worker restarted by torchrun needs, run after run with the same flags.

    With an existing run, ``overrides`` may repeat its settings; they may only change
    the resumable ones (as with :func:`resume`).
    """
    run_dir, given = Path(run_dir), dict(overrides or {})
    dist = distributed.current()
    fresh, saved, complete = 0, 1, 2
    mode = fresh
    if dist.is_main and rundir.is_run_dir(run_dir):
        found = rundir.checkpoints(run_dir)
        target = given.get("steps", read_yaml(run_dir / rundir.CONFIG).get("steps", 0))
        mode = fresh if not found else complete if found[0][0] >= int(target) else saved
    mode = dist.broadcast_int(mode)
    if mode == fresh:
        base = read_yaml(run_dir / rundir.CONFIG) if rundir.is_run_dir(run_dir) else {}
        for key, value in given.items():
            set_dotted(base, key, value)
        return _start(validate_config(base, "the training options"), run_dir)
    raw = read_yaml(run_dir / rundir.CONFIG)
    changes = {k: v for k, v in _flatten(given).items() if _get_dotted(raw, k) != v}
    changes.pop("out", None)  # where new runs go; this one already has its place
    if mode == complete and not changes:
        config = validate_config(raw, str(run_dir / rundir.CONFIG))
        return Run(run_dir, config, config.steps)
    return resume(run_dir, overrides=changes)


def _record_config_change(run_dir: Path, trainer: Trainer) -> None:
    """Keep the config that produced the steps so far before writing the new one."""
    path = run_dir / rundir.CONFIG
    old, new = path.read_text(), dump_config(trainer.cfg)
    if old == new:
        return
    kept = run_dir / f"config.before-step-{trainer.step:08d}.yaml"
    atomic_write_text(kept, old)
    before, after = read_yaml(path), trainer.cfg.model_dump(mode="json")
    changed = ", ".join(f"{k}: {before.get(k)!r} -> {after[k]!r}" for k in after
                        if before.get(k) != after[k])
    trainer.log(f"config changed on resume at step {trainer.step} ({changed}); the previous "
                f"config is kept as {kept.name}")
    atomic_write_text(path, new)


# Settings that may change when a run resumes (e.g. lower learning rates after a NaN).
# Everything else (data, model, seed, batch size) is fixed by the checkpoint.
RESUMABLE = frozenset({"steps", "progress", "device", "g_optim", "d_optim", "loss", "r1_gamma",
                       "r2_gamma", "gp_weight", "n_critic", "lr_schedule", "log_every",
                       "sample_every", "checkpoint_every", "keep_checkpoints", "eval_every",
                       "precision", "channels_last", "compile"})


def check_resume_changes(run_dir: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """The saved config of ``run_dir`` (raw), after checking that ``changes`` only touch
    resumable settings and keep the learning-rate schedule honest."""
    if not rundir.is_run_dir(run_dir):
        raise ConfigError(f"{run_dir} is not a ganforge run directory (no {rundir.CONFIG}); "
                          "pass the folder that `ganforge train` created.")
    raw = read_yaml(run_dir / rundir.CONFIG)
    fixed = sorted(k for k in changes if k.split(".")[0] not in RESUMABLE)
    if fixed:
        raise ConfigError(f"Cannot change {', '.join(fixed)} when resuming {run_dir.name}: the "
                          "checkpoint fixes data, model, seed and batch size. Resumable "
                          f"settings: {', '.join(sorted(RESUMABLE))}. Start a new run instead.")
    if ("steps" in changes and changes["steps"] != raw.get("steps")
            and raw.get("lr_schedule", "constant") != "constant"
            and not any(k.split(".")[0] == "lr_schedule" for k in changes)):
        raise ConfigError(f"{run_dir.name} decays its learning rates to 0 at step "
                          f"{raw.get('steps')} (lr_schedule: {raw['lr_schedule']}); a new "
                          "--steps would rewind that schedule. Add --set lr_schedule=constant "
                          f"(or --set lr_schedule={raw['lr_schedule']} to accept the rewind).")
    return raw


def resume(run_dir: str | Path, steps: int | None = None, progress: bool | None = None,
           overrides: dict[str, Any] | None = None) -> Run:
    """Continue a run from its newest readable checkpoint, exactly where it stopped.

    ``overrides`` (dotted keys allowed) may change the settings in ``RESUMABLE``; with
    none, the continuation is bit-identical to an uninterrupted run.
    """
    run_dir = Path(run_dir)
    changes = dict(overrides or {})
    if steps is not None:
        changes["steps"] = steps
    if progress is not None:
        changes["progress"] = progress
    raw = check_resume_changes(run_dir, changes)
    for key, value in changes.items():
        set_dotted(raw, key, value)
    config = validate_config(raw, str(run_dir / rundir.CONFIG))
    pick_device(config.device)
    trainer = _build(config, run_dir, load_data(config))
    trainer.restore_latest()
    if trainer.step >= config.steps:
        raise ConfigError(f"Run {run_dir.name} already reached step {trainer.step} of "
                          f"{config.steps}; pass --steps with a larger total to train further.")
    if trainer.main:
        _record_config_change(run_dir, trainer)
    trainer.run(resumed=True)
    return Run(run_dir, trainer.cfg, trainer.step)
