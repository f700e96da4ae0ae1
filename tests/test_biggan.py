"""BigGAN, SAGAN and SNGAN: shapes, conditioning, spectral norm, attention, orthogonal
regularization, and a conditional model that learns its classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganforge as gf
from ganforge.checkpoint import load_state
from ganforge.errors import ConfigError
from ganforge.generator import build_generator
from ganforge.losses import orthogonal_penalty
from ganforge.metrics.classifier import accuracy, load_classifier
from ganforge.nn.attention import SelfAttention2d
from ganforge.nn.conditional_norm import ConditionalBatchNorm2d
from ganforge.nn.spectral import largest_singular_value, spectral_normalized
from ganforge.registry import get_model
from ganforge.train import rundir
from ganforge.train.gan import ortho_weights
from ganforge.visual import quantize

from .conftest import tiny_image_config
from .test_resume import _assert_identical

FAMILIES = ("sngan", "sagan", "biggan")
TINY = {"g_width": 4, "d_width": 4, "z_dim": 16}


def _pair(name: str, **options: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    spec = get_model(name)
    cfg = spec.make_config({**TINY, **options})
    return spec.build_generator(cfg), spec.build_discriminator(cfg)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_shapes_for_every_family(name: str, resolution: int, num_classes: int | None) -> None:
    g, d = _pair(name, resolution=resolution, num_classes=num_classes, channels=3)
    y = None if num_classes is None else torch.arange(3) % 10
    x = g(torch.randn(3, 16), y)
    assert x.shape == (3, 3, resolution, resolution)
    assert x.abs().max() <= 1
    assert d(x, y).shape == (3,)


def test_family_defaults_differ_as_in_the_papers() -> None:
    sngan = get_model("sngan").make_config({})
    sagan = get_model("sagan").make_config({})
    biggan = get_model("biggan").make_config({"resolution": 64})
    assert (sngan.g_sn, sngan.d_sn, sngan.attention_res) == (False, True, None)
    assert (sagan.g_sn, sagan.attention_res) == (True, 16)
    assert biggan.attention_res == 32 and biggan.hierarchical_z and biggan.shared_embedding
    g_sn, _ = _pair("sngan")
    assert not spectral_normalized(g_sn)
    g, d = _pair("sagan")
    assert spectral_normalized(g) and spectral_normalized(d)
    assert any(isinstance(m, SelfAttention2d) for m in g.modules())
    assert any(isinstance(m, SelfAttention2d) for m in d.modules())


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"biggan supports square images of 16, 32"):
        get_model("biggan").make_config({"resolution": 48})
    with pytest.raises(ConfigError, match=r"attention_res must be a feature-map side.*\[8, 16\]"):
        get_model("sagan").make_config({"attention_res": 32})
    with pytest.raises(ConfigError, match=r"z_dim 3 is too small"):
        get_model("biggan").make_config({"z_dim": 3})


def test_biggan_conditions_every_block_on_class_and_its_z_chunk() -> None:
    torch.manual_seed(0)
    g, _ = _pair("biggan", resolution=32, num_classes=10)
    for m in g.modules():  # non-zero conditional gains, so conditions act from the start
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.gain.weight, std=0.5)
            torch.nn.init.normal_(m.bias.weight, std=0.5)
    g.eval()
    assert g.chunks == [4, 4, 4, 4]  # the input layer and three blocks
    z, y = torch.randn(2, 16), torch.tensor([1, 2])
    base = g(z, y)
    assert not torch.allclose(base, g(z, torch.tensor([3, 4])), atol=1e-4)
    for chunk in range(4):  # every chunk of z reaches the image
        z2 = z.clone()
        z2[:, 4 * chunk:4 * chunk + 4] += 1.0
        assert not torch.allclose(base, g(z2, y), atol=1e-4), chunk
    assert isinstance(g.shared, torch.nn.Embedding) and g.shared.weight.shape == (10, 128)


def test_conditional_batch_norm_starts_as_batch_norm_and_follows_the_condition() -> None:
    torch.manual_seed(0)
    cbn, bn = ConditionalBatchNorm2d(3, 5), torch.nn.BatchNorm2d(3, affine=False)
    x, c = torch.randn(4, 3, 2, 2), torch.randn(4, 5)
    torch.testing.assert_close(cbn(x, c), bn(x))
    torch.nn.init.ones_(cbn.gain.weight)
    out = cbn(x, c)
    gain = 1 + c.sum(1)
    torch.testing.assert_close(out, bn(x) * gain[:, None, None, None])


def test_self_attention_starts_as_identity_and_then_sees_the_whole_map() -> None:
    torch.manual_seed(0)
    attn = SelfAttention2d(16, sn=False)
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(1.0)
    x2 = x.clone()
    x2[0, :, 0, 0] += 5.0  # a change in one corner ...
    diff = (attn(x2) - attn(x))[0, :, 7, 7].abs().max()
    assert diff > 1e-3  # ... reaches the opposite corner in one layer (a 1x1 conv cannot)


def test_spectral_norm_keeps_every_wrapped_weight_at_unit_singular_value() -> None:
    """After 40 hinge-loss updates, each wrapped weight's exact largest singular value
    (of the matrix SN divides, reshaped out x in*k*k) is within 10% of 1 (SN refines its
    estimate by one power iteration per step, so it lags the updates slightly), and
    within 1% once more forward passes have refined it; the raw weights it wraps
    are far from 1: the normalization, not the data, does it."""
    torch.manual_seed(0)
    g, d = _pair("sagan", resolution=16, num_classes=10, g_width=8, d_width=8)
    params = list(g.parameters()) + list(d.parameters())
    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.999))
    for _ in range(40):
        x, y = torch.randn(16, 1, 16, 16), torch.randint(10, (16,))
        fake = g(torch.randn(16, 16), y)
        loss = torch.relu(1 - d(x, y)).mean() + torch.relu(1 + d(fake, y)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    wrapped = spectral_normalized(g) + spectral_normalized(d)
    assert len(wrapped) >= 25
    raw = [largest_singular_value(m.parametrizations.weight.original) for _, m in wrapped]
    assert max(abs(s - 1) for s in raw) > 0.5
    g.eval(), d.eval()  # eval mode: no power iteration, the stored estimate is used
    sigmas = {name: largest_singular_value(m.weight) for name, m in wrapped}
    assert all(abs(s - 1) < 0.10 for s in sigmas.values()), sigmas
    g.train(), d.train()
    with torch.no_grad():
        for _ in range(150):  # forward passes in training mode: power iterations only
            d(g(torch.randn(16, 16), y), y)
    sigmas = {name: largest_singular_value(m.weight) for name, m in wrapped}
    assert all(abs(s - 1) < 0.01 for s in sigmas.values()), sigmas


def test_orthogonal_penalty_is_zero_for_orthogonal_rows_and_ignores_norms() -> None:
    q = torch.linalg.qr(torch.randn(6, 6)).Q
    assert orthogonal_penalty([q * 3.0]) < 1e-8  # scaled rows stay orthogonal
    w = torch.randn(4, 9, requires_grad=True)
    before = orthogonal_penalty([w])
    assert before > 0.1
    opt = torch.optim.SGD([w], lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        orthogonal_penalty([w]).backward()
        opt.step()
    assert orthogonal_penalty([w]) < 0.01 * before
    g, _ = _pair("biggan", num_classes=10)
    names = {id(p) for p in ortho_weights(g)}
    assert id(g.shared.weight) not in names  # the class embedding is left free
    assert all(p.ndim >= 2 for p in ortho_weights(g))


def test_ortho_reg_is_logged_and_resolved_configs_export(tmp_path: Path) -> None:
    cfg = tiny_image_config(tmp_path, model="biggan", steps=3, conditional=True,
                            loss="hinge", ortho_reg=1e-4, model_options=TINY, log_every=1)
    run = gf.train(cfg)
    assert all(m["ortho"] > 0 for m in run.metrics)
    g = run.load_generator()
    x = g.sample(4, seed=0, labels=[0, 1, 2, 3])
    assert x.shape == (4, 1, 16, 16)
    again = build_generator("biggan", run.config.model_options)
    assert spectral_normalized(again)  # the export rebuilt from the registry


def test_conditional_biggan_learns_its_classes(tmp_path: Path, one_thread: None) -> None:
    """Samples requested for class c should be classified as c: far above chance (10%)
    after 300 steps on digits, and the untrained generator is at chance."""
    cfg = tiny_image_config(
        tmp_path, model="biggan", conditional=True, steps=300, batch_size=64, loss="hinge",
        g_optim={"lr": 2e-4, "betas": [0.0, 0.999]},
        d_optim={"lr": 4e-4, "betas": [0.0, 0.999]}, ema_kimg=2,
        model_options={"g_width": 8, "d_width": 8, "z_dim": 32})
    run = gf.train(cfg)
    clf = load_classifier("digits")
    labels = torch.arange(500) % 10
    trained = accuracy(clf, quantize(run.load_generator().sample(500, seed=1)), labels)
    torch.manual_seed(0)
    untrained_g = build_generator("biggan", run.config.model_options).eval()
    with torch.no_grad():
        untrained = untrained_g(torch.randn(500, 32), labels)
    before = accuracy(clf, quantize(untrained), labels)
    assert before < 0.25 and trained > 0.35, (before, trained)


def test_biggan_resumes_bit_identically(tmp_path: Path) -> None:
    """Spectral-norm vectors, attention, conditional BN and the EMA all travel with the
    training state: 2 + 2 steps end exactly where 4 uninterrupted steps do."""
    cfg = tiny_image_config(tmp_path, model="biggan", conditional=True, steps=4,
                            loss="hinge", ortho_reg=1e-4, n_critic=2, model_options=TINY)
    whole = gf.train({**cfg, "checkpoint_every": 2}, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 2}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=4)
    a, _ = load_state(rundir.state_path(whole.dir, 4))
    b, _ = load_state(rundir.state_path(part.dir, 4))
    assert any(k.endswith("_u") for k in a["recipe"]["G"])  # SN vectors are saved
    _assert_identical(a["recipe"], b["recipe"])
