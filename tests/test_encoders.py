"""pSp / e4e encoders: the checkpoint layout contract, the forward semantics, preprocessing.

Random weights built from the layout manifests (tests/data/formats) stand in for the published
files. Full IR-SE-50 forwards (≈1 s each on 2 cores) are kept to a handful at batch 1, 256².
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsode.encoders import (
    BottleneckIRSE,
    Encoder,
    Encoder4Editing,
    GradualStyleBlock,
    GradualStyleEncoder,
    load_encoder,
    preprocess,
)
from vsode.errors import InputError, UnsafeCheckpointError
from vsode.ops import EqualLinear

FORMATS = Path(__file__).parent / "data" / "formats"
PSP_OPTS = {
    "encoder_type": "GradualStyleEncoder",
    "input_nc": 3,
    "label_nc": 0,
    "output_size": 1024,
    "learn_in_w": False,
    "start_from_latent_avg": True,
    "n_styles": 18,
    "device": "cuda:0",
}
E4E_OPTS = {
    "encoder_type": "Encoder4Editing",
    "stylegan_size": 1024,
    "start_from_latent_avg": True,
    "progressive_steps": [0, 20000],
    "device": "cuda:0",
}


def _manifest(name: str) -> dict:
    return json.loads((FORMATS / name).read_text())


def _entries(name: str) -> list[dict]:
    return _manifest(name)["state_dicts"]["pSp"]["entries"]


def _line(key: str, shape, dtype) -> str:
    return f"{key}|{list(shape)}|{str(dtype).removeprefix('torch.')}\n"


def _random_tensor(entry: dict, gen: torch.Generator) -> torch.Tensor:
    """Random values of the manifest's shape/dtype, scaled so 24 residual units stay finite."""
    shape, module, leaf = entry["shape"], entry["module"], entry["key"].rsplit(".", 1)[1]
    if entry["dtype"] == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    if module == "Conv2d" and leaf == "weight":  # unit variance over fan-in (uniform: cheaper)
        bound = math.sqrt(3 / math.prod(shape[1:]))
        return torch.empty(shape).uniform_(-bound, bound, generator=gen)
    if module == "BatchNorm2d" and leaf == "running_var":
        return torch.rand(shape, generator=gen) + 0.5
    if module == "BatchNorm2d" and leaf == "weight":
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    if module == "PReLU":
        return 0.25 + 0.05 * torch.randn(shape, generator=gen)
    if module == "EqualLinear" and leaf == "weight":
        return torch.randn(shape, generator=gen)  # raw N(0, 1); scaled by 1/√512 at run time
    return 0.1 * torch.randn(shape, generator=gen)


def _zero_head(encoder: Encoder, i: int) -> None:
    """Zero head i's EqualLinear with new tensors (the loaded ones are shared with the fixture)."""
    linear = encoder.encoder.styles[i].linear
    linear.weight = nn.Parameter(torch.zeros_like(linear.weight), requires_grad=False)
    linear.bias = nn.Parameter(torch.zeros_like(linear.bias), requires_grad=False)


def _subset(state: dict, n_heads: int) -> dict:
    """The full random encoder with only heads 0..n_heads-1 (same shapes for a smaller model)."""
    keep = {f"encoder.styles.{i}." for i in range(n_heads)}
    return {
        k: v
        for k, v in state.items()
        if not k.startswith("encoder.styles.") or any(k.startswith(p) for p in keep)
    }


@pytest.fixture(scope="module")
def state() -> dict:
    """A full-size random ``encoder.*`` state dict (267 M numbers), in manifest order."""
    gen = torch.Generator().manual_seed(0)
    return {
        e["key"]: _random_tensor(e, gen)
        for e in _entries("psp_ffhq_encode.json")
        if e["key"].startswith("encoder.")
    }


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1


class Recorder:
    """Forward hooks: outputs of body units and heads, inputs of heads, lateral conv outputs."""

    def __init__(self, net: nn.Module) -> None:
        self.out: dict[str, torch.Tensor] = {}
        self.head_in: dict[int, torch.Tensor] = {}
        self.handles = []
        for i in (6, 20, 23):
            self._hook(net.body[i], f"body{i}")
        for name in ("latlayer1", "latlayer2"):
            self._hook(getattr(net, name), name)
        for i, head in enumerate(net.styles):
            self._hook(head, f"head{i}")
            self.handles.append(
                head.register_forward_pre_hook(lambda m, a, i=i: self.head_in.__setitem__(i, a[0]))
            )

    def _hook(self, module: nn.Module, name: str) -> None:
        self.handles.append(
            module.register_forward_hook(lambda m, a, o: self.out.__setitem__(name, o.detach()))
        )

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@pytest.fixture(scope="module")
def psp(state) -> Encoder:
    """pSp with distinct latent_avg rows and head 5's linear zeroed."""
    latent_avg = torch.randn(18, 512, generator=torch.Generator().manual_seed(2))
    encoder = load_encoder({"state_dict": state, "opts": dict(PSP_OPTS), "latent_avg": latent_avg})
    _zero_head(encoder, 5)
    return encoder


@pytest.fixture(scope="module")
def psp_run(psp, image):
    rec = Recorder(psp.encoder)
    w = psp.encode(image)
    rec.remove()
    return w, rec


# --- the layout contract -----------------------------------------------------------------------


def test_psp_and_e4e_manifests_share_one_layout_and_digest_format():
    psp_m, e4e_m = _manifest("psp_ffhq_encode.json"), _manifest("e4e_ffhq_encode.json")
    assert _entries("psp_ffhq_encode.json") == _entries("e4e_ffhq_encode.json")
    for m in (psp_m, e4e_m):
        lines = "".join(
            _line(e["key"], e["shape"], e["dtype"]) for e in m["state_dicts"]["pSp"]["entries"]
        )
        assert hashlib.sha256(lines.encode()).hexdigest() == m["layout_digest_sha256"]["pSp"]


@pytest.mark.parametrize("cls", [GradualStyleEncoder, Encoder4Editing])
def test_module_state_dict_reproduces_manifest_layout_digest(cls):
    manifest = _manifest("psp_ffhq_encode.json")
    entries = manifest["state_dicts"]["pSp"]["entries"]
    with torch.device("meta"):
        net = cls(18)
    ours = [_line(f"encoder.{k}", t.shape, t.dtype) for k, t in net.state_dict().items()]
    theirs = [
        _line(e["key"], e["shape"], e["dtype"]) for e in entries if e["key"].startswith("encoder.")
    ]
    assert ours == theirs  # keys, order, shapes, dtypes: 621 lines
    assert len(ours) == manifest["counts"]["encoder_entries"] == 621
    decoder = [
        _line(e["key"], e["shape"], e["dtype"]) for e in entries if e["key"].startswith("decoder.")
    ]
    digest = hashlib.sha256("".join(ours + decoder).encode()).hexdigest()
    assert digest == manifest["layout_digest_sha256"]["pSp"]
    assert (
        sum(t.numel() for t in net.state_dict().values()) == manifest["counts"]["encoder_elements"]
    )


def test_module_kinds_and_facts_match_manifest():
    with torch.device("meta"):
        net = GradualStyleEncoder(18)
    params = dict(net.named_parameters())
    modules = dict(net.named_modules())
    for e in _entries("psp_ffhq_encode.json"):
        if not e["key"].startswith("encoder."):
            continue
        key = e["key"][len("encoder.") :]
        assert (key in params) == (e["kind"] == "parameter"), key
        module, facts = modules[key.rsplit(".", 1)[0]], e.get("module_facts", {})
        expected = {
            "Conv2d": nn.Conv2d,
            "BatchNorm2d": nn.BatchNorm2d,
            "PReLU": nn.PReLU,
            "EqualLinear": EqualLinear,
        }[e["module"]]
        assert isinstance(module, expected), key
        if e["module"] == "Conv2d":
            assert (
                list(module.stride) == facts["stride"] and list(module.padding) == facts["padding"]
            )
            assert (module.bias is not None) == facts["bias"], key
        elif e["module"] == "BatchNorm2d":
            assert module.eps == facts["eps"], key
        elif e["module"] == "EqualLinear":
            assert module.lr_mul == facts["lr_mul"] and module.scale == 1 / math.sqrt(512)


@pytest.mark.parametrize("opts,kind", [(PSP_OPTS, "psp"), (E4E_OPTS, "e4e")])
def test_full_checkpoint_loads_strictly(state, opts, kind):
    latent_avg = torch.randn(18, 512)
    enc = load_encoder({"state_dict": state, "opts": dict(opts), "latent_avg": latent_avg})
    assert isinstance(enc.encoder, GradualStyleEncoder if kind == "psp" else Encoder4Editing)
    assert (enc.kind, enc.n_styles, enc.input_size) == (kind, 18, 256)
    loaded = enc.state_dict()  # exactly the checkpoint's encoder.* keys, same storage
    assert list(loaded) == list(state)
    assert all(loaded[k].data_ptr() == state[k].data_ptr() for k in state)  # no copy
    assert torch.equal(enc.latent_avg, latent_avg)
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


# --- what the network computes -----------------------------------------------------------------


def test_feature_taps_have_the_specified_shapes(psp_run):
    _, rec = psp_run
    assert rec.out["body6"].shape == (1, 128, 64, 64)  # c1
    assert rec.out["body20"].shape == (1, 256, 32, 32)  # c2
    assert rec.out["body23"].shape == (1, 512, 16, 16)  # c3


def test_psp_rows_come_from_their_own_heads(psp, psp_run):
    w, rec = psp_run
    assert w.shape == (1, 18, 512) and torch.isfinite(w).all()
    for i in range(18):
        torch.testing.assert_close(w[0, i], rec.out[f"head{i}"][0] + psp.latent_avg[i])
    assert torch.equal(w[0, 5], psp.latent_avg[5])  # head 5 zeroed → the latent_avg row
    codes = w[0] - psp.latent_avg
    assert codes[[0, 1, 2, 3, 4, 6, 7, 17]].abs().mean(dim=1).min() > 0.05  # the others are not


def test_heads_read_c3_p2_p1_built_with_align_corners(psp_run):
    _, rec = psp_run
    c3 = rec.out["body23"]

    def up(x, size, align_corners):
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=align_corners)

    p2 = up(c3, 32, True) + rec.out["latlayer1"]
    p1 = up(p2, 64, True) + rec.out["latlayer2"]
    for i, expected in [(0, c3), (2, c3), (3, p2), (6, p2), (7, p1), (17, p1)]:
        torch.testing.assert_close(rec.head_in[i], expected, rtol=1e-5, atol=1e-5)
    # the test has teeth: align_corners=False gives a visibly different pyramid
    p2_false = up(c3, 32, False) + rec.out["latlayer1"]
    assert (rec.head_in[3] - p2_false).abs().max() > 1e-2


def test_e4e_adds_per_row_deltas_to_head_0(state, image):
    enc = load_encoder(
        {"state_dict": state, "opts": dict(E4E_OPTS), "latent_avg": torch.randn(512)}
    )
    for i in (4, 12):
        _zero_head(enc, i)
    rec = Recorder(enc.encoder)
    w = enc.encode(image)
    rec.remove()
    avg = enc.latent_avg
    assert torch.equal(avg, avg[:1].expand(18, 512))  # a (512,) latent_avg fills every row
    base = rec.out["head0"][0]
    torch.testing.assert_close(w[0, 0], base + avg[0])
    for i in range(1, 18):
        torch.testing.assert_close(w[0, i], base + rec.out[f"head{i}"][0] + avg[i])
    for i in (4, 12):  # zeroed delta heads: the row is head 0 + latent_avg
        torch.testing.assert_close(w[0, i], w[0, 0])
    assert (w[0, 1] - w[0, 0]).abs().mean() > 0.05
    assert rec.head_in[3].shape[-1] == 32 and rec.head_in[7].shape[-1] == 64


def test_train_mode_changes_nothing_and_raw_codes_skip_latent_avg(psp, psp_run, image):
    """One forward for two facts: BN keeps running statistics after .train(), and without
    start_from_latent_avg the codes come back without latent_avg."""
    w, _ = psp_run
    raw = Encoder(
        psp.encoder,
        kind="psp",
        opts=psp.opts,
        latent_avg=psp.latent_avg,
        start_from_latent_avg=False,
    )  # shares psp's network
    bn = psp.encoder.body[3].res_layer[0]
    before = bn.running_mean.clone()
    raw.train()
    try:
        assert psp.encoder.training and bn.training
        codes = raw.encode(image)
    finally:
        raw.eval()
    torch.testing.assert_close(codes, w - psp.latent_avg)  # same as the eval-mode run
    assert torch.equal(bn.running_mean, before) and bn.num_batches_tracked.item() == 0


def test_fast_path_matches_reference(psp, psp_run, image):
    """bf16 autocast + channels-last: W+ within 5e-2 relative (L2) of the fp32 reference on
    these random weights (measured ≈1.3e-2 on this CPU)."""
    w, _ = psp_run
    fast = psp.encode(image, impl="fast")
    assert fast.dtype == torch.float32 and fast.shape == w.shape
    codes = w - psp.latent_avg
    assert ((fast - w).norm() / codes.norm()).item() < 5e-2
    with pytest.raises(InputError, match="impl"):
        psp.encode(image, impl="bf16")


def test_fast_path_keeps_bf16_conv_weights_with_autocast_s_rounding(psp, image):
    """The fast path's kept bf16 conv weights give what casting them on every call gives, bit
    for bit, and are remade when a weight changes in place."""
    fast = psp.encode(image, impl="fast")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = psp.encoder(image.contiguous(memory_format=torch.channels_last)).float() + psp.latent_avg
    assert torch.equal(fast, plain)
    weight = psp.encoder.input_layer[0].weight
    with torch.no_grad():
        weight.mul_(2)  # exact, and undone exactly below
    try:
        assert not torch.equal(psp.encode(image, impl="fast"), fast)
    finally:
        with torch.no_grad():
            weight.div_(2)
    assert torch.equal(psp.encode(image, impl="fast"), fast)


def test_encode_rejects_unpreprocessed_images(psp):
    with pytest.raises(InputError, match="preprocess"):
        psp.encode(torch.zeros(1, 3, 128, 128))


# --- the blocks, derived by hand ---------------------------------------------------------------


def _randomize(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand(t.shape, generator=gen) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=gen) * 0.5
                )


def _bn(x, bn):
    shape = (1, -1, 1, 1)
    return (x - bn.running_mean.view(shape)) / torch.sqrt(
        bn.running_var.view(shape) + 1e-5
    ) * bn.weight.view(shape) + bn.bias.view(shape)


@pytest.mark.parametrize("cin,depth,stride", [(16, 32, 2), (32, 32, 2), (32, 32, 1)])
def test_bottleneck_ir_se_by_hand(cin, depth, stride):
    unit = BottleneckIRSE(cin, depth, stride).double()
    _randomize(unit, seed=cin + depth + stride)
    unit.train()  # must not matter
    x = torch.randn(2, cin, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sd = unit.state_dict()
    bn0, bn4 = unit.res_layer[0], unit.res_layer[4]
    r = _bn(x, bn0)
    r = F.conv2d(r, sd["res_layer.1.weight"], padding=1)
    a = sd["res_layer.2.weight"].view(1, -1, 1, 1)
    r = torch.where(r > 0, r, a * r)
    r = F.conv2d(r, sd["res_layer.3.weight"], stride=stride, padding=1)
    r = _bn(r, bn4)
    s = r.mean(dim=(2, 3))  # B C
    s = torch.relu(s @ sd["res_layer.5.fc1.weight"][:, :, 0, 0].T)  # B C/16
    s = torch.sigmoid(s @ sd["res_layer.5.fc2.weight"][:, :, 0, 0].T)
    r = r * s[:, :, None, None]
    if cin == depth:
        shortcut = x[:, :, ::stride, ::stride]
    else:
        shortcut = F.conv2d(x, sd["shortcut_layer.0.weight"], stride=stride)
        shortcut = _bn(shortcut, unit.shortcut_layer[1])
    torch.testing.assert_close(unit(x), r + shortcut, rtol=0, atol=1e-5)


def test_gradual_style_block_by_hand():
    block = GradualStyleBlock(8, 32, spatial=8).double()
    assert list(block.state_dict()) == [
        "convs.0.weight",
        "convs.0.bias",
        "convs.2.weight",
        "convs.2.bias",
        "convs.4.weight",
        "convs.4.bias",
        "linear.weight",
        "linear.bias",
    ]
    _randomize(block, seed=7)
    x = torch.randn(3, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    sd = block.state_dict()

    def by_hand(slope):
        h = x
        for i in (0, 2, 4):
            h = F.conv2d(h, sd[f"convs.{i}.weight"], sd[f"convs.{i}.bias"], stride=2, padding=1)
            h = torch.where(h > 0, h, slope * h)
        assert h.shape == (3, 32, 1, 1)
        return h.flatten(1) @ (sd["linear.weight"] / math.sqrt(32)).T + sd["linear.bias"]

    out = block(x)
    torch.testing.assert_close(out, by_hand(0.01), rtol=0, atol=1e-5)
    assert (out - by_hand(0.2)).abs().max() > 1e-3  # StyleGAN's 0.2 would be caught


def test_generator_is_the_checkpoints_own_decoder(state):
    """A 256-px e4e (14 W+ rows) with the stylegan2_256 decoder layout, built lazily."""
    gen = torch.Generator().manual_seed(6)
    entries = _manifest("stylegan2_256.json")["state_dicts"]["generator"]["entries"]
    decoder = {
        f"decoder.{e['key']}": (
            torch.tensor(e["constant"])
            if "constant" in e
            else 0.5 * torch.randn(e["shape"], generator=gen)
        )
        for e in entries
    }
    avg = torch.randn(512, generator=gen)
    enc = load_encoder(
        {
            "state_dict": {**_subset(state, 14), **decoder},
            "opts": {**E4E_OPTS, "stylegan_size": 256},
            "latent_avg": avg,
        }
    )
    assert not any(k.startswith("decoder.") for k in enc.state_dict())  # not built yet
    generator = enc.generator
    assert generator is enc.generator and generator.n_latent == enc.n_styles == 14
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())
    keys = [k for k in enc.state_dict() if k.startswith("decoder.")]
    assert keys == list(decoder)  # the checkpoint's layout, now whole: encoder.* then decoder.*
    assert all(torch.equal(enc.state_dict()[k], decoder[k]) for k in keys)
    torch.testing.assert_close(generator.latent_avg, avg.expand(14, 512))
    image = generator.synthesize(enc.latent_avg[None], noise="const")
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()
    with pytest.raises(InputError, match="no decoder"):
        load_encoder(
            {
                "state_dict": _subset(state, 2),
                "opts": {**E4E_OPTS, "stylegan_size": 4},
                "latent_avg": avg,
            }
        ).generator


# --- loading: detection, opts, errors ----------------------------------------------------------


def test_kind_detection(state):
    small = _subset(state, 2)  # 2 heads: a 4-px "generator", cheap to build
    psp_opts = {
        "encoder_type": "GradualStyleEncoder",
        "output_size": 4,
        "start_from_latent_avg": False,
    }
    e4e_opts = {
        "encoder_type": "Encoder4Editing",
        "stylegan_size": 4,
        "start_from_latent_avg": False,
    }
    assert load_encoder({"state_dict": small, "opts": psp_opts}).kind == "psp"
    assert load_encoder({"state_dict": small, "opts": e4e_opts}).kind == "e4e"
    # without encoder_type: fields only one training code writes decide
    no_type = {k: v for k, v in e4e_opts.items() if k != "encoder_type"}
    assert load_encoder({"state_dict": small, "opts": no_type}).kind == "e4e"
    enc = load_encoder(
        {"state_dict": small, "opts": {"output_size": 4}, "latent_avg": torch.zeros(512)}
    )
    assert enc.kind == "psp" and enc.start_from_latent_avg  # absent flag: follow latent_avg
    with pytest.raises(InputError, match="cannot tell pSp from e4e.*kind='psp'"):
        load_encoder({"state_dict": small, "latent_avg": torch.zeros(2, 512)})
    ok = load_encoder(
        {"state_dict": small, "latent_avg": torch.zeros(2, 512), "opts": {"stylegan_size": 4}},
        kind="e4e",
    )
    assert isinstance(ok.encoder, Encoder4Editing) and ok.n_styles == 2
    with pytest.raises(InputError, match="encoder_type"):
        load_encoder({"state_dict": small, "opts": psp_opts}, kind="e4e")
    with pytest.raises(InputError, match="BackboneEncoderUsingLastLayerIntoWPlus"):
        load_encoder(
            {
                "state_dict": small,
                "opts": {"encoder_type": "BackboneEncoderUsingLastLayerIntoWPlus"},
            }
        )


def test_old_psp_opts_default_to_1024_and_not_learn_in_w(state):
    old = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "start_from_latent_avg": True}
    enc = load_encoder({"state_dict": state, "opts": old, "latent_avg": torch.zeros(18, 512)})
    assert (enc.opts["output_size"], enc.opts["learn_in_w"], enc.n_styles) == (1024, False, 18)
    assert "output_size" not in old  # the caller's dict is not modified
    with pytest.raises(InputError, match="2 map2style heads.*output_size=1024"):
        load_encoder({"state_dict": _subset(state, 2), "opts": old, "latent_avg": torch.zeros(512)})


def test_opts_vsode_cannot_run_are_refused(state):
    small = _subset(state, 2)
    psp4 = {**PSP_OPTS, "output_size": 4, "n_styles": 2, "start_from_latent_avg": False}
    with pytest.raises(InputError, match="learn_in_w=True"):
        load_encoder({"state_dict": small, "opts": {**psp4, "learn_in_w": True}})
    with pytest.raises(InputError, match="input_nc=19.*RGB"):
        load_encoder({"state_dict": small, "opts": {**psp4, "input_nc": 19}})


def test_n_styles_follows_the_heads_and_must_agree_with_opts(state):
    small = _subset(state, 14)  # a 256-px generator has 14 W+ rows
    enc = load_encoder(
        {
            "state_dict": small,
            "latent_avg": torch.zeros(512),
            "opts": {**E4E_OPTS, "stylegan_size": 256},
        }
    )
    assert enc.n_styles == 14 and enc.latent_avg.shape == (14, 512)
    assert [len(h.convs) // 2 for h in enc.encoder.styles] == [4] * 3 + [5] * 4 + [6] * 7
    with pytest.raises(InputError, match="14 map2style heads"):
        load_encoder({"state_dict": small, "opts": dict(PSP_OPTS), "latent_avg": torch.zeros(512)})


@pytest.mark.parametrize("shape", ["18x512", "1x512", "512"])
def test_latent_avg_shapes(state, shape):
    avg = torch.randn(512, generator=torch.Generator().manual_seed(5))
    given = {"18x512": avg.repeat(18, 1), "1x512": avg[None], "512": avg}[shape]
    enc = load_encoder({"state_dict": state, "opts": dict(PSP_OPTS), "latent_avg": given})
    assert torch.equal(enc.latent_avg, avg.expand(18, 512))  # what encode() adds row by row


def test_bad_latent_avg_and_missing_latent_avg(state):
    with pytest.raises(InputError, match=r"latent_avg has shape \(17, 512\)"):
        load_encoder(
            {"state_dict": state, "opts": dict(PSP_OPTS), "latent_avg": torch.zeros(17, 512)}
        )
    with pytest.raises(InputError, match="no latent_avg"):
        load_encoder({"state_dict": state, "opts": dict(PSP_OPTS)})


def test_unknown_layouts_name_the_keys_found(state):
    w_encoder = {
        "encoder.input_layer.0.weight": torch.zeros(64, 3, 3, 3),
        "encoder.output_layer_2.0.weight": torch.zeros(512),
        "encoder.linear.weight": torch.zeros(1),  # shapes do not matter: rejected by module names
    }
    with pytest.raises(InputError, match="output_layer_2.*linear|linear.*output_layer_2"):
        load_encoder({"state_dict": w_encoder, "opts": dict(PSP_OPTS)})
    with pytest.raises(InputError, match="generator.*g_ema, latent_avg"):
        load_encoder({"g_ema": {}, "latent_avg": torch.zeros(512)})
    with pytest.raises(InputError, match="no encoder.\\* keys.*conv1.conv.weight"):
        load_encoder({"state_dict": {"conv1.conv.weight": torch.zeros(1)}, "opts": dict(PSP_OPTS)})
    bad = dict(state)
    bad["encoder.latlayer1.weight"] = torch.zeros(512, 128, 1, 1)
    with pytest.raises(
        InputError,
        match=r"wrong shapes 'latlayer1.weight' \(512, 128, 1, 1\) \(expected \(512, 256, 1, 1\)\)",
    ):
        load_encoder({"state_dict": bad, "opts": dict(PSP_OPTS), "latent_avg": torch.zeros(512)})
    del bad["encoder.body.7.res_layer.0.running_var"]
    bad["encoder.body.7.res_layer.0.running_variance"] = torch.ones(128)
    with pytest.raises(
        InputError,
        match=r"missing keys 'body.7.res_layer.0.running_var'; unknown keys "
        r"'body.7.res_layer.0.running_variance'",
    ):
        load_encoder({"state_dict": bad, "opts": dict(PSP_OPTS), "latent_avg": torch.zeros(512)})
    extra = {**_subset(state, 2), "encoder.styles.3.linear.bias": torch.zeros(512)}
    with pytest.raises(InputError, match=r"styles\.\* .*\[0, 1, 3\]"):
        load_encoder({"state_dict": extra, "opts": {**E4E_OPTS, "stylegan_size": 4}})


class NotAllowed:
    pass


def test_load_from_path(state, tmp_path):
    small = _subset(state, 2)
    path = tmp_path / "e4e_small.pt"
    opts = {**E4E_OPTS, "stylegan_size": 4}
    torch.save({"state_dict": small, "opts": opts, "latent_avg": torch.ones(2, 512)}, path)
    enc = load_encoder(path)
    assert enc.kind == "e4e" and enc.n_styles == 2
    assert torch.equal(
        enc.state_dict()["encoder.body.0.res_layer.1.weight"],
        small["encoder.body.0.res_layer.1.weight"],
    )
    with pytest.raises(InputError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {}, "opts": NotAllowed()}, unsafe)
    with pytest.raises(UnsafeCheckpointError):
        load_encoder(str(unsafe))


# --- preprocessing -----------------------------------------------------------------------------


def test_preprocess_matches_the_reference_pil_pipeline():
    PIL = pytest.importorskip("PIL.Image")
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    # a smooth image with detail: gradients plus noise, 300×280 (downscale, as for real crops)
    yy, xx = np.mgrid[0:300, 0:280]
    img = np.stack([xx * 0.8, yy * 0.7, (xx + yy) * 0.4], -1) + rng.normal(0, 20, (300, 280, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    reference = transforms.Compose(
        [
            transforms.Resize((256, 256)),
            transforms.ToTensor(),
            transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ]
    )(PIL.fromarray(img))
    ours = preprocess(img)
    assert ours.shape == (1, 3, 256, 256) and ours.dtype == torch.float32
    diff = (ours[0] - reference).abs()
    level = 2 / 255  # one 8-bit level in [-1, 1]
    assert diff.max() <= level + 1e-6 and (diff > 1e-6).float().mean() < 0.01
    # also upscaling, channels-first uint8 tensors and a PIL image
    small = img[:100, :90]
    ref_small = transforms.Compose(
        [
            transforms.Resize((256, 256)),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )(PIL.fromarray(small))
    ours_small = preprocess(torch.from_numpy(small).permute(2, 0, 1))
    assert (ours_small[0] - ref_small).abs().max() <= level + 1e-6
    torch.testing.assert_close(preprocess(PIL.fromarray(small)), ours_small)


def test_preprocess_float_and_identity_size():
    x = torch.rand(2, 256, 256, 3)
    out = preprocess(x)
    assert out.shape == (2, 3, 256, 256)
    torch.testing.assert_close(out, x.permute(0, 3, 1, 2) * 2 - 1)
    u8 = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    torch.testing.assert_close(preprocess(u8)[0], u8.float() / 127.5 - 1)
    with pytest.raises(InputError, match="RGB"):
        preprocess(torch.zeros(2, 4, 64, 64))
