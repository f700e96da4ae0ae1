"""Latent-code traversals of InfoGAN generators (Chen et al., 2016, Fig. 2).

Each row keeps the noise and the other codes fixed (drawn from the prior with
``seed``); each column sets one code: every value of a categorical code, or a linear
sweep over ``span`` of a continuous one.
"""

from __future__ import annotations

from typing import Any

import torch

from ganforge.errors import ConfigError
from ganforge.models.infogan import layout_of


def code_values(G: Any, code: str, steps: int = 10,
                span: tuple[float, float] = (-2.0, 2.0)) -> list[float]:
    """The values of ``code`` along a traversal's columns."""
    codes = layout_of(G)
    kind, i = codes.parse(code)
    if kind == "cat":
        return [float(v) for v in range(codes.categorical[i])]
    if steps < 2:
        raise ConfigError(f"A continuous traversal needs at least 2 steps, got {steps}.")
    return torch.linspace(span[0], span[1], steps).tolist()


@torch.no_grad()
def code_traversal(G: Any, code: str, steps: int = 10, rows: int = 8, seed: int = 0,
                   span: tuple[float, float] = (-2.0, 2.0)) -> torch.Tensor:
    """Images (rows, columns, C, H, W) in [-1, 1]: one row per fixed draw of the other
    latents, one column per value of ``code``. ``G`` is a generator module or a
    :func:`ganforge.load` result of an InfoGAN run."""
    if rows < 1:
        raise ConfigError(f"A traversal needs at least 1 row, got {rows}.")
    codes = layout_of(G)
    values = code_values(G, code, steps, span)
    module = getattr(G, "module", G)
    device = next(module.parameters()).device
    base = codes.sample(rows, generator=torch.Generator().manual_seed(seed))
    z = torch.stack([codes.set_code(base, code, v) for v in values], 1)  # rows, cols, z_dim
    was_training = module.training
    module.eval()
    try:
        images = module(z.flatten(0, 1).to(device)).float().cpu()
    finally:
        module.train(was_training)
    return images.unflatten(0, (rows, len(values)))


def code_traversals(G: Any, steps: int = 10, rows: int = 8, seed: int = 0,
                    span: tuple[float, float] = (-2.0, 2.0)) -> dict[str, torch.Tensor]:
    """A traversal of every code of ``G``, by code name."""
    return {name: code_traversal(G, name, steps, rows, seed, span)
            for name in layout_of(G).names}
