"""GAIN imputation, its baselines, missingness generators and the CSV round trip."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ganforge.apps.imputation import (
    GAIN,
    GAINConfig,
    MinMax,
    impute_table,
    make_imputer,
    mar_mask,
    mcar_mask,
)
from ganforge.data.table import read_table
from ganforge.errors import ConfigError, DataError
from tests.conftest import run_cli


def low_rank_data(n: int = 600, d: int = 8, seed: int = 0) -> np.ndarray:
    """Columns that are noisy mixtures of two hidden factors (predictable from each other)."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, 2))
    return factors @ rng.standard_normal((2, d)) + 0.05 * rng.standard_normal((n, d))


def rmse_on_missing(method: str, x: np.ndarray, observed: np.ndarray, **kw: object) -> float:
    scaled = MinMax.fit(x).scale(x)
    holes = np.where(observed, scaled, np.nan)
    imputer = make_imputer(method, seed=0, **kw)  # type: ignore[arg-type]
    filled = imputer.fit(holes).transform(holes)
    assert np.array_equal(filled[observed], scaled[observed])  # observed entries untouched
    return float(np.sqrt(np.mean((filled[~observed] - scaled[~observed]) ** 2)))


def test_gain_learns_the_column_structure() -> None:
    x = low_rank_data()
    observed = mcar_mask(x.shape, 0.2, seed=1)
    gain = rmse_on_missing("gain", x, observed, gain=GAINConfig(iterations=1500, seed=0))
    mean = rmse_on_missing("mean", x, observed)
    assert gain < 0.5 * mean, (gain, mean)


def test_gain_is_reproducible_and_logs_its_losses() -> None:
    x = MinMax.fit(low_rank_data(200)).scale(low_rank_data(200))
    holes = np.where(mcar_mask(x.shape, 0.3, seed=2), x, np.nan)
    runs = [GAIN(GAINConfig(iterations=200, seed=5)).fit(holes) for _ in range(2)]
    assert np.array_equal(runs[0].transform(holes), runs[1].transform(holes))
    history = runs[0].history
    assert history[-1]["mse_observed"] < history[0]["mse_observed"]
    with pytest.raises(DataError, match="fitted on 8 columns"):
        runs[0].transform(holes[:, :3])


def test_mcar_and_mar_masks_hit_the_rate_and_mar_depends_on_observed_columns() -> None:
    x = low_rank_data(4000)
    mcar = mcar_mask(x.shape, 0.2, seed=0)
    mar = mar_mask(x, 0.2, seed=0)
    assert abs((~mcar).mean() - 0.2) < 0.01 and abs((~mar).mean() - 0.2) < 0.01
    always = np.nonzero(mar.all(axis=0))[0]
    assert 1 <= len(always) < x.shape[1]

    def strongest_link(mask: np.ndarray) -> float:
        drivers = x[:, always]
        cols = [j for j in range(x.shape[1]) if j not in always]
        return max(abs(np.corrcoef(drivers[:, k], ~mask[:, j])[0, 1])
                   for j in cols for k in range(len(always)))

    assert strongest_link(mar) > 0.2 > 0.05 > strongest_link(mcar)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        mcar_mask((3, 3), 1.5, seed=0)


TRICKY = [  # header with spaces, quoted commas, odd number formats, missing markers
    ["id", " size ", "colour", "note", "count"],
    ["1", "1.50", "red", "a, b", "3"],
    ["2", "", "blue", "x", "NaN"],
    ["3", "1e3", "", "y", "7"],
    ["4", " 2 ", "red", "", ""],
    ["5", "nan", "blue", "z", "11"],
    ["6", "0.125", "red", "w", "2"],
]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", ["gain", "mean", "mice", "missforest"])
def test_observed_cells_survive_imputation_exactly(tmp_path: Path, method: str) -> None:
    table = read_table(write_csv(tmp_path / "in.csv", TRICKY))
    assert table.kinds == ["numeric", "numeric", "categorical", "categorical", "numeric"]
    filled, report = impute_table(table, method=method, gain=GAINConfig(iterations=50))
    assert report["missing_cells"] == 6 and filled.columns == TRICKY[0]
    for i, row in enumerate(TRICKY[1:]):
        for j, text in enumerate(row):
            if not table.missing[i, j]:
                assert filled.cells[i][j] == text  # byte for byte, spaces included
    assert filled.cells[2][2] in {"red", "blue"} and filled.cells[3][3] in {"a, b", "x", "y",
                                                                          "z", "w"}
    sizes = [float(filled.cells[i][1]) for i in (1, 4)]
    assert all(0.125 <= s <= 1000 for s in sizes)
    counts = [filled.cells[i][4] for i in (1, 3)]
    assert all(c.isdigit() and 2 <= int(c) <= 11 for c in counts)  # whole-number column


def test_categorical_column_is_imputed_from_the_others(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    value = rng.random(400)
    rows = [["value", "level"]] + [[f"{v:.4f}", "high" if v > 0.5 else "low"] for v in value]
    hide = rng.random(400) < 0.25
    for i in np.nonzero(hide)[0]:
        rows[i + 1][1] = ""
    table = read_table(write_csv(tmp_path / "levels.csv", rows))
    filled, _ = impute_table(table, method="gain", gain=GAINConfig(iterations=1500, seed=0))
    truth = np.where(value > 0.5, "high", "low")[hide]
    got = np.array([filled.cells[i][1] for i in np.nonzero(hide)[0]])
    majority = max(np.mean(truth == "high"), np.mean(truth == "low"))
    assert np.mean(got == truth) > max(0.85, majority + 0.2)


@pytest.mark.parametrize(("text", "message"), [
    ("a,b\n1,2\n3\n4,5\n", "line 3 has 1 fields but the header has 2"),
    ("a,b\n1,2\n3,4,5\n", "line 3 has 3 fields"),
    ("a,b\n1,2\n3,abc\n4,5\n", "column 'b' is numeric but line 3 holds 'abc'"),
    ("a,b\n1,\n3,NaN\n", "column 'b' has no observed value"),
    ("", "the file is empty"),
    ("a,b\n", "no data rows"),
    ("a,a\n1,2\n", "duplicate column name"),
    ("a,,c\n1,2,3\n", "have no name"),
    ("a,b\n1,inf\n2,3\n", "not a finite number"),
])
def test_malformed_csv_gets_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_cli_imputes_and_refuses_bad_input_without_writing(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", TRICKY)
    out = tmp_path / "out.csv"
    proc = run_cli("impute", str(src), "--out", str(out), "--iterations", "100",
                   "--no-progress", "--missing", "?")
    assert proc.returncode == 0, proc.stderr
    assert "6 missing cells" in proc.stderr
    rows = read_rows(out)
    assert rows[0] == TRICKY[0] and len(rows) == len(TRICKY)
    assert [r[0] for r in rows] == [r[0] for r in TRICKY]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    bad_out = tmp_path / "never.csv"
    proc = run_cli("impute", str(ragged), "--out", str(bad_out))
    assert proc.returncode == 2 and "line 3 has 1 fields" in proc.stderr
    assert "Traceback" not in proc.stderr and not bad_out.exists()
    proc = run_cli("impute", str(src), "--out", str(src))
    assert proc.returncode == 2 and "is the input file" in proc.stderr
    assert read_rows(src) == TRICKY
    proc = run_cli("impute", str(src), "--out", str(out), "--method", "knn")
    assert proc.returncode == 2 and "unknown" in proc.stderr
