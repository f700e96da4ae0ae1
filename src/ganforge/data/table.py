"""CSV tables with missing cells: strict reading, column kinds, exact write-back.

Every cell's text is kept as read, so a table written back after imputation changes
only the cells that were missing. Missing cells are empty (after trimming spaces) or
``NaN`` in any letter case; more markers can be passed as ``missing_tokens``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ganforge.checkpoint import atomic_write_text
from ganforge.errors import DataError

ColumnKind = Literal["numeric", "categorical"]
DEFAULT_MISSING = ("", "nan")


@dataclass
class Table:
    """A CSV read into memory: header, raw cell text, missing mask and column kinds."""

    path: Path | None
    columns: list[str]
    cells: list[list[str]]
    missing: np.ndarray  # bool (rows, columns)
    kinds: list[ColumnKind]
    integer: list[bool]  # numeric columns whose observed cells are all whole numbers

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.cells), len(self.columns)

    def numeric_column(self, j: int) -> np.ndarray:
        """Column ``j`` as float64, NaN where missing (numeric columns only)."""
        if self.kinds[j] != "numeric":
            raise DataError(f"column {self.columns[j]!r} is categorical, not numeric.")
        out = np.full(len(self.cells), np.nan)
        for i, row in enumerate(self.cells):
            if not self.missing[i, j]:
                out[i] = float(row[j])
        return out

    def categories(self, j: int) -> list[str]:
        """Sorted distinct observed values of categorical column ``j`` (trimmed)."""
        return sorted({row[j].strip() for i, row in enumerate(self.cells)
                       if not self.missing[i, j]})

    def to_numeric(self) -> np.ndarray:
        """The whole table as float64 (rows, columns), NaN where missing.

        Raises DataError when a column is categorical: encode it first (imputation does
        this with one-hot groups) or drop it.
        """
        cats = [c for c, k in zip(self.columns, self.kinds, strict=True) if k == "categorical"]
        if cats:
            raise DataError(f"{self._where()}has categorical (text) columns {cats}; this "
                            "operation needs numbers only. Drop or encode those columns.")
        if not self.columns:
            return np.zeros((len(self.cells), 0))
        return np.stack([self.numeric_column(j) for j in range(len(self.columns))], axis=1)

    def with_values(self, filled: dict[tuple[int, int], str]) -> Table:
        """A copy whose missing cells ``(row, column)`` get the given text."""
        cells = [list(row) for row in self.cells]
        missing = self.missing.copy()
        for (i, j), text in filled.items():
            if not self.missing[i, j]:
                raise ValueError(f"cell ({i}, {j}) is observed; it must not be overwritten")
            cells[i][j] = text
            missing[i, j] = False
        return Table(self.path, list(self.columns), cells, missing, list(self.kinds),
                     list(self.integer))

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""


def _is_missing(text: str, tokens: frozenset[str]) -> bool:
    return text.strip().lower() in tokens


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(path: Path, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file. Pass the path of a CSV file with a header row.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save the "
                        "file as UTF-8 CSV.") from None
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err}); check the quoting around line "
                        f"{reader.line_num}.") from None
    if not rows:
        raise DataError(f"{path}: the file is empty; a CSV with a header row is expected.")
    return rows[0], rows[1:], lines[1:]


def _check_header(path: Path, header: list[str]) -> list[str]:
    """Return the header as written; names are compared without surrounding spaces."""
    names = [h.strip() for h in header]
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise DataError(f"{path}: header column(s) {blank} have no name; the first row must "
                        "name every column.")
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dups:
        raise DataError(f"{path}: duplicate column name(s) {dups} in the header; rename them "
                        "so every column name is unique.")
    return list(header)


def _check_ragged(path: Path, width: int, rows: list[list[str]], lines: list[int]) -> None:
    bad = [(ln, len(r)) for r, ln in zip(rows, lines, strict=True) if len(r) != width]
    if bad:
        ln, n = bad[0]
        more = f" ({len(bad) - 1} more such rows)" if len(bad) > 1 else ""
        raise DataError(f"{path}: line {ln} has {n} fields but the header has {width}{more}. "
                        "Every row needs one field per column; write missing values as empty "
                        "fields (e.g. '1,,3').")


def _column_kind(path: Path, name: str, texts: list[str], lines: list[int],
                 declared_categorical: bool) -> tuple[ColumnKind, bool]:
    if not texts:
        raise DataError(f"{path}: column {name!r} has no observed value (every cell is "
                        "missing), so nothing can be learned or imputed for it. Drop the "
                        "column or supply some values.")
    if declared_categorical:
        return "categorical", False
    parsed = [_parse_number(t) for t in texts]
    bad = [i for i, v in enumerate(parsed) if v is None]
    if len(bad) == len(texts):
        return "categorical", False  # all text: a categorical column
    if bad:
        i = bad[0]
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise DataError(f"{path}: column {name!r} is numeric but line {lines[i]} holds "
                        f"{texts[i]!r}{more}, which is not a finite number. Fix the cell, "
                        "leave it empty (or NaN) if it is missing, or declare the column "
                        f"categorical (--categorical {name!r}).")
    integer = all(float(v).is_integer() for v in parsed)  # type: ignore[arg-type]
    integer = integer and not any(("." in t or "e" in t.lower()) for t in texts)
    return "numeric", integer


def read_table(path: str | Path, *, categorical: Iterable[str] = (),
               missing_tokens: Sequence[str] = (), delimiter: str = ",") -> Table:
    """Read a CSV with a header row; raise DataError naming any malformed line or column.

    A column is categorical if named in ``categorical`` or if none of its observed cells
    is a number; a column mixing numbers and other text is an error.
    """
    path = Path(path).expanduser()
    header, rows, lines = _read_rows(path, delimiter)
    columns = _check_header(path, header)
    _check_ragged(path, len(columns), rows, lines)
    declared = {c.strip() for c in categorical}
    unknown = sorted(declared - {c.strip() for c in columns})
    if unknown:
        raise DataError(f"{path}: --categorical names {unknown}, which are not columns; the "
                        f"columns are {columns}.")
    tokens = frozenset(t.strip().lower() for t in (*DEFAULT_MISSING, *missing_tokens))
    missing = np.array([[_is_missing(c, tokens) for c in r] for r in rows], dtype=bool)
    missing = missing.reshape(len(rows), len(columns))
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows.")
    kinds: list[ColumnKind] = []
    integer: list[bool] = []
    for j, name in enumerate(columns):
        obs = [i for i in range(len(rows)) if not missing[i, j]]
        kind, whole = _column_kind(path, name, [rows[i][j].strip() for i in obs],
                                   [lines[i] for i in obs], name.strip() in declared)
        kinds.append(kind)
        integer.append(whole)
    return Table(path, columns, rows, missing, kinds, integer)


def write_table(table: Table, path: str | Path, delimiter: str = ",") -> None:
    """Write header and cells atomically; cell text is written exactly as stored."""
    import io

    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.cells)
    atomic_write_text(path, buf.getvalue())
