"""`vsode invert`: a video's frames to a self-describing W+ latents file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import DEFAULT_ENCODER
from .common import (
    AlignOpt,
    BatchOpt,
    CacheDirOpt,
    DeviceOpt,
    FaceIndexOpt,
    ForceOpt,
    JsonOpt,
    NoCacheOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
    TuneOpt,
    VerboseOpt,
    build_options,
    session,
)


def invert(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(help="Input video or image of a face.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Latents file to write (default: INPUT stem + .latents.pt).", metavar="FILE"),
    ] = None,
    preview: Annotated[
        Optional[Path],
        typer.Option("--preview", help="Also write G(W+) of every frame to this video, with the input's timing and audio.", metavar="FILE"),
    ] = None,
    preview_size: Annotated[int, typer.Option("--preview-size", help="Side of the preview frames in pixels.", min=16)] = 256,
    encoder: Annotated[
        str,
        typer.Option("--encoder", help="pSp/e4e checkpoint: a registry name or a file path. The default is the encoder of the applications' default --model, so that its latents fit them (psp-ffhq-encode for real faces).", metavar="NAME|PATH"),
    ] = DEFAULT_ENCODER,
    generator: Annotated[
        Optional[str],
        typer.Option("--generator", help="StyleGAN2 checkpoint for --refine and --preview (default: the encoder file's own decoder).", metavar="NAME|PATH"),
    ] = None,
    refine: Annotated[int, typer.Option("--refine", help="Latent-optimisation steps per frame after the encoder (0 = none).", min=0)] = 0,
    refine_lr: Annotated[float, typer.Option("--refine-lr", help="Learning rate of --refine.")] = 0.01,
    tune: TuneOpt = 0,
    batch_size: BatchOpt = 8,
    precision: PrecisionOpt = "fp32",
    no_cache: NoCacheOpt = False,
    align: AlignOpt = None,
    face_index: FaceIndexOpt = 0,
    track: Annotated[
        Optional[Path], typer.Option("--track", help="Use a saved alignment track (vsode align --save-track) instead of detecting.", metavar="FILE")
    ] = None,
    save_track: Annotated[
        Optional[Path], typer.Option("--save-track", help="Also write the alignment track as JSON, for identical re-runs.", metavar="FILE")
    ] = None,
    sigma_center: Annotated[float, typer.Option("--sigma-center", help="Temporal smoothing of the crop centre, in frames.", min=0.0)] = 1.0,
    sigma_scale: Annotated[float, typer.Option("--sigma-scale", help="Temporal smoothing of the crop scale and rotation, in frames.", min=0.0)] = 3.0,
    device: DeviceOpt = "auto",
    seed: SeedOpt = None,
    cache_dir: CacheDirOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Invert every frame of a video to StyleGAN2 W+ codes with a pSp or e4e encoder.

    The latents file keeps the exact timestamps, frame rate, source size, crop, and the names and
    SHA-256 of the encoder and generator, so later commands can use it instead of the video
    (--latents). Inversions are cached per (input file, encoder, settings). For an encoder of
    real faces the face is FFHQ-aligned first (MTCNN landmarks, a temporally smoothed crop;
    frames without a face keep an interpolated crop and are listed in the result); --no-align,
    or an encoder that needs no alignment such as the default demo one, takes the centre square.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import invert as run
        from ..invert import InvertOptions

        options = build_options(
            InvertOptions, ctx.params,
            skip=("video", "output", "preview", "preview_size", "save_track", "seed", "force"),
            seed=seed,
        )
        result = run(video, options, output=output, preview=preview, preview_size=preview_size,
                     save_track=save_track, seed=seed, force=force, progress=ui.progress)
        ui.result(result, human=f"wrote {result['output']} ({result['frames']} frames)"
                  + (f" and {preview}" if preview is not None else ""))
