"""Per-video work on worker threads: decode (or read a demo video's frames), write the PNGs, and
queue the encoder's input batches for the calling thread."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...checkpoints.cache import sha256_file
from ...errors import InputError
from ...fileio import atomic_write_bytes
from ...align import Track, center_square, face_batches
from ...invert import InvertOptions, alignment_track
from ...video.decode import put_unless_halted
from .sources import _Source

@dataclass
class _Start:
    """The first item a worker hands over for a video that needs doing."""

    identity: dict[str, Any]
    fps: Fraction
    times: list[Fraction]
    size: tuple[int, int]
    crop: tuple[int, int, int, int]
    track: Track | None = None  # the face's alignment; None: the centre square ``crop``


@dataclass
class _Skip:
    record: dict[str, Any]


_END = object()


class _Halted(Exception):
    """The consumer went away; the worker stops quietly."""


def _put(out: queue.Queue, item: object, halt: threading.Event) -> None:
    if not put_unless_halted(out, item, halt):
        raise _Halted


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image  # a light import; torchvision's is seconds

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """B 3 h w uint8 -> B 3 size size uint8 (bilinear, antialiased: PIL's filter)."""
    if tuple(frames.shape[-2:]) == (size, size):
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _encoder_input(frames: torch.Tensor, size: int) -> torch.Tensor:
    from ...encoders import preprocess

    return preprocess(frames, size)


def _write_pngs(folder: Path, frames: torch.Tensor, start: int) -> None:
    pixels = frames.permute(0, 2, 3, 1).contiguous().numpy()  # B H W 3
    for k, frame in enumerate(pixels, start):
        atomic_write_bytes(folder / f"{k:05d}.png", _png(frame))


def _clear_frames(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    (folder / "text_descriptions.txt").unlink(missing_ok=True)


def _snap_time(t: float, fps: Fraction) -> Fraction:
    """A float time as an exact fraction: k/fps when it is that, else its shortest decimal."""
    on_grid = Fraction(round(Fraction(t) * fps)) / fps
    return on_grid if float(on_grid) == t else Fraction(repr(float(t)))


def _done_matches(done: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    if not done.is_file():
        return None
    try:
        record = json.loads(done.read_text())
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("source") == identity else None


def _produce(source: _Source, root: Path, size: int, input_size: int, batch_size: int,
             out: queue.Queue, halt: threading.Event, align: tuple[str, int, str] = ("off", 0, "cpu")) -> None:
    """Worker: hash the input, skip it if done, else decode it, write its PNGs and hand the encoder
    inputs over. Ends with ``_END``; an exception is handed over instead, for the consumer to raise."""
    try:
        if source.demo is None:
            _produce_video(source, root, size, input_size, batch_size, out, halt, align)
        else:
            _produce_demo(source, root, size, input_size, batch_size, out, halt)
        _put(out, _END, halt)
    except _Halted:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
        with contextlib.suppress(_Halted):
            _put(out, exc, halt)


def _produce_video(source: _Source, root: Path, size: int, input_size: int, batch_size: int,
                   out: queue.Queue, halt: threading.Event, align: tuple[str, int, str] = ("off", 0, "cpu")) -> None:
    from ...video import probe

    identity = {"file": source.name, "bytes": source.path.stat().st_size, "sha256": sha256_file(source.path)}
    record = _done_matches(root / "done" / f"{source.id}.json", identity)
    if record is not None:
        _put(out, _Skip(record), halt)
        return
    info = probe(source.path)
    if info.frame_count < 2:
        raise InputError(f"input {source.path} has {info.frame_count} frame; training needs at least 2")
    (root / "done" / f"{source.id}.json").unlink(missing_ok=True)
    folder = root / "frames" / source.id
    _clear_frames(folder)
    crop = center_square(info)
    track = _track(source.path, info, max(size, input_size), batch_size, align)
    _put(out, _Start(identity, info.fps, list(info.timestamps), (info.width, info.height), crop, track), halt)
    side = None if track is None else max(size, input_size)  # the centre square as decoded
    batches = face_batches(source.path, info, track, sizes=[side], batch_size=batch_size)
    with contextlib.closing(batches):
        for batch, (crops,) in batches:  # B 3 side side uint8, the full-resolution square
            _write_pngs(folder, _resize(crops, size), batch.indices[0])
            _put(out, _encoder_input(crops, input_size), halt)


def _track(path: Path, info: Any, size: int, batch_size: int, align: tuple[str, int, str]) -> Any:
    """The alignment track of one video (None: the centre square), exactly as vsode.invert finds it."""
    mode, face_index, device = align
    if mode == "off":
        return None
    options = InvertOptions(align=mode, face_index=face_index, batch_size=batch_size, device=device)
    return alignment_track(path, info, options, size=size)


def _produce_demo(source: _Source, root: Path, size: int, input_size: int, batch_size: int,
                  out: queue.Queue, halt: threading.Event) -> None:
    from PIL import Image

    entry = source.demo
    assert entry is not None
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
    identity = {"demo": source.id, "sha256": digest}
    record = _done_matches(root / "done" / f"{source.id}.json", identity)
    if record is not None:
        _put(out, _Skip(record), halt)
        return
    fps = Fraction(entry["fps"])
    times = [_snap_time(t, fps) for t in entry["times"]]
    files = [source.path / f"{k:05d}.png" for k in range(len(times))]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(f"demo dataset frame {missing[0]} is missing; run the command that wrote it again")
    if len(times) < 2:
        raise InputError(f"demo video {source.id} has {len(times)} frame; training needs at least 2")
    (root / "done" / f"{source.id}.json").unlink(missing_ok=True)
    folder = root / "frames" / source.id
    _clear_frames(folder)
    with Image.open(files[0]) as first:
        side = first.size
    _put(out, _Start(identity, fps, times, side, (0, 0, side[0], side[1])), halt)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        pixels = np.stack([_read_png(f) for f in chunk])  # B H W 3
        frames = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        if tuple(frames.shape[-2:]) == (size, size):  # the same pixels: copy the files
            for k, f in enumerate(chunk, start):
                atomic_write_bytes(folder / f"{k:05d}.png", f.read_bytes())
        else:
            _write_pngs(folder, _resize(frames, size), start)
        _put(out, _encoder_input(frames, input_size), halt)
