"""`vsode interpolate`: re-time a video by solving its motion at new frame times."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .appopts import (
    AlignOpt,
    BatchOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    FaceIndexOpt,
    LatentsOpt,
    ModelOpt,
    NoAudioOpt,
    NoCacheOpt,
    OutputOpt,
    PrecisionOpt,
    align_mode,
    report,
)
from .common import CacheDirOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, VerboseOpt, session


def interpolate(
    video: Annotated[Optional[Path], typer.Argument(help="Input video (may be left out with --latents).", show_default=False)] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="New frame rate over the same duration: 60, 59.94 or 60000/1001.", metavar="R")] = None,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Frames per input frame interval (2 doubles the rate; 1 reconstructs).", metavar="K")] = None,
    times: Annotated[Optional[Path], typer.Option("--times", help="Text file of output timestamps in seconds on the input's clock, one per line.", metavar="FILE")] = None,
    output: OutputOpt = None,
    latents: LatentsOpt = None,
    model: ModelOpt = "vidstyleode-demo",
    batch_size: BatchOpt = 8,
    precision: PrecisionOpt = "fp32",
    content: ContentOpt = "mean",
    crf: CrfOpt = 18,
    no_audio: NoAudioOpt = False,
    align: AlignOpt = None,
    face_index: FaceIndexOpt = 0,
    crop_only: CropOnlyOpt = False,
    no_cache: NoCacheOpt = False,
    device: DeviceOpt = "auto",
    cache_dir: CacheDirOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Change a video's frame rate (or give explicit frame times) by solving its motion ODE there.

    --fps R writes round(duration x R) frames at exactly R, lasting the input's duration;
    --factor K puts K frames in every input frame interval; --times FILE writes a frame at each
    listed time. Input frames are reproduced at their own times; the audio is the input's. The
    output is the generated (aligned) face crop.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import interpolate as run
        from ..options import InterpolateOptions, read_times

        options = InterpolateOptions(
            fps=fps, factor=factor, times=read_times(times) if times is not None else None,
            model=model, batch_size=batch_size, precision=precision, content=content, crf=crf,
            keep_audio=not no_audio, crop_only=crop_only, use_cache=not no_cache, device=device,
            align=align_mode(align), face_index=face_index,
            cache_dir=cache_dir, force=force,
        )
        result = run(video, options, latents=latents, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
