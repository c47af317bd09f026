"""Streaming decode: ffmpeg writes raw RGB frames to a pipe, read one batch at a time.

A reader thread fills at most :data:`QUEUE_BATCHES` batches ahead of the consumer, so memory is
bounded by the batch size whatever the video's length. Rotation, crop and resize are ffmpeg
filters; ``-fps_mode passthrough`` makes ffmpeg neither drop nor duplicate frames, so the frames
are exactly those :func:`~vsode.video.probe` counted and each gets its probed timestamp.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Iterator

import torch

from ..errors import FFmpegError, InputError
from ..progress import Progress, ensure
from .ffmpeg import BASE_ARGS, StderrDrain, ffmpeg_path_arg, start, stop
from .probe import VideoInfo, check_input_file, probe

QUEUE_BATCHES = 2  # decoded batches waiting for the consumer, at most
RESIZE_MODES = {
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "lanczos": "lanczos",
    "area": "area",
    "nearest": "neighbor",
}
DTYPES = {"uint8": torch.uint8, "float32": torch.float32}
_TURN = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
_EOF = object()
_PARTIAL = object()


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive decoded frames.

    Attributes:
        frames: ``B×3×H×W`` RGB, uint8 or float in [0, 1].
        indices: each frame's index in the video.
        timestamps: each frame's presentation time in seconds (first frame at 0).
    """

    frames: torch.Tensor
    indices: tuple[int, ...]
    timestamps: tuple[Fraction, ...]

    def __len__(self) -> int:
        return len(self.indices)


def _filters(
    info: VideoInfo,
    crop: tuple[int, int, int, int] | None,
    size: tuple[int, int] | None,
    resize_mode: str,
) -> tuple[list[str], int, int]:
    """The ``-vf`` chain and the size of the frames it yields."""
    if resize_mode not in RESIZE_MODES:
        raise InputError(f"resize mode {resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")
    # ffmpeg's autorotate applies a display matrix itself; a legacy tag is ours to apply.
    chain = list(_TURN.get(info.rotation, [])) if info.rotation_source == "tag" else []
    width, height = info.width, info.height
    if crop is not None:
        x, y, w, h = (int(v) for v in crop)
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise InputError(
                f"crop {tuple(crop)} (x, y, w, h) does not fit in the {width}x{height} frame; "
                "give a box inside it"
            )
        chain.append(f"crop={w}:{h}:{x}:{y}:exact=1")
        width, height = w, h
    if size is not None:
        width, height = (int(v) for v in size)
        if width < 1 or height < 1:
            raise InputError(f"size {tuple(size)} must be a positive (width, height)")
    # Always end at a fixed size: a stream that changes resolution cannot break the frame stride.
    flags = RESIZE_MODES[resize_mode] + "+accurate_rnd+full_chroma_int"
    chain += [f"scale={width}:{height}:flags={flags}", "format=rgb24"]
    return chain, width, height


def _fill(stream: IO[bytes], buffer: bytearray) -> int:
    """Read until ``buffer`` is full or the stream ends; return the bytes read."""
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def put_unless_halted(out: queue.Queue, item: object, halt: threading.Event) -> bool:
    """Put ``item`` into the bounded queue ``out``, waiting for room in 0.1 s slices; give up once
    ``halt`` is set (the consumer went away) and return False. True when ``item`` was put.

    The one producer-side put of vsode's streams (decoding, training prefetch, prepare's workers):
    a plain blocking ``put`` would hang forever on a full queue nobody reads any more.
    """
    while not halt.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _reader(
    stream: IO[bytes], frame_bytes: int, batch_size: int, out: queue.Queue, halt: threading.Event
) -> None:
    """Producer thread: batches of raw frames into ``out``, then ``_EOF`` or the exception.

    A stream ending inside a frame ends with ``_PARTIAL`` instead: ffmpeg died mid-frame.
    """

    try:
        while True:
            buffer = bytearray(frame_bytes * batch_size)
            got = _fill(stream, buffer)
            if got >= frame_bytes and not put_unless_halted(out, (buffer, got // frame_bytes), halt):
                return
            if got < len(buffer):
                put_unless_halted(out, _PARTIAL if got % frame_bytes else _EOF, halt)
                return
    except BaseException as exc:  # handed to the consumer, which re-raises it
        put_unless_halted(out, exc, halt)


def read_frames(
    path: str | os.PathLike,
    *,
    batch_size: int = 16,
    size: tuple[int, int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    resize_mode: str = "bilinear",
    dtype: str | torch.dtype = "uint8",
    device: str | torch.device | None = None,
    info: VideoInfo | None = None,
    progress: Progress | None = None,
) -> Iterator[FrameBatch]:
    """Decode a video (or still image) in batches, in display orientation.

    Arguments are checked, and the video probed, when this is called; decoding starts with the
    first ``next()``. Stopping early (``break``, ``close()``) kills ffmpeg.

    Args:
        path: the video.
        batch_size: frames per batch; the last batch may be shorter.
        size: ``(width, height)`` to resize to, after the crop.
        crop: ``(x, y, w, h)`` box in display pixels, applied before the resize.
        resize_mode: ``bilinear``, ``bicubic``, ``lanczos``, ``area`` or ``nearest``.
        dtype: ``"uint8"`` (0..255) or ``"float32"`` (0..1).
        device: where the tensors go; CPU by default.
        info: the result of :func:`probe` for ``path``, to skip probing again.
        progress: receives a ``decode`` stage whose total is the frame count.

    Yields:
        :class:`FrameBatch` of ``B×3×H×W`` frames with their indices and exact timestamps.

    Raises:
        InputError: bad input file or argument.
        FFmpegError: ffmpeg failed, or decoded a different number of frames than probed.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    elif dtype not in DTYPES.values():
        raise InputError(f"dtype {dtype} is not torch.uint8 or torch.float32")
    path = check_input_file(path)
    info = info if info is not None else probe(path)
    chain, width, height = _filters(info, crop, size, resize_mode)
    args = [
        *BASE_ARGS, "-v", "error", "-i", ffmpeg_path_arg(path), "-map", f"0:{info.stream_index}",
        "-vf", ",".join(chain), "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]  # fmt: skip
    device = torch.device(device) if device is not None else None
    return _decode(args, info, width, height, int(batch_size), dtype, device, progress)


def _decode(
    args: list[str],
    info: VideoInfo,
    width: int,
    height: int,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device | None,
    progress: Progress | None,
) -> Iterator[FrameBatch]:
    frame_bytes = width * height * 3
    proc = start(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = StderrDrain(proc.stderr)
    batches: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    halt = threading.Event()
    reader = threading.Thread(
        target=_reader,
        args=(proc.stdout, frame_bytes, batch_size, batches, halt),
        name="ffmpeg-decode",
        daemon=True,
    )
    reader.start()
    stage = ensure(progress).stage("decode", total=info.frame_count, unit="frame")
    done = 0
    try:
        while (item := batches.get()) not in (_EOF, _PARTIAL):
            if isinstance(item, BaseException):
                raise item
            buffer, n = item
            if done + n > info.frame_count:
                raise FFmpegError(
                    f"{info.path}: ffmpeg decoded more than the {info.frame_count} frames probed"
                )
            frames = torch.frombuffer(buffer, dtype=torch.uint8, count=n * frame_bytes)
            frames = frames.view(n, height, width, 3)
            if device is not None:
                frames = frames.to(device)
            frames = frames.permute(0, 3, 1, 2).contiguous()  # B 3 H W
            if dtype != torch.uint8:
                frames = frames.to(dtype).div_(255)
            batch = FrameBatch(
                frames, tuple(range(done, done + n)), info.timestamps[done : done + n]
            )
            done += n
            stage.advance(n)
            yield batch
        code = proc.wait()
        # A truncated file may make ffmpeg exit non-zero after the frames probe also found.
        if item is _PARTIAL or done != info.frame_count:
            raise FFmpegError(
                f"{info.path}: ffmpeg decoded {done} of {info.frame_count} frames "
                f"(exit {code}): {stderr.tail()}"
            )
    finally:
        halt.set()
        stop(proc)
        reader.join()
        proc.stdout.close()
        stage.close()


def read_all(path: str | os.PathLike, **options: object) -> FrameBatch:
    """All frames of a short video in one :class:`FrameBatch`; options as :func:`read_frames`."""
    batches = list(read_frames(path, **options))  # type: ignore[arg-type]
    return FrameBatch(
        torch.cat([b.frames for b in batches]),
        tuple(i for b in batches for i in b.indices),
        tuple(t for b in batches for t in b.timestamps),
    )
