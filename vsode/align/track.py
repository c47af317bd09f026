"""The alignment track: one face picked per frame, its FFHQ quads smoothed over time, as JSON.

The first pass (:func:`track_video`) decodes frames scaled down for detection and keeps only the
picked face's landmarks; frames without a face are filled from their neighbours (interpolated,
held at the ends) and listed. The quad's centre and its scale/rotation vector are smoothed by
separate Gaussians (STIT's sigmas: 1 and 3 frames). A :class:`Track` saves to ``vsode/track@1``
JSON whose floats round-trip exactly, so a rerun from a saved track crops identically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..fileio import atomic_write_bytes
from ..progress import Progress, ensure
from ..video import VideoInfo, probe, read_frames
from .geometry import quad_from_params, quad_params
from .landmarks import FaceLandmarks, Landmarker, MTCNNLandmarker
from .options import AlignOptions

TRACK_FORMAT = "vsode/track@1"
# A face is followed from frame to frame when its box overlaps the last one by this much (IoU).
FOLLOW_IOU = 0.2
# After this many frames without the followed face, the size ranking picks a face again.
RELOCK_FRAMES = 15


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 (``T×D``), mirrored at the ends, truncated at 4 sigma.

    The same filter as ``scipy.ndimage.gaussian_filter1d(values, sigma, axis=0)`` (mode
    ``reflect``); ``sigma`` 0 returns a copy.
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(4 * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="symmetric")
    out = np.zeros_like(values)
    for k, weight in enumerate(kernel):
        out += weight * padded[k : k + len(values)]
    return out


def fill_missing(values: np.ndarray) -> np.ndarray:
    """Rows that are NaN (``T×D``) interpolated linearly from their neighbours, held at the ends."""
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values).any(axis=1)
    if not known.any():
        raise ValueError("no known rows to fill from")
    t = np.arange(len(values))
    return np.stack([np.interp(t, t[known], values[known, d]) for d in range(values.shape[1])], axis=1)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FacePicker:
    """Chooses one face per frame, in frame order.

    The first pick is the ``face_index``-th largest face. After that the face overlapping the last
    pick most (IoU ≥ :data:`FOLLOW_IOU`) is followed, so faces do not swap when their sizes cross;
    a frame where it is not found counts as face-less, until :data:`RELOCK_FRAMES` such frames
    in a row let the size ranking pick again.
    """

    def __init__(self, face_index: int = 0) -> None:
        self.face_index = face_index
        self._last: FaceLandmarks | None = None
        self._lost = 0

    def __call__(self, faces: Sequence[FaceLandmarks]) -> FaceLandmarks | None:
        ranked = sorted(faces, key=lambda f: -f.area)
        pick = None
        if self._last is not None and ranked:
            best = max(ranked, key=lambda f: _iou(f.box, self._last.box))  # type: ignore[union-attr]
            if _iou(best.box, self._last.box) >= FOLLOW_IOU:
                pick = best
        if pick is None and (self._last is None or self._lost >= RELOCK_FRAMES):
            pick = ranked[self.face_index] if len(ranked) > self.face_index else None
        if pick is None:
            self._lost += 1
        else:
            self._last, self._lost = pick, 0
        return pick


@dataclass(frozen=True, eq=False)
class Track:
    """Per-frame FFHQ quads of one face through a video, and the raw landmarks they came from.

    Attributes:
        frame_size: ``(width, height)`` of the display frames the quads are in.
        landmarks: per frame, the picked face's four points (``4×2``) or ``None`` (no face).
        quads: ``T×4×2`` smoothed quads, every frame filled.
        sigma_center, sigma_scale: the Gaussian sigmas (frames) used on the quad's centre and on
            its scale/rotation vector.
        face_index: which face was picked (0 = largest).
        scores: the picked face's detector score per frame (``None`` where none).
        faces: how many faces the detector found per frame.
        detector: the landmarker's ``describe()`` and the detection frame size.
    """

    frame_size: tuple[int, int]
    landmarks: tuple[np.ndarray | None, ...]
    quads: np.ndarray
    sigma_center: float = 1.0
    sigma_scale: float = 3.0
    face_index: int = 0
    scores: tuple[float | None, ...] = ()
    faces: tuple[int, ...] = ()
    detector: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quads.shape != (len(self.landmarks), 4, 2):
            raise InputError(
                f"track holds {tuple(self.quads.shape)} quads for {len(self.landmarks)} frames; "
                "the track file is inconsistent, align the video again"
            )

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def frame_count(self) -> int:
        return len(self.landmarks)

    @property
    def missing(self) -> list[int]:
        """Indices of frames where no face was found (their quads are interpolated or held)."""
        return [i for i, lm in enumerate(self.landmarks) if lm is None]

    @classmethod
    def from_landmarks(
        cls,
        landmarks: Sequence[np.ndarray | Sequence[Sequence[float]] | None],
        frame_size: tuple[int, int],
        *,
        sigma_center: float = 1.0,
        sigma_scale: float = 3.0,
        **fields: Any,
    ) -> "Track":
        """Build the smoothed track from per-frame landmarks (``4×2`` or ``None``).

        Raises:
            InputError: no frame has a face, or a sigma is negative.
        """
        if sigma_center < 0 or sigma_scale < 0:
            raise InputError(
                f"--sigma-center {sigma_center} and --sigma-scale {sigma_scale} must be >= 0 frames"
            )
        lms = tuple(None if lm is None else np.asarray(lm, dtype=np.float64).reshape(4, 2) for lm in landmarks)
        if not lms:
            raise InputError("the video has no frames to align")
        if all(lm is None for lm in lms):
            raise InputError(
                f"no face found in any of the {len(lms)} frames; if the face is small, raise "
                "--detect-size; for footage that is already aligned, use --no-align"
            )
        params = np.full((len(lms), 4), np.nan)  # T (cx cy xx xy)
        for i, lm in enumerate(lms):
            if lm is not None:
                center, x = quad_params(lm)
                params[i] = [*center, *x]
        params = fill_missing(params)
        center = gaussian_smooth(params[:, :2], sigma_center)
        x = gaussian_smooth(params[:, 2:], sigma_scale)
        return cls(
            frame_size=(int(frame_size[0]), int(frame_size[1])),
            landmarks=lms,
            quads=quad_from_params(center, x),
            sigma_center=float(sigma_center),
            sigma_scale=float(sigma_scale),
            **fields,
        )

    def smoothed(self, sigma_center: float, sigma_scale: float) -> "Track":
        """This track re-smoothed from its raw landmarks with other sigmas (no detection)."""
        if (sigma_center, sigma_scale) == (self.sigma_center, self.sigma_scale):
            return self
        return Track.from_landmarks(
            self.landmarks, self.frame_size, sigma_center=sigma_center, sigma_scale=sigma_scale,
            face_index=self.face_index, scores=self.scores, faces=self.faces, detector=self.detector,
        )  # fmt: skip

    def check(self, info: VideoInfo, *, origin: str = "track") -> None:
        """Fail, with the fix, if this track was not made for a video like ``info``."""
        if self.frame_count != info.frame_count or self.frame_size != (info.width, info.height):
            raise InputError(
                f"{origin} is for {self.frame_count} frames of {self.frame_size[0]}x{self.frame_size[1]}"
                f" but {info.path} has {info.frame_count} frames of {info.width}x{info.height}; "
                "align this video without --track"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe ``vsode/track@1`` document (floats kept exact)."""
        return {
            "format": TRACK_FORMAT,
            "frame_size": list(self.frame_size),
            "frame_count": self.frame_count,
            "face_index": self.face_index,
            "sigma_center": self.sigma_center,
            "sigma_scale": self.sigma_scale,
            "detector": dict(self.detector),
            "missing": self.missing,
            "frames": [
                {
                    "landmarks": None if lm is None else lm.tolist(),
                    "score": self.scores[i] if i < len(self.scores) else None,
                    "faces": self.faces[i] if i < len(self.faces) else None,
                }
                for i, lm in enumerate(self.landmarks)
            ],
            "quads": self.quads.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "track") -> "Track":
        if not isinstance(data, dict) or data.get("format") != TRACK_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise InputError(
                f"{origin} is not a vsode track (format {found!r}, expected {TRACK_FORMAT}); "
                "make one with `vsode align VIDEO --save-track FILE`"
            )
        try:
            frames = data["frames"]
            return cls(
                frame_size=(int(data["frame_size"][0]), int(data["frame_size"][1])),
                landmarks=tuple(
                    None if f["landmarks"] is None else np.asarray(f["landmarks"], dtype=np.float64).reshape(4, 2)
                    for f in frames
                ),
                quads=np.asarray(data["quads"], dtype=np.float64).reshape(-1, 4, 2),
                sigma_center=float(data["sigma_center"]),
                sigma_scale=float(data["sigma_scale"]),
                face_index=int(data["face_index"]),
                scores=tuple(f.get("score") for f in frames),
                faces=tuple(f.get("faces") for f in frames),
                detector=dict(data.get("detector") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise InputError(f"{origin} is a damaged track file ({err}); align the video again") from err

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the track as JSON, atomically; refuses to overwrite without ``force``."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        return atomic_write_bytes(path, text.encode(), force=force)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description without the per-frame data, for ``--json`` results."""
        d = self.to_dict()
        del d["frames"], d["quads"]
        return d


def load_track(path: str | os.PathLike) -> Track:
    """Read a track written by :meth:`Track.save`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"track {path} does not exist; make one with `vsode align VIDEO --save-track FILE`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"track {path} is not readable JSON ({err}); align the video again") from err
    return Track.from_dict(data, origin=f"track {path}")


def _detect_frame_size(info: VideoInfo, detect_size: int) -> tuple[int, int]:
    longest = max(info.width, info.height)
    if detect_size == 0 or longest <= detect_size:
        return info.width, info.height
    scale = detect_size / longest
    return max(1, round(info.width * scale)), max(1, round(info.height * scale))


def track_video(
    path: str | os.PathLike,
    options: AlignOptions | None = None,
    *,
    landmarker: Landmarker | None = None,
    info: VideoInfo | None = None,
    progress: Progress | None = None,
) -> Track:
    """The first pass: detect one face per frame and build its smoothed :class:`Track`.

    Memory holds one decoded batch and the landmarks, never the video.

    Args:
        path: video or image.
        options: :class:`AlignOptions` (``face_index``, sigmas, ``detect_size``, ``batch_size``).
        landmarker: the face detector; :class:`MTCNNLandmarker` on ``options.device`` if omitted.
        info: the :func:`~vsode.video.probe` result for ``path``, if known.
        progress: receives the ``detect faces`` stage.

    Raises:
        InputError: bad input, or no face in any frame.
        ModelMissingError: facenet-pytorch is not installed (default landmarker only).
    """
    options = options or AlignOptions()
    progress = ensure(progress)
    info = info or probe(path)
    if landmarker is None:
        landmarker = MTCNNLandmarker(options.device)
    size = _detect_frame_size(info, options.detect_size)
    sx, sy = info.width / size[0], info.height / size[1]
    picker = FacePicker(options.face_index)
    landmarks: list[np.ndarray | None] = []
    scores: list[float | None] = []
    counts: list[int] = []
    with progress.stage("detect faces", total=info.frame_count, unit="frame") as stage:
        for batch in read_frames(
            path, batch_size=options.batch_size, size=None if size == (info.width, info.height) else size,
            resize_mode="area", info=info,
        ):  # fmt: skip
            for faces in landmarker.detect(batch.frames):
                pick = picker(faces)
                counts.append(len(faces))
                if pick is None:
                    landmarks.append(None)
                    scores.append(None)
                else:
                    landmarks.append(np.asarray(pick.scaled(sx, sy).points, dtype=np.float64))
                    scores.append(pick.score)
            stage.advance(len(batch))
    if all(lm is None for lm in landmarks):
        raise InputError(
            f"no face found in any of the {len(landmarks)} frames of {path}; if the face is small, "
            "raise --detect-size; for footage that is already aligned, use --no-align"
        )
    return Track.from_landmarks(
        landmarks, (info.width, info.height),
        sigma_center=options.sigma_center, sigma_scale=options.sigma_scale,
        face_index=options.face_index, scores=tuple(scores), faces=tuple(counts),
        detector={**landmarker.describe(), "frame_size": list(size)},
    )  # fmt: skip
