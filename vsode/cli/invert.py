"""`vsode invert`: a video's frames to a self-describing W+ latents file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    CacheDirOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    QuietOpt,
    SeedOpt,
    VerboseOpt,
    session,
)


def invert(
    video: Annotated[Path, typer.Argument(help="Input video or image (an aligned face crop).", show_default=False)],
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
        str, typer.Option("--encoder", help="pSp/e4e checkpoint: a registry name or a file path.", metavar="NAME|PATH")
    ] = "psp-ffhq-encode",
    generator: Annotated[
        Optional[str],
        typer.Option("--generator", help="StyleGAN2 checkpoint for --refine and --preview (default: the encoder file's own decoder).", metavar="NAME|PATH"),
    ] = None,
    refine: Annotated[int, typer.Option("--refine", help="Latent-optimisation steps per frame after the encoder (0 = none).", min=0)] = 0,
    refine_lr: Annotated[float, typer.Option("--refine-lr", help="Learning rate of --refine.")] = 0.01,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Frames per batch; bounds memory.", min=1)] = 8,
    precision: Annotated[str, typer.Option("--precision", help="fp32 (reference), bf16 (fast) or auto (bf16 on CUDA).")] = "fp32",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor store latents in the cache.")] = False,
    align: Annotated[
        Optional[bool],
        typer.Option("--align/--no-align", help="FFHQ-align the face first (default: yes, unless the encoder's world needs none; falls back to the centre square when no face is found). --no-align centre-crops already aligned footage.", show_default=False),
    ] = None,
    face_index: Annotated[int, typer.Option("--face-index", help="Which face to follow when there are several: 0 the largest, 1 the next...", min=0)] = 0,
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
    (--latents). Inversions are cached per (input file, encoder, settings). The face is
    FFHQ-aligned first (MTCNN landmarks, a temporally smoothed crop; frames without a face keep
    an interpolated crop and are listed in the result); --no-align centre-crops a square instead.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..device import resolve_device, seed_everything
        from ..fileio import check_output_path
        from ..invert import InvertOptions, invert_video, load_models, render_preview
        from ..video import probe

        out = output or video.with_name(video.stem + ".latents.pt")
        check_output_path(out, force=force)
        if preview is not None:
            check_output_path(preview, force=force)
        options = InvertOptions(
            encoder=encoder,
            generator=generator,
            batch_size=batch_size,
            refine=refine,
            refine_lr=refine_lr,
            device=device,
            precision=precision,
            use_cache=not no_cache,
            cache_dir=cache_dir,
            align="auto" if align is None else ("on" if align else "off"),
            face_index=face_index,
            sigma_center=sigma_center,
            sigma_scale=sigma_scale,
            track=track,
        )
        if save_track is not None:
            check_output_path(save_track, force=force)
        seed_everything(seed)
        dev = resolve_device(device)
        info = probe(video)  # bad input is reported before any model is looked for
        with ui.progress.stage("load models"):
            models = load_models(options, dev)
        latents = invert_video(video, options, models=models, info=info, progress=ui.progress)
        latents.save(out, force=force)
        if save_track is not None and latents.alignment is not None:
            from ..align import Track

            Track.from_dict(latents.alignment).save(save_track, force=force)
        result = {"output": str(out), "frames": latents.frame_count, **latents.summary()}
        if preview is not None:
            written = render_preview(
                latents, models.generator, preview, size=preview_size, batch_size=batch_size,
                audio_from=video, force=force, device=dev, precision=precision, progress=ui.progress,
            )
            result["preview"] = written.to_dict()
        ui.result(result, human=f"wrote {out} ({latents.frame_count} frames)"
                  + (f" and {preview}" if preview is not None else ""))
