"""`vsode train`: train a VidStyleODE on a prepared dataset (one process, or several with torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    CacheDirOpt,
    DeprecatedForceOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    RestartOpt,
    SeedOpt,
    VerboseOpt,
    restart_flag,
    session,
)


def _pairs(values: list[str]) -> dict[str, str]:
    from ..errors import InputError

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: write KEY=VALUE, e.g. --set dynamics.dtype=float64")
        out[key.strip()] = value
    return out


def train(
    data_dir: Annotated[Path, typer.Argument(help="Dataset folder written by `vsode prepare`.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder: config, stats.jsonl, checkpoints, samples; an existing run with the same settings resumes.", metavar="RUN_DIR")
    ],
    preset: Annotated[str, typer.Option("--preset", help="Model preset: ffhq (the released face model), fashion, demo or tiny.")] = "ffhq",
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this global step (default: the preset's; 100000 for ffhq).", min=0)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Videos per step and process (default: the preset's; 2 for ffhq).", min=1)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Base rate η of modulation + mapper; the dynamics encoder uses 5η (default batch x processes x 2e-6).")] = None,
    sampling: Annotated[Optional[str], typer.Option("--sampling", help="static, interpolate, extrapolate or mixed (one of the two per step): hide frames from the ODE-GRU but supervise them.")] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a training option or model config field, e.g. --set rec.hi=0.5 --set dynamics.dtype=float64 (repeatable).", metavar="KEY=VALUE"),
    ] = [],
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Steps between checkpoints (default 1000).", min=0)] = None,
    sample_every: Annotated[Optional[int], typer.Option("--sample-every", help="Steps between sample videos (default 5000; 0 = never).", min=0)] = None,
    val_every: Annotated[Optional[int], typer.Option("--val-every", help="Steps between validation passes (default 5000; 0 = never).", min=0)] = None,
    generator: Annotated[Optional[str], typer.Option("--generator", help="StyleGAN2 checkpoint instead of the preset's.", metavar="NAME|PATH")] = None,
    clip: Annotated[Optional[str], typer.Option("--clip", help="CLIP checkpoint instead of the preset's.", metavar="NAME|PATH")] = None,
    dino: Annotated[Optional[str], typer.Option("--dino", help="DINO ViT checkpoint instead of the preset's.", metavar="NAME|PATH")] = None,
    no_dino: Annotated[bool, typer.Option("--no-dino", help="Train without the DINO structure/appearance losses.")] = False,
    device: DeviceOpt = "auto",
    seed: SeedOpt = None,
    cache_dir: CacheDirOpt = None,
    restart: RestartOpt = False,
    force: DeprecatedForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Train the VidStyleODE dynamics encoder, modulation network and mapper.

    The generator, CLIP and DINO stay frozen; they are loaded by the names the preset gives (or
    --generator/--clip/--dino) and recorded with their SHA-256 in every checkpoint. Running the
    same command again resumes exactly from RUN_DIR/checkpoints/last.pt (--restart starts the run
    over from step 0, with any settings); Ctrl-C or SIGTERM saves
    a checkpoint first. RUN_DIR/model.pt is the trained model for --model. For several processes
    or machines, start the same command with torchrun (see the README).
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..train.loop import train_preset

        restart = restart_flag(ui, restart, force)
        changes: dict[str, object] = dict(_pairs(set_))
        for key, value in (
            ("max_steps", max_steps), ("batch_size", batch_size), ("lr", lr), ("sampling", sampling),
            ("checkpoint_every", checkpoint_every), ("sample_every", sample_every), ("val_every", val_every),
            ("seed", seed),
        ):
            if value is not None:
                changes[key] = value
        result = train_preset(
            data_dir, output, preset=preset, changes=changes, generator=generator, clip=clip, dino=dino,
            use_dino=not no_dino, cache_dir=cache_dir, device=device, restart=restart,
            progress=ui.progress, log=lambda entry: ui.debug(str(entry)), note=ui.info,
        )
        data = {
            "run_dir": str(result.run_dir),
            "step": result.step,
            "resumed_from": result.resumed_from,
            "final_loss": result.losses[-1] if result.losses else None,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "model": str(result.model_path) if result.model_path else None,
            "validation": result.validation,
            "timings": result.timings,
        }
        human = f"trained to step {result.step}; model: {result.model_path}"
        if result.validation:
            human += f" (val PSNR {result.validation['psnr']:.2f} dB)"
        ui.result(data, human=human)
