"""The truncation sweep: the fidelity/variety trade-off of the truncation trick.

BigGAN (Brock et al., 2019) samples latents from a normal truncated to ``|z_i| <= t``:
as ``t`` falls, samples move towards the mode, fidelity (IS, precision) rises and
variety (recall, FID at small ``t``, CAS) falls. The sweep evaluates one generator at a
list of thresholds with the real features extracted once and the same seed (hence the
same latents, shrunk) at every threshold, and tabulates the metrics per threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import atomic_write_text
from ganforge.errors import ConfigError
from ganforge.metrics.evaluate import (
    MetricOptions,
    generate,
    generator_meta,
    prepare_real,
    score_fake,
    write_result,
)
from ganforge.models.base import check_truncation, truncation_space

DEFAULT_THRESHOLDS = "none,2,1.5,1,0.75,0.5,0.25"  # z thresholds (BigGAN's trick)
DEFAULT_PSI = "none,0.9,0.7,0.5,0.3,0"  # psi values for style-based generators (W space)


def default_thresholds(space: str) -> str:
    """The default sweep for a generator's ``truncation_space``."""
    return DEFAULT_PSI if space == "w" else DEFAULT_THRESHOLDS
# table columns: result key -> header (only the keys a sweep computed are shown)
COLUMNS: dict[str, str] = {
    "fid": "FID", "kid_mean": "KID", "is_mean": "IS", "precision": "precision",
    "recall": "recall", "density": "density", "coverage": "coverage", "cas": "CAS",
    "intra_fid": "intra-FID", "modes_captured": "modes", "high_quality": "high quality",
    "reverse_kl": "reverse KL",
}
Threshold = float | None


def parse_thresholds(spec: str | Sequence[float | str | None], space: str = "z"
                     ) -> list[Threshold]:
    """``"none,2,1,0.5"`` or a list -> thresholds (None: no truncation), validated for the
    generator's ``truncation_space`` (z thresholds > 0; W psi >= 0)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Threshold] = []
    for item in items:
        raw = item.strip() if isinstance(item, str) else item
        if raw == "":
            continue
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "off")):
            t: Threshold = None
        else:
            try:
                t = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"Truncation threshold '{raw}' is not a number; give "
                                  "comma-separated numbers or none, e.g. "
                                  f"--thresholds {default_thresholds(space)}.") from None
            t = check_truncation(t, space)
        if t in out:
            raise ConfigError(f"Truncation threshold {label(t)} is listed twice in "
                              f"--thresholds; give each once.")
        out.append(t)
    if not out:
        raise ConfigError(f"No truncation threshold given; e.g. --thresholds "
                          f"{default_thresholds(space)}.")
    return out


def label(t: Threshold) -> str:
    """How a threshold is written in tables: ``none`` or the number."""
    return "none" if t is None else f"{t:g}"


def truncation_sweep(generator: Any, thresholds: str | Sequence[float | str | None] | None
                     = None, real: str | None = None,
                     metrics: str | list[str] = "auto", n: int = 5000, features: str = "auto",
                     split: str | None = None, n_real: int | None = None, seed: int = 0,
                     device: str = "cpu", batch_size: int = 250, use_cache: bool = True,
                     progress: bool = False, options: MetricOptions | None = None,
                     out: str | Path | None = None,
                     on_row: Callable[[dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
    """Evaluate ``generator`` at each truncation threshold (None: no truncation).

    ``thresholds`` default to :func:`default_thresholds` of the generator's truncation
    space. Other arguments as :func:`ganforge.evaluate`; ``metrics="auto"`` means fid, is (when the
    features have logits), pr, and cas for conditional generators. Real features are
    extracted once; every threshold draws ``n`` samples from the same ``seed``.
    Returns ``{"rows": [{"truncation", "metrics", "details", "fake", "timing_s"}, ...],
    "meta": {...}}`` (provenance as in ``evaluate``) and writes it as JSON to ``out``;
    ``on_row`` is called with each row as it is done.
    """
    from ganforge.generator import LoadedGenerator, load

    started = time.perf_counter()
    g = generator if isinstance(generator, LoadedGenerator) else load(generator, device)
    space = truncation_space(g.module)
    ts = parse_thresholds(default_thresholds(space) if thresholds is None else thresholds,
                          space)
    for t in ts:  # an unsupported generator fails before any feature extraction
        if t is not None:
            g.latents(1, torch.Generator().manual_seed(0), t)
            break
    side = prepare_real(g, real, metrics, n, features, split, n_real, seed, device,
                        use_cache, progress, options)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for t in ts:
        fake = generate(side.generator, n, seed=seed, batch_size=batch_size, truncation=t)
        values, details, meta = score_fake(side, fake, options, progress)
        row = {"truncation": t, "metrics": values, "details": details, "fake": meta["fake"],
               "timing_s": {k: meta["timing_s"][k] for k in ("fake_features", "metrics")}}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    meta = {k: v for k, v in meta.items() if k not in ("fake", "timing_s")}
    meta |= {**generator_meta(side), "thresholds": ts, "n": n, "seed": seed,
             "batch_size": batch_size,
             "timing_s": {"real_features": side.seconds},
             "elapsed_s": round(time.perf_counter() - started, 2)}
    result = {"rows": rows, "meta": meta}
    if out is not None:
        write_result(out, result)
    return result


def _cell(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the sweep table: threshold, then each computed metric."""
    present = {k for row in result["rows"] for k in row["metrics"]}
    keys = [k for k in COLUMNS if k in present]
    header = ["truncation", *(COLUMNS[k] for k in keys)]
    cells = [[label(row["truncation"]), *(_cell(row["metrics"].get(k)) for k in keys)]
             for row in result["rows"]]
    return header, cells


def format_table(result: dict[str, Any], markdown: bool = False) -> str:
    """The sweep as an aligned text table, or a Markdown table."""
    header, cells = table_rows(result)
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(fmt.format(*r) for r in [header, *cells])


def describe(result: dict[str, Any]) -> str:
    """One line saying what was compared: generator, samples, real data, features."""
    meta = result["meta"]
    who = meta.get("generator") or meta.get("model")
    step = f", step {meta['step']}" if meta.get("step") is not None else ""
    real = meta["real"]
    return (f"{who} ({meta['model']}{step}): n={meta['n']} generated (seed {meta['seed']}) "
            f"vs real {real.get('spec')} ({real.get('split', 'all')}, n={real['n']}), "
            f"{meta['features']} features")


def write_markdown(path: str | Path, result: dict[str, Any]) -> Path:
    """The sweep as Markdown: what was compared, then the table (written atomically)."""
    p = Path(path)
    text = (f"Truncation sweep of {describe(result)}.\n\n"
            f"{format_table(result, markdown=True)}\n")
    atomic_write_text(p, text)
    return p


@torch.no_grad()
def truncation_grid(generator: Any, thresholds: str | Sequence[float | str | None],
                    per_row: int = 8, seed: int = 0) -> torch.Tensor:
    """Samples for a picture of the sweep: row ``i`` holds ``per_row`` samples at
    threshold ``i``, from the same latents in every row (images: R x C x H x W stacked)."""
    ts = parse_thresholds(thresholds, truncation_space(generator.module))
    if per_row < 1:
        raise ConfigError(f"Samples per row must be at least 1, got {per_row}.")
    labels = generator.make_labels(per_row, None)
    return torch.stack([generator.sample(per_row, seed=seed, labels=labels, truncation=t)
                        for t in ts])
