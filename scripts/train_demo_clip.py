#!/usr/bin/env python3
"""Train the demo world's CLIP from scratch: the one command that reproduces the shipped weights.

    python scripts/train_demo_clip.py --out vsode/assets/demo/clip-demo.pt --seed 0

Writes the checkpoint (``vsode/clip@1``, fp16) and, beside it, ``<name>.json`` with the metrics
(zero-shot accuracy per attribute on held-out renders), seed, options, command, wall time and the
file's SHA-256; prints the same JSON on stdout and progress on stderr. Runs on one CPU thread by
default (``--threads``): the weights are bit-identical for the same seed, torch build and thread
count.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vsode.demo.clip_train import DemoClipOptions, train_demo_clip  # noqa: E402
from vsode.errors import VsodeError  # noqa: E402
from vsode.fileio import atomic_write_bytes  # noqa: E402
from vsode.progress import LineProgress  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    defaults = DemoClipOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    for field in dataclasses.fields(DemoClipOptions):  # the flags are train_demo_clip's keywords
        default = getattr(defaults, field.name)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default,
                            help=f"default {default}")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(DemoClipOptions)}
    start = time.perf_counter()
    try:
        metrics = train_demo_clip(args.out, progress=LineProgress(), **options)
    except VsodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    wall = time.perf_counter() - start

    record = {
        "file": args.out.name,
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "bytes": args.out.stat().st_size,
        "command": "python scripts/train_demo_clip.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "options": options,
        "threads": args.threads,
        "wall_seconds": round(wall, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "metrics": metrics,
    }
    text = json.dumps(record, indent=2) + "\n"
    atomic_write_bytes(args.out.with_suffix(".json"), text.encode())
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
