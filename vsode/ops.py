"""The StyleGAN2 ops: upfirdn2d, fused leaky ReLU, modulated convolution, ToRGB; and the two
rosinality layers that the generator, the pSp/e4e heads and the dynamics all use
(:class:`EqualLinear`, :class:`FusedLeakyReLU`).

Every op has a plain reference implementation that follows rosinality/stylegan2-pytorch step by
step (grouped convolution over the batch, explicit zero insertion...) and a fast one, chosen at
call time with ``impl=``:

- ``"reference"``: the plain code, float32 unless the caller runs it under autocast.
- ``"fast"``: mathematically the same result, arranged for the CPU's GEMM kernels (oneDNN).
  A layer whose activations (per sample) outweigh its weight runs channels-last; a single such
  sample convolves with the modulated-and-demodulated weight, and the blur after an upsampling
  conv carries the layer bias. Otherwise (low resolution, or a batch) the activations are
  modulated instead: x·s, one convolution of the whole batch with the shared weight, then the
  demodulation as a per-sample output scale fused with bias and noise in one ``addcmul``;
  weight-heavy layers stay in the plain layout, where torch does not re-lay the weight out on
  every call. The demodulation comes from Σ_taps W² (O×I), never from a B×O×I×k×k tensor. The
  √2 gain of the activation is folded into weight, bias and noise (leaky ReLU is positively
  homogeneous), so it costs no pass. ``dtype=torch.bfloat16`` runs the convolutions in bf16
  with the styles, demodulation and RGB skip in float32.
  What depends on the raw weight alone (Σ_taps W² for the demodulation; the weight cast, turned
  in→out and laid out for the batched path) can be kept between calls in a :class:`WeightCache`
  that the layer owns; it is rebuilt when the weight changes (in place, or moved). At low
  resolution these passes over 512×512×3×3 weights cost more than the convolutions themselves.
  The upsampling stays a transposed stride-2 convolution followed by the 4×4 blur: folding the
  blur into the kernel (a 6×6 transposed kernel, or four 3×3 polyphase convolutions) gives the
  same result with 4× the multiply-adds, and measured no faster here at any layer size.
- ``"auto"``: ``"fast"``.

The fast ops support autograd (they use in-place updates only where autograd allows them), so
latent optimisation through the generator works with either implementation.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("auto", "reference", "fast")
SQRT2 = math.sqrt(2.0)
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def resolve_impl(impl: str) -> str:
    """Map ``"auto"`` to the implementation used, and reject unknown names."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {', '.join(IMPLS)}")
    return "fast" if impl == "auto" else impl


def make_kernel(taps: Sequence[float], factor: int = 1) -> torch.Tensor:
    """The 2-D FIR kernel of a 1-D tap list: outer product, normalised to sum 1, times factor².

    ``make_kernel([1, 3, 3, 1], 2)`` is the upsampling blur of StyleGAN2 (sum 4).
    """
    k = torch.tensor(list(taps), dtype=torch.float32)
    if k.ndim != 1 or k.numel() == 0:
        raise ValueError("blur kernel taps must be a non-empty 1-D sequence")
    k2 = torch.outer(k, k)
    return k2 / k2.sum() * factor**2


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _pair(pad: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(pad, int):
        return pad, pad
    p0, p1 = pad
    return int(p0), int(p1)


def upfirdn2d_output_size(size: int, k: int, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0)) -> int:
    """Length of one axis after :func:`upfirdn2d`: (size·up + pad0 + pad1 − k + down) // down."""
    p0, p1 = _pair(pad)
    return (size * up + p0 + p1 - k + down) // down


# --------------------------------------------------------------------------------------------
# upfirdn2d
# --------------------------------------------------------------------------------------------


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: int | Sequence[int] = (0, 0),
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images (N×C×H×W), per channel.

    In order, on both axes: insert ``up − 1`` zeros after every sample; pad ``pad[0]`` before and
    ``pad[1]`` after (negative pads crop); convolve with ``kernel`` (kh×kw, a true convolution,
    i.e. the kernel flipped); keep every ``down``-th sample. Each axis ends with
    :func:`upfirdn2d_output_size` samples.
    """
    if x.ndim != 4 or kernel.ndim != 2:
        raise ValueError(
            f"upfirdn2d wants N×C×H×W and a 2-D kernel, got {tuple(x.shape)}, {tuple(kernel.shape)}"
        )
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be ≥ 1, got {up}, {down}")
    p0, p1 = _pair(pad)
    for axis, n in (("height", x.shape[2]), ("width", x.shape[3])):
        k = kernel.shape[0] if axis == "height" else kernel.shape[1]
        if upfirdn2d_output_size(n, k, up, down, (p0, p1)) < 1:
            raise ValueError(f"upfirdn2d leaves no {axis}: input {n}, kernel {k}, up {up}, pad {(p0, p1)}")
    if resolve_impl(impl) == "reference":
        return _upfirdn2d_reference(x, kernel, up, down, p0, p1)
    return _upfirdn2d_fast(x, kernel, up, down, p0, p1)


def _upfirdn2d_reference(
    x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, p0: int, p1: int
) -> torch.Tensor:
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    y = x.reshape(n * c, 1, h, 1, w, 1)
    y = F.pad(y, [0, up - 1, 0, 0, 0, up - 1])  # zeros after every sample
    y = y.reshape(n * c, 1, h * up, w * up)
    y = F.pad(y, [p0, p1, p0, p1])  # negative values crop
    weight = torch.flip(kernel, [0, 1]).to(y.dtype).view(1, 1, kh, kw)
    y = F.conv2d(y, weight)
    y = y[:, :, ::down, ::down]
    return y.reshape(n, c, y.shape[2], y.shape[3])


def _depthwise(kernel: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    kh, kw = kernel.shape
    return kernel.to(like.dtype).view(1, 1, kh, kw).expand(channels, 1, kh, kw).contiguous()


def _upfirdn2d_fast(
    x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, p0: int, p1: int
) -> torch.Tensor:
    c = x.shape[1]
    kh, kw = kernel.shape
    if up == 1:
        # pad, then a depthwise correlation with the flipped kernel (the conv pads when it can)
        weight = _depthwise(torch.flip(kernel, [0, 1]), c, x)
        if p0 == p1 and p0 >= 0:
            return F.conv2d(x, weight, padding=p0, stride=down, groups=c)
        return F.conv2d(F.pad(x, [p0, p1, p0, p1]), weight, stride=down, groups=c)
    # zero insertion + convolution is a transposed convolution with the unflipped kernel:
    # full[q] = Σ_i x[i]·k[q − up·i]; out[o] = full[o + k − 1 − pad0]
    weight = _depthwise(kernel, c, x)
    crop_h, crop_w = kh - 1 - p0, kw - 1 - p0
    right_h, right_w = p1 + up - kh, p1 + up - kw
    if crop_h == crop_w == -right_h == -right_w and crop_h >= 0:
        y = F.conv_transpose2d(x, weight, stride=up, padding=crop_h, groups=c)
    else:
        y = F.conv_transpose2d(x, weight, stride=up, groups=c)
        y = F.pad(y, [-crop_w, right_w, -crop_h, right_h])
    if down > 1:
        y = y[:, :, ::down, ::down]
    return y


# --------------------------------------------------------------------------------------------
# fused leaky ReLU
# --------------------------------------------------------------------------------------------


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """leaky_relu(x + bias, negative_slope) · scale, with ``bias`` per channel (dim 1)."""
    if bias is not None:
        bias = bias.view(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
    if resolve_impl(impl) == "reference":
        y = x + bias if bias is not None else x
        return F.leaky_relu(y, negative_slope) * scale
    y = x + bias if bias is not None else x.clone()
    if _needs_grad(x, bias):
        return F.leaky_relu(y, negative_slope) * scale  # autograd needs the lrelu output intact
    return F.leaky_relu_(y, negative_slope).mul_(scale)


# --------------------------------------------------------------------------------------------
# layers shared by the generator, the encoders' heads and the dynamics
# --------------------------------------------------------------------------------------------

_init = threading.local()


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Build layers with uninitialised weights (the loader overwrites every one of them)."""
    _init.skip = True
    try:
        yield
    finally:
        _init.skip = False


def init_randn(*shape: int) -> torch.Tensor:
    """N(0, 1) initial weights; uninitialised memory inside :func:`no_init`."""
    return torch.empty(*shape) if getattr(_init, "skip", False) else torch.randn(*shape)


class EqualLinear(nn.Module):
    """rosinality ``EqualLinear``: y = x·(W·lr_mul/√in)ᵀ + b·lr_mul, optionally fused leaky ReLU.

    The raw W (initialised N(0, 1)/lr_mul) and b (``bias_init``) are what the state dict stores.
    ``scale_weight``: scale W, as rosinality's and pSp's code do (the pSp/e4e heads), instead of
    x (the generator: the same product without a pass over the weight, rounded differently).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
        *,
        scale_weight: bool = False,
    ) -> None:
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"EqualLinear activation {activation!r} is not None or 'fused_lrelu'")
        self.weight = nn.Parameter(init_randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation
        self.scale_weight = scale_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, x = (self.weight * self.scale, x) if self.scale_weight else (self.weight, x * self.scale)
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, weight), bias, impl="reference")
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class FusedLeakyReLU(nn.Module):
    """rosinality ``FusedLeakyReLU``: leaky_relu(x + bias, 0.2)·√2, computed by
    :func:`fused_leaky_relu` with ``impl``."""

    def __init__(
        self, channel: int, negative_slope: float = 0.2, scale: float = SQRT2, *, impl: str = "reference"
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.negative_slope, self.scale, self.impl = negative_slope, scale, impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale, impl=self.impl)


# --------------------------------------------------------------------------------------------
# modulated convolution
# --------------------------------------------------------------------------------------------


class WeightCache:
    """Tensors the fast path derives from one layer's raw weight alone, kept between calls.

    The owner (a :class:`~vsode.stylegan2.ModulatedConv2d`) passes :meth:`for_weight` to the
    fast ops. Entries are dropped whenever the weight is not the one they were made from: a new
    tensor, new storage (``.to(device)``), or an in-place update (``load_state_dict``, an
    optimiser step: the version counter moves). Nothing is cached while autograd could need the
    weight's graph.
    """

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._entries: dict[tuple, torch.Tensor] = {}

    def for_weight(self, weight: torch.Tensor) -> WeightCache | None:
        """This cache, valid for ``weight``; None where caching is off (autograd on the weight)."""
        if _needs_grad(weight):
            return None
        stamp = (weight.data_ptr(), weight._version, weight.device, weight.dtype, tuple(weight.shape))
        if stamp != self._stamp:
            self._stamp, self._entries = stamp, {}
        return self

    def get(self, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._entries:
            self._entries[key] = make()
        return self._entries[key]

    def clear(self) -> None:
        self._stamp, self._entries = None, {}


def _derived(cache: WeightCache | None, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    return make() if cache is None else cache.get(key, make)


def _check_modconv(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor) -> None:
    if x.ndim != 4 or weight.ndim != 4 or styles.ndim != 2:
        raise ValueError(
            f"modulated conv wants x N×C×H×W, weight O×I×k×k, styles N×I; got {tuple(x.shape)}, "
            f"{tuple(weight.shape)}, {tuple(styles.shape)}"
        )
    if x.shape[1] != weight.shape[1] or styles.shape != (x.shape[0], weight.shape[1]):
        raise ValueError(
            f"modulated conv shapes disagree: x {tuple(x.shape)}, weight {tuple(weight.shape)}, "
            f"styles {tuple(styles.shape)}"
        )


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: int = 1,
    blur_kernel: torch.Tensor | None = None,
    eps: float = 1e-8,
    impl: str = "auto",
    dtype: torch.dtype | None = None,
    cache: WeightCache | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution (rosinality ``ModulatedConv2d.forward``).

    Parameters
    ----------
    x: N×I×H×W input.
    weight: O×I×k×k raw weight; the equalised-lr scale 1/√(I·k²) is applied here.
    styles: N×I per-sample input-channel scales (the modulation's output).
    demodulate: normalise each output channel of the per-sample weight to unit L2 norm (+eps).
    up: 1, or 2 for the transposed stride-2 convolution followed by ``blur_kernel`` with
        pads ((p+1)//2 + 1, p//2 + 1), p = len(blur) − 2 − (k − 1) (pads (1, 1) for the 4-tap blur).
    impl: "reference", "fast" or "auto".
    dtype: compute dtype of the fast path (float32 default, bfloat16 for speed).
    cache: the layer's :class:`WeightCache` (fast path only; ``WeightCache.for_weight(weight)``),
        or None to derive everything from ``weight`` on this call.

    The result is N×O×H'×W', same padding as the reference (k//2), H' = H or 2H.
    """
    _check_modconv(x, weight, styles)
    if up not in (1, 2):
        raise ValueError(f"up must be 1 or 2, got {up}")
    if up == 2 and blur_kernel is None:
        raise ValueError("an upsampling modulated conv needs its blur kernel")
    if resolve_impl(impl) == "reference":
        return _modconv_reference(x, weight, styles, demodulate, up, blur_kernel, eps)
    return _styled_fast(
        x, weight, styles, demodulate=demodulate, up=up, blur_kernel=blur_kernel, eps=eps, dtype=dtype,
        cache=cache,
    )


def up_blur_pads(kernel_taps: int, conv_kernel: int, factor: int = 2) -> tuple[int, int]:
    """Pads of the blur after a transposed stride-``factor`` conv (rosinality's Blur pads)."""
    p = kernel_taps - factor - (conv_kernel - 1)
    return (p + 1) // 2 + factor - 1, p // 2 + 1


def _modconv_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    up: int,
    blur_kernel: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    batch, cin, h, w = x.shape
    cout, _, k, _ = weight.shape
    scale = 1.0 / math.sqrt(cin * k * k)
    wmod = scale * weight[None] * styles[:, None, :, None, None]  # B O I k k
    if demodulate:
        demod = torch.rsqrt(wmod.pow(2).sum([2, 3, 4]) + eps)
        wmod = wmod * demod[:, :, None, None, None]
    xg = x.reshape(1, batch * cin, h, w)
    if up == 2:
        wt = wmod.transpose(1, 2).reshape(batch * cin, cout, k, k)  # in→out per sample
        out = F.conv_transpose2d(xg, wt.to(xg.dtype), stride=2, padding=0, groups=batch)
        out = out.reshape(batch, cout, out.shape[2], out.shape[3])
        return _upfirdn2d_reference(out, blur_kernel, 1, 1, *up_blur_pads(blur_kernel.shape[0], k))
    out = F.conv2d(xg, wmod.reshape(batch * cout, cin, k, k).to(xg.dtype), padding=k // 2, groups=batch)
    return out.reshape(batch, cout, out.shape[2], out.shape[3])


def styled_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    bias: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    noise_strength: torch.Tensor | None = None,
    demodulate: bool = True,
    up: int = 1,
    blur_kernel: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    gain: float = SQRT2,
    eps: float = 1e-8,
    impl: str = "auto",
    dtype: torch.dtype | None = None,
    cache: WeightCache | None = None,
) -> torch.Tensor:
    """One StyleGAN2 layer (rosinality ``StyledConv``): modulated conv, + strength·noise, fused lrelu.

    ``noise`` is 1×1×H'×W' or N×1×H'×W' (broadcast over channels) or None for none;
    ``noise_strength`` the 1-element ``NoiseInjection.weight``; ``bias`` the ``FusedLeakyReLU``
    bias. The result is leaky_relu(conv + strength·noise + bias, slope) · gain.
    """
    _check_modconv(x, weight, styles)
    if noise is not None and noise_strength is None:
        raise ValueError("noise needs its strength")
    if resolve_impl(impl) == "reference":
        out = _modconv_reference(x, weight, styles, demodulate, up, blur_kernel, eps)
        if noise is not None:
            out = out + noise_strength.to(out.dtype) * noise.to(out.dtype)
        return fused_leaky_relu(out, bias, negative_slope, gain, impl="reference")
    return _styled_fast(
        x,
        weight,
        styles,
        demodulate=demodulate,
        up=up,
        blur_kernel=blur_kernel,
        eps=eps,
        dtype=dtype,
        bias=bias,
        noise=noise,
        noise_strength=noise_strength,
        activate=True,
        negative_slope=negative_slope,
        gain=gain,
        cache=cache,
    )


def _styled_fast(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool,
    up: int,
    blur_kernel: torch.Tensor | None,
    eps: float,
    dtype: torch.dtype | None,
    bias: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    noise_strength: torch.Tensor | None = None,
    activate: bool = False,
    negative_slope: float = 0.2,
    gain: float = 1.0,
    cache: WeightCache | None = None,
) -> torch.Tensor:
    dtype = dtype or x.dtype
    if dtype not in FAST_DTYPES:
        raise ValueError(f"fast modulated conv computes in float32, bfloat16 or float16, not {dtype}")
    batch, cin = x.shape[:2]
    cout, _, k, _ = weight.shape
    # A layer whose activations (per sample) outweigh its weight runs channels-last, the layout
    # oneDNN is fastest with; a weight-heavy (low-resolution) layer runs in the plain layout, as
    # channels-last would make torch re-lay the weight out on every call.
    heavy = x[0].numel() >= weight.numel()
    layout = torch.channels_last if heavy else torch.contiguous_format
    x = x.to(dtype).contiguous(memory_format=layout)
    weight = weight.float()
    s = styles.float() * (1.0 / math.sqrt(cin * k * k))  # B I, the equalised-lr scale folded in
    if not activate:
        gain = 1.0
    grad = _needs_grad(x, styles, weight, bias, noise_strength)
    if _needs_grad(weight):  # its derived tensors must stay in the graph
        cache = None
    # gain·demod per sample and output channel from Σ_taps w² (O×I): no B×O×I×k×k tensor
    if demodulate:
        wsq = _derived(
            cache, ("wsq",), lambda: torch.linalg.vector_norm(weight.reshape(cout, cin, k * k), dim=2).square()
        )
        dg = torch.rsqrt(s.square() @ wsq.t() + eps) * gain  # B O
    else:
        dg = s.new_full((batch, cout), gain)

    # One activation-heavy sample: modulate the weight (no pass over the activations).
    # Otherwise modulate the activations (no per-sample weights to build).
    per_sample = batch == 1 and heavy
    if per_sample:
        # modulate and demodulate the weight; the convolution is then a plain one
        factor = (dg[0][:, None] * s[0][None, :])[:, :, None, None]  # O I 1 1
        if up == 2:  # conv_transpose2d takes the weight in→out
            weight, factor = weight.transpose(0, 1), factor.transpose(0, 1)
        if grad:
            wmod = (weight * factor).to(dtype, memory_format=layout)
        else:  # multiply, cast and lay out in one pass
            wmod = torch.mul(weight, factor, out=torch.empty_like(weight, dtype=dtype, memory_format=layout))
        xin = x
    else:
        # modulate the activations; the shared weight convolves the whole batch at once
        def shared() -> torch.Tensor:
            w = weight.to(dtype)  # cast before any transpose: a plain cast is the cheap copy
            if up == 2:  # in→out, laid out: a transposed view sends oneDNN to a slow kernel
                w = w.transpose(0, 1)
            return w.contiguous(memory_format=layout)

        wmod = _derived(cache, ("shared", dtype, up, heavy), shared)
        xin = x * s.to(dtype)[:, :, None, None]

    conv_bias = None
    if per_sample and bias is not None:
        conv_bias = (bias.float() * gain).to(dtype)
    if up == 1:
        y = F.conv2d(xin, wmod, bias=conv_bias, padding=k // 2)
    else:
        y = F.conv_transpose2d(xin, wmod, stride=2)
        p0, p1 = up_blur_pads(blur_kernel.shape[0], k)
        blur = _depthwise(torch.flip(blur_kernel, [0, 1]), cout, y)
        if p0 == p1:
            y = F.conv2d(y, blur, bias=conv_bias, padding=p0, groups=cout)
        else:
            y = F.conv2d(F.pad(y, [p0, p1, p0, p1]), blur, bias=conv_bias, groups=cout)

    noise_term = None
    if noise is not None:
        noise_term = noise.to(dtype) * (noise_strength.float() * gain).to(dtype)  # 1|B ×1×H×W
    if per_sample:
        if noise_term is not None:
            y = y + noise_term if grad else y.add_(noise_term)
    else:
        scale = dg.to(dtype)[:, :, None, None]
        addend = None
        if bias is not None:
            addend = (bias.float() * gain).to(dtype).view(1, cout, 1, 1)
        if noise_term is not None:
            addend = noise_term if addend is None else addend + noise_term
            addend = addend.contiguous(memory_format=layout)
        if addend is None:
            y = y * scale if grad else y.mul_(scale)
        elif grad:
            y = torch.addcmul(addend, y, scale)
        else:
            y = torch.addcmul(addend, y, scale, out=y)
    if activate:
        # in place even under autograd: y is a fresh result no backward needs (slope > 0)
        y = (
            F.leaky_relu(y, negative_slope)
            if grad and negative_slope <= 0
            else F.leaky_relu_(y, negative_slope)
        )
    return y


def to_rgb(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    bias: torch.Tensor,
    skip: torch.Tensor | None = None,
    *,
    up_kernel: torch.Tensor | None = None,
    impl: str = "auto",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """rosinality ``ToRGB``: modulated 1×1 conv without demodulation, + bias, + upsampled skip.

    ``weight`` is 3×I×1×1 (raw), ``bias`` 1×3×1×1, ``skip`` the previous image at half the size
    (upsampled here by :func:`upfirdn2d` with ``up_kernel``, up 2, pads (2, 1) for 4 taps).
    The result is float32 in both implementations' natural dtype (the fast path returns float32).
    """
    _check_modconv(x, weight, styles)
    pads = None
    if skip is not None:
        if up_kernel is None:
            raise ValueError("a ToRGB with a skip input needs the upsampling kernel")
        kt = up_kernel.shape[0]
        pads = ((kt - 2 + 1) // 2 + 1, (kt - 2) // 2)
    if resolve_impl(impl) == "reference":
        out = _modconv_reference(x, weight, styles, False, 1, None, 0.0)
        out = out + bias.to(out.dtype)
        if skip is not None:
            out = out + _upfirdn2d_reference(skip, up_kernel, 2, 1, *pads).to(out.dtype)
        return out
    dtype = dtype or x.dtype
    batch, cin = x.shape[:2]
    h, w = x.shape[2:]
    s = styles.float() * (1.0 / math.sqrt(cin))
    wmod = (weight.float().view(1, 3, cin) * s[:, None, :]).to(dtype)  # B 3 I
    x = x.to(dtype)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        rows = x.permute(0, 2, 3, 1).reshape(batch, h * w, cin)  # a view
        # The image comes out planar (B 3 HW) either way, so the bias and skip additions below
        # run on contiguous tensors (on a 3-channel channels-last image they cost more than the
        # product). MKL's sgemm is faster with the pixels as rows (then one small transpose),
        # oneDNN's bf16 GEMM with the pixels as columns (measured at 1024², 32 channels).
        if dtype == torch.float32:
            rgb = torch.bmm(rows, wmod.transpose(1, 2)).transpose(1, 2)
        else:
            rgb = torch.bmm(wmod, rows.transpose(1, 2))
    else:
        rgb = torch.bmm(wmod, x.reshape(batch, cin, h * w))
    out = rgb.float().contiguous().view(batch, 3, h, w)
    inplace = not _needs_grad(x, styles, weight, bias, skip)  # out is the GEMM's own result or its copy
    out = out.add_(bias.float()) if inplace else out + bias.float()
    if skip is not None:
        # the depthwise transposed conv on 3 channels: oneDNN's kernel wants them channels-last
        # (planar, torch falls back to a kernel ~20× slower at 512²)
        up = _upfirdn2d_fast(skip.float().contiguous(memory_format=torch.channels_last), up_kernel, 2, 1, *pads)
        out = out.add_(up) if inplace else out + up
    return out
