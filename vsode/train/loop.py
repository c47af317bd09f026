"""Training a VidStyleODE: the objective, the optimisers, the run directory, DDP.

One step follows the released ``VidStyleODE.training_step`` (design §9.6): encode all T loaded
frames with the ODE-ConvGRU, solve the latent ODE at ``n`` supervised times, run the modulation
network and the mapper twice (reconstruction with ``z_S = CLIP_I(G(z_C))``, edit with the text
direction towards another video's caption), render both with the frozen generator and sum

    λ_rec·MSE + λ_D·directional + λ_L·latent hinge + λ_vgg·(DINO structure + appearance) + λ_C·consistency

with the released schedules. Two Adam optimisers: the dynamics encoder at 5η with betas
(0.9, 0.999), modulation + mapper at η with (0.9, 0.99), η = batch × world size × 2e-6.

A run is a directory (STYLE habit 13)::

    RUN_DIR/config.json            train + model config, written before step one
    RUN_DIR/stats.jsonl            one JSON line per logged step and per validation
    RUN_DIR/checkpoints/last.pt    vsode/train-state@1: weights, both optimisers, step, data position
    RUN_DIR/model.pt               vsode/vidstyleode@1 of the newest weights (usable with --model)
    RUN_DIR/samples/step-N.mp4     real | reconstruction of a validation video

Exact resume: the data order is a function of (seed, epoch, position) and every random draw of a
step comes from a generator seeded with (seed, step, rank), so a resumed run repeats the losses
of an uninterrupted one bit for bit (same machine, same thread count).

Several processes (``torchrun``): ranks take whole bins (``BinSampler`` sharding), gradients are
averaged with ``all_reduce`` (gloo on CPU, nccl on CUDA); rank 0 writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..dynamics import batch_major, time_major
from ..errors import InputError, SolverError, VsodeError
from ..fileio import atomic_write_bytes, save_torch
from ..model import ModelConfig, VidStyleODE, build_model, model_checkpoint, model_from_checkpoint
from ..progress import Progress, ensure
from .data import FALLBACK_CAPTION
from .losses import (
    LambdaSchedule,
    appearance_loss,
    consistency_loss,
    directional_loss,
    latent_hinge,
    state_loss,
    structure_loss,
)

STATE_FORMAT = "vsode/train-state@1"
RUN_FORMAT = "vsode/train-run@1"
SAMPLING = ("static", "interpolate", "extrapolate")


# --- options -------------------------------------------------------------------------------------


def _ravdess(warm: int, lo: float, hi: float, end: int) -> LambdaSchedule:
    return LambdaSchedule(warm, lo, hi, end)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Settings of a training run; the defaults are the released face (RAVDESS) configuration.

    batch_size: videos per step (per process). n_frames: frames loaded per video (T).
    n_supervised: frames decoded and supervised per video (the model's ``n_sampled_frames``).
    base_lr: η = batch_size × world_size × base_lr unless ``lr`` sets η itself; the dynamics
    encoder learns at ``encoder_lr_factor``·η. rec / clip / consistency: ``LambdaSchedule`` s of
    the pixel MSE, the directional CLIP loss and the CLIP consistency; latent_lambda, vgg_lambda:
    constant weights of the latent hinge and of the DINO terms (structure_weight·structure +
    appearance_weight·appearance). wplus_lambda: weight of an MSE between the reconstruction
    branch's W+ and the supervised frames' own inversions, a vsode addition (0 in the released
    presets) that lets the small demo model learn its motion in a few thousand CPU steps.
    state_lambda: weight of :func:`~vsode.train.losses.state_loss` (ODE states vs the supervised
    frames' encoder features), another vsode addition, 0 in the released presets. latent_warmup:
    the first steps train the latent terms alone (latent hinge, W+, state): every image loss weight
    is 0 there and nothing is rendered (a vsode addition, 0 in the released presets: the demo
    model learns its motion from the W+ term before the image losses start). grad_clip: scale the
    gradients of all trained parameters together down to this norm when it is larger (0: never,
    as released); every logged step records the norm before clipping as ``grad/norm``.
    strength: α of the edit branch. sampling: ``static`` (all
    frames observed), ``interpolate`` (``n_hidden`` interior frames hidden from the ODE-GRU but
    supervised) or ``extrapolate`` (the last ``n_hidden`` hidden). max_steps: stop after this
    global step. checkpoint_every / sample_every / val_every / log_every: in steps (0 = never).
    """

    batch_size: int = 2
    n_frames: int = 8
    n_supervised: int = 2
    irregular: bool = True
    sampling: str = "static"
    n_hidden: int = 1
    base_lr: float = 2e-6
    lr: float | None = None
    encoder_lr_factor: float = 5.0
    rec: LambdaSchedule = _ravdess(50_000, 0.01, 1.0, 100_000)
    clip: LambdaSchedule = _ravdess(5_000, 0.01, 2.0, 100_000)
    consistency: LambdaSchedule = _ravdess(0, 0.01, 1.0, 100_000)
    latent_lambda: float = 0.5
    latent_eps: float = 0.02
    wplus_lambda: float = 0.0
    state_lambda: float = 0.0
    latent_warmup: int = 0
    grad_clip: float = 0.0
    vgg_lambda: float = 10.0
    structure_weight: float = 0.8
    appearance_weight: float = 0.2
    strength: float = 2.0
    seed: int = 907
    max_steps: int = 100_000
    checkpoint_every: int = 1000
    sample_every: int = 5000
    val_every: int = 5000
    val_videos: int = 8
    log_every: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append(f"batch_size {self.batch_size} must be at least 1")
        if self.n_frames < 2:
            problems.append(f"n_frames {self.n_frames} must be at least 2")
        if not 1 <= self.n_supervised <= self.n_frames:
            problems.append(f"n_supervised {self.n_supervised} must be in 1..n_frames ({self.n_frames})")
        if self.sampling not in SAMPLING:
            problems.append(f"sampling {self.sampling!r} must be one of {', '.join(SAMPLING)}")
        if self.sampling != "static" and not 1 <= self.n_hidden <= self.n_frames - 2:
            problems.append(f"n_hidden {self.n_hidden} must be in 1..n_frames-2 for {self.sampling}")
        if self.lr is not None and self.lr <= 0 or self.base_lr <= 0:
            problems.append("learning rates must be positive")
        if self.state_lambda < 0:
            problems.append(f"state_lambda {self.state_lambda} must not be negative")
        if isinstance(self.latent_warmup, bool) or not isinstance(self.latent_warmup, int) or self.latent_warmup < 0:
            problems.append(f"latent_warmup {self.latent_warmup!r} must be a step count ≥ 0")
        if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) or not (
            math.isfinite(self.grad_clip) and self.grad_clip >= 0
        ):
            problems.append(f"grad_clip {self.grad_clip!r} must be a finite norm ≥ 0 (0: no clipping)")
        if self.max_steps < 0:
            problems.append(f"max_steps {self.max_steps} must not be negative")
        for name in ("checkpoint_every", "sample_every", "val_every", "log_every", "val_videos"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if problems:
            raise InputError("invalid training options: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("rec", "clip", "consistency"):
            data[name] = getattr(self, name).to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainOptions":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training option(s) {', '.join(unknown)}")
        kwargs = dict(data)
        for name in ("rec", "clip", "consistency"):
            if isinstance(kwargs.get(name), Mapping):
                kwargs[name] = LambdaSchedule.from_dict(kwargs[name])
        return cls(**kwargs)

    def override(self, changes: Mapping[str, Any]) -> "TrainOptions":
        """A copy with fields replaced; ``rec.hi``-style keys reach into the schedules; strings
        from the command line are converted to the field's type."""
        data = self.to_dict()
        for key, value in changes.items():
            head, _, tail = key.partition(".")
            node = data
            if tail:
                if not isinstance(data.get(head), dict) or tail not in data[head]:
                    raise InputError(f"unknown training option {key!r}")
                node, head = data[head], tail
            elif head not in data:
                raise InputError(f"unknown training option {key!r}")
            node[head] = _convert(key, node[head], value)
        return TrainOptions.from_dict(data)

    @classmethod
    def for_preset(cls, preset: str) -> "TrainOptions":
        """The default options of a model preset: the released RAVDESS schedule for ``ffhq``
        (Fashion's for ``fashion``); for the small ``demo``/``tiny`` presets a short schedule
        with every loss on from the start (the released pixel loss waits 50k steps)."""
        if preset == "fashion":
            return cls(
                batch_size=3, n_supervised=4, latent_lambda=1.0,
                rec=LambdaSchedule(50_000, 0.01, 0.1, 100_000),
                clip=LambdaSchedule(5_000, 0.01, 2.5, 200_000),
                consistency=LambdaSchedule(0, 0.01, 1.0, 40_000),
            )
        if preset in ("demo", "tiny"):
            return cls(
                batch_size=4, n_frames=8, n_supervised=4, lr=3e-4, max_steps=3000, wplus_lambda=10.0,
                rec=LambdaSchedule.constant(1.0),
                clip=LambdaSchedule(200, 0.01, 1.0, 2000),
                consistency=LambdaSchedule(0, 0.01, 1.0, 2000),
                vgg_lambda=1.0, checkpoint_every=250, sample_every=1000, val_every=500, seed=0,
            )
        return cls()

    def learning_rate(self, world_size: int = 1) -> float:
        """η: ``lr`` if set, else batch_size × world_size × base_lr (the released scaling)."""
        return self.lr if self.lr is not None else self.batch_size * world_size * self.base_lr


def _convert(key: str, old: Any, value: Any) -> Any:
    if not isinstance(value, str) or isinstance(old, str):
        return value
    text = value.strip()
    try:
        if isinstance(old, bool):
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        if isinstance(old, int):
            return int(text)
        if isinstance(old, float) or old is None:
            return None if text.lower() in ("none", "null") else float(text)
    except (KeyError, ValueError):
        raise InputError(f"training option {key}={value!r}: expected a {type(old).__name__}") from None
    return value


def split_overrides(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--set`` pairs into (training options, model config) by their first dotted part."""
    train_fields = {f.name for f in dataclasses.fields(TrainOptions)}
    train, model = {}, {}
    for key, value in changes.items():
        (train if key.split(".")[0] in train_fields else model)[key] = value
    return train, model


# --- distributed ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place among ``torchrun`` workers (``world_size`` 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(dist_info: Distributed, device: torch.device) -> None:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA)."""
    if dist_info.world_size == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """DDP's gradient averaging, done explicitly (the step does not go through ``forward``)."""
    if world_size == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(world_size)


# --- the objective -------------------------------------------------------------------------------


@dataclasses.dataclass
class Backbones:
    """The frozen models a training step needs."""

    generator: Any
    clip: Any
    dino: Any | None = None


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The random source of one step (frame subset, CLIP frame picks, hidden frames)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7_919 + rank) % (2**63 - 1))
    return g


def _pick(n: int, k: int, g: torch.Generator, *, first: bool = False) -> torch.Tensor:
    """k sorted distinct indices of range(n); with ``first`` index 0 is always among them."""
    if first:
        rest = torch.randperm(n - 1, generator=g)[: k - 1] + 1
        return torch.cat([torch.zeros(1, dtype=torch.long), rest.sort().values])
    return torch.randperm(n, generator=g)[:k].sort().values


def observation_mask(options: TrainOptions, n_frames: int, g: torch.Generator) -> torch.Tensor:
    """Which loaded frames the ODE-GRU sees (1) or not (0), per the sampling mode."""
    mask = torch.ones(n_frames)
    if options.sampling == "interpolate":
        hidden = torch.randperm(n_frames - 2, generator=g)[: options.n_hidden] + 1  # never first/last
        mask[hidden] = 0
    elif options.sampling == "extrapolate":
        mask[n_frames - options.n_hidden :] = 0
    return mask


def supervised_frames(options: TrainOptions, mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The frame subset F: frame 0 plus n−1 others; in interpolate/extrapolate modes one hidden
    frame is always among them, so the held-out times are supervised."""
    n_frames = mask.numel()
    n = min(options.n_supervised, n_frames)
    chosen = _pick(n_frames, n, g, first=True)
    hidden = torch.nonzero(mask == 0).flatten()
    if hidden.numel() and n > 1 and not bool(torch.isin(chosen, hidden).any()):
        extra = hidden[torch.randint(hidden.numel(), (1,), generator=g)]
        chosen = torch.cat([chosen[:-1], extra]).unique().sort().values
    return chosen


def compute_losses(
    model: VidStyleODE,
    backbones: Backbones,
    batch: Any,
    options: TrainOptions,
    step: int,
    g: torch.Generator,
    *,
    target_captions: list[str],
    all_terms: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The released objective for one batch; returns (total, logged values).

    batch: frames B×T×3×H×W in [0,1], w B×T×n×D, frame_numbers (T,), captions.
    target_captions: the edit branch's target text per video.
    """
    config = model.config
    device = next(model.parameters()).device
    frames = batch.frames.to(device)
    latents = batch.w.to(device)
    b, t = frames.shape[:2]
    numbers = torch.as_tensor(batch.frame_numbers, dtype=torch.float64)
    tau = ((numbers - numbers[0]) / config.video_length).to(device)

    mask = observation_mask(options, t, g)
    chosen = supervised_frames(options, mask, g)
    n = chosen.numel()
    k = min(3, n)
    clip_pick = torch.randperm(n, generator=g)[:k]
    clip_pick_edit = torch.randperm(n, generator=g)[:k]
    clip_pick_dir = torch.randperm(n, generator=g)[:k]

    weights = {
        "rec": options.rec.at(step),
        "clip": options.clip.at(step),
        "consistency": options.consistency.at(step),
        "latent": options.latent_lambda,
        "vgg": options.vgg_lambda if backbones.dino is not None else 0.0,
        "wplus": options.wplus_lambda,
        "state": options.state_lambda,
    }
    if step < options.latent_warmup:  # the latent terms alone: every image loss waits
        weights.update(rec=0.0, clip=0.0, consistency=0.0, vgg=0.0)
    compute = {name: (w != 0 or all_terms or step == 0) for name, w in weights.items()}
    if backbones.dino is None:
        compute["vgg"] = False

    generator, clip = backbones.generator, backbones.clip
    content = latents.mean(1)  # B n D  (mean inversion)
    with torch.no_grad():
        content_image = generator.synthesize(content, noise="const")  # B 3 HG WG
        image_features = clip.encode_image(content_image).float()
        sources = [c or FALLBACK_CAPTION for c in batch.captions]
        text_src = clip.encode_text(sources).float()
        text_tgt = clip.encode_text(target_captions).float()
    style_rec = image_features
    style_edit = image_features + options.strength * (text_tgt - text_src)

    feats = model.dynamics.features(frames)  # B T C h w: the encoder's input and the state term's target
    z_d0 = model.dynamics.encode_features(feats, tau, mask.to(device))
    states, tokens = model.dynamics.solve(z_d0, tau[chosen.to(device)])
    w_rec = model.decode_w(tokens, content, style_rec)  # (n·B) n_latent D
    w_edit = model.decode_w(tokens, content, style_edit)
    real = time_major(frames[:, chosen.to(device)])  # (n·B) 3 H W in [0,1]
    zero = w_rec.new_zeros(())
    terms: dict[str, torch.Tensor] = {}
    if any(compute[name] for name in ("rec", "vgg", "clip", "consistency")):
        out_rec = generator.synthesize(w_rec, noise="const")  # (n·B) 3 HG WG
        out_edit = generator.synthesize(w_edit, noise="const")
        size = tuple(frames.shape[-2:])
        small_rec = F.interpolate(out_rec, size=size, mode="bicubic", align_corners=False)
        small_edit = F.interpolate(out_edit, size=size, mode="bicubic", align_corners=False)
    # else: a latent-only phase (every image weight still 0, e.g. before rec.warm): no rendering
    terms["rec"] = F.mse_loss(small_rec, 2 * real - 1) if compute["rec"] else zero
    if compute["vgg"]:
        dino = backbones.dino
        feats_rec = dino.features(small_rec / 2 + 0.5)  # one DINO pass shared by both terms
        feats_edit = dino.features(small_edit / 2 + 0.5)
        with torch.no_grad():
            feats_real = dino.features(real)
            feats_content = dino.features(content_image / 2 + 0.5)  # B images, not n·B copies
        terms["structure"] = structure_loss(
            dino, feats_rec, feats_real, weight=options.structure_weight
        ) + structure_loss(dino, feats_edit, feats_real, weight=options.structure_weight)
        video_of_row = torch.arange(n * b, device=device) % b  # row t·B + b → video b
        terms["appearance"] = appearance_loss(
            dino, feats_rec, feats_content, weight=options.appearance_weight, tgt_index=video_of_row
        )
    else:
        terms["structure"] = terms["appearance"] = zero
    if compute["clip"]:
        terms["clip"] = directional_loss(
            clip, batch_major(2 * real - 1, b), batch_major(small_edit, b), text_src, text_tgt, clip_pick_dir
        )
    else:
        terms["clip"] = zero
    if compute["consistency"]:
        terms["consistency"] = consistency_loss(clip, batch_major(out_rec, b), clip_pick) + consistency_loss(
            clip, batch_major(out_edit, b), clip_pick_edit
        )
    else:
        terms["consistency"] = zero
    content_rows = content.repeat(n, 1, 1)
    terms["latent"] = latent_hinge(content_rows, w_rec, w_edit, eps=options.latent_eps) if compute["latent"] else zero
    terms["wplus"] = F.mse_loss(w_rec, time_major(latents[:, chosen.to(device)])) if compute["wplus"] else zero
    terms["state"] = state_loss(states, feats[:, chosen.to(device)]) if compute["state"] else zero

    total = (
        weights["rec"] * terms["rec"]
        + weights["clip"] * terms["clip"]
        + weights["latent"] * terms["latent"]
        + weights["vgg"] * (terms["structure"] + terms["appearance"])
        + weights["consistency"] * terms["consistency"]
        + weights["wplus"] * terms["wplus"]
        + weights["state"] * terms["state"]
    )
    logged = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
    logged.update({f"lambda/{k}": float(v) for k, v in weights.items()})
    logged["loss/total"] = float(total.detach())
    return total, logged


def target_captions(captions: list[str | None], pool: list[str], g: torch.Generator) -> list[str]:
    """Edit targets: video b takes the caption of video (b−1) mod B (the released roll by one);
    with one video per batch, or when that caption is the same text, a different caption is
    drawn from the training set's ``pool``."""
    sources = [c or FALLBACK_CAPTION for c in captions]
    targets = [sources[(i - 1) % len(sources)] for i in range(len(sources))]
    for i, (src, tgt) in enumerate(zip(sources, targets)):
        if tgt == src:
            others = [c for c in pool if c != src]
            if others:
                targets[i] = others[int(torch.randint(len(others), (1,), generator=g))]
    return targets


# --- the run ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    step: int
    resumed_from: int | None
    losses: list[float]  # total loss of every step run by this call (rank 0's)
    interrupted: bool
    checkpoint: Path | None
    model_path: Path | None
    validation: dict[str, float] | None
    timings: dict[str, float]


def _optimizers(model: VidStyleODE, options: TrainOptions, world_size: int) -> list[torch.optim.Optimizer]:
    eta = options.learning_rate(world_size)
    return [
        torch.optim.Adam(model.dynamics.parameters(), lr=options.encoder_lr_factor * eta, betas=(0.9, 0.999)),
        torch.optim.Adam(
            [*model.mapper.parameters(), *model.modulation.parameters()], lr=eta, betas=(0.9, 0.99)
        ),
    ]


def run_config(model_config: ModelConfig, options: TrainOptions, data_dir: Path) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "data": str(Path(data_dir).resolve()),
        "model": model_config.to_dict(),
        "train": options.to_dict(),
    }


def _diverged(step: int, what: str, ckpt_path: Path) -> str:
    """The one-line message for a run that diverged at ``step``."""
    where = f"; {ckpt_path} holds the last checkpoint" if ckpt_path.exists() else ""
    return (f"training diverged at step {step} ({what}){where}; start a new --output with a lower --lr "
            "or --set grad_clip=N (stats.jsonl's grad/norm shows the usual gradient norm)")


def _gradient_norm(params: list[torch.nn.Parameter], clip: float) -> float:
    """The gradients' joint L2 norm; scales them down to ``clip`` when it is larger (0: never)."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    if clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(with_grad, clip))
    return float(torch.nn.utils.get_total_norm([p.grad for p in with_grad]))


def _same_run(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Runs match when everything but the stopping point and the logging cadence agrees; an
    option added since the old run was started counts as its default."""
    loose = ("max_steps", "checkpoint_every", "sample_every", "val_every", "log_every", "val_videos")
    defaults = TrainOptions().to_dict()
    strip = lambda c: {  # noqa: E731
        **c, "train": {k: v for k, v in {**defaults, **c["train"]}.items() if k not in loose}
    }
    return strip(dict(old)) == strip(dict(new))


def load_train_state(path: Path) -> dict[str, Any]:
    from ..checkpoints.load import safe_load

    state = safe_load(path, map_location="cpu")
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise InputError(f"{path} is not a vsode training checkpoint ({STATE_FORMAT})")
    return dict(state)


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    model_config: ModelConfig,
    options: TrainOptions,
    backbones: Backbones,
    backbone_refs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train (or resume training) a VidStyleODE on a prepared dataset.

    Args:
        data_dir: a folder written by ``vsode prepare`` (or the demo dataset writer + latents).
        run_dir: the run directory; if it holds a run with the same settings, training resumes
            from its last checkpoint; other settings are an error unless ``restart``.
        model_config / options: what to build and how to train it.
        backbones: the frozen generator, CLIP and (optional) DINO.
        backbone_refs: ``{"generator": {"name", "sha256"}, ...}`` recorded in the checkpoints.
        device: the compute device (with torchrun, each rank's ``cuda:LOCAL_RANK`` on CUDA).
        progress: one stage of ``max_steps`` steps.
        log: receives every stats record (they also go to ``stats.jsonl``).
        stop_after: stop after this many steps of *this call* as if interrupted (tests).
        restart: discard an existing run with other settings.

    Returns a :class:`TrainResult`; Ctrl-C/SIGTERM saves a checkpoint and re-raises.
    """
    from .data import BinSampler, TrainData

    dist_info = Distributed.from_env()
    device = torch.device(device)
    init_distributed(dist_info, device)
    run_dir = Path(run_dir)
    data = TrainData(data_dir, split="train")
    config_record = run_config(model_config, options, Path(data_dir))
    ckpt_path = run_dir / "checkpoints" / "last.pt"

    resumed_from = None
    state = None
    config_path = run_dir / "config.json"
    if config_path.exists() and not restart:
        old = json.loads(config_path.read_text())
        if not _same_run(old, config_record):
            raise InputError(
                f"{run_dir} holds a run with other settings; use a new --output folder, or --force to start over"
            )
        if ckpt_path.exists():
            state = load_train_state(ckpt_path)
            resumed_from = int(state["step"])

    torch.manual_seed(options.seed)
    model = build_model(model_config, seed=options.seed).to(device)
    model.backbone_refs = {k: (dict(v) if v else None) for k, v in (backbone_refs or {}).items()} | {
        k: None for k in ("generator", "encoder", "clip", "dino") if k not in (backbone_refs or {})
    }
    for module in (backbones.generator, backbones.clip, backbones.dino):
        if module is not None:
            module.requires_grad_(False).eval().to(device)
    optimizers = _optimizers(model, options, dist_info.world_size)
    step, epoch, position = 0, 0, 0
    if state is not None:
        loaded = model_from_checkpoint(state["model"], label=str(ckpt_path))
        model.load_state_dict(loaded.state_dict())
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        step, epoch, position = int(state["step"]), int(state["epoch"]), int(state["position"])
        torch.set_rng_state(state["rng"]["torch"])
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        if restart or not config_path.exists():
            atomic_write_bytes(config_path, (json.dumps(config_record, indent=1) + "\n").encode())
            stats = run_dir / "stats.jsonl"
            if stats.exists():
                stats.unlink()

    sampler = BinSampler(
        data,
        batch_size=options.batch_size,
        n_frames=options.n_frames,
        nominal_fps=model_config.nominal_fps,
        seed=options.seed,
        irregular=options.irregular,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    pool = sorted({v.caption for v in data.videos if v.caption})
    params = [p for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    timings = {"data": 0.0, "step": 0.0, "checkpoint": 0.0, "validation": 0.0, "samples": 0.0}
    interrupted = False
    steps_this_call = 0
    record_log = _logger(run_dir, log, dist_info.main)

    def save_state() -> Path | None:
        if not dist_info.main:
            return None
        start = time.perf_counter()
        save_torch(
            {
                "format": STATE_FORMAT,
                "model": model_checkpoint(model),
                "optimizers": [opt.state_dict() for opt in optimizers],
                "step": step,
                "epoch": epoch,
                "position": position,
                "rng": {"torch": torch.get_rng_state()},
                "config": config_record,
            },
            ckpt_path,
        )
        save_torch(model_checkpoint(model, extra={"training": {"step": step, "run": config_record}}), run_dir / "model.pt")
        timings["checkpoint"] += time.perf_counter() - start
        return ckpt_path

    model.train()
    batches = sampler.batches(start_epoch=epoch, start_position=position)
    last_ckpt = None
    validation = None
    try:
        with ensure(progress).stage("train", options.max_steps, unit="steps") as bar:
            bar.advance(step)
            while step < options.max_steps:
                if stop_after is not None and steps_this_call >= stop_after:
                    interrupted = True
                    break
                start = time.perf_counter()
                epoch, position, batch = next(batches)
                position += 1  # the position to resume from is the next one
                timings["data"] += time.perf_counter() - start
                start = time.perf_counter()
                g = step_generator(options.seed, step, dist_info.rank)
                targets = target_captions(list(batch.captions), pool, g)
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                try:
                    total, logged = compute_losses(
                        model, backbones, batch, options, step, g, target_captions=targets
                    )
                except SolverError as exc:  # the ODE dynamics blew up: a divergence, not a tolerance issue
                    cause = f"the ODE solve gave up: {exc.__cause__ or exc}"
                    raise VsodeError(_diverged(step, cause, ckpt_path)) from exc
                if not torch.isfinite(total):
                    raise VsodeError(_diverged(step, f"loss {float(total)}", ckpt_path))
                total.backward()
                average_gradients(params, dist_info.world_size)
                logged["grad/norm"] = _gradient_norm(params, options.grad_clip)
                for opt in optimizers:
                    opt.step()
                step += 1
                steps_this_call += 1
                losses.append(float(total.detach()))
                timings["step"] += time.perf_counter() - start
                bar.advance()
                if options.log_every and (step % options.log_every == 0 or step == 1):
                    record_log({"step": step, "epoch": epoch, "time": time.time(), **logged})
                if options.checkpoint_every and step % options.checkpoint_every == 0:
                    last_ckpt = save_state()
                if options.val_every and step % options.val_every == 0 and dist_info.main:
                    validation = _validate(model, backbones, data_dir, options, timings)
                    record_log({"step": step, "val": validation})
                if options.sample_every and step % options.sample_every == 0 and dist_info.main:
                    _write_sample(model, backbones, data_dir, run_dir, step, timings)
    except KeyboardInterrupt:
        if dist_info.main:
            save_state()
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    last_ckpt = save_state() if (steps_this_call or last_ckpt is None) else last_ckpt
    if not interrupted and step >= options.max_steps and options.val_every and validation is None and dist_info.main:
        validation = _validate(model, backbones, data_dir, options, timings)
        record_log({"step": step, "val": validation})
    return TrainResult(
        run_dir=run_dir,
        step=step,
        resumed_from=resumed_from,
        losses=losses,
        interrupted=interrupted,
        checkpoint=last_ckpt,
        model_path=(run_dir / "model.pt") if dist_info.main else None,
        validation=validation,
        timings=timings,
    )


def _logger(run_dir: Path, log: Callable[[dict[str, Any]], None] | None, main: bool) -> Callable[[dict], None]:
    def record(entry: dict[str, Any]) -> None:
        if log is not None:
            log(entry)
        if main:
            with open(run_dir / "stats.jsonl", "a") as f:
                f.write(json.dumps(entry) + "\n")

    return record


# --- validation and samples ----------------------------------------------------------------------


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two image batches in [0, 1]."""
    mse = F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@torch.no_grad()
def reconstruct_video(
    model: VidStyleODE, backbones: Backbones, frames: torch.Tensor, w: torch.Tensor, times: torch.Tensor
) -> torch.Tensor:
    """Reconstruct T frames (T×3×H×W in [0,1]) at their own normalised times; returns [0,1] images."""
    device = next(model.parameters()).device
    frames, w, times = frames.to(device), w.to(device), times.to(device)
    content = w.mean(0, keepdim=True)
    image = backbones.generator.synthesize(content, noise="const")
    style = backbones.clip.encode_image(image).float()
    z_d0 = model.dynamics.encode(frames[None], times)
    _, tokens = model.dynamics.solve(z_d0, times)
    codes = model.decode_w(tokens, content, style)
    out = backbones.generator.synthesize(codes, noise="const")
    out = F.interpolate(out, size=tuple(frames.shape[-2:]), mode="bicubic", align_corners=False)
    return (out / 2 + 0.5).clamp(0, 1)


def _clip_times(data: Any, video: Any, config: ModelConfig, limit: int) -> tuple[list[int], torch.Tensor]:
    """The first ``limit`` frames with distinct frame numbers at the model's nominal rate, and
    their normalised times."""
    import numpy as np

    numbers, first = np.unique(data.frame_numbers(video, config.nominal_fps), return_index=True)
    order = np.argsort(first)[:limit]
    indices = [int(i) for i in np.sort(first[order])]
    picked = torch.as_tensor(np.asarray(data.frame_numbers(video, config.nominal_fps))[indices], dtype=torch.float64)
    return indices, (picked - picked[0]) / config.video_length


def _validate(
    model: VidStyleODE, backbones: Backbones, data_dir: str | os.PathLike, options: TrainOptions,
    timings: dict[str, float],
) -> dict[str, float]:
    """Reconstruction PSNR and CLIP consistency on (up to ``val_videos``) validation videos."""
    from .data import TrainData

    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        data = TrainData(data_dir, split="val")
    except InputError:
        data = None
    if data is None or not data.videos:
        data = TrainData(data_dir, split="train")
    scores, static, consistency = [], [], []
    for video in data.videos[: max(1, options.val_videos)]:
        indices, tau = _clip_times(data, video, model.config, 15)  # released validation clips: 15 frames
        frames, w = data.load(video.id, indices)
        out = reconstruct_video(model, backbones, frames, w, tau)
        frames = frames.to(out.device)
        scores.append(psnr(out, frames))
        # the motionless baseline: every frame rendered from the content code alone
        still = backbones.generator.synthesize(w.mean(0, keepdim=True).to(out.device), noise="const")
        still = F.interpolate(still, size=tuple(frames.shape[-2:]), mode="bicubic", align_corners=False)
        static.append(psnr((still / 2 + 0.5).clamp(0, 1).expand_as(out), frames))
        emb = backbones.clip.encode_image(out.to(next(model.parameters()).device) * 2 - 1).float()
        emb = F.normalize(emb, dim=-1)
        consistency.append(float((emb @ emb.T).mean()))
    model.train(was_training)
    timings["validation"] += time.perf_counter() - start
    return {
        "psnr": sum(scores) / len(scores),
        "static_psnr": sum(static) / len(static),
        "clip_consistency": sum(consistency) / len(consistency),
        "videos": len(scores),
    }


def _write_sample(
    model: VidStyleODE, backbones: Backbones, data_dir: str | os.PathLike, run_dir: Path, step: int,
    timings: dict[str, float],
) -> Path | None:
    """``samples/step-N.mp4``: a validation video, real frames beside their reconstruction."""
    from ..video import VideoWriter
    from .data import TrainData

    start = time.perf_counter()
    data = TrainData(data_dir, split="val")
    if not data.videos:
        data = TrainData(data_dir, split="train")
    if not data.videos:
        return None
    video = data.videos[0]
    indices, tau = _clip_times(data, video, model.config, 30)
    frames, w = data.load(video.id, indices)
    was_training = model.training
    model.eval()
    out = reconstruct_video(model, backbones, frames, w, tau)
    model.train(was_training)
    pair = torch.cat([frames, out.cpu()], dim=-1)  # T 3 H 2W
    path = run_dir / "samples" / f"step-{step:07d}.mp4"
    path.parent.mkdir(exist_ok=True)
    times = [float(video.times[i] - video.times[indices[0]]) for i in indices]
    with VideoWriter(path, fps=video.fps, width=pair.shape[-1], height=pair.shape[-2], timestamps=times, force=True) as writer:
        writer.write(pair)
    timings["samples"] += time.perf_counter() - start
    return path
