#!/usr/bin/env python3
"""Train the demo world's VidStyleODE from scratch: the command that reproduces the shipped one.

    python scripts/train_demo_model.py --out vsode/assets/demo --seed 0

Renders a demo-world training set (``--videos`` clips of ``--frames`` frames at ``--fps``),
inverts it with ``vsode prepare`` (the built-in ``psp-demo``), runs ``vsode train --preset demo``
on it with the preset's losses and schedules, and writes into ``--out``:

- ``vidstyleode-demo.pt``: the trained ``vsode/vidstyleode@1`` checkpoint (fp32; the training
  record keeps the options and step, not the temporary data path, so the bytes are reproducible);
- ``vidstyleode-demo.json``: the command, seed, options, wall time, the held-out validation
  figures next to the static baseline (every frame = the mean content code), size and SHA-256.

The JSON goes to stdout, progress to stderr. Everything runs on one CPU thread (``--threads``):
for the same seed, torch build and thread count the checkpoint is bit-identical. ``--keep DIR``
keeps the dataset and the run folder there instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsode.progress import LineProgress  # noqa: E402

NAME = "vidstyleode-demo"
_say = LineProgress().log


def _vsode(args: list[str], threads: int) -> dict:
    """Run one vsode command in a child process with ``threads`` torch threads; its --json result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    _say("vsode " + shlex.join(args))
    done = subprocess.run([sys.executable, "-m", "vsode", *args, "--json"], env=env, stdout=subprocess.PIPE,
                          check=False)
    if done.returncode:
        raise SystemExit(f"vsode {args[0]} failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {NAME}.pt and {NAME}.json")
    parser.add_argument("--seed", type=int, default=0, help="renders the training set and seeds training")
    parser.add_argument("--videos", type=int, default=240, help="training clips to render (default 240)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    parser.add_argument("--fps", default="24", help="frame rate of the clips (default 24)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `vsode train --set` overrides (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--keep", type=Path, help="keep the dataset and run folder here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from vsode.demo.dataset import write_dataset
    from vsode.fileio import atomic_write_bytes
    from vsode.model import load_model, save_model

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vsode-demo-model-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips, data, run = work / "clips", work / "data", work / "run"
        if not (clips / "dataset.json").exists():
            _say(f"rendering {args.videos} clips of {args.frames} frames at {args.fps} fps")
            write_dataset(clips, n_videos=args.videos, n_frames=args.frames, fps=args.fps, size=64,
                          seed=args.seed, val_fraction=0.05, irregular=False)
        _vsode(["prepare", str(clips), "--output", str(data), "--device", "cpu"], args.threads)
        train_args = ["train", str(data), "--output", str(run), "--preset", "demo", "--device", "cpu",
                      "--max-steps", str(args.steps), "--seed", str(args.seed), "--sample-every", "0"]
        for pair in args.sets:
            train_args += ["--set", pair]
        result = _vsode(train_args, args.threads)
        wall = time.perf_counter() - started

        model = load_model(run / "model.pt", backbones=False)
        stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line]
        record = {"step": result["step"], "preset": "demo", "seed": args.seed, "steps": args.steps,
                  "sets": list(args.sets)}
        args.out.mkdir(parents=True, exist_ok=True)
        path = save_model(model, args.out / f"{NAME}.pt", force=True, extra={"training": record})

    blob = path.read_bytes()
    validations = [{"step": s["step"], **s["val"]} for s in stats if "val" in s]
    command = "python scripts/train_demo_model.py --out vsode/assets/demo --seed " + str(args.seed)
    if args.steps != 2000:
        command += f" --steps {args.steps}"
    if args.videos != 240:
        command += f" --videos {args.videos}"
    if args.frames != 48:
        command += f" --frames {args.frames}"
    if args.fps != "24":
        command += f" --fps {args.fps}"
    for pair in args.sets:
        command += f" --set {shlex.quote(pair)}"
    report = {
        "format": "vsode/demo-model-metrics@1",
        "file": path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "command": command,
        "seed": args.seed,
        "data": {"videos": args.videos, "frames": args.frames, "fps": args.fps, "size": 64},
        "train": {"preset": "demo", "steps": args.steps, "sets": list(args.sets)},
        "threads": args.threads,
        "wall_seconds": round(wall, 1),
        "machine": {"cpu": platform.machine(), "python": platform.python_version(), "torch": torch.__version__},
        "validation": validations[-1] if validations else None,
        "validation_curve": validations,
    }
    text = json.dumps(report, indent=2) + "\n"
    atomic_write_bytes(args.out / f"{NAME}.json", text.encode())
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
