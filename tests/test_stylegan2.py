"""StyleGAN2 networks and their W-space tools: shapes, config errors, demodulation,
truncation, style mixing, w_avg tracking, noise modes, equalized lr, export round trip."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.nn.style import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    ModulatedConv2d,
    NoiseInjection,
    downsample2d,
    fir_kernel,
    modulated_conv2d,
    upsample2d,
)
from ganforge.registry import get_model, model_names

TINY = {"channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16,
        "mapping_layers": 2}

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(**options: object) -> tuple[StyleGAN2Generator, torch.nn.Module]:
    spec = get_model("stylegan2")
    cfg = spec.make_config({**TINY, **options})
    return spec.build_generator(cfg), spec.build_discriminator(cfg)


def _noisy(g: StyleGAN2Generator) -> StyleGAN2Generator:
    """Give every noise input a non-zero strength (they start at 0)."""
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, NoiseInjection):
                m.strength.fill_(0.5)
    return g


@pytest.mark.parametrize(("resolution", "channels", "num_classes"),
                         [(16, 1, None), (32, 3, 10), (64, 1, 3), (64, 3, None)])
def test_shapes_and_conditioning(resolution: int, channels: int, num_classes: int | None
                                 ) -> None:
    torch.manual_seed(0)
    g, d = _pair(resolution=resolution, channels=channels, num_classes=num_classes)
    assert "stylegan2" in model_names() and get_model("stylegan2").kind == "image"
    assert g.num_ws == 2 * int(math.log2(resolution)) - 2
    z = g.sample_latents(4, generator=torch.Generator().manual_seed(0), truncation=0.5)
    y = None if num_classes is None else torch.arange(4) % num_classes
    ws = g.mapping(z, y)
    assert ws.shape == (4, g.num_ws, 16)
    x = g(z, y)
    assert x.shape == (4, channels, resolution, resolution) and torch.isfinite(x).all()
    assert g.sample_shape == (channels, resolution, resolution)
    assert d(x, y).shape == (4,)
    if num_classes is not None:
        g.eval()
        assert not torch.allclose(g(z, y), g(z, (y + 1) % num_classes))
        with pytest.raises(ValueError, match="class-conditional"):
            g(z)
    else:
        with pytest.raises(ValueError, match="unconditional"):
            g(z, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ws must have shape"):
        g.synthesis(ws[:, :-1])


@pytest.mark.parametrize("resolution", [8, 48, 2048])
def test_impossible_sizes_and_bad_options_are_clear_config_errors(resolution: int) -> None:
    spec = get_model("stylegan2")
    with pytest.raises(ConfigError, match=r"stylegan2 supports square images of 16, 32, 64, "
                       r"128, 256, 512, 1024 px; got"):
        spec.make_config({"resolution": resolution})
    with pytest.raises(ConfigError, match="mapping_layers"):
        spec.make_config({"mapping_layers": 0})
    with pytest.raises(ConfigError, match="mbstd_channels"):
        spec.make_config({"channel_max": 16, "mbstd_channels": 3})
    with pytest.raises(ConfigError, match="g_width"):
        spec.make_config({"g_width": 8})


def test_fused_and_unfused_modulated_convs_agree() -> None:
    torch.manual_seed(0)
    x, w, s = torch.randn(3, 5, 6, 6), torch.randn(7, 5, 3, 3), torch.randn(3, 5)
    k = fir_kernel()
    for demod in (True, False):
        for up in (True, False):
            a = modulated_conv2d(x, w, s, demod, up, k, fused=True)
            b = modulated_conv2d(x, w, s, demod, up, k, fused=False)
            assert a.shape == (3, 7, 12 if up else 6, 12 if up else 6)
            assert torch.allclose(a, b, atol=1e-4)
            # sample 0 by hand: its own modulated weight (and FIR upsampling first)
            w0 = w * s[0][None, :, None, None]
            if demod:
                w0 = w0 / w0.square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
            x0 = upsample2d(x[:1], k) if up else x[:1]
            ref = F.conv2d(x0, w0, padding=1)
            assert torch.allclose(a[:1, :, 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-4)
    torch.manual_seed(1)
    g_f, _ = _pair(resolution=16, fused_modconv=True)
    torch.manual_seed(1)
    g_u, _ = _pair(resolution=16, fused_modconv=False)
    z = torch.randn(3, 16)
    assert torch.allclose(g_f.eval()(z), g_u.eval()(z), atol=1e-4)


def test_fir_resampling_keeps_constants_and_sizes() -> None:
    k = fir_kernel()
    ones = torch.ones(2, 3, 8, 8)
    up, down = upsample2d(ones, k), downsample2d(ones, k)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1))  # away from the zero border
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1))
    conv = EqualConv2d(3, 5, 3, down=True)
    assert conv(ones).shape == (2, 5, 4, 4)


def test_demodulation_keeps_unit_variance() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, demodulate=True)
    plain = ModulatedConv2d(64, 64, 3, demodulate=False)
    plain.weight.data.copy_(conv.weight.data)
    x = torch.randn(8, 64, 16, 16)
    styles = 1.0 + 3.0 * torch.rand(8, 64)  # very uneven per-channel gains
    with torch.no_grad():
        out = conv(x, styles)[..., 1:-1, 1:-1]  # interior: the zero padding lowers the edge
        raw = plain(x, styles)[..., 1:-1, 1:-1]
    per_channel = out.var(dim=(0, 2, 3))
    assert out.var().item() == pytest.approx(1.0, abs=0.05)
    assert per_channel.min() > 0.8 and per_channel.max() < 1.2
    assert raw.var().item() > 4.0  # without demodulation the styles' scale passes through


def test_psi_zero_gives_one_image_for_every_seed() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=16)
    _noisy(g)
    g.train()
    g.mapping(torch.randn(64, 16))  # move w_avg away from 0
    g.eval()
    zs = [g.sample_latents(3, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    for mode in ("const", "none"):
        a, b = (g(z, truncation=0.0, noise_mode=mode) for z in zs)
        assert torch.allclose(a, a[:1].expand_as(a), atol=1e-6)
        assert torch.allclose(a, b, atol=1e-6)
    ws = g.mapping(zs[0], truncation=0.0)
    assert torch.allclose(ws, g.mapping.w_avg.expand_as(ws))
    # psi applies below the cutoff only; psi = 1 changes nothing
    cut = g.mapping(zs[0], truncation=0.0, truncation_cutoff=2)
    full = g.mapping(zs[0])
    assert torch.allclose(cut[:, :2], ws[:, :2]) and torch.equal(cut[:, 2:], full[:, 2:])
    assert torch.equal(g.mapping(zs[0], truncation=1.0), full)
    half = g.mapping(zs[0], truncation=0.5)
    assert torch.allclose(half, 0.5 * (full + g.mapping.w_avg), atol=1e-6)
    with pytest.raises(ConfigError, match="finite"):
        g(zs[0], truncation=float("nan"))


def test_coarse_mixing_changes_only_coarse_styles() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=64)
    g.eval()
    assert g.layer_ranges() == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7],
                                "fine": [8, 9]}
    assert _pair(resolution=32)[0].layer_ranges()["fine"] == []  # by absolute resolution
    assert _pair(resolution=16)[0].layer_ranges()["middle"] == [4, 5]
    dst = g.mapping(torch.randn(2, 16))
    src = g.mapping(torch.randn(2, 16))
    mixed = g.mix(dst, src, "coarse")
    s_dst, s_src, s_mix = g.styles(dst), g.styles(src), g.styles(mixed)
    assert len(s_mix) == 3 * 5 - 1  # conv0 (not at 4x4), conv1, torgb per resolution
    for name, style in s_mix.items():
        res = int(name.split(".")[0][1:])
        if res <= 8:
            assert torch.equal(style, s_src[name]) and not torch.equal(style, s_dst[name])
        else:
            assert torch.equal(style, s_dst[name])  # middle and fine: exactly unchanged
    assert not torch.allclose(g.synthesis(mixed, "const"), g.synthesis(dst, "const"))
    assert torch.equal(g.mix(dst, src, slice(None)), src)
    assert torch.equal(g.mix(dst, src, [8, 9])[:, 8:], src[:, 8:])
    assert torch.equal(g.mix(dst, src[:1], 0)[:, 0], src[:1, 0].expand(2, -1))
    mask = torch.zeros(g.num_ws, dtype=torch.bool)
    mask[:4] = True
    assert torch.equal(g.mix(dst, src, mask), mixed)
    with pytest.raises(ValueError, match="unknown layer range"):
        g.mix(dst, src, "textures")


def test_w_avg_tracks_mapped_w_in_training_mode_only() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=16)
    z = torch.randn(256, 16)
    g.eval()
    target = g.mapping(z)[:, 0].mean(dim=0)
    assert torch.equal(g.mapping.w_avg, torch.zeros(16))  # eval: no update
    g.train()
    dist = [(g.mapping.w_avg - target).norm().item()]
    for _ in range(20):
        g.mapping(z)
        dist.append((g.mapping.w_avg - target).norm().item())
    assert all(b < a for a, b in itertools.pairwise(dist))
    expected = (1 - 0.995**20) * target  # lerp from 0 towards a fixed mean
    assert torch.allclose(g.mapping.w_avg, expected, atol=1e-5)
    frozen = g.mapping.w_avg.clone()
    g.eval()
    g(torch.randn(8, 16))
    assert torch.equal(g.mapping.w_avg, frozen)


def test_noise_modes() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=16)
    _noisy(g).eval()
    z = torch.randn(2, 16)
    const = g(z, noise_mode="const")
    assert torch.equal(const, g(z, noise_mode="const"))
    assert torch.equal(const, g(z))  # "auto" is const in eval mode
    r1, r2 = g(z, noise_mode="random"), g(z, noise_mode="random")
    assert not torch.allclose(r1, r2)
    seeded = [g(z, noise_mode="random", noise_generator=torch.Generator().manual_seed(3))
              for _ in range(2)]
    assert torch.equal(*seeded)
    none = g(z, noise_mode="none")
    assert not torch.allclose(none, const) and not torch.allclose(none, r1)
    assert any(k.endswith("noise.noise_const") for k in g.state_dict())  # saved
    with pytest.raises(ValueError, match="noise_mode"):
        g(z, noise_mode="fresh")  # type: ignore[arg-type]


def test_equalized_lr_runtime_scale() -> None:
    torch.manual_seed(0)
    lin = EqualLinear(64, 32, lr_mul=0.01, bias_init=1.0)
    assert lin.weight_gain == pytest.approx(0.01 / math.sqrt(64))
    assert lin.weight.std().item() == pytest.approx(100.0, rel=0.1)  # stored N(0, 1/lr^2)
    x = torch.randn(5, 64)
    ref = F.linear(x, lin.weight * 0.01 / 8.0, lin.bias * 0.01)
    assert torch.allclose(lin(x), ref)
    assert torch.allclose(lin.bias * lin.lr_mul, torch.ones(32))  # effective bias_init
    conv = EqualConv2d(16, 8, 3)
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(16 * 9))
    assert ModulatedConv2d(16, 8, 3).weight_gain == pytest.approx(1 / math.sqrt(16 * 9))
    g, _ = _pair(resolution=16, mapping_lr_mul=0.01)
    for layer in g.mapping.net:
        assert layer.weight_gain == pytest.approx(0.01 / math.sqrt(layer.in_features))


def test_minibatch_stddev_and_double_backward_through_d() -> None:
    torch.manual_seed(0)
    mb = MinibatchStdDev(group_size=4, num_channels=1)
    same = torch.randn(1, 3, 4, 4).repeat(8, 1, 1, 1)
    assert mb(same).shape == (8, 4, 4, 4) and mb(same)[:, 3].max() < 1e-3
    varied = mb(torch.randn(8, 3, 4, 4))[:, 3]
    assert varied.min() > 0.3 and torch.equal(varied[0], varied[2])  # i and i + N/G share
    assert mb(torch.randn(6, 3, 4, 4)).shape == (6, 4, 4, 4)  # falls back to groups of 3
    _, d = _pair(resolution=16, num_classes=3)
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    (grad,) = torch.autograd.grad(d(x, y).sum(), x, create_graph=True)
    grad.square().sum().backward()  # R1 needs the second derivative
    grads = [p.grad for p in d.parameters() if p.grad is not None]
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert d.from_rgb.weight.grad.abs().sum() > 0
    assert d.epilogue.head.embed.weight.grad.abs().sum() > 0


def test_export_round_trip_rebuilds_an_identical_generator(tmp_path: Path) -> None:
    from ganforge.checkpoint import save_generator
    from ganforge.generator import load

    torch.manual_seed(0)
    options = {**TINY, "resolution": 16, "channels": 3, "num_classes": 4}
    spec = get_model("stylegan2")
    g = spec.build_generator(spec.make_config(options))
    _noisy(g).train()
    g.mapping(torch.randn(32, 16), torch.arange(32) % 4)  # a non-zero w_avg
    g.eval()
    save_generator(tmp_path / "g.safetensors", g, "stylegan2", options, {"step": 3})
    loaded = load(tmp_path / "g.safetensors")
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[k], v), k
    z, y = torch.randn(3, 16), torch.tensor([0, 3, 1])
    assert torch.equal(loaded.module(z, y, noise_mode="const"), g(z, y, noise_mode="const"))
    # G.sample: plain N(0, 1) latents, psi in W, const noise in eval: reproducible by seed
    a = loaded.sample(3, seed=5, labels=[0, 3, 1], truncation=0.5)
    zs = g.sample_latents(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, g(zs, y, truncation=0.5))
    assert torch.equal(a, loaded.sample(3, seed=5, labels=[0, 3, 1], truncation=0.5))
    assert not torch.equal(a, loaded.sample(3, seed=5, labels=[0, 3, 1]))


def test_trains_in_the_generic_loop_and_resumes_bit_identically(tmp_path: Path) -> None:
    """Random noise (global RNG), w_avg (a buffer) and the EMA copy all travel with the
    training state: 2 + 2 conditional steps end exactly where 4 uninterrupted ones do."""
    import ganforge as gf
    from ganforge.checkpoint import load_state
    from ganforge.train import rundir

    from .conftest import tiny_image_config
    from .test_resume import _assert_identical

    cfg = tiny_image_config(tmp_path, model="stylegan2", conditional=True, steps=4,
                            r1_gamma=0.1, model_options=TINY)
    whole = gf.train({**cfg, "checkpoint_every": 2}, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 2}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=4)
    a, _ = load_state(rundir.state_path(whole.dir, 4))
    b, _ = load_state(rundir.state_path(part.dir, 4))
    assert a["recipe"]["G"]["mapping.w_avg"].abs().sum() > 0  # tracked during training
    _assert_identical(a["recipe"], b["recipe"])
    x = whole.load_generator().sample(4, seed=0, labels=[0, 1, 2, 3], truncation=0.7)
    assert x.shape == (4, 1, 16, 16) and torch.isfinite(x).all()


def test_path_length_penalty_matches_its_definition_and_falls() -> None:
    from ganforge.train.style_losses import path_length_penalty

    torch.manual_seed(0)
    a = torch.randn(8, 16)
    ws = torch.randn(5, 8)
    pen, mean = path_length_penalty(lambda w: (w @ a).view(-1, 1, 4, 4), ws, 0.5,
                                    decay=0.01, generator=torch.Generator().manual_seed(0))
    y = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(0)) / 4.0
    lengths = (y.flatten(1) @ a.t()).norm(dim=1)  # |J^T y| for the linear map w -> w A
    assert mean.item() == pytest.approx(0.5 + 0.01 * (lengths.mean().item() - 0.5))
    assert pen.item() == pytest.approx((lengths - mean).square().mean().item(), rel=1e-5)
    # on a tiny StyleGAN2 with fixed probe images the penalty is finite and falls
    g, _ = _pair(resolution=16)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    z = torch.randn(8, 16)
    pl_mean = torch.zeros(())
    history = []
    for step in range(20):
        pen, pl_mean = path_length_penalty(g, g.mapping(z), pl_mean,
                                           decay=1.0 if step == 0 else 0.01,
                                           generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(pen) and pen.requires_grad
        opt.zero_grad()
        pen.backward()
        opt.step()
        history.append(pen.item())
    assert sum(history[-5:]) / 5 < 0.3 * history[0], history


def test_discriminators_saved_before_the_shared_epilogue_still_load() -> None:
    """D's end layers moved into ``epilogue``; a state dict with the old keys loads."""
    torch.manual_seed(0)
    _, d = _pair(resolution=16, num_classes=3)
    old = {k.removeprefix("epilogue."): v for k, v in d.state_dict().items()}
    assert "head.embed.weight" in old and "fc.weight" in old
    _, fresh = _pair(resolution=16, num_classes=3)
    fresh.load_state_dict(old)
    x, y = torch.randn(2, 1, 16, 16), torch.tensor([0, 2])
    assert torch.equal(fresh(x, y), d(x, y))


@pytest.mark.parametrize("model", ["stylegan", "stylegan2"])
def test_output_tanh_squashes_the_same_linear_image(model: str) -> None:
    """``output_tanh`` is tanh of exactly the image the linear output gives (same
    weights), so it stays inside [-1, 1] where the linear image does not."""
    spec = get_model(model)
    linear, squashed = [], []
    for tanh, out in ((False, linear), (True, squashed)):
        torch.manual_seed(0)
        out.append(spec.build_generator(spec.make_config({**TINY, "output_tanh": tanh})).eval())
    z = torch.randn(16, linear[0].z_dim)
    with torch.no_grad():
        a, b = linear[0](z), squashed[0](z)
    assert not torch.allclose(a, b)
    assert torch.allclose(torch.tanh(a), b, atol=1e-6)
    assert b.abs().max() <= 1.0 < a.abs().max()
