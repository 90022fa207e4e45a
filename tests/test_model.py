"""Generator, attention and discriminator shapes against the seed's tables (§5–6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from semgan.config import PRESETS, DiscriminatorConfig, GeneratorConfig
from semgan.model import (
    DISCRIMINATORS,
    GENERATORS,
    PatchDiscriminator,
    SelfAttention,
    UNetGenerator,
    build_models,
)

torch.set_num_threads(1)


def _output_shapes(model: nn.Module, modules: list[nn.Module], *inputs: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for m in modules]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    return shapes


def _meta_generator() -> UNetGenerator:
    with torch.device("meta"):
        return UNetGenerator(PRESETS["default"].generator).eval()


def test_registries_name_the_models() -> None:
    assert {"unet": UNetGenerator} == GENERATORS
    assert {"patchgan": PatchDiscriminator} == DISCRIMINATORS


def test_default_encoder_matches_the_seed_table() -> None:
    generator = _meta_generator()
    x = torch.empty(1, 1, 256, 256, device="meta")
    assert _output_shapes(generator, list(generator.encoder), x) == [
        (48, 128, 128), (96, 64, 64), (192, 32, 32), (256, 16, 16), (256, 8, 8)]


def test_default_decoder_matches_the_seed_table() -> None:
    generator = _meta_generator()
    x = torch.empty(1, 1, 256, 256, device="meta")
    assert _output_shapes(generator, [*generator.decoder, generator.final], x) == [
        (256, 16, 16), (192, 32, 32), (96, 64, 64), (48, 128, 128), (1, 256, 256)]
    # Inputs after skip concatenation: 256, then 512, 384, 192; the final layer takes 96.
    assert [block.conv.in_channels for block in generator.decoder] == [256, 512, 384, 192]
    assert generator.final.in_channels == 96


def test_first_encoder_block_has_no_batchnorm() -> None:
    generator = _meta_generator()
    assert [type(block.norm).__name__ for block in generator.encoder] == [
        "Identity", "BatchNorm2d", "BatchNorm2d", "BatchNorm2d", "BatchNorm2d"]
    assert all(block.act.negative_slope == 0.2 for block in generator.encoder)


def test_dropout_only_on_the_two_innermost_decoder_blocks() -> None:
    generator = _meta_generator()
    assert [getattr(block.dropout, "p", 0.0) for block in generator.decoder] == [0.5, 0.5, 0.0, 0.0]
    assert all(isinstance(block.act, nn.ReLU) for block in generator.decoder)


def test_attention_sits_at_8x8_and_16x16_for_256_input() -> None:
    generator = _meta_generator()
    x = torch.empty(1, 1, 256, 256, device="meta")
    inputs: list[tuple[int, ...]] = []
    for module in (generator.bottleneck_attention, generator.decoder_attention):
        module.register_forward_hook(lambda _m, args, _out: inputs.append(tuple(args[0].shape[1:])))
    with torch.no_grad():
        generator(x)
    assert inputs == [(256, 8, 8), (256, 16, 16)]
    assert generator.bottleneck_attention.query.out_channels == 32  # C/8


def test_generator_output_is_tanh_range_at_any_multiple_of_16() -> None:
    generator = UNetGenerator(PRESETS["tiny"].generator).eval()
    for height, width in ((64, 64), (96, 128)):
        with torch.no_grad():
            out = generator(torch.randn(2, 1, height, width))
        assert out.shape == (2, 1, height, width)
        assert out.abs().max() <= 1.0


def test_attention_gamma_starts_at_zero() -> None:
    assert SelfAttention(64).gamma.item() == 0.0


def test_attention_is_identity_at_init() -> None:
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(SelfAttention(64)(x), x)


def test_attention_mixes_positions_once_gamma_grows() -> None:
    attention = SelfAttention(64)
    with torch.no_grad():
        attention.gamma.fill_(0.5)
    x = torch.randn(1, 64, 8, 8)
    y = torch.randn(1, 64, 8, 8)
    y[..., 0, 0] = x[..., 0, 0]
    # Same pixel, different surroundings → different output: the block sees the whole map.
    assert not torch.allclose(attention(x)[..., 0, 0], attention(y)[..., 0, 0])


def test_attention_works_at_any_resolution() -> None:
    assert SelfAttention(16)(torch.randn(1, 16, 12, 20)).shape == (1, 16, 12, 20)


def test_patchgan_gives_30x30_logits_and_features_for_256_input() -> None:
    with torch.device("meta"):
        critic = PatchDiscriminator(DiscriminatorConfig())
    x = torch.empty(1, 1, 256, 256, device="meta")
    logits, features = critic(x, x)
    assert tuple(logits.shape) == (1, 1, 30, 30)
    assert [tuple(f.shape[1:]) for f in features] == [(48, 128, 128), (96, 64, 64), (192, 32, 32), (256, 31, 31)]


def test_spectral_norm_on_every_discriminator_conv() -> None:
    critic = PatchDiscriminator(DiscriminatorConfig(base_channels=8, max_channels=32))
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(parametrize.is_parametrized(conv, "weight") for conv in convs)
    assert {type(conv.parametrizations.weight[0]).__name__ for conv in convs} == {"_SpectralNorm"}


def test_patchgan_receptive_field_is_70_px() -> None:
    critic = PatchDiscriminator(DiscriminatorConfig(base_channels=4, max_channels=8, spectral_norm=False))
    image = torch.zeros(1, 1, 256, 256, requires_grad=True)
    logits, _ = critic(torch.zeros(1, 1, 256, 256), image)
    logits[0, 0, 15, 15].backward()
    rows = torch.nonzero(image.grad[0, 0].abs().sum(dim=1)).flatten()
    assert rows.max().item() - rows.min().item() + 1 == 70


def test_build_models_is_deterministic_per_seed() -> None:
    first, second = build_models(PRESETS["tiny"], seed=5), build_models(PRESETS["tiny"], seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))
    other = build_models(PRESETS["tiny"], seed=6)
    assert not torch.equal(first.sem_to_layout.final.weight, other.sem_to_layout.final.weight)


def test_l1only_models_have_no_critics() -> None:
    models = build_models(PRESETS["l1only"])
    assert (models.layout_critic, models.sem_critic) == (None, None)


def test_generator_without_attention_has_identity_placeholders() -> None:
    generator = UNetGenerator(GeneratorConfig(base_channels=8, n_down=4, max_channels=32, attention=False))
    assert isinstance(generator.bottleneck_attention, nn.Identity)


@pytest.mark.parametrize("size", [64, 128])
def test_patchgan_is_fully_convolutional(size: int) -> None:
    critic = PatchDiscriminator(DiscriminatorConfig(base_channels=8, max_channels=32))
    logits, _ = critic(torch.zeros(1, 1, size, size), torch.zeros(1, 1, size, size))
    assert logits.shape[-1] == size // 8 - 2
