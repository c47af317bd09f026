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
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..errors import InputError
from ..options import ANCHOR_MODES  # noqa: F401  (re-exported: the user-facing modes)


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

    def __post_init__(self) -> None:
        k = self.seconds.numel()
        if k < 1 or self.wplus.shape[0] != k or self.model.shape != self.wplus.shape:
            raise InputError(f"an anchor needs K times, K inversions and K model codes; got {k}, "
                             f"{tuple(self.wplus.shape)}, {tuple(self.model.shape)}")
        if k > 1 and not bool((self.seconds[1:] > self.seconds[:-1]).all()):
            raise InputError("anchor frame times must be strictly increasing")

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
