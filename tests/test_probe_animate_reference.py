"""scripts/probe_animate_reference.py: anchored animate's transfer by reference pose, on the demo."""

from __future__ import annotations

import torch

from tests.scripts import load_script


def _script():
    return load_script("probe_animate_reference")


def test_the_probe_measures_both_references_and_matched_follows_the_driver():
    """Seed 0, 2 s at 12 fps (the README's figures are means over seeds 0-3): measured matched
    r 0.98 / 0.91 / 0.93 (mouth, head x, head y) and 19.12 dB against the true frames, 4
    directions kept; from the first frame 0.75 / -0.12 / 0.18 and 15.87 dB."""
    torch.set_num_threads(1)
    out = _script().probe([0], seconds=2.0, fps=12.0)
    assert out["frames"] == 24 and 1 <= out["kept"][0] <= out["kept"][1] <= 23
    matched, first = out["matched"], out["first"]
    assert set(matched["r"]) == {"mouth_open", "head_x", "head_y"}
    assert min(matched["r"].values()) >= 0.8, matched
    assert matched["psnr_db"] >= first["psnr_db"] + 2.5, (matched, first)
    assert first["r"]["head_x"] < 0.5, first  # the first frame's pose difference: the head follows the mouth
