"""The VidStyleODE configuration: the stages' sizes, the time unit and the frozen backbones it is
meant for (the named presets are in :mod:`.presets`).

Every checkpoint stores its :class:`ModelConfig` (STYLE habit 2); :meth:`ModelConfig.override`
applies ``--set KEY=VALUE`` changes, converting the command line's strings to each field's type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ..dynamics import DynamicsConfig
from ..errors import InputError
from ..modulation import MapperConfig, ModulationConfig
from ..options import CONTENT_MODES

FORMAT = "vsode/vidstyleode@1"
BACKBONE_KINDS = ("generator", "encoder", "clip", "dino")
__all__ = ["BACKBONE_KINDS", "CONTENT_MODES", "FORMAT", "Backbones", "ModelConfig"]

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
