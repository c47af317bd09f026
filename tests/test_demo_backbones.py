"""The demo world's generator and encoder: shipped files, their format, what they reconstruct.

The shipped weights are read through the same loaders as the published StyleGAN2 / pSp files and
scored on held-out renders (video seeds the training never drew).
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
import torch

from vsode.checkpoints import safe_load
from vsode.demo import region_masks, render_times, sample_params, with_appearance
from vsode.demo.backbones import (
    ASSETS_DIR,
    ENCODER_ARCH,
    ENCODER_FILE,
    GENERATOR_CONFIG,
    GENERATOR_FILE,
    HELD_OUT_SEED,
    METRICS_FILE,
    N_STYLES,
    AutoencoderOptions,
    held_out_renders,
    psp_opts,
    reconstruct,
    train_demo_autoencoder,
)
from vsode.encoders import IR_SE_50, EncoderArch, GradualStyleEncoder, load_encoder, preprocess
from vsode.errors import InputError
from vsode.train.losses import psnr
from vsode.stylegan2 import infer_config, load_generator

GEN_PATH, ENC_PATH, METRICS_PATH = (
    ASSETS_DIR / n for n in (GENERATOR_FILE, ENCODER_FILE, METRICS_FILE)
)
STYLE_DIM = GENERATOR_CONFIG["style_dim"]
# A little below the held-out figure in autoencoder-demo.json (measured on 256 renders).
MIN_PSNR_DB = 29.5  # measured 31.16 dB mean on 256 held-out renders (autoencoder-demo.json)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENC_PATH)


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads(METRICS_PATH.read_text())


# --- the shipped files ----------------------------------------------------------------------------


def test_generator_file_is_in_the_rosinality_layout():
    ckpt = safe_load(GEN_PATH)  # weights_only
    assert set(ckpt) == {"g_ema", "latent_avg"}
    assert ckpt["latent_avg"].shape == (STYLE_DIM,) and ckpt["latent_avg"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in ckpt["g_ema"].values())
    assert infer_config(ckpt["g_ema"]) == dict(GENERATOR_CONFIG)
    generator = load_generator(GEN_PATH)
    assert generator.n_latent == N_STYLES == 10 and generator.resolution == 64
    assert torch.equal(generator.latent_avg, ckpt["latent_avg"])
    assert generator.mapping(torch.randn(2, STYLE_DIM)).shape == (2, STYLE_DIM)


def test_encoder_file_is_in_the_psp_layout(encoder):
    ckpt = safe_load(ENC_PATH)
    assert set(ckpt) == {"state_dict", "latent_avg", "opts"}
    keys = list(ckpt["state_dict"])
    first_decoder = next(i for i, k in enumerate(keys) if k.startswith("decoder."))
    assert all(k.startswith("encoder.") for k in keys[:first_decoder])
    assert all(k.startswith("decoder.") for k in keys[first_decoder:])
    assert ckpt["opts"] == psp_opts()
    assert json.loads(json.dumps(ckpt["opts"])) == ckpt["opts"]  # plain types only
    opts = ckpt["opts"]
    assert (opts["encoder_type"], opts["output_size"], opts["n_styles"]) == (
        "GradualStyleEncoder",
        64,
        10,
    )
    assert opts["start_from_latent_avg"] is True
    assert ckpt["latent_avg"].shape == (N_STYLES, STYLE_DIM)
    assert (encoder.kind, encoder.n_styles, encoder.style_dim, encoder.input_size) == (
        "psp",
        10,
        STYLE_DIM,
        64,
    )
    assert encoder.arch == ENCODER_ARCH


def test_both_files_hold_the_same_generator_and_fit_the_size_budget(encoder, metrics):
    standalone = load_generator(GEN_PATH)
    decoder = encoder.generator
    assert list(decoder.state_dict()) == list(standalone.state_dict())
    assert all(
        torch.equal(a, b)
        for a, b in zip(decoder.state_dict().values(), standalone.state_dict().values())
    )
    assert torch.equal(decoder.latent_avg, encoder.latent_avg)
    assert torch.equal(encoder.latent_avg, standalone.latent_avg.expand(N_STYLES, -1))
    sizes = {p.name: p.stat().st_size for p in (GEN_PATH, ENC_PATH)}
    assert sum(sizes.values()) <= 10_000_000
    for name, size in sizes.items():
        digest = hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest()
        assert metrics["files"][name] == {"bytes": size, "sha256": digest}


def test_metrics_file_records_how_the_weights_were_made(metrics):
    assert metrics["command"].startswith("python scripts/train_demo_autoencoder.py")
    assert metrics["seed"] == metrics["config"]["seed"] == 0
    assert metrics["held_out_images"] >= 200 and metrics["held_out_seeds"][0] == HELD_OUT_SEED
    assert metrics["psnr_mean_db"] >= MIN_PSNR_DB + 0.5
    assert metrics["wall_s"] <= 45 * 60


# --- what they compute ----------------------------------------------------------------------------


def test_reconstructs_fresh_held_out_renders(encoder):
    images = held_out_renders(32, offset=5000)  # not among the 256 of the metrics file
    out = reconstruct(encoder, images)
    assert out.shape == images.shape
    value = psnr(out, images, per_image=True, dtype=torch.float32)
    assert value.mean() > MIN_PSNR_DB and value.min() > MIN_PSNR_DB - 5


def test_encoder_output_shape_and_fast_path(encoder):
    x = preprocess(held_out_renders(4, offset=6000), size=encoder.input_size)
    w = encoder.encode(x)
    assert w.shape == (4, N_STYLES, STYLE_DIM) and w.dtype == torch.float32
    torch.testing.assert_close(
        encoder.encode(x, impl="fast"), w, rtol=0, atol=0.05 * w.abs().max().item()
    )
    with pytest.raises(InputError, match="3×64×64"):
        encoder.encode(torch.zeros(1, 3, 256, 256))


def test_hair_colour_is_in_the_codes_and_in_the_reconstruction(encoder):
    base = sample_params(HELD_OUT_SEED + 7000, appearance={"hair": "black"})
    hair = region_masks(base, [1.0])["hair"][0]  # 64 64
    colours = {"black": (0.07, 0.06, 0.06), "red": (0.82, 0.24, 0.06), "blonde": (0.95, 0.82, 0.42)}
    frames = torch.cat([render_times(with_appearance(base, hair=h), [1.0]) for h in colours])
    codes = encoder.encode(preprocess(frames, size=64))
    same = encoder.encode(preprocess(frames[:1], size=64))
    assert (codes[1] - codes[0]).norm() > 0.1 * codes[0].norm()  # an edit moves W+
    torch.testing.assert_close(same[0], codes[0])  # deterministic
    out = encoder.generator.synthesize(codes, noise="const").add(1).div(2).clamp(0, 1)
    mean = (out * hair).flatten(2).sum(2) / hair.sum()  # 3 x RGB in the hair region
    for i, rgb in enumerate(colours.values()):
        distances = (mean - torch.tensor(rgb)).norm(dim=1)
        assert distances.argmin() == i, (i, distances)


def test_interpolation_between_codes_is_smooth(encoder):
    frames = held_out_renders(2, offset=8000)
    w = encoder.encode(preprocess(frames, size=64))
    alpha = torch.linspace(0, 1, 9).view(-1, 1, 1)
    images = encoder.generator.synthesize(w[0] + alpha * (w[1] - w[0]), noise="const")
    steps = (images[1:] - images[:-1]).abs().mean(dim=(1, 2, 3))
    total = (images[-1] - images[0]).abs().mean()
    assert steps.max() < 0.35 * total  # no jump: each of the 8 steps is a small part of the change
    assert steps.sum() < 2.0 * total  # and the path does not wander far from the straight one


# --- the small encoder configuration --------------------------------------------------------------


def test_encoder_arch_round_trips_and_the_default_is_ir_se_50():
    assert EncoderArch() == IR_SE_50
    assert IR_SE_50.tap_units == (6, 20, 23) and IR_SE_50.head_spatial(0) == 16
    assert EncoderArch.from_dict(ENCODER_ARCH.to_dict()) == ENCODER_ARCH
    assert ENCODER_ARCH.tap_units == (1, 3, 4)
    assert [ENCODER_ARCH.head_spatial(i) for i in (0, 3, 7)] == [4, 8, 16]
    with pytest.raises(InputError, match="unknown fields.*depth"):
        EncoderArch.from_dict({**ENCODER_ARCH.to_dict(), "depth": 50})
    with pytest.raises(InputError, match="power of two"):
        EncoderArch(input_size=48)
    with pytest.raises(InputError, match="se_reduction"):
        EncoderArch(stages=((16, 1), (32, 1), (64, 2), (100, 1)), se_reduction=8)


def test_small_encoder_state_dict_round_trips_strictly():
    torch.manual_seed(0)
    net = GradualStyleEncoder(N_STYLES, arch=ENCODER_ARCH).eval()
    state = {f"encoder.{k}": v for k, v in net.state_dict().items()}
    assert state["encoder.styles.0.linear.weight"].shape == (STYLE_DIM, ENCODER_ARCH.head_width)
    assert state["encoder.latlayer1.weight"].shape == (128, 64, 1, 1)
    avg = torch.randn(STYLE_DIM)
    encoder = load_encoder({"state_dict": state, "opts": psp_opts(), "latent_avg": avg})
    loaded = encoder.state_dict()
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(encoder.encode(x), net(x) + avg)
    # without opts.vsode_arch the weights are read as IR-SE-50, and the error says where to look
    plain = {k: v for k, v in psp_opts().items() if k != "vsode_arch"}
    with pytest.raises(InputError, match="IR-SE-50 layout.*vsode_arch"):
        load_encoder({"state_dict": state, "opts": plain, "latent_avg": avg})


# --- training -------------------------------------------------------------------------------------


def test_training_is_reproducible_and_writes_loadable_files(tmp_path):
    kwargs = dict(steps=2, batch_size=2, eval_images=2, mapping_steps=2, log_every=1)
    records = []
    first = train_demo_autoencoder(tmp_path / "a", log=records.append, **kwargs)
    second = train_demo_autoencoder(
        tmp_path / "b", run_dir=tmp_path / "run", render_workers=0, **kwargs
    )
    assert first["files"] == second["files"]  # same bytes, with or without the render worker
    assert [r["step"] for r in records if "step" in r] == [1, 2]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["steps"] == 2
    assert (tmp_path / "run" / "stats.jsonl").read_text().count("\n") == 3
    assert not (tmp_path / "b" / "config.json").exists()
    assert load_encoder(tmp_path / "a" / ENCODER_FILE).n_styles == N_STYLES
    assert load_generator(tmp_path / "a" / GENERATOR_FILE).n_latent == N_STYLES
    with zipfile.ZipFile(tmp_path / "a" / GENERATOR_FILE) as z:
        assert all(n.startswith("archive/") for n in z.namelist())  # no temp name inside
    with pytest.raises(InputError, match="out of range: steps"):
        AutoencoderOptions(steps=0)
    with pytest.raises(InputError, match="the options are"):
        train_demo_autoencoder(tmp_path / "c", stepz=3)
