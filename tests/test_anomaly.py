"""Anomaly detection: training on normal data only, discriminator and AnoGAN residual
scores, rows from CSV files, ``ganforge detect`` and its errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

import ganforge as gf
from ganforge.apps.anomaly import AnomalyDetector
from ganforge.apps.latent_search import SearchSettings
from ganforge.config import validate_config
from ganforge.data import load_source, source_short_name
from ganforge.errors import CheckpointError, ConfigError, DataError
from ganforge.metrics.evaluate import evaluate, prepare_real
from ganforge.train.run import load_data

from .conftest import run_cli, tiny_image_config

ANOMALY = 0  # the digit left out of training
ROW_SCALES = np.array([1.0, 10.0, 100.0, 0.1, 5.0, 1.0])  # standardization has work to do


def detect_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``ganforge detect ARGS`` in a fresh process."""
    return run_cli("detect", *args)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN trained on the digits without the zeros (~3 s on 2 cores)."""
    out = tmp_path_factory.mktemp("digits")
    return gf.train(tiny_image_config(out, steps=300, exclude_classes=[ANOMALY])).dir


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    bundle = load_source("digits", resolution=16)
    return bundle.batch(torch.arange(len(bundle)))


class Rows:
    """Rows near a 2-D plane in 6-D (columns on very different scales); anomalies lie
    ``offset`` off the plane (in the units of the plane's coordinates)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(self.rng.normal(size=(6, 6)))
        self.plane, self.normal = basis[:, :2], basis[:, 2:]

    def draw(self, n: int, offset: float = 0.0) -> np.ndarray:
        x = self.rng.normal(size=(n, 2)) @ self.plane.T + self.rng.normal(0, 0.02, (n, 6))
        if offset:
            w = self.rng.normal(size=(n, 4))
            x += offset * (w / np.linalg.norm(w, axis=1, keepdims=True)) @ self.normal.T
        return x * ROW_SCALES + 3.0


def _write_csv(path: Path, rows: np.ndarray, columns: str = "a,b,c,d,e,f") -> Path:
    np.savetxt(path, rows, delimiter=",", header=columns, comments="", fmt="%.6g")
    return path


@pytest.fixture(scope="module")
def rows_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Rows]:
    """An MLP GAN trained on 2,000 normal rows read from a CSV (~3 s on 2 cores)."""
    out = tmp_path_factory.mktemp("rows")
    rows = Rows()
    csv = _write_csv(out / "normal.csv", rows.draw(2000))
    # R1 keeps D smooth: without it D's score swung between 0.52 and 1.0 AUROC over seeds
    run = gf.train(data=f"csv:{csv}", model="mlp", standardize=True, steps=500, batch_size=128,
                   out=str(out), progress=False, sample_every=0, checkpoint_every=0,
                   g_optim={"lr": 1e-3}, d_optim={"lr": 1e-3}, r1_gamma=0.1,
                   model_options={"g_hidden": 64, "d_hidden": 64, "g_layers": 2,
                                  "d_layers": 2})
    return run.dir, rows


def _normal_and_anomalous(rows: Rows, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([rows.draw(n), rows.draw(n, offset=1.0)])
    return x, np.r_[np.zeros(n), np.ones(n)]


# ----------------------------------------------------------------------------- training data
def test_exclude_classes_removes_them_and_is_recorded(digits_run: Path,
                                                      digits: tuple) -> None:
    _, labels = digits
    cfg = yaml.safe_load((digits_run / "config.yaml").read_text())
    assert cfg["exclude_classes"] == [ANOMALY]
    data = json.loads((digits_run / "run.json").read_text())["data"]
    assert data["excluded_classes"] == [ANOMALY]
    assert data["n_excluded"] == int((labels == ANOMALY).sum()) > 0
    assert data["size"] == len(labels) - data["n_excluded"]
    kept = load_data(validate_config(cfg))
    assert ANOMALY not in kept.labels.tolist() and kept.num_classes == 10


@pytest.mark.parametrize(("options", "error", "needle"), [
    ({"data": "ring", "exclude_classes": [9]}, DataError, "does not contain"),
    ({"exclude_classes": [12]}, DataError, "does not contain"),
    ({"exclude_classes": list(range(10))}, DataError, "every class"),
    ({"exclude_classes": [-1]}, ConfigError, "non-negative"),
    ({"standardize": True}, DataError, "images"),
])
def test_bad_exclusion_or_scaling_is_refused(options: dict, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        load_data(validate_config({"resolution": 16, **options}))


def test_exclusion_needs_labels(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "r.csv", Rows().draw(50))
    with pytest.raises(DataError, match="needs labelled data"):
        load_data(validate_config({"data": f"csv:{csv}", "exclude_classes": [0]}))


def test_csv_source_reads_complete_numeric_rows(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4.5\n")
    bundle = load_source(f"csv:{csv}")
    assert bundle.kind == "points" and bundle.data.tolist() == [[1, 2], [3, 4.5]]
    assert bundle.info["columns"] == ["a", "b"] and source_short_name(f"csv:{csv}") == "t"
    csv.write_text("a,b\n1,2\n3,\n")
    with pytest.raises(DataError, match="missing cells"):
        load_source(f"csv:{csv}")
    csv.write_text("a,b\n1,x\n3,y\n")
    with pytest.raises(DataError, match="categorical"):
        load_source(f"csv:{csv}")
    with pytest.raises(DataError, match="did you mean 'csv:"):
        load_source(str(csv))


# ----------------------------------------------------------------------------- scores
def _auroc(normal: torch.Tensor, anomalous: torch.Tensor) -> float:
    target = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    return float(roc_auc_score(target, torch.cat([normal, anomalous]).numpy()))


def test_discriminator_scores_anomalies_higher(digits_run: Path, digits: tuple) -> None:
    x, labels = digits
    det = AnomalyDetector.from_run(digits_run)
    scores = det.score(x, method="discriminator")
    assert scores.shape == (len(x),) and torch.isfinite(scores).all()
    normal = scores[labels != ANOMALY]  # the training images; digits has no test split
    noise = torch.rand(300, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # measured over training seeds 0-2: left-out digit 0.69-0.92, noise and inverted 1.0
    assert _auroc(normal, scores[labels == ANOMALY]) > 0.6
    assert _auroc(normal, det.score(noise)) > 0.95
    assert _auroc(normal, det.score(-x[labels != ANOMALY][:300])) > 0.95
    assert det.info["discriminator_step"] == det.info["generator_step"] == 300
    as_uint8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(det.score(as_uint8), scores, atol=1e-4)


def test_residual_search_lowers_its_loss_and_is_seeded(digits_run: Path,
                                                       digits: tuple) -> None:
    x = digits[0][:24]
    det = AnomalyDetector.from_run(digits_run)
    settings = SearchSettings(steps=40, restarts=2, seed=3, batch_size=16)
    result = det.search(x, settings=settings)
    assert result.scores.shape == result.initial.shape == (24,)
    assert result.z.shape == (24, det.G.z_dim)
    assert (result.scores < result.initial).float().mean() > 0.9
    assert result.scores.mean() < 0.9 * result.initial.mean()  # measured 0.82
    again = det.score(x, method="residual", settings=settings)
    assert torch.equal(again, result.scores)
    other = det.score(x, method="residual", settings=settings.model_copy(update={"seed": 4}))
    assert not torch.equal(other, result.scores)
    # the score is the AnoGAN loss of the latents found
    with torch.no_grad():
        fake = det.G(result.z)
        fx, ff = det.D.features(x), det.D.features(fake)
    loss = 0.9 * (x - fake).abs().flatten(1).mean(1) + 0.1 * (fx - ff).abs().mean(1)
    assert torch.allclose(loss, result.scores, atol=1e-5)


def test_conditional_run_takes_the_most_normal_class(tmp_path: Path, digits: tuple) -> None:
    run = gf.train(tiny_image_config(tmp_path, steps=10, conditional=True)).dir
    det = AnomalyDetector.from_run(run)
    x = digits[0][:6]
    per_class = torch.stack([det.score(x, labels=[k] * 6) for k in range(10)])
    assert torch.allclose(det.score(x), per_class.min(0).values)
    settings = SearchSettings(steps=3)
    free = det.search(x, settings=settings)
    assert free.labels is not None and free.labels.shape == (6,)
    given = det.search(x, labels=free.labels, settings=settings)
    assert torch.allclose(given.scores, free.scores, atol=1e-5)


def test_rows_from_csv_both_scores_find_off_plane_rows(rows_run: tuple) -> None:
    run_dir, rows = rows_run
    det = AnomalyDetector.from_run(run_dir)
    assert det.info["columns"] == list("abcdef")
    trained = np.loadtxt(run_dir.parent / "normal.csv", delimiter=",", skiprows=1)
    assert np.allclose(det.scaler["mean"], trained.mean(0), rtol=1e-5)
    assert np.allclose(det.scaler["std"], trained.std(0), rtol=1e-5)
    x, y = _normal_and_anomalous(rows)
    d_auroc = roc_auc_score(y, det.score(x, method="discriminator").numpy())
    r_auroc = roc_auc_score(y, det.score(x, method="residual").numpy())
    assert d_auroc > 0.9, d_auroc  # measured 0.977-0.992 over training seeds 0-3
    assert r_auroc > 0.95, r_auroc  # measured 1.00 over training seeds 0-3
    # inputs are standardized with the training rows' statistics, not their own
    assert not torch.allclose(det.score(x[:10]), det.score(x[:10] * 2))


# ----------------------------------------------------------------------------- CLI
def test_cli_writes_one_score_per_row(rows_run: tuple, tmp_path: Path) -> None:
    run_dir, rows = rows_run
    x, y = _normal_and_anomalous(rows, n=50)
    csv = _write_csv(tmp_path / "test.csv", x)
    out = tmp_path / "scores.csv"
    proc = detect_cli(str(run_dir), "--input", str(csv), "--method", "residual", "--steps",
                      "50", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().splitlines()[0] == "index,score"
    assert table.shape == (100, 2) and (table[:, 0] == np.arange(100)).all()
    assert roc_auc_score(y, table[:, 1]) > 0.95


def test_cli_images_labels_subset_and_auroc(digits_run: Path) -> None:
    proc = detect_cli(str(digits_run), "--input", "digits", "--n", "300", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    out = digits_run / "detect" / "digits-discriminator.csv"
    lines = out.read_text().splitlines()
    assert lines[0] == "index,score,label" and len(lines) == 301
    index = [int(line.split(",")[0]) for line in lines[1:]]
    assert index == sorted(index) and len(set(index)) == 300 and max(index) < 1797
    assert "AUROC of the excluded classes [0]" in proc.stdout


def test_cli_bad_inputs_are_one_clear_error(digits_run: Path, rows_run: tuple,
                                            tmp_path: Path) -> None:
    proc = detect_cli(str(digits_run), "--input", "digits", "--method", "magic")
    _one_line_error(proc, "Unknown anomaly score 'magic'", "residual")
    missing = tmp_path / "missing.csv"
    missing.write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n1,,3,4,5,6\n")
    proc = detect_cli(str(rows_run[0]), "--input", str(missing))
    _one_line_error(proc, "missing cells", "data row 2")
    renamed = _write_csv(tmp_path / "renamed.csv", rows_run[1].draw(5), "a,b,c,d,e,g")
    proc = detect_cli(str(rows_run[0]), "--input", str(renamed))
    _one_line_error(proc, "same columns")
    proc = detect_cli(str(rows_run[0]), "--input", "digits")
    _one_line_error(proc, "holds image")


# ----------------------------------------------------------------------------- errors
def test_run_without_discriminator_state_is_refused(digits_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(digits_run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(CheckpointError, match="no training state"):
        AnomalyDetector.from_run(copy)
    with pytest.raises(CheckpointError, match="not a ganforge run"):
        AnomalyDetector.from_run(tmp_path)


def test_wrong_inputs_are_clear_errors(digits_run: Path) -> None:
    det = AnomalyDetector.from_run(digits_run)
    with pytest.raises(DataError, match=r"\(N, 1, 16, 16\)"):
        det.score(torch.zeros(4, 1, 32, 32))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        det.score(torch.full((2, 1, 16, 16), 3.0))
    with pytest.raises(DataError, match="NaN"):
        det.score(torch.full((2, 1, 16, 16), float("nan")))
    with pytest.raises(ConfigError, match="Unknown anomaly score"):
        det.score(torch.zeros(2, 1, 16, 16), method="energy")
    with pytest.raises(ConfigError, match="unconditional"):
        det.score(torch.zeros(2, 1, 16, 16), labels=[0, 1])


# ----------------------------------------------------------------------------- evaluating such runs
def test_evaluation_leaves_out_the_excluded_classes_of_the_training_source(
        digits_run: Path, digits: tuple) -> None:
    """By default a run is scored against the data it was trained to model: the source
    without the excluded classes; a real source named explicitly is taken whole."""
    _, labels = digits
    default = prepare_real(digits_run, metrics="fid", n=5000, features="digits")
    assert default.samples.describe["excluded_classes"] == [ANOMALY]
    assert ANOMALY not in default.samples.labels.tolist()
    assert len(default.samples.data) == int((labels != ANOMALY).sum())
    named = prepare_real(digits_run, real="digits", metrics="fid", n=5000, features="digits")
    assert len(named.samples.data) == len(labels)


def test_evaluation_of_a_standardized_run_compares_in_its_units(
        rows_run: tuple[Path, Rows]) -> None:
    """The real rows are standardized with the training statistics, so a generator that
    learned the standardized rows scores as close, not as far off as raw units are."""
    run_dir, _ = rows_run
    result = evaluate(run_dir, metrics="fid", n=2000, features="identity")
    assert result["meta"]["real"]["standardized"] is True
    real = prepare_real(run_dir, metrics="fid", n=2000, features="identity").samples.data
    assert real.mean(0).abs().max() < 0.1 and (real.std(0) - 1).abs().max() < 0.1
    assert result["metrics"]["fid"] < 0.5, result["metrics"]
    with pytest.raises(ConfigError, match="ring and grid"):
        prepare_real(run_dir, metrics="modes", n=2000)


def test_samples_of_a_standardized_run_come_back_in_the_data_units(
        rows_run: tuple[Path, Rows], tmp_path: Path) -> None:
    """``units="data"`` (and ``ganforge sample`` by default) maps standardized rows back
    with the training statistics, so columns 0.1 and 100 wide come out at their scale."""
    run_dir, rows = rows_run
    g = gf.load(run_dir)
    assert g.standardization is not None
    model = g.sample(2000, seed=0).numpy()
    data = g.sample(2000, seed=0, units="data").numpy()
    raw = rows.draw(2000)
    assert np.abs(model.mean(0)).max() < 0.3 and np.abs(model.std(0) - 1).max() < 0.3
    assert np.all(np.abs(data.mean(0) - raw.mean(0)) < 0.3 * raw.std(0))
    ratio = data.std(0) / raw.std(0)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    with pytest.raises(ConfigError, match="'model' or 'data'"):
        g.sample(4, units="raw")  # type: ignore[arg-type]
    out = tmp_path / "rows.npz"
    run_cli("sample", str(run_dir), "--n", "300", "--out", str(out), check=True)
    np.testing.assert_allclose(np.load(out)["x"], g.sample(300, seed=0, units="data"),
                               rtol=1e-5, atol=1e-5)
    run_cli("sample", str(run_dir), "--n", "300", "--out", str(out), "--units", "model",
            check=True)
    np.testing.assert_allclose(np.load(out)["x"], g.sample(300, seed=0), rtol=1e-5,
                               atol=1e-5)
