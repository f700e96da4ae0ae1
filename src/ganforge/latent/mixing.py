"""Style-mixing grids (Karras et al., 2019, Fig. 3), for style-based generators.

The top row holds the source images, the left column the destination images; cell
(d, s) is destination d with the ws of the chosen band copied from source s, then
synthesized. Bands: ``coarse`` (4-8 px: pose, shape), ``middle`` (16-32 px: features),
``fine`` (64 px and up: colour, texture; empty at 32 px and below), ``LO-HI`` (ws indices,
inclusive), ``LO-HIpx`` (feature-map resolutions, inclusive), or a list of indices.
Noise is the generator's constant noise (eval mode), so a cell is reproducible and equals
``G.synthesis(G.mix(ws_dst, ws_src, layers))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ganforge.errors import ConfigError
from ganforge.latent.interpolate import (
    LabelsArg,
    evaluating,
    latents_for_seeds,
    parse_seeds,
    render,
    require_style_based,
    row_labels,
    to_w,
)

BandArg = str | Sequence[int] | range


class StyleMix(NamedTuple):
    """Images in [-1, 1]: ``sources`` (S, C, H, W), ``destinations`` (D, C, H, W),
    ``mixed`` (D, S, C, H, W); ``ws`` (D, S, num_ws, w_dim) of the mixed cells;
    ``layers`` the copied ws indices."""

    sources: torch.Tensor
    destinations: torch.Tensor
    mixed: torch.Tensor
    ws: torch.Tensor
    layers: list[int]


def band_layers(G: Any, band: BandArg) -> list[int]:
    """The ws indices of ``band``: a name from ``layer_ranges()``, ``"LO-HI"`` ws indices,
    ``"LO-HIpx"`` resolutions (inclusive), a single index ``"5"`` or a list of indices."""
    m = require_style_based(G, "Style mixing", "Mixing needs a stylegan or stylegan2 run; "
                            "for other generators use interpolation or attribute vectors.")
    num_ws = int(m.num_ws)
    ranges: dict[str, list[int]] = m.layer_ranges()
    hint = (f"use {', '.join(n for n, r in ranges.items() if r)}, ws indices LO-HI within "
            f"0-{num_ws - 1}, or resolutions like 4-8px")
    if isinstance(band, str):
        text = band.strip().lower()
        if text in ranges:
            layers = list(ranges[text])
            if not layers:
                raise ConfigError(f"Band '{text}' is empty for this {m.sample_shape[-1]} px "
                                  f"generator (the bands go by absolute resolution: fine is "
                                  f"64 px and up); {hint}.")
            return layers
        px = text.endswith("px")
        lo, sep, hi = text.removesuffix("px").partition("-")
        try:
            a = int(lo.removesuffix("px"))
            b = int(hi.removesuffix("px")) if sep else a
        except ValueError:
            raise ConfigError(f"Unknown band {band!r}; {hint}.") from None
        if px:
            layers = m.ws_indices(a, b)
            if not layers:
                raise ConfigError(f"No layers at resolutions {a}-{b} px in this "
                                  f"{m.sample_shape[-1]} px generator; {hint}.")
            return list(layers)
        band = range(a, b + 1)
        if b < a:
            raise ConfigError(f"Band {text!r}: LO must not exceed HI; {hint}.")
    try:
        layers = [int(i) for i in band]
    except (TypeError, ValueError):
        raise ConfigError(f"Unknown band {band!r}; {hint}.") from None
    if not layers or min(layers) < 0 or max(layers) >= num_ws:
        raise ConfigError(f"Band indices {layers} must be non-empty and lie in 0..{num_ws - 1} "
                          f"(this generator has {num_ws} ws); {hint}.")
    return sorted(set(layers))


def style_mix(G: Any, sources: Sequence[int] | str, destinations: Sequence[int] | str,
              band: BandArg = "coarse", source_labels: LabelsArg = None,
              destination_labels: LabelsArg = None, truncation: float | None = None
              ) -> StyleMix:
    """Mix the styles of seeded sources into seeded destinations (see the module doc).
    Labels (conditional generators): one per source / destination, default class 0;
    ``truncation`` is psi, applied to both before mixing."""
    m = require_style_based(G, "Style mixing", "Mixing needs a stylegan or stylegan2 run; "
                            "for other generators use interpolation or attribute vectors.")
    src = parse_seeds(sources, "sources")
    dst = parse_seeds(destinations, "destinations")
    layers = band_layers(G, band)
    ws_src = to_w(G, latents_for_seeds(G, src), row_labels(G, len(src), source_labels),
                  truncation)
    ws_dst = to_w(G, latents_for_seeds(G, dst), row_labels(G, len(dst), destination_labels),
                  truncation)
    with evaluating(G):
        mixed_ws = torch.stack([m.mix(ws_dst[i:i + 1].expand(len(src), -1, -1), ws_src,
                                      layers) for i in range(len(dst))])
    images = render(G, torch.cat([ws_src, ws_dst, mixed_ws.flatten(0, 1)]), "w")
    s, d = len(src), len(dst)
    return StyleMix(images[:s], images[s:s + d], images[s + d:].unflatten(0, (d, s)),
                    mixed_ws, layers)


def mixing_grid(mix: StyleMix, corner: float = 1.0) -> torch.Tensor:
    """The paper's layout as (D + 1, S + 1, C, H, W): sources along the top, destinations
    down the left, the corner cell filled with ``corner`` (1.0: white)."""
    top = torch.cat([torch.full_like(mix.sources[:1], corner), mix.sources]).unsqueeze(0)
    rows = torch.cat([mix.destinations.unsqueeze(1), mix.mixed], dim=1)
    return torch.cat([top, rows])


def save_mixing_grid(path: str | Path, mix: StyleMix) -> Path:
    """Write :func:`mixing_grid` as a PNG (atomic)."""
    from ganforge.visual import save_grid

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--out {path}: a style-mixing grid is written as a .png file.")
    grid = mixing_grid(mix)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(path, grid.flatten(0, 1), nrow=grid.shape[1])
    return path


__all__ = ["StyleMix", "band_layers", "mixing_grid", "save_mixing_grid", "style_mix"]
