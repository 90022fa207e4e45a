"""SAGAN self-attention: every spatial position attends to every other, gated by a learnable gamma."""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """``out = gamma · attention(x) + x`` with gamma initialised to 0, so the block starts as identity.

    Query and key are 1×1 convs to C/8 channels, the value a 1×1 conv to C channels. The
    attention matrix is (H·W)², so place this only at low resolution (8×8, 16×16); it works at
    any spatial size, which lets a model trained on crops run on larger tiles.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over all H·W positions and add the gated result to the input."""
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/8)
        key = self.key(x).flatten(2)  # (B, C/8, N)
        value = self.value(x).flatten(2)  # (B, C, N)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # (B, N, N): row i = weights for position i
        attended = torch.bmm(value, attention.transpose(1, 2))  # (B, C, N)
        # Under autocast the fp32 gamma would promote the sum (and every later concatenation)
        # to fp32; the next conv casts it back anyway, so casting here is exact and saves copies.
        return (self.gamma * attended.view(batch, channels, height, width) + x).to(x.dtype)
