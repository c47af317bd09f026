"""Pivotal tuning: fine-tune a copy of the generator around a video's own inversions.

The encoder's W+ codes lose detail that no code of the untouched generator can give back, and an
anchored output can be no better than the inversion it is anchored on. Pivotal tuning (Roich et
al.'s PTI, applied to video by STIT) keeps the codes fixed, as *pivots*, and moves the generator
instead: a copy of its synthesis network is optimised so that ``G'(w_inv(t_k))`` reproduces the
video's frames, while a locality term holds ``G'`` to ``G`` for codes away from the pivots, so the
W space keeps its meaning and edit directions still apply.

Loss per step, on a batch of pivots sampled across the whole video:

    ‖G'(w_k) − x_k‖² + Σ_l ‖φ_l(G'(w_k)) − φ_l(x_k)‖²                  (reconstruction)
    + λ·‖G'(w_r) − G(w_r)‖²,   w_r = w_k + ½(w_z − w_k),  w_z = f(z)       (locality)

with ``φ_l`` the encoder's own backbone features (the perceptual term ``invert --refine`` uses,
available offline) and ``f`` the mapping network. The mapping network is not tuned, so a tuned
generator is stored as its synthesis tensors alone (:func:`tuned_checkpoint`), smaller than a
full copy, and names the generator it was tuned from by SHA-256.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .errors import InputError
from .progress import Progress, ensure
from .stylegan2 import Generator

TUNED_FORMAT = "vsode/tuned-generator@1"
DEFAULT_LR = 1e-3
POOL = 32  # pivots kept as targets: frames spread evenly over the video (memory stays constant)
BATCH = 4  # pivots per step at most (PTI takes one; a few spread the steps over the video)


@dataclass(frozen=True)
class TuneSettings:
    """How to tune: ``steps`` Adam steps at ``lr`` on batches of ``batch_size`` pivots drawn
    (seeded by ``seed``) from ``pool`` frames spread over the video; ``locality`` is λ."""

    steps: int
    lr: float = DEFAULT_LR
    locality: float = 1.0
    batch_size: int = BATCH
    pool: int = POOL
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InputError(f"--tune {self.steps} must be a whole number of steps, 0 (no tuning) or more")
        if not self.lr > 0:
            raise InputError(f"tuning learning rate {self.lr} must be positive")
        if self.locality < 0:
            raise InputError(f"tuning locality weight {self.locality} must be 0 or more")
        if self.batch_size < 1 or self.pool < 1:
            raise InputError("tuning needs a batch and a pool of at least one frame")

    def key(self) -> dict[str, Any]:
        """What the tuned weights depend on besides the pivots (the cache key's part)."""
        return asdict(self)


def tuned_names(generator: Generator) -> list[str]:
    """The parameters tuning moves: the synthesis network's (everything but the mapping ``style``)."""
    return [name for name, _ in generator.named_parameters() if not name.startswith("style.")]


def fingerprint(generator: Generator) -> str:
    """SHA-256 of a generator's weights (every parameter and buffer, by name, as float32 bytes):
    the same for the same weights whichever file they came from (a StyleGAN2 checkpoint or the
    decoder inside a pSp/e4e one), so tuned weights are matched to the generator they fit."""
    import hashlib

    digest = hashlib.sha256()
    state = generator.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode() + b"\0" + str(tuple(tensor.shape)).encode() + b"\0")
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def pivot_indices(frames: int, pool: int) -> list[int]:
    """Up to ``pool`` frame indices spread evenly over ``frames`` frames (first and last included)."""
    if frames < 1:
        return []
    k = min(frames, pool)
    if k == 1:
        return [0]
    return sorted({round(i * (frames - 1) / (k - 1)) for i in range(k)})


def check_generator(generator: Any, name: str = "the generator") -> Generator:
    """``generator`` if it is a StyleGAN2 :class:`~vsode.stylegan2.Generator`, else exit 2 naming
    what it is (pivotal tuning needs a StyleGAN2 synthesis network)."""
    if not isinstance(generator, Generator):
        kind = getattr(generator, "kind", None) or type(generator).__name__
        raise InputError(f"--tune needs a StyleGAN2 generator, but {name} is a {kind}; "
                         "give a StyleGAN2 checkpoint or drop --tune")
    return generator


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of images in [-1, 1] (peak-to-peak 2), pooled over every pixel."""
    mse = F.mse_loss(a.double(), b.double()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def tune_generator(
    generator: Generator,
    pivots: torch.Tensor,
    targets: torch.Tensor,
    settings: TuneSettings,
    *,
    features: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    dtype: torch.dtype | None = None,
    progress: Progress | None = None,
) -> tuple[Generator, dict[str, Any]]:
    """A copy of ``generator`` tuned so that it renders ``targets`` from ``pivots``.

    Args:
        generator: the StyleGAN2 generator (left untouched).
        pivots: the frames' fixed W+ codes, P × n_latent × D.
        targets: the frames, P × 3 × S × S in [-1, 1]; the loss is taken at S (renders are
            average-pooled to it, as the encoder's inputs are).
        settings: :class:`TuneSettings`.
        features: the perceptual term's feature maps of an image batch (the encoder backbone's);
            None: pixels alone.
        dtype: the generator's compute dtype in the steps (bfloat16: autocast, as ``synthesize``'s
            bf16 path; None: float32). The PSNRs are measured in float32.
        progress: a ``tune`` stage advanced per step.

    Returns ``(tuned generator, report)``; the report has the settings, the pivots' reconstruction
    PSNR before and after (dB, at S) and the seconds per step.
    """
    from .invert import synthesize_at

    check_generator(generator)
    progress = ensure(progress)
    if pivots.ndim != 3 or targets.ndim != 4 or pivots.shape[0] != targets.shape[0] or pivots.shape[0] < 1:
        raise InputError(f"tuning needs one target frame per pivot; got {tuple(pivots.shape)} and "
                         f"{tuple(targets.shape)}")
    device = next(generator.parameters()).device
    pivots, targets = pivots.to(device, torch.float32), targets.to(device, torch.float32)
    size = targets.shape[-1]
    base = generator
    tuned = copy.deepcopy(generator).eval()
    names = set(tuned_names(tuned))
    params = [p for n, p in tuned.named_parameters() if n in names]
    for n, p in tuned.named_parameters():
        p.requires_grad_(n in names)
    with torch.no_grad():
        goal = [f.detach() for f in features(targets)] if features is not None else []

    def reconstruction(gen: Generator) -> float:
        with torch.no_grad():
            return psnr_db(torch.cat([synthesize_at(gen, pivots[i:i + settings.batch_size], size).clamp(-1, 1)
                                      for i in range(0, pivots.shape[0], settings.batch_size)]), targets)

    before = reconstruction(base)
    rng = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(params, lr=settings.lr)
    batch = min(settings.batch_size, pivots.shape[0])
    started = time.perf_counter()
    # grad on: the applications invert (and so tune) inside no_grad
    with progress.stage("tune", total=settings.steps, unit="step") as stage, torch.enable_grad():
        for _ in range(settings.steps):
            pick = torch.randperm(pivots.shape[0], generator=rng)[:batch].to(device)
            render = synthesize_at(tuned, pivots[pick], size, dtype=dtype)
            loss = F.mse_loss(render, targets[pick])
            if features is not None:
                for ours, theirs in zip(features(render), goal):
                    loss = loss + F.mse_loss(ours, theirs[pick])
            if settings.locality > 0:  # on a quarter of the batch: the term only has to hold G' near G
                near = pick[: max(1, batch // 4)]
                z = torch.randn(near.numel(), base.style_dim, generator=rng).to(device)
                with torch.no_grad():
                    w_z = base.mapping(z)[:, None].expand_as(pivots[near])
                    w_r = pivots[near] + 0.5 * (w_z - pivots[near])  # away from the pivots, toward the prior
                    kept = synthesize_at(base, w_r, size, dtype=dtype)
                loss = loss + settings.locality * F.mse_loss(synthesize_at(tuned, w_r, size, dtype=dtype), kept)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            stage.advance()
    seconds = time.perf_counter() - started
    tuned.requires_grad_(False)
    after = reconstruction(tuned)
    report = {**settings.key(), "frames": int(pivots.shape[0]), "psnr_before_db": round(before, 3),
              "psnr_after_db": round(after, 3),
              "seconds_per_step": round(seconds / settings.steps, 4) if settings.steps else 0.0}
    return tuned, report


def tuned_checkpoint(tuned: Generator, base_ref: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """The tuned synthesis tensors as a self-describing checkpoint (``vsode/tuned-generator@1``):
    ``base`` names (and hashes) the generator they replace tensors of."""
    state = tuned.state_dict()
    return {"format": TUNED_FORMAT, "base": dict(base_ref), "tuning": dict(report),
            "state_dict": {n: state[n].detach().to("cpu", torch.float32).contiguous() for n in tuned_names(tuned)}}


def apply_tuned(generator: Generator, ckpt: Mapping[str, Any], *, origin: str = "tuned weights") -> Generator:
    """A copy of ``generator`` with the tuned tensors of ``ckpt`` loaded. Tuned weights made
    from another generator (by :func:`fingerprint`) are refused (exit 2) naming both hashes."""
    check_generator(generator)
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != TUNED_FORMAT:
        raise InputError(f"{origin} is not a vsode tuned generator (format {TUNED_FORMAT}); invert again with --tune")
    made_from = (ckpt.get("base") or {}).get("weights_sha256")
    here = fingerprint(generator)
    if made_from != here:
        raise InputError(f"{origin} were tuned from the generator with weights {made_from} but this run's generator "
                         f"has weights {here}; invert again with --tune and this model's generator")
    state = ckpt.get("state_dict") or {}
    own = dict(generator.named_parameters())
    wrong = [n for n, t in state.items() if n not in own or tuple(own[n].shape) != tuple(t.shape)]
    missing = [n for n in tuned_names(generator) if n not in state]
    if wrong or missing:
        raise InputError(f"{origin} do not fit this generator's layout ({len(wrong)} tensors differ, "
                         f"{len(missing)} missing); invert again with --tune using this generator")
    tuned = copy.deepcopy(generator)
    with torch.no_grad():
        for name, tensor in state.items():
            own_t = dict(tuned.named_parameters())[name]
            own_t.copy_(tensor.to(own_t.device, own_t.dtype))
    return tuned.eval().requires_grad_(False)
