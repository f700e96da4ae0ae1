"""Evaluation end to end: sanity of FID on real data, the feature cache, ``ganforge eval``
and ``ganforge fid``, and periodic evaluation that keeps ``best.safetensors``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge as gf
from ganforge.data import load_source
from ganforge.errors import ConfigError
from ganforge.metrics.cache import cache_key, cache_path, cached_features
from ganforge.metrics.degrade import add_noise, blur
from ganforge.metrics.evaluate import bundle_samples, compare_sources, evaluate, parse_metrics
from ganforge.metrics.features import get_extractor
from ganforge.metrics.frechet import fid_from_features

from .conftest import run_cli, tiny_image_config


@pytest.fixture(scope="module")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    bundle = load_source("mnist", resolution=32, split="test")
    return bundle.data, bundle.labels


def test_fid_sanity_on_mnist(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Halves of the test set are close, a one-class set is far, and FID grows steadily
    with blur and with noise."""
    x, y = mnist_test
    feats = get_extractor("mnist").extract
    half_a, half_b = x[0::3], x[1::3]  # 3,334 and 3,333 images
    fa = feats(half_a).features
    halves = fid_from_features(fa, feats(half_b).features)
    ones = fid_from_features(fa, feats(x[y == 1]).features)
    assert halves < 1.0
    assert ones > 50 * halves
    blurs = [fid_from_features(fa, feats(blur(half_b, s)).features) for s in (0.6, 1.0, 1.5)]
    noises = [fid_from_features(fa, feats(add_noise(half_b, s)).features) for s in (20, 50, 90)]
    for curve in (blurs, noises):
        assert halves < curve[0] < curve[1] < curve[2], curve


def test_feature_cache_hits_and_rebuilds(tmp_path: Path) -> None:
    ext = get_extractor("digits")
    data = load_source("digits", resolution=32).data[:300]
    first, rec1 = cached_features(data, ext)
    again, rec2 = cached_features(data, ext)
    assert not rec1["hit"] and rec2["hit"] and rec1["key"] == rec2["key"]
    assert torch.equal(first.features, again.features)
    assert cache_key(data[:299], None, ext) != rec1["key"]
    assert cache_key(data, None, get_extractor("mnist")) != rec1["key"]
    meta = json.loads(__import__("safetensors").safe_open(
        str(cache_path(rec1["key"])), "pt").metadata()["provenance"])
    assert meta["sha256"] and meta["preprocessing"]
    cache_path(rec1["key"]).write_bytes(b"garbage")  # damaged entry: recomputed, not trusted
    third, rec3 = cached_features(data, ext)
    assert not rec3["hit"] and torch.equal(third.features, first.features)


def test_parse_metrics_errors() -> None:
    assert parse_metrics("fid, KID,fid") == ["fid", "kid"]
    with pytest.raises(ConfigError, match="Unknown metric 'fod'"):
        parse_metrics("fid,fod")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_image_config(out, steps=300, conditional=True, eval_every=150,
                            eval_n=300, eval_metric="fid", log_every=50)
    return gf.train(cfg).dir


def test_training_eval_keeps_best_and_fid_falls(conditional_run: Path) -> None:
    records = [json.loads(line) for line in (conditional_run / "metrics.jsonl").open()]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps))  # one record per step
    fids = [r["eval_fid"] for r in records if "eval_fid" in r]
    assert len(fids) == 2 and fids[-1] < fids[0]  # learning shows in the metric
    best = json.loads((conditional_run / "run.json").read_text())["best"]
    assert best["metric"] == "fid" and best["value"] == pytest.approx(min(fids), rel=1e-5)
    g = gf.load(conditional_run / "best.safetensors")
    assert g.info["best"]["step"] == best["step"]
    from ganforge.summary import describe

    assert describe(conditional_run)["best"]["value"] == best["value"]
    from ganforge.checkpoint import load_state
    from ganforge.train import rundir

    state, _ = load_state(rundir.checkpoints(conditional_run)[0][1])
    assert state["best"] == best  # resume keeps comparing against the best so far
    gf.resume(conditional_run, steps=450)
    records = [json.loads(line) for line in (conditional_run / "metrics.jsonl").open()]
    fids = [r["eval_fid"] for r in records if "eval_fid" in r]
    assert len(fids) == 3
    after = json.loads((conditional_run / "run.json").read_text())["best"]
    assert after["value"] == pytest.approx(min(fids), rel=1e-5)


def test_eval_all_metrics_on_conditional_generator(conditional_run: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = evaluate(conditional_run, metrics="fid,kid,is,pr,dc,cas,intra_fid", n=500,
                      features="digits", out=out, options=None)
    saved = json.loads(out.read_text())
    assert saved["metrics"] == pytest.approx(result["metrics"])
    values = result["metrics"]
    for key in ("fid", "kid_mean", "kid_std", "is_mean", "precision", "recall", "density",
                "coverage", "cas", "intra_fid"):
        assert math.isfinite(values[key]), key
    assert 1.0 < values["is_mean"] <= 10.0 and 0.0 <= values["cas"] <= 1.0
    meta = result["meta"]
    assert meta["features"] == "digits" and meta["feature_provenance"]["sha256"]
    assert meta["real"]["spec"] == "digits" and meta["fake"]["n"] == 500
    assert len(result["details"]["intra_fid_per_class"]) == 10


def test_cas_rewards_correct_labels_only() -> None:
    """CAS is high when the 'generated' set is real labelled data, chance when its labels
    are shuffled."""
    from ganforge.metrics.evaluate import Samples, _cas

    bundle = load_source("digits", resolution=32)
    train = Samples(bundle.data[:1000], bundle.labels[:1000])
    test = Samples(bundle.data[1000:], bundle.labels[1000:])
    assert _cas(test, train, epochs=6, seed=0) > 0.85
    shuffled = Samples(train.data, train.labels[torch.randperm(1000, generator=torch.Generator()
                                                                .manual_seed(0))])
    assert _cas(test, shuffled, epochs=6, seed=0) < 0.3


def test_metric_requirements_name_the_fix() -> None:
    from ganforge.metrics.evaluate import check_metrics

    ident = get_extractor("identity")
    with pytest.raises(ConfigError, match="Inception Score needs class logits"):
        check_metrics(["is"], "points", "ring", False, True, ident, 100, 100)
    with pytest.raises(ConfigError, match="needs class labels on the generated side"):
        check_metrics(["cas"], "points", "ring", False, True, ident, 100, 100)
    with pytest.raises(ConfigError, match="needs labelled real data"):
        check_metrics(["intra_fid"], "points", "ring", True, False, ident, 100, 100)
    with pytest.raises(ConfigError, match="read points; this data has images"):
        check_metrics(["fid"], "image", "digits", False, True, ident, 100, 100)
    check_metrics(["fid", "pr", "modes"], "points", "ring", False, True, ident, 100, 100)


def test_eval_cli_writes_json_and_errors(conditional_run: Path) -> None:
    proc = run_cli("eval", str(conditional_run), "--metrics", "fid,pr", "--n", "300",
                   "--features", "digits", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "fid" in proc.stdout and "precision" in proc.stdout
    files = list((conditional_run / "eval").glob("eval-step*-digits-fid+pr.json"))
    assert files and "fid" in json.loads(files[0].read_text())["metrics"]
    bad = run_cli("eval", str(conditional_run), "--metrics", "fidd", "--no-progress")
    assert bad.returncode == 2 and "Unknown metric 'fidd'" in bad.stderr
    bad = run_cli("eval", str(conditional_run), "--features", "vgg", "--n", "20",
                  "--no-progress")
    assert bad.returncode == 2 and "Unknown features 'vgg'" in bad.stderr


def _write_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im[0].numpy()).save(folder / f"{i:04d}.png")


def test_fid_between_folders_npz_and_sources(tmp_path: Path) -> None:
    x = load_source("digits", resolution=32).data
    _write_pngs(tmp_path / "a", x[:400])
    _write_pngs(tmp_path / "b", x[400:800])
    np.savez(tmp_path / "c.npz", x=x[:400].numpy())
    same = compare_sources(str(tmp_path / "a"), str(tmp_path / "c.npz"), features="digits")
    assert same["metrics"]["fid"] == pytest.approx(0.0, abs=1e-6)
    np.savez(tmp_path / "rgb.npz", x=x[:400].repeat(1, 3, 1, 1).numpy())
    mixed = compare_sources(str(tmp_path / "a"), str(tmp_path / "rgb.npz"), features="digits")
    assert mixed["meta"]["a"]["shape"] == [3, 32, 32]  # gray side brought to RGB in memory
    assert mixed["metrics"]["fid"] == pytest.approx(0.0, abs=1e-6)
    other = compare_sources(str(tmp_path / "a"), str(tmp_path / "b"), features="digits")
    assert other["metrics"]["fid"] > 1e-3
    proc = run_cli("fid", str(tmp_path / "a"), str(tmp_path / "b"), "--features", "digits",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    printed = float(proc.stdout.split("fid")[1].split()[0])
    assert printed == pytest.approx(other["metrics"]["fid"], rel=1e-4)


def test_bundle_subset_is_seeded() -> None:
    bundle = load_source("digits", resolution=16)
    a, b = bundle_samples(bundle, 100, seed=3), bundle_samples(bundle, 100, seed=3)
    assert torch.equal(a.data, b.data) and a.describe["n"] == 100
    assert not torch.equal(a.data, bundle_samples(bundle, 100, seed=4).data)


def test_standard_inception_end_to_end(tmp_path: Path) -> None:
    """`ganforge fid --features inception` runs the standard network on data sources and
    npz files and records the weights' provenance."""
    x = load_source("digits", resolution=32).data
    np.savez(tmp_path / "a.npz", x=x[:24].numpy())
    np.savez(tmp_path / "b.npz", x=x[24:48].numpy())
    out = tmp_path / "fid.json"
    proc = run_cli("fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--features",
                   "inception", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["metrics"]["fid"] > 0
    prov = result["meta"]["feature_provenance"]
    assert prov["extractor"] == "inception" and len(prov["sha256"]) == 64
    assert "299" in prov["preprocessing"]
    rgba = torch.randint(0, 256, (2, 4, 20, 20), dtype=torch.uint8)  # alpha composited
    assert get_extractor("inception").extract(rgba).features.shape == (2, 2048)


def test_incompatible_training_evaluation_fails_before_the_run_dir(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"eval_metric": "cas"}, "class-conditional"),
        ({"eval_metric": "modes_captured"}, "ring and grid"),
        ({"eval_features": "identity"}, "read points"),
        ({"eval_metric": "intra_fid", "eval_n": 10, "conditional": True},
         "at least 20 samples"),  # two per class
    ]
    for overrides, match in cases:
        with pytest.raises(ConfigError, match=match):
            gf.train(tiny_image_config(tmp_path, eval_every=10, **overrides))
    assert not any(tmp_path.iterdir())  # nothing was created


def test_too_few_samples_is_a_clear_cli_error(conditional_run: Path) -> None:
    proc = run_cli("eval", str(conditional_run), "--n", "3", "--metrics", "pr",
                   "--no-progress")
    assert proc.returncode == 2 and "needs at least 4 samples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kid_on_small_sets_uses_distinct_subsets() -> None:
    from ganforge.metrics.kid import kid

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g) + 0.2
    out = kid(a, b)  # fewer rows than the default subset size
    assert out["subset_size"] == 100 and out["kid_std"] > 1e-6


def test_resume_keeps_a_best_export_newer_than_the_checkpoint(tmp_path: Path) -> None:
    """A crash after best.safetensors was written but before the next checkpoint: the
    resumed run keeps that file's score as the one to beat."""
    from ganforge.checkpoint import save_generator
    from ganforge.train import rundir

    run = gf.train(tiny_image_config(tmp_path, steps=30, eval_every=10, eval_n=200,
                                     checkpoint_every=10))
    newest = rundir.checkpoints(run.dir)[0][1]
    newest.unlink()  # the state of step 30 never got written
    g = gf.load(run.dir / "best.safetensors")
    marker = {"metric": "fid", "value": -1.0, "step": 25, "features": "digits"}
    save_generator(run.dir / "best.safetensors", g.module, g.model, g.config,
                   {**g.info, "step": 25, "best": marker})
    gf.resume(run.dir)
    assert json.loads((run.dir / "run.json").read_text())["best"] == marker
    assert gf.load(run.dir / "best.safetensors").info["best"] == marker


def test_modes_of_a_standardized_grid_generator_are_measured_in_the_data_units(
        tmp_path: Path) -> None:
    """A generator trained with ``standardize`` samples in standardized units; ``modes``
    maps its samples back with the training statistics before measuring distances to the
    grid's modes, so standardized copies of real grid points score as real points do."""
    from ganforge.data.spec import standardize_points
    from ganforge.metrics.evaluate import Samples, _modes, prepare_real

    grid = load_source("grid", seed=0)
    real = bundle_samples(standardize_points(grid), 2500, seed=0)
    assert real.standardize is not None and real.describe["standardized"] is True
    stats = _modes(real, Samples(real.data))
    assert stats["modes_captured"] == 25 and stats["high_quality"] > 0.98
    assert stats["reverse_kl"] < 0.05
    # without the mapping the same points would sit in the wrong units
    raw = _modes(Samples(real.data, describe=real.describe), Samples(real.data))
    assert raw["modes_captured"] < 25 and raw["high_quality"] < 0.5
    # a standardized grid run gets modes by default and its real side carries the stats
    run = gf.train({"data": "grid", "model": "mlp", "steps": 2, "standardize": True},
                   out=str(tmp_path), progress=False, sample_every=0, checkpoint_every=0)
    side = prepare_real(run.dir, metrics="auto", n=500)
    assert "modes" in side.names and side.samples.standardize is not None
