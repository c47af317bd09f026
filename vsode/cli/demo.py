"""`vsode demo`: the product end to end on the embedded demo world, offline."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from .common import DeviceOpt, ForceOpt, JsonOpt, QuietOpt, VerboseOpt, session


def demo(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the demo's videos, sheet and report.")] = Path("vsode-demo"),
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the rendered clips in seconds.")] = 3.0,
    fps: Annotated[str, typer.Option("--fps", help="Frame rate of the rendered clips (a rational such as 24 or 30000/1001).")] = "24",
    size: Annotated[int, typer.Option("--size", help="Side of the rendered videos in pixels: 64, 128 or 256.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Picks the faces and their motion.")] = 0,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Render the demo world's clips and run vsode's models on them, with scores.

    Writes source.mp4 and driver.mp4 (with a speech-like audio track that follows the mouth),
    portrait.png, the source's W+ latents and their reconstruction video, contact_sheet.png
    (rows: source, reconstruction, driver; columns: time) and report.json with the scores measured
    against the renderer's ground truth. Everything runs offline on the models shipped with vsode.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..demo.showcase import DemoOptions, run_demo
        from ..device import resolve_device
        from ..errors import InputError

        try:
            rate = Fraction(fps)
        except (ValueError, ZeroDivisionError) as err:
            raise InputError(f"--fps {fps!r} is not a number or a ratio like 30000/1001") from err
        options = DemoOptions(seconds=seconds, fps=rate, size=size, seed=seed, force=force,
                              device=str(resolve_device(device)))
        report = run_demo(out_dir, options, progress=ui.progress)
        lines = [f"wrote the demo to {out_dir}/"]
        if "psnr_db" in report.get("inversion", {}):
            lines.append(f"  inversion PSNR vs ground truth: {report['inversion']['psnr_db']} dB")
        if "clip_zero_shot" in report:
            acc = ", ".join(f"{k} {v:.0%}" for k, v in report["clip_zero_shot"].items())
            lines.append(f"  CLIP zero-shot attributes of the source: {acc}")
        lines.append(f"  look at {out_dir}/contact_sheet.png and the videos beside it")
        ui.result(report, human="\n".join(lines))
