"""`vsode probe`: what vsode sees in a video or image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOpt, QuietOpt, VerboseOpt, session


def probe(
    path: Annotated[Path, typer.Argument(help="Video or image file to inspect.", show_default=False)],
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show a video's size, rotation, exact frame rate, frame count, duration and audio streams."""
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..video import probe as probe_video

        info = probe_video(path)
        data = info.to_dict()
        ui.result(data, human=_describe(data))


def _describe(d: dict) -> str:
    lines = [f"{d['path']}"]
    kind = "image" if d.get("is_image") else "video"
    lines.append(f"  {kind}: {d['width']}x{d['height']} {d.get('codec', '')} {d.get('pix_fmt', '')}".rstrip())
    if d.get("rotation"):
        lines.append(f"  rotation: {d['rotation']} degrees (applied when decoding)")
    rate = "variable" if d.get("variable_frame_rate") else "constant"
    lines.append(f"  frame rate: {d['fps']} fps ({rate})")
    lines.append(f"  frames: {d['frame_count']}   duration: {float(_num(d['duration'])):.3f} s")
    for a in d.get("audio", []):
        parts = [f"  audio #{a.get('index')}: {a.get('codec')}"]
        if a.get("sample_rate"):
            parts.append(f"{a['sample_rate']} Hz")
        if a.get("channels"):
            parts.append(f"{a['channels']} ch")
        lines.append(" ".join(parts))
    if not d.get("audio"):
        lines.append("  audio: none")
    return "\n".join(lines)


def _num(value: object) -> float:
    if isinstance(value, str) and "/" in value:
        n, den = value.split("/")
        return int(n) / int(den)
    return float(value)  # type: ignore[arg-type]
