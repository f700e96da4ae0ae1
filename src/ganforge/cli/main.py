"""``ganforge`` command line: train, sample, info, models (eval and fid: evaluation.py)."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml

from ganforge.errors import GanforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, sample and inspect GANs. Add --debug for tracebacks.")
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _global(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False
            ) -> None:
    _state["debug"] = debug or bool(os.environ.get("GANFORGE_DEBUG"))


def user_errors(fn: F) -> F:
    """Print GanforgeErrors as one paragraph and exit non-zero (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GanforgeError as err:
            if _state["debug"]:
                traceback.print_exc()
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:  # unreadable input, unwritable output, full disk...
            if _state["debug"]:
                traceback.print_exc()
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            typer.echo(f"error: {err.strerror or err}{where}. Check the path and its "
                       "permissions, and that the disk has space.", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; resume with `ganforge train --resume RUN_DIR`.", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _parse_set(items: list[str]) -> dict[str, Any]:
    from ganforge.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. --set model_options.z_dim=64), "
                              f"got '{item}'.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: the value is not valid YAML; quote strings and "
                              "close brackets (e.g. --set 'g_optim.betas=[0.5, 0.99]').") from None
    return out


@app.command()
@user_errors
def train(
    data: Annotated[str | None, typer.Option(help="Data source: digits (default), mnist[:DIR], "
                                             "folder:PATH, npz:PATH, ring, grid.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Model name (default dcgan); `ganforge models` lists them.")] = None,
    recipe: Annotated[str | None, typer.Option(
        help="Training method: gan (default), egan, infogan or stylegan2.")] = None,
    steps: Annotated[int | None, typer.Option(help="Total training steps (default 2000).")] = None,
    out: Annotated[str | None, typer.Option(
        help="Folder that receives the run dir (default runs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (strict).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Run directory to continue.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 64).")] = None,
    resolution: Annotated[int | None, typer.Option(
        help="Image side in pixels (default: the model's, 32; 28 for infogan-mnist).")] = None,
    loss: Annotated[str | None, typer.Option(
        help="minimax, nonsaturating (default), lsgan, wgan-gp, hinge or rpgan.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu (default), cuda, cuda:N.")] = None,
    conditional: Annotated[bool | None, typer.Option(
        "--conditional/--unconditional", help="Condition on the data's labels.")] = None,
    skip_bad: Annotated[bool | None, typer.Option(
        "--skip-bad", help="Skip unreadable image files (they are counted).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any config key, dotted: --set g_optim.lr=1e-4.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="Show the progress bar.")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        help="Use this run directory: start there, or continue from its newest checkpoint "
             "if it has one (what torchrun restarts need).")] = None,
    nproc: Annotated[int | None, typer.Option(
        help="Train with N processes on this machine (DistributedDataParallel; batch_size "
             "is the global batch).")] = None,
    max_restarts: Annotated[int, typer.Option(
        help="With --nproc: restart the processes from the newest checkpoint up to this "
             "many times after a failure.")] = 0,
) -> None:
    """Train a GAN; a run directory with samples, metrics and checkpoints appears."""
    import ganforge as gf
    from ganforge.config import read_yaml
    from ganforge.errors import ConfigError
    from ganforge.train import launch
    from ganforge.train.distributed import launched_by_torchrun

    flags = {"data": data, "model": model, "recipe": recipe, "steps": steps, "out": out,
             "seed": seed, "batch_size": batch_size, "resolution": resolution, "loss": loss,
             "device": device, "conditional": conditional, "skip_bad": skip_bad,
             "progress": progress}
    given = {k: v for k, v in flags.items() if v is not None}
    given |= _parse_set(set_ or [])
    if resume is not None and config:
        raise ConfigError("--resume continues a run with its saved config.yaml; drop --config "
                          "(change resumable settings with --set).")
    if config and (nproc is not None or run_dir is not None or launched_by_torchrun()):
        given = {**read_yaml(config), **given}
    if nproc is not None:
        target = launch.launch_local(nproc, max_restarts, given, resume, run_dir)
        typer.echo(f"run directory: {target}")
        return
    if launched_by_torchrun():
        if resume is not None:
            raise ConfigError("Under torchrun use --run-dir DIR (it continues DIR when it "
                              "holds checkpoints) instead of --resume.")
        run = launch.run_worker(run_dir, given)
        if run is not None and os.environ.get("RANK") == "0" \
                and not os.environ.get(launch.LAUNCHED_ENV):
            typer.echo(f"run directory: {run.dir}")
        return
    if run_dir is not None:
        run = gf.start_or_continue(run_dir, given)
    elif resume is not None:
        run = gf.resume(resume, overrides=given)
    else:
        cfg = gf.load_config(config, given)
        run = gf.train(cfg)
    typer.echo(f"run directory: {run.dir}")


class SampleUnits(StrEnum):
    """The units ``ganforge sample`` writes points in (``LoadedGenerator.sample(units=)``)."""

    data = "data"
    model = "model"


@app.command()
@user_errors
def sample(
    source: Annotated[Path, typer.Argument(help="Run directory or exported .safetensors.")],
    n: Annotated[int, typer.Option(help="Number of samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = 0,
    out: Annotated[Path, typer.Option(help="A .png grid, a folder (one PNG per image) or "
                                           "a .npz of raw values.")] = Path("samples.png"),
    labels: Annotated[str | None, typer.Option(
        help="Class labels for conditional models: '3' or '0,1,2' (tiled to --n).")] = None,
    nrow: Annotated[int | None, typer.Option(help="Images per grid row.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    truncation: Annotated[float | None, typer.Option(
        help="Truncation trick: keep latents within |z| <= T (e.g. 0.5; smaller: more "
             "typical, less varied samples). Default: no truncation.")] = None,
    units: Annotated[SampleUnits, typer.Option(
        help="For runs trained on points with standardize: data maps the samples back to "
             "the data's units, model keeps the network's standardized output. No effect "
             "on other runs.")] = SampleUnits.data,
) -> None:
    """Draw samples from a trained generator."""
    import numpy as np

    import ganforge as gf
    from ganforge.checkpoint import atomic_write_bytes
    from ganforge.errors import ConfigError
    from ganforge.latent.interpolate import parse_labels
    from ganforge.train.run import pick_device
    from ganforge.visual import save_grid, save_images, save_scatter

    label_list = parse_labels(labels)
    if out.suffix not in ("", ".png", ".npz"):
        raise ConfigError(f"--out {out}: use a .png file (a grid), a .npz file (raw values) "
                          "or a folder name without a suffix (one PNG per image).")
    g = gf.load(source, device=pick_device(device))
    x = g.sample(n, seed=seed, labels=label_list, truncation=truncation, units=units.value)
    if out.suffix == ".npz":
        import io

        buf = io.BytesIO()
        y = g.make_labels(n, label_list)
        np.savez(buf, x=x.numpy(), **({} if y is None else {"y": y.numpy()}))
        atomic_write_bytes(out, buf.getvalue())
    elif out.suffix == ".png":
        if g.kind == "image":
            save_grid(out, x, nrow=nrow)
        else:
            trunc = "" if truncation is None else f", truncation {truncation:g}"
            save_scatter(out, x, title=f"{n} samples, seed {seed}{trunc}")
    elif g.kind == "image":
        save_images(out, x)
    else:
        raise ConfigError("Points cannot be written one file per sample; use --out x.png "
                          "(scatter plot) or --out x.npz.")
    units_note = f" (in {units.value} units)" if g.standardization is not None else ""
    typer.echo(f"wrote {n} samples to {out}{units_note}")


@app.command()
@user_errors
def info(
    source: Annotated[Path, typer.Argument(help="Run directory or exported .safetensors.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show model, config, step, data and latest metrics of a run or file."""
    from ganforge.summary import describe

    summary = describe(source)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(yaml.safe_dump(summary, sort_keys=False).rstrip())


@app.command()
@user_errors
def models() -> None:
    """List the registered models with their options and defaults."""
    import ganforge  # noqa: F401  (registers the models)
    from ganforge.registry import get_model, model_names

    for name in model_names():
        spec = get_model(name)
        typer.echo(f"{name} ({spec.kind}): {spec.description}")
        for field, info in spec.config_cls.model_fields.items():
            typer.echo(f"    {field} = {info.get_default(call_default_factory=True)!r}"
                       + (f"  # {info.description}" if info.description else ""))


def main() -> None:
    """Entry point of the ``ganforge`` script."""
    from ganforge.cli import (  # noqa: F401  (register)
        detect,
        evaluation,
        impute,
        interpolate,
        mix,
        project,
        traverse,
        truncation,
        vector,
    )

    app(prog_name="ganforge")


if __name__ == "__main__":
    sys.exit(main())
