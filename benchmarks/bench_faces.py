"""The face-crop stage: one decode feeding two consumers against a decode for each.

An inverted input needs its aligned face crops twice, for the encoder (pSp: 256 px) and for the
dynamics encoder (ffhq preset: 256 px). ``vsode.align.face_batches`` gives both from one decode of
the video; this measures that against two decodes, as the pipeline did before, on a generated
1080p clip with a fixed alignment track (a 600 px face quad), so no detector is involved.

    python benchmarks/bench_faces.py                       # 5 s of 1080p at 29.97 fps, 256 px crops
    python benchmarks/bench_faces.py --seconds 10 --threads 2

Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--crop", type=int, default=256, help="crop side for both consumers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch

    from vsode.align import Track, face_batches
    from vsode.video import ffmpeg_exe, probe

    torch.set_num_threads(args.threads)
    clip = Path(tempfile.mkdtemp(prefix="vsode-bench-faces-")) / "in.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30000/1001:duration={args.seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True)
    info = probe(clip)
    n = info.frame_count
    quad = np.array([[660.0, 240.0], [660.0, 840.0], [1260.0, 840.0], [1260.0, 240.0]])
    track = Track(frame_size=(1920, 1080), landmarks=(None,) * n, quads=np.repeat(quad[None], n, 0))

    def seconds(passes: list[list[int]]) -> float:
        start = time.perf_counter()
        for sizes in passes:
            for _ in face_batches(clip, info, track, sizes=sizes, batch_size=args.batch_size):
                pass
        return time.perf_counter() - start

    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s); {n} frames of 1080p, "
          f"two {args.crop} px aligned crops per frame")
    print("| run | one decode s | two decodes s | ratio |")
    print("|---|---|---|---|")
    for k in range(args.repeats):
        one = seconds([[args.crop, args.crop]])
        two = seconds([[args.crop], [args.crop]])
        print(f"| {k + 1} | {one:.2f} | {two:.2f} | x{two / one:.2f} |")


if __name__ == "__main__":
    main()
