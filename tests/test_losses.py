"""Loss terms with hand-computed values."""

from __future__ import annotations

import pytest
import torch

from semgan.losses import (
    cycle_loss,
    feature_matching_loss,
    lsgan_critic_loss,
    lsgan_generator_loss,
    pixel_l1_loss,
)


def test_critic_loss_is_zero_at_the_smoothed_targets() -> None:
    assert lsgan_critic_loss(torch.full((2, 1, 4, 4), 0.9), torch.zeros(2, 1, 4, 4), 0.9).item() == pytest.approx(0)


def test_critic_loss_penalises_overconfidence_on_real_pairs() -> None:
    # ½ · (1.0 − 0.9)² = 0.005: label smoothing makes a perfectly sure D pay.
    loss = lsgan_critic_loss(torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), 0.9)
    assert loss.item() == pytest.approx(0.005)


def test_critic_loss_counts_fakes_called_real() -> None:
    loss = lsgan_critic_loss(torch.full((1, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), 0.5), 0.9)
    assert loss.item() == pytest.approx(0.125)  # ½ · 0.5²


def test_generator_loss_is_squared_distance_to_the_real_label() -> None:
    assert lsgan_generator_loss(torch.zeros(1, 1, 2, 2), 0.9).item() == pytest.approx(0.81)
    assert lsgan_generator_loss(torch.full((1, 1, 2, 2), 0.9), 0.9).item() == pytest.approx(0.0)


def test_pixel_l1_is_the_mean_absolute_difference() -> None:
    assert pixel_l1_loss(torch.tensor([0.0, 1.0, -1.0, 0.5]), torch.zeros(4)).item() == pytest.approx(0.625)


def test_cycle_loss_is_zero_for_a_perfect_round_trip() -> None:
    image = torch.rand(1, 1, 8, 8)
    assert cycle_loss(image.clone(), image).item() == 0.0


def test_feature_matching_averages_layers() -> None:
    fake = [torch.ones(1, 2, 4, 4), torch.full((1, 3, 2, 2), 3.0)]
    real = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    assert feature_matching_loss(fake, real).item() == pytest.approx(2.0)


def test_feature_matching_sends_no_gradient_to_real_features() -> None:
    fake = [torch.ones(1, 1, 2, 2, requires_grad=True)]
    real = [torch.zeros(1, 1, 2, 2, requires_grad=True)]
    feature_matching_loss(fake, real).backward()
    assert real[0].grad is None
    assert fake[0].grad is not None


def test_losses_are_fp32_under_half_precision_inputs() -> None:
    assert lsgan_generator_loss(torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16), 0.9).dtype == torch.float32
