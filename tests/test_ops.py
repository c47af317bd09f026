"""vsode.ops against plain re-derivations: loops for upfirdn2d, per-sample convolutions for the
modulated conv, and the fast path held to the reference (fp32 ≤ 1e-5, bf16 by PSNR)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsode import ops


def naive_upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, p0: int, p1: int
) -> torch.Tensor:
    """The four steps of the formats README, one sample at a time."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    hu, wu = h * up, w * up
    u = torch.zeros(n, c, hu, wu, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            u[:, :, i * up, j * up] = x[:, :, i, j]  # up − 1 zeros after every sample
    hp, wp = hu + p0 + p1, wu + p0 + p1
    v = torch.zeros(n, c, hp, wp, dtype=torch.float64)
    for i in range(hp):
        for j in range(wp):
            si, sj = i - p0, j - p0  # negative pads crop
            if 0 <= si < hu and 0 <= sj < wu:
                v[:, :, i, j] = u[:, :, si, sj]
    ho, wo = hp - kh + 1, wp - kw + 1
    out = torch.zeros(n, c, ho, wo, dtype=torch.float64)
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                for b in range(kw):  # true convolution: the kernel flipped
                    out[:, :, i, j] += v[:, :, i + a, j + b] * kernel[kh - 1 - a, kw - 1 - b].double()
    return out[:, :, ::down, ::down]


CASES = [
    # up, down, pad, kernel shape
    (1, 1, (1, 1), (4, 4)),
    (2, 1, (2, 1), (4, 4)),  # the ToRGB skip upsampler
    (1, 1, (2, 2), (3, 2)),  # non-square, asymmetric kernel
    (2, 1, (0, 0), (4, 4)),
    (3, 1, (1, 2), (3, 3)),
    (1, 2, (2, 2), (4, 4)),  # the discriminator's downsampling blur
    (2, 2, (1, 0), (3, 3)),
    (1, 1, (-1, 1), (2, 2)),  # negative pads crop
    (2, 1, (-2, -1), (3, 3)),
    (1, 1, (1, -2), (2, 3)),
]


@pytest.mark.parametrize("up,down,pad,kshape", CASES)
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_upfirdn2d_matches_the_four_steps(up, down, pad, kshape, impl):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 4, generator=g)
    kernel = torch.rand(kshape, generator=g)
    got = ops.upfirdn2d(x, kernel, up=up, down=down, pad=pad, impl=impl)
    want = naive_upfirdn2d(x, kernel, up, down, *pad)
    assert got.shape == want.shape
    assert got.shape[2] == ops.upfirdn2d_output_size(5, kshape[0], up, down, pad)
    assert got.shape[3] == ops.upfirdn2d_output_size(4, kshape[1], up, down, pad)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_upfirdn2d_output_size_formula():
    # (in·up + pad0 + pad1 − k + down) // down
    assert ops.upfirdn2d_output_size(8, 4, up=2, pad=(2, 1)) == 16
    assert ops.upfirdn2d_output_size(17, 4, pad=(1, 1)) == 16  # blur after the transposed conv
    assert ops.upfirdn2d_output_size(16, 4, down=2, pad=(1, 1)) == 8
    assert ops.upfirdn2d_output_size(16, 4, down=2, pad=(2, 2)) == 9
    with pytest.raises(ValueError):
        ops.upfirdn2d(torch.zeros(1, 1, 2, 2), torch.ones(4, 4), pad=(-1, -1))


def test_upfirdn2d_fast_equals_reference_channels_last_and_bf16():
    x = torch.randn(2, 8, 17, 9).contiguous(memory_format=torch.channels_last)
    k = ops.make_kernel([1, 3, 3, 1], 2)
    for up, pad in ((1, (1, 1)), (2, (2, 1))):
        ref = ops.upfirdn2d(x, k, up=up, pad=pad, impl="reference")
        fast = ops.upfirdn2d(x, k, up=up, pad=pad, impl="fast")
        torch.testing.assert_close(fast, ref, atol=1e-6, rtol=1e-6)
        fast16 = ops.upfirdn2d(x.bfloat16(), k, up=up, pad=pad, impl="fast")
        assert fast16.dtype == torch.bfloat16
        torch.testing.assert_close(fast16.float(), ref, atol=0.05, rtol=0.02)


def test_make_kernel_is_the_stored_constant():
    k = ops.make_kernel([1, 3, 3, 1], 2)
    row = torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.equal(k, torch.outer(row, row) / 64 * 4)
    assert k[1, 1].item() == 0.5625 and k.sum().item() == 4.0


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_fused_leaky_relu(impl):
    x = torch.randn(3, 5, 4, 4)
    b = torch.randn(5)
    z = x + b.view(1, 5, 1, 1)
    want = torch.where(z >= 0, z, 0.2 * z) * math.sqrt(2)
    torch.testing.assert_close(ops.fused_leaky_relu(x, b, impl=impl), want)
    x2, b2 = torch.randn(4, 7), torch.randn(7)  # the mapping network's 2-D case
    z2 = x2 + b2
    torch.testing.assert_close(
        ops.fused_leaky_relu(x2, b2, impl=impl), torch.where(z2 >= 0, z2, 0.2 * z2) * math.sqrt(2)
    )


def test_unknown_impl_is_an_error():
    with pytest.raises(ValueError, match="impl"):
        ops.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2), impl="cuda")


# --------------------------------------------------------------------------------------------
# modulated convolution
# --------------------------------------------------------------------------------------------


def per_sample_modconv(x, weight, styles, demodulate, up, blur_kernel):
    """One sample at a time, in float64: modulate, demodulate, (transposed) convolve, blur."""
    out = []
    cout, cin, k, _ = weight.shape
    for b in range(x.shape[0]):
        wb = weight.double() / math.sqrt(cin * k * k) * styles[b].double().view(1, cin, 1, 1)
        if demodulate:
            wb = wb / torch.sqrt((wb**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xb = x[b : b + 1].double()
        if up == 2:
            y = F.conv_transpose2d(xb, wb.transpose(0, 1), stride=2)
            y = naive_upfirdn2d(y, blur_kernel, 1, 1, 1, 1)
        else:
            y = F.conv2d(xb, wb, padding=k // 2)
        out.append(y)
    return torch.cat(out)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_modulated_conv_matches_per_sample_definition(batch, up, demodulate, impl):
    g = torch.Generator().manual_seed(2)
    # 12×12 activations vs a 6×5×3×3 weight: batch 1 takes the modulate-the-weight branch
    side = 6 if up == 2 else 12
    x = torch.randn(batch, 5, side, side, generator=g)
    weight = torch.randn(6, 5, 3, 3, generator=g)
    styles = torch.randn(batch, 5, generator=g) + 1.0
    blur = ops.make_kernel([1, 3, 3, 1], 2)
    got = ops.modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, blur_kernel=blur, impl=impl)
    want = per_sample_modconv(x, weight, styles, demodulate, up, blur)
    assert got.shape == want.shape == (batch, 6, 12, 12)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_demodulation_cancels_a_per_sample_style_scale(impl):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=g)
    weight = torch.randn(5, 4, 3, 3, generator=g)
    styles = torch.randn(2, 4, generator=g)
    c = torch.tensor([[3.7], [0.05]])
    for up in (1, 2):
        kw = dict(demodulate=True, up=up, blur_kernel=ops.make_kernel([1, 3, 3, 1], 2), impl=impl)
        a = ops.modulated_conv2d(x, weight, styles, **kw)
        b = ops.modulated_conv2d(x, weight, styles * c, **kw)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        # without demodulation the scale goes straight through
        kw["demodulate"] = False
        a = ops.modulated_conv2d(x, weight, styles, **kw)
        b = ops.modulated_conv2d(x, weight, styles * c, **kw)
        torch.testing.assert_close(b, a * c.view(2, 1, 1, 1), atol=1e-5, rtol=1e-4)


def _layer_inputs(batch: int, up: int, size: int, seed: int = 4):
    g = torch.Generator().manual_seed(seed)
    cin, cout = 6, 7
    h = size // 2 if up == 2 else size
    return dict(
        x=torch.randn(batch, cin, h, h, generator=g),
        weight=torch.randn(cout, cin, 3, 3, generator=g),
        styles=torch.randn(batch, cin, generator=g) * 0.5 + 1.0,
        bias=torch.randn(cout, generator=g) * 0.1,
        noise=torch.randn(1, 1, size, size, generator=g),
        noise_strength=torch.tensor([0.3]),
        up=up,
        blur_kernel=ops.make_kernel([1, 3, 3, 1], 2),
    )


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("size", [4, 16])  # at 4 px the weight outweighs the activations
def test_styled_conv_fast_equals_reference(batch, up, size):
    kw = _layer_inputs(batch, up, size)
    ref = ops.styled_conv2d(**kw, impl="reference")
    fast = ops.styled_conv2d(**kw, impl="fast")
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    per_sample_noise = dict(kw, noise=torch.randn(batch, 1, size, size))
    torch.testing.assert_close(
        ops.styled_conv2d(**per_sample_noise, impl="fast"),
        ops.styled_conv2d(**per_sample_noise, impl="reference"),
        atol=1e-5,
        rtol=1e-5,
    )
    bf16 = ops.styled_conv2d(**kw, impl="fast", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), ref, atol=0.05 * ref.abs().max().item(), rtol=0.05)


@pytest.mark.parametrize("batch", [1, 3])
def test_styled_conv_fast_path_gradients_match_reference(batch):
    kw = _layer_inputs(batch, 2, 8)
    grads = {}
    for impl in ("reference", "fast"):
        x = kw["x"].clone().requires_grad_(True)
        styles = kw["styles"].clone().requires_grad_(True)
        out = ops.styled_conv2d(**dict(kw, x=x, styles=styles), impl=impl)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[impl] = (x.grad, styles.grad)
    for a, b in zip(grads["fast"], grads["reference"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("with_skip", [False, True])
def test_to_rgb_fast_equals_reference(batch, with_skip):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 6, 8, 8, generator=g)
    weight = torch.randn(3, 6, 1, 1, generator=g)
    styles = torch.randn(batch, 6, generator=g)
    bias = torch.randn(1, 3, 1, 1, generator=g)
    skip = torch.randn(batch, 3, 4, 4, generator=g) if with_skip else None
    kernel = ops.make_kernel([1, 3, 3, 1], 2)
    ref = ops.to_rgb(x, weight, styles, bias, skip, up_kernel=kernel, impl="reference")
    fast = ops.to_rgb(x, weight, styles, bias, skip, up_kernel=kernel, impl="fast")
    assert fast.shape == ref.shape == (batch, 3, 8, 8) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch", [1, 2])
def test_to_rgb_fast_channels_last_equals_reference(dtype, batch):
    """The channels-last branch (what the generator's heavy layers hand ToRGB): fp32 to 1e-5,
    bf16 (activations and weight rounded to bf16) to 1 % of the image's range."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(batch, 6, 16, 16, generator=g)
    weight = torch.randn(3, 6, 1, 1, generator=g)
    styles = torch.randn(batch, 6, generator=g)
    bias = torch.randn(1, 3, 1, 1, generator=g)
    skip = torch.randn(batch, 3, 8, 8, generator=g)
    kernel = ops.make_kernel([1, 3, 3, 1], 2)
    ref = ops.to_rgb(x, weight, styles, bias, skip, up_kernel=kernel, impl="reference")
    x_cl = x.contiguous(memory_format=torch.channels_last)
    fast = ops.to_rgb(x_cl, weight, styles, bias, skip, up_kernel=kernel, impl="fast", dtype=dtype)
    assert fast.shape == ref.shape and fast.dtype == torch.float32 and fast.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 0.01 * (ref.max() - ref.min()).item()
    torch.testing.assert_close(fast, ref, atol=tol, rtol=0 if dtype != torch.float32 else 1e-5)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("size", [4, 16])
def test_weight_cache_gives_the_uncached_result_and_follows_the_weight(batch, up, size):
    """A layer's WeightCache changes nothing in the result (bit for bit), and an in-place update of
    the weight (as load_state_dict or an optimiser makes) or a new weight is never served stale."""
    kw = _layer_inputs(batch, up, size)
    weight = kw.pop("weight")
    cache = ops.WeightCache()
    for dtype in (torch.float32, torch.bfloat16):
        plain = ops.styled_conv2d(weight=weight, **kw, impl="fast", dtype=dtype)
        for _ in range(2):  # filled, then served
            cached = ops.styled_conv2d(weight=weight, **kw, impl="fast", dtype=dtype, cache=cache.for_weight(weight))
            assert torch.equal(cached, plain)
    with torch.no_grad():
        weight.mul_(-0.5)
    ref = ops.styled_conv2d(weight=weight, **kw, impl="reference")
    after = ops.styled_conv2d(weight=weight, **kw, impl="fast", cache=cache.for_weight(weight))
    torch.testing.assert_close(after, ref, atol=1e-5, rtol=1e-5)
    other = torch.randn_like(weight)
    torch.testing.assert_close(
        ops.styled_conv2d(weight=other, **kw, impl="fast", cache=cache.for_weight(other)),
        ops.styled_conv2d(weight=other, **kw, impl="reference"),
        atol=1e-5,
        rtol=1e-5,
    )


def test_weight_cache_is_off_while_the_weight_needs_gradients():
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    assert ops.WeightCache().for_weight(weight) is None
    with torch.no_grad():
        assert ops.WeightCache().for_weight(weight) is not None


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="disagree"):
        ops.modulated_conv2d(torch.zeros(2, 4, 8, 8), torch.zeros(5, 3, 3, 3), torch.zeros(2, 3))
