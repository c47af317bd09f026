#!/usr/bin/env python3
"""Where do the demo world's edits live, and where does the demo CLIP look for them?

    python scripts/diagnose_demo_edits.py --seeds 0-3
    python scripts/diagnose_demo_edits.py --seeds 0-7 --json > edits.json

For each seed, the two edits ``vsode demo`` makes (a hair colour and an eye colour the source does
not have, described by the source's caption and that caption with one colour changed) are
rendered twice by the world's own renderer, unedited and truly edited (2 s at 12 fps, 64 px, no
video coding), and both are inverted with psp-demo. Two measures come out:

- **The exact offset** (``rows``, ``ceiling``): the mean over the frames of the edited clip's
  inversions minus the source's, the single W+ offset ``vsode edit --optimize`` looks for. Its
  length per W+ row says where psp-demo keeps the attribute. Added to the source's inversions on
  one ``--layers`` group only (the search's choice of rows) it gives that group's ceiling: PSNR
  against the edited truth minus the unedited inversion's, and the pixel judge's share of frames
  that read the target and that keep the other attributes
  (:func:`vsode.demo.scores.edit_accuracy` of :func:`~vsode.demo.scores.read_pixels`). No search
  on those rows can do better with one offset.
- **Where the CLIP looks** (``saliency``): the gradient of the demo CLIP's directional score
  (``⟨CLIP_I(image), CLIP_T(target) − CLIP_T(source)⟩``, the score the search climbs) with
  respect to the pixels of the source's inversions, summed over colour channels; the share of
  its mass inside the hair, iris and skin regions, beside each region's share of the image. A
  search can only move the face where this gradient is.

Prints a line per edit, or JSON with ``--json``. About 20 s a seed on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = ("fine", "medium", "medium+fine", "all")
REGIONS = ("hair", "eyes", "skin")


def group_rows(n_latent: int, group: str) -> list[int]:
    from vsode.optimize import layer_rows

    names = group.split("+")
    return sorted({r for name in names for r in layer_rows(n_latent, name)})


def diagnose(seed: int, *, seconds: float = 2.0, fps: int = 12, size: int = 64, readers: Any = None) -> list[dict[str, Any]]:
    """The two edits of demo seed ``seed``: the exact offset's rows and ceilings, and the CLIP's
    saliency by region (see the module's docstring)."""
    from vsode.demo import scores as S
    from vsode.demo.evaluate import Readers
    from vsode.demo.showcase import EYE_TARGETS, HAIR_TARGETS
    from vsode.demo.world import caption, region_masks, render_times, sample_params, with_appearance
    from vsode.tune import psnr_db

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:  # frames in [0, 1]
        return psnr_db(a * 2 - 1, b * 2 - 1)

    readers = readers or Readers()
    clip = readers.clip
    times = np.arange(int(round(seconds * fps))) / fps
    source = sample_params(seed)
    source_frames = render_times(source, times, size=size)
    source_codes = readers.invert(source_frames)
    unedited = readers.synthesize(source_codes, size)
    kept = S.majority(S.read_pixels(source_frames, source, times))
    visible = {"eyes": S.eyes_visible(source, times)}
    masks = region_masks(source, times, size=size)
    out = []
    for attr, choices in (("hair", HAIR_TARGETS), ("eyes", EYE_TARGETS)):
        value = next(c for c in choices if c != source.attributes[attr])
        edited = with_appearance(source, **{attr: value})
        truth = render_times(edited, times, size=size)
        offset = (readers.invert(truth) - source_codes).mean(0)  # n D
        base = psnr(unedited, truth)
        ceiling = {}
        for group in GROUPS:
            rows = group_rows(source_codes.shape[1], group)
            codes = source_codes.clone()
            codes[:, rows] += offset[rows]
            frames = readers.synthesize(codes, size)
            judged = S.edit_accuracy(S.read_pixels(frames, edited, times), {attr: value}, kept, visible)
            ceiling[group] = {"psnr_gain_db": round(psnr(frames, truth) - base, 2),
                              "pixels": round(judged["accuracy"], 2), "others": round(judged["others_unchanged"], 2)}
        with torch.no_grad():
            texts = F.normalize(clip.encode_text([caption(source), caption(edited)]), dim=-1)
        direction = F.normalize(texts[1] - texts[0], dim=0)
        images = (unedited * 2 - 1).requires_grad_(True)
        score = (F.normalize(clip.encode_image(images), dim=-1) @ direction).sum()
        (grad,) = torch.autograd.grad(score, images)
        mass = grad.abs().sum(1)  # T H W
        mass = mass / mass.sum(dim=(1, 2), keepdim=True)
        saliency = {}
        for region in REGIONS:
            inside = (masks[S.PIXEL_REGIONS[region]] >= 0.5).float()
            saliency[region] = {"share": round(float((mass * inside).sum(dim=(1, 2)).mean()), 3),
                                "area": round(float(inside.mean()), 3)}
        out.append({"seed": seed, "edit": f"{value} {attr}", "attribute": attr,
                    "rows": [round(float(x), 2) for x in offset.norm(dim=-1)],
                    "ceiling": ceiling, "saliency": saliency})
    return out


def main(argv: list[str] | None = None) -> int:
    from vsode.demo.seeds import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-3", help="demo seeds like 0-3 or 0,2,5 (default 0-3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    from vsode.demo.evaluate import Readers

    torch.set_num_threads(args.threads)
    readers = Readers()
    lines = [line for seed in parse_seeds(args.seeds) for line in diagnose(seed, readers=readers)]
    if args.json:
        print(json.dumps(lines, indent=1))
        return 0
    for x in lines:
        ceil = "  ".join(f"{g} {c['psnr_gain_db']:+.2f} dB {c['pixels']:.2f}/{c['others']:.2f}" for g, c in x["ceiling"].items())
        sal = " ".join(f"{r} {s['share']:.2f} ({s['area']:.2f})" for r, s in x["saliency"].items())
        print(f"seed {x['seed']} {x['edit']:<12} rows {x['rows']}\n    ceiling (ΔPSNR, pixels/others): {ceil}\n"
              f"    CLIP saliency (area): {sal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
