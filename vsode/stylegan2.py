"""The StyleGAN2 generator with rosinality/stylegan2-pytorch parameter names, and its loader.

The layout is the contract of ``tests/data/formats/stylegan2_*.json``: ``Generator(1024)``'s
``state_dict()`` yields exactly the keys, shapes, dtypes and order of the converted FFHQ
config-f file, so published checkpoints load with ``strict=True``. The arithmetic follows the
generator facts of the formats README (rosinality ``model.py`` semantics); each op has a
reference and a fast implementation in :mod:`vsode.ops`, picked per call with ``impl=``.

A non-square generator (StyleGAN-Human 1024×512 converted to this layout) is the same class with
``size=(1024, 512)``: a 4×2 constant input, H×H/2 noise maps, the same 18-row W+.

Why one file of ~800 lines (STYLE habit 1 says ~600): as in rosinality's ``model.py``, the whole
generator reads top to bottom in one place, every class named as in the paper and keyed as in the
published checkpoints; its ops' two implementations already live apart in :mod:`vsode.ops`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import ops
from .errors import InputError
from .ops import EqualLinear, FusedLeakyReLU  # rosinality's layers, shared with the encoders and dynamics

BLUR_KERNEL = (1, 3, 3, 1)
NOISE_MODES = ("const", "random", "none")


def channel_table(resolution: int, channel_multiplier: float = 2, channel_max: int | None = None) -> int:
    """Feature maps at ``resolution`` (rosinality's table: 512 up to 32 px, then 256·m at 64 px,
    halving with every doubling), capped at ``channel_max`` when given."""
    if resolution <= 32:
        c = 512
    else:
        exact = 256 * channel_multiplier * 64 / resolution
        c = int(round(exact))
        if c < 1 or abs(c - exact) > 1e-9:
            raise ValueError(
                f"channel_multiplier {channel_multiplier} gives {exact} channels at {resolution} px"
            )
    return c if channel_max is None else min(c, channel_max)


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    """rosinality ``PixelNorm``: z / sqrt(mean(z², channels) + 1e-8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """rosinality ``Blur``: upfirdn2d with a constant FIR ``kernel`` buffer (saved in every file)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", ops.make_kernel(taps, upsample_factor))
        self.pad = pad

    def forward(self, x: torch.Tensor, *, impl: str = "reference") -> torch.Tensor:
        return ops.upfirdn2d(x, self.kernel, pad=self.pad, impl=impl)


class Upsample(nn.Module):
    """rosinality ``Upsample``: zero insertion ×``factor`` then the blur, as one upfirdn2d."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", ops.make_kernel(taps, factor))
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor, *, impl: str = "reference") -> torch.Tensor:
        return ops.upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad, impl=impl)


class ModulatedConv2d(nn.Module):
    """rosinality ``ModulatedConv2d``: per-sample weight W·s/√(in·k²), optionally demodulated.

    ``weight`` is stored 1×out×in×k×k; ``modulation`` is an EqualLinear(style_dim→in) with bias
    initialised to 1; with ``upsample`` the convolution is transposed (stride 2) and ``blur``
    follows it.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ) -> None:
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:  # registered before modulation: the state-dict order of the reference
            self.blur = Blur(blur_kernel, ops.up_blur_pads(len(blur_kernel), kernel_size), upsample_factor=2)
        self.weight = nn.Parameter(ops.init_randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.weight_cache = ops.WeightCache()  # the fast path's weight-only tensors, between calls

    def fast_cache(self) -> ops.WeightCache | None:
        """The layer's :class:`~vsode.ops.WeightCache`, valid for its current weight."""
        return self.weight_cache.for_weight(self.weight)

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        *,
        impl: str = "reference",
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        return ops.modulated_conv2d(
            x,
            self.weight[0],
            self.modulation(style),
            demodulate=self.demodulate,
            up=2 if self.upsample else 1,
            blur_kernel=self.blur.kernel if self.upsample else None,
            impl=impl,
            dtype=dtype,
            cache=self.fast_cache() if ops.resolve_impl(impl) == "fast" else None,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, {self.kernel_size}, "
            f"demodulate={self.demodulate}, upsample={self.upsample}"
        )


class NoiseInjection(nn.Module):
    """rosinality ``NoiseInjection``: image + weight·noise, one learned scalar strength.

    Unlike the reference, ``noise=None`` adds nothing: the generator decides (stored, fresh or
    no noise) and passes the maps explicitly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            return image
        return image + self.weight * noise


class ConstantInput(nn.Module):
    """rosinality ``ConstantInput``: a learned 1×C×h×w tensor repeated over the batch."""

    def __init__(self, channel: int, size: int | tuple[int, int] = 4) -> None:
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        self.input = nn.Parameter(ops.init_randn(1, channel, h, w))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    """rosinality ``StyledConv``: ModulatedConv2d → NoiseInjection → FusedLeakyReLU."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel,
            out_channel,
            kernel_size,
            style_dim,
            demodulate=demodulate,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        impl: str = "reference",
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        if ops.resolve_impl(impl) == "reference":
            return self.activate(self.noise(self.conv(x, style), noise))
        conv = self.conv
        return ops.styled_conv2d(
            x,
            conv.weight[0],
            conv.modulation(style),
            self.activate.bias,
            noise=noise,
            noise_strength=self.noise.weight,
            demodulate=conv.demodulate,
            up=2 if conv.upsample else 1,
            blur_kernel=conv.blur.kernel if conv.upsample else None,
            negative_slope=self.activate.negative_slope,
            gain=self.activate.scale,
            impl=impl,
            dtype=dtype,
            cache=conv.fast_cache(),
        )


class ToRGB(nn.Module):
    """rosinality ``ToRGB``: modulated 1×1 conv to RGB (no demodulation) + bias + upsampled skip."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        skip: torch.Tensor | None = None,
        *,
        impl: str = "reference",
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        kernel = None
        if skip is not None:
            if not hasattr(self, "upsample"):
                raise ValueError("this ToRGB has no upsampler, so it takes no skip input")
            kernel = self.upsample.kernel
        return ops.to_rgb(
            x,
            self.conv.weight[0],
            self.conv.modulation(style),
            self.bias,
            skip,
            up_kernel=kernel,
            impl=impl,
            dtype=dtype,
        )


# --------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """The StyleGAN2 generator (rosinality ``Generator``; NVIDIA config-f at 1024 px).

    Parameters
    ----------
    size: output resolution, an int for square images or (height, width) for a non-square
        generator such as StyleGAN-Human's (1024, 512). The height is a power of two ≥ 4; the
        constant input is 4 × (4·width/height).
    style_dim: width of z and w (512).
    n_mlp: layers of the mapping network (8).
    channel_multiplier: m in the channel table (2 for config-f).
    blur_kernel: taps of the FIR kernel of every blur and upsampler.
    lr_mlp: learning-rate multiplier of the mapping network (0.01); applied at run time.
    channel_max: optional cap on every layer's channels (small test models); None is the
        reference table.

    Attributes: ``resolution`` and ``size`` (height), ``width``, ``style_dim``, ``n_latent``
    (W+ rows), ``num_layers`` (styled convs and noise maps), ``channels`` (per resolution),
    ``latent_avg`` (the checkpoint's average w or None), ``config`` (constructor arguments).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: float = 2,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        lr_mlp: float = 0.01,
        *,
        channel_max: int | None = None,
    ) -> None:
        super().__init__()
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        log_size = int(math.log2(height)) if height >= 4 else 0
        if height < 4 or 2**log_size != height:
            raise ValueError(f"generator height {height} is not a power of two ≥ 4")
        if (4 * width) % height or width < 1:
            raise ValueError(f"generator width {width} is not a multiple of height/4 = {height // 4}")
        input_w = 4 * width // height
        self.resolution = self.size = height
        self.width = width
        self.style_dim = style_dim
        self.log_size = log_size
        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.channels = {
            2**r: channel_table(2**r, channel_multiplier, channel_max) for r in range(2, log_size + 1)
        }
        self.config: dict[str, Any] = {
            "size": height if width == height else [height, width],
            "style_dim": style_dim,
            "n_mlp": n_mlp,
            "channel_multiplier": channel_multiplier,
            "blur_kernel": list(blur_kernel),
            "lr_mlp": lr_mlp,
            "channel_max": channel_max,
        }

        self.style = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
                for _ in range(n_mlp)
            ),
        )
        c4 = self.channels[4]
        self.input = ConstantInput(c4, size=(4, input_w))
        self.conv1 = StyledConv(c4, c4, 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel = c4
        for r in range(3, log_size + 1):
            out_channel = self.channels[2**r]
            self.convs.append(
                StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel)
            )
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.noises = nn.Module()
        for i, shape in enumerate(self.noise_shapes()):
            self.noises.register_buffer(f"noise_{i}", ops.init_randn(*shape))
        self.register_buffer("latent_avg", None, persistent=False)

    # ---- shapes ---------------------------------------------------------------------------

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shape of noise map i: 1×1×2^r×(2^r·width/height), r = (i + 5) // 2."""
        shapes = []
        for i in range(self.num_layers):
            h = 2 ** ((i + 5) // 2)
            shapes.append((1, 1, h, h * self.width // self.resolution))
        return shapes

    def layer_rows(self) -> list[tuple[str, int]]:
        """(layer name, W+ row) in execution order: conv1 ← 0, to_rgb1 ← 1, and for block j
        convs[2j] ← 2j+1, convs[2j+1] ← 2j+2, to_rgbs[j] ← 2j+3 (the formats README)."""
        rows = [("conv1", 0), ("to_rgb1", 1)]
        for j in range(len(self.to_rgbs)):
            rows += [
                (f"convs.{2 * j}", 2 * j + 1),
                (f"convs.{2 * j + 1}", 2 * j + 2),
                (f"to_rgbs.{j}", 2 * j + 3),
            ]
        return rows

    # ---- latents --------------------------------------------------------------------------

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z (B×style_dim) → w (B×style_dim): PixelNorm then the n_mlp-layer MLP."""
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise InputError(f"mapping wants z of shape B×{self.style_dim}, got {tuple(z.shape)}")
        return self.style(z)

    get_latent = mapping  # rosinality's name

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """The mean of mapping(z) over ``n`` z drawn with ``seed`` (1×style_dim), reproducibly."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(n, self.style_dim, generator=gen).to(self.input.input.device)
        return self.mapping(z).mean(0, keepdim=True)

    def truncate(self, w: torch.Tensor, psi: float, center: torch.Tensor | None = None) -> torch.Tensor:
        """center + psi·(w − center), for W (B×D) or W+ (B×n_latent×D).

        ``center`` defaults to ``latent_avg``; it may be D, 1×D, n_latent×D or 1×n_latent×D.
        """
        if center is None:
            center = self.latent_avg
            if center is None:
                raise InputError("this generator has no latent_avg; pass center= (e.g. mean_latent())")
        center = center.to(w.device, w.dtype)
        try:
            shape = torch.broadcast_shapes(center.shape, w.shape)
        except RuntimeError:
            shape = None
        if shape != w.shape:
            raise InputError(
                f"truncation center {tuple(center.shape)} does not broadcast to w {tuple(w.shape)}"
            )
        if psi == 1:
            return w
        return center + psi * (w - center)

    def _wplus(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim == 2 and w.shape[1] == self.style_dim:
            return w[:, None].expand(-1, self.n_latent, -1)
        if w.ndim == 3 and w.shape[1:] == (self.n_latent, self.style_dim):
            return w
        raise InputError(
            f"w must be B×{self.style_dim} or B×{self.n_latent}×{self.style_dim} for this "
            f"{self.resolution}×{self.width} generator, got {tuple(w.shape)}"
        )

    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise maps, one per layer (batch×1×h×w)."""
        device = self.input.input.device
        out = []
        for shape in self.noise_shapes():
            n = torch.randn(
                (batch, *shape[1:]), generator=generator, device=generator.device if generator else device
            )
            out.append(n.to(device))
        return out

    def _resolve_noise(
        self, noise: str | Sequence[torch.Tensor | None], batch: int, generator: torch.Generator | None
    ) -> list[torch.Tensor | None]:
        if isinstance(noise, str):
            if noise == "const":
                return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
            if noise == "random":
                return self.make_noise(batch, generator)
            if noise == "none":
                return [None] * self.num_layers
            raise InputError(f"noise={noise!r} is not one of {', '.join(NOISE_MODES)} or a list of maps")
        maps = list(noise)
        if len(maps) != self.num_layers:
            raise InputError(f"noise list has {len(maps)} maps; this generator has {self.num_layers} layers")
        for i, (n, shape) in enumerate(zip(maps, self.noise_shapes())):
            if n is not None and (n.ndim != 4 or n.shape[0] not in (1, batch) or n.shape[1:] != shape[1:]):
                raise InputError(f"noise map {i} has shape {tuple(n.shape)}; expected 1|{batch}×{shape[1:]}")
        return maps

    # ---- synthesis ------------------------------------------------------------------------

    def synthesize(
        self,
        w: torch.Tensor,
        noise: str | Sequence[torch.Tensor | None] = "const",
        *,
        impl: str = "auto",
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
        resolution: int | None = None,
    ) -> torch.Tensor:
        """Render images from W (B×style_dim, used for every layer) or W+ (B×n_latent×style_dim).

        Parameters
        ----------
        noise: "const" (the stored ``noises.noise_i`` maps: deterministic, what pSp inference
            and VidStyleODE use), "random" (fresh maps per sample, drawn with ``generator``),
            "none", or a list of ``num_layers`` maps (1|B×1×h×w, or None for a layer).
        impl: "fast" (default via "auto") or "reference" (the plain rosinality arithmetic).
        dtype: float32 (default) or bfloat16 (convolutions in bf16, styles and the RGB skip in
            float32; the reference implementation runs it under autocast). Inside an active
            autocast region the autocast dtype is the default.
        resolution: stop at this resolution (a power of two from 4 to the generator's) and return
            the RGB skip sum there: the image the remaining blocks refine, for losses taken at a
            lower resolution (``vsode edit --optimize``). The W+ rows of the later blocks are
            not read. Default: the full resolution.

        Returns B×3×height×width float32 images (×resolution/height), roughly in [-1, 1], not
        clamped.
        """
        wplus = self._wplus(w)  # B n_latent D
        stop = self.log_size - 1  # blocks 1..stop−1; block j renders 4·2^j
        if resolution is not None and resolution != self.resolution:
            if resolution < 4 or resolution > self.resolution or resolution & (resolution - 1):
                raise InputError(f"resolution {resolution} must be a power of two from 4 to {self.resolution}")
            stop = int(math.log2(resolution)) - 1
        batch = wplus.shape[0]
        noises = self._resolve_noise(noise, batch, generator)
        device_type = wplus.device.type
        if dtype is None:
            dtype = _autocast_dtype(device_type) or torch.float32
        if ops.resolve_impl(impl) == "reference":
            if dtype == torch.float32:
                ctx = torch.autocast(device_type, enabled=False)
            else:
                ctx = torch.autocast(device_type, dtype=dtype)
            with ctx:
                x, skip = self._first_block(wplus, noises, "reference", None)
                x, skip = self._blocks(x, skip, wplus, noises, 1, stop, "reference", None)
            return skip.float()
        with torch.autocast(device_type, enabled=False):
            wplus = wplus.float()
            x, skip = self._first_block(wplus, noises, "fast", dtype)
            split = stop
            if device_type == "cpu" and batch > 1:
                split = min(split, max(1, int(math.log2(self.split_resolution)) - 2))
            x, skip = self._blocks(x, skip, wplus, noises, 1, split, "fast", dtype)
            if split < stop:
                images = []
                for b in range(batch):
                    rows = [n if n is None or n.shape[0] == 1 else n[b : b + 1] for n in noises]
                    _, one = self._blocks(
                        x[b : b + 1],
                        skip[b : b + 1],
                        wplus[b : b + 1],
                        rows,
                        split,
                        stop,
                        "fast",
                        dtype,
                    )
                    images.append(one)
                skip = torch.cat(images)
        return skip.contiguous()

    # On the CPU, a batch runs batched below this resolution and sample by sample from it on:
    # there one sample fills the GEMMs and its layers modulate weights, which are small there,
    # rather than activations (one pass fewer over them per layer).
    split_resolution = 256

    def _first_block(
        self, wplus: torch.Tensor, noises: list[torch.Tensor | None], impl: str, dtype: torch.dtype | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input(wplus.shape[0])
        if impl == "fast":
            x = x.to(dtype)
        x = self.conv1(x, wplus[:, 0], noises[0], impl=impl, dtype=dtype)
        return x, self.to_rgb1(x, wplus[:, 1], impl=impl, dtype=dtype)

    def _blocks(
        self,
        x: torch.Tensor,
        skip: torch.Tensor,
        wplus: torch.Tensor,
        noises: list[torch.Tensor | None],
        start: int,
        stop: int,
        impl: str,
        dtype: torch.dtype | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks ``start``..``stop``−1; block j ≥ 1 doubles the resolution to 4·2^j (W+ rows
        2j−1, 2j, 2j+1; noise maps 2j−1, 2j)."""
        for j in range(start, stop):
            i = 2 * (j - 1)
            x = self.convs[i](x, wplus[:, i + 1], noises[i + 1], impl=impl, dtype=dtype)
            x = self.convs[i + 1](x, wplus[:, i + 2], noises[i + 2], impl=impl, dtype=dtype)
            skip = self.to_rgbs[j - 1](x, wplus[:, i + 3], skip, impl=impl, dtype=dtype)
        return x, skip

    def forward(
        self,
        styles: Sequence[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        *,
        impl: str = "auto",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality's call convention: a list of one or two z (or w) batches → (image, W+ or None).

        Two style tensors mix at ``inject_index`` (drawn at random when None). Truncation applies
        to each style before broadcasting. ``randomize_noise=True`` (the reference default) draws
        fresh noise; False uses the stored maps; an explicit ``noise`` list wins.
        """
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        if not input_is_latent:
            styles = [self.mapping(s) for s in styles]
        if truncation < 1:
            styles = [self.truncate(s, truncation, truncation_latent) for s in styles]
        if len(styles) == 1:
            latent = self._wplus(styles[0])
        elif len(styles) == 2:
            if inject_index is None:
                inject_index = int(torch.randint(1, self.n_latent, ()).item())
            a, b = (self._wplus(s) for s in styles)
            latent = torch.cat([a[:, :inject_index], b[:, inject_index:]], 1)
        else:
            raise InputError(f"forward takes one or two style batches, got {len(styles)}")
        if noise is None:
            noise = "random" if randomize_noise else "const"
        image = self.synthesize(latent, noise, impl=impl)
        return image, (latent if return_latents else None)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype of an active autocast region on ``device_type``, or None."""
    if hasattr(torch, "get_autocast_dtype"):  # torch ≥ 2.4
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

_CONV_KEY = re.compile(r"^convs\.(\d+)\.conv\.weight$")
_MLP_KEY = re.compile(r"^style\.(\d+)\.weight$")
_REQUIRED = ("input.input", "conv1.conv.weight", "conv1.conv.modulation.weight")


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``state_dict`` under ``prefix`` (e.g. "decoder." of a pSp/e4e file), renamed
    without it. An empty result is an :class:`InputError` naming the prefixes present."""
    out = {k[len(prefix) :]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}
    if not out:
        heads = sorted({k.split(".", 1)[0] + "." for k in state_dict if isinstance(k, str)})
        raise InputError(f"no keys start with {prefix!r}; the top-level prefixes are {_names(heads)}")
    return out


def _names(keys: Sequence[str], limit: int = 12) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _is_generator_state(d: Mapping[str, Any]) -> bool:
    return all(isinstance(d.get(k), torch.Tensor) for k in _REQUIRED)


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of the :class:`Generator` that owns ``state_dict``.

    Size (also non-square) from ``input.input`` and the number of ``convs``; style_dim and n_mlp
    from the mapping network; channel_multiplier (and channel_max for small models) from the
    channel table. lr_mlp and the blur taps are run-time constants the file cannot show; they
    keep their defaults.
    """
    missing = [k for k in _REQUIRED if not isinstance(state_dict.get(k), torch.Tensor)]
    if missing:
        raise InputError(
            f"not a StyleGAN2 generator state dict: missing {_names(missing)}; found {_names(list(state_dict))}"
        )
    inp = state_dict["input.input"].shape
    if len(inp) != 4 or inp[2] != 4:
        raise InputError(f"input.input has shape {tuple(inp)}; expected 1×C×4×w")
    style_dim = int(state_dict["conv1.conv.modulation.weight"].shape[1])
    mlp = sorted(int(m.group(1)) for k in state_dict if (m := _MLP_KEY.match(k)))
    if mlp != list(range(1, len(mlp) + 1)):
        raise InputError(f"mapping layers style.N.weight are not numbered 1..n: found {mlp}")
    conv_ids = sorted(int(m.group(1)) for k in state_dict if (m := _CONV_KEY.match(k)))
    if conv_ids != list(range(len(conv_ids))) or len(conv_ids) % 2:
        raise InputError(f"convs.N.conv.weight should be an even count numbered from 0: found {conv_ids}")
    log_size = 2 + len(conv_ids) // 2
    height = 2**log_size
    width = inp[3] * height // 4
    observed = {4: int(state_dict["conv1.conv.weight"].shape[1])}
    for j in range(len(conv_ids) // 2):
        observed[2 ** (j + 3)] = int(state_dict[f"convs.{2 * j}.conv.weight"].shape[1])
    multiplier, cap = _infer_channels(observed)
    return {
        "size": height if width == height else [height, width],
        "style_dim": style_dim,
        "n_mlp": len(mlp),
        "channel_multiplier": multiplier,
        "channel_max": cap,
    }


def _infer_channels(observed: Mapping[int, int]) -> tuple[float, int | None]:
    c4 = observed[4]
    caps = [None] if c4 == 512 else []
    caps.append(c4)
    # read m off the channel counts, largest resolution first (the one a cap is least likely to
    # hide); 2 (config-f) when every count is the cap and any m would do
    candidates: list[float] = []
    for r, c in sorted(observed.items(), reverse=True):
        m = c * r / (256 * 64)
        if r >= 64 and m not in candidates:
            candidates.append(int(m) if m == int(m) else m)
    candidates.append(2)
    for cap in caps:
        for m in candidates:
            try:
                if all(channel_table(r, m, cap) == c for r, c in observed.items()):
                    return m, cap
            except ValueError:
                continue
    table = ", ".join(f"{r}px: {c}" for r, c in sorted(observed.items()))
    raise InputError(f"the channel counts ({table}) match no channel_multiplier of the StyleGAN2 table")


def load_generator(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    key: str = "g_ema",
    prefix: str | None = None,
) -> Generator:
    """Build a :class:`Generator` from a rosinality-layout checkpoint and load it strictly.

    Parameters
    ----------
    source: a checkpoint path (read with ``weights_only=True``), the dict ``torch.load`` returns
        (``{"g_ema": sd, "latent_avg": ...}``, train.py's ``{"g", "d", "g_ema", ...}``, pSp/e4e's
        ``{"state_dict": ..., "latent_avg": ...}``), or a bare generator state dict.
    key: which generator of a full checkpoint: "g_ema" (default; what rosinality generate.py,
        pSp and e4e render) or "g" (the raw, non-EMA weights, only on purpose). A missing key is
        an error, never a silent fallback to the other.
    prefix: keep only the keys under this prefix, stripped (``"decoder."`` for pSp/e4e files,
        whose generator lives in ``state_dict``).

    The architecture (size, also non-square; style_dim; n_mlp; channel multiplier) is read from
    the tensors. The checkpoint's ``latent_avg``, if any, becomes ``generator.latent_avg``. The
    generator is returned in eval mode on the CPU, float32.
    """
    ckpt = _read(source)
    if not isinstance(ckpt, Mapping):
        raise InputError(f"a generator checkpoint is a dict; this one is a {type(ckpt).__name__}")
    state, latent_avg = _pick_state(ckpt, key, prefix)
    config = infer_config(state)
    state = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in state.items()}
    from .checkpoints.load import check_layout

    with ops.no_init():
        generator = Generator(**config)
    check_layout(
        generator.state_dict(), state, f"the state dict does not fit a StyleGAN2 {generator.config['size']} generator"
    )
    generator.load_state_dict(state, strict=True)
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1] != generator.style_dim:
            shape = (
                tuple(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            )
            raise InputError(f"latent_avg is {shape}; expected a tensor ending in {generator.style_dim}")
        latent_avg = latent_avg.detach().float().clone()
    generator.latent_avg = latent_avg
    return generator.eval()


def _read(source: str | os.PathLike | Mapping[str, Any]) -> Any:
    if isinstance(source, Mapping):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"load_generator takes a path or a checkpoint dict, not {type(source).__name__}")
    try:
        from .checkpoints.load import safe_load
    except ImportError:  # the checkpoint stage is optional here
        safe_load = None
    if safe_load is not None:
        return safe_load(source, map_location="cpu")
    if not os.path.isfile(source):
        raise InputError(f"checkpoint file {source} does not exist")
    return torch.load(source, map_location="cpu", weights_only=True)


def _pick_state(ckpt: Mapping[str, Any], key: str, prefix: str | None) -> tuple[Mapping[str, Any], Any]:
    latent_avg = None
    if prefix is not None:
        inner = ckpt.get("state_dict")
        container = inner if isinstance(inner, Mapping) and not _has_prefix(ckpt, prefix) else ckpt
        if isinstance(container.get(key), Mapping):
            container = container[key]
        state = strip_prefix(container, prefix)
        latent_avg = ckpt.get("latent_avg")
    elif _is_generator_state(ckpt) or any(k in ckpt for k in _REQUIRED):
        state = ckpt  # a bare state dict (infer_config names what an incomplete one lacks)
    elif isinstance(ckpt.get(key), Mapping):
        state = ckpt[key]
        latent_avg = ckpt.get("latent_avg")
    else:
        found = [k for k in ckpt if isinstance(k, str)]
        hint = ""
        if key == "g_ema" and isinstance(ckpt.get("g"), Mapping):
            hint = "; 'g' holds the non-EMA generator: pass key='g' to render it on purpose"
        elif isinstance(ckpt.get("state_dict"), Mapping) and _has_prefix(ckpt["state_dict"], "decoder."):
            hint = "; this looks like a pSp/e4e file: pass prefix='decoder.'"
        raise InputError(f"no generator under {key!r} in this checkpoint; its keys are {_names(found)}{hint}")
    return state, latent_avg


def _has_prefix(d: Mapping[str, Any], prefix: str) -> bool:
    return any(isinstance(k, str) and k.startswith(prefix) for k in d)
