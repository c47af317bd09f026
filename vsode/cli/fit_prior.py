"""`vsode fit-prior`: fit the prior `vsode generate` samples, for a trained or imported model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import CacheDirOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, VerboseOpt, session


def fit_prior(
    model: Annotated[str, typer.Argument(help="Trained VidStyleODE: a registry name or a checkpoint file.", metavar="MODEL", show_default=False)],
    data_dir: Annotated[Path, typer.Argument(help="Dataset folder written by `vsode prepare` (the model's training clips).", metavar="DATA", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The model file to write: MODEL's weights and records with the prior added (may be MODEL itself, with --force).", metavar="FILE", show_default=False)],
    split: Annotated[str, typer.Option("--split", help="Which clips of DATA: train, val or all.", metavar="train|val|all")] = "train",
    components: Annotated[int, typer.Option("--components", help="Principal directions kept for the motion state and for the content code.", metavar="K", min=1)] = 16,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Encode at most the first N frames of each clip (default: all).", metavar="N", min=2, show_default=False)] = None,
    calibration_clips: Annotated[int, typer.Option("--calibration-clips", help="Clips the prior's motion gain is calibrated on: samples rendered at their times are made to move as much as they do (needs the model's generator and CLIP); 0 keeps the model's motion as it is.", metavar="N", min=0)] = 16,
    device: DeviceOpt = "auto",
    cache_dir: CacheDirOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fit a model's prior over its clips' motion states and content codes.

    Every clip of DATA is encoded as the applications encode a video (z_d0 from its frames, z_C
    the mean of its W+); a Gaussian with the top K principal directions is fitted to each and
    stored in the model file, where `vsode generate` samples it. Then the prior's motion gain is
    calibrated: videos sampled from it, rendered at the times of N clips, are made to move (pixel
    change per frame) as much as those clips do. `vsode train` fits one at the end of a run; this
    command is for other models, e.g. one brought in with `vsode import-official`.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..train.prior import fit_prior_file

        result = fit_prior_file(model, data_dir, output, split=split, components=components,
                                max_frames=max_frames, calibration_clips=calibration_clips, device=device, cache_dir=cache_dir, force=force, progress=ui.progress)
        m, c = result["motion"], result["content"]
        ui.result(result, human=f"wrote {output}: a prior over {result['clips']} clips (motion: {m['components']} "
                                f"directions, {m['explained']:.0%} of the variance; content: {c['components']}, "
                                f"{c['explained']:.0%}; motion gain {result['motion_gain']:.2f})")
