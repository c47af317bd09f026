"""Face alignment for real footage: landmarks → FFHQ crop, a smoothed track, paste-back.

pSp/e4e and StyleGAN2 only understand FFHQ-aligned crops, so a real video goes through four
steps, one module each (imports run downstream to upstream):

1. :mod:`.landmarks` — **detect**: eye centres and mouth corners of every face in a frame, from a
   :class:`Landmarker`; the default, :class:`MTCNNLandmarker`, is facenet-pytorch's MTCNN, whose
   weights ship inside its wheel (offline, nothing downloaded at run time);
2. :mod:`.geometry` and :mod:`.track` — **track**: a cheap first pass that keeps only landmarks;
   each frame's FFHQ quad (the FFHQ dataset script's recipe, reused by pSp, e4e and STIT), frames
   without a face filled from their neighbours and listed, the quad's centre and its
   scale/rotation smoothed over time by separate Gaussians (STIT's 1 and 3 frames);
3. :mod:`.faces` — **decide and stream**: the one entry the other stages use, :func:`face_track`
   (a track or the centre square, by the ``auto``/``on``/``off`` policy) and
   :func:`face_batches` (a source's crops, at several sizes from one decode);
   :mod:`.warp` — **crop**: a perspective warp of every frame's quad to ``size``×``size``;
4. :mod:`.warp` — **paste**: the inverse warp of an (edited) crop into the original frame under a
   feathered mask, optionally colour-matched at the seam.

:func:`align_video` is the verb behind ``vsode align``: track (or load a track), write the crop
video and the track. A :class:`Track` saves to JSON (``vsode/track@1``) whose floats round-trip
exactly, so a rerun from a saved track is identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import check_output_path
from ..progress import Progress, ensure
from ..video import VideoWriter, WriteResult, probe
from .faces import center_square, face_batches, face_track, paste_square, shares_decode
from .geometry import ffhq_quad, homography, quad_from_params, quad_params, quad_side
from .landmarks import FaceLandmarks, Landmarker, MTCNNLandmarker
from .options import AlignOptions, PasteOptions
from .track import TRACK_FORMAT, FacePicker, Track, fill_missing, gaussian_smooth, load_track, track_video
from .warp import crop_faces, crop_video, irregular_times, paste_back, paste_video


@dataclass(frozen=True)
class AlignResult:
    """What :func:`align_video` did.

    Attributes:
        output: the aligned-crop video.
        track_path: where the track was saved, if it was.
        track: the track used.
        video: the crop video's :class:`~vsode.video.WriteResult`.
        detected: the track came from detection now (not from a saved file).
    """

    output: Path
    track_path: Path | None
    track: Track
    video: WriteResult
    detected: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "track_file": None if self.track_path is None else str(self.track_path),
            "frames": self.track.frame_count,
            "missing": self.track.missing,
            "detected": self.detected,
            "track": self.track.summary(),
            "video": self.video.to_dict(),
        }


def align_video(
    path: str | os.PathLike,
    output: str | os.PathLike,
    options: AlignOptions | None = None,
    *,
    track: Track | None = None,
    save_track: str | os.PathLike | None = None,
    landmarker: Landmarker | None = None,
    audio: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> AlignResult:
    """Align a video: track the face (or take ``track``), write the crop video and the track.

    The crops keep the source's frame times and (with ``audio``) its audio.

    Args:
        path: video or image.
        output: the aligned-crop video to write, ``options.size`` square.
        options: :class:`AlignOptions`.
        track: a saved track to use instead of detecting (checked against the video).
        save_track: where to write the track JSON.
        landmarker: the face detector (default :class:`MTCNNLandmarker`).
        audio: copy the source's audio into the crop video.
        force: overwrite existing outputs.
        progress: receives the ``detect faces``, ``decode``, ``crop`` and ``encode`` stages.
    """
    options = options or AlignOptions()
    progress = ensure(progress)
    check_output_path(output, force=force)
    if save_track is not None:
        check_output_path(save_track, force=force)
    info = probe(path)
    detected = track is None
    if track is None:
        track = track_video(path, options, landmarker=landmarker, info=info, progress=progress)
    else:
        track.check(info)
    # The track first: a run stopped while encoding keeps the detection work.
    saved = track.save(save_track, force=force) if save_track is not None else None
    with VideoWriter(
        output, fps=info.fps, width=options.size, height=options.size,
        timestamps=irregular_times(info), audio_from=path if audio else None,
        force=force, progress=progress,
    ) as writer, progress.stage("crop", total=info.frame_count, unit="frame") as stage:  # fmt: skip
        for batch in crop_video(
            path, track, size=options.size, batch_size=options.batch_size, info=info, progress=progress
        ):
            writer.write(batch.frames)
            stage.advance(len(batch))
    video = writer.close()
    return AlignResult(output=Path(output), track_path=saved, track=track, video=video, detected=detected)


__all__ = [
    "AlignOptions",
    "AlignResult",
    "FaceLandmarks",
    "FacePicker",
    "Landmarker",
    "MTCNNLandmarker",
    "PasteOptions",
    "TRACK_FORMAT",
    "Track",
    "align_video",
    "center_square",
    "face_batches",
    "face_track",
    "paste_square",
    "shares_decode",
    "crop_faces",
    "crop_video",
    "ffhq_quad",
    "fill_missing",
    "gaussian_smooth",
    "homography",
    "load_track",
    "paste_back",
    "paste_video",
    "quad_from_params",
    "quad_params",
    "quad_side",
    "track_video",
]
