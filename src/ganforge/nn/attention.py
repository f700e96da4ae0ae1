"""Self-attention over feature-map positions (SAGAN, Zhang et al., 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.nn.spectral import maybe_sn


class SelfAttention2d(nn.Module):
    """``x + gamma * o``: every position attends to all positions of a 2x-pooled map.

    Query and key have ``channels/8`` channels, the value ``channels/2``; gamma starts at 0,
    so the block begins as the identity and learns how much non-local evidence to use.
    """

    def __init__(self, channels: int, sn: bool = True) -> None:
        super().__init__()
        inner, value = max(channels // 8, 1), max(channels // 2, 1)
        self.query = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.key = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.value = maybe_sn(nn.Conv2d(channels, value, 1, bias=False), sn)
        self.out = maybe_sn(nn.Conv2d(value, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, c/8)
        pooled = h >= 2 and w >= 2
        k_in = F.max_pool2d(x, 2) if pooled else x
        k = self.key(k_in).flatten(2)  # (N, c/8, HW/4)
        v = self.value(k_in).flatten(2)  # (N, c/2, HW/4)
        attn = torch.softmax(q @ k, dim=-1)  # (N, HW, HW/4)
        o = (v @ attn.transpose(1, 2)).view(n, -1, h, w)
        return x + self.gamma * self.out(o)
