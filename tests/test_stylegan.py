"""StyleGAN (v1) and progressive growing: shapes, config errors, AdaIN, truncation and
mixing through the shared W-space tools, the growth schedule, fade-in continuity, unused
layers above the working resolution, exact resume across a fade, learning."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import ganforge as gf
from ganforge.checkpoint import load_state
from ganforge.errors import ConfigError
from ganforge.generator import build_generator
from ganforge.models.progressive import fade_images, fade_reals, lod_at, set_lod
from ganforge.models.stylegan import AdaIN, StyleGANGenerator
from ganforge.nn.style import NoiseInjection
from ganforge.registry import get_model
from ganforge.train import rundir

from .conftest import digit_fids, tiny_image_config
from .test_resume import _assert_identical

TINY = {"channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16,
        "mapping_layers": 2}
GROWING = {**TINY, "progressive": True, "start_resolution": 4, "phase_kimg": 0.064}

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(**options: object) -> tuple[StyleGANGenerator, torch.nn.Module]:
    spec = get_model("stylegan")
    cfg = spec.make_config({**TINY, **options})
    return spec.build_generator(cfg), spec.build_discriminator(cfg)


def _noisy(g: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, NoiseInjection):
                m.strength.fill_(0.5)


# ------------------------------------------------------------------ networks
@pytest.mark.parametrize(("resolution", "channels", "num_classes"),
                         [(16, 1, None), (32, 3, 10), (64, 1, None)])
def test_shapes_and_conditioning(resolution: int, channels: int, num_classes: int | None
                                 ) -> None:
    torch.manual_seed(0)
    g, d = _pair(resolution=resolution, channels=channels, num_classes=num_classes)
    y = None if num_classes is None else torch.tensor([0, 1, 2])
    x = g(torch.randn(3, 16), y)
    assert x.shape == (3, channels, resolution, resolution) and torch.isfinite(x).all()
    assert g.num_ws == 2 * int(math.log2(resolution)) - 2
    assert d(x, y).shape == (3,)
    if num_classes:  # the class changes the image and the judgement
        assert not torch.allclose(g.eval()(torch.zeros(1, 16) + 1, torch.tensor([0])),
                                  g(torch.zeros(1, 16) + 1, torch.tensor([1])))
        with pytest.raises(ValueError, match="class-conditional"):
            g(torch.randn(3, 16))


@pytest.mark.parametrize(("options", "match"), [
    ({"resolution": 24}, "stylegan supports square images"),
    ({"progressive": True, "start_resolution": 12}, "start_resolution must be a power of two"),
    ({"progressive": True, "start_resolution": 64}, "start_resolution must be a power of two"),
    ({"progressive": True, "start_resolution": 2}, "start_resolution"),
    ({"phase_kimg": 0}, "phase_kimg"),
])
def test_bad_options_are_clear_config_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_model("stylegan").make_config({**TINY, **options})


def test_adain_sets_each_channels_mean_and_spread_from_the_style() -> None:
    torch.manual_seed(0)
    adain = AdaIN(4, 8)
    x = 3.0 + 5.0 * torch.randn(2, 4, 8, 8)
    style = torch.randn(2, 8)
    out = adain(x, adain.affine(style))
    scale, bias = adain.affine(style).chunk(2, dim=1)
    assert torch.allclose(out.mean(dim=(2, 3)), bias, atol=1e-5)
    assert torch.allclose(out.std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-4)
    # the input's own statistics are gone: another mean and scale give the same output
    assert torch.allclose(adain(-1.0 + 0.1 * x, adain.affine(style)), out, atol=1e-4)
    fresh = AdaIN(4, 8)
    with torch.no_grad():
        fresh.affine.weight.zero_()
    plain = fresh(x, fresh.affine(style))  # scale starts at 1, bias at 0
    assert torch.allclose(plain, F.instance_norm(x, eps=1e-8), atol=1e-5)


def test_psi_zero_gives_one_image_and_coarse_mixing_keeps_the_other_styles() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=64)
    _noisy(g)
    g.train()
    g.mapping(torch.randn(64, 16))  # move w_avg away from 0
    g.eval()
    a = g(torch.randn(3, 16), truncation=0.0)
    b = g(torch.randn(3, 16), truncation=0.0)
    assert torch.allclose(a, a[:1].expand_as(a), atol=1e-6) and torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(g(torch.randn(3, 16))[0], g(torch.randn(3, 16))[0])
    assert g.layer_ranges() == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7],
                                "fine": [8, 9]}
    dst, src = g.mapping(torch.randn(2, 16)), g.mapping(torch.randn(2, 16))
    s_dst, s_src, s_mix = g.styles(dst), g.styles(src), g.styles(g.mix(dst, src, "coarse"))
    assert len(s_mix) == 2 * 5  # two AdaIN layers per resolution, 4..64
    for name, style in s_mix.items():
        coarse = int(name.split(".")[0][1:]) <= 8
        assert torch.equal(style, (s_src if coarse else s_dst)[name]), name


def test_noise_is_random_in_training_and_fixed_in_eval() -> None:
    torch.manual_seed(0)
    g, _ = _pair(resolution=16)
    _noisy(g)
    ws = g.mapping(torch.randn(2, 16))
    g.train()
    assert not torch.equal(g.synthesis(ws), g.synthesis(ws))
    g.eval()
    assert torch.equal(g.synthesis(ws), g.synthesis(ws))
    assert not torch.equal(g.synthesis(ws, "none"), g.synthesis(ws, "const"))


# ------------------------------------------------------------------ growing
def test_growth_schedule_fades_in_one_resolution_per_two_phases() -> None:
    # 8 -> 32 px, 1,000 images a phase: stable 8, fade 16, stable 16, fade 32, stable 32
    expected = {0: 2.0, 999: 2.0, 1000: 2.0, 1250: 1.75, 2000: 1.0, 2999: 1.0,
                3500: 0.5, 4000: 0.0, 10_000: 0.0}
    for images, lod in expected.items():
        assert lod_at(images, 32, 8, 1.0) == pytest.approx(lod), images
    assert lod_at(0, 32, 32, 1.0) == 0.0


def test_growing_networks_work_at_the_scheduled_resolution_only() -> None:
    """At lod 2 (8 px of 32) G's output is made of 4x4 blocks, D reads only the 4x4
    means of its input, and no layer above 8 px gets a gradient."""
    torch.manual_seed(0)
    g, d = _pair(resolution=32, progressive=True, start_resolution=8)
    assert float(g.synthesis.lod) == 2.0 and float(d.lod) == 2.0  # a new pair starts small
    x = g(torch.randn(4, 16))
    assert x.shape == (4, 1, 32, 32)
    blocks = F.avg_pool2d(x, 4)
    assert torch.allclose(F.interpolate(blocks, scale_factor=4, mode="nearest"), x, atol=1e-6)
    sharp = torch.randn(4, 1, 32, 32)
    flat = F.interpolate(F.avg_pool2d(sharp, 4), scale_factor=4, mode="nearest")
    assert torch.allclose(d(sharp), d(flat), atol=1e-5)
    (x.mean() + d(x).mean()).backward()
    for net, prefix in ((g, "synthesis."), (d, "")):
        for name, p in net.named_parameters():
            if not name.startswith(prefix) or "b4" in name or "b8" in name \
                    or "epilogue" in name or "mapping" in name:
                continue
            assert p.grad is None, name  # 16 and 32 px layers (and their toRGB/fromRGB)
    set_lod(0.0, g, d)
    full = g(torch.randn(4, 16))
    assert not torch.allclose(F.interpolate(F.avg_pool2d(full, 4), scale_factor=4), full,
                              atol=1e-2)


def test_fade_in_is_continuous_at_both_ends() -> None:
    """lod k + f blends the new resolution in: f -> 1 gives the previous level's G output
    and D judgement, f = 0 the new level's."""
    torch.manual_seed(0)
    g, d = _pair(resolution=32, progressive=True, start_resolution=8)
    g.eval()
    z, x = torch.randn(4, 16), torch.randn(4, 1, 32, 32)

    def at(lod: float) -> tuple[torch.Tensor, torch.Tensor]:
        set_lod(lod, g, d)
        return g(z), d(x)

    for level in (2.0, 1.0):
        g_prev, d_prev = at(level)
        g_near, d_near = at(level - 1e-4)
        g_new, d_new = at(level - 1.0)
        g_start, d_start = at(level - 1.0 + 1e-6)  # just above the new level
        assert torch.allclose(g_near, g_prev, atol=1e-3) and torch.allclose(d_near, d_prev,
                                                                            atol=1e-3)
        assert torch.allclose(g_start, g_new, atol=1e-4) and torch.allclose(d_start, d_new,
                                                                            atol=1e-4)
        assert not torch.allclose(g_new, g_prev, atol=1e-2)


def test_reals_are_faded_like_the_generator_output() -> None:
    """During a fade-in G emits lerp(new, upscaled previous, f); the reals D sees get the
    same blend of their own two resolutions (ProGAN), and D itself fades nothing."""
    torch.manual_seed(0)
    g, d = _pair(resolution=32, progressive=True, start_resolution=8)
    x = torch.randn(3, 1, 32, 32)
    set_lod(1.25, g, d)  # working at 16 px, a quarter of the way back to 8 px
    x16 = F.avg_pool2d(x, 2)
    blend = torch.lerp(x16, F.interpolate(F.avg_pool2d(x16, 2), scale_factor=2), 0.25)
    expected = F.interpolate(blend, scale_factor=2, mode="nearest")
    assert torch.allclose(fade_reals(x, d), expected, atol=1e-6)
    assert torch.allclose(fade_images(x16, 0.25), blend)
    set_lod(1.0, g, d)
    assert torch.allclose(fade_reals(x, d), F.interpolate(x16, scale_factor=2), atol=1e-6)
    _, still = _pair(resolution=32)
    assert fade_reals(x, still) is x  # a network that does not grow sees the reals as is


def test_mixing_crosses_over_only_among_the_layers_that_run(tmp_path: Path) -> None:
    from ganforge.train.run import _build, load_data

    cfg = gf.load_config(None, _growing_cfg(tmp_path, model_options={
        **GROWING, "phase_kimg": 1000.0}, stylegan2={"mixing_prob": 1.0, "pl_weight": 0.0}))
    recipe = _build(cfg, tmp_path / "run", load_data(cfg)).recipe
    recipe._begin_step(0)  # 4 px of 16: 2 of the 6 ws run
    _, cutoff = recipe._mixing(64)
    assert cutoff is not None and set(cutoff.tolist()) == {1}
    set_lod(0.0, recipe.G, recipe.D)
    _, cutoff = recipe._mixing(256)
    assert cutoff is not None and set(cutoff.tolist()) == {1, 2, 3, 4, 5}


def _growing_cfg(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return tiny_image_config(tmp_path, **{"model": "stylegan", "recipe": "stylegan2",
                                          "model_options": GROWING, "batch_size": 16,
                                          "r1_gamma": 1.0,
                                          "stylegan2": {"r1_interval": 3, "pl_weight": 0.0},
                                          **overrides})


def test_training_grows_on_schedule_and_resumes_bit_identically_mid_fade(tmp_path: Path
                                                                          ) -> None:
    # 16 px from 4 px, 64 images a phase at batch 16: stable 4 px for steps 0-3, fading
    # to 8 px over steps 4-7, stable 8 px from step 8; 5 + 5 steps are cut mid-fade
    cfg = _growing_cfg(tmp_path, steps=10, log_every=1)
    whole = gf.train({**cfg, "checkpoint_every": 5}, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 5}, run_dir=tmp_path / "part")
    gf.resume(part.dir, steps=10)
    a, _ = load_state(rundir.state_path(whole.dir, 10))
    b, _ = load_state(rundir.state_path(part.dir, 10))
    _assert_identical(a["recipe"], b["recipe"])
    lods = [m["lod"] for m in rundir.read_metrics(whole.dir)]
    assert lods == pytest.approx([lod_at(s * 16, 16, 4, 0.064) for s in range(10)])
    assert lods[0] == 2.0 and 1.0 < lods[5] < 2.0 and lods[-1] == 1.0  # grew to 8 px
    g = whole.load_generator()  # the exported EMA generator keeps the level it reached
    assert float(g.module.synthesis.lod) == pytest.approx(lods[-1])
    assert g.sample(2, seed=0).shape == (2, 1, 16, 16)


def test_trains_with_the_plain_gan_recipe_too(tmp_path: Path) -> None:
    run = gf.train(tiny_image_config(tmp_path, model="stylegan", model_options=TINY,
                                     steps=3, batch_size=8, r1_gamma=1.0))
    assert run.load_generator().sample(2, seed=0).shape == (2, 1, 16, 16)


# ------------------------------------------------------------------ learning
def test_tiny_growing_stylegan_on_digits_improves_quality(tmp_path: Path) -> None:
    """Justification: grown from 4 to 16 px in 300 steps, the Fréchet distance of
    8x8-pooled pixels to the real digits falls far below the untrained G's and below
    the mean digit's (a blurry-average cheat)."""
    opts = {**GROWING, "phase_kimg": 1.0}  # 4 px: 1k images, fades/stables of 1k to 16 px
    cfg = _growing_cfg(tmp_path, steps=300, batch_size=32, r1_gamma=0.1, ema_kimg=1.0,
                       model_options=opts,
                       stylegan2={"r1_interval": 16, "pl_weight": 0.0},
                       g_optim={"lr": 5e-3, "betas": [0.0, 0.99]},
                       d_optim={"lr": 5e-3, "betas": [0.0, 0.99]})
    run = gf.train(cfg)
    assert rundir.read_metrics(run.dir)[-1]["lod"] == 0.0  # fully grown
    trained = run.load_generator().sample(1000, seed=1)
    torch.manual_seed(0)
    untrained = build_generator("stylegan", {**opts, "resolution": 16}).eval()
    set_lod(0.0, untrained)
    with torch.no_grad():
        initial = untrained(torch.randn(1000, untrained.z_dim))
    fid, _, _ = digit_fids(trained, initial)
    assert fid["trained"] < 0.25 * fid["untrained"], fid
    assert fid["trained"] < fid["mean"], fid
