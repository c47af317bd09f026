"""The VidStyleODE model: configuration, presets, checkpoints and the encode/decode API.

A video is a content code ``z_C`` (W+, the mean of its frames' inversions) plus the initial state
``z_d0`` of a latent ODE of its motion. For any frame time ``t`` the model solves the ODE to
``z_d(τ)``, lifts it to dynamics tokens, conditions the style code on them
(:class:`vsode.modulation.Modulation`) and maps ``z_C`` to ``w(τ) = z_C + 0.01·Δ(τ)``
(:class:`vsode.modulation.Mapper`); a frozen StyleGAN2 renders ``w``.

Time. ``τ = (t − t₀) / time_unit`` with ``t`` in seconds, ``t₀`` the first observed frame and
``time_unit = video_length / nominal_fps`` stored in the config (the released code's "video_length"
frames, at the dataset's frame rate), so a model behaves the same on any input frame rate.

Checkpoints (``vsode/vidstyleode@1``) hold the config, the trainable weights and the name +
SHA-256 of the frozen backbones the model was trained with; :func:`load_model` resolves those
through the checkpoint manager.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .dynamics import Dynamics, DynamicsConfig
from .errors import ChecksumError, InputError
from .modulation import Mapper, MapperConfig, Modulation, ModulationConfig

FORMAT = "vsode/vidstyleode@1"
BACKBONE_KINDS = ("generator", "encoder", "clip", "dino")
CONTENT_MODES = ("mean", "first")


# --- configuration -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backbones:
    """Names (registry names or file names) of the frozen models a VidStyleODE works with."""

    generator: str | None = None
    encoder: str | None = None
    clip: str | None = None
    dino: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a :class:`VidStyleODE`; stored in every checkpoint.

    Parameters
    ----------
    dynamics, modulation, mapper: the three trainable stages.
    n_latent: W+ rows of the generator (18 at 1024 px).
    video_length: frames in one unit of normalised time (released: 100 faces, 50 fashion).
    nominal_fps: the frame rate those frames are counted at, exact ``"num/den"``.
    data_size: (H, W) of the training frames (pixel and DINO losses compare at this size).
    backbones: the frozen generator, encoder, CLIP and DINO it is meant for.
    preset: the preset it came from ("custom" once overridden).
    """

    dynamics: DynamicsConfig = DynamicsConfig()
    modulation: ModulationConfig = ModulationConfig()
    mapper: MapperConfig = MapperConfig()
    n_latent: int = 18
    video_length: int = 100
    nominal_fps: str = "30000/1001"
    data_size: tuple[int, int] = (256, 256)
    backbones: Backbones = Backbones()
    preset: str = "custom"

    def __post_init__(self) -> None:
        for name, kind in (("dynamics", DynamicsConfig), ("modulation", ModulationConfig),
                           ("mapper", MapperConfig), ("backbones", Backbones)):
            if not isinstance(getattr(self, name), kind):
                raise InputError(f"model config {name} must be a {kind.__name__}")
        object.__setattr__(self, "data_size", tuple(int(v) for v in self.data_size))
        problems = []
        if self.n_latent < 1:
            problems.append(f"n_latent {self.n_latent} must be positive")
        if sum(self.mapper.groups) != self.n_latent:
            problems.append(f"mapper.groups {list(self.mapper.groups)} must add up to n_latent {self.n_latent}")
        if self.modulation.n_embd != self.dynamics.token_dim:
            problems.append(
                f"modulation.n_embd {self.modulation.n_embd} must equal dynamics.token_dim {self.dynamics.token_dim}"
            )
        if self.modulation.out_dim != self.mapper.cond_dim:
            problems.append(f"modulation.out_dim {self.modulation.out_dim} must equal mapper.cond_dim {self.mapper.cond_dim}")
        h, w = self.dynamics.grid
        if h * w > self.modulation.n_tokens:
            problems.append(f"modulation.n_tokens {self.modulation.n_tokens} must be at least the {h}x{w} dynamics grid")
        if self.video_length <= 0:
            problems.append(f"video_length {self.video_length} must be positive")
        try:
            if Fraction(self.nominal_fps) <= 0:
                problems.append(f"nominal_fps {self.nominal_fps} must be positive")
        except (ValueError, ZeroDivisionError):
            problems.append(f"nominal_fps {self.nominal_fps!r} must be a number or num/den")
        if len(self.data_size) != 2 or min(self.data_size) < 8:
            problems.append(f"data_size {self.data_size} must be (H, W) of at least 8 pixels")
        if problems:
            raise InputError("invalid model config: " + "; ".join(problems))

    @property
    def style_dim(self) -> int:
        """Width of a W+ row."""
        return self.mapper.style_dim

    @property
    def clip_dim(self) -> int:
        """Width of the style token (the CLIP embedding)."""
        return self.modulation.n_embd

    @property
    def time_unit(self) -> float:
        """Seconds in one unit of normalised time τ."""
        return float(self.video_length / Fraction(self.nominal_fps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dynamics": self.dynamics.to_dict(),
            "modulation": self.modulation.to_dict(),
            "mapper": self.mapper.to_dict(),
            "n_latent": self.n_latent,
            "video_length": self.video_length,
            "nominal_fps": self.nominal_fps,
            "data_size": list(self.data_size),
            "backbones": self.backbones.to_dict(),
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        if not isinstance(data, Mapping):
            raise InputError("a model config is a dict")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown model config field(s) {', '.join(unknown)}")
        kwargs = dict(data)
        try:
            if "dynamics" in kwargs:
                kwargs["dynamics"] = DynamicsConfig.from_dict(kwargs["dynamics"])
            if "modulation" in kwargs:
                kwargs["modulation"] = ModulationConfig.from_dict(kwargs["modulation"])
            if "mapper" in kwargs:
                kwargs["mapper"] = MapperConfig.from_dict(kwargs["mapper"])
            if "backbones" in kwargs:
                kwargs["backbones"] = Backbones(**kwargs["backbones"])
            return cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"invalid model config: {exc}") from None

    def override(self, changes: Mapping[str, Any]) -> "ModelConfig":
        """A copy with dotted fields replaced: ``{"dynamics.dtype": "float64", "video_length": 50}``.

        String values (from the command line) are converted to the field's type; the result is
        validated and marked ``preset="custom"`` unless ``preset`` itself is given.
        """
        data = self.to_dict()
        for key, value in changes.items():
            parts = key.split(".")
            node = data
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise InputError(f"unknown model config field {key!r}")
                node = node[part]
            if parts[-1] not in node:
                raise InputError(f"unknown model config field {key!r}")
            node[parts[-1]] = _coerce(key, node[parts[-1]], value)
        if "preset" not in changes:
            data["preset"] = "custom"
        return ModelConfig.from_dict(data)


def _coerce(key: str, old: Any, value: Any) -> Any:
    if not isinstance(value, str) or isinstance(old, str):
        return value
    text = value.strip()
    try:
        if old is None:
            return None if text.lower() in ("none", "null", "") else _number(text)
        if isinstance(old, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(old, int):
            return int(text)
        if isinstance(old, float):
            return float(text)
        if isinstance(old, list):
            return [_number(v) for v in text.strip("[]()").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"model config {key}={value!r}: expected a {type(old).__name__}") from None
    return value


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


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


# --- the model -------------------------------------------------------------------------------------


@dataclasses.dataclass
class VideoCode:
    """What :meth:`VidStyleODE.encode_video` keeps of a video: enough to decode any frame time.

    content_code: n_latent × D (z_C). z_d0: C × h × w, the dynamics state at ``t0``.
    t0: seconds of the first observed frame. times: every observed time (seconds).
    """

    content_code: torch.Tensor
    z_d0: torch.Tensor
    t0: float
    times: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.times[-1] - self.times[0]


class VidStyleODE(nn.Module):
    """The trainable VidStyleODE (released: the ``VidStyleODE`` LightningModule's ``bVAE_enc``,
    ``modulation_network`` and ``style_mapper``), with optional frozen backbones attached.

    ``dynamics`` encodes frames to ``z_d0`` and solves the ODE; ``modulation`` turns the style
    token and the dynamics tokens into three condition vectors; ``mapper`` maps ``z_C`` under
    them to W+. The generator and CLIP are attached with :meth:`attach` and are not part of the
    state dict.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.dynamics = Dynamics(config.dynamics)
        self.modulation = Modulation(config.modulation)
        self.mapper = Mapper(config.mapper)
        self._backbones: dict[str, Any] = {}
        self.backbone_refs: dict[str, dict[str, Any] | None] = {k: None for k in BACKBONE_KINDS}

    # -- backbones (frozen, not saved) --

    def attach(self, **backbones: Any) -> "VidStyleODE":
        """Attach frozen backbones: ``generator=``, ``encoder=``, ``clip=``, ``dino=``."""
        for kind, module in backbones.items():
            if kind not in BACKBONE_KINDS:
                raise InputError(f"unknown backbone {kind!r}; one of {', '.join(BACKBONE_KINDS)}")
            if module is not None:
                module.requires_grad_(False).eval()
            self._backbones[kind] = module
        generator = self._backbones.get("generator")
        if generator is not None and getattr(generator, "n_latent", self.config.n_latent) != self.config.n_latent:
            raise InputError(
                f"generator gives {generator.n_latent} W+ rows, the model expects {self.config.n_latent}"
            )
        return self

    def backbone(self, kind: str) -> Any:
        module = self._backbones.get(kind)
        if module is None:
            raise InputError(f"this VidStyleODE has no {kind} attached; load it with load_model or attach({kind}=...)")
        return module

    @property
    def generator(self) -> Any:
        return self.backbone("generator")

    @property
    def clip(self) -> Any:
        return self.backbone("clip")

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "VidStyleODE":  # .to()/.cuda() move backbones too
        super()._apply(fn, *args, **kwargs)
        for module in self._backbones.values():
            if module is not None:
                module._apply(fn, *args, **kwargs)
        return self

    # -- time --

    def normalise_times(self, seconds: Any, t0: float) -> torch.Tensor:
        """τ = (t − t0) / time_unit as a float64 tensor."""
        t = torch.as_tensor(seconds, dtype=torch.float64).reshape(-1)
        return (t - float(t0)) / self.config.time_unit

    # -- stages --

    @torch.no_grad()
    def style_code(
        self,
        content_code: torch.Tensor,
        *,
        source: str | Sequence[str] | None = None,
        target: str | Sequence[str] | None = None,
        strength: float = 1.0,
        image_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``z_S = CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source))`` (un-normalised).

        content_code: B × n_latent × D. Without ``target`` the text term is zero.
        ``image_features`` reuses a computed ``CLIP_I(G(z_C))``. Returns B × clip_dim.
        """
        if content_code.dim() == 2:
            content_code = content_code[None]
        if image_features is None:
            image = self.generator.synthesize(content_code, noise="const")
            image_features = self.clip.encode_image(image).float()
        if target is None:
            return image_features
        if source is None:
            raise InputError("a text edit needs a source description as well as the target")
        direction = self.clip.encode_text(target).float() - self.clip.encode_text(source).float()
        return image_features + strength * direction.to(image_features.device)

    def decode_w(self, tokens: torch.Tensor, content_code: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Dynamics tokens ((Tq·B) × hw × D, time-major), z_C (B × n × D) and z_S (B × D) →
        W+ ((Tq·B) × n × D, time-major)."""
        batch = content_code.shape[0]
        if tokens.shape[0] % batch or style.shape[0] != batch:
            raise InputError(f"{tokens.shape[0]} token rows do not tile {batch} videos of content/style")
        repeats = tokens.shape[0] // batch
        content = content_code.repeat(repeats, 1, 1)  # row t*B + b holds video b
        style = style.reshape(batch, -1).repeat(repeats, 1)
        conds = self.modulation(style, tokens)
        return self.mapper(content, conds)

    def forward(
        self,
        frames: torch.Tensor,
        times: torch.Tensor,
        query: torch.Tensor,
        content_code: torch.Tensor,
        style: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training forward: frames B×T×3×H×W in [0,1] observed at normalised ``times`` (T),
        W+ at the normalised ``query`` times, (Tq·B) × n × D time-major."""
        z_d0 = self.dynamics.encode(frames, times, mask)
        _, tokens = self.dynamics.solve(z_d0, query)
        return self.decode_w(tokens, content_code, style)

    # -- the application API --

    @torch.no_grad()
    def encode_video(
        self,
        frames: torch.Tensor,
        times: Sequence[float] | torch.Tensor,
        *,
        latents: torch.Tensor | None = None,
        content_code: torch.Tensor | None = None,
        content: str = "mean",
        mask: torch.Tensor | None = None,
    ) -> VideoCode:
        """Encode one video's content and dynamics once.

        frames: T×3×H×W in [0, 1] (any size; resized to the dynamics encoder's). times: their
        timestamps in seconds, strictly increasing. latents: T×n×D W+ inversions (the content
        code is their mean, or the first row with ``content="first"``), or give ``content_code``
        (n×D) directly, e.g. from a single image. mask: T of 0/1, frames the ODE-GRU skips.
        """
        if content not in CONTENT_MODES:
            raise InputError(f"content mode {content!r}: use one of {', '.join(CONTENT_MODES)}")
        if frames.dim() != 4:
            raise InputError(f"frames must be T×3×H×W, got {tuple(frames.shape)}")
        stamps = [float(t) for t in torch.as_tensor(times, dtype=torch.float64).reshape(-1)]
        if len(stamps) != frames.shape[0]:
            raise InputError(f"{frames.shape[0]} frames but {len(stamps)} timestamps")
        if content_code is None:
            if latents is None:
                raise InputError("encode_video needs the frames' W+ latents or a content code")
            if latents.shape[0] != frames.shape[0]:
                raise InputError(f"{latents.shape[0]} latent rows for {frames.shape[0]} frames")
            content_code = latents.mean(0) if content == "mean" else latents[0]
        if content_code.shape != (self.config.n_latent, self.config.style_dim):
            raise InputError(
                f"content code of shape {tuple(content_code.shape)}; this model takes "
                f"{self.config.n_latent}×{self.config.style_dim}"
            )
        device = next(self.parameters()).device
        tau = self.normalise_times(stamps, stamps[0]).to(device)
        m = None if mask is None else torch.as_tensor(mask, device=device).reshape(-1)
        z_d0 = self.dynamics.encode(frames[None].to(device), tau, m)[0]
        return VideoCode(content_code.to(device).float(), z_d0, stamps[0], tuple(stamps))

    @torch.no_grad()
    def solve(
        self,
        code: VideoCode,
        times: Sequence[float] | torch.Tensor,
        *,
        blend: tuple[VideoCode, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Dynamics tokens ((Tq) × hw × D) at ``times`` (seconds on the video's own clock).

        One ODE solve for all times. ``blend=(other, mask)`` takes ``other``'s motion inside the
        h×w cell mask (values in [0, 1]) and this video's elsewhere, at every τ:
        ``z_d = M·z_d^other + (1 − M)·z_d^self`` (the other video's τ counted from its own start).
        """
        tau = self.normalise_times(times, code.t0).to(code.z_d0.device)
        states, tokens = self.dynamics.solve(code.z_d0[None], tau)
        if blend is None:
            return tokens
        other, mask = blend
        h, w = self.config.dynamics.grid
        mask = torch.as_tensor(mask, dtype=states.dtype, device=states.device)
        if mask.shape != (h, w):
            raise InputError(f"blend mask must be {h}×{w} (the dynamics grid), got {tuple(mask.shape)}")
        other_states, _ = self.dynamics.solve(other.z_d0[None], tau)
        mixed = mask * other_states + (1 - mask) * states
        return self.dynamics.tokens(mixed)

    @torch.no_grad()
    def decode(
        self,
        code: VideoCode,
        times: Sequence[float] | torch.Tensor,
        *,
        style: torch.Tensor | None = None,
        blend: tuple[VideoCode, torch.Tensor] | None = None,
        batch_size: int = 16,
    ) -> Iterator[torch.Tensor]:
        """W+ codes at ``times`` (seconds), yielded in batches of ``batch_size`` frames (b × n × D).

        The ODE is solved once for all times; the modulation network and mapper run per batch.
        ``style`` (clip_dim) defaults to ``CLIP_I(G(z_C))``.
        """
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        tokens = self.solve(code, times, blend=blend)
        if style is None:
            style = self.style_code(code.content_code[None])
        style = style.reshape(1, -1).to(tokens.device)
        content = code.content_code[None]
        for start in range(0, tokens.shape[0], batch_size):
            yield self.decode_w(tokens[start : start + batch_size], content, style)


# --- building, saving, loading -------------------------------------------------------------------


def _as_config(preset: str | ModelConfig) -> ModelConfig:
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, str):
        return preset_config(preset)
    raise InputError(f"a model preset is a name or a ModelConfig, not {type(preset).__name__}")


def build_model(preset: str | ModelConfig = "ffhq", *, seed: int | None = None) -> VidStyleODE:
    """A randomly initialised :class:`VidStyleODE` (trainable parts only, no backbones).

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    """
    config = _as_config(preset)
    if seed is None:
        return VidStyleODE(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VidStyleODE(config)


def model_checkpoint(model: VidStyleODE, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``vsode/vidstyleode@1`` dict of a model: config, trainable weights, backbone refs."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "backbones": {k: (dict(v) if v else None) for k, v in model.backbone_refs.items()},
        "state_dict": state,
    }
    if extra:
        ckpt.update(extra)
    return ckpt


def save_model(
    model: VidStyleODE, path: str | os.PathLike, *, force: bool = False, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` as a ``vsode/vidstyleode@1`` checkpoint (temp file + rename)."""
    from .fileio import save_torch

    return save_torch(model_checkpoint(model, extra=extra), path, force=force)


def model_from_checkpoint(ckpt: Mapping[str, Any], *, label: str = "checkpoint") -> VidStyleODE:
    """Build and strictly load the trainable model of a ``vsode/vidstyleode@1`` dict."""
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise InputError(
            f"{label} is not a VidStyleODE checkpoint ({FORMAT}; found {found!r}); "
            "train one with `vsode train` or convert one with `vsode import-official`"
        )
    config = ModelConfig.from_dict(ckpt.get("config", {}))
    model = VidStyleODE(config)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise InputError(f"{label} has no state_dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        raise InputError(
            f"{label} does not match its config: missing {missing[:3]}, unknown {unknown[:3]}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputError(f"{label}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=True)
    refs = ckpt.get("backbones") or {}
    model.backbone_refs = {k: (dict(refs[k]) if refs.get(k) else None) for k in BACKBONE_KINDS}
    return model


def load_model(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    backbones: bool | Sequence[str] = ("generator", "clip"),
    overrides: Mapping[str, str | os.PathLike] | None = None,
    verify: bool = True,
) -> VidStyleODE:
    """Load a trained VidStyleODE and the frozen backbones it names, in eval mode.

    Args:
        source: a checkpoint path, a registry name, or the checkpoint dict.
        device: where everything goes.
        cache_dir: the checkpoint cache to resolve backbone names in.
        backbones: which backbones to load (``True``: all it names; ``False``: none).
        overrides: ``{"generator": path_or_name, ...}`` used instead of the recorded ones.
        verify: check each backbone file's SHA-256 against the one recorded at training time.

    Raises:
        InputError: not a VidStyleODE checkpoint, or weights that do not fit the config.
        ModelMissingError: a named backbone is not installed (the message says how to get it).
        ChecksumError: a backbone file differs from the one the model was trained with.
    """
    from .checkpoints.cache import resolve
    from .checkpoints.load import safe_load

    if isinstance(source, Mapping):
        label, ckpt = "checkpoint", source
    else:
        path = resolve(source, cache_dir=cache_dir)
        label, ckpt = os.fspath(path), safe_load(path, map_location="cpu")
    model = model_from_checkpoint(ckpt, label=label)
    wanted = BACKBONE_KINDS if backbones is True else (() if backbones is False else tuple(backbones))
    overrides = dict(overrides or {})
    loaded = {}
    for kind in wanted:
        ref = model.backbone_refs.get(kind) or {}
        name = overrides.get(kind) or ref.get("name") or getattr(model.config.backbones, kind)
        if name is None:
            continue
        loaded[kind] = load_backbone(
            kind, os.fspath(name), cache_dir=cache_dir,
            sha256=ref.get("sha256") if (verify and kind not in overrides) else None,
        )
    model.attach(**loaded)
    return model.to(device).eval()


def load_backbone(
    kind: str, name_or_path: str, *, cache_dir: str | os.PathLike | None = None, sha256: str | None = None
) -> Any:
    """Resolve and load one frozen backbone (``generator``, ``encoder``, ``clip``, ``dino``)."""
    from .checkpoints.cache import resolve
    from .invert import model_ref

    path = resolve(name_or_path, cache_dir=cache_dir)
    if sha256 is not None:
        found = model_ref(name_or_path, path, Path(cache_dir) if cache_dir else None)["sha256"]
        if found != sha256:
            raise ChecksumError(
                f"{kind} {name_or_path} ({path}) has SHA-256 {found[:12]}…, but the model was trained "
                f"with {sha256[:12]}…; install that file or pass --{kind} to use another deliberately"
            )
    if kind == "generator":
        from .stylegan2 import load_generator

        return load_generator(path)
    if kind == "encoder":
        from .encoders import load_encoder

        return load_encoder(path)
    if kind == "clip":
        from .clip import load_clip

        return load_clip(path)
    if kind == "dino":
        from .checkpoints.load import safe_load
        from .dino import ClipViTFeatures, load_dino

        ckpt = safe_load(path, map_location="cpu")
        if isinstance(ckpt, Mapping) and ckpt.get("format") == "vsode/clip@1":
            from .clip import load_clip

            return ClipViTFeatures(load_clip(ckpt))  # a CLIP image tower standing in for DINO
        return load_dino(ckpt)
    raise InputError(f"unknown backbone kind {kind!r}")


def backbone_ref(kind: str, name_or_path: str, *, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"name", "sha256"}`` of a backbone as a checkpoint records it."""
    from .checkpoints.cache import resolve
    from .invert import model_ref

    path = resolve(name_or_path, cache_dir=cache_dir)
    return model_ref(name_or_path, path, Path(cache_dir) if cache_dir else None) | {"kind": kind}


def parameter_counts(model: VidStyleODE) -> dict[str, int]:
    """Trainable parameters per stage and in total."""
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("dynamics", "modulation", "mapper")
    }
    counts["total"] = sum(counts.values())
    return counts
