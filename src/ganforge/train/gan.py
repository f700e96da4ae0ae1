"""The standard alternating GAN recipe (n_critic D steps, one G step, EMA)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from ganforge.augment import build_augmenter
from ganforge.config import OptimConfig, RunConfig
from ganforge.losses import (
    d_loss,
    g_loss,
    interpolates,
    orthogonal_penalty,
    r1_penalty,
    unit_gradient_penalty,
)
from ganforge.models.packing import build_discriminator
from ganforge.models.progressive import Progressive, fade_reals, growing
from ganforge.registry import ModelSpec
from ganforge.train.acceleration import (
    MultiInput,
    Precision,
    prepare_module,
    to_layout,
    wrap_for_training,
)
from ganforge.train.distributed import Dist
from ganforge.train.ema import EMA
from ganforge.train.recipe import check_finite
from ganforge.train.stream import DataStream

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def make_adam(module: nn.Module, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with one network's own settings."""
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (stateless, so resume is exact)."""
    progress = step / max(total, 1)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def ortho_weights(module: nn.Module) -> list[torch.Tensor]:
    """The weight matrices BigGAN's orthogonal regularization applies to: every parameter
    of two or more dimensions outside embeddings (the class embedding is left free)."""
    skip = {id(p) for m in module.modules() if isinstance(m, nn.Embedding)
            for p in m.parameters(recurse=False)}
    return [p for p in module.parameters() if p.ndim >= 2 and id(p) not in skip]


def grad_norm(module: nn.Module) -> torch.Tensor:
    """Total L2 norm of a module's gradients."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


class GANRecipe:
    """Minimax / non-saturating / LSGAN / WGAN-GP / hinge, with optional R1 and GP.

    ``G`` and ``D`` are the plain networks (EMA, export, checkpoints); the forward
    passes of a step go through their training wrappers (DDP, torch.compile), under
    the configured autocast precision and memory layout.
    """

    def __init__(self, config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device, dist: Dist | None = None) -> None:
        self.cfg, self.device, self.dist = config, device, dist or Dist()
        self.G = prepare_module(spec.build_generator(model_cfg).to(device), config)
        self.D = prepare_module(build_discriminator(spec, model_cfg, config.pack).to(device),
                                config)
        self.opt_g = make_adam(self.G, config.g_optim)
        self.opt_d = make_adam(self.D, config.d_optim)
        self.ema = EMA(self.G, config.ema_decay if config.ema_rampup is None
                       else config.ema_decay_at, config.ema_start)
        self.ortho_params = ortho_weights(self.G) if config.ortho_reg > 0 else []
        # progressive growing: the network whose schedule sets G's and D's level of
        # detail, and D's (whose level fades the real images like G's output)
        self.grower, self.d_grower = growing(self.G), growing(self.D)
        self.growing_nets = [m for net in (self.G, self.D) for m in net.modules()
                             if isinstance(m, Progressive)] if self.grower else []
        self.lod = 0.0
        self.amp = Precision(config, device)
        # DiffAugment / ADA of every batch D judges (None when augment.kind is none)
        self.augment = build_augmenter(config, self.dist.rank, self.dist.world,
                                       self.dist.mean)
        self.g_run = wrap_for_training(self._g_forward_module(), config, self.dist, device)
        self.d_run = wrap_for_training(self._d_inputs_module(), config, self.dist, device)
        # the G step's pass through D updates no D weights, so it needs no DDP wrapper
        self.d_judge = torch.compile(self.D) if config.compile else self.D
        # draws happen on the CPU and move to the device, so the RNG state (and a resumed
        # run) does not depend on the device; each draw covers the global batch and every
        # rank keeps its slice, so ranks differ and the run does not depend on their number
        self.rng = torch.Generator().manual_seed(config.seed + 1)
        self._g_reals: torch.Tensor | None = None  # the real batch G's step pairs with

    # ---------------------------------------------------------------- hooks
    def _g_forward_module(self) -> nn.Module:
        """The module every training-step G call goes through (DDP-wrapped)."""
        return self.G

    def _d_inputs_module(self) -> nn.Module:
        """The module the D step calls once on all its input batches (DDP-wrapped)."""
        return MultiInput(self.D)

    def _d_forward(self, inputs: list[torch.Tensor], y: torch.Tensor | None
                   ) -> list[torch.Tensor]:
        """D's float32 logits of each input batch, from one call (DDP expects one forward
        per backward)."""
        with self.amp.autocast():
            return [out.float() for out in self.d_run(inputs, y)]

    def _reals(self, x: torch.Tensor) -> torch.Tensor:
        """Real images as D should see them: at a growing D's working resolution, faded
        like G's output during a fade-in (ProGAN); ``x`` itself otherwise."""
        return x if self.d_grower is None else fade_reals(x, self.d_grower)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """What D sees of image batch ``x``: a fresh augmentation when one is configured
        (differentiable, so gradients reach G and, for R1, the real batch)."""
        if self.augment is None:
            return x
        return to_layout(self.augment(x, generator), self.cfg)

    def _d_extra_inputs(self, fake: torch.Tensor) -> list[torch.Tensor]:
        """Batches a recipe adds to the D step's one call, after real, fake (and the
        WGAN-GP interpolates); their logits are not part of the adversarial loss."""
        return []

    def _d_extra_loss(self, logs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """A recipe's additional D-step loss (none for the plain GAN)."""
        return None

    def _g_loss(self, fake: torch.Tensor, y: torch.Tensor | None,
                logs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The G step's loss on ``fake`` (run under autocast, with D frozen)."""
        return g_loss(self.cfg.loss, self.d_judge(self._augment(fake), y).float(),
                      self._g_real_logits(y))

    def _g_real_logits(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """For the relativistic pairing loss, D's detached logits of the step's last real
        batch (what G's samples are paired with); None for every other objective."""
        if self.cfg.loss != "rpgan":
            return None
        assert self._g_reals is not None
        with torch.no_grad():
            return self.d_judge(self._augment(self._reals(self._g_reals)), y).float()

    # ---------------------------------------------------------------- one step
    def _latents(self, n: int) -> torch.Tensor:
        z = self.G.sample_latents(n * self.dist.world, generator=self.rng)
        return self.dist.shard(z).to(self.device, non_blocking=True)

    def _check(self, what: str, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        if self.amp.scalers["G"].is_enabled():  # overflowing fp16 gradients skip the update
            check_finite(what, step, self.dist, loss=loss)
        else:
            check_finite(what, step, self.dist, loss=loss, grad_norm=grad_norm)

    def _update(self, net: str, optimizer: torch.optim.Optimizer, module: nn.Module,
                loss: torch.Tensor, step: int, logs: dict[str, torch.Tensor]) -> None:
        """Backward (scaled for fp16), NaN check agreed over ranks, optimizer step."""
        optimizer.zero_grad(set_to_none=True)
        self.amp.backward(net, loss)
        self.amp.unscale(net, optimizer)
        norm = grad_norm(module)
        self._check("discriminator" if net == "D" else "generator", step + 1, loss, norm)
        applied = self.amp.step(net, optimizer)
        if self.amp.scalers[net].is_enabled():
            logs[f"amp_skipped_{net.lower()}"] = torch.tensor(0.0 if applied else 1.0)
            norm = torch.nan_to_num(norm, nan=0.0, posinf=0.0)
        logs[f"grad_norm_{net.lower()}"] = norm

    def _d_step(self, step: int, x: torch.Tensor, y: torch.Tensor | None,
                fake: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, logs = self.cfg, {}
        # R1 (R2) is w.r.t. the un-augmented reals (fakes), through the augmentation
        if cfg.r1_gamma > 0:
            x = x.detach().requires_grad_(True)
        fake = fake.detach().requires_grad_(cfg.r2_gamma > 0)
        # real and fake get independent augmentations; WGAN-GP interpolates between the
        # augmented batches, the distributions D is trained on
        real_in, fake_in = self._augment(self._reals(x)), self._augment(fake)
        inputs = [real_in, fake_in]
        penalised = cfg.loss == "wgan-gp" and cfg.gp_weight > 0
        if penalised:
            alpha = torch.rand((x.shape[0] * self.dist.world,) + (1,) * (x.dim() - 1),
                               generator=self.rng)
            inputs.append(interpolates(real_in, fake_in,
                                       self.dist.shard(alpha).to(self.device, x.dtype)))
        inputs += self._d_extra_inputs(fake.detach())
        logits = self._d_forward(inputs, y)
        real_logits, fake_logits = logits[0], logits[1]
        if self.augment is not None:  # ADA's overfitting heuristic sees the real logits
            self.augment.observe(real_logits)
            logs |= self.augment.logs(real_logits)
        loss = d_loss(cfg.loss, real_logits, fake_logits)
        logs["loss_d"] = loss.detach()
        if cfg.r1_gamma > 0:
            logs["r1"] = r1_penalty(real_logits, x)
            loss = loss + 0.5 * cfg.r1_gamma * logs["r1"]
        if cfg.r2_gamma > 0:
            logs["r2"] = r1_penalty(fake_logits, fake)
            loss = loss + 0.5 * cfg.r2_gamma * logs["r2"]
        if penalised:
            logs["gp"] = unit_gradient_penalty(logits[2], inputs[2])
            loss = loss + cfg.gp_weight * logs["gp"]
        extra = self._d_extra_loss(logs)
        if extra is not None:
            loss = loss + extra
        self._update("D", self.opt_d, self.D, loss, step, logs)
        logs["d_real"], logs["d_fake"] = real_logits.detach().mean(), fake_logits.detach().mean()
        return {k: v.detach() for k, v in logs.items()}

    def _begin_step(self, step: int) -> None:
        """What depends on the step alone: the learning rates and, when the networks
        grow, their level of detail (from the images shown before this step)."""
        factor = lr_factor(self.cfg.lr_schedule, step, self.cfg.steps)
        for opt, base in ((self.opt_g, self.cfg.g_optim.lr), (self.opt_d, self.cfg.d_optim.lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor
        if self.grower is not None:
            self.lod = self.grower.scheduled_lod(step * self.cfg.batch_size)
            for net in self.growing_nets:  # found once: this runs every step
                net.lod.fill_(self.lod)

    def train_step(self, step: int, stream: DataStream) -> dict[str, torch.Tensor]:
        self._begin_step(step)
        self.G.train()
        self.D.train()
        for i in range(self.cfg.n_critic):
            x, y = stream.next()
            x = to_layout(x, self.cfg)
            last = i == self.cfg.n_critic - 1
            # the last fake batch is reused by the G step
            with torch.set_grad_enabled(last), self.amp.autocast():
                fake = self.g_run(self._latents(x.shape[0]), y)
            logs = self._d_step(step, x, y, fake)
        self._g_reals = x
        self.D.requires_grad_(False)
        try:
            with self.amp.autocast():
                loss_g = self._g_loss(fake, y, logs)
            if self.cfg.ortho_reg > 0:
                ortho = orthogonal_penalty(self.ortho_params)
                logs["ortho"] = ortho.detach()
                loss_g = loss_g + self.cfg.ortho_reg * ortho
            self._update("G", self.opt_g, self.G, loss_g, step, logs)
        finally:
            self.D.requires_grad_(True)
        logs["loss_g"] = loss_g.detach()
        self.dist.average_buffers(self.G, self.D)
        self.ema.update(self.G, step)
        return logs | self._growth_logs()

    def _growth_logs(self) -> dict[str, torch.Tensor]:
        """``lod`` while the networks grow (0 = full resolution)."""
        return {"lod": torch.tensor(self.lod)} if self.grower is not None else {}

    # ---------------------------------------------------------------- export
    @torch.no_grad()
    def export_generator(self, stat_batches: int = 16, batch: int = 64) -> nn.Module:
        """EMA generator copy; BatchNorm statistics recomputed for the averaged weights."""
        g = copy.deepcopy(self.ema.model)
        bns = [m for m in g.modules() if isinstance(m, _BN)]
        if bns:
            momenta = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
            g.train()
            rng = torch.Generator().manual_seed(self.cfg.seed + 3)
            for _ in range(stat_batches):
                z = g.sample_latents(batch, generator=rng).to(self.device)
                y = None
                if g.num_classes:
                    y = torch.randint(g.num_classes, (batch,), generator=rng).to(self.device)
                g(z, y)
            for m, momentum in zip(bns, momenta, strict=True):
                m.momentum = momentum
        return g.eval()

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.ema.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "rng": self.rng.get_state(),
                "amp": self.amp.state_dict(),
                **({"augment": self.augment.state_dict()} if self.augment is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.model.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt, cfg in ((self.opt_g, self.cfg.g_optim), (self.opt_d, self.cfg.d_optim)):
            for group in opt.param_groups:  # settings changed on resume take effect
                group.update(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)
        self.rng.set_state(state["rng"])
        self.amp.load_state_dict(state.get("amp", {}))
        if self.augment is not None and "augment" in state:  # absent in older checkpoints
            self.augment.load_state_dict(state["augment"])
