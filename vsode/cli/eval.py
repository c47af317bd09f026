"""`vsode eval`: score an output against the demo world's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import DeviceOpt, JsonOpt, QuietOpt, VerboseOpt, session
from .demo import ThreadsOpt


def eval_(
    output: Annotated[Path, typer.Argument(help="The video to score (an output of `vsode demo` or of an application).", show_default=False)],
    truth: Annotated[Path, typer.Option("--truth", help="Its ground truth: the <output>.truth.json `vsode demo` writes beside each output.", metavar="TRUTH.json", show_default=False)],
    kind: Annotated[Optional[str], typer.Option("--kind", help="What the output is: edit, animate, interpolate, extrapolate or blend (default: what the truth file says; a mismatch is an error).", metavar="KIND")] = None,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = 1,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Score a video against the demo world's ground truth.

    Recomputes the scores `vsode demo` reports for one output: what the tiny CLIP reads on its
    frames (edit accuracy, attributes kept, frame-to-frame flips), its frame difference against the
    source's, and per kind how well an edit's change agrees with its captions' direction in CLIP
    (edit, beside the true edit's), the PSNR at held-out times beside frame blend, W+ lerp and the
    motionless content code (interpolate), over the first 0.5 s past the end beside repeating the
    last frame (extrapolate), the correlation of the measured mouth and head trajectories with the
    driver's (animate), or the motion energy inside and outside the mask (blend).

    Interpolation's and extrapolation's baselines are built from what the application received:
    the input video the truth file names (its "input", beside the truth file), decoded, through the
    demo encoder, at the output size. The same built from the true frames are reported as upper
    bounds. The model-free control (the input's inversions lerped between input frames, or the last
    one held) gives the ODE gain: the output's PSNR minus the control's. A truth file without
    "input" gets the upper bounds only. Where the output was rendered with a tuned generator
    (`vsode demo --tune N`), the truth file names the tuned latents (its "latents"), and the
    baselines that go through the generator take their W+ and render with the same tuned weights.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..demo.evaluate import KINDS, Readers, evaluate_file
        from ..device import resolve_device
        from ..errors import InputError

        if kind is not None and kind not in KINDS:
            raise InputError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
        if threads < 0:
            raise InputError(f"--threads {threads} must be 1 or more (0: torch's default)")
        if threads:
            import torch

            torch.set_num_threads(threads)
        result = evaluate_file(output, truth, kind=kind, readers=Readers(device=str(resolve_device(device))),
                               progress=ui.progress)
        ui.result(result, human=render(result))


def render(result: dict[str, Any]) -> str:
    """The scores as indented ``key: value`` lines."""
    lines = [f"{result['output']}: {result['kind']}, {result['frames']} frames"]

    def walk(value: Any, depth: int, key: str) -> None:
        pad = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for k, v in value.items():
                walk(v, depth + 1, k)
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"{pad}{key}: {text}")

    for k, v in result.items():
        if k not in ("output", "kind", "frames"):
            walk(v, 1, k)
    return "\n".join(lines)
