"""The five applications end to end through the CLI, on a random-weight demo VidStyleODE.

Every output is checked as a file: frame count, exact rate, duration and audio with the project's
probe, frames by decoding them. Meaning checks rely on exact identities of the pipeline:
``interpolate --factor 1`` reconstructs the input, a finer grid reproduces the input frames at
their own times, a zero blend mask is A's reconstruction and an all-one mask is A's content moved
by B (what ``animate`` computes). Lossless outputs (``--crf 0``) make those comparisons tight.
The demo encoder needs no face alignment, so inputs are centre-cropped; one test gives a latents
file an alignment track to check the aligned crops and the paste-back.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from tests.media import ffmpeg, make_audio_only, make_clip, make_still
from vsode.cli.animate import animate
from vsode.cli.blend_motion import blend_motion
from vsode.cli.edit import edit
from vsode.cli.extrapolate import extrapolate
from vsode.cli.interpolate import interpolate
from vsode.errors import InputError
from vsode.options import (
    BlendOptions,
    EditOptions,
    ExtrapolateOptions,
    FrameTimes,
    InterpolateOptions,
    parse_rate,
    read_times,
    region_mask,
)
from vsode.video import VideoWriter, probe, read_all

NTSC = Fraction(30000, 1001)
FRAMES = 30  # 1.001 s at 29.97 fps


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command("edit")(edit)
    app.command("animate")(animate)
    app.command("interpolate")(interpolate)
    app.command("extrapolate")(extrapolate)
    app.command("blend-motion")(blend_motion)
    return app


APP = _app()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _quiet(quiet_machine):
    """Before every other fixture of this module (tests/conftest.py)."""


def _demo_model(path: Path) -> Path:
    """The demo preset with random weights and the built-in demo backbones, its gains raised so that
    prompts and motion move pixels by more than the codec's rounding: Δ undamped
    (``delta_weight`` 1), the cross-attention read-out of the dynamics ×10, the dynamics state free
    of biases (so it differs between videos) and the decoder ODE's velocity ×100."""
    import vsode.model as M

    config = M.preset_config("demo").override({"mapper.delta_weight": 1.0})
    model = M.build_model(config, seed=0)
    with torch.no_grad():
        for branch in model.modulation.blocks:
            for block in branch:
                block.attn.value.weight.mul_(10)
                block.attn.proj.weight.mul_(10)
        for module in (model.dynamics.transform_z0, model.dynamics.gru, model.dynamics.ode_dec, model.dynamics.to_tokens):
            for name, p in module.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
        model.dynamics.ode_dec.gradient_net[-1].weight.mul_(100)
    model.backbone_refs = {
        k: M.backbone_ref(k, name)
        for k, name in (("generator", "stylegan2-demo"), ("encoder", "psp-demo"), ("clip", "clip-demo"))
    } | {"dino": None}
    M.save_model(model, path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return _demo_model(tmp_path_factory.mktemp("model") / "demo-vsode.pt")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip_a(media) -> Path:
    """30 frames at 29.97 fps with AAC audio, 64x48 (its centre square is processed)."""
    return make_clip(media / "clip.mp4", fps="30000/1001", duration=1.001, frames=FRAMES)


@pytest.fixture(scope="module")
def clip_b(media) -> Path:
    """Another picture and motion (testsrc), the same frame times, with audio."""
    path = media / "talk.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001:duration=1.001",
        "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration=1.001",
        "-frames:v", str(FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


def run(*args: str | Path):
    return CliRunner().invoke(APP, [str(a) for a in args])


def ok(*args: str | Path, model: Path) -> dict:
    res = run(*args, "--model", model, "--device", "cpu", "--json", "-q")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def frames_of(path: Path) -> torch.Tensor:
    return read_all(path, dtype="float32").frames


def check_file(path: Path, *, frames: int, fps: Fraction, duration: Fraction, audio: bool) -> None:
    """What the options promised, as the project's probe and a full decode see the file."""
    info = probe(path)
    assert info.frame_count == frames
    assert info.fps == fps
    assert info.duration == duration
    assert bool(info.audio) == audio
    assert frames_of(path).shape[0] == frames


def mean_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean()) * 255


# --- reference runs shared by several tests --------------------------------------------------------


@pytest.fixture(scope="module")
def reconstruction(clip_a, model_file, media) -> tuple[dict, torch.Tensor]:
    """``interpolate --factor 1 --detail none``: the input's own times rendered from their
    inversions, i.e. A's reconstruction (lossless)."""
    out = media / "rec.mp4"
    result = ok("interpolate", clip_a, "--factor", "1", "--detail", "none", "--crf", "0", "-o", out, model=model_file)
    return result, frames_of(out)


@pytest.fixture(scope="module")
def crops(clip_a, reconstruction, media) -> torch.Tensor:
    """A's centre squares decoded at the generator's size, as the applications crop them, and
    written and read back as the outputs are (lossless x264, 4:2:0), so a frame given back as
    itself compares equal up to rounding."""
    from vsode.align import face_batches

    size = reconstruction[1].shape[-1]
    squares = torch.cat([c for _, (c,) in face_batches(clip_a, probe(clip_a), None, sizes=[(size, size)])])
    with VideoWriter(media / "crops.mp4", fps=NTSC, width=size, height=size, crf=0) as writer:
        writer.write(squares.float() / 255)
    return frames_of(media / "crops.mp4")


@pytest.fixture(scope="module")
def doubled(clip_a, model_file) -> tuple[dict, Path]:
    """``interpolate --fps 60000/1001`` with the default output name."""
    result = ok("interpolate", clip_a, "--fps", "60000/1001", "--crf", "0", model=model_file)
    return result, Path(result["outputs"][0]["path"])


@pytest.fixture(scope="module")
def a_latents(clip_a, media) -> Path:
    from vsode.invert import InvertOptions, invert_video

    path = media / "clip.latents.pt"
    invert_video(clip_a, InvertOptions(encoder="psp-demo", device="cpu")).save(path)
    return path


# --- edit ------------------------------------------------------------------------------------------


def test_edit_two_prompts_make_two_different_videos_with_the_input_timing_and_audio(clip_a, model_file):
    result = ok("edit", clip_a, "-p", "blue eyes", "-p", "red hair", model=model_file)
    paths = [Path(o["path"]) for o in result["outputs"]]
    assert [p.name for p in paths] == ["clip.edit-blue-eyes.mp4", "clip.edit-red-hair.mp4"]
    for path in paths:
        check_file(path, frames=FRAMES, fps=NTSC, duration=FRAMES / NTSC, audio=True)
        assert abs(probe(path).audio[0].duration - Fraction(1001, 1000)) < Fraction(1, 20)
    assert mean_diff(frames_of(paths[0]), frames_of(paths[1])) > 2  # the prompts change the faces
    # not aligned: the generated centre square goes back into the input's own 64x48 frames
    assert result["outputs"][0]["prompt"] == "blue eyes" and result["paste_back"] is True
    assert (probe(paths[0]).width, probe(paths[0]).height) == (64, 48)
    # one inversion, one solve for both outputs
    assert result["timings"]["modulation+mapper"]["frames"] == 2 * FRAMES
    assert result["timings"]["solve"]["frames"] == FRAMES


def test_edit_hands_freed_heap_back_after_the_inversion_the_dynamics_and_while_rendering(clip_a, model_file, media,
                                                                                       monkeypatch):
    """vsode.memory.release runs where a stage's transients are gone, so the resident size does not
    grow with the video's length through the C heap's fragments (benchmarks/bench_apps.py)."""
    import vsode.invert
    import vsode.pipeline

    calls = []
    monkeypatch.setattr(vsode.invert, "release", lambda: calls.append("invert"))
    monkeypatch.setattr(vsode.pipeline, "release", lambda: calls.append("pipeline"))
    monkeypatch.setattr(vsode.pipeline, "RELEASE_EVERY", 2)
    monkeypatch.setattr(vsode.invert, "RELEASE_EVERY", 2)
    ok("edit", clip_a, "-p", "blue eyes", "--no-cache", "--batch-size", "8", "-o", media / "released.mp4",
       model=model_file)
    # 30 frames, 8 a batch: inversion batches 2 and 4 of 4, then after it; after the dynamics;
    # render batches 1 and 3 of 4
    assert calls == ["invert"] * 3 + ["pipeline"] * 3


# --- interpolate -----------------------------------------------------------------------------------


def test_interpolate_to_a_rational_rate_keeps_the_duration_and_the_input_frames(clip_a, crops, doubled,
                                                                               reconstruction):
    """With the input's own detail (the default), input frame k comes out as itself at output
    frame 2k (lossless x264 at 4:2:0 aside), and the frames between differ from it."""
    result, path = doubled
    assert path.name == "clip.interpolate-59.94fps.mp4" and result["options"]["detail"] is None
    assert result["detail"] == "input" and reconstruction[0]["detail"] == "none"
    # 29.97 -> 59.94 over 1.001 s: round(1.001 * 60000/1001) = 60 frames, exactly the duration
    check_file(path, frames=60, fps=Fraction(60000, 1001), duration=Fraction(1001, 1000), audio=True)
    out = frames_of(path)
    same_times = mean_diff(out[0::2], crops)  # input frame k sits at output frame 2k
    assert same_times < 0.5, same_times
    assert mean_diff(out[1::2], out[0::2]) > 10 * same_times + 0.1  # the frames between are new
    assert mean_diff(reconstruction[1], crops) > 20 * same_times + 1  # --detail none: the inversions


def test_doubling_output_frames_does_not_double_ode_evaluations(clip_a, model_file, doubled, media):
    nfe_60 = doubled[0]["nfe"]
    result = ok("interpolate", clip_a, "--factor", "4", "-o", media / "x4.mp4", model=model_file)
    check_file(media / "x4.mp4", frames=4 * FRAMES, fps=4 * NTSC, duration=FRAMES / NTSC, audio=True)
    assert 0 < result["nfe"] < 1.5 * nfe_60, (result["nfe"], nfe_60)
    assert result["nfe"] < 4 * FRAMES  # far fewer evaluations than frames: one dense solve


def test_interpolate_at_explicit_times(clip_a, model_file, media, reconstruction):
    times = media / "times.txt"
    times.write_text("# seconds\n0.1\n0.25, 1001/3000\n0.5  # mid-clip\n")
    out = media / "retimed.mp4"
    ok("interpolate", clip_a, "--times", times, "-o", out, "--crf", "0", "--detail", "none", model=model_file)
    info = probe(out)
    assert info.frame_count == 4
    assert list(info.timestamps) == [Fraction(0), Fraction(3, 20), Fraction(1001, 3000) - Fraction(1, 10), Fraction(2, 5)]
    assert info.audio  # the source's audio from 0.1 s on
    # 1001/3000 s is input frame 10: reproduced there
    assert mean_diff(frames_of(out)[2], reconstruction[1][10]) < 0.05


# --- extrapolate -----------------------------------------------------------------------------------


def test_extrapolate_is_reconstruction_then_continuation_with_the_source_audio(clip_a, model_file, media, reconstruction):
    out = media / "longer.mp4"
    result = ok("extrapolate", clip_a, "--frames", "15", "--crf", "0", "-o", out, model=model_file)
    check_file(out, frames=45, fps=NTSC, duration=45 / NTSC, audio=True)
    assert "detail" not in result  # interpolate's alone
    assert abs(probe(out).audio[0].duration - Fraction(1001, 1000)) < Fraction(1, 20)  # source's only
    frames = frames_of(out)
    assert mean_diff(frames[:FRAMES], reconstruction[1]) < 0.05
    only = media / "new.mp4"
    ok("extrapolate", clip_a, "--seconds", "0.5", "--only-new", "--crf", "0", "-o", only, model=model_file)
    check_file(only, frames=15, fps=NTSC, duration=15 / NTSC, audio=False)  # round(0.5 * 29.97)
    assert mean_diff(frames_of(only), frames[FRAMES:]) < 0.05  # the same continuation


# --- animate and blend-motion -----------------------------------------------------------------------


def test_animate_an_image_with_a_driver_and_a_prompt(model_file, media, clip_b):
    face = make_still(media / "face.png")
    result = ok("animate", face, "--driver", clip_b, "-p", "blue eyes", model=model_file)
    path = Path(result["outputs"][0]["path"])
    assert path.name == "face.animate-talk-blue-eyes.mp4"
    check_file(path, frames=FRAMES, fps=NTSC, duration=FRAMES / NTSC, audio=True)
    # the same image edited on its own is an image
    edited = Path(ok("edit", face, "-p", "blue eyes", model=model_file)["outputs"][0]["path"])
    assert edited.name == "face.edit-blue-eyes.png"
    info = probe(edited)
    assert info.is_image and (info.width, info.height) == (probe(face).width, probe(face).height)


def test_bf16_generator_stays_close_to_fp32(clip_a, model_file, media, reconstruction):
    out = media / "bf16.mp4"
    ok("interpolate", clip_a, "--factor", "1", "--precision", "bf16", "--crf", "0", "--detail", "none", "-o", out,
       model=model_file)
    assert mean_diff(frames_of(out), reconstruction[1]) < 3  # bf16 convolutions, 8-bit video


def test_blend_motion_zero_mask_is_a_and_one_mask_is_b_motion(clip_a, clip_b, model_file, media, reconstruction, a_latents,
                                                             crops):
    zeros, ones = "/".join(["0" * 8] * 8), "/".join(["1" * 8] * 8)
    crop = ("--crop-only", "--crf", "0")
    # anchored (the default), a zero mask is A itself: A's own frames with A's detail (the default),
    # A's inversions, as its reconstruction, with --detail none
    result = ok("blend-motion", clip_a, clip_b, "--region", zeros, *crop, "-o", media / "b0.mp4", model=model_file)
    assert result["detail"] == "input"
    assert mean_diff(frames_of(media / "b0.mp4"), crops) < 0.5
    ok("blend-motion", clip_a, clip_b, "--region", zeros, *crop, "--detail", "none", "-o", media / "b0.mp4",
       "--force", model=model_file)
    # the paper's W+ alone (--anchor none): a full mask is A's content moved by B, what animate makes of
    # A's latents (no video given) driven by B
    plain = (*crop, "--anchor", "none")
    result = ok("blend-motion", clip_a, clip_b, "--region", ones, *plain, "-o", media / "b1.mp4", model=model_file)
    check_file(media / "b1.mp4", frames=FRAMES, fps=NTSC, duration=FRAMES / NTSC, audio=True)
    assert result["inputs"] == {"input": str(clip_a), "motion": str(clip_b)} and result["anchor"] == "none"
    ok("animate", "--latents", a_latents, "--driver", clip_b, *plain, "-o", media / "ab.mp4", model=model_file)
    b0, b1, ab = frames_of(media / "b0.mp4"), frames_of(media / "b1.mp4"), frames_of(media / "ab.mp4")
    assert mean_diff(b0, reconstruction[1]) < 0.05
    assert mean_diff(b1, ab) < 0.05
    assert mean_diff(b0, b1) > 10 * (mean_diff(b0, reconstruction[1]) + mean_diff(b1, ab)) + 0.1


def test_an_aligned_input_is_cropped_by_its_track_and_pasted_back(clip_a, a_latents, model_file, media):
    """A latents file carrying an alignment track (here a fixed 32 px square quad): the face crops
    follow the track and the generated face goes back into the full 64x48 frames inside the quad,
    leaving the rest of each frame as it was."""
    import numpy as np

    from vsode.align import Track
    from vsode.invert import load_latents

    latents = load_latents(a_latents)
    quad = np.array([[20.0, 8.0], [20.0, 40.0], [52.0, 40.0], [52.0, 8.0]])  # TL BL BR TR
    track = Track(frame_size=(64, 48), landmarks=(None,) * FRAMES, quads=np.repeat(quad[None], FRAMES, 0))
    latents.track = track
    aligned = latents.save(media / "aligned.latents.pt")
    result = ok("edit", "--latents", aligned, "-p", "blue eyes", "--crf", "0", "-o", media / "pasted.mp4",
                model=model_file)
    assert result["paste_back"] and result["aligned"] == {"input": True} and result["crop"] is None
    check_file(media / "pasted.mp4", frames=FRAMES, fps=NTSC, duration=FRAMES / NTSC, audio=True)
    with VideoWriter(media / "roundtrip.mp4", fps=NTSC, width=64, height=48, crf=0) as writer:
        writer.write(read_all(clip_a).frames)  # the source through the same lossless 4:2:0 coding
    pasted, source = frames_of(media / "pasted.mp4"), frames_of(media / "roundtrip.mp4")
    assert pasted.shape[-2:] == (48, 64)
    outside = (slice(None), slice(None), slice(None), [*range(0, 18), *range(54, 64)])
    assert mean_diff(pasted[outside], source[outside]) < 0.05  # the frame around the face is untouched
    assert mean_diff(pasted[..., 12:36, 24:48], source[..., 12:36, 24:48]) > 10  # the face is generated
    crop = ok("edit", "--latents", aligned, "-p", "blue eyes", "--crop-only", "-o", media / "crop.mp4", model=model_file)
    assert not crop["paste_back"] and probe(media / "crop.mp4").width == 64 == probe(media / "crop.mp4").height


# --- bad input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def missing_backbone_model(tmp_path_factory) -> Path:
    import vsode.model as M

    model = M.build_model("tiny", seed=0)
    model.backbone_refs = {"generator": {"name": "stylegan2-ffhq-1024", "sha256": "0" * 64}, "encoder": None,
                           "clip": None, "dino": None}
    return M.save_model(model, tmp_path_factory.mktemp("m3") / "needs-ffhq.pt")


def _bad_cases(media: Path, clip: Path, clip_b: Path) -> dict[str, tuple[list, int, str]]:
    empty = media / "empty.mp4"
    empty.write_bytes(b"")
    sound = make_audio_only(media / "sound.m4a")
    from vsode.checkpoints.cache import resolve

    return {
        "driver empty file": (["animate", clip, "--driver", empty], 2, "empty"),
        "driver without frames": (["animate", clip, "--driver", sound], 2, "no video stream"),
        "mask of wrong shape": (["blend-motion", clip, clip_b, "--region", "/".join(["0" * 8] * 7)], 2, "grid is 8x8"),
        "mask png of wrong shape": (["blend-motion", clip, clip_b, "--region", make_still(media / "m.png", size=(10, 7))], 2, "8x8"),
        "fps zero": (["interpolate", clip, "--fps", "0"], 2, "--fps"),
        "fps negative": (["interpolate", clip, "--fps", "-30"], 2, "positive"),
        "two retimings": (["interpolate", clip, "--fps", "60", "--factor", "2"], 2, "exactly one"),
        "seconds negative": (["extrapolate", clip, "--seconds", "-1"], 2, "--seconds"),
        "empty prompt": (["edit", clip, "--prompt", " "], 2, "--prompt is empty"),
        "unknown region": (["blend-motion", clip, clip_b, "--region", "nose"], 2, "mouth"),
        "model of the wrong kind": (["edit", clip, "-p", "x", "--model", resolve("clip-demo")], 2, "not a VidStyleODE"),
        "image output for a video": (["edit", clip, "-p", "x", "-o", media / "still.png"], 2, "use a .mp4"),
        "latents of another video": (["edit", clip_b, "-p", "x", "--latents", media / "clip.latents.pt"], 2, "not from"),
        "latents not a latents file": (["edit", "-p", "x", "--latents", clip], 2, "not a latents file"),
        "a billion frames": (["interpolate", clip, "--fps", "1000000000"], 2, "--max-frames 100,000"),
        "a million seconds": (["extrapolate", clip, "--seconds", "1000000"], 2, "--max-frames"),
        "over a lowered limit": (["interpolate", clip, "--factor", "2", "--max-frames", "59"], 2, "60 frames"),
    }


@pytest.mark.parametrize("case", [
    "driver empty file", "driver without frames", "mask of wrong shape", "mask png of wrong shape", "fps zero",
    "fps negative", "two retimings", "seconds negative", "empty prompt", "unknown region",
    "model of the wrong kind", "image output for a video", "latents of another video", "latents not a latents file",
    "a billion frames", "a million seconds", "over a lowered limit",
])
def test_bad_input_is_one_line_exit_2_and_no_output(case, media, clip_a, clip_b, model_file, a_latents):
    args, code, words = _bad_cases(media, clip_a, clip_b)[case]
    target = media / "bad" / f"{case.replace(' ', '-')}.mp4"
    target.parent.mkdir(exist_ok=True)
    extra = ["-o", target] if "-o" not in args else []
    extra += ["--model", model_file] if "--model" not in args else []
    res = run(*args, *extra, "--device", "cpu")
    assert res.exit_code == code, res.stderr + res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsode: error:") and words in lines[0], res.stderr
    assert not target.exists() and not (media / "still.png").exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_missing_backbone_exits_3_naming_the_download(clip_a, missing_backbone_model, media, tmp_path):
    res = run("interpolate", clip_a, "--factor", "2", "--model", missing_backbone_model, "--cache-dir", tmp_path,
              "-o", media / "never.mp4", "--device", "cpu")
    assert res.exit_code == 3, res.stderr
    assert "vsode download stylegan2-ffhq-1024" in res.stderr and not (media / "never.mp4").exists()


def test_existing_output_needs_force(clip_a, model_file, media):
    target = media / "exists.mp4"
    target.write_bytes(b"keep me")
    res = run("interpolate", clip_a, "--factor", "2", "-o", target, "--model", model_file)
    assert res.exit_code == 2 and "--force" in res.stderr
    assert target.read_bytes() == b"keep me"


# --- options, times and masks (no model) ------------------------------------------------------------


@pytest.mark.parametrize("text, rate", [
    ("60000/1001", Fraction(60000, 1001)), ("59.94", Fraction(60000, 1001)), ("29.97", Fraction(30000, 1001)),
    ("23.976", Fraction(24000, 1001)), ("23.98", Fraction(24000, 1001)), ("25", Fraction(25)),
    ("12.5", Fraction(25, 2)), (119.88, Fraction(120000, 1001)), (30, Fraction(30)),
])
def test_rates_are_exact(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("source_fps, frames, target, count", [
    (Fraction(24000, 1001), 240, Fraction(60), 601),  # 10.01 s: 600.6 -> 601 frames
    (Fraction(25), 25, Fraction(30000, 1001), 30),  # 1 s: 29.97 -> 30 frames
    (Fraction(30), 30, Fraction(120), 120),
])
def test_resampled_duration_is_within_half_a_frame(source_fps, frames, target, count):
    duration = frames / source_fps
    times = FrameTimes.resample(duration, target)
    assert len(times) == count and times.fps == target and times.is_regular
    assert abs(times.duration - duration) <= 1 / (2 * target)


def test_factor_on_variable_rate_input_keeps_every_input_time():
    source = [Fraction(0), Fraction(1, 30), Fraction(1, 12), Fraction(1, 8)]  # 1/30, 1/20, 1/24 s apart
    times = FrameTimes.subdivide(source, Fraction(24), 2)
    assert times.times[0::2] == tuple(source)
    assert times.times[1::2] == (Fraction(1, 60), Fraction(7, 120), Fraction(5, 48), Fraction(1, 8) + Fraction(1, 48))
    assert not times.is_regular and times.fps == 48


def test_options_reject_what_the_cli_would(tmp_path):
    with pytest.raises(InputError, match="exactly one"):
        InterpolateOptions()
    with pytest.raises(InputError, match="--factor"):
        InterpolateOptions(factor=0)
    with pytest.raises(InputError, match="less than one frame"):
        ExtrapolateOptions(seconds=0.001).new_frames(Fraction(25))
    assert ExtrapolateOptions(seconds=2).new_frames(NTSC) == 60
    assert EditOptions(prompts=("blue eyes",)).target("blue eyes") == "a photo of a person with blue eyes"
    assert EditOptions(prompts=("x",), raw_prompt=True).target("a face, smiling") == "a face, smiling"
    with pytest.raises(InputError, match="precision"):
        EditOptions(prompts=("x",), precision="fp16")
    bad = tmp_path / "t.txt"
    bad.write_text("0.5\n0.25\n")
    with pytest.raises(InputError, match="strictly increase"):
        read_times(bad)


def test_named_regions_on_the_face_grid_and_scaled_to_others():
    cells = lambda m: {(r, c) for r, c in zip(*torch.nonzero(m, as_tuple=True)) for r, c in [(int(r), int(c))]}  # noqa: E731
    assert cells(region_mask("mouth", (8, 8))) == {(r, c) for r in (5, 6) for c in range(2, 6)}
    assert cells(region_mask("eyes", (8, 8))) == {(r, c) for r in (2, 3) for c in range(1, 7)}
    assert cells(region_mask("top-left", (8, 8))) == {(r, c) for r in range(4) for c in range(4)}
    assert region_mask("left+right", (8, 6)).sum() == 48 and region_mask("bottom", (8, 6)).sum() == 24
    grid = "/".join(["00000000"] * 7 + ["11110000"])
    assert region_mask(grid, (8, 8))[7].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


def test_mask_image_is_averaged_per_cell(tmp_path):
    from PIL import Image

    pixels = torch.zeros(64, 64, dtype=torch.uint8)
    pixels[40:56, 16:48] = 255  # the mouth cells, white
    pixels[0:8, 0:4] = 255  # half of the top-left cell
    Image.fromarray(pixels.numpy()).save(tmp_path / "m.png")
    mask = region_mask(BlendOptions(region=str(tmp_path / "m.png")).parsed_region, (8, 8))
    assert torch.equal(mask[5:7, 2:6], torch.ones(2, 4)) and mask[0, 0] == 0.5 and mask.sum() == 8.5


# --- the streamed solve against the model's reference ------------------------------------------------


def test_batched_tokens_match_the_dynamics_own_solve(model_file):
    """The model makes tokens per batch from one odeint table of distinct times; the dynamics'
    own solve (the training path) makes every row at once. Same numbers, with and without a
    blend (mixed by hand here)."""
    from vsode.model import load_model

    model = load_model(model_file, backbones=False)
    g = torch.Generator().manual_seed(0)
    content = torch.randn(10, 128, generator=g)
    seconds = [k / 25 for k in range(6)]
    a = model.encode_video(torch.rand(6, 3, 64, 64, generator=g), seconds, content_code=content)
    b = model.encode_video(torch.rand(6, 3, 64, 64, generator=g), seconds, content_code=content)
    times = FrameTimes.subdivide([Fraction(k, 25) for k in range(6)], Fraction(25), 3).seconds()
    mask = region_mask("mouth", (8, 8))
    tau = model.normalise_times(times, a.t0)
    with torch.no_grad():
        sa, ref_a = model.dynamics.solve(a.z_d0[None], tau)
        sb, _ = model.dynamics.solve(b.z_d0[None], tau)
        ref_blend = model.dynamics.tokens(mask * sb + (1 - mask) * sa)
        ta, tb = model.trajectory(a, times), model.trajectory(b, times)
        assert ta.table.shape[0] == len(set(tau.tolist()))  # one row per distinct time
        for blend, reference in ((None, ref_a), ((tb, mask), ref_blend)):
            batches = [model.tokens(ta, slice(s, s + 3), blend) for s in range(0, len(times), 3)]
            torch.testing.assert_close(torch.cat(batches), reference, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.solve(a, times, blend=(b, mask)), ref_blend, rtol=1e-5, atol=1e-6)


def test_an_unaligned_edit_keeps_the_input_frame_size_and_the_pixels_outside_its_centre_square(clip_a, model_file, media):
    """The model's encoder needs no alignment, so the 64x48 clip's centre 48x48 square is edited;
    the output is the input's own frames with that square replaced (``--crop-only``: the crop)."""
    out = media / "square.mp4"
    result = ok("edit", clip_a, "-p", "blue eyes", "--crf", "0", "-o", out, model=model_file)
    assert result["paste_back"] and result["crop"] == [8, 0, 48, 48]
    source, edited = frames_of(clip_a), frames_of(out)
    assert edited.shape == source.shape  # 64x48, as the input
    # untouched up to the 4:2:0 codec (about 3 levels here), where the square changed by ~150
    outside = torch.cat([edited[..., :6] - source[..., :6], edited[..., 58:] - source[..., 58:]], -1)
    assert float(outside.abs().mean()) * 255 < 8
    assert mean_diff(edited[..., 8:56], source[..., 8:56]) > 50
    crop = ok("edit", clip_a, "-p", "blue eyes", "--crop-only", "-o", media / "square-crop.mp4", model=model_file)
    assert not crop["paste_back"] and (crop["outputs"][0]["width"], crop["outputs"][0]["height"]) == (64, 64)


def test_max_frames_raised_lets_a_long_output_through(clip_a, model_file, media):
    result = ok("interpolate", clip_a, "--factor", "2", "--max-frames", "60", "-o", media / "x2-limit.mp4",
                model=model_file)
    assert result["outputs"][0]["frames"] == 60


def test_an_input_is_decoded_once_for_the_inversion_and_the_dynamics(model_file, media, monkeypatch):
    """A square clip at the model's frame size: the inversion's crop pass also feeds the dynamics
    encoder (one face decode instead of two), with the same output as two passes."""
    import vsode.align.faces as faces
    import vsode.invert as invert

    clip = make_clip(media / "square.mp4", size=(64, 64), duration=0.5, frames=15)
    calls = []
    real = faces.read_frames

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(faces, "read_frames", counting)
    shared = ok("edit", clip, "-p", "blue eyes", "--no-cache", "--crf", "0", "-o", media / "one-pass.mp4",
                model=model_file)
    assert len(calls) == 1
    monkeypatch.setattr(invert, "shares_decode", lambda *a: False)  # the two-pass path
    calls.clear()
    ok("edit", clip, "-p", "blue eyes", "--no-cache", "--crf", "0", "-o", media / "two-pass.mp4", model=model_file)
    assert len(calls) == 2
    assert mean_diff(frames_of(media / "one-pass.mp4"), frames_of(media / "two-pass.mp4")) == 0
    assert shared["timings"]["invert"]["frames"] == 15



# --- anchoring ---------------------------------------------------------------------------------------


def test_an_edit_at_strength_zero_is_the_inversion_exactly(clip_a, model_file, media, reconstruction):
    """Anchored: w_inv(t) + M(s_edit, t) − M(s_src, t), which at α = 0 is w_inv(t) bit for bit, the
    same frames as the reconstruction at the input's own times (interpolate --factor 1)."""
    result = ok("edit", clip_a, "-p", "blue eyes", "--strength", "0", "--crop-only", "--crf", "0",
                "-o", media / "alpha0.mp4", model=model_file)
    assert result["anchor"] == "inversion" and result["options"]["anchor"] == "inversion"
    assert mean_diff(frames_of(media / "alpha0.mp4"), reconstruction[1]) == 0
    edited = ok("edit", clip_a, "-p", "blue eyes", "--strength", "3", "--crop-only", "--crf", "0",
                "-o", media / "alpha3.mp4", model=model_file)
    assert edited["anchor"] == "inversion"
    assert mean_diff(frames_of(media / "alpha3.mp4"), reconstruction[1]) > 1  # an edit does change it


def test_interpolation_at_input_times_is_the_inversions_and_differs_unanchored(clip_a, model_file, media,
                                                                             reconstruction, a_latents):
    """Every input frame of a doubled clip is its own inversion rendered; --anchor none is the
    model's W+ alone, which is not."""
    from vsode.invert import load_latents
    from vsode.stylegan2 import load_generator
    from vsode.checkpoints import resolve

    doubled = ok("interpolate", clip_a, "--factor", "2", "--crop-only", "--crf", "0", "--detail", "none",
                 "-o", media / "x2a.mp4", model=model_file)
    frames = frames_of(media / "x2a.mp4")
    assert frames.shape[0] == 2 * FRAMES and doubled["anchor"] == "inversion"
    assert mean_diff(frames[::2], reconstruction[1]) == 0
    # the reconstruction is G(w_inv) of the latents (8-bit, lossless x264 at 4:2:0 aside)
    wplus = load_latents(a_latents).wplus
    with torch.no_grad():
        g = load_generator(resolve("stylegan2-demo"))
        rendered = ((g.synthesize(wplus, noise="const").clamp(-1, 1) + 1) / 2)
    plain = ok("interpolate", clip_a, "--factor", "1", "--anchor", "none", "--crop-only", "--crf", "0",
               "-o", media / "plain.mp4", model=model_file)
    assert plain["anchor"] == "none"
    near, far = mean_diff(rendered, reconstruction[1]), mean_diff(rendered, frames_of(media / "plain.mp4"))
    assert near < 4 and far > 4 * near, (near, far)  # 4:2:0 coding aside; a random model is far off


@pytest.mark.parametrize("args, needle", [
    (["--detail", "pixels"], "--detail 'pixels' is not one of none, input"),
    (["--detail", "input", "--anchor", "none"], "--anchor none renders without them"),
    (["--detail", "input", "--generator", "stylegan2-demo-poster"], "which --generator stylegan2-demo-poster is there"),
])
def test_bad_detail_is_exit_2(clip_a, model_file, args, needle):
    res = run("interpolate", clip_a, "--factor", "2", *args, "--model", model_file)
    assert res.exit_code == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_blend_motion_checks_its_detail_too(clip_a, clip_b, model_file):
    res = run("blend-motion", clip_a, clip_b, "--region", "mouth", "--detail", "input", "--anchor", "none",
              "--model", model_file)
    assert res.exit_code == 2 and "--anchor none renders without them" in res.stderr
    assert BlendOptions(region="mouth").detail_mode == "input"
    assert BlendOptions(region="mouth", anchor="none").detail_mode == "none"


def test_the_default_detail_is_input_only_where_it_applies():
    assert InterpolateOptions(factor=2).detail_mode == "input"
    assert InterpolateOptions(factor=2, anchor="none").detail_mode == "none"
    assert InterpolateOptions(factor=2, generator="stylegan2-demo-poster").detail_mode == "none"
    assert InterpolateOptions(factor=2, detail="none").detail_mode == "none"


def test_input_detail_streams_and_lerps_the_inputs_residuals(clip_a, media):
    """InputDetail on a stand-in renderer that draws black (so R_k is the crop itself): at an input
    frame's time it gives that crop, halfway between two it gives their mean, past the end the
    last; it decodes in order and keeps only the frames still ahead, not the video."""
    from types import SimpleNamespace

    from vsode.align import face_batches
    from vsode.options import RenderOptions
    from vsode.pipeline import InputDetail
    from vsode.source import open_source

    source = open_source(clip_a, min_frames=2)
    size = 16
    squares = torch.cat([c.float() / 255 for _, (c,) in face_batches(clip_a, source.info, None, sizes=[(size, size)])])
    pipe = SimpleNamespace(renderer=SimpleNamespace(width=size, resolution=size), options=RenderOptions(batch_size=4),
                           bf16=False, device=torch.device("cpu"), align=lambda src: None,
                           _synthesize=lambda w, dtype: torch.zeros(w.shape[0], 3, size, size))
    detail = InputDetail(pipe, source, torch.zeros(FRAMES, 2, 3))
    t = [float(x) for x in source.times]
    kept = []
    for k in range(0, FRAMES - 1, 3):
        got = detail.at([t[k], (t[k] + t[k + 1]) / 2])
        torch.testing.assert_close(got[0], squares[k])
        torch.testing.assert_close(got[1], (squares[k] + squares[k + 1]) / 2)
        kept.append(len(detail._kept))
    torch.testing.assert_close(detail.at([t[-1] + 1.0])[0], squares[-1])
    detail.close()
    assert max(kept) <= 4 + 2, kept  # one decoded batch and the frames around the times asked


def test_bad_anchor_is_exit_2(clip_a, model_file):
    res = run("interpolate", clip_a, "--factor", "2", "--anchor", "frames", "--model", model_file)
    assert res.exit_code == 2 and "--anchor 'frames'" in res.stderr


def test_anchored_blend_of_a_video_with_itself_is_its_reconstruction(clip_a, model_file, media, reconstruction):
    """Anchored blend-motion puts B's inversions, with A's content put in by the model, over A inside
    the region: blending a video with its own motion gives back its inversions, whatever the mask."""
    ones = "/".join(["1" * 8] * 8)
    result = ok("blend-motion", clip_a, clip_a, "--region", ones, "--crop-only", "--crf", "0",
                "-o", media / "self-blend.mp4", model=model_file)
    assert result["anchor"] == "inversion" and result["aligned"] == {"input": False, "motion": False}
    assert mean_diff(frames_of(media / "self-blend.mp4"), reconstruction[1]) < 0.2
