"""The StyleGAN2 generator: the checkpoint layout contract (manifests), the loader's choices, the
arithmetic against hand re-derivations, and the fast path held to the reference."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsode.errors import InputError
from vsode.ops import EqualLinear
from vsode.stylegan2 import Generator, ModulatedConv2d, ToRGB, load_generator, strip_prefix

FORMATS = Path(__file__).parent / "data" / "formats"
TINY = dict(style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=16)


def manifest(name: str) -> dict:
    return json.loads((FORMATS / name).read_text())


def state_from_manifest(m: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with exactly each entry's key, shape and dtype; the constant kernels."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for e in m["state_dicts"]["generator"]["entries"]:
        dtype = getattr(torch, e["dtype"])
        if "constant" in e:
            out[e["key"]] = torch.tensor(e["constant"], dtype=dtype)
        else:
            out[e["key"]] = torch.randn(e["shape"], generator=g).to(dtype)
    return out


def layout_digest(state: dict[str, torch.Tensor]) -> str:
    lines = "".join(f"{k}|{list(v.shape)}|{str(v.dtype).removeprefix('torch.')}\n" for k, v in state.items())
    return hashlib.sha256(lines.encode()).hexdigest()


def randomize(g: Generator, seed: int = 0) -> Generator:
    """Non-trivial values where the reference init has zeros or ones (noise strengths, biases)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.4 + 0.1)
            elif name.endswith("activate.bias") or re.fullmatch(r"to_rgb(1|s\.\d+)\.bias", name):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif name.endswith("modulation.bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return g


def tiny(size=32, seed=0, **kw) -> Generator:
    torch.manual_seed(seed)
    return randomize(Generator(size, **{**TINY, **kw}), seed).eval()


def psnr(ref: torch.Tensor, other: torch.Tensor) -> float:
    """PSNR with the reference's own peak-to-peak range as the peak."""
    mse = (ref.double() - other.double()).pow(2).mean().item()
    span = (ref.max() - ref.min()).item()
    return 10 * math.log10(span**2 / mse)


# --------------------------------------------------------------------------------------------
# the layout contract
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,size", [("stylegan2_ffhq_1024.json", 1024), ("stylegan2_256.json", 256)])
def test_state_dict_reproduces_the_manifest_digest(name, size):
    m = manifest(name)
    torch.manual_seed(0)
    g = Generator(size)
    sd = g.state_dict()
    entries = m["state_dicts"]["generator"]["entries"]
    assert [k for k in sd] == [e["key"] for e in entries]
    assert layout_digest(sd) == m["layout_digest_sha256"]["generator"]
    arch = m["architecture"]
    assert g.n_latent == arch["n_latent"]
    assert g.num_layers == arch["num_layers (noise maps, styled convs)"]
    assert {str(k): v for k, v in g.channels.items()} == arch["channels"]
    assert [list(s) for s in g.noise_shapes()] == list(arch["noise_shapes"].values())
    for e in entries:
        if "constant" in e:
            assert torch.equal(sd[e["key"]], torch.tensor(e["constant"])), e["key"]


@pytest.mark.parametrize("name", ["stylegan2_ffhq_1024.json", "stylegan2_256.json"])
def test_manifest_checkpoints_load_strictly(name):
    m = manifest(name)
    arch = m["architecture"]
    sd = state_from_manifest(m)
    latent_avg = torch.randn(512)
    g = load_generator({"g_ema": sd, "latent_avg": latent_avg})
    assert g.resolution == g.size == g.width == arch["constructor"]["size"]
    assert g.n_latent == arch["n_latent"] and g.style_dim == 512
    assert g.config["channel_multiplier"] == 2 and g.config["n_mlp"] == 8
    assert torch.equal(g.latent_avg, latent_avg)
    loaded = g.state_dict()
    assert list(loaded) == list(sd)
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    assert not g.training


def test_256_forward_fast_matches_reference():
    """One real-layout forward (256 px, config-f channels): both weight and activation
    modulation branches run at real sizes."""
    sd = state_from_manifest(manifest("stylegan2_256.json"), seed=1)
    for k in sd:  # the converted-file magnitudes: mapping ~1/lr_mul, modulation bias ~1
        if k.startswith("style.") and k.endswith("weight"):
            sd[k] = sd[k] * 100
        elif k.endswith("modulation.bias"):
            sd[k] = sd[k] * 0.1 + 1
        elif (
            k.endswith("noise.weight") or k.endswith("activate.bias") or k.endswith(".bias") and "to_rgb" in k
        ):
            sd[k] = sd[k] * 0.1
    g = load_generator(sd)
    w = g.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        ref = g.synthesize(w, impl="reference")
        fast = g.synthesize(w, impl="fast")
        bf16 = g.synthesize(w, impl="fast", dtype=torch.bfloat16)
    assert ref.shape == (1, 3, 256, 256)
    assert (fast - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert psnr(ref, bf16) >= 40


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def test_key_choice_is_explicit():
    a, b = tiny(seed=1), tiny(seed=2)
    ckpt = {"g": a.state_dict(), "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": b.state_dict()}
    default = load_generator(ckpt)
    assert torch.equal(default.input.input, b.input.input)  # g_ema, not the first key
    raw = load_generator(ckpt, key="g")
    assert torch.equal(raw.input.input, a.input.input)
    assert default.latent_avg is None
    with pytest.raises(InputError, match="key='g'"):
        load_generator({"g": a.state_dict(), "d": {}})  # never silently the non-EMA weights


def test_unknown_layout_names_the_keys_found():
    with pytest.raises(InputError) as err:
        load_generator({"generator": {}, "step": 3, "optim": {}})
    assert "'generator'" in str(err.value) and "'step'" in str(err.value) and "'optim'" in str(err.value)
    with pytest.raises(InputError, match="missing"):
        load_generator({"conv1.conv.weight": torch.zeros(1), "foo": torch.zeros(1)})


def test_layout_mismatch_is_an_input_error():
    sd = tiny().state_dict()
    del sd["to_rgbs.0.bias"]
    with pytest.raises(InputError, match="to_rgbs.0.bias"):
        load_generator(sd)
    sd = tiny().state_dict()
    sd["convs.1.noise.weight"] = torch.zeros(2)
    with pytest.raises(InputError, match="wrong shape"):
        load_generator(sd)


def test_bare_state_dict_path_and_prefix(tmp_path):
    g = tiny(seed=3)
    w = torch.randn(2, g.n_latent, 32)
    ref = g.synthesize(w)
    # a bare state dict
    assert torch.equal(load_generator(g.state_dict()).synthesize(w), ref)
    # a file, read with weights_only
    path = tmp_path / "g.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.randn(32)}, path)
    from_file = load_generator(path)
    assert torch.equal(from_file.synthesize(w), ref) and from_file.latent_avg.shape == (32,)
    # pSp/e4e: state_dict holds encoder.* then decoder.*; latent_avg is 18-row-like
    psp = {
        "state_dict": {
            "encoder.body.0.weight": torch.zeros(3),
            **{f"decoder.{k}": v for k, v in g.state_dict().items()},
        },
        "latent_avg": torch.randn(g.n_latent, 32),
        "opts": {"output_size": 32},
    }
    with pytest.raises(InputError, match="prefix='decoder.'"):
        load_generator(psp)
    dec = load_generator(psp, prefix="decoder.")
    assert torch.equal(dec.synthesize(w), ref) and dec.latent_avg.shape == (g.n_latent, 32)
    assert list(strip_prefix(psp["state_dict"], "decoder.")) == list(g.state_dict())
    with pytest.raises(InputError, match="encoder."):
        strip_prefix(psp["state_dict"], "generator.")


def test_architecture_is_inferred():
    for kw in (
        dict(size=64, channel_multiplier=1, channel_max=None, style_dim=16, n_mlp=3),
        dict(size=8, **TINY),
    ):
        kw = dict(kw)
        g = Generator(kw.pop("size"), **kw)
        back = load_generator(g.state_dict())
        assert back.channels == g.channels and back.n_latent == g.n_latent and back.style_dim == g.style_dim
        assert back.config["n_mlp"] == g.config["n_mlp"]
    capped = Generator(64, style_dim=16, n_mlp=1, channel_multiplier=0.25, channel_max=64)
    inferred = load_generator(capped.state_dict()).config
    assert (inferred["channel_multiplier"], inferred["channel_max"]) == (0.25, 64)


def test_non_square_generator():
    g = tiny((32, 16), seed=4)
    assert g.input.input.shape[2:] == (4, 2) and g.n_latent == tiny(32).n_latent
    assert [s[2:] for s in g.noise_shapes()][:3] == [(4, 2), (8, 4), (8, 4)]
    back = load_generator(g.state_dict())
    assert (back.resolution, back.width) == (32, 16) and back.config["size"] == [32, 16]
    w = torch.randn(3, g.n_latent, 32)
    with torch.no_grad():
        ref = back.synthesize(w, impl="reference")
        fast = back.synthesize(w, impl="fast")
    assert ref.shape == (3, 3, 32, 16)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="multiple"):
        Generator((32, 20), **TINY)


# --------------------------------------------------------------------------------------------
# arithmetic
# --------------------------------------------------------------------------------------------


def test_equal_linear_lr_multiplier_by_hand():
    torch.manual_seed(0)
    lin = EqualLinear(4, 3, bias_init=0.5, lr_mul=0.01, activation="fused_lrelu")
    assert lin.weight.abs().mean() > 10  # stored at 1/lr_mul scale
    x = torch.randn(2, 4)
    w = lin.weight.detach().double() * 0.01 / math.sqrt(4)
    z = x.double() @ w.t() + lin.bias.detach().double() * 0.01
    want = torch.where(z >= 0, z, 0.2 * z) * math.sqrt(2)
    torch.testing.assert_close(lin(x).double(), want, atol=1e-6, rtol=1e-6)
    plain = EqualLinear(4, 3, bias_init=1)  # the modulation: lr_mul 1, bias starts at 1
    assert torch.equal(plain.bias, torch.ones(3))
    torch.testing.assert_close(plain(x), x @ (plain.weight / 2).t() + 1)



def test_equal_linear_scales_the_weight_as_psp_does_when_asked():
    torch.manual_seed(0)
    lin = EqualLinear(6, 3, lr_mul=1)
    psp = EqualLinear(6, 3, lr_mul=1, scale_weight=True)
    psp.load_state_dict(lin.state_dict())  # the same keys and tensors: only the order of the product differs
    x = torch.randn(5, 6)
    assert torch.equal(psp(x), F.linear(x, psp.weight * psp.scale, psp.bias * psp.lr_mul))  # pSp's forward
    assert torch.equal(lin(x), F.linear(x * lin.scale, lin.weight, lin.bias))
    torch.testing.assert_close(psp(x), lin(x), atol=1e-6, rtol=1e-6)


def test_mapping_is_pixelnorm_then_mlp():
    g = tiny()
    z = torch.randn(5, 32) * 3
    x = z / torch.sqrt((z**2).mean(1, keepdim=True) + 1e-8)
    for layer in g.style[1:]:
        x = F.leaky_relu(
            x @ (layer.weight * layer.lr_mul / math.sqrt(32)).t() + layer.bias * layer.lr_mul, 0.2
        ) * math.sqrt(2)
    torch.testing.assert_close(g.mapping(z), x, atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError):
        g.mapping(torch.zeros(2, 31))


def test_truncation_formula_and_mean_latent():
    g = tiny()
    w = torch.randn(2, 32)
    wp = torch.randn(2, g.n_latent, 32)
    c = torch.randn(32)
    torch.testing.assert_close(g.truncate(w, 0.7, c), c + 0.7 * (w - c))
    for center in (c, c[None], c.expand(g.n_latent, 32), c.expand(1, g.n_latent, 32)):
        torch.testing.assert_close(g.truncate(wp, 0.5, center), c + 0.5 * (wp - c))
    assert g.truncate(w, 1, c) is w
    with pytest.raises(InputError, match="latent_avg"):
        g.truncate(w, 0.5)
    g.latent_avg = c
    torch.testing.assert_close(g.truncate(w, 0.5), c + 0.5 * (w - c))
    m1, m2, m3 = g.mean_latent(512, seed=1), g.mean_latent(512, seed=1), g.mean_latent(512, seed=2)
    assert m1.shape == (1, 32) and torch.equal(m1, m2) and not torch.equal(m1, m3)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_w_broadcasts_like_identical_wplus_rows(impl):
    g = tiny()
    w = torch.randn(3, 32)
    torch.testing.assert_close(
        g.synthesize(w, impl=impl),
        g.synthesize(w[:, None].repeat(1, g.n_latent, 1), impl=impl),
        atol=0,
        rtol=0,
    )
    with pytest.raises(InputError, match="B×32"):
        g.synthesize(torch.zeros(3, g.n_latent + 1, 32))


def expected_rows(g: Generator) -> dict[str, int]:
    """The formats README: row 0 → conv1, 1 → to_rgb1; block j: 2j+1, 2j+2 → convs, 2j+3 → to_rgbs[j]."""
    rows = {"conv1": 0, "to_rgb1": 1}
    for j in range(len(g.to_rgbs)):
        rows[f"convs.{2 * j}"], rows[f"convs.{2 * j + 1}"], rows[f"to_rgbs.{j}"] = (
            2 * j + 1,
            2 * j + 2,
            2 * j + 3,
        )
    return rows


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_each_wplus_row_reaches_exactly_its_layers(impl):
    g = tiny()
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.conv.modulation.register_forward_hook(
            lambda mod, inp, out, name=name: seen.__setitem__(name, inp[0].clone())
        )
        for name, m in g.named_modules()
        if name in expected_rows(g)
    ]
    base = torch.randn(2, g.n_latent, 32)
    g.synthesize(base, impl=impl)
    before = dict(seen)
    assert set(before) == set(expected_rows(g))
    for k in range(g.n_latent):
        w = base.clone()
        w[:, k] += 1.0
        g.synthesize(w, impl=impl)
        changed = {name for name in before if not torch.equal(before[name], seen[name])}
        assert changed == {name for name, row in expected_rows(g).items() if row == k}, k
    assert {n for n, r in expected_rows(g).items() if r == 1} == {"to_rgb1", "convs.0"}
    assert dict(g.layer_rows()) == expected_rows(g)
    for h in hooks:
        h.remove()


def test_noise_modes():
    g = tiny()
    w = torch.randn(2, g.n_latent, 32)
    const = g.synthesize(w, "const")
    assert torch.equal(const, g.synthesize(w, "const"))
    assert not torch.equal(g.synthesize(w, "random"), g.synthesize(w, "random"))
    seeded = [g.synthesize(w, "random", generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*seeded)
    buffers = [getattr(g.noises, f"noise_{i}") for i in range(g.num_layers)]
    assert torch.equal(g.synthesize(w, buffers), const)
    zeros = [torch.zeros_like(b) for b in buffers]
    torch.testing.assert_close(g.synthesize(w, "none"), g.synthesize(w, zeros))
    with pytest.raises(InputError, match="noise"):
        g.synthesize(w, "fixed")
    with pytest.raises(InputError, match="maps"):
        g.synthesize(w, buffers[:-1])
    # strength zero: the noise has no effect at all
    for m in g.modules():
        if type(m).__name__ == "NoiseInjection":
            m.weight.data.zero_()
    for impl in ("reference", "fast"):
        torch.testing.assert_close(
            g.synthesize(w, "random", impl=impl), g.synthesize(w, "none", impl=impl), atol=0, rtol=0
        )


def test_forward_follows_the_reference_call_convention():
    g = tiny()
    z = torch.randn(2, 32)
    img, latent = g([z], return_latents=True, randomize_noise=False)
    w = g.mapping(z)
    torch.testing.assert_close(latent, w[:, None].expand(-1, g.n_latent, -1))
    torch.testing.assert_close(img, g.synthesize(w, "const"))
    c = g.mean_latent(256)
    img_t, _ = g([w], input_is_latent=True, truncation=0.5, truncation_latent=c, randomize_noise=False)
    torch.testing.assert_close(img_t, g.synthesize(c + 0.5 * (w - c), "const"))
    z2 = torch.randn(2, 32)
    _, mixed = g([z, z2], inject_index=3, return_latents=True)
    torch.testing.assert_close(mixed[:, :3], w[:, None].expand(-1, 3, -1))
    torch.testing.assert_close(mixed[:, 3:], g.mapping(z2)[:, None].expand(-1, g.n_latent - 3, -1))


# --------------------------------------------------------------------------------------------
# an independent re-derivation of one styled conv and one ToRGB (float64, explicit taps)
# --------------------------------------------------------------------------------------------


def hand_styled_conv(layer, x, w_row, noise):
    """modulate → demodulate → (transposed) 3×3 conv → [blur] → + strength·noise → + bias → lrelu·√2."""
    conv = layer.conv
    x, w_row, noise = x.double(), w_row.double(), noise.double()
    mod = conv.modulation
    s = w_row @ (mod.weight.double() / math.sqrt(w_row.shape[1])).t() + mod.bias.double()  # B I
    cout, cin, k = conv.out_channel, conv.in_channel, conv.kernel_size
    wt = conv.weight.double()[0][None] / math.sqrt(cin * k * k) * s[:, None, :, None, None]  # B O I k k
    wt = wt / torch.sqrt((wt**2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    b, _, h, wd = x.shape
    if conv.upsample:
        full = torch.zeros(b, cout, 2 * h + 1, 2 * wd + 1, dtype=torch.float64)
        for ky in range(k):
            for kx in range(k):  # each input pixel scatters W[:, :, ky, kx]·x to (2y+ky, 2x+kx)
                full[:, :, ky : ky + 2 * h : 2, kx : kx + 2 * wd : 2] += torch.einsum(
                    "boi,biyx->boyx", wt[..., ky, kx], x
                )
        blur = conv.blur.kernel.double()
        padded = F.pad(full, [1, 1, 1, 1])
        out = torch.zeros(b, cout, 2 * h, 2 * wd, dtype=torch.float64)
        for a in range(4):
            for c in range(4):
                out += padded[:, :, a : a + 2 * h, c : c + 2 * wd] * blur[3 - a, 3 - c]
    else:
        padded = F.pad(x, [1, 1, 1, 1])
        out = torch.zeros(b, cout, h, wd, dtype=torch.float64)
        for ky in range(k):
            for kx in range(k):
                out += torch.einsum(
                    "boi,biyx->boyx", wt[..., ky, kx], padded[:, :, ky : ky + h, kx : kx + wd]
                )
    out = out + layer.noise.weight.double() * noise + layer.activate.bias.double().view(1, -1, 1, 1)
    return torch.where(out >= 0, out, 0.2 * out) * math.sqrt(2)


def hand_to_rgb(to_rgb, x, w_row, skip):
    x, w_row, skip = x.double(), w_row.double(), skip.double()
    mod = to_rgb.conv.modulation
    s = w_row @ (mod.weight.double() / math.sqrt(w_row.shape[1])).t() + mod.bias.double()
    wt = to_rgb.conv.weight.double()[0, :, :, 0, 0][None] / math.sqrt(x.shape[1]) * s[:, None, :]  # B 3 I
    out = torch.einsum("bci,biyx->bcyx", wt, x) + to_rgb.bias.double()
    b, c, h, w = skip.shape
    up = torch.zeros(b, c, 2 * h, 2 * w, dtype=torch.float64)
    up[:, :, ::2, ::2] = skip  # a zero after every sample
    up = F.pad(up, [2, 1, 2, 1])
    kernel = to_rgb.upsample.kernel.double()
    for a in range(4):
        for cc in range(4):
            out += up[:, :, a : a + 2 * h, cc : cc + 2 * w] * kernel[3 - a, 3 - cc]
    return out


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("batch", [1, 2])
def test_styled_conv_and_to_rgb_against_hand_derivation(impl, batch):
    g = tiny()
    gen = torch.Generator().manual_seed(9)
    for layer, side in ((g.convs[2], 8), (g.convs[3], 16)):  # an upsampling and a plain conv
        x = torch.randn(batch, layer.conv.in_channel, side, side, generator=gen)
        w_row = torch.randn(batch, 32, generator=gen)
        out_side = 16
        noise = torch.randn(1, 1, out_side, out_side, generator=gen)
        got = layer(x, w_row, noise, impl=impl)
        torch.testing.assert_close(
            got.double(), hand_styled_conv(layer, x, w_row, noise), atol=1e-5, rtol=1e-5
        )
    to_rgb = g.to_rgbs[1]
    x = torch.randn(batch, 16, 16, 16, generator=gen)
    w_row = torch.randn(batch, 32, generator=gen)
    skip = torch.randn(batch, 3, 8, 8, generator=gen)
    got = to_rgb(x, w_row, skip, impl=impl)
    torch.testing.assert_close(got.double(), hand_to_rgb(to_rgb, x, w_row, skip), atol=1e-5, rtol=1e-5)


def test_module_types_and_names():
    g = tiny()
    assert isinstance(g.convs[0].conv, ModulatedConv2d) and g.convs[0].conv.upsample
    assert isinstance(g.to_rgbs[0], ToRGB) and not hasattr(g.to_rgb1, "upsample")


# --------------------------------------------------------------------------------------------
# the fast path against the reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, (32, 16)])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_path_matches_reference(size, batch):
    g = tiny(size, seed=5)
    g.split_resolution = 16  # exercise the per-sample tail of a batch too
    w = g.mapping(torch.randn(batch, 32))[:, None] + 0.3 * torch.randn(batch, g.n_latent, 32)
    for noise in ("const", "random"):
        kw = dict(generator=torch.Generator().manual_seed(1)) if noise == "random" else {}
        with torch.no_grad():
            ref = g.synthesize(w, noise, impl="reference", **kw)
            fast = g.synthesize(w, noise, impl="fast", **{k: torch.Generator().manual_seed(1) for k in kw})
            bf16 = g.synthesize(
                w,
                noise,
                impl="fast",
                dtype=torch.bfloat16,
                **{k: torch.Generator().manual_seed(1) for k in kw},
            )
        assert fast.dtype == bf16.dtype == torch.float32 and fast.is_contiguous()
        assert (fast - ref).abs().max().item() <= 1e-4
        assert psnr(ref, bf16) >= 40


def test_autocast_selects_bf16_and_returns_float32():
    g = tiny()
    w = torch.randn(2, g.n_latent, 32)
    with torch.no_grad():
        explicit = g.synthesize(w, dtype=torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = g.synthesize(w)
            auto_ref = g.synthesize(w, impl="reference")
        ref = g.synthesize(w, impl="reference")
    assert auto.dtype == auto_ref.dtype == torch.float32
    torch.testing.assert_close(auto, explicit)
    assert psnr(ref, auto_ref) >= 35 and not torch.equal(auto_ref, ref)


@pytest.mark.parametrize("batch", [1, 2])
def test_gradients_through_the_fast_path(batch):
    g = tiny().requires_grad_(False)
    base = torch.randn(batch, g.n_latent, 32)
    grads = {}
    for impl in ("reference", "fast"):
        w = base.clone().requires_grad_(True)
        g.synthesize(w, impl=impl).square().mean().backward()
        grads[impl] = w.grad
    torch.testing.assert_close(grads["fast"], grads["reference"], atol=1e-5, rtol=1e-4)
