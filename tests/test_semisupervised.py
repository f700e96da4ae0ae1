"""Semi-supervised GAN classifier (Salimans et al. 2016) on scikit-learn's 8x8 digits."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ganforge.apps.semisupervised import (
    SemiSupervisedClassifier,
    fit_semisupervised,
    fit_supervised,
    sample_per_class,
)
from ganforge.checkpoint import read_safetensors
from ganforge.data import load_source
from ganforge.errors import CheckpointError, ConfigError, DataError

# Narrow networks for 8x8 inputs: a few seconds per fit on one core.
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"d_widths": [256, 128, 128], "g_widths": [128, 128], "z_dim": 32, "steps": 600,
         "batch_size": 100, "decay_from": 0.5}
MARGIN = 0.02  # measured margins: see test_unlabeled_data_beats_supervised_only
TINY = {"d_widths": [32], "g_widths": [32], "z_dim": 8, "steps": 5, "batch_size": 16,
        "init_batch": 50}
Fits = Callable[[int], tuple[SemiSupervisedClassifier, SemiSupervisedClassifier]]


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    """Digits split by a fixed seed: 500 held-out test images, the rest for training."""
    bundle = load_source("digits", resolution=8)
    perm = torch.randperm(len(bundle), generator=torch.Generator().manual_seed(123))
    x_test, y_test = bundle.batch(perm[:500])
    x_train, y_train = bundle.batch(perm[500:])
    assert y_test is not None and y_train is not None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _labeled(d: dict[str, torch.Tensor], per_class: int, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    idx = sample_per_class(d["y_train"], per_class, seed)
    return d["x_train"][idx], d["y_train"][idx]


def test_sample_per_class_is_seeded_and_balanced(digits: dict[str, torch.Tensor]) -> None:
    a = sample_per_class(digits["y_train"], 5, seed=1)
    assert torch.equal(a, sample_per_class(digits["y_train"], 5, seed=1))
    assert not torch.equal(a, sample_per_class(digits["y_train"], 5, seed=2))
    assert torch.bincount(digits["y_train"][a], minlength=10).tolist() == [5] * 10


@pytest.fixture(scope="module")
def fitted(digits: dict[str, torch.Tensor]) -> Fits:
    """(semi-supervised GAN, supervised-only) fits on 5 labels per class, cached by seed."""

    @functools.cache
    def fit(seed: int) -> tuple[SemiSupervisedClassifier, SemiSupervisedClassifier]:
        x_lab, y_lab = _labeled(digits, 5, seed)
        return (fit_semisupervised(x_lab, y_lab, digits["x_train"], config=SMALL, seed=seed),
                fit_supervised(x_lab, y_lab, config=SMALL, seed=seed))

    return fit


@pytest.mark.parametrize("seed", [0, 1])
def test_unlabeled_data_beats_supervised_only(digits: dict[str, torch.Tensor], fitted: Fits,
                                              seed: int) -> None:
    """With 5 labels per class the GAN's unlabeled data clearly helps on held-out images.

    Measured margins (SSL-GAN minus supervised-only test accuracy) for seeds 0-5:
    +5.2, +2.6, +6.6, +4.2, +5.8, +3.8 points (SSL-GAN 88-94%, supervised 81-91%).
    """
    ssl, sup = fitted(seed)
    acc_ssl = ssl.score(digits["x_test"], digits["y_test"])
    acc_sup = sup.score(digits["x_test"], digits["y_test"])
    assert acc_ssl >= acc_sup + MARGIN, (acc_ssl, acc_sup)
    assert acc_ssl > 0.88


def test_real_probability_separates_digits_from_noise(digits: dict[str, torch.Tensor],
                                                      fitted: Fits) -> None:
    """D(x) = Z / (Z + 1) is high on held-out digits and low on uniform noise images."""
    clf = fitted(0)[0]
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real = clf.real_proba(digits["x_test"])
    assert real.shape == (500,) and bool(((real >= 0) & (real <= 1)).all())
    assert float(real.mean()) > float(clf.real_proba(noise).mean()) + 0.3
    assert torch.allclose(real, 1 - 1 / (1 + clf.logits(digits["x_test"]).exp().sum(1)))


def test_fit_is_reproducible_and_seed_dependent(digits: dict[str, torch.Tensor]) -> None:
    x_lab, y_lab = _labeled(digits, 3, 0)
    runs = [fit_semisupervised(x_lab, y_lab, digits["x_train"], config=TINY, seed=s)
            for s in (4, 4, 5)]
    p = [r.predict_proba(digits["x_test"]) for r in runs]
    assert torch.equal(p[0], p[1])
    assert not torch.allclose(p[0], p[2])
    assert torch.allclose(p[0].sum(1), torch.ones(500))
    assert torch.equal(runs[0].predict(digits["x_test"]), p[0].argmax(1))


def test_save_load_round_trip(digits: dict[str, torch.Tensor], tmp_path: Path) -> None:
    x_lab, y_lab = _labeled(digits, 3, 0)
    clf = fit_semisupervised(x_lab, y_lab, digits["x_train"], config=TINY, seed=0)
    path = tmp_path / "sub" / "ssl.safetensors"
    clf.save(path)
    loaded = SemiSupervisedClassifier.load(path)
    x = digits["x_test"]
    assert torch.equal(loaded.predict_proba(x), clf.predict_proba(x))
    assert loaded.score(x, digits["y_test"]) == clf.score(x, digits["y_test"])
    assert loaded.info == clf.info and loaded.info["method"] == "semisupervised-gan"
    assert loaded.in_shape == (1, 8, 8) and loaded.num_classes == 10
    _, meta = read_safetensors(path)
    assert json.loads(meta["arch"])["d_widths"] == [32]
    assert not list(tmp_path.glob("sub/.*"))  # no temporary files left behind


def test_load_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        SemiSupervisedClassifier.load(tmp_path / "missing.safetensors")
    pickle_file = tmp_path / "model.pt"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="pickle"):
        SemiSupervisedClassifier.load(pickle_file)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something/1"})
    with pytest.raises(CheckpointError, match="not a ganforge semi-supervised"):
        SemiSupervisedClassifier.load(other)


BAD_INPUTS: dict[str, tuple[object, type[Exception], str]] = {
    # name: (function of the labeled (x, y) giving the overriding arguments, error, message)
    "label out of range": (lambda x, y: {"y_labeled": torch.where(y == 9, 12, y),
                                         "num_classes": 10}, DataError, r"\[0, 10\)"),
    "negative label": (lambda x, y: {"y_labeled": y - 1}, DataError, "must lie in"),
    "fewer labels than classes": (lambda x, y: {"x_labeled": x[:6], "y_labeled": y[:6]},
                                  DataError, "no example of class"),
    "class missing for num_classes": (lambda x, y: {"num_classes": 12}, DataError,
                                      r"\[10, 11\]"),
    "mismatched lengths": (lambda x, y: {"y_labeled": y[:-1]}, DataError,
                           "19 labels but there are 20"),
    "float labels": (lambda x, y: {"y_labeled": y.float()}, DataError, "integer tensor"),
    "flat images": (lambda x, y: {"x_labeled": x.flatten(1)}, DataError, r"\(N, C, H, W\)"),
    "uint8 images": (lambda x, y: {"x_labeled": (x * 127.5 + 127.5).to(torch.uint8)},
                     DataError, "float tensor"),
    "0..255 floats": (lambda x, y: {"x_labeled": x * 127.5 + 127.5}, DataError, "outside"),
    "unknown setting": (lambda x, y: {"config": {"step": 5}}, ConfigError,
                        "unknown key 'step'"),
    "bad setting": (lambda x, y: {"config": {"lr": -1}}, ConfigError, "'lr'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_clear_errors(digits: dict[str, torch.Tensor], case: str) -> None:
    x, y = _labeled(digits, 2, 0)
    make, error, pattern = BAD_INPUTS[case]
    kwargs = {"x_labeled": x, "y_labeled": y, "config": TINY, **make(x, y)}  # type: ignore
    with pytest.raises(error, match=pattern):
        fit_supervised(**kwargs)
    with pytest.raises(error, match=pattern):
        fit_semisupervised(**kwargs, x_unlabeled=digits["x_train"])


def test_unlabeled_images_must_match(digits: dict[str, torch.Tensor]) -> None:
    x, y = _labeled(digits, 2, 0)
    with pytest.raises(DataError, match=r"x_unlabeled has shape \(10, 1, 16, 16\)"):
        fit_semisupervised(x, y, torch.zeros(10, 1, 16, 16), config=TINY)


def test_prediction_inputs_are_checked(digits: dict[str, torch.Tensor]) -> None:
    x, y = _labeled(digits, 2, 0)
    clf = fit_supervised(x, y, config=TINY)
    with pytest.raises(DataError, match=r"\(N, 1, 8, 8\)"):
        clf.predict(torch.zeros(3, 1, 28, 28))
    with pytest.raises(DataError, match="3 labels but there are 20"):
        clf.score(x, y[:3])
