"""Test-time optimisation of a text edit (``vsode edit --optimize N``): one W+ offset, found by CLIP.

The edit rendered is ``w'(t) = w(t) + δ`` on the W+ rows of ``--layers``: ``w(t)`` is the frame's
inversion (``--model none``) or the VidStyleODE model's anchored edit of it, and ``δ`` holds one
style_dim vector per row of ``--layers``, shared by every frame, so the edit cannot flicker and
cannot carry motion. The rows move apart: an encoder's W+ keeps an attribute in a row or two
(psp-demo: hair colour in row 8, or 6 for red; eye colour in row 5 or 9), which one repeated W
row would couple to the others.

Gradient steps on a CLIP loss over the video's own frames attack the CLIP instead of editing the
face: a few hundred numbers are enough to make any CLIP read what it is told while the pixels
barely change (issue 20 measured that against the demo world's ground truth). The search here
is made to edit instead:

- **A population, not the frames alone.** Each step takes the gradient of CLIP's directional
  score, ``⟨CLIP_I(G(w + δ)), CLIP_T(target) − CLIP_T(source)⟩`` (unit vectors), summed over
  ``population`` faces the generator samples (truncation 0.7) and the video's frames. A change
  that moves CLIP the same way on many faces is the attribute; one that only fools CLIP on these
  frames is not.
- **Normalised steps.** Every step moves ``δ`` (all its rows together) by the same length,
  ``step`` times the spread of the generator's W (the RMS distance of its faces to their mean),
  along that gradient, so the rows the gradient favours move most. The size of CLIP's gradient,
  which is huge near ``δ = 0``, does not set how far the face moves.
- **A stop rule.** Before each step CLIP reads the video's frames: once it prefers the target text
  to the source text on ``stop_share`` of them, one more step is taken and the search stops (the
  extra step carries the edit past the point where CLIP's reading first flips). ``--optimize N``
  is the most search steps taken.
- **A clean-up.** The search moves whatever CLIP's gradient touches, and the demo CLIP reads a hair
  colour largely off the skin (``scripts/diagnose_demo_edits.py``), so the offset it stops at
  also tints what the prompt did not name. After the stop rule, ``refine`` more steps (``--refine``,
  default :data:`REFINE`) of half the length climb the same score less
  :data:`LOCALITY` times the mean absolute change of every read image's pixels from its render
  without the offset (the frames' as the search started, the faces'): the edit keeps what CLIP needs and gives back the rest.
  On the demo world it lands as many edits and keeps the other attributes more often, lands more
  on held-out seeds, and raises the eye edits' PSNR against the edited truth (README, "Edit real
  faces").

The loss is taken at ``loss_resolution`` at most (the generator's RGB skip there, see
:meth:`vsode.stylegan2.Generator.synthesize`): CLIP reads 224 px, so a 1024 generator need not
render its last two blocks for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .errors import InputError
from .progress import Progress, ensure

LAYERS = ("coarse", "medium", "fine", "all")
DEFAULT_LAYERS = "fine"  # colour and texture: where the demo world's hair and eye colours live
POPULATION = 64  # generator faces per step
FRAMES = 16  # the video's frames each step reads (evenly spaced)
STEP = 0.03  # a step's length, as a share of the spread of the generator's W
STOP_SHARE = 0.9  # share of the frames on which CLIP must prefer the target text
REFINE = 8  # clean-up steps after the stop rule
REFINE_STEP = 0.5  # a clean-up step's length, as a share of a search step's
LOCALITY = 3.0  # the clean-up's weight on the read images' mean absolute pixel change (images in [-1, 1])
TRUNCATION = 0.7
LOSS_RESOLUTION = 256


def layer_rows(n_latent: int, layers: str) -> tuple[int, ...]:
    """The W+ rows of ``layers``: coarse 0–3, medium 4–7, fine 8 on (the StyleGAN2 split StyleCLIP
    and the released mapper use; a 10-row demo generator has fine rows 8 and 9)."""
    groups = {"coarse": range(0, min(4, n_latent)), "medium": range(min(4, n_latent), min(8, n_latent)),
              "fine": range(min(8, n_latent), n_latent), "all": range(n_latent)}
    if layers not in groups:
        raise InputError(f"--layers {layers!r} is not one of {', '.join(LAYERS)}")
    rows = tuple(groups[layers])
    if not rows:
        raise InputError(f"--layers {layers}: this generator's {n_latent} W+ rows have no {layers} rows; "
                         "use --layers all")
    return rows


@dataclass(frozen=True)
class OptimizeReport:
    """How one prompt's optimisation went.

    Attributes:
        steps: search steps taken (at most ``--optimize``); stopped: whether the stop rule ended the
            search; refine_steps: clean-up steps taken after it (at most ``--refine``).
        offset: δ (len(rows) × style_dim), the offset added to ``rows``; offset_norm: its length
            as a share of the spread of the generator's W.
        loss_before, loss_after: ``1 − clip_direction``, on the video's read frames.
        clip_direction_before, clip_direction_after: the mean over those frames of the cosine
            between CLIP's change of the frame (from the unedited frame) and the text's direction
            (``CLIP_T(target) − CLIP_T(source)``); 0 where the frame is unchanged.
        target_share_before, target_share_after: share of those frames on which CLIP prefers the
            target text to the source text.
        seconds_per_step: wall time of a step (search and clean-up alike).
    """

    steps: int
    stopped: bool
    refine_steps: int
    rows: tuple[int, ...]
    offset: torch.Tensor
    offset_norm: float
    loss_before: float
    loss_after: float
    clip_direction_before: float
    clip_direction_after: float
    target_share_before: float
    target_share_after: float
    seconds_per_step: float

    def to_dict(self) -> dict[str, Any]:
        r = lambda x: round(float(x), 4)  # noqa: E731
        return {"steps": self.steps, "stopped": self.stopped, "refine_steps": self.refine_steps,
                "rows": list(self.rows),
                "offset_norm": r(self.offset_norm), "loss_before": r(self.loss_before),
                "loss_after": r(self.loss_after), "clip_direction_before": r(self.clip_direction_before),
                "clip_direction_after": r(self.clip_direction_after),
                "target_share_before": r(self.target_share_before),
                "target_share_after": r(self.target_share_after), "seconds_per_step": r(self.seconds_per_step)}

    def wplus_offset(self, n_latent: int) -> torch.Tensor:
        """δ on its rows as an n_latent × style_dim W+ offset (zeros elsewhere)."""
        out = self.offset.new_zeros(n_latent, self.offset.shape[-1])
        out[list(self.rows)] = self.offset
        return out


def _faces(generator: Any, count: int, g: torch.Generator, center: torch.Tensor) -> torch.Tensor:
    z = torch.randn(count, generator.style_dim, generator=g).to(center.device)
    with torch.no_grad():
        return generator.truncate(generator.mapping(z), TRUNCATION, center)  # count D


def frame_indices(count: int, frames: int | None = None) -> torch.Tensor:
    """The frames a search reads: ``frames`` (default :data:`FRAMES`) evenly spaced over ``count``
    (all when fewer)."""
    frames = FRAMES if frames is None else frames
    return torch.linspace(0, count - 1, min(frames, count)).round().long().unique()


def optimise_edit(
    generator: Any,
    clip: Any,
    wplus: torch.Tensor,
    source_text: str,
    target_text: str,
    *,
    steps: int,
    layers: str = DEFAULT_LAYERS,
    seed: int = 0,
    reference: torch.Tensor | None = None,
    population: int | None = None,
    step: float | None = None,
    stop_share: float | None = None,
    refine: int | None = None,
    dtype: torch.dtype | None = None,
    progress: Progress | None = None,
    label: str = "optimize",
) -> OptimizeReport:
    """Find the W+ offset δ that edits ``wplus`` (K × n × D: the video's read frames, already
    carrying the model's edit if there is one) from ``source_text`` towards ``target_text``.

    Args:
        generator: the StyleGAN2 that renders the W+ (a :class:`vsode.stylegan2.Generator`).
        clip: a :class:`vsode.clip.ClipModel`.
        reference: the unedited W+ of the same frames (default ``wplus``): CLIP's change of a
            frame is measured from it.
        steps: the most search steps (0: none, the report measures ``wplus`` alone).
        refine: clean-up steps once the stop rule has ended the search (default :data:`REFINE`;
            0: none). A search that runs out of ``steps`` first is not cleaned up.
        seed: draws the population faces; the same seed gives the same δ.
        population, step, stop_share: default :data:`POPULATION`, :data:`STEP`, :data:`STOP_SHARE`.
        dtype: the generator's convolutions (``torch.bfloat16``: the ``--precision bf16`` path).
    """
    if steps < 0:
        raise InputError(f"--optimize {steps} must be 0 or more steps")
    refine = REFINE if refine is None else refine
    if refine < 0:
        raise InputError(f"--refine {refine} must be 0 or more steps")
    population = POPULATION if population is None else population  # read at call time (the probes set them)
    step = STEP if step is None else step
    stop_share = STOP_SHARE if stop_share is None else stop_share
    progress = ensure(progress)
    n_latent, dim = generator.n_latent, generator.style_dim
    if wplus.ndim != 3 or tuple(wplus.shape[1:]) != (n_latent, dim):
        raise InputError(f"the W+ to edit are {tuple(wplus.shape)}, not K×{n_latent}×{dim} for this generator")
    rows = list(layer_rows(n_latent, layers))
    device = wplus.device
    reference = wplus if reference is None else reference
    size = min(generator.resolution, LOSS_RESOLUTION)
    with torch.no_grad():
        texts = F.normalize(clip.encode_text([source_text, target_text]), dim=-1).to(device)
    source, target = texts[0], texts[1]
    direction = F.normalize(target - source, dim=0)
    g = torch.Generator().manual_seed(int(seed))
    center = generator.mean_latent(4096, seed=0).to(device)[0]
    with torch.no_grad():
        sample = generator.mapping(torch.randn(4096, dim, generator=g).to(device))
        spread = float((sample - sample.mean(0)).pow(2).sum(-1).mean().sqrt())  # W's RMS distance to its mean

    def render(w: torch.Tensor) -> torch.Tensor:
        return generator.synthesize(w, noise="const", dtype=dtype, resolution=size).float()

    def embed(images: torch.Tensor) -> torch.Tensor:
        return F.normalize(clip.encode_image(images.clamp(-1, 1)), dim=-1)

    with torch.no_grad():
        before = embed(render(reference))

    def read(delta: torch.Tensor) -> tuple[float, float]:
        """(clip direction, target share) of the frames with δ."""
        with torch.no_grad():
            w = wplus.clone()
            w[:, rows] += delta
            e = embed(render(w))
            change = e - before
            moved = change.norm(dim=-1) > 1e-6
            cos = torch.where(moved, F.normalize(change, dim=-1) @ direction, torch.zeros_like(change[:, 0]))
            share = (e @ target > e @ source).float().mean()
        return float(cos.mean()), float(share)

    delta = torch.zeros(len(rows), dim, device=device)  # one offset per row, shared by the frames
    direction_before, share_before = read(delta)
    plain_frames = None  # the frames rendered without δ: the clean-up's pixel reference, made once
    taken, refined, stopped, extra, cleaning = 0, 0, False, False, False
    started = time.perf_counter()
    with progress.stage(label, total=steps + refine, unit="step") as stage:
        while (refined < refine) if cleaning else (taken < steps):
            faces = _faces(generator, population, g, center)[:, None].expand(-1, n_latent, -1)
            unedited = torch.cat([faces, wplus])
            w = unedited.clone()
            d = delta.clone().requires_grad_(True)
            w[:, rows] = w[:, rows] + d
            images = render(w)
            e = embed(images)
            if not cleaning:
                share = float((e[population:] @ target > e[population:] @ source).float().mean())
                if share >= stop_share:
                    if extra:
                        stopped = cleaning = True
                        if not refine:
                            break
                    extra = True
            gain = (e @ direction).sum()
            if cleaning:  # give back the pixel change CLIP does not need
                with torch.no_grad():
                    if plain_frames is None:
                        plain_frames = render(wplus)
                    plain = torch.cat([render(unedited[:population]), plain_frames])
                gain = gain - LOCALITY * (images - plain).abs().mean(dim=(1, 2, 3)).sum()
            (grad,) = torch.autograd.grad(gain, d)
            norm = grad.norm()
            if not torch.isfinite(norm) or norm == 0:
                stopped = True
                break
            delta = delta + step * (REFINE_STEP if cleaning else 1.0) * spread * grad / norm
            if cleaning:
                refined += 1
            else:
                taken += 1
            stage.advance(1)
    seconds = (time.perf_counter() - started) / max(taken + refined, 1)
    direction_after, share_after = read(delta)
    return OptimizeReport(
        steps=taken, stopped=stopped, refine_steps=refined, rows=tuple(rows), offset=delta.detach(),
        offset_norm=float(delta.norm()) / spread, loss_before=1 - direction_before, loss_after=1 - direction_after,
        clip_direction_before=direction_before, clip_direction_after=direction_after,
        target_share_before=share_before, target_share_after=share_after, seconds_per_step=seconds,
    )

