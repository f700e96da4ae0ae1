"""GAIN: Generative Adversarial Imputation Nets (Yoon, Jordon and van der Schaar, 2018).

The generator sees the data with noise in the missing entries plus the mask and fills
them in; the discriminator guesses, entry by entry, which values were observed, helped
by a hint that reveals the true mask on a random ``hint_rate`` share of the entries.
The generator also reconstructs the observed entries (weight ``alpha``). Inputs are
scaled to [0, 1] by the caller (see ``scaling.py``); missing entries are NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from ganforge.config import StrictModel
from ganforge.errors import DataError, NonFiniteError
from ganforge.threads import torch_threads

_EPS = 1e-8
MIN_DEFAULT_HIDDEN = 16  # a 3-wide net cannot learn a 3-column table's structure


class GAINConfig(StrictModel):
    """GAIN's hyper-parameters (defaults follow the paper's public settings)."""

    batch_size: int = Field(128, ge=2)
    hint_rate: float = Field(0.9, ge=0.0, le=1.0,
                             description="share of mask entries revealed to D")
    alpha: float = Field(100.0, ge=0.0, description="weight of the reconstruction loss")
    iterations: int = Field(10_000, ge=1)
    hidden: int | None = Field(None, ge=1, description="hidden width; None = the data "
                               "width (the paper's choice), but at least 16")
    lr: float = Field(1e-3, gt=0.0)
    noise: float = Field(0.01, ge=0.0, description="missing entries start as U(0, noise)")
    hint: Literal["paper", "reveal"] = Field(
        "paper", description="paper: H = B*M + 0.5(1-B), D scored where B = 0; reveal: "
        "H = B*M, D scored on every entry (the authors' public code)")
    seed: int = 0


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Linear(hidden, d_out), nn.Sigmoid())
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def _check(x: np.ndarray, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim != 2:
        raise DataError(f"GAIN expects a 2-D array (rows, columns), got shape {x.shape}.")
    if width is not None and x.shape[1] != width:
        raise DataError(f"GAIN was fitted on {width} columns but got {x.shape[1]}; impute "
                        "data with the same columns in the same order.")
    if np.isinf(x).any():
        raise DataError("GAIN input holds infinite values; replace them or mark them missing.")
    mask = torch.from_numpy(~np.isnan(x)).float()
    values = torch.from_numpy(np.nan_to_num(x, nan=0.0)).float()
    return values, mask


class GAIN:
    """Fit on data with missing entries, then impute (sklearn-style fit/transform)."""

    def __init__(self, config: GAINConfig | None = None, progress: bool = False,
                 threads: int | None = 1) -> None:
        """``threads``: torch threads while fitting (GAIN's MLPs are small, and one thread
        is fastest, much so on a busy machine); None keeps torch's setting."""
        self.config = config or GAINConfig()
        self.progress = progress
        self.threads = threads
        self.G: nn.Module | None = None
        self.D: nn.Module | None = None
        self.width: int | None = None
        self.history: list[dict[str, float]] = []

    def _noisy(self, values: torch.Tensor, mask: torch.Tensor, gen: torch.Generator
               ) -> torch.Tensor:
        z = torch.rand(values.shape, generator=gen) * self.config.noise
        return mask * values + (1 - mask) * z

    def _hint(self, reveal: torch.Tensor, mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The hint given to D and the entries on which D and G are scored."""
        if self.config.hint == "reveal":
            return reveal * mask, torch.ones_like(mask)
        return reveal * mask + 0.5 * (1 - reveal), 1 - reveal

    def fit(self, x: np.ndarray) -> GAIN:
        """Train G and D on rows of ``x`` (NaN = missing, values scaled to [0, 1])."""
        values, mask = _check(x)
        with torch_threads(self.threads):
            self._fit(values, mask)
        return self

    def _fit(self, values: torch.Tensor, mask: torch.Tensor) -> None:
        n, d = values.shape
        if n < 2:
            raise DataError("GAIN needs at least 2 rows to train.")
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)  # weight initialization
        hidden = cfg.hidden or max(d, MIN_DEFAULT_HIDDEN)
        self.G, self.D, self.width = _mlp(2 * d, hidden, d), _mlp(2 * d, hidden, d), d
        opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr)
        batch = min(cfg.batch_size, n)
        steps = tqdm(range(cfg.iterations), desc="GAIN", disable=not self.progress,
                     unit="it", leave=False)
        for it in steps:
            idx = torch.randperm(n, generator=gen)[:batch]
            xb, mb = values[idx], mask[idx]
            xt = self._noisy(xb, mb, gen)
            reveal = (torch.rand(mb.shape, generator=gen) < cfg.hint_rate).float()
            hint, hidden_entries = self._hint(reveal, mb)
            # discriminator step
            with torch.no_grad():
                x_hat = mb * xb + (1 - mb) * self.G(torch.cat([xt, mb], 1))
            prob = self.D(torch.cat([x_hat, hint], 1))
            bce = -(mb * torch.log(prob + _EPS) + (1 - mb) * torch.log(1 - prob + _EPS))
            loss_d = (bce * hidden_entries).sum() / hidden_entries.sum().clamp_min(1.0)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # generator step
            g_out = self.G(torch.cat([xt, mb], 1))
            x_hat = mb * xb + (1 - mb) * g_out
            prob = self.D(torch.cat([x_hat, hint], 1))
            fooled = (1 - mb) * hidden_entries
            loss_adv = -(fooled * torch.log(prob + _EPS)).sum() / fooled.sum().clamp_min(1.0)
            loss_rec = ((mb * (g_out - xb)) ** 2).sum() / mb.sum().clamp_min(1.0)
            loss_g = loss_adv + cfg.alpha * loss_rec
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if it % 100 == 0 or it == cfg.iterations - 1:
                self._log(it, loss_d, loss_adv, loss_rec)

    def _log(self, it: int, loss_d: torch.Tensor, loss_adv: torch.Tensor,
             loss_rec: torch.Tensor) -> None:
        row = {"iteration": it, "loss_d": loss_d.item(), "loss_g_adv": loss_adv.item(),
               "mse_observed": loss_rec.item()}
        if not all(np.isfinite(v) for v in row.values()):
            raise NonFiniteError(f"GAIN diverged at iteration {it} ({row}); lower lr or "
                                 "alpha, and check the input for extreme values.")
        self.history.append(row)

    @torch.no_grad()
    def transform(self, x: np.ndarray) -> np.ndarray:
        """Impute the NaN entries of ``x``; observed entries are returned unchanged."""
        if self.G is None:
            raise RuntimeError("call fit() before transform()")
        values, mask = _check(x, self.width)
        gen = torch.Generator().manual_seed(self.config.seed + 1)
        g_out = self.G(torch.cat([self._noisy(values, mask, gen), mask], 1)).double().numpy()
        return np.where(np.isnan(x), g_out, x)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)
