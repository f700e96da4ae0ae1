"""InfoGAN: the latent prior, the Q head's code recovery, the paper's MNIST networks,
traversals, code accuracy, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganforge as gf
from ganforge.checkpoint import save_generator
from ganforge.config import InfoGANLossConfig, validate_config
from ganforge.errors import ConfigError
from ganforge.latent import code_traversal, code_traversals
from ganforge.metrics.code_accuracy import best_assignment, code_accuracy
from ganforge.models.infogan import LOG_STD_RANGE, InfoGANGenerator
from ganforge.registry import get_model
from ganforge.train.infogan import info_loss

from .conftest import run_cli, tiny_image_config

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"g_width": 16, "d_width": 16, "noise_dim": 16, "q_width": 32, "categorical": [10],
        "continuous": 2}


def tiny_infogan(out: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"model": "infogan", "recipe": "infogan",
                                "model_options": dict(TINY), **overrides}
    return tiny_image_config(out, **settings)


def build(**options: Any) -> InfoGANGenerator:
    spec = get_model("infogan")
    return spec.build_generator(spec.make_config({"resolution": 16, **TINY, **options}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> gf.Run:
    out = tmp_path_factory.mktemp("infogan")
    return gf.train(tiny_infogan(out, steps=240, batch_size=64, log_every=20))


# ---------------------------------------------------------------- the latent prior
def test_sample_latents_layout() -> None:
    G = build(categorical=[10, 3], continuous=2)
    assert G.z_dim == 16 + 13 + 2
    z = G.sample_latents(4000, generator=torch.Generator().manual_seed(0))
    noise, cats, cont = G.split_latents(z)
    assert noise.shape == (4000, 16) and [c.shape[1] for c in cats] == [10, 3]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    for block in cats:
        assert set(block.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(block.sum(1), torch.ones(4000))
        freq = block.mean(0)  # uniform over the values
        assert (freq - 1 / block.shape[1]).abs().max() < 0.03
    assert cont.shape == (4000, 2) and cont.min() >= -1 and cont.max() <= 1
    assert cont.min() < -0.95 and cont.max() > 0.95
    idx = torch.stack([c.argmax(1) for c in cats], 1)
    assert torch.equal(G.make_latents(noise, idx, cont), z)


def test_export_load_round_trip_samples_identically(tmp_path: Path) -> None:
    torch.manual_seed(1)
    G = build(categorical=[4], continuous=1).eval()
    spec = get_model("infogan")
    cfg = spec.make_config({"resolution": 16, **TINY, "categorical": [4], "continuous": 1})
    save_generator(tmp_path / "g.safetensors", G, "infogan", cfg.model_dump(mode="json"))
    loaded = gf.load(tmp_path / "g.safetensors")
    assert isinstance(loaded.module, InfoGANGenerator)
    with torch.no_grad():
        expected = G(G.sample_latents(6, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(loaded.sample(6, seed=3), expected)
    assert loaded.module.codes == G.codes


def test_uniform_noise_prior_and_its_truncation() -> None:
    """U(-1, 1) noise (the authors' code): truncation t < 1 gives U(-t, t) from the same
    draws, t >= 1 changes nothing; the codes keep their values either way."""
    G = build(noise_prior="uniform")
    z = G.sample_latents(4000, generator=torch.Generator().manual_seed(0))
    noise, _, _ = G.split_latents(z)
    assert noise.min() >= -1 and noise.max() <= 1 and noise.min() < -0.99
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1 / math.sqrt(3)) < 0.02
    half = G.sample_latents(4000, generator=torch.Generator().manual_seed(0), truncation=0.5)
    assert torch.allclose(half[:, :16], noise * 0.5)
    assert torch.equal(half[:, 16:], z[:, 16:])
    wide = G.sample_latents(4000, generator=torch.Generator().manual_seed(0), truncation=2.0)
    assert torch.equal(wide, z)


# ---------------------------------------------------------------- the paper's MNIST networks
def test_mnist_networks_follow_the_paper() -> None:
    """infogan-mnist defaults to the authors' MNIST setting and has the paper's layers."""
    spec = get_model("infogan-mnist")
    cfg = spec.make_config({})
    assert (cfg.resolution, cfg.noise_dim, cfg.noise_prior, cfg.q_std) == (28, 62, "uniform",
                                                                           "fixed")
    G, D = spec.build_generator(cfg), spec.build_discriminator(cfg)
    linears = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(74, 1024), (1024, 6272)]
    d_linear = [m for m in D.features.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in d_linear] == [(6272, 1024)]
    assert D.q[0].in_features == 1024 and D.q[-1].out_features == 10 + 2
    with torch.no_grad():
        x = G(G.sample_latents(5, generator=torch.Generator().manual_seed(0)))
        logits, q = D.judge(x)
    assert x.shape == (5, 1, 28, 28)
    assert logits.shape == (5,) and q.cat_logits[0].shape == (5, 10)
    assert torch.equal(q.cont_log_std, torch.zeros(5, 2))
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    assert sum(isinstance(m, norms) for m in D.modules()) == 3  # conv 128, FC 1024, Q
    plain = spec.build_discriminator(spec.make_config({"d_norm": "none"}))
    assert not any(isinstance(m, norms) for m in plain.modules())
    with pytest.raises(ConfigError, match="multiple of 4"):
        spec.make_config({"resolution": 30})


def test_mnist_networks_drop_batch_norm_under_gradient_penalties(tmp_path: Path) -> None:
    run = gf.train(tiny_image_config(tmp_path, model="infogan-mnist", recipe="infogan",
                                     loss="wgan-gp", steps=2,
                                     model_options={"noise_dim": 16, "q_width": 32}))
    assert run.config.model_options["d_norm"] == "none"


def test_runs_default_to_the_models_own_image_side(tmp_path: Path) -> None:
    """Without --resolution, infogan-mnist trains at its 28 px; other models at 32; an
    explicit side wins, and model_options.resolution no longer contradicts the default."""
    assert validate_config({"model": "infogan-mnist"}).resolution == 28
    assert validate_config({"model": "dcgan"}).resolution == 32
    assert validate_config({"model": "infogan-mnist", "resolution": 16}).resolution == 16
    assert validate_config({"model": "dcgan",
                            "model_options": {"resolution": 16}}).resolution == 16
    cfg = tiny_image_config(tmp_path, model="infogan-mnist", recipe="infogan", steps=2,
                            model_options={"noise_dim": 16, "q_width": 32})
    del cfg["resolution"]
    run = gf.train(cfg)
    assert run.config.resolution == 28 and run.config.model_options["resolution"] == 28
    assert run.load_generator().sample(2, seed=0).shape == (2, 1, 28, 28)


def test_mnist_networks_learn_their_codes(tmp_path: Path) -> None:
    """A short infogan-mnist run on the 16 px digits: Q learns to read the categorical
    code, and the exported generator reloads with its codes and samples identically."""
    run = gf.train(tiny_image_config(
        tmp_path, model="infogan-mnist", recipe="infogan", steps=150, batch_size=64,
        log_every=15, model_options={"noise_dim": 16, "q_width": 32}))
    logs = [m for m in run.metrics if "q_cat_acc" in m]
    assert logs[-1]["q_cat_acc"] > 0.6 and logs[-1]["q_cat_acc"] > logs[0]["q_cat_acc"] + 0.2
    assert logs[-1]["info_cat"] < logs[0]["info_cat"] - 0.5
    loaded = gf.load(run.dir / "generator.safetensors")
    G = run.load_generator()
    assert loaded.module.codes == G.module.codes and G.module.codes.noise_prior == "uniform"
    assert torch.equal(loaded.sample(4, seed=2), G.sample(4, seed=2))
    result = code_accuracy(loaded, n_per_value=10, classifier="digits")
    assert [sum(row) for row in result.confusion] == [10] * 10
    assert len(set(result.assignment.values())) == 10  # one-to-one


# ---------------------------------------------------------------- the information loss
@pytest.mark.parametrize("q_std", ["fixed", "learned"])
def test_info_loss_is_cross_entropy_plus_gaussian_nll(q_std: str) -> None:
    """Fixed std: the continuous NLL is half the squared error (std 1); learned: Q also
    predicts a log-std, clamped to LOG_STD_RANGE, that scales the error."""
    spec = get_model("infogan")
    cfg = spec.make_config({"resolution": 16, **TINY, "q_std": q_std})
    D = spec.build_discriminator(cfg)
    n_out = 10 + 2 * (2 if q_std == "learned" else 1)
    assert D.q[-1].out_features == n_out
    raw = torch.randn(8, n_out, generator=torch.Generator().manual_seed(0)) * 4
    q = D.q_outputs(raw)
    z = D.codes.sample(8, generator=torch.Generator().manual_seed(1))
    _, (onehot,), cont = D.codes.split(z)
    mean = raw[:, 10:12]
    log_std = raw[:, 12:].clamp(*LOG_STD_RANGE) if q_std == "learned" else torch.zeros(8, 2)
    assert torch.equal(q.cont_mean, mean) and torch.equal(q.cont_log_std, log_std)
    if q_std == "learned":
        assert q.cont_log_std.min() == LOG_STD_RANGE[0] and q.cont_log_std.max() == LOG_STD_RANGE[1]
    weights = InfoGANLossConfig(categorical_weight=0.5, continuous_weight=0.2)
    loss, parts = info_loss(q, z, D.codes, weights)
    ce = F.cross_entropy(raw[:, :10], onehot.argmax(1))
    var = torch.exp(2 * log_std)
    nll = (0.5 * (cont - mean).square() / var + 0.5 * torch.log(2 * math.pi * var)).sum(1).mean()
    assert parts["info_cat"] == pytest.approx(ce.item(), rel=1e-5)
    assert parts["info_cont"] == pytest.approx(nll.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * ce.item() + 0.2 * nll.item(), rel=1e-5)
    assert parts["q_cont_mse"] == pytest.approx((cont - mean).square().mean().item(), rel=1e-5)


# ---------------------------------------------------------------- training
def test_q_recovers_its_categorical_code(trained: gf.Run) -> None:
    logs = [m for m in trained.metrics if "q_cat_acc" in m]
    first, last = logs[0], logs[-1]
    assert last["q_cat_acc"] > 0.6 > 1 / 10  # chance is 0.1
    assert last["q_cat_acc"] > first["q_cat_acc"] + 0.2
    assert last["info_cat"] < first["info_cat"] - 0.5
    assert all(np.isfinite(m["info_loss"]) and np.isfinite(m["info_loss_g"]) for m in logs)


def test_code_accuracy_on_trained_generator(trained: gf.Run) -> None:
    result = code_accuracy(trained.load_generator(), "cat0", n_per_value=30,
                           classifier="digits")
    assert 0.0 <= result.accuracy <= 1.0
    assert [sum(row) for row in result.confusion] == [30] * 10
    assert sorted(result.assignment) == list(range(10))
    assert len(set(result.assignment.values())) == 10  # one-to-one


def test_best_assignment_finds_the_permutation() -> None:
    perm = [3, 0, 1, 2]
    confusion = np.full((4, 4), 2)
    for row, col in enumerate(perm):
        confusion[row, col] = 20
    acc, mapping = best_assignment(confusion)
    assert mapping == dict(enumerate(perm))
    assert acc == pytest.approx(80 / (80 + 24))


# ---------------------------------------------------------------- traversals
def test_traversal_grid(trained: gf.Run) -> None:
    G = trained.load_generator()
    grid = code_traversal(G, "cat0", rows=3, seed=1)
    assert grid.shape == (3, 10, 1, 16, 16)
    assert grid.min() >= -1 and grid.max() <= 1
    for row in grid:  # every column (code value) changes the image of its row
        diffs = (row[1:] - row[0]).abs().flatten(1).mean(1)
        assert (diffs > 0.01).all(), diffs
    cont = code_traversal(G, "cont1", steps=5, rows=2, span=(-1, 1))
    assert cont.shape == (2, 5, 1, 16, 16)
    assert torch.equal(code_traversal(G, "cont1", steps=5, rows=2, span=(-1, 1)), cont)
    assert sorted(code_traversals(G, steps=3, rows=1)) == ["cat0", "cont0", "cont1"]


def test_traverse_cli_writes_pngs(trained: gf.Run, tmp_path: Path) -> None:
    run_cli("traverse", str(trained.dir), "--out", str(tmp_path / "all"), "--rows", "2",
            "--steps", "4", check=True)
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "cat0.png", "cont0.png", "cont1.png"]
    proc = run_cli("traverse", str(trained.dir), "--code", "cat7", "--out",
                   str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "cat7" in proc.stderr and "cat0, cont0, cont1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- errors
def test_infogan_model_needs_infogan_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--recipe infogan"):
        gf.train(tiny_infogan(tmp_path, recipe="gan"))


def test_infogan_recipe_needs_infogan_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--model infogan"):
        gf.train(tiny_image_config(tmp_path, recipe="infogan"))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pack": 2}, "set pack: 1"),
    ({"conditional": True}, "Drop --conditional"),
])
def test_infogan_refuses_packing_and_labels(tmp_path: Path, overrides: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gf.train(tiny_infogan(tmp_path, **overrides))
    assert not list(tmp_path.iterdir())  # refused before a run directory appeared


def test_unknown_code_and_codeless_model(tmp_path: Path) -> None:
    G = build()
    with pytest.raises(ConfigError, match="cat0, cont0, cont1"):
        code_traversal(G, "cont5")
    dcgan = get_model("dcgan")
    plain = dcgan.build_generator(dcgan.make_config({"resolution": 16}))
    with pytest.raises(ConfigError, match="no latent codes"):
        code_traversal(plain, "cat0")
    with pytest.raises(ConfigError, match="at least one latent code"):
        build(categorical=[], continuous=0)
