"""``ganforge impute``: fill the missing cells of a CSV file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


@app.command("impute")
@user_errors
def impute_cmd(
    csv_path: Annotated[Path, typer.Argument(metavar="DATA.csv",
                                             help="CSV with a header row; empty or NaN "
                                                  "cells are missing.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the imputed CSV.")],
    method: Annotated[str, typer.Option(help="gain (default), mean, mice or missforest.")
                      ] = "gain",
    categorical: Annotated[list[str] | None, typer.Option(
        "--categorical", help="Treat this column as categories (repeatable); text-only "
                              "columns are categorical anyway.")] = None,
    missing: Annotated[list[str] | None, typer.Option(
        "--missing", help="Another marker of a missing cell, e.g. NA or ? (repeatable).")
                       ] = None,
    iterations: Annotated[int, typer.Option(help="GAIN training iterations.")] = 10_000,
    hint_rate: Annotated[float, typer.Option(help="GAIN hint rate.")] = 0.9,
    alpha: Annotated[float, typer.Option(help="GAIN reconstruction weight.")] = 100.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    delimiter: Annotated[str, typer.Option(help="Field separator.")] = ",",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Impute missing cells; observed cells, column names and order are kept exactly."""
    from pydantic import ValidationError

    from ganforge.apps.imputation import GAINConfig, impute_table
    from ganforge.apps.imputation.methods import METHODS
    from ganforge.config import format_validation_error
    from ganforge.data.table import read_table, write_table
    from ganforge.errors import ConfigError

    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is unknown; choose one of {list(METHODS)}.")
    if out.resolve() == csv_path.resolve():
        raise ConfigError(f"--out {out} is the input file; write to a new file so the "
                          "original stays intact.")
    try:
        gain = GAINConfig(iterations=iterations, hint_rate=hint_rate, alpha=alpha, seed=seed)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "the GAIN options")) from None
    table = read_table(csv_path, categorical=categorical or [], missing_tokens=missing or [],
                       delimiter=delimiter)
    rows, cols = table.shape
    typer.echo(f"read {csv_path}: {rows} rows x {cols} columns, {int(table.missing.sum())} "
               f"missing cells; imputing with {method}", err=True)
    start = time.perf_counter()
    filled, report = impute_table(table, method=method, seed=seed, gain=gain,
                                  progress=progress)
    write_table(filled, out, delimiter=delimiter)
    report["seconds"] = round(time.perf_counter() - start, 2)
    typer.echo(f"wrote {out}: {json.dumps(report)}", err=True)
