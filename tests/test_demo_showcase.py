"""`vsode demo`: the offline showcase writes playable files, runs every application with the shipped
demo VidStyleODE (``vidstyleode-demo``) and scores them; the scores are held to thresholds a
little below the ones measured, so a regression in any stage fails here."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from tests.media import read_audio
from vsode.cli.app import app
from vsode.cli.eval import eval_
from vsode.demo import sample_params
from vsode.demo import scores as S
from vsode.demo.world import caption, render_times, with_appearance
from vsode.demo.showcase import APPS, GENERATED, OUTPUTS, DemoOptions, run_demo, truth_name
from vsode.errors import InputError
from vsode.video import VideoWriter, probe, read_all

SECONDS, FPS, SIZE, SEED = 2.0, Fraction(12), 64, 0
# generate (seeds 0 and 1) and the animate rendered with stylegan2-demo-poster, held a little below
# what was measured (see the tests)
GENERATE_ENERGY_LO, GENERATE_ENERGY_HI = 0.9, 1.5
GENERATE_VS_ANIMATE_LO, GENERATE_VS_ANIMATE_HI = 0.8, 1.4
POSTER_PALETTE = 0.35


@pytest.fixture(scope="module", autouse=True)
def _quiet(quiet_machine):
    """Before every other fixture of this module (tests/conftest.py)."""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The demo preset with random weights, naming the built-in demo backbones."""
    import vsode.model as M

    model = M.build_model("demo", seed=0)
    model.backbone_refs = {
        k: M.backbone_ref(k, name)
        for k, name in (("generator", "stylegan2-demo"), ("encoder", "psp-demo"), ("clip", "clip-demo"))
    } | {"dino": None}
    return M.save_model(model, tmp_path_factory.mktemp("model") / "random-demo.pt")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = run_demo(out, DemoOptions(seconds=SECONDS, fps=FPS, size=SIZE, seed=SEED))  # the built-in model
    return out, report


def test_writes_every_output_with_exact_timing(demo_run):
    out, report = demo_run
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    for clip in ("source.mp4", "driver.mp4"):
        info = probe(out / clip)
        assert info.frame_count == 24 and info.fps == Fraction(12) and (info.width, info.height) == (64, 64)
        assert len(info.audio) == 1
    assert probe(out / "source-8fps.mp4").frame_count == 16
    assert probe(out / "source-3fps.mp4").frame_count == 6
    assert json.loads((out / "report.json").read_text())["frames"] == 24
    assert report["source"]["attributes"] == sample_params(SEED).attributes


def test_every_application_wrote_its_output_at_the_promised_times(demo_run):
    out, _ = demo_run
    expected = {  # frames, rate, first and last time
        "edit-hair.mp4": (24, Fraction(12)), "edit-eyes.mp4": (24, Fraction(12)), "animate.mp4": (24, Fraction(12)),
        "interpolate.mp4": (48, Fraction(24)),  # 2 s of the 8 fps source at 24 fps
        "interpolate-sparse.mp4": (48, Fraction(24)),  # 2 s of the 3 fps source at 24 fps
        "extrapolate.mp4": (36, Fraction(12)),  # 24 reconstructed + 12 new (1 s)
        "blend-motion.mp4": (24, Fraction(12)),
    }
    for name, (frames, fps) in expected.items():
        info = probe(out / name)
        assert (info.frame_count, info.fps) == (frames, fps), name
        truth = json.loads((out / truth_name(name)).read_text())
        assert truth["format"] == "vsode/demo-truth@1" and len(truth["times"]) == frames
        assert truth["kind"] == APPS[name]


def test_report_has_every_score(demo_run):
    """Every score is there and its values hang together: each summary figure is the score it
    names, each ratio is its parts', and the baselines score what they measured (seed 0; from the
    true frames, the upper bounds: inversion 27.74 dB, frame blend 28.22, W+ lerp 27.30, content
    code 18.73, repeating the last frame 19.62; from the decoded input: frame blend 27.45, W+ lerp
    27.17, content code 18.71, repeating the last frame 19.64)."""
    _, report = demo_run
    scores, summary = report["scores"], report["summary"]
    assert set(scores) == {name.rsplit(".", 1)[0] for name in APPS} | {"generate"}
    assert set(summary) == {"edit-hair", "edit-eyes", "animate", "interpolate", "interpolate-sparse", "extrapolate",
                            "blend-motion", "animate-poster", "generate"}
    assert set(report["apps"]) == {"edit", "animate", "interpolate", "interpolate-sparse", "extrapolate",
                                   "blend-motion", "animate-poster", "generate"}
    source = sample_params(SEED).attributes
    for name, attribute, value in (("edit-hair", "hair", "blonde"), ("edit-eyes", "eyes", "blue")):
        score, edit = scores[name], scores[name]["edit"]
        assert source[attribute] != value and score["target"] == {attribute: value}
        # one attribute edited, read as the new colour on every frame; the two others kept on every frame
        others = {"hair", "eyes", "skin"} - {attribute}
        assert edit["target"] == {attribute: edit["accuracy"]} and edit["accuracy"] >= 0.9
        assert set(edit["others"]) == others and min(edit["others"].values()) >= 0.9
        assert edit["others_unchanged"] >= 0.9
        temporal = score["temporal"]
        assert temporal["transitions"] == score["frames"] - 1 == 23
        assert temporal["flips"] == {"hair": 0, "eyes": 0, "skin": 0} and temporal["flip_rate"] == 0.0
        assert temporal["frame_diff_ratio"] == pytest.approx(temporal["frame_diff"] / temporal["source_frame_diff"], abs=1e-3)
        # anchored on the input's inversions, the edit moves as the true edit does (measured 1.05 / 1.09)
        assert 0.9 <= temporal["truth_frame_diff_ratio"] <= 1.2
        assert summary[name] == {
            "prompt": f"{value} {attribute}", "accuracy": edit["accuracy"], "others_unchanged": edit["others_unchanged"],
            "flip_rate": temporal["flip_rate"], "frame_diff_ratio": temporal["frame_diff_ratio"],
            "psnr_db": score["psnr_db"],
            "clip_direction": score["direction"]["cosine"], "true_clip_direction": score["direction"]["reference"],
            "pixel_accuracy": score["pixels"]["accuracy"], "pixel_others_unchanged": score["pixels"]["others_unchanged"],
            "inversion_psnr_db": score["inversion_psnr_db"], "landed": score["landed"],
        }
        # the judge CLIP cannot fool: the inversion keeps the source's colours, and the edit is nearer
        # the edited truth than the unedited inversion (measured at seed 0: hair 19.74 vs 18.75 dB,
        # eyes 24.03 vs 23.48) though its pixels do not read the new colour: by this judge the
        # model's edits do not land (README, "The demo model")
        assert score["inversion_pixels"]["accuracy"] == 0.0
        assert score["psnr_db"] > score["inversion_psnr_db"] and isinstance(score["landed"], bool)
    animate = scores["animate"]
    assert set(animate["correlation"]) == {"mouth_open", "head_x", "head_y"}
    assert all(-1 <= r <= 1 for r in animate["correlation"].values())
    # the motion regressor reads the true animation (measured 0.999 / 0.975 / 0.999), so a low r is the model's
    assert min(animate["reference_correlation"].values()) > 0.95
    assert {f"r_{k}": v for k, v in animate["correlation"].items()} == {
        k: v for k, v in summary["animate"].items() if k.startswith("r_")}
    interp = scores["interpolate"]["interpolation"]
    assert interp["frames"] == 30 and summary["interpolate"]["psnr_db"] == interp["psnr_db"]
    baselines, upper = interp["baselines_psnr_db"], interp["upper_bounds_psnr_db"]
    assert set(baselines) == {"frame_blend", "wplus_lerp", "content_code"} and set(upper) == {"inversion", *baselines}
    assert upper["inversion"] >= 27.0 and upper["frame_blend"] >= 27.5 and upper["wplus_lerp"] >= 26.5
    assert baselines["frame_blend"] >= 27.0 and baselines["wplus_lerp"] >= 26.7
    assert 18.0 <= baselines["content_code"] < interp["psnr_db"]
    assert report["anchor"] == "inversion" and report["apps"]["interpolate"]["outputs"][0]["frames"] == 48
    # the per-frame inversion is defined at the input's own times only (measured 27.59 dB)
    assert interp["at_input_times_inversion_psnr_db"] >= 27.0
    extra = scores["extrapolate"]["extrapolation"]
    # the first half second after the source (6 frames at 12 fps), and the whole new second
    assert extra["frames"] == 6 == extra["window_s"] * 12 and extra["all_new"]["frames"] == 12
    assert extra["baselines_psnr_db"]["repeat_last"] >= 19.0 and extra["upper_bounds_psnr_db"]["repeat_last"] >= 19.0
    assert extra["control_psnr_db"] >= 19.5 and extra["psnr_db"] >= 19.8  # measured 20.18 / 20.20 dB
    for name, kind in (("interpolate", "interpolation"), ("interpolate-sparse", "interpolation"),
                       ("extrapolate", "extrapolation")):
        got = scores[name][kind]
        assert summary[name] == {
            "psnr_db": got["psnr_db"], **{f"{k}_psnr_db": v for k, v in got["baselines_psnr_db"].items()},
            **{f"{k}_upper_bound_psnr_db": v for k, v in got["upper_bounds_psnr_db"].items()},
            "control_psnr_db": got["control_psnr_db"], "ode_gain_db": got["ode_gain_db"]}, name
    blend = scores["blend-motion"]["blend"]
    for where in ("inside", "outside"):
        assert all(-1 <= blend[where][f"corr_{v}"] <= 1 for v in "ab")
        for v in "ab":
            assert summary["blend-motion"][f"{where}_corr_{v}"] == blend[where][f"corr_{v}"]
    assert blend["inside"]["energy_ratio_b"] > 0.1 and blend["outside"]["energy_ratio_a"] > 0.1  # measured 0.19 / 0.22
    assert blend["follows"] == {
        "inside_b": blend["inside"]["corr_b"] > blend["inside"]["corr_a"],
        "outside_a": blend["outside"]["corr_a"] > blend["outside"]["corr_b"],
    }
    assert blend["follows"]["outside_a"]


def _x264(frames: torch.Tensor, tmp: Path) -> torch.Tensor:
    """``frames`` after the output's round trip: x264 at crf 18, 4:2:0."""
    path = tmp / f"coded-{len(list(tmp.iterdir()))}.mp4"
    with VideoWriter(path, fps=Fraction(24), width=frames.shape[-1], height=frames.shape[-2], crf=18) as writer:
        writer.write(frames.clamp(0, 1))
    return read_all(path, dtype="float32").frames


def test_like_for_like_baselines_are_built_from_the_decoded_input(demo_run, tmp_path):
    """The truth names the video the application read, and the like-for-like baselines are built
    from that file decoded: a frame blend by hand of the decoded 8 fps frames, and the decoded
    source's last frame repeated, score exactly what the report says."""
    out, report = demo_run
    inputs = {"interpolate.mp4": "source-8fps.mp4", "interpolate-sparse.mp4": "source-3fps.mp4",
              "extrapolate.mp4": "source.mp4", "edit-hair.mp4": "source.mp4", "blend-motion.mp4": "source.mp4"}
    for name, given in inputs.items():
        assert json.loads((out / truth_name(name)).read_text())["input"] == given, name
    source = sample_params(SEED)

    # interpolation: the output frames strictly between two 8 fps inputs, each blended by hand
    decoded = read_all(out / "source-8fps.mp4", dtype="float32").frames  # 16 frames, t = k/8
    held = [Fraction(k, 24) for k in range(48) if k % 3 and Fraction(k, 24) < Fraction(15, 8)]
    before = [int(t * 8) for t in held]  # the input frame before t, and the share of the way to the next
    share = [float(t * 8 - i) for t, i in zip(held, before)]
    blend = torch.stack([(1 - w) * decoded[i] + w * decoded[i + 1] for i, w in zip(before, share)])
    truth = render_times(source, np.array([float(t) for t in held]), size=SIZE)
    interp = report["scores"]["interpolate"]["interpolation"]
    assert interp["frames"] == len(held) == 30
    assert interp["baselines_psnr_db"]["frame_blend"] == pytest.approx(S.psnr(_x264(blend, tmp_path), truth), abs=1e-3)

    # extrapolation: the decoded source's last frame (t = 23/12), held over the first half second
    last = read_all(out / "source.mp4", dtype="float32").frames[-1:]
    window = np.array([2 + k / 12 for k in range(6)])
    truth = render_times(source, window, size=SIZE)
    extra = report["scores"]["extrapolate"]["extrapolation"]
    assert extra["baselines_psnr_db"]["repeat_last"] == pytest.approx(
        S.psnr(_x264(last, tmp_path).expand_as(truth), truth), abs=1e-3)


def test_control_and_ode_gain_hold_together_and_baselines_sit_below_their_upper_bounds(demo_run):
    """Whatever the model does: the interpolation control is the W+ lerp of the input's inversions
    plus the input's own detail, as the output has it (interpolate's default --detail input), the
    ODE gain is the output's PSNR minus the control's, and a baseline from the coded input scores
    below the same from the true frames (seed 0, 8 fps: frame blend 27.45 vs 28.22 dB, W+ lerp 27.17
    vs 27.30; 3 fps: 23.59 vs 23.77, 26.19 vs 26.38). Measured: the control 28.14 dB at 8 fps and
    26.15 at 3 fps, so the detail is not credited to the ODE (gain 0.15 and -0.27 dB; against the
    plain W+ lerp it would read 1.12 and -0.30)."""
    _, report = demo_run
    scores = report["scores"]
    got = {name: scores[name]["interpolation"] for name in ("interpolate", "interpolate-sparse")}
    got["extrapolate"] = scores["extrapolate"]["extrapolation"]
    for name, s in [*got.items(), ("extrapolate all new", got["extrapolate"]["all_new"])]:
        assert s["ode_gain_db"] == pytest.approx(s["psnr_db"] - s["control_psnr_db"], abs=2e-3), name
        assert report["summary"][name.split(" ")[0]]["ode_gain_db"] is not None
    assert report["detail"] == "input"
    assert got["interpolate"]["control_psnr_db"] > got["interpolate"]["baselines_psnr_db"]["wplus_lerp"] + 0.5
    assert got["interpolate"]["ode_gain_db"] < 0.5
    for name in ("interpolate", "interpolate-sparse"):
        s = got[name]
        for baseline in ("frame_blend", "wplus_lerp"):
            assert s["baselines_psnr_db"][baseline] < s["upper_bounds_psnr_db"][baseline], (name, baseline)
    # the last input frame's inversion, held, is another video than the frame itself
    assert got["extrapolate"]["control_psnr_db"] != got["extrapolate"]["baselines_psnr_db"]["repeat_last"]


def test_the_sparse_case_leaves_lerping_weaker(demo_run):
    """3 fps to 24 fps: seven of every eight output frames are held out, and blending neighbours
    is weaker than from 8 fps (seed 0: frame blend 23.59 vs 27.45 dB, W+ lerp 26.19 vs 27.17)."""
    _, report = demo_run
    sparse = report["scores"]["interpolate-sparse"]["interpolation"]
    dense = report["scores"]["interpolate"]["interpolation"]
    assert sparse["frames"] == 35  # 5 gaps of 1/3 s, 7 frames each
    assert sparse["input"] == "source-3fps.mp4" and dense["input"] == "source-8fps.mp4"
    assert sparse["baselines_psnr_db"]["frame_blend"] < dense["baselines_psnr_db"]["frame_blend"] - 2
    assert sparse["control_psnr_db"] < dense["control_psnr_db"]
    assert sparse["baselines_psnr_db"]["frame_blend"] >= 23.0 and sparse["control_psnr_db"] >= 25.5


def test_scores_stay_above_what_the_shipped_model_measured(demo_run):
    """Seed 0, 2 s at 12 fps, 64 px; measured with vidstyleode-demo (weights of sha 36e503ca…; the same file with its prior since, 57c4bce7…) on 1 thread,
    anchored on the inversions (the default): hair→blonde accuracy 1.00, eyes→blue 1.00 (α = 2.0),
    others unchanged 1.00/1.00, flip rate 0/0, edited clips change from frame to frame 1.07/1.10 as
    much as the source, PSNR against the edited truth 19.74/24.03 dB; animate (the driver's own
    motion on the portrait, measured from the driver's pose nearest the portrait's,
    Pipeline.motion_anchor) r(mouth) 0.99, r(head_x) 0.87, r(head_y) 0.93 (0.77 / -0.15 / 0.24
    from the driver's first frame), portrait attributes 1.00, PSNR against the true frames 19.47 dB
    (the portrait's inversion held still 16.13; 16.05 from the first frame); interpolation 27.25 dB (from the
    decoded input: W+ lerp 27.17, frame blend 27.45, content code alone 18.71); extrapolation
    20.20 dB (repeating the last input frame 19.64); blend-motion outside the mask r(A) 0.98,
    r(B) 0.53. The thresholds sit a little below, so a regression in any stage fails here."""
    _, report = demo_run
    s = report["summary"]
    assert s["edit-eyes"]["prompt"] == "blue eyes" and s["edit-eyes"]["accuracy"] >= 0.9
    assert s["edit-hair"]["prompt"] == "blonde hair" and s["edit-hair"]["accuracy"] >= 0.9
    edit = report["apps"]["edit"]
    assert edit["strength"] == 2.0
    # described as in training: the source's caption, and the same caption with one colour changed
    source = sample_params(SEED)
    assert edit["source_text"] == caption(source)
    assert edit["target_texts"] == [caption(with_appearance(source, hair="blonde")),
                                    caption(with_appearance(source, eyes="blue"))]
    for name in ("edit-hair", "edit-eyes"):
        assert s[name]["others_unchanged"] >= 0.9 and s[name]["flip_rate"] <= 0.05, name
        # anchored: the edited clip keeps the source's motion (the paper's way: 0.26 / 0.27)
        assert s[name]["frame_diff_ratio"] >= 0.95, name
    assert s["edit-hair"]["psnr_db"] >= 19.3 and s["edit-eyes"]["psnr_db"] >= 23.5
    # the edits' change agrees with their captions' direction in CLIP (measured 0.92 / 0.87; the
    # true edits 0.94 / 0.90)
    for name in ("edit-hair", "edit-eyes"):
        assert s[name]["clip_direction"] >= 0.85 and s[name]["true_clip_direction"] >= 0.85, name
    # CLIP reads the portrait's colours on every frame (the pixels read the eyes' on a quarter: the
    # eye colour is mostly lost in the portrait's inversion)
    assert s["animate"]["portrait_attributes"] >= 0.9
    assert s["animate"]["r_mouth_open"] >= 0.9
    # seed 0's driver barely moves its head (x: 0.0075 of the frame, std), and the portrait follows it
    assert s["animate"]["r_head_x"] >= 0.75 and s["animate"]["r_head_y"] >= 0.85
    assert s["animate"]["psnr_db"] >= s["animate"]["still_portrait_psnr_db"] + 2.5
    assert s["interpolate"]["psnr_db"] >= 27.0
    # anchored: as good as lerping the input's own inversions (measured +0.08 dB) and far above the
    # motionless content code
    assert s["interpolate"]["psnr_db"] >= s["interpolate"]["wplus_lerp_psnr_db"] - 0.1
    assert s["interpolate"]["psnr_db"] >= s["interpolate"]["content_code_psnr_db"] + 8.0
    assert s["extrapolate"]["psnr_db"] >= s["extrapolate"]["repeat_last_psnr_db"] + 0.3  # measured +0.56 dB
    # the portrait's eye colour, read by CLIP, flips twice in 23 transitions as the driver's eyes move
    assert report["scores"]["animate"]["temporal"]["flip_rate"] <= 0.1
    # blend-motion: outside the mask the motion follows A rather than B; the inside: see below
    blend = s["blend-motion"]
    assert blend["outside_corr_a"] >= 0.9 and blend["outside_corr_a"] > blend["outside_corr_b"] + 0.3
    # outside the region, A's own detail (the default): 30.12 dB against A's truth, the input itself
    # 30.19, A's inversion 27.46
    assert blend["outside_psnr_db"] >= blend["outside_inversion_psnr_db"] + 2.0, blend
    assert blend["outside_psnr_db"] >= blend["outside_input_psnr_db"] - 0.5, blend


def test_blend_motion_inside_follows_b(demo_run):
    """Anchored: B's inversions with A's content inside the mouth region, A's outside. Measured on
    seed 0: inside r(B) 0.90, r(A) 0.10 (the paper's way: -0.40, -0.14)."""
    _, report = demo_run
    blend = report["summary"]["blend-motion"]
    assert blend["inside_corr_b"] >= 0.8 and blend["inside_corr_b"] > blend["inside_corr_a"] + 0.3


def test_generate_samples_distinct_faces_that_move(demo_run):
    """Two videos from the demo model's prior (seeds 0 and 1): measured two distinct looks (brown hair,
    brown eyes, medium skin; black hair, blue eyes, dark skin), motion energy 1.15 of the real
    source's and driver's and 1.03 of animate's (the driver's own motion on the portrait), with the
    prior's calibrated motion gain; 0.36 and 0.49 before the prior had one (the demo model's own
    motion is weak). Issue 21's target: a ratio to the real clips in [0.5, 2]."""
    out, report = demo_run
    for name in GENERATED:
        info = probe(out / name)
        assert info.frame_count == 24 and info.fps == FPS and (info.width, info.height) == (64, 64)
    gen = report["scores"]["generate"]
    assert report["summary"]["generate"] == {k: gen[k] for k in ("distinct_looks", "energy_ratio", "energy_ratio_vs_animate")}
    assert gen["distinct_looks"] == 2 and len(gen["looks"]) == 2 and len(set(map(str, gen["looks"]))) == 2
    assert GENERATE_ENERGY_LO <= gen["energy_ratio"] <= GENERATE_ENERGY_HI
    assert GENERATE_VS_ANIMATE_LO <= gen["energy_ratio_vs_animate"] <= GENERATE_VS_ANIMATE_HI
    assert [s["seed"] for s in report["apps"]["generate"]["samples"]] == [SEED, SEED + 1]


def test_the_swapped_generator_keeps_the_motion_and_shows_its_style(demo_run):
    """animate rendered with stylegan2-demo-poster: its correlations with the driver move by 0.018
    at most (mouth 0.99 → 0.99, head x 0.87 → 0.89, head y 0.93 → 0.94; issue 21's target: 0.1)
    and the palette distance falls from 0.080 to 0.023; the swapped animate's motion readings
    correlate with the unswapped one's at r 0.95 or more in every channel."""
    _, report = demo_run
    plain, poster = report["summary"]["animate"], report["summary"]["animate-poster"]
    assert report["apps"]["animate-poster"]["generator"] == "stylegan2-demo-poster"
    assert poster["r_change_max"] <= 0.05
    assert poster["r_change_max"] == pytest.approx(max(abs(poster[k] - plain[k]) for k in
                                                       ("r_mouth_open", "r_head_x", "r_head_y")), abs=1e-3)
    # read against each other, the two animates move alike in every channel (measured min r 0.95)
    assert poster["r_vs_unswapped_min"] >= 0.9
    assert set(report["scores"]["animate-poster"]["vs_unswapped"]) == {"mouth_open", "head_x", "head_y"}
    assert poster["palette_distance"] < POSTER_PALETTE * poster["unswapped_palette_distance"]



def test_contact_sheet_has_a_row_per_application(demo_run):
    out, report = demo_run
    sheet = report["sheet"]
    rows = sheet["rows"]
    for app_row in ("invert", "animate", "source at 8 fps", "interpolate 8 to 24 fps", "source at 3 fps",
                    "interpolate 3 to 24 fps", "extrapolate +1 s", "blend-motion (mouth)", "animate, poster generator",
                    "generate (seed 0)", "generate (seed 1)"):
        assert app_row in rows
    assert sum(r.startswith("edit: ") for r in rows) == 2
    with Image.open(out / "contact_sheet.png") as image:
        width, height = image.size
    cell, gap = sheet["cell"], sheet["gap"]
    assert height == sheet["header"] + len(rows) * cell + (len(rows) + 1) * gap
    assert width == sheet["label_width"] + len(sheet["times"]) * cell + (len(sheet["times"]) + 1) * gap
    assert sheet["times"][-1] > SECONDS  # the last columns show the extrapolation


def test_eval_reproduces_the_reported_scores(demo_run):
    out, report = demo_run
    cli = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    cli.command("eval")(eval_)
    cli.command("other")(lambda: None)
    for name in ("edit-hair.mp4", "interpolate.mp4", "blend-motion.mp4"):
        res = CliRunner().invoke(cli, ["eval", str(out / name), "--truth", str(out / truth_name(name)), "--json", "-q"])
        assert res.exit_code == 0, res.stderr
        data = json.loads(res.stdout)
        data.pop("output")
        data.pop("timings", None)
        assert data == report["scores"][name.rsplit(".", 1)[0]], name


def test_audio_loudness_follows_the_mouth(demo_run):
    out, _ = demo_run
    rate = 16000
    samples = read_audio(out / "source.mp4", sample_rate=rate)
    window = rate // 12
    loudness = np.array([np.sqrt(np.mean(samples[i * window:(i + 1) * window] ** 2)) for i in range(24)])
    mouth = sample_params(SEED).motion((np.arange(24) + 0.5) / 12)["mouth_open"]
    assert np.corrcoef(loudness, mouth)[0, 1] > 0.8


def test_clip_reads_the_source_attributes(demo_run):
    _, report = demo_run
    scores = report["clip_zero_shot"]
    assert scores["hair"] >= 0.9 and scores["skin"] >= 0.9 and scores["eyes"] >= 0.75


def test_refuses_to_overwrite_and_validates_options(demo_run, model_file, tmp_path):
    out, _ = demo_run
    before = (out / "report.json").read_bytes()
    with pytest.raises(InputError, match="--force"):
        run_demo(out, DemoOptions(seconds=1.0, fps=Fraction(8), size=64, model=str(model_file)))
    assert (out / "report.json").read_bytes() == before
    with pytest.raises(InputError, match="--seconds"):
        DemoOptions(seconds=0)
    with pytest.raises(InputError, match="--size"):
        DemoOptions(size=100)
    with pytest.raises(InputError, match="--detail 'x' is not one of none, input"):
        DemoOptions(detail="x")
    with pytest.raises(InputError, match="--anchor none renders without them"):
        DemoOptions(detail="input", anchor="none")
    with pytest.raises(InputError, match="does not exist"):
        run_demo(tmp_path / "x", DemoOptions(model=str(tmp_path / "missing.pt")))
    assert not (tmp_path / "x").exists()


def test_the_printed_summary_puts_each_score_beside_its_baseline(demo_run):
    """What `vsode demo` prints: blend-motion's PSNR outside the region beside the input's and the
    inversion's, interpolation beside its control carrying the input's detail."""
    from vsode.cli.demo import summary_lines

    out, report = demo_run
    text = summary_lines(report, out)
    text = text if isinstance(text, str) else "\n".join(text)
    b = report["summary"]["blend-motion"]
    assert (f"outside the region {b['outside_psnr_db']:.2f} dB (the input itself {b['outside_input_psnr_db']:.2f} dB, "
            f"its inversion {b['outside_inversion_psnr_db']:.2f} dB)") in text
    assert "control (the input's inversions, lerped, with the input's detail)" in text


def test_the_default_model_is_the_builtin_one(demo_run):
    _, report = demo_run
    assert report["model"]["name"] == "vidstyleode-demo"
    assert report["model"]["path"].endswith("vidstyleode-demo.pt")


def test_cli_demo_json(tmp_path, model_file):
    res = CliRunner().invoke(app, ["demo", str(tmp_path / "d"), "--seconds", "1", "--fps", "8",
                                   "--size", "64", "--model", str(model_file), "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["frames"] == 8 and data["fps"] == "8/1" and data["model"]["name"] == str(model_file)
    assert set(data["scores"]) == {"edit-hair", "edit-eyes", "animate", "interpolate", "interpolate-sparse",
                                   "extrapolate", "blend-motion", "animate-poster", "generate"}
    # a model without a prior: no generate rows, and the report says how to fit one
    assert "vsode fit-prior" in data["scores"]["generate"]["skipped"] and "generate" not in data["summary"]
    res = CliRunner().invoke(app, ["demo", str(tmp_path / "e"), "--fps", "abc"])
    assert res.exit_code == 2 and "--fps" in res.stderr


def test_inversion_with_the_builtin_demo_models(demo_run):
    out, report = demo_run
    inv = report["inversion"]
    assert inv["encoder"]["name"] == "psp-demo"
    assert inv["psnr_db"] >= 25.0  # measured 28.1 dB at seed 0 (the held-out mean is 28.2 dB)
    recon = probe(out / "source_recon.mp4")
    assert recon.frame_count == 24 and recon.fps == Fraction(12) and len(recon.audio) == 1
