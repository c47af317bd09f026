"""Face landmarks: the :class:`Landmarker` protocol and its default, facenet-pytorch's MTCNN.

A landmarker gives, per frame, every face's eye centres and mouth corners (the four points the
FFHQ recipe needs), its box and its score. MTCNN's weights ship inside the facenet-pytorch wheel,
so detection works offline with nothing downloaded at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import ModelMissingError


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face: the four points the FFHQ recipe needs, its box and its score.

    "Left" and "right" are the image's: ``eye_left`` has the smaller x in an upright face.

    Attributes:
        points: ``((x, y) eye_left, eye_right, mouth_left, mouth_right)`` in pixels.
        box: ``(x0, y0, x1, y1)`` face box in pixels.
        score: the detector's confidence in [0, 1].
    """

    points: tuple[tuple[float, float], ...]
    box: tuple[float, float, float, float]
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)

    def scaled(self, sx: float, sy: float) -> "FaceLandmarks":
        """The same face in a frame scaled by (sx, sy) (pixel centres on integers both sides)."""

        def x(v: float) -> float:
            return (v + 0.5) * sx - 0.5

        def y(v: float) -> float:
            return (v + 0.5) * sy - 0.5

        return FaceLandmarks(
            points=tuple((x(px), y(py)) for px, py in self.points),
            box=(x(self.box[0]), y(self.box[1]), x(self.box[2]), y(self.box[3])),
            score=self.score,
        )


class Landmarker(Protocol):
    """Finds faces in frames. ``name`` and ``describe()`` go into the track file."""

    name: str

    def detect(self, frames: torch.Tensor) -> list[list[FaceLandmarks]]:
        """Faces of each frame of a ``B×3×H×W`` uint8 batch, any order, possibly none."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-safe identity and settings, recorded in the track."""
        ...


class MTCNNLandmarker:
    """facenet-pytorch's MTCNN (Zhang et al. 2016): boxes and 5 points; its weights are in the wheel.

    Counterpart: ``facenet_pytorch.MTCNN`` (used, not rewritten). Of its five points (eyes, nose,
    mouth corners) the FFHQ recipe takes the eyes and mouth corners.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        min_face_size: smallest face searched for, in pixels of the frames it is given.
        thresholds: the three stages' score thresholds.
    """

    name = "mtcnn"

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
    ) -> None:
        from ..device import resolve_device

        try:
            from facenet_pytorch import MTCNN
        except ImportError as err:
            raise ModelMissingError(
                "face detection needs facenet-pytorch (its MTCNN weights ship in the wheel): "
                "pip install 'facenet-pytorch>=2.5.3,<2.6'; or pass --no-align for aligned input"
            ) from err
        self.device = resolve_device(device)
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self._mtcnn = MTCNN(
            keep_all=True,
            min_face_size=self.min_face_size,
            thresholds=list(self.thresholds),
            device=self.device,
        ).eval()

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            package = f"facenet-pytorch {version('facenet-pytorch')}"
        except PackageNotFoundError:  # pragma: no cover - imported from a source tree
            package = "facenet-pytorch"
        return {
            "name": self.name,
            "package": package,
            "min_face_size": self.min_face_size,
            "thresholds": list(self.thresholds),
        }

    def detect(self, frames: torch.Tensor) -> list[list[FaceLandmarks]]:
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be B×3×H×W uint8, got {tuple(frames.shape)} {frames.dtype}")
        images = frames.permute(0, 2, 3, 1).to(self.device)  # B H W 3, what MTCNN takes
        with torch.no_grad():
            boxes, probs, points = self._mtcnn.detect(images, landmarks=True)
        result: list[list[FaceLandmarks]] = []
        for i in range(frames.shape[0]):
            if boxes[i] is None:
                result.append([])
                continue
            b = np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4)
            p = np.asarray(points[i], dtype=np.float64).reshape(-1, 5, 2)
            s = np.asarray(probs[i], dtype=np.float64).reshape(-1)
            result.append([
                FaceLandmarks(
                    points=tuple((float(x), float(y)) for x, y in p[k, [0, 1, 3, 4]]),
                    box=tuple(float(v) for v in b[k]),  # type: ignore[arg-type]
                    score=float(s[k]),
                )
                for k in range(b.shape[0])
            ])
        return result
