"""Image → W+: the pSp and e4e encoders on an IR-SE-50 backbone, and their checkpoints.

Re-implemented from the formats spec (``tests/data/formats/README.md`` in the shared folder,
"How an image becomes W+"), with the parameter names of the released code so that the published
``psp_ffhq_encode.pt`` / ``e4e_ffhq_encode.pt`` load strictly:

- pixel2style2pixel ``models/encoders/psp_encoders.py`` (``GradualStyleEncoder``) and
  ``models/encoders/helpers.py`` (``bottleneck_IR_SE``, ``SEModule``);
- encoder4editing ``models/encoders/psp_encoders.py`` (``Encoder4Editing``).

The plain fp32 forward is the reference; ``Encoder.encode(..., impl="fast")`` runs it with
channels-last tensors under bf16 autocast (held to the reference by the tests).

The sizes are an :class:`EncoderArch`: the default is the published IR-SE-50 at 256², and a
smaller one (the demo world's 64² encoder) is the same classes with fewer, narrower units. A file
of a non-default arch says so in ``opts["vsode_arch"]`` (plain types), read by :func:`load_encoder`.

Why one file of ~700 lines (STYLE habit 1 says ~600): the backbone, the two heads and the loader
share one parameter-name contract with the published files, checked key by key in one place; split,
the names the loader maps would stand in a different file from the classes that own them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints.load import check_layout, safe_load
from .errors import InputError
from .ops import EqualLinear

INPUT_SIZE = 256
STYLE_DIM = 512
# IR-SE-50: (width, units) per stage; the first unit of each stage has stride 2.
IR_SE_50_STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))
# Body units after which c1 (128 @ 64²), c2 (256 @ 32²), c3 (512 @ 16²) are tapped: the last
# units of stages 2, 3 and 4 (EncoderArch.tap_units for other stage counts).
TAP_UNITS = (6, 20, 23)
# Heads [0, 3) read c3, [3, 7) read p2, [7, n_styles) read p1. Fixed in the reference whatever
# n_styles is (it was written for 18).
COARSE_IND, MIDDLE_IND = 3, 7
ENCODER_TYPES = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e"}
IMPLS = ("reference", "fast")


# --- architecture ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncoderArch:
    """Sizes of the IR-SE backbone and the map2style heads (default: pSp's IR-SE-50 at 256²).

    Parameters
    ----------
    input_size: side of the (square) input; the taps c1, c2, c3 are at input/4, /8, /16.
    stages: (width, units) of the four stages; the input layer has the first stage's width and
        the first unit of each stage has stride 2.
    style_dim: width of a W+ row (the generator's style_dim).
    head_width: channels of the map2style convs; its EqualLinear maps head_width → style_dim.
    se_reduction: squeeze-excitation bottleneck factor (C → C/se_reduction → C).

    The pyramid (both lateral convs, every head's input) has the last stage's width.
    """

    input_size: int = INPUT_SIZE
    stages: tuple[tuple[int, int], ...] = IR_SE_50_STAGES
    style_dim: int = STYLE_DIM
    head_width: int = STYLE_DIM
    se_reduction: int = 16

    def __post_init__(self) -> None:
        stages = tuple((int(w), int(n)) for w, n in self.stages)
        object.__setattr__(self, "stages", stages)
        log = int(math.log2(self.input_size)) if self.input_size >= 1 else 0
        problems = []
        if self.input_size < 32 or 2**log != self.input_size:
            problems.append(f"input_size {self.input_size} is not a power of two ≥ 32")
        if len(stages) != 4 or any(w < 1 or n < 1 for w, n in stages):
            problems.append(f"stages {list(stages)} are not four (width, units) pairs ≥ 1")
        elif self.se_reduction < 1 or any(w % self.se_reduction for w, _ in stages):
            problems.append(f"se_reduction {self.se_reduction} does not divide every stage width")
        if self.style_dim < 1 or self.head_width < 1:
            problems.append(f"style_dim {self.style_dim} / head_width {self.head_width} < 1")
        if problems:
            raise InputError("bad encoder arch: " + "; ".join(problems))

    @property
    def pyramid_width(self) -> int:
        """Channels of c3, p2 and p1 (the last stage's width)."""
        return self.stages[-1][0]

    @property
    def tap_units(self) -> tuple[int, int, int]:
        """Indices of the body units after which c1, c2, c3 are tapped (ends of stages 2-4)."""
        ends = list(np.cumsum([n for _, n in self.stages]) - 1)
        return int(ends[1]), int(ends[2]), int(ends[3])

    def head_spatial(self, i: int) -> int:
        """Side of the map head i reads: c3 (input/16), p2 (input/8) or p1 (input/4)."""
        return self.input_size // (16 if i < COARSE_IND else 8 if i < MIDDLE_IND else 4)

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists), as stored in ``opts["vsode_arch"]``."""
        return {
            "input_size": self.input_size,
            "stages": [list(s) for s in self.stages],
            "style_dim": self.style_dim,
            "head_width": self.head_width,
            "se_reduction": self.se_reduction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EncoderArch":
        """Inverse of :meth:`to_dict`; unknown or malformed fields are an :class:`InputError`."""
        if not isinstance(data, Mapping):
            raise InputError(f"opts.vsode_arch is a {type(data).__name__}, not a dict")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise InputError(
                f"opts.vsode_arch has unknown fields {unknown}; known: {sorted(fields)}"
            )
        try:
            kwargs = dict(data)
            if "stages" in kwargs:
                kwargs["stages"] = tuple(tuple(s) for s in kwargs["stages"])
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"opts.vsode_arch is malformed ({exc})") from None


IR_SE_50 = EncoderArch()


# --- IR-SE-50 backbone -------------------------------------------------------------------------


class EvalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that always normalises with its running statistics.

    Same parameters and buffers (so the same state-dict keys), but ``.train()`` changes nothing:
    the encoders are inference models and their BN must never see batch statistics or update
    ``running_*`` / ``num_batches_tracked``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class SEModule(nn.Module):
    """Squeeze-excitation; ``SEModule`` in pSp's ``helpers.py``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """One residual unit of IR-SE-50; ``bottleneck_IR_SE`` in pSp's ``helpers.py``."""

    def __init__(self, in_channels: int, depth: int, stride: int, se_reduction: int = 16) -> None:
        super().__init__()
        if in_channels == depth:
            # a 1×1 max-pool with a stride is plain subsampling (identity at stride 1)
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), EvalBatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            EvalBatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            EvalBatchNorm2d(depth),
            SEModule(depth, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.shortcut_layer, nn.MaxPool2d):  # the same values, without the pool's copy
            stride = self.shortcut_layer.stride
            return self.res_layer(x) + (x if stride == 1 else x[:, :, ::stride, ::stride])
        return self.res_layer(x) + self.shortcut_layer(x)


# --- map2style heads ---------------------------------------------------------------------------


class GradualStyleBlock(nn.Module):
    """``GradualStyleBlock`` (map2style): log2(spatial) 3×3 stride-2 convs, each followed by
    LeakyReLU with PyTorch's default slope 0.01, down to 1×1, then an EqualLinear to
    ``style_dim`` (default: ``out_channels``, as in the reference).

    Conv keys sit at even indices of ``convs`` (``convs.0``, ``convs.2``, ...).
    """

    def __init__(
        self, in_channels: int, out_channels: int, spatial: int, style_dim: int | None = None
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.spatial = spatial
        layers: list[nn.Module] = []
        for i in range(int(math.log2(spatial))):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, 2, 1),
                nn.LeakyReLU(),  # slope 0.01, as in the reference (not StyleGAN's 0.2)
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, style_dim or out_channels, lr_mul=1, scale_weight=True)  # as pSp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        assert x.shape[-2:] == (1, 1), f"map2style for {self.spatial}² got {tuple(x.shape)}"
        return self.linear(x.flatten(1))  # B C


# --- the two encoders --------------------------------------------------------------------------


class _StylePyramidEncoder(nn.Module):
    """What pSp's GradualStyleEncoder and e4e's Encoder4Editing share: the IR-SE-50 backbone,
    the feature taps, the two lateral 1×1 convs and one map2style head per W+ row.

    Registration order (input_layer, body, styles, latlayer1, latlayer2) is the reference's,
    which fixes the state-dict order. ``arch`` (default IR-SE-50 at 256²) sets the sizes.
    """

    def __init__(self, n_styles: int, input_nc: int = 3, *, arch: EncoderArch = IR_SE_50) -> None:
        super().__init__()
        if n_styles < 1:
            raise ValueError(f"n_styles must be positive, got {n_styles}")
        self.arch = arch
        stem = arch.stages[0][0]
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, stem, 3, 1, 1, bias=False), EvalBatchNorm2d(stem), nn.PReLU(stem)
        )
        units: list[nn.Module] = []
        in_channels = stem
        for depth, n_units in arch.stages:
            for i in range(n_units):
                stride = 2 if i == 0 else 1
                units.append(BottleneckIRSE(in_channels, depth, stride, arch.se_reduction))
                in_channels = depth
        self.body = nn.Sequential(*units)
        self.style_count = n_styles
        width = arch.pyramid_width
        self.styles = nn.ModuleList(
            GradualStyleBlock(width, arch.head_width, arch.head_spatial(i), arch.style_dim)
            for i in range(n_styles)
        )
        self.latlayer1 = nn.Conv2d(arch.stages[2][0], width, 1, 1, 0)
        self.latlayer2 = nn.Conv2d(arch.stages[1][0], width, 1, 1, 0)
        self._taps = arch.tap_units

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backbone taps (c1, c2, c3): 128 @ 64², 256 @ 32², 512 @ 16² for a 256² input
        (stage widths 2-4 at input/4, /8, /16 for another arch)."""
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self._taps:
                taps.append(x)
        c1, c2, c3 = taps
        return c1, c2, c3

    @staticmethod
    def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """FPN merge: x resized to y's size (bilinear, align_corners=True as in pSp) plus y."""
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class GradualStyleEncoder(_StylePyramidEncoder):
    """pSp's ``GradualStyleEncoder(50, "ir_se", opts)``: each W+ row from its own head.

    Heads 0-2 read c3, 3-6 read p2, the rest p1, whatever n_styles is (the reference's split;
    its loops would index past the heads below 7 styles, here the ranges are clipped). Returns
    B×n_styles×style_dim **without** ``latent_avg`` (the pSp wrapper adds it; see
    :class:`Encoder`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.features(x)
        n = self.style_count
        latents = [self.styles[i](c3) for i in range(min(COARSE_IND, n))]
        if n > COARSE_IND:
            p2 = self.upsample_add(c3, self.latlayer1(c2))
            latents += [self.styles[i](p2) for i in range(COARSE_IND, min(MIDDLE_IND, n))]
        if n > MIDDLE_IND:
            p1 = self.upsample_add(p2, self.latlayer2(c1))
            latents += [self.styles[i](p1) for i in range(MIDDLE_IND, n)]
        return torch.stack(latents, dim=1)  # B n_styles style_dim


class Encoder4Editing(_StylePyramidEncoder):
    """e4e's ``Encoder4Editing(50, "ir_se", opts)`` at progressive stage "Inference".

    Head 0 gives a base w copied into every row; head i (i ≥ 1) adds a delta to row i. Returns
    B×n_styles×style_dim **without** ``latent_avg``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.features(x)
        w0 = self.styles[0](c3)  # B style_dim
        deltas = [torch.zeros_like(w0)]
        features = c3
        for i in range(1, self.style_count):
            if i == COARSE_IND:
                features = p2 = self.upsample_add(c3, self.latlayer1(c2))
            elif i == MIDDLE_IND:
                features = self.upsample_add(p2, self.latlayer2(c1))
            deltas.append(self.styles[i](features))
        return w0[:, None] + torch.stack(deltas, dim=1)  # B n_styles style_dim


# --- the model a checkpoint describes ----------------------------------------------------------


class Encoder(nn.Module):
    """A pSp or e4e encoder with its ``latent_avg``, as the reference ``pSp`` wrapper
    (``models/psp.py`` in both repositories) runs it at inference.

    Its own ``state_dict()`` has exactly the checkpoint's ``encoder.*`` keys (plus ``decoder.*``
    once :attr:`generator` has been built). Build it with :func:`load_encoder`.

    Attributes: ``kind`` ("psp" / "e4e"), ``n_styles``, ``style_dim`` (512), ``latent_avg``
    (n_styles×style_dim or None), ``input_size`` (256; the demo encoder's is 64), ``arch`` (the
    :class:`EncoderArch`), ``opts`` (the checkpoint's opts with the reference defaults filled
    in), ``start_from_latent_avg``.
    """

    def __init__(
        self,
        encoder: _StylePyramidEncoder,
        *,
        kind: str,
        opts: Mapping[str, Any],
        latent_avg: torch.Tensor | None,
        start_from_latent_avg: bool,
        decoder_state: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.kind = kind
        self.n_styles = encoder.style_count
        self.arch = encoder.arch
        self.input_size = encoder.arch.input_size
        self.style_dim = encoder.arch.style_dim
        self.opts = dict(opts)
        self.start_from_latent_avg = start_from_latent_avg
        if start_from_latent_avg and latent_avg is None:
            raise ValueError("start_from_latent_avg needs a latent_avg")
        if latent_avg is not None:
            latent_avg = _latent_avg_rows(latent_avg, self.n_styles, self.style_dim)
        self.register_buffer("latent_avg", latent_avg, persistent=False)
        self._decoder_state = dict(decoder_state) if decoder_state else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable reference forward: B×3×size×size in [-1, 1] → W+ (B×n_styles×D)."""
        codes = self.encoder(images)
        if self.start_from_latent_avg:
            codes = codes + self.latent_avg  # row by row, broadcast over the batch
        return codes

    @torch.no_grad()
    def encode(self, images: torch.Tensor, *, impl: str = "reference") -> torch.Tensor:
        """Invert preprocessed face crops to W+.

        Args:
            images: B×3×256×256 in [-1, 1] (``input_size`` for another arch; see
                :func:`preprocess`), moved to the encoder's device.
            impl: "reference" (fp32) or "fast" (channels-last, bf16 autocast with the conv
                weights cast once and kept; W+ agrees with the reference to ~1e-2 relative).

        Returns:
            W+ as float32 B×n_styles×style_dim, ``latent_avg`` included (what the reference
            pSp/e4e inference hands to the generator).
        """
        if impl not in IMPLS:
            raise InputError(f"impl={impl!r} is not one of {', '.join(IMPLS)}")
        size = self.input_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise InputError(
                f"the {self.kind} encoder takes B×3×{size}×{size} images in [-1, 1], got "
                f"{tuple(images.shape)}; resize and normalise with vsode.encoders.preprocess"
            )
        ref = self.encoder.input_layer[0].weight
        images = images.to(ref.device, ref.dtype)
        if impl == "reference":
            codes = self.encoder(images)
        else:
            images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16):
                codes = torch.func.functional_call(self.encoder, self._bf16_conv_weights(), (images,), strict=False)
        codes = codes.float()
        if self.start_from_latent_avg:
            codes = codes + self.latent_avg.float()
        assert codes.shape == (images.shape[0], self.n_styles, self.style_dim), codes.shape
        return codes

    def _bf16_conv_weights(self) -> dict[str, torch.Tensor]:
        """The convolution weights cast to bf16, kept for the fast path's next calls.

        Autocast casts a weight that needs no gradient on every call: for IR-SE-50's 262 M conv
        weights that is ~0.3 s per batch on one CPU core, ~8 % of a batch of 8. The copies are
        what autocast would make (the same rounding, so the same codes), cost half the fp32
        weights' memory (~0.5 GB for pSp/e4e), and are remade when a weight changes or moves.
        """
        convs = [(f"{name}.weight", m.weight) for name, m in self.encoder.named_modules() if isinstance(m, nn.Conv2d)]
        stamp = tuple((w.data_ptr(), w._version, w.device) for _, w in convs)
        if getattr(self, "_bf16_stamp", None) != stamp:
            self._bf16_weights = {name: w.detach().to(torch.bfloat16) for name, w in convs}
            self._bf16_stamp = stamp
        return self._bf16_weights

    @property
    def generator(self) -> nn.Module:
        """The checkpoint's own StyleGAN2 decoder as a vsode Generator, built on first access.

        It is then the submodule ``decoder`` (so ``.to()`` moves it too), in eval mode with
        gradients off, with this checkpoint's ``latent_avg`` as its truncation centre (what
        ``load_generator(path, prefix="decoder.")`` gives for the same file).
        """
        if "decoder" not in self._modules:
            if not self._decoder_state:
                raise InputError(f"this {self.kind} checkpoint has no decoder.* weights")
            from .stylegan2 import load_generator  # downstream stage: only when asked for

            generator = load_generator(self._decoder_state)
            n_latent = getattr(generator, "n_latent", self.n_styles)
            style_dim = getattr(generator, "style_dim", self.style_dim)
            if (n_latent, style_dim) != (self.n_styles, self.style_dim):
                raise InputError(
                    f"the checkpoint's decoder takes {n_latent}×{style_dim} W+ but its encoder "
                    f"gives {self.n_styles}×{self.style_dim}"
                )
            if self.latent_avg is not None:
                generator.latent_avg = self.latent_avg.detach().clone()
            ref = self.encoder.input_layer[0].weight
            self.decoder = generator.to(ref.device).eval().requires_grad_(False)
            self._decoder_state = None
        return self.decoder


def _latent_avg_rows(
    latent_avg: torch.Tensor, n_styles: int, style_dim: int = STYLE_DIM
) -> torch.Tensor:
    """(n_styles, D), (1, D) or (D,) → (n_styles, D), as ``latent_avg.repeat(B, 1, 1)``
    broadcasts in the reference."""
    latent_avg = torch.as_tensor(latent_avg).detach().float()
    if tuple(latent_avg.shape) not in ((n_styles, style_dim), (1, style_dim), (style_dim,)):
        raise InputError(
            f"latent_avg has shape {tuple(latent_avg.shape)}; expected ({n_styles}, {style_dim}) "
            f"or ({style_dim},)"
        )
    return latent_avg.reshape(-1, style_dim).expand(n_styles, style_dim).clone()


# --- loading -----------------------------------------------------------------------------------

# opts fields that only one of the two training codes writes (used when encoder_type is absent)
_PSP_ONLY_OPTS = {"output_size", "learn_in_w", "n_styles", "label_nc", "input_nc", "resize_factors"}
_E4E_ONLY_OPTS = {
    "stylegan_size",
    "progressive_steps",
    "progressive_start",
    "progressive_step_every",
    "delta_norm",
    "delta_norm_lambda",
    "w_discriminator_lambda",
    "use_w_pool",
}
_E4E_ONLY_TOP = {"discriminator_state_dict", "discriminator_optimizer_state_dict"}
_ENCODER_MODULES = {"input_layer", "body", "styles", "latlayer1", "latlayer2"}


def load_encoder(
    source: str | os.PathLike | Mapping[str, Any], *, kind: str | None = None
) -> Encoder:
    """Load a pSp (``psp_ffhq_encode.pt``) or e4e (``e4e_ffhq_encode.pt``) checkpoint.

    Args:
        source: a path, or the dict ``torch.load`` returns for one:
            ``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg": ..., "opts": {...}}``.
            A dict's tensors are used as they are (no copy). The sizes are IR-SE-50 at 256²
            unless ``opts["vsode_arch"]`` holds an :meth:`EncoderArch.to_dict` (vsode's demo
            encoder).
        kind: "psp" or "e4e" to override detection. Only needed when ``opts`` has no
            ``encoder_type``: both encoders have the same keys but different forwards.

    Returns:
        An :class:`Encoder` in eval mode with gradients off, on the device of the tensors
        (CPU for a path). Its decoder is built only when ``.generator`` is used.

    Raises:
        InputError: missing or unreadable file, unknown layout (the message names the keys
            found), undeterminable kind, or opts that contradict the weights.
        UnsafeCheckpointError: a file whose pickle would import code (see ``safe_load``).
    """
    if isinstance(source, (str, os.PathLike)):
        name, ckpt = os.fspath(source), safe_load(source, map_location="cpu")  # weights_only
    else:
        name, ckpt = "checkpoint", source
    if not isinstance(ckpt, Mapping):
        raise InputError(f"{name}: expected a dict checkpoint, got {type(ckpt).__name__}")
    if "state_dict" not in ckpt:
        hint = " (a StyleGAN2 generator file, not an encoder)" if "g_ema" in ckpt else ""
        raise InputError(
            f"{name}: not a pSp/e4e checkpoint{hint}: top-level keys are {_some(ckpt)}; "
            "expected 'state_dict', 'opts' and 'latent_avg'"
        )
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{name}: state_dict is a {type(state).__name__}, not a dict of tensors")
    enc_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    dec_state = {k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")}
    if not enc_state:
        raise InputError(f"{name}: no encoder.* keys in state_dict; found {_some(state)}")
    modules = {k.split(".", 1)[0] for k in enc_state}
    if modules != _ENCODER_MODULES:
        raise InputError(
            f"{name}: unsupported encoder layout: encoder.* modules {sorted(modules)} "
            f"(keys {_some(enc_state)}); vsode reads pSp GradualStyleEncoder and e4e "
            f"Encoder4Editing, whose modules are {sorted(_ENCODER_MODULES)}"
        )
    n_heads = _head_count(name, enc_state)

    opts = ckpt.get("opts")
    if isinstance(opts, Namespace):
        opts = vars(opts)
    opts = dict(opts) if isinstance(opts, Mapping) else {}
    kind = _detect_kind(name, kind, opts, ckpt)
    opts = _fill_opts(name, kind, opts, n_heads)
    arch = EncoderArch.from_dict(opts["vsode_arch"]) if "vsode_arch" in opts else IR_SE_50

    start_from_avg = bool(opts.get("start_from_latent_avg", "latent_avg" in ckpt))
    latent_avg = ckpt.get("latent_avg")
    if start_from_avg and latent_avg is None:
        raise InputError(f"{name}: opts.start_from_latent_avg is set but there is no latent_avg")

    if opts.get("input_nc", 3) != 3:
        raise InputError(
            f"{name}: opts.input_nc={opts['input_nc']}: this {kind} model takes "
            f"{opts['input_nc']}-channel inputs (another pSp task); vsode encodes RGB face crops"
        )
    cls = GradualStyleEncoder if kind == "psp" else Encoder4Editing
    with torch.device("meta"):  # no init: every tensor comes from the checkpoint
        net = cls(n_heads, arch=arch)
    layout = "IR-SE-50" if arch == IR_SE_50 else f"IR-SE {arch.to_dict()}"
    check_layout(
        net.state_dict(), enc_state, f"{name}: encoder.* weights do not fit the {kind} {layout} layout",
        hint="" if arch != IR_SE_50 else " (a smaller encoder names its sizes in opts.vsode_arch)",
    )
    net.load_state_dict(enc_state, strict=True, assign=True)
    net.float()
    if latent_avg is not None:
        latent_avg = torch.as_tensor(latent_avg).to(net.input_layer[0].weight.device)
    model = Encoder(
        net,
        kind=kind,
        opts=opts,
        latent_avg=latent_avg,
        start_from_latent_avg=start_from_avg,
        decoder_state=dec_state,
    )
    return model.eval().requires_grad_(False)


def _some(keys: Mapping[str, Any], n: int = 8) -> str:
    names = list(keys)
    more = f" ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(map(str, names[:n])) + more


def _head_count(name: str, enc_state: Mapping[str, Any]) -> int:
    heads = {int(m.group(1)) for k in enc_state if (m := re.match(r"styles\.(\d+)\.", k))}
    if heads != set(range(len(heads))) or not heads:
        raise InputError(
            f"{name}: map2style heads styles.* are not numbered 0..n-1: {sorted(heads)}"
        )
    return len(heads)


def _detect_kind(name: str, kind: str | None, opts: dict, ckpt: Mapping[str, Any]) -> str:
    encoder_type = opts.get("encoder_type")
    if encoder_type is not None and encoder_type not in ENCODER_TYPES:
        raise InputError(
            f"{name}: opts.encoder_type={encoder_type!r} is not supported; vsode reads "
            f"{' and '.join(ENCODER_TYPES)}"
        )
    found = ENCODER_TYPES.get(encoder_type)
    if kind is not None:
        if kind not in ENCODER_TYPES.values():
            raise InputError(f"kind={kind!r} is not one of {', '.join(ENCODER_TYPES.values())}")
        if found is not None and found != kind:
            raise InputError(f"{name}: kind={kind!r} but opts.encoder_type is {encoder_type!r}")
        return kind
    if found is not None:
        return found
    # pSp and e4e share every key, so only what the training code wrote around them can tell
    evidence = {
        "psp": sorted(_PSP_ONLY_OPTS & opts.keys()),
        "e4e": sorted(_E4E_ONLY_OPTS & opts.keys()) + sorted(_E4E_ONLY_TOP & ckpt.keys()),
    }
    if bool(evidence["psp"]) != bool(evidence["e4e"]):
        return "psp" if evidence["psp"] else "e4e"
    raise InputError(
        f"{name}: cannot tell pSp from e4e: opts has no encoder_type and both encoders have the "
        f"same weight keys (but different forwards); opts fields found: "
        f"{sorted(opts) or 'none'}. Pass kind='psp' or kind='e4e'"
    )


def _fill_opts(name: str, kind: str, opts: dict, n_heads: int) -> dict:
    """The reference's defaults, checked against the number of heads in the weights."""
    opts["encoder_type"] = next(k for k, v in ENCODER_TYPES.items() if v == kind)
    if kind == "psp":
        # older pSp files lack these; the official inference code then uses 1024 and False
        opts.setdefault("output_size", 1024)
        opts.setdefault("learn_in_w", False)
        if opts["learn_in_w"]:
            raise InputError(
                f"{name}: opts.learn_in_w=True belongs to pSp's single-w encoders, which vsode "
                "does not read"
            )
        size_field = "output_size"
    else:
        opts.setdefault("stylegan_size", 1024)
        size_field = "stylegan_size"
    size = opts[size_field]
    implied = 2 * int(math.log2(size)) - 2 if isinstance(size, int) and size >= 4 else None
    n_styles = opts.setdefault("n_styles", n_heads)
    if (implied, n_styles) != (n_heads, n_heads):
        raise InputError(
            f"{name}: the weights have {n_heads} map2style heads but opts say {size_field}="
            f"{size} ({implied} styles) and n_styles={n_styles}"
        )
    return opts


# --- input -------------------------------------------------------------------------------------


def preprocess(images: Any, size: int = INPUT_SIZE) -> torch.Tensor:
    """Aligned face crops → the encoders' input, B×3×size×size float32 in [-1, 1].

    The reference runs torchvision ``Resize((256, 256))`` on a PIL image (bilinear), ``ToTensor``
    and ``Normalize(0.5, 0.5)``. Here the resize is torch's bilinear with ``antialias=True``, which
    is PIL's algorithm (a triangle filter widened by the scale when downscaling; plain
    ``F.interpolate`` without antialiasing would alias on downscaling). uint8 images go through
    torch's uint8 kernel on the CPU, which also copies PIL's two-pass 8-bit rounding: it agrees
    with PIL to within one 8-bit level on under 1 % of the pixels (exact on most sizes). Float
    images are resized in float, without that rounding.

    Args:
        images: uint8 (0-255) or float (0-1) tensor or array (a PIL image works too), one image or
            a batch, channels-first (``(B,) 3 H W``) or channels-last (``(B,) H W 3``).
        size: output side (the encoders take 256).

    Returns:
        A float32 tensor on the input's device (CPU for arrays), a batch of one for one image.
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[-1]):
        raise InputError(f"expected RGB images as (B,) 3 H W or (B,) H W 3, got {tuple(x.shape)}")
    if x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)  # B H W 3 -> B 3 H W
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise InputError(f"expected uint8 or float images, got {x.dtype}")
    resize = dict(size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if x.dtype == torch.uint8:
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x.cpu(), **resize).to(x.device)
        x = x.float() / 255
    else:
        x = x.float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, **resize)
    return ((x - 0.5) / 0.5).contiguous()
