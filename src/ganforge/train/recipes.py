"""Recipe name -> recipe class; modules are imported only when their recipe is used."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import torch
from pydantic import BaseModel

from ganforge.config import RunConfig
from ganforge.errors import ConfigError
from ganforge.registry import ModelSpec
from ganforge.train.distributed import Dist
from ganforge.train.recipe import Recipe

RECIPES: dict[str, tuple[str, str]] = {
    "gan": ("ganforge.train.gan", "GANRecipe"),
    "egan": ("ganforge.train.egan", "EGANRecipe"),
    "infogan": ("ganforge.train.infogan", "InfoGANRecipe"),
    "stylegan2": ("ganforge.train.stylegan2", "StyleGAN2Recipe"),
}


def recipe_class(name: str) -> Any:
    """The class that implements recipe ``name``."""
    if name not in RECIPES:
        raise ConfigError(f"Unknown recipe '{name}'; choose one of {', '.join(RECIPES)}.")
    module, cls = RECIPES[name]
    return getattr(import_module(module), cls)


def check_recipe(config: RunConfig, spec: ModelSpec) -> None:
    """A model family that needs its own recipe (e.g. InfoGAN's codes) gets it."""
    if spec.recipe is not None and config.recipe != spec.recipe:
        raise ConfigError(f"Model '{spec.name}' trains with the '{spec.recipe}' recipe, not "
                          f"'{config.recipe}'; add --recipe {spec.recipe}.")
    check = getattr(recipe_class(config.recipe), "check_model", None)
    if check is not None:
        check(config, spec)


def build_recipe(config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device, dist: Dist) -> Recipe:
    """Instantiate the configured recipe."""
    return recipe_class(config.recipe)(config, spec, model_cfg, device, dist)
