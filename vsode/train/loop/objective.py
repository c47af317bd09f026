"""One training step's objective (design §9.6): the observed and supervised frames, both branches
of the modulation network, the renders and every loss term."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from ...dynamics import batch_major, time_major
from ...model import VidStyleODE
from ...options import DEFAULT_SOURCE
from ..losses import (
    appearance_loss,
    consistency_loss,
    directional_loss,
    latent_hinge,
    motion_weighted_mse,
    state_loss,
    structure_loss,
)
from .options import TrainOptions


@dataclasses.dataclass
class FrozenModels:
    """The frozen models a training step needs (not :class:`vsode.model.Backbones`, the model's
    record of which checkpoints it was trained with)."""

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
    mode = options.sampling
    if mode == "mixed":  # one draw per step; the other modes draw nothing here
        mode = ("interpolate", "extrapolate")[int(torch.randint(2, (1,), generator=g))]
    if mode == "interpolate":
        hidden = torch.randperm(n_frames - 2, generator=g)[: options.n_hidden] + 1  # never first/last
        mask[hidden] = 0
    elif mode == "extrapolate":
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
    backbones: FrozenModels,
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
        "feature": options.wplus_lambda * options.feature_lambda,
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
        sources = [c or DEFAULT_SOURCE for c in batch.captions]
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
    target_w = latents[:, chosen.to(device)]  # B n n_latent D
    terms["wplus"] = motion_weighted_mse(batch_major(w_rec, b), target_w, options.wplus_motion) \
        if compute["wplus"] else zero
    k = model.dynamics.observed_channels  # free channels (if any) are left to the ODE
    terms["state"] = state_loss(states[:, :, :k], feats[:, chosen.to(device), :k],
                                motion_weight=options.state_motion) if compute["state"] else zero
    if compute["feature"]:  # the same W+ term read from the frames' own features (no ODE)
        lifted = model.dynamics.tokens(feats[:, chosen.to(device)])
        terms["feature"] = motion_weighted_mse(batch_major(model.decode_w(lifted, content, style_rec), b),
                                               target_w, options.wplus_motion)
    else:
        terms["feature"] = zero

    total = (
        weights["rec"] * terms["rec"]
        + weights["clip"] * terms["clip"]
        + weights["latent"] * terms["latent"]
        + weights["vgg"] * (terms["structure"] + terms["appearance"])
        + weights["consistency"] * terms["consistency"]
        + weights["wplus"] * terms["wplus"]
        + weights["state"] * terms["state"]
        + weights["feature"] * terms["feature"]
    )
    logged = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
    logged.update({f"lambda/{k}": float(v) for k, v in weights.items()})
    logged["loss/total"] = float(total.detach())
    return total, logged


def target_captions(captions: list[str | None], pool: list[str], g: torch.Generator) -> list[str]:
    """Edit targets: video b takes the caption of video (b−1) mod B (the released roll by one);
    with one video per batch, or when that caption is the same text, a different caption is
    drawn from the training set's ``pool``."""
    sources = [c or DEFAULT_SOURCE for c in captions]
    targets = [sources[(i - 1) % len(sources)] for i in range(len(sources))]
    for i, (src, tgt) in enumerate(zip(sources, targets)):
        if tgt == src:
            others = [c for c in pool if c != src]
            if others:
                targets[i] = others[int(torch.randint(len(others), (1,), generator=g))]
    return targets
