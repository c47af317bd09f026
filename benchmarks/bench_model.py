"""VidStyleODE stage timings on random weights: dynamics encode, one ODE solve, modulation + mapper.

    python benchmarks/bench_model.py [--preset ffhq] [--frames 8] [--queries 16 64] [--threads 2]

Reports, per ODE state precision (float32, float64): seconds for the frame encoder + ODE-GRU
over ``--frames`` frames, seconds and f_dec evaluations for one solve at each ``--queries`` count
(one ``odeint`` call answers the whole grid, so more outputs cost little), and frames/s of the
modulation network + mapper. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vsode.model import build_model, parameter_counts, preset_config


def _time(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ffhq")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--queries", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"preset": args.preset, "frames": args.frames, "threads": torch.get_num_threads()}
    for dtype in ("float32", "float64"):
        config = preset_config(args.preset).override({"dynamics.dtype": dtype})
        model = build_model(config, seed=0).eval()
        report["parameters"] = parameter_counts(model)
        h, w = config.dynamics.img_size
        frames = torch.rand(1, args.frames, 3, h, w)
        times = torch.linspace(0, 1, args.frames, dtype=torch.float64)
        z_d0 = model.dynamics.encode(frames, times)
        row = {"encode_s": _time(lambda: model.dynamics.encode(frames, times))}
        for q in args.queries:
            query = torch.linspace(0, 1.5, q, dtype=torch.float64)
            model.dynamics.reset_nfe()
            model.dynamics.solve(z_d0, query)
            row[f"solve_{q}_nfe"] = model.dynamics.nfe
            row[f"solve_{q}_s"] = _time(lambda: model.dynamics.solve(z_d0, query))
        _, tokens = model.dynamics.solve(z_d0, torch.linspace(0, 1, 16, dtype=torch.float64))
        content = torch.randn(1, config.n_latent, config.style_dim)
        style = torch.randn(1, config.clip_dim)
        seconds = _time(lambda: model.decode_w(tokens, content, style))
        row["modulation_mapper_frames_per_s"] = tokens.shape[0] / seconds
        report[dtype] = row
    report["float64_over_float32_encode"] = report["float64"]["encode_s"] / report["float32"]["encode_s"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
