"""Video in and out through ffmpeg: probe, streaming decode, streaming encode with audio.

Stages: :mod:`.ffmpeg` (the binary) → :mod:`.probe` (what a file holds, every frame's time) →
:mod:`.decode` (batches of RGB tensors) and :mod:`.encode` (tensors to a file, atomically).
"""

from __future__ import annotations

from .decode import FrameBatch, read_all, read_frames
from .encode import VideoWriter, WriteResult
from .ffmpeg import ffmpeg_exe
from .probe import AudioInfo, VideoInfo, probe

__all__ = [
    "AudioInfo",
    "FrameBatch",
    "VideoInfo",
    "VideoWriter",
    "WriteResult",
    "ffmpeg_exe",
    "probe",
    "read_all",
    "read_frames",
]
