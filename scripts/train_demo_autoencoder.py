#!/usr/bin/env python3
"""Train the demo world's StyleGAN2 generator and pSp encoder from scratch: the one command that
reproduces the shipped weights.

    python scripts/train_demo_autoencoder.py --out vsode/assets/demo --seed 0

Writes ``stylegan2-demo.pt``, ``psp-demo.pt`` and ``autoencoder-demo.json`` (held-out PSNR, seed,
options, command, wall time, SHA-256 of both files) into ``--out``, plus the run's
``config.json`` and ``stats.jsonl`` in ``--run-dir``. Progress goes to stderr, the metrics JSON
to stdout. One CPU thread for torch by default (``--threads``) plus a render worker process; the
same seed, thread count and torch build give the same files. About 41 minutes on the reference
machine (2 cores; held-out PSNR 31.16 dB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsode.demo.backbones import (
    ASSETS_DIR,
    METRICS_FILE,
    AutoencoderOptions,
    train_demo_autoencoder,
)  # noqa: E402
from vsode.errors import VsodeError  # noqa: E402


def _flag_type(value: object):
    if isinstance(value, bool):
        return lambda s: s.lower() in ("1", "true", "yes")
    return type(value)


def main(argv: list[str] | None = None) -> int:
    defaults = AutoencoderOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ASSETS_DIR, help=f"weights + metrics (default {ASSETS_DIR})"
    )
    run_default = Path(tempfile.gettempdir()) / "vsode-demo-autoencoder"
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=run_default,
        help=f"config.json + stats.jsonl (default {run_default})",
    )
    for field in dataclasses.fields(AutoencoderOptions):
        default = getattr(defaults, field.name)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=int if field.name == "threads" else _flag_type(default),
            default=default,
            help=f"default {default}",
        )
    args = parser.parse_args(argv)
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(AutoencoderOptions)}
    command = "python scripts/train_demo_autoencoder.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )

    def log(entry: dict) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {json.dumps(entry)}", file=sys.stderr, flush=True)

    try:
        metrics = train_demo_autoencoder(
            args.out, run_dir=args.run_dir, log=log, command=command.strip(), **options
        )
    except VsodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(metrics, indent=2))
    print(
        f"held-out PSNR {metrics['psnr_mean_db']:.2f} dB (mean of {metrics['held_out_images']}), "
        f"wall {metrics['wall_s'] / 60:.1f} min; wrote {args.out / METRICS_FILE}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
