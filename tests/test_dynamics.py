"""vsode.dynamics against the released layout and known answers: parameter counts and key table of
``VideoEncoderWLatentODE``, the reverse Euler/ConvGRU recurrence against a plain re-derivation,
linear ODEs with exact solutions, dense output (evaluations independent of the output count),
float32 vs float64, the time-major token order, and gradcheck on a tiny float64 model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsode.dynamics import (
    ADAPTIVE_METHODS,
    METHODS,
    Dynamics,
    DynamicsConfig,
    batch_major,
    time_major,
)
from vsode.errors import InputError, VsodeError

LAYOUT = Path(__file__).parent / "data" / "formats" / "vidstyleode_official_ravdess.json"
# our sub-module prefix → the released one (design doc §16); the released file also repeats
# z0_diffeq_solver.* as encoder_z0.z0_diffeq_solver.* (entries with "alias_of")
RELEASED_PREFIXES = (
    ("frame_encoder.", "swapae_encoder."),
    ("ode_enc.", "z0_diffeq_solver.ode_func."),
    ("gru.", "encoder_z0.cell_list.0."),
    ("transform_z0.", "encoder_z0.transform_z0."),
    ("ode_dec.", "diffeq_solver.ode_func."),
    ("to_tokens.", "conv1x1."),
)


def tiny(**overrides) -> DynamicsConfig:
    fields = dict(img_size=(16, 16), n_downsampling=2, base_channels=4, state_channels=6,
                  ode_hidden=8, ode_layers=1, token_dim=10)
    fields.update(overrides)
    return DynamicsConfig(**fields)


def build(seed: int = 0, **overrides) -> Dynamics:
    torch.manual_seed(seed)
    return Dynamics(tiny(**overrides)).eval()


def released_name(key: str) -> str:
    for ours, theirs in RELEASED_PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise AssertionError(f"no released prefix for {key}")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.inputs: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.inputs.append(z.detach().clone())
        return self.fn(z)


# --- released layout ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full64() -> Dynamics:
    torch.manual_seed(0)
    return Dynamics(DynamicsConfig(dtype="float64"))


def test_default_parameter_counts(full64):
    assert n_params(full64) == 8_559_136
    assert n_params(full64.frame_encoder) == 2_919_712
    assert n_params(full64.ode_enc) == n_params(full64.ode_dec) == 885_376
    assert n_params(full64.gru) == 3_539_712
    assert n_params(full64.gru.conv_gates) == 2_359_808
    assert n_params(full64.transform_z0) == 197_376
    assert n_params(full64.to_tokens) == 131_584
    assert all(p.requires_grad for p in full64.parameters())
    assert full64.config.grid == (8, 8) and full64.config.n_tokens == 64


def test_state_dict_is_the_released_layout_by_prefix_rename(full64):
    spec = json.loads(LAYOUT.read_text())["modules"]["video_encoder"]
    cfg = DynamicsConfig()
    assert spec["config"] == {"img_size": list(cfg.img_size),
                              "dynamic_latent_out_dim": cfg.token_dim,
                              "spatial_code_ch": cfg.state_channels,
                              "netE_num_downsampling_sp": cfg.n_downsampling}
    assert spec["trainable_params"] == n_params(full64)
    entries = [e for e in spec["entries"] if "alias_of" not in e]
    assert len(entries) == spec["n_unique_tensors"]
    sd = full64.state_dict()
    assert [released_name(k) for k in sd] == [e["key"] for e in entries]  # same keys, same order
    modules = dict(full64.named_modules())
    for key, e in zip(sd, entries):
        assert list(sd[key].shape) == e["shape"], key
        assert str(sd[key].dtype).removeprefix("torch.") == e["dtype"], key  # float64 ODE parts
        if "constant" in e:  # the Blur taps [1]
            assert sd[key].tolist() == e["constant"]
        owner = modules[key.rsplit(".", 1)[0]]
        if e["module"] == "EqualConv2d" and key.endswith("weight"):
            assert owner.scale == pytest.approx(1 / math.sqrt(e["fan_in"]))
    # a released-format state dict (aliases dropped, prefixes renamed back) loads strictly
    back = {k: torch.randn(e["shape"], dtype=getattr(torch, e["dtype"]))
            for k, e in zip(sd, entries)}
    full64.load_state_dict(back, strict=True)


def test_initialisation_follows_the_released_code():
    torch.manual_seed(1)
    model = Dynamics(tiny(base_channels=32, state_channels=32))
    w = model.frame_encoder.DownToSpatialCode.ResBlockDownBy1.conv1.Conv.weight
    assert abs(w.std().item() - 1.0) < 0.05 and abs(w.mean().item()) < 0.05  # raw N(0, 1)
    for name, p in model.frame_encoder.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    conv = model.ode_dec.gradient_net[0]  # PyTorch default: U(±1/sqrt(fan_in))
    assert conv.weight.abs().max() <= 1 / math.sqrt(32 * 9) and conv.bias is not None
    assert [type(m).__name__ for m in model.ode_dec.gradient_net] == \
        ["Conv2d", "Tanh", "Conv2d", "Tanh", "Conv2d"]


def test_zero_bias_zeroes_the_dynamics_biases_only():
    released, zeroed = build(seed=3), build(seed=3, zero_bias=True)
    assert list(released.state_dict()) == list(zeroed.state_dict())
    for (name, a), b in zip(released.state_dict().items(), zeroed.state_dict().values()):
        in_scope = name.startswith(("gru.", "transform_z0.", "ode_enc.", "ode_dec.", "to_tokens."))
        if in_scope and name.endswith(".bias"):
            assert a.abs().sum() > 0 and not b.any(), name
        else:
            assert torch.equal(a, b), name  # the same weights: no extra random draws


def test_config_validation_and_round_trip():
    cfg = DynamicsConfig(img_size=[128, 96], dtype="float64", max_num_steps=500)
    assert cfg.img_size == (128, 96) and cfg.grid == (8, 6) and cfg.n_tokens == 48
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and d["img_size"] == [128, 96]
    assert DynamicsConfig.from_dict(d) == cfg
    bad = [dict(method="rk45"), dict(method="euler", max_num_steps=10), dict(dtype="float16"),
           dict(img_size=(100, 128)), dict(img_size=(128,)), dict(rtol=0), dict(atol=float("nan")),
           dict(first_step=-0.01), dict(ode_layers=-1), dict(state_channels=0),
           dict(max_num_steps=0), dict(img_size=128), dict(zero_bias="yes"),
           dict(state_channels=8, free_channels=8), dict(free_channels=-1), dict(free_channels=1.5)]
    for kwargs in bad:
        with pytest.raises(InputError):
            DynamicsConfig(**kwargs)
    with pytest.raises(InputError, match="unknown fields"):
        DynamicsConfig.from_dict({"img_size": [128, 128], "spatial_code_ch": 256})
    from torchdiffeq._impl.odeint import SOLVERS

    assert set(METHODS) <= set(SOLVERS) and set(ADAPTIVE_METHODS) <= set(METHODS)


# --- frame encoder --------------------------------------------------------------------------------


@pytest.mark.parametrize("img_size,grid", [((128, 128), (8, 8)), ((128, 96), (8, 6))])
def test_token_grid(img_size, grid):
    model = Dynamics(DynamicsConfig(img_size=img_size, base_channels=2, state_channels=4,
                                    ode_hidden=4, token_dim=6))
    frames = torch.rand(2, 3, 3, 64, 48)  # resized to img_size
    feats = model.features(frames)
    assert feats.shape == (2, 3, 4, *grid)
    z0 = model.encode(frames, torch.tensor([0.0, 0.1, 0.2]))
    states, tokens = model.solve(z0, torch.tensor([0.0, 0.05]))
    assert states.shape == (2, 2, 4, *grid)
    assert tokens.shape == (2 * 2, grid[0] * grid[1], 6) and tokens.dtype == torch.float32


def test_features_batched_equal_a_per_frame_loop_and_are_unit_norm():
    model = build()
    frames = torch.rand(2, 3, 3, 16, 16)
    feats = model.features(frames)
    loop = torch.stack([torch.stack([model.features(frames[b:b + 1, t:t + 1])[0, 0]
                                     for t in range(3)]) for b in range(2)])
    torch.testing.assert_close(feats, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats.pow(2).sum(2), torch.ones(2, 3, 4, 4), rtol=1e-5, atol=1e-5)


def test_features_resize_bicubic_without_clamp():
    model = build()
    frames = (torch.rand(1, 2, 3, 40, 24) > 0.5).float()  # sharp edges: bicubic overshoots
    resized = F.interpolate(frames[0], size=(16, 16), mode="bicubic", align_corners=False)
    assert resized.min() < 0 and resized.max() > 1  # kept, not clamped
    torch.testing.assert_close(model.features(frames)[0], model.features(resized[None])[0])


def test_resblock_halves_and_skip_takes_even_pixels():
    model = build()
    block = model.frame_encoder.DownToSpatialCode.ResBlockDownBy1
    x = torch.randn(1, 4, 8, 6)
    skip = block.skip(x)
    w = block.skip.Conv.weight[:, :, 0, 0] * block.skip.Conv.scale
    torch.testing.assert_close(skip, torch.einsum("oi,bihw->bohw", w, x[:, :, ::2, ::2]))
    # conv2 pads one reflected row/column on the top/left only
    conv2 = block.conv2
    padded = torch.cat([x[:, :, 1:2], x], dim=2)
    padded = torch.cat([padded[:, :, :, 1:2], padded], dim=3)
    ref = F.conv2d(padded, conv2.Conv.weight * conv2.Conv.scale, stride=2)
    ref = F.leaky_relu(ref + conv2.Act.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv2(x), ref)
    assert block(x).shape == (1, 8, 4, 3)


# --- reverse-time encoder -------------------------------------------------------------------------


def test_first_euler_step_is_minus_first_step_from_zero():
    for first_step in (0.01, 0.05):
        model = build(dtype="float64", first_step=first_step)
        c = model.config.state_channels
        probe = Lambda(lambda z: -torch.ones_like(z))  # dh/dτ = −1: h grows by |Δτ| per step
        model.ode_enc.gradient_net = probe
        with torch.no_grad():  # transform_z0 → the identity on the mean half
            model.transform_z0[0].weight.copy_(torch.eye(c).view(c, c, 1, 1))
            model.transform_z0[0].bias.zero_()
            model.transform_z0[2].weight.zero_()
            model.transform_z0[2].weight[:c].copy_(torch.eye(c).view(c, c, 1, 1))
            model.transform_z0[2].bias.zero_()
        feats = torch.randn(2, 1, c, 4, 4, dtype=torch.float64)
        z0 = model.encode_features(feats, [0.0], mask=torch.zeros(1))
        assert len(probe.inputs) == 1 and torch.count_nonzero(probe.inputs[0]) == 0  # from h = 0
        torch.testing.assert_close(z0, torch.full_like(z0, first_step), rtol=0, atol=1e-15)
        # all frames hidden: the Euler steps add up to the span plus the first step
        probe.inputs.clear()
        z0 = model.encode_features(feats.expand(2, 3, c, 4, 4), [0.0, 0.2, 0.5], mask=[0, 0, 0])
        assert len(probe.inputs) == 3
        torch.testing.assert_close(z0, torch.full_like(z0, 0.5 + first_step), rtol=0, atol=1e-14)


def reference_z0(model: Dynamics, feats, times, mask) -> torch.Tensor:
    """The released recurrence, written out: Euler step, GRU cell, h = m·h_new + (1−m)·h."""
    c = model.config.state_channels
    h = torch.zeros_like(feats[:, 0])
    t_prev, t_cur = times[-1] + model.config.first_step, times[-1]
    for i in reversed(range(feats.shape[1])):
        h = h + model.ode_enc.gradient_net(h) * (t_cur - t_prev)
        x = feats[:, i]
        r, u = torch.sigmoid(model.gru.conv_gates(torch.cat([x, h], 1))).split(c, 1)
        cand = torch.tanh(model.gru.conv_can(torch.cat([x, r * h], 1)))
        m = mask[:, i].view(-1, 1, 1, 1)
        h = m * ((1 - u) * h + u * cand) + (1 - m) * h
        t_prev, t_cur = times[i], times[i - 1]
    return model.transform_z0(h)[:, :c]


def test_recurrence_matches_the_released_formulas_and_masking():
    model = build(dtype="float64")
    feats = torch.randn(2, 4, 6, 4, 4, dtype=torch.float64)
    times = [0.0, 0.1, 0.25, 0.4]
    mask = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.float64)
    z0 = model.encode_features(feats, torch.tensor(times, dtype=torch.float64), mask)
    torch.testing.assert_close(z0, reference_z0(model, feats, times, mask), rtol=1e-12, atol=1e-12)
    # the hidden frame's content does not matter; the other video is as if nothing were masked
    other = feats.clone()
    other[0, 2] = torch.randn(6, 4, 4, dtype=torch.float64)
    assert torch.equal(model.encode_features(other, times, mask)[0], z0[0])
    assert torch.equal(model.encode_features(feats, times)[1], z0[1])
    assert not torch.allclose(model.encode_features(feats, times)[0], z0[0])
    # (T,) and (T, 1) masks apply to every video
    m1 = torch.tensor([1.0, 0.0, 1.0, 1.0])
    both = model.encode_features(feats, times, m1.view(4, 1))
    assert torch.equal(both, model.encode_features(feats, times, m1))
    torch.testing.assert_close(both, reference_z0(model, feats, times, m1.expand(2, 4)),
                               rtol=1e-12, atol=1e-12)


# --- latent ODE -----------------------------------------------------------------------------------


def test_solve_returns_z_d0_at_zero_and_scatters_in_request_order():
    model = build()
    z0 = model.encode(torch.rand(2, 3, 3, 16, 16), [0.0, 0.1, 0.3])
    states, _ = model.solve(z0, torch.tensor([0.3, 0.0, -0.2, 0.0, 0.3, -0.0]))
    for k in (1, 3, 5):
        assert torch.equal(states[:, k], z0)
    assert torch.equal(states[:, 0], states[:, 4])
    assert not torch.allclose(states[:, 0], z0) and not torch.allclose(states[:, 2], z0)
    s1, _ = model.solve(z0, [0.5, 0.1, 0.3])
    s2, _ = model.solve(z0, [0.1, 0.3, 0.5])
    assert torch.equal(s1, s2[:, [2, 0, 1]])
    only, _ = model.solve(z0, [0.0])
    assert torch.equal(only[:, 0], z0)


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_linear_ode_has_the_exact_solution_forwards_and_backwards(method):
    k = 1.7
    model = build(dtype="float64", method=method, rtol=1e-9, atol=1e-11)
    model.ode_dec.gradient_net = Lambda(lambda z: -k * z)
    z0 = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    if method == "dopri5":  # adaptive: sparse output times, in any order
        times, tol = torch.tensor([-0.5, 0.25, 1.0, 0.0, 2.0, -0.1]), 1e-7
    else:  # fixed grid: steps from output time to output time, so ask for a dense grid
        times, tol = torch.linspace(-1, 2, 31).flip(0), 1e-5
    states, _ = model.solve(z0, times)
    exact = torch.stack([z0 * math.exp(-k * t) for t in times.tolist()], dim=1)
    torch.testing.assert_close(states, exact, rtol=tol, atol=tol)


def test_more_output_times_do_not_cost_more_evaluations():
    model = build()
    z0 = model.encode(torch.rand(1, 2, 3, 16, 16), [0.0, 0.2])
    model.reset_nfe()
    model.solve(z0, torch.linspace(0, 1, 5))
    few = model.nfe
    model.reset_nfe()
    model.solve(z0, torch.linspace(0, 1, 20))
    many = model.nfe
    assert 0 < few and many < 1.5 * few
    model.reset_nfe()
    model.encode(torch.rand(1, 2, 3, 16, 16), [0.0, 0.2])
    assert model.nfe == 0  # f_enc is not f_dec


def test_step_cap_is_an_error():
    model = build(dtype="float64", max_num_steps=2, rtol=1e-10, atol=1e-12)
    model.ode_dec.gradient_net = Lambda(lambda z: -50 * z)
    with pytest.raises(VsodeError, match="max_num_steps"):
        model.solve(torch.randn(1, 6, 4, 4, dtype=torch.float64), [1.0])


def test_float32_agrees_with_float64():
    m32 = build(seed=3)
    m64 = Dynamics(tiny(dtype="float64")).eval()
    m64.load_state_dict(m32.state_dict())
    assert m64.state_dtype == torch.float64 and m64.to_tokens.weight.dtype == torch.float32
    frames = torch.rand(2, 4, 3, 16, 16)
    times, query = [0.0, 0.15, 0.3, 0.5], torch.tensor([-0.2, 0.0, 0.3, 0.7, 1.2])
    z32, z64 = m32.encode(frames, times), m64.encode(frames, times)
    assert z32.dtype == torch.float32 and z64.dtype == torch.float64
    torch.testing.assert_close(z32.double(), z64, rtol=0, atol=1e-6)  # measured ~4e-8
    m32.reset_nfe(), m64.reset_nfe()
    (s32, t32), (s64, t64) = m32.solve(z32, query), m64.solve(z64, query)
    # both accept the same steps here (states ~0.5, measured max difference ~1e-6); had the step
    # sequences diverged, the difference would be of the order of the solver tolerance instead
    assert m32.nfe == m64.nfe
    torch.testing.assert_close(s32.double(), s64, rtol=0, atol=2e-5)
    assert t32.dtype == t64.dtype == torch.float32
    torch.testing.assert_close(t32, t64, rtol=0, atol=2e-5)


def test_tokens_are_time_major_with_row_major_cells():
    model = build(state_channels=3, token_dim=4)
    b, tq, (h, w) = 2, 3, model.config.grid
    states = torch.zeros(b, tq, 3, h, w)
    for bi in range(b):
        for ti in range(tq):
            for r in range(h):
                for col in range(w):
                    states[bi, ti, 0, r, col] = 1000 * bi + 100 * ti + 10 * r + col
    with torch.no_grad():
        model.to_tokens.weight.zero_()
        model.to_tokens.weight[:, 0] = 1.0
        model.to_tokens.bias.zero_()
    tokens = model.tokens(states)
    assert tokens.shape == (tq * b, h * w, 4)
    for bi in range(b):
        for ti in range(tq):
            for r in range(h):
                for col in range(w):
                    value = 1000 * bi + 100 * ti + 10 * r + col
                    assert tokens[ti * b + bi, r * w + col, 2] == value
    x = torch.arange(24.0).view(2, 3, 4)
    assert time_major(x)[1].tolist() == x[1, 0].tolist()  # row t·B + b = 0·2 + 1
    assert torch.equal(batch_major(time_major(x), 2), x)
    with pytest.raises(InputError):
        batch_major(time_major(x), 4)


def test_free_channels_are_not_read_by_the_token_lift():
    """With ``free_channels`` the lift reads the leading channels only: changing the free ones
    leaves the tokens as they are, and with 0 free channels the lift is the released conv."""
    torch.manual_seed(0)
    model = build(state_channels=6, token_dim=4, free_channels=2)
    assert model.observed_channels == 4 and model.to_tokens.weight.shape[1] == 6  # the same tensors
    states = torch.randn(2, 3, 6, *model.config.grid)
    moved = states.clone()
    moved[:, :, 4:] += 5.0
    assert torch.equal(model.tokens(states), model.tokens(moved))
    changed = states.clone()
    changed[:, :, :4] += 0.5
    assert not torch.allclose(model.tokens(states), model.tokens(changed))
    plain = build(state_channels=6, token_dim=4)
    plain.load_state_dict(model.state_dict())
    kept = states.clone()
    kept[:, :, 4:] = 0
    assert torch.allclose(plain.tokens(kept), model.tokens(states), atol=1e-6)
    assert DynamicsConfig.from_dict(model.config.to_dict()).free_channels == 2


def test_gradcheck_encode_and_solve_float64():
    model = build(seed=5, dtype="float64", state_channels=2, ode_hidden=3, token_dim=3,
                  rtol=1e-7, atol=1e-9)
    model.to_tokens.double()
    feats = torch.randn(1, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([1.0, 0.0])

    def run(x):
        states, tokens = model.solve(model.encode_features(x, [0.0, 0.3], mask), [-0.2, 0.4])
        return states, tokens

    assert torch.autograd.gradcheck(run, (feats,), eps=1e-6, atol=1e-5, rtol=1e-4)


# --- bad inputs -----------------------------------------------------------------------------------


def test_bad_inputs_raise_input_error():
    model = build()
    frames = torch.rand(2, 3, 3, 16, 16)
    z0 = torch.zeros(2, 6, 4, 4)
    cases = [
        lambda: model.encode(frames, [0.0, 0.2, 0.1]),  # not increasing
        lambda: model.encode(frames, [0.0, 0.1, 0.1]),  # repeated
        lambda: model.encode(frames, [0.0, 0.1]),  # one time short
        lambda: model.encode(frames, torch.zeros(3, 1)),  # not 1-D
        lambda: model.encode(frames, [0.0, float("nan"), 0.2]),
        lambda: model.encode(frames[0], [0.0, 0.1, 0.2]),  # 4-D
        lambda: model.encode(frames[:, :, :2], [0.0, 0.1, 0.2]),  # 2 channels
        lambda: model.encode(frames, [0.0, 0.1, 0.2], mask=torch.ones(2, 2)),
        lambda: model.encode(frames, [0.0, 0.1, 0.2], mask=torch.ones(3, 2)),
        lambda: model.encode(frames, [0.0, 0.1, 0.2], mask=torch.tensor([1.0, 0.5, 1.0])),
        lambda: model.encode((frames * 255).to(torch.uint8), [0.0, 0.1, 0.2]),
        lambda: model.solve(z0, []),
        lambda: model.solve(z0, [0.1, float("inf")]),
        lambda: model.solve(z0, torch.zeros(2, 2)),
        lambda: model.solve(torch.zeros(2, 5, 4, 4), [0.1]),
        lambda: model.solve(torch.zeros(2, 6, 4, 3), [0.1]),
        lambda: model.tokens(torch.zeros(2, 6, 4, 4)),
        lambda: model.encode_features(torch.zeros(2, 3, 5, 4, 4), [0.0, 0.1, 0.2]),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(InputError):
            case()
            pytest.fail(f"case {i} did not raise")
