"""The alignment stage's one entry: which crop a source's face is taken from, and its face batches.

Every consumer of face crops (the inversion, the dynamics encoder, ``vsode prepare``) asks here:

- :func:`face_track` decides, once per source, between an FFHQ alignment :class:`Track` and the
  centre square (``None``), by the ``auto``/``on``/``off`` policy;
- :func:`face_batches` streams the crops that decision names, at one or more sizes from a single
  decode of the video.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ..errors import InputError
from ..progress import Progress, ensure
from ..video import FrameBatch, VideoInfo, read_frames
from .options import AlignOptions
from .track import Track, load_track, track_video
from .warp import crop_faces


def center_square(info: VideoInfo) -> tuple[int, int, int, int]:
    """The largest centred square of the display frame, as (x, y, w, h): the crop of a source
    that is not aligned."""
    side = min(info.width, info.height)
    return ((info.width - side) // 2, (info.height - side) // 2, side, side)


def face_track(
    path: str | os.PathLike,
    info: VideoInfo,
    *,
    mode: str = "auto",
    prealigned: bool = False,
    options: AlignOptions | None = None,
    track_file: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> Track | None:
    """The alignment :class:`Track` of a source's face, or None for the centre square.

    Args:
        mode: ``on`` (fail when no face is found), ``off`` (the centre square) or ``auto``: align
            unless ``prealigned`` (an encoder whose world is aligned by construction), falling
            back to the centre square, with a log line, when no face is found in any frame.
        options: detection, face choice and smoothing (:class:`AlignOptions`).
        track_file: a saved track to use instead of detecting (re-smoothed to ``options``'
            sigmas when they differ).
    """
    options = options or AlignOptions()
    progress = ensure(progress)
    if track_file is not None:
        track = load_track(track_file)
        track.check(info, origin=f"track {track_file}")
        if (track.sigma_center, track.sigma_scale) != (options.sigma_center, options.sigma_scale):
            track = track.smoothed(options.sigma_center, options.sigma_scale)
        return track
    if mode == "off" or (mode == "auto" and prealigned):
        return None
    try:
        return track_video(path, options, info=info, progress=progress)
    except InputError as exc:
        if mode == "on" or "no face" not in str(exc):
            raise
        progress.log(f"no face found in {path}; using the centre square (pass --no-align to skip detection)")
        return None


Size = int | tuple[int, int] | None  # a crop's side, (width, height) for a centre crop, None: as decoded


def _centre_size(info: VideoInfo, size: Size) -> tuple[int, int]:
    side = center_square(info)[2]
    if size is None:
        return side, side
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _aligned_size(size: Size) -> int:
    if size is None:
        raise ValueError("aligned crops need a size")
    return size if isinstance(size, int) else int(size[1])  # a square of the height


def shares_decode(info: VideoInfo, track: Track | None, sizes: Sequence[Size]) -> bool:
    """Whether :func:`face_batches` can give every size in ``sizes`` from one decode: always for
    an aligned face (each size is its own warp of the decoded frame); for the centre square when
    all sizes agree (``None`` stands for the square's own side), since the decoder resizes it."""
    if track is not None:
        return True
    return len({_centre_size(info, s) for s in sizes}) == 1


def face_batches(
    path: str | os.PathLike,
    info: VideoInfo,
    track: Track | None,
    *,
    sizes: Sequence[Size],
    batch_size: int = 8,
    progress: Progress | None = None,
) -> Iterator[tuple[FrameBatch, list[torch.Tensor]]]:
    """Stream a source's face crops from one decode: per batch, the decoded batch's indices and
    times, and one uint8 crop tensor per size in ``sizes``.

    With a track the crops are its aligned quads warped to each size (``B×3×s×s``; a (w, h)
    size gives an h×h square); without, the centre square, resized by the decoder to the size
    (``None``: the square as decoded; (w, h): that frame size).
    See :func:`shares_decode` for the sizes one decode can serve.
    """
    if not sizes:
        raise ValueError("face_batches needs at least one size")
    if track is not None:
        sides = [_aligned_size(s) for s in sizes]
        track.check(info)
        for batch in read_frames(path, batch_size=batch_size, info=info, progress=progress):
            quads = track.quads[batch.indices[0] : batch.indices[-1] + 1]
            crops = {s: crop_faces(batch.frames, quads, s) for s in dict.fromkeys(sides)}
            yield batch, [crops[s] for s in sides]
        return
    if not shares_decode(info, None, sizes):
        raise ValueError(f"the centre square of {Path(path).name} cannot be decoded once at sizes {list(sizes)}")
    for batch in read_frames(path, batch_size=batch_size, info=info, progress=progress, crop=center_square(info),
                             size=_centre_size(info, sizes[0])):
        yield batch, [batch.frames] * len(sizes)


def paste_square(frames: torch.Tensor, crops: torch.Tensor, crop: tuple[int, int, int, int]) -> torch.Tensor:
    """Put generated crops back into the centre square they were taken from (the paste-back of a
    source that is not aligned): each crop resized to the square and written over it.

    Args:
        frames: ``B×3×H×W`` original frames, uint8 or float in [0, 1].
        crops: ``B×3×S×S`` generated crops, float in [0, 1].
        crop: the square (x, y, w, h) in frame pixels.

    Returns ``B×3×H×W`` float frames in [0, 1]; the crops themselves when the square is the
    whole frame at their size.
    """
    x, y, w, h = crop
    if frames.ndim != 4 or crops.ndim != 4 or crops.shape[0] != frames.shape[0]:
        raise ValueError(f"need B×3×H×W frames and B×3×S×S crops, got {tuple(frames.shape)}, {tuple(crops.shape)}")
    if (x, y, w, h) == (0, 0, frames.shape[-1], frames.shape[-2]) and tuple(crops.shape[-2:]) == (h, w):
        return crops
    out = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float().clone()
    region = crops.float()
    if tuple(region.shape[-2:]) != (h, w):
        region = torch.nn.functional.interpolate(region, size=(h, w), mode="bilinear", align_corners=False,
                                                 antialias=True)
    out[:, :, y : y + h, x : x + w] = region.clamp(0, 1)
    return out
