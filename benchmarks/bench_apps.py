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
    python benchmarks/bench_apps.py --preset ffhq --threads 1    # full size: edit of 5 s and 20 s of 1080p

``--preset ffhq`` is the application at full size: random weights in the real layouts (the
StyleGAN2 1024 generator, the pSp IR-SE-50 encoder, CLIP ViT-B/32 and the ffhq VidStyleODE;
see :func:`ffhq_model`), ``edit`` at bf16 of a generated 1920×1080 29.97 fps clip with audio,
5 s and 20 s by default. The face detector (MTCNN) runs on every frame; as the generated clip has
no face, a fixed 600 px face stands in for its empty answer, so alignment, the aligned crops and
the paste-back do their full-size work. It prints seconds and frames/s of every stage the
application records, the whole edit as a multiple of its synthesis, and the peak RSS growth.

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
import shutil
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


def make_clip(path: Path, seconds: float, fps: str, size: int | tuple[int, int]) -> Path:
    from vsode.video import ffmpeg_exe

    width, height = (size, size) if isinstance(size, int) else size
    if not path.exists():
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
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


def ffhq_model(work: Path) -> Path:
    """The ffhq preset with random weights, naming random backbones in the real layouts.

    Written once into ``work``: ``stylegan2-1024.pt`` (rosinality's ``{"g_ema", "latent_avg"}``
    of ``Generator(1024)``, config-f), ``psp-ffhq.pt`` (pSp's ``{"state_dict": encoder.*,
    "opts", "latent_avg"}`` on IR-SE-50, 18 heads; no ``decoder.*``, which ``edit`` never reads),
    ``clip-vit-b-32.pt`` (open_clip's plain state dict of ``ViT-B-32-quickgelu``) and the
    VidStyleODE (``build_model("ffhq")``) whose backbone references point at them.
    """
    import torch

    import vsode.model as M
    from vsode.encoders import GradualStyleEncoder
    from vsode.stylegan2 import Generator

    path = work / "ffhq-random.pt"
    if path.exists():
        return path
    torch.manual_seed(0)
    files = {"generator": work / "stylegan2-1024.pt", "encoder": work / "psp-ffhq.pt",
             "clip": work / "clip-vit-b-32.pt"}
    g = Generator(1024)
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.randn(512) * 0.1}, files["generator"])
    net = GradualStyleEncoder(18)
    for m in net.modules():  # BN statistics of a trained net, roughly: keep 24 units finite
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(4.0)
    opts = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0, "output_size": 1024,
            "learn_in_w": False, "start_from_latent_avg": True, "n_styles": 18}
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in net.state_dict().items()}, "opts": opts,
                "latent_avg": torch.randn(18, 512) * 0.1}, files["encoder"])
    import open_clip

    clip = open_clip.create_model("ViT-B-32-quickgelu")  # random init: nothing is downloaded
    torch.save(clip.state_dict(), files["clip"])
    model = M.build_model("ffhq", seed=0)
    # a path is its own name (a ref records the file's base name, which resolves only in a cache)
    model.backbone_refs = {k: M.backbone_ref(k, str(f)) | {"name": str(f.resolve())} for k, f in files.items()}
    model.backbone_refs["dino"] = None
    M.save_model(model, path)
    return path


# A fixed face in 1080p frames (eyes and mouth corners, pixels): a 600 px FFHQ quad around the
# centre, where the generated clip has no face for the detector to find.
FIXED_FACE = ((840.0, 470.0), (1080.0, 470.0), (870.0, 720.0), (1050.0, 720.0))


def _fixed_face_fallback() -> None:
    """Run the real detector on every frame, and answer a fixed face where it finds none."""
    from vsode.align.landmarks import FaceLandmarks, MTCNNLandmarker

    detect = MTCNNLandmarker.detect

    def detect_or_fixed(self, frames):  # type: ignore[no-untyped-def]
        found = detect(self, frames)
        h, w = frames.shape[2:]
        sx, sy = w / 1920, h / 1080
        face = FaceLandmarks(points=tuple((x * sx, y * sy) for x, y in FIXED_FACE),
                             box=(700 * sx, 300 * sy, 1220 * sx, 860 * sy), score=1.0)
        return [faces or [face] for faces in found]

    MTCNNLandmarker.detect = detect_or_fixed


def child(args: argparse.Namespace) -> None:
    """One case, in this process: print {"rss_start", "rss_peak", "wall", "result"} as JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from vsode import api
    from vsode.options import EditOptions, ExtrapolateOptions

    if args.preset == "ffhq":
        _fixed_face_fallback()
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


_ORDER = ("load", "decode", "detect", "align", "crop", "encode", "invert", "dynamics", "solve", "anchor",
          "tokens", "modulation", "style", "synthesize", "paste", "write", "render")


def _order(stage: str) -> tuple[int, str]:
    """Pipeline order for the stage table: the first of _ORDER that the name contains."""
    return next((i for i, key in enumerate(_ORDER) if key in stage), len(_ORDER)), stage


def _pre(row: dict) -> float:
    """Seconds before rendering: the ``dynamics input`` stage, which holds the inversion too."""
    return row["timings"].get("dynamics input", {}).get("seconds", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=["demo", "ffhq"], default="demo",
                        help="demo: the demo preset at 64 px; ffhq: full size (1024 px generator, pSp, CLIP "
                             "ViT-B/32) on 1080p input. Defaults below are per preset (demo / ffhq)")
    parser.add_argument("--commands", nargs="+", default=None, choices=["edit", "extrapolate"],
                        help="default: edit extrapolate / edit")
    parser.add_argument("--seconds", nargs="+", type=float, default=None, help="default: 10 60 / 5 20")
    parser.add_argument("--fps", default=None, help="default: 25 / 30000/1001")
    parser.add_argument("--size", default=None, help="input frame side, or WxH (default: 256 / 1920x1080)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default=None, help="default: fp32 / bf16")
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
    full = args.preset == "ffhq"
    args.commands = args.commands or (["edit"] if full else ["edit", "extrapolate"])
    args.seconds = args.seconds or ([5, 20] if full else [10, 60])
    args.fps = args.fps or ("30000/1001" if full else "25")
    args.size = args.size or ("1920x1080" if full else "256")
    args.precision = args.precision or ("bf16" if full else "fp32")
    size = tuple(int(v) for v in args.size.split("x")) if "x" in args.size else int(args.size)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vsode-bench-apps-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or str(ffhq_model(work) if full else demo_model(work / "demo-random.pt"))
    rows = []
    variants = (False, True) if args.compare_decode else (False,)
    for command in args.commands:
        for seconds, separate in ((s, v) for s in args.seconds for v in variants):
            if command == "edit":
                source = make_clip(work / f"in-{seconds:g}s-{args.size}.mp4", seconds, args.fps, size)
            else:
                source = make_clip(work / f"in-2s-{args.size}.mp4", 2, args.fps, size)
            out = work / f"out-{command}-{seconds:g}s.mp4"
            cmd = [sys.executable, __file__, "--child", "--preset", args.preset, "--command", command,
                   "--input", str(source),
                   *(["--separate-decode"] if separate else []),
                   "--output", str(out), "--length", str(seconds), "--model", model, "--device", args.device,
                   "--batch-size", str(args.batch_size), "--precision", args.precision, "--threads", str(args.threads)]
            # a cache per case, emptied first: every case inverts its input, also in a kept --workdir
            cache = work / f"cache-{command}-{seconds:g}-{separate}"
            shutil.rmtree(cache, ignore_errors=True)
            env = dict(os.environ, VSODE_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
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
    if full:
        stages = sorted({k for row in rows for k in row["timings"]}, key=lambda k: _order(k))
        print("\nseconds (frames/s) per stage, as the applications record them:\n")
        print("| stage | " + " | ".join(f"{r['command']} {r['seconds']:g} s" for r in rows) + " |")
        print("|---|" + "---:|" * len(rows))
        for k in stages:
            cells = []
            for r in rows:
                t = r["timings"].get(k)
                cells.append("-" if t is None else f"{t['seconds']:.1f}" + (f" ({t['fps']:g})" if "fps" in t else ""))
            print(f"| {k} | " + " | ".join(cells) + " |")
        for r in rows:
            synth = r["timings"].get("synthesize", {}).get("seconds")
            if synth:
                print(f"{r['command']} {r['seconds']:g} s: the whole edit {r['wall_s']} s = x{r['wall_s'] / synth:.2f} "
                      f"its synthesis ({synth:.1f} s)")
        if len(rows) > 1:
            print(f"peak RSS {rows[0]['rss_peak_mb']} MB at {rows[0]['seconds']:g} s -> {rows[-1]['rss_peak_mb']} MB "
                  f"at {rows[-1]['seconds']:g} s ({rows[-1]['rss_peak_mb'] - rows[0]['rss_peak_mb']:+.1f} MB)")
    if args.compare_decode:
        for shared, separate in zip(rows[::2], rows[1::2]):
            print(f"{shared['command']} {shared['seconds']:g} s: one crop pass {shared['wall_s']} s, separate "
                  f"{separate['wall_s']} s (x{separate['wall_s'] / shared['wall_s']:.2f}); invert + dynamics "
                  f"{_pre(shared):.2f} s vs {_pre(separate):.2f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
