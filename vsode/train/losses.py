"""VidStyleODE's training losses and their weight schedules, as the released code computes them
(design §9.2–§9.7).

Every loss keeps the released reductions (§15 item 23): the DINO structure and appearance losses
are **sums** over images of per-image means, the CLIP consistency loss sums over the other frames
before averaging, the latent hinge is a mean over all elements. The frozen feature extractors are
passed in: ``clip`` is a :class:`vsode.clip.ClipModel` (anything with ``encode_image`` /
``encode_text``), ``dino`` a :class:`vsode.dino.Dino`.

Frame batches of the CLIP losses are batch-major ``B×n×3×H×W``; ``index`` holds the ``k`` frame
indices (``k = min(3, n)``, the same for every video) drawn by the caller, see
:func:`pick_frames`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..dino import Dino, DinoFeatures
from ..errors import InputError

COS_EPS = 1e-8  # clamp of the norm product in the DINO key self-similarity (Splice's attn_cosine_sim)
DIRECTION_EPS = 1e-9  # added to the norms of the CLIP directions


# --- weight schedules ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LambdaSchedule:
    """A loss weight as a function of the global step: the released ``LambdaScheduler``.

    ``at(s)`` is 0 before ``warm``, then ramps linearly from ``lo`` (at ``warm``) to ``hi`` (at
    ``end``) and stays there. A constant weight is ``LambdaSchedule.constant(v)``.
    """

    warm: int
    lo: float
    hi: float
    end: int

    def __post_init__(self) -> None:
        for name in ("warm", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"lambda schedule {name} {value!r} must be a step count ≥ 0")
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"lambda schedule {name} {value!r} must be a finite number")
            object.__setattr__(self, name, float(value))
        if self.end <= self.warm:
            raise InputError(
                f"lambda schedule end {self.end} must be after warm {self.warm}; use constant(v) for a fixed weight"
            )

    @classmethod
    def constant(cls, value: float) -> "LambdaSchedule":
        """The weight ``value`` at every step (a plain float in the released YAML)."""
        return cls(warm=0, lo=value, hi=value, end=1)

    @property
    def is_constant(self) -> bool:
        return self.warm == 0 and self.lo == self.hi

    def at(self, step: int) -> float:
        """The weight at global step ``step``."""
        if step < self.warm:
            return 0.0
        return self.lo + min((step - self.warm) / (self.end - self.warm), 1.0) * (self.hi - self.lo)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | float | int) -> "LambdaSchedule":
        """Inverse of :meth:`to_dict`; a plain number is a constant (as in the released configs)."""
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return cls.constant(float(data))
        if not isinstance(data, Mapping):
            raise InputError(f"a lambda schedule is a dict (warm, lo, hi, end) or a number, not {data!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(data) != fields:
            raise InputError(f"lambda schedule {dict(data)!r} needs exactly the fields {sorted(fields)}")
        return cls(**data)


# --- the reconstruction metric -------------------------------------------------------------------


def psnr(
    output: torch.Tensor, truth: torch.Tensor, *, per_image: bool = False, dtype: torch.dtype = torch.float64
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: ``10·log10(1 / MSE)`` (peak 1).

    The one PSNR of vsode: validation during training, the demo's scores and its backbones' metrics.

    Args:
        output, truth: images of the same shape, values in [0, 1] (not clamped here); the leading
            dimension indexes the images (frames).
        per_image: ``False``: one MSE pooled over every pixel of every image, returned as a float
            (``inf`` when the images are equal). ``True``: one PSNR per image, a tensor of the
            leading dimension, each MSE floored at 1e-10 (so at most 100 dB).
        dtype: what the difference is squared and averaged in: float64 for the demo's scores,
            float32 where training logs it (the numbers each has always reported).
    """
    if output.shape != truth.shape:
        raise InputError(f"frames of shape {tuple(output.shape)} cannot be compared with {tuple(truth.shape)}")
    squared = (output.to(dtype) - truth.to(dtype)).square()
    if per_image:
        return -10 * torch.log10(squared.flatten(1).mean(1).clamp_min(1e-10))
    mse = squared.mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# --- CLIP losses ---------------------------------------------------------------------------------


def pick_frames(n: int, generator: torch.Generator | None = None, k: int = 3) -> torch.Tensor:
    """``min(k, n)`` distinct frame indices of ``range(n)`` in random order (the CLIP losses'
    frame subset, shared by every video of the batch)."""
    if n < 1:
        raise InputError(f"cannot pick frames out of {n}")
    return torch.randperm(n, generator=generator)[: min(k, n)]


def _frames_at(frames: torch.Tensor, index: torch.Tensor | Sequence[int], what: str) -> torch.Tensor:
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise InputError(f"{what} must be B×n×3×H×W; got shape {tuple(frames.shape)}")
    index = torch.as_tensor(index, dtype=torch.long).flatten().to(frames.device)
    if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= frames.shape[1]:
        raise InputError(f"frame index {index.tolist()} is empty or outside 0..{frames.shape[1] - 1}")
    return frames[:, index]  # B k 3 H W


def _embed(clip: Any, frames: torch.Tensor) -> torch.Tensor:
    b, k = frames.shape[:2]
    return clip.encode_image(frames.flatten(0, 1)).float().view(b, k, -1)  # B k E


def consistency_loss(clip: Any, frames: torch.Tensor, index: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """CLIP temporal consistency (released ``CLIPLoss.consistency_loss``, design §9.3).

    ``mean over (b, j) of Σ_{i=1..k−1} [1 − cos(e_bj, e_b,(j−i) mod k)]`` on the un-normalised
    CLIP image embeddings ``e`` of the ``k`` frames ``index``; i.e. (k−1) × the mean over ordered
    pairs of distinct frames. 0 for ``k = 1``.

    Args:
        clip: the frozen CLIP (``encode_image`` of [-1, 1] images).
        frames: ``B×n×3×H×W`` generated frames in [-1, 1] (full generator resolution).
        index: the ``k`` chosen frame indices.
    """
    e = _embed(clip, _frames_at(frames, index, "consistency_loss frames"))  # B k E
    k = e.shape[1]
    loss = e.new_zeros(e.shape[:2])
    for i in range(1, k):
        loss = loss + (1 - F.cosine_similarity(e, e.roll(i, dims=1), dim=-1))  # rolled row j = frame (j−i) mod k
    return loss.mean()


def _text_embedding(clip: Any, text: torch.Tensor | str | Sequence[str], batch: int, what: str) -> torch.Tensor:
    if isinstance(text, torch.Tensor):
        emb = text.float()
        if emb.ndim == 3:
            emb = emb.mean(dim=1)  # B T E → B E (the released code averages identical rows over time)
    else:
        emb = clip.encode_text(text).float()
    if emb.ndim != 2 or emb.shape[0] != batch:
        raise InputError(f"{what}: expected {batch} texts or a {batch}×E embedding; got shape {tuple(emb.shape)}")
    return emb


def directional_loss(
    clip: Any,
    real: torch.Tensor,
    edited: torch.Tensor,
    text_src: torch.Tensor | Sequence[str],
    text_tgt: torch.Tensor | Sequence[str],
    index: torch.Tensor | Sequence[int],
) -> torch.Tensor:
    """CLIP directional loss (released ``clip_directional_loss``, cosine type, ``norm=True``;
    design §9.4).

    Image side: per-frame L2-normalised CLIP embeddings of the ``k`` frames ``index``, averaged
    over frames without renormalising: ``u`` (real), ``v`` (edited), ``Δimg = u − v``. Text side:
    L2-normalised ``a`` (source), ``c`` (target), ``Δtxt = a − c``. If every element of ``Δtxt``
    is 0 (same source and target everywhere) the loss is the Frobenius norm of ``Δimg``;
    otherwise ``mean_b [1 − cos(Δtxt_b, Δimg_b)]`` with each direction divided by its norm + 1e-9.

    Args:
        clip: the frozen CLIP.
        real: ``B×n×3×H×W`` real frames in [-1, 1] (data resolution).
        edited: ``B×n×3×H'×W'`` edited frames in [-1, 1] (resized to the data resolution).
        text_src, text_tgt: B prompts each, or their un-normalised CLIP text embeddings
            ``B×E`` (or ``B×T×E``, averaged over T).
        index: the ``k`` frame indices, shared by ``real`` and ``edited``.
    """
    if real.shape[:2] != edited.shape[:2]:
        raise InputError(f"real {tuple(real.shape)} and edited {tuple(edited.shape)} frames must share B×n")
    b = real.shape[0]
    u = F.normalize(_embed(clip, _frames_at(real, index, "directional_loss real")), dim=-1).mean(dim=1)  # B E
    v = F.normalize(_embed(clip, _frames_at(edited, index, "directional_loss edited")), dim=-1).mean(dim=1)
    a = F.normalize(_text_embedding(clip, text_src, b, "text_src"), dim=-1)
    c = F.normalize(_text_embedding(clip, text_tgt, b, "text_tgt"), dim=-1)
    d_txt, d_img = (a - c).to(u.device), u - v
    if not bool(d_txt.any()):
        return torch.linalg.vector_norm(d_img)  # the released loader's case: a CLIP-space reconstruction term
    d_txt = d_txt / (d_txt.norm(dim=-1, keepdim=True) + DIRECTION_EPS)
    d_img = d_img / (d_img.norm(dim=-1, keepdim=True) + DIRECTION_EPS)
    return (1 - (d_txt * d_img).sum(dim=-1)).mean()


# --- latent regulariser --------------------------------------------------------------------------


def state_loss(states: torch.Tensor, features: torch.Tensor, motion_weight: float = 1.0) -> torch.Tensor:
    """A vsode addition: the squared distance per grid cell between the ODE states at the
    supervised times and those frames' encoder features (detached), averaged over cells and
    frames. Both are ``B×T×C×h×w``; the result is float32.

    ``motion_weight`` splits the distance into its mean over the T frames of each video (what
    the clip looks like) and the frames' deviations from that mean (how it moves), and weighs the
    second part by ``motion_weight``: 1 is the plain distance. The deviations are a small part of
    the features, so at 1 an ODE that holds the mean state scores almost as well as one that moves."""
    if states.shape != features.shape:
        raise InputError(f"state_loss: states {tuple(states.shape)} and features {tuple(features.shape)} differ")
    # summed over the C channels, averaged over the rest: C × the mean over everything
    return (states.shape[2] * motion_weighted_mse(states, features.detach().to(states.dtype), motion_weight)).float()


def motion_weighted_mse(pred: torch.Tensor, target: torch.Tensor, motion_weight: float = 1.0) -> torch.Tensor:
    """A vsode addition: the MSE between ``pred`` and ``target`` (``B×T×…``, frames on dim 1) with
    each video's error split into its mean over the T frames and the frames' deviations from it,
    the deviations weighed by ``motion_weight``. At 1 it is ``F.mse_loss``; above 1 a model that
    gets each clip's offset right but not how it moves scores worse."""
    if pred.shape != target.shape or pred.ndim < 2:
        raise InputError(f"motion_weighted_mse: {tuple(pred.shape)} and {tuple(target.shape)} must match, B×T×…")
    error = pred - target
    if motion_weight == 1.0:
        return error.pow(2).mean()
    mean = error.mean(1, keepdim=True)
    return mean.pow(2).mean() + motion_weight * (error - mean).pow(2).mean()


def latent_hinge(
    z_c: torch.Tensor, w_rec: torch.Tensor, w_edit: torch.Tensor | None = None, *, eps: float = 0.02
) -> torch.Tensor:
    """The released "l2_latent" hinge (design §9.5):
    ``max(MSE(z_C, w_rec) − ε/2, 0) + max(MSE(z_C, w_edit) − ε, 0)``, MSE a mean over all elements.

    ``z_c`` must have ``w``'s shape: repeat the per-video content code to the frame rows first
    (time-major, ``z_c.repeat(n, 1, 1)``). The edit term is left out when ``w_edit`` is None.
    """
    for name, w in (("w_rec", w_rec), ("w_edit", w_edit)):
        if w is not None and w.shape != z_c.shape:
            raise InputError(
                f"latent_hinge: z_c {tuple(z_c.shape)} and {name} {tuple(w.shape)} differ; "
                "repeat z_c to the rows of w first"
            )
    loss = F.relu(F.mse_loss(w_rec, z_c) - eps / 2)
    if w_edit is not None:
        loss = loss + F.relu(F.mse_loss(w_edit, z_c) - eps)
    return loss


# --- DINO (Splicing-ViT) losses ------------------------------------------------------------------


def self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """Cosine self-similarity of token keys ``B×T×D`` → ``B×T×T`` (Splice's ``attn_cosine_sim``:
    dot products over the norm product clamped at 1e-8)."""
    norms = keys.norm(dim=-1, keepdim=True)  # B T 1
    return keys @ keys.transpose(1, 2) / (norms @ norms.transpose(1, 2)).clamp(min=COS_EPS)


def _features(dino: Dino, x: torch.Tensor | DinoFeatures, *, target: bool) -> DinoFeatures:
    if isinstance(x, DinoFeatures):
        return DinoFeatures(x.keys.detach(), x.cls.detach()) if target else x
    if target:
        with torch.no_grad():
            return dino.features(x)
    return dino.features(x)


def _select(feats: DinoFeatures, index: torch.Tensor | Sequence[int] | None) -> DinoFeatures:
    if index is None:
        return feats
    index = torch.as_tensor(index, dtype=torch.long).to(feats.cls.device)
    return DinoFeatures(feats.keys[index], feats.cls[index])


def structure_loss(
    dino: Dino,
    out01: torch.Tensor | DinoFeatures,
    tgt01: torch.Tensor | DinoFeatures,
    weight: float = 0.8,
    *,
    tgt_index: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """Splicing-ViT structure loss (released ``SpliceLoss`` structure term, design §9.2):
    ``weight · Σ_i MSE(S(out_i), S(tgt_i))``, ``S`` the cosine self-similarity of block
    ``structure_layer``'s keys (CLS included). A sum over images; the target under no-grad.

    Args:
        dino: the frozen DINO.
        out01: ``N×3×H×W`` images in [0, 1] (gradients flow to them), or their
            :meth:`Dino.features` (to share one DINO pass with :func:`appearance_loss`).
        tgt01: target images in [0, 1] (same token count as ``out01``) or their features;
            aligned to ``out01`` row for row, or selected by ``tgt_index``.
        tgt_index: optional ``N`` rows of ``tgt01`` to pair with ``out01``'s rows.
    """
    out = _features(dino, out01, target=False)
    tgt = _select(_features(dino, tgt01, target=True), tgt_index)
    if out.keys.shape != tgt.keys.shape:
        raise InputError(
            f"structure_loss: output keys {tuple(out.keys.shape)} and target keys {tuple(tgt.keys.shape)} "
            "differ; give one target per output image at the same size"
        )
    diff = self_similarity(out.keys) - self_similarity(tgt.keys)  # N T T
    return weight * diff.square().mean(dim=(1, 2)).sum()


def appearance_loss(
    dino: Dino,
    out01: torch.Tensor | DinoFeatures,
    tgt01: torch.Tensor | DinoFeatures,
    weight: float = 0.2,
    *,
    tgt_index: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """Splicing-ViT appearance loss (released ``SpliceLoss`` style term, design §9.2):
    ``weight · Σ_i MSE(cls(out_i), cls(tgt_i))`` with the CLS token of block ``cls_layer``
    (pre final norm). A sum over images; the target under no-grad.

    Args:
        dino: the frozen DINO.
        out01: ``N×3×H×W`` images in [0, 1] or their :meth:`Dino.features`.
        tgt01: target images in [0, 1] (any size: only the CLS token is compared) or their
            features; aligned to ``out01`` row for row, or selected by ``tgt_index``, e.g. the
            B content images with ``tgt_index = row % B`` for time-major rows (the released zip
            pairing, without repeating the targets, §15 item 18).
        tgt_index: optional ``N`` rows of ``tgt01`` to pair with ``out01``'s rows.
    """
    out = _features(dino, out01, target=False)
    tgt = _select(_features(dino, tgt01, target=True), tgt_index)
    if out.cls.shape != tgt.cls.shape:
        raise InputError(
            f"appearance_loss: {out.cls.shape[0]} outputs but {tgt.cls.shape[0]} targets; "
            "give one target per output (or tgt_index)"
        )
    return weight * (out.cls - tgt.cls).square().mean(dim=-1).sum()
