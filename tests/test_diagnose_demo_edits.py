"""scripts/diagnose_demo_edits.py: where psp-demo keeps the demo's edits and where the demo CLIP
looks for them, on demo seed 0."""

from __future__ import annotations

import torch

from tests.scripts import load_script


def _script():
    return load_script("diagnose_demo_edits")


def test_seed_0s_eye_colour_needs_a_medium_row_and_the_clip_reads_hair_off_the_skin():
    """Measured on seed 0 (2 s at 12 fps, 64 px): blonde hair's exact offset is 1.97 long in row 8
    and at most 0.29 in any other row; on the fine rows it gains +10.50 dB and lands, on the medium
    rows nothing. Blue eyes' is 2.00 in row 5 (medium): the fine rows alone reach +3.06 dB with
    the pixels reading blue on 65 % of frames (no landing), medium + fine +6.93 dB on every frame.
    The CLIP's gradient for the hair prompt puts 0.65 of its mass on the skin (16 % of the image)
    and 0.14 on the hair (25 %); for the eye prompt 0.16 on the irises (1 %)."""
    torch.set_num_threads(1)
    hair, eyes = _script().diagnose(0)
    assert (hair["attribute"], eyes["attribute"]) == ("hair", "eyes")
    assert len(hair["rows"]) == 10 and hair["rows"][8] > 1.5 and max(hair["rows"][:8] + hair["rows"][9:]) < 0.5
    fine, medium = hair["ceiling"]["fine"], hair["ceiling"]["medium"]
    assert fine["psnr_gain_db"] > 8 and fine["pixels"] >= 0.9 and fine["others"] >= 0.9, fine
    assert medium["psnr_gain_db"] < 0.5 and medium["pixels"] < 0.1, medium
    assert eyes["rows"][5] == max(eyes["rows"]) and eyes["rows"][5] > 1.5
    fine, both = eyes["ceiling"]["fine"], eyes["ceiling"]["medium+fine"]
    assert fine["pixels"] < 0.9, fine  # the fine rows alone cannot turn these irises
    assert both["psnr_gain_db"] > fine["psnr_gain_db"] + 2 and both["pixels"] >= 0.9 and both["others"] >= 0.9, both
    skin, hair_region = hair["saliency"]["skin"], hair["saliency"]["hair"]
    assert skin["share"] > 2 * hair_region["share"] and hair_region["share"] < hair_region["area"], hair["saliency"]
    iris = eyes["saliency"]["eyes"]
    assert iris["share"] > 5 * iris["area"], eyes["saliency"]
