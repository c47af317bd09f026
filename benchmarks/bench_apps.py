"""Peak memory and per-stage speed of the applications (vsode.api) for short and long outputs.

Each case runs in a fresh child process (so its peak RSS is its own): ``edit`` of a 10 s and a
60 s input (output as long as the input), and ``extrapolate --only-new`` of 10 s and 60 s from
the same 2 s input (only the output grows). The model is the ``demo`` preset with random weights
and the built-in demo backbones (64 px generator), unless ``--model`` names a trained one; inputs
are testsrc2 clips with a sine track, made by ffmpeg. The inversion cache is private to the run,
so every case inverts its input.

    python benchmarks/bench_apps.py                          # edit + extrapolate, 10 s and 60 s, 25 fps, 256 px input
    python benchmarks/bench_apps.py --seconds 10 60 --threads 1 --json out.json
    python benchmarks/bench_apps.py --commands edit --seconds 5 --device cuda
    python benchmarks/bench_apps.py --commands edit --seconds 10 --size 64 --compare-decode   # one crop pass vs two

Printed: one markdown row per case with the peak RSS, the RSS growth from 10 s to 60 s, and
frames/s of every stage (inversion, dynamics encoding, ODE solve, tokens, modulation + mapper,
synthesis, writing). ``--compare-decode`` runs every edit twice, with the inversion's decode
feeding the dynamics encoder (the default) and with a crop pass of its own for each (as before),
and prints the two wall times and their ratio (a 64 px input: the size at which a centre square
can be shared with the demo model; aligned faces always share). Not a test: numbers depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("invert", "dynamics", "solve", "tokens", "modulation+mapper", "synthesize", "write")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_clip(path: Path, seconds: float, fps: str, size: int) -> Path:
    from vsode.video import ffmpeg_exe

    if not path.exists():
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={size}x{size}:rate={fps}:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
            check=True,
        )  # fmt: skip
    return path


def demo_model(path: Path) -> Path:
    import vsode.model as M

    if not path.exists():
        model = M.build_model("demo", seed=0)
        model.backbone_refs = {
            k: M.backbone_ref(k, name)
            for k, name in (("generator", "stylegan2-demo"), ("encoder", "psp-demo"), ("clip", "clip-demo"))
        } | {"dino": None}
        M.save_model(model, path)
    return path


def child(args: argparse.Namespace) -> None:
    """One case, in this process: print {"rss_start", "rss_peak", "wall", "result"} as JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from vsode import api
    from vsode.options import EditOptions, ExtrapolateOptions

    if args.separate_decode:  # the dynamics take a crop pass of their own
        import vsode.invert

        vsode.invert.shares_decode = lambda *a: False
    start = _rss_mb()
    common = dict(model=args.model, device=args.device, batch_size=args.batch_size, precision=args.precision,
                  force=True)
    t0 = time.perf_counter()
    if args.command == "edit":
        result = api.edit(args.input, EditOptions(prompts=("blue eyes",), **common), outputs=[args.output])
    else:
        result = api.extrapolate(args.input, ExtrapolateOptions(seconds=args.length, only_new=True, **common),
                                 output=args.output)
    wall = time.perf_counter() - t0
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({"rss_start": start, "rss_peak": _rss_mb(), "cuda_peak": peak_cuda, "wall": wall,
                      "result": result.to_dict()}))


def _pre(row: dict) -> float:
    """Seconds before rendering: the ``dynamics input`` stage, which holds the inversion too."""
    return row["timings"].get("dynamics input", {}).get("seconds", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", nargs="+", default=["edit", "extrapolate"], choices=["edit", "extrapolate"])
    parser.add_argument("--seconds", nargs="+", type=float, default=[10, 60])
    parser.add_argument("--fps", default="25")
    parser.add_argument("--size", type=int, default=256, help="input frame side in pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--model", default=None, help="trained VidStyleODE (default: random demo preset)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--compare-decode", action="store_true",
                        help="run each edit with one shared crop pass and with separate passes; print both")
    # child mode
    parser.add_argument("--separate-decode", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--command", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vsode-bench-apps-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or str(demo_model(work / "demo-random.pt"))
    rows = []
    variants = (False, True) if args.compare_decode else (False,)
    for command in args.commands:
        for seconds, separate in ((s, v) for s in args.seconds for v in variants):
            if command == "edit":
                source = make_clip(work / f"in-{seconds:g}s.mp4", seconds, args.fps, args.size)
            else:
                source = make_clip(work / "in-2s.mp4", 2, args.fps, args.size)
            out = work / f"out-{command}-{seconds:g}s.mp4"
            cmd = [sys.executable, __file__, "--child", "--command", command, "--input", str(source),
                   *(["--separate-decode"] if separate else []),
                   "--output", str(out), "--length", str(seconds), "--model", model, "--device", args.device,
                   "--batch-size", str(args.batch_size), "--precision", args.precision, "--threads", str(args.threads)]
            # a cache per case: every case inverts its input
            env = dict(os.environ, VSODE_CACHE_DIR=str(work / f"cache-{command}-{seconds:g}-{separate}"),
                       PYTHONPATH=str(ROOT))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"{command} {seconds:g}s failed:\n{proc.stderr[-3000:]}")
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            output = data["result"]["outputs"][0]
            rows.append({"command": command + (" (separate decodes)" if separate else ""), "seconds": seconds,
                         "frames": output["frames"],
                         "rss_peak_mb": round(data["rss_peak"], 1), "rss_start_mb": round(data["rss_start"], 1),
                         "cuda_peak_mb": data["cuda_peak"], "wall_s": round(data["wall"], 2),
                         "nfe": data["result"]["nfe"], "timings": data["result"]["timings"]})
            print(f"# {command} {seconds:g} s: done in {data['wall']:.1f} s", file=sys.stderr)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, device {args.device}, "
          f"threads {args.threads or 'default'}, batch {args.batch_size}, {args.precision}, input {args.size}px "
          f"{args.fps} fps\n")
    header = ["command", "output s", "frames", "peak RSS MB", "Δ vs first", "wall s", "nfe", *[f"{s} fps" for s in STAGES]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    first: dict[str, float] = {}
    for row in rows:
        base = first.setdefault(row["command"], row["rss_peak_mb"])
        speeds = [str(row["timings"].get(s, {}).get("fps", "-")) for s in STAGES]
        print(f"| {row['command']} | {row['seconds']:g} | {row['frames']} | {row['rss_peak_mb']} | "
              f"{row['rss_peak_mb'] - base:+.1f} | {row['wall_s']} | {row['nfe']} | " + " | ".join(speeds) + " |")
    if args.compare_decode:
        for shared, separate in zip(rows[::2], rows[1::2]):
            print(f"{shared['command']} {shared['seconds']:g} s: one crop pass {shared['wall_s']} s, separate "
                  f"{separate['wall_s']} s (x{separate['wall_s'] / shared['wall_s']:.2f}); invert + dynamics "
                  f"{_pre(shared):.2f} s vs {_pre(separate):.2f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
