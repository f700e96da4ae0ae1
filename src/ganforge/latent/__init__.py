"""Layer 4: walking a trained generator's latent space (code traversals, interpolation,
attribute vectors, style mixing, projection, super-resolution, inpainting)."""

from ganforge.latent.interpolate import (
    interpolate,
    interpolation_latents,
    lerp,
    save_gif,
    save_interpolation,
    save_mp4,
    slerp,
)
from ganforge.latent.mixing import StyleMix, band_layers, mixing_grid, save_mixing_grid, style_mix
from ganforge.latent.projection import ProjectionResult, inpaint, project, super_resolve
from ganforge.latent.traversal import code_traversal, code_traversals
from ganforge.latent.vectors import (
    AttributeVector,
    apply_vector,
    load_vector,
    save_vector,
    vector_from_classifier,
    vector_from_labels,
    vector_from_mask,
)

__all__ = [
    "AttributeVector",
    "ProjectionResult",
    "StyleMix",
    "apply_vector",
    "band_layers",
    "code_traversal",
    "code_traversals",
    "inpaint",
    "interpolate",
    "interpolation_latents",
    "lerp",
    "load_vector",
    "mixing_grid",
    "project",
    "save_gif",
    "save_interpolation",
    "save_mixing_grid",
    "save_mp4",
    "save_vector",
    "slerp",
    "style_mix",
    "super_resolve",
    "vector_from_classifier",
    "vector_from_labels",
    "vector_from_mask",
]
