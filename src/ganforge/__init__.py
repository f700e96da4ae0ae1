"""ganforge: train, evaluate and apply generative adversarial networks."""

from ganforge import models  # noqa: F401  (registers the model families)
from ganforge.config import RunConfig, load_config
from ganforge.errors import GanforgeError
from ganforge.generator import LoadedGenerator, load
from ganforge.metrics.evaluate import compare_sources as compare
from ganforge.metrics.evaluate import evaluate
from ganforge.train import Run, resume, start_or_continue, train

__version__ = "0.1.0"
__all__ = [
           "GanforgeError",
           "LoadedGenerator",
           "Run",
           "RunConfig",
           "__version__",
           "compare",
           "evaluate",
           "load",
           "load_config",
           "resume",
           "start_or_continue",
           "train",
]
