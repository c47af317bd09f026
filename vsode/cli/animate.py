"""`vsode animate`: the face of an image, moved by a driver video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import AnimateOptions, RenderOptions
from .appopts import (
    AnchorOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    GeneratorOpt,
    LatentsOpt,
    ModelOpt,
    OutputsOpt,
    PromptsOpt,
    RawPromptOpt,
    ReferenceOpt,
    SourceOpt,
    StrengthOpt,
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


def animate(
    ctx: typer.Context,
    image: Annotated[Optional[Path], typer.Argument(help="Image (or video) giving the appearance (may be left out with --latents).", show_default=False)] = None,
    driver: Annotated[Path, typer.Option("--driver", "-d", help="Video whose motion, timing and audio the output has.", metavar="VIDEO", show_default=False)] = ...,  # type: ignore[assignment]
    prompt: PromptsOpt = [],
    source: SourceOpt = AnimateOptions.source,
    strength: StrengthOpt = AnimateOptions.strength,
    raw_prompt: RawPromptOpt = AnimateOptions.raw_prompt,
    output: OutputsOpt = None,
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
    reference: ReferenceOpt = None,
    tune: TuneOpt = RenderOptions.tune,
    seed: TuneSeedOpt = RenderOptions.seed,
    generator: GeneratorOpt = RenderOptions.generator,
    no_cache: NoCacheOpt = not RenderOptions.use_cache,
    device: DeviceOpt = RenderOptions.device,
    cache_dir: CacheDirOpt = RenderOptions.cache_dir,
    force: ForceOpt = RenderOptions.force,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Animate the face of an image with the motion of a driver video.

    The content code is the image's inversion; the dynamics, frame times, rate and audio are the
    driver's, and the result is pasted back into the driver's frames (--crop-only writes the
    crop). Anchored (the default), the driver is inverted too and its own motion moves the face:
    the image's code plus the driver's W+ offsets in the rows the dynamics drive (coarse and
    medium), measured from the driver's pose nearest the image's (--reference first: from its
    first frame). --anchor none renders the model's motion alone (the paper's animate). With
    --prompt the face is also edited (one output per prompt).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import animate as run

        options = build_options(AnimateOptions, ctx.params, skip=("image", "driver", "output", "latents"))
        result = run(image, driver, options, latents=latents, outputs=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
