"""The StyleGAN2 training recipe (Karras et al., 2020): the alternating GAN step with
style-mixing regularization, lazy R1 and lazy path-length regularization.

- **Generation.** Every fake batch (the D steps' and the G step's) goes through
  ``G.mapping`` and ``G.synthesis``. With probability ``mixing_prob`` a sample's ws switch
  from its own w to the w of a second latent at a crossover layer drawn uniformly from
  ``1 .. num_ws - 1`` (mixing regularization; while the networks grow, among the
  layers that run). Both latents go through the mapping
  network in one call, so ``w_avg`` is updated once per batch.
- **Lazy R1.** With ``r1_interval`` N > 1, the main D step has no R1; every N-th D step
  (counted over all D steps, so ``n_critic`` > 1 counts each) is followed by a separate
  regularization step: D on the (augmented) real batch, ``N * r1_gamma / 2 * R1`` and
  an Adam step. With N = 1, R1 is part of every D step (exactly the ``gan`` recipe's).
- **Path length.** Every ``pl_interval``-th G step is followed by a separate step on
  ``batch / pl_batch_shrink`` fresh samples (with mixing): ``pl_interval * pl_weight *
  E(|J_w^T y| - a)^2``, ``a`` the running mean length (``pl_mean``, recipe state).
- **Adam.** A network with a lazy regularizer (interval N > 1) runs Adam with
  ``lr * c`` and ``betas ** c``, ``c = N / (N + 1)``: N + 1 optimizer steps happen
  per N minibatches. ``self.cfg`` holds these effective settings (and ``r1_gamma`` 0
  when R1 is lazy, which turns off GANRecipe's per-step R1); ``self.run_cfg`` is the
  run's configuration as given.

DDP: every G forward of a step, the path-length one included, is one call of the
wrapped :class:`StyleForward` (mapping, mixing and synthesis inside), which returns the
ws it synthesized from, so the path-length gradient w.r.t. ws (and through it the
mapping network) flows through the DDP-wrapped call; the R1 step calls the wrapped D
once. Regularization losses add ``0 * output`` so that every parameter takes part in
the backward, as DDP requires (the last biases do not affect an input gradient).
On several ranks, each rank's penalty centres on its own updated ``pl_mean``; the mean
kept is then averaged over ranks so that all ranks carry the same one.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from ganforge.config import RunConfig
from ganforge.errors import ConfigError
from ganforge.losses import orthogonal_penalty, r1_penalty
from ganforge.models.style_base import num_ws_for
from ganforge.registry import ModelSpec
from ganforge.train.acceleration import to_layout
from ganforge.train.distributed import Dist
from ganforge.train.gan import GANRecipe
from ganforge.train.stream import DataStream
from ganforge.train.style_losses import path_length_penalty

_STYLE_API = ("mix", "layer_ranges")  # what marks a style-based generator class
W_AVG_SAMPLES = 4096  # latents whose mean w centres an exported generator's truncation


def lazy_factor(interval: int) -> float:
    """The paper's c = N / (N + 1) for a regularizer run every N > 1 steps (1 otherwise)."""
    return interval / (interval + 1) if interval > 1 else 1.0


def effective_config(config: RunConfig) -> RunConfig:
    """``config`` as the recipe runs it: Adam lr and betas scaled for lazy regularization,
    and R1 out of the main D step when it runs lazily."""
    sg = config.stylegan2
    r1_lazy = config.r1_gamma > 0 and sg.r1_interval > 1
    c_d = lazy_factor(sg.r1_interval) if r1_lazy else 1.0
    c_g = lazy_factor(sg.pl_interval) if sg.pl_weight > 0 else 1.0

    def scaled(optim: Any, c: float) -> Any:
        return optim.model_copy(update={"lr": optim.lr * c,
                                        "betas": tuple(b ** c for b in optim.betas)})

    return config.model_copy(update={"g_optim": scaled(config.g_optim, c_g),
                                     "d_optim": scaled(config.d_optim, c_d),
                                     "r1_gamma": 0.0 if r1_lazy else config.r1_gamma})


class StyleForward(nn.Module):
    """One generator call of a training step: mapping (both latents at once), style
    mixing at per-sample crossover layers, synthesis. Returns the images, or the images
    and the ws they were synthesized from (for the path-length penalty)."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                z_mix: torch.Tensor | None = None, cutoff: torch.Tensor | None = None,
                return_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        G = self.G
        if z_mix is None:
            ws = G.mapping(z, labels)
        else:
            assert cutoff is not None
            both = G.mapping(torch.cat([z, z_mix]),
                             None if labels is None else torch.cat([labels, labels]))
            ws, ws_mix = both.chunk(2)
            layer = torch.arange(G.num_ws, device=ws.device)
            ws = torch.where((layer[None, :] >= cutoff[:, None])[:, :, None], ws_mix, ws)
        img = G.synthesis(ws)
        return (img, ws) if return_ws else img


class StyleGAN2Recipe(GANRecipe):
    """StyleGAN2 training over a style-based generator (``--recipe stylegan2``)."""

    @staticmethod
    def check_model(config: RunConfig, spec: ModelSpec) -> None:
        if not all(hasattr(spec.build_generator, a) for a in _STYLE_API):
            raise ConfigError(f"The stylegan2 recipe needs a style-based generator (a mapping "
                              f"network to W and a synthesis network fed per-layer ws); model "
                              f"'{spec.name}' is not one. Use --model stylegan2 (or stylegan), "
                              f"or train '{spec.name}' with --recipe gan.")
        sg = config.stylegan2
        if sg.pl_weight > 0 and config.batch_size // sg.pl_batch_shrink < 1:
            raise ConfigError(f"stylegan2.pl_batch_shrink {sg.pl_batch_shrink} leaves no "
                              f"samples of batch_size {config.batch_size} for the path-length "
                              "penalty; lower pl_batch_shrink or raise batch_size.")

    def __init__(self, config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device, dist: Dist | None = None) -> None:
        super().__init__(effective_config(config), spec, model_cfg, device, dist)
        self.run_cfg, self.sg = config, config.stylegan2
        if not all(hasattr(self.G, a) for a in ("mapping", "synthesis", "num_ws")):
            raise ConfigError(f"The stylegan2 recipe needs G.mapping, G.synthesis and "
                              f"G.num_ws; model '{spec.name}' lacks them. Use --recipe gan.")
        self.pl_mean = torch.zeros((), device=device)

    # ---------------------------------------------------------------- generation
    def _g_forward_module(self) -> nn.Module:
        """Every G forward goes through mapping + mixing + synthesis in one wrapped call."""
        return StyleForward(self.G)

    def _mixing(self, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Second latents and per-sample crossover layers (``num_ws``: no mixing) for a
        batch of ``n`` per rank; drawn for the global batch, like the latents."""
        p = self.sg.mixing_prob
        if p <= 0:
            return None, None
        z_mix = self._latents(n)
        total, num_ws = n * self.dist.world, self.G.num_ws
        # while growing, cross over only between the layers that run (as StyleGAN did)
        active = num_ws if self.grower is None else num_ws_for(self.grower.level()[0])
        mixed = torch.rand(total, generator=self.rng) < p
        layer = torch.randint(1, max(active, 2), (total,), generator=self.rng)
        cutoff = torch.where(mixed, layer, torch.full_like(layer, num_ws))
        return z_mix, self.dist.shard(cutoff).to(self.device)

    def _fakes(self, n: int, y: torch.Tensor | None, return_ws: bool = False
               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        z = self._latents(n)
        z_mix, cutoff = self._mixing(n)
        with self.amp.autocast():
            return self.g_run(z, y, z_mix, cutoff, return_ws=return_ws)

    # ---------------------------------------------------------------- regularizers
    def _r1_step(self, step: int, x: torch.Tensor, y: torch.Tensor | None
                 ) -> dict[str, torch.Tensor]:
        """The lazy R1 step: ``interval * gamma / 2 * R1`` on the real batch (through the
        augmentation, w.r.t. the un-augmented images, as in the main D step)."""
        x = x.detach().requires_grad_(True)
        (logits,) = self._d_forward([self._augment(self._reals(x))], y)
        r1 = r1_penalty(logits, x)
        loss = 0.5 * self.run_cfg.r1_gamma * self.sg.r1_interval * r1 + 0 * logits.sum()
        scratch: dict[str, torch.Tensor] = {}
        self._update("D", self.opt_d, self.D, loss, step, scratch)
        return {"r1": r1.detach()}

    def _pl_step(self, step: int, n: int, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The lazy path-length step on ``n`` fresh samples per rank."""
        y_pl = None if y is None else y[:n]
        img, ws = self._fakes(n, y_pl, return_ws=True)
        img = img.float()

        def synthesized(w: torch.Tensor) -> torch.Tensor:  # img was made from ws in the
            assert w is ws  # wrapped call above (DDP); the penalty differentiates it
            return img

        # the global batch's noise, each rank keeping its slice (the RNG then advances
        # alike for any number of processes, as every other draw of the recipe)
        noise = self.dist.shard(torch.randn((n * self.dist.world, *img.shape[1:]),
                                            generator=self.rng))
        penalty, new_mean = path_length_penalty(synthesized, ws, self.pl_mean,
                                                self.sg.pl_decay, noise=noise)
        loss = self.sg.pl_weight * self.sg.pl_interval * penalty + 0 * img.sum()
        scratch: dict[str, torch.Tensor] = {}
        self._update("G", self.opt_g, self.G, loss, step, scratch)
        self.pl_mean = self.dist.mean(new_mean.detach())
        return {"pl_penalty": penalty.detach(), "pl_mean": self.pl_mean.clone()}

    # ---------------------------------------------------------------- one step
    def train_step(self, step: int, stream: DataStream) -> dict[str, torch.Tensor]:
        cfg, sg = self.cfg, self.sg
        self._begin_step(step)
        self.G.train()
        self.D.train()
        extra: dict[str, torch.Tensor] = {}
        lazy_r1 = self.run_cfg.r1_gamma > 0 and sg.r1_interval > 1
        for i in range(cfg.n_critic):
            x, y = stream.next()
            x = to_layout(x, cfg)
            last = i == cfg.n_critic - 1
            with torch.set_grad_enabled(last):  # the last fake batch is reused by G
                fake = self._fakes(x.shape[0], y)
            logs = self._d_step(step, x, y, fake)
            if lazy_r1 and (step * cfg.n_critic + i) % sg.r1_interval == 0:
                extra |= self._r1_step(step, x, y)
        self._g_reals = x
        self.D.requires_grad_(False)
        try:
            with self.amp.autocast():
                loss_g = self._g_loss(fake, y, logs)
            if cfg.ortho_reg > 0:
                ortho = orthogonal_penalty(self.ortho_params)
                logs["ortho"] = ortho.detach()
                loss_g = loss_g + cfg.ortho_reg * ortho
            self._update("G", self.opt_g, self.G, loss_g, step, logs)
            logs["loss_g"] = loss_g.detach()
            if sg.pl_weight > 0 and step % sg.pl_interval == 0:
                n = max(1, x.shape[0] // sg.pl_batch_shrink)
                extra |= self._pl_step(step, n, y)
        finally:
            self.D.requires_grad_(True)
        self.dist.average_buffers(self.G, self.D)
        self.ema.update(self.G, step)
        return {k: v.detach() for k, v in (logs | extra | self._growth_logs()).items()}

    # ---------------------------------------------------------------- export
    @torch.no_grad()
    def export_generator(self, stat_batches: int = 16, batch: int = 64) -> nn.Module:
        """The EMA generator, its ``w_avg`` set to the mean w of its own mapping network
        over ``W_AVG_SAMPLES`` seeded latents (classes uniform when conditional), so that
        truncation centres on the exported W (the moving average starts at 0 and follows
        the training G's mapping, not the EMA's)."""
        g = super().export_generator(stat_batches, batch)
        rng = torch.Generator().manual_seed(self.run_cfg.seed + 5)
        z = g.sample_latents(W_AVG_SAMPLES, generator=rng).to(self.device)
        y = None
        if g.num_classes:
            y = torch.randint(g.num_classes, (W_AVG_SAMPLES,), generator=rng).to(self.device)
        g.mapping.w_avg.copy_(g.mapping(z, y)[:, 0].float().mean(dim=0))
        return g

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].to(self.device).clone()

