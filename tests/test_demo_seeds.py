"""`vsode demo` over several seeds (vsode.demo.seeds, scripts/score_demo_seeds.py): the means of
the shipped demo model's scores over seeds 0-3, held a little below what was measured, so a
regression that one seed hides still fails here; and the aggregation itself on known numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from vsode.demo.seeds import aggregate, derived, parse_seeds, score_seeds, table
from vsode.demo.showcase import DemoOptions
from vsode.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "score_demo_seeds.py"
SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module", autouse=True)
def _quiet(quiet_machine):
    """Before every other fixture of this module (tests/conftest.py)."""


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    options = DemoOptions(seconds=2.0, fps=Fraction(12), size=64, force=True)  # the built-in model
    return out, score_seeds(SEEDS, options, out_dir=out)


def _summary(hair_acc=1.0, hair_kept=1.0, eyes_acc=1.0, eyes_kept=1.0, r_head_x=0.5, psnr=20.0,
             content=19.0, extra=18.0, repeat=19.5) -> dict:
    edit = {"prompt": "p", "flip_rate": 0.0, "frame_diff_ratio": 0.3}
    return {
        "edit-hair": {**edit, "accuracy": hair_acc, "others_unchanged": hair_kept},
        "edit-eyes": {**edit, "accuracy": eyes_acc, "others_unchanged": eyes_kept},
        "animate": {"r_mouth_open": None, "r_head_x": r_head_x, "r_head_y": 0.1, "portrait_attributes": 1.0},
        "interpolate": {"psnr_db": psnr, "content_code_psnr_db": content, "ode_gain_db": psnr - 27.0},
        "interpolate-sparse": {"psnr_db": psnr, "content_code_psnr_db": content - 1},
        "extrapolate": {"psnr_db": extra, "repeat_last_psnr_db": repeat},
        "blend-motion": {"inside_corr_b": 0.2, "inside_corr_a": 0.0, "outside_corr_a": 0.1, "outside_corr_b": None},
    }


def test_seed_lists_parse_and_bad_ones_name_the_fix():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 0-2,1") == [5, 0, 1, 2]
    assert parse_seeds("7") == [7]
    for bad in ("", "a", "3-1", "-1", "0-x"):
        with pytest.raises(InputError, match="--seeds") as err:
            parse_seeds(bad)
        assert err.value.exit_code == 2


def test_aggregate_means_gains_and_clean_counts_on_known_numbers():
    rows = [_summary(hair_acc=1.0, hair_kept=0.5, r_head_x=0.5, psnr=20.0, content=19.0),
            _summary(hair_acc=0.95, hair_kept=0.95, r_head_x=-0.1, psnr=18.0, content=18.5, extra=21.0),
            _summary(hair_acc=0.0, eyes_acc=0.5, r_head_x=None, psnr=22.0, content=20.0)]
    d = derived(rows[1])
    assert d["edit-hair"]["clean"] is True and d["interpolate"]["gain_over_content_code_db"] == -0.5
    assert d["extrapolate"]["gain_over_repeat_last_db"] == 1.5
    assert "clean" not in rows[1]["edit-hair"]  # the input is not changed
    mean = aggregate(rows)
    assert mean["seeds"] == 3
    assert mean["edit-hair"]["clean"] == 1  # only the second: the first changed other attributes
    assert mean["edit-eyes"]["clean"] == 2
    assert mean["edit-hair"]["accuracy"] == pytest.approx(1.95 / 3, abs=1e-4)
    assert mean["animate"]["r_head_x"] == pytest.approx(0.2)  # the undefined one is left out
    assert mean["animate"]["r_mouth_open"] is None  # undefined in every seed
    assert mean["interpolate"]["gain_over_content_code_db"] == pytest.approx((1.0 - 0.5 + 2.0) / 3, abs=1e-4)
    assert mean["interpolate-sparse"]["gain_over_content_code_db"] == pytest.approx((2.0 + 0.5 + 3.0) / 3, abs=1e-4)
    assert mean["interpolate"]["ode_gain_db"] == pytest.approx(-7.0, abs=1e-4)  # the summary's own figure
    assert "prompt" not in mean["edit-hair"]
    with pytest.raises(InputError):
        aggregate([])


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same seeds rendered the paper's way (``--anchor none``): what anchoring is measured against."""
    options = DemoOptions(seconds=2.0, fps=Fraction(12), size=64, force=True, anchor="none")
    return score_seeds(SEEDS, options)


def test_means_over_four_seeds_hold_the_measured_figures(scored):
    # Means over seeds 0-3 with the shipped model, anchored (the default): the eye edit lands cleanly in
    # 4 seeds, the hair edit in 1 (seed 0); others unchanged 0.96 / 0.99 and attribute flips 0.03 /
    # 0.02 (seed 3 keeps the input's blinks, whose inversions read as another eye colour on 2-3
    # frames); edit frame-diff ratio 1.10 / 1.11 (the paper's way: 0.39 / 0.39); interpolation over
    # the content code of the decoded input +8.77 dB (+7.87 without the input's detail); extrapolation over repeating the last input
    # frame +0.54 dB; animate (the driver's own motion on the portrait, measured from the driver's pose
    # nearest the portrait's) r mouth 0.98, head x 0.96, head y 0.97 (0.80 / 0.69 / 0.76 from the
    # driver's first frame), portrait attributes kept 1.00 by CLIP and 0.81 by the pixels (0.83 /
    # 0.49 from the first frame), PSNR against the true frames 21.29 dB against the still portrait's
    # 16.29 (16.83 from the first frame); blend outside r(A) 0.94.
    _, result = scored
    mean = result["mean"]
    assert mean["seeds"] == 4
    for name in ("edit-hair", "edit-eyes"):
        assert mean[name]["others_unchanged"] >= 0.95, (name, mean[name])
        assert mean[name]["flip_rate"] <= 0.05, (name, mean[name])
        assert 1.0 <= mean[name]["frame_diff_ratio"] <= 1.25, (name, mean[name])  # the source's motion, not more
    assert mean["edit-hair"]["clean"] >= 1 and mean["edit-eyes"]["accuracy"] >= 0.95, mean
    # CLIP direction of the edits' change (the true edits': 0.94 / 0.92): hair 0.52 (the hair edit moves
    # the right way where it does not land), eyes 0.90
    assert mean["edit-hair"]["clip_direction"] >= 0.45 and mean["edit-eyes"]["clip_direction"] >= 0.85, mean
    assert mean["interpolate"]["gain_over_content_code_db"] >= 7.0, mean["interpolate"]
    assert mean["extrapolate"]["gain_over_repeat_last_db"] >= 0.3, mean["extrapolate"]
    a = mean["animate"]
    assert a["r_mouth_open"] >= 0.93 and a["r_head_x"] >= 0.9 and a["r_head_y"] >= 0.9, a
    assert a["portrait_attributes"] >= 0.95 and a["portrait_pixel_attributes"] >= 0.7, a
    # against the like-for-like baseline, the portrait's inversion held still: 21.29 against 16.29 dB,
    # above it on every seed (+3.3 to +8.5 dB)
    assert a["psnr_db"] >= a["still_portrait_psnr_db"] + 4.0, a
    for seed in SEEDS:
        row = result["per_seed"][seed]["animate"]
        assert row["psnr_db"] >= row["still_portrait_psnr_db"] + 2.5, (seed, row)
    b = mean["blend-motion"]
    assert b["outside_corr_a"] >= 0.85 and b["outside_corr_a"] > b["outside_corr_b"] + 0.5, b
    # outside the region A's own detail is added back (the default): 29.65 dB against A's truth, the
    # input itself 29.73, A's inversion 27.60 (--detail none: 27.55; outside r(A) 0.94 -> 0.98)
    assert b["outside_psnr_db"] >= b["outside_inversion_psnr_db"] + 1.5, b
    assert b["outside_psnr_db"] >= b["outside_input_psnr_db"] - 0.3, b


def test_generate_and_the_swapped_generator_meet_their_targets_over_four_seeds(scored):
    """Issue 21's demo targets, seeds 0-3 (two generated clips and one swapped animate per seed).
    Measured: generated motion energy over the real source's and driver's 1.15 / 0.86 / 0.61 / 1.31
    (mean 0.98; target [0.5, 2]); the swapped-generator animate's largest change of a driver
    correlation 0.018 / 0.005 / 0.014 / 0.023 (mean 0.015; target 0.1; 0.14 on seed 0 when the
    driver's motion was measured from its first frame), and the two animates' readings correlate
    with each other at 0.95 or more."""
    _, result = scored
    per_seed, mean = result["per_seed"], result["mean"]
    ratios = [per_seed[s]["generate"]["energy_ratio"] for s in SEEDS]
    assert all(0.5 <= r <= 2 for r in ratios) and 0.75 <= mean["generate"]["energy_ratio"] <= 1.3, ratios
    changes = [per_seed[s]["animate-poster"]["r_change_max"] for s in SEEDS]
    assert all(c <= 0.05 for c in changes) and mean["animate-poster"]["r_change_max"] <= 0.03, changes
    # the swapped animate's readings against the unswapped one's: min over channels 0.95 / 0.99 / 0.99 / 0.99
    assert mean["animate-poster"]["r_vs_unswapped_min"] >= 0.95, mean["animate-poster"]
    assert all(per_seed[s]["animate-poster"]["palette_distance"]
               < 0.5 * per_seed[s]["animate-poster"]["unswapped_palette_distance"] for s in SEEDS)


def test_anchoring_meets_its_targets_against_the_papers_reconstruction(scored, plain):
    """Issue 19's targets, means over seeds 0-3, anchored output against the paper's way and the
    like-for-like baselines, measured in the same run. Measured: edit PSNR vs the edited truth
    18.57 / 25.22 dB anchored, 16.29 / 19.94 the paper's way; 8 -> 24 fps 27.27 dB against the W+
    lerp's 27.19 (the paper's 20.79), 3 -> 24 fps 26.00 against 26.05 (20.98); extrapolation 20.98 dB
    against repeating the last frame's 20.43 (19.41); animate r head x / y / mouth 0.96 / 0.97 /
    0.98 anchored (the driver's own motion), -0.05 / 0.51 / -0.08 the paper's way; portrait
    attributes by the pixels 0.81 anchored, 0.55 the paper's way (by CLIP 1.00 both)."""
    anchored, paper = scored[1]["mean"], plain["mean"]
    for name, gain in (("edit-hair", 2.0), ("edit-eyes", 4.5)):
        assert anchored[name]["psnr_db"] >= paper[name]["psnr_db"] + gain, (name, anchored[name], paper[name])
        assert anchored[name]["frame_diff_ratio"] >= 0.9
        assert anchored[name]["accuracy"] >= paper[name]["accuracy"] - 0.02, name  # seed 3: 1 frame in 22
    for name in ("interpolate", "interpolate-sparse"):
        i = anchored[name]
        assert i["psnr_db"] >= i["wplus_lerp_psnr_db"] - 0.1, (name, i)
        assert i["psnr_db"] >= paper[name]["psnr_db"] + 4.0, name
    x = anchored["extrapolate"]
    assert x["psnr_db"] >= x["repeat_last_psnr_db"] + 0.3 and x["psnr_db"] >= paper["extrapolate"]["psnr_db"] + 1.0
    for channel, gain in (("r_head_x", 0.5), ("r_head_y", 0.2), ("r_mouth_open", 0.7)):
        assert anchored["animate"][channel] >= paper["animate"][channel] + gain, channel
    a, p = anchored["animate"], paper["animate"]
    assert a["portrait_pixel_attributes"] >= p["portrait_pixel_attributes"] - 0.1, (a, p)


def test_anchored_blend_motion_follows_b_inside_and_a_outside(scored, plain):
    """Means over seeds 0-3: anchored blend-motion (B's inversions with A's content inside the
    region, A's outside) inside r(B) 0.80 against r(A) 0.21, outside r(A) 0.94 against r(B) 0.15;
    the paper's way (B's motion state in the region of the grid) -0.10 / 0.02 and -0.09 / -0.32."""
    b = scored[1]["mean"]["blend-motion"]
    assert b["inside_corr_b"] >= 0.7 and b["inside_corr_b"] > b["inside_corr_a"] + 0.4, b
    for seed, row in scored[1]["per_seed"].items():
        r = row["blend-motion"]
        assert r["inside_corr_b"] > r["inside_corr_a"] and r["outside_corr_a"] > r["outside_corr_b"], (seed, r)
    paper = plain["mean"]["blend-motion"]
    assert b["inside_corr_b"] >= paper["inside_corr_b"] + 0.5 and b["outside_corr_a"] >= paper["outside_corr_a"] + 0.5


def test_like_for_like_baselines_and_the_control_over_four_seeds(scored):
    """Model-free figures (they hold whatever the model does). Means over seeds 0-3: from the
    decoded input, 8 -> 24 fps frame blend 27.68 dB, W+ lerp 27.19 and the control (the W+ lerp plus
    the input's own detail, as interpolate adds it by default) 28.04; 3 -> 24 fps 25.12, 26.05 and
    26.44; extrapolation's repeat-last 20.43, its control (the last inversion held) 20.81. The same
    from the true frames (upper bounds): 28.61, 27.72; 25.55, 26.61; repeat-last 20.59."""
    _, result = scored
    mean = result["mean"]
    dense, sparse, extra = mean["interpolate"], mean["interpolate-sparse"], mean["extrapolate"]
    assert dense["frame_blend_psnr_db"] >= 27.2 and dense["control_psnr_db"] >= 26.7, dense
    assert sparse["frame_blend_psnr_db"] >= 24.6 and sparse["control_psnr_db"] >= 25.5, sparse
    assert extra["repeat_last_psnr_db"] >= 20.0 and extra["control_psnr_db"] >= 20.3, extra
    for i in (dense, sparse):
        for baseline in ("frame_blend", "wplus_lerp"):
            assert i[f"{baseline}_psnr_db"] < i[f"{baseline}_upper_bound_psnr_db"], (baseline, i)
    # from 3 fps, every seed's frame blend and control are weaker than from 8 fps
    for seed, row in result["per_seed"].items():
        for key in ("frame_blend_psnr_db", "control_psnr_db"):
            assert row["interpolate-sparse"][key] < row["interpolate"][key], (seed, key)
        for name in ("interpolate", "interpolate-sparse", "extrapolate"):
            r = row[name]
            assert r["ode_gain_db"] == pytest.approx(r["psnr_db"] - r["control_psnr_db"], abs=2e-3), (seed, name)
        # the control carries the input's detail as the output does (seeds 0-3: +0.14 to +1.93 dB from 8 fps)
        assert row["interpolate"]["control_psnr_db"] > row["interpolate"]["wplus_lerp_psnr_db"], seed


def test_interpolation_with_the_inputs_detail_beats_blending_the_frames_on_every_seed(scored):
    """Issue 24's moonshot, untuned: interpolate's default adds the input's own detail that the
    inversions miss, and the output then scores above the like-for-like frame blend on every seed,
    from 8 fps (+0.15 to +0.84 dB; mean 28.17 against 27.68) and from 3 fps (+0.23 to +2.30; mean
    26.39 against 25.12). Without it (--detail none) 27.27 and 26.00: below the blend from 8 fps."""
    _, result = scored
    for seed, row in result["per_seed"].items():
        assert row["interpolate"]["psnr_db"] >= row["interpolate"]["frame_blend_psnr_db"] + 0.05, seed
        assert row["interpolate-sparse"]["psnr_db"] >= row["interpolate-sparse"]["frame_blend_psnr_db"] + 0.1, seed
    mean = result["mean"]
    assert mean["interpolate"]["psnr_db"] >= mean["interpolate"]["frame_blend_psnr_db"] + 0.3, mean["interpolate"]
    sparse = mean["interpolate-sparse"]
    assert sparse["psnr_db"] >= sparse["frame_blend_psnr_db"] + 1.0, sparse


# The latent ODE adds nothing measurable yet (issue 19): the output scores below the model-free
# control. Strict xfails holding a gain of +0.5 dB; they flip when the dynamics earn it.


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="ODE gain, means over seeds 0-3: interpolation 8 -> 24 fps -6.40 dB, 3 -> 24 fps -5.07 dB")
def test_the_ode_beats_the_control_at_interpolation(scored):
    _, result = scored
    mean = result["mean"]
    assert mean["interpolate"]["ode_gain_db"] >= 0.5 and mean["interpolate-sparse"]["ode_gain_db"] >= 0.5


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="ODE gain, mean over seeds 0-3: extrapolation -1.40 dB")
def test_the_ode_beats_the_control_at_extrapolation(scored):
    _, result = scored
    assert result["mean"]["extrapolate"]["ode_gain_db"] >= 0.5


def test_each_seed_is_its_own_demo_and_the_mean_is_theirs(scored):
    out, result = scored
    assert list(result["per_seed"]) == SEEDS
    for seed in SEEDS:
        report = json.loads((out / f"seed-{seed}" / "report.json").read_text())
        assert report["seed"] == seed
        assert result["per_seed"][seed] == derived(report["summary"])
    psnrs = [result["per_seed"][s]["interpolate"]["psnr_db"] for s in SEEDS]
    assert len(set(psnrs)) == len(SEEDS)  # other faces, other figures
    assert result["mean"]["interpolate"]["psnr_db"] == pytest.approx(sum(psnrs) / len(psnrs), abs=1e-4)
    lines = table(result).splitlines()
    assert lines[0] == "| figure | seed 0 | seed 1 | seed 2 | seed 3 | mean |"
    row = next(line for line in lines if line.startswith("| edit-eyes clean |"))
    assert row.endswith(f"| {result['mean']['edit-eyes']['clean']} |")


def test_the_script_refuses_bad_seeds_in_one_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--seeds", "3-1"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["score_demo_seeds: --seeds '3-1': the range 3-1 runs backwards; write 1-3"]
