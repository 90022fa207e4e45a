"""Loss terms (seed §3–4, §6). Each returns a scalar tensor; weights live in ``LossConfig``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def lsgan_critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float) -> torch.Tensor:
    """LSGAN discriminator loss ½[(D(real) − real_label)² + D(fake)²], averaged over patches.

    Least squares instead of BCE: gradients do not vanish when D is confident; ``real_label``
    below 1 (0.9) keeps D from ever being certain about real pairs.
    """
    real = F.mse_loss(real_logits.float(), torch.full_like(real_logits, real_label, dtype=torch.float32))
    fake = F.mse_loss(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return 0.5 * (real + fake)


def lsgan_generator_loss(fake_logits: torch.Tensor, real_label: float) -> torch.Tensor:
    """LSGAN generator loss (D(fake) − real_label)²: pull generated pairs towards the real target."""
    target = torch.full_like(fake_logits, real_label, dtype=torch.float32)
    return F.mse_loss(fake_logits.float(), target)


def pixel_l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel difference: the correctness anchor (weight 100)."""
    return F.l1_loss(prediction.float(), target.float())


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 between an image and its round trip through both generators (e.g. SEM → layout → SEM)."""
    return F.l1_loss(reconstruction.float(), original.float())


def feature_matching_loss(fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over D layers of L1(features(fake), features(real).detach()).

    The detach makes the real features a fixed target: otherwise D could shrink the loss by
    making its features uninformative.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"feature lists differ: {len(fake_features)} fake vs {len(real_features)} real")
    per_layer = [F.l1_loss(fake.float(), real.detach().float())
                 for fake, real in zip(fake_features, real_features, strict=True)]
    return torch.stack(per_layer).mean()
