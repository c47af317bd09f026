"""Fitting a model's :class:`~vsode.model.prior.Prior` on a prepared training folder.

Every clip of the folder is encoded as the applications encode an input: all its frames (or its
first ``max_frames``) at their own times give ``z_d0``, the mean of its frames' W+ gives ``z_C``.
The Gaussians of :mod:`vsode.model.prior` are fitted on those codes. ``vsode train`` fits one at
the end of a finished run; ``vsode fit-prior`` fits one for any model, e.g. an imported one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..model import VidStyleODE, model_from_checkpoint
from ..model.prior import DEFAULT_COMPONENTS, Gaussian, Prior
from ..progress import Progress, ensure
from .data import SPLITS, TrainData


@torch.no_grad()
def fit_prior(
    model: VidStyleODE,
    data_dir: str | os.PathLike,
    *,
    split: str = "train",
    components: int = DEFAULT_COMPONENTS,
    max_frames: int | None = None,
    progress: Progress | None = None,
) -> Prior:
    """Encode every clip of ``data_dir`` (one ``split``) with ``model`` and fit its prior.

    Args:
        model: the VidStyleODE (no backbones needed).
        data_dir: a folder written by ``vsode prepare``.
        split: ``train`` (what the model learned from), ``val`` or ``all``.
        components: principal directions kept per Gaussian.
        max_frames: encode at most the first this many frames of a clip (None: all of them).
    """
    if split not in SPLITS:
        raise InputError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    if components < 1:
        raise InputError(f"--components {components} must be 1 or more")
    if max_frames is not None and max_frames < 2:
        raise InputError(f"--max-frames {max_frames} must be 2 or more (a motion needs two frames)")
    data = TrainData(data_dir, split=split)
    if len(data) < 2:
        raise InputError(f"{data_dir} has {len(data)} clip(s) in split {split}; a prior needs at least 2")
    device = next(model.parameters()).device
    states, contents = [], []
    with ensure(progress).stage("fit prior", total=len(data), unit="clip") as stage:
        for video in data.videos:
            n = video.n_frames if max_frames is None else min(video.n_frames, max_frames)
            frames, wplus = data.load(video.id, range(n))
            code = model.encode_video(frames.to(device), [float(t) for t in video.times[:n]], latents=wplus.to(device))
            states.append(code.z_d0.float().cpu())
            contents.append(code.content_code.float().cpu())
            stage.advance()
    return Prior(Gaussian.fit(torch.stack(states), components), Gaussian.fit(torch.stack(contents), components),
                 clips=len(states), source=Path(data_dir).name)


def fit_prior_file(
    model: str | os.PathLike,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    split: str = "train",
    components: int = DEFAULT_COMPONENTS,
    max_frames: int | None = None,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``vsode fit-prior``: load ``model`` (a name or a file), fit its prior on ``data_dir`` and
    write the model with it to ``output`` (the file's other records kept as they were; ``device``
    encodes the clips). Returns the JSON-safe summary."""
    from ..checkpoints.cache import resolve
    from ..checkpoints.load import safe_load
    from ..device import resolve_device
    from ..fileio import check_output_path, save_torch

    output = Path(output)
    check_output_path(output, force=force)
    ckpt = dict(safe_load(resolve(model, cache_dir=cache_dir), map_location="cpu"))
    loaded = model_from_checkpoint(ckpt, label=str(model))
    prior = fit_prior(loaded.to(resolve_device(device)).eval(), data_dir, split=split, components=components,
                      max_frames=max_frames, progress=progress)
    ckpt["prior"] = prior.to_dict()  # everything else of the file as it was
    save_torch(ckpt, output, force=force)
    return {"output": str(output), "model": str(model), "data": str(data_dir), **summary(prior)}


def summary(prior: Prior) -> dict[str, Any]:
    """What a fitted prior holds, in numbers: clips, and per Gaussian its dimension, components,
    the share of the variance they explain and the residual standard deviation."""
    out: dict[str, Any] = {"clips": prior.clips}
    for name, g in (("motion", prior.motion), ("content", prior.content)):
        kept = float(g.scales.double().pow(2).sum())
        total = kept + g.residual**2 * (g.dim - g.scales.numel())
        out[name] = {"dim": g.dim, "components": int(g.scales.numel()),
                     "explained": round(kept / total, 4) if total > 0 else 1.0, "residual_std": round(g.residual, 6)}
    return out
