"""`vsode align`: a real video → FFHQ-aligned face crops and the alignment track."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import BatchOpt, DeviceOpt, FaceIndexOpt, ForceOpt, JsonOpt, NoAudioOpt, QuietOpt, VerboseOpt, session


def align(
    video: Annotated[Path, typer.Argument(help="Input video or image with a face.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Aligned-crop video to write (default: INPUT stem + .aligned.mp4).", metavar="FILE"),
    ] = None,
    save_track: Annotated[
        Optional[Path],
        typer.Option("--save-track", help="Write the alignment track (JSON) here (default: OUTPUT stem + .track.json, unless an unchanged --track is used).", metavar="FILE"),
    ] = None,
    track: Annotated[
        Optional[Path],
        typer.Option("--track", help="Use this saved track instead of detecting faces (identical reruns).", metavar="FILE"),
    ] = None,
    face_index: FaceIndexOpt = 0,
    sigma_center: Annotated[
        Optional[float],
        typer.Option("--sigma-center", help="Gaussian smoothing of the crop's centre, in frames (default: 1, or the --track's).", min=0),
    ] = None,
    sigma_scale: Annotated[
        Optional[float],
        typer.Option("--sigma-scale", help="Gaussian smoothing of the crop's scale and rotation, in frames (default: 3, or the --track's).", min=0),
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Side of the aligned crops in pixels (the encoders take 256).", min=8)] = 256,
    detect_size: Annotated[
        int, typer.Option("--detect-size", help="Longest side frames are scaled to for face detection (0 = full size).", min=0)
    ] = 640,
    batch_size: BatchOpt = 8,
    no_audio: NoAudioOpt = False,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Find the face in every frame and write FFHQ-aligned crops of it, with the track.

    The crop follows the FFHQ recipe (eye centres and mouth corners) and is smoothed over time
    (--sigma-center, --sigma-scale). Frames without a face are never dropped: their crop is
    interpolated from the neighbouring frames (held at the ends), and they are listed in the
    result ("missing"). The track file lets later runs crop, and paste edits back, identically;
    a --track follows the face it was made for, whatever --face-index says.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..align import AlignOptions, align_video, load_track

        out = output or video.with_name(video.stem + ".aligned.mp4")
        loaded = saved = load_track(track) if track is not None else None
        if saved is not None and (sigma_center is not None or sigma_scale is not None):
            saved = saved.smoothed(
                saved.sigma_center if sigma_center is None else sigma_center,
                saved.sigma_scale if sigma_scale is None else sigma_scale,
            )
        # A new or re-smoothed track is always written (paste-back needs it); an unchanged one
        # only when asked.
        fresh = loaded is None or saved is not loaded
        track_out = save_track or (out.with_name(out.stem + ".track.json") if fresh else None)
        options = AlignOptions(
            size=size,
            face_index=face_index,
            sigma_center=1.0 if sigma_center is None else sigma_center,
            sigma_scale=3.0 if sigma_scale is None else sigma_scale,
            detect_size=detect_size,
            batch_size=batch_size,
            device=device,
        )
        result = align_video(
            video, out, options, track=saved, save_track=track_out, audio=not no_audio,
            force=force, progress=ui.progress,
        )  # fmt: skip
        missing = result.track.missing
        if missing:
            ui.info(f"no face in {len(missing)} of {result.track.frame_count} frames: {_ranges(missing)}")
        ui.result(
            result.to_dict(),
            human=f"wrote {out} ({result.track.frame_count} frames, {size}x{size})"
            + (f" and {track_out}" if track_out is not None else ""),
        )


def _ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3-5, 9"``."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)
