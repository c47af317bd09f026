"""Validation and samples: reconstructions of held-out clips, their PSNR against the motionless
content code, and sample videos."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...errors import InputError
from ...model import ModelConfig, VidStyleODE
from ..losses import psnr
from .objective import FrozenModels
from .options import TrainOptions


@torch.no_grad()
def reconstruct_video(
    model: VidStyleODE, backbones: FrozenModels, frames: torch.Tensor, w: torch.Tensor, times: torch.Tensor
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
    model: VidStyleODE, backbones: FrozenModels, data_dir: str | os.PathLike, options: TrainOptions,
    timings: dict[str, float],
) -> dict[str, float]:
    """Reconstruction PSNR and CLIP consistency on (up to ``val_videos``) validation videos."""
    from ..data import TrainData

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
        scores.append(psnr(out, frames, dtype=torch.float32))
        # the motionless baseline: every frame rendered from the content code alone
        still = backbones.generator.synthesize(w.mean(0, keepdim=True).to(out.device), noise="const")
        still = F.interpolate(still, size=tuple(frames.shape[-2:]), mode="bicubic", align_corners=False)
        static.append(psnr((still / 2 + 0.5).clamp(0, 1).expand_as(out), frames, dtype=torch.float32))
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
    model: VidStyleODE, backbones: FrozenModels, data_dir: str | os.PathLike, run_dir: Path, step: int,
    timings: dict[str, float],
) -> Path | None:
    """``samples/step-N.mp4``: a validation video, real frames beside their reconstruction."""
    from ...video import VideoWriter
    from ..data import TrainData

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
