"""The prior a model samples new videos from (``vsode generate``).

VidStyleODE's dynamics encoder is deterministic (the mean head only), so the model itself gives no
distribution to draw an initial motion state ``z_d0`` from. :class:`Prior` is a Gaussian fitted
afterwards on the encoded training clips (:mod:`vsode.train.prior`): for the flattened ``z_d0``
and for the content code ``z_C``, a mean, the top-K principal directions with their standard
deviations, and the standard deviation left over in the other directions (probabilistic PCA)::

    x = mean + Σ_k s_k·ε_k·u_k + r·(I − U Uᵀ)·ε,   ε ~ N(0, I)

It lives in the model file beside the weights, under ``"prior"``, as plain tensors and numbers
(``vsode/prior@1``), so the checkpoint still loads with ``weights_only=True``.

Truncation ψ ∈ (0, 1] scales every draw's offset from the mean, as StyleGAN's truncation trick
scales ``w − w̄``: ψ = 1 is the fitted Gaussian, smaller ψ stays nearer the typical clip.

A prior also says how a sampled motion is rendered: ``w(t) = z_C + d(t)`` with
``d = g·(M(t) − M(t0))`` softly bounded in length by L (:meth:`vsode.model.anchor.Anchor.scaled`).
``motion_gain`` g is fitted so that videos sampled from the prior move as much, in pixels, as the
clips it was fitted on (:func:`vsode.train.prior.calibrate_motion_gain`): a model's decoder may
carry its training clips' motion at a fraction of their amplitude (the demo model's samples move
about a quarter as much as its clips), and a prior that samples only ``z_d0`` cannot sample more
motion than the decoder gives. ``motion_limit`` L is the 95th percentile of the clips' own offsets
from their first frame (``‖w_inv(t) − w_inv(t0)‖`` over the W+): a sampled motion that drifts is
kept within the range the clips span instead of leaving the generator's domain. Priors written
before these existed read as g = 1 and no limit (the model's motion as it is).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import InputError

PRIOR_FORMAT = "vsode/prior@1"
DEFAULT_COMPONENTS = 16


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """A low-rank Gaussian over vectors of ``shape``: ``mean`` (D), ``components`` (K × D,
    orthonormal rows), ``scales`` (K standard deviations) and ``residual`` (the standard deviation
    in every other direction)."""

    shape: tuple[int, ...]
    mean: torch.Tensor
    components: torch.Tensor
    scales: torch.Tensor
    residual: float

    @classmethod
    def fit(cls, samples: torch.Tensor, components: int = DEFAULT_COMPONENTS) -> "Gaussian":
        """Fit on N samples (N × ...): the top ``components`` principal directions of their
        covariance (fewer when N − 1 is smaller) and the mean variance of the rest."""
        n = samples.shape[0]
        if n < 2:
            raise InputError(f"a prior needs at least 2 clips to fit, got {n}")
        x = samples.reshape(n, -1).double()
        mean = x.mean(0)
        centred = x - mean
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # s: min(N, D)
        variances = s**2 / (n - 1)
        k = max(1, min(components, n - 1, vh.shape[0]))
        rest = x.shape[1] - k
        residual = float(variances[k:].sum() / rest) ** 0.5 if rest > 0 else 0.0
        return cls(tuple(samples.shape[1:]), mean.float(), vh[:k].float(), variances[:k].sqrt().float(), residual)

    @property
    def dim(self) -> int:
        return int(self.mean.numel())

    def sample(self, generator: torch.Generator, truncation: float = 1.0) -> torch.Tensor:
        """One draw (``shape``), reproducible from ``generator`` (a CPU generator)."""
        k = self.scales.numel()
        coeffs = torch.randn(k, generator=generator, dtype=torch.float64)
        noise = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        u = self.components.double()
        offset = (coeffs * self.scales.double()) @ u
        if self.residual > 0:
            offset = offset + self.residual * (noise - (noise @ u.T) @ u)  # the directions PCA left out
        return (self.mean.double() + truncation * offset).float().reshape(self.shape)

    def log_density(self, x: torch.Tensor) -> float:
        """Log-density of one vector under the fitted Gaussian, up to the constant (tests, diagnostics)."""
        d = x.reshape(-1).double() - self.mean.double()
        u = self.components.double()
        along = d @ u.T
        rest = d - along @ u
        out = -0.5 * float((along / self.scales.double()).pow(2).sum())
        if self.residual > 0:
            out -= 0.5 * float(rest.pow(2).sum()) / self.residual**2
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "mean": self.mean.clone(), "components": self.components.clone(),
                "scales": self.scales.clone(), "residual": float(self.residual)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], what: str) -> "Gaussian":
        try:
            shape = tuple(int(s) for s in d["shape"])
            mean, components, scales = (torch.as_tensor(d[k]).float() for k in ("mean", "components", "scales"))
            residual = float(d["residual"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"the model's {what} prior is damaged ({err}); fit it again with `vsode fit-prior`") from None
        dim = int(torch.tensor(shape).prod()) if shape else 1
        if mean.shape != (dim,) or components.ndim != 2 or components.shape[1] != dim \
                or scales.shape != (components.shape[0],):
            raise InputError(f"the model's {what} prior has inconsistent shapes; fit it again with `vsode fit-prior`")
        return cls(shape, mean, components, scales, residual)


@dataclasses.dataclass(frozen=True)
class Prior:
    """What ``vsode generate`` samples: ``motion`` over ``z_d0`` (C × h × w) and ``content`` over
    ``z_C`` (n_latent × D), both fitted on the same clips; ``clips`` counts them and ``source``
    says where they came from (a data folder, for the record); ``motion_gain`` scales a sample's
    motion when it is rendered (see the module's text; 1 for no calibration), ``calibration``
    records how it was found and ``motion_limit`` bounds a sampled motion (None: unbounded)."""

    motion: Gaussian
    content: Gaussian
    clips: int
    source: str = ""
    motion_gain: float = 1.0
    calibration: Mapping[str, Any] | None = None  # how the gain was found (numbers and lists only)
    motion_limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"format": PRIOR_FORMAT, "motion": self.motion.to_dict(), "content": self.content.to_dict(),
               "clips": int(self.clips), "source": str(self.source), "motion_gain": float(self.motion_gain)}
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.motion_limit is not None:
            out["motion_limit"] = float(self.motion_limit)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Prior":
        if not isinstance(d, Mapping) or d.get("format") != PRIOR_FORMAT:
            found = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise InputError(f"the model's prior is not a {PRIOR_FORMAT} (found {found!r}); fit it again with "
                             "`vsode fit-prior`")
        gain = _number(d, "motion_gain", "motion gain", 1.0, positive=False)
        limit = None if d.get("motion_limit") is None else _number(d, "motion_limit", "motion limit", None, positive=True)
        return cls(Gaussian.from_dict(d["motion"], "motion"), Gaussian.from_dict(d["content"], "content"),
                   int(d.get("clips", 0)), str(d.get("source", "")), gain,
                   dict(d["calibration"]) if isinstance(d.get("calibration"), Mapping) else None, limit)

    def check(self, state_shape: tuple[int, ...], content_shape: tuple[int, ...], label: str) -> None:
        """Fail when the prior does not fit the model it is attached to."""
        if self.motion.shape != tuple(state_shape) or self.content.shape != tuple(content_shape):
            raise InputError(
                f"{label}'s prior is over z_d0 {self.motion.shape} and z_C {self.content.shape}, but the model has "
                f"{tuple(state_shape)} and {tuple(content_shape)}; fit it again with `vsode fit-prior`"
            )


def _number(d: Mapping[str, Any], key: str, what: str, default: float | None, *, positive: bool) -> float:
    """``d[key]`` (``default`` when absent) as a finite number, > 0 or >= 0, else a one-line error
    naming ``vsode fit-prior``."""
    try:
        value = float(d.get(key, default))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InputError(f"the model's prior has a {what} of {d.get(key)!r}, not a number {'>' if positive else '>='} 0; "
                         "fit it again with `vsode fit-prior`")
    return value


def sample_generator(seed: int, stream: int) -> torch.Generator:
    """The CPU generator of one sample's ``stream`` (0: motion, 1: content, 2: the mapping's z), so
    that a seed gives the same video whatever else is asked (``--count``, ``--motion``...)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + stream) % (2**63 - 1))


__all__ = ["DEFAULT_COMPONENTS", "Gaussian", "PRIOR_FORMAT", "Prior", "sample_generator"]
