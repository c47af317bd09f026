"""Scores of the applications against the demo world's ground truth, as pure functions.

Every function here takes frames (``T×3×H×W`` RGB in [0, 1]), readings (what CLIP or the motion
regressor saw on each frame) and ground truth, and returns plain numbers; nothing is loaded,
written or printed. :mod:`vsode.demo.evaluate` reads an output and its truth file, runs the readers
and calls these; ``vsode demo`` and ``vsode eval`` report what they return.

The scores (issue 8, following the paper's evaluation where one exists):

- edit: :func:`edit_accuracy`: share of frames whose prompted attribute reads as prompted
  (zero-shot CLIP, the paper's Acc.) and share whose other attributes read unchanged;
  :func:`clip_direction`: how well the frames' change agrees with the texts' direction in CLIP
  (continuous: it shows an edit that moves the right way without yet reading as the new value);
- temporal consistency: :func:`attribute_flips` (frame-to-frame changes of what CLIP reads) and
  :func:`frame_difference` relative to the source's own (:func:`temporal_consistency`);
- interpolation: :func:`psnr` at held-out times (:func:`held_out`), beside baselines made with
  :func:`blend_neighbours` (linear blend of the neighbouring input frames; the same weights on
  W+ codes give the latent baseline), and the inputs' mean W+ alone (no motion);
- extrapolation: :func:`extrapolation_scores` (PSNR over the first 0.5 s past the end vs
  repeating the last frame);
- for both, the baselines built from what the application received (like-for-like), the same
  built from the true frames (upper bounds), and the model-free control with the
  :func:`ode_gain` over it (:func:`interpolation_scores`);
- animation: :func:`trajectory_correlation` of the driver's true mouth and head trajectories with
  the measured ones, and :func:`attribute_agreement` with the portrait;
- blend-motion: :func:`blend_scores` (motion energy inside the mask follows B, outside follows A).

Attribute readings are dicts ``{attribute: [value per frame]}``. Eye colour cannot be read while
the eyes are closed, so ``visible`` (``{attribute: bool per frame}``, from the ground truth,
:func:`eyes_visible`) leaves those frames out of every eye score.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..train.losses import psnr  # pooled over every frame, in float64
from .world import ATTRIBUTES, VideoParams, caption_for, region_masks

NAMED = ("hair", "eyes", "skin")  # the attributes captions name (the background never is)
IRIS_SHARE = 0.5  # eye colour is read on frames showing at least this share of the open eyes' iris
EXTRAPOLATION_WINDOW = Fraction(1, 2)  # seconds past the end that extrapolation is scored over

Readings = Mapping[str, Sequence[str]]
Visibility = Mapping[str, Sequence[bool] | np.ndarray]


# --- pixels ----------------------------------------------------------------------------------------


def frame_difference(frames: torch.Tensor) -> float:
    """Mean absolute difference between consecutive frames (0 for a single frame)."""
    if frames.shape[0] < 2:
        return 0.0
    return float((frames[1:].double() - frames[:-1].double()).abs().mean())


def blend_neighbours(frames: torch.Tensor, index: Sequence[int], weight: Sequence[float]) -> torch.Tensor:
    """``(1 − w)·x[i] + w·x[i + 1]`` per (i, w): linear interpolation between neighbours.

    ``frames`` may be images (``N×3×H×W``) or W+ codes (``N×n×D``): the same weights give the
    frame-blend and the latent-interpolation baselines.
    """
    i = torch.as_tensor(list(index), dtype=torch.long)
    w = torch.as_tensor(list(weight), dtype=frames.dtype).view(-1, *([1] * (frames.ndim - 1)))
    return torch.lerp(frames[i], frames[i + 1], w)


def held_out(times: Sequence[Fraction], source_times: Sequence[Fraction]) -> tuple[list[int], list[int], list[float]]:
    """Output frames strictly between two input frames (and not at one): their indices in ``times``,
    the index of the input frame before each and the fraction of the way to the next one.

    Frames at the input's own times and past its last frame are not held out.
    """
    src = sorted(Fraction(s) for s in source_times)
    on_grid = set(src)
    frames, before, weight = [], [], []
    for k, t in enumerate(times):
        t = Fraction(t)
        if t in on_grid or t <= src[0] or t >= src[-1]:
            continue
        i = max(j for j, s in enumerate(src) if s < t)
        frames.append(k)
        before.append(i)
        weight.append(float((t - src[i]) / (src[i + 1] - src[i])))
    return frames, before, weight


def interpolation_scores(output: torch.Tensor, truth: torch.Tensor,
                         baselines: Mapping[str, torch.Tensor] | None = None, *,
                         upper_bounds: Mapping[str, torch.Tensor] | None = None,
                         control: torch.Tensor | None = None) -> dict[str, Any]:
    """PSNR of the held-out frames against the truth, and of each baseline's frames for them.

    Args:
        output, truth: the held-out frames only (``N×3×H×W``).
        baselines: name → the frames of a baseline built from what the application received
            (its decoded input video, through the same encoder): like-for-like.
        upper_bounds: name → the frames of a baseline built from the true frames instead.
        control: the model-free control's frames; adds ``control_psnr_db`` and ``ode_gain_db``
            (:func:`ode_gain`).

    A baseline given as one frame (``3×H×W``) is held over every frame (repeating the last one).
    """
    out = {
        "frames": int(output.shape[0]),
        "psnr_db": _db(psnr(output, truth)),
        "baselines_psnr_db": _versus(baselines, truth),
        "upper_bounds_psnr_db": _versus(upper_bounds, truth),
    }
    if control is not None:
        out["control_psnr_db"] = _versus({"control": control}, truth)["control"]
        out["ode_gain_db"] = ode_gain(out["psnr_db"], out["control_psnr_db"])
    return out


def extrapolation_scores(output: torch.Tensor, truth: torch.Tensor,
                         baselines: Mapping[str, torch.Tensor] | None = None, *,
                         upper_bounds: Mapping[str, torch.Tensor] | None = None,
                         control: torch.Tensor | None = None) -> dict[str, Any]:
    """PSNR of frames past the input's end, and of baselines for them (e.g. ``repeat_last``: the
    input's last frame, ``3×H×W``, held); arguments as :func:`interpolation_scores`."""
    return interpolation_scores(output, truth, baselines, upper_bounds=upper_bounds, control=control)


def ode_gain(output_db: float | None, control_db: float | None) -> float | None:
    """The output's PSNR minus the model-free control's: what the latent ODE adds (dB; None when
    either is unknown)."""
    if output_db is None or control_db is None:
        return None
    if math.isinf(output_db) and math.isinf(control_db):
        return 0.0 if output_db == control_db else output_db - control_db
    return _db(output_db - control_db)


def _versus(frames: Mapping[str, torch.Tensor] | None, truth: torch.Tensor) -> dict[str, float]:
    return {name: _db(psnr(f.expand_as(truth) if f.ndim == truth.ndim - 1 else f, truth))
            for name, f in (frames or {}).items()}


# --- attributes ------------------------------------------------------------------------------------


def attribute_prompts(attribute: str) -> list[str]:
    """Zero-shot prompts for one attribute in the training captions' style, vocabulary order:
    ``"a photo of a person with blonde hair"``, ..."""
    if attribute not in NAMED:
        raise InputError(f"attribute {attribute!r} is not one captions name ({', '.join(NAMED)})")
    return [caption_for({attribute: value}) for value in ATTRIBUTES[attribute]]


@torch.no_grad()
def read_attributes(clip: Any, frames: torch.Tensor, attributes: Sequence[str] = NAMED,
                    *, batch_size: int = 128) -> dict[str, list[str]]:
    """What a CLIP reads on each frame: per attribute, the vocabulary value whose prompt
    (:func:`attribute_prompts`) is nearest the frame. The reader itself; the scores take its output.

    Args:
        clip: a :class:`vsode.clip.ClipModel` (the demo's is ``clip-demo``).
        frames: ``T×3×H×W`` in [0, 1].
    """
    texts = {a: F.normalize(clip.encode_text(attribute_prompts(a)), dim=-1) for a in attributes}
    picks: dict[str, list[str]] = {a: [] for a in attributes}
    for start in range(0, frames.shape[0], batch_size):
        x = frames[start : start + batch_size].to(clip.device, torch.float32) * 2 - 1
        image = F.normalize(clip.encode_image(x), dim=-1)
        for a in attributes:
            names = list(ATTRIBUTES[a])
            picks[a] += [names[i] for i in (image @ texts[a].T).argmax(-1).tolist()]
    return picks


# The regions a named attribute is painted in (see world.region_masks), and the range of shades the
# renderer paints its colour at (hair: 0.65 brows to 1.25 sheen; skin: 0.82 nose to 1; iris: 1).
PIXEL_REGIONS = {"hair": "hair", "eyes": "iris", "skin": "skin"}
_SHADES = {"hair": (0.6, 1.3), "eyes": (0.85, 1.15), "skin": (0.75, 1.05)}
LANDED_SHARE, LANDED_GAIN_DB = 0.9, 1.0  # an edit lands: the pixels read it on 90 % of frames, +1 dB
CORE = 0.9  # pixels read: those at least this share inside their region (no edges, no neighbours' colours)


def region_colours(frames: torch.Tensor, params: VideoParams, times: Sequence[float] | np.ndarray,
                   attributes: Sequence[str] = NAMED) -> dict[str, torch.Tensor]:
    """Per attribute, the mean colour of each frame's pixels inside its region (``T×3``; NaN where
    a frame shows none), the regions being where the renderer paints ``params`` at ``times``.

    An edit keeps the motion and the face's shape, so the source's or the expected video's params
    place the regions of an edited output as well."""
    n, size = frames.shape[0], frames.shape[-1]
    times = np.asarray(times, dtype=np.float64)
    if len(times) != n:
        raise InputError(f"{n} frames but {len(times)} times to place their regions at")
    masks = region_masks(params, times, size=size)
    out = {}
    for a in attributes:
        core = (masks[PIXEL_REGIONS[a]] >= CORE).to(torch.float64)  # T H W
        count = core.sum(dim=(1, 2))
        total = (frames.double() * core[:, None]).sum(dim=(2, 3))  # T 3
        out[a] = total / count[:, None].where(count[:, None] > 0, torch.full_like(count[:, None], float("nan")))
    return out


def read_pixels(frames: torch.Tensor, params: VideoParams, times: Sequence[float] | np.ndarray,
                attributes: Sequence[str] = NAMED) -> dict[str, list[str]]:
    """What the pixels show on each frame: per attribute, the vocabulary value whose colour (at the
    shade that fits best, within the shades the renderer paints it at) is nearest the mean colour
    of the attribute's region (:func:`region_colours`). A judge no optimisation against CLIP can
    fool: it reads the renderer's own regions of the frames. ``"none"`` where a frame shows no
    pixel of the region (use ``visible`` to leave those out)."""
    colours = region_colours(frames, params, times, attributes)
    picks: dict[str, list[str]] = {}
    for a in attributes:
        names = list(ATTRIBUTES[a])
        palette = torch.tensor([ATTRIBUTES[a][v] for v in names], dtype=torch.float64)  # V 3
        lo, hi = _SHADES[a]
        mean = colours[a]  # T 3
        # the best shade of each palette colour for each frame's mean colour, kept in range
        scale = ((mean @ palette.T) / (palette * palette).sum(-1)).clamp(lo, hi)  # T V
        dist = (mean[:, None] - scale[..., None] * palette[None]).norm(dim=-1)  # T V
        best = dist.argmin(-1).tolist()
        picks[a] = [names[i] if bool(torch.isfinite(mean[k]).all()) else "none" for k, i in enumerate(best)]
    return picks
def majority(read: Readings) -> dict[str, str]:
    """The value read on most frames, per attribute (ties: vocabulary order): what a clip shows."""
    out = {}
    for attribute, values in read.items():
        names = list(ATTRIBUTES[attribute])
        out[attribute] = max(names, key=lambda v: (list(values).count(v), -names.index(v)))
    return out


def distinct_looks(reads: Sequence[Readings], attributes: Sequence[str] = NAMED) -> int:
    """How many different combinations of ``attributes`` (each clip's :func:`majority`) the clips
    show: generation's diversity across seeds."""
    return len({tuple(majority(r)[a] for a in attributes) for r in reads})


def eyes_visible(params: VideoParams, times: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per time, whether the eyes of ``params`` are open enough for their colour to be read: at
    least :data:`IRIS_SHARE` of the iris they show when not blinking (64 px renders)."""
    times = np.asarray(times, dtype=np.float64)
    no_blinks = dataclasses.replace(params.dynamics, blink_duration=1e-9)
    open_eyes = dataclasses.replace(params, dynamics=no_blinks)
    iris = region_masks(params, times, size=64)["iris"].sum(dim=(1, 2))
    full = region_masks(open_eyes, times, size=64)["iris"].sum(dim=(1, 2))
    return (iris >= IRIS_SHARE * full).numpy()


def _checked(read: Readings, attribute: str, visible: Visibility | None) -> np.ndarray:
    n = len(read[attribute])
    if visible is None or attribute not in visible:
        return np.ones(n, dtype=bool)
    mask = np.asarray(visible[attribute], dtype=bool)
    if mask.shape != (n,):
        raise InputError(f"visibility of {attribute} has {mask.shape} entries for {n} frames")
    return mask


def _share(hits: np.ndarray, checked: np.ndarray) -> float | None:
    return float(hits[checked].mean()) if checked.any() else None


def attribute_agreement(read: Readings, expected: Mapping[str, str],
                        visible: Visibility | None = None) -> dict[str, Any]:
    """Per attribute of ``expected``, the share of (visible) frames that read as expected, and
    ``all``: the share of frames where every attribute that can be seen does.

    ``None`` for an attribute never visible.
    """
    out: dict[str, Any] = {}
    every = None
    for a, value in expected.items():
        hits = np.array([v == value for v in read[a]], dtype=bool)
        checked = _checked(read, a, visible)
        out[a] = _share(hits, checked)
        ok = hits | ~checked
        every = ok if every is None else every & ok
    out["all"] = float(every.mean()) if every is not None and len(every) else None
    return out


def edit_accuracy(read: Readings, target: Mapping[str, str], source: Mapping[str, str],
                  visible: Visibility | None = None) -> dict[str, Any]:
    """How well an edit did what its prompt asked and nothing else.

    Args:
        read: what CLIP reads on each output frame (:func:`read_attributes`).
        target: the prompted attribute(s), e.g. ``{"hair": "blonde"}``.
        source: the unedited video's attributes (the named ones are compared).
        visible: frames where each attribute can be seen (eyes: :func:`eyes_visible`).

    Returns ``accuracy``: share of frames whose target attributes all read as prompted (frames
    where a target cannot be seen are left out); ``others_unchanged``: share of frames whose other
    named attributes all read as the source's (unseen ones are not held against a frame);
    ``target`` and ``others``: the same per attribute.
    """
    unknown = [a for a in target if a not in NAMED]
    if unknown or not target:
        raise InputError(f"edit target {dict(target)} must name some of {', '.join(NAMED)}")
    tgt = attribute_agreement(read, dict(target), visible)
    others = {a: source[a] for a in NAMED if a not in target and a in read}
    oth = attribute_agreement(read, others, visible) if others else {"all": None}
    n = len(next(iter(read.values())))
    seen = np.zeros(n, dtype=bool)
    for a in target:
        seen |= _checked(read, a, visible)
    hits = np.ones(n, dtype=bool)
    for a, value in target.items():
        hits &= np.array([v == value for v in read[a]]) | ~_checked(read, a, visible)
    return {
        "accuracy": _share(hits, seen),
        "others_unchanged": oth.pop("all"),
        "target": {a: tgt[a] for a in target},
        "others": oth,
    }


def edit_landed(pixels: Mapping[str, Any], psnr_db: float | None, inversion_psnr_db: float | None) -> bool | None:
    """Whether an edit landed by the judge CLIP cannot fool: the pixels read the prompted value on
    at least :data:`LANDED_SHARE` of the frames (:func:`edit_accuracy` of :func:`read_pixels`) and
    the output is at least :data:`LANDED_GAIN_DB` nearer the edited truth than the unedited
    inversion is. None when the inversion's PSNR is not known."""
    if inversion_psnr_db is None or psnr_db is None or pixels.get("accuracy") is None:
        return None
    return bool(pixels["accuracy"] >= LANDED_SHARE and psnr_db >= inversion_psnr_db + LANDED_GAIN_DB)


def clip_direction(clip: Any, output: torch.Tensor, source: torch.Tensor, source_text: str, target_text: str,
                   *, batch_size: int = 128) -> float | None:
    """How far an edit moved each frame in the direction its texts ask: the mean over frames of
    ``cos(CLIP_I(output) − CLIP_I(source), CLIP_T(target) − CLIP_T(source))``, the agreement the
    training's directional loss raises (un-normalised embeddings, as there).

    Args:
        clip: a :class:`vsode.clip.ClipModel`.
        output: the edited frames; ``source``: the unedited ones at the same times (``T×3×H×W``
            in [0, 1]).
        source_text, target_text: the descriptions of the unedited and the edited video.

    Returns ``None`` when the two texts embed alike (no direction to compare with).
    """
    _same_shape(output, source)
    text = clip.encode_text([source_text, target_text])
    direction = text[1] - text[0]
    if float(direction.norm()) == 0:
        return None
    cosines = []
    for start in range(0, output.shape[0], batch_size):
        pair = torch.cat([output[start : start + batch_size], source[start : start + batch_size]])
        image = clip.encode_image(pair.to(clip.device, torch.float32) * 2 - 1)
        moved, base = image.chunk(2)
        cosines.append(F.cosine_similarity(moved - base, direction[None], dim=-1))
    return float(torch.cat(cosines).mean())


def attribute_flips(read: Readings, visible: Visibility | None = None) -> dict[str, Any]:
    """Frame-to-frame changes of what CLIP reads: per attribute the number of consecutive frame
    pairs (both visible) that read differently, and ``flip_rate``: the share of consecutive pairs
    where any attribute does. A steady video has none."""
    n = len(next(iter(read.values())))
    any_flip = np.zeros(max(0, n - 1), dtype=bool)
    flips = {}
    for a, values in read.items():
        checked = _checked(read, a, visible)
        pair = checked[1:] & checked[:-1]
        changed = np.array([values[i + 1] != values[i] for i in range(n - 1)], dtype=bool) & pair
        flips[a] = int(changed.sum())
        any_flip |= changed
    return {"flips": flips, "transitions": n - 1, "flip_rate": float(any_flip.mean()) if n > 1 else 0.0}


def temporal_consistency(read: Readings, frames: torch.Tensor, source: torch.Tensor,
                         visible: Visibility | None = None, truth: torch.Tensor | None = None) -> dict[str, Any]:
    """:func:`attribute_flips` of the output, and its :func:`frame_difference` next to the
    source's own (the video whose motion it keeps, at the same times): ``frame_diff_ratio`` 1
    moves as much as the source, above 1 flickers, below 1 is too still. An edit's new colours
    change the contrast of the motion a little, so with ``truth`` (the output's own ground truth)
    ``truth_frame_diff_ratio`` is the exact reference: 1 for a perfect output."""
    ours, theirs = frame_difference(frames), frame_difference(source)
    out = {
        **attribute_flips(read, visible),
        "frame_diff": round(ours, 6),
        "source_frame_diff": round(theirs, 6),
        "frame_diff_ratio": round(ours / theirs, 4) if theirs > 0 else None,
    }
    if truth is not None:
        exact = frame_difference(truth)
        out["truth_frame_diff_ratio"] = round(ours / exact, 4) if exact > 0 else None
    return out


# --- motion ----------------------------------------------------------------------------------------


def pearson(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float | None:
    """Pearson's r of two series; ``None`` when either is constant (r is undefined)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"series of shapes {a.shape} and {b.shape} cannot be correlated")
    if len(a) < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def trajectory_correlation(measured: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                           channels: Sequence[str] = ("mouth_open", "head_x", "head_y")) -> dict[str, float | None]:
    """Per motion channel, Pearson's r between the trajectory measured on a video and the true one."""
    return {c: _round(pearson(measured[c], truth[c])) for c in channels}


def motion_energy(frames: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """Per pair of consecutive frames, the mean absolute change inside ``weights`` (``H×W`` in
    [0, 1]): ``Σ w·|x[t+1] − x[t]| / (3 Σ w)``."""
    w = weights.to(torch.float64)
    if tuple(w.shape) != tuple(frames.shape[-2:]):
        raise InputError(f"mask {tuple(w.shape)} does not cover frames of {tuple(frames.shape[-2:])}")
    if w.sum() <= 0:
        raise InputError("the mask is empty: no motion energy can be measured inside it")
    change = (frames[1:].double() - frames[:-1].double()).abs().mean(dim=1)  # T-1 H W
    return ((change * w).sum(dim=(1, 2)) / w.sum()).numpy()


def palette_distance(frames: torch.Tensor, levels: int) -> float:
    """How far the frames' colours are from a poster palette: the mean distance of every channel
    value to the nearest of ``levels`` evenly spaced values in [0, 1] (0 for a posterised frame; at
    most ``1 / (2 (levels − 1))``). The colour statistic that shows the restyled generator's style."""
    steps = levels - 1
    x = frames.double().clamp(0, 1) * steps
    return float((x - torch.round(x)).abs().mean() / steps)


def energy_ratio(generated: Sequence[torch.Tensor], real: Sequence[torch.Tensor]) -> float:
    """The mean whole-frame :func:`motion_energy` of generated clips over that of real clips (1:
    they move as much)."""
    from ..train.prior import clip_motion_energy  # what the prior's motion gain is calibrated on

    def mean_energy(clips: Sequence[torch.Tensor]) -> float:
        return float(np.mean([clip_motion_energy(c) for c in clips]))

    return mean_energy(generated) / mean_energy(real)


def grid_to_pixels(mask: torch.Tensor | Sequence[Sequence[float]], size: int) -> torch.Tensor:
    """A mask over the dynamics grid (``h×w``, top row first) as ``size×size`` pixel weights: each
    cell covers its share of the frame (nearest neighbour)."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.ndim != 2 or m.numel() == 0:
        raise InputError(f"a blend mask is a grid of rows, got shape {tuple(m.shape)}")
    return F.interpolate(m[None, None], size=(size, size), mode="nearest")[0, 0]


def blend_scores(output: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    """Does the motion inside the mask follow B and outside follow A?

    Args:
        output: the blended video; ``a``, ``b``: the true A and B at the same times.
        mask: ``H×W`` weights, 1 where B's motion was asked for.

    Returns, ``inside`` and ``outside`` the mask: the correlation of the output's
    :func:`motion_energy` series with A's and with B's, and the ratio of its mean energy to that of
    the video it should follow (B inside, A outside); ``follows``: whether the inside correlates
    better with B than with A and the outside better with A than with B.
    """
    out: dict[str, Any] = {}
    for where, weights, ours in (("inside", mask, "b"), ("outside", 1 - mask, "a")):
        e_out, e_a, e_b = (motion_energy(x, weights) for x in (output, a, b))
        follow = e_b if ours == "b" else e_a
        out[where] = {
            "corr_a": _round(pearson(e_out, e_a)),
            "corr_b": _round(pearson(e_out, e_b)),
            f"energy_ratio_{ours}": round(float(e_out.mean() / follow.mean()), 4) if follow.mean() > 0 else None,
        }
    inside, outside = out["inside"], out["outside"]
    out["follows"] = {
        "inside_b": _gt(inside["corr_b"], inside["corr_a"]),
        "outside_a": _gt(outside["corr_a"], outside["corr_b"]),
    }
    return out


# --- helpers ---------------------------------------------------------------------------------------


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise InputError(f"frames of shape {tuple(a.shape)} cannot be compared with {tuple(b.shape)}")


def _db(value: float) -> float:
    return value if math.isinf(value) else round(value, 3)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _gt(x: float | None, y: float | None) -> bool | None:
    if x is None:
        return None
    return y is None or x > y
