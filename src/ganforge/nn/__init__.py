"""Building blocks shared by several model families (pure PyTorch, CPU-safe)."""

from ganforge.nn.projection import ProjectionHead

__all__ = ["ProjectionHead"]
