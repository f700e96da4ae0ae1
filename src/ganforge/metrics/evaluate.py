"""Evaluate generators against real data: sample once, extract features once, compute
every requested metric from the shared features, and record exactly how.

Metrics: ``fid``, ``kid``, ``is``, ``pr`` (precision/recall), ``dc`` (density/coverage),
``cas`` (classification accuracy score), ``intra_fid`` (class-conditional models),
``modes`` (2-D ring/grid mixtures).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import atomic_write_text
from ganforge.data import DataBundle, load_source
from ganforge.data.spec import apply_standardization, exclude_classes, parse_spec, spec_for
from ganforge.errors import ConfigError
from ganforge.metrics.cache import cached_features
from ganforge.metrics.features import FeatureExtractor, Features, auto_features, get_extractor
from ganforge.visual import quantize

METRIC_NAMES = ("fid", "kid", "is", "pr", "dc", "cas", "intra_fid", "modes")
# selectable scalar -> (metric group that computes it, True when higher is better)
SCALARS: dict[str, tuple[str, bool]] = {
    "fid": ("fid", False), "kid": ("kid", False), "kid_mean": ("kid", False),
    "is": ("is", True), "is_mean": ("is", True), "precision": ("pr", True),
    "recall": ("pr", True), "density": ("dc", True), "coverage": ("dc", True),
    "cas": ("cas", True), "intra_fid": ("intra_fid", False),
    "modes_captured": ("modes", True), "high_quality": ("modes", True),
    "reverse_kl": ("modes", False),
}
_VALUE_KEY = {"kid": "kid_mean", "is": "is_mean"}


def parse_metrics(metrics: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"fid,kid"`` or a list -> validated, de-duplicated metric names."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name == "all":
            return list(METRIC_NAMES)
        if name not in METRIC_NAMES:
            raise ConfigError(f"Unknown metric '{raw}'; choose from {', '.join(METRIC_NAMES)} "
                              "(comma-separated) or all.")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"No metric given; choose from {', '.join(METRIC_NAMES)}.")
    return out


def scalar_metric(name: str) -> tuple[str, str, bool]:
    """(group, result key, higher_is_better) of a metric used to select the best model."""
    if name not in SCALARS:
        raise ConfigError(f"Cannot select by '{name}'; choose one of {', '.join(SCALARS)}.")
    group, higher = SCALARS[name]
    return group, _VALUE_KEY.get(name, name), higher


@dataclass
class Samples:
    """Samples in the extractor's input form (uint8 images or float points) and labels."""

    data: torch.Tensor
    labels: torch.Tensor | None = None
    describe: dict[str, Any] = field(default_factory=dict)
    # the standardization statistics ({"mean", "std"}) the samples were scaled with
    standardize: dict[str, list[float]] | None = None


def generate(generator: Any, n: int, seed: int = 0, batch_size: int = 250,
             truncation: float | None = None) -> Samples:
    """``n`` samples of a loaded generator; class-conditional ones get balanced labels.
    ``truncation``: the truncation trick's threshold (None: off), kept in ``describe``."""
    labels = generator.make_labels(n, None)
    out = generator.sample(n, seed=seed, labels=labels, batch_size=batch_size,
                           truncation=truncation)
    data = quantize(out) if out.ndim == 4 else out.float()  # images exactly as saved to PNG
    return Samples(data, labels, {"n": n, "seed": seed, "truncation": truncation})


def bundle_samples(bundle: DataBundle, n: int | None = None, seed: int = 0) -> Samples:
    """The data set, or a seeded random subset of ``n`` of it."""
    data, labels = bundle.data, bundle.labels
    chosen = len(data)
    if n is not None and n < len(data):
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        idx = idx.sort().values
        data, labels = data[idx], None if labels is None else labels[idx]
        chosen = n
    describe = {"spec": bundle.spec, "name": bundle.name, "n": chosen, "size": len(bundle),
                "subset_seed": seed if chosen < len(bundle) else None,
                "shape": list(bundle.sample_shape)}
    for key in ("splits", "split", "excluded_classes"):
        if key in bundle.info:
            describe[key] = bundle.info[key]
    if "standardize" in bundle.info:
        describe["standardized"] = True
    return Samples(data, labels, describe, bundle.info.get("standardize"))


def check_metrics(names: list[str], kind: str, data_name: str | None,
                  fake_labelled: bool, real_labelled: bool, extractor: FeatureExtractor,
                  n_fake: int, n_real: int, options: MetricOptions | None = None,
                  num_classes: int | None = None) -> None:
    """Refuse metric/data/extractor combinations that cannot work, before any extraction.

    ``fake_labelled``: the generated side carries class labels (a conditional generator).
    """
    opt = options or MetricOptions()
    for metric in names:
        if metric == "is" and not extractor.has_logits:
            why = (" (the fid-helper Inception file has no classification layer)"
                   if extractor.name == "inception" else "")
            raise ConfigError(
                f"Inception Score needs class logits, which '{extractor.name}' lacks{why}. "
                "Use --features mnist or digits for such data, or inception:PATH with "
                "pytorch-fid's pt_inception-2015-12-05 weight file.")
        if metric in ("cas", "intra_fid") and not fake_labelled:
            raise ConfigError(f"'{metric}' needs class labels on the generated side: a "
                              "class-conditional generator (trained with --conditional), or "
                              "a labelled second set in `ganforge fid`.")
        if metric in ("cas", "intra_fid") and not real_labelled:
            raise ConfigError(f"'{metric}' needs labelled real data; '{data_name}' has none.")
        if metric == "modes" and (kind != "points" or data_name not in ("ring", "grid")):
            raise ConfigError("'modes' applies to the 2-D ring and grid mixtures only; "
                              f"the real data is '{data_name}'.")
        need = {"pr": opt.pr_k + 1, "dc": opt.dc_k + 1, "fid": 2, "kid": 2,
                "is": opt.is_splits}.get(metric, 2)
        if metric == "intra_fid" and num_classes:
            need = 2 * num_classes
        if min(n_fake, n_real) < need:
            raise ConfigError(f"'{metric}' needs at least {need} samples on each side; got "
                              f"{n_fake} generated and {n_real} real. Raise --n / --n-real "
                              "(eval_n during training).")
    if extractor.kind == "image" and kind != "image":
        raise ConfigError(f"Features '{extractor.name}' read images; this data has points. "
                          "Use --features identity.")
    if extractor.kind == "points" and kind != "points":
        raise ConfigError(f"Features '{extractor.name}' read points; this data has images. "
                          "Use --features inception (or mnist/digits for MNIST-like data).")


def _cas(real: Samples, fake: Samples, epochs: int, seed: int) -> float:
    """Train a classifier on generated labelled samples only; accuracy on real data."""
    assert fake.labels is not None and real.labels is not None
    num_classes = int(max(fake.labels.max(), real.labels.max())) + 1
    if fake.data.ndim == 4:
        from ganforge.metrics.classifier import accuracy, fit_classifier

        model = fit_classifier(fake.data, fake.labels, num_classes=num_classes, epochs=epochs,
                               seed=seed)
        return accuracy(model, real.data, real.labels)
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=200 * epochs, random_state=seed)
    clf.fit(fake.data.numpy(), fake.labels.numpy())
    return float(clf.score(real.data.numpy(), real.labels.numpy()))


def _modes(real: Samples, fake: Samples) -> dict[str, float]:
    from ganforge.data import MIXTURE_STD, mixture_centers
    from ganforge.data.spec import unstandardize
    from ganforge.metrics.mixtures import mode_stats

    name = real.describe.get("name")
    if name not in ("ring", "grid") or fake.data.ndim != 2:
        raise ConfigError("'modes' applies to the 2-D ring and grid mixtures only; "
                          f"the real data is '{real.describe.get('spec')}'.")
    points = fake.data
    if real.standardize is not None:  # distances to the modes are in the data's own units
        points = unstandardize(points, real.standardize)
    stats = mode_stats(points, mixture_centers(name), MIXTURE_STD[name]).as_dict()
    return {k: float(v) for k, v in stats.items()}


@dataclass
class MetricOptions:
    """Knobs of the individual metrics (defaults follow the papers / reference tools)."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    dc_k: int = 5
    cas_epochs: int = 5
    seed: int = 0


def compute_metrics(metrics: list[str], real: Samples, fake: Samples, real_feats: Features,
                    fake_feats: Features, options: MetricOptions | None = None,
                    extractor_name: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Every requested metric from features computed once; returns (values, details)."""
    try:
        return _compute(metrics, real, fake, real_feats, fake_feats, options, extractor_name)
    except ValueError as err:  # sizes the metric cannot work with
        raise ConfigError(f"Cannot compute {', '.join(metrics)}: {err}. Use more samples "
                          "(--n / --n-real, or eval_n during training).") from None


def _compute(metrics: list[str], real: Samples, fake: Samples, real_feats: Features,
             fake_feats: Features, options: MetricOptions | None,
             extractor_name: str) -> tuple[dict[str, float], dict[str, Any]]:
    from ganforge.metrics.frechet import fid_from_features, intra_fid
    from ganforge.metrics.inception_score import inception_score
    from ganforge.metrics.kid import kid
    from ganforge.metrics.prdc import manifold_metrics

    opt = options or MetricOptions()
    values: dict[str, float] = {}
    details: dict[str, Any] = {}
    rf, ff = real_feats.features, fake_feats.features
    for metric in metrics:
        if metric == "fid":
            values["fid"] = fid_from_features(rf, ff)
        elif metric == "kid":
            out = kid(rf, ff, subsets=opt.kid_subsets, subset_size=opt.kid_subset_size)
            values |= {"kid_mean": out["kid_mean"], "kid_std": out["kid_std"]}
            details["kid"] = {"subsets": out["subsets"], "subset_size": out["subset_size"]}
        elif metric == "is":
            if fake_feats.logits is None:
                raise ConfigError(f"Inception Score needs class logits, which "
                                  f"'{extractor_name}' lacks.")
            out = inception_score(fake_feats.logits, splits=min(opt.is_splits, len(ff)))
            values |= {"is_mean": out["is_mean"], "is_std": out["is_std"]}
            details["is"] = {"splits": out["splits"], "logits_of": extractor_name}
        elif metric in ("pr", "dc"):
            if "precision" not in values:
                out = manifold_metrics(rf, ff, pr_k=opt.pr_k, dc_k=opt.dc_k)
                details["manifold"] = {"pr_k": opt.pr_k, "dc_k": opt.dc_k}
                manifold = {k: float(v) for k, v in out.items() if not k.endswith("_k")}
            keys = ("precision", "recall") if metric == "pr" else ("density", "coverage")
            values |= {k: manifold[k] for k in keys}
        elif metric == "cas":
            values["cas"] = _cas(real, fake, opt.cas_epochs, opt.seed)
            details["cas"] = {"epochs": opt.cas_epochs, "train": "generated samples only",
                              "test": "real samples"}
        elif metric == "intra_fid":
            assert real.labels is not None and fake.labels is not None
            mean, per_class = intra_fid(rf, real.labels, ff, fake.labels)
            values["intra_fid"] = mean
            details["intra_fid_per_class"] = {str(k): v for k, v in per_class.items()}
        elif metric == "modes":
            values |= _modes(real, fake)
    return values, details


def resolve_features(features: str, kind: str, data_name: str | None) -> str:
    return auto_features(kind, data_name) if features == "auto" else features


def eval_split(spec: str, split: str | None) -> str:
    """The real split used for evaluation: as given, else test for MNIST, else all."""
    if split is not None:
        return split
    source, _ = parse_spec(spec)
    return "test" if source == "mnist" else "all"


def load_real(spec: str, shape: tuple[int, ...], split: str) -> DataBundle:
    """Real data brought to a generator's sample shape (resolution and channels)."""
    if len(shape) == 3:
        bundle = load_source(spec, resolution=shape[1], channels=shape[0], split=split)
    else:
        bundle = load_source(spec, split=split)
    if bundle.sample_shape != shape:
        raise ConfigError(f"The real data '{spec}' has samples of shape {bundle.sample_shape}, "
                          f"the generator {shape}; use matching real data.")
    return bundle


def as_trained(bundle: DataBundle, trained: dict[str, Any], default_source: bool
               ) -> DataBundle:
    """Real data seen as the generator's training saw it (``trained``: the data record
    of its export): in standardized units if it was trained on standardized points, and,
    when the real side is the training source itself, without its excluded classes."""
    if default_source and trained.get("excluded_classes"):
        bundle = exclude_classes(bundle, trained["excluded_classes"])
    if trained.get("standardize"):
        bundle = apply_standardization(bundle, trained["standardize"])
    return bundle


def _meta_base() -> dict[str, Any]:
    import ganforge

    return {"ganforge_version": ganforge.__version__, "torch_version": torch.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds")}


@dataclass
class RealSide:
    """The fixed half of evaluating one generator: the generator, the metrics, the
    extractor and the real samples with their features (extracted or cached once)."""

    generator: Any  # a LoadedGenerator
    names: list[str]
    extractor: FeatureExtractor
    samples: Samples
    features: Features
    cache: dict[str, Any]
    seconds: float
    device: str


def default_metrics(kind: str, data_name: str | None, extractor: FeatureExtractor,
                    fake_labelled: bool, real_labelled: bool) -> list[str]:
    """What ``metrics="auto"`` means: fid and pr, is when the features have class logits,
    cas for a conditional generator with labelled real data, modes on ring/grid."""
    names = ["fid"] + (["is"] if extractor.has_logits else []) + ["pr"]
    if fake_labelled and real_labelled:
        names.append("cas")
    if kind == "points" and data_name in ("ring", "grid"):
        names.append("modes")
    return names


def prepare_real(generator: Any, real: str | None = None,
                 metrics: str | list[str] = "fid", n: int = 10_000, features: str = "auto",
                 split: str | None = None, n_real: int | None = None, seed: int = 0,
                 device: str = "cpu", use_cache: bool = True, progress: bool = False,
                 options: MetricOptions | None = None) -> RealSide:
    """Load the generator and the real data, check the metrics for ``n`` generated
    samples, and extract the real features once (see :func:`evaluate` for the defaults).
    ``metrics="auto"`` picks :func:`default_metrics`."""
    from ganforge.generator import LoadedGenerator, load

    auto = isinstance(metrics, str) and metrics.strip().lower() == "auto"
    names = [] if auto else parse_metrics(metrics)
    if n < 2:
        raise ConfigError(f"--n must be at least 2 generated samples, got {n}.")
    g = generator if isinstance(generator, LoadedGenerator) else load(generator, device)
    g.to(device)
    spec = real or (g.info.get("data") or {}).get("spec")
    if not spec:
        raise ConfigError(f"{g.path} does not record its training data; pass --real SOURCE.")
    split_used = eval_split(spec, split)
    bundle = as_trained(load_real(spec, tuple(g.module.sample_shape), split_used),
                        g.info.get("data") or {}, default_source=real is None)
    feature_name = resolve_features(features, bundle.kind, bundle.name)
    extractor = get_extractor(feature_name, device)
    real_s = bundle_samples(bundle, n if n_real is None else n_real, seed)
    real_s.describe["split"] = split_used
    if auto:
        names = default_metrics(bundle.kind, bundle.name, extractor,
                                g.num_classes is not None, bundle.labels is not None)
    check_metrics(names, bundle.kind, bundle.name, g.num_classes is not None,
                  bundle.labels is not None, extractor, n, len(real_s.data), options,
                  g.num_classes)
    t0 = time.perf_counter()
    feats, cache = cached_features(real_s.data, extractor, real_s.labels, real_s.describe,
                                   use_cache, progress)
    return RealSide(g, names, extractor, real_s, feats, cache,
                    round(time.perf_counter() - t0, 2), device)


def generator_meta(side: RealSide) -> dict[str, Any]:
    """Provenance of the generator side: file, model, step, device."""
    g = side.generator
    return {"generator": str(g.path) if g.path else None, "model": g.model,
            "step": g.info.get("step"), "device": side.device}


def evaluate(generator: Any, real: str | None = None, metrics: str | list[str] = "fid",
             n: int = 10_000, features: str = "auto", split: str | None = None,
             n_real: int | None = None, seed: int = 0, device: str = "cpu",
             batch_size: int = 250, use_cache: bool = True, progress: bool = False,
             options: MetricOptions | None = None, out: str | Path | None = None,
             truncation: float | None = None) -> dict[str, Any]:
    """Evaluate a generator (run directory, ``.safetensors`` file or loaded generator).

    ``real`` defaults to the generator's training data; ``split`` to ``test`` for MNIST
    and ``all`` otherwise; ``n_real`` to ``n`` (equal sizes, as precision/recall assume),
    capped at the real set's size. Real images are brought to the generator's resolution
    and channels. ``truncation`` samples with the truncation trick (None: off); it is
    recorded in ``meta``. Returns ``{"metrics", "details", "meta"}`` and writes it as JSON
    to ``out``.
    """
    from ganforge.models.base import check_truncation

    started = time.perf_counter()
    truncation = check_truncation(truncation)
    side = prepare_real(generator, real, metrics, n, features, split, n_real, seed, device,
                        use_cache, progress, options)
    fake_s = generate(side.generator, n, seed=seed, batch_size=batch_size,
                      truncation=truncation)
    values, details, meta = score_fake(side, fake_s, options, progress)
    meta |= {**generator_meta(side), "truncation": truncation,
             "elapsed_s": round(time.perf_counter() - started, 2)}
    result = {"metrics": values, "details": details, "meta": meta}
    if out is not None:
        write_result(out, result)
    return result


def score_fake(side: RealSide, fake: Samples, options: MetricOptions | None = None,
               progress: bool = False
               ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """Metrics of generated samples against a prepared real side (features reused)."""
    return _score(side.names, side.samples, side.features, side.cache, side.seconds, fake,
                  side.extractor, options, progress)


def evaluate_samples(names: list[str], real: Samples, fake: Samples,
                     extractor: FeatureExtractor, options: MetricOptions | None = None,
                     use_cache: bool = True, progress: bool = False
                     ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """Metrics between two sample sets: real features cached, generated ones fresh."""
    t0 = time.perf_counter()
    real_feats, cache = cached_features(real.data, extractor, real.labels, real.describe,
                                        use_cache, progress)
    return _score(names, real, real_feats, cache, round(time.perf_counter() - t0, 2), fake,
                  extractor, options, progress)


def _score(names: list[str], real: Samples, real_feats: Features, cache: dict[str, Any],
           real_seconds: float, fake: Samples, extractor: FeatureExtractor,
           options: MetricOptions | None, progress: bool
           ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    t1 = time.perf_counter()
    fake_feats = extractor.extract(fake.data, progress=progress)
    t2 = time.perf_counter()
    values, details = compute_metrics(names, real, fake, real_feats, fake_feats, options,
                                      extractor.name)
    meta = {**_meta_base(), "metrics": names, "features": extractor.name,
            "feature_provenance": extractor.provenance(),
            "real": {**real.describe, "cache": cache}, "fake": fake.describe,
            "options": vars(options or MetricOptions()),
            "timing_s": {"real_features": real_seconds, "fake_features": round(t2 - t1, 2),
                         "metrics": round(time.perf_counter() - t2, 2)}}
    return values, details, meta


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null (strict JSON has no Infinity or NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write an evaluation result as indented strict JSON, atomically."""
    p = Path(path)
    text = json.dumps(_json_safe(result), indent=2, default=str, allow_nan=False)
    atomic_write_text(p, text + "\n")
    return p


def native_resolution(spec: str) -> int | None:
    """The square side a source has before any resizing (None for points)."""
    source, arg = parse_spec(spec)
    if source in ("ring", "grid"):
        return None
    if source == "digits":
        return 8
    if source in ("mnist", "stacked-mnist"):
        return 28
    path = Path(arg or "").expanduser()
    if source == "npz":
        from ganforge.data.npz import load_npz_arrays

        kind, arr, _, _ = load_npz_arrays(path)
        return None if kind == "points" else int(min(arr.shape[-2:]))
    from PIL import Image

    from ganforge.data.folder import scan_folder

    files, _ = scan_folder(path)
    if not files:
        raise ConfigError(f"{path} holds no PNG, JPEG or WebP images.")
    with Image.open(path / files[0]) as im:
        return int(min(im.size))


def compare_sources(a: str, b: str, metrics: str | list[str] = "fid", features: str = "auto",
                    resolution: int | None = None, n: int | None = None, seed: int = 0,
                    split: str | None = None, device: str = "cpu", use_cache: bool = True,
                    progress: bool = False, options: MetricOptions | None = None
                    ) -> dict[str, Any]:
    """Metrics between two data sets (folders, npz files or data specs); ``a`` is the
    reference ("real") side. Images of both go to ``resolution`` (default: the larger
    native side of the two, so ``fid mnist samples/`` brings MNIST to the samples' 32 px
    as ``ganforge eval`` does) with 3 channels when either side has colour, else gray."""
    names = parse_metrics(metrics)
    specs = [spec_for(a), spec_for(b)]
    if resolution is not None and resolution < 1:
        raise ConfigError(f"--resolution must be a positive number of pixels, got {resolution}.")
    natives = [native_resolution(s) for s in specs]
    res = resolution or max((r for r in natives if r), default=None)
    bundles = []
    for spec in specs:
        bundles.append(load_source(spec, resolution=res or 32, split=eval_split(spec, split)))
    kinds = {bd.kind for bd in bundles}
    if len(kinds) != 1:
        raise ConfigError(f"Cannot compare images with points: {a} vs {b}.")
    if kinds == {"image"} and any(bd.channels != 1 for bd in bundles):  # colour: both RGB
        from ganforge.data.transforms import convert_channels

        bundles = [replace(bd, data=convert_channels(bd.data, 3)) for bd in bundles]
    elif bundles[0].sample_shape != bundles[1].sample_shape:
        raise ConfigError(f"Row lengths differ: {bundles[0].sample_shape} vs "
                          f"{bundles[1].sample_shape}.")
    feature_name = resolve_features(features, bundles[0].kind, bundles[0].name)
    extractor = get_extractor(feature_name, device)
    sides = [bundle_samples(bd, n, seed) for bd in bundles]
    check_metrics(names, bundles[0].kind, bundles[0].name, sides[1].labels is not None,
                  sides[0].labels is not None, extractor, len(sides[1].data),
                  len(sides[0].data), options, bundles[0].num_classes)
    feats = []
    caches = []
    for side in sides:
        f, cache = cached_features(side.data, extractor, side.labels, side.describe,
                                   use_cache, progress)
        feats.append(f)
        caches.append(cache)
    values, details = compute_metrics(names, sides[0], sides[1], feats[0], feats[1], options,
                                      extractor.name)
    meta = {**_meta_base(), "metrics": names, "features": extractor.name,
            "feature_provenance": extractor.provenance(), "resolution": res,
            "a": {**sides[0].describe, "cache": caches[0]},
            "b": {**sides[1].describe, "cache": caches[1]}}
    return {"metrics": values, "details": details, "meta": meta}
