"""Layer 4: walking a trained generator's latent space (code traversals)."""

from ganforge.latent.traversal import code_traversal, code_traversals

__all__ = ["code_traversal", "code_traversals"]
