"""`vsode edit`: change a video's appearance by text, keeping its motion."""

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
    OutputsOpt,
    PrecisionOpt,
    PromptsOpt,
    RawPromptOpt,
    SourceOpt,
    StrengthOpt,
    align_mode,
    report,
)
from .common import CacheDirOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, VerboseOpt, session


def edit(
    video: Annotated[Optional[Path], typer.Argument(help="Input video or image (may be left out with --latents).", show_default=False)] = None,
    prompt: PromptsOpt = [],
    source: SourceOpt = "a photo of a person",
    strength: StrengthOpt = 1.3,
    raw_prompt: RawPromptOpt = False,
    output: OutputsOpt = None,
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
    """Edit a face video's appearance by text, keeping its motion.

    The style code is CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source)), the target being
    'a photo of a person with PROMPT' unless --raw-prompt. Several --prompt values make several
    outputs from one inversion and one ODE solve. Each output has the input's frame times, rate
    and audio; the face is FFHQ-aligned and the result pasted back into the full frames
    (--crop-only writes the crop). An image input gives an image.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import edit as run
        from ..options import EditOptions

        options = EditOptions(
            prompts=tuple(prompt), source=source, strength=strength, raw_prompt=raw_prompt,
            model=model, batch_size=batch_size, precision=precision, content=content, crf=crf,
            keep_audio=not no_audio, crop_only=crop_only, use_cache=not no_cache, device=device,
            align=align_mode(align), face_index=face_index,
            cache_dir=cache_dir, force=force,
        )
        result = run(video, options, latents=latents, outputs=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
