"""`vsode edit`: change a video's appearance by text, keeping its motion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import EditOptions, RenderOptions
from .appopts import (
    AnchorOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    EditSeedOpt,
    FreeClipOpt,
    FreeEncoderOpt,
    GeneratorOpt,
    LatentsOpt,
    LayersOpt,
    ModelOpt,
    OptimizeOpt,
    OutputsOpt,
    PromptsOpt,
    RawPromptOpt,
    RefineOpt,
    SourceOpt,
    StrengthOpt,
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


def edit(
    ctx: typer.Context,
    video: Annotated[Optional[Path], typer.Argument(help="Input video or image (may be left out with --latents).", show_default=False)] = None,
    prompt: PromptsOpt = [],
    source: SourceOpt = EditOptions.source,
    strength: StrengthOpt = EditOptions.strength,
    raw_prompt: RawPromptOpt = EditOptions.raw_prompt,
    output: OutputsOpt = None,
    latents: LatentsOpt = None,
    model: ModelOpt = EditOptions.model,
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
    optimize: OptimizeOpt = EditOptions.optimize,
    layers: LayersOpt = EditOptions.layers,
    refine: RefineOpt = EditOptions.refine,
    seed: EditSeedOpt = RenderOptions.seed,
    encoder: FreeEncoderOpt = EditOptions.encoder,
    clip: FreeClipOpt = EditOptions.clip,
    generator: GeneratorOpt = RenderOptions.generator,
    no_cache: NoCacheOpt = not RenderOptions.use_cache,
    device: DeviceOpt = RenderOptions.device,
    cache_dir: CacheDirOpt = RenderOptions.cache_dir,
    force: ForceOpt = RenderOptions.force,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Edit a face video's appearance by text, keeping its motion.

    The style code is CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source)), the target being
    'a photo of a person with PROMPT' unless --raw-prompt. Several --prompt values make several
    outputs from one inversion and one ODE solve. Each output has the input's frame times, rate
    and audio; the face is FFHQ-aligned and the result pasted back into the full frames
    (--crop-only writes the crop). An image input gives an image.

    --optimize N then moves each prompt's edit by one W+ offset, found with CLIP (see the README's
    "Edit real faces"); --model none --optimize N edits with published weights alone. The default
    --model, auto, is that (with --optimize 12) where an FFHQ e4e/pSp encoder and CLIP ViT-B/32 are
    installed, and the demo model where they are not.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import edit as run

        options = build_options(EditOptions, ctx.params, skip=("video", "output", "latents"))
        result = run(video, options, latents=latents, outputs=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
