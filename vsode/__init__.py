"""vsode: VidStyleODE video editing.

The public API is re-exported here and imported on first use, so ``import vsode`` (and the CLI's
start-up) stays fast until torch is actually needed::

    import vsode
    G = vsode.load_generator("stylegan2-ffhq-config-f.pt")
    E = vsode.load_encoder("e4e_ffhq_encode.pt")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_generator": "vsode.stylegan2",
    "Generator": "vsode.stylegan2",
    "load_encoder": "vsode.encoders",
    "Encoder": "vsode.encoders",
    "invert_video": "vsode.invert",
    "InvertOptions": "vsode.invert",
    "Latents": "vsode.invert",
    "load_latents": "vsode.invert",
    "probe": "vsode.video",
    "read_frames": "vsode.video",
    "VideoWriter": "vsode.video",
    "VsodeError": "vsode.errors",
    "build_model": "vsode.model",
    "load_model": "vsode.model",
    "save_model": "vsode.model",
    "ModelConfig": "vsode.model",
    "VidStyleODE": "vsode.model",
    "VideoCode": "vsode.model",
    "load_official_checkpoint": "vsode.official",
    "to_official_state_dict": "vsode.official",
    "align_video": "vsode.align",
    "load_track": "vsode.align",
    "edit": "vsode.api",
    "animate": "vsode.api",
    "interpolate": "vsode.api",
    "extrapolate": "vsode.api",
    "blend_motion": "vsode.api",
    "generate": "vsode.api",
    "AppResult": "vsode.api",
    "EditOptions": "vsode.options",
    "AnimateOptions": "vsode.options",
    "InterpolateOptions": "vsode.options",
    "ExtrapolateOptions": "vsode.options",
    "BlendOptions": "vsode.options",
    "GenerateOptions": "vsode.options",
    "Prior": "vsode.model.prior",
    "FrameTimes": "vsode.options",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vsode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
