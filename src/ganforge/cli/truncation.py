"""``ganforge truncation``: metrics of a generator across truncation thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ganforge.cli.evaluation import FEATURES_HELP, result_path
from ganforge.cli.main import app, user_errors


@app.command("truncation")
@user_errors
def truncation_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory or exported "
                                                               ".safetensors.")],
    thresholds: Annotated[str | None, typer.Option(
        help="Comma-separated thresholds T (latents kept within |z| <= T; for style-based "
             "generators psi in W); none = no truncation. Default: none,2,1.5,1,0.75,0.5,"
             "0.25 (psi: none,0.9,0.7,0.5,0.3,0).")] = None,
    metrics: Annotated[str, typer.Option(
        help="Comma-separated: fid, kid, is, pr, dc, cas, intra_fid, modes; auto (default): "
             "fid, is (when the features have logits), pr, and cas for conditional "
             "generators.")] = "auto",
    n: Annotated[int, typer.Option(help="Generated samples per threshold.")] = 5000,
    n_real: Annotated[int | None, typer.Option(
        help="Real samples (default: --n, capped at the data size).")] = None,
    real: Annotated[str | None, typer.Option(
        help="Real data source (default: the generator's training data).")] = None,
    features: Annotated[str, typer.Option(help=FEATURES_HELP)] = "auto",
    split: Annotated[str | None, typer.Option(
        help="Real split for MNIST (default test).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the latents (the same at every "
                                           "threshold) and of the real subset.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(
        help="Result JSON (default: RUN/eval/truncation-stepN-FEATURES.json).")] = None,
    markdown: Annotated[Path | None, typer.Option(
        help="Also write the table as Markdown to this file.")] = None,
    grid: Annotated[Path | None, typer.Option(
        help="Also write a .png with one row of samples per threshold (same latents).")
                    ] = None,
    grid_n: Annotated[int, typer.Option(help="Samples per row of --grid.")] = 8,
    cache: Annotated[bool, typer.Option("--cache/--no-cache",
                                        help="Reuse cached real features.")] = True,
    cas_epochs: Annotated[int, typer.Option(help="Epochs of the CAS classifier.")] = 5,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Sweep the truncation trick: metrics per threshold (BigGAN's truncation table)."""
    from ganforge.errors import ConfigError
    from ganforge.generator import load, resolve_generator_path
    from ganforge.metrics.evaluate import MetricOptions, write_result
    from ganforge.metrics.truncation_sweep import (
        default_thresholds,
        describe,
        format_table,
        label,
        parse_thresholds,
        truncation_grid,
        truncation_sweep,
        write_markdown,
    )
    from ganforge.models.base import truncation_space
    from ganforge.train.run import pick_device
    from ganforge.visual import save_grid

    resolve_generator_path(source)  # clear errors before any work
    for path, suffix, flag in ((grid, ".png", "--grid"), (markdown, ".md", "--markdown"),
                               (out, ".json", "--out")):
        if path is not None and path.suffix.lower() != suffix:
            raise ConfigError(f"{flag} {path}: give a {suffix} file.")
    dev = str(pick_device(device))
    g = load(source, device=dev)
    space = truncation_space(g.module)
    ts = parse_thresholds(thresholds or default_thresholds(space), space)
    if grid is not None and g.kind != "image":
        raise ConfigError("--grid draws images; this generator makes points. Drop --grid.")

    def report(row: dict[str, Any]) -> None:
        if progress:
            done = ", ".join(f"{k} {v:.4g}" for k, v in row["metrics"].items()
                             if isinstance(v, float))
            typer.echo(f"truncation {label(row['truncation'])}: {done}", err=True)

    result = truncation_sweep(g, ts, real=real, metrics=metrics, n=n, features=features,
                              split=split, n_real=n_real, seed=seed, device=dev,
                              use_cache=cache, progress=progress,
                              options=MetricOptions(cas_epochs=cas_epochs, seed=seed),
                              on_row=report)
    path = write_result(out or result_path(source, result, "truncation"), result)
    typer.echo(describe(result))
    typer.echo(format_table(result))
    typer.echo(f"wrote {path}")
    if markdown is not None:
        typer.echo(f"wrote {write_markdown(markdown, result)}")
    if grid is not None:
        rows = truncation_grid(g, ts, per_row=grid_n, seed=seed)
        save_grid(grid, rows.flatten(0, 1), nrow=grid_n)
        typer.echo(f"wrote {grid} (rows: truncation {', '.join(label(t) for t in ts)})")
