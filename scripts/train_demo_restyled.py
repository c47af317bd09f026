#!/usr/bin/env python3
"""Fine-tune the demo StyleGAN2 to a restyled demo world: the command that reproduces the shipped
``stylegan2-demo-poster``.

    python scripts/train_demo_restyled.py --out vsode/assets/demo --seed 0

The restyled world is the demo world posterised (:func:`vsode.demo.world.posterise`: every colour
channel snapped to 4 flat levels). Training pairs are made once: ``--images`` renders of training
faces (seeds below the held-out range), their W+ from the shipped ``psp-demo`` encoder, and the
posterised render as the target; and ``--mixes`` codes between those faces' (every W+ row its own
blend of two faces' rows, as the draws of a model's prior lie between its clips' codes), whose
target is the base generator's render of them, posterised. Only the synthesis network of
``stylegan2-demo`` is trained (MSE of G(W+) against the target, Adam); the mapping network and
``latent_avg`` are copied unchanged, so the W space is the base generator's, as with the real
fine-tunes (toonify and the like) that share it. Writes into ``--out``:

- ``stylegan2-demo-poster.pt``: ``{"g_ema", "latent_avg"}``, the layout of ``stylegan2-demo.pt``;
- ``stylegan2-demo-poster.json``: the command, seed, options, wall time, held-out figures (PSNR
  against the posterised truth, the palette distance of its renders and of the base generator's),
  size and SHA-256.

The JSON goes to stdout, progress to stderr. One CPU thread by default: the same seed, thread
count and torch build give the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vsode.progress import LineProgress  # noqa: E402

NAME = "stylegan2-demo-poster"
BASE = "stylegan2-demo"
ENCODER = "psp-demo"
_say = LineProgress().log


def _pairs(encoder, frames: torch.Tensor, levels: int, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """W+ of the frames (psp-demo) and their posterised targets in [-1, 1]."""
    from vsode.demo.regressor import resize
    from vsode.demo.world import posterise

    with torch.no_grad():
        w = torch.cat([encoder.encode(resize(frames[i : i + batch] * 2 - 1, encoder.input_size))
                       for i in range(0, frames.shape[0], batch)])
    return w, posterise(frames, levels) * 2 - 1


def _render(generator, w: torch.Tensor, batch: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([(generator.synthesize(w[i : i + batch], noise="const").clamp(-1, 1) + 1) / 2
                          for i in range(0, w.shape[0], batch)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {NAME}.pt and {NAME}.json")
    parser.add_argument("--seed", type=int, default=0, help="picks the training faces and seeds training")
    parser.add_argument("--images", type=int, default=1024, help="training renders (default 1024)")
    parser.add_argument("--mixes", type=int, default=1024,
                        help="extra training codes blended row by row from two faces' (default 1024)")
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps (default 1500)")
    parser.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--lr", type=float, default=0.002, help="learning rate (default 0.002)")
    parser.add_argument("--levels", type=int, default=4, help="posterisation levels per channel (default 4)")
    parser.add_argument("--eval-images", type=int, default=256, help="held-out renders scored (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vsode.checkpoints import resolve
    from vsode.demo.backbones import HELD_OUT_SEED, MAX_TIME, held_out_renders, render_samples
    from vsode.demo.scores import palette_distance
    from vsode.encoders import load_encoder
    from vsode.fileio import atomic_write_bytes, save_torch
    from vsode.stylegan2 import load_generator
    from vsode.train.losses import psnr

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    base = load_generator(resolve(BASE))
    generator = load_generator(resolve(BASE))
    encoder = load_encoder(resolve(ENCODER)).eval()

    _say(f"rendering and inverting {args.images} training faces")
    rng = np.random.default_rng([args.seed, 21])
    seeds = rng.integers(0, HELD_OUT_SEED, size=(2, args.images))
    frames = render_samples(seeds[0], seeds[1], rng.uniform(0, MAX_TIME, args.images))
    w, target = _pairs(encoder, frames, args.levels)
    if args.mixes:
        # codes between the faces' (each W+ row its own blend of two faces' rows), as a prior's draws
        # are, with the base generator's render of them posterised as the target
        from vsode.demo.world import posterise

        pick = torch.from_numpy(rng.integers(0, args.images, size=(2, args.mixes)))
        u = torch.from_numpy(rng.uniform(0, 1, size=(args.mixes, w.shape[1], 1))).float()
        mixed = w[pick[0]] + u * (w[pick[1]] - w[pick[0]])
        w = torch.cat([w, mixed])
        target = torch.cat([target, posterise(_render(base, mixed), args.levels) * 2 - 1])

    trained = [p for n, p in generator.named_parameters() if not n.startswith("style.")]  # the mapping stays
    generator.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    generator.train()
    optimiser = torch.optim.Adam(trained, lr=args.lr, betas=(0.0, 0.99))
    order = torch.Generator().manual_seed(args.seed)
    losses = []
    for step in range(1, args.steps + 1):
        pick = torch.randint(w.shape[0], (args.batch,), generator=order)
        out = generator.synthesize(w[pick], noise="const")
        loss = torch.nn.functional.mse_loss(out, target[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == 1:
            _say(f"step {step}/{args.steps}: mse {np.mean(losses[-100:]):.5f}")
    generator.eval().requires_grad_(False)

    _say(f"scoring on {args.eval_images} held-out renders")
    real = held_out_renders(args.eval_images)
    w_eval, truth = _pairs(encoder, real, args.levels)
    truth = (truth + 1) / 2
    restyled, unstyled = _render(generator, w_eval), _render(base, w_eval)
    mapping_kept = all(torch.equal(a, b) for (n, a), b in
                       zip(generator.state_dict().items(), base.state_dict().values()) if n.startswith("style."))
    metrics = {
        "psnr_vs_posterised_db": round(psnr(restyled, truth), 2),
        "base_psnr_vs_posterised_db": round(psnr(unstyled, truth), 2),
        "palette_distance": round(palette_distance(restyled, args.levels), 4),
        "base_palette_distance": round(palette_distance(unstyled, args.levels), 4),
        "true_palette_distance": round(palette_distance(real, args.levels), 4),
        "mapping_unchanged": mapping_kept,
    }

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.pt"
    state = {k: v.detach().clone().contiguous() for k, v in generator.state_dict().items()}
    save_torch({"g_ema": state, "latent_avg": base.latent_avg.clone()}, path)
    blob = path.read_bytes()
    command = f"python scripts/train_demo_restyled.py --out vsode/assets/demo --seed {args.seed}"
    for flag, default in (("images", 1024), ("mixes", 1024), ("steps", 1500), ("batch", 16), ("lr", 0.002), ("levels", 4)):
        if getattr(args, flag) != default:
            command += f" --{flag} {getattr(args, flag)}"
    report = {
        "format": "vsode/demo-restyled-metrics@1",
        "file": path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "base": BASE,
        "encoder": ENCODER,
        "style": f"posterised, {args.levels} levels per channel",
        "command": command,
        "seed": args.seed,
        "train": {"images": args.images, "mixes": args.mixes, "steps": args.steps, "batch": args.batch, "lr": args.lr,
                  "final_mse": round(float(np.mean(losses[-100:])), 5)},
        "held_out_images": args.eval_images,
        **metrics,
        "threads": args.threads,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpu": platform.machine(), "python": platform.python_version(), "torch": torch.__version__},
    }
    text = json.dumps(report, indent=2) + "\n"
    atomic_write_bytes(args.out / f"{NAME}.json", text.encode(), force=True)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
