"""The generic training loop: steps, logging, sample grids, checkpoints, NaN policy, resume."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ganforge.checkpoint import (
    ensure_finite,
    load_state,
    read_generator_file,
    save_generator,
    save_state,
)
from ganforge.config import RunConfig
from ganforge.data import DataBundle
from ganforge.errors import CheckpointError, NonFiniteError, StoppedError
from ganforge.generator import BEST_NAME, EXPORT_NAME
from ganforge.train import rundir
from ganforge.train.distributed import Dist, rank_seed
from ganforge.train.recipe import Recipe
from ganforge.train.stopper import GracefulStop
from ganforge.train.stream import DataStream
from ganforge.visual import make_grid, save_grid, save_scatter


class RunLog:
    """Timestamped lines in ``log.txt``, echoed to the console when asked (rank 0 only)."""

    def __init__(self, path: Path, echo: bool, enabled: bool = True) -> None:
        self.path, self.echo, self.enabled = path, echo, enabled

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as f:
            f.write(f"{stamp} {msg}\n")
        if self.echo:
            tqdm.write(msg)


class Trainer:
    """Drives a recipe for ``config.steps`` steps and owns every file of the run.

    Distributed, every rank runs the loop and rank 0 alone writes files; log windows
    are averaged over ranks, and stops and failures are agreed by all ranks.
    """

    def __init__(self, config: RunConfig, run_dir: Path, recipe: Recipe, data: DataBundle,
                 device: torch.device, generator_meta: dict[str, Any],
                 evaluator: Any = None, dist: Dist | None = None) -> None:
        self.cfg, self.run_dir, self.recipe, self.data = config, run_dir, recipe, data
        self.device = device
        self.dist = dist or Dist()
        self.main = self.dist.is_main
        self.generator_meta = generator_meta
        self.stream = DataStream(data, config.batch_size, config.seed + 2, device,
                                 with_labels=config.conditional, dist=self.dist)
        self.step = 0
        self.last_good: Path | None = None
        self._sums: dict[str, torch.Tensor] = {}  # running sums of the current log window
        # steps that logged each key: lazy regularizers log only on some steps
        self._counts: dict[str, int] = {}
        self._count = 0
        self.log = RunLog(run_dir / rundir.LOG, echo=config.progress and self.main,
                          enabled=self.main)
        self._fixed = self._fixed_latents()
        self._writer: Any = None
        self._export: tuple[int, torch.nn.Module] | None = None  # (step, module) cache
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"}
        self._evaluator: Any = evaluator
        if config.eval_every and evaluator is None and self.main:
            from ganforge.train.evaluation import PeriodicEval

            self._evaluator = PeriodicEval(config, data, device)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The loop's state (a collective when distributed: every rank's RNG is kept)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.dist.enabled:
            rng["torch_ranks"] = self.dist.gather(rng["torch"])
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": self.step, "recipe": self.recipe.state_dict(),
                "stream": self.stream.state_dict(), "rng": rng,
                "log_window": {"sums": dict(self._sums), "count": self._count,
                               "counts": dict(self._counts)},
                "best": dict(self.best) if self.best else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        window = state.get("log_window", {"sums": {}, "count": 0})
        self._sums, self._count = dict(window["sums"]), int(window["count"])
        counts = window.get("counts")  # older states: every key logged at every step
        self._counts = ({k: int(v) for k, v in counts.items()} if counts is not None
                        else dict.fromkeys(self._sums, self._count))
        self.best = dict(state["best"]) if state.get("best") else None
        self.recipe.load_state_dict(state["recipe"])
        self.stream.load_state_dict(state["stream"])
        ranks = state["rng"].get("torch_ranks")
        if self.dist.enabled and ranks is not None and len(ranks) == self.dist.world:
            torch.set_rng_state(ranks[self.dist.rank].clone())
        elif self.dist.rank == 0:
            torch.set_rng_state(state["rng"]["torch"])
        else:  # resumed with another number of processes
            torch.manual_seed(rank_seed(self.cfg.seed, self.dist.rank, self.step))
        if "cuda" in state["rng"] and self.device.type == "cuda":
            if self.dist.rank == 0:
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
            else:
                torch.cuda.manual_seed(rank_seed(self.cfg.seed, self.dist.rank, self.step))

    def _newest_readable(self) -> tuple[int, dict[str, Any] | None, list[str]]:
        """(step, state) of the newest readable checkpoint; corrupt newer ones are moved
        aside and reported. Step -1 when there is none."""
        problems = []
        for step, path in rundir.checkpoints(self.run_dir):
            try:
                state, _ = load_state(path)
            except CheckpointError as err:
                aside = path.with_name(path.name + ".corrupt")
                path.replace(aside)
                problems.append(f"checkpoint at step {step} is unreadable ({err}); "
                                f"moved aside to {aside.name}")
                continue
            return step, state, problems
        return -1, None, problems

    def restore_latest(self) -> Path:
        """Load the newest readable checkpoint; corrupt newer ones are reported and skipped.
        Distributed, rank 0 chooses it and every rank loads that one."""
        step, state, problems = self._newest_readable() if self.main else (-1, None, [])
        step = self.dist.broadcast_int(step)
        if step < 0:
            raise CheckpointError(f"Run {self.run_dir} has no readable checkpoint to resume "
                                  f"from ({'; '.join(problems) or 'none saved yet'}). Start a "
                                  "new run.")
        path = rundir.state_path(self.run_dir, step)
        if state is None:
            state, _ = load_state(path)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"Checkpoint {path} does not fit this run ({msg}); was "
                                  "config.yaml edited by hand? Restore it, or start a new "
                                  "run.") from None
        for note in problems:
            self.log(note)
        self.last_good = path
        if self.main:
            self._adopt_newer_best()
        return path

    def _adopt_newer_best(self) -> None:
        """A crash between an evaluation and the next checkpoint leaves a best.safetensors
        newer than the restored state; its recorded score stays the one to beat."""
        path = self.run_dir / BEST_NAME
        if not path.exists():
            return
        try:
            _, info = read_generator_file(path)
        except CheckpointError:
            return
        best = info.get("best")
        if isinstance(best, dict) and int(best.get("step", -1)) > self.step:
            self.best = dict(best)
            self.log(f"kept {BEST_NAME} from step {best['step']} (after the restored step "
                     f"{self.step}) and its {best.get('metric')} {best.get('value')}")

    # ---------------------------------------------------------------- outputs
    def _fixed_latents(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        g = torch.Generator().manual_seed(self.cfg.seed + 4)
        n, ncls = self.cfg.grid_size, self.data.num_classes if self.cfg.conditional else None
        if ncls:  # whole rows: one column per class
            n = max(1, n // ncls) * ncls
        z = self.recipe.G.sample_latents(n, generator=g)  # codes drawn as the model's prior
        y = torch.arange(n) % ncls if ncls else None
        return z, y

    def _grid_cols(self) -> int:
        ncls = self.data.num_classes if self.cfg.conditional else None
        return ncls if ncls and ncls <= 16 else max(1, int(math.sqrt(self.cfg.grid_size)))

    def export_generator(self) -> torch.nn.Module:
        """The recipe's export for the current step, built once even when a step both
        samples and checkpoints (it copies G and recomputes BatchNorm statistics)."""
        if self._export is None or self._export[0] != self.step:
            self._export = (self.step, self.recipe.export_generator())
        return self._export[1]

    def write_samples(self) -> Path:
        g = self.export_generator()
        z, y = self._fixed
        with torch.inference_mode():
            out = g(z.to(self.device), None if y is None else y.to(self.device)).float().cpu()
        path = self.run_dir / rundir.SAMPLES / f"step-{self.step:08d}.png"
        if self.data.kind == "image":
            save_grid(path, out, nrow=self._grid_cols())
            if self._writer is not None and out.shape[1] in (1, 3):
                grid = make_grid(out, nrow=self._grid_cols())
                self._writer.add_image("samples", grid, self.step, dataformats="HWC")
        else:
            ref = self.data.data[: 2000].float()
            with torch.inference_mode():
                more = g(g.sample_latents(2000, torch.Generator(self.device).manual_seed(0),
                                          self.device),
                         None if not g.num_classes else
                         torch.arange(2000, device=self.device) % g.num_classes).float().cpu()
            save_scatter(path, more, ref, title=f"step {self.step}")
        return path

    def write_checkpoint(self) -> Path:
        state = self.state_dict()  # on every rank: it gathers the ranks' RNG states
        path = rundir.state_path(self.run_dir, self.step)
        self.last_good = path
        if not self.main:
            return path
        export = self.export_generator()
        ensure_finite(export.state_dict(), f"the exported generator at step {self.step}")
        save_state(path, state, {"step": self.step, "model": self.cfg.model})
        meta = {**self.generator_meta, "step": self.step}
        save_generator(self.run_dir / EXPORT_NAME, export, self.cfg.model,
                       self.cfg.model_options, meta)
        rundir.prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)
        return path

    def evaluate(self) -> dict[str, float]:
        """Score the current export; keep it as best.safetensors when it is the best yet."""
        started = time.perf_counter()
        export = self.export_generator()
        values = self._evaluator(export, self.cfg.model)
        record: dict[str, Any] = {f"eval_{k}": round(float(v), 6) if math.isfinite(v) else None
                                  for k, v in values.items()}  # strict JSON: no Infinity
        record["eval_time_s"] = round(time.perf_counter() - started, 2)
        value = float(values[self._evaluator.key])
        if self._evaluator.improved(value, self.best):
            ensure_finite(export.state_dict(), f"the exported generator at step {self.step}")
            self.best = {"metric": self.cfg.eval_metric, "value": value, "step": self.step,
                         "features": self._evaluator.extractor.name}
            meta = {**self.generator_meta, "step": self.step, "best": self.best}
            save_generator(self.run_dir / BEST_NAME, export, self.cfg.model,
                           self.cfg.model_options, meta)
            self.log(f"step {self.step}: {self.cfg.eval_metric} {value:.4g} is the best so far; "
                     f"saved {BEST_NAME}")
        for k, v in record.items():
            if v is not None:
                self._writer.add_scalar(f"eval/{k.removeprefix('eval_')}", v, self.step)
        return record

    def _open_writer(self, resumed: bool) -> None:
        if not self.main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.run_dir / rundir.TENSORBOARD),
                                     purge_step=self.step if resumed else None)

    def _status(self, status: str, started: float, start_step: int, **extra: Any) -> None:
        if not self.main:
            return
        elapsed = time.perf_counter() - started
        done = self.step - start_step
        rundir.write_status(self.run_dir, {
            "status": status, "step": self.step, "steps": self.cfg.steps,
            "model": self.cfg.model, "data": {"spec": self.data.spec, "name": self.data.name,
                                              "kind": self.data.kind, "size": len(self.data),
                                              "num_classes": self.data.num_classes,
                                              **self.data.info},
            "device": str(self.device), "processes": self.dist.world,
            "elapsed_s": round(elapsed, 2),
            "steps_per_s": round(done / elapsed, 3) if elapsed > 0 and done else None,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            **({"best": self.best} if self.best else {}), **extra})

    # ---------------------------------------------------------------- loop
    def _log_window(self, metrics: rundir.MetricsLog | None, start_step: int, started: float,
                    extra: dict[str, Any]) -> dict[str, Any]:
        """Write the means of the current log window (and ``extra``, the evaluation of this
        step) as one metrics.jsonl record, and to TensorBoard; distributed, the means are
        over all ranks' samples (a collective; rank 0 writes)."""
        now = time.perf_counter()
        sums = dict(zip(self._sums, self.dist.mean(torch.stack(list(self._sums.values())))
                        .tolist(), strict=True)) if self._sums else {}
        counts = self._counts
        self._sums, self._counts, self._count = {}, {}, 0
        if metrics is None:  # not rank 0
            return {}
        record = {"step": self.step,
                  **{k: round(float(v) / counts[k], 6) for k, v in sums.items()},
                  "steps_per_s": round((self.step - start_step) / max(now - started, 1e-9), 3),
                  "time_s": round(now - started, 3)}
        metrics.write(record | extra)
        for k, v in record.items():
            if k != "step":
                self._writer.add_scalar(f"train/{k}", v, self.step)
        return record

    def run(self, resumed: bool = False) -> None:
        cfg = self.cfg
        metrics = rundir.MetricsLog(self.run_dir / rundir.METRICS,
                                    resume_step=self.step if resumed else None) \
            if self.main else None
        self._open_writer(resumed)
        records = getattr(self.recipe, "step_record", None)
        per_step = rundir.MetricsLog(self.run_dir / rundir.STEPS, resume_step=self.step
                                     if resumed else None) if self.main and records else None
        start_step, started = self.step, time.perf_counter()
        d = self.data
        splits = f", splits: {'+'.join(d.info['splits'])}" if d.info.get("splits") else ""
        classes = f", {d.num_classes} classes" if d.num_classes else ""
        where = f"{self.dist.world} processes" if self.dist.enabled else str(self.device)
        self.log(f"{'resuming' if resumed else 'starting'} {self.run_dir.name} at step "
                 f"{self.step}/{cfg.steps} on {where}; data {d.spec}: {len(d)} samples "
                 f"of shape {'x'.join(map(str, d.sample_shape))}{classes}{splits}")
        self._status("running", started, start_step)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.run_dir.name, unit="step",
                   disable=not (cfg.progress and self.main), dynamic_ncols=True, mininterval=0.5)
        stopper = GracefulStop().install()
        try:
            while self.step < cfg.steps:
                logs = self.recipe.train_step(self.step, self.stream)
                self.step += 1
                self._count += 1
                if per_step is not None:
                    per_step.write({"step": self.step, **records()})
                for k, v in logs.items():
                    self._sums[k] = self._sums.get(k, 0) + v.float()
                    self._counts[k] = self._counts.get(k, 0) + 1
                bar.update(1)
                final = self.step == cfg.steps
                evaluated = {}
                if cfg.eval_every and self.main and (self.step % cfg.eval_every == 0 or final):
                    evaluated = self.evaluate()
                if self.step % cfg.log_every == 0 or final:
                    record = self._log_window(metrics, start_step, started, evaluated)
                    bar.set_postfix(loss_d=record.get("loss_d"), loss_g=record.get("loss_g"))
                elif evaluated and metrics:  # one record per step: the evaluation alone
                    metrics.write({"step": self.step, **evaluated})
                if self.main and ((cfg.sample_every and self.step % cfg.sample_every == 0)
                                  or final):
                    self.write_samples()
                stop = self.dist.any(stopper.requested)  # every rank stops at the same step
                saved = (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or final
                if saved or stop:
                    self.write_checkpoint()
                    self._status("running", started, start_step)
                if stop and not final:
                    msg = (f"Stopped by {stopper.signal_name or 'a signal'} at step "
                           f"{self.step}; checkpoint saved. Continue with "
                           f"`ganforge train --resume {self.run_dir}`.")
                    self.log(msg)
                    self._status("stopped", started, start_step, message=msg)
                    raise StoppedError(msg)
        except NonFiniteError as err:
            where = (f"The last good checkpoint is {self.last_good}; resume from it with "
                     f"`ganforge train --resume {self.run_dir} --set g_optim.lr=... "
                     "--set d_optim.lr=...` (lower learning rates) or with a larger "
                     "--set r1_gamma=....") if self.last_good \
                else "No checkpoint had been saved yet."
            msg = f"{err} Nothing non-finite was saved. {where}"
            self.log(msg)
            self._status("failed", started, start_step, message=msg)
            raise NonFiniteError(msg) from None
        except StoppedError:
            raise
        except BaseException as err:
            self._status("interrupted", started, start_step, message=repr(err))
            raise
        finally:
            stopper.restore()
            bar.close()
            if self._writer is not None:
                self._writer.close()
        self._status("completed", started, start_step)
        self.log(f"finished {self.run_dir.name} at step {self.step}: "
                 f"{self.run_dir / EXPORT_NAME}")
