"""Networks: U-Net generators for both directions and a PatchGAN critic for each."""

from __future__ import annotations

import torch
from torch import nn

from semgan.config import ConfigError, ExperimentConfig
from semgan.model.attention import SelfAttention
from semgan.model.discriminator import DISCRIMINATORS, PatchDiscriminator
from semgan.model.generator import GENERATORS, UNetGenerator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "GanModels",
    "PatchDiscriminator",
    "SelfAttention",
    "UNetGenerator",
    "build_models",
    "init_weights",
]

GENERATOR_NAMES = ("sem_to_layout", "layout_to_sem")
CRITIC_NAMES = ("layout_critic", "sem_critic")


class GanModels(nn.Module):
    """The four networks under fixed names, which prefix their weights in checkpoints.

    ``layout_critic`` judges (SEM, layout) pairs, ``sem_critic`` judges (layout, SEM) pairs; both
    are ``None`` when the loss is not adversarial (the pure-L1 ablation) or for inference exports.
    """

    def __init__(self, sem_to_layout: nn.Module, layout_to_sem: nn.Module,
                 layout_critic: nn.Module | None = None, sem_critic: nn.Module | None = None) -> None:
        super().__init__()
        self.sem_to_layout = sem_to_layout
        self.layout_to_sem = layout_to_sem
        self.layout_critic = layout_critic
        self.sem_critic = sem_critic

    @property
    def has_critics(self) -> bool:
        """True when both discriminators exist."""
        return self.layout_critic is not None and self.sem_critic is not None


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """pix2pix initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), biases 0."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d | nn.ConvTranspose2d):
            # Spectral norm keeps the raw weight as parametrizations.weight.original.
            weight = sub.parametrizations.weight.original if hasattr(sub, "parametrizations") else sub.weight
            with torch.no_grad():
                nn.init.normal_(weight, 0.0, 0.02, generator=generator)
                if sub.bias is not None:
                    sub.bias.zero_()
        elif isinstance(sub, nn.BatchNorm2d):
            with torch.no_grad():
                nn.init.normal_(sub.weight, 1.0, 0.02, generator=generator)
                sub.bias.zero_()


def build_models(config: ExperimentConfig, seed: int = 0, critics: bool | None = None) -> GanModels:
    """Build (and deterministically initialise from ``seed``) the networks ``config`` describes."""
    if config.generator.name not in GENERATORS:
        raise ConfigError(f"unknown generator {config.generator.name!r} (known: {', '.join(GENERATORS)})")
    if config.discriminator.name not in DISCRIMINATORS:
        raise ConfigError(
            f"unknown discriminator {config.discriminator.name!r} (known: {', '.join(DISCRIMINATORS)})")
    with_critics = config.loss.adversarial if critics is None else critics
    generator_type = GENERATORS[config.generator.name]
    critic_type = DISCRIMINATORS[config.discriminator.name]
    # Fork the global RNG so spectral norm's random start vectors are seeded too, without
    # disturbing the caller's stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = GanModels(
            generator_type(config.generator),
            generator_type(config.generator),
            critic_type(config.discriminator) if with_critics else None,
            critic_type(config.discriminator) if with_critics else None,
        )
    init_weights(models, torch.Generator().manual_seed(seed))
    return models
