"""DiffAugment and ADA: the ops, gradients, ADA's p, the recipes' use of them, resume."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch

import ganforge as gf
from ganforge.augment import Augmenter, build_augmenter, shift_images
from ganforge.checkpoint import load_state
from ganforge.config import AugmentConfig, RunConfig
from ganforge.errors import ConfigError
from ganforge.train import rundir

from .conftest import tiny_image_config
from .test_resume import _assert_identical

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_ADA = ["xflip", "rotate90", "translate", "scale", "rotate", "aniso", "fraction",
           "brightness", "contrast", "saturation", "cutout"]
GEOMETRIC = ["xflip", "rotate90", "translate", "scale", "rotate", "aniso", "fraction"]


def augmenter(kind: str = "ada", seed: int = 0, batch_size: int = 8, **augment: Any
              ) -> Augmenter:
    aug = build_augmenter(RunConfig(seed=seed, batch_size=batch_size,
                                    augment={"kind": kind, **augment}))
    assert aug is not None
    return aug


def images(n: int = 6, c: int = 3, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_no_augmenter_for_kind_none() -> None:
    assert build_augmenter(RunConfig()) is None


@pytest.mark.parametrize("kind,options,no_color", [
    ("diffaugment", {}, False),
    ("diffaugment", {"policy": ["translation", "cutout"]}, True),
    ("ada", {"ada_p": 1.0, "ada_ops": ALL_ADA}, False),
    ("ada", {"ada_p": 1.0, "ada_ops": [*GEOMETRIC, "cutout"]}, True),
])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shapes_dtype_and_gradients(kind: str, options: dict, no_color: bool,
                                    channels: int) -> None:
    aug = augmenter(kind, **options)
    x = images(c=channels).requires_grad_(True)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    assert not torch.equal(y, x)
    weights = torch.randn_like(y)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    assert grad.abs().sum() > 0  # gradients reach the input image (G, or reals for R1)
    if no_color:
        # geometric ops and cutout only move, interpolate or zero pixels: no new extremes
        assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5


def test_bf16_input_keeps_its_dtype() -> None:
    x = images().bfloat16()
    assert augmenter("ada", ada_p=1.0, ada_ops=ALL_ADA)(x).dtype == torch.bfloat16


def test_ada_with_p_zero_is_exactly_the_identity() -> None:
    aug = augmenter("ada", ada_p=0.0, ada_ops=ALL_ADA)
    x = images()
    assert torch.equal(aug(x), x)


def test_translation_moves_a_pixel_and_pads_with_zeros() -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[:, 0, 3, 4] = 1.0
    out = shift_images(x + 0.5, torch.tensor([1, -2]), torch.tensor([-1, 3]))
    assert out[0, 0, 4, 3] == 1.5 and out[1, 0, 1, 7] == 1.5
    assert out[0, 0, 0].eq(0).all() and out[0, 0, :, 7].eq(0).all()  # shifted-in zeros
    assert out[1, 0, 6:].eq(0).all() and out[1, 0, :, :3].eq(0).all()
    # the DiffAugment op: every image is an integer shift of at most 1/8 of the side
    aug = augmenter("diffaugment", policy=["translation"])
    x = torch.zeros(64, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    out = aug(x)
    where = out.flatten(1).argmax(1)
    dy, dx = where // 16 - 8, where % 16 - 8
    assert out.flatten(1).sum(1).eq(1).all()
    assert dy.abs().max() == 2 and dx.abs().max() == 2  # 16 / 8
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 10  # per-sample shifts


def test_cutout_zeroes_one_square_of_half_the_side() -> None:
    aug = augmenter("diffaugment", policy=["cutout"])
    out = aug(torch.ones(32, 1, 16, 16))
    for img in out[:, 0]:
        zero = img == 0
        rows, cols = zero.any(1).nonzero().squeeze(1), zero.any(0).nonzero().squeeze(1)
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        # the zeros form one rectangle: contiguous rows and columns, fully zeroed
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        assert zero[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
        assert zero.sum() == len(rows) * len(cols)
    sizes = (out == 0).flatten(1).sum(1)
    assert (sizes == 64).sum() > 4  # unclipped squares are 8 x 8


def test_ada_xflip_and_rotate90_are_exact_pixel_permutations() -> None:
    x = images(n=64, side=8)
    out = augmenter("ada", ada_p=1.0, ada_ops=["xflip"])(x)
    flipped = torch.tensor([torch.allclose(o, i.flip(-1), atol=1e-5)
                            for o, i in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert (flipped | same).all() and flipped.sum() > 16 and same.sum() > 16  # i ~ U{0, 1}
    out = augmenter("ada", ada_p=1.0, ada_ops=["rotate90"])(x)
    for o, i in zip(out, x, strict=True):
        assert any(torch.allclose(o, torch.rot90(i, k, (1, 2)), atol=1e-5) for k in range(4))


def test_ada_integer_translation_matches_a_shift_inside_the_image() -> None:
    x = images(n=32, side=16)
    out = augmenter("ada", ada_p=1.0, ada_ops=["translate"])(x)
    moved = 0
    for o, i in zip(out, x, strict=True):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.roll(i, (dy, dx), (1, 2))
                inner = (slice(None), slice(2, 14), slice(2, 14))  # away from the reflection
                if torch.allclose(o[inner], shifted[inner], atol=1e-5):
                    found, moved = True, moved + int((dy, dx) != (0, 0))
        assert found
    assert moved > 10


def test_per_sample_independence_and_seeded_reproducibility() -> None:
    x = images(n=1).expand(16, -1, -1, -1)
    for kind, opts in (("diffaugment", {}), ("ada", {"ada_p": 0.8, "ada_ops": ALL_ADA})):
        a = augmenter(kind, **opts)(x)
        assert len({tuple(img.flatten()[:50].tolist()) for img in a}) == 16
        b = augmenter(kind, **opts)(x)
        assert torch.equal(a, b)  # same run seed, same augmentation
        c = augmenter(kind, seed=1, **opts)(x)
        assert not torch.equal(a, c)


def test_shared_generator_repeats_an_augmentation() -> None:
    aug = augmenter("ada", ada_p=0.7, ada_ops=ALL_ADA)
    x, seed = images(), aug.draw_seed()
    a = aug(x, torch.Generator().manual_seed(seed))
    b = aug(x, torch.Generator().manual_seed(seed))
    assert torch.equal(a, b) and not torch.equal(a, aug(x))


def test_draws_cover_the_global_batch_and_each_rank_keeps_its_slice() -> None:
    cfg = AugmentConfig(kind="diffaugment")
    x = images(n=8)
    whole = Augmenter(cfg, seed=3, batch_size=8)(x)
    parts = [Augmenter(cfg, seed=3, batch_size=8, rank=r, world=2)(x[4 * r:4 * r + 4])
             for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)


# ---------------------------------------------------------------- ADA's p
def test_ada_p_rises_when_d_is_sure_of_the_reals_and_falls_below_target() -> None:
    aug = augmenter("ada", batch_size=10, ada_interval=2, ada_kimg=0.1, ada_target=0.6)
    step = 10 * 2 / 100  # batch * interval / (kimg * 1000)
    aug.observe(torch.ones(10))
    assert aug.p == 0.0  # adjusted every ada_interval D steps
    aug.observe(torch.ones(10))
    assert aug.p == pytest.approx(step) and aug.rt == 1.0
    for _ in range(20):
        aug.observe(torch.full((10,), 3.0))
    assert aug.p == 1.0  # clipped at ada_max_p
    logits = torch.tensor([1.0] * 5 + [-1.0] * 5)  # r_t = 0 < 0.6
    aug.observe(logits)
    aug.observe(logits)
    assert aug.rt == 0.0 and aug.p == pytest.approx(1 - step)
    capped = augmenter("ada", batch_size=10, ada_interval=1, ada_kimg=0.01, ada_max_p=0.3)
    capped.observe(torch.ones(10))
    assert capped.p == 0.3
    falling = augmenter("ada", ada_p=0.01, ada_interval=1, ada_kimg=0.01)
    falling.observe(-torch.ones(4))
    assert falling.p == 0.0  # clipped at 0


def test_ada_statistics_are_reduced_over_processes() -> None:
    """Distributed, every rank adjusts p from the combined counts (a mean over ranks here:
    one rank all positive, the other all negative, gives r_t = 0)."""
    calls = []

    def reduce(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.clone())
        return (t + torch.tensor([-t[0].item(), 0.0])) / 1  # the other rank cancels the signs

    aug = build_augmenter(RunConfig(augment={"kind": "ada", "ada_interval": 2}), 0, 2, reduce)
    assert aug is not None
    aug.observe(torch.ones(4))
    assert not calls  # no collective between adjustments
    aug.observe(torch.ones(4))
    assert len(calls) == 1 and aug.rt == 0.0 and aug.p == 0.0


def test_state_is_plain_and_restores_p_statistics_and_rng() -> None:
    aug = augmenter("ada", ada_p=0.4, ada_interval=3, ada_ops=ALL_ADA)
    aug.observe(torch.ones(8))
    state = aug.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    x = images()
    expected = aug(x)
    aug.observe(torch.ones(8))
    aug.observe(torch.ones(8))
    other = augmenter("ada", ada_p=0.0, ada_interval=3, ada_ops=ALL_ADA)
    other.load_state_dict(loaded)
    assert other.p == 0.4
    assert torch.equal(other(x), expected)
    other.observe(torch.ones(8))
    other.observe(torch.ones(8))
    assert other.p == aug.p > 0.4  # the saved partial interval counted


# ---------------------------------------------------------------- in training
def test_augmented_training_logs_p_and_resumes_exactly(tmp_path: Path) -> None:
    """A tiny ADA run with R1 (through the augmentation), stopped mid-interval and resumed,
    ends bit-identical to an uninterrupted run, p and augmentation RNG included."""
    cfg = tiny_image_config(tmp_path, steps=6, log_every=3, r1_gamma=0.1, batch_size=16,
                            augment={"kind": "ada", "ada_p": 0.3, "ada_interval": 2,
                                     "ada_kimg": 0.5, "ada_target": 0.1,
                                     "ada_ops": ALL_ADA})
    whole = gf.train({**cfg, "checkpoint_every": 3}, run_dir=tmp_path / "whole")
    part = gf.train({**cfg, "steps": 3}, run_dir=tmp_path / "part")  # stops mid-interval
    gf.resume(part.dir, steps=6)
    a, _ = load_state(rundir.state_path(whole.dir, 6))
    b, _ = load_state(rundir.state_path(part.dir, 6))
    _assert_identical(a["recipe"], b["recipe"])
    assert a["recipe"]["augment"]["p"] != 0.3  # p moved (up or down) during the run

    def logged(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("steps_per_s", "time_s")}
                for r in rundir.read_metrics(run)]

    records = logged(whole.dir)
    assert len(records) == 2 and all("augment_p" in r and "ada_rt" in r for r in records)
    assert records == logged(part.dir)


@pytest.mark.parametrize("recipe,extra", [
    ("gan", {"loss": "wgan-gp", "n_critic": 2}),
    ("egan", {"egan": {"mutations": ["minimax", "lsgan"]}}),
])
def test_recipes_train_with_diffaugment(tmp_path: Path, recipe: str, extra: dict) -> None:
    run = gf.train(tiny_image_config(tmp_path, steps=3, log_every=3, recipe=recipe,
                                     augment={"kind": "diffaugment"}, **extra))
    record = run.metrics[-1]
    assert "ada_rt" in record and "augment_p" not in record
    assert torch.isfinite(torch.tensor(record["loss_d"]))


def test_infogan_augments_only_the_adversarial_path(tmp_path: Path) -> None:
    """D judges augmented batches; Q reads the codes from the un-augmented fakes."""
    from ganforge.registry import get_model
    from ganforge.train.infogan import InfoGANRecipe

    options = {"g_width": 8, "d_width": 8, "noise_dim": 8, "q_width": 16,
               "categorical": [4], "continuous": 1, "resolution": 16, "channels": 1}
    cfg = RunConfig(model="infogan", recipe="infogan", batch_size=8, resolution=16,
                    augment={"kind": "ada", "ada_p": 1.0}, model_options=options)
    spec = get_model("infogan")
    recipe = InfoGANRecipe(cfg, spec, spec.make_config(options), torch.device("cpu"))
    seen: list[torch.Tensor] = []
    recipe.D.judge = lambda x, _orig=recipe.D.judge: (seen.append(x), _orig(x))[1]
    x = images(n=8, c=1)
    fake = recipe.G(recipe._latents(8))
    recipe._d_step(0, x, None, fake)
    assert len(seen) == 1 and torch.equal(seen[0], fake.detach())  # Q: un-augmented fakes
    run = gf.train(tiny_image_config(tmp_path, model="infogan", recipe="infogan", steps=2,
                                     log_every=2, augment={"kind": "diffaugment"},
                                     model_options={k: v for k, v in options.items()
                                                    if k not in ("resolution", "channels")}))
    assert "info_loss" in run.metrics[-1] and "ada_rt" in run.metrics[-1]


def test_augmentation_changes_what_d_sees(tmp_path: Path) -> None:
    """Same seed and weights, with and without DiffAugment: D's first logits differ."""
    plain = gf.train(tiny_image_config(tmp_path / "a", steps=1, log_every=1))
    augmented = gf.train(tiny_image_config(tmp_path / "b", steps=1, log_every=1,
                                           augment={"kind": "diffaugment"}))
    for key in ("d_real", "d_fake"):
        assert plain.metrics[0][key] != augmented.metrics[0][key]


def test_points_models_refuse_augmentation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"augment\.kind=none") as err:
        gf.train({"data": "ring", "model": "mlp", "steps": 1, "out": str(tmp_path),
                  "progress": False, "augment": {"kind": "ada"}})
    assert "points" in str(err.value) and "image model" in str(err.value)
    assert not any(tmp_path.iterdir())  # refused before anything was written
