"""Streaming encode: RGB frames piped to ffmpeg as rawvideo, audio muxed in afterwards.

The video goes to a temporary file beside the target (:func:`vsode.fileio.atomic_path`), renamed
over it only when everything succeeded. Frame times are exact: a constant rate is passed to
ffmpeg as a rational (``-framerate 30000/1001``); explicit per-frame times become a ``setpts``
expression of integer ticks in a time base that holds them all exactly (a balanced tree of
``if(lt(N,k),...)``, so each frame costs log2(n) comparisons), with the encoder in that same time
base. Audio is added by a second, stream-copying pass once the video's length is known, cut to
that length with ``-t``; sizes that ``yuv420p`` cannot hold are padded, never scaled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import FFmpegError, InputError, VsodeError
from ..fileio import atomic_path, temp_beside
from ..progress import Progress, ensure
from .ffmpeg import BASE_ARGS, StderrDrain, ffmpeg_path_arg, run, start, stop, tail
from .probe import audio_streams, jsonable

_CRF_CODECS = {"libx264", "libx264rgb", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
_PRESET_CODECS = {"libx264", "libx264rgb", "libx265"}
_FASTSTART = {".mp4", ".m4v", ".mov"}
# Audio codecs a container takes as they are; anything else is re-encoded.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3"}
_AUDIO_COPY = {
    ".mp4": _MP4_AUDIO,
    ".m4v": _MP4_AUDIO,
    ".mov": _MP4_AUDIO | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"},
    ".mkv": _MP4_AUDIO | {"opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le"},
    ".webm": {"opus", "vorbis"},
}
_AUDIO_ENCODE = {".webm": ["-c:a", "libopus", "-b:a", "128k"]}
_AUDIO_ENCODE_DEFAULT = ["-c:a", "aac", "-b:a", "192k"]
# Largest exact time base for explicit timestamps; beyond it they are rounded to 1/90000 s.
_MAX_TIME_BASE_DEN = 1 << 24
_FALLBACK_TIME_BASE_DEN = 90_000
_BT709_TAGS = ("-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709")


@dataclass(frozen=True)
class WriteResult:
    """What :class:`VideoWriter` wrote.

    Attributes:
        path: the finished file.
        frames: frames written.
        fps: the nominal frame rate.
        duration: seconds from the first frame to the end of the last.
        width, height: size of the encoded frames (after padding).
        padded: the frames were padded at the right/bottom to an even size the pixel
            format needs; the picture was not scaled.
        audio: an audio stream was copied in.
    """

    path: Path
    frames: int
    fps: Fraction
    duration: Fraction
    width: int
    height: int
    padded: bool
    audio: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; fractions become ``"num/den"`` strings, the path a string."""
        return jsonable(dataclasses.asdict(self))


def _exact(value: Fraction | int | float | str) -> Fraction:
    """A number as a Fraction; floats are snapped to the nearest ratio with a denominator <= 1e6."""
    if isinstance(value, float):
        return Fraction(value).limit_denominator(1_000_000)
    return Fraction(value)


def _fraction(value: Fraction | int | float | str, what: str) -> Fraction:
    try:
        result = _exact(value)
    except (ValueError, TypeError, ZeroDivisionError):
        raise InputError(f"{what} {value!r} is not a number or a ratio like 30000/1001") from None
    if result <= 0:
        raise InputError(f"{what} {value!r} must be positive")
    return result


def _even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The size a subsampled pixel format can hold: 4:2:0 needs both even, 4:2:2 the width."""
    even_w = any(tag in pix_fmt for tag in ("420", "422", "nv12", "nv21", "nv16", "p010", "p016"))
    even_h = any(tag in pix_fmt for tag in ("420", "nv12", "nv21", "p010", "p016"))
    return width + (width % 2 if even_w else 0), height + (height % 2 if even_h else 0)


def _pts_expression(ticks: Sequence[int]) -> str:
    """A ``setpts`` expression giving frame ``N`` the tick ``ticks[N]``, by binary search on N."""

    def build(lo: int, hi: int) -> str:
        if hi - lo == 1:
            return str(ticks[lo])
        mid = (lo + hi) // 2
        return f"if(lt(N,{mid}),{build(lo, mid)},{build(mid, hi)})"

    return build(0, len(ticks))


def _time_base(times: Sequence[Fraction], fps: Fraction) -> int:
    """Denominator of a time base holding every time (and the last frame's 1/fps) exactly."""
    den = 1
    for value in (*times, 1 / fps):
        den = math.lcm(den, value.denominator)
        if den > _MAX_TIME_BASE_DEN:
            return _FALLBACK_TIME_BASE_DEN
    return den * math.ceil(10_000 / den) if den < 10_000 else den  # MP4 wants >= 10000 ticks/s


class VideoWriter:
    """Encode frames to a video file as they come; use as a context manager.

    Args:
        path: output file; its suffix picks the container (``.mp4``, ``.mkv``, ``.mov`` ...).
        fps: frame rate, exact: ``Fraction(30000, 1001)``, ``"30000/1001"`` or ``25``.
        width, height: size of the frames passed to :meth:`write`.
        timestamps: optional presentation time in seconds of each frame (strictly increasing,
            from >= 0), for variable frame rate; frames beyond them cannot be written. The
            last frame lasts ``1/fps``.
        crf: quality for x264/x265/vp9/av1 (lower is better); ignored by other codecs.
        codec: ffmpeg encoder name.
        pix_fmt: pixel format of the encoded stream. Formats with 4:2:0 chroma need even sizes;
            odd frames are padded by one black column/row at the right/bottom (see
            :attr:`WriteResult.padded`), never scaled.
        preset: x264/x265 speed preset.
        audio_from: a file whose first audio stream is copied in (re-encoded to AAC, or Opus
            for WebM, when the container cannot take it as is, or when ``audio_start`` is set).
            No audio stream there is fine.
        audio_start: seconds into ``audio_from`` that line up with time 0 of the output. For a
            source whose video starts after its audio, pass the source's
            :attr:`VideoInfo.start_time` (plus the time of the first frame kept).
        force: overwrite an existing ``path``.
        progress: receives an ``encode`` stage (total: the number of timestamps, if given).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false (before ffmpeg starts).
        InputError: a bad argument or audio source.
        FFmpegError: ffmpeg failed; nothing is left at ``path`` or beside it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: Fraction | int | float | str,
        width: int,
        height: int,
        timestamps: Sequence[Fraction | int | float] | None = None,
        crf: int | None = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        preset: str | None = "medium",
        audio_from: str | os.PathLike | None = None,
        audio_start: Fraction | float | int = 0,
        force: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = _fraction(fps, "fps")
        self.width, self.height = int(width), int(height)
        if self.width < 1 or self.height < 1:
            raise InputError(f"frame size {width}x{height} must be positive")
        self.timestamps = None if timestamps is None else self._check_times(timestamps)
        self.audio_start = _exact(audio_start)
        if self.audio_start < 0:
            raise InputError(f"audio start {audio_start} must be >= 0 seconds")
        self._audio: tuple[Path, int, str] | None = None
        if audio_from is not None:
            streams = audio_streams(audio_from)
            if streams:
                self._audio = (Path(audio_from), *streams[0])
        self.out_width, self.out_height = _even_size(self.width, self.height, pix_fmt)
        self.padded = (self.out_width, self.out_height) != (self.width, self.height)
        self.frames = 0
        self._frame_bytes = self.width * self.height * 3
        self._scratch: list[Path] = []
        self._result: WriteResult | None = None
        self._finished = False

        # Refuses an existing output without force, before anything starts.
        self._atomic = atomic_path(self.path, force=force)
        self._tmp = self._atomic.__enter__()
        self._stage = ensure(progress).stage(
            "encode", total=len(self.timestamps) if self.timestamps else None, unit="frame"
        )
        try:
            args = self._args(codec, crf, preset, pix_fmt)
            self._proc = start(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
        except BaseException:
            self._discard()
            raise
        self._stderr = StderrDrain(self._proc.stderr)

    @staticmethod
    def _check_times(values: Sequence[Fraction | int | float]) -> tuple[Fraction, ...]:
        times = tuple(_exact(v) for v in values)
        if not times:
            raise InputError(
                "timestamps is empty; give one time per frame, or none for constant fps"
            )
        if times[0] < 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise InputError("timestamps must start at >= 0 and strictly increase")
        return times

    def _args(self, codec: str, crf: int | None, preset: str | None, pix_fmt: str) -> list[str]:
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        args = [
            "-hide_banner", "-nostats", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", rate, "-i", "pipe:0", "-map", "0:v:0",
        ]  # fmt: skip
        chain = []
        if self.timestamps is not None:
            den = _time_base(self.timestamps, self.fps)
            ticks = [round(t * den) for t in self.timestamps]
            chain += [f"settb=1/{den}", f"setpts='{_pts_expression(ticks)}'"]
        if self.padded:
            chain.append(f"pad={self.out_width}:{self.out_height}:0:0:color=black")
        chain.append("setsar=1")
        yuv = pix_fmt.startswith(("yuv", "nv")) and not pix_fmt.startswith("yuvj")
        if yuv:  # encode with the BT.709 matrix and say so, so decoders convert back the same way
            chain.append("scale=out_color_matrix=bt709:out_range=tv")
        chain.append(f"format={pix_fmt}")
        if self.timestamps is not None:
            # Long expressions go through a file (-/vf), out of the argument list's size limit.
            fd, script = tempfile.mkstemp(prefix="vsode-setpts-", suffix=".txt")
            self._scratch.append(Path(script))
            with os.fdopen(fd, "w") as handle:
                handle.write(",".join(chain))
            args += ["-/vf", script, "-fps_mode", "passthrough", "-enc_time_base:v", f"1/{den}"]
        elif max(self.fps.numerator, self.fps.denominator) > 65535:
            # x264 keeps only 16-bit rate terms (120000/1001 would become 120): stamp frame N at
            # N·den/num seconds in a 1/num time base instead.
            chain[:0] = [f"settb=1/{self.fps.numerator}", f"setpts=N*{self.fps.denominator}"]
            args += ["-vf", ",".join(chain), "-fps_mode", "passthrough", "-enc_time_base:v", f"1/{self.fps.numerator}"]
        else:
            args += ["-vf", ",".join(chain), "-fps_mode", "passthrough"]
        args += ["-c:v", codec, "-pix_fmt", pix_fmt]
        if crf is not None and codec in _CRF_CODECS:
            args += ["-crf", str(crf)] + (["-b:v", "0"] if codec == "libvpx-vp9" else [])
        if preset is not None and codec in _PRESET_CODECS:
            args += ["-preset", preset]
        if yuv:
            args += [*_BT709_TAGS, "-color_range", "tv"]
        if self.path.suffix.lower() in _FASTSTART and self._audio is None:
            args += ["-movflags", "+faststart"]  # with audio, the muxing pass does it
        return [*args, "-an", ffmpeg_path_arg(self._tmp)]

    # --- writing -----------------------------------------------------------------------------

    def write(self, frames: torch.Tensor) -> None:
        """Append frames: ``B×3×H×W`` or ``3×H×W``, uint8 (0..255) or float (0..1, clamped).

        Raises:
            ValueError: wrong shape or dtype, more frames than timestamps, or a closed writer.
            FFmpegError: ffmpeg died; the output is discarded.
        """
        if self._finished:
            raise ValueError(f"VideoWriter for {self.path} is already closed")
        x = frames.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, self.height, self.width):
            raise ValueError(
                f"frames must be Bx3x{self.height}x{self.width} or 3x{self.height}x{self.width}, "
                f"got {tuple(frames.shape)}"
            )
        if x.is_floating_point():
            x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
        elif x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 or floating point, got {x.dtype}")
        n = x.shape[0]
        if self.timestamps is not None and self.frames + n > len(self.timestamps):
            raise ValueError(
                f"{self.frames + n} frames written but only {len(self.timestamps)} timestamps given"
            )
        data = memoryview(x.permute(0, 2, 3, 1).contiguous().cpu().numpy()).cast("B")  # B H W 3
        if self._proc.poll() is not None:
            self._fail(f"ffmpeg stopped while encoding {self.path}")
        try:
            while data:
                written = self._proc.stdin.write(data)
                data = data[written:]
        except (BrokenPipeError, OSError, ValueError):
            self._fail(f"ffmpeg stopped while encoding {self.path}")
        self.frames += n
        self._stage.advance(n)

    def _fail(self, what: str) -> None:
        code = stop(self._proc)
        error = FFmpegError(f"{what} (exit {code}): {self._stderr.tail()}")
        self._discard()
        raise error from None

    @property
    def duration(self) -> Fraction:
        """Seconds from the first frame written to the end of the last."""
        if self.timestamps is None:
            return self.frames / self.fps
        if self.frames == 0:
            return Fraction(0)
        return self.timestamps[self.frames - 1] - self.timestamps[0] + 1 / self.fps

    def close(self) -> WriteResult:
        """Finish the file, add the audio, and rename it into place; idempotent.

        Raises:
            VsodeError: no frames were written.
            FFmpegError: ffmpeg failed; the output is discarded.
        """
        if self._result is not None:
            return self._result
        if self._finished:
            raise ValueError(f"VideoWriter for {self.path} was aborted")
        try:
            if self.frames == 0:
                raise VsodeError(f"no frames were written to {self.path}; nothing to encode")
            with contextlib.suppress(BrokenPipeError, OSError):
                self._proc.stdin.close()
            if self._proc.wait() != 0:
                self._fail(f"ffmpeg failed to encode {self.path}")
            audio = self._mux_audio() if self._audio is not None else False
            self._finished = True
            self._atomic.__exit__(None, None, None)  # the rename
        except BaseException:
            self._discard()
            raise
        self._stage.close()
        self._remove_scratch()
        self._result = WriteResult(
            path=self.path,
            frames=self.frames,
            fps=self.fps,
            duration=self.duration,
            width=self.out_width,
            height=self.out_height,
            padded=self.padded,
            audio=audio,
        )
        return self._result

    def _mux_audio(self) -> bool:
        source, index, codec = self._audio  # type: ignore[misc]
        suffix = self.path.suffix.lower()
        muxed = temp_beside(self._tmp.parent / self.path.name, "mux")
        self._scratch.append(muxed)
        end = (self.timestamps[0] if self.timestamps else 0) + self.duration
        copy = self.audio_start == 0 and codec in _AUDIO_COPY.get(suffix, set())
        audio_codec = ["-c:a", "copy"] if copy else _AUDIO_ENCODE.get(suffix, _AUDIO_ENCODE_DEFAULT)
        seek = ["-ss", f"{float(self.audio_start):.6f}"] if self.audio_start else []
        args = [
            *BASE_ARGS, "-v", "error", "-y", "-i", ffmpeg_path_arg(self._tmp),
            *seek, "-t", f"{float(end):.6f}", "-i", ffmpeg_path_arg(source),
            "-map", "0:v:0", "-map", f"1:{index}", "-c:v", "copy", *audio_codec,
        ]  # fmt: skip
        if suffix in _FASTSTART:
            args += ["-movflags", "+faststart"]
        code, _, err = run([*args, ffmpeg_path_arg(muxed)])
        if code != 0:
            raise FFmpegError(
                f"ffmpeg failed adding audio from {source} to {self.path} (exit {code}): {tail(err)}"
            )
        os.replace(muxed, self._tmp)
        return True

    # --- cleanup -----------------------------------------------------------------------------

    def _remove_scratch(self) -> None:
        for scratch in self._scratch:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()

    def _discard(self) -> None:
        """Kill ffmpeg and remove every file this writer made; nothing is left at the target."""
        if getattr(self, "_proc", None) is not None:
            stop(self._proc)
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()
        self._remove_scratch()
        if not self._finished:
            self._finished = True
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
        self._stage.close()

    def abort(self) -> None:
        """Stop without writing anything (what leaving the ``with`` block by an exception does)."""
        if self._result is None:
            self._discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_result", True) is None and not getattr(self, "_finished", True):
            with contextlib.suppress(Exception):
                self._discard()
