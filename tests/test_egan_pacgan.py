"""E-GAN (mutations, fitness, selection, resume) and PacGAN packing."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

import ganforge as gf
from ganforge.checkpoint import load_state
from ganforge.data import MIXTURE_STD, mixture_centers
from ganforge.errors import ConfigError
from ganforge.generator import build_generator
from ganforge.losses import mutation_loss
from ganforge.metrics import mode_stats
from ganforge.models.packing import PackedDiscriminator, build_discriminator
from ganforge.registry import get_model
from ganforge.train import rundir

from .conftest import run_cli
from .test_resume import _assert_identical

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"progress": False, "sample_every": 0, "checkpoint_every": 0}
# the ring setting of tests/test_learning.py, shortened
RING = {"data": "ring", "model": "mlp", "batch_size": 128, "r1_gamma": 0.001,
        "g_optim": {"lr": 1e-3}, "d_optim": {"lr": 1e-3}, "ema_kimg": 0,
        "model_options": {"g_hidden": 128, "d_hidden": 128}}


# ---------------------------------------------------------------- mutations
def test_mutations_match_the_paper_and_differ_where_d_is_sure() -> None:
    logits = torch.tensor([-6.0, 0.0, 3.0], requires_grad=True)
    p = torch.sigmoid(logits.detach())
    assert torch.allclose(mutation_loss("minimax", logits), 0.5 * torch.log(1 - p).mean())
    assert torch.allclose(mutation_loss("nonsaturating", logits), -0.5 * torch.log(p).mean())
    assert torch.allclose(mutation_loss("lsgan", logits), (p - 1).square().mean())
    # where D confidently rejects a fake, minimax saturates and the heuristic does not
    grads = {}
    for kind in ("minimax", "nonsaturating", "lsgan"):
        (g,) = torch.autograd.grad(mutation_loss(kind, logits), logits)
        grads[kind] = g[0].abs().item()
    assert grads["nonsaturating"] > 100 * grads["minimax"]
    with pytest.raises(ValueError, match="unknown mutation"):
        mutation_loss("hinge", logits)


# ---------------------------------------------------------------- packing
@pytest.mark.parametrize("model,options,shape", [
    ("mlp", {"data_dim": 2}, (12, 2)),
    ("dcgan", {"resolution": 16, "channels": 3, "d_width": 8}, (12, 3, 16, 16)),
])
def test_packed_discriminator_judges_consecutive_samples_jointly(
        model: str, options: dict, shape: tuple[int, ...]) -> None:
    spec = get_model(model)
    cfg = spec.make_config({**options, "d_norm": "none"} if model == "dcgan" else options)
    torch.manual_seed(0)
    D = build_discriminator(spec, cfg, pack=3).eval()
    assert isinstance(D, PackedDiscriminator)
    x = torch.randn(shape)
    out = D(x)
    assert out.shape[0] == shape[0] // 3
    changed = x.clone()
    changed[4] += 1.0  # sample 4 belongs to pack 1 (samples 3, 4, 5)
    diff = (D(changed) - out).abs().flatten()
    assert diff[1] > 0 and diff[0] == 0 and diff[2:].abs().max() == 0
    with pytest.raises(ValueError, match="divisible by pack=3"):
        D(x[:4])


def test_packing_refuses_conditional_runs_and_ragged_batches(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unconditional"):
        gf.train({"data": "digits", "model": "dcgan", "resolution": 16, "conditional": True,
                  "pack": 2, "steps": 1}, out=str(tmp_path), **FAST)
    with pytest.raises(ConfigError, match="multiple of 4"):
        gf.train({**RING, "pack": 4, "batch_size": 30, "steps": 1}, out=str(tmp_path), **FAST)
    assert not list(tmp_path.iterdir())  # nothing was created


def _assert_learned_the_ring(run: gf.Run) -> None:
    """Every mode found with a balanced share, measured with a looser radius (10 std =
    0.1) than the benchmark's 3 std: these short runs learn where the modes are, not yet
    how narrow they are. The same run's untrained generator fails every check."""
    def stats(g: torch.nn.Module) -> object:
        with torch.no_grad():
            x = g(torch.randn(2500, g.z_dim, generator=torch.Generator().manual_seed(1)))
        return mode_stats(x, mixture_centers("ring"), MIXTURE_STD["ring"], n_std=10)

    trained = stats(run.load_generator().module)
    assert trained.modes_captured >= 7 and trained.reverse_kl < 0.2, trained
    assert trained.high_quality >= 0.15, trained
    assert stats(build_generator("mlp", run.config.model_options)).high_quality < 0.02


def test_pacgan_run_learns_the_ring(tmp_path: Path) -> None:
    run = gf.train({**RING, "pack": 2, "steps": 1200, "seed": 0}, out=str(tmp_path), **FAST)
    state, _ = load_state(rundir.state_path(run.dir, 1200))
    assert any(k.startswith("net.") for k in state["recipe"]["D"])  # the packed D was trained
    _assert_learned_the_ring(run)


# ---------------------------------------------------------------- E-GAN
def _steps(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / rundir.STEPS).read_text().splitlines()]


def test_egan_keeps_the_fittest_child_and_logs_it_every_step(tmp_path: Path) -> None:
    run = gf.train({**RING, "recipe": "egan", "steps": 60, "log_every": 20, "seed": 3},
                   out=str(tmp_path), **FAST)
    records = _steps(run.dir)
    assert [r["step"] for r in records] == list(range(1, 61))
    for r in records:
        names = [c[0] for c in r["children"]]
        assert names == ["minimax", "nonsaturating", "lsgan"]
        best = max(c[1] for c in r["children"])
        assert r["fitness"] == [best]  # the survivor is a fittest child
        assert [r["survivors"][0], best] in r["children"]
    won = {name for r in records for name in r["survivors"]}
    assert len(won) >= 2, won  # the fitness really chooses, not one fixed mutation
    last = run.metrics[-1]
    shares = [last[f"survivor_{m}"] for m in ("minimax", "nonsaturating", "lsgan")]
    assert sum(shares) == pytest.approx(1.0)
    assert torch.isfinite(torch.tensor(last["fitness_diversity"]))


def test_egan_learns_the_ring(tmp_path: Path) -> None:
    run = gf.train({**RING, "recipe": "egan", "steps": 800, "seed": 0}, out=str(tmp_path),
                   **FAST)
    _assert_learned_the_ring(run)


@pytest.mark.parametrize("adam_state", ["parent", "mutation"])
def test_egan_population_resumes_exactly(tmp_path: Path, adam_state: str) -> None:
    cfg = {**RING, "recipe": "egan", "steps": 30, "seed": 5, "checkpoint_every": 10,
           "egan": {"parents": 2, "gamma": 0.1, "adam_state": adam_state},
           "progress": False, "sample_every": 0}
    whole = gf.train(cfg, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 20}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=30)
    a, _ = load_state(rundir.state_path(whole.dir, 30))
    b, _ = load_state(rundir.state_path(part.dir, 30))
    assert len(a["recipe"]["egan_others"]) == 1  # the second survivor is saved
    own = a["recipe"]["egan_mutation_adam"]
    if adam_state == "parent":
        assert own == {}
    else:  # one Adam per mutation, advanced by every child it made: 1 in step 1, then 2
        assert sorted(own) == ["lsgan", "minimax", "nonsaturating"]
        for state in own.values():
            assert all(int(s["step"]) == 59 for s in state["state"].values())
    _assert_identical(a["recipe"], b["recipe"])
    assert _steps(whole.dir)[-1] == _steps(part.dir)[-1]
    assert [r["step"] for r in _steps(part.dir)] == list(range(1, 31))


def test_egan_mutation_adam_states_follow_the_lr_schedule(tmp_path: Path) -> None:
    run = gf.train({**RING, "recipe": "egan", "steps": 10, "seed": 1, "checkpoint_every": 10,
                    "lr_schedule": "linear", "egan": {"adam_state": "mutation"}},
                   run_dir=tmp_path / "run", progress=False, sample_every=0)
    state, _ = load_state(rundir.state_path(run.dir, 10))
    own = state["recipe"]["egan_mutation_adam"]
    assert sorted(own) == ["lsgan", "minimax", "nonsaturating"]
    for adam in own.values():  # set from the last step's schedule, not the saved value
        assert adam["param_groups"][0]["lr"] == pytest.approx(1e-3 * (1 - 9 / 10))
        assert all(int(s["step"]) == 10 for s in adam["state"].values())


@pytest.mark.parametrize("adam_state", ["parent", "mutation"])
def test_losing_children_leave_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        adam_state: str) -> None:
    """With a fitness that always prefers the non-saturating child, E-GAN trains bit for
    bit as the non-saturating objective alone: the other children's updates touch neither
    G, its Adam state, D nor the random streams."""
    from ganforge.train.egan import EGANRecipe

    calls = itertools.count()  # children are made minimax, nonsaturating, lsgan
    monkeypatch.setattr(EGANRecipe, "_fitness",
                        lambda *a, **k: (float(next(calls) % 3 == 1), 0.0, 0.0))
    cfg = {**RING, "recipe": "egan", "steps": 12, "seed": 4, "checkpoint_every": 12,
           "egan": {"adam_state": adam_state}, "progress": False, "sample_every": 0}
    three = gf.train(cfg, run_dir=tmp_path / "three")
    alone = gf.train({**cfg, "egan": {"adam_state": adam_state,
                                      "mutations": ["nonsaturating"]}},
                     run_dir=tmp_path / "alone")
    assert {r["survivors"][0] for r in _steps(three.dir)} == {"nonsaturating"}
    a, _ = load_state(rundir.state_path(three.dir, 12))
    b, _ = load_state(rundir.state_path(alone.dir, 12))
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng"):
        _assert_identical(a["recipe"][key], b["recipe"][key], key)
    _assert_identical(a["rng"], b["rng"], "rng")
    if adam_state == "mutation":  # the winner's own Adam state is the one G carries
        _assert_identical(a["recipe"]["egan_mutation_adam"]["nonsaturating"],
                          b["recipe"]["egan_mutation_adam"]["nonsaturating"])


def test_egan_random_selection_keeps_unscored_children_and_resumes_exactly(
        tmp_path: Path) -> None:
    cfg = {**RING, "recipe": "egan", "steps": 30, "seed": 2, "checkpoint_every": 10,
           "egan": {"selection": "random", "parents": 2}, "progress": False,
           "sample_every": 0}
    whole = gf.train(cfg, run_dir=tmp_path / "whole")
    records = _steps(whole.dir)
    assert all(c[1] is None for r in records for c in r["children"])  # nothing scored
    assert all(len(r["survivors"]) == 2 for r in records)
    assert {r["survivors"][0] for r in records} == {"minimax", "nonsaturating", "lsgan"}
    part = gf.train({**cfg, "steps": 20}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=30)
    assert _steps(part.dir) == records  # the same draws, step by step, across the resume


def test_egan_refuses_objectives_its_fitness_does_not_define(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loss=nonsaturating"):
        gf.train({**RING, "recipe": "egan", "loss": "hinge", "steps": 1}, out=str(tmp_path),
                 **FAST)
    with pytest.raises(ConfigError, match="fitness_batch"):
        gf.train({**RING, "recipe": "egan", "egan": {"fitness_batch": 512}, "steps": 1},
                 out=str(tmp_path), **FAST)
    with pytest.raises(ConfigError, match="once"):
        gf.train({**RING, "recipe": "egan", "egan": {"mutations": ["lsgan", "lsgan"]},
                  "steps": 1}, out=str(tmp_path), **FAST)


def test_egan_cli_with_packed_dcgan(tmp_path: Path) -> None:
    proc = run_cli("train", "--data", "digits", "--model", "dcgan", "--resolution", "16",
                     "--steps", "4", "--batch-size", "16", "--out", str(tmp_path),
                     "--no-progress", "--recipe", "egan", "--set", "pack=2",
                     "--set", "model_options={g_width: 8, d_width: 8, z_dim: 16}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next(tmp_path.iterdir())
    assert len(_steps(run_dir)) == 4
    assert gf.load(run_dir).sample(3, seed=0).shape == (3, 1, 16, 16)
