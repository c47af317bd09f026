"""An application's inputs as the pipeline reads them: probed, checked against a latents file, and
the crop their face is taken from.

:func:`open_source` runs before any model is loaded, so bad input fails fast. A :class:`Source`
carries its alignment :class:`vsode.align.Track` once it is known (from the latents file, the
inversion, or tracking it on its own); without one its centre square ``crop`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .align import Track
from .align.faces import center_square
from .checkpoints.cache import sha256_file
from .errors import InputError
from .invert import Latents, load_latents
from .options import FrameTimes
from .video import VideoInfo, probe


@dataclass
class Source:
    """One input: its file (frames and audio), what probe found, its face crop (an alignment
    track, else the centre square ``crop``), and the W+ latents when a latents file replaces the
    inversion."""

    path: Path
    info: VideoInfo
    crop: tuple[int, int, int, int]
    latents: Latents | None = None
    role: str = "input"
    track: Track | None = None  # the face's alignment; None: the centre square ``crop``
    tracked: bool = False  # whether the alignment was decided (the track may still be None)
    inversion: Latents | None = None  # the W+ the pipeline inverted it to (when no latents file)

    @property
    def known_latents(self) -> Latents | None:
        """The per-frame W+ of the source, from its latents file or its inversion, if known."""
        return self.latents if self.latents is not None else self.inversion

    @property
    def times(self) -> tuple[Fraction, ...]:
        return self.info.timestamps

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def frame_count(self) -> int:
        return self.info.frame_count

    @property
    def is_still(self) -> bool:
        return self.info.is_image

    def frame_times(self) -> FrameTimes:
        """The source's own frames: what edit, animate and blend-motion write."""
        return FrameTimes(self.times, self.fps)

    def set_track(self, track: Track | None, origin: str) -> None:
        """Record the alignment decision (checked against the video)."""
        if track is not None:
            track.check(self.info, origin=origin)
        self.track, self.tracked = track, True


def open_source(
    path: str | Path | None,
    *,
    latents: str | Path | None = None,
    role: str = "input",
    min_frames: int = 1,
) -> Source:
    """Probe an input (and check a latents file against it) before any model is loaded.

    ``path`` may be omitted when ``latents`` is given: the video the latents were made from is
    used for the frames and the audio.
    """
    lat = None
    if latents is not None:
        try:
            lat = load_latents(latents)
        except InputError as err:
            raise InputError(f"--latents {latents} is not a latents file from `vsode invert` ({err})") from None
    if path is None:
        if lat is None:
            raise InputError(f"give the {role} video (or --latents FILE from `vsode invert`)")
        path = Path(str(lat.source.get("path", "")))
        if not path.is_file():
            raise InputError(
                f"latents file {latents} was made from {path}, which is not there; give the video as the {role}"
            )
    path = Path(path)
    info = probe(path)
    if info.frame_count < min_frames:
        raise InputError(
            f"{role} {path} has {info.frame_count} frame; it must be a video of at least {min_frames} frames"
        )
    crop = center_square(info)
    if lat is not None:
        if lat.frame_count != info.frame_count or list(lat.times) != list(info.timestamps) or \
                tuple(lat.size) != (info.width, info.height):
            raise InputError(
                f"latents file {latents} ({lat.frame_count} frames of {lat.size[0]}x{lat.size[1]}) was not made "
                f"from {path} ({info.frame_count} frames of {info.width}x{info.height}); "
                f"run `vsode invert {path}` or give the video it was made from"
            )
        recorded = lat.source.get("sha256")
        if recorded and sha256_file(path) != recorded:
            raise InputError(
                f"latents file {latents} was made from {lat.source.get('path')}, not from {path} (their contents "
                f"differ); give that video, or run `vsode invert {path}` and pass its latents"
            )
        x, y, w, h = lat.crop
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > info.width or y + h > info.height:
            raise InputError(f"latents file {latents} has a crop {lat.crop} outside the video; invert it again")
        crop = tuple(lat.crop)  # type: ignore[assignment]
    source = Source(path, info, crop, lat, role)
    if lat is not None:
        source.set_track(lat.track, f"latents file {latents}")
    return source
