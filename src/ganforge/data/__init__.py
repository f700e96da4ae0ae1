"""Data sources: built-in sets, image folders, npz arrays and 2-D mixtures."""

from ganforge.data.bundle import DataBundle
from ganforge.data.cache import cache_dir
from ganforge.data.mixtures import MIXTURE_STD, mixture_centers
from ganforge.data.spec import load_source, source_short_name

__all__ = [
    "MIXTURE_STD",
    "DataBundle",
    "cache_dir",
    "load_source",
    "mixture_centers",
    "source_short_name",
]
