"""Conditional PatchGAN (seed §5): judges ~70×70 patches of a (condition, image) pair."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from semgan.config import DiscriminatorConfig


class PatchDiscriminator(nn.Module):
    """(condition, image) → (logit map, intermediate features).

    Defaults at 256²: 2→48 s2 (128²), →96 s2 (64²), →192 s2 (32²), →256 s1 (31²), →1 s1 (30²).
    Every conv is spectrally normalised, which bounds how sharply D can separate real from fake.
    """

    def __init__(self, config: DiscriminatorConfig, in_channels: int = 2) -> None:
        super().__init__()
        self.config = config
        widths = [min(config.base_channels * 2**i, config.max_channels) for i in range(config.n_strided + 1)]
        strides = [2] * config.n_strided + [1]
        layers = []
        for c_in, c_out, stride in zip([in_channels, *widths[:-1]], widths, strides, strict=True):
            layers.append(self._conv(c_in, c_out, stride))
        self.layers = nn.ModuleList(layers)
        self.head = self._conv(widths[-1], 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def _conv(self, c_in: int, c_out: int, stride: int) -> nn.Module:
        conv = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1)
        return spectral_norm(conv) if self.config.spectral_norm else conv

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, H, W) ×2 → logits (B, 1, h, w) and one feature map per hidden layer."""
        x = torch.cat([condition, image], dim=1)  # (B, 2, H, W)
        features = []
        for layer in self.layers:
            x = self.act(layer(x))
            features.append(x)
        return self.head(x), features


DISCRIMINATORS: dict[str, type[PatchDiscriminator]] = {"patchgan": PatchDiscriminator}
