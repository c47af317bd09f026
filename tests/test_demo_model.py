"""The shipped demo VidStyleODE (``vidstyleode-demo``): it loads offline with the backbones it was
trained with, its metrics file describes exactly these weights, and the command that made it runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsode.checkpoints import resolve
from vsode.checkpoints.registry import REGISTRY
from vsode.model import load_model, preset_config

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "vsode" / "assets" / "demo"


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((ASSETS / "vidstyleode-demo.json").read_text())


def test_the_builtin_model_loads_offline_with_its_verified_backbones(tmp_path, monkeypatch):
    monkeypatch.setenv("VSODE_OFFLINE", "1")
    model = load_model("vidstyleode-demo", cache_dir=tmp_path)  # verify=True: backbone SHA-256 checked
    assert not model.training
    # the demo preset with the training settings of its command (which mark the config "custom")
    demo = preset_config("demo")
    assert (model.config.n_latent, model.config.data_size, model.config.backbones) == (
        demo.n_latent, demo.data_size, demo.backbones)
    assert model.config.modulation.init_std == 0.1 and model.config.dynamics.zero_bias
    names = {k: (v or {}).get("name") for k, v in model.backbone_refs.items()}
    assert names.items() >= {"generator": "stylegan2-demo", "clip": "clip-demo", "dino": "clip-demo"}.items()
    for kind in ("generator", "clip", "dino"):
        assert model.backbone_refs[kind]["sha256"] == REGISTRY.get(model.backbone_refs[kind]["name"]).sha256
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_metrics_file_describes_the_shipped_weights(metrics):
    path = resolve("vidstyleode-demo")
    blob = path.read_bytes()
    assert metrics["sha256"] == hashlib.sha256(blob).hexdigest() == REGISTRY.get("vidstyleode-demo").sha256
    assert metrics["bytes"] == len(blob)
    assert metrics["command"].startswith("python scripts/train_demo_model.py --out vsode/assets/demo --seed 0")
    val = metrics["validation"]
    # the shipped weights are the run's last validation, taken at its last step
    assert val["step"] == metrics["train"]["steps"] == 2750 and val == metrics["validation_curve"][-1]
    # the held-out reconstruction through the latent ODE beats the motionless content code
    # (measured 21.76 dB against 21.17 dB on 8 videos): the model carries motion
    assert val["videos"] >= 8 and val["psnr"] > val["static_psnr"] + 0.5


def test_the_demo_bundle_stays_within_its_size_budget():
    total = sum(p.stat().st_size for p in ASSETS.iterdir() if p.is_file())
    assert total <= 25 * 2**20, f"the demo assets weigh {total / 2**20:.1f} MiB"


def test_the_training_command_runs_end_to_end(tmp_path):
    """The documented script, scaled down: render, prepare, `vsode train`, write the two files."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_demo_model.py"), "--out", str(out), "--seed", "1",
         "--videos", "4", "--frames", "8", "--steps", "2", "--set", "val_every=2", "--set", "val_videos=1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report == json.loads((out / "vidstyleode-demo.json").read_text())
    blob = (out / "vidstyleode-demo.pt").read_bytes()
    assert report["sha256"] == hashlib.sha256(blob).hexdigest() and report["train"]["steps"] == 2
    model = load_model(out / "vidstyleode-demo.pt", backbones=False)
    assert model.config.preset == "demo"
    assert report["validation"]["videos"] == 1 and report["validation"]["static_psnr"] > 10
