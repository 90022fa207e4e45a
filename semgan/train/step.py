"""One training iteration, written to read like the seed's equations (§3–§6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from semgan.config import LossConfig, OptimConfig
from semgan.device import Precision
from semgan.losses import (
    cycle_loss,
    feature_matching_loss,
    lsgan_critic_loss,
    lsgan_generator_loss,
    pixel_l1_loss,
)
from semgan.model import GanModels


@dataclass(frozen=True)
class Networks:
    """The modules a step runs, each possibly wrapped in DistributedDataParallel."""

    sem_to_layout: nn.Module
    layout_to_sem: nn.Module
    layout_critic: nn.Module | None = None
    sem_critic: nn.Module | None = None

    @classmethod
    def of(cls, models: GanModels, wrap: Callable[[nn.Module], nn.Module] = lambda module: module) -> Networks:
        """Take the networks from ``models``, passing each through ``wrap`` (e.g. a DDP wrapper)."""
        return cls(wrap(models.sem_to_layout), wrap(models.layout_to_sem),
                   wrap(models.layout_critic) if models.layout_critic is not None else None,
                   wrap(models.sem_critic) if models.sem_critic is not None else None)


@dataclass(frozen=True)
class Optimizers:
    """One Adam over both generators, one over both critics (None without critics)."""

    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer | None = None


def build_optimizers(models: GanModels, optim: OptimConfig, lr_scale: float = 1.0) -> Optimizers:
    """Adam(lr·lr_scale, (β1, β2)) over both generators, and over both critics when present."""
    lr, betas = optim.lr * lr_scale, (optim.beta1, optim.beta2)
    generator = torch.optim.Adam([*models.sem_to_layout.parameters(), *models.layout_to_sem.parameters()],
                                 lr=lr, betas=betas)
    discriminator = None
    if models.has_critics:
        discriminator = torch.optim.Adam([*models.layout_critic.parameters(), *models.sem_critic.parameters()],
                                         lr=lr, betas=betas)
    return Optimizers(generator, discriminator)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def train_step(networks: Networks, optimizers: Optimizers, batch: dict[str, torch.Tensor],
               loss_config: LossConfig, precision: Precision) -> dict[str, float]:
    """Update both critics, then both generators, on one batch; return the (unweighted) losses.

    Keys: ``d_loss``, ``g_loss`` (the weighted total), ``g_gan``, ``g_l1``, ``g_cycle``, ``g_fm``.
    Each term sums the two directions (SEM → layout and layout → SEM).
    """
    weights = loss_config
    sem_image = batch["sem_image"].to(precision.device, non_blocking=True)  # (B, 1, H, W) in [-1, 1]
    layout_mask = batch["layout_mask"].to(precision.device, non_blocking=True)  # (B, 1, H, W) in {-1, 1}
    adversarial = weights.adversarial and networks.layout_critic is not None
    zero = torch.zeros((), device=precision.device)

    with precision.autocast():
        fake_layout = networks.sem_to_layout(sem_image)  # (B, 1, H, W)
        fake_sem = networks.layout_to_sem(layout_mask)

    # --- Discriminators: real pairs → real_label, generated pairs → 0. -------------------------
    d_loss = zero
    if adversarial:
        optimizers.discriminator.zero_grad(set_to_none=True)
        with precision.autocast():
            # Detach: this step trains D only; G's graph is kept for its own update below.
            real_logits, _ = networks.layout_critic(sem_image, layout_mask)
            fake_logits, _ = networks.layout_critic(sem_image, fake_layout.detach())
            d_loss = lsgan_critic_loss(real_logits, fake_logits, weights.real_label)
            real_logits, _ = networks.sem_critic(layout_mask, sem_image)
            fake_logits, _ = networks.sem_critic(layout_mask, fake_sem.detach())
            d_loss = d_loss + lsgan_critic_loss(real_logits, fake_logits, weights.real_label)
        precision.backward(d_loss)
        precision.step(optimizers.discriminator)

    # --- Generators: L1 + cycle, and (adversarial) GAN + feature matching. --------------------
    optimizers.generator.zero_grad(set_to_none=True)
    with precision.autocast():
        g_l1 = pixel_l1_loss(fake_layout, layout_mask) + pixel_l1_loss(fake_sem, sem_image)
        g_cycle = zero
        if weights.cycle > 0:
            reconstructed_sem = networks.layout_to_sem(fake_layout)  # SEM → layout → SEM
            reconstructed_layout = networks.sem_to_layout(fake_sem)  # layout → SEM → layout
            g_cycle = cycle_loss(reconstructed_sem, sem_image) + cycle_loss(reconstructed_layout, layout_mask)
        g_gan = g_fm = zero
        if adversarial:
            g_gan, g_fm = _adversarial_terms(networks, sem_image, layout_mask, fake_layout, fake_sem,
                                             weights.real_label)
        g_loss = weights.gan * g_gan + weights.l1 * g_l1 + weights.cycle * g_cycle + weights.feature_matching * g_fm
    precision.backward(g_loss)
    precision.step(optimizers.generator)
    precision.update()

    # .item() is the one host sync per step; everything above stays asynchronous on a GPU.
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "g_gan": g_gan.item(), "g_l1": g_l1.item(),
            "g_cycle": g_cycle.item(), "g_fm": g_fm.item()}


def _adversarial_terms(networks: Networks, sem_image: torch.Tensor, layout_mask: torch.Tensor,
                       fake_layout: torch.Tensor, fake_sem: torch.Tensor,
                       real_label: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(LSGAN generator loss, feature matching loss), summed over both critics."""
    g_gan = g_fm = torch.zeros((), device=sem_image.device)
    for critic, condition, real, fake in ((networks.layout_critic, sem_image, layout_mask, fake_layout),
                                          (networks.sem_critic, layout_mask, sem_image, fake_sem)):
        # Call the bare module, not its DDP wrapper: D takes no step here, and a DDP forward
        # would wait for D gradients that this backward never produces.
        critic = unwrap(critic)
        critic.requires_grad_(False)  # gradients flow through D to G, but D's weights get none
        fake_logits, fake_features = critic(condition, fake)
        with torch.no_grad():
            _, real_features = critic(condition, real)  # detached target for feature matching
        critic.requires_grad_(True)
        g_gan = g_gan + lsgan_generator_loss(fake_logits, real_label)
        g_fm = g_fm + feature_matching_loss(fake_features, real_features)
    return g_gan, g_fm
