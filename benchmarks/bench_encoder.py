"""Time the pSp encoder (IR-SE-50 at 256², vsode.encoders) against the floor of its convolutions.

The encoder is built with random weights in the real layout (``GradualStyleEncoder(18)``: the
IR-SE-50 backbone, the two lateral convs and 18 map2style heads). Each case (``reference``: the
plain fp32 forward; ``fast``: ``Encoder.encode(impl="fast")``) is reported with its **floor**: the
same network's convolutions alone, recorded at their real shapes during one forward (the 3×3 and
1×1 convolutions of every unit, the shortcut convs, the SE convs, the heads and the lateral convs)
and timed as plain ``F.conv2d`` calls on channels-last inputs in the case's dtype, with no batch
norm, PReLU, SE gating, residual additions, interpolation, linear layers or casts. Case and floor
are timed in alternation, round after round: "× floor" divides the fastest case by the sum of the
fastest floor calls, "median of rounds" is the median over rounds of case / floor measured
together (see benchmarks/README.md).

    python benchmarks/bench_encoder.py                           # batch 8, reference fp32 and fast bf16
    python benchmarks/bench_encoder.py --batches 1 8 --repeats 5 --threads 1
    python benchmarks/bench_encoder.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vsode.encoders import Encoder, GradualStyleEncoder  # noqa: E402

CASES = {"reference": torch.float32, "fast": torch.bfloat16}


def build_psp(seed: int = 0) -> Encoder:
    """A pSp encoder of the published shapes with random weights and BN statistics."""
    torch.manual_seed(seed)
    net = GradualStyleEncoder(18)
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
    enc = Encoder(net, kind="psp", opts={}, latent_avg=torch.randn(18, 512) * 0.1, start_from_latent_avg=True)
    return enc.eval().requires_grad_(False)


def conv_shapes(enc: Encoder, batch: int) -> list[tuple[str, tuple, nn.Conv2d]]:
    """(module name, input shape, module) of every Conv2d call of one forward, in call order."""
    calls: list[tuple[str, tuple, nn.Conv2d]] = []
    hooks = [
        m.register_forward_hook(lambda m, inp, out, name=name: calls.append((name, tuple(inp[0].shape), m)))
        for name, m in enc.encoder.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            enc.encoder(torch.zeros(batch, 3, enc.input_size, enc.input_size))
    finally:
        for h in hooks:
            h.remove()
    return calls


def _group(name: str) -> str:
    if name.startswith("input_layer"):
        return "input layer"
    if name.startswith("body."):  # IR-SE-50 stages: 3, 4, 14, 3 units; each halves the side first
        unit = int(name.split(".")[1])
        return ("stage 1 (64 ch, 128²)" if unit < 3 else "stage 2 (128 ch, 64²)" if unit < 7
                else "stage 3 (256 ch, 32²)" if unit < 21 else "stage 4 (512 ch, 16²)")
    return "18 heads + 2 laterals"


def floor_ops(enc: Encoder, batch: int, dtype: torch.dtype) -> list[tuple[str, Callable[[], object]]]:
    """(group, thunk) per convolution call of the encoder, plain ``F.conv2d`` in ``dtype``."""
    ops = []
    for name, shape, m in conv_shapes(enc, batch):
        x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(m.weight.shape).to(dtype)
        b = None if m.bias is None else torch.randn(m.bias.shape).to(dtype)
        ops.append(
            (_group(name), lambda x=x, w=w, b=b, m=m: F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups))
        )
    return ops


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(enc: Encoder, impl: str, batch: int, rounds: int, budget_s: float) -> dict:
    dtype = CASES[impl]
    images = torch.rand(batch, 3, enc.input_size, enc.input_size) * 2 - 1
    floor = floor_ops(enc, batch, dtype)
    case = lambda: enc.encode(images, impl=impl)  # noqa: E731
    with torch.no_grad():
        case()
        for _, fn in floor:
            fn()
        runs: list[float] = []
        floor_runs: list[float] = []
        best = [float("inf")] * len(floor)
        start = time.perf_counter()
        while len(runs) < rounds and (not runs or time.perf_counter() - start < budget_s):
            runs.append(_timed(case))
            floor_runs.append(0.0)
            for i, (_, fn) in enumerate(floor):
                t = _timed(fn)
                floor_runs[-1] += t
                best[i] = min(best[i], t)
    groups: dict[str, float] = {}
    for (g, _), t in zip(floor, best):
        groups[g] = groups.get(g, 0.0) + t * 1e3 / batch
    return {"case_s": min(runs), "runs_s": runs, "floor_s": sum(best), "floor_runs_s": floor_runs,
            "x_floor_median": statistics.median([c / f for c, f in zip(runs, floor_runs)]),
            "floor_ms_per_image_by_group": groups, "convolutions": len(floor)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[8])
    p.add_argument("--impls", nargs="+", choices=sorted(CASES), default=["reference", "fast"])
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per case (case, then floor)")
    p.add_argument("--budget", type=float, default=60.0, help="stop repeating a case after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    enc = build_psp()
    rows = []
    for batch in args.batches:
        for impl in args.impls:
            m = measure(enc, impl, batch, args.repeats, args.budget)
            row = {"batch": batch, "impl": impl, "dtype": str(CASES[impl]).removeprefix("torch."),
                   "ms_per_image": m["case_s"] / batch * 1e3, "floor_ms_per_image": m["floor_s"] / batch * 1e3,
                   "x_floor": m["case_s"] / m["floor_s"], **m}
            rows.append(row)
            print(f"batch {batch} {impl}: {row['ms_per_image']:.1f} ms/image, floor {row['floor_ms_per_image']:.1f} "
                  f"(x{row['x_floor']:.2f}, median of rounds x{row['x_floor_median']:.2f})", file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print()
    print("| batch | impl | dtype | ms/image | floor ms/image | × floor | × floor, median of rounds |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['impl']} | {r['dtype']} | {r['ms_per_image']:.1f} | {r['floor_ms_per_image']:.1f} "
              f"| {r['x_floor']:.2f} | {r['x_floor_median']:.2f} |")
    print()
    groups = list(rows[0]["floor_ms_per_image_by_group"]) if rows else []
    print("floor by part (ms/image): | batch | dtype | " + " | ".join(groups) + " |")
    for r in rows:
        print(f"| {r['batch']} | {r['dtype']} | "
              + " | ".join(f"{r['floor_ms_per_image_by_group'][g]:.1f}" for g in groups) + " |")
    if args.json:
        path = Path(args.json)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, f, indent=1)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
