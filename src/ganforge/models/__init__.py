"""Model families; importing this package registers them by name."""

from ganforge.models import (  # noqa: F401  (registration side effect)
    biggan,
    dcgan,
    infogan,
    infogan_mnist,
    mlp,
    sagan,
    sngan,
    stylegan,
    stylegan2,
)
from ganforge.models.base import Generator

__all__ = ["Generator"]
