#!/usr/bin/env python3
"""How well anchored animate's motion transfer follows a driver, by reference pose (`--reference`).

    python scripts/probe_animate_reference.py --seeds 0-3 --seconds 10 --fps 24

Per seed it renders the demo's driver (``sample_params(seed + 1, motion_seed=seed + 101)``) and
portrait (``sample_params(seed + 2)`` at t = 0), as ``vsode demo`` picks them, inverts both with
psp-demo, and renders the portrait's code plus the driver's offsets from each reference
(:func:`vsode.model.anchor.motion_reference`) in the coarse and medium rows, at 64 px, with the
demo generator. It prints, per reference, the mean over the seeds of the motion regressor's
trajectory correlation with the driver's true mouth and head motion, and the PSNR against the
true frames (the portrait's face rendered with the driver's motion), and how many principal
directions ``matched`` kept. This is the transfer alone: no VidStyleODE model, no video coding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHANNELS = ("mouth_open", "head_x", "head_y")


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def probe(seeds: list[int], seconds: float = 2.0, fps: float = 12.0) -> dict:
    """Per reference mode: the mean over ``seeds`` of r(mouth), r(head x), r(head y) and the PSNR
    against the true frames (``{mode: {"r": {...}, "psnr_db": x}}``), and ``kept``: the fewest and
    most directions ``matched`` kept."""
    import numpy as np
    import torch

    from vsode.checkpoints import resolve
    from vsode.demo.regressor import load_regressor, resize, true_motion
    from vsode.demo.world import render_times, sample_params, with_motion
    from vsode.encoders import load_encoder
    from vsode.invert import synthesize_at
    from vsode.model.anchor import REFERENCE_ENERGY, motion_reference
    from vsode.options import MOTION_REFERENCES

    regressor = load_regressor()
    encoder = load_encoder(resolve("psp-demo")).eval()
    generator = encoder.generator
    moving = list(range(8))  # psp-demo's coarse and medium rows (the fine rows stay the portrait's)
    t = np.arange(max(2, int(round(seconds * fps)))) / fps

    def batches(x: torch.Tensor, fn) -> torch.Tensor:
        return torch.cat([fn(x[i : i + 64]) for i in range(0, x.shape[0], 64)])

    rows: dict[str, list[list[float]]] = {mode: [] for mode in MOTION_REFERENCES}
    kept = []
    for seed in seeds:
        driver = sample_params(seed + 1, motion_seed=seed + 101)
        portrait = sample_params(seed + 2)
        truth = true_motion(driver, t)
        expected = render_times(with_motion(portrait, driver), t, size=64)
        with torch.no_grad():
            w_driver = batches(render_times(driver, t, size=64),
                               lambda x: encoder.encode(resize(x * 2 - 1, encoder.input_size)))
            w_face = encoder.encode(resize(render_times(portrait, np.array([0.0]), size=64) * 2 - 1,
                                           encoder.input_size))[0]
            codes = w_driver[:, moving].reshape(len(t), -1).double()
            power = torch.linalg.svdvals(codes - codes.mean(0)).pow(2)
            kept.append(int((power.cumsum(0) < REFERENCE_ENERGY * power.sum()).sum()) + 1)
            for mode in MOTION_REFERENCES:
                offsets = w_driver - motion_reference(w_driver, w_face, moving, mode)[None]
                offsets[:, len(moving):] = 0
                frames = batches(w_face[None] + offsets,
                                 lambda w: (synthesize_at(generator, w, 64).clamp(-1, 1) + 1) / 2)
                read = regressor.measure(frames)
                r = [float(np.corrcoef(read[c], truth[c])[0, 1]) for c in CHANNELS]
                rows[mode].append(r + [float(10 * torch.log10(1 / (frames - expected).pow(2).mean()))])
    out: dict = {"frames": len(t), "kept": [min(kept), max(kept)]}
    for mode, values in rows.items():
        mean = np.mean(values, axis=0)
        out[mode] = {"r": dict(zip(CHANNELS, map(float, mean[:3]))), "psnr_db": float(mean[3])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-3", help="seeds like 0-3 or 0,2,5 (default 0-3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="driver length (default 2)")
    parser.add_argument("--fps", type=float, default=12.0, help="driver frame rate (default 12)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out = probe(seeds_of(args.seeds), args.seconds, args.fps)
    print(f"{out['frames']} driver frames ({args.seconds:g} s at {args.fps:g} fps), seeds {args.seeds}; "
          f"matched kept {out['kept'][0]}-{out['kept'][1]} directions")
    for mode in ("matched", "first"):
        r = out[mode]["r"]
        print(f"  {mode:8s} r mouth {r['mouth_open']:.3f}, head x {r['head_x']:.3f}, head y {r['head_y']:.3f}; "
              f"PSNR against the true frames {out[mode]['psnr_db']:.2f} dB")


if __name__ == "__main__":
    main()
