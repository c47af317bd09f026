"""Videos → a training folder: frames at the training size, per-frame W+ latents, captions, splits.

The released code expects aligned frames and their inversions to exist already
(``img_root/<video>/<frame>.png`` and ``inversion_root/<video>/<frame>.pt``, design §8.2) and
never says how they were made. :func:`prepare_dataset` makes both from a folder of videos, keeping
each frame's exact timestamp, or from a demo dataset written by :func:`vsode.demo.dataset.write_dataset`::

    DATA_DIR/dataset.json                        {"format": "vsode/train-data@1", "config": {...}}
    DATA_DIR/frames/<id>/<k:05d>.png             frame k of the video, at manifest time times[k]
    DATA_DIR/frames/<id>/text_descriptions.txt   first line = caption (only when there is one)
    DATA_DIR/latents/<id>.pt                     vsode/latents@1 (vsode.invert.Latents): T×n×D W+
    DATA_DIR/done/<id>.json                      the video's manifest entry, written last
    DATA_DIR/manifest.json                       settings + every video's entry (written at the end)
    DATA_DIR/splits/train.txt, splits/val.txt    one video id per line

``dataset.json`` holds the settings that decide the files' contents (frame size, encoder and its
SHA-256, precision, split seed...). Running again into the same folder resumes: a video whose
``done`` record names the same source is skipped (its caption and split are refreshed), and any
other is (re)done. Other settings than those recorded are an error unless ``force``.

Without face alignment (a later stage) every frame is centre-cropped to the largest square and
resized (bilinear, antialiased) both to the training size for the PNGs and to the encoder's input
size for the inversion, exactly as ``vsode invert`` does; the inputs should already be aligned.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import queue
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints.cache import sha256_file
from ..demo.dataset import DATASET_FORMAT as DEMO_FORMAT
from ..errors import InputError, VsodeError
from ..fileio import atomic_write_bytes
from ..invert import (
    DEFAULT_ENCODER,
    PRECISIONS,
    InversionModels,
    InvertOptions,
    alignment_track,
    Latents,
    center_square,
    load_models,
)
from ..progress import Progress, ensure

PREPARED_FORMAT = "vsode/train-data@1"
DEFAULT_SIZE = 256
DEMO_ENCODER = "psp-demo"  # the demo world's own encoder, the default for demo datasets
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
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 100


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


@dataclass
class _Source:
    """One input video (a file, or a video of a demo dataset) and what is known before decoding."""

    id: str
    name: str  # the file name, or the demo id
    path: Path  # the video file, or the demo frames folder
    caption: str | None
    split: str = "train"
    demo: dict[str, Any] | None = None  # the demo dataset's manifest entry


# --- inputs ------------------------------------------------------------------------------------


def safe_id(stem: str) -> str:
    """A file stem made safe as a file and folder name: ``"my clip (1)"`` -> ``"my_clip_1"``."""
    text = _ID_UNSAFE.sub("_", stem).strip("._-")
    return text[:_MAX_ID] or "video"


def video_ids(names: list[str]) -> list[str]:
    """Unique, filesystem-safe ids for file names (in the order given): the stem, then ``_2``, ``_3``...
    on a clash, compared case-insensitively (for case-insensitive file systems)."""
    taken: set[str] = set()
    ids = []
    for name in names:
        base = safe_id(Path(name).stem)
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate.lower())
        ids.append(candidate)
    return ids


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return None


def read_captions(path: str | os.PathLike) -> dict[str, str]:
    """Read a captions file: CSV with a ``video,caption`` header, or JSON lines with the same keys.

    The format follows the suffix (``.csv``; ``.jsonl``/``.ndjson``), else the first character
    (``{`` = JSON lines). Returns ``{video: caption}``; a caption is reduced to its first line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"captions file {path} does not exist; check --captions")
    text = path.read_text(encoding="utf-8-sig")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{")
    )
    pairs: list[tuple[int, Any, Any]] = []
    if jsonl:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(
                    f"captions file {path} line {n} is not JSON ({err.msg}); fix that line"
                ) from err
            if not isinstance(row, dict):
                raise InputError(
                    f"captions file {path} line {n} is not a JSON object; "
                    'write {"video": .., "caption": ..}'
                )
            pairs.append((n, row.get("video"), row.get("caption")))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"video", "caption"} <= {f.strip() for f in reader.fieldnames}:
            raise InputError(
                f"captions file {path} has no 'video,caption' header (found {reader.fieldnames}); "
                "add that header line, or use JSON lines"
            )
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items()}
            pairs.append((reader.line_num, row.get("video"), row.get("caption")))
    captions: dict[str, str] = {}
    for n, video, caption in pairs:
        if not isinstance(video, str) or not video.strip() or not isinstance(caption, str):
            raise InputError(f"captions file {path} line {n} needs a video name and a caption text")
        video, caption = video.strip(), _first_line(caption)
        if caption is None:
            continue
        if captions.get(video, caption) != caption:
            raise InputError(f"captions file {path} gives video {video!r} two different captions; keep one")
        captions[video] = caption
    return captions


def _caption_beside(path: Path) -> str | None:
    """``<stem>.txt`` next to the video, else ``<stem>/text_descriptions.txt``: first line."""
    for candidate in (path.with_suffix(".txt"), path.parent / path.stem / "text_descriptions.txt"):
        if candidate.is_file():
            return _first_line(candidate.read_text(encoding="utf-8", errors="replace"))
    return None


def _is_demo(folder: Path) -> bool:
    settings = folder / "dataset.json"
    if not settings.is_file():
        return False
    try:
        return json.loads(settings.read_text()).get("format") == DEMO_FORMAT
    except (ValueError, AttributeError):
        return False


def _video_sources(folder: Path, seed: int, val_fraction: float) -> list[_Source]:
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES
    )
    if not files:
        raise InputError(
            f"no videos in {folder} (looked for {', '.join(sorted(VIDEO_SUFFIXES)[:8])}, ...); "
            "give the folder holding the video files"
        )
    ids = video_ids([p.name for p in files])
    sources = [_Source(i, p.name, p, _caption_beside(p)) for i, p in zip(ids, files)]
    val = _val_ids(ids, seed, val_fraction)
    for source in sources:
        source.split = "val" if source.id in val else "train"
    return sources


def _val_ids(ids: list[str], seed: int, val_fraction: float) -> set[str]:
    """``round(n·val_fraction)`` ids (at most n−1) from a seeded permutation of the sorted ids."""
    ordered = sorted(ids)
    n_val = min(int(round(len(ordered) * val_fraction)), len(ordered) - 1)
    order = np.random.default_rng([seed, 4]).permutation(len(ordered))
    return {ordered[i] for i in order[:n_val]}


def _demo_sources(folder: Path) -> tuple[list[_Source], dict[str, Any]]:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise InputError(
            f"demo dataset {folder} is unfinished (no manifest.json); run the command that wrote it again"
        )
    data = json.loads(manifest.read_text())
    sources = []
    for entry in sorted(data["videos"], key=lambda e: e["id"]):
        sources.append(_Source(
            entry["id"], entry["id"], folder / "frames" / entry["id"], entry.get("caption"),
            split=entry.get("split", "train"), demo=entry,
        ))
    if not sources:
        raise InputError(f"demo dataset {folder} holds no videos; write one with some videos")
    return sources, data["config"]


def _apply_captions(sources: list[_Source], captions: dict[str, str]) -> tuple[str, ...]:
    """Set captions from a captions file; returns the file's keys that matched no video."""
    used = set()
    for source in sources:
        for key in (source.name, Path(source.name).stem, source.id):
            if key in captions:
                source.caption = captions[key]
                used.add(key)
                break
    return tuple(sorted(set(captions) - used))


# --- settings ------------------------------------------------------------------------------------


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def _align_mode(options: PrepareOptions, encoder: str | None) -> str:
    """``off`` when no video will be aligned (demo-world encoders take frames as they are)."""
    from ..checkpoints.registry import REGISTRY

    if options.align == "auto" and encoder in REGISTRY and REGISTRY.get(encoder).alignment == "none":
        return "off"
    return options.align


def _settings(kind: str, size: int, models: InversionModels, precision: str, options: PrepareOptions,
              demo_config: dict[str, Any] | None) -> dict[str, Any]:
    encoder = {k: models.encoder_ref[k] for k in ("name", "sha256", "kind") if k in models.encoder_ref}
    config = {
        "input": kind,
        "size": size,
        "encoder": encoder,
        "encoder_input": models.encoder.input_size,
        "n_latent": models.encoder.n_styles,
        "style_dim": models.encoder.style_dim,
        "precision": precision,
        "crop": CROP_POLICY if _align_mode(options, models.encoder_ref.get("name")) == "off"
        else f"ffhq-align-{options.align}",
        "face_index": options.face_index,
        "resize": RESIZE_POLICY,
        "version": _PREPARE_VERSION,
        "val_fraction": None if demo_config is not None else options.val_fraction,
        "seed": None if demo_config is not None else options.seed,
        "demo": demo_config,
    }
    return {"format": PREPARED_FORMAT, "config": json.loads(json.dumps(config))}


def _check_output(root: Path) -> dict[str, Any] | None:
    """The settings of the prepared dataset in ``root``, or ``None`` for a new or empty folder;
    any other folder is an error (nothing of the user's is ever overwritten)."""
    if root.exists() and not root.is_dir():
        raise InputError(f"output {root} is a file; give a folder with -o")
    path = root / "dataset.json"
    if not path.exists():
        if root.exists() and any(root.iterdir()):
            raise InputError(
                f"output folder {root} is not empty and holds no prepared dataset; give a new folder with -o"
            )
        return None
    try:
        old = json.loads(path.read_text())
    except ValueError:
        old = None
    if not isinstance(old, dict) or old.get("format") != PREPARED_FORMAT:
        found = old.get("format") if isinstance(old, dict) else "unreadable"
        raise InputError(
            f"{root} holds something other than a prepared dataset ({path.name}: {found!r}); "
            "give a new folder with -o"
        )
    return old


def _check_settings(root: Path, settings: dict[str, Any], force: bool) -> None:
    """Accept ``root`` for these settings (writing ``dataset.json``), or raise naming the fix.

    Only a folder that is new, empty, or holds a prepared dataset is written to; with other
    settings, or with ``force``, its done records and manifest are dropped first so that none
    vouches for a video under the new settings.
    """
    old = _check_output(root)
    if old is not None and old != settings and not force:
        before, now = old.get("config", {}), settings["config"]
        diffs = [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in now if before.get(k) != now.get(k)]
        raise InputError(
            f"{root} was prepared with other settings ({'; '.join(diffs)}); rerun with the same "
            "options, give a new folder with -o, or pass --force to redo it"
        )
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("frames", "latents", "done", "splits"):
        (root / sub).mkdir(exist_ok=True)
    if old == settings and not force:
        return
    for record in (root / "done").glob("*.json"):
        record.unlink()
    (root / "manifest.json").unlink(missing_ok=True)
    atomic_write_bytes(root / "dataset.json", _json_bytes(settings))


# --- per-video work (worker threads) ---------------------------------------------------------------


@dataclass
class _Start:
    """The first item a worker hands over for a video that needs doing."""

    identity: dict[str, Any]
    fps: Fraction
    times: list[Fraction]
    size: tuple[int, int]
    crop: tuple[int, int, int, int]
    alignment: dict[str, Any] | None = None


@dataclass
class _Skip:
    record: dict[str, Any]


_END = object()


class _Halted(Exception):
    """The consumer went away; the worker stops quietly."""


def _put(out: queue.Queue, item: object, halt: threading.Event) -> None:
    while not halt.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
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
    from ..encoders import preprocess

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
    from ..video import probe, read_frames

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
    alignment = None if track is None else track.to_dict()
    _put(out, _Start(identity, info.fps, list(info.timestamps), (info.width, info.height), crop, alignment), halt)
    if track is None:
        frames = read_frames(source.path, batch_size=batch_size, crop=crop, info=info)
    else:
        from ..align import crop_video

        frames = crop_video(source.path, track, size=max(size, input_size), batch_size=batch_size, info=info)
    with contextlib.closing(frames):
        for batch in frames:  # B 3 side side uint8, the full-resolution square
            _write_pngs(folder, _resize(batch.frames, size), batch.indices[0])
            _put(out, _encoder_input(batch.frames, input_size), halt)


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


# --- the pipeline (calling thread) ----------------------------------------------------------------


def _take(out: queue.Queue, future: Future) -> object:
    while True:
        try:
            item = out.get(timeout=0.5)
        except queue.Empty:
            if future.done() and out.empty():
                future.result()
                raise RuntimeError("a prepare worker stopped without finishing its video")
            continue
        if isinstance(item, BaseException):
            raise item
        return item


def _entry(source: _Source, start: _Start) -> dict[str, Any]:
    entry: dict[str, Any] = dict(source.demo or {})
    entry.update({
        "id": source.id,
        "split": source.split,
        "fps": f"{start.fps.numerator}/{start.fps.denominator}",
        "times": [float(t) for t in start.times],
        "n_frames": len(start.times),
        "caption": source.caption,
        "source": start.identity,
        "frame_size": list(start.size),
        "crop": list(start.crop),
        "frames": f"frames/{source.id}",
        "latents": f"latents/{source.id}.pt",
    })
    return json.loads(json.dumps(entry))


def _write_caption(root: Path, video_id: str, caption: str | None) -> None:
    path = root / "frames" / video_id / "text_descriptions.txt"
    if caption is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, f"{caption}\n".encode())


def _bad_reason(err: BaseException) -> str:
    return " ".join(str(err).split())


def prepare_dataset(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    progress: Progress | None = None,
) -> PrepareResult:
    """Decode, crop, resize and invert every video of a folder into a training folder.

    Args:
        videos_dir: a folder of videos (top level only; suffixes in :data:`VIDEO_SUFFIXES`), each
            with an optional caption in ``<stem>.txt`` or ``<stem>/text_descriptions.txt``; or a
            demo dataset (``dataset.json`` format ``vsode/demo-dataset@1``), whose frames, times,
            captions and splits are reused.
        out_dir: the training folder (layout in this module's docstring); created if missing.
        options: :class:`PrepareOptions`; defaults if omitted.
        progress: receives ``load models`` and ``prepare`` (one advance per video) stages.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        InputError: no videos, a bad captions file, settings other than the folder's, or (without
            ``skip_bad``) a video that cannot be read.
        FFmpegError: ffmpeg failed on a video (without ``skip_bad``).
    """
    from ..device import resolve_device

    options = options or PrepareOptions()
    progress = ensure(progress)
    videos_dir, root = Path(videos_dir), Path(out_dir)
    if not videos_dir.is_dir():
        raise InputError(f"input folder {videos_dir} does not exist; give the folder of videos")
    if root.resolve() == videos_dir.resolve():
        raise InputError(f"output folder {root} is the input folder; give another folder with -o")
    _check_output(root)  # before the models are looked for; checked again with the settings

    demo_config = None
    if _is_demo(videos_dir):
        sources, demo_config = _demo_sources(videos_dir)
        kind = DEMO_FORMAT
    else:
        sources = _video_sources(videos_dir, options.seed, options.val_fraction)
        kind = "videos"
    unmatched: tuple[str, ...] = ()
    if options.captions is not None:
        unmatched = _apply_captions(sources, read_captions(options.captions))
        for key in unmatched:
            progress.log(f"captions file: {key!r} names no video in {videos_dir}")
    size = options.size or (int(demo_config["size"]) if demo_config else DEFAULT_SIZE)
    encoder = options.encoder or (DEMO_ENCODER if demo_config else DEFAULT_ENCODER)

    device = resolve_device(options.device)
    invert_options = InvertOptions(encoder=encoder, batch_size=options.batch_size, device=options.device,
                                   precision=options.precision, use_cache=False, cache_dir=options.cache_dir)
    with progress.stage("load models"):
        models = load_models(invert_options, device)
    fast = options.precision == "bf16" or (options.precision == "auto" and device.type == "cuda")
    settings = _settings(kind, size, models, "bf16" if fast else "fp32", options, demo_config)

    _check_settings(root, settings, options.force)

    entries: list[dict[str, Any]] = []
    prepared: list[str] = []
    skipped: list[str] = []
    bad: list[tuple[str, str]] = []
    input_size = models.encoder.input_size
    with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="vsode-prepare") as pool, \
            progress.stage("prepare", len(sources), unit="videos") as stage:
        # At most `jobs` videos decode at once, each at most _QUEUE_BATCHES batches ahead.
        waiting: deque[tuple[_Source, queue.Queue, Future, threading.Event]] = deque()
        todo = iter(sources)
        halts: list[threading.Event] = []

        def submit() -> None:
            source = next(todo, None)
            if source is not None:
                out: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES)
                halt = threading.Event()
                halts.append(halt)
                future = pool.submit(_produce, source, root, size, input_size, options.batch_size, out, halt,
                                     (_align_mode(options, encoder), options.face_index, str(device)))
                waiting.append((source, out, future, halt))

        try:
            for _ in range(options.jobs):
                submit()
            while waiting:
                source, out, future, halt = waiting.popleft()
                submit()
                try:
                    entry, fresh = _consume(source, out, future, root, models, fast, device)
                except VsodeError as err:
                    halt.set()  # the worker may still be decoding
                    if not options.skip_bad:
                        raise type(err)(f"{err}; pass --skip-bad to leave such videos out",
                                        exit_code=err.exit_code) from err
                    bad.append((source.name, _bad_reason(err)))
                    progress.log(f"left out {source.name}: {_bad_reason(err)}")
                else:
                    entries.append(entry)
                    (prepared if fresh else skipped).append(source.id)
                    done = "prepared" if fresh else "already done:"
                    progress.log(f"{done} {source.id} ({entry['n_frames']} frames)")
                stage.advance()
        finally:  # stop every worker (on success they have all ended already)
            for halt in halts:
                halt.set()
            for _, _, future, _ in waiting:
                future.cancel()

    if not entries:
        raise InputError(f"no video in {videos_dir} could be prepared (first problem: {bad[0][1]})")
    return _finish(root, settings, entries, prepared, skipped, bad, unmatched, models)


def _consume(source: _Source, out: queue.Queue, future: Future, root: Path, models: InversionModels,
             fast: bool, device: torch.device) -> tuple[dict[str, Any], bool]:
    """Invert what the worker hands over for one video and write its latents and records."""
    item = _take(out, future)
    if isinstance(item, _Skip):
        entry = dict(item.record)
        if (entry.get("caption"), entry.get("split")) != (source.caption, source.split):
            entry.update(caption=source.caption, split=source.split)
            _write_caption(root, source.id, source.caption)
            atomic_write_bytes(root / "done" / f"{source.id}.json", _json_bytes(entry))
        return entry, False
    assert isinstance(item, _Start)
    codes: list[torch.Tensor] = []
    while (images := _take(out, future)) is not _END:
        assert isinstance(images, torch.Tensor)
        w = models.encoder.encode(images.to(device), impl="fast" if fast else "reference")
        codes.append(w.float().cpu())  # B n D
    wplus = torch.cat(codes)
    if wplus.shape[0] != len(item.times):
        raise InputError(
            f"{source.name}: decoded {wplus.shape[0]} of {len(item.times)} frames; check the file"
        )
    latents = Latents(
        wplus=wplus,
        times=item.times,
        fps=item.fps,
        size=item.size,
        crop=item.crop,
        alignment=item.alignment,
        source={"path": str(source.path.resolve()), "sha256": item.identity["sha256"]},
        encoder=models.encoder_ref,
        generator=models.generator_ref,
    )
    latents.save(root / "latents" / f"{source.id}.pt", force=True)
    entry = _entry(source, item)
    _write_caption(root, source.id, source.caption)
    atomic_write_bytes(root / "done" / f"{source.id}.json", _json_bytes(entry))  # completion mark, last
    return entry, True


def _finish(root: Path, settings: dict[str, Any], entries: list[dict[str, Any]], prepared: list[str],
            skipped: list[str], bad: list[tuple[str, str]], unmatched: tuple[str, ...],
            models: InversionModels) -> PrepareResult:
    entries = sorted(entries, key=lambda e: e["id"])
    for split in ("train", "val"):
        ids = [e["id"] for e in entries if e["split"] == split]
        atomic_write_bytes(root / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    manifest = root / "manifest.json"
    atomic_write_bytes(manifest, _json_bytes({
        **settings,
        "generator": models.generator_ref,
        "videos": entries,
        "left_out": [{"input": name, "reason": reason} for name, reason in bad],
    }))
    return PrepareResult(
        root=root,
        manifest=manifest,
        prepared=tuple(prepared),
        skipped=tuple(skipped),
        bad=tuple(bad),
        n_train=sum(e["split"] == "train" for e in entries),
        n_val=sum(e["split"] == "val" for e in entries),
        n_frames=sum(int(e["n_frames"]) for e in entries),
        captions_unmatched=unmatched,
    )
