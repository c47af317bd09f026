"""The demo world's backbones: a 64² StyleGAN2 generator and a pSp encoder, trained by vsode.

Both are vsode's own classes in small configurations (:data:`GENERATOR_CONFIG`,
:data:`ENCODER_ARCH`), shipped in the published formats so the real loaders read them:

- ``stylegan2-demo.pt``: ``{"g_ema": state_dict, "latent_avg": (style_dim,)}``, the layout of
  rosinality's ``stylegan2-ffhq-config-f.pt`` (:func:`vsode.stylegan2.load_generator`);
- ``psp-demo.pt``: ``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg": (10, style_dim),
  "opts": {...}}``, the layout of ``psp_ffhq_encode.pt`` (:func:`vsode.encoders.load_encoder`),
  with the encoder's sizes in ``opts["vsode_arch"]``.

They are trained together from scratch as an autoencoder on fresh demo-world renders (image →
encoder → W+ → generator → image, :func:`reconstruction_loss`, no adversary) by
:func:`train_demo_autoencoder`. Afterwards ``latent_avg`` is set to the mean W+ row of the
encoder's codes (taken out of the heads' biases, so W+ is unchanged), and the mapping network
is fitted so that ``mapping(z)`` is distributed like those rows (sliced Wasserstein distance).
The generator only ever saw encoder codes: a broadcast ``mapping(z)`` lies in the right region
of W but does not render a demo face. Inversion and W+ edits are what these backbones are for.

Seeds: training draws video seeds below :data:`HELD_OUT_SEED`; :func:`held_out_renders` uses
seeds from it upwards, so evaluation never sees a training face.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..encoders import Encoder, EncoderArch, GradualStyleEncoder, load_encoder, preprocess
from ..errors import InputError
from ..fileio import atomic_write_bytes
from ..stylegan2 import Generator, load_generator
from ..train.losses import psnr
from .world import render_times, sample_params

SIZE = 64
N_STYLES = 2 * int(math.log2(SIZE)) - 2  # 10 W+ rows
GENERATOR_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "size": SIZE,
        "style_dim": 128,
        "n_mlp": 2,
        "channel_multiplier": 0.25,  # 64 channels at 64 px
        "channel_max": 64,  # and below (Generator(...) arguments, as infer_config reads them)
    }
)
ENCODER_ARCH = EncoderArch(
    input_size=SIZE,
    stages=((16, 1), (32, 1), (64, 2), (128, 1)),
    style_dim=GENERATOR_CONFIG["style_dim"],
    head_width=32,
    se_reduction=4,
)
GENERATOR_FILE = "stylegan2-demo.pt"
ENCODER_FILE = "psp-demo.pt"
METRICS_FILE = "autoencoder-demo.json"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"
HELD_OUT_SEED = 1_000_000_000  # video seeds ≥ this are never trained on
MAX_TIME = 10.0  # frames are drawn at t ∈ [0, MAX_TIME) seconds


def psp_opts() -> dict[str, Any]:
    """The ``opts`` of ``psp-demo.pt``: pSp's training fields, plus the encoder's sizes."""
    return {
        "encoder_type": "GradualStyleEncoder",
        "input_nc": 3,
        "label_nc": 0,
        "output_size": SIZE,
        "learn_in_w": False,
        "start_from_latent_avg": True,
        "n_styles": N_STYLES,
        "vsode_arch": ENCODER_ARCH.to_dict(),
    }


# --- data -----------------------------------------------------------------------------------------


def render_samples(seeds: Any, motion_seeds: Any, times: Any) -> torch.Tensor:
    """One 64² frame per (appearance seed, motion seed, time): B×3×64×64 in [0, 1]."""
    frames = [
        render_times(sample_params(int(s), motion_seed=int(m)), [float(t)], size=SIZE)
        for s, m, t in zip(seeds, motion_seeds, times)
    ]
    return torch.cat(frames)


def held_out_renders(n: int, *, offset: int = 0) -> torch.Tensor:
    """Renders ``offset``..``offset+n−1`` of the held-out set (seeds ≥ :data:`HELD_OUT_SEED`),
    the same for every call: B×3×64×64 in [0, 1]."""
    seeds = HELD_OUT_SEED + offset + np.arange(n)
    times = [np.random.default_rng([int(s), 7]).uniform(0, MAX_TIME) for s in seeds]
    return render_samples(seeds, seeds, times)


def _training_batch(rng: np.random.Generator, batch: int) -> torch.Tensor:
    seeds = rng.integers(0, HELD_OUT_SEED, size=(2, batch))
    return render_samples(seeds[0], seeds[1], rng.uniform(0, MAX_TIME, batch))


class _TrainingRenders(torch.utils.data.IterableDataset):
    """``steps`` batches of fresh training renders, drawn in order from one seeded stream, so a
    worker process yields exactly what the training loop would render itself."""

    def __init__(self, seed: int, steps: int, batch: int) -> None:
        self.seed, self.steps, self.batch = seed, steps, batch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, 1])
        for _ in range(self.steps):
            yield _training_batch(rng, self.batch)


def _render_loader(seed: int, steps: int, batch: int, workers: int) -> Any:
    dataset = _TrainingRenders(seed, steps, batch)
    if workers == 0:
        return iter(dataset)
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            num_workers=1,
            prefetch_factor=8,
            worker_init_fn=lambda _: torch.set_num_threads(1),
        )
    )


# --- metrics --------------------------------------------------------------------------------------


@torch.no_grad()
def reconstruct(encoder: Encoder, images: torch.Tensor) -> torch.Tensor:
    """Images (B×3×64×64 in [0, 1]) → encoder → W+ → its own decoder → images in [0, 1]."""
    codes = encoder.encode(preprocess(images, size=encoder.input_size))
    out = encoder.generator.synthesize(codes, noise="const")
    return ((out + 1) / 2).clamp(0, 1)


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The training loss, images in [-1, 1]: L1 on pixels, L1 on horizontal and vertical
    differences (edges), L1 on 2×, 4× and 8× box-downsampled images (gradients that reach a
    misplaced shape), and 10·MSE (what PSNR measures)."""

    def dx(x: torch.Tensor) -> torch.Tensor:
        return x[..., :, 1:] - x[..., :, :-1]

    def dy(x: torch.Tensor) -> torch.Tensor:
        return x[..., 1:, :] - x[..., :-1, :]

    loss = F.l1_loss(fake, real) + F.l1_loss(dx(fake), dx(real)) + F.l1_loss(dy(fake), dy(real))
    for k in (2, 4, 8):
        loss = loss + F.l1_loss(F.avg_pool2d(fake, k), F.avg_pool2d(real, k))
    return loss + 10 * F.mse_loss(fake, real)


# --- training -------------------------------------------------------------------------------------


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


@dataclasses.dataclass(frozen=True)
class AutoencoderOptions:
    """Settings of :func:`train_demo_autoencoder` (the defaults made the shipped files).

    - steps: autoencoder steps of ``batch_size`` fresh renders each.
    - lr_generator / lr_encoder: peak Adam rates of the synthesis network and of the encoder
      (with ``latent_avg``); linear warm-up over ``warmup`` steps, then a cosine decay to 0.
    - bf16: run the forward under CPU bf16 autocast (fp32 weights and optimiser; ~1.4× faster
      with AMX).
    - mapping_steps: steps fitting the mapping network to the encoder's W+ rows.
    - eval_images: held-out renders the final PSNR is measured on.
    - threads: ``torch.set_num_threads`` (None leaves it).
    - render_workers: 1 renders the training images in a worker process, 0 in the loop (the
      same images either way).
    """

    seed: int = 0
    steps: int = 15_000
    batch_size: int = 8
    lr_generator: float = 8e-3
    lr_encoder: float = 2e-3
    warmup: int = 200
    bf16: bool = True
    mapping_steps: int = 400
    eval_images: int = 256
    threads: int | None = 1
    render_workers: int = 1
    log_every: int = 100

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "eval_images", "log_every")
        bad = [name for name in positive if getattr(self, name) < 1]
        if self.seed < 0 or self.warmup < 0 or self.mapping_steps < 0:
            bad.append("seed/warmup/mapping_steps (≥ 0)")
        if self.lr_generator <= 0 or self.lr_encoder <= 0:
            bad.append("lr_generator/lr_encoder (> 0)")
        if self.render_workers not in (0, 1):
            bad.append("render_workers (0 or 1)")
        if self.threads is not None and self.threads < 1:
            bad.append("threads")
        if bad:
            raise InputError(f"demo autoencoder options out of range: {', '.join(bad)}")


def train_demo_autoencoder(
    out_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    command: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train the demo generator and encoder from scratch and write them to ``out_dir``.

    Writes :data:`GENERATOR_FILE`, :data:`ENCODER_FILE` and :data:`METRICS_FILE` (metrics,
    seed, command, wall time, SHA-256 and size of both files) into ``out_dir``, and
    ``config.json`` (before step one) and ``stats.jsonl`` (one line per ``log_every`` steps)
    into ``run_dir``. The same options (seed and threads included) on the same torch build give
    the same files.

    Args:
        out_dir: where the weights and metrics go (created).
        run_dir: where the run's config and stats go (created; default ``out_dir``).
        log: called with each stats record (the script prints them); library code never prints.
        command: the command line to record in the metrics file.
        options: fields of :class:`AutoencoderOptions` (``seed``, ``steps``, ...).

    Returns:
        The metrics dict also written to :data:`METRICS_FILE`.
    """
    try:
        opt = AutoencoderOptions(**options)
    except TypeError as exc:
        raise InputError(
            f"{exc}; the options are {[f.name for f in dataclasses.fields(AutoencoderOptions)]}"
        ) from None
    seed, steps, batch_size, warmup = opt.seed, opt.steps, opt.batch_size, opt.warmup
    start = time.time()
    out = Path(out_dir)
    run = Path(run_dir) if run_dir is not None else out
    out.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    if opt.threads is not None:
        torch.set_num_threads(opt.threads)
    config = {
        **dataclasses.asdict(opt),
        "generator": dict(GENERATOR_CONFIG),
        "encoder": psp_opts(),
        "torch": torch.__version__,
    }
    atomic_write_bytes(run / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    stats_path = run / "stats.jsonl"
    stats_path.write_text("")

    torch.manual_seed(seed)
    generator = Generator(**GENERATOR_CONFIG)
    net = GradualStyleEncoder(N_STYLES, arch=ENCODER_ARCH)
    latent_avg = torch.nn.Parameter(torch.zeros(GENERATOR_CONFIG["style_dim"]))
    # after the weights: a DataLoader draws its worker seed from torch's global generator
    batches = _render_loader(seed, steps, batch_size, opt.render_workers)
    synthesis = [p for n, p in generator.named_parameters() if not n.startswith("style.")]
    groups = [
        {"params": synthesis, "peak": opt.lr_generator},
        {"params": list(net.parameters()) + [latent_avg], "peak": opt.lr_encoder},
    ]
    optimiser = torch.optim.Adam(groups, lr=opt.lr_generator, betas=(0.9, 0.99), fused=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if opt.bf16 else contextlib.nullcontext()

    def record(entry: dict[str, Any]) -> None:
        entry = {**entry, "time_s": round(time.time() - start, 1)}
        with open(stats_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if log is not None:
            log(entry)

    running: list[float] = []
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = group["peak"] * _lr_factor(step, steps, warmup)
        real = next(batches) * 2 - 1  # B 3 64 64 in [-1, 1]
        with autocast:
            codes = net(real) + latent_avg  # B 10 D
            fake = generator.synthesize(codes, noise="const").float()
        loss = reconstruction_loss(fake, real)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            shown = (fake.clamp(-1, 1) + 1) / 2
            running.append(psnr(shown, (real + 1) / 2, per_image=True, dtype=torch.float32).mean().item())
        if (step + 1) % opt.log_every == 0 or step + 1 == steps:
            record(
                {
                    "step": step + 1,
                    "loss": round(loss.item(), 5),
                    "train_psnr": round(float(np.mean(running)), 3),
                }
            )
            running = []

    net.eval().requires_grad_(False)
    generator.eval().requires_grad_(False)
    codes = _encoder_codes(net, latent_avg.detach(), np.random.default_rng([seed, 2]), n=1024)
    avg = _recentre(net, latent_avg.detach(), codes)
    mapping_loss = _fit_mapping(
        generator, codes.reshape(-1, codes.shape[-1]), opt.mapping_steps, seed
    )
    record({"stage": "mapping", "sliced_w1": round(mapping_loss, 5)})

    gen_path, enc_path = out / GENERATOR_FILE, out / ENCODER_FILE
    g_state = {k: v.detach().clone().contiguous() for k, v in generator.state_dict().items()}
    e_state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    _save(gen_path, {"g_ema": g_state, "latent_avg": avg.clone()})
    state = {
        **{f"encoder.{k}": v for k, v in e_state.items()},
        **{f"decoder.{k}": v for k, v in g_state.items()},
    }
    _save(
        enc_path,
        {"state_dict": state, "latent_avg": avg.expand(N_STYLES, -1).clone(), "opts": psp_opts()},
    )

    metrics = evaluate(enc_path, gen_path, n=opt.eval_images)
    result = {
        "format": "vsode/demo-autoencoder-metrics@1",
        "seed": seed,
        "command": command,
        "config": config,
        **metrics,
        "wall_s": round(time.time() - start, 1),
        "files": {
            path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
            for path in (gen_path, enc_path)
        },
    }
    atomic_write_bytes(out / METRICS_FILE, (json.dumps(result, indent=2) + "\n").encode())
    return result


@torch.no_grad()
def _encoder_codes(
    net: GradualStyleEncoder, latent_avg: torch.Tensor, rng: np.random.Generator, n: int
) -> torch.Tensor:
    chunks = [net(_training_batch(rng, 64) * 2 - 1) + latent_avg for _ in range(n // 64)]
    return torch.cat(chunks)  # n 10 D


@torch.no_grad()
def _recentre(
    net: GradualStyleEncoder, latent_avg: torch.Tensor, codes: torch.Tensor
) -> torch.Tensor:
    """Move the mean W+ row into ``latent_avg`` (taken out of every head's bias): the same W+,
    with ``latent_avg`` the average code as in the published files."""
    mean = codes.mean(dim=(0, 1))
    shift = mean - latent_avg
    for head in net.styles:
        head.linear.bias -= shift / head.linear.lr_mul
    return mean.clone()


def _fit_mapping(generator: Generator, rows: torch.Tensor, steps: int, seed: int) -> float:
    """Fit ``generator.style`` so that mapping(z), z ~ N(0, I), is distributed like ``rows``
    (sliced 1-Wasserstein distance over random directions). Returns the last distance."""
    mlp = [p for n, p in generator.named_parameters() if n.startswith("style.")]
    for p in mlp:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(mlp, lr=0.01, betas=(0.9, 0.99))
    dim, n = rows.shape[1], rows.shape[0]
    last = float("nan")
    for _ in range(max(0, steps)):
        z = torch.randn(n, dim, generator=gen)
        w = generator.mapping(z)
        dirs = F.normalize(torch.randn(dim, 64, generator=gen), dim=0)
        a, _ = torch.sort(w @ dirs, dim=0)
        b, _ = torch.sort(rows @ dirs, dim=0)
        loss = (a - b).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        last = loss.item()
    for p in mlp:
        p.requires_grad_(False)
    return last


def evaluate(
    encoder_path: str | os.PathLike,
    generator_path: str | os.PathLike | None = None,
    *,
    n: int = 256,
) -> dict[str, Any]:
    """Reconstruction quality of shipped files on ``n`` held-out renders.

    Loads through :func:`load_encoder` (and checks that ``generator_path``, if given, holds the
    encoder's decoder exactly). Returns mean / median / 5th-percentile per-image PSNR and the
    PSNR of the pooled MSE, in dB.
    """
    encoder = load_encoder(encoder_path)
    if generator_path is not None:
        standalone = load_generator(generator_path)
        same = all(
            torch.equal(a, b)
            for a, b in zip(
                standalone.state_dict().values(), encoder.generator.state_dict().values()
            )
        )
        if not same:
            raise InputError(f"{generator_path} is not the decoder of {encoder_path}")
    per_image, mse = [], []
    for offset in range(0, n, 64):
        images = held_out_renders(min(64, n - offset), offset=offset)
        fake = reconstruct(encoder, images)
        per_image.append(psnr(fake, images, per_image=True, dtype=torch.float32))
        mse.append((fake - images).square().flatten(1).mean(1))
    per_image, pooled = torch.cat(per_image), torch.cat(mse).mean()
    return {
        "held_out_images": n,
        "held_out_seeds": [HELD_OUT_SEED, HELD_OUT_SEED + n - 1],
        "psnr_mean_db": round(per_image.mean().item(), 3),
        "psnr_median_db": round(per_image.median().item(), 3),
        "psnr_p05_db": round(per_image.quantile(0.05).item(), 3),
        "psnr_pooled_db": round((-10 * torch.log10(pooled)).item(), 3),
    }


def _save(path: Path, obj: dict[str, Any]) -> None:
    """torch.save through memory (its zip records are named after the file, so a temp name would
    change the bytes), then an atomic write."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
