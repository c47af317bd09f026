"""scripts/diagnose_demo_motion.py: the W+-only probe of whether the demo model learns motion."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "diagnose_demo_motion.py"


@pytest.fixture(scope="module")
def data_dir(prepared_demo_data) -> Path:
    return prepared_demo_data


def _run(data_dir: Path, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data_dir), "--every", "1",
                           "--val-batches", "1", *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_model_without_offsets_scores_exactly_the_motionless_baseline(data_dir):
    # delta_weight = 0 makes every decoded W+ the content code itself: each ratio is then 1 exactly,
    # which pins the ratio's denominator to the mean-inversion baseline.
    lines = _run(data_dir, "--steps", "2", "--set", "mapper.delta_weight=0")
    assert [line["step"] for line in lines] == [0, 1, 2]
    for line in lines:
        for key in ("val_ode", "val_frames", "train_ode", "train_frames"):
            assert line[key] == 1.0, (key, line)
    assert lines[-1]["train_ratio"] == 1.0


def test_the_probe_options_train_and_report(data_dir):
    lines = _run(data_dir, "--steps", "2", "--tokens", "frames", "--state-weight", "1",
                 "--set", "dynamics.zero_bias=true", "--set", "modulation.init_std=0.1", "--set", "mapper.final_leaky=false")
    first, last = lines[0], lines[-1]
    assert last["step"] == 2 and last["state_term"] > 0 and last["seconds"] > 0
    assert all(math.isfinite(v) and v > 0 for v in last.values())
    assert last["state_norm"] != first["state_norm"]  # the state term moved the ODE
    assert last["val_frames"] != 1.0  # the frame path decodes offsets of its own


def test_checkpoint_scores_a_trained_model_without_training(data_dir, tmp_path):
    # a train state and a model file of a delta_weight = 0 model: scored once, every ratio exactly 1
    import torch

    from vsode.model import build_model, model_checkpoint, preset_config, save_model
    from vsode.train.loop import STATE_FORMAT

    model = build_model(preset_config("demo").override({"mapper.delta_weight": "0"}), seed=0)
    state = tmp_path / "last.pt"
    torch.save({"format": STATE_FORMAT, "model": model_checkpoint(model), "step": 7}, state)
    plain = save_model(model, tmp_path / "model.pt", extra={"training": {"step": 9}})
    for path, step in ((state, 7), (plain, 9)):
        (line,) = _run(data_dir, "--checkpoint", str(path))
        assert line["checkpoint"] == str(path) and line["step"] == step
        assert all(line[k] == 1.0 for k in ("val_ode", "val_frames", "train_ode", "train_frames")), line
        assert line["val_interp3"] == pytest.approx(1.0, abs=1e-3) and line["val_extrap"] == pytest.approx(1.0, abs=1e-3)


def test_masked_training_options_reach_the_probe(data_dir):
    """The dynamics issue's settings: mixed sampling over more frames, free state channels, the
    motion-weighted state term and the feature term; each line carries the anchored ratios."""
    lines = _run(data_dir, "--steps", "2", "--sampling", "mixed", "--frames", "6", "--n-hidden", "2",
                 "--supervised", "3", "--set", "dynamics.free_channels=32", "--set", "state_motion=5",
                 "--set", "feature_lambda=1", "--set", "state_lambda=1")
    last = lines[-1]
    assert last["step"] == 2 and last["state_term"] > 0
    for key in ("val_interp3", "val_extrap", "val_ode"):
        assert math.isfinite(last[key]) and last[key] > 0, (key, last)
    assert last["val_interp3"] != 1.0 or last["val_extrap"] != 1.0  # the anchored model moves


def test_ceilings_rank_the_motion_guesses():
    """``--ceilings``: the demo world's own bounds. Exact slow channels beat lerping every channel,
    which beats the frame blend; in extrapolation, continuing the slow channels beats holding."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--ceilings"], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result) == {"0", "1", "2", "3", "mean"}
    mean = result["mean"]
    assert mean["interp3_slow_exact"] > mean["interp3_lerp_all"] + 1.0 > mean["interp3_frame_blend"] + 1.0
    assert mean["extrap_slow_exact"] > mean["extrap_slow_linear"] > mean["extrap_hold_all"] + 3.0
    assert mean["interp3_only_mouth_open_lerped"] < mean["interp3_only_brow_lerped"]  # the mouth is what 3 fps loses
