"""Architectures and objectives: shapes, conditioning, clear errors, loss values."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import d_loss, g_loss, gradient_penalty, r1_penalty
from ganforge.registry import get_model, model_names


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_dcgan_shapes_for_every_size_and_channel_count(resolution: int, channels: int) -> None:
    spec = get_model("dcgan")
    cfg = spec.make_config({"resolution": resolution, "channels": channels, "g_width": 4,
                            "d_width": 4, "z_dim": 8})
    g, d = spec.build_generator(cfg), spec.build_discriminator(cfg)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, channels, resolution, resolution)
    assert x.abs().max() <= 1
    assert d(x).shape == (2,)


def test_conditional_pair_uses_labels() -> None:
    spec = get_model("dcgan")
    cfg = spec.make_config({"resolution": 16, "num_classes": 10, "g_width": 4, "d_width": 4,
                            "z_dim": 8})
    torch.manual_seed(0)
    g, d = spec.build_generator(cfg), spec.build_discriminator(cfg)
    torch.nn.init.normal_(d.head.embed.weight, std=1.0)
    z = torch.randn(3, 8)
    y0, y1 = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    g.eval()
    assert not torch.allclose(g(z, y0), g(z, y1))
    x = g(z, y0)
    assert not torch.allclose(d(x, y0), d(x, y1))
    with pytest.raises(ValueError, match="class-conditional"):
        g(z)


@pytest.mark.parametrize("resolution", [8, 48, 256])
def test_impossible_sizes_are_clear_config_errors(resolution: int) -> None:
    with pytest.raises(ConfigError, match=r"dcgan supports square images of 16, 32, 64, 128"):
        get_model("dcgan").make_config({"resolution": resolution})


def test_unknown_model_lists_known_ones() -> None:
    assert {"dcgan", "mlp"} <= set(model_names())
    with pytest.raises(ConfigError, match=r"Unknown model 'stylegan9'.*biggan, dcgan, "
                       r"infogan, infogan-mnist, mlp, sagan, sngan"):
        get_model("stylegan9")


def test_mlp_pair_for_points() -> None:
    spec = get_model("mlp")
    cfg = spec.make_config({"data_dim": 5, "num_classes": 3})
    g, d = spec.build_generator(cfg), spec.build_discriminator(cfg)
    y = torch.tensor([0, 1, 2, 0])
    assert g(torch.randn(4, cfg.z_dim), y).shape == (4, 5)
    assert d(torch.randn(4, 5), y).shape == (4,)


def test_mlp_maxout_discriminator_takes_the_max_of_its_pieces() -> None:
    from ganforge.models.mlp import Maxout
    from ganforge.models.packing import build_discriminator

    layer = Maxout(3, 4, pieces=5)
    x = torch.randn(6, 3)
    pieces = layer.linear(x).view(6, 4, 5)
    assert torch.equal(layer(x), pieces.max(dim=-1).values)
    assert layer(x).shape == (6, 4)

    spec = get_model("mlp")
    cfg = spec.make_config({"d_maxout": 5, "d_hidden": 8, "d_layers": 2})
    d = spec.build_discriminator(cfg)
    assert sum(isinstance(m, Maxout) for m in d.modules()) == 2
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())
    packed = build_discriminator(spec, cfg, pack=2)   # packing widens the maxout input
    assert packed(torch.randn(6, 2)).shape == (3,)
    with pytest.raises(ConfigError, match="d_maxout"):
        spec.make_config({"d_maxout": 0})


def test_objectives_at_known_logits() -> None:
    zero = torch.zeros(4)
    assert d_loss("nonsaturating", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_loss("nonsaturating", zero).item() == pytest.approx(math.log(2))
    assert g_loss("minimax", zero).item() == pytest.approx(-math.log(2))
    big = torch.full((4,), 20.0)
    # saturation: the minimax G loss has a vanishing gradient where D is confident
    f = (-big).requires_grad_(True)
    g_loss("minimax", f).backward()
    assert f.grad.abs().max() < 1e-8
    f2 = (-big).requires_grad_(True)
    g_loss("nonsaturating", f2).backward()
    assert f2.grad.abs().max() > 0.2
    assert d_loss("lsgan", torch.ones(4), zero).item() == 0
    assert d_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0
    assert d_loss("wgan-gp", torch.full((4,), 3.0), zero).item() == -3
    with pytest.raises(ValueError):
        d_loss("nope", zero, zero)


def test_penalties_on_a_linear_critic() -> None:
    w = torch.tensor([3.0, 4.0])  # ||grad|| = 5 everywhere
    def critic(x: torch.Tensor) -> torch.Tensor:
        return x @ w
    real = torch.randn(6, 2).requires_grad_(True)
    assert r1_penalty(critic(real), real).item() == pytest.approx(25.0)
    gp = gradient_penalty(critic, torch.randn(6, 2), torch.randn(6, 2))
    assert gp.item() == pytest.approx(16.0)
    unit = torch.tensor([0.6, 0.8])
    assert gradient_penalty(lambda x: x @ unit, torch.randn(6, 2),
                            torch.randn(6, 2)).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge",
                                  "rpgan"])
def test_objectives_push_in_the_right_directions(kind: str) -> None:
    """D raises real logits and lowers fake ones; G raises fake logits (inside every
    objective's targets: LSGAN's are 1 for real and 0 for fake)."""
    real = torch.full((4,), 0.1, requires_grad=True)
    fake = torch.full((4,), 0.5, requires_grad=True)
    d_loss(kind, real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_g = torch.full((4,), 0.5, requires_grad=True)
    g_loss(kind, fake_g, real.detach()).backward()
    assert (fake_g.grad < 0).all()


def test_relativistic_pairing_judges_differences_of_paired_logits() -> None:
    """RpGAN (Jolicoeur-Martineau 2019; R3GAN): only D(x_i) - D(G(z_i)) matters, so a shift
    of every logit changes nothing, while re-pairing the same logits does; G's loss is the
    pairing reversed and needs the real logits."""
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.0, 1.0, -3.0])
    expected = torch.log1p(torch.exp(fake - real)).mean()
    assert d_loss("rpgan", real, fake).item() == pytest.approx(expected.item())
    assert d_loss("rpgan", real + 7, fake + 7).item() == pytest.approx(expected.item())
    assert d_loss("rpgan", real, fake.flip(0)).item() != pytest.approx(expected.item())
    assert g_loss("rpgan", fake, real).item() == pytest.approx(
        torch.log1p(torch.exp(real - fake)).mean().item())
    with pytest.raises(ValueError, match="real logits"):
        g_loss("rpgan", fake)


def test_ema_update_and_warmup() -> None:
    from ganforge.train.ema import EMA

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9, start=1)
    before = ema.model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model, step=0)  # before start: a copy
    assert torch.equal(ema.model[0].weight, model[0].weight)
    assert not torch.equal(ema.model[0].weight, before)
    prev = ema.model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model, step=1)
    assert torch.allclose(ema.model[0].weight, 0.9 * prev + 0.1 * model[0].weight)
    assert torch.equal(ema.model[1].running_mean, torch.full((2,), 3.0))  # buffers copied


def test_ema_rampup_shortens_the_half_life_early_in_training() -> None:
    """With ema_rampup r the half-life is min(ema_kimg k images, r x images shown), so the
    averaged weights track G closely at first and reach the configured decay later."""
    import ganforge as gf
    from ganforge.train.ema import EMA

    cfg = gf.load_config(None, {"batch_size": 32, "ema_kimg": 10.0, "ema_rampup": 0.05})
    plain = cfg.model_copy(update={"ema_rampup": None})
    assert cfg.ema_decay_at(0) == 0.0  # the first step copies G
    assert cfg.ema_decay_at(100) == pytest.approx(0.5 ** (32 / 160.0))  # 3,200 images x 0.05
    late = 10_000 // (32 * 0.05) + 10  # 0.05 x images shown is past 10k images
    assert cfg.ema_decay_at(int(late)) == pytest.approx(plain.ema_decay)
    assert plain.ema_decay_at(0) == plain.ema_decay
    # the EMA takes the step's decay
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, cfg.ema_decay_at)
    prev = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=100)
    d = cfg.ema_decay_at(100)
    assert torch.allclose(ema.model.weight, d * prev + (1 - d) * model.weight)
    with pytest.raises(ConfigError, match="ema_rampup"):
        gf.load_config(None, {"ema_rampup": 0})


def test_lr_schedules() -> None:
    from ganforge.train.gan import lr_factor

    assert lr_factor("constant", 500, 1000) == 1.0
    assert lr_factor("linear", 0, 1000) == 1.0 and lr_factor("linear", 750, 1000) == 0.25
    assert lr_factor("cosine", 500, 1000) == pytest.approx(0.5)
    assert lr_factor("cosine", 1000, 1000) == pytest.approx(0.0)
