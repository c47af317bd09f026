"""Seconds per step of pivotal tuning (``--tune``, vsode.tune) and what a 10 s clip costs.

One step is a forward and backward pass of the generator on a batch of pivots, the loss taken at
the encoder's input size with its backbone's features, plus the locality pass (a forward of the
frozen generator and a forward and backward of the tuned one at codes toward the prior).

Cases: the shipped demo generator and encoder (64 px), and random weights in the real layout
(StyleGAN2 config-f 1024, pSp's IR-SE-50 at 256) in fp32 and bf16 (autocast). The tuning cost
does not grow with the clip's length: the pivots are at most ``vsode.tune.POOL`` frames, so the
total for a 10 s 30 fps clip is the steps times the step (plus its inversion, which is not timed
here).

    python benchmarks/bench_tune.py                           # demo 64, 1024 fp32 and bf16
    python benchmarks/bench_tune.py --cases demo --steps 10
    python benchmarks/bench_tune.py --cases 1024-fp32 --steps 2 --batch 1 --json out.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vsode.tune import BATCH, TuneSettings, tune_generator  # noqa: E402

CASES = ("demo", "1024-fp32", "1024-bf16")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save_rows(path: Path | None, machine: str, rows: list[dict]) -> None:
    """Write a benchmark's rows and the machine line as JSON to ``path`` (nothing without one)."""
    if path is not None:
        path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


def _models(case: str):
    if case == "demo":
        from vsode.checkpoints import resolve
        from vsode.encoders import load_encoder
        from vsode.stylegan2 import load_generator

        generator = load_generator(resolve("stylegan2-demo")).eval().requires_grad_(False)
        encoder = load_encoder(resolve("psp-demo")).eval().requires_grad_(False)
        return generator, encoder.encoder, encoder.input_size
    from vsode.encoders import GradualStyleEncoder
    from vsode.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(1024).eval().requires_grad_(False)
    backbone = GradualStyleEncoder(generator.n_latent).eval().requires_grad_(False)
    return generator, backbone, 256


def run_case(case: str, steps: int, batch: int) -> dict:
    generator, backbone, size = _models(case)
    dtype = torch.bfloat16 if case.endswith("bf16") else None
    pivots = torch.randn(batch, generator.n_latent, generator.style_dim) * 0.5
    targets = torch.rand(batch, 3, size, size) * 2 - 1
    settings = TuneSettings(steps=steps, batch_size=batch)
    started = time.perf_counter()
    _, report = tune_generator(generator, pivots, targets, settings, features=backbone.features, dtype=dtype)
    total = time.perf_counter() - started
    step = report["seconds_per_step"]
    return {"case": case, "resolution": generator.resolution, "loss_size": size, "batch": batch, "steps": steps,
            "seconds_per_step": round(step, 3), "wall_s": round(total, 2),
            "tune_100_steps_s": round(100 * step, 1), "tune_300_steps_s": round(300 * step, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (default 3)")
    parser.add_argument("--batch", type=int, default=None,
                        help="pivots per step (default: 4 for the demo, as --tune takes; 1 at 1024)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    head = f"CPU: {_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(head)
    print(f"{'case':<10} {'batch':>5} {'s/step':>8} {'100 steps':>10} {'300 steps':>10}")
    for case in args.cases:
        batch = args.batch or (BATCH if case == "demo" else 1)
        row = run_case(case, args.steps, batch)
        rows.append(row)
        print(f"{case:<10} {batch:>5} {row['seconds_per_step']:>8.3f} {row['tune_100_steps_s']:>9.1f}s "
              f"{row['tune_300_steps_s']:>9.1f}s", flush=True)
    save_rows(args.json, head, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
