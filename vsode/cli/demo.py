"""`vsode demo`: the product end to end on the embedded demo world, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .appopts import AnchorOpt, ModelOpt
from .common import DeviceOpt, ForceOpt, JsonOpt, QuietOpt, TuneOpt, VerboseOpt, session

ThreadsOpt = Annotated[
    int,
    typer.Option("--threads", help="Torch CPU threads (1 is fastest for the tiny demo models, above all on a busy machine; 0: torch's default).", metavar="N"),
]


def demo(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the demo's videos, sheet and report.")] = Path("vsode-demo"),
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the rendered clips in seconds (at least 0.67).")] = 3.0,
    fps: Annotated[str, typer.Option("--fps", help="Frame rate of the rendered clips: 24, 29.97 or 30000/1001 (read like interpolate's --fps).", metavar="R")] = "24",
    size: Annotated[int, typer.Option("--size", help="Side of the rendered videos in pixels: 64, 128 or 256.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Picks the faces and their motion.")] = 0,
    model: ModelOpt = "vidstyleode-demo",
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = 1,
    anchor: AnchorOpt = "inversion",
    tune: TuneOpt = 0,
    detail: Annotated[Optional[str], typer.Option("--detail", help="Interpolate's and blend-motion's --detail: 'input' adds the input's own detail that its inversions miss (interpolation is scored against a control that has it too), 'none' renders the codes alone (default: input when anchored).", metavar="none|input", show_default=False)] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Render the demo world's clips, run every application on them, and score the results.

    Renders a source clip (and the same at 8 and at 3 fps), a driver clip and a portrait, with speech-like
    audio that follows the mouth; inverts the source; runs edit (a new hair and a new eye colour,
    from the source's own caption to that caption with the colour changed, as in training),
    animate (the portrait moved by the driver), interpolate (8 -> 24 fps, and 3 -> 24 fps),
    extrapolate (+1 s) and blend-motion (the driver's mouth) with --model (the built-in demo model
    by default). Writes the videos, a <output>.truth.json ground truth beside each output (for
    `vsode eval`), contact_sheet.png (rows: inputs and applications, columns: time) and
    report.json with every score measured against the renderer's ground truth. Interpolation and
    extrapolation are compared with baselines built from the decoded input video (the true frames'
    are upper bounds) and with a model-free control, the input's own inversions lerped or held:
    the ODE gain is the output's PSNR minus the control's. Everything runs offline.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..demo.showcase import DemoOptions, run_demo
        from ..device import resolve_device

        from ..options import parse_rate

        options = DemoOptions(seconds=seconds, fps=parse_rate(fps), size=size, seed=seed, model=model, force=force,
                              anchor=anchor, tune=tune, detail=detail,
                              device=str(resolve_device(device)), threads=threads)
        report = run_demo(out_dir, options, progress=ui.progress)
        ui.result(report, human=summary_lines(report, out_dir))


def summary_lines(report: dict[str, Any], out_dir: Path) -> str:
    """The headline scores, a line per application."""
    def num(value: Any, unit: str = "", digits: int = 2) -> str:
        if isinstance(value, (int, float)):
            return f"{value:.{digits}f}{unit}"
        return "n/a" if value is None else str(value)

    def pct(value: Any) -> str:
        return f"{value:.0%}" if isinstance(value, (int, float)) else "n/a"

    lines = [f"wrote the demo to {out_dir}/ (model {report['model']['name']}, anchored on "
             f"{report.get('anchor', 'inversion')})"]
    lines.append(f"  invert:       PSNR vs ground truth {report['inversion']['psnr_db']} dB")
    acc = ", ".join(f"{k} {v:.0%}" for k, v in report["clip_zero_shot"].items())
    lines.append(f"  CLIP zero-shot attributes of the source: {acc}")
    s = report["summary"]
    for name in ("edit-hair", "edit-eyes"):
        e = s[name]
        lines.append(f"  edit '{e['prompt']}': accuracy {pct(e['accuracy'])}, others unchanged "
                     f"{pct(e['others_unchanged'])}, attribute flips {pct(e['flip_rate'])} of frames, "
                     f"frame difference x{num(e['frame_diff_ratio'])} the source's, PSNR vs the edited truth "
                     f"{num(e.get('psnr_db'), ' dB')}, CLIP direction "
                     f"{num(e['clip_direction'])} (true edit {num(e['true_clip_direction'])})")
    a, e, b = s["animate"], s["extrapolate"], s["blend-motion"]
    lines.append(f"  animate:      r(mouth) {num(a['r_mouth_open'])}, r(head x) {num(a['r_head_x'])}, "
                 f"r(head y) {num(a['r_head_y'])}; portrait attributes kept {pct(a['portrait_attributes'])} "
                 f"(pixels {pct(a.get('portrait_pixel_attributes'))})")
    detailed = ", with the input's detail" if report.get("detail") == "input" else ""
    for name, rate in (("interpolate", "8"), ("interpolate-sparse", "3")):
        i = s[name]
        lines.append(
            f"  interpolate {rate} -> 24 fps: {num(i['psnr_db'], ' dB')} at held-out times; control (the input's "
            f"inversions, lerped{detailed}) {num(i['control_psnr_db'], ' dB')}, ODE gain {num(i['ode_gain_db'], ' dB')}; "
            f"from the input: frame blend {num(i.get('frame_blend_psnr_db'), ' dB')}, content code alone "
            f"{num(i.get('content_code_psnr_db'), ' dB')}; upper bounds from the true frames: inversion "
            f"{num(i['inversion_upper_bound_psnr_db'], ' dB')}, frame blend "
            f"{num(i['frame_blend_upper_bound_psnr_db'], ' dB')}, W+ lerp "
            f"{num(i['wplus_lerp_upper_bound_psnr_db'], ' dB')}")
    lines += [
        f"  extrapolate:  {num(e['psnr_db'], ' dB')} over the first 0.5 s; control (the last input frame's "
        f"inversion, held) {num(e['control_psnr_db'], ' dB')}, ODE gain {num(e['ode_gain_db'], ' dB')}; repeat "
        f"the last input frame {num(e.get('repeat_last_psnr_db'), ' dB')} (upper bound from the true frame "
        f"{num(e['repeat_last_upper_bound_psnr_db'], ' dB')})",
        f"  blend-motion: energy inside r(B) {num(b['inside_corr_b'])} vs r(A) {num(b['inside_corr_a'])}, "
        f"outside r(A) {num(b['outside_corr_a'])} vs r(B) {num(b['outside_corr_b'])}; outside the region "
        f"{num(b.get('outside_psnr_db'), ' dB')} (the input itself {num(b.get('outside_input_psnr_db'), ' dB')}, "
        f"its inversion {num(b.get('outside_inversion_psnr_db'), ' dB')})",
    ]
    if "animate-poster" in s:
        p = s["animate-poster"]
        lines.append(f"  animate, poster generator: r(mouth) {num(p['r_mouth_open'])}, r(head x) {num(p['r_head_x'])}, "
                     f"r(head y) {num(p['r_head_y'])} (at most {num(p['r_change_max'])} from the unswapped; "
                     f"its motion against the unswapped one's: r >= {num(p.get('r_vs_unswapped_min'))}); "
                     f"palette distance {num(p['palette_distance'], digits=3)} (unswapped "
                     f"{num(p['unswapped_palette_distance'], digits=3)})")
    if "generate" in s:
        g = s["generate"]
        lines.append(f"  generate:     {g['distinct_looks']} distinct looks in 2 samples; motion energy "
                     f"x{num(g['energy_ratio'])} the real clips', x{num(g['energy_ratio_vs_animate'])} animate's")
    else:
        lines.append(f"  generate:     {report['scores'].get('generate', {}).get('skipped', 'not run')}")
    lines.append(f"  look at {out_dir}/contact_sheet.png and the videos beside it; report.json has every score")
    return "\n".join(lines)
