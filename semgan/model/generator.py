"""U-Net generator (seed §5): 4×4 stride-2 convs down, transposed convs up, skip concatenation."""

from __future__ import annotations

import torch
from torch import nn

from semgan.config import GeneratorConfig
from semgan.model.attention import SelfAttention


class EncoderBlock(nn.Module):
    """Conv2d(4, s2, p1) → BatchNorm (optional) → LeakyReLU(0.2): halves H and W."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        # No conv bias when BatchNorm follows: the norm's shift makes it redundant.
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H/2, W/2)."""
        return self.act(self.norm(self.conv(x)))


class DecoderBlock(nn.Module):
    """ConvTranspose2d(4, s2, p1) → BatchNorm → [Dropout] → ReLU: doubles H and W."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, 2H, 2W)."""
        return self.act(self.dropout(self.norm(self.conv(x))))


def encoder_channels(config: GeneratorConfig) -> list[int]:
    """Output channels of each encoder block: base·2^i capped at ``max_channels``."""
    return [min(config.base_channels * 2**i, config.max_channels) for i in range(config.n_down)]


class UNetGenerator(nn.Module):
    """1-channel image → 1-channel image in [-1, 1]; H and W must be multiples of 2**n_down.

    For base 48, n_down 5 at 256²: encoder 48·128², 96·64², 192·32², 256·16², 256·8²; decoder
    256·16² (+256 skip), 192·32² (+192), 96·64² (+96), 48·128² (+48), then 1·256² through Tanh.
    """

    def __init__(self, config: GeneratorConfig, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        self.config = config
        channels = encoder_channels(config)
        self.encoder = nn.ModuleList(
            EncoderBlock(c_in, c_out, batch_norm=index > 0)
            for index, (c_in, c_out) in enumerate(zip([in_channels, *channels[:-1]], channels, strict=True))
        )
        # Decoder block i upsamples to the resolution of encoder block n_down-2-i, whose output
        # it is then concatenated with (hence the doubled input channels after the first).
        skip_channels = channels[-2::-1]  # e.g. [256, 192, 96, 48]
        decoder_inputs = [channels[-1]] + [2 * c for c in skip_channels[:-1]]
        self.decoder = nn.ModuleList(
            DecoderBlock(c_in, c_out, dropout=config.dropout if index < config.dropout_blocks else 0.0)
            for index, (c_in, c_out) in enumerate(zip(decoder_inputs, skip_channels, strict=True))
        )
        self.final = nn.ConvTranspose2d(2 * channels[0], out_channels, 4, stride=2, padding=1)
        self.bottleneck_attention = SelfAttention(channels[-1]) if config.attention else nn.Identity()
        self.decoder_attention = SelfAttention(skip_channels[0]) if config.attention else nn.Identity()

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.config.n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] → (B, 1, H, W) in [-1, 1]."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = self.bottleneck_attention(skips.pop())  # (B, C, H/2^n, W/2^n)
        for index, block in enumerate(self.decoder):
            x = block(x)
            if index == 0:
                x = self.decoder_attention(x)  # after the first upsampling, e.g. 16×16 at 256 input
            x = torch.cat([x, skips.pop()], dim=1)
        return torch.tanh(self.final(x))


GENERATORS: dict[str, type[UNetGenerator]] = {"unet": UNetGenerator}
