"""`vsode prepare`: a folder of videos to a training folder of frames, W+ latents and captions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import CacheDirOpt, DeviceOpt, JsonOpt, QuietOpt, SeedOpt, VerboseOpt, session


def prepare(
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
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Frames per decode and encoder batch; bounds memory.", min=1)] = 8,
    precision: Annotated[str, typer.Option("--precision", help="Encoder precision: fp32 (reference), bf16 (fast) or auto (bf16 on CUDA).")] = "fp32",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out videos that cannot be read (listed in the manifest) instead of failing.")] = False,
    align: Annotated[
        Optional[bool],
        typer.Option("--align/--no-align", help="FFHQ-align faces first (default: yes, unless the encoder's world needs none; a video with no face keeps the centre square). --no-align centre-crops aligned footage.", show_default=False),
    ] = None,
    face_index: Annotated[int, typer.Option("--face-index", help="Which face to follow when there are several: 0 the largest.", min=0)] = 0,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    cache_dir: CacheDirOpt = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Redo every video, and accept settings other than the folder's.")
    ] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Turn a folder of videos into a training folder for `vsode train`.

    Each video is decoded with its exact timestamps, centre-cropped to a square (no face alignment
    yet: give aligned footage), resized to --size and written as PNG frames; its frames are
    inverted to W+ with --encoder. A caption comes from --captions, else <stem>.txt or
    <stem>/text_descriptions.txt beside the video. Running again resumes: finished videos are
    skipped. Settings other than the folder's are an error unless --force (which redoes all).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..train.prepare import PrepareOptions, prepare_dataset

        options = PrepareOptions(
            size=size,
            encoder=encoder,
            batch_size=batch_size,
            device=device,
            precision=precision,
            val_fraction=val_fraction,
            seed=0 if seed is None else seed,  # decides the train/validation split
            jobs=jobs,
            skip_bad=skip_bad,
            align="auto" if align is None else ("on" if align else "off"),
            face_index=face_index,
            captions=captions,
            force=force,
            cache_dir=cache_dir,
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
