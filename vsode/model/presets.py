"""The named model presets: ``ffhq`` and ``fashion`` as released, ``demo`` (the demo world's small
model) and ``tiny`` (for tests)."""

from __future__ import annotations

from ..dynamics import DynamicsConfig
from ..errors import InputError
from ..modulation import MapperConfig, ModulationConfig
from .config import Backbones, ModelConfig


def _ffhq() -> ModelConfig:
    return ModelConfig(
        dynamics=DynamicsConfig(img_size=(128, 128)),
        modulation=ModulationConfig(n_tokens=64),
        mapper=MapperConfig(),
        n_latent=18,
        video_length=100,
        nominal_fps="30000/1001",  # RAVDESS videos
        data_size=(256, 256),
        backbones=Backbones("stylegan2-ffhq-1024", "psp-ffhq-encode", "clip-vit-b-32", "dino-vitb16"),
        preset="ffhq",
    )


def _fashion() -> ModelConfig:
    return ModelConfig(
        dynamics=DynamicsConfig(img_size=(128, 96)),
        modulation=ModulationConfig(n_tokens=48),
        mapper=MapperConfig(),
        n_latent=18,
        video_length=50,
        nominal_fps="30/1",
        data_size=(256, 192),
        # StyleGAN-Human 1024x512 converted to the rosinality layout: give its file with --generator
        backbones=Backbones("stylegan2-human-1024x512", None, "clip-vit-b-32", "dino-vitb16"),
        preset="fashion",
    )


def _demo() -> ModelConfig:
    return ModelConfig(
        dynamics=DynamicsConfig(
            img_size=(64, 64), n_downsampling=3, base_channels=16, state_channels=64,
            ode_hidden=64, ode_layers=2, token_dim=128,
        ),
        modulation=ModulationConfig(
            n_embd=128, n_head=4, n_self_layers=2, n_cross_layers=2, n_tokens=64, out_dim=128
        ),
        # motion moves the demo W+ rows by ~0.2, so the offset scale is 0.1 rather than 0.01
        mapper=MapperConfig(style_dim=128, cond_dim=128, groups=(4, 4, 2), n_modules=(2, 2, 2), delta_weight=0.1),
        n_latent=10,
        video_length=50,
        nominal_fps="25/1",
        data_size=(64, 64),
        backbones=Backbones("stylegan2-demo", "psp-demo", "clip-demo", "clip-demo"),  # CLIP's ViT as DINO
        preset="demo",
    )


def _tiny() -> ModelConfig:
    return ModelConfig(
        dynamics=DynamicsConfig(
            img_size=(32, 32), n_downsampling=2, base_channels=4, state_channels=8,
            ode_hidden=8, ode_layers=1, token_dim=16,
        ),
        modulation=ModulationConfig(
            n_embd=16, n_head=2, n_self_layers=1, n_cross_layers=1, n_tokens=64, out_dim=16
        ),
        mapper=MapperConfig(style_dim=16, cond_dim=16, groups=(2, 2, 2), n_modules=(1, 1, 1)),
        n_latent=6,
        video_length=10,
        nominal_fps="10/1",
        data_size=(32, 32),
        backbones=Backbones(),
        preset="tiny",
    )


PRESETS = {"ffhq": _ffhq, "fashion": _fashion, "demo": _demo, "tiny": _tiny}


def preset_config(name: str) -> ModelConfig:
    """The :class:`ModelConfig` of a named preset (``ffhq``, ``fashion``, ``demo``, ``tiny``)."""
    if name not in PRESETS:
        raise InputError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def as_config(preset: str | ModelConfig) -> ModelConfig:
    """A :class:`ModelConfig` given as itself or by preset name."""
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, str):
        return preset_config(preset)
    raise InputError(f"a model preset is a name or a ModelConfig, not {type(preset).__name__}")
