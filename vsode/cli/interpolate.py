"""`vsode interpolate`: re-time a video by solving its motion at new frame times."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import InterpolateOptions, RenderOptions
from .appopts import (
    AnchorOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    DetailOpt,
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


def interpolate(
    ctx: typer.Context,
    video: Annotated[Optional[Path], typer.Argument(help="Input video (may be left out with --latents).", show_default=False)] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="New frame rate over the same duration: 60, 59.94 or 60000/1001.", metavar="R")] = InterpolateOptions.fps,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Frames per input frame interval (2 doubles the rate; 1 reconstructs).", metavar="K")] = InterpolateOptions.factor,
    times: Annotated[Optional[Path], typer.Option("--times", help="Text file of output timestamps in seconds on the input's clock, one per line.", metavar="FILE")] = None,
    detail: DetailOpt = InterpolateOptions.detail,
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
    """Change a video's frame rate (or give explicit frame times) by solving its motion ODE there.

    --fps R writes round(duration x R) frames at exactly R, lasting the input's duration;
    --factor K puts K frames in every input frame interval; --times FILE writes a frame at each
    listed time. Input frames are reproduced at their own times, as themselves: the input's own
    detail that its inversions miss is added to every frame, lerped between the input frames
    around it (--detail none: the codes' render alone, so input frames come out as their
    inversions). The audio is the input's. The output is the generated (aligned) face crop.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import interpolate as run
        from ..options import read_times

        options = build_options(
            InterpolateOptions, ctx.params, skip=("video", "output", "latents"),
            times=read_times(times) if times is not None else None,  # --fps goes through parse_rate there
        )
        result = run(video, options, latents=latents, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
