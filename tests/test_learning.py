"""Learning, not just running: mode capture on the ring, digit quality rising on digits."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

import ganforge as gf
from ganforge.data import MIXTURE_STD, load_source, mixture_centers
from ganforge.generator import build_generator
from ganforge.metrics import mode_stats

from .conftest import tiny_image_config

# The ring setting that CI trains (about 45 s on 2 cores); see docs/benchmarks.md.
RING = {"data": "ring", "model": "mlp", "steps": 3000, "batch_size": 256, "n_critic": 2,
        "r1_gamma": 0.001, "g_optim": {"lr": 1e-3}, "d_optim": {"lr": 1e-3}}


def test_mlp_gan_captures_the_ring(tmp_path: Path) -> None:
    run = gf.train(RING, out=str(tmp_path), progress=False, sample_every=0,
                   checkpoint_every=0, seed=0)
    samples = run.load_generator().sample(2500, seed=123)
    stats = mode_stats(samples, mixture_centers("ring"), MIXTURE_STD["ring"])
    assert stats.modes_captured >= 7, stats
    assert stats.high_quality >= 0.80, stats
    # an untrained generator is nowhere near: the test can fail
    untrained = build_generator("mlp", run.config.model_options)
    with torch.no_grad():
        before = mode_stats(untrained(torch.randn(2500, untrained.z_dim)),
                            mixture_centers("ring"), MIXTURE_STD["ring"])
    assert before.high_quality < 0.05


def test_relativistic_pairing_gan_with_r1_r2_captures_the_ring(tmp_path: Path) -> None:
    """The R3GAN objective (relativistic pairing loss with R1 and R2) learns the ring too:
    G's loss needs D's logits of the real batch, and R2 penalises D's gradient at fakes."""
    run = gf.train({**RING, "steps": 2000, "loss": "rpgan", "r2_gamma": 0.001},
                   out=str(tmp_path), progress=False, sample_every=0, checkpoint_every=0,
                   seed=0, log_every=100)
    samples = run.load_generator().sample(2500, seed=123)
    stats = mode_stats(samples, mixture_centers("ring"), MIXTURE_STD["ring"])
    assert stats.modes_captured >= 7, stats
    assert stats.high_quality >= 0.80, stats
    assert all(row["r2"] > 0 for row in run.metrics if "r2" in row)
    assert sum("r2" in row for row in run.metrics) >= 10


def _digit_judge() -> tuple[LogisticRegression, torch.Tensor]:
    """A classifier on real digits (as seen at 16 px, pooled to 8x8) plus the real images."""
    real = load_source("digits", resolution=16)
    x, _ = real.batch(torch.arange(len(real)))
    feats = F.avg_pool2d(x, 2).flatten(1).numpy()
    clf = LogisticRegression(max_iter=2000).fit(feats, real.labels.numpy())
    return clf, x


def _quality(clf: LogisticRegression, real: torch.Tensor, fake: torch.Tensor) -> dict:
    probs = clf.predict_proba(F.avg_pool2d(fake, 2).flatten(1).numpy())
    classes = torch.bincount(torch.from_numpy(probs.argmax(1)), minlength=10)
    nn_dist = torch.cdist(fake.flatten(1), real.flatten(1)).min(1).values
    return {"confidence": float(probs.max(1).mean()), "nn_dist": float(nn_dist.mean()),
            "classes": int((classes >= 0.02 * len(fake)).sum())}


def test_dcgan_on_digits_improves_quality(tmp_path: Path) -> None:
    """Justification: a digit classifier is confident on digit-like images and unsure on
    noise; the nearest real digit gets closer as samples become realistic; and the
    predicted classes stay spread over most digits, so the rise is not mode collapse."""
    cfg = tiny_image_config(tmp_path, steps=600, batch_size=64,
                            model_options={"g_width": 16, "d_width": 16, "z_dim": 32})
    run = gf.train(cfg)
    clf, real = _digit_judge()
    trained = run.load_generator().sample(500, seed=1)
    torch.manual_seed(cfg["seed"])
    untrained = build_generator("dcgan", run.config.model_options).eval()
    with torch.no_grad():
        initial = untrained(torch.randn(500, untrained.z_dim))
    q0, q1 = _quality(clf, real, initial), _quality(clf, real, trained)
    assert q1["confidence"] > q0["confidence"] + 0.2, (q0, q1)
    assert q1["nn_dist"] < 0.6 * q0["nn_dist"], (q0, q1)
    assert q1["classes"] >= 8, q1
