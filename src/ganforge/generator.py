"""Loading exported generators and sampling from them (``ganforge.load``)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from ganforge.checkpoint import read_generator_file
from ganforge.errors import CheckpointError, ConfigError, GanforgeError
from ganforge.models.base import Generator, check_truncation, truncation_space
from ganforge.registry import get_model

EXPORT_NAME = "generator.safetensors"
BEST_NAME = "best.safetensors"  # the export with the best evaluation score so far
LabelsArg = int | Sequence[int] | torch.Tensor | None
Units = Literal["model", "data"]


def resolve_generator_path(path: str | Path) -> Path:
    """A run directory means its exported generator; a file is taken as is."""
    p = Path(path)
    if p.is_dir() and not (p / "config.yaml").is_file():
        raise CheckpointError(f"{p} is a folder but not a ganforge run directory (it has no "
                              "config.yaml); pass the folder `ganforge train` created or a "
                              ".safetensors file.")
    if p.is_dir():
        f = p / EXPORT_NAME
        if not f.exists():
            raise CheckpointError(f"Run directory {p} has no {EXPORT_NAME} yet; it is written "
                                  "at the first checkpoint. Wait for one or pass a file.")
        return f
    return p


def expand_labels(num_classes: int | None, n: int, labels: LabelsArg,
                  default: Literal["cycle", "zero", "required"] = "cycle",
                  required_hint: str = "", whole: bool = False, name: str = "This generator"
                  ) -> torch.Tensor | None:
    """``n`` class labels for a generator with ``num_classes`` (None: unconditional, which
    takes no labels): an int, or a list tiled cyclically to ``n`` (with ``whole``, only a
    list whose length divides ``n``: one label, or one per item). Without labels a
    conditional generator gets the classes in turn (``cycle``), class 0 (``zero``), or a
    ConfigError that says ``required_hint`` (``required``). ``name`` names the generator
    in errors."""
    if num_classes is None:
        if labels is not None:
            raise ConfigError(f"{name} is unconditional; drop the labels.")
        return None
    if labels is None:
        if default == "required":
            raise ConfigError(f"This generator is class-conditional ({num_classes} classes): "
                              f"{required_hint or 'give labels.'}")
        return torch.arange(n) % num_classes if default == "cycle" \
            else torch.zeros(n, dtype=torch.long)
    t = torch.as_tensor([labels] if isinstance(labels, int) else labels,
                        dtype=torch.long).flatten()
    if t.numel() == 0:
        raise ConfigError("Labels are empty; give at least one class index.")
    if whole and n % t.numel():
        raise ConfigError(f"Give one label, or one per item ({n}); got {t.numel()}.")
    if t.min() < 0 or t.max() >= num_classes:
        raise ConfigError(f"Labels must lie in 0..{num_classes - 1} for this generator; got "
                          f"{t.tolist()[:10]}.")
    return t.repeat((n + t.numel() - 1) // t.numel())[:n]


class LoadedGenerator:
    """A generator built from the registry plus its metadata, ready to sample."""

    def __init__(self, module: Generator, model: str, config: dict[str, Any],
                 info: dict[str, Any], path: Path | None = None) -> None:
        self.module = module.eval()
        self.model = model
        self.config = config
        self.info = info
        self.path = path

    @property
    def num_classes(self) -> int | None:
        return self.module.num_classes

    @property
    def kind(self) -> str:
        return self.module.kind

    @property
    def z_dim(self) -> int:
        return self.module.z_dim

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> LoadedGenerator:
        self.module.to(device)
        return self

    @property
    def standardization(self) -> dict[str, list[float]] | None:
        """The column statistics ``{"mean", "std"}`` of a generator trained on points
        with ``standardize`` (its samples are in standardized units); None otherwise."""
        return (self.info.get("data") or {}).get("standardize")

    def to_data_units(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples of this generator in the training data's units: standardized points
        mapped back with the training statistics; anything else unchanged."""
        from ganforge.data.spec import unstandardize

        stats = self.standardization
        return samples if stats is None else unstandardize(samples, stats)

    def make_labels(self, n: int, labels: LabelsArg) -> torch.Tensor | None:
        """Expand an int or a list (tiled cyclically to n) into a label tensor; by default
        the classes in turn."""
        return expand_labels(self.num_classes, n, labels, default="cycle")

    def latents(self, n: int, generator: torch.Generator,
                truncation: float | None = None) -> torch.Tensor:
        """The module's latents for ``n`` samples, drawn on the CPU (see
        :func:`draw_latents`)."""
        return draw_latents(self.module, n, generator, truncation, self.model)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, labels: LabelsArg = None,
               generator: torch.Generator | None = None, batch_size: int = 256,
               truncation: float | None = None, units: Units = "model") -> torch.Tensor:
        """``n`` samples: images in [-1, 1] NCHW, or points N x D. Seeded draws are
        identical on every device (latents are drawn on the CPU).

        ``units``: "model" gives what the network outputs; "data" maps the points of a
        generator trained with ``standardize`` back to the data's units (the same as
        "model" for every other generator).

        ``truncation``: the truncation trick (None: off). For z-space generators latents
        are drawn from N(0, 1) truncated to ``|z_i| <= truncation``, the same seed giving
        the same samples pulled towards the mode; smaller values trade variety for
        fidelity. A module whose ``forward`` takes a ``truncation`` keyword (a style-based
        generator truncating in W) also receives it there.
        """
        if n < 1:
            raise ConfigError(f"Number of samples must be at least 1, got {n}.")
        if units not in ("model", "data"):
            raise ConfigError(f"units must be 'model' or 'data', got {units!r}.")
        truncation = check_truncation(truncation, truncation_space(self.module))
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()  # fresh entropy without touching the global RNG
            else:
                generator.manual_seed(seed)
        y = self.make_labels(n, labels)
        z = self.latents(n, generator, truncation)
        extra = ({"truncation": truncation} if truncation is not None
                 and truncation_space(self.module) == "w" else {})
        out = []
        for i in range(0, n, batch_size):
            zb = z[i:i + batch_size].to(self.device)
            yb = None if y is None else y[i:i + batch_size].to(self.device)
            out.append(self.module(zb, yb, **extra).float().cpu())
        samples = torch.cat(out)
        return self.to_data_units(samples) if units == "data" else samples

    def __repr__(self) -> str:
        return (f"LoadedGenerator(model={self.model!r}, kind={self.kind!r}, "
                f"z_dim={self.z_dim}, num_classes={self.num_classes}, path={self.path})")


def draw_latents(module: Generator, n: int, generator: torch.Generator,
                 truncation: float | None = None, name: str = "") -> torch.Tensor:
    """``n`` latents of ``module`` drawn on the CPU; ``truncation`` goes to its
    ``sample_latents``, which gives it its meaning (a z threshold for the BigGAN trick; a
    style-based model draws plain z and applies psi to w in ``forward``)."""
    if truncation is None:
        return module.sample_latents(n, generator=generator)
    if not _accepts(module.sample_latents, "truncation"):
        raise ConfigError(f"Generator '{name or type(module).__name__}' does not support "
                          "truncation; drop --truncation (truncation=None).")
    return module.sample_latents(n, generator=generator, truncation=truncation)


def _accepts(fn: Any, name: str) -> bool:
    """Whether callable ``fn`` takes a keyword argument ``name``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params  # explicitly: a **kwargs catch-all is not taken as consent


def build_generator(model: str, config: dict[str, Any]) -> Generator:
    """Build an (untrained) generator from its registry name and config."""
    spec = get_model(model)
    return spec.build_generator(spec.make_config(config))


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from a run directory or an exported ``.safetensors`` file."""
    file = resolve_generator_path(path)
    tensors, info = read_generator_file(file)
    model, config = info.pop("model"), info.pop("config", None)
    if not isinstance(model, str) or not isinstance(config, dict):
        raise CheckpointError(f"{file} metadata lacks a model name or config.")
    try:
        module = build_generator(model, config)
    except GanforgeError as err:
        raise CheckpointError(f"{file} names a model ganforge cannot build: {err}") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        msg = str(err).splitlines()[0]
        raise CheckpointError(f"{file} does not match the '{model}' architecture in its own "
                              f"metadata ({msg}). The file is damaged or was edited.") from None
    return LoadedGenerator(module.to(device), model, config, info, file)
