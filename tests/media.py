"""Small test clips made by ffmpeg itself from its lavfi sources, with known answers.

Any test can use them: ``from tests.media import make_clip``. Each function writes one file and
returns its path; the clips are tiny (64x48, a few seconds) so tests stay fast.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vsode.video import ffmpeg_exe

SIZE = (64, 48)
# Counter clips: frame N has luma 16 + STEP*N, so its mean RGB value names N.
COUNTER_STEP = 3
# The VFR counter clip's time base and frame times (ticks): intervals alternate 1/30 s and 1/20 s.
VFR_TICKS_PER_SECOND = 600


def ffmpeg(*args: str) -> None:
    """Run ffmpeg with ``args``; fail the test with its stderr if it fails."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr[-2000:]}")


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = SIZE,
    fps: str = "30000/1001",
    duration: float = 2.0,
    audio: bool = True,
    frames: int | None = None,
) -> Path:
    """testsrc2 video (x264, yuv420p) with, optionally, a 440 Hz sine (AAC, 48 kHz mono)."""
    # testsrc2 rounds odd sizes down; draw one size up and crop.
    even = size[0] + size[0] % 2, size[1] + size[1] % 2
    source = f"testsrc2=size={even[0]}x{even[1]}:rate={fps}:duration={duration}"
    args = ["-f", "lavfi", "-i", f"{source},format=yuv444p,crop={size[0]}:{size[1]}:0:0"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
        args += ["-c:a", "aac"]
    if frames is not None:
        args += ["-frames:v", str(frames)]
    pix_fmt = "yuv420p" if size[0] % 2 == 0 and size[1] % 2 == 0 else "yuv444p"
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, str(path))
    return path


def counter_times(frames: int, *, vfr: bool, fps: int = 30) -> list[Fraction]:
    """The exact frame times of :func:`make_counter_clip`."""
    if not vfr:
        return [Fraction(n, fps) for n in range(frames)]
    return [Fraction(25 * n - 5 * (n % 2), VFR_TICKS_PER_SECOND) for n in range(frames)]


def make_counter_clip(path: Path, *, frames: int, vfr: bool = False, fps: int = 30) -> Path:
    """Flat grey frames whose brightness counts the frame index (see :func:`frame_index`).

    With ``vfr`` the frames sit at :func:`counter_times`: intervals alternate 1/30 and 1/20 s.
    Lossless x264, so the counts decode exactly.
    """
    assert 16 + COUNTER_STEP * (frames - 1) <= 235, "too many frames for the luma range"
    chain = f"format=yuv420p,geq=lum='16+{COUNTER_STEP}*N':cb=128:cr=128"
    extra: list[str] = []
    if vfr:
        chain += f",settb=1/{VFR_TICKS_PER_SECOND},setpts='25*N-5*mod(N,2)'"
        extra = ["-fps_mode", "passthrough", "-enc_time_base:v", f"1/{VFR_TICKS_PER_SECOND}"]
    ffmpeg(
        "-f", "lavfi", "-i", f"color=black:size={SIZE[0]}x{SIZE[1]}:rate={fps}",
        "-vf", chain, "-frames:v", str(frames), *extra,
        "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(path),
    )  # fmt: skip
    return path


def frame_index(frames: torch.Tensor) -> list[int]:
    """Recover each counter-clip frame's index from its mean brightness (``B×3×H×W`` uint8)."""
    means = frames.float().mean(dim=(1, 2, 3))
    return [round(float(m) * 219 / 255 / COUNTER_STEP) for m in means]


def make_flash_beep_clip(
    path: Path, *, fps: str = "30000/1001", duration: float = 3.0, flash_frame: int = 45
) -> Fraction:
    """Black video that turns white from ``flash_frame`` on, with a 1 kHz beep starting then.

    Returns the flash time in seconds; the beep starts at that same instant.
    """
    flash = flash_frame / Fraction(fps)
    onset = f"{float(flash):.6f}"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=black:size={SIZE[0]}x{SIZE[1]}:rate={fps}:duration={duration}",
        "-f", "lavfi", "-i",
        f"aevalsrc='0.8*sin(2*PI*1000*t)*gte(t,{onset})':sample_rate=48000:duration={duration}",
        "-vf", f"drawbox=color=white:thickness=fill:enable='gte(n,{flash_frame})'",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
    )  # fmt: skip
    return flash


def make_still(path: Path, *, size: tuple[int, int] = SIZE) -> Path:
    """One testsrc2 frame as an image; the suffix picks the format (png, jpg, ...)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}", "-frames:v", "1", str(path))
    return path


def make_audio_only(path: Path, *, duration: float = 1.0) -> Path:
    """A sine tone with no video stream; the suffix picks the format."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}", str(path))
    return path


def with_display_rotation(src: Path, dst: Path, degrees_ccw: int) -> Path:
    """Stream-copy ``src`` with a display matrix turning it ``degrees_ccw`` counter-clockwise."""
    ffmpeg("-display_rotation", str(degrees_ccw), "-i", str(src), "-c", "copy", str(dst))
    return dst


def with_rotate_tag(src: Path, dst: Path, degrees: int) -> Path:
    """Stream-copy ``src`` into ``dst`` (use .mkv) with a legacy ``rotate`` tag and no matrix."""
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v", f"rotate={degrees}", str(dst))
    return dst


def truncated(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``src``'s bytes, as if a download stopped."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def read_audio(path: Path, *, sample_rate: int = 48000) -> np.ndarray:
    """The first audio stream as mono float32, sample 0 at time 0 of the file (silence-padded)."""
    proc = subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
            "-map", "0:a:0", "-af", "aresample=async=1:first_pts=0", "-ac", "1",
            "-ar", str(sample_rate), "-f", "f32le", "pipe:1",
        ],  # fmt: skip
        capture_output=True,
        check=True,
    )
    return np.frombuffer(proc.stdout, dtype=np.float32)


def onset_seconds(
    samples: np.ndarray, *, sample_rate: int = 48000, threshold: float = 0.3
) -> float:
    """Time of the first sample louder than ``threshold`` times the loudest."""
    loud = np.flatnonzero(np.abs(samples) > threshold * np.abs(samples).max())
    return float(loud[0]) / sample_rate
