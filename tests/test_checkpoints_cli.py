"""`vsode models` and the offline / --from-file / usage paths of `vsode download` (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vsode.checkpoints import REGISTRY, DownloadSource, Entry
from vsode.cli.app import app

DATA = bytes(range(256)) * 800
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def tiny():
    entry = Entry(
        name="tiny",
        kind="e4e",
        file_name="tiny.pt",
        size=len(DATA),
        sha256=SHA,
        sha256_verified=False,
        urls=(DownloadSource("http://127.0.0.1:9/never-contacted/tiny.pt", third_party=True),),
        drive_url="https://drive.google.com/file/d/XYZ/view",
        licence="test licence",
    )
    with REGISTRY.temporary(entry):
        yield entry


def _cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.strip()]


def _install(tmp_path, data: bytes = DATA):
    src = tmp_path / "by-hand.pt"
    src.write_bytes(data)
    return _cli("download", "tiny", "--from-file", str(src), "--cache-dir", str(tmp_path / "cache"), "--json")


def test_from_file_imports_and_models_lists_it(tiny, tmp_path):
    res = _install(tmp_path)
    assert res.exit_code == 0, res.stderr
    (out,) = json.loads(res.stdout)["models"]
    assert out["status"] == "imported" and out["verified"] and out["hash_status"] == "third-party"
    assert "third-party mirror" in res.stderr  # the warning about the pin's origin

    res = _cli("models", "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.exit_code == 0
    listing = json.loads(res.stdout)
    assert isinstance(listing["models"], list)
    by_name = {m["name"]: m for m in listing["models"]}
    assert set(REGISTRY.names()) == set(by_name)
    mine = by_name["tiny"]
    assert mine["installed"] and mine["kind"] == "e4e" and mine["licence"] == "test licence"
    assert mine["size"] == len(DATA) and open(mine["path"], "rb").read() == DATA
    assert not by_name["e4e-ffhq-encode"]["installed"]

    res = _cli("models", "--cache-dir", str(tmp_path / "cache"))
    assert res.exit_code == 0 and "tiny" in res.stdout and "installed" in res.stdout


def test_from_file_wrong_file_exits_1(tiny, tmp_path):
    res = _install(tmp_path, DATA[::-1])
    assert res.exit_code == 1
    (line,) = _error_lines(res)
    assert f"expected {SHA}" in line and "nothing was imported" in line


def test_models_verify_reports_a_corrupt_file(tiny, tmp_path):
    assert _install(tmp_path).exit_code == 0
    cache = str(tmp_path / "cache")
    res = _cli("models", "--verify", "--cache-dir", cache, "--json")
    assert res.exit_code == 0, res.stderr
    assert {m["name"]: m["check"] for m in json.loads(res.stdout)["models"]}["tiny"] == "ok"

    path = tmp_path / "cache" / "checkpoints" / "tiny" / "tiny.pt"
    corrupt = bytearray(path.read_bytes())
    corrupt[1000] ^= 1  # same size, one bit flipped
    path.write_bytes(bytes(corrupt))
    res = _cli("models", "--verify", "--cache-dir", cache, "--json")
    assert res.exit_code == 1
    mine = {m["name"]: m for m in json.loads(res.stdout)["models"]}["tiny"]
    assert mine["check"] == "mismatch" and mine["actual_sha256"] == hashlib.sha256(corrupt).hexdigest()
    (line,) = _error_lines(res)
    assert "tiny" in line and "vsode download tiny --force" in line


def test_offline_names_the_download_command(tiny, tmp_path):
    res = _cli("download", "tiny", "--cache-dir", str(tmp_path), env={"VSODE_OFFLINE": "1"})
    assert res.exit_code == 3
    (line,) = _error_lines(res)
    assert "offline" in line and "vsode download tiny" in line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["download"], "known models:"),
        (["download", "no-such-model"], "unknown model 'no-such-model'; known models:"),
        (["download", "tiny", "e4e-ffhq-encode", "--from-file", "x.pt"], "exactly one model name"),
        (["download", "--all", "tiny"], "--all takes no model names"),
        (["download", "tiny", "--timeout", "0"], "--timeout must be positive"),
        (["download", "tiny", "--mirror", "ftp://x"], "http(s) base URL"),
        (["download", "dino-vitb16"], "--allow-unverified"),
    ],
)
def test_usage_errors_exit_2(tiny, tmp_path, args, needle):
    res = _cli(*args, "--cache-dir", str(tmp_path))
    assert res.exit_code == 2, res.stderr
    (line,) = _error_lines(res)
    assert needle in line


def test_module_entry_point_lists_models(tmp_path):
    env = {**os.environ, "VSODE_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "vsode", "models", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    names = [m["name"] for m in json.loads(out.stdout)["models"]]
    assert "e4e-ffhq-encode" in names and "dino-vitb16" in names
