"""Reading a prepared training folder, and the batch-consistent ("bins") sampling of frame times.

Counterpart of the released ``src/data/dataset.py`` (design §8): the released ``VideoDataset``
reads aligned frames and their per-frame inversions and groups videos into *bins* of
``batch_size`` whose items all draw the same frame numbers. The differences here:

- frame numbers come from real timestamps, ``round((t − t_first)·nominal_fps)`` (§15.12),
  instead of being parsed from file names;
- the bins are deterministic: epoch ``e`` permutes the *sorted* video ids with
  ``np.random.default_rng([seed, e])`` (the released list order came from a ``set``, §15.13) and
  each bin draws its frames from its own generator seeded by (seed, epoch, bin);
- several processes (DDP) take whole bins, rank ``r`` the bins ``r, r + world_size, ...``
  (§15.6), each rank the same number;
- batch size 1 works, and a bin whose videos share fewer than 2 frame numbers is skipped and
  counted rather than crashing (§15.7);
- captions are read (§15.1): ``Batch.captions`` holds each video's caption or ``None``, and
  :meth:`Batch.texts` fills the gaps with :data:`vsode.options.DEFAULT_SOURCE`, "a photo of a person".
"""

from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch

from ..errors import InputError
from ..options import DEFAULT_SOURCE  # a video without a caption is described as this
from ..video.decode import put_unless_halted
from .prepare import PREPARED_FORMAT

SPLITS = ("train", "val", "all")
PREFETCH_BATCHES = 2

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class VideoRecord:
    """One prepared video as the manifest lists it.

    Attributes:
        id: the video id (folder and file name in the training folder).
        split: ``train`` or ``val``.
        times: each frame's time in seconds (float64, first frame at 0 for decoded videos).
        fps: the source's exact frame rate (the mean rate for variable frame rate).
        caption: the first line of its description, or ``None``.
        n_frames: frames prepared (= ``len(times)``).
    """

    id: str
    split: str
    times: np.ndarray
    fps: Fraction
    caption: str | None
    n_frames: int


Rate = Fraction | float | int | str


def frame_numbers(times: Sequence[float] | np.ndarray, nominal_fps: Rate) -> np.ndarray:
    """Integer frame numbers from timestamps: ``round((t − t_first)·nominal_fps)`` as int64.

    The released code parses frame numbers from file names; deriving them from real times at a
    nominal rate keeps its time unit (τ = frame number / video_length) for any source frame rate.
    """
    rate = _rate(nominal_fps)
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.rint((t - t[0]) * float(rate)).astype(np.int64)


def _rate(value: Rate) -> Fraction:
    try:
        rate = Fraction(value) if not isinstance(value, float) else Fraction(value).limit_denominator(1001)
    except (ValueError, ZeroDivisionError) as err:
        raise InputError(
            f"nominal fps {value!r} is not a number or num/den; use e.g. 25 or 30000/1001"
        ) from err
    if rate <= 0:
        raise InputError(f"nominal fps {value} must be positive")
    return rate


class TrainData:
    """A training folder written by :func:`vsode.train.prepare.prepare_dataset`, one split of it.

    Counterpart of the file handling of the released ``VideoDataset`` (``src/data/dataset.py``):
    frames from ``frames/<id>/<k>.png``, W+ from ``latents/<id>.pt`` (read memory-mapped, so
    loading a few frames of a long video reads only those rows), the caption from the manifest.

    Args:
        root: the training folder.
        split: ``train``, ``val`` or ``all``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise InputError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        self.split = split
        settings = _read_json(self.root / "dataset.json", self.root)
        if settings.get("format") != PREPARED_FORMAT:
            hint = "run `vsode prepare` on it first" if "demo" in str(settings.get("format")) else (
                "make one with `vsode prepare VIDEOS -o DIR`")
            raise InputError(
                f"{self.root} is not a prepared training folder (format {settings.get('format')!r}, "
                f"expected {PREPARED_FORMAT}); {hint}"
            )
        manifest = _read_json(self.root / "manifest.json", self.root)
        if manifest.get("config") != settings.get("config"):
            raise InputError(
                f"{self.root}/manifest.json does not match its dataset.json (an unfinished run); "
                "run `vsode prepare` again with the same options to finish it"
            )
        self.config: dict[str, Any] = settings["config"]
        self.size = int(self.config["size"])
        videos = []
        try:
            for entry in manifest["videos"]:
                if split != "all" and entry["split"] != split:
                    continue
                times = np.asarray(entry["times"], dtype=np.float64)
                times.setflags(write=False)
                videos.append(VideoRecord(
                    id=str(entry["id"]), split=str(entry["split"]), times=times,
                    fps=Fraction(entry["fps"]), caption=entry.get("caption"), n_frames=int(entry["n_frames"]),
                ))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise InputError(
                f"{self.root}/manifest.json is damaged ({err!r}); run `vsode prepare` again"
            ) from err
        self.videos: tuple[VideoRecord, ...] = tuple(sorted(videos, key=lambda v: v.id))
        self._by_id = {v.id: v for v in self.videos}
        for video in self.videos:
            if len(video.times) != video.n_frames or not (self.root / "latents" / f"{video.id}.pt").is_file():
                raise InputError(
                    f"{self.root}: video {video.id} is incomplete (latents or times missing); "
                    "run `vsode prepare` again with the same options"
                )

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def ids(self) -> list[str]:
        return [v.id for v in self.videos]

    def video(self, video_id: str) -> VideoRecord:
        try:
            return self._by_id[video_id]
        except KeyError:
            raise InputError(f"{self.root} has no video {video_id!r} in split {self.split}") from None

    def common_fps(self) -> Fraction:
        """The most frequent source frame rate (ties: the lowest); a natural nominal fps."""
        rates = [v.fps for v in self.videos]
        return max(sorted(set(rates)), key=rates.count)

    def frame_numbers(self, video: VideoRecord | str, nominal_fps: Rate) -> np.ndarray:
        """The video's integer frame numbers at ``nominal_fps`` (see :func:`frame_numbers`)."""
        record = video if isinstance(video, VideoRecord) else self.video(video)
        return frame_numbers(record.times, nominal_fps)

    def load(self, video_id: str, indices: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames and W+ of the frames at ``indices`` (positions in the video's ``times``).

        Returns:
            frames: T×3×H×W float32 in [0, 1]; w: T×n_latent×D float32.
        """
        from PIL import Image

        record = self.video(video_id)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= record.n_frames):
            raise InputError(
                f"frame indices {idx.tolist()} out of range for {video_id} ({record.n_frames} frames)"
            )
        folder = self.root / "frames" / video_id
        pixels = []
        for k in idx.tolist():
            path = folder / f"{k:05d}.png"
            try:
                with Image.open(path) as image:
                    pixels.append(np.asarray(image.convert("RGB")))
            except (FileNotFoundError, OSError) as err:
                raise InputError(f"frame {path} is missing or damaged; run `vsode prepare` again") from err
        frames = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div_(255)  # T 3 H W
        w = self._latents(video_id, record)[torch.from_numpy(idx)].clone()  # T n D
        return frames.contiguous(), w

    def _latents(self, video_id: str, record: VideoRecord) -> torch.Tensor:
        from ..invert import LATENTS_FORMAT

        path = self.root / "latents" / f"{video_id}.pt"
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise InputError(
                f"latents {path} are missing or damaged ({err}); run `vsode prepare` again"
            ) from err
        wplus = ckpt.get("wplus") if isinstance(ckpt, dict) else None
        if not isinstance(ckpt, dict) or ckpt.get("format") != LATENTS_FORMAT or wplus is None \
                or wplus.ndim != 3 or wplus.shape[0] != record.n_frames:
            raise InputError(f"latents {path} do not match the manifest; run `vsode prepare` again")
        return wplus


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(
            f"{root} has no {path.name}; give a folder made by `vsode prepare` (an interrupted run "
            "finishes when run again)"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path} is damaged ({err}); run `vsode prepare` again") from err
    if not isinstance(data, dict):
        raise InputError(f"{path} is damaged; run `vsode prepare` again")
    return data


@dataclass
class Batch:
    """B videos with the same T frame numbers (one bin).

    Attributes:
        frames: B×T×3×H×W float32 in [0, 1].
        w: B×T×n_latent×D float32, the per-frame inversions.
        frame_numbers: (T,) int64, shared by every video, increasing; τ = frame_numbers /
            video_length, shifted to start at 0, is the released time grid (§8.4).
        captions: each video's caption, ``None`` where it has none.
        ids: the video ids.
        indices: B×T int64, the frames' positions in each video's ``times``.
    """

    frames: torch.Tensor
    w: torch.Tensor
    frame_numbers: torch.Tensor
    captions: list[str | None]
    ids: list[str]
    indices: torch.Tensor

    def texts(self, fallback: str = DEFAULT_SOURCE) -> list[str]:
        """The source descriptions: each caption, or ``fallback`` where there is none."""
        return [c if c else fallback for c in self.captions]


@dataclass(frozen=True)
class _Bin:
    index: int  # in the epoch's list of bins, before sharding
    videos: tuple[int, ...]  # positions in data.videos
    numbers: np.ndarray  # the sampled frame numbers, shared by the bin's videos


class BinSampler:
    """Batches of videos that share their sampled frame numbers; deterministic and resumable.

    Counterpart of the released bins (``VideoDataset.reset`` / ``__getitem__`` with
    ``irregular_sampling``, design §8.3). For epoch ``e`` the sorted videos are permuted with
    ``np.random.default_rng([seed, e])`` and cut into bins of ``batch_size`` consecutive videos
    (the remainder is dropped). A bin's candidate frames are the intersection of its videos'
    frame numbers (:func:`frame_numbers`; where two frames of a video round to one number the
    first is used). With ``irregular`` it samples the first shared number plus ``n_frames − 1``
    distinct others, uniformly without replacement, sorted; otherwise a random window of
    ``n_frames`` consecutive shared numbers. A bin sharing fewer numbers than ``n_frames`` uses
    all of them; one sharing fewer than 2 is skipped (:meth:`skipped` counts them).

    Rank ``r`` of ``world_size`` takes whole bins ``r, r + world_size, ...`` of the kept ones,
    which are first cut to a multiple of ``world_size`` so every rank runs as many steps.

    Use :meth:`set_epoch` + iteration for one epoch, or :meth:`batches` for an endless stream
    that resumes exactly from ``(epoch, position)``.
    """

    def __init__(
        self,
        data: TrainData,
        *,
        batch_size: int,
        n_frames: int,
        nominal_fps: Rate,
        seed: int = 0,
        irregular: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        if n_frames < 2:
            raise InputError(f"n_frames {n_frames} must be at least 2 (the dynamics need two times)")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputError(
                f"rank {rank} of world size {world_size} is impossible; need 0 <= rank < world_size"
            )
        if seed < 0:
            raise InputError(f"seed {seed} must be a non-negative integer")
        if len(data) < batch_size * world_size:
            raise InputError(
                f"{len(data)} {data.split} videos cannot fill {world_size} rank(s) × a batch of "
                f"{batch_size}; lower the batch size or add videos"
            )
        self.data = data
        self.batch_size = batch_size
        self.n_frames = n_frames
        self.nominal_fps = _rate(nominal_fps)
        self.seed = seed
        self.irregular = irregular
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        # Per video: its distinct frame numbers (sorted) and the first frame index of each.
        self._numbers: list[np.ndarray] = []
        self._first: list[np.ndarray] = []
        for video in data.videos:
            numbers, first = np.unique(frame_numbers(video.times, self.nominal_fps), return_index=True)
            self._numbers.append(numbers)
            self._first.append(first.astype(np.int64))
        self._position = {v.id: i for i, v in enumerate(data.videos)}
        self._plans: dict[int, tuple[list[_Bin], int]] = {}

    # --- the plan of an epoch -------------------------------------------------------------------

    def _plan(self, epoch: int) -> tuple[list[_Bin], int]:
        """(all kept bins of the epoch, for every rank; number skipped)."""
        plans = self._plans  # replaced, never mutated: safe to read from the prefetch thread
        if epoch in plans:
            return plans[epoch]
        if epoch < 0:
            raise InputError(f"epoch {epoch} must be 0 or more")
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.data))
        kept, skipped = [], 0
        for b in range(len(order) // self.batch_size):
            members = tuple(int(i) for i in order[b * self.batch_size : (b + 1) * self.batch_size])
            shared = self._numbers[members[0]]
            for i in members[1:]:
                shared = np.intersect1d(shared, self._numbers[i], assume_unique=True)
            if len(shared) < 2:
                skipped += 1
                continue
            rng = np.random.default_rng([self.seed, epoch, 1, b])
            kept.append(_Bin(b, members, self._sample(shared, rng)))
        kept = kept[: len(kept) - len(kept) % self.world_size]  # the same count on every rank
        self._plans = {e: plans[e] for e in plans if e == epoch - 1} | {epoch: (kept, skipped)}
        return kept, skipped

    def _sample(self, shared: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = min(self.n_frames, len(shared))
        if self.irregular:
            others = rng.choice(len(shared) - 1, size=n - 1, replace=False) + 1
            return np.concatenate([shared[:1], shared[np.sort(others)]])
        start = int(rng.integers(0, len(shared) - n + 1))
        return shared[start : start + n]

    def bins(self, epoch: int) -> list[tuple[int, tuple[str, ...], np.ndarray]]:
        """This rank's bins of ``epoch``, in order: (bin index, video ids, frame numbers)."""
        kept, _ = self._plan(epoch)
        return [(b.index, tuple(self.data.videos[i].id for i in b.videos), b.numbers.copy())
                for b in kept[self.rank :: self.world_size]]

    def skipped(self, epoch: int) -> int:
        """Bins of ``epoch`` left out because their videos share fewer than 2 frame numbers."""
        return self._plan(epoch)[1]

    def epoch_length(self, epoch: int) -> int:
        """Batches this rank yields in ``epoch`` (the same on every rank)."""
        return len(self._plan(epoch)[0]) // self.world_size

    # --- batches ----------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """The epoch that iteration and ``len`` refer to."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_length(self.epoch)

    def __iter__(self) -> Iterator[Batch]:
        for _, _, batch in self._stream(self.epoch, 0, one_epoch=True):
            yield batch

    def load(self, video_ids: Sequence[str], numbers: np.ndarray) -> Batch:
        """The batch of these videos at these (shared) frame numbers."""
        frames, ws, indices = [], [], []
        for video_id in video_ids:
            i = self._position.get(video_id)
            if i is None:
                raise InputError(f"{self.data.root} has no video {video_id!r} in split {self.data.split}")
            pos = np.minimum(np.searchsorted(self._numbers[i], numbers), len(self._numbers[i]) - 1)
            if not np.array_equal(self._numbers[i][pos], numbers):
                raise InputError(f"video {video_id} has no frames at some of the numbers {list(numbers)}")
            idx = self._first[i][pos]
            f, w = self.data.load(video_id, idx)
            frames.append(f)
            ws.append(w)
            indices.append(torch.from_numpy(idx))
        return Batch(
            frames=torch.stack(frames),  # B T 3 H W
            w=torch.stack(ws),  # B T n D
            frame_numbers=torch.from_numpy(np.asarray(numbers, dtype=np.int64).copy()),
            captions=[self.data.video(v).caption for v in video_ids],
            ids=list(video_ids),
            indices=torch.stack(indices),
        )

    def _stream(
        self, epoch: int, position: int, *, one_epoch: bool = False
    ) -> Iterator[tuple[int, int, Batch]]:
        if position < 0:
            raise InputError(f"position {position} must be 0 or more")
        while True:
            mine = self.bins(epoch)
            if not mine:
                raise InputError(
                    f"epoch {epoch} has no bin whose videos share 2 frame numbers at {self.nominal_fps} fps; "
                    "lower the batch size or raise the nominal fps"
                )
            if position > len(mine):
                raise InputError(
                    f"position {position} is past the {len(mine)} batches of epoch {epoch}; "
                    "the data or sampler settings changed since this state was saved"
                )
            for p in range(position, len(mine)):
                _, ids, numbers = mine[p]
                yield epoch, p, self.load(ids, numbers)
            if one_epoch:
                return
            epoch, position = epoch + 1, 0

    def batches(
        self, start_epoch: int = 0, start_position: int = 0, *, prefetch: int = PREFETCH_BATCHES
    ) -> Iterator[tuple[int, int, Batch]]:
        """Endless ``(epoch, position, batch)`` from ``(start_epoch, start_position)`` on.

        ``position`` counts this rank's batches within the epoch. After training on the batch
        yielded with ``(e, p)``, the state to save is ``(e, p + 1)``; ``batches(e, p + 1)`` then
        yields exactly what the uninterrupted stream would have (``p + 1`` may equal the epoch's
        length: the next epoch follows). With ``prefetch`` > 0 a background thread loads that
        many batches ahead; its errors are raised here.
        """
        stream = self._stream(int(start_epoch), int(start_position))
        return prefetched(stream, prefetch) if prefetch > 0 else stream


_ITEM, _END, _ERROR = 0, 1, 2


def prefetched(items: Iterator[T], depth: int = PREFETCH_BATCHES) -> Iterator[T]:
    """Run ``items`` in a background thread, at most ``depth`` items ahead (STYLE habit 14).

    An exception raised by ``items`` is raised by this iterator. Closing this iterator (or
    dropping it) stops the thread after the item it is working on.
    """
    if depth < 1:
        raise InputError(f"prefetch depth {depth} must be at least 1")
    out: queue.Queue = queue.Queue(maxsize=depth)
    halt = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if not put_unless_halted(out, (_ITEM, item), halt):
                    return
            put_unless_halted(out, (_END, None), halt)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            put_unless_halted(out, (_ERROR, exc), halt)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        worker = threading.Thread(target=work, name="vsode-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = out.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise item
                yield item
        finally:
            halt.set()
            worker.join()

    return consume()
