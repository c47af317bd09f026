#!/usr/bin/env python3
"""Score a VidStyleODE with `vsode demo` on several seeds: a table of every figure per seed and the mean.

    python scripts/score_demo_seeds.py --seeds 0-3
    python scripts/score_demo_seeds.py --seeds 0-3 --model runs/demo/model.pt --json > scores.json

Each seed renders another source, driver and portrait and runs every application on them, as
``vsode demo --seed N --seconds 2 --fps 12 --size 64`` would (those are the defaults here: the
figures of the README's table "The demo model"). A single seed's animate and blend-motion
correlations can change sign from seed to seed for the same model, so compare models on the mean.

The summary's interpolation (8 -> 24 and 3 -> 24 fps) and extrapolation figures: the output's PSNR,
the baselines built from the decoded input video (``<name>_psnr_db``) and from the true frames
(``<name>_upper_bound_psnr_db``), the model-free control (the input's inversions lerped or held)
and ``ode_gain_db``, the output minus the control. Besides, each seed gets
``gain_over_content_code_db`` (interpolation), ``gain_over_repeat_last_db`` (extrapolation) and,
per edit, ``clean``: at least 90 % of the frames read as the prompted value and at least 90 % keep
every other attribute. The mean row counts the
seeds in which an edit is clean. Progress lines go to stderr; the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsode.demo.seeds import parse_seeds, score_seeds, table  # noqa: E402
from vsode.demo.showcase import DemoOptions  # noqa: E402
from vsode.errors import VsodeError  # noqa: E402
from vsode.options import DEFAULT_MODEL  # noqa: E402
from vsode.progress import LineProgress, Progress  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-3", help="seeds like 0-3 or 0,2,5 (default 0-3)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name or model file (default: the shipped demo model)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    parser.add_argument("--fps", default="12", help="clip frame rate (default 12)")
    parser.add_argument("--size", type=int, default=64, help="video side in pixels (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--anchor", default="inversion", help="inversion (default) or none: the paper's reconstruction")
    parser.add_argument("--tune", type=int, default=0, help="pivotal-tuning steps for the applications' inputs (default 0)")
    parser.add_argument("--detail", default="none", help="the interpolations' --detail: none (default) or input")
    parser.add_argument("--keep", type=Path, help="keep each seed's demo in KEEP/seed-N (default: removed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    try:
        options = DemoOptions(seconds=args.seconds, fps=Fraction(args.fps), size=args.size, model=args.model,
                              threads=args.threads, force=True, anchor=args.anchor, tune=args.tune,
                              detail=args.detail)
        result = score_seeds(parse_seeds(args.seeds), options, out_dir=args.keep,
                             progress=Progress() if args.quiet else LineProgress())
    except (VsodeError, ValueError, ZeroDivisionError) as err:
        print(f"score_demo_seeds: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {result['model'].get('name')} ({result['model'].get('path')})")
        print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
