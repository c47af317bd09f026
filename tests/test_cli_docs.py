"""The man pages and the CLI must agree: every subcommand and option is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer.main

from tests.scripts import load_script
from vsode.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "man"


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    assert hasattr(group, "commands"), type(group)
    return dict(group.commands)


def _plain(roff: str) -> str:
    return roff.replace("\\-", "-").replace("\\e", "\\")


def test_every_subcommand_has_a_page_listed_in_vsode_1():
    main_page = _plain((MAN / "vsode.1").read_text())
    for name in _commands():
        page = MAN / f"vsode-{name}.1"
        assert page.exists(), f"man/{page.name} missing: run python scripts/gen_man.py"
        assert re.search(rf"^\.B {re.escape(name)}$", main_page, re.M), f"{name} not listed in vsode.1"


def test_every_option_is_in_its_page():
    for name, cmd in _commands().items():
        text = _plain((MAN / f"vsode-{name}.1").read_text())
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                for opt in list(param.opts) + list(param.secondary_opts):
                    assert opt in text, f"{opt} of vsode {name} missing from man/vsode-{name}.1"


def test_exit_codes_documented():
    text = _plain((MAN / "vsode.1").read_text())
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^\.B {code}$", text, re.M), f"exit code {code} not documented"


def test_generated_pages_are_committed_and_current():
    gen = load_script("gen_man")
    for name, text in gen.render_all().items():
        assert (MAN / name).read_text() == text, f"man/{name} is stale: run python scripts/gen_man.py"


def test_man_renders_with_man_l_when_available():
    from shutil import which

    if which("man") is None:
        # Without man(1) here, at least check the roff header of each page.
        for page in MAN.glob("*.1"):
            assert page.read_text().startswith(".TH VSODE")
        return
    out = subprocess.run(["man", "-l", str(MAN / "vsode.1")], capture_output=True, text=True,
                         env={"MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "COMMANDS" in out.stdout


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "vsode", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("vsode ")
