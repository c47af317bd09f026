"""`vsode prepare`: a folder of videos to a training folder of frames, W+ latents and captions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    AlignOpt,
    BatchOpt,
    CacheDirOpt,
    DeprecatedForceOpt,
    DeviceOpt,
    FaceIndexOpt,
    JsonOpt,
    PrecisionOpt,
    QuietOpt,
    RestartOpt,
    SeedOpt,
    VerboseOpt,
    build_options,
    restart_flag,
    session,
)


def prepare(
    ctx: typer.Context,
    videos_dir: Annotated[
        Path,
        typer.Argument(help="Folder of videos (or a demo dataset written by vsode's demo tools).", show_default=False),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Training folder to write (resumes if it exists).", metavar="DIR", show_default=False)
    ],
    size: Annotated[
        Optional[int],
        typer.Option("--size", help="Side of the square training frames [default: 256; a demo dataset: its own].", min=16, show_default=False),
    ] = None,
    encoder: Annotated[
        Optional[str],
        typer.Option("--encoder", help="pSp/e4e checkpoint, registry name or path [default: psp-ffhq-encode; a demo dataset: psp-demo].", metavar="NAME|PATH", show_default=False),
    ] = None,
    captions: Annotated[
        Optional[Path],
        typer.Option("--captions", help="CSV (video,caption) or JSON lines ({\"video\", \"caption\"}) of captions; wins over <stem>.txt files.", metavar="FILE"),
    ] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of the videos held out for validation (a demo dataset keeps its split).")] = 0.1,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Videos decoded at once; the inversion runs one at a time.", min=1)] = 1,
    batch_size: BatchOpt = 8,
    precision: PrecisionOpt = "fp32",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out videos that cannot be read (listed in the manifest) instead of failing.")] = False,
    align: AlignOpt = None,
    face_index: FaceIndexOpt = 0,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    cache_dir: CacheDirOpt = None,
    restart: RestartOpt = False,
    force: DeprecatedForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Turn a folder of videos into a training folder for `vsode train`.

    Each video is decoded with its exact timestamps and its face FFHQ-aligned, as `vsode invert`
    does (the centre square with --no-align, for an encoder that needs no alignment, or for a
    video without a face; a demo dataset is used as it is), resized to --size and written as PNG
    frames; its frames are inverted to W+ with --encoder. A caption comes from --captions, else
    <stem>.txt or <stem>/text_descriptions.txt beside the video. Running again resumes: finished
    videos are skipped. Settings other than the folder's are an error unless --restart (which
    redoes all).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..train.prepare import PrepareOptions, prepare_dataset

        options = build_options(
            PrepareOptions, ctx.params, skip=("videos_dir", "output", "restart"),
            seed=0 if seed is None else seed,  # decides the train/validation split
            force=restart_flag(ui, restart, force),
        )
        result = prepare_dataset(videos_dir, output, options, progress=ui.progress)
        for name, reason in result.bad:
            ui.info(f"left out {name}: {reason}")
        human = (
            f"prepared {output}: {result.n_train} training + {result.n_val} validation videos, "
            f"{result.n_frames} frames ({len(result.prepared)} new, {len(result.skipped)} already done"
            + (f", {len(result.bad)} left out" if result.bad else "") + ")"
        )
        ui.result(result.to_dict(), human=human)
