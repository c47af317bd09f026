"""Time the StyleGAN2 generator (vsode.stylegan2) against this machine's matmul peak.

Each case renders W+ batches with random weights in the real layout (``Generator(size)``, config-f
channels) and reports ms/frame and the achieved GFLOP/s, with the FLOPs counted analytically
(convolutions, transposed convolutions, blurs, ToRGB, skip upsampling, modulation). The fp32 and
bf16 matmul peaks (``torch.matmul``, 2048²) are measured in the same run, before and after the
cases, and the fractions use the better of the two. A oneDNN 1×1-convolution peak is reported as
well: on CPUs where MKL's sgemm is not the fastest GEMM (AMD), convolutions can beat "the" matmul
peak.

    python benchmarks/bench_generator.py                      # 256 and 1024, batch 1 and 8 (no 1024×8)
    python benchmarks/bench_generator.py --sizes 256 --batches 1 --repeats 2
    python benchmarks/bench_generator.py --with-1024-b8 --json out.json
    python benchmarks/bench_generator.py --thp               # re-run with THP_MEM_ALLOC_ENABLE=1

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    p.add_argument("--impls", nargs="+", choices=["fast", "reference"], default=["fast"])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (best is reported)")
    p.add_argument("--budget", type=float, default=60.0, help="stop repeating a case after this many seconds")
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
                    with torch.no_grad():
                        best, times = _best(
                            lambda: g.synthesize(w, impl=impl, dtype=dtype), args.repeats, args.budget
                        )
                    rows.append(
                        {
                            "size": size,
                            "batch": batch,
                            "impl": impl,
                            "dtype": name,
                            "ms_per_frame": best / batch * 1e3,
                            "gflop_per_frame": flops / batch / 1e9,
                            "gflops": flops / best / 1e9,
                            "runs_s": times,
                            "matmul_peak_around": max(around, matmul_peak(dtype, repeats=3)),
                        }
                    )
                    print(
                        f"size {size} batch {batch} {impl} {name}: {best / batch * 1e3:.0f} ms/frame",
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
        "| size | batch | impl | dtype | ms/frame | GFLOP/frame | GFLOP/s | % matmul peak "
        "| % 1×1-conv peak | matmul peak around the case | % of that |"
    )
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['batch']} | {r['impl']} | {r['dtype']} | {r['ms_per_frame']:.0f} "
            f"| {r['gflop_per_frame']:.1f} | {r['gflops']:.0f} | {r['pct_matmul_peak']:.0f}% "
            f"| {r['pct_conv_peak']:.0f}% | {r['matmul_peak_around']:.0f} | {r['pct_matmul_peak_around']:.0f}% |"
        )
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
