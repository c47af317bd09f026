#!/usr/bin/env python3
"""Train the demo world's motion regressor from scratch: the command that reproduces the shipped one.

    python scripts/train_demo_regressor.py --out vsode/assets/demo --seed 0

Writes ``regressor-demo.pt`` (``vsode/demo-regressor@1``, fp16) and ``regressor-demo.json`` (held-out
accuracy, seed, options, command, wall time, the file's size and SHA-256) into ``--out``; prints the
JSON on stdout and progress on stderr. Runs on one CPU thread by default (``--threads``): the
weights are bit-identical for the same seed, torch build and thread count.
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

from vsode.demo.regressor import RegressorTraining, train_regressor  # noqa: E402
from vsode.errors import VsodeError  # noqa: E402
from vsode.fileio import atomic_write_bytes, save_torch  # noqa: E402
from vsode.progress import LineProgress  # noqa: E402

NAME = "regressor-demo"


def main(argv: list[str] | None = None) -> int:
    defaults = RegressorTraining()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {NAME}.pt and {NAME}.json")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    for field in dataclasses.fields(RegressorTraining):  # the flags are RegressorTraining's fields
        default = getattr(defaults, field.name)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default,
                            help=f"default {default}")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    options = RegressorTraining(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RegressorTraining)})
    command = "python scripts/train_demo_regressor.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        model, metrics = train_regressor(options, progress=LineProgress())
    except VsodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    wall = time.perf_counter() - start

    path = args.out / f"{NAME}.pt"
    save_torch(model.checkpoint(extra={"training": {"seed": options.seed, "steps": options.steps}}), path)
    record = {
        "format": "vsode/demo-regressor-metrics@1",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
        "command": command,
        "seed": options.seed,
        "options": dataclasses.asdict(options),
        "threads": args.threads,
        "wall_seconds": round(wall, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "metrics": metrics,
    }
    text = json.dumps(record, indent=2) + "\n"
    atomic_write_bytes(args.out / f"{NAME}.json", text.encode())
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
