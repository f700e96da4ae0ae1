"""The StyleGAN2 recipe: config errors, lazy R1 and path length on schedule and scaled,
lazy-scaled Adam, style-mixing regularization, exact resume, export's w_avg, learning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import ganforge as gf
from ganforge.checkpoint import load_state
from ganforge.errors import ConfigError
from ganforge.generator import build_generator
from ganforge.metrics.prdc import manifold_metrics
from ganforge.train import rundir

from .conftest import digit_fids, tiny_image_config
from .test_resume import _assert_identical

TINY = {"channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16,
        "mapping_layers": 2}

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(out: Path, **overrides: Any) -> dict[str, Any]:
    sg = {"r1_interval": 3, "pl_interval": 2, **overrides.pop("stylegan2", {})}
    settings: dict[str, Any] = {"model": "stylegan2", "recipe": "stylegan2",
                                "model_options": TINY, "r1_gamma": 1.0, "batch_size": 16,
                                **overrides, "stylegan2": sg}
    return tiny_image_config(out, **settings)


def _trainer(out: Path, **overrides: Any) -> Any:
    from ganforge.train.run import _build, load_data

    cfg = gf.load_config(None, _cfg(out, **overrides))
    return _build(cfg, out, load_data(cfg))


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ config
def test_refuses_models_that_are_not_style_based(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"style-based generator.*'dcgan'.*--model stylegan2"):
        gf.train(tiny_image_config(tmp_path, recipe="stylegan2"))


@pytest.mark.parametrize(("overrides", "match"), [
    ({"stylegan2": {"pl_batch_shrink": 32}}, "pl_batch_shrink 32 leaves no samples"),
    ({"stylegan2": {"mixing_prob": 1.5}}, "stylegan2.mixing_prob"),
    ({"stylegan2": {"r1_interval": 0}}, "stylegan2.r1_interval"),
    ({"stylegan2": {"lazy": True}}, r"unknown key 'stylegan2.lazy'.*pl_weight"),
])
def test_bad_settings_are_clear_config_errors(tmp_path: Path, overrides: dict[str, Any],
                                              match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gf.train(_cfg(tmp_path, **overrides))


def test_adam_runs_with_the_lazy_scaled_lr_and_betas(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, stylegan2={"r1_interval": 16, "pl_interval": 4},
                       g_optim={"lr": 2e-3, "betas": [0.0, 0.99]},
                       d_optim={"lr": 1e-3, "betas": [0.5, 0.99]})
    recipe = trainer.recipe
    c_d, c_g = 16 / 17, 4 / 5
    recipe.train_step(0, trainer.stream)  # _begin_step and the steps keep the scaled values
    g, d = recipe.opt_g.param_groups[0], recipe.opt_d.param_groups[0]
    assert g["lr"] == pytest.approx(2e-3 * c_g) and d["lr"] == pytest.approx(1e-3 * c_d)
    assert g["betas"] == pytest.approx((0.0, 0.99 ** c_g))
    assert d["betas"] == pytest.approx((0.5 ** c_d, 0.99 ** c_d))
    recipe.load_state_dict(recipe.state_dict())  # resume re-applies the scaled settings
    assert recipe.opt_d.param_groups[0]["betas"] == pytest.approx((0.5 ** c_d, 0.99 ** c_d))
    assert recipe.run_cfg.r1_gamma == 1.0 and recipe.cfg.r1_gamma == 0.0

    # interval 1: R1 inside every D step, as in the gan recipe; no regularizer: no scaling
    plain = _trainer(tmp_path / "plain", stylegan2={"r1_interval": 1, "pl_weight": 0.0},
                     d_optim={"lr": 1e-3, "betas": [0.5, 0.99]})
    assert plain.recipe.opt_d.param_groups[0]["lr"] == 1e-3
    assert plain.recipe.opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    assert plain.recipe.cfg.r1_gamma == 1.0


# ------------------------------------------------------------------ regularizers
def test_lazy_r1_runs_every_n_discriminator_steps_scaled_by_n(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, n_critic=2, r1_gamma=0.5,
                       stylegan2={"r1_interval": 3, "pl_weight": 0.0})
    recipe = trainer.recipe
    updates: list[tuple[str, float]] = []
    original = recipe._update

    def spy(net: str, optimizer: Any, module: Any, loss: torch.Tensor, step: int,
            logs: dict[str, torch.Tensor]) -> None:
        updates.append((net, float(loss.detach())))
        original(net, optimizer, module, loss, step, logs)

    recipe._update = spy
    seen = []
    for step in range(6):
        updates.clear()
        logs = recipe.train_step(step, trainer.stream)
        # D steps 2s and 2s + 1 of step s; R1 after D steps 0, 3, 6, 9
        due = [i for i in (2 * step, 2 * step + 1) if i % 3 == 0]
        seen.append("r1" in logs)
        assert [n for n, _ in updates].count("D") == 2 + len(due)
        if due:
            # the R1 step's loss is interval * gamma / 2 * R1 (the logged, unscaled R1)
            r1_loss = updates[[n for n, _ in updates].index("D") + 1 + (due[0] % 2)][1]
            assert r1_loss == pytest.approx(3 * 0.5 / 2 * float(logs["r1"]), rel=1e-5)
    assert seen == [True, True, False, True, True, False]


def test_path_length_penalty_is_logged_and_its_mean_tracked(tmp_path: Path) -> None:
    run = gf.train(_cfg(tmp_path, steps=6, log_every=1, checkpoint_every=6,
                        stylegan2={"pl_interval": 2, "pl_decay": 0.5}))
    records = _metrics(run.dir)
    assert [("pl_penalty" in r, "r1" in r) for r in records] == [
        (True, True), (False, False), (True, False), (False, True), (True, False),
        (False, False)]
    means = [r["pl_mean"] for r in records if "pl_mean" in r]
    assert means[0] > 0 and len(set(means)) == 3  # moves from 0 at every PL step
    state, _ = load_state(rundir.state_path(run.dir, 6))
    assert float(state["recipe"]["pl_mean"]) == pytest.approx(means[-1], rel=1e-4)


@pytest.mark.parametrize("prob", [1.0, 0.0])
def test_mixing_regularization_mixes_the_ws_given_to_synthesis(tmp_path: Path,
                                                               prob: float) -> None:
    trainer = _trainer(tmp_path, stylegan2={"mixing_prob": prob}, conditional=True)
    recipe = trainer.recipe
    seen: list[torch.Tensor] = []
    hook = recipe.G.synthesis.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach()))
    recipe.train_step(0, trainer.stream)  # D fakes, then the path-length batch
    hook.remove()
    assert len(seen) == 2 and seen[1].shape[0] == 16 // 2
    for ws in seen:
        same = (ws == ws[:, :1]).all(dim=2)  # (N, num_ws): layer i uses the first w
        if prob == 1.0:  # every sample switches at a crossover in 1..num_ws-1
            assert same[:, 0].all() and not same[:, -1].any()
            crossover = (~same).int().argmax(dim=1)
            assert ((crossover >= 1) & (crossover < recipe.G.num_ws)).all()
            layer = torch.arange(recipe.G.num_ws)
            assert torch.equal(~same, layer[None, :] >= crossover[:, None])
            assert len(crossover.unique()) > 1
        else:
            assert same.all()


# ------------------------------------------------------------------ resume, export
def test_resumes_bit_identically(tmp_path: Path) -> None:
    """pl_mean, the rng of mixing and path-length draws, noise and lazy schedules all
    travel with the training state: 3 + 3 steps end where 6 uninterrupted ones do."""
    cfg = _cfg(tmp_path, steps=6, conditional=True, augment={"kind": "diffaugment"})
    whole = gf.train({**cfg, "checkpoint_every": 3}, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 3}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=6)
    a, _ = load_state(rundir.state_path(whole.dir, 6))
    b, _ = load_state(rundir.state_path(part.dir, 6))
    assert float(a["recipe"]["pl_mean"]) > 0
    _assert_identical(a["recipe"], b["recipe"])


def test_export_truncates_around_the_mean_w_of_its_own_mapping(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    recipe = trainer.recipe
    for step in range(3):
        recipe.train_step(step, trainer.stream)
    # the EMA copies the tracked buffer; it lags (it starts at 0, beta 0.995)
    assert torch.equal(recipe.ema.model.mapping.w_avg, recipe.G.mapping.w_avg)
    g = recipe.export_generator()
    with torch.no_grad():
        ws = g.mapping(torch.randn(4096, g.z_dim, generator=torch.Generator().manual_seed(9)))
    spread = (ws[:, 0] - ws[:, 0].mean(0)).norm(dim=1).mean()
    assert (g.mapping.w_avg - ws[:, 0].mean(0)).norm() < 0.05 * spread
    assert (recipe.G.mapping.w_avg - ws[:, 0].mean(0)).norm() > 0.5 * spread
    centre = g.mapping(ws.new_zeros(1, g.z_dim) + 1.0, truncation=0.0)
    assert torch.allclose(centre[0, 0], g.mapping.w_avg)


# ------------------------------------------------------------------ learning
def test_tiny_stylegan2_on_digits_improves_quality(tmp_path: Path) -> None:
    """Justification: the Fréchet distance of 8x8-pooled pixels to the real digits falls
    far below the untrained G's and below the mean digit's (a blurry-average cheat), and
    some samples land inside the real data's k-NN manifold (precision), which neither
    the untrained G nor the mean digit reaches."""
    cfg = _cfg(tmp_path, steps=350, batch_size=32, r1_gamma=0.1, ema_kimg=1.0,
               stylegan2={"r1_interval": 16, "pl_interval": 4},
               g_optim={"lr": 5e-3, "betas": [0.0, 0.99]},
               d_optim={"lr": 5e-3, "betas": [0.0, 0.99]})
    run = gf.train(cfg)
    trained = run.load_generator().sample(1000, seed=1)
    torch.manual_seed(0)
    untrained = build_generator("stylegan2", run.config.model_options).eval()
    with torch.no_grad():
        initial = untrained(torch.randn(1000, untrained.z_dim))
    fid, real_feats, trained_feats = digit_fids(trained, initial)
    precision = manifold_metrics(real_feats, trained_feats)["precision"]
    assert fid["trained"] < 0.25 * fid["untrained"], fid
    assert fid["trained"] < fid["mean"], fid
    assert precision > 0.02, (precision, fid)



def test_lazily_logged_values_are_averaged_over_the_steps_that_logged_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """r1 is computed on 2 of the 4 steps of a log window: its record is the mean of those
    two values, not their sum divided by 4 (which would hide a lazy penalty)."""
    from ganforge.train.stylegan2 import StyleGAN2Recipe

    computed: list[float] = []
    original = StyleGAN2Recipe.train_step

    def spy(self: StyleGAN2Recipe, step: int, stream: Any) -> dict[str, torch.Tensor]:
        logs = original(self, step, stream)
        if "r1" in logs:
            computed.append(float(logs["r1"]))
        return logs

    monkeypatch.setattr(StyleGAN2Recipe, "train_step", spy)
    run = gf.train(_cfg(tmp_path, steps=4, log_every=4, r1_gamma=1.0,
                        stylegan2={"r1_interval": 2, "pl_weight": 0.0}))
    (record,) = run.metrics
    assert len(computed) == 2
    assert sum(computed) / 2 > 1e-4  # large enough that the two means below differ
    # logs keep 6 decimals
    assert record["r1"] == pytest.approx(sum(computed) / 2, rel=1e-3, abs=1e-6)
    assert record["r1"] != pytest.approx(sum(computed) / 4, rel=1e-3, abs=1e-6)
