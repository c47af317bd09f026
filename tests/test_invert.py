"""`vsode invert`: video → W+ latents file, cache, refinement, preview, CLI conventions."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.media import make_clip
from vsode.cli.app import app
from vsode.encoders import GradualStyleEncoder, load_encoder, preprocess
from vsode.errors import InputError
from vsode.model import content_code
from vsode.invert import (
    InvertOptions,
    center_square,
    invert_video,
    load_latents,
    load_models,
    refine_latents,
    synthesize_at,
)
from vsode.stylegan2 import Generator
from vsode.video import probe, read_all

N_STYLES = 6  # a 16 px generator has 2*log2(16)-2 = 6 W+ rows


def _tiny_psp_checkpoint() -> dict:
    """A pSp-format checkpoint: full IR-SE-50 encoder with 6 heads + a 16 px decoder."""
    torch.manual_seed(0)
    encoder = GradualStyleEncoder(N_STYLES)
    # Small head outputs keep the random W+ in a range where the generator behaves.
    for head in encoder.styles:
        head.linear.weight.data.mul_(0.1)
    generator = Generator(16, style_dim=512, n_mlp=2, channel_max=16)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"decoder.{k}": v for k, v in generator.state_dict().items()}
    return {
        "state_dict": state,
        "latent_avg": torch.randn(N_STYLES, 512) * 0.1,
        "opts": {
            "encoder_type": "GradualStyleEncoder",
            "output_size": 16,
            "n_styles": N_STYLES,
            "start_from_latent_avg": True,
            "learn_in_w": False,
            "input_nc": 3,
            "label_nc": 0,
        },
    }


@pytest.fixture(scope="module")
def psp_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny_psp.pt"
    torch.save(_tiny_psp_checkpoint(), path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # 6 frames at 29.97 fps with audio, 64x48 (not square: exercises the centre crop).
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=6, duration=0.5)


def _options(psp_file: Path, tmp_path: Path, **kw) -> InvertOptions:
    kw.setdefault("align", "off")  # the synthetic clips have no face to find
    return InvertOptions(encoder=str(psp_file), batch_size=4, device="cpu", cache_dir=tmp_path / "cache", **kw)


def test_invert_matches_the_encoder_on_each_frame(psp_file, clip, tmp_path):
    latents = invert_video(clip, _options(psp_file, tmp_path))
    info = probe(clip)
    assert latents.wplus.shape == (info.frame_count, N_STYLES, 512)
    assert latents.times == list(info.timestamps)
    assert latents.fps == Fraction(30000, 1001)
    assert latents.size == (64, 48) and latents.crop == (8, 0, 48, 48) == center_square(info)
    # The same frames pushed through the encoder by hand give the same codes.
    frames = read_all(clip, crop=center_square(info)).frames
    encoder = load_encoder(psp_file).eval()
    expected = encoder.encode(preprocess(frames, 256))
    torch.testing.assert_close(latents.wplus, expected, rtol=1e-4, atol=1e-4)
    assert latents.encoder["kind"] == "psp" and len(latents.encoder["sha256"]) == 64
    # Content code = mean inversion.
    torch.testing.assert_close(content_code(latents.wplus), expected.mean(0), rtol=1e-4, atol=1e-4)


def test_bf16_inversion_stays_within_its_tolerance_of_fp32(psp_file, clip, tmp_path):
    """--precision bf16 inverts through the encoder's fast path (channels-last, bf16 autocast) on
    the full IR-SE-50 backbone: every frame's W+ within 5e-2 of the fp32 codes, relative to the
    codes' own size (‖w − latent_avg‖, L2), and a cache entry of its own."""
    fp32 = invert_video(clip, _options(psp_file, tmp_path))
    bf16 = invert_video(clip, _options(psp_file, tmp_path, precision="bf16"))
    avg = load_encoder(psp_file).latent_avg
    err = (bf16.wplus - fp32.wplus).flatten(1).norm(dim=1) / (fp32.wplus - avg).flatten(1).norm(dim=1)
    assert err.max().item() < 5e-2 and not torch.equal(bf16.wplus, fp32.wplus)


def test_applications_invert_with_their_precision(psp_file, tmp_path):
    from vsode.options import EditOptions
    from vsode.pipeline import Pipeline

    for precision in ("fp32", "bf16", "auto"):
        pipe = Pipeline.__new__(Pipeline)  # only the options and what they name are read
        pipe.options = EditOptions(prompts=("x",), precision=precision, model=str(psp_file))
        pipe.model = type("M", (), {"backbone_refs": {"encoder": {"name": str(psp_file)}}})()
        pipe.device = torch.device("cpu")
        assert pipe._invert_options().precision == precision


def test_latents_file_round_trip_and_validation(psp_file, clip, tmp_path):
    latents = invert_video(clip, _options(psp_file, tmp_path, use_cache=False))
    out = latents.save(tmp_path / "clip.latents.pt")
    again = load_latents(out)
    torch.testing.assert_close(again.wplus, latents.wplus)
    assert again.times == latents.times and again.fps == latents.fps
    assert again.source["sha256"] == latents.source["sha256"]
    with pytest.raises(InputError, match="already exists"):
        latents.save(out)
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a vsode latents file"):
        load_latents(tmp_path / "other.pt")


def test_cache_hit_skips_the_encoder_and_settings_change_the_key(psp_file, clip, tmp_path, monkeypatch):
    options = _options(psp_file, tmp_path)
    first = invert_video(clip, options)
    models = load_models(options, torch.device("cpu"))

    def boom(*a, **k):
        raise AssertionError("the encoder ran despite a cached inversion")

    monkeypatch.setattr(models.encoder, "encode", boom)
    cached = invert_video(clip, options, models=models)
    torch.testing.assert_close(cached.wplus, first.wplus)
    # Refinement is a different result: a cache miss (which runs the encoder).
    with pytest.raises(AssertionError, match="encoder ran"):
        invert_video(clip, _options(psp_file, tmp_path, refine=1), models=models)
    # A damaged cache entry is dropped and recomputed, not trusted.
    entries = list((tmp_path / "cache" / "latents").glob("*.pt"))
    assert len(entries) == 1
    entries[0].write_bytes(b"garbage")
    monkeypatch.undo()
    recomputed = invert_video(clip, options)
    torch.testing.assert_close(recomputed.wplus, first.wplus)


def test_refine_reduces_the_reconstruction_error(psp_file, clip, tmp_path):
    options = _options(psp_file, tmp_path)
    models = load_models(options, torch.device("cpu"))
    info = probe(clip)
    target = preprocess(read_all(clip, crop=center_square(info)).frames[:1], 256)
    w0 = models.encoder.encode(target)

    def error(w):
        with torch.no_grad():
            return torch.nn.functional.mse_loss(synthesize_at(models.generator, w, 256), target).item()

    w1 = refine_latents(w0, target, models, steps=5, lr=0.05)
    assert error(w1) < 0.9 * error(w0)


def test_options_are_validated():
    with pytest.raises(InputError, match="--batch-size"):
        InvertOptions(batch_size=0)
    with pytest.raises(InputError, match="--refine"):
        InvertOptions(refine=-1)
    with pytest.raises(InputError, match="--precision"):
        InvertOptions(precision="fp8")


def test_cli_invert_with_preview_json_and_force(psp_file, clip, tmp_path):
    runner = CliRunner()
    out, preview = tmp_path / "out.pt", tmp_path / "recon.mp4"
    args = ["invert", str(clip), "-o", str(out), "--encoder", str(psp_file), "--preview", str(preview),
            "--preview-size", "32", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["frames"] == 6 and data["fps"] == "30000/1001" and data["output"] == str(out)
    assert data["aligned"] is False  # auto alignment found no face and fell back to the centre square
    assert data["preview"]["frames"] == 6
    assert "encode" in data["timings"]
    info = probe(preview)
    assert info.frame_count == 6 and info.fps == Fraction(30000, 1001) and (info.width, info.height) == (32, 32)
    assert len(info.audio) == 1
    assert load_latents(out).frame_count == 6
    # A second run refuses to overwrite without --force, and leaves the file alone.
    before = out.read_bytes()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--force" in res.stderr
    assert out.read_bytes() == before
    res = runner.invoke(app, args + ["--force"])
    assert res.exit_code == 0, res.stderr


def test_cli_missing_model_exits_3_naming_the_download(clip, tmp_path):
    res = CliRunner().invoke(app, ["invert", str(clip), "-o", str(tmp_path / "x.pt"), "--encoder", "psp-ffhq-encode",
                                   "--cache-dir", str(tmp_path / "empty")])
    assert res.exit_code == 3
    assert "vsode download psp-ffhq-encode" in res.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("with_model", [True, False])
def test_cli_bad_input_exits_2(psp_file, tmp_path, with_model):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    encoder = ["--encoder", str(psp_file)] if with_model else []  # bad input wins over a missing model
    res = CliRunner().invoke(app, ["invert", str(bogus), "-o", str(tmp_path / "x.pt"),
                                   "--cache-dir", str(tmp_path / "c"), *encoder])
    assert res.exit_code == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "notes.mp4" in res.stderr


def test_invert_aligns_a_real_face_and_saves_the_track(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from vsode.align import load_track
    from vsode.video import VideoWriter

    photo = Image.fromarray(skdata.astronaut()).resize((160, 160))
    frame = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
    clip = tmp_path / "face.mp4"
    with VideoWriter(clip, fps=25, width=160, height=160) as writer:
        writer.write(frame.repeat(3, 1, 1, 1))
    out, track = tmp_path / "face.latents.pt", tmp_path / "face.track.json"
    args = ["invert", str(clip), "-o", str(out), "--encoder", "psp-demo", "--align", "--save-track", str(track),
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["aligned"] is True and result["faceless_frames"] == []
    latents = load_latents(out)
    saved = load_track(track)
    assert latents.alignment == saved.to_dict()
    # the crop is the face, not the centre square: the two inversions differ
    plain = invert_video(clip, InvertOptions(encoder="psp-demo", device="cpu", align="off", use_cache=False))
    assert not torch.allclose(plain.wplus, latents.wplus, atol=1e-3)
    # re-running from the saved track gives the same codes without detecting
    again = invert_video(clip, InvertOptions(encoder="psp-demo", device="cpu", track=track, use_cache=False))
    assert torch.equal(again.wplus, latents.wplus)
