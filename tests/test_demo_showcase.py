"""`vsode demo`: the offline showcase writes playable files and scores that mean something."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.media import read_audio
from vsode.cli.app import app
from vsode.demo import sample_params
from vsode.demo.showcase import OUTPUTS, DemoOptions, run_demo
from vsode.errors import InputError
from vsode.video import probe


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = run_demo(out, DemoOptions(seconds=2.0, fps=Fraction(12), size=64, seed=3))
    return out, report


def test_writes_every_output_with_exact_timing(demo_run):
    out, report = demo_run
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    for clip in ("source.mp4", "driver.mp4"):
        info = probe(out / clip)
        assert info.frame_count == 24 and info.fps == Fraction(12) and (info.width, info.height) == (64, 64)
        assert len(info.audio) == 1
    assert json.loads((out / "report.json").read_text())["frames"] == 24
    assert report["source"]["attributes"] == sample_params(3).attributes


def test_audio_loudness_follows_the_mouth(demo_run):
    out, _ = demo_run
    rate = 16000
    samples = read_audio(out / "source.mp4", sample_rate=rate)
    window = rate // 12
    loudness = np.array([np.sqrt(np.mean(samples[i * window:(i + 1) * window] ** 2)) for i in range(24)])
    mouth = sample_params(3).motion((np.arange(24) + 0.5) / 12)["mouth_open"]
    assert np.corrcoef(loudness, mouth)[0, 1] > 0.8


def test_clip_reads_the_source_attributes(demo_run):
    _, report = demo_run
    scores = report["clip_zero_shot"]
    assert scores["hair"] >= 0.9 and scores["skin"] >= 0.9 and scores["eyes"] >= 0.75


def test_refuses_to_overwrite_and_validates_options(demo_run, tmp_path):
    out, _ = demo_run
    before = (out / "report.json").read_bytes()
    with pytest.raises(InputError, match="--force"):
        run_demo(out, DemoOptions(seconds=1.0, fps=Fraction(8), size=64))
    assert (out / "report.json").read_bytes() == before
    with pytest.raises(InputError, match="--seconds"):
        DemoOptions(seconds=0)
    with pytest.raises(InputError, match="--size"):
        DemoOptions(size=100)


def test_cli_demo_json(tmp_path):
    res = CliRunner().invoke(app, ["demo", str(tmp_path / "d"), "--seconds", "1", "--fps", "8",
                                   "--size", "64", "--json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["frames"] == 8 and data["fps"] == "8/1"
    res = CliRunner().invoke(app, ["demo", str(tmp_path / "e"), "--fps", "abc"])
    assert res.exit_code == 2 and "--fps" in res.stderr


def test_inversion_with_the_builtin_demo_models(demo_run):
    out, report = demo_run
    inv = report["inversion"]
    assert inv["encoder"]["name"] == "psp-demo"
    assert inv["psnr_db"] >= 25.0  # measured 28.1 dB at seed 0 (the held-out mean is 28.2 dB)
    recon = probe(out / "source_recon.mp4")
    assert recon.frame_count == 24 and recon.fps == Fraction(12) and len(recon.audio) == 1
