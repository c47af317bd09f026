"""The demo scores on known answers: the renderer's own ground truth must score perfectly.

Each application's ideal output is known exactly in the demo world: an edit is the same video
with one attribute changed (``with_appearance``), an animation is the portrait moving with the
driver's motion (``with_motion``), interpolation and extrapolation are the source rendered at the
new times. Feeding those renders to the scores must give the best answers (accuracy 1,
correlation about 1, PSNR infinite and above every baseline), and feeding the wrong video must not.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from vsode.cli.eval import eval_
from vsode.demo import scores as S
from vsode.demo.evaluate import Readers, Truth, evaluate, read_truth, write_truth
from vsode.checkpoints import resolve
from vsode.demo.regressor import (
    FORMAT,
    HELD_OUT_SEED,
    MotionRegressor,
    default_path,
    evaluate_regressor,
    load_regressor,
    true_motion,
)
from vsode.demo.world import render_times, sample_params, with_appearance, with_motion
from vsode.errors import InputError
from vsode.options import region_mask
from vsode.video import VideoWriter, read_all

FPS = 24
SECONDS = 3
TIMES = tuple(Fraction(k, FPS) for k in range(SECONDS * FPS))
SECS = np.array([float(t) for t in TIMES])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def readers() -> Readers:
    return Readers()


@pytest.fixture(scope="module")
def source():
    return sample_params(0)  # grey hair, brown eyes, medium skin


def render(params, times=SECS, size=64) -> torch.Tensor:
    return render_times(params, np.asarray([float(t) for t in times]), size=size)


# --- pure functions on hand-made answers -----------------------------------------------------------


def test_psnr_neighbours_and_held_out_times():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert S.psnr(x, x) == float("inf")
    assert S.psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)) == pytest.approx(20.0)
    # 8 fps input, 24 fps output over 1 s: held out are the two frames between each input pair
    src = [Fraction(k, 8) for k in range(8)]
    out = [Fraction(k, 24) for k in range(24)]
    frames, before, weight = S.held_out(out, src)
    assert frames == [k for k in range(1, 22) if k % 3]  # 22, 23 lie past the last input frame
    assert before[:4] == [0, 0, 1, 1] and weight[:2] == pytest.approx([1 / 3, 2 / 3])
    ramp = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)  # linear in time
    mid = S.blend_neighbours(ramp, [0, 2], [0.25, 0.5])
    assert mid[:, 0, 0, 0].tolist() == [0.25, 2.5]


def test_attribute_scores_count_what_they_should():
    read = {"hair": ["red", "red", "red", "black"], "eyes": ["blue", "grey", "blue", "blue"], "skin": ["dark"] * 4}
    visible = {"eyes": [True, False, True, True]}  # frame 1 blinks: its eye reading does not count
    acc = S.edit_accuracy(read, {"hair": "red"}, {"hair": "black", "eyes": "blue", "skin": "dark"}, visible)
    assert acc["accuracy"] == 0.75 and acc["others_unchanged"] == 1.0
    acc = S.edit_accuracy(read, {"eyes": "blue"}, {"hair": "red", "eyes": "grey", "skin": "dark"}, visible)
    assert acc["accuracy"] == 1.0 and acc["others_unchanged"] == 0.75
    flips = S.attribute_flips(read, visible)
    assert flips["flips"] == {"hair": 1, "eyes": 0, "skin": 0} and flips["flip_rate"] == pytest.approx(1 / 3)
    assert S.attribute_flips(read)["flips"]["eyes"] == 2
    with pytest.raises(InputError, match="edit target"):
        S.edit_accuracy(read, {"background": "blue"}, {}, visible)


def test_blend_energies_of_a_composite_follow_b_inside_and_a_outside():
    a = render(sample_params(0))
    b = render(sample_params(1, motion_seed=101))
    mask = S.grid_to_pixels(region_mask("mouth", (8, 8)), 64)
    assert mask.sum() == 2 * 4 * 8 * 8  # two rows of four cells of 8x8 pixels
    composite = mask * b + (1 - mask) * a  # B's pixels inside, A's outside
    scores = S.blend_scores(composite, a, b, mask)
    assert scores["inside"]["corr_b"] == pytest.approx(1.0) and scores["outside"]["corr_a"] == pytest.approx(1.0)
    assert scores["inside"]["energy_ratio_b"] == pytest.approx(1.0)
    assert scores["inside"]["corr_a"] < 0.5 and scores["outside"]["corr_b"] < 0.7  # measured 0.05 and 0.41
    assert scores["follows"] == {"inside_b": True, "outside_a": True}
    swapped = S.blend_scores(mask * a + (1 - mask) * b, a, b, mask)
    assert swapped["follows"] == {"inside_b": False, "outside_a": False}


class _ColourClip:
    """A stand-in CLIP with known geometry: an image embeds as its mean R, G, B; a text as the
    colour it names."""

    device = "cpu"
    words = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "plain": [0.0, 0.0, 0.0]}

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.words[t] for t in texts])


def test_clip_direction_is_the_cosine_of_the_change_with_the_text_direction():
    clip, source = _ColourClip(), torch.full((4, 3, 8, 8), 0.25)
    redder, greener = source.clone(), source.clone()
    redder[:, 0] += 0.5
    greener[:, 1] += 0.5
    assert S.clip_direction(clip, redder, source, "plain", "red") == pytest.approx(1.0)
    assert S.clip_direction(clip, greener, source, "plain", "red") == pytest.approx(0.0, abs=1e-6)
    assert S.clip_direction(clip, greener, source, "red", "green") == pytest.approx(0.5 ** 0.5)
    half = torch.cat([redder[:2], greener[2:]])  # the mean over frames, in batches of any size
    assert S.clip_direction(clip, half, source, "plain", "red", batch_size=3) == pytest.approx(0.5)
    assert S.clip_direction(clip, redder, source, "red", "red") is None  # the texts name no change
    with pytest.raises(InputError):
        S.clip_direction(clip, redder[:3], source, "plain", "red")


# --- the readers on ground truth -------------------------------------------------------------------


@pytest.mark.parametrize("attribute, value", [("hair", "blonde"), ("eyes", "blue"), ("skin", "dark")])
def test_the_renderers_own_edit_scores_perfectly(readers, source, attribute, value):
    edited = with_appearance(source, **{attribute: value})
    truth = Truth("edit", TIMES, edited, source=source, target={attribute: value}, crf=None)
    scores = evaluate(render(edited), truth, readers)
    assert scores["edit"]["accuracy"] == 1.0 and scores["edit"]["others_unchanged"] == 1.0
    assert scores["temporal"]["flip_rate"] == 0.0 and scores["temporal"]["truth_frame_diff_ratio"] == 1.0
    assert 0.7 < scores["temporal"]["frame_diff_ratio"] < 1.3  # new colours, the same motion
    assert scores["psnr_db"] == "inf"
    # the true edit moves every frame along its captions' direction in CLIP (measured 0.92-0.96)
    assert scores["direction"]["cosine"] == scores["direction"]["reference"] > 0.85
    # the unedited source is no edit: nothing reads as the target, everything else unchanged
    unedited = evaluate(render(source), truth, readers)
    assert unedited["edit"]["accuracy"] == 0.0 and unedited["edit"]["others_unchanged"] == 1.0
    assert unedited["direction"]["cosine"] == pytest.approx(0.0, abs=1e-6)  # no change, no direction


def test_the_pixels_read_every_colour_of_the_vocabulary(source):
    """The pixel judge reads the renderer's own regions: every hair, eye and skin colour of the
    vocabulary, on every frame the eyes are open, whatever the other attributes are."""
    from vsode.demo.world import ATTRIBUTES

    times = SECS[::6]
    for attribute in S.NAMED:
        for value in ATTRIBUTES[attribute]:
            params = with_appearance(source, **{attribute: value})
            read = S.read_pixels(render(params, times), params, times)
            visible = S.eyes_visible(params, times)
            for a in S.NAMED:
                seen = [v for v, ok in zip(read[a], visible if a == "eyes" else [True] * len(times)) if ok]
                assert seen and set(seen) == {params.attributes[a]}, (attribute, value, a, read[a])


def test_a_fooled_edit_does_not_land_and_a_true_one_does(readers, source, tmp_path):
    """CLIP can be fooled, the pixels and the PSNR cannot: the unedited video with a tint that
    moves CLIP does not land; the true edit does, against the inversion of the input it received."""
    edited = with_appearance(source, eyes="blue")
    _input_video(tmp_path / "source.mp4", source, TIMES)
    truth = Truth("edit", TIMES, edited, source=source, target={"eyes": "blue"}, crf=None, input="source.mp4")
    true = evaluate(render(edited), truth, readers, folder=tmp_path)
    assert true["pixels"]["accuracy"] == 1.0 and true["pixels"]["others_unchanged"] == 1.0
    assert true["landed"] is True and true["inversion_psnr_db"] < 30  # the inversion is far from it
    assert true["inversion_pixels"]["accuracy"] == 0.0  # the inversion keeps the source's eyes
    tinted = (render(source) + torch.tensor([-0.03, 0.0, 0.06]).view(1, 3, 1, 1)).clamp(0, 1)  # a blue cast
    fooled = evaluate(tinted, truth, readers, folder=tmp_path)
    assert fooled["pixels"]["accuracy"] == 0.0 and fooled["landed"] is False
    assert S.edit_landed({"accuracy": 1.0}, 20.0, 19.5) is False  # reads right but barely nearer: not landed
    assert S.edit_landed({"accuracy": 0.95}, 21.0, 19.5) is True
    assert S.edit_landed({"accuracy": 1.0}, 21.0, None) is None  # no inversion to compare with


def _input_video(path, params, times) -> torch.Tensor:
    """Render ``params`` at ``times`` into the video ``path`` as `vsode demo` writes an input (x264,
    crf 18); returns its frames decoded."""
    with VideoWriter(path, fps=Fraction(FPS), width=64, height=64) as writer:
        writer.write(render(params, times))
    return read_all(path, dtype="float32").frames


def test_interpolation_of_the_true_frames_is_perfect_and_beats_the_baselines(readers, source, tmp_path):
    slow = tuple(Fraction(k, 8) for k in range(SECONDS * 8))
    decoded = _input_video(tmp_path / "slow.mp4", source, slow)
    truth = Truth("interpolate", TIMES, source, source=source, source_times=slow, crf=None, input="slow.mp4")
    result = evaluate(render(source), truth, readers, folder=tmp_path)["interpolation"]
    assert result["frames"] == 46 and result["psnr_db"] == "inf" and result["input"] == "slow.mp4"
    upper = result["upper_bounds_psnr_db"]
    # measured at seed 0: inversion 26.9 dB, frame blend 32.2 dB, W+ lerp 26.8 dB (the generator
    # bounds the first and the last near the encoder's 28 dB; blending pixels is not bounded by it)
    assert upper["inversion"] > 25 and upper["frame_blend"] > 29 and upper["wplus_lerp"] > 25
    # the content code alone (the inputs' mean W+, no motion) is far below all three
    assert upper["content_code"] < min(upper["inversion"], upper["wplus_lerp"]) - 3
    assert result["at_input_times_psnr_db"] == "inf"

    # like-for-like: the decoded input frames, blended by hand (output frame k/24 lies between inputs
    # k // 3 and k // 3 + 1, a third or two of the way), score below the same blend of the true frames
    held = [k for k in range(len(TIMES)) if k % 3 and k // 3 + 1 < len(slow)]
    by_hand = torch.stack([(1 - (k % 3) / 3) * decoded[k // 3] + (k % 3) / 3 * decoded[k // 3 + 1] for k in held])
    fair = result["baselines_psnr_db"]
    assert fair["frame_blend"] == pytest.approx(S.psnr(by_hand, render(source, SECS[held])), abs=1e-3)
    assert fair["frame_blend"] < upper["frame_blend"] and fair["wplus_lerp"] < upper["wplus_lerp"]
    assert fair["content_code"] < fair["wplus_lerp"] - 3
    # the model-free control is the W+ lerp of the input's inversions; a perfect output gains infinitely
    assert result["control_psnr_db"] == fair["wplus_lerp"] and result["ode_gain_db"] == "inf"
    assert result["at_input_times_inversion_psnr_db"] > 25  # the decoded inputs' own inversions

    # a still video (the first frame throughout) loses to blending neighbours, and to the control
    still = evaluate(render(source, [0.0] * len(TIMES)), truth, readers, folder=tmp_path)["interpolation"]
    assert still["psnr_db"] < upper["wplus_lerp"] - 5  # measured 17.7 dB
    assert still["ode_gain_db"] == pytest.approx(still["psnr_db"] - still["control_psnr_db"], abs=2e-3)
    assert still["ode_gain_db"] < -5


def test_extrapolation_of_the_true_frames_beats_repeating_the_last_one(readers, source, tmp_path):
    src = TIMES[:48]  # 2 s given, 1 s asked for
    truth = Truth("extrapolate", TIMES, source, source=source, source_times=src, crf=None)
    result = evaluate(render(source), truth, readers)["extrapolation"]
    assert result["frames"] == 12 and result["window_s"] == 0.5 and result["psnr_db"] == "inf"
    assert 15 < result["upper_bounds_psnr_db"]["repeat_last"] < 30  # measured 20.5 dB
    assert result["all_new"]["frames"] == 24
    # a truth that names no input (as before truth files named one) has the upper bounds only
    assert result["baselines_psnr_db"] == {} and "control_psnr_db" not in result and result["input"] is None

    # with its input: the decoded last frame held, and the control, its inversion held
    decoded = _input_video(tmp_path / "given.mp4", source, src)
    given = evaluate(render(source), dataclasses.replace(truth, input="given.mp4"), readers, folder=tmp_path)
    given = given["extrapolation"]
    window = render(source, SECS[48:60])
    assert given["baselines_psnr_db"]["repeat_last"] == pytest.approx(
        S.psnr(decoded[-1].expand_as(window), window), abs=1e-3)
    held = readers.synthesize(readers.invert(decoded[-1:]), 64)[0]
    assert given["control_psnr_db"] == pytest.approx(S.psnr(held.expand_as(window), window), abs=1e-3)
    assert given["ode_gain_db"] == "inf" and given["upper_bounds_psnr_db"] == result["upper_bounds_psnr_db"]
    with pytest.raises(InputError, match="missing.mp4"):
        evaluate(render(source), dataclasses.replace(truth, input="missing.mp4"), readers, folder=tmp_path)


def test_ode_gain_is_the_output_minus_the_control():
    assert S.ode_gain(19.171, 27.172) == -8.001
    assert S.ode_gain(20.0, None) is None and S.ode_gain(float("inf"), 20.0) == float("inf")
    truth = torch.full((2, 3, 4, 4), 0.5)
    scores = S.interpolation_scores(truth + 0.1, truth, {"a": truth + 0.01}, upper_bounds={"a": truth},
                                    control=truth[0] + 0.01)  # one frame: held over both
    assert scores["psnr_db"] == pytest.approx(20.0) and scores["control_psnr_db"] == pytest.approx(40.0)
    assert scores["ode_gain_db"] == pytest.approx(-20.0) and scores["upper_bounds_psnr_db"] == {"a": float("inf")}


def test_animation_with_the_drivers_own_motion_correlates(readers):
    portrait, driver = sample_params(2), sample_params(1, motion_seed=101)
    truth = Truth("animate", TIMES, with_motion(portrait, driver), driver=driver, crf=None)
    scores = evaluate(render(with_motion(portrait, driver)), truth, readers)
    r = scores["correlation"]
    assert r["mouth_open"] > 0.98 and r["head_x"] > 0.98 and r["head_y"] > 0.98  # measured 0.997, 0.999, 0.999
    assert scores["correlation"] == scores["reference_correlation"]
    assert scores["attributes"]["all"] == 1.0
    # the portrait moving its own way does not follow the driver
    own = evaluate(render(portrait), truth, readers)["correlation"]
    assert own["mouth_open"] < 0.5 and own["head_x"] < 0.5


def test_blend_truth_scores(readers, source):
    driver = sample_params(1, motion_seed=101)
    mask = region_mask("mouth", (8, 8))
    truth = Truth("blend", TIMES, source, source=source, driver=driver, mask=tuple(map(tuple, mask.tolist())), crf=None)
    pixels = S.grid_to_pixels(mask, 64)
    composite = pixels * render(driver) + (1 - pixels) * render(source)
    scores = evaluate(composite, truth, readers)
    assert scores["blend"]["follows"] == {"inside_b": True, "outside_a": True}
    assert scores["trajectories"]["head_x"]["a"] > 0.95  # the face outside the mouth is A's


# --- the regressor ---------------------------------------------------------------------------------


def test_shipped_regressor_reads_held_out_renders():
    path = default_path()
    assert path.stat().st_size < 1_000_000
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["config"]["channels"] == ["mouth_open", "head_x", "head_y", "eye_open"]
    model = load_regressor()
    metrics = evaluate_regressor(model, frames=256, videos=8)
    # measured on 1024 frames / 32 clips: MAE mouth 0.016, head x 0.0020, head y 0.0013, eyes 0.032;
    # trajectory r 0.997, 0.999, 0.999, 0.91
    mae = {k: v["mae"] for k, v in metrics["renders"].items()}
    assert mae["mouth_open"] < 0.03 and mae["head_x"] < 0.004 and mae["head_y"] < 0.003 and mae["eye_open"] < 0.06
    traj = metrics["trajectories"]
    assert traj["mouth_open"]["mean_r"] > 0.98 and traj["head_x"]["mean_r"] > 0.99 and traj["head_y"]["mean_r"] > 0.99
    assert traj["eye_open"]["mean_r"] > 0.8


def test_shipped_regressor_reads_the_restyled_generator_as_the_base_one():
    """The same W+ decoded by stylegan2-demo and by its posterised fine-tune read as the same
    motion (the regressor learned both: half its reconstruction pool is restyled). Measured on
    1024 frames: the readings differ by MAE 0.0023 / 0.0018 / 0.016 in head x / head y / mouth (the
    regressor trained on the base generator's alone: 0.0062 / 0.0043 / 0.056); restyled
    reconstructions read against the truth at r 0.998 / 0.997 / 0.988."""
    from vsode.demo.regressor import _reconstruct, _render_batch, _restyled_generator
    from vsode.encoders import load_encoder

    model = load_regressor()
    encoder = load_encoder(resolve("psp-demo")).eval()
    x, y = _render_batch(np.random.default_rng([HELD_OUT_SEED, 1]), 32, 256, 64, seed_offset=HELD_OUT_SEED)
    base = model.measure(_reconstruct(x, encoder))
    poster = model.measure(_reconstruct(x, encoder, generator=_restyled_generator()))
    gap = {c: float(np.abs(base[c] - poster[c]).mean()) for c in ("head_x", "head_y", "mouth_open")}
    assert gap["head_x"] < 0.0035 and gap["head_y"] < 0.003 and gap["mouth_open"] < 0.03, gap
    assert np.corrcoef(poster["head_x"], y[:, 1].numpy())[0, 1] > 0.99


def test_regressor_checkpoint_round_trip(tmp_path):
    from vsode.fileio import save_torch

    model = MotionRegressor()
    path = save_torch(model.checkpoint(), tmp_path / "r.pt")
    loaded = load_regressor(path)
    x = torch.rand(2, 3, 128, 128)  # other sizes are resized
    got = loaded.measure(x)
    assert set(got) == {"mouth_open", "head_x", "head_y", "eye_open"} and got["mouth_open"].shape == (2,)
    with pytest.raises(InputError, match="not a demo motion regressor"):
        load_regressor(save_torch({"format": "other"}, tmp_path / "x.pt"))
    motion = true_motion(sample_params(0), [0.0, 0.5])
    assert np.all((motion["eye_open"] >= 0) & (motion["eye_open"] <= 1))


# --- the truth file and `vsode eval` ---------------------------------------------------------------


def _eval_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command("eval")(eval_)
    app.command("other")(lambda: None)  # a group, so the command is named as in `vsode eval`
    return app


def test_eval_cli_scores_a_coded_edit(tmp_path, source):
    edited = with_appearance(source, hair="red")
    video = tmp_path / "edit.mp4"
    with VideoWriter(video, fps=Fraction(FPS), width=64, height=64) as writer:
        writer.write(render(edited))
    truth = Truth("edit", TIMES, edited, source=source, target={"hair": "red"}, prompt="red hair")
    path = write_truth(tmp_path / "edit.truth.json", truth)
    assert read_truth(path) == truth and json.loads(path.read_text())["format"] == "vsode/demo-truth@1"

    app = _eval_app()
    res = CliRunner().invoke(app, ["eval", str(video), "--truth", str(path), "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["kind"] == "edit" and data["frames"] == len(TIMES) and data["prompt"] == "red hair"
    assert data["edit"]["accuracy"] == 1.0 and data["edit"]["others_unchanged"] >= 0.95
    assert 28 < data["psnr_db"] < 40  # x264 at crf 18 and 4:2:0 chroma, 64 px
    human = CliRunner().invoke(app, ["eval", str(video), "--truth", str(path)])
    assert human.exit_code == 0 and "accuracy: 1" in human.stdout

    for args, words in (
        (["--kind", "animate"], "an output of kind edit"),
        (["--kind", "nonsense"], "--kind 'nonsense'"),
    ):
        res = CliRunner().invoke(app, ["eval", str(video), "--truth", str(path), *args])
        assert res.exit_code == 2 and words in res.stderr, res.stderr
    short = write_truth(tmp_path / "short.truth.json", Truth("edit", TIMES[:10], edited, source=source, target={"hair": "red"}))
    res = CliRunner().invoke(app, ["eval", str(video), "--truth", str(short)])
    assert res.exit_code == 2 and "72 frames but its truth lists 10" in res.stderr
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    res = CliRunner().invoke(app, ["eval", str(video), "--truth", str(tmp_path / "bad.json")])
    assert res.exit_code == 2 and "not a demo truth file" in res.stderr
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.mp4"), "--truth", str(path)])
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_truth_checks_what_each_kind_needs(source):
    with pytest.raises(InputError, match="a blend truth needs driver"):
        Truth("blend", TIMES, source, source=source, mask=((1.0,),))
    with pytest.raises(InputError, match="kind 'warp'"):
        Truth("warp", TIMES, source)
    with pytest.raises(InputError, match="edit target"):
        Truth("edit", TIMES, source, source=source, target={"nose": "big"})
    with pytest.raises(InputError, match="latents name the inversion of an input, but it names no input"):
        Truth("extrapolate", TIMES, source, source=source, source_times=TIMES, latents="x.latents.pt")
    # the latents a tuned application rendered from travel with the truth
    truth = Truth("extrapolate", TIMES, source, source=source, source_times=TIMES, input="in.mp4",
                  latents="in.tune100.latents.pt")
    assert Truth.from_dict(json.loads(json.dumps(truth.to_dict()))) == truth
    detailed = Truth("interpolate", TIMES, source, source=source, source_times=TIMES, input="in.mp4", detail="input")
    assert Truth.from_dict(json.loads(json.dumps(detailed.to_dict()))).detail == "input"
    assert Truth.from_dict({k: v for k, v in detailed.to_dict().items() if k != "detail"}).detail == "none"
    with pytest.raises(InputError, match="detail 'input' is interpolate's"):
        Truth("extrapolate", TIMES, source, source=source, source_times=TIMES, input="in.mp4", detail="input")
    with pytest.raises(InputError, match="detail 'fine' is not one of none, input"):
        Truth("interpolate", TIMES, source, source=source, source_times=TIMES, input="in.mp4", detail="fine")


def test_eye_visibility_follows_blinks():
    params = sample_params(3)
    t = np.arange(240) / 24
    visible = S.eyes_visible(params, t)
    blink = params.motion(t)["blink"]
    assert visible[blink < 0.2].all() and not visible[blink > 0.8].any()
