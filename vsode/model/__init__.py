"""The VidStyleODE model, one module per job:

- :mod:`.config`: :class:`ModelConfig` and its ``--set`` overrides; :mod:`.presets`: the named presets;
- :mod:`.module`: :class:`VidStyleODE` and the one encode → solve → decode path
  (:class:`VideoCode`, :class:`Trajectory`);
- :mod:`.anchor`: anchored rendering (the inversions' per-frame detail kept);
- :mod:`.prior`: the prior over motion states and content codes that ``vsode generate`` samples;
- :mod:`.io`: building, saving and loading models and the frozen backbones they name.
"""

from __future__ import annotations

from .anchor import ANCHOR_MODES, Anchor
from .config import BACKBONE_KINDS, CONTENT_MODES, FORMAT, Backbones, ModelConfig
from .io import (
    backbone_ref,
    build_model,
    load_backbone,
    load_model,
    model_checkpoint,
    model_from_checkpoint,
    parameter_counts,
    save_model,
)
from .module import Trajectory, VideoCode, VidStyleODE, content_code
from .presets import PRESETS, preset_config

__all__ = [
    "ANCHOR_MODES",
    "Anchor",
    "BACKBONE_KINDS",
    "CONTENT_MODES",
    "FORMAT",
    "PRESETS",
    "Backbones",
    "ModelConfig",
    "Trajectory",
    "VideoCode",
    "VidStyleODE",
    "backbone_ref",
    "build_model",
    "content_code",
    "load_backbone",
    "load_model",
    "model_checkpoint",
    "model_from_checkpoint",
    "parameter_counts",
    "preset_config",
    "save_model",
]
