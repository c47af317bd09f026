"""Crop and paste-back: the perspective warp of a quad to a square crop, and its inverse.

Cropping shrinks a face larger than the crop with an antialiasing filter first (the FFHQ script's
shrink step), then samples bilinearly, reflecting beyond the frame's edges. Paste-back warps the
crop into the frame under a mask that is 1 inside the quad and falls to 0 at its edge over
``feather`` frame pixels (the ramp an eroded, blurred box has, as a smoothstep in closed form
rather than by filtering the frame); where it is 0 the frame keeps its exact pixels. Colour matching shifts the crop's mean colour to the frame's along the
seam.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..fileio import check_output_path
from ..progress import Progress, ensure
from ..video import FrameBatch, VideoInfo, VideoWriter, WriteResult, probe, read_frames
from .geometry import apply_homography, crop_corners, homography, quad_side
from .options import AUTO_FEATHER, PasteOptions
from .track import Track


def _as_float(frames: torch.Tensor) -> torch.Tensor:
    return frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()


def _like(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if reference.dtype == torch.uint8:
        return images.clamp(0, 1).mul(255).round().to(torch.uint8)
    return images.to(reference.dtype)


def _crop_one(frame: torch.Tensor, quad: np.ndarray, size: int) -> torch.Tensor:
    """One ``3×H×W`` float frame's quad warped to ``3×size×size``."""
    _, height, width = frame.shape
    side = quad_side(quad)
    scale = min(1.0, size / side)  # shrink first (antialiased) when the face is larger than the crop
    margin = 2 + math.ceil(2 / scale)
    x0 = max(0, math.floor(quad[:, 0].min()) - margin)
    y0 = max(0, math.floor(quad[:, 1].min()) - margin)
    x1 = min(width, math.ceil(quad[:, 0].max()) + margin + 1)
    y1 = min(height, math.ceil(quad[:, 1].max()) + margin + 1)
    if x1 <= x0 or y1 <= y0:  # the quad is wholly outside the frame: reflect the whole frame
        x0, y0, x1, y1 = 0, 0, width, height
    region = frame[:, y0:y1, x0:x1]
    corners = quad - np.array([x0, y0]) + 0.5  # corner-based, in the region
    if scale < 1:
        out_h = max(1, round((y1 - y0) * scale))
        out_w = max(1, round((x1 - x0) * scale))
        corners = corners * np.array([out_w / (x1 - x0), out_h / (y1 - y0)])
        region = F.interpolate(
            region[None], size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True
        )[0]
    h = homography(crop_corners(size), corners)
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    sx, sy = apply_homography(h, u, v)
    rh, rw = region.shape[-2:]
    grid = torch.stack([sx * (2 / rw) - 1, sy * (2 / rh) - 1], dim=-1)[None].to(region.device)
    return F.grid_sample(
        region[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )[0]


def crop_faces(frames: torch.Tensor, quads: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Warp each frame's quad to a ``size``×``size`` crop (bilinear; reflected beyond the frame).

    A face larger than the crop is first scaled down with an antialiasing filter, as the FFHQ
    script's shrink step does.

    Args:
        frames: ``B×3×H×W`` uint8 or float.
        quads: ``B×4×2`` corners in the frames' pixels (see the module docstring).
        size: side of the crops.

    Returns:
        ``B×3×size×size`` crops, of the frames' dtype.
    """
    quads = np.asarray(quads, dtype=np.float64)
    if frames.ndim != 4 or frames.shape[1] != 3 or quads.shape != (frames.shape[0], 4, 2):
        raise ValueError(f"need B×3×H×W frames and B×4×2 quads, got {tuple(frames.shape)} and {quads.shape}")
    x = _as_float(frames)
    crops = torch.stack([_crop_one(x[i], quads[i], size) for i in range(x.shape[0])])  # B 3 S S
    return _like(crops, frames)


def crop_video(
    path: str | os.PathLike,
    track: Track,
    *,
    size: int = 256,
    batch_size: int = 8,
    info: VideoInfo | None = None,
    progress: Progress | None = None,
) -> Iterator[FrameBatch]:
    """The second pass: stream the aligned crops of a video, with the frames' indices and times.

    Yields:
        :class:`~vsode.video.FrameBatch` of ``B×3×size×size`` uint8 crops.
    """
    info = info or probe(path)
    track.check(info)
    for batch in read_frames(path, batch_size=batch_size, info=info, progress=progress):
        quads = track.quads[batch.indices[0] : batch.indices[-1] + 1]
        yield FrameBatch(crop_faces(batch.frames, quads, size), batch.indices, batch.timestamps)


def irregular_times(info: VideoInfo) -> list | None:
    """The source's frame times for a :class:`VideoWriter`, or ``None`` when they are regular."""
    stamps = list(info.timestamps)
    return None if all(t == i / info.fps for i, t in enumerate(stamps)) else stamps


def _ramp(t: torch.Tensor) -> torch.Tensor:
    """0 below 0, 1 above 1, smoothstep between: the edge of an eroded, blurred box."""
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def _paste_one(
    frame: torch.Tensor, crop: torch.Tensor, quad: np.ndarray, feather: float | None, color_match: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int]] | None:
    """The blended region of one frame (uint8 or float; only the region is made float) and its
    mask, or ``None`` if the quad misses it."""
    _, height, width = frame.shape
    size = crop.shape[-1]
    x0 = max(0, math.floor(quad[:, 0].min()))
    y0 = max(0, math.floor(quad[:, 1].min()))
    x1 = min(width, math.ceil(quad[:, 0].max()) + 1)
    y1 = min(height, math.ceil(quad[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    h = homography(quad + 0.5, crop_corners(size))  # frame (corner-based) → crop
    ys = torch.arange(y0, y1, dtype=torch.float64) + 0.5
    xs = torch.arange(x0, x1, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    u, v = apply_homography(h, xx, yy)  # crop coordinates, 0..size inside the quad
    grid = torch.stack([u * (2 / size) - 1, v * (2 / size) - 1], dim=-1)[None].to(crop.device)
    warped = F.grid_sample(crop[None].float(), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)[0].to(frame.device)  # fmt: skip
    inside = (u >= 0) & (u <= size) & (v >= 0) & (v <= size)
    side = quad_side(quad)
    width_px = AUTO_FEATHER * side if feather is None else float(feather)
    if width_px > 0:
        k = side / size / width_px  # crop units → fractions of the feather
        mask = _ramp(u * k) * _ramp((size - u) * k) * _ramp(v * k) * _ramp((size - v) * k)
    else:
        mask = inside.float()
    mask = (mask * inside).to(frame.device)[None]  # 1 h w
    region = _as_float(frame[:, y0:y1, x0:x1])
    if color_match:
        seam = mask * (1 - mask)  # weights peak halfway across the soft edge
        if width_px == 0 or float(seam.sum()) < 1:
            seam = (mask > 0).float()  # a hard edge: match over the whole face region
        total = float(seam.sum())
        if total > 0:
            offset = ((region - warped) * seam).sum(dim=(1, 2), keepdim=True) / total
            warped = (warped + offset).clamp(0, 1)
    return region * (1 - mask) + warped * mask, mask, (x0, y0, x1, y1)


def paste_back(
    frames: torch.Tensor,
    crops: torch.Tensor,
    quads: np.ndarray | torch.Tensor,
    options: PasteOptions | None = None,
) -> torch.Tensor:
    """Put crops back into their frames: inverse warp under a feathered mask.

    The mask is 1 inside the quad and falls to 0 at its edge over ``feather`` frame pixels;
    pixels where it is 0 (outside the quad, or all of a frame the quad misses) keep their exact
    original value.

    Args:
        frames: ``B×3×H×W`` original frames, uint8 or float.
        crops: ``B×3×S×S`` (edited) crops of any size ``S``, uint8 or float in [0, 1].
        quads: ``B×4×2`` the quads the crops were taken from (``track.quads[indices]``).
        options: :class:`PasteOptions` (feather, colour matching).

    Returns:
        The composited frames, of the frames' dtype and size.
    """
    options = options or PasteOptions()
    quads = np.asarray(quads, dtype=np.float64)
    if frames.ndim != 4 or crops.ndim != 4 or crops.shape[0] != frames.shape[0]:
        raise ValueError(f"need B×3×H×W frames and B×3×S×S crops, got {tuple(frames.shape)}, {tuple(crops.shape)}")
    if crops.shape[-1] != crops.shape[-2] or quads.shape != (frames.shape[0], 4, 2):
        raise ValueError(f"crops must be square and quads B×4×2, got {tuple(crops.shape)}, {quads.shape}")
    c = _as_float(crops)
    out = frames.clone()
    for i in range(frames.shape[0]):  # a 1080p frame is made float only where the face goes
        pasted = _paste_one(frames[i], c[i], quads[i], options.feather, options.color_match)
        if pasted is None:
            continue
        blended, mask, (x0, y0, x1, y1) = pasted
        region = _like(blended, frames)
        keep = (mask == 0).expand_as(region)
        original = out[i, :, y0:y1, x0:x1]
        out[i, :, y0:y1, x0:x1] = torch.where(keep, original, region)
    return out


def paste_video(
    source: str | os.PathLike,
    crops: Iterable[torch.Tensor],
    track: Track,
    output: str | os.PathLike,
    options: PasteOptions | None = None,
    *,
    batch_size: int = 8,
    audio: bool = True,
    force: bool = False,
    info: VideoInfo | None = None,
    progress: Progress | None = None,
) -> WriteResult:
    """Stream the crops of a whole video back into its frames and encode the result.

    The output keeps the source's full resolution, frame times and (with ``audio``) its audio.

    Args:
        source: the original video.
        crops: batches of ``B×3×S×S`` crops, one per source frame in order (any batch sizes).
        track: the source's :class:`Track`.
        output: the video to write (atomically).
        options: :class:`PasteOptions`.
        batch_size: source frames decoded per batch.
        audio: copy the source's audio.
        force: overwrite ``output``.
        progress: receives ``decode``, ``paste`` and ``encode`` stages.

    Raises:
        InputError: the track is not for this video, or the crops are fewer or more than frames.
    """
    info = info or probe(source)
    track.check(info)
    check_output_path(output, force=force)
    progress = ensure(progress)
    pending: list[torch.Tensor] = []
    stock = 0
    supply = iter(crops)

    def take(n: int) -> torch.Tensor:
        nonlocal stock
        while stock < n:
            more = next(supply, None)
            if more is None:
                raise InputError(f"got crops for fewer frames than the {info.frame_count} of {source}")
            more = more if more.ndim == 4 else more[None]
            pending.append(more)
            stock += more.shape[0]
        joined = torch.cat(pending)
        pending[:] = [joined[n:]] if joined.shape[0] > n else []
        stock -= n
        return joined[:n]

    with VideoWriter(
        output, fps=info.fps, width=info.width, height=info.height,
        timestamps=irregular_times(info), audio_from=source if audio else None,
        force=force, progress=progress,
    ) as writer, progress.stage("paste", total=info.frame_count, unit="frame") as stage:  # fmt: skip
        for batch in read_frames(source, batch_size=batch_size, info=info, progress=progress):
            quads = track.quads[batch.indices[0] : batch.indices[-1] + 1]
            writer.write(paste_back(batch.frames, take(len(batch)), quads, options))
            stage.advance(len(batch))
        if stock or next(supply, None) is not None:
            raise InputError(f"got crops for more frames than the {info.frame_count} of {source}")
    return writer.close()
