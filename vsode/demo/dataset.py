"""Writing demo-world datasets in the layout :mod:`vsode.train.prepare` reads (its
:data:`~vsode.train.prepare.DEMO_DATASET_FORMAT`).

::

    out_dir/dataset.json                        the settings (checked when resuming)
    out_dir/frames/<video>/<frame:05d>.png      frame k is at manifest time times[k]
    out_dir/frames/<video>/text_descriptions.txt  first line = caption; second = caption with skin
    out_dir/done/<video>.json                   the video's manifest entry, written last
    out_dir/manifest.json                       every video's id, fps, times, caption, attributes, params
    out_dir/splits/train.txt, splits/val.txt    one video id per line

Every file is written atomically. A video whose ``done`` record exists and matches is skipped, so
an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import io
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..fileio import atomic_write_bytes
from ..progress import Progress, ensure
from ..train.prepare.options import DEMO_DATASET_FORMAT
from .world import VideoParams, caption, render_times, sample_params

_CHUNK = 32  # frames rendered at once


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The settings of a demo dataset; validated here, stored as ``dataset.json``."""

    n_videos: int
    n_frames: int
    fps: str  # exact "num/den"
    size: int
    seed: int
    val_fraction: float
    irregular: bool

    def __post_init__(self) -> None:
        if self.n_videos < 1 or self.n_frames < 1:
            raise InputError("a demo dataset needs at least one video of at least one frame")
        if Fraction(self.fps) <= 0:
            raise InputError(f"fps {self.fps} must be positive")
        if self.size < 16:
            raise InputError(f"frame size {self.size} is too small; use 64 or 128")
        if self.seed < 0:
            raise InputError(f"seed {self.seed} must be a non-negative integer")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction {self.val_fraction} must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class DatasetResult:
    """What :func:`write_dataset` did."""

    root: Path
    manifest: Path
    written: tuple[str, ...]  # video ids rendered by this call
    skipped: tuple[str, ...]  # video ids already complete


def fps_text(fps: int | float | str | Fraction) -> str:
    """``25`` -> ``"25/1"``, ``"30000/1001"`` -> itself, ``29.97`` -> ``"2997/100"``."""
    try:
        value = Fraction(fps).limit_denominator(1001) if isinstance(fps, float) else Fraction(fps)
    except (ValueError, ZeroDivisionError) as exc:
        raise InputError(f"fps {fps!r} is not a number or num/den; use e.g. 25 or 30000/1001") from exc
    return f"{value.numerator}/{value.denominator}"


def video_id(index: int) -> str:
    """The id of video ``index`` in a demo dataset."""
    return f"demo_{index:05d}"


def frame_times(spec: DatasetSpec, index: int) -> list[float]:
    """Frame times (seconds) of video ``index``: k/fps, or sorted uniform draws over the same
    duration starting at 0 when ``spec.irregular``."""
    fps = Fraction(spec.fps)
    if not spec.irregular:
        return [float(k / fps) for k in range(spec.n_frames)]
    rng = np.random.default_rng([spec.seed, index, 2])
    rest = np.sort(rng.uniform(0.0, float(spec.n_frames / fps), spec.n_frames - 1))
    return [0.0] + [float(t) for t in rest]


def _video_entry(spec: DatasetSpec, index: int, split: str) -> dict[str, Any]:
    seed = int(np.random.SeedSequence([spec.seed, index]).generate_state(1)[0])
    params = sample_params(seed)
    entry = {
        "id": video_id(index),
        "split": split,
        "fps": spec.fps,
        "times": frame_times(spec, index),
        "caption": caption(params),
        "captions": [caption(params), caption(params, skin=True)],
        "attributes": params.attributes,
        "params": params.to_dict(),
    }
    return json.loads(json.dumps(entry))  # as it reads back from disk (lists, not tuples)


def _splits(spec: DatasetSpec) -> dict[str, str]:
    order = np.random.default_rng([spec.seed, 3]).permutation(spec.n_videos)
    n_val = int(round(spec.n_videos * spec.val_fraction))
    val = set(order[:n_val].tolist())
    return {video_id(i): ("val" if i in val else "train") for i in range(spec.n_videos)}


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image  # a light import; torchvision's is seconds

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def write_dataset(
    out_dir: str | Path,
    *,
    n_videos: int,
    n_frames: int,
    fps: int | float | str | Fraction = 25,
    size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.2,
    irregular: bool = False,
    progress: Progress | None = None,
) -> DatasetResult:
    """Render a demo-world dataset into ``out_dir`` (layout in this module's docstring).

    Args:
        out_dir: created if missing. If it holds a dataset with other settings, that is an error.
        n_videos, n_frames: how many videos, and frames per video.
        fps: frame rate, exact as ``"num/den"`` or a number.
        size: frame side in pixels.
        seed: everything (appearance, motion, times, splits) follows from it.
        val_fraction: share of videos in ``splits/val.txt``.
        irregular: sample frame times uniformly at random instead of every 1/fps seconds.
        progress: receives one advance per video.

    Returns:
        A :class:`DatasetResult` naming the videos written and skipped.
    """
    spec = DatasetSpec(
        n_videos=int(n_videos), n_frames=int(n_frames), fps=fps_text(fps), size=int(size),
        seed=int(seed), val_fraction=float(val_fraction), irregular=bool(irregular),
    )
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"format": DEMO_DATASET_FORMAT, "config": dataclasses.asdict(spec)}
    settings_path = root / "dataset.json"
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        if old != settings:
            raise InputError(
                f"{root} holds a demo dataset written with other settings ({old.get('config')}); "
                "write to a new folder or delete it"
            )
    else:
        atomic_write_bytes(settings_path, _json_bytes(settings))
    (root / "done").mkdir(exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)

    splits = _splits(spec)
    entries, written, skipped = [], [], []
    with ensure(progress).stage("demo dataset", spec.n_videos, unit="videos") as stage:
        for index in range(spec.n_videos):
            entry = _video_entry(spec, index, splits[video_id(index)])
            done = root / "done" / f"{entry['id']}.json"
            if done.exists() and json.loads(done.read_text()) == entry:
                skipped.append(entry["id"])
            else:
                _write_video(root / "frames" / entry["id"], entry, spec.size)
                atomic_write_bytes(done, _json_bytes(entry))  # completion mark, written last
                written.append(entry["id"])
            entries.append(entry)
            stage.advance()

    for split in ("train", "val"):
        ids = [e["id"] for e in entries if e["split"] == split]
        atomic_write_bytes(root / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    manifest = root / "manifest.json"
    atomic_write_bytes(manifest, _json_bytes({**settings, "videos": entries}))
    return DatasetResult(root, manifest, tuple(written), tuple(skipped))


def _write_video(folder: Path, entry: dict[str, Any], size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = VideoParams.from_dict(entry["params"])
    times = entry["times"]
    for start in range(0, len(times), _CHUNK):
        frames = render_times(params, times[start : start + _CHUNK], size=size)  # T 3 H W
        pixels = (frames * 255).round().byte().permute(0, 2, 3, 1).numpy()  # T H W 3
        for k, frame in enumerate(pixels, start):
            atomic_write_bytes(folder / f"{k:05d}.png", _png(frame))
    descriptions = "".join(f"{text}\n" for text in entry["captions"])
    atomic_write_bytes(folder / "text_descriptions.txt", descriptions.encode())
