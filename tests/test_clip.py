"""CLIP: the shipped demo checkpoint knows the demo world's attributes, the paper's preprocessing,
un-normalised embeddings, the open_clip ViT-B/32 layout, and malformed files fail as InputError."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from vsode.clip import ClipModel, Preprocess, load_clip, preprocess_images
from vsode.demo import caption_for, render_times, sample_params, with_appearance
from vsode.demo.clip_train import (
    DEMO_CLIP_CONFIG,
    HELD_OUT_SEEDS,
    NAMED,
    encode_text_trimmed,
    evaluate_zero_shot,
    multi_positive_clip_loss,
    sample_caption,
    train_demo_clip,
)
from vsode.errors import InputError, UnsafeCheckpointError

ASSETS = Path(__file__).resolve().parents[1] / "vsode" / "assets" / "demo"
SHIPPED = ASSETS / "clip-demo.pt"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # written out here, not imported: the reference
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
FRESH_SEEDS = range(HELD_OUT_SEEDS.start + 500_000, HELD_OUT_SEEDS.start + 500_060)  # not the trainer's


class _Payload:  # any class outside torch's allow-list: pickling it makes a checkpoint unsafe
    pass


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip() -> ClipModel:
    return load_clip(SHIPPED)


@pytest.fixture(scope="module")
def raw_ckpt() -> dict:
    return torch.load(SHIPPED, map_location="cpu", weights_only=True)


def _renders(seeds, t: float = 0.7) -> torch.Tensor:
    return torch.stack([render_times(sample_params(s), [t])[0] for s in seeds]) * 2 - 1  # B 3 64 64


# -- the shipped checkpoint -------------------------------------------------------------------


def test_shipped_checkpoint_is_small_self_describing_and_matches_its_record(clip, raw_ckpt):
    assert raw_ckpt["format"] == "vsode/clip@1" and raw_ckpt["config"] == DEMO_CLIP_CONFIG
    assert SHIPPED.stat().st_size <= 6_000_000
    record = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert "--seed" in record["command"] and record["metrics"]["zero_shot"]["n"] >= 300
    assert (clip.name, clip.embed_dim, clip.image_size, clip.context_length) == ("clip-demo", 128, 64, 77)
    assert not any(p.requires_grad for p in clip.parameters()) and not clip.training
    # Only the caption vocabulary's token rows are stored; every other token embeds as zero.
    table = clip.clip.token_embedding.weight
    assert table.shape == (49408, 128)
    stored = raw_ckpt["sparse_rows"]["token_embedding.weight"]["rows"]
    assert int(table.ne(0).any(dim=1).sum()) == len(stored) < 64


def test_zero_shot_attributes_on_fresh_held_out_renders(clip):
    # Measured on 600 other held-out renders at training time: see clip-demo.json.
    acc = evaluate_zero_shot(clip, FRESH_SEEDS, time_seed=123)
    assert acc["n"] == 60
    assert acc["hair"] >= 0.95 and acc["skin"] >= 0.95, acc  # measured 1.0, 1.0
    assert acc["eyes"] >= 0.90 and acc["eyes_open"] >= 0.93, acc  # 0.98 (blinks hide some), 0.99-1.0


def test_text_edit_direction_points_like_the_image_edit(clip):
    """The style code adds α·(CLIP_T(target) − CLIP_T(source)) to an image embedding: for the same
    video re-rendered with the other attribute, the image difference must point along the text
    difference of that attribute, and be nearly orthogonal to another attribute's."""
    aligned, crossed = [], []
    with torch.no_grad():
        for seed in range(HELD_OUT_SEEDS.start + 600_000, HELD_OUT_SEEDS.start + 600_012):
            p = sample_params(seed, appearance={"hair": "black", "eyes": "brown"})
            edits = {"hair": with_appearance(p, hair="blonde"), "eyes": with_appearance(p, eyes="blue")}
            before = clip.encode_image(render_times(p, [0.4]) * 2 - 1)
            text = {
                "hair": clip.encode_text([caption_for({"hair": "blonde"}), caption_for({"hair": "black"})]),
                "eyes": clip.encode_text([caption_for({"eyes": "blue"}), caption_for({"eyes": "brown"})]),
            }
            for name, edited in edits.items():
                d_img = clip.encode_image(render_times(edited, [0.4]) * 2 - 1) - before
                cos = {k: F.cosine_similarity(d_img, (t[0] - t[1])[None]).item() for k, t in text.items()}
                aligned.append(cos[name])
                crossed.append(cos["eyes" if name == "hair" else "hair"])
    # Measured: aligned 0.86-0.96, crossed within ±0.08.
    assert min(aligned) > 0.6 and max(abs(c) for c in crossed) < 0.3, (aligned, crossed)


def test_embeddings_are_unnormalised_deterministic_and_batch_independent(clip):
    x = _renders(range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + 4))
    with torch.no_grad():
        a, b, one = clip.encode_image(x), clip.encode_image(x), clip.encode_image(x[2:3])
        t = clip.encode_text(["a photo of a person with red hair", "a face with green eyes and dark skin"])
    assert a.shape == (4, 128) and a.dtype == torch.float32 and t.shape == (2, 128)
    assert torch.equal(a, b)
    torch.testing.assert_close(one[0], a[2], atol=1e-4, rtol=1e-4)
    for norms in (a.norm(dim=-1), t.norm(dim=-1)):
        assert ((norms - 1).abs() > 0.1).all()
    text = "a person with red hair"
    torch.testing.assert_close(clip.encode_text(text), clip.encode_text([text]))
    # Words outside the demo vocabulary still encode (their rows are zero).
    assert torch.isfinite(clip.encode_text(["a portrait of a woman with purple hair"])).all()


def test_zero_shot_returns_probabilities_from_scaled_cosines(clip):
    x = _renders([HELD_OUT_SEEDS.start + 7])
    prompts = [caption_for({"skin": s}) for s in NAMED["skin"]]
    probs = clip.zero_shot(x, prompts)
    img = F.normalize(clip.encode_image(x), dim=-1)
    txt = F.normalize(clip.encode_text(prompts), dim=-1)
    expected = (clip.clip.logit_scale.exp() * img @ txt.T).softmax(-1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))


# -- preprocessing ----------------------------------------------------------------------------


def test_preprocessing_is_the_papers_formula(clip):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    mean, std = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1), torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    manual = ((x + 1) / 2 - mean) / std
    torch.testing.assert_close(preprocess_images(x, clip.preprocess), manual)
    with torch.no_grad():  # encode_image applies it before the tower
        torch.testing.assert_close(clip.encode_image(x), clip.clip.encode_image(manual), atol=1e-5, rtol=1e-5)
    # A flat grey image in [-1, 1] of value v becomes ((v+1)/2 - mean)/std everywhere, at any size.
    flat = torch.full((1, 3, 90, 150), 0.2)
    out = preprocess_images(flat, clip.preprocess)
    assert out.shape == (1, 3, 64, 64)
    torch.testing.assert_close(out, ((torch.full_like(out, 0.6)) - mean) / std, atol=1e-5, rtol=0)


@pytest.mark.parametrize("hw", [(96, 128), (128, 72), (64, 64), (40, 50)])
def test_preprocessing_matches_torchvision_resize_crop_normalize(hw):
    pp = Preprocess(image_size=64)
    x = torch.rand(2, 3, *hw) * 2 - 1
    ref = v2.Compose([
        v2.Normalize(mean=[-1.0] * 3, std=[2.0] * 3),  # (x+1)/2, as StyleGAN-NADA's CLIP loss writes it
        v2.Resize(64, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(64),
        v2.Normalize(mean=OPENAI_MEAN, std=OPENAI_STD),
    ])(x)
    torch.testing.assert_close(preprocess_images(x, pp), ref, atol=1e-5, rtol=1e-5)


def test_preprocessing_passes_gradients_to_the_images(clip):
    x = (torch.rand(1, 3, 80, 80) * 2 - 1).requires_grad_()
    clip.encode_image(x).norm().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- the open_clip ViT-B/32 layout --------------------------------------------------------------


def test_open_clip_vit_b_32_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    reference = open_clip.CLIP(**open_clip.get_model_config("ViT-B-32-quickgelu")).eval()
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(reference.state_dict(), path)
    clip = load_clip(path)
    assert (clip.name, clip.embed_dim, clip.image_size) == ("ViT-B-32-quickgelu", 512, 224)
    assert clip.preprocess.mean == OPENAI_MEAN and clip.preprocess.std == OPENAI_STD
    assert any(isinstance(m, open_clip.transformer.QuickGELU) for m in clip.modules())
    for (k, a), (_, b) in zip(reference.state_dict().items(), clip.clip.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(1, 3, 256, 320) * 2 - 1  # resized to 224 on the short side, center-cropped
    with torch.no_grad():
        ref_in = v2.Compose([v2.Resize(224, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                             v2.CenterCrop(224), v2.Normalize(OPENAI_MEAN, OPENAI_STD)])((x + 1) / 2)
        torch.testing.assert_close(clip.encode_image(x), reference.encode_image(ref_in), atol=1e-4, rtol=1e-4)
        tokens = open_clip.tokenize(["a photo of a person"])
        torch.testing.assert_close(clip.encode_text("a photo of a person"), reference.encode_text(tokens))
    # open_clip's training checkpoints: {"epoch", "state_dict"} with DDP's "module." prefixes.
    wrapped = {"epoch": 32, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}
    assert torch.equal(load_clip(wrapped).clip.visual.proj, reference.visual.proj)


# -- malformed checkpoints ----------------------------------------------------------------------


def _broken(raw: dict, how: str) -> object:
    ckpt = copy.copy(raw)
    ckpt["state_dict"] = dict(raw["state_dict"])
    if how == "not a dict":
        return torch.zeros(3)
    if how == "other format":
        ckpt["format"] = "vsode/stylegan2@1"
    elif how == "no config":
        del ckpt["config"]
    elif how == "missing key":
        del ckpt["state_dict"]["logit_scale"]
    elif how == "unexpected key":
        ckpt["state_dict"]["visual.extra"] = torch.zeros(1)
    elif how == "wrong shape":
        ckpt["state_dict"]["visual.proj"] = torch.zeros(128, 64)
    elif how == "bad config":
        ckpt["config"] = {**raw["config"], "vision_cfg": {**raw["config"]["vision_cfg"], "no_such_option": 1}}
    elif how == "hub tower":
        text_cfg = {**raw["config"]["text_cfg"], "hf_model_name": "bert-base-uncased"}
        ckpt["config"] = {**raw["config"], "text_cfg": text_cfg}
    elif how == "sparse rows out of range":
        table = raw["sparse_rows"]["token_embedding.weight"]
        ckpt["sparse_rows"] = {"token_embedding.weight": {**table, "rows": table["rows"] + 49408}}
    elif how == "bad preprocess":
        ckpt["preprocess"] = {**raw["preprocess"], "crop": "random"}
    elif how == "not clip":
        return {"g_ema": {"conv1.weight": torch.zeros(1)}}
    return ckpt


@pytest.mark.parametrize("how", [
    "not a dict", "other format", "no config", "missing key", "unexpected key", "wrong shape", "bad config",
    "hub tower", "sparse rows out of range", "bad preprocess", "not clip",
])
def test_malformed_checkpoints_raise_input_error(raw_ckpt, how):
    with pytest.raises(InputError):
        load_clip(_broken(raw_ckpt, how))


def test_unreadable_or_unsafe_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_clip(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError):
        load_clip(garbage)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "vsode/clip@1", "config": _Payload()}, unsafe)
    with pytest.raises(UnsafeCheckpointError):
        load_clip(unsafe)


# -- training pieces ---------------------------------------------------------------------------


def test_trimmed_text_encoding_equals_open_clip(clip):
    rng = np.random.default_rng(0)
    captions = [sample_caption(rng, {"hair": "red", "eyes": "grey", "skin": "light"})[0] for _ in range(6)]
    tokens = clip.tokenize(captions)
    with torch.no_grad():
        torch.testing.assert_close(encode_text_trimmed(clip.clip, tokens), clip.clip.encode_text(tokens),
                                   atol=1e-5, rtol=1e-5)


def test_multi_positive_loss_is_clip_loss_with_one_positive_each():
    torch.manual_seed(0)
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    scale = torch.tensor(math.log(10.0))
    ref = open_clip.ClipLoss()(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale.exp())
    torch.testing.assert_close(multi_positive_clip_loss(img, txt, torch.eye(5, dtype=torch.bool), scale), ref)
    # Two identical captions both positive for two identical images: the loss is blind to which is which.
    match = torch.eye(4, dtype=torch.bool)
    match[0, 1] = match[1, 0] = True
    img2, txt2 = torch.randn(4, 8), torch.randn(4, 8)
    img2[1], txt2[1] = img2[0], txt2[0]
    swapped = txt2[[1, 0, 2, 3]]
    torch.testing.assert_close(multi_positive_clip_loss(img2, txt2, match, scale),
                               multi_positive_clip_loss(img2, swapped, match, scale))


def test_captions_name_exactly_the_attributes_they_claim():
    rng = np.random.default_rng(1)
    attrs = {"hair": "grey", "eyes": "brown", "skin": "medium"}
    for _ in range(200):
        text, names = sample_caption(rng, attrs)
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
        for name in NAMED:
            assert (f"{attrs[name]} {name}" in text) == (name in names), text


def test_bf16_autocast_agrees_with_fp32(clip):
    x = _renders(range(HELD_OUT_SEEDS.start + 20, HELD_OUT_SEEDS.start + 24))
    with torch.no_grad():
        ref = clip.clip.encode_image(preprocess_images(x, clip.preprocess))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = clip.clip.encode_image(preprocess_images(x, clip.preprocess)).float()
    assert F.cosine_similarity(ref, fast).min() > 0.99


def test_training_smoke_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "tiny.pt"
    metrics = train_demo_clip(out, seed=3, steps=2, batch_size=8, pool_videos=2, frames_per_video=4,
                              refresh_videos=1, warmup=1, eval_renders=4)
    clip = load_clip(out)
    assert clip.name == "clip-demo" and metrics["zero_shot"]["n"] == 4
    assert metrics["file_bytes"] == out.stat().st_size
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["training"]["options"]["seed"] == 3 and len(metrics["history"]) == 1
