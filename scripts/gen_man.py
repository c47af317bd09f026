#!/usr/bin/env python3
"""Generate the roff man pages in man/ from the Typer app.

    python scripts/gen_man.py          # rewrite man/*.1
    python scripts/gen_man.py --check  # exit 1 if man/ is out of date

The pages are committed; tests/test_cli_docs.py fails when the CLI and man/ disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import typer.main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsode import __version__  # noqa: E402
from vsode.cli.app import app  # noqa: E402

DATE = "2026-11"

EXIT_STATUS = [
    ("0", "Success."),
    ("1", "Runtime failure (ffmpeg failed, a download's checksum did not match, an internal error)."),
    ("2", "Usage error or bad input (unknown option, unreadable video, output exists without --force)."),
    ("3", "A model the command needs is not installed; the message names the vsode download command to run."),
    ("130", "Interrupted (Ctrl-C or SIGTERM); no partial output file is left behind."),
]

ENVIRONMENT = [
    ("VSODE_CACHE_DIR", "Model cache folder; --cache-dir overrides it. Default: the platform user cache dir (e.g. ~/.cache/vsode)."),
    ("VSODE_OFFLINE", "When 1, never touch the network; a missing model is reported with how to get it."),
    ("VSODE_MIRROR", "Base URL tried first for downloads: $VSODE_MIRROR/<file name>."),
    ("VSODE_FFMPEG", "Path of the ffmpeg binary to use instead of the one bundled by imageio-ffmpeg."),
    ("NO_COLOR", "When set, no colours in messages."),
]


def esc(text: str) -> str:
    """Escape text for roff: backslashes, leading dots/quotes, hyphens in flags."""
    text = text.replace("\\", "\\e")
    lines = []
    for line in text.splitlines() or [""]:
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def flag(text: str) -> str:
    return esc(text).replace("-", "\\-")


def param_signature(param: Any) -> str:
    if param.param_type_name == "argument":
        name = (param.metavar or param.name).upper()
        if param.nargs == -1:
            name += "..."
        return name if param.required else f"[{name}]"
    opts = ", ".join(list(param.opts) + list(param.secondary_opts or ()))
    if not param.is_flag:
        opts += f" {param.metavar or param.name.upper()}"
    return opts


def command_page(name: str, cmd: Any) -> str:
    out = [
        f'.TH VSODE-{name.upper()} 1 "{DATE}" "vsode {__version__}" "vsode manual"',
        ".SH NAME",
        f"vsode\\-{flag(name)} \\- {esc((cmd.short_help or cmd.help or '').splitlines()[0].rstrip('.'))}",
        ".SH SYNOPSIS",
    ]
    args = " ".join(param_signature(p) for p in cmd.params if p.param_type_name == "argument")
    out.append(f".B vsode {flag(name)}\n[OPTIONS] {flag(args)}".rstrip())
    out += [".SH DESCRIPTION", esc((cmd.help or "").strip())]
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    if arguments:
        out.append(".SH ARGUMENTS")
        for p in arguments:
            out += [".TP", f".B {flag(param_signature(p))}", esc(getattr(p, "help", None) or "")]
    out.append(".SH OPTIONS")
    for p in cmd.params:
        if p.param_type_name == "option" and not p.hidden:
            out += [".TP", f".B {flag(param_signature(p))}", esc(p.help or "")]
            if p.default not in (None, False, (), []) and not p.is_flag and p.show_default is not False:
                out.append(f"Default: {esc(str(p.default))}.")
    out += [".TP", ".B \\-h, \\-\\-help", "Show the help and exit."]
    out.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        out += [".TP", f".B {code}", esc(text)]
    out += [".SH SEE ALSO", ".BR vsode (1)"]
    return "\n".join(out) + "\n"


def main_page(group: Any) -> str:
    out = [
        f'.TH VSODE 1 "{DATE}" "vsode {__version__}" "vsode manual"',
        ".SH NAME",
        "vsode \\- edit faces in video with VidStyleODE: appearance and motion, edited apart",
        ".SH SYNOPSIS",
        ".B vsode",
        "[\\-\\-version] COMMAND [OPTIONS] [ARGS]...",
        ".SH DESCRIPTION",
        esc(
            "vsode explains a video as a global StyleGAN2 W+ content code plus a latent neural ODE of "
            "its motion, so appearance and motion can be edited apart. It downloads and caches "
            "checkpoints, inverts videos into W+ latents, solves the latent ODE at the frame times "
            "asked for, and streams frames to ffmpeg.\n\n"
            "Every command prints progress on stderr only; with --json it prints one JSON result on "
            "stdout for scripts. Outputs are written to a temporary file beside the target and renamed "
            "when complete; an existing file is never overwritten without --force."
        ),
        ".SH OPTIONS",
        ".TP",
        ".B \\-\\-version",
        "Print the version and exit.",
        ".TP",
        ".B \\-h, \\-\\-help",
        "Show the help and exit.",
        ".SH COMMANDS",
    ]
    for name, cmd in group.commands.items():
        out += [".TP", f".B {flag(name)}", esc((cmd.short_help or cmd.help or "").splitlines()[0])]
        out.append(f"See \\fBvsode\\-{flag(name)}\\fR(1).")
    out.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        out += [".TP", f".B {code}", esc(text)]
    out.append(".SH ENVIRONMENT")
    for var, text in ENVIRONMENT:
        out += [".TP", f".B {var}", esc(text)]
    out += [".SH SEE ALSO", ", ".join(f".BR vsode\\-{flag(n)} (1)" for n in group.commands) or ""]
    return "\n".join(out) + "\n"


def render_all() -> dict[str, str]:
    group = typer.main.get_command(app)
    assert hasattr(group, "commands"), type(group)
    pages = {"vsode.1": main_page(group)}
    for name, cmd in group.commands.items():
        pages[f"vsode-{name}.1"] = command_page(name, cmd)
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if man/ is out of date")
    args = parser.parse_args()
    man = ROOT / "man"
    pages = render_all()
    stale = [n for n, text in pages.items() if not (man / n).exists() or (man / n).read_text() != text]
    extra = [p.name for p in man.glob("*.1") if p.name not in pages]
    if args.check:
        if stale or extra:
            print(f"man pages out of date: {stale + extra}; run python scripts/gen_man.py", file=sys.stderr)
            return 1
        return 0
    man.mkdir(exist_ok=True)
    for name, text in pages.items():
        (man / name).write_text(text)
    for name in extra:
        (man / name).unlink()
    print(f"wrote {len(pages)} pages to {man}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
