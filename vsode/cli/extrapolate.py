"""`vsode extrapolate`: continue a video past its last frame."""

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


def extrapolate(
    video: Annotated[Optional[Path], typer.Argument(help="Input video (may be left out with --latents).", show_default=False)] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", "-s", help="How long to continue, in seconds.", metavar="S")] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", "-n", help="How many frames to add.", metavar="N")] = None,
    only_new: Annotated[bool, typer.Option("--only-new", help="Write only the continuation, not the input's reconstruction before it.")] = False,
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
    """Continue a video past its end at its own frame rate by solving its motion ODE further.

    The output is the input's reconstruction followed by the continuation, with the input's audio
    over its duration; --only-new writes the continuation alone. The output is the generated
    (aligned) face crop.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import extrapolate as run
        from ..options import ExtrapolateOptions

        options = ExtrapolateOptions(
            seconds=seconds, frames=frames, only_new=only_new,
            model=model, batch_size=batch_size, precision=precision, content=content, crf=crf,
            keep_audio=not no_audio, crop_only=crop_only, use_cache=not no_cache, device=device,
            align=align_mode(align), face_index=face_index,
            cache_dir=cache_dir, force=force,
        )
        result = run(video, options, latents=latents, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
