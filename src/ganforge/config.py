"""Typed, strict run configuration.

Every key is validated; unknown keys are errors. A run's resolved configuration is
written to ``config.yaml`` in its run directory and is enough to reproduce it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ganforge.errors import ConfigError

LossName = Literal["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge", "rpgan"]
MutationName = Literal["minimax", "nonsaturating", "lsgan"]
RecipeName = Literal["gan", "egan", "infogan", "stylegan2"]
DiffAugmentOp = Literal["color", "translation", "cutout"]
ADAOp = Literal["xflip", "rotate90", "translate", "scale", "rotate", "aniso", "fraction",
                "brightness", "contrast", "saturation", "cutout"]


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class OptimConfig(StrictModel):
    """Adam settings for one network."""

    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("both betas must lie in [0, 1)")
        return v


class EGANConfig(StrictModel):
    """Evolutionary GAN (Wang et al., 2019): mutations, survivors, fitness weighting."""

    mutations: list[MutationName] = Field(
        default_factory=lambda: ["minimax", "nonsaturating", "lsgan"],
        min_length=1, description="generator objectives each parent is mutated with")
    parents: int = Field(1, ge=1, le=8, description="survivors kept every step (mu)")
    gamma: float = Field(1.0, ge=0, description="weight of the diversity fitness "
                         "-log||grad_D loss_D|| beside the quality fitness mean D(G(z))")
    fitness_batch: int | None = Field(None, ge=2, description="samples that score a child "
                                      "(default: the batch size)")
    adam_state: Literal["parent", "mutation"] = Field(
        "parent", description="the Adam moments a child's update uses: 'parent' copies its "
        "parent's (the survivor's history); 'mutation' keeps one set per mutation across "
        "steps, advanced whenever that mutation makes a child (the authors' toy code, which "
        "has one parent)")
    selection: Literal["fitness", "random"] = Field(
        "fitness", description="how survivors are chosen: 'fitness' keeps the fittest "
        "children (E-GAN); 'random' keeps children drawn at random from the run's seeded "
        "stream, without scoring them (an ablation of the fitness)")

    @field_validator("mutations")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each mutation may appear once, got {v}")
        return v


class InfoGANLossConfig(StrictModel):
    """Weights of InfoGAN's mutual-information terms (Chen et al., 2016)."""

    categorical_weight: float = Field(1.0, ge=0, description="lambda of the categorical "
                                      "codes' cross-entropy")
    continuous_weight: float = Field(0.1, ge=0, description="lambda of the continuous codes' "
                                     "Gaussian negative log-likelihood")


class StyleGAN2LossConfig(StrictModel):
    """StyleGAN2's regularization (Karras et al., 2020): lazy R1 (weight ``r1_gamma``),
    path-length regularization and style-mixing regularization.

    A lazy regularizer runs as its own optimizer step every ``interval`` steps, weighted by
    the interval; with an interval above 1 that network's Adam then runs with
    ``lr * c`` and ``betas ** c``, ``c = interval / (interval + 1)``, as in the paper.
    """

    r1_interval: int = Field(16, ge=1, description="D steps between lazy R1 steps (1: R1 in "
                             "every D step, as in the gan recipe); the penalty uses r1_gamma")
    pl_weight: float = Field(2.0, ge=0, description="path-length regularization weight "
                             "(0 = off)")
    pl_interval: int = Field(4, ge=1, description="G steps between path-length steps")
    pl_decay: float = Field(0.01, gt=0, le=1, description="how far the running mean path "
                            "length moves towards each batch's mean")
    pl_batch_shrink: int = Field(2, ge=1, description="the path-length batch is the batch "
                                 "size divided by this")
    mixing_prob: float = Field(0.9, ge=0, le=1, description="probability that a sample's ws "
                               "switch from one z's w to another's at a random layer")


class AugmentConfig(StrictModel):
    """Differentiable augmentation of everything D sees (real and fake, in D and G steps).

    diffaugment: Zhao et al., 2020, every op on every image. ada: Karras et al., 2020,
    each op applied with probability p, which is raised or lowered every ``ada_interval``
    steps so that r_t = E[sign(D(real))] stays near ``ada_target``.
    """

    kind: Literal["none", "diffaugment", "ada"] = "none"
    policy: list[DiffAugmentOp] = Field(
        default_factory=lambda: ["color", "translation", "cutout"],
        min_length=1, description="DiffAugment ops, applied in this order")
    ada_ops: list[ADAOp] = Field(
        default_factory=lambda: ["xflip", "rotate90", "translate", "scale", "rotate",
                                 "aniso", "fraction", "brightness", "contrast",
                                 "saturation"],
        min_length=1, description="ADA ops, each applied with probability p")
    ada_target: float = Field(0.6, gt=0, lt=1, description="target of the overfitting "
                              "heuristic r_t = E[sign(D(real))]")
    ada_interval: int = Field(4, ge=1, description="steps between adjustments of p")
    ada_kimg: float = Field(100.0, gt=0, description="thousands of real images over which "
                            "p can move from 0 to 1")
    ada_p: float = Field(0.0, ge=0, le=1, description="initial augmentation probability")
    ada_max_p: float = Field(1.0, gt=0, le=1, description="ceiling of p")

    @field_validator("policy", "ada_ops")
    @classmethod
    def _distinct_ops(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each op may appear once, got {v}")
        return v


class RunConfig(StrictModel):
    """Everything that defines a training run."""

    data: str = "digits"
    model: str = "dcgan"
    recipe: RecipeName = Field("gan", description="training method: gan (alternating "
                               "updates), egan (evolutionary), infogan (latent codes), "
                               "stylegan2 (lazy R1, path length, style mixing)")
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(64, ge=1)
    seed: int = 0
    out: str = "runs"
    device: str = "cpu"

    # data
    resolution: int = Field(32, ge=1, description="side of the square training images; "
                            "unset: the model's own default (28 for infogan-mnist, else 32)")
    channels: Literal[1, 3, 4] | None = Field(
        None, description="convert images to 1, 3 or 4 channels; None keeps the source's own")
    conditional: bool = Field(False, description="condition G and D on the source's labels")
    split: Literal["all", "train", "test"] = "all"
    skip_bad: bool = False
    data_limit: int | None = Field(None, ge=1, description="train on a random subset of "
                                   "this many samples (drawn with data_seed), e.g. to "
                                   "study the low-data regime")
    data_seed: int = Field(0, description="seed for generated sources (ring, grid, "
                           "stacked-mnist)")
    exclude_classes: list[int] = Field(
        default_factory=list, description="drop the samples of these classes (labelled data "
        "only), e.g. to train an anomaly detector on the normal classes alone")
    standardize: bool = Field(False, description="points/rows only: shift and scale every "
                              "column to mean 0, std 1 with the training rows' statistics "
                              "(kept in run.json; the generator then works in those units)")

    # model: validated by the model's own typed config
    model_options: dict[str, Any] = Field(default_factory=dict)

    # objective
    loss: LossName = "nonsaturating"
    n_critic: int = Field(1, ge=1, description="D steps per G step")
    r1_gamma: float = Field(0.0, ge=0, description="R1 penalty weight (0 = off)")
    r2_gamma: float = Field(0.0, ge=0, description="R2 penalty weight: R1's gradient "
                            "penalty on generated samples (0 = off)")
    gp_weight: float = Field(10.0, ge=0, description="gradient-penalty weight for wgan-gp")
    pack: int = Field(1, ge=1, le=16, description="PacGAN: D judges this many samples "
                      "jointly (1 = no packing); unconditional runs only")
    egan: EGANConfig = Field(default_factory=EGANConfig)
    infogan: InfoGANLossConfig = Field(default_factory=InfoGANLossConfig)
    stylegan2: StyleGAN2LossConfig = Field(default_factory=StyleGAN2LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    ortho_reg: float = Field(0.0, ge=0, description="BigGAN's orthogonal regularization "
                             "of G's weights, beta * ||W W^T * (1 - I)||_F^2 (1e-4 in "
                             "the paper; 0 = off)")
    g_optim: OptimConfig = Field(default_factory=OptimConfig)
    d_optim: OptimConfig = Field(default_factory=OptimConfig)
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="decay of both learning rates to 0 at the last step")
    ema_kimg: float = Field(10.0, ge=0, description="EMA half-life in thousands of images "
                            "(as in StyleGAN); 0 disables the EMA generator")
    ema_start: int = Field(0, ge=0, description="step from which EMA averaging starts")
    ema_rampup: float | None = Field(None, gt=0, description="StyleGAN2-ADA's ramp-up: the "
                                     "half-life is at most this fraction of the images "
                                     "shown before the step (e.g. 0.05; the first step is "
                                     "copied), so early training is not averaged over "
                                     "long-gone weights; None = off")

    @field_validator("exclude_classes")
    @classmethod
    def _classes_valid(cls, v: list[int]) -> list[int]:
        if any(k < 0 for k in v):
            raise ValueError(f"class indices must be non-negative, got {v}")
        return sorted(set(v))

    @property
    def ema_decay(self) -> float:
        """Per-step EMA decay that halves the weight of a step after ``ema_kimg``k images."""
        return self.ema_decay_at(None)

    def ema_decay_at(self, step: int | None) -> float:
        """The EMA decay of step ``step`` (0-based): with ``ema_rampup`` the half-life is
        ``min(ema_kimg * 1000, rampup * images shown before the step)`` (StyleGAN2-ADA;
        0 at step 0, where the EMA copies G)."""
        if self.ema_kimg == 0:
            return 0.0
        half_life = self.ema_kimg * 1000.0
        if self.ema_rampup is not None and step is not None:
            half_life = min(half_life, step * self.batch_size * self.ema_rampup)
        return 0.5 ** (self.batch_size / half_life) if half_life > 0 else 0.0

    # speed: how the networks run; none of these changes the saved state
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision of the forward passes; bf16 is native on "
        "recent CPUs and GPUs, fp16 adds a gradient scaler (GPU)")
    channels_last: bool = Field(False, description="NHWC memory layout for image networks")
    compile: bool = Field(False, description="torch.compile the training networks (the "
                          "first steps wait for the compiler)")

    # bookkeeping
    log_every: int = Field(25, ge=1)
    sample_every: int = Field(500, ge=0, description="0: only at the end")
    checkpoint_every: int = Field(500, ge=0, description="0: only at the end")
    keep_checkpoints: int = Field(3, ge=1)
    grid_size: int = Field(64, ge=1, le=1024, description="images in each sample grid")
    progress: bool = True
    deterministic: bool = True

    # periodic evaluation; the best export by eval_metric is kept as best.safetensors
    eval_every: int = Field(0, ge=0, description="evaluate every N steps and at the last "
                            "step (0: never)")
    eval_metric: str = Field("fid", description="selects best.safetensors: fid, kid, is, "
                             "precision, recall, density, coverage, cas, intra_fid, "
                             "modes_captured, high_quality or reverse_kl")
    eval_n: int = Field(2000, ge=10, description="generated (and real) samples per evaluation")
    eval_features: str = Field("auto", description="feature extractor (see `ganforge eval`)")
    eval_real: str | None = Field(None, description="real data for evaluation (default: "
                                  "the training data)")

    @model_validator(mode="before")
    @classmethod
    def _model_resolution(cls, data: Any) -> Any:
        """An unset ``resolution`` is the model's own default side."""
        if isinstance(data, dict) and data.get("resolution") is None:
            data = {**data, "resolution": default_resolution(
                data.get("model", cls.model_fields["model"].default),
                data.get("model_options") or {})}
        return data


def default_resolution(model: Any, model_options: Any) -> int:
    """The image side a run of ``model`` trains at when ``resolution`` is unset: the one in
    ``model_options``, else the model config's default, else 32 (also for unknown models,
    which are reported later with the list of known ones)."""
    import ganforge.models  # noqa: F401  (registers the families)
    from ganforge.registry import get_model

    if isinstance(model_options, dict) and isinstance(model_options.get("resolution"), int):
        return model_options["resolution"]
    try:
        spec = get_model(model) if isinstance(model, str) else None
    except ConfigError:
        spec = None
    field = spec.config_cls.model_fields.get("resolution") if spec else None
    return field.default if field is not None and isinstance(field.default, int) else 32


def format_validation_error(err: ValidationError, where: str) -> str:
    """Turn a pydantic error into one readable paragraph."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif e["type"] == "value_error":  # our own validators already name the value
            parts.append(f"'{loc}': {e['msg'].removeprefix('Value error, ')}")
        else:
            parts.append(f"'{loc}': {e['msg']} (got {e.get('input')!r})")
    return f"Invalid configuration in {where}: " + "; ".join(parts) + "."


def validate_config(data: dict[str, Any], where: str = "the configuration") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)
                          + valid_keys_hint(err, RunConfig)) from None


def valid_keys_hint(err: ValidationError, model: type[BaseModel]) -> str:
    """' Valid keys: ...' when the error is about an unknown key, else ''."""
    for e in err.errors():
        if e["type"] != "extra_forbidden":
            continue
        target: type[BaseModel] = model
        for part in e["loc"][:-1]:  # descend into nested configs (e.g. g_optim)
            field = target.model_fields.get(str(part))
            sub = field.annotation if field else None
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                target = sub
        where = ".".join(map(str, e["loc"][:-1]))
        label = f"Valid keys of {where}" if target is not model else "Valid keys"
        return f" {label}: {', '.join(target.model_fields)}."
    return ""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for missing files and bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist; check the path given to --config.")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {p} is not valid YAML: {err}. Fix the syntax.") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {p} must hold a mapping of keys to values, "
                          f"not a {type(loaded).__name__}.")
    return loaded


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> RunConfig:
    """Load a YAML config (optional) and apply overrides (flags win)."""
    data: dict[str, Any] = read_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate_config(data, str(path) if path else "the given options")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sub-dicts as needed."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set '{key}': '{part}' is not a mapping.")
        node = child
    node[last] = value


def dump_config(config: RunConfig) -> str:
    """The YAML text written as a run's ``config.yaml``."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
