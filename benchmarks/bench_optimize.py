"""Seconds per step of `vsode edit --optimize` (vsode.optimize) and what an edit costs.

One step renders ``population`` generator faces and the video's read frames (``vsode.optimize.FRAMES``)
up to the loss resolution (the generator's RGB skip at 256 px for a 1024 generator, the full 64 px
for the demo), reads them with CLIP and takes the gradient of CLIP's directional score back to
the W+ offset. The cost does not grow with the clip: the frames read are at most FRAMES. The steps
taken are set by the stop rule (3-5 on the demo seeds; ``--optimize N`` is the most).

Cases: the shipped demo generator and CLIP (64 px), and random weights in the real layout
(StyleGAN2 config-f 1024, CLIP ViT-B/32 QuickGELU) in fp32 and bf16. The stop rule is switched
off so every case takes ``--steps`` steps.

    python benchmarks/bench_optimize.py                        # demo, 1024 fp32 and bf16
    python benchmarks/bench_optimize.py --cases 1024-bf16 --steps 2 --population 8

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_tune import _cpu, save_rows  # noqa: E402

from vsode.optimize import FRAMES, POPULATION, optimise_edit  # noqa: E402

CASES = ("demo", "1024-fp32", "1024-bf16")


def _models(case: str):
    from vsode.model import load_backbone

    if case == "demo":
        return load_backbone("generator", "stylegan2-demo").eval(), load_backbone("clip", "clip-demo")
    import open_clip

    from vsode.clip import ClipModel, Preprocess
    from vsode.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(1024).eval().requires_grad_(False)
    clip = open_clip.create_model("ViT-B-32-quickgelu")  # random init: nothing is downloaded
    config = open_clip.get_model_config("ViT-B-32-quickgelu")
    return generator, ClipModel(clip, Preprocess(image_size=224), name="ViT-B-32-quickgelu", config=config)


def run_case(case: str, steps: int, population: int) -> dict:
    generator, clip = _models(case)
    dtype = torch.bfloat16 if case.endswith("bf16") else None
    with torch.no_grad():
        w = generator.mapping(torch.randn(FRAMES, generator.style_dim))[:, None].expand(-1, generator.n_latent, -1)
    started = time.perf_counter()
    report = optimise_edit(generator, clip, w.contiguous(), "a photo of a person", "a photo of a person with blue eyes",
                           steps=steps, population=population, stop_share=2.0, dtype=dtype)
    total = time.perf_counter() - started
    step = report.seconds_per_step
    return {"case": case, "resolution": generator.resolution, "loss_size": min(generator.resolution, 256),
            "population": population, "frames": FRAMES, "steps": report.steps, "seconds_per_step": round(step, 3),
            "wall_s": round(total, 2), "edit_4_steps_s": round(4 * step, 1), "edit_12_steps_s": round(12 * step, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case (default 2)")
    parser.add_argument("--population", type=int, default=POPULATION,
                        help=f"generator faces per step (default {POPULATION}, the edit's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    head = f"CPU: {_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(head)
    print(f"{'case':<10} {'faces':>5} {'s/step':>8} {'4 steps':>9} {'12 steps':>9}")
    rows = [run_case(case, args.steps, args.population) for case in args.cases]
    for row in rows:
        print(f"{row['case']:<10} {row['population']:>5} {row['seconds_per_step']:>8.3f} "
              f"{row['edit_4_steps_s']:>8.1f}s {row['edit_12_steps_s']:>8.1f}s")
    save_rows(args.json, head, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
