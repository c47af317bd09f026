"""`vsode generate`, `vsode fit-prior` and the generator swap (`--generator`), on the shipped demo
models and the demo world.

Meaning checks rest on exact identities: anchored, a generated video's first frame is G(z_C) of its
content code, and that code is the prior's draw (or the mapping network's ``w̄ + ψ·(w − w̄)``) for
the seed, so a one-frame PNG output can be compared with the generator's own render; a swapped
generator renders the same W+. The prior's fit is checked against known Gaussians and against the
codes it was fitted on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from tests.media import make_clip
from vsode.checkpoints import REGISTRY, Entry, resolve
from vsode.cli.animate import animate
from vsode.cli.fit_prior import fit_prior as fit_prior_cli
from vsode.cli.generate import generate
from vsode.demo import scores as S
from vsode.demo.world import POSTER_LEVELS, render_times, sample_params
from vsode.errors import InputError
from vsode.model import load_model
from vsode.model.prior import Gaussian, Prior, sample_generator
from vsode.stylegan2 import Generator, load_generator
from vsode.video import probe, read_all

RESTYLED = "stylegan2-demo-poster"


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command("generate")(generate)
    app.command("animate")(animate)
    app.command("fit-prior")(fit_prior_cli)
    return app


APP = _app()


def run(*args: str | Path):
    return CliRunner().invoke(APP, [str(a) for a in args])


def ok(*args: str | Path) -> dict:
    res = run(*args, "--device", "cpu", "--json", "-q")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def frames_of(path: Path) -> torch.Tensor:
    return read_all(path, dtype="float32").frames


@pytest.fixture(scope="module", autouse=True)
def _quiet(quiet_machine):
    """Before every other fixture of this module (tests/conftest.py)."""


@pytest.fixture(scope="module")
def demo():
    return load_model("vidstyleode-demo", backbones=("generator",))


@pytest.fixture(scope="module")
def no_prior(tmp_path_factory) -> Path:
    """The demo preset with random weights and no prior."""
    import vsode.model as M

    model = M.build_model("demo", seed=0)
    model.backbone_refs = {k: M.backbone_ref(k, n) for k, n in
                           (("generator", "stylegan2-demo"), ("encoder", "psp-demo"), ("clip", "clip-demo"))} | {"dino": None}
    return M.save_model(model, tmp_path_factory.mktemp("model") / "no-prior.pt")


# --- the prior ------------------------------------------------------------------------------------


def test_gaussian_fit_recovers_a_known_low_rank_gaussian():
    g = torch.Generator().manual_seed(0)
    dim, n = 40, 4000
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))[0][:, :3].T  # 3 × D
    scales = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    mean = torch.randn(dim, generator=g, dtype=torch.float64)
    x = mean + (torch.randn(n, 3, generator=g, dtype=torch.float64) * scales) @ basis \
        + 0.1 * torch.randn(n, dim, generator=g, dtype=torch.float64)
    fit = Gaussian.fit(x.reshape(n, 4, 10).float(), components=3)
    assert fit.shape == (4, 10)
    assert torch.allclose(fit.mean.double(), mean, atol=0.12)
    assert torch.allclose(fit.scales.double(), (scales**2 + 0.01).sqrt(), rtol=0.05)
    assert fit.residual == pytest.approx(0.1, rel=0.05)
    # the principal directions span the true subspace
    overlap = fit.components.double() @ basis.T
    assert torch.linalg.svdvals(overlap).min() > 0.99
    # its draws have the fitted covariance, and truncation shrinks them about the mean
    draws = torch.stack([fit.sample(sample_generator(s, 0)).reshape(-1) for s in range(3000)]).double()
    along = (draws - fit.mean.double()) @ fit.components.double().T
    assert torch.allclose(along.std(0), fit.scales.double(), rtol=0.08)
    near = fit.sample(sample_generator(7, 0), truncation=0.25)
    far = fit.sample(sample_generator(7, 0))
    assert torch.allclose(near - fit.mean.reshape(4, 10), 0.25 * (far - fit.mean.reshape(4, 10)), atol=1e-5)
    assert fit.log_density(fit.mean) > fit.log_density(far)


def test_fit_prior_is_the_gaussian_of_the_clips_codes_and_lives_in_the_model_file(tmp_path, prepared_demo_data):
    from vsode.train.data import TrainData

    res = ok("fit-prior", "vidstyleode-demo", prepared_demo_data, "-o", tmp_path / "m.pt", "--components", "2")
    assert res["clips"] == 4 and res["motion"]["components"] == 2 and 0 < res["content"]["explained"] <= 1
    model = load_model(tmp_path / "m.pt", backbones=False)  # weights_only
    base = load_model("vidstyleode-demo", backbones=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    # its means are the means of the clips' codes, encoded as the applications encode a video
    data = TrainData(prepared_demo_data, split="train")
    states, contents = [], []
    for video in data.videos:
        frames, wplus = data.load(video.id, range(video.n_frames))
        code = base.encode_video(frames, [float(t) for t in video.times], latents=wplus)
        states.append(code.z_d0.reshape(-1))
        contents.append(code.content_code.reshape(-1))
    assert torch.allclose(model.prior.motion.mean, torch.stack(states).mean(0), atol=1e-5)
    assert torch.allclose(model.prior.content.mean, torch.stack(contents).mean(0), atol=1e-5)
    # the other records of the file are kept
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["prior"]["format"] == "vsode/prior@1" and "training" in raw
    res = run("fit-prior", "vidstyleode-demo", prepared_demo_data, "-o", tmp_path / "m.pt")
    assert res.exit_code == 2 and "--force" in res.stderr  # no overwrite without --force


def test_the_motion_gain_makes_samples_move_as_much_as_the_clips(prepared_demo_data, demo):
    """The calibration's own measure: after enough passes the samples rendered as generate renders
    them move as much (pixel change per frame) as the clips do; the demo model's motion is weak
    (a quarter of its clips' at gain 1), so the gain is well above 1."""
    from vsode.model import load_model as load
    from vsode.train.data import TrainData
    from vsode.train.prior import calibrate_motion_gain

    model = load("vidstyleode-demo")  # generator and CLIP: the samples' styles
    data = TrainData(prepared_demo_data, split="train")
    gain, record = calibrate_motion_gain(model, model.prior, data, clips=4, frames=8, passes=4)
    (first, at_one), *_, (last, at_last) = record["energy_ratio_at_gain"]
    assert first == 1.0 and at_one < 0.6 and gain > 2
    assert at_last == pytest.approx(1.0, abs=0.15)  # converged on the clips' energy
    assert record["clips"] == 4 and record["frames"] == 8 and record["clip_energy"] > 0


def test_the_prior_records_its_gain_and_limit_and_reads_old_priors(demo):
    prior = demo.prior
    assert prior.motion_gain > 1 and prior.motion_limit > 0 and prior.calibration["clips"] == 16
    again = Prior.from_dict(prior.to_dict())
    assert (again.motion_gain, again.motion_limit, again.calibration) == \
        (prior.motion_gain, prior.motion_limit, prior.calibration)
    old = {k: v for k, v in prior.to_dict().items() if k not in ("motion_gain", "motion_limit", "calibration")}
    assert (Prior.from_dict(old).motion_gain, Prior.from_dict(old).motion_limit) == (1.0, None)
    for bad in ({"motion_gain": -1.0}, {"motion_gain": "x"}, {"motion_limit": 0.0}):
        with pytest.raises(InputError, match="fit-prior"):
            Prior.from_dict({**prior.to_dict(), **bad})


def test_scaled_motion_is_the_gain_times_the_motion_bounded_by_the_limit():
    from vsode.model.anchor import scale_motion

    g = torch.Generator().manual_seed(0)
    motion = torch.randn(6, 10, 128, generator=g) * torch.logspace(-3, 1, 6)[:, None, None]
    assert torch.equal(scale_motion(motion, 2.5, None), 2.5 * motion)
    out = scale_motion(motion, 2.5, 3.0)
    norms, want = out.flatten(1).norm(dim=1), (2.5 * motion).flatten(1).norm(dim=1)
    assert bool((norms <= 3.0 + 1e-5).all()) and torch.allclose(norms, 3.0 * torch.tanh(want / 3.0), rtol=1e-5)
    assert torch.allclose(out[0], 2.5 * motion[0], rtol=1e-3)  # far below the limit: the scaled motion
    cos = torch.nn.functional.cosine_similarity(out.flatten(1), motion.flatten(1), dim=1)
    assert bool((cos > 0.9999).all())  # the direction is kept


def test_fit_prior_without_calibration_keeps_the_models_motion(tmp_path, prepared_demo_data):
    res = ok("fit-prior", "vidstyleode-demo", prepared_demo_data, "-o", tmp_path / "m.pt", "--components", "2",
             "--calibration-clips", "0")
    assert res["motion_gain"] == 1.0 and res["calibration"] is None and res["motion_limit"] > 0
    assert load_model(tmp_path / "m.pt", backbones=False).prior.motion_gain == 1.0
    res = ok("fit-prior", "vidstyleode-demo", prepared_demo_data, "-o", tmp_path / "c.pt", "--components", "2",
             "--calibration-clips", "2")
    assert res["motion_gain"] > 1 and res["calibration"]["clips"] == 2


def test_a_prior_that_does_not_fit_the_model_is_refused(demo):
    prior = demo.prior
    wrong = Prior(Gaussian.fit(torch.randn(5, 3, 2, 2)), prior.content, clips=5)
    with pytest.raises(InputError, match="fit-prior"):
        wrong.check((64, 8, 8), (10, 128), "m.pt")
    with pytest.raises(InputError, match="fit-prior"):
        Prior.from_dict({"format": "other"})


# --- generate --------------------------------------------------------------------------------------


def _first_frame(tmp_path: Path, *args: str) -> torch.Tensor:
    """A one-frame generate written as a PNG (lossless): 3 × 64 × 64 in [0, 1]."""
    out = tmp_path / f"one-{abs(hash(args))}.png"
    ok("generate", "-o", out, "--seconds", "0.04", "--fps", "25", *args)
    return frames_of(out)[0]


def _render(generator, w: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        image = generator.synthesize(w[None], noise="const")[0]
    return ((image.clamp(-1, 1) + 1) / 2 * 255).round() / 255


def test_the_first_frame_is_the_sampled_content_code(tmp_path, demo):
    """Anchored, frame 0 is G(z_C): for the prior the seed's draw, for the mapping network
    ``w̄ + ψ·(mapping(z) − w̄)`` in every row; another seed or ψ gives another face."""
    g = demo.generator
    prior = _first_frame(tmp_path, "--seed", "5", "--content", "prior")
    want = _render(g, demo.prior.content.sample(sample_generator(5, 1)))
    assert (prior - want).abs().max() <= 1.5 / 255
    mapped = _first_frame(tmp_path, "--seed", "5", "--content", "mapping", "--truncation", "0.5")
    z = torch.randn(1, g.style_dim, generator=sample_generator(5, 2))
    with torch.no_grad():
        w = g.latent_avg + 0.5 * (g.mapping(z)[0] - g.latent_avg)
    assert (mapped - _render(g, w.expand(10, -1))).abs().max() <= 1.5 / 255
    other = _first_frame(tmp_path, "--seed", "6", "--content", "prior")
    assert (other - prior).abs().mean() > 0.02
    # truncation towards 0 brings every seed's face to the prior's mean face
    a = _first_frame(tmp_path, "--seed", "1", "--truncation", "0.01")
    b = _first_frame(tmp_path, "--seed", "2", "--truncation", "0.01")
    assert (a - b).abs().mean() < 0.01


def test_a_seed_always_gives_the_same_video(tmp_path):
    res = ok("generate", "-o", tmp_path / "g.mp4", "--seed", "3", "--count", "2", "--seconds", "0.5", "--fps", "12")
    paths = [Path(o["path"]) for o in res["outputs"]]
    assert [p.name for p in paths] == ["g-seed3.mp4", "g-seed4.mp4"]
    assert [s["seed"] for s in res["samples"]] == [3, 4] and res["command"] == "generate"
    for p in paths:
        info = probe(p)
        assert info.frame_count == 6 and info.fps == 12 and (info.width, info.height) == (64, 64)
    again = ok("generate", "-o", tmp_path / "h.mp4", "--seed", "4", "--seconds", "0.5", "--fps", "12")
    assert torch.equal(frames_of(Path(again["outputs"][0]["path"])), frames_of(paths[1]))
    assert (frames_of(paths[0]) - frames_of(paths[1])).abs().mean() > 0.02
    # the video moves: its frames are not the first one repeated
    clip = frames_of(paths[0])
    assert S.motion_energy(clip, torch.ones(64, 64)).mean() > 1e-3


def test_motion_scale_scales_the_sampled_motion(tmp_path):
    """--motion-scale 0 is a still video (every frame the first); the default (the prior's gain)
    moves more than the model's own motion (--motion-scale 1); the JSON says which was used."""
    def clip(*args: str) -> tuple[dict, torch.Tensor]:
        res = ok("generate", "-o", tmp_path / f"s{len(list(tmp_path.iterdir()))}.mp4", "--seed", "6",
                 "--seconds", "1", "--fps", "12", *args)
        return res, frames_of(Path(res["outputs"][0]["path"]))

    res, still = clip("--motion-scale", "0")
    assert res["samples"][0]["motion_scale"] == 0.0
    assert (still - still[:1]).abs().max() < 3 / 255  # the codec's rounding only
    res, default = clip()
    assert res["samples"][0]["motion_scale"] == pytest.approx(load_model("vidstyleode-demo", backbones=False).prior.motion_gain)
    _, own = clip("--motion-scale", "1")
    energy = [S.motion_energy(c, torch.ones(64, 64)).mean() for c in (still, own, default)]
    assert energy[0] < 0.1 * energy[1] and energy[2] > 1.5 * energy[1]  # measured 0.001 and 1.85
    assert (default[0] - own[0]).abs().mean() < 0.012  # the same face up to the codec (measured 0.007; seeds differ > 0.02)


def test_motion_from_a_video_takes_its_timing_and_audio(tmp_path):
    driver = make_clip(tmp_path / "drive.mp4", size=(64, 64), fps="25", duration=0.6)
    res = ok("generate", "-o", tmp_path / "m.mp4", "--motion", driver, "--seed", "1", "--content", "mapping")
    out = res["outputs"][0]
    info, drive = probe(Path(out["path"])), probe(driver)
    assert info.frame_count == drive.frame_count and info.fps == drive.fps and out["audio"]
    assert res["inputs"] == {"content": "mapping", "motion": str(driver)}


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """A demo-world face as a PNG, and its pixels."""
    from PIL import Image

    image = tmp_path_factory.mktemp("face") / "face.png"
    pixels = render_times(sample_params(11), [0.0], size=64)[0]
    Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(image)
    return image, pixels


def test_content_from_an_image_is_its_inversion(tmp_path, face):
    image, pixels = face
    first = _first_frame(tmp_path, "--content", str(image), "--seed", "2")
    assert S.psnr(first[None], pixels[None]) > 24  # the demo inversion's quality (31 dB mean)


@pytest.mark.parametrize("args, needle", [
    (["--count", "0"], "--count 0"),
    (["--seconds", "0"], "--seconds 0"),
    (["--seconds", "-1"], "--seconds -1"),
    (["--truncation", "0"], "--truncation 0"),
    (["--truncation", "1.5"], "--truncation 1.5"),
    (["--content", "missing.png"], "--content missing.png does not exist"),
    (["--motion-scale", "-1"], "--motion-scale -1"),
    (["--motion-scale", "2", "--anchor", "none"], "--motion-scale scales the anchored motion"),
    (["--motion-scale", "2", "--motion", "missing.mp4"], "--motion-scale scales the motion sampled"),
    (["--reference", "first"], "--reference picks where the --motion video's motion is measured from"),
    (["--reference", "last", "--motion", "missing.mp4"], "--reference 'last' is not one of matched, first"),
    (["--reference", "first", "--anchor", "none", "--motion", "missing.mp4"], "--anchor none does not invert it"),
])
def test_bad_input_exits_2(tmp_path, args, needle):
    res = run("generate", "-o", tmp_path / "x.mp4", "--device", "cpu", *args)
    assert res.exit_code == 2, res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_an_unreadable_content_file_exits_2(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    res = run("generate", "-o", tmp_path / "x.mp4", "--content", bad, "--device", "cpu")
    assert res.exit_code == 2 and str(bad) in res.stderr
    lat = tmp_path / "bad.pt"
    torch.save({"format": "other"}, lat)
    res = run("generate", "-o", tmp_path / "x.mp4", "--content", lat, "--device", "cpu")
    assert res.exit_code == 2 and "latents file" in res.stderr


def test_a_model_without_a_prior_names_fit_prior(tmp_path, no_prior):
    res = run("generate", "-o", tmp_path / "x.mp4", "--model", no_prior, "--device", "cpu")
    assert res.exit_code == 2 and "vsode fit-prior" in res.stderr
    assert not (tmp_path / "x.mp4").exists()


# --- the generator swap ----------------------------------------------------------------------------


def test_the_restyled_generator_is_registered_as_a_fine_tune_sharing_the_w_space():
    entry = REGISTRY.get(RESTYLED)
    assert entry.kind == "stylegan2-finetune" and entry.base == "stylegan2-demo" and entry.builtin
    base, poster = load_generator(resolve("stylegan2-demo")), load_generator(resolve(RESTYLED))
    # the mapping network and latent_avg are the base's: the same W space
    for name, value in base.state_dict().items():
        if name.startswith("style."):
            assert torch.equal(value, poster.state_dict()[name]), name
    assert torch.equal(base.latent_avg, poster.latent_avg)
    with pytest.raises(ValueError, match="base"):
        Entry(name="x", kind="stylegan2-finetune", file_name="x.pt", size=1, sha256=None, sha256_verified=False)


def test_swapping_renders_the_same_w_plus_in_the_new_style(tmp_path, demo, face):
    g = load_generator(resolve(RESTYLED))
    frame = _first_frame(tmp_path, "--seed", "4", "--generator", RESTYLED)
    content = demo.prior.content.sample(sample_generator(4, 1))
    assert (frame - _render(g, content)).abs().max() <= 1.5 / 255
    # a demo face's inversion, restyled: near the poster palette, where the base's render is not
    image, _ = face
    poster = _first_frame(tmp_path, "--content", str(image), "--generator", RESTYLED)
    plain = _first_frame(tmp_path, "--content", str(image))
    assert S.palette_distance(poster[None], POSTER_LEVELS) < 0.4 * S.palette_distance(plain[None], POSTER_LEVELS)


def test_a_generator_of_another_layout_is_one_line_naming_both(tmp_path):
    other = Generator(32, style_dim=64, n_mlp=1, channel_multiplier=0.25, channel_max=32)
    path = tmp_path / "other.pt"
    torch.save({"g_ema": other.state_dict()}, path)
    res = run("generate", "-o", tmp_path / "x.mp4", "--generator", path, "--device", "cpu")
    assert res.exit_code == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "8×64" in line and "10×128" in line and "stylegan2-demo" in line


def test_a_fine_tune_imports_with_from_file_and_renders_by_name(tmp_path, monkeypatch):
    import hashlib

    from vsode.cli.app import app

    cache = tmp_path / "cache"
    source = resolve(RESTYLED)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    entry = Entry(name="toon-demo", kind="stylegan2-finetune", base="stylegan2-demo", file_name="toon.pt",
                  size=source.stat().st_size, sha256=digest, sha256_verified=False)
    with REGISTRY.temporary(entry):
        res = CliRunner().invoke(app, ["download", "toon-demo", "--from-file", str(source), "--cache-dir", str(cache)])
        assert res.exit_code == 0, res.stderr
        out = tmp_path / "t.png"
        res = ok("generate", "-o", out, "--seconds", "0.04", "--generator", "toon-demo", "--cache-dir", cache)
    by_path = _first_frame(tmp_path, "--generator", str(source))
    assert torch.equal(frames_of(out)[0], by_path)


# --- the demo scores -------------------------------------------------------------------------------


def test_generated_clips_are_diverse_and_move_as_much_as_real_clips(tmp_path):
    """Eight seeds (1 s at 12 fps), read by the demo CLIP: measured 8 distinct hair/eye/skin looks
    out of 8; motion energy over eight real demo clips of the same length 0.90 with the prior's
    calibrated motion gain, 0.32 with the model's own motion (--motion-scale 1: the demo model
    carries about a quarter of its clips' motion). Issue 21's target is a ratio in [0.5, 2]."""
    from vsode.demo.evaluate import Readers

    res = ok("generate", "-o", tmp_path / "d.mp4", "--count", "8", "--seconds", "1", "--fps", "12")
    clips = [frames_of(Path(o["path"])) for o in res["outputs"]]
    clip = Readers().clip
    reads = [S.read_attributes(clip, c) for c in clips]
    assert S.distinct_looks(reads) >= 6
    t = np.arange(12) / 12
    real = [render_times(sample_params(1_000_000_000 + k), t, size=64) for k in range(8)]
    assert 0.7 <= S.energy_ratio(clips, real) <= 1.5


# --- the scripts that make the shipped assets ------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _script(*args: str) -> dict:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, check=False,
                          cwd=ROOT, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_restyle_script_runs_end_to_end(tmp_path):
    """The documented command, scaled down: the file it writes loads as a generator whose mapping
    network is the base's, and its JSON describes that file."""
    import hashlib

    report = _script("scripts/train_demo_restyled.py", "--out", str(tmp_path), "--images", "32", "--steps", "3",
                     "--eval-images", "16")
    path = tmp_path / f"{RESTYLED}.pt"
    assert report == json.loads((tmp_path / f"{RESTYLED}.json").read_text())
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and report["mapping_unchanged"]
    assert report["base"] == "stylegan2-demo" and report["train"]["steps"] == 3
    load_generator(path)


def test_the_shipped_restyled_generator_shows_its_style():
    """Measured on 256 held-out faces (stylegan2-demo-poster.json); held a little below."""
    metrics = json.loads((ROOT / "vsode" / "assets" / "demo" / f"{RESTYLED}.json").read_text())
    assert metrics["sha256"] == REGISTRY.get(RESTYLED).sha256 and metrics["bytes"] == REGISTRY.get(RESTYLED).size
    assert metrics["mapping_unchanged"] and metrics["base"] == "stylegan2-demo"
    assert metrics["palette_distance"] < 0.5 * metrics["base_palette_distance"]
    assert metrics["psnr_vs_posterised_db"] > metrics["base_psnr_vs_posterised_db"] + 3


def test_the_prior_script_adds_a_prior_and_keeps_the_weights(tmp_path):
    import shutil

    model = tmp_path / "vidstyleode-demo.pt"
    shutil.copy(resolve("vidstyleode-demo"), model)
    report = _script("scripts/fit_demo_prior.py", "--model", str(model), "--videos", "4", "--frames", "6",
                     "--components", "2")
    assert report["prior"]["clips"] >= 2 and report["prior"]["motion"]["components"] <= 2
    assert report == json.loads(model.with_suffix(".json").read_text())
    fitted, shipped = load_model(model, backbones=False), load_model("vidstyleode-demo", backbones=False)
    assert all(torch.equal(a, b) for a, b in zip(fitted.state_dict().values(), shipped.state_dict().values()))
    assert fitted.prior.clips == report["prior"]["clips"] != shipped.prior.clips


def test_motion_from_a_video_moves_the_sample_as_that_video_moves(tmp_path):
    """Anchored (the default), --motion inverts the video and puts its own motion on the sampled
    content, as animate does (from the driver's pose nearest the sampled face's): on a demo driver
    (2 s at 12 fps) the sample's mouth and head follow it (measured r 0.98 / 1.00 / 1.00 for mouth /
    head x / head y; 0.93 / 0.99 / 0.99 with --reference first; the model's motion alone, --anchor
    none: 0.28 / 0.22 / 0.86)."""
    from vsode.demo.evaluate import Readers
    from vsode.demo.regressor import true_motion
    from vsode.video import VideoWriter

    params = sample_params(5, motion_seed=105)
    seconds = np.arange(24) / 12
    with VideoWriter(tmp_path / "drive.mp4", fps=12, width=64, height=64) as writer:
        writer.write(render_times(params, seconds, size=64))
    truth = true_motion(params, seconds)
    readers = Readers()
    r = {}
    for anchor in ("inversion", "none"):
        res = ok("generate", "-o", tmp_path / f"{anchor}.mp4", "--motion", tmp_path / "drive.mp4", "--seed", "2",
                 "--anchor", anchor)
        r[anchor] = S.trajectory_correlation(readers.regressor.measure(frames_of(Path(res["outputs"][0]["path"]))),
                                             truth)
    assert min(r["inversion"].values()) >= 0.95, r
    assert r["inversion"]["mouth_open"] >= r["none"]["mouth_open"] + 0.5, r
