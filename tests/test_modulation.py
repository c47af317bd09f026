"""Modulation network and latent mapper: released layout, parameter counts, known answers.

Full-size modules are only built on the meta device (counts and key tables); everything that
computes uses small configs with randomised parameters, so the checks see non-trivial values
(position embeddings included, which the released init leaves at zero).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsode.errors import InputError
from vsode.modulation import (
    Block,
    CrossBlock,
    Mapper,
    MapperConfig,
    Modulation,
    ModulationConfig,
    ModulationModule,
    pixel_norm,
)

FORMATS = Path(__file__).parent / "data" / "formats"
RELEASED = json.loads((FORMATS / "vidstyleode_official_ravdess.json").read_text())["modules"]

SMALL = ModulationConfig(n_embd=32, n_head=4, n_self_layers=2, n_cross_layers=2, n_tokens=16, out_dim=24)
SMALL_MAPPER = MapperConfig(style_dim=16, cond_dim=24, groups=(4, 6, 8), n_modules=(2, 2, 2))

# sdpa (fast) vs the plain softmax formula (reference): float32 max abs error on outputs of
# size ~1, and float64.
TOL_F32 = 2e-5
TOL_F64 = 1e-12


def _randomise(module: nn.Module, seed: int = 0, std: float = 0.3) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


def _small(seed: int = 0, config: ModulationConfig = SMALL) -> Modulation:
    torch.manual_seed(seed)
    return _randomise(Modulation(config), seed).eval()


def _inputs(n: int = 3, hw: int = 12, cfg: ModulationConfig = SMALL, seed: int = 1, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    style = torch.randn(n, cfg.n_embd, generator=gen, dtype=dtype)
    tokens = torch.randn(n, hw, cfg.n_embd, generator=gen, dtype=dtype)
    return style, tokens


def _replace(cfg, **changes):
    return type(cfg).from_dict({**cfg.to_dict(), **changes})


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- layout and counts -------------------------------------------------------------------------


def test_parameter_counts_match_released():
    with torch.device("meta"):
        assert _n_params(Modulation(ModulationConfig())) == 53_398_016  # RAVDESS, 8×8 tokens
        assert _n_params(Modulation(ModulationConfig(n_tokens=48))) == 53_389_824  # Fashion, 8×6
        assert _n_params(Block(512, 8, 4)) == 3_152_384
        assert _n_params(CrossBlock(512, 8, 2)) == 2_103_808
        mapper = Mapper(MapperConfig())
        assert _n_params(mapper) == 22_360_576
        assert _n_params(ModulationModule(4, 512, 512)) == 1_315_328
        modules = [m for m in mapper.modules() if isinstance(m, ModulationModule)]
        assert len(modules) == 17 and all(_n_params(m) == 1_315_328 for m in modules)
    assert RELEASED["modulation_network"]["trainable_params"] == 53_398_016
    assert RELEASED["style_mapper"]["trainable_params"] == 22_360_576


@pytest.mark.parametrize(
    ("released", "build"),
    [
        ("modulation_network", lambda: Modulation(ModulationConfig())),
        ("style_mapper", lambda: Mapper(MapperConfig())),
    ],
)
def test_state_dict_equals_released_layout(released, build):
    with torch.device("meta"):
        module = build()
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()]
    ref = [(e["key"], e["shape"], e["dtype"]) for e in RELEASED[released]["entries"]]
    assert ours == ref  # same keys, shapes, dtypes and order
    assert all(e["kind"] == "parameter" for e in RELEASED[released]["entries"])
    assert not list(module.buffers())


def test_released_config_values_are_the_defaults():
    rel = RELEASED["modulation_network"]["config"]
    cfg = ModulationConfig()
    assert (cfg.n_embd, cfg.n_head, cfg.n_self_layers, cfg.n_cross_layers, cfg.n_tokens, cfg.out_dim) == (
        rel["n_embd"],
        rel["n_head"],
        rel["dyn_attn_n_layer"],
        rel["n_layer"],
        rel["dyn_block_size"],
        rel["out_dim"],
    )
    assert rel["content_block_size"] == 1 and rel["shared_attn_params"] is False
    rel = RELEASED["style_mapper"]["config"]
    mcfg = MapperConfig()
    assert list(mcfg.n_modules) == rel["num_of_layers"] and mcfg.cond_dim == rel["attr_vec_dims"][0]
    assert mcfg.groups == (4, 6, 8) and mcfg.delta_weight == 0.01


def test_initialisation():
    torch.manual_seed(0)
    cfg = ModulationConfig(n_embd=64, n_head=4, n_self_layers=2, n_cross_layers=2, n_tokens=8, out_dim=64)
    m = Modulation(cfg)
    assert not m.content_pos_emd.any() and not m.dyn_pos_emb.any()
    weights = []
    for mod in m.modules():
        if isinstance(mod, nn.Linear):
            weights.append(mod.weight.flatten())
            assert mod.bias is None or not mod.bias.any()
        elif isinstance(mod, nn.LayerNorm):
            assert torch.equal(mod.weight, torch.ones_like(mod.weight)) and not mod.bias.any()
    assert all(h.bias is None for h in m.head)
    std = torch.cat(weights).std().item()
    assert abs(std - 0.02) < 0.001
    # A wider start (init_std = 0.1): the same layout, Linear weights at std 0.1.
    wide = Modulation(dataclasses.replace(cfg, init_std=0.1))
    wide_std = torch.cat([mod.weight.flatten() for mod in wide.modules() if isinstance(mod, nn.Linear)]).std()
    assert abs(wide_std.item() - 0.1) < 0.005 and list(wide.state_dict()) == list(m.state_dict())
    # The mapper keeps PyTorch's default init: U(±1/√fan_in) weights, non-zero biases.
    mapper = Mapper(SMALL_MAPPER)
    fc = mapper.coarse_mapping.mapper.modulation_module_list[0].fc
    assert fc.weight.abs().max() <= 1 / math.sqrt(16) and fc.bias.abs().sum() > 0


# --- modulation network ------------------------------------------------------------------------


def _mha(attn, x, y):
    """torch's own multi-head attention with the block's weights: an independent reference."""
    out, _ = F.multi_head_attention_forward(
        x.transpose(0, 1), y.transpose(0, 1), y.transpose(0, 1), x.shape[-1], attn.n_head,
        None, torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]), None, None, False, 0.0,
        attn.proj.weight, attn.proj.bias, training=False, need_weights=False,
        use_separate_proj_weight=True, q_proj_weight=attn.query.weight,
        k_proj_weight=attn.key.weight, v_proj_weight=attn.value.weight,
    )
    return out.transpose(0, 1)


def _released_forward(m: Modulation, style, tokens):
    """Design §3.2 step by step, with torch's MHA."""
    s = style[:, None] + m.content_pos_emd
    y = tokens + m.dyn_pos_emb[:, : tokens.shape[1]]
    for b in m.slf_blocks:
        h = b.ln1(y)
        y = y + _mha(b.attn, h, h)
        y = y + b.mlp[2](F.gelu(b.mlp[0](b.ln2(y))))
    xs = [s, s]
    for pair in m.blocks:
        for i in range(2):
            b = pair[i]
            x = xs[i] + _mha(b.attn, b.x_ln1(xs[i]), b.y_ln1(y))
            xs[i] = x + b.mlp[2](F.gelu(b.mlp[0](b.ln2(x))))
    return [m.head[i](m.ln_f[i](x[:, 0])) for i, x in enumerate(xs + [s])]


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_forward_matches_released_formula(impl):
    m = _small().double()
    style, tokens = _inputs(dtype=torch.float64)
    with torch.no_grad():
        ours = m(style, tokens, impl=impl)
        ref = _released_forward(m, style, tokens)
    assert len(ours) == 3 and all(c.shape == (3, SMALL.out_dim) for c in ours)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_forward_is_attend_then_cross_and_style_shapes():
    m = _small()
    style, tokens = _inputs()
    with torch.no_grad():
        attended = m.attend(tokens)
        a = m(style, tokens)
        b = m.cross(style, attended)
        c = m.cross(style[:, None], attended)
    assert attended.shape == tokens.shape
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, TOL_F32), (torch.float64, TOL_F64)])
def test_sdpa_matches_reference(dtype, tol):
    m = _small().to(dtype)
    style, tokens = _inputs(dtype=dtype)
    fast = m(style, tokens, impl="fast")
    ref = m(style, tokens, impl="reference")
    auto = m(style, tokens)
    for f, r, a in zip(fast, ref, auto):
        assert (f - r).abs().max().item() <= tol
        assert torch.equal(f, a)  # "auto" is the fast path
    # Gradients agree too (training runs the fast path).
    gf = torch.autograd.grad(sum(c.square().sum() for c in fast), list(m.parameters()))
    gr = torch.autograd.grad(sum(c.square().sum() for c in ref), list(m.parameters()))
    scale = max(g.abs().max().item() for g in gr)
    assert max((a - b).abs().max().item() for a, b in zip(gf, gr)) <= tol * max(scale, 1.0)


def test_fine_condition_is_style_only():
    m = _small()
    style, tokens = _inputs()
    with torch.no_grad():
        conds = m(style, tokens)
        other = m(style, torch.randn_like(tokens))
        fewer = m(style, tokens[:, :3])
        expected = m.head[2](m.ln_f[2](style + m.content_pos_emd[:, 0]))
    torch.testing.assert_close(conds[2], expected, atol=1e-6, rtol=0)
    assert torch.equal(conds[2], other[2]) and torch.equal(conds[2], fewer[2])
    for i in (0, 1):
        assert (conds[i] - other[i]).abs().max() > 1e-3


def test_dynamics_change_only_coarse_and_medium_rows_of_w():
    m = _small()
    mapper = _randomise(Mapper(SMALL_MAPPER), seed=5, std=0.2)
    style, tokens = _inputs(n=2)
    content = torch.randn(2, 18, SMALL_MAPPER.style_dim)
    with torch.no_grad():
        w_a = mapper(content, m(style, tokens))
        w_b = mapper(content, m(style, tokens + torch.randn_like(tokens)))
    changed = (w_a - w_b).abs().amax(dim=(0, 2))  # per W+ row
    assert torch.equal(w_a[:, 10:], w_b[:, 10:])  # fine rows 10–17: identical
    assert (changed[:10] > 0).all()  # coarse 0–3 and medium 4–9 all move


def test_no_causal_mask_in_self_blocks():
    m = _small()
    _, tokens = _inputs(n=1)
    later = tokens.clone()
    later[:, -1] = torch.randn(SMALL.n_embd)  # (a constant shift would vanish in the LayerNorms)
    for impl in ("fast", "reference"):
        with torch.no_grad():
            a, b = m.attend(tokens, impl=impl), m.attend(later, impl=impl)
        assert (a[:, 0] - b[:, 0]).abs().max() > 1e-3  # the last token reaches the first


def test_cross_attention_reads_keys_and_values_from_dynamics():
    # With one dynamics token the softmax weight is 1 whatever the query: the attention output
    # is proj(value(y_ln1(y))).
    torch.manual_seed(0)
    block = _randomise(CrossBlock(8, 2, 2), seed=3).double()
    x = torch.randn(4, 1, 8, dtype=torch.float64)
    y = torch.randn(4, 1, 8, dtype=torch.float64)
    with torch.no_grad():
        h = x + block.attn.proj(block.attn.value(block.y_ln1(y)))
        expected = h + block.mlp[2](F.gelu(block.mlp[0](block.ln2(h))))
        for impl in ("fast", "reference"):
            torch.testing.assert_close(block(x, y, impl), expected, atol=1e-12, rtol=0)


def test_position_embedding_uses_first_rows():
    cfg = _replace(SMALL, n_self_layers=0)
    m = _small(config=cfg)
    _, tokens = _inputs(hw=5)
    with torch.no_grad():
        assert torch.equal(m.attend(tokens), tokens + m.dyn_pos_emb[:, :5])
    _, full = _inputs(hw=SMALL.n_tokens)
    assert m.attend(full).shape == full.shape


def test_batch_independence():
    m = _small()
    mapper = _randomise(Mapper(SMALL_MAPPER), seed=2, std=0.2)
    style, tokens = _inputs(n=3)
    content = torch.randn(3, 18, SMALL_MAPPER.style_dim)
    with torch.no_grad():
        conds = m(style, tokens)
        w = mapper(content, conds)
        for i in range(3):
            one = m(style[i : i + 1], tokens[i : i + 1])
            for c, c1 in zip(conds, one):
                torch.testing.assert_close(c[i : i + 1], c1, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(w[i : i + 1], mapper(content[i : i + 1], one), atol=1e-5, rtol=1e-5)


def test_modulation_input_validation():
    m = _small()
    style, tokens = _inputs(n=2)
    too_many = torch.randn(2, SMALL.n_tokens + 1, SMALL.n_embd)
    with pytest.raises(InputError, match="n_tokens=16"):
        m(style, too_many)
    with pytest.raises(InputError):
        m(style, tokens[:, :0])
    with pytest.raises(InputError):
        m(style, tokens[..., :-1])
    with pytest.raises(InputError):
        m(style, tokens[0])
    with pytest.raises(InputError, match="repeat the style"):
        m(style[:1], tokens)
    with pytest.raises(InputError):
        m(style[:, None].repeat(1, 2, 1), tokens)  # one style token only
    with pytest.raises(InputError):
        m(style[:, :-1], tokens)
    with pytest.raises(InputError, match="impl"):
        m(style, tokens, impl="flash")


# --- mapper ------------------------------------------------------------------------------------


def test_pixel_norm_reduces_over_layer_axis():
    x = torch.tensor([[[3.0, 1.0], [4.0, -1.0]]], dtype=torch.float64)  # N=1, L=2 rows, D=2
    expected = torch.tensor([[[3 / math.sqrt(12.5), 1.0], [4 / math.sqrt(12.5), -1.0]]], dtype=torch.float64)
    torch.testing.assert_close(pixel_norm(x), expected, atol=1e-8, rtol=0)


def _plain_module(rows: int, dim: int, cond_dim: int, gamma: float, beta: float) -> ModulationModule:
    """fc = identity; γ and β the constants ``gamma`` and ``beta`` whatever the condition."""
    mod = ModulationModule(rows, dim, cond_dim).double()
    with torch.no_grad():
        mod.fc.weight.copy_(torch.eye(dim))
        mod.fc.bias.zero_()
        for fn, value in ((mod.gamma_function, gamma), (mod.beta_function, beta)):
            fn[3].weight.zero_()
            fn[3].bias.fill_(value)
    return mod


def test_group_layernorm_is_joint_without_affine_and_ends_in_leaky_relu():
    x = torch.arange(12, dtype=torch.float64).reshape(1, 3, 4)  # rows 0..2 of 4 channels
    cond = torch.randn(1, 1, 5, dtype=torch.float64)
    mean, var = 5.5, (12**2 - 1) / 12  # over all 12 numbers jointly
    h = (x - mean) / math.sqrt(var + 1e-5)
    mod = _plain_module(3, 4, 5, gamma=0.0, beta=0.0)
    assert not [k for k in mod.state_dict() if k.startswith("norm")]  # no affine parameters
    with torch.no_grad():
        out = mod(x, cond)
    expected = torch.where(h >= 0, h, 0.01 * h)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert out.min() < 0  # the negative side is scaled by 0.01, not clipped
    # x·(1+γ)+β before the activation: γ = 1, β = -0.5.
    mod = _plain_module(3, 4, 5, gamma=1.0, beta=-0.5)
    with torch.no_grad():
        pre = h * 2.0 - 0.5
        torch.testing.assert_close(mod(x, cond), torch.where(pre >= 0, pre, 0.01 * pre), atol=1e-12, rtol=0)


def test_group_layernorm_known_value_at_a_glance():
    # Two rows [1, 1] and [3, 3]: the joint mean is 2 and the joint variance 1, so rows become
    # -1 and +1 (a per-row LayerNorm would give zeros); LeakyReLU makes the -1 into -0.01.
    x = torch.tensor([[[1.0, 1.0], [3.0, 3.0]]], dtype=torch.float64)
    mod = _plain_module(2, 2, 3, gamma=0.0, beta=0.0)
    with torch.no_grad():
        out = mod(x, torch.zeros(1, 1, 3, dtype=torch.float64))
    s = 1 / math.sqrt(1 + 1e-5)
    torch.testing.assert_close(out, torch.tensor([[[-0.01 * s, -0.01 * s], [s, s]]], dtype=torch.float64))


def test_mapper_without_final_leaky_relu_is_linear_at_the_end_only():
    # final_leaky=False drops the LeakyReLU of each group's last module only:
    # Δ may then go below zero at full slope; the keys stay the released ones.
    released = Mapper(SMALL_MAPPER)
    plain = Mapper(dataclasses.replace(SMALL_MAPPER, final_leaky=False))
    plain.load_state_dict(released.state_dict())
    content = torch.randn(3, 18, SMALL_MAPPER.style_dim)
    conds = [torch.randn(3, SMALL_MAPPER.cond_dim) for _ in range(3)]
    with torch.no_grad():
        kept, dropped = released.delta(content, conds), plain.delta(content, conds)
    torch.testing.assert_close(kept, torch.where(dropped >= 0, dropped, 0.01 * dropped))
    assert dropped.min() < -0.5 and kept.min() > -0.05
    for group in ("coarse", "medium", "fine"):
        modules = getattr(plain, f"{group}_mapping").mapper.modulation_module_list
        assert [m.leaky for m in modules] == [True] * (len(modules) - 1) + [False]


def test_mapper_groups_and_delta_weight():
    mapper = _randomise(Mapper(SMALL_MAPPER), seed=1, std=0.2)
    content = torch.randn(2, 18, SMALL_MAPPER.style_dim)
    conds = [torch.randn(2, SMALL_MAPPER.cond_dim) for _ in range(3)]
    with torch.no_grad():
        delta = mapper.delta(content, conds)
        w = mapper(content, conds)
        # Each group sees only its rows and its condition vector.
        parts = [
            mapper.coarse_mapping(content[:, 0:4], conds[0]),
            mapper.medium_mapping(content[:, 4:10], conds[1]),
            mapper.fine_mapping(content[:, 10:18], conds[2]),
        ]
        bumped = [conds[0], conds[1] + 1.0, conds[2]]
        moved = (mapper.delta(content, bumped) - delta).abs().amax(dim=(0, 2))
        as_3d = mapper.delta(content, [c[:, None] for c in conds])
    assert delta.shape == content.shape
    assert torch.equal(delta, torch.cat(parts, dim=1)) and torch.equal(delta, as_3d)
    assert torch.equal(w, content + 0.01 * delta)
    assert (moved[4:10] > 0).all() and not moved[:4].any() and not moved[10:].any()
    rows = [list(r) for r in SMALL_MAPPER.group_rows()]
    assert rows == [list(range(4)), list(range(4, 10)), list(range(10, 18))]


def test_mapper_is_invariant_to_per_channel_scale_of_a_group():
    # PixelNorm over rows divides each channel by its RMS across the group's rows, so scaling a
    # channel uniformly over those rows leaves Δ unchanged.
    mapper = _randomise(Mapper(SMALL_MAPPER), seed=4, std=0.2).double()
    content = torch.randn(1, 18, SMALL_MAPPER.style_dim, dtype=torch.float64)
    conds = [torch.randn(1, SMALL_MAPPER.cond_dim, dtype=torch.float64) for _ in range(3)]
    scale = torch.rand(1, 1, SMALL_MAPPER.style_dim, dtype=torch.float64) * 3 + 0.5
    with torch.no_grad():
        scaled = mapper.delta(content * scale, conds)
        torch.testing.assert_close(scaled, mapper.delta(content, conds), atol=1e-6, rtol=0)


def test_mapper_input_validation():
    mapper = Mapper(SMALL_MAPPER)
    content = torch.randn(2, 18, 16)
    conds = [torch.randn(2, 24) for _ in range(3)]
    with pytest.raises(InputError, match="N×18×16"):
        mapper(content[:, :17], conds)
    with pytest.raises(InputError):
        mapper(content[..., :8], conds)
    with pytest.raises(InputError, match="three"):
        mapper(content, conds[:2])
    with pytest.raises(InputError, match="three"):
        mapper(content, torch.randn(3, 2, 24))
    with pytest.raises(InputError, match="medium"):
        mapper(content, [conds[0], conds[1][:1], conds[2]])
    with pytest.raises(InputError, match="fine"):
        mapper(content, [conds[0], conds[1], conds[2][:, :5]])


# --- configs -----------------------------------------------------------------------------------


def test_configs_round_trip_through_json():
    for cfg in (ModulationConfig(), SMALL, MapperConfig(), SMALL_MAPPER):
        data = json.loads(json.dumps(cfg.to_dict()))
        assert type(cfg).from_dict(data) == cfg
    assert MapperConfig().to_dict()["groups"] == [4, 6, 8]
    assert MapperConfig(groups=[4, 4, 10]).groups == (4, 4, 10)  # the paper's split
    assert MapperConfig().n_latent == 18 and ModulationConfig().head_dim == 64


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_head": 5}, "n_head"),
        ({"n_embd": 0}, "n_embd"),
        ({"n_tokens": 0}, "n_tokens"),
        ({"n_self_layers": -1}, "n_self_layers"),
        ({"out_dim": 2.0}, "out_dim"),
        ({"cross_mlp_ratio": True}, "cross_mlp_ratio"),
        ({"init_std": 0.0}, "init_std"),
        ({"init_std": "0.1"}, "init_std"),
    ],
)
def test_modulation_config_validation(kwargs, field):
    with pytest.raises(InputError, match=field):
        ModulationConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"groups": (4, 14)}, "groups"),
        ({"groups": (4, 0, 14)}, "groups"),
        ({"n_modules": (7, 5, 5.0)}, "n_modules"),
        ({"style_dim": 0}, "style_dim"),
        ({"delta_weight": float("nan")}, "delta_weight"),
        ({"delta_weight": "0.01"}, "delta_weight"),
        ({"final_leaky": "no"}, "final_leaky"),
    ],
)
def test_mapper_config_validation(kwargs, field):
    with pytest.raises(InputError, match=field):
        MapperConfig(**kwargs)


def test_config_from_dict_rejects_unknown_and_malformed():
    with pytest.raises(InputError, match="unknown fields"):
        ModulationConfig.from_dict({"n_embd": 32, "n_layer": 8})
    with pytest.raises(InputError, match="not a dict"):
        MapperConfig.from_dict([1, 2])
    with pytest.raises(InputError):
        MapperConfig.from_dict({"groups": "468"})
