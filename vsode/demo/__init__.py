"""The demo world: procedural face videos with known appearance and motion, and their datasets.

Every command runs offline on it, and tests score meaning against its ground truth.
"""

from __future__ import annotations

from .dataset import DatasetResult, write_dataset
from .world import (
    ATTRIBUTES,
    BACKGROUNDS,
    EYE_COLOURS,
    HAIR_COLOURS,
    MASK_REGIONS,
    MOTION_CHANNELS,
    SKIN_TONES,
    Appearance,
    Motion,
    VideoParams,
    caption,
    caption_for,
    landmarks,
    region_masks,
    render,
    render_times,
    sample_params,
    with_appearance,
    with_motion,
)

__all__ = [
    "DatasetResult", "write_dataset",
    "ATTRIBUTES", "BACKGROUNDS", "EYE_COLOURS", "HAIR_COLOURS", "MASK_REGIONS",
    "MOTION_CHANNELS", "SKIN_TONES", "Appearance", "Motion", "VideoParams", "caption", "caption_for",
    "landmarks", "region_masks", "render", "render_times", "sample_params", "with_appearance",
    "with_motion",
]
