"""Impute a CSV table: encode columns, run a method, write back only missing cells.

Numeric columns are min-max scaled on their observed values. A categorical column
becomes a one-hot group (all entries missing where the cell is missing); the imputed
category is the group's largest entry. Imputed numbers are clipped to the column's
observed range, and whole-number columns get whole numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ganforge.apps.imputation.gain import GAINConfig
from ganforge.apps.imputation.methods import make_imputer
from ganforge.apps.imputation.scaling import MinMax
from ganforge.data.table import Table


@dataclass
class Layout:
    """Where each table column lives in the encoded matrix."""

    slices: list[slice]
    categories: list[list[str] | None]


def encode(table: Table) -> tuple[np.ndarray, Layout]:
    """The table as float64 (rows, encoded columns) with NaN for missing entries."""
    blocks, slices, categories, start = [], [], [], 0
    for j, kind in enumerate(table.kinds):
        if kind == "numeric":
            block = table.numeric_column(j)[:, None]
            categories.append(None)
        else:
            cats = table.categories(j)
            index = {c: k for k, c in enumerate(cats)}
            block = np.zeros((table.shape[0], len(cats)))
            for i, row in enumerate(table.cells):
                if table.missing[i, j]:
                    block[i] = np.nan
                else:
                    block[i, index[row[j].strip()]] = 1.0
            categories.append(cats)
        blocks.append(block)
        slices.append(slice(start, start + block.shape[1]))
        start += block.shape[1]
    return np.concatenate(blocks, axis=1), Layout(slices, categories)


def format_number(value: float, whole: bool) -> str:
    """Text of an imputed number: an integer for whole-number columns, else 10 digits."""
    if whole:
        return str(round(value))
    text = format(value, ".10g")
    return "0" if text == "-0" else text


def decode_cells(table: Table, filled: np.ndarray, layout: Layout,
                 low: np.ndarray, high: np.ndarray) -> dict[tuple[int, int], str]:
    """Text for every missing cell from the imputed (unscaled) encoded matrix."""
    out: dict[tuple[int, int], str] = {}
    rows, cols = np.nonzero(table.missing)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        part = filled[i, layout.slices[j]]
        cats = layout.categories[j]
        if cats is None:
            col = layout.slices[j].start
            value = float(np.clip(part[0], low[col], high[col]))
            out[(i, j)] = format_number(value, table.integer[j])
        else:
            out[(i, j)] = cats[int(np.argmax(part))]
    return out


def impute_table(table: Table, method: str = "gain", seed: int = 0,
                 gain: GAINConfig | None = None, progress: bool = False
                 ) -> tuple[Table, dict[str, Any]]:
    """Fill the missing cells of ``table`` with ``method``; observed text is untouched."""
    x, layout = encode(table)
    scaler = MinMax.fit(x)
    imputer = make_imputer(method, seed=seed, progress=progress, gain=gain)
    scaled = scaler.scale(x)
    imputer.fit(scaled)
    filled = scaler.unscale(imputer.transform(scaled))
    low, high = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    cells = decode_cells(table, filled, layout, low, high)
    report = {"method": method, "rows": table.shape[0], "columns": table.shape[1],
              "missing_cells": len(cells),
              "categorical": [c for c, k in zip(table.columns, table.kinds, strict=True)
                              if k == "categorical"]}
    return table.with_values(cells), report
