"""InfoGAN (Chen et al., 2016): the alternating GAN plus a mutual-information term.

With latents ``z = [noise | c]`` and the Q head on D's trunk predicting ``c`` from
``G(z)``, the information loss is

    L_I = categorical_weight * sum_codes CE(Q_cat(G(z)), c_cat)
          + continuous_weight * NLL(c_cont | N(Q_mean(G(z)), Q_std(G(z))^2)),

a lower bound of ``-I(c; G(z))`` up to a constant. The D step trains the trunk and
Q with ``L_I`` on the (detached) fakes beside the adversarial loss; the G step adds
``L_I`` to G's adversarial loss (D and Q frozen, as in the plain GAN step).

With ``augment`` (DiffAugment / ADA) only the adversarial path is augmented: D's
real/fake logits come from augmented batches, while Q reads the codes from the
un-augmented fakes (an extra pass through the trunk), since a flipped, rotated or
recoloured sample no longer shows the code that made it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from ganforge.config import InfoGANLossConfig, RunConfig
from ganforge.errors import ConfigError
from ganforge.losses import g_loss
from ganforge.models.infogan import CodedDiscriminator, CodeLayout, LatentCodesConfig, QOutputs
from ganforge.registry import ModelSpec
from ganforge.train.distributed import Dist
from ganforge.train.gan import GANRecipe

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def info_loss(q: QOutputs, z: torch.Tensor, codes: CodeLayout, weights: InfoGANLossConfig
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_I`` of Q's predictions for latents ``z``, and its parts (detached) for logging."""
    _, cats, cont = codes.split(z.float())
    parts: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=z.device)
    if cats:
        targets = [c.argmax(1) for c in cats]
        ce = sum(F.cross_entropy(lg, t) for lg, t in zip(q.cat_logits, targets, strict=True))
        loss = loss + weights.categorical_weight * ce
        hits = [(lg.argmax(1) == t).float().mean() for lg, t in zip(q.cat_logits, targets,
                                                                   strict=True)]
        parts |= {"info_cat": ce.detach(), "q_cat_acc": torch.stack(hits).mean().detach()}
    if codes.continuous:
        err = (cont - q.cont_mean) * torch.exp(-q.cont_log_std)
        nll = (0.5 * err.square() + q.cont_log_std + _HALF_LOG_2PI).sum(1).mean()
        loss = loss + weights.continuous_weight * nll
        parts |= {"info_cont": nll.detach(),
                  "q_cont_mse": (cont - q.cont_mean).square().mean().detach()}
    return loss, parts


class InfoInputs(nn.Module):
    """The D step's one call: plain logits for each batch, and Q's codes for the fakes
    from the same pass through the trunk: input 1, or with ``q_last`` (augmentation) the
    last input, the un-augmented fakes, whose logits are not used."""

    def __init__(self, net: CodedDiscriminator, q_last: bool = False) -> None:
        super().__init__()
        self.net, self.q_last = net, q_last

    def forward(self, inputs: list[torch.Tensor], labels: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], QOutputs]:
        logits, q = [], None
        q_index = len(inputs) - 1 if self.q_last else 1
        for i, x in enumerate(inputs):
            if i == q_index:
                out, q = self.net.judge(x)
            else:
                out = self.net(x, labels)
            logits.append(out)
        assert q is not None
        return logits, q


class InfoGANRecipe(GANRecipe):
    """InfoGAN over the ``infogan`` and ``infogan-mnist`` models (``--recipe infogan``)."""

    @staticmethod
    def check_model(config: RunConfig, spec: ModelSpec) -> None:
        if not issubclass(spec.config_cls, LatentCodesConfig):
            raise ConfigError(f"The infogan recipe needs a generator with latent codes and a "
                              f"discriminator with a Q head; model '{spec.name}' has neither. "
                              "Use --model infogan or infogan-mnist (or drop --recipe infogan).")
        if config.pack > 1:
            raise ConfigError(f"pack={config.pack} judges several samples jointly, but InfoGAN's "
                              "Q head must recover the codes of each sample; set pack: 1.")

    def __init__(self, config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device, dist: Dist | None = None) -> None:
        super().__init__(config, spec, model_cfg, device, dist)
        self.codes: CodeLayout = self.G.codes
        self.q_judge = torch.compile(self.D.judge) if config.compile else self.D.judge
        self._z: torch.Tensor | None = None  # latents of the newest fake batch
        self._q: QOutputs | None = None  # Q's predictions for that batch, from the D step

    def _d_inputs_module(self) -> nn.Module:
        return InfoInputs(self.D, q_last=self.augment is not None)

    def _d_extra_inputs(self, fake: torch.Tensor) -> list[torch.Tensor]:
        # augmented runs: Q reads the codes from the un-augmented fakes
        return [] if self.augment is None else [fake]

    def _latents(self, n: int) -> torch.Tensor:
        self._z = super()._latents(n)
        return self._z

    def _d_forward(self, inputs: list[torch.Tensor], y: torch.Tensor | None
                   ) -> list[torch.Tensor]:
        with self.amp.autocast():
            logits, q = self.d_run(inputs, y)
        self._q = q.float()
        return [out.float() for out in logits]

    def _d_extra_loss(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self._q is not None and self._z is not None
        loss, parts = info_loss(self._q, self._z, self.codes, self.cfg.infogan)
        logs |= parts
        logs["info_loss"] = loss.detach()
        self._q = None
        return loss

    def _g_loss(self, fake: torch.Tensor, y: torch.Tensor | None,
                logs: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self._z is not None
        logits, q = self.q_judge(fake)
        if self.augment is not None:  # D judges augmented fakes; Q still reads the codes
            logits = self.d_judge(self._augment(fake), y)
        adversarial = g_loss(self.cfg.loss, logits.float(), self._g_real_logits(y))
        info, _ = info_loss(q.float(), self._z, self.codes, self.cfg.infogan)
        logs["loss_g_adv"], logs["info_loss_g"] = adversarial.detach(), info.detach()
        return adversarial + info
