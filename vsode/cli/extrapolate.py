"""`vsode extrapolate`: continue a video past its last frame."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import ExtrapolateOptions, RenderOptions
from .appopts import (
    AnchorOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    GeneratorOpt,
    LatentsOpt,
    MaxFramesOpt,
    ModelOpt,
    OutputOpt,
    TuneSeedOpt,
    report,
)
from .common import (
    AlignOpt,
    BatchOpt,
    CacheDirOpt,
    DeviceOpt,
    FaceIndexOpt,
    ForceOpt,
    JsonOpt,
    NoAudioOpt,
    NoCacheOpt,
    PrecisionOpt,
    QuietOpt,
    TuneOpt,
    VerboseOpt,
    build_options,
    session,
)


def extrapolate(
    ctx: typer.Context,
    video: Annotated[Optional[Path], typer.Argument(help="Input video (may be left out with --latents).", show_default=False)] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", "-s", help="How long to continue, in seconds.", metavar="S")] = ExtrapolateOptions.seconds,
    frames: Annotated[Optional[int], typer.Option("--frames", "-n", help="How many frames to add.", metavar="N")] = ExtrapolateOptions.frames,
    only_new: Annotated[bool, typer.Option("--only-new", help="Write only the continuation, not the input's reconstruction before it.")] = ExtrapolateOptions.only_new,
    output: OutputOpt = None,
    latents: LatentsOpt = None,
    model: ModelOpt = RenderOptions.model,
    batch_size: BatchOpt = RenderOptions.batch_size,
    precision: PrecisionOpt = RenderOptions.precision,
    content: ContentOpt = RenderOptions.content,
    crf: CrfOpt = RenderOptions.crf,
    no_audio: NoAudioOpt = not RenderOptions.keep_audio,
    align: AlignOpt = None,
    face_index: FaceIndexOpt = RenderOptions.face_index,
    crop_only: CropOnlyOpt = RenderOptions.crop_only,
    anchor: AnchorOpt = RenderOptions.anchor,
    tune: TuneOpt = RenderOptions.tune,
    seed: TuneSeedOpt = RenderOptions.seed,
    generator: GeneratorOpt = RenderOptions.generator,
    max_frames: MaxFramesOpt = RenderOptions.max_frames,
    no_cache: NoCacheOpt = not RenderOptions.use_cache,
    device: DeviceOpt = RenderOptions.device,
    cache_dir: CacheDirOpt = RenderOptions.cache_dir,
    force: ForceOpt = RenderOptions.force,
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

        options = build_options(ExtrapolateOptions, ctx.params, skip=("video", "output", "latents"))
        result = run(video, options, latents=latents, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
