"""Anchored rendering: keep the per-frame detail of the inversions that the model's W+ leaves out.

The paper reconstructs a frame as ``w(t) = z_C + 0.01·Δ(t)``: the mean code moved by the dynamics,
which drops whatever of each frame the dynamics do not carry. When the frames' own inversions
``w_inv(t_k)`` are known, an :class:`Anchor` keeps them: with ``M(s, t)`` the model's W+ of the
anchored video under the unedited style ``s`` and ``M_out(t)`` the W+ being rendered (another
style, another time, another video's motion),

    w'(t) = w̃(t) + M_out(t) − M̃(t)

where ``w̃`` and ``M̃`` interpolate ``w_inv(t_k)`` and ``M(s, t_k)`` linearly in time between the
anchor frames and hold them past the ends. So an edit is the inversion plus the model's change of
style, an interpolation is the model's W+ plus the inversions' residual ``w_inv − M`` interpolated
in time, a continuation carries the last residual on, and with ``M_out = M`` at an anchor frame the
output is that frame's inversion (exactly: there ``M̃`` is taken as ``M`` from the same batch).

An anchor's ``gain`` g and ``limit`` L act on the model's part, ``d = g·(M_out(t) − M̃(t))``, which
becomes ``d·L·tanh(‖d‖/L)/‖d‖`` (‖·‖ over the frame's whole W+): nearly ``d`` while ``‖d‖`` is well
below L, never longer than L. They are 1 and None (no limit) everywhere but in ``vsode generate``,
where the anchor is the sampled content code at the first frame, so ``d`` is the sampled motion:
``g`` is the prior's calibrated motion gain (or ``--motion-scale``) and L the prior's motion limit,
the 95th percentile of its clips' own offsets from their first frame, so a motion the model lets
drift is kept within the range the clips span.

When one video's motion moves another face (animate's driver on its portrait, ``generate
--motion``), the offsets are taken from a reference pose of the driver, :func:`motion_reference`:
its first frame, or (``matched``) the point of the driver's own span of poses nearest the face's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch

from ..errors import InputError
from ..options import ANCHOR_MODES  # noqa: F401  (re-exported: the user-facing modes)
from ..options import MOTION_REFERENCES

# motion_reference's "matched": the driver's principal directions kept (those holding this share
# of its frames' spread about their mean), and at most this many frames, evenly spaced, to find them.
REFERENCE_ENERGY = 0.99
REFERENCE_FRAMES = 512


@dataclasses.dataclass
class Anchor:
    """The anchor frames of a video: their times (seconds, increasing, on the output clock), their
    inversions ``w_inv`` and the model's W+ there under the unedited ``style`` (both K × n × D), and
    the :class:`~vsode.model.VideoCode` that W+ was decoded from (``code``), if known. ``model``
    may hold only the rows a render reads (:func:`rows_read`), the others zero."""

    seconds: torch.Tensor  # K float64
    wplus: torch.Tensor  # K n D
    model: torch.Tensor  # K n D
    style: torch.Tensor  # 1 × clip_dim: the style the model's W+ were decoded with
    code: Any = None
    gain: float = 1.0  # scales M_out − M̃ (see the module's text)
    limit: float | None = None  # the soft bound on ‖g·(M_out − M̃)‖ per frame (None: unbounded)

    def __post_init__(self) -> None:
        k = self.seconds.numel()
        if k < 1 or self.wplus.shape[0] != k or self.model.shape != self.wplus.shape:
            raise InputError(f"an anchor needs K times, K inversions and K model codes; got {k}, "
                             f"{tuple(self.wplus.shape)}, {tuple(self.model.shape)}")
        if k > 1 and not bool((self.seconds[1:] > self.seconds[:-1]).all()):
            raise InputError("anchor frame times must be strictly increasing")
        if not math.isfinite(self.gain) or self.gain < 0:
            raise InputError(f"an anchor's motion gain must be a number >= 0, got {self.gain}")
        if self.limit is not None and not (math.isfinite(self.limit) and self.limit > 0):
            raise InputError(f"an anchor's motion limit must be a number > 0, got {self.limit}")

    def scaled(self, motion: torch.Tensor) -> torch.Tensor:
        """``motion`` (b × n × D: the model's part of each frame's W+) by :func:`scale_motion`
        with the anchor's ``gain`` and ``limit``."""
        return scale_motion(motion, self.gain, self.limit)

    def at(self, seconds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(w̃(t), M̃(t), hit)`` at times ``t`` (b, float64 seconds): b × n × D each, and whether
        each ``t`` is an anchor frame's own time."""
        left, right, weight, hit = neighbours(self.seconds, seconds)
        device = self.wplus.device  # the codes may live on a GPU, the times stay on the CPU
        a = weight.to(device, self.wplus.dtype)[:, None, None]
        left, right = left.to(device), right.to(device)

        def lerp(codes: torch.Tensor) -> torch.Tensor:
            return (1 - a) * codes[left] + a * codes[right]

        return lerp(self.wplus), lerp(self.model), hit


def scale_motion(motion: torch.Tensor, gain: float, limit: float | None) -> torch.Tensor:
    """``d = gain·motion`` per frame (b × ...), softly bounded in length: ``d·L·tanh(‖d‖/L)/‖d‖``
    with ``L = limit`` (nearly ``d`` while ``‖d‖ ≪ L``, never longer than L; None: ``d``)."""
    motion = gain * motion
    if limit is None:
        return motion
    norm = motion.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (motion.dim() - 1)))
    return motion * (limit * torch.tanh(norm / limit) / norm)


def motion_reference(wplus: torch.Tensor, face: torch.Tensor, rows: Sequence[int], mode: str = "matched",
                     *, energy: float = REFERENCE_ENERGY, max_frames: int = REFERENCE_FRAMES) -> torch.Tensor:
    """The driver's code from which its motion is measured when it moves another face: the offsets
    put on ``face`` (n × D) are ``wplus − reference`` (wplus: the driver's N × n × D inversions), in
    ``rows`` (the rows that move; the others of the reference are the first frame's).

    - ``first``: the driver's first frame, so the first output frame is ``face`` itself. A driver
      that starts in another pose than the face (mouth open, head turned) then lends the face the
      difference between the two poses as well, which the generator renders in another face's
      terms: on the demo world, the portrait's head followed the driver's mouth.
    - ``matched``: the pose within the driver's own span nearest ``face``'s: the mean of the
      driver's frames plus ``face − mean`` projected on the driver's principal directions (those
      holding ``energy`` of the frames' spread; found on at most ``max_frames`` frames, evenly
      spaced). The face is taken to be in that pose, and the output is ``face`` wherever the
      driver passes through it. A still driver gives its own code (no motion).
    """
    if mode not in MOTION_REFERENCES:
        raise InputError(f"--reference {mode!r} is not one of {', '.join(MOTION_REFERENCES)}")
    if wplus.dim() != 3 or wplus.shape[0] < 1 or face.shape != wplus.shape[1:]:
        raise InputError(f"a motion reference needs N x n x D driver codes and an n x D face code; got "
                         f"{tuple(wplus.shape)} and {tuple(face.shape)}")
    reference = wplus[0].clone()
    rows = list(rows)
    if mode == "first" or not rows:
        return reference
    n = wplus.shape[0]
    picks = torch.linspace(0, n - 1, min(n, max_frames)).round().long().unique()
    codes = wplus[picks.to(wplus.device)][:, rows].reshape(len(picks), -1).detach().cpu().double()
    mean = codes.mean(0)
    spread = codes - mean
    _, values, basis = torch.linalg.svd(spread, full_matrices=False)
    power = values.pow(2)
    total = float(power.sum())
    point = mean
    if total > 0:
        kept = int((power.cumsum(0) < energy * total).sum()) + 1
        directions = basis[:kept]
        target = face[rows].reshape(-1).detach().cpu().double() - mean
        point = mean + (directions @ target) @ directions
    reference[rows] = point.reshape(len(rows), -1).to(reference.device, reference.dtype)
    return reference


def neighbours(anchors: torch.Tensor, seconds: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each time ``t``, the anchor frames around it and its weight: ``(left, right, a, hit)``
    with ``w̃(t) = (1 − a)·w[left] + a·w[right]``, held past the ends. At an anchor frame's own time
    ``a`` is 0 or 1, so the lerp gives its codes bit for bit, and ``hit`` is set."""
    s = anchors.to(torch.float64)
    asked = seconds.to(torch.float64).reshape(-1)
    t = asked.clamp(s[0], s[-1])  # held past the ends
    right = torch.searchsorted(s, t, right=True).clamp(1, max(1, s.numel() - 1))
    left = right - 1
    if s.numel() == 1:
        weight = torch.zeros_like(t)
        right = left
    else:
        weight = (t - s[left]) / (s[right] - s[left])
    weight = torch.where(s[left] == t, torch.zeros_like(weight), weight)
    weight = torch.where(s[right] == t, torch.ones_like(weight), weight)
    hit = (s[left] == asked) | (s[right] == asked)
    return left, right, weight, hit


def rows_read(anchors: torch.Tensor, seconds: torch.Tensor) -> torch.Tensor:
    """The anchor frames whose model W+ a render of the anchored video itself at ``seconds`` reads:
    the neighbours of the times that are not anchor frames (at an anchor frame the model's W+
    comes from the render's own batch)."""
    left, right, weight, hit = neighbours(anchors, seconds)
    keep = ~hit
    used = torch.cat([left[keep & (weight < 1)], right[keep & (weight > 0)]])
    return torch.unique(used)
