"""Probe a model-free text-edit formulation on the demo world: a CLIP-labelled direction in W that
holds the other attributes, swept in strength and judged by the pixels.

Issue 20 (text edits without a VidStyleODE model) asks for a formulation that edits rather than
attacks the CLIP it is guided by. Gradient steps on a CLIP loss fool the tiny demo CLIP even in
small subspaces. This probe takes a population statistic instead (InterFaceGAN's conditional
direction):

1. ``--samples`` faces from the generator's mapping network (truncation 0.7, one ``w`` in every
   W+ row), each read by the demo CLIP: one vocabulary value per attribute (hair, eyes, skin);
2. a ridge regression of the one-hot readings on ``w``: a K × 512 matrix ``A``;
3. for an edit of ``attribute`` from the source's value to the target, the least-norm ``d`` with
   ``A·d`` = +1 for the target value, −1 for the source's and 0 for every other value, so the
   other attributes' readings are held to first order;
4. each demo seed's source clip inverted with psp-demo, ``w_inv(t) + α·d`` on ``--rows`` rendered
   for every ``--alphas`` value and read three ways: the demo CLIP's accuracy, the pixels'
   accuracy and other attributes kept (:func:`vsode.demo.scores.read_pixels`), and the PSNR
   against the edited truth minus the unedited inversion's.

Usage::

    python scripts/probe_edit_directions.py --samples 4096 --seeds 0-7
    python scripts/probe_edit_directions.py --rows fine --json > out.json

Prints per seed and edit ``alpha:clip/pixels/others/ΔPSNR``; ``--json`` prints the same as JSON.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS = {"all": slice(None), "coarse": slice(0, 4), "medium": slice(4, 8), "fine": slice(8, None)}
EDITS = ("hair", "eyes")


def _render(generator: Any, wplus: torch.Tensor, size: int = 64) -> torch.Tensor:
    images = ((generator.synthesize(wplus, noise="const").clamp(-1, 1) + 1) / 2)
    return F.interpolate(images, size=size, mode="area") if images.shape[-1] != size else images


@torch.no_grad()
def fit_readout(generator: Any, clip: Any, samples: int, seed: int, truncation: float = 0.7
                ) -> tuple[torch.Tensor, list[tuple[str, str]], dict[str, dict[str, int]]]:
    """``A`` (K × style_dim: one row per (attribute, value)), its columns, and the label counts."""
    from vsode.demo.scores import NAMED, read_attributes
    from vsode.demo.world import ATTRIBUTES

    g = torch.Generator().manual_seed(seed)
    w = generator.mapping(torch.randn(samples, generator.style_dim, generator=g))
    mean = generator.mapping(torch.randn(4096, generator.style_dim, generator=g)).mean(0)
    w = mean + truncation * (w - mean)
    images = torch.cat([_render(generator, w[i : i + 256, None].expand(-1, generator.n_latent, -1))
                        for i in range(0, samples, 256)])
    labels = read_attributes(clip, images)
    columns = [(a, v) for a in NAMED for v in ATTRIBUTES[a]]
    y = torch.tensor([[1.0 if labels[a][n] == v else 0.0 for a, v in columns] for n in range(samples)])
    x = w - w.mean(0)
    ridge = 1e-2 * samples
    a = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ (y - y.mean(0))).T
    counts = {attr: {v: labels[attr].count(v) for v in ATTRIBUTES[attr]} for attr in NAMED}
    return a, columns, counts


def direction(a: torch.Tensor, columns: list[tuple[str, str]], attribute: str, source: str, target: str
              ) -> torch.Tensor:
    """The least-norm ``d`` that raises ``target``'s reading by 1, lowers ``source``'s by 1 and
    leaves every other column's at 0."""
    want = torch.zeros(len(columns), dtype=a.dtype)
    want[columns.index((attribute, target))] = 1.0
    want[columns.index((attribute, source))] = -1.0
    return a.T @ torch.linalg.solve(a @ a.T + 1e-6 * torch.eye(len(columns), dtype=a.dtype), want)


@torch.no_grad()
def probe(seeds: list[int], *, samples: int = 4096, rows: str = "all", alphas: tuple[float, ...] = (0.3, 0.5, 0.75),
          seconds: float = 3.0, fps: int = 24, seed: int = 0) -> dict[str, Any]:
    from vsode.demo.scores import edit_accuracy, eyes_visible, read_attributes, read_pixels
    from vsode.demo.showcase import EYE_TARGETS, HAIR_TARGETS, _first_other
    from vsode.demo.world import render_times, sample_params, with_appearance
    from vsode.encoders import preprocess
    from vsode.model import load_backbone

    generator = load_backbone("generator", "stylegan2-demo").eval()
    encoder = load_backbone("encoder", "psp-demo").eval()
    clip = load_backbone("clip", "clip-demo")
    a, columns, counts = fit_readout(generator, clip, samples, seed)
    targets = {"hair": HAIR_TARGETS, "eyes": EYE_TARGETS}
    t = np.arange(round(seconds * fps)) / fps
    out: dict[str, Any] = {"samples": samples, "rows": rows, "labels": counts, "seeds": {}}

    def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / F.mse_loss(x, y)))

    for s in seeds:
        source = sample_params(s)
        frames = render_times(source, t, size=64)
        w_inv = encoder.encode(preprocess(frames, encoder.input_size))
        inverted = _render(generator, w_inv)
        visible = {"eyes": eyes_visible(source, t)}
        per_seed = {}
        for attribute in EDITS:
            target = _first_other(targets[attribute], source.attributes[attribute])
            truth = render_times(with_appearance(source, **{attribute: target}), t, size=64)
            d = direction(a, columns, attribute, source.attributes[attribute], target)
            sweep = []
            for alpha in alphas:
                w = w_inv.clone()
                w[:, ROWS[rows]] += alpha * d
                edited = _render(generator, w)
                by_clip = edit_accuracy(read_attributes(clip, edited), {attribute: target}, source.attributes, visible)
                by_pixels = edit_accuracy(read_pixels(edited, source, t), {attribute: target}, source.attributes, visible)
                sweep.append({"alpha": alpha, "clip": by_clip["accuracy"], "pixels": by_pixels["accuracy"],
                              "others": by_pixels["others_unchanged"],
                              "psnr_gain_db": round(psnr(edited, truth) - psnr(inverted, truth), 3)})
            per_seed[f"{attribute}->{target}"] = {"norm": round(float(d.norm()), 3), "sweep": sweep}
        out["seeds"][str(s)] = per_seed
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    from vsode.demo.seeds import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-3", help="demo seeds like 0-3 or 0,2,5 (default 0-3)")
    parser.add_argument("--samples", type=int, default=4096, help="generator samples read by CLIP (default 4096)")
    parser.add_argument("--rows", choices=sorted(ROWS), default="all", help="W+ rows the direction is added to")
    parser.add_argument("--alphas", default="0.1,0.2,0.3,0.4,0.5,0.6,0.75,1,1.5,2",
                        help="strengths to sweep, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = probe(parse_seeds(args.seeds), samples=args.samples, rows=args.rows,
                   alphas=tuple(float(x) for x in args.alphas.split(",")), seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"labels: {result['labels']}")
    for s, edits in result["seeds"].items():
        for name, e in edits.items():
            cells = " ".join(f"{r['alpha']:g}:{_f(r['clip'])}/{_f(r['pixels'])}/{_f(r['others'])}/{r['psnr_gain_db']:+.1f}"
                             for r in e["sweep"])
            print(f"seed {s} {name} |d| {e['norm']}: {cells}")


if __name__ == "__main__":
    main()
