"""The inputs of a training folder: video files or a demo dataset, their ids, captions and splits."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from .options import DEMO_DATASET_FORMAT, VIDEO_SUFFIXES

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 100


@dataclass
class _Source:
    """One input video (a file, or a video of a demo dataset) and what is known before decoding."""

    id: str
    name: str  # the file name, or the demo id
    path: Path  # the video file, or the demo frames folder
    caption: str | None
    split: str = "train"
    demo: dict[str, Any] | None = None  # the demo dataset's manifest entry


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
        return json.loads(settings.read_text()).get("format") == DEMO_DATASET_FORMAT
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
