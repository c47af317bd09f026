#!/usr/bin/env python3
"""Score `vsode edit --optimize` on the demo world: with no model and with the demo model, beside
the demo model's edit without it, judged by the pixels and PSNR against the edited ground truth.

    python scripts/score_optimize.py --seeds 0-3
    python scripts/score_optimize.py --seeds 0-3 --steps 12 --layers fine --json > optimize.json

Per seed it runs ``vsode demo --seed N --seconds 2 --fps 12 --size 64`` (the settings of
``scripts/score_demo_seeds.py``) into a folder, then edits that demo's source clip with the demo's
own two prompts (one hair colour, one eye colour; the captions as the demo gives them) three ways:

- ``model``: the demo's own edit outputs (``vidstyleode-demo``, no optimisation): the baseline;
- ``model+optimize``: ``--optimize STEPS`` on the demo model's edit;
- ``none+optimize``: ``--model none --optimize STEPS`` (psp-demo, its decoder, clip-demo).

Each output is scored by :func:`vsode.demo.evaluate.evaluate_file` against the demo's truth file:
``landed`` (the pixels read the target on ≥ 90 % of frames and PSNR against the edited truth is
≥ 1 dB over the unedited inversion's), the other attributes kept by the pixels, that PSNR gain,
the frame difference against the source's and the optimisation's steps and seconds per step.
Progress lines go to stderr; the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAYS = ("model", "model+optimize", "none+optimize")
EDITS = ("edit-hair", "edit-eyes")


def score(seeds: list[int], folder: Path, *, steps: int, layers: str, threads: int = 1,
          ways: tuple[str, ...] = WAYS) -> dict[str, Any]:
    import torch

    from vsode import api
    from vsode.demo.evaluate import evaluate_file
    from vsode.demo.showcase import DemoOptions, run_demo
    from vsode.options import EditOptions

    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        out = folder / f"seed-{seed}"
        report = run_demo(out, DemoOptions(seconds=2.0, fps=Fraction(12), size=64, seed=seed, force=True,
                                           threads=threads))
        edit = report["apps"]["edit"]
        for way in ways:
            if way == "model":
                paths = {name: out / f"{name}.mp4" for name in EDITS}
                result = None
            else:
                paths = {name: out / f"{name}.{way.replace('+', '-')}.mp4" for name in EDITS}
                options = EditOptions(prompts=tuple(edit["target_texts"]), source=edit["source_text"],
                                      raw_prompt=True, strength=edit["strength"], optimize=steps, layers=layers,
                                      seed=0, model="none" if way.startswith("none") else "vidstyleode-demo",
                                      force=True, use_cache=False, crf=18, batch_size=16)
                started = time.perf_counter()
                result = api.edit(out / "source.mp4", options, outputs=list(paths.values()))
                print(f"seed {seed} {way}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
            for k, (name, path) in enumerate(paths.items()):
                e = evaluate_file(path, out / f"{name}.truth.json", kind="edit")
                opt = result.optimize[k] if result is not None else {}
                rows.append({
                    "seed": seed, "way": way, "edit": name, "prompt": e["prompt"], "landed": bool(e["landed"]),
                    "pixels": round(e["pixels"]["accuracy"], 3), "others": round(e["pixels"]["others_unchanged"], 3),
                    "psnr_db": e["psnr_db"], "inversion_psnr_db": e["inversion_psnr_db"],
                    "psnr_gain_db": round(e["psnr_db"] - e["inversion_psnr_db"], 3),
                    "frame_diff_ratio": e["temporal"]["frame_diff_ratio"], "clip": round(e["edit"]["accuracy"], 3),
                    "steps": opt.get("steps"), "seconds_per_step": opt.get("seconds_per_step"),
                })
    return {"seeds": seeds, "steps": steps, "layers": layers, "rows": rows, "summary": summarise(rows, ways)}


def summarise(rows: list[dict[str, Any]], ways: tuple[str, ...] = WAYS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for way in ways:
        mine = [r for r in rows if r["way"] == way]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        out[way] = {
            "landed": {e: sum(r["landed"] for r in mine if r["edit"] == e) for e in EDITS},
            "seeds": len(seeds),
            "others_kept_every_seed": all(r["others"] >= 0.9 for r in mine),
            "psnr_gain_db": {e: round(sum(r["psnr_gain_db"] for r in mine if r["edit"] == e) / len(seeds), 3)
                             for e in EDITS},
            "min_frame_diff_ratio": min(r["frame_diff_ratio"] for r in mine),
        }
        steps = [r for r in mine if r["seconds_per_step"] is not None]
        if steps:
            out[way]["mean_steps"] = round(sum(r["steps"] for r in steps) / len(steps), 2)
            out[way]["seconds_per_step"] = round(sum(r["seconds_per_step"] for r in steps) / len(steps), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    from vsode.demo.seeds import parse_seeds
    from vsode.optimize import DEFAULT_LAYERS, LAYERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-3", help="demo seeds like 0-3 or 0,2,5 (default 0-3)")
    parser.add_argument("--steps", type=int, default=12, help="--optimize steps (default 12)")
    parser.add_argument("--layers", choices=LAYERS, default=DEFAULT_LAYERS)
    parser.add_argument("--population", type=int, help="generator faces per step (default vsode.optimize.POPULATION)")
    parser.add_argument("--step", type=float, help="step length, share of W's spread (default vsode.optimize.STEP)")
    parser.add_argument("--frames", type=int, help="video frames read per step (default vsode.optimize.FRAMES)")
    parser.add_argument("--stop-share", type=float, help="share of frames CLIP must read as the target "
                        "(default vsode.optimize.STOP_SHARE)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the demo folders and outputs here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    import vsode.optimize as optimize

    optimize.POPULATION = args.population or optimize.POPULATION
    optimize.STEP = args.step or optimize.STEP
    optimize.FRAMES = args.frames or optimize.FRAMES
    optimize.STOP_SHARE = args.stop_share or optimize.STOP_SHARE
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result = score(parse_seeds(args.seeds), folder, steps=args.steps, layers=args.layers, threads=args.threads)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{'seed':>4} {'way':<15} {'edit':<10} landed pixels others ΔPSNR  fdiff steps")
    for r in result["rows"]:
        print(f"{r['seed']:>4} {r['way']:<15} {r['edit']:<10} {str(r['landed']):<6} {r['pixels']:6.2f} "
              f"{r['others']:6.2f} {r['psnr_gain_db']:+5.2f} {r['frame_diff_ratio']:6.2f} {r['steps'] or '-'}")
    for way, s in result["summary"].items():
        print(f"{way}: {json.dumps(s)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
