"""``ganforge detect``: anomaly scores of images or rows from a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


def _scores_csv(index: list[int], scores: list[float], labels: list[int] | None) -> str:
    head = "index,score" + (",label" if labels is not None else "")
    lines = [f"{i},{s:.9g}" + (f",{labels[k]}" if labels is not None else "")
             for k, (i, s) in enumerate(zip(index, scores, strict=True))]
    return "\n".join([head, *lines]) + "\n"


@app.command("detect")
@user_errors
def detect_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory trained on normal data.")],
    input_: Annotated[str, typer.Option(
        "--input", help="What to score: a data source (mnist, mnist:DIR, digits, "
        "folder:PATH, npz:PATH, csv:PATH) or a folder / .npz / .csv path.")],
    method: Annotated[str, typer.Option(
        help="discriminator (-D(x), fast) or residual (AnoGAN latent search).")
    ] = "discriminator",
    out: Annotated[Path | None, typer.Option(
        help="CSV of scores, one row per input (default RUN/detect/INPUT-METHOD.csv).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="MNIST split (default test).")] = None,
    n: Annotated[int | None, typer.Option(help="Score a seeded random subset of N.")] = None,
    steps: Annotated[int, typer.Option(help="Residual: Adam steps on z.")] = 100,
    restarts: Annotated[int, typer.Option(help="Residual: starting latents per input.")] = 1,
    lam: Annotated[float, typer.Option(help="Residual: weight of the feature loss.")] = 0.1,
    lr: Annotated[float, typer.Option(help="Residual: Adam learning rate.")] = 0.05,
    batch_size: Annotated[int, typer.Option(help="Residual: inputs searched together.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the subset and the latents.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Score inputs for anomaly (higher = more anomalous); writes one score per input."""
    from pydantic import ValidationError

    from ganforge.apps.anomaly import AnomalyDetector, excluded_auroc
    from ganforge.apps.anomaly_inputs import load_inputs
    from ganforge.apps.latent_search import SearchSettings
    from ganforge.checkpoint import atomic_write_text
    from ganforge.config import format_validation_error
    from ganforge.data import source_short_name
    from ganforge.errors import ConfigError
    from ganforge.train.run import pick_device

    try:
        settings = SearchSettings(steps=steps, restarts=restarts, lam=lam, lr=lr,
                                  batch_size=batch_size, seed=seed)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "the residual options")) from None
    if n is not None and n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}.")
    det = AnomalyDetector.from_run(run, device=pick_device(device))
    inputs = load_inputs(det, input_, split=split, n=n, seed=seed)
    labels = inputs.labels
    scores = det.score(inputs.x, method=method, settings=settings, progress=progress)
    path = out or run / "detect" / f"{source_short_name(inputs.spec)}-{method}.csv"
    atomic_write_text(path, _scores_csv(inputs.index.tolist(), scores.tolist(),
                                        None if labels is None else labels.tolist()))
    q = scores.quantile(scores.new_tensor([0.5, 0.95])).tolist()
    typer.echo(f"{method} scores of {len(scores)} inputs from {inputs.spec}: median {q[0]:.4g}, "
               f"95th percentile {q[1]:.4g}")
    auroc = excluded_auroc(det, scores, labels)
    if auroc is not None:
        typer.echo(f"AUROC of the excluded classes {det.info['exclude_classes']} vs the rest: "
                   f"{auroc:.4f}")
    typer.echo(f"wrote {path}")
