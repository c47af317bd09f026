"""Time the StyleGAN2 generator (vsode.stylegan2) against this machine's matmul peak.

Each case renders W+ batches with random weights in the real layout (``Generator(size)``, config-f
channels) and reports ms/frame and the achieved GFLOP/s, with the FLOPs counted analytically
(convolutions, transposed convolutions, blurs, ToRGB, skip upsampling, modulation). The fp32 and
bf16 matmul peaks (``torch.matmul``, 2048²) are measured in the same run, before and after the
cases, and the fractions use the better of the two. A oneDNN 1×1-convolution peak is reported as
well: on CPUs where MKL's sgemm is not the fastest GEMM (AMD), convolutions can beat "the" matmul
peak.

Each case is also reported as a multiple of its **floor**: the plain convolutions at the
generator's own shapes (per resolution: the transposed 3×3 stride-2 conv, the depthwise 4×4 blur,
the 3×3 conv; at 4² the 3×3 conv), in the case's dtype and the layout the fast path picks, with no
modulation, noise, activation or ToRGB (``floor_ops``). Case, floor and (batch 1) each block of the
case are timed in alternation, round after round: "× floor" is fastest case / sum of the fastest
floor ops, "median of rounds" the median of case / floor timed together in one round, the figure
to trust on a shared machine. The per-resolution table shows where the time goes.

    python benchmarks/bench_generator.py                      # 256 and 1024, batch 1 and 8 (no 1024×8)
    python benchmarks/bench_generator.py --sizes 256 --batches 1 --repeats 2
    python benchmarks/bench_generator.py --with-1024-b8 --json out.json
    python benchmarks/bench_generator.py --thp               # re-run with THP_MEM_ALLOC_ENABLE=1
    python benchmarks/bench_generator.py --sizes 1024 --batches 1 --repeats 5 --threads 1   # the floor targets

See benchmarks/README.md.
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
from typing import Callable

if "--thp" in sys.argv and os.environ.get("THP_MEM_ALLOC_ENABLE") != "1":
    # torch reads this once, at its first allocation: restart before importing it
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vsode.stylegan2 import Generator  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def generator_flops(g: Generator, batch: int = 1) -> float:
    """Multiply-adds ×2 of one forward of ``g`` (synthesis network + modulations), per batch."""
    h, w = 4, 4 * g.width // g.resolution
    c4 = g.channels[4]
    total = 2 * 9 * c4 * c4 * h * w  # conv1
    total += 2 * 3 * c4 * h * w  # to_rgb1
    for r in range(3, g.log_size + 1):
        cin, cout = g.channels[2 ** (r - 1)], g.channels[2**r]
        total += 2 * 9 * cin * cout * h * w  # transposed 3×3, stride 2, on the h×w input
        h, w = 2 * h, 2 * w
        total += 2 * 16 * cout * h * w  # 4×4 blur after it
        total += 2 * 9 * cout * cout * h * w  # 3×3 conv
        total += 2 * 3 * cout * h * w  # ToRGB 1×1
        total += 2 * 4 * 3 * h * w  # skip upsampling: 4 non-zero taps per output
    mods = [m for m in g.modules() if type(m).__name__ == "ModulatedConv2d"]
    total += sum(2 * g.style_dim * m.in_channel for m in mods)
    return float(total * batch)


def _best(fn, repeats: int, budget_s: float) -> tuple[float, list[float]]:
    fn()  # warm-up: oneDNN primitive creation, first-touch allocations
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    best, _ = _best(lambda: torch.matmul(a, b), repeats, 30.0)
    return 2 * n**3 / best / 1e9


def conv_peak(dtype: torch.dtype, repeats: int = 5) -> float:
    """A 1×1 convolution (oneDNN's GEMM) at 512→512 channels on 64×64, channels-last."""
    x = torch.randn(1, 512, 64, 64).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(512, 512, 1, 1).to(dtype)
    best, _ = _best(lambda: F.conv2d(x, w), repeats, 30.0)
    return 2 * 512 * 512 * 64 * 64 / best / 1e9


def measure_peaks() -> dict[str, float]:
    return {
        "matmul_fp32": matmul_peak(torch.float32),
        "matmul_bf16": matmul_peak(torch.bfloat16),
        "conv_fp32": conv_peak(torch.float32),
        "conv_bf16": conv_peak(torch.bfloat16),
    }


def _layout(x_numel: int, weight_numel: int) -> torch.memory_format:
    """The fast path's layout rule (vsode.ops): channels-last where a sample's activations
    outweigh the weight."""
    return torch.channels_last if x_numel >= weight_numel else torch.contiguous_format


def floor_ops(g: Generator, dtype: torch.dtype, batch: int) -> list[tuple[int, str, Callable[[], object]]]:
    """The plain ops at the generator's own shapes: (resolution, name, thunk) in execution order.

    Per resolution r ≥ 8: the transposed 3×3 stride-2 convolution from r/2, the depthwise 4×4
    blur after it and the 3×3 convolution at r; at 4² the 3×3 convolution of ``conv1``. No
    modulation, demodulation, bias, noise, activation or ToRGB: what is left when everything but
    the convolutions is free. Inputs are in ``dtype`` and in the layout the fast path picks for
    that layer (channels-last where a sample's activations outweigh the weight).
    """
    ops = []
    h = 4
    w_ = 4 * g.width // g.resolution
    c4 = g.channels[4]

    def conv3(c: int, hh: int, ww: int):
        lay = _layout(c * hh * ww, c * c * 9)
        x = torch.randn(batch, c, hh, ww).to(dtype).contiguous(memory_format=lay)
        wt = torch.randn(c, c, 3, 3).to(dtype).contiguous(memory_format=lay)
        return lambda: F.conv2d(x, wt, padding=1)

    ops.append((4, "conv 3×3", conv3(c4, h, w_)))
    for r in range(3, g.log_size + 1):
        cin, cout = g.channels[2 ** (r - 1)], g.channels[2**r]
        lay = _layout(cin * h * w_, cin * cout * 9)
        x = torch.randn(batch, cin, h, w_).to(dtype).contiguous(memory_format=lay)
        wt = torch.randn(cin, cout, 3, 3).to(dtype).contiguous(memory_format=lay)
        up = F.conv_transpose2d(x, wt, stride=2)  # (2h+1)×(2w+1)
        blur = torch.ones(cout, 1, 4, 4, dtype=dtype) / 16
        ops.append((2**r, "transposed 3×3 s2", lambda x=x, wt=wt: F.conv_transpose2d(x, wt, stride=2)))
        ops.append((2**r, "blur 4×4", lambda up=up, blur=blur, c=cout: F.conv2d(up, blur, padding=1, groups=c)))
        h, w_ = 2 * h, 2 * w_
        ops.append((2**r, "conv 3×3", conv3(cout, h, w_)))
    return ops


def block_thunks(g: Generator, w: torch.Tensor, impl: str, dtype: torch.dtype) -> list[tuple[int, Callable[[], object]]]:
    """The fast path split at its resolutions, batch 1: (resolution, thunk) in execution order.

    Each thunk runs one block (two styled convs and the ToRGB) on the previous block's real
    output, so the sum of the thunks is one synthesis less its W+ preparation and final copy.
    """
    assert w.shape[0] == 1, "the per-resolution breakdown is for batch 1"
    wplus = g._wplus(w).float()
    noises = g._resolve_noise("const", 1, None)
    x, skip = g._first_block(wplus, noises, impl, dtype)
    thunks = [(4, lambda: g._first_block(wplus, noises, impl, dtype))]
    for j in range(1, g.log_size - 1):
        thunks.append((4 * 2**j, lambda j=j, x=x, skip=skip: g._blocks(x, skip, wplus, noises, j, j + 1, impl, dtype)))
        x, skip = g._blocks(x, skip, wplus, noises, j, j + 1, impl, dtype)
    return thunks


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure_against_floor(
    g: Generator, w: torch.Tensor, impl: str, dtype: torch.dtype, rounds: int, budget_s: float, breakdown: bool
) -> dict:
    """Interleave the case, its floor and (batch 1) its per-resolution blocks, ``rounds`` times.

    Each quantity keeps its fastest round: on a shared machine the fastest run is the one the
    other processes disturbed least, and the case and its floor see the same state of the
    machine. Returns the case's seconds per batch, the floor's, and per-resolution rows.
    """
    batch = w.shape[0]
    floor = floor_ops(g, dtype, batch)
    blocks = block_thunks(g, w, impl, dtype) if breakdown and batch == 1 else []
    case = lambda: g.synthesize(w, impl=impl, dtype=dtype)  # noqa: E731
    with torch.no_grad():
        case()  # warm-up: oneDNN primitives, first-touch allocations
        for _, _, fn in floor:
            fn()
        for _, fn in blocks:
            fn()
        case_runs: list[float] = []
        floor_runs: list[float] = []
        floor_best = [float("inf")] * len(floor)
        block_best = [float("inf")] * len(blocks)
        start = time.perf_counter()
        while len(case_runs) < rounds and (not case_runs or time.perf_counter() - start < budget_s):
            case_runs.append(_timed(case))
            floor_runs.append(0.0)
            for i, (_, _, fn) in enumerate(floor):
                t = _timed(fn)
                floor_runs[-1] += t
                floor_best[i] = min(floor_best[i], t)
            for i, (_, fn) in enumerate(blocks):
                block_best[i] = min(block_best[i], _timed(fn))
    per_res: dict[int, dict] = {}
    for (res, name, _), t in zip(floor, floor_best):
        row = per_res.setdefault(res, {"resolution": res, "floor_ms": 0.0, "floor_ops_ms": {}})
        row["floor_ms"] += t * 1e3 / batch
        row["floor_ops_ms"][name] = t * 1e3 / batch
    for (res, _), t in zip(blocks, block_best):
        per_res[res]["block_ms"] = t * 1e3
        per_res[res]["ratio"] = per_res[res]["block_ms"] / per_res[res]["floor_ms"]
    return {"case_s": min(case_runs), "runs_s": case_runs, "floor_s": sum(floor_best), "floor_runs_s": floor_runs,
            "x_floor_median": statistics.median([c / f for c, f in zip(case_runs, floor_runs)]),
            "per_resolution": list(per_res.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    p.add_argument("--impls", nargs="+", choices=["fast", "reference"], default=["fast"])
    p.add_argument(
        "--repeats", type=int, default=3, help="timed rounds per case, each: case, floor, blocks (best is reported)"
    )
    p.add_argument("--budget", type=float, default=60.0, help="stop repeating a case after this many seconds")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-resolution timings (batch 1)")
    p.add_argument("--with-1024-b8", action="store_true", help="include size 1024 at batch 8 (slow)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--thp", action="store_true", help="run with THP_MEM_ALLOC_ENABLE=1 (huge-page allocations)"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    peaks_before = measure_peaks()
    rows = []
    for size in args.sizes:
        torch.manual_seed(0)
        g = Generator(size).eval().requires_grad_(False)
        for batch in args.batches:
            if size >= 1024 and batch >= 8 and not args.with_1024_b8:
                print(f"skipping size {size} batch {batch} (pass --with-1024-b8)", file=sys.stderr)
                continue
            w = torch.randn(batch, g.n_latent, g.style_dim) * 0.5
            flops = generator_flops(g, batch)
            for impl in args.impls:
                for name in args.dtypes:
                    dtype = DTYPES[name]
                    around = matmul_peak(dtype, repeats=3)  # contention shows as a low local peak
                    m = measure_against_floor(
                        g, w, impl, dtype, args.repeats, args.budget, breakdown=not args.no_breakdown
                    )
                    best = m["case_s"]
                    rows.append(
                        {
                            "size": size,
                            "batch": batch,
                            "impl": impl,
                            "dtype": name,
                            "ms_per_frame": best / batch * 1e3,
                            "floor_ms_per_frame": m["floor_s"] / batch * 1e3,
                            "x_floor": best / m["floor_s"],
                            "x_floor_median": m["x_floor_median"],
                            "floor_runs_s": m["floor_runs_s"],
                            "gflop_per_frame": flops / batch / 1e9,
                            "gflops": flops / best / 1e9,
                            "runs_s": m["runs_s"],
                            "per_resolution": m["per_resolution"],
                            "matmul_peak_around": max(around, matmul_peak(dtype, repeats=3)),
                        }
                    )
                    print(
                        f"size {size} batch {batch} {impl} {name}: {best / batch * 1e3:.0f} ms/frame, "
                        f"floor {m['floor_s'] / batch * 1e3:.0f} ms/frame (x{best / m['floor_s']:.2f}, "
                        f"median of rounds x{m['x_floor_median']:.2f})",
                        file=sys.stderr,
                    )
    peaks_after = measure_peaks()
    peaks = {k: max(peaks_before[k], peaks_after[k]) for k in peaks_before}
    for row in rows:
        row["pct_matmul_peak"] = 100 * row["gflops"] / peaks[f"matmul_{row['dtype']}"]
        row["pct_conv_peak"] = 100 * row["gflops"] / peaks[f"conv_{row['dtype']}"]
        row["pct_matmul_peak_around"] = 100 * row["gflops"] / row["matmul_peak_around"]

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}"
    )
    print(
        "peaks (GFLOP/s, best of before/after): "
        + ", ".join(
            f"{k} {v:.0f} (before {peaks_before[k]:.0f}, after {peaks_after[k]:.0f})"
            for k, v in peaks.items()
        )
    )
    print()
    print(
        "| size | batch | impl | dtype | ms/frame | floor ms/frame | × floor | × floor, median of rounds "
        "| GFLOP/frame | GFLOP/s "
        "| % matmul peak | % 1×1-conv peak | matmul peak around the case | % of that |"
    )
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['batch']} | {r['impl']} | {r['dtype']} | {r['ms_per_frame']:.0f} "
            f"| {r['floor_ms_per_frame']:.0f} | {r['x_floor']:.2f} | {r['x_floor_median']:.2f} "
            f"| {r['gflop_per_frame']:.1f} | {r['gflops']:.0f} | {r['pct_matmul_peak']:.0f}% "
            f"| {r['pct_conv_peak']:.0f}% | {r['matmul_peak_around']:.0f} | {r['pct_matmul_peak_around']:.0f}% |"
        )
    for r in rows:
        if not any("block_ms" in x for x in r["per_resolution"]):
            continue
        print(f"\nper resolution, size {r['size']} batch {r['batch']} {r['impl']} {r['dtype']} "
              "(block: two styled convs + ToRGB; floor: transposed conv + blur + 3×3 conv)\n")
        print("| resolution | block ms | floor ms | × floor | transposed 3×3 s2 | blur 4×4 | conv 3×3 |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for x in r["per_resolution"]:
            o = x["floor_ops_ms"]
            cells = [f"{o[k]:.1f}" if k in o else "-" for k in ("transposed 3×3 s2", "blur 4×4", "conv 3×3")]
            print(f"| {x['resolution']} | {x.get('block_ms', float('nan')):.1f} | {x['floor_ms']:.1f} "
                  f"| {x.get('ratio', float('nan')):.2f} | " + " | ".join(cells) + " |")
    if args.json:
        payload = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
            "peaks_gflops": peaks,
            "peaks_before": peaks_before,
            "peaks_after": peaks_after,
            "rows": rows,
        }
        path = Path(args.json)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
