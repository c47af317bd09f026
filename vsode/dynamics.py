"""Frames → the dynamics latent z_d(τ): frame encoder, reverse-time ODE-ConvGRU, latent ODE, tokens.

This is the motion stage of VidStyleODE (design doc §1, released ``VideoEncoderWLatentODE``):

1. :meth:`Dynamics.features`: every observed frame (values in [0, 1], resized bicubically to
   ``img_size``) goes through a Swapping-Autoencoder ResNet in one batched pass and becomes an
   L2-normalised ``state_channels``-channel map on a grid ``img_size / 2**n_downsampling``.
2. :meth:`Dynamics.encode`: a ConvGRU runs backwards over the frames, from the last to the first,
   with one explicit Euler step of the encoder ODE ``f_enc`` across every gap between frames.
   The mean half of ``transform_z0`` of its final hidden state is ``z_d0``.
3. :meth:`Dynamics.solve`: the decoder ODE ``dz/dτ = f_dec(z)`` is integrated with torchdiffeq
   from ``z_d0`` to every requested τ (one ``odeint`` call for τ ≥ 0, one backwards for τ < 0),
   and a 1×1 conv lifts each state to ``token_dim`` channels; the grid cells become tokens.

Time convention. τ is normalised time (the design fixes τ = (t − t_first_observed) / time_unit;
this module never sees seconds). :meth:`encode` takes the observed frames' τ, which only enter
through the Euler step lengths, and returns the state at ``times[0]``, the first frame given.
:meth:`solve` measures τ from that same instant: ``τ = 0`` is ``z_d0`` itself, τ > 0 runs
forwards (interpolation between and extrapolation after the observations) and τ < 0 backwards.

The released code runs the GRU and both ODE nets in float64; here that is ``DynamicsConfig.dtype``
(float32 by default). The ResNet and the token lift stay float32, as released.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchdiffeq import odeint

from .errors import InputError, SolverError
from .ops import FusedLeakyReLU

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# torchdiffeq's step-size-adapting solvers (they take rtol, atol and max_num_steps) ...
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
# ... and its fixed-grid ones (they step from output time to output time).
FIXED_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
METHODS = ADAPTIVE_METHODS + FIXED_METHODS


def time_major(x: torch.Tensor) -> torch.Tensor:
    """B T ... → (T·B) ..., row ``t·B + b``: the design doc's time-major flattening."""
    if x.ndim < 2:
        raise InputError(f"time_major needs a B T ... tensor, got shape {tuple(x.shape)}")
    return x.transpose(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def batch_major(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(T·B) ... → B T ...: the inverse of :func:`time_major` for a batch of ``batch`` videos."""
    if x.ndim < 1 or batch < 1 or x.shape[0] % batch:
        raise InputError(f"batch_major: {tuple(x.shape)} rows do not split into batch={batch}")
    return x.reshape(x.shape[0] // batch, batch, *x.shape[1:]).transpose(0, 1)


# --- config --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DynamicsConfig:
    """Sizes and solver settings of :class:`Dynamics` (defaults: the released RAVDESS encoder).

    Parameters
    ----------
    img_size: (H, W) the frames are resized to (bicubic, align_corners=False, no clamp).
    n_downsampling: ResNet blocks, each halving the size: grid = img_size / 2**n_downsampling.
    base_channels: ResNet widths are base_channels·2**i, i = 0..n_downsampling.
    state_channels: channels C of the ODE state z_d (released ``spatial_code_ch``).
    ode_hidden: width of the f_enc / f_dec conv nets (released ``n_units``).
    ode_layers: hidden-to-hidden convs of f_enc / f_dec (released ``n_layers``; +2 convs in all).
    token_dim: channels of the 1×1 token lift (released ``dynamic_latent_out_dim``).
    dtype: "float32" or "float64": the ConvGRU, f_enc, f_dec, transform_z0 and the states.
    method, rtol, atol: torchdiffeq solver of the decoder ODE (released: dopri5, 1e-3, 1e-4).
    max_num_steps: cap on the solver steps between two consecutive output times (torchdiffeq's
        option; adaptive methods only); None = torchdiffeq's default (no practical cap).
    first_step: length of the reverse Euler step taken from h = 0 before the last frame.
    zero_bias: start the ConvGRU, ``transform_z0``, both ODE nets and the token lift with zero
        biases (released: PyTorch's default init). With the default biases the tokens of
        different clips differ by about 0.1 % of their energy at the start, which a small model
        trained briefly does not get past (``scripts/diagnose_demo_motion.py``).
    free_channels: trailing state channels that the token lift does not read and that the
        training's state term leaves free (0 as released: the lift reads every channel). The
        leading channels are the ODE's observed part, pulled towards the frames' features; the free
        ones can hold what a single frame does not show, such as which way a head is moving, which
        a first-order ODE needs to carry a pose that passes the same point both ways (a vsode
        addition; ``scripts/diagnose_demo_motion.py``).
    """

    img_size: tuple[int, int] = (128, 128)
    n_downsampling: int = 4
    base_channels: int = 32
    state_channels: int = 256
    ode_hidden: int = 128
    ode_layers: int = 2
    token_dim: int = 512
    dtype: str = "float32"
    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-4
    max_num_steps: int | None = None
    first_step: float = 0.01
    zero_bias: bool = False
    free_channels: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.img_size, Sequence) and not isinstance(self.img_size, str):
            object.__setattr__(self, "img_size", tuple(self.img_size))
        problems = []
        minimum = {"n_downsampling": 1, "base_channels": 1, "state_channels": 1,
                   "ode_hidden": 1, "ode_layers": 0, "token_dim": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be an integer ≥ {low}, not {value!r}")
        if not problems:
            f = 2**self.n_downsampling
            size = self.img_size
            ok = isinstance(size, tuple) and len(size) == 2 and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= f and s % f == 0
                for s in size
            )
            if not ok:
                problems.append(f"img_size {size!r} must be two multiples of "
                                f"2**n_downsampling = {f} (e.g. [128, 128] or [128, 96])")
        if self.dtype not in DTYPES:
            problems.append(f"dtype {self.dtype!r} must be one of {list(DTYPES)}")
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} is not a torchdiffeq solver; use one of "
                            f"{', '.join(METHODS)}")
        for name in ("rtol", "atol", "first_step"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                    math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a finite number > 0, not {value!r}")
        steps = self.max_num_steps
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                problems.append(f"max_num_steps must be None or an integer ≥ 1, not {steps!r}")
            elif self.method not in ADAPTIVE_METHODS:
                problems.append(f"max_num_steps only applies to the adaptive methods "
                                f"({', '.join(ADAPTIVE_METHODS)}); set it to None for "
                                f"{self.method!r}")
        free = self.free_channels
        if isinstance(free, bool) or not isinstance(free, int) or not (
                0 <= free < (self.state_channels if isinstance(self.state_channels, int) else 1)):
            problems.append(f"free_channels must be an integer in 0..state_channels-1, not {free!r}")
        if not isinstance(self.zero_bias, bool):
            problems.append(f"zero_bias must be true or false, not {self.zero_bias!r}")
        if problems:
            raise InputError("bad dynamics config: " + "; ".join(problems))

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the state grid: img_size / 2**n_downsampling."""
        f = 2**self.n_downsampling
        return self.img_size[0] // f, self.img_size[1] // f

    @property
    def n_tokens(self) -> int:
        """Tokens per frame: h·w grid cells."""
        h, w = self.grid
        return h * w

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (img_size as a list)."""
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DynamicsConfig":
        """Inverse of :meth:`to_dict`; unknown or malformed fields are an :class:`InputError`."""
        if not isinstance(data, Mapping):
            raise InputError(f"dynamics config is a {type(data).__name__}, not a dict")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise InputError(f"dynamics config has unknown fields {unknown}; "
                             f"known: {sorted(fields)}")
        kwargs = dict(data)
        if "img_size" in kwargs:
            if not isinstance(kwargs["img_size"], Sequence) or isinstance(kwargs["img_size"], str):
                raise InputError(f"dynamics config img_size must be a list [H, W], "
                                 f"not {kwargs['img_size']!r}")
            kwargs["img_size"] = tuple(kwargs["img_size"])
        return cls(**kwargs)


# --- frame encoder (Swapping Autoencoder's ResNet, rosinality equalised-LR layers) ----------------


class EqualConv2d(nn.Module):
    """rosinality ``EqualConv2d``: weight N(0, 1) stored raw, used as W/√fan_in; bias starts at 0.

    Padding and stride are applied by the owning :class:`ConvLayer`."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel={k}, bias={self.bias is not None}"


class Blur(nn.Module):
    """Swapping Autoencoder ``Blur`` with its one-tap kernel ``[1]`` (kept for the key layout).

    A 1×1 FIR kernel is a gain, so :class:`ConvLayer` folds it into the conv weight."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.ones(1, 1))


class ConvLayer(nn.Module):
    """Swapping Autoencoder ``ConvLayer``: [pad] → EqualConv2d → [FusedLeakyReLU].

    ``pad``: reflection pad (left, right, top, bottom) before the conv; ``crop``: drop the last
    row and column (the skip path's negative pad); ``blur``: a ``Blur`` child (the down convs);
    ``act``: a FusedLeakyReLU carrying the bias, else the conv has its own bias when ``bias``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1,
                 pad: tuple[int, int, int, int] | None = None, crop: bool = False,
                 blur: bool = False, act: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.pad, self.crop, self.stride = pad, crop, stride
        if blur:
            self.Blur = Blur()
        self.Conv = EqualConv2d(in_ch, out_ch, kernel, bias=bias and not act)
        if act:
            self.Act = FusedLeakyReLU(out_ch, impl="auto")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad, mode="reflect")
        if self.crop:
            x = x[..., :-1, :-1]
        weight = self.Conv.weight * self.Conv.scale
        if hasattr(self, "Blur"):
            weight = weight * self.Blur.kernel.to(weight.dtype)
        x = F.conv2d(x, weight, self.Conv.bias, stride=self.stride)
        return self.Act(x) if hasattr(self, "Act") else x


class ResBlock(nn.Module):
    """Swapping Autoencoder ``ResBlock`` (reflection padding, blur ``[1]``), halving the size.

    conv2 pads only the top and left by 1 before its stride-2 3×3 conv; the skip is a 1×1
    stride-2 conv without bias on the even pixels; the output is (conv path + skip)/√2."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, pad=(1, 1, 1, 1))
        self.conv2 = ConvLayer(in_ch, out_ch, 3, stride=2, pad=(1, 0, 1, 0), blur=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, stride=2, crop=True, blur=True, act=False,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) * (1 / math.sqrt(2))


class ResnetEncoder(nn.Module):
    """The per-frame spatial encoder: released ``ResnetEncoder`` (``image_encoder.py``), i.e.
    Swapping Autoencoder's ``StyleGAN2ResnetEncoder`` without its texture branch.

    B 3 H W → B C H/2**n W/2**n, L2-normalised over channels at every cell."""

    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        n, base = config.n_downsampling, config.base_channels
        nc = [base * 2**i for i in range(n + 1)]
        self.FromRGB = ConvLayer(3, nc[0], 1)
        self.DownToSpatialCode = nn.Sequential()
        for i in range(n):
            self.DownToSpatialCode.add_module(f"ResBlockDownBy{2**i}", ResBlock(nc[i], nc[i + 1]))
        self.ToSpatialCode = nn.Sequential(
            ConvLayer(nc[n], nc[n], 1),
            ConvLayer(nc[n], config.state_channels, 1, act=False, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.ToSpatialCode(self.DownToSpatialCode(self.FromRGB(x)))
        return v * torch.rsqrt(v.pow(2).sum(dim=1, keepdim=True) + 1e-8)


# --- ODE functions and the ConvGRU ---------------------------------------------------------------


class ODEFunc(nn.Module):
    """An autonomous conv ODE function dz/dτ = net(z): released ``ODEFunc`` (Vid-ODE) built by
    ``create_convnet``: 3×3 convs state→hidden→…→state with tanh between, PyTorch default init.

    ``nfe`` counts the evaluations since the last reset."""

    def __init__(self, channels: int, hidden: int, n_layers: int, dtype: torch.dtype) -> None:
        super().__init__()
        widths = [channels] + [hidden] * (n_layers + 1) + [channels]
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            if i:
                layers.append(nn.Tanh())
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, dtype=dtype))
        self.gradient_net = nn.Sequential(*layers)
        self.nfe = 0

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.gradient_net(z)


class ConvGRUCell(nn.Module):
    """Released ``ConvGRUCell`` (Vid-ODE): 3×3 conv gates over concat[x, h].

    r, u = σ(conv_gates[x, h]); c = tanh(conv_can[x, r⊙h]); h' = (1−u)⊙h + u⊙c.
    """

    def __init__(self, channels: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv_gates = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, dtype=dtype)
        self.conv_can = nn.Conv2d(2 * channels, channels, 3, padding=1, dtype=dtype)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, update = torch.sigmoid(self.conv_gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        cand = torch.tanh(self.conv_can(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * cand


# --- the stage -----------------------------------------------------------------------------------


class Dynamics(nn.Module):
    """The dynamics encoder and latent ODE: released ``VideoEncoderWLatentODE`` (``bVAE_enc``).

    Sub-modules (the released names are a prefix rename away; design doc §16):
    ``frame_encoder`` = ``swapae_encoder``, ``ode_enc`` = ``z0_diffeq_solver.ode_func``,
    ``gru`` = ``encoder_z0.cell_list.0``, ``transform_z0`` = ``encoder_z0.transform_z0``,
    ``ode_dec`` = ``diffeq_solver.ode_func``, ``to_tokens`` = ``conv1x1``.
    """

    def __init__(self, config: DynamicsConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else DynamicsConfig()
        dt, c = config.torch_dtype, config.state_channels
        self.frame_encoder = ResnetEncoder(config)
        self.ode_enc = ODEFunc(c, config.ode_hidden, config.ode_layers, dt)
        self.gru = ConvGRUCell(c, dt)
        self.transform_z0 = nn.Sequential(
            nn.Conv2d(c, c, 1, dtype=dt), nn.ReLU(), nn.Conv2d(c, 2 * c, 1, dtype=dt)
        )
        self.ode_dec = ODEFunc(c, config.ode_hidden, config.ode_layers, dt)
        self.to_tokens = nn.Conv2d(c, config.token_dim, 1)
        if config.zero_bias:
            for module in (*self.gru.modules(), *self.transform_z0.modules(), *self.ode_enc.modules(),
                           *self.ode_dec.modules(), self.to_tokens):
                if isinstance(module, nn.Conv2d):
                    nn.init.zeros_(module.bias)

    # dtypes are read from the parameters, so .to(device) and .double() keep them consistent
    @property
    def state_dtype(self) -> torch.dtype:
        """dtype of the GRU, the ODE nets and the states (``config.dtype`` as built)."""
        return self.gru.conv_gates.weight.dtype

    @property
    def nfe(self) -> int:
        """Evaluations of f_dec since :meth:`reset_nfe` (or construction)."""
        return self.ode_dec.nfe

    def reset_nfe(self) -> None:
        """Restart the f_dec evaluation count."""
        self.ode_dec.nfe = 0

    # --- checks ----------------------------------------------------------------------------------

    def _check_frames(self, frames: torch.Tensor) -> None:
        if not torch.is_tensor(frames) or frames.ndim != 5 or frames.shape[2] != 3 or \
                min(frames.shape) < 1 or not frames.is_floating_point():
            shape = tuple(frames.shape) if torch.is_tensor(frames) else type(frames).__name__
            raise InputError(f"frames must be a float B×T×3×H×W tensor in [0, 1], got {shape}")

    def _check_times(self, times: torch.Tensor | Sequence[float], n_frames: int) -> list[float]:
        ts = _as_times(times, "frame times")
        if len(ts) != n_frames:
            raise InputError(f"frame times have {len(ts)} values for {n_frames} frames")
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise InputError(f"frame times must be strictly increasing, got {ts}")
        return ts

    def _check_mask(self, mask: torch.Tensor | Sequence[float] | None, batch: int,
                    n_frames: int) -> list[list[float]] | None:
        """Mask → per frame, per video 0/1 floats (None: all observed)."""
        if mask is None:
            return None
        m = torch.as_tensor(mask)
        if m.shape == (n_frames,) or m.shape == (n_frames, 1):
            m = m.reshape(1, n_frames).expand(batch, n_frames)
        elif m.shape != (batch, n_frames):
            raise InputError(f"mask has shape {tuple(m.shape)}; expected (T,), (T, 1) or (B, T) "
                             f"= ({n_frames},), ({n_frames}, 1) or ({batch}, {n_frames})")
        values = m.detach().to("cpu", torch.float64).t().tolist()  # T lists of B
        if any(v not in (0.0, 1.0) for row in values for v in row):
            raise InputError("mask values must be 0 (hidden from the encoder) or 1 (observed)")
        return values

    # --- stages ----------------------------------------------------------------------------------

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame spatial codes, all B·T frames in one ResNet pass.

        Parameters
        ----------
        frames: B×T×3×H×W in [0, 1], any H×W (resized bicubically to ``img_size``, unclamped).

        Returns B×T×C×h×w in the state dtype.
        """
        self._check_frames(frames)
        b, t = frames.shape[:2]
        param = self.frame_encoder.FromRGB.Conv.weight
        x = frames.reshape(b * t, *frames.shape[2:]).to(param.device, param.dtype)
        if tuple(x.shape[-2:]) != self.config.img_size:
            x = F.interpolate(x, size=self.config.img_size, mode="bicubic", align_corners=False)
        v = self.frame_encoder(x)  # (B·T) C h w
        return v.reshape(b, t, *v.shape[1:]).to(self.state_dtype)

    def encode(self, frames: torch.Tensor, times: torch.Tensor | Sequence[float],
               mask: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
        """z_d0, the dynamics state at ``times[0]``, from observed frames.

        Parameters
        ----------
        frames: B×T×3×H×W in [0, 1].
        times: (T,) normalised times of the frames, strictly increasing, shared by the batch.
        mask: None (all observed), (T,), (T, 1) or (B, T) of 0/1; a 0 frame is still encoded
            but skips its GRU update, so the state just flows through the Euler step.

        Returns B×C×h×w in the state dtype.
        """
        self._check_frames(frames)
        b, t = frames.shape[:2]
        self._check_times(times, t)
        self._check_mask(mask, b, t)
        return self.encode_features(self.features(frames), times, mask)

    def encode_features(self, feats: torch.Tensor, times: torch.Tensor | Sequence[float],
                        mask: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
        """:meth:`encode` from :meth:`features` output (B×T×C×h×w); released
        ``Encoder_z0_ODE_ConvGRU.forward``, mean half of ``transform_z0`` only."""
        c = self.config.state_channels
        if not torch.is_tensor(feats) or feats.ndim != 5 or feats.shape[2] != c or \
                min(feats.shape) < 1:
            shape = tuple(feats.shape) if torch.is_tensor(feats) else type(feats).__name__
            raise InputError(f"features must be B×T×{c}×h×w, got {shape}")
        b, n = feats.shape[:2]
        ts = self._check_times(times, n)
        masks = self._check_mask(mask, b, n)
        feats = feats.to(self.state_dtype)
        h = feats.new_zeros(b, *feats.shape[2:])
        t_prev, t_cur = ts[-1] + self.config.first_step, ts[-1]
        for i in reversed(range(n)):
            h = h + self.ode_enc(t_prev, h) * (t_cur - t_prev)  # one Euler step, backwards in time
            m = None if masks is None else masks[i]
            if m is None or any(m):
                h_new = self.gru(feats[:, i], h)
                if m is None or all(m):
                    h = h_new
                else:
                    w = torch.tensor(m, dtype=h.dtype, device=h.device).view(b, 1, 1, 1)
                    h = w * h_new + (1 - w) * h
            if i:
                t_prev, t_cur = ts[i], ts[i - 1]
        hidden = torch.relu(self.transform_z0[0](h))
        last = self.transform_z0[2]  # its first C output channels are the mean
        return F.conv2d(hidden, last.weight[:c], last.bias[:c])

    def solve(self, z_d0: torch.Tensor,
              times: torch.Tensor | Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """z_d(τ) = z_d0 + ∫₀^τ f_dec(z) dτ' at every requested τ, and their tokens.

        Parameters
        ----------
        z_d0: B×C×h×w, the state at τ = 0 (from :meth:`encode`).
        times: (Tq,) normalised τ relative to the first observed frame: any real values, any
            order, repeats allowed. All τ > 0 are answered by one ``odeint`` call from 0 (dense
            output, so more output times cost almost no evaluations), all τ < 0 by one call
            backwards from 0; τ = 0 returns ``z_d0`` itself.

        Returns (states B×Tq×C×h×w in the state dtype, tokens (Tq·B)×(h·w)×token_dim float32,
        row t·B + b, cell row·w + col).
        """
        c, grid = self.config.state_channels, self.config.grid
        if not torch.is_tensor(z_d0) or z_d0.ndim != 4 or z_d0.shape[1] != c or \
                tuple(z_d0.shape[2:]) != grid or z_d0.shape[0] < 1:
            shape = tuple(z_d0.shape) if torch.is_tensor(z_d0) else type(z_d0).__name__
            raise InputError(f"z_d0 must be B×{c}×{grid[0]}×{grid[1]}, got {shape}")
        z0 = z_d0.to(self.state_dtype)
        tq = torch.as_tensor(_as_times(times, "query times"), dtype=z0.dtype).tolist()
        pos = sorted({t for t in tq if t > 0})
        neg = sorted({t for t in tq if t < 0}, reverse=True)
        table = [z0.unsqueeze(0)]  # row 0: τ = 0, then the τ > 0, then the τ < 0
        for part in (pos, neg):
            if part:
                grid_t = torch.tensor([0.0] + part, dtype=z0.dtype, device=z0.device)
                table.append(self.integrate(z0, grid_t)[1:])
        row = {0.0: 0}
        row.update({t: 1 + k for k, t in enumerate(pos)})
        row.update({t: 1 + len(pos) + k for k, t in enumerate(neg)})
        index = torch.tensor([row[t] for t in tq], device=z0.device)
        states = torch.cat(table).index_select(0, index).transpose(0, 1)  # B Tq C h w
        return states, self.tokens(states)

    def integrate(self, z0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The decoder ODE from ``z0`` (B×C×h×w, state dtype) over a strictly monotonic grid ``t``
        whose first entry is z0's time: one ``odeint`` call, (len(t))×B×C×h×w. :meth:`solve` is
        the friendly form; this one lets callers keep the compact table of distinct times."""
        cfg = self.config
        options = None if cfg.max_num_steps is None else {"max_num_steps": cfg.max_num_steps}
        try:
            return odeint(self.ode_dec, z0, t, rtol=cfg.rtol, atol=cfg.atol, method=cfg.method,
                          options=options)
        except AssertionError as exc:  # torchdiffeq reports a step cap or dt underflow this way
            raise SolverError(f"the dynamics ODE solve failed ({exc}); raise max_num_steps or "
                             f"loosen rtol/atol (now {cfg.rtol}/{cfg.atol})") from exc

    @property
    def observed_channels(self) -> int:
        """The leading state channels the token lift reads and the state term supervises."""
        return self.config.state_channels - self.config.free_channels

    def tokens(self, states: torch.Tensor) -> torch.Tensor:
        """B×Tq×C×h×w states → (Tq·B)×(h·w)×token_dim tokens: time-major rows, row-major cells,
        after the float32 1×1 lift (released ``conv1x1`` and the tokenisation of ``forward``).
        With ``free_channels`` the lift reads the leading :attr:`observed_channels` only."""
        c = self.config.state_channels
        if not torch.is_tensor(states) or states.ndim != 5 or states.shape[2] != c:
            shape = tuple(states.shape) if torch.is_tensor(states) else type(states).__name__
            raise InputError(f"states must be B×Tq×{c}×h×w, got {shape}")
        x = time_major(states).to(self.to_tokens.weight.dtype)  # (Tq·B) C h w
        if self.config.free_channels:
            k = self.observed_channels
            x = F.conv2d(x[:, :k], self.to_tokens.weight[:, :k], self.to_tokens.bias)
        else:
            x = self.to_tokens(x)  # (Tq·B) D h w
        return x.flatten(2).transpose(1, 2)  # (Tq·B) hw D


def _as_times(times: torch.Tensor | Sequence[float], what: str) -> list[float]:
    """A non-empty 1-D sequence of finite floats, as Python floats (float64)."""
    try:
        t = times.detach() if torch.is_tensor(times) else times
        t = torch.as_tensor(t, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{what} must be a 1-D float tensor, not {type(times).__name__}") from None
    if t.ndim != 1 or t.numel() == 0:
        raise InputError(f"{what} must be a non-empty 1-D tensor, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InputError(f"{what} must be finite, got {t.tolist()}")
    return t.cpu().tolist()
