"""A tiny CNN that reads the demo world's motion off a frame: mouth opening, head position, eyes.

The scores of ``vsode demo`` / ``vsode eval`` compare the motion of a generated video with the
renderer's ground truth (:mod:`vsode.demo.scores`). Nothing but the pixels of a generated video
is known, so this regressor measures, per 64 px frame, the renderer's motion parameters:

- ``mouth_open`` in [0, 1] (:meth:`VideoParams.motion`'s channel),
- ``head_x``, ``head_y`` in image half-widths,
- ``eye_open`` = 1 − ``blink`` in [0, 1].

It is trained on renders of random demo videos at random times (:func:`train_regressor`), a quarter
of each batch passing through the built-in ``psp-demo`` autoencoder first so that it reads
generated frames as well as renders, and shipped as ``vsode/assets/demo/regressor-demo.pt``
(``vsode/demo-regressor@1``: config + fp16 weights, loads with ``weights_only=True``). Reproduce
it with ``python scripts/train_demo_regressor.py --out vsode/assets/demo --seed 0``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..progress import Progress, ensure
from .world import VideoParams, render_times, sample_params

FORMAT = "vsode/demo-regressor@1"
CHANNELS = ("mouth_open", "head_x", "head_y", "eye_open")
ASSET = "assets/demo/regressor-demo.pt"  # inside the vsode package
RESTYLED = "stylegan2-demo-poster"  # the fine-tune whose renders the regressor also learns to read
# Held-out seeds start here; training draws its videos from the seeds below.
HELD_OUT_SEED = 2_000_000_000
_MAX_TIME = 20.0  # training and evaluation frames are drawn from [0, 20) s


@dataclass(frozen=True)
class RegressorConfig:
    """The regressor's architecture and the scaling of its outputs.

    Attributes:
        size: input side in pixels (frames of other sizes are resized to it).
        widths: channels of the 3×3 convolutions, each halving the resolution (the last map is
            ``size / 2**len(widths)`` square).
        hidden: width of the hidden fully connected layer.
        channels: the motion channels it outputs, in order.
        mean, std: per channel, ``value = mean + std · output`` (targets are about unit-scaled).
    """

    size: int = 64
    widths: tuple[int, ...] = (24, 32, 64, 64)
    hidden: int = 64
    channels: tuple[str, ...] = CHANNELS
    mean: tuple[float, ...] = (0.5, 0.0, 0.0, 0.5)
    std: tuple[float, ...] = (0.5, 0.12, 0.07, 0.5)

    def __post_init__(self) -> None:
        for name in ("widths", "channels", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not (len(self.channels) == len(self.mean) == len(self.std)):
            raise InputError(f"regressor config: channels {self.channels} must be among {CHANNELS}, one mean/std each")
        if not self.widths or self.size % 2 ** len(self.widths):
            raise InputError(f"regressor config: size {self.size} must be divisible by 2**{len(self.widths)}")


class MotionRegressor(nn.Module):
    """Frames (``B×3×size×size`` in [0, 1]) → the motion channels of :class:`RegressorConfig`.

    3×3 convolutions with stride 2 (SiLU) down to a small square map whose flattening feeds two
    linear layers: positions need the map's layout, not a global pool.
    """

    def __init__(self, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config or RegressorConfig()
        layers: list[nn.Module] = []
        c_in = 3
        for width in self.config.widths:
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1), nn.SiLU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        cells = (self.config.size // 2 ** len(self.config.widths)) ** 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * cells, self.config.hidden), nn.SiLU(),
            nn.Linear(self.config.hidden, len(self.config.channels)),
        )
        self.register_buffer("mean", torch.tensor(self.config.mean), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.std), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised outputs (``B×channels``); :meth:`measure` gives the motion in its units."""
        size = self.config.size
        assert frames.ndim == 4 and tuple(frames.shape[1:]) == (3, size, size), tuple(frames.shape)
        return self.head(self.features(frames * 2 - 1))

    @torch.no_grad()
    def measure(self, frames: torch.Tensor, *, batch_size: int = 256) -> dict[str, np.ndarray]:
        """The motion of each frame: ``{channel: float64 array of T}`` in the renderer's units.

        Args:
            frames: ``T×3×H×W`` RGB in [0, 1], square; resized to the regressor's size if needed.
            batch_size: frames per forward pass.
        """
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[-1] != frames.shape[-2]:
            raise InputError(f"the motion regressor reads square RGB frames T×3×S×S, got {tuple(frames.shape)}")
        device = self.mean.device
        out = []
        for start in range(0, frames.shape[0], batch_size):
            x = frames[start : start + batch_size].to(device, torch.float32)
            out.append(self(resize(x, self.config.size)) * self.std + self.mean)
        values = torch.cat(out).double().cpu().numpy() if out else np.zeros((0, len(self.config.channels)))
        return {name: values[:, i] for i, name in enumerate(self.config.channels)}

    def checkpoint(self, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This regressor as a ``vsode/demo-regressor@1`` dict of plain types (fp16 weights)."""
        state = {k: v.detach().to(torch.float16).cpu().clone() for k, v in self.state_dict().items()}
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.config).items()}
        return {"format": FORMAT, "config": config, "state_dict": state, **(extra or {})}


def resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Square frames to ``size``×``size`` (antialiased bilinear); unchanged when already that size."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def true_motion(params: VideoParams, times: Any) -> dict[str, np.ndarray]:
    """The ground truth of :data:`CHANNELS` at ``times``: the renderer's motion, ``eye_open`` = 1 − blink."""
    m = params.motion(times)
    return {"mouth_open": m["mouth_open"], "head_x": m["head_x"], "head_y": m["head_y"], "eye_open": 1 - m["blink"]}


def default_path() -> Path:
    """The shipped weights inside the package."""
    from importlib.resources import files

    return Path(str(files("vsode").joinpath(ASSET)))


def load_regressor(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> MotionRegressor:
    """Load a ``vsode/demo-regressor@1`` checkpoint (default: the shipped one), strictly, in eval mode."""
    from ..checkpoints.load import safe_load

    path = default_path() if path is None else Path(path)
    ckpt = safe_load(path, map_location="cpu")
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise InputError(f"{path} is not a demo motion regressor ({FORMAT}; found {found!r})")
    try:
        model = MotionRegressor(RegressorConfig(**ckpt["config"]))
        model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()}, strict=True)
    except (KeyError, TypeError, RuntimeError) as err:
        raise InputError(f"{path}: the regressor's weights do not fit its config ({err})") from None
    return model.to(device).eval().requires_grad_(False)


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressorTraining:
    """How :func:`train_regressor` trains (the flags of ``scripts/train_demo_regressor.py``).

    Attributes:
        seed: seeds the weights, the videos and the times drawn.
        steps, batch_size, lr: Adam with a cosine decay to zero after ``warmup`` linear steps.
        videos_per_batch: distinct demo videos per batch (the rest are other times of the same).
        recon_share: share of each batch taken from a pool of ``psp-demo`` reconstructions
            (``recon_pool`` frames, made once before training), so generated frames read right.
        restyled_share: share of that pool decoded by :data:`RESTYLED` instead of the encoder's
            own generator (the same W+ in the posterised style), so the motion of a restyled
            output (``--generator stylegan2-demo-poster``) reads as that of the unswapped one.
        eval_frames: held-out renders (and their reconstructions) scored at the end.
        eval_videos: held-out 3 s clips at 24 fps whose trajectories are correlated with the truth.
    """

    seed: int = 0
    steps: int = 2500
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    videos_per_batch: int = 8
    recon_share: float = 0.25
    recon_pool: int = 2048
    restyled_share: float = 0.5
    eval_frames: int = 1024
    eval_videos: int = 32

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.videos_per_batch < 1 or self.lr <= 0:
            raise InputError("regressor training: steps, batch size, videos per batch and lr must be positive")
        if not 0 <= self.recon_share < 1:
            raise InputError(f"recon_share {self.recon_share} must be in [0, 1)")
        if not 0 <= self.restyled_share <= 1:
            raise InputError(f"restyled_share {self.restyled_share} must be in [0, 1]")


def _render_batch(rng: np.random.Generator, videos: int, frames: int, size: int,
                  seed_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``videos`` random demo videos (seeds from ``rng``) at ``frames`` random times each."""
    images, targets = [], []
    per = [frames // videos + (i < frames % videos) for i in range(videos)]
    for count in per:
        if count == 0:
            continue
        params = sample_params(seed_offset + int(rng.integers(0, HELD_OUT_SEED)))
        t = rng.uniform(0.0, _MAX_TIME, count)
        images.append(render_times(params, t, size=size))
        m = true_motion(params, t)
        targets.append(torch.from_numpy(np.stack([m[c] for c in CHANNELS], axis=1)).float())
    return torch.cat(images), torch.cat(targets)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur, gain/offset and noise of the amounts a generated frame differs from a render by."""
    b = x.shape[0]
    sigma = torch.rand(b, generator=g) * 1.0
    k = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-(k[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # B 5
    blurred = x
    for dim in (2, 3):  # separable, per image
        pad = [2, 2, 0, 0] if dim == 3 else [0, 0, 2, 2]
        padded = F.pad(blurred, pad, mode="replicate")
        taps = [padded.narrow(dim, i, x.shape[dim]) for i in range(5)]
        blurred = sum(kernel[:, i].view(b, 1, 1, 1) * taps[i] for i in range(5))
    gain = 1 + 0.1 * (torch.rand(b, 3, 1, 1, generator=g) - 0.5)
    offset = 0.06 * (torch.rand(b, 3, 1, 1, generator=g) - 0.5)
    noise = torch.randn(x.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g) * 0.03
    return (blurred * gain + offset + noise).clamp(0, 1)


def _reconstruct(frames: torch.Tensor, encoder: Any, batch_size: int = 64, generator: Any = None) -> torch.Tensor:
    """Frames through the ``psp-demo`` encoder and its decoder, or ``generator`` (a fine-tune of
    it sharing its W space), at the frames' size."""
    from ..invert import synthesize_at

    generator = encoder.generator if generator is None else generator
    out = []
    with torch.no_grad():
        for start in range(0, frames.shape[0], batch_size):
            x = frames[start : start + batch_size] * 2 - 1
            w = encoder.encode(resize(x, encoder.input_size))
            out.append((synthesize_at(generator, w, frames.shape[-1]).clamp(-1, 1) + 1) / 2)
    return torch.cat(out) if out else frames.new_zeros((0, *frames.shape[1:]))


def _restyled_generator() -> Any:
    from ..checkpoints.cache import resolve
    from ..stylegan2 import load_generator

    return load_generator(resolve(RESTYLED)).eval().requires_grad_(False)


def _lr_at(step: int, opts: RegressorTraining) -> float:
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    progress = (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return opts.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_regressor(
    options: RegressorTraining | None = None, *, progress: Progress | None = None, **overrides: Any
) -> tuple[MotionRegressor, dict[str, Any]]:
    """Train a :class:`MotionRegressor` from scratch on renders; returns it and its held-out metrics.

    Deterministic for a seed, torch build and thread count. ``overrides`` are fields of
    :class:`RegressorTraining` (``train_regressor(steps=100)``). Metrics: see
    :func:`evaluate_regressor`, plus ``final_loss``.
    """
    from ..checkpoints.cache import resolve
    from ..encoders import load_encoder

    opts = dataclasses.replace(options or RegressorTraining(), **overrides)
    progress = ensure(progress)
    rng = np.random.default_rng([opts.seed, 42])
    g = torch.Generator().manual_seed(opts.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts.seed)
        model = MotionRegressor()
    size = model.config.size
    encoder = load_encoder(resolve("psp-demo")).eval().requires_grad_(False)

    n_recon = int(round(opts.recon_share * opts.batch_size))
    pool_x = pool_y = None
    if n_recon:
        with progress.stage("reconstruction pool", total=opts.recon_pool) as stage:
            xs, ys = [], []
            restyled = _restyled_generator() if opts.restyled_share > 0 else None
            for _ in range(0, opts.recon_pool, 256):
                x, y = _render_batch(rng, 32, 256, size)
                own = x.shape[0] - int(round(opts.restyled_share * x.shape[0]))
                recon = torch.cat([_reconstruct(x[:own], encoder), _reconstruct(x[own:], encoder, generator=restyled)])
                xs.append((recon * 255).round().to(torch.uint8))
                ys.append(y)
                stage.advance(x.shape[0])
            pool_x, pool_y = torch.cat(xs)[: opts.recon_pool], torch.cat(ys)[: opts.recon_pool]

    optimiser = torch.optim.Adam(model.parameters(), lr=opts.lr)
    mean, std = model.mean, model.std
    losses: list[float] = []
    history: list[tuple[int, float]] = []
    model.train()
    with progress.stage("train regressor", total=opts.steps, unit="step") as stage:
        for step in range(opts.steps):
            x, y = _render_batch(rng, opts.videos_per_batch, opts.batch_size - n_recon, size)
            x = _augment(x, g)
            if pool_x is not None:
                pick = torch.randint(0, pool_x.shape[0], (n_recon,), generator=g)
                x = torch.cat([x, pool_x[pick].float() / 255])
                y = torch.cat([y, pool_y[pick]])  # type: ignore[index]
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, opts)
            loss = F.smooth_l1_loss(model(x), (y - mean) / std, beta=0.1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if (step + 1) % 100 == 0:
                history.append((step + 1, round(float(np.mean(losses[-100:])), 5)))
            if (step + 1) % 500 == 0:
                progress.log(f"step {step + 1}: loss {history[-1][1]}")
            stage.advance()
    model.eval().requires_grad_(False)
    metrics = evaluate_regressor(model, frames=opts.eval_frames, videos=opts.eval_videos, encoder=encoder)
    metrics["final_loss"] = round(float(np.mean(losses[-100:])), 5)
    metrics["history"] = history
    return model, metrics


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_regressor(
    model: MotionRegressor, *, frames: int = 1024, videos: int = 32, encoder: Any = None,
    seconds: float = 3.0, fps: int = 24,
) -> dict[str, Any]:
    """Accuracy on held-out demo videos (seeds from :data:`HELD_OUT_SEED`).

    Returns ``renders`` (and ``reconstructions`` and ``restyled_reconstructions``, through
    ``encoder`` and its own or the :data:`RESTYLED` generator, when given): per channel the
    mean absolute error in the channel's units and Pearson's r over ``frames`` single frames; and
    ``trajectories``: per channel the mean over ``videos`` clips (``seconds`` at ``fps``) of r
    between the measured and the true trajectory (clips where a channel is constant, e.g. no
    blink, are left out of that channel's mean).
    """
    rng = np.random.default_rng([HELD_OUT_SEED, 1])
    x, y = _render_batch(rng, max(1, frames // 8), frames, model.config.size, seed_offset=HELD_OUT_SEED)

    def frame_scores(images: torch.Tensor) -> dict[str, dict[str, float]]:
        got = model.measure(images)
        out = {}
        for i, name in enumerate(CHANNELS):
            truth = y[:, i].double().numpy()
            out[name] = {"mae": round(float(np.mean(np.abs(got[name] - truth))), 5),
                         "r": round(_pearson(got[name], truth), 5)}
        return out

    metrics: dict[str, Any] = {"held_out_seed": HELD_OUT_SEED, "frames": frames, "renders": frame_scores(x)}
    if encoder is not None:
        metrics["reconstructions"] = frame_scores(_reconstruct(x, encoder))
        metrics["restyled_reconstructions"] = frame_scores(_reconstruct(x, encoder, generator=_restyled_generator()))
    t = np.arange(int(seconds * fps)) / fps
    rs: dict[str, list[float]] = {c: [] for c in CHANNELS}
    for k in range(videos):
        params = sample_params(HELD_OUT_SEED + 10_000 + k)
        got = model.measure(render_times(params, t, size=model.config.size))
        truth = true_motion(params, t)
        for c in CHANNELS:
            r = _pearson(got[c], truth[c])
            if not math.isnan(r):
                rs[c].append(r)
    metrics["trajectories"] = {
        "videos": videos, "seconds": seconds, "fps": fps,
        **{c: {"mean_r": round(float(np.mean(v)), 5) if v else None, "min_r": round(float(np.min(v)), 5) if v else None,
               "clips": len(v)} for c, v in rs.items()},
    }
    return metrics
