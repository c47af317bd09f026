"""`vsode generate`: new videos sampled from the model (content and motion), or one of them given."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import GenerateOptions, RenderOptions
from .appopts import AnchorOpt, CrfOpt, GeneratorOpt, MaxFramesOpt, ModelOpt, ReferenceOpt, report
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
    VerboseOpt,
    build_options,
    session,
)


def generate(
    ctx: typer.Context,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Video to write; with --count K each video's seed is added to the name (out.mp4 → out-seed3.mp4). Default: generate-seed<N>.mp4 here.", metavar="FILE")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="Length of each video (default 2, or the --motion video's).", metavar="S", show_default=False)] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="Frame rate, e.g. 25 or 30000/1001 (default 25, or the --motion video's).", metavar="R", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first video; video k has seed N+k, and a seed always gives the same video.", metavar="N", min=0)] = GenerateOptions.seed,
    count: Annotated[int, typer.Option("--count", "-n", help="How many videos to write.", metavar="K")] = GenerateOptions.count,
    truncation: Annotated[float, typer.Option("--truncation", help="ψ in (0, 1]: sampled content codes are mean + ψ·(draw − mean); lower stays nearer the average face.", metavar="PSI")] = GenerateOptions.truncation,
    motion_scale: Annotated[Optional[float], typer.Option("--motion-scale", help="Factor on the sampled motion: 1 is the model's own, 0 a still video (default: the prior's calibrated gain, which makes samples move as much as the clips it was fitted on).", metavar="X", show_default=False)] = None,
    content_from: Annotated[str, typer.Option("--content", help="Content code: prior (the model's prior over its training clips), mapping (the generator's mapping network), auto (prior when the model has one, else mapping), or an image, video or latents file.", metavar="auto|prior|mapping|FILE")] = "auto",
    motion: Annotated[Optional[Path], typer.Option("--motion", help="Take the motion of this video instead of sampling it from the model's prior.", metavar="VIDEO", show_default=False)] = None,
    reference: ReferenceOpt = None,
    model: ModelOpt = RenderOptions.model,
    generator: GeneratorOpt = RenderOptions.generator,
    batch_size: BatchOpt = RenderOptions.batch_size,
    precision: PrecisionOpt = RenderOptions.precision,
    crf: CrfOpt = RenderOptions.crf,
    no_audio: NoAudioOpt = not RenderOptions.keep_audio,
    align: AlignOpt = None,
    face_index: FaceIndexOpt = RenderOptions.face_index,
    anchor: AnchorOpt = RenderOptions.anchor,
    max_frames: MaxFramesOpt = RenderOptions.max_frames,
    no_cache: NoCacheOpt = not RenderOptions.use_cache,
    device: DeviceOpt = RenderOptions.device,
    cache_dir: CacheDirOpt = RenderOptions.cache_dir,
    force: ForceOpt = RenderOptions.force,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Generate new face videos: a content code and a motion sampled from the model.

    The model's prior (fitted by `vsode train` or `vsode fit-prior`) gives the initial motion state
    and, by default, the content code; --content and --motion take either from a file instead.
    Each video is anchored on its content code at its first frame (--anchor none: the paper's
    z_C + 0.01·Δ(t)), and the sampled motion is scaled by the prior's motion gain (--motion-scale);
    with --motion that video is inverted too and its own motion moves the content, as in animate
    (--reference: where that motion is measured from).
    The same --seed gives the same video.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import generate as run

        options = build_options(GenerateOptions, ctx.params, skip=("output", "content_from", "motion"))
        result = run(options, content=content_from, motion=motion, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
