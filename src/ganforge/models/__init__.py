"""Model families; importing this package registers them by name."""

from ganforge.models import dcgan, infogan, mlp  # noqa: F401  (registration side effect)
from ganforge.models.base import Generator

__all__ = ["Generator"]
