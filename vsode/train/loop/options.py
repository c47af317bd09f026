"""What a training run does: :class:`TrainOptions` (the released schedules and weights, and
vsode's additions), validated in one place, and the run's file formats."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ...errors import InputError
from ..losses import LambdaSchedule

STATE_FORMAT = "vsode/train-state@1"
RUN_FORMAT = "vsode/train-run@1"
SAMPLING = ("static", "interpolate", "extrapolate", "mixed")


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
    frames' encoder features), another vsode addition, 0 in the released presets. feature_lambda:
    a vsode addition (0 as released): the W+ term again, ×``feature_lambda``, with the tokens lifted
    from the supervised frames' own encoder features instead of the ODE states, so the modulation
    network and mapper learn to read motion from the features that the state term pulls the ODE
    towards. state_motion: the state term's weight on the frames' deviations from their clip's
    mean (:func:`~vsode.train.losses.state_loss`'s ``motion_weight``; 1 = the plain distance).
    wplus_motion: the same split for the W+ term and the feature term
    (:func:`~vsode.train.losses.motion_weighted_mse`; 1 = the plain MSE).
    latent_warmup:
    the first steps train the latent terms alone (latent hinge, W+, state): every image loss weight
    is 0 there and nothing is rendered (a vsode addition, 0 in the released presets: the demo
    model learns its motion from the W+ term before the image losses start). grad_clip: scale the
    gradients of all trained parameters together down to this norm when it is larger (0: never,
    as released); every logged step records the norm before clipping as ``grad/norm``.
    strength: α of the edit branch. sampling: ``static`` (all
    frames observed), ``interpolate`` (``n_hidden`` interior frames hidden from the ODE-GRU but
    supervised), ``extrapolate`` (the last ``n_hidden`` hidden) or ``mixed`` (each step draws
    ``interpolate`` or ``extrapolate``, half each: a vsode addition that teaches the latent ODE
    both to fill gaps and to continue past the last frame). max_steps: stop after this
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
    state_motion: float = 1.0
    wplus_motion: float = 1.0
    feature_lambda: float = 0.0
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
        if self.feature_lambda < 0:
            problems.append(f"feature_lambda {self.feature_lambda} must not be negative")
        if self.wplus_motion < 0:
            problems.append(f"wplus_motion {self.wplus_motion} must not be negative")
        if self.state_motion < 0:
            problems.append(f"state_motion {self.state_motion} must not be negative")
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
