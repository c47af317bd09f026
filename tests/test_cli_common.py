"""CLI conventions shared by every command: errors, exit codes, JSON on stdout, atomic outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vsode.cli.common import JsonOpt, QuietOpt, VerboseOpt, session
from vsode.errors import InputError, ModelMissingError, OutputExistsError
from vsode.fileio import atomic_path, atomic_write_bytes, check_output_path
from vsode.progress import LineProgress, Progress


def _app(body):
    app = typer.Typer()

    @app.command()
    def run(json_out: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False) -> None:
        with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
            body(ui)

    @app.command()
    def other() -> None:  # a second command keeps typer in subcommand mode
        pass

    return app


def _invoke(body, *args):
    return CliRunner().invoke(_app(body), ["run", *args])


def test_user_error_is_one_line_with_its_exit_code():
    def body(ui):
        raise InputError("input clip.mp4 has no video stream; pass a video file")

    res = _invoke(body)
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines == ["vsode: error: input clip.mp4 has no video stream; pass a video file"]


def test_missing_model_exits_3():
    def body(ui):
        raise ModelMissingError("model e4e-ffhq-encode is not installed; run: vsode download e4e-ffhq-encode")

    res = _invoke(body)
    assert res.exit_code == 3
    assert "vsode download e4e-ffhq-encode" in res.stderr


def test_internal_error_has_no_traceback_unless_verbose():
    def body(ui):
        raise RuntimeError("boom")

    res = _invoke(body)
    assert res.exit_code == 1
    assert "Traceback" not in res.stderr and "internal error: RuntimeError: boom" in res.stderr
    res = _invoke(body, "-v")
    assert res.exit_code == 1 and "Traceback" in res.stderr


def test_keyboard_interrupt_exits_130():
    def body(ui):
        raise KeyboardInterrupt

    res = _invoke(body)
    assert res.exit_code == 130


def test_json_result_on_stdout_with_timings():
    def body(ui):
        with ui.progress.stage("decode", total=3) as st:
            for _ in range(3):
                st.advance()
        ui.info("a message for humans")
        ui.result({"frames": 3}, human="3 frames")

    res = _invoke(body, "--json")
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["frames"] == 3 and "decode" in data["timings"]
    assert "a message for humans" in res.stderr
    res = _invoke(body)
    assert res.stdout.strip() == "3 frames"
    res = _invoke(body, "-q")
    assert "a message for humans" not in res.stderr


def test_progress_records_stage_timings():
    p = Progress()
    with p.stage("encode", total=2) as st:
        st.advance(2)
    assert st.completed == 2 and p.timings["encode"] >= 0


def test_line_progress_prints_starts_tenths_and_log_lines():
    import io
    import re

    out = io.StringIO()
    progress = LineProgress(out)
    with progress.stage("train", 20) as stage:
        for _ in range(20):
            stage.advance()
    progress.log("done")
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in out.getvalue().splitlines()]
    assert lines == ["train ..."] + [f"train {2 * k}/20" for k in range(1, 11)] + ["done"]
    assert "train" in progress.timings


def test_check_output_path(tmp_path: Path):
    target = tmp_path / "out.mp4"
    assert check_output_path(target, force=False) == target
    target.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="--force"):
        check_output_path(target, force=False)
    assert check_output_path(target, force=True) == target
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "out.mp4", force=False)
    with pytest.raises(InputError, match="directory"):
        check_output_path(tmp_path, force=True)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise ValueError("fail mid-way")
    assert list(tmp_path.iterdir()) == []
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"again", force=False)
    assert target.read_bytes() == b"whole"


def test_sigterm_exits_130_and_leaves_no_partial_file(tmp_path: Path):
    script = tmp_path / "slow.py"
    target = tmp_path / "out.bin"
    script.write_text(textwrap.dedent(f"""
        import time, typer
        from vsode.cli.common import session
        from vsode.fileio import atomic_path
        app = typer.Typer()
        @app.command()
        def run():
            with session() as ui:
                with atomic_path({str(target)!r}) as tmp:
                    tmp.write_bytes(b"partial")
                    print("ready", flush=True)
                    time.sleep(30)
        app()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == [script]


def test_atomic_outputs_get_normal_permissions_and_deterministic_torch_bytes(tmp_path: Path):
    import torch

    from vsode.fileio import save_torch

    mask = os.umask(0o022)
    try:
        out = atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
    obj = {"w": torch.arange(6.0)}
    a = save_torch(obj, tmp_path / "one.pt").read_bytes()
    b = save_torch(obj, tmp_path / "two.pt").read_bytes()
    assert a == b
