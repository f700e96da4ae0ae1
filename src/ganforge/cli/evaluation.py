"""``ganforge eval`` and ``ganforge fid``: metrics from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from ganforge.cli.main import app, user_errors

FEATURES_HELP = ("Feature extractor: auto (default: mnist/digits classifier for that data, "
                 "identity for points, inception otherwise), inception, inception:PATH "
                 "(pytorch-fid weights), mnist, digits, identity.")


def _table(values: dict[str, float]) -> str:
    width = max(len(k) for k in values) if values else 0
    return "\n".join(f"  {k:<{width}}  {v:.6g}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
                     for k, v in values.items())


def result_path(source: Path, result: dict[str, Any], kind: str = "eval",
                detail: str = "") -> Path:
    """Where a result JSON goes by default: RUN/eval/KIND-stepN-FEATURES[DETAIL].json, or
    beside an exported file."""
    feats = re.sub(r"[^A-Za-z0-9_-]+", "-", result["meta"]["features"].split(":")[0])
    step = result["meta"].get("step")
    tag = f"step{int(step):08d}-" if isinstance(step, int) else ""
    name = f"{kind}-{tag}{feats}{detail}.json"
    if source.is_dir():
        return source / "eval" / name
    return source.with_name(f"{source.stem}.{name}")


def _default_out(source: Path, result: dict[str, Any]) -> Path:
    detail = "-" + "+".join(result["meta"]["metrics"])
    if result["meta"].get("truncation") is not None:
        detail += f"-trunc{result['meta']['truncation']:g}"
    return result_path(source, result, "eval", detail)


@app.command("eval")
@user_errors
def eval_cmd(
    source: Annotated[Path, typer.Argument(help="Run directory or exported .safetensors.")],
    metrics: Annotated[str, typer.Option(
        help="Comma-separated: fid, kid, is, pr, dc, cas, intra_fid, modes, or all.")] = "fid",
    real: Annotated[str | None, typer.Option(
        help="Real data source (default: the generator's training data).")] = None,
    n: Annotated[int, typer.Option(help="Generated samples.")] = 10_000,
    n_real: Annotated[int | None, typer.Option(
        help="Real samples (default: --n, capped at the data size).")] = None,
    features: Annotated[str, typer.Option(help=FEATURES_HELP)] = "auto",
    split: Annotated[str | None, typer.Option(
        help="Real split for MNIST (default test).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of latents and subsets.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(
        help="Result JSON (default: RUN/eval/eval-stepN-FEATURES-METRICS.json).")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache",
                                        help="Reuse cached real features.")] = True,
    cas_epochs: Annotated[int, typer.Option(help="Epochs of the CAS classifier.")] = 5,
    truncation: Annotated[float | None, typer.Option(
        help="Sample with the truncation trick at this threshold (default: off).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Evaluate a generator; prints the metrics and writes them with provenance as JSON."""
    from ganforge.generator import resolve_generator_path
    from ganforge.metrics.evaluate import MetricOptions, evaluate, write_result
    from ganforge.train.run import pick_device

    resolve_generator_path(source)  # a clear error before any work
    dev = str(pick_device(device))
    result = evaluate(source, real=real, metrics=metrics, n=n, features=features, split=split,
                      n_real=n_real, seed=seed, device=dev, use_cache=cache,
                      progress=progress, truncation=truncation,
                      options=MetricOptions(cas_epochs=cas_epochs, seed=seed))
    path = write_result(out or _default_out(source, result), result)
    meta = result["meta"]
    typer.echo(f"{meta['features']} features; real {meta['real']['spec']} "
               f"({meta['real'].get('split', 'all')}, n={meta['real']['n']}), "
               f"generated n={meta['fake']['n']}")
    typer.echo(_table(result["metrics"]))
    typer.echo(f"wrote {path}")


@app.command("fid")
@user_errors
def fid_cmd(
    a: Annotated[str, typer.Argument(help="Reference set: folder, .npz or data source.")],
    b: Annotated[str, typer.Argument(help="Other set: folder, .npz or data source.")],
    features: Annotated[str, typer.Option(help=FEATURES_HELP)] = "auto",
    resolution: Annotated[int | None, typer.Option(
        help="Bring both sets to this side (default: the larger native side).")] = None,
    n: Annotated[int | None, typer.Option(help="Random subset of each set.")] = None,
    split: Annotated[str | None, typer.Option(help="Split for MNIST sources.")] = None,
    metrics: Annotated[str, typer.Option(help="Also kid, pr, dc ... (comma-separated).")] = "fid",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Also write the result as JSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full JSON.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """FID (and other metrics) between two image folders, npz files or data sources."""
    from ganforge.metrics.evaluate import compare_sources, write_result
    from ganforge.train.run import pick_device

    result = compare_sources(a, b, metrics=metrics, features=features, resolution=resolution,
                             n=n, split=split, device=str(pick_device(device)),
                             progress=progress)
    if out is not None:
        write_result(out, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    meta = result["meta"]
    at = f" at {meta['resolution']} px" if meta["resolution"] else ""
    typer.echo(f"{meta['features']} features{at}; A n={meta['a']['n']}, B n={meta['b']['n']}")
    typer.echo(_table(result["metrics"]))
