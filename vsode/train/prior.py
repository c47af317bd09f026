"""Fitting a model's :class:`~vsode.model.prior.Prior` on a prepared training folder.

Every clip of the folder is encoded as the applications encode an input: all its frames (or its
first ``max_frames``) at their own times give ``z_d0``, the mean of its frames' W+ gives ``z_C``.
The Gaussians of :mod:`vsode.model.prior` are fitted on those codes. ``vsode train`` fits one at
the end of a finished run; ``vsode fit-prior`` fits one for any model, e.g. an imported one.

Then the prior's motion gain is calibrated (:func:`calibrate_motion_gain`): videos sampled from
the fitted prior are rendered as ``vsode generate`` renders them, at the times of some of the
clips, and the gain is the factor on their motion that makes their pixel motion energy (the mean
absolute change from one frame to the next) that of those clips.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..model import VidStyleODE, model_from_checkpoint
from ..model.prior import DEFAULT_COMPONENTS, Gaussian, Prior
from ..progress import Progress, ensure
from .data import SPLITS, TrainData


CALIBRATION_CLIPS = 16  # clips (and sampled videos) the motion gain is calibrated on
CALIBRATION_FRAMES = 24  # their first frames, at the clips' own times
CALIBRATION_RESOLUTION = 256  # the samples are rendered at no more than this (the RGB skip there)
CALIBRATION_PASSES = 2  # gain updates: g ← g·E_clips / E_samples(g), from g = 1
MAX_MOTION_GAIN = 10.0
MOTION_LIMIT_QUANTILE = 0.95  # of the clips' offsets from their first frame: the prior's motion limit


@torch.no_grad()
def fit_prior(
    model: VidStyleODE,
    data_dir: str | os.PathLike,
    *,
    split: str = "train",
    components: int = DEFAULT_COMPONENTS,
    max_frames: int | None = None,
    calibration_clips: int = CALIBRATION_CLIPS,
    progress: Progress | None = None,
) -> Prior:
    """Encode every clip of ``data_dir`` (one ``split``) with ``model``, fit its prior and
    calibrate the prior's motion gain.

    Args:
        model: the VidStyleODE; the calibration needs its generator and CLIP attached.
        data_dir: a folder written by ``vsode prepare``.
        split: ``train`` (what the model learned from), ``val`` or ``all``.
        components: principal directions kept per Gaussian.
        max_frames: encode at most the first this many frames of a clip (None: all of them).
        calibration_clips: clips the motion gain is calibrated on (:func:`calibrate_motion_gain`);
            0 keeps the model's motion as it is (gain 1).
    """
    if split not in SPLITS:
        raise InputError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    if components < 1:
        raise InputError(f"--components {components} must be 1 or more")
    if calibration_clips < 0:
        raise InputError(f"--calibration-clips {calibration_clips} must be 0 (no calibration) or more")
    if max_frames is not None and max_frames < 2:
        raise InputError(f"--max-frames {max_frames} must be 2 or more (a motion needs two frames)")
    data = TrainData(data_dir, split=split)
    if len(data) < 2:
        raise InputError(f"{data_dir} has {len(data)} clip(s) in split {split}; a prior needs at least 2")
    device = next(model.parameters()).device
    states, contents, offsets = [], [], []
    with ensure(progress).stage("fit prior", total=len(data), unit="clip") as stage:
        for video in data.videos:
            n = video.n_frames if max_frames is None else min(video.n_frames, max_frames)
            frames, wplus = data.load(video.id, range(n))
            code = model.encode_video(frames.to(device), [float(t) for t in video.times[:n]], latents=wplus.to(device))
            states.append(code.z_d0.float().cpu())
            contents.append(code.content_code.float().cpu())
            offsets.append((wplus[1:] - wplus[:1]).flatten(1).norm(dim=1).float().cpu())
            stage.advance()
    offsets = torch.cat(offsets).double().numpy()
    limit = float(np.quantile(offsets, MOTION_LIMIT_QUANTILE)) if offsets.size else 0.0
    prior = Prior(Gaussian.fit(torch.stack(states), components), Gaussian.fit(torch.stack(contents), components),
                  clips=len(states), source=Path(data_dir).name, motion_limit=limit if limit > 0 else None)
    if calibration_clips:
        gain, record = calibrate_motion_gain(model, prior, data, clips=calibration_clips, progress=progress)
        prior = dataclasses.replace(prior, motion_gain=gain, calibration=record)
    return prior


def clip_motion_energy(frames: torch.Tensor) -> float:
    """The mean absolute change of every pixel and channel from one frame to the next (T×3×H×W in
    [0, 1], T ≥ 2): how much a clip moves, per frame."""
    return float((frames[1:].double() - frames[:-1].double()).abs().mean())


@torch.no_grad()
def calibrate_motion_gain(
    model: VidStyleODE,
    prior: Prior,
    data: TrainData,
    *,
    clips: int = CALIBRATION_CLIPS,
    frames: int = CALIBRATION_FRAMES,
    passes: int = CALIBRATION_PASSES,
    progress: Progress | None = None,
) -> tuple[float, dict[str, Any]]:
    """The motion gain ``g`` that makes videos sampled from ``prior`` move as much as ``data``'s clips.

    ``clips`` clips spread evenly over ``data`` give their first ``frames`` frames and times. Sample
    k (seed k of :func:`~vsode.model.prior.sample_generator`, as ``vsode generate --seed k`` draws
    it) is decoded at clip k's times under its own style ``CLIP_I(G(z_C))`` and rendered as
    ``generate`` renders it, ``G(z_C + d(t))`` with ``d = g·(M(t) − M(t0))`` bounded by the
    prior's ``motion_limit`` (:func:`~vsode.model.anchor.scale_motion`; constant noise; at no more than
    :data:`CALIBRATION_RESOLUTION` px, resized to the clips' frames). With ``E`` the mean
    :func:`clip_motion_energy`, ``g`` starts at 1 and is updated ``passes`` times,
    ``g ← g·E_clips / E_samples(g)`` (the energy is nearly proportional to ``g`` while the limit
    is far; the second pass takes up the bend), and kept within [0, :data:`MAX_MOTION_GAIN`].

    Returns ``(g, record)``: the record holds the clips and frames used, the clips' mean energy and
    ``[gain, E_samples / E_clips]`` for each gain tried (stored in the prior, shown by fit-prior).
    """
    import torch.nn.functional as F

    from ..model import VideoCode
    from ..model.anchor import scale_motion
    from ..model.prior import sample_generator

    videos = [v for v in data.videos if v.n_frames >= 2]
    if not videos or clips < 1:
        raise InputError("a motion gain is calibrated on at least one clip of two frames or more")
    picks = [videos[round(k * len(videos) / min(clips, len(videos)))] for k in range(min(clips, len(videos)))]
    generator, device = model.generator, next(model.parameters()).device
    resolution = min(int(generator.resolution), CALIBRATION_RESOLUTION)
    real, motions = [], []
    with ensure(progress).stage("calibrate motion", total=len(picks), unit="clip") as stage:
        for k, video in enumerate(picks):
            n = min(video.n_frames, frames)
            pixels, _ = data.load(video.id, range(n))
            real.append(clip_motion_energy(pixels))
            content = prior.content.sample(sample_generator(k, 1)).to(device, torch.float32)
            z_d0 = prior.motion.sample(sample_generator(k, 0)).to(device, model.dynamics.state_dtype)
            times = [float(t) for t in video.times[:n]]
            code = VideoCode(content, z_d0, times[0], tuple(times))
            style = model.style_code(content[None])
            wplus = torch.cat(list(model.decode(code, times, style=style, batch_size=n)))
            motions.append((content, wplus - wplus[:1], tuple(pixels.shape[-2:])))
            stage.advance()

    def energy(gain: float) -> float:
        out = []
        for content, motion, size in motions:
            wplus = content[None] + scale_motion(motion, gain, prior.motion_limit)
            image = generator.synthesize(wplus, noise="const", resolution=resolution)
            image = ((image.float() + 1) / 2).clamp(0, 1)
            if tuple(image.shape[-2:]) != size:
                image = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
            out.append(clip_motion_energy(image.cpu()))
        return sum(out) / len(out)

    target = sum(real) / len(real)
    gain, tried = 1.0, []
    for _ in range(max(1, passes)):
        e = energy(gain)
        tried.append([round(gain, 4), round(e / target, 4) if target > 0 else None])
        if e <= 0 or target <= 0:
            break
        gain = min(MAX_MOTION_GAIN, gain * target / e)
    record = {"clips": len(picks), "frames": min(frames, max(v.n_frames for v in picks)),
              "clip_energy": round(target, 6), "energy_ratio_at_gain": tried}
    return gain, record


def fit_prior_file(
    model: str | os.PathLike,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    split: str = "train",
    components: int = DEFAULT_COMPONENTS,
    max_frames: int | None = None,
    calibration_clips: int = CALIBRATION_CLIPS,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``vsode fit-prior``: load ``model`` (a name or a file), fit its prior on ``data_dir`` and
    write the model with it to ``output`` (the file's other records kept as they were; ``device``
    encodes the clips). The motion gain's calibration loads the model's generator and CLIP (not
    with ``calibration_clips=0``). Returns the JSON-safe summary."""
    from ..checkpoints.cache import resolve
    from ..checkpoints.load import safe_load
    from ..device import resolve_device
    from ..fileio import check_output_path, save_torch
    from ..model import load_model

    output = Path(output)
    check_output_path(output, force=force)
    ckpt = dict(safe_load(resolve(model, cache_dir=cache_dir), map_location="cpu"))
    if calibration_clips:
        loaded = load_model(ckpt, backbones=("generator", "clip"), cache_dir=cache_dir)
    else:
        loaded = model_from_checkpoint(ckpt, label=str(model))
    prior = fit_prior(loaded.to(resolve_device(device)).eval(), data_dir, split=split, components=components,
                      max_frames=max_frames, calibration_clips=calibration_clips, progress=progress)
    ckpt["prior"] = prior.to_dict()  # everything else of the file as it was
    save_torch(ckpt, output, force=force)
    return {"output": str(output), "model": str(model), "data": str(data_dir), **summary(prior)}


def summary(prior: Prior) -> dict[str, Any]:
    """What a fitted prior holds, in numbers: clips, the motion gain, and per Gaussian its
    dimension, components, the share of the variance they explain and the residual standard
    deviation."""
    out: dict[str, Any] = {"clips": prior.clips, "motion_gain": round(prior.motion_gain, 4),
                           "motion_limit": None if prior.motion_limit is None else round(prior.motion_limit, 4),
                           "calibration": prior.calibration}
    for name, g in (("motion", prior.motion), ("content", prior.content)):
        kept = float(g.scales.double().pow(2).sum())
        total = kept + g.residual**2 * (g.dim - g.scales.numel())
        out[name] = {"dim": g.dim, "components": int(g.scales.numel()),
                     "explained": round(kept / total, 4) if total > 0 else 1.0, "residual_std": round(g.residual, 6)}
    return out
