"""The plain alternative an engineer would pick: a segmentation U-Net with a ResNet-18 encoder,
randomly initialised, trained from scratch on a tool's corrected pairs (BCE + Dice).

The layers follow torchvision's resnet18 and segmentation_models_pytorch's Unet decoder
(channels 256, 128, 64, 32, 16), written out here because neither package has a wheel for this
machine's torch build. The benches train it with the same trainer, crops, flips and wall time
as a tool expert (``loop.finetune.expert.train_expert`` with ``kind="logits"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZE_MULTIPLE = 32


class BasicBlock(nn.Module):
    """ResNet's two 3×3 convolutions with a residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out))


class DecoderBlock(nn.Module):
    """Upsample ×2, concatenate the skip, two 3×3 conv-BN-ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in + c_skip, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """One decoder stage."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class ResNet18UNet(nn.Module):
    """(B, 1, H, W) SEM in [-1, 1] → (B, 1, H, W) logits of P(feature); H, W multiples of 32."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layers = nn.ModuleList([_stage(64, 64, 1), _stage(64, 128, 2), _stage(128, 256, 2),
                                     _stage(256, 512, 2)])
        # skips: stem 64 @ /2, layer1 64 @ /4, layer2 128 @ /8, layer3 256 @ /16; bottom 512 @ /32
        self.decoder = nn.ModuleList([DecoderBlock(512, 256, 256), DecoderBlock(256, 128, 128),
                                      DecoderBlock(128, 64, 64), DecoderBlock(64, 64, 32),
                                      DecoderBlock(32, 0, 16)])
        self.head = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input's resolution."""
        stem = self.stem(x)
        skips = [stem]
        y = self.pool(stem)
        for index, layer in enumerate(self.layers):
            y = layer(y)
            if index < 3:
                skips.append(y)
        for block in self.decoder:
            y = block(y, skips.pop() if skips else None)
        return self.head(y)
