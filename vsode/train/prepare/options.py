"""The options and the result of :func:`vsode.train.prepare.prepare_dataset`, and the format's constants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...options import PRECISIONS

PREPARED_FORMAT = "vsode/train-data@1"
# What prepare reads besides video files: a folder of frames with exact times, written by the demo
# world (vsode.demo.dataset): dataset.json {"format": this, "config": {...}}, manifest.json with
# every video's id, times, caption and split, frames/<id>/<k:05d>.png.
DEMO_DATASET_FORMAT = "vsode/demo-dataset@1"
DEFAULT_SIZE = 256
DEMO_ENCODER = "psp-demo"  # the demo world's own encoder, the default for demo datasets
FACE_ENCODER = "psp-ffhq-encode"  # the released face encoder, the default for real videos
# Files taken as videos (ffmpeg reads many more; give such files one of these suffixes).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .qt .mkv .webm .avi .gif .flv .wmv .asf .mpg .mpeg .m2v .ts .mts .m2ts "
    ".3gp .3g2 .ogv .y4m .mxf .vob .dv .nut .f4v .apng".split()
)
CROP_POLICY = "center-square"
RESIZE_POLICY = "bilinear-antialias"
# Bumped when the frames or latents written for the same input and settings change.
_PREPARE_VERSION = 1
_QUEUE_BATCHES = 2  # batches a decoding worker may hold ahead of the inversion, per video


@dataclass(frozen=True)
class PrepareOptions:
    """How to prepare a training folder; validated on construction (STYLE habit 7).

    Attributes:
        size: side of the square training frames in pixels; ``None`` = 256 for videos, the frames'
            own size for a demo dataset.
        encoder: pSp/e4e checkpoint (registry name or path); ``None`` = ``psp-ffhq-encode`` for
            videos, ``psp-demo`` for a demo dataset.
        batch_size: frames per decode and encoder batch; bounds memory.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the encoder.
        precision: ``fp32`` (reference), ``bf16`` or ``auto`` (bf16 on CUDA) for the encoder.
        val_fraction: share of the videos listed in ``splits/val.txt`` (a demo dataset keeps its own).
        seed: decides the split.
        jobs: videos decoded (and written as PNG) at once by worker threads; the inversion stays
            in the calling thread.
        skip_bad: leave out videos that cannot be read (recorded in the manifest) instead of failing.
        captions: a CSV (``video,caption`` header) or JSONL (``{"video": .., "caption": ..}``) file;
            ``video`` is a file name, a stem or a video id. It wins over per-video caption files.
        force: redo every video, and accept settings other than the folder's recorded ones.
        cache_dir: model cache root (default ``$VSODE_CACHE_DIR`` or the user cache folder).
        align: ``auto`` (FFHQ-align faces unless the encoder's world needs none; the centre square
            when a video has no face at all), ``on`` (a video without a face is an error) or
            ``off`` (centre square, for aligned footage). Demo datasets are never re-aligned.
        face_index: which face to follow when there are several (0 = the largest).
    """

    size: int | None = None
    encoder: str | None = None
    batch_size: int = 8
    device: str = "auto"
    precision: str = "fp32"
    val_fraction: float = 0.1
    seed: int = 0
    jobs: int = 1
    skip_bad: bool = False
    captions: Path | None = None
    force: bool = False
    cache_dir: Path | None = None
    align: str = "auto"
    face_index: int = 0

    def __post_init__(self) -> None:
        if self.align not in ("auto", "on", "off"):
            raise InputError(f"align {self.align!r} must be auto, on or off")
        if self.face_index < 0:
            raise InputError(f"--face-index {self.face_index} must be 0 (largest) or more")
        if self.size is not None and not 16 <= self.size <= 4096:
            raise InputError(f"--size {self.size} must be between 16 and 4096 pixels (e.g. 256)")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size} must be at least 1")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"--val-fraction {self.val_fraction} must be in [0, 1), e.g. 0.1")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} must be a non-negative integer")
        if self.jobs < 1:
            raise InputError(f"--jobs {self.jobs} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("captions", "cache_dir"):
            d[key] = None if d[key] is None else str(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PrepareOptions":
        d = dict(d)
        for key in ("captions", "cache_dir"):
            if d.get(key) is not None:
                d[key] = Path(d[key])
        return cls(**d)


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare_dataset` did."""

    root: Path
    manifest: Path
    prepared: tuple[str, ...]  # video ids decoded and inverted by this call
    skipped: tuple[str, ...]  # video ids already complete from an earlier call
    bad: tuple[tuple[str, str], ...]  # (input name, reason) of videos left out (skip_bad)
    n_train: int
    n_val: int
    n_frames: int  # frames over all prepared videos
    captions_unmatched: tuple[str, ...]  # captions-file entries that named no video

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["root"], d["manifest"] = str(self.root), str(self.manifest)
        d["bad"] = [{"input": name, "reason": reason} for name, reason in self.bad]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
