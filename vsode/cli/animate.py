"""`vsode animate`: the face of an image, moved by a driver video."""

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


def animate(
    image: Annotated[Optional[Path], typer.Argument(help="Image (or video) giving the appearance (may be left out with --latents).", show_default=False)] = None,
    driver: Annotated[Path, typer.Option("--driver", "-d", help="Video whose motion, timing and audio the output has.", metavar="VIDEO", show_default=False)] = ...,  # type: ignore[assignment]
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
    """Animate the face of an image with the motion of a driver video.

    The content code is the image's inversion; the dynamics, frame times, rate and audio are the
    driver's, and the result is pasted back into the driver's frames (--crop-only writes the
    crop). With --prompt the face is also edited (one output per prompt).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import animate as run
        from ..options import AnimateOptions

        options = AnimateOptions(
            prompts=tuple(prompt), source=source, strength=strength, raw_prompt=raw_prompt,
            model=model, batch_size=batch_size, precision=precision, content=content, crf=crf,
            keep_audio=not no_audio, crop_only=crop_only, use_cache=not no_cache, device=device,
            align=align_mode(align), face_index=face_index,
            cache_dir=cache_dir, force=force,
        )
        result = run(image, driver, options, latents=latents, outputs=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
