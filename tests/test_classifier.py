"""Shipped domain classifiers: accuracy, preprocessing, training, provenance, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ganforge.metrics.classifier as clf
from ganforge.data import DataBundle, load_source
from ganforge.errors import ConfigError, DataError
from ganforge.metrics.classifier import (
    CLASSIFIER_NAMES,
    DomainClassifier,
    accuracy,
    classifier_metadata,
    classifier_provenance,
    fit_classifier,
    load_classifier,
    predict,
    preprocess,
)
from ganforge.metrics.train_classifiers import digits_split
from ganforge.metrics.train_classifiers import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")
WEIGHTS = Path(clf.__file__).resolve().parent / "weights"


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataBundle]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(tmp_path_factory.mktemp("mnist_cache")))
        return {s: load_source("mnist", resolution=32, split=s) for s in ("train", "test")}


def test_mnist_classifier_accuracy(mnist: dict[str, DataBundle]) -> None:
    test = mnist["test"]
    assert len(test) == 10_000
    acc = accuracy(load_classifier("mnist"), test.data, test.labels)
    assert acc >= 0.99
    assert acc == pytest.approx(float(classifier_metadata("mnist")["test_accuracy"]), abs=1e-3)


def test_digits_classifier_heldout_accuracy() -> None:
    bundle = load_source("digits", resolution=32)
    train_idx, test_idx = digits_split()
    assert len(train_idx) + len(test_idx) == len(bundle) == 1797
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    acc = accuracy(load_classifier("digits"), bundle.data[test_idx], bundle.labels[test_idx])
    recorded = float(classifier_metadata("digits")["test_accuracy"])
    assert acc >= 0.95
    assert acc == pytest.approx(recorded, abs=1e-3)


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_weights_metadata_and_provenance(name: str) -> None:
    path = WEIGHTS / f"{name}_classifier.safetensors"
    assert path.stat().st_size < 2_000_000
    meta = classifier_metadata(name)
    for key in ("training_data", "test_data", "epochs", "seed", "test_accuracy",
                "ganforge_version", "preprocessing"):
        assert meta[key], key
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == meta
    prov = classifier_provenance(name)
    assert prov["name"] == name
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["preprocessing"] == clf.CLASSIFIER_PREPROCESSING == meta["preprocessing"]
    model = load_classifier(name)
    assert not model.training
    feats, logits = model(torch.zeros(2, 1, 32, 32))
    assert feats.shape == (2, clf.FEATURE_DIM) and logits.shape == (2, 10)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"'cifar'.*'mnist', 'digits'"):
        load_classifier("cifar")
    with pytest.raises(ConfigError, match="valid names"):
        classifier_provenance("cifar")


@pytest.mark.parametrize("content", [None, b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"])
def test_missing_or_corrupt_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    content: bytes | None) -> None:
    path = tmp_path / "mnist_classifier.safetensors"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setattr(clf, "_weights_resource", lambda name: path)
    with pytest.raises(ConfigError) as err:
        load_classifier("mnist")
    msg = str(err.value)
    assert str(path) in msg
    assert "python -m ganforge.metrics.train_classifiers --which mnist" in msg


def test_preprocess_shapes_and_channels() -> None:
    gen = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (5, 1, 28, 28), generator=gen, dtype=torch.uint8)
    one = preprocess(gray)
    assert one.shape == (5, 1, 32, 32) and one.dtype == torch.float32
    assert one.min() >= -1 and one.max() <= 1
    assert torch.equal(preprocess(gray.expand(-1, 3, -1, -1)), one)
    rgba = torch.cat([gray.expand(-1, 3, -1, -1), torch.full_like(gray, 255)], dim=1)
    assert torch.equal(preprocess(rgba), one)
    big = torch.randint(0, 256, (3, 3, 64, 64), generator=gen, dtype=torch.uint8)
    assert preprocess(big).shape == (3, 1, 32, 32)
    at32 = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).repeat(1, 1, 32, 16)
    assert preprocess(at32).unique().tolist() == [-1.0, 1.0]
    with pytest.raises(DataError, match="uint8"):
        preprocess(gray.float())
    with pytest.raises(DataError, match="uint8"):
        preprocess(gray[0])


def test_predict_batches_and_formats() -> None:
    model = load_classifier("digits")
    images = load_source("digits", resolution=32).data[:50]
    feats, logits = predict(model, images, batch_size=1000)
    f7, l7 = predict(model, images, batch_size=7)
    assert feats.shape == (50, clf.FEATURE_DIM) and logits.shape == (50, 10)
    assert feats.dtype == logits.dtype == torch.float32 and not feats.requires_grad
    assert (feats >= 0).all()
    torch.testing.assert_close(f7, feats, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(l7, logits, rtol=1e-4, atol=1e-4)
    rgb64 = torch.nn.functional.interpolate(images.float(), size=64, mode="nearest")
    _, l64 = predict(model, rgb64.to(torch.uint8).expand(-1, 3, -1, -1))
    assert (l64.argmax(1) == logits.argmax(1)).float().mean() >= 0.9
    empty_f, empty_l = predict(model, images[:0])
    assert empty_f.shape == (0, clf.FEATURE_DIM) and empty_l.shape == (0, 10)


def test_fit_classifier_small_and_deterministic(mnist: dict[str, DataBundle]) -> None:
    train, test = mnist["train"], mnist["test"]
    x, y = train.data[:2000], train.labels[:2000]
    rng = torch.get_rng_state()
    a = fit_classifier(x, y, epochs=2, batch_size=64, seed=3, augment=True)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    b = fit_classifier(x, y, epochs=2, batch_size=64, seed=3, augment=True)
    assert not a.training
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert accuracy(a, test.data[:5000], test.labels[:5000]) > 0.8


def test_fit_classifier_any_input_and_errors() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 3, 28, 28), generator=gen, dtype=torch.uint8)
    y = torch.arange(40) % 3
    model = fit_classifier(x, y, num_classes=3, epochs=1, batch_size=16, seed=0)
    assert isinstance(model, DomainClassifier)
    assert predict(model, x)[1].shape == (40, 3)
    with pytest.raises(DataError, match="labels must lie"):
        fit_classifier(x, y + 1, num_classes=3, epochs=1)
    with pytest.raises(DataError, match="40 images but 39 labels"):
        fit_classifier(x, y[:39], num_classes=3, epochs=1)
    with pytest.raises(ConfigError, match="epochs"):
        fit_classifier(x, y, num_classes=3, epochs=0)


def test_training_command_writes_weights(tmp_path: Path) -> None:
    assert train_main(["--which", "digits", "--out", str(tmp_path), "--epochs", "1",
                       "--no-progress"]) == 0
    path = tmp_path / "digits_classifier.safetensors"
    assert not list(tmp_path.glob("*.tmp"))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == clf.CLASSIFIER_FORMAT and meta["epochs"] == "1"
    assert 0 <= float(meta["test_accuracy"]) <= 1
