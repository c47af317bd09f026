"""The FFHQ crop recipe and the projective maps between a frame's quad and its square crop.

Coordinates are display pixels with pixel centres on integers (pixel ``(0, 0)`` covers
``[-0.5, 0.5]²``). A quad lists its corners top-left, bottom-left, bottom-right, top-right (the
FFHQ script's order); they map to the crop's outer corners.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

# The FFHQ recipe's constants: the quad's half-side is the larger of 2× the eye distance and
# 1.8× the eye-to-mouth distance, and its centre sits a tenth of the way from eyes to mouth.
EYE_SCALE = 2.0
MOUTH_SCALE = 1.8
CENTER_SHIFT = 0.1


def quad_params(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The FFHQ recipe: eye centres and mouth corners → the quad's centre and its x half-side vector.

    ``points`` is ``(..., 4, 2)``: eye_left, eye_right, mouth_left, mouth_right. The x vector
    points from the quad's left edge to its right edge and is half a side long; the y vector
    (down the face) is x turned a quarter clockwise in image coordinates.
    """
    points = np.asarray(points, dtype=np.float64)
    eye_avg = (points[..., 0, :] + points[..., 1, :]) / 2
    eye_to_eye = points[..., 1, :] - points[..., 0, :]
    mouth_avg = (points[..., 2, :] + points[..., 3, :]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    # The face's horizontal axis: the eye line, corrected by the eye-to-mouth direction turned
    # a quarter counter-clockwise (image y points down), so a tilted mouth tilts the crop less.
    x = eye_to_eye + np.stack([eye_to_mouth[..., 1], -eye_to_mouth[..., 0]], axis=-1)
    half = np.maximum(
        np.hypot(*np.moveaxis(eye_to_eye, -1, 0)) * EYE_SCALE,
        np.hypot(*np.moveaxis(eye_to_mouth, -1, 0)) * MOUTH_SCALE,
    )
    x = x / np.hypot(*np.moveaxis(x, -1, 0))[..., None] * half[..., None]
    center = eye_avg + eye_to_mouth * CENTER_SHIFT
    return center, x


def quad_from_params(center: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Corners ``(..., 4, 2)`` (top-left, bottom-left, bottom-right, top-right) of the square quad."""
    center = np.asarray(center, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    y = np.stack([-x[..., 1], x[..., 0]], axis=-1)
    return np.stack([center - x - y, center - x + y, center + x + y, center + x - y], axis=-2)


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """Landmarks ``(..., 4, 2)`` → the FFHQ crop quad ``(..., 4, 2)`` (see :func:`quad_params`)."""
    return quad_from_params(*quad_params(points))


def quad_side(quad: np.ndarray | torch.Tensor) -> float:
    """Mean side length of a quad, in its own pixels."""
    q = np.asarray(quad, dtype=np.float64)
    return float(np.mean(np.hypot(*(np.roll(q, -1, axis=0) - q).T)))


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3×3 projective map taking four ``src`` points to four ``dst`` points (float64)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((u, v), (x, y)) in enumerate(zip(src, dst)):
        a[2 * i] = [u, v, 1, 0, 0, 0, -u * x, -v * x]
        a[2 * i + 1] = [0, 0, 0, u, v, 1, -u * y, -v * y]
        b[2 * i], b[2 * i + 1] = x, y
    try:
        h = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise InputError(f"quad {dst.tolist()} is degenerate; no warp maps a square onto it") from None
    return np.append(h, 1.0).reshape(3, 3)


def crop_corners(size: int) -> np.ndarray:
    """The crop's outer corners (corner-based coordinates) in quad order."""
    return np.array([[0, 0], [0, size], [size, size], [size, 0]], dtype=np.float64)


def apply_homography(h: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map point grids through a homography (float64 math, float32 result)."""
    x, y = x.double(), y.double()
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (
        ((h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w).float(),
        ((h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w).float(),
    )
