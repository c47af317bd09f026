"""DINO ViT: the released preprocessing and position interpolation, features equal a plain
per-image computation of DINO's formulas, the DINO / timm / vsode/dino@1 layouts load strictly,
and keys that do not fit are named."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from vsode.dino import Dino, DinoConfig, DinoFeatures, infer_config, load_dino, save_dino
from vsode.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # written out here, not imported: the reference
IMAGENET_STD = (0.229, 0.224, 0.225)
TINY = DinoConfig(patch_size=8, dim=32, depth=3, heads=2, mlp_ratio=4, image_size=32, resize=40,
                  structure_layer=2, cls_layer=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def _random_dino(config: DinoConfig = TINY, seed: int = 0) -> Dino:
    """A Dino whose every parameter is random (LayerNorm gains near 1), so nothing cancels."""
    torch.manual_seed(seed)
    model = Dino(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def tiny() -> Dino:
    return _random_dino()


# -- a plain, one-image-at-a-time reference of DINO's formulas -----------------------------------


def _reference(model: Dino, image01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """keys (T×D) and cls (D) of one 3×H×W image, written from DINO's and Splice's code."""
    c, sd = model.config, {k: v.double() for k, v in model.state_dict().items()}
    x = v2.Resize(c.resize, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)(image01)
    x = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(x).double()
    H, W = x.shape[-2:]
    p, gh, gw = c.patch_size, x.shape[-2] // c.patch_size, x.shape[-1] // c.patch_size
    patches = x[:, : gh * p, : gw * p].reshape(3, gh, p, gw, p).permute(1, 3, 0, 2, 4).reshape(gh * gw, -1)
    tokens = patches @ sd["patch_embed.proj.weight"].reshape(c.dim, -1).T + sd["patch_embed.proj.bias"]
    tokens = torch.cat([sd["cls_token"][0], tokens])  # T D
    pos = sd["pos_embed"]
    n = pos.shape[1] - 1
    if not (gh * gw == n and H == W):  # DINO's interpolate_pos_encoding
        g = int(math.sqrt(n))
        grid = pos[:, 1:].reshape(1, g, g, c.dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((gh + 0.1) / g, (gw + 0.1) / g), mode="bicubic")
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, c.dim)], dim=1)
    x = tokens + pos[0]
    hd = c.dim // c.heads
    keys = cls = None
    for i in range(c.depth):
        pre = f"blocks.{i}."
        h = F.layer_norm(x, (c.dim,), sd[pre + "norm1.weight"], sd[pre + "norm1.bias"], eps=1e-6)
        qkv = (h @ sd[pre + "attn.qkv.weight"].T + sd[pre + "attn.qkv.bias"]).reshape(-1, 3, c.heads, hd)
        if i == c.structure_layer:
            keys = qkv[:, 1].reshape(-1, c.dim)
        heads = []
        for j in range(c.heads):
            q, k, v = qkv[:, 0, j], qkv[:, 1, j], qkv[:, 2, j]
            heads.append(torch.softmax(q @ k.T * hd**-0.5, dim=-1) @ v)
        x = x + torch.cat(heads, dim=-1) @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"]
        h = F.layer_norm(x, (c.dim,), sd[pre + "norm2.weight"], sd[pre + "norm2.bias"], eps=1e-6)
        h = F.gelu(h @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"])
        x = x + h @ sd[pre + "mlp.fc2.weight"].T + sd[pre + "mlp.fc2.bias"]
        if i == c.cls_layer:
            cls = x[0]
    return keys.float(), cls.float()


@pytest.mark.parametrize("layers", [(2, 1), (0, 2), (1, 1)])
@pytest.mark.parametrize("size", [(48, 36), (36, 52), (40, 40), (32, 32)])
def test_batched_features_equal_the_per_image_reference(tiny, layers, size):
    model = _random_dino()
    model.config = dataclasses.replace(TINY, structure_layer=layers[0], cls_layer=layers[1])
    images = torch.rand(3, 3, *size, generator=torch.Generator().manual_seed(1))
    feats = model.features(images)
    assert isinstance(feats, DinoFeatures)
    for b in range(3):
        keys, cls = _reference(model, images[b])
        assert feats.keys[b].shape == keys.shape
        torch.testing.assert_close(feats.keys[b], keys, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(feats.cls[b], cls, atol=2e-5, rtol=1e-5)


def test_preprocessing_matches_torchvision_and_the_released_token_count():
    # ViT-B/16 geometry (narrow, one block): 256×192 → 325×244 → 20×15 patches + CLS = 301 tokens
    model = _random_dino(DinoConfig(dim=16, depth=1, heads=1, structure_layer=0, cls_layer=0))
    portrait = torch.rand(2, 3, 256, 192)
    x = model.preprocess(portrait)
    assert x.shape == (2, 3, 325, 244)
    want = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(v2.Resize(244, antialias=True)(portrait))
    torch.testing.assert_close(x, want, atol=1e-5, rtol=1e-5)
    keys, cls = model.features(portrait)
    assert keys.shape == (2, 301, 16) and cls.shape == (2, 16)
    assert model.features(portrait.transpose(-1, -2)).keys.shape == (2, 301, 16)  # 244×325 → 15×20
    # already at the shorter side: no resampling at all
    square = torch.rand(1, 3, 244, 300)
    torch.testing.assert_close(model.preprocess(square), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(square))


def test_position_interpolation_is_identity_at_the_native_grid_and_keeps_constants(tiny):
    assert tiny.position_embedding(32, 32) is tiny.pos_embed  # 4×4 patches of a square image
    assert tiny.position_embedding(39, 39) is tiny.pos_embed  # still 4×4 patches (DINO's rule)
    table = tiny.position_embedding(48, 64)
    assert table.shape == (1, 1 + 6 * 8, 32)
    torch.testing.assert_close(table[:, 0], tiny.pos_embed[:, 0])  # CLS row untouched
    flat = _random_dino()
    with torch.no_grad():
        flat.pos_embed[:, 1:] = torch.linspace(-1, 1, 32)  # the same vector at every grid cell
    torch.testing.assert_close(flat.position_embedding(56, 24)[:, 1:], flat.pos_embed[:, 1:2].expand(1, 21, 32))


def test_only_the_blocks_the_features_need_are_run():
    model = _random_dino(dataclasses.replace(TINY, depth=4, structure_layer=2, cls_layer=1))
    images = torch.rand(2, 3, 40, 40)
    before = model.features(images)
    with torch.no_grad():
        model.blocks[3].mlp.fc1.weight.fill_(float("nan"))  # past the deepest block needed
        model.blocks[2].mlp.fc2.weight.fill_(float("nan"))  # block 2: only its qkv is read
        model.blocks[2].attn.proj.weight.fill_(float("nan"))
    after = model.features(images)
    torch.testing.assert_close(after.keys, before.keys)
    torch.testing.assert_close(after.cls, before.cls)


def test_frozen_eval_and_differentiable_in_the_images(tiny):
    assert not tiny.training and not any(p.requires_grad for p in tiny.parameters())
    images = torch.rand(2, 3, 48, 36, requires_grad=True)
    keys, cls = tiny.features(images)
    (keys.square().sum() + cls.sum()).backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


# -- layouts --------------------------------------------------------------------------------------


def _same(a: Dino, b: Dino) -> None:
    images = torch.rand(2, 3, 44, 36, generator=torch.Generator().manual_seed(3))
    fa, fb = a.features(images), b.features(images)
    torch.testing.assert_close(fa.keys, fb.keys, rtol=0, atol=0)
    torch.testing.assert_close(fa.cls, fb.cls, rtol=0, atol=0)


def test_vsode_format_round_trips_through_a_file(tiny, tmp_path):
    path = save_dino(tiny, tmp_path / "tiny-dino.pt")
    loaded = load_dino(path)
    assert loaded.config == TINY and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    _same(tiny, loaded)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "vsode/dino@1" and raw["config"] == TINY.to_dict()
    assert DinoConfig.from_dict(raw["config"]) == TINY
    relayered = load_dino(raw, cls_layer=0)
    assert relayered.config == dataclasses.replace(TINY, cls_layer=0)
    with pytest.raises(InputError, match="heads=4"):
        load_dino(raw, heads=4)


def test_dino_layout_state_dict_infers_its_architecture(tiny, tmp_path):
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    torch.save(state, tmp_path / "dino_tiny_pretrain.pth")
    loaded = load_dino(tmp_path / "dino_tiny_pretrain.pth", heads=2, cls_layer=1, resize=40)
    assert loaded.config == TINY  # structure_layer defaults to the last block
    _same(tiny, loaded)
    assert infer_config(state, heads=2, cls_layer=1, resize=40) == TINY
    # ViT-B/16 shapes (meta tensors: no memory) give the released defaults, heads = dim/64
    with torch.device("meta"):
        vitb = {k: torch.empty(v.shape) for k, v in Dino(DinoConfig()).state_dict().items()}
    assert infer_config(vitb) == DinoConfig()


def test_timm_layout_matches_timm_and_ignores_its_head(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=5
    ).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    state = net.state_dict()
    assert "head.weight" in state
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "model.safetensors"))
    model = load_dino(tmp_path / "model.safetensors", heads=2, cls_layer=1, resize=32)
    # timm at its native size (32×32 input, no resize, no interpolation), read through hooks
    seen = {}
    net.blocks[2].attn.qkv.register_forward_hook(lambda m, i, o: seen.__setitem__("qkv", o))
    net.blocks[1].register_forward_hook(lambda m, i, o: seen.__setitem__("block1", o))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        final = net.forward_features(model.preprocess(images))
    keys, cls = model.features(images)
    torch.testing.assert_close(keys, seen["qkv"][..., 32:64], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, seen["block1"][:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.final_tokens(images), final, atol=1e-5, rtol=1e-5)


# -- what does not fit ----------------------------------------------------------------------------


def test_unknown_missing_and_misshapen_keys_are_named(tiny):
    state = dict(tiny.state_dict())
    ok = dict(state, **{"fc_norm.weight": torch.ones(32), "head.bias": torch.zeros(5)})
    load_dino(ok, heads=2, cls_layer=1)  # documented extras are ignored
    with pytest.raises(InputError, match=r"unknown keys 'blocks\.0\.attn\.scale'"):
        load_dino(dict(state, **{"blocks.0.attn.scale": torch.ones(1)}), heads=2, cls_layer=1)
    missing = {k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.bias"}
    with pytest.raises(InputError, match=r"missing keys 'blocks\.1\.mlp\.fc2\.bias'"):
        load_dino(missing, heads=2, cls_layer=1)
    with pytest.raises(InputError, match=r"wrong shapes 'norm\.weight' \(5,\)"):
        load_dino(dict(state, **{"norm.weight": torch.ones(5)}), heads=2, cls_layer=1)
    ckpt = tiny.checkpoint()
    ckpt["state_dict"]["head.weight"] = torch.zeros(5, 32)  # strict in our own format
    with pytest.raises(InputError, match=r"unknown keys 'head\.weight'"):
        load_dino(ckpt)


def test_layout_and_config_errors_say_what_to_do(tiny, tmp_path):
    state = dict(tiny.state_dict())
    with pytest.raises(InputError, match="pass heads="):
        load_dino(state, cls_layer=1)  # dim 32: heads cannot be guessed
    with pytest.raises(InputError, match="cls_layer 8 .* pass cls_layer="):
        load_dino(state, heads=2)  # three blocks: the released block 8 does not exist
    with pytest.raises(InputError, match="teacher"):
        load_dino({"teacher": {}, "student": {}, "epoch": 100})
    with pytest.raises(InputError, match="vsode/dino@1"):
        load_dino({"format": "vsode/clip@1"})
    with pytest.raises(InputError, match="does not exist"):
        load_dino(tmp_path / "nope.pth")
    with pytest.raises(InputError, match="heads"):
        DinoConfig(dim=30, heads=4)
    with pytest.raises(InputError, match="structure_layer 12"):
        DinoConfig(structure_layer=12)
    with pytest.raises(InputError, match="unknown fields"):
        DinoConfig.from_dict({**DinoConfig().to_dict(), "drop_path": 0.1})
    with pytest.raises(InputError, match="B×3×H×W"):
        tiny.features(torch.rand(3, 32, 32))
