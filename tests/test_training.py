"""Trainer policies: reproducibility, the NaN stop, conditional sampling, run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge as gf
from ganforge.errors import NonFiniteError
from ganforge.train import gan as gan_module
from ganforge.train import rundir

from .conftest import tiny_image_config


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    a = gf.train(tiny_image_config(tmp_path, seed=5))
    b = gf.train(tiny_image_config(tmp_path, seed=5))
    c = gf.train(tiny_image_config(tmp_path, seed=6))
    ga, gb, gc = (load_file(r.dir / "generator.safetensors") for r in (a, b, c))
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert not all(torch.equal(ga[k], gc[k]) for k in ga)
    assert [a.dir.name, b.dir.name, c.dir.name] == [
        "0000-digits-dcgan", "0001-digits-dcgan", "0002-digits-dcgan"]


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_d_loss = gan_module.d_loss
    calls = {"n": 0}

    def poisoned(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = real_d_loss(kind, real, fake)
        return loss * float("nan") if calls["n"] == 13 else loss

    monkeypatch.setattr(gan_module, "d_loss", poisoned)
    cfg = tiny_image_config(tmp_path, steps=30, checkpoint_every=5)
    with pytest.raises(NonFiniteError) as err:
        gf.train(cfg)
    msg = str(err.value)
    assert "step 13" in msg and "discriminator" in msg and "state-00000010" in msg
    run = next(tmp_path.iterdir())
    assert [s for s, _ in rundir.checkpoints(run)] == [10, 5]
    for path in [p for _, p in rundir.checkpoints(run)] + [run / "generator.safetensors"]:
        assert all(torch.isfinite(t).all() for t in load_file(path).values()
                   if t.is_floating_point())
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "failed" and "non-finite" in status["message"]
    assert "diverged" in (run / "log.txt").read_text()
    # the kept checkpoint resumes once the cause is gone
    monkeypatch.setattr(gan_module, "d_loss", real_d_loss)
    assert gf.resume(run).step == 30


def test_conditional_dcgan_samples_requested_classes(tmp_path: Path) -> None:
    run = gf.train(tiny_image_config(tmp_path, conditional=True, steps=5))
    g = gf.load(run.dir)
    assert g.num_classes == 10
    x = g.sample(7, seed=0, labels=[1, 2])
    assert x.shape == (7, 1, 16, 16)
    assert g.make_labels(7, [1, 2]).tolist() == [1, 2, 1, 2, 1, 2, 1]
    with pytest.raises(gf.GanforgeError, match=r"0\.\.9"):
        g.sample(2, labels=[10])


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge"])
def test_every_objective_trains_finitely(tmp_path: Path, loss: str) -> None:
    run = gf.train(tiny_image_config(tmp_path, loss=loss, steps=30, n_critic=2, log_every=10,
                                     r1_gamma=1.0 if loss == "hinge" else 0.0))
    last = run.metrics[-1]
    assert last["step"] == 30
    assert last["d_real"] > last["d_fake"], last  # D learned to tell real from fake
    if loss == "wgan-gp":
        assert run.config.model_options["d_norm"] == "none" and "gp" in last
    if loss == "hinge":
        assert "r1" in last


def test_optimizers_have_their_own_settings(tmp_path: Path) -> None:
    from ganforge.train.run import _build, load_data

    cfg = gf.load_config(None, {**tiny_image_config(tmp_path), "g_optim.lr": 1e-3,
                                "d_optim.betas": [0.0, 0.9]})
    trainer = _build(cfg, tmp_path, load_data(cfg))
    recipe = trainer.recipe
    assert recipe.opt_g.param_groups[0]["lr"] == 1e-3
    assert recipe.opt_d.param_groups[0]["lr"] == 2e-4
    assert recipe.opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_damaged_newest_checkpoint_falls_back_and_cut_metrics_lines_are_dropped(
        tmp_path: Path) -> None:
    run = gf.train(tiny_image_config(tmp_path, steps=10, checkpoint_every=5, log_every=5))
    newest = rundir.state_path(run.dir, 10)
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a crash of the disk
    with (run.dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 11, "loss_d": 0.')  # a line cut short by SIGKILL
    assert [r["step"] for r in rundir.read_metrics(run.dir)] == [5, 10]
    resumed = gf.resume(run.dir, steps=15)
    assert resumed.step == 15
    assert (run.dir / "checkpoints" / "state-00000010.safetensors.corrupt").exists()
    assert "unreadable" in (run.dir / "log.txt").read_text()
    assert [r["step"] for r in rundir.read_metrics(run.dir)] == [5, 10, 15]


def test_sampling_leaves_global_rng_alone_and_returns_normal_tensors(tmp_path: Path) -> None:
    g = gf.load(gf.train(tiny_image_config(tmp_path, steps=2)).dir)
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    x = g.sample(4)  # unseeded: fresh entropy, global RNG untouched
    assert torch.equal(torch.rand(3), expected)
    x.mul_(0.5)  # an ordinary tensor, not an inference-mode one
    assert not torch.equal(g.sample(4), g.sample(4))


def test_export_recomputes_batchnorm_statistics_for_the_ema_weights(tmp_path: Path) -> None:
    from ganforge.train.run import _build, load_data

    cfg = gf.load_config(None, tiny_image_config(tmp_path))
    trainer = _build(cfg, tmp_path, load_data(cfg))
    recipe = trainer.recipe
    for step in range(3):
        recipe.train_step(step, trainer.stream)
    export = recipe.export_generator()
    bn = next(m for m in export.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # replay the 16 standing-statistics batches through the EMA weights
    seen: list[torch.Tensor] = []
    ema = recipe.ema.model
    ema_bn = next(m for m in ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    hook = ema_bn.register_forward_hook(lambda m, i, o: seen.append(i[0].mean((0, 2, 3))))
    rng = torch.Generator().manual_seed(cfg.seed + 3)
    with torch.no_grad():
        for _ in range(16):
            ema.eval()(ema.sample_latents(64, generator=rng))
    hook.remove()
    assert torch.allclose(bn.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert not torch.allclose(bn.running_mean, ema_bn.running_mean)  # not the training stats
    assert not export.training and recipe.ema.model is not export


def test_n_critic_draws_one_real_batch_per_discriminator_step(tmp_path: Path) -> None:
    from ganforge.train.run import _build, load_data

    cfg = gf.load_config(None, tiny_image_config(tmp_path, n_critic=3))
    trainer = _build(cfg, tmp_path, load_data(cfg))
    trainer.recipe.train_step(0, trainer.stream)
    assert trainer.stream.pos == 3 * cfg.batch_size


def test_graceful_stop_catches_the_first_signal_only() -> None:
    import os
    import signal

    from ganforge.train.stopper import GracefulStop

    previous = signal.getsignal(signal.SIGINT)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "SIGINT"
        assert signal.getsignal(signal.SIGINT) is previous  # a second Ctrl-C acts at once
    assert signal.getsignal(signal.SIGINT) is previous


@pytest.mark.parametrize("recipe", ["gan", "infogan", "stylegan2"])
def test_rpgan_pairs_each_fake_with_a_real_logit_and_r2_is_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe: str) -> None:
    """Every recipe's G step hands the relativistic loss D's logits of the step's real
    batch, one per fake; the D step logs the R2 penalty on the fakes."""
    from ganforge.train import infogan as infogan_module

    from .test_infogan import tiny_infogan
    from .test_stylegan2_recipe import _cfg as tiny_stylegan2

    seen: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
    real_g_loss = gan_module.g_loss

    def spy(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        seen.append((tuple(fake.shape), None if real is None else tuple(real.shape)))
        assert real is None or not real.requires_grad  # G's gradient flows through fakes only
        return real_g_loss(kind, fake, real)

    monkeypatch.setattr(gan_module, "g_loss", spy)
    monkeypatch.setattr(infogan_module, "g_loss", spy)
    settings = {"steps": 3, "loss": "rpgan", "r2_gamma": 0.5, "log_every": 1}
    cfg = {"gan": lambda: tiny_image_config(tmp_path, **settings),
           "infogan": lambda: tiny_infogan(tmp_path, **settings),
           "stylegan2": lambda: tiny_stylegan2(tmp_path, **settings)}[recipe]()
    run = gf.train(cfg)
    assert len(seen) == 3 and all(real == fake and fake[0] > 1 for fake, real in seen)
    assert all(row["r2"] > 0 for row in run.metrics if "loss_d" in row)
    assert sum("r2" in row for row in run.metrics) == 3
