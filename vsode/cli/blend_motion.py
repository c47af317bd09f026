"""`vsode blend-motion`: one video's motion inside a region of the face, another's elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..options import BlendOptions, RenderOptions
from .appopts import (
    AnchorOpt,
    ContentOpt,
    CrfOpt,
    CropOnlyOpt,
    DetailOpt,
    GeneratorOpt,
    LatentsOpt,
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


def blend_motion(
    ctx: typer.Context,
    videos: Annotated[list[Path], typer.Argument(help="A B: A gives the appearance and the motion outside the region, B the motion inside (with --latents for A, give only B).", metavar="A B", show_default=False)],
    region: Annotated[
        str,
        typer.Option("--region", "-r", help="top, bottom, left, right, top-left, top-right, bottom-left, bottom-right, eyes, mouth or all (join with +); a 0/1 grid with one row per grid row, e.g. 00000000/00000000/00000000/00000000/00000000/00111100/00111100/00000000; or a grayscale mask PNG the grid's size (white = B).", metavar="NAME|MASK", show_default=False),
    ],
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
    detail: DetailOpt = BlendOptions.detail,
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
    """Blend the motion of two videos: B's inside the region of the face, A's elsewhere.

    The region is a set of cells of the dynamics grid (8x8 for faces: eyes = rows 2-3, columns
    1-6; mouth = rows 5-6, columns 2-5, counted from 0 at the top left). Anchored (the default),
    both videos are inverted: outside the region the output is A on its own inversions, inside it
    B's inversions with A's content put in by the model, laid over A with the region's mask, and
    outside it A's own detail that its inversions miss is added back (--detail none: not), so
    A outside the region is A's own frames.
    --anchor none blends the motion state instead, z_d = M·z_d(B) + (1 − M)·z_d(A) per cell, at
    every frame time. The appearance, frame times, rate and audio are A's, and the result is
    pasted back into A's frames (--crop-only writes the crop).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..api import blend_motion as run
        from ..errors import InputError

        options = build_options(BlendOptions, ctx.params, skip=("videos", "output", "latents"))
        wanted = 1 if latents is not None else 2
        if len(videos) not in (wanted, 2):
            raise InputError("give two videos, A and B (or only B with --latents for A)")
        video_a, video_b = (videos[0], videos[1]) if len(videos) == 2 else (None, videos[0])
        result = run(video_a, video_b, options, latents=latents, output=output, progress=ui.progress)
        ui.result(result.to_dict(), human=report(result))
