#!/usr/bin/env python3
"""Fit the shipped demo model's prior (what `vsode generate` samples) on its own training set.

    python scripts/fit_demo_prior.py --model vsode/assets/demo/vidstyleode-demo.pt --seed 0

Renders the demo-world training set exactly as ``scripts/train_demo_model.py`` does for the same
``--seed``, ``--videos``, ``--frames`` and ``--fps`` (so the clips are the ones the model was
trained on), prepares it with ``vsode prepare`` (the built-in ``psp-demo``), and runs ``vsode
fit-prior`` on the model file in place: its weights and records stay as they were, the prior is
added (or replaced). Then it updates the model's metrics JSON beside it (``prior``: the command,
the summary; ``sha256`` and ``bytes`` of the new file).

A model trained by ``scripts/train_demo_model.py`` today gets its prior from ``vsode train``
itself; this script is for the shipped one, trained before priors existed. The JSON goes to stdout,
progress to stderr; one CPU thread by default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# the same child-process runner as the training script's (one vsode command, its --json result)
from train_demo_model import _say, _vsode  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the demo model file, updated in place")
    parser.add_argument("--seed", type=int, default=0, help="the seed the model's training set was rendered with")
    parser.add_argument("--videos", type=int, default=240, help="training clips (default 240)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    parser.add_argument("--fps", default="24", help="frame rate of the clips (default 24)")
    parser.add_argument("--components", type=int, default=16, help="principal directions kept (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the rendered and prepared clips here")
    args = parser.parse_args(argv)

    from vsode.demo.dataset import write_dataset
    from vsode.fileio import atomic_write_bytes

    with tempfile.TemporaryDirectory(prefix="vsode-demo-prior-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips, data = work / "clips", work / "data"
        if not (clips / "dataset.json").exists():
            _say(f"rendering {args.videos} clips of {args.frames} frames at {args.fps} fps")
            write_dataset(clips, n_videos=args.videos, n_frames=args.frames, fps=args.fps, size=64,
                          seed=args.seed, val_fraction=0.05, irregular=False)
        _vsode(["prepare", str(clips), "--output", str(data), "--device", "cpu"], args.threads)
        summary = _vsode(["fit-prior", str(args.model), str(data), "--output", str(args.model), "--force",
                          "--components", str(args.components)], args.threads)

    blob = args.model.read_bytes()
    command = f"python scripts/fit_demo_prior.py --model {args.model.as_posix()} --seed {args.seed}"
    for flag, default in (("videos", 240), ("frames", 48), ("fps", "24"), ("components", 16)):
        if getattr(args, flag) != default:
            command += f" --{flag} {getattr(args, flag)}"
    metrics_path = args.model.with_suffix(".json")
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics.update({"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)})
    metrics["prior"] = {"command": command, "seed": args.seed,
                        "data": {"videos": args.videos, "frames": args.frames, "fps": args.fps, "split": "train"},
                        **{k: summary[k] for k in ("clips", "motion_gain", "motion_limit", "calibration", "motion", "content")}}
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write_bytes(metrics_path, text.encode(), force=True)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
