"""Name -> builder tables for models.

Model families register themselves here (see ``ganforge.models``); loading a file
builds its model from this table, so no code is ever taken from a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from torch import nn

from ganforge.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """A registered model family: its typed config and its builders."""

    name: str
    kind: Literal["image", "points"]
    config_cls: type[BaseModel]
    build_generator: Callable[[Any], nn.Module]
    build_discriminator: Callable[[Any], nn.Module]
    description: str = ""
    recipe: str | None = None  # the training recipe this family needs (None: any)

    def make_config(self, options: dict[str, Any]) -> BaseModel:
        """Validate model options into the family's typed config."""
        try:
            return self.config_cls.model_validate(options)
        except ValidationError as err:
            from ganforge.config import format_validation_error, valid_keys_hint

            raise ConfigError(format_validation_error(err, f"the settings of model '{self.name}'")
                              + valid_keys_hint(err, self.config_cls)) from None


_MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model family to the registry (names are unique)."""
    if spec.name in _MODELS:
        raise ValueError(f"model '{spec.name}' is already registered")
    _MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    """Look up a model family by name, with a helpful error for unknown names."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS)) or "(none registered)"
        raise ConfigError(f"Unknown model '{name}'. Registered models: {known}. "
                          "Pick one of these with --model.") from None


def model_names() -> list[str]:
    """Names of all registered model families."""
    return sorted(_MODELS)
