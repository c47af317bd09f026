#!/usr/bin/env python3
"""Does a demo-preset VidStyleODE learn motion? A fast W+-only probe of the motion path.

    python scripts/train_demo_model.py --out /tmp/m --seed 0 --steps 1 --keep /tmp/demo-data
    python scripts/diagnose_demo_motion.py --data /tmp/demo-data/data --steps 600
    python scripts/diagnose_demo_motion.py --data /tmp/demo-data/data --tokens frames \\
        --set modulation.init_std=0.1 --set mapper.final_leaky=false

It trains only the W+ term of ``vsode train`` (MSE between the decoded W+ and each supervised
frame's own inversion; no rendering, so a step costs a fraction of a full one) with the
preset's batch, frame sampling and two Adam groups, and prints one JSON line every ``--every``
steps on stdout. The figure that matters is the *ratio*: the W+ error of the model over the W+
error of the motionless content code (the mean inversion of the frames), so 1.0 means the model
reproduces no motion at all and 0 means it reproduces every frame's inversion:

- ``train_ratio``: on the training batch of that step, before its update;
- ``val_ode`` / ``val_frames``: on whole held-out clips (every frame), decoded from the latent
  ODE (the model's own path) and from each frame's own encoder features used as the tokens
  (no ODE: what the modulation network and mapper can read from a frame when the ODE is
  bypassed); ``train_ode`` / ``train_frames``: the same on whole training clips;
- ``state_norm``: the ODE state's root-mean-square norm per grid cell on the held-out clips.

``--checkpoint FILE`` trains nothing: it scores a trained model (a ``vsode train`` state such as
``RUN/checkpoints/last.pt``, or a model file) once, with its own config, and prints one line.

``--tokens frames`` trains through the frame features instead of the ODE; ``--state-weight W``
adds ``W·|z_d(τ) − features(frame)|²`` (``vsode.train.losses.state_loss``, the training option
``state_lambda``). ``--set KEY=VALUE`` overrides the model config (e.g.
``modulation.init_std=0.1``, ``dynamics.zero_bias=true``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vsode.dynamics import time_major  # noqa: E402
from vsode.errors import InputError  # noqa: E402
from vsode.model import build_model, load_backbone, preset_config  # noqa: E402
from vsode.train.data import BinSampler, TrainData  # noqa: E402
from vsode.train.loop import TrainOptions  # noqa: E402
from vsode.train.losses import state_loss  # noqa: E402


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: write KEY=VALUE, e.g. modulation.init_std=0.1")
        pairs[key.strip()] = value
    return pairs


class Probe:
    """The model, the frozen generator and CLIP, and the W+ objective of one batch."""

    def __init__(self, config, seed: int, model=None) -> None:
        self.config = config
        self.model = model if model is not None else build_model(config, seed=seed)
        self.generator = load_backbone("generator", config.backbones.generator).requires_grad_(False).eval()
        self.clip = load_backbone("clip", config.backbones.clip).requires_grad_(False).eval()

    def errors(self, batch, tokens_from: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W+ MSE of the model, W+ MSE of the content code, state term, ODE states) on a batch."""
        model, cfg = self.model, self.config
        numbers = batch.frame_numbers.to(torch.float64)
        tau = (numbers - numbers[0]) / cfg.video_length
        content = batch.w.mean(1)  # B n D: the mean inversion, as in training
        with torch.no_grad():
            style = self.clip.encode_image(self.generator.synthesize(content, noise="const")).float()
        feats = model.dynamics.features(batch.frames)  # B T C h w
        states, tokens = model.dynamics.solve(model.dynamics.encode_features(feats, tau), tau)
        if tokens_from == "frames":
            tokens = model.dynamics.tokens(feats)
        target = time_major(batch.w)
        model_error = F.mse_loss(model.decode_w(tokens, content, style), target)
        static_error = F.mse_loss(content.repeat(batch.w.shape[1], 1, 1), target)
        state = state_loss(states, feats)
        return model_error, static_error, state, states


def _trained(path: Path):
    """The trainable model of a ``vsode train`` state or of a model file, with ``.step`` set."""
    from vsode.checkpoints.load import safe_load
    from vsode.model import model_from_checkpoint
    from vsode.train.loop import STATE_FORMAT

    ckpt = safe_load(path, map_location="cpu")
    if isinstance(ckpt, dict) and ckpt.get("format") == STATE_FORMAT:
        model, step = model_from_checkpoint(ckpt["model"], label=str(path)), ckpt.get("step")
    else:
        model = model_from_checkpoint(ckpt, label=str(path))
        step = (ckpt.get("training") or {}).get("step") if isinstance(ckpt, dict) else None
    model.step = step
    return model


def _whole_clips(data: TrainData, config, count: int) -> list:
    """``count`` batches of 4 clips with every frame (regular sampling of the whole clip)."""
    n_frames = min(len(v.times) for v in data.videos)
    sampler = BinSampler(data, batch_size=min(4, len(data.videos)), n_frames=n_frames,
                         nominal_fps=config.nominal_fps, seed=1, irregular=False)
    return [batch for _, batch in zip(range(count), iter(sampler))]


def evaluate(probe: Probe, held_out: list, train_clips: list) -> dict[str, float]:
    probe.model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for split, batches in (("val", held_out), ("train", train_clips)):
            for path in ("ode", "frames"):
                results = [probe.errors(b, path) for b in batches]
                out[f"{split}_{path}"] = round(sum(float(r[0]) for r in results) / sum(float(r[1]) for r in results), 4)
        norms = [probe.errors(b, "ode")[3].pow(2).sum(2).mean().sqrt() for b in held_out]
        out["state_norm"] = round(float(sum(norms) / len(norms)), 4)
    probe.model.train()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder written by `vsode prepare`")
    parser.add_argument("--checkpoint", type=Path, help="score this trained model (train state or model file) and stop")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--every", type=int, default=100, help="print a line every this many steps")
    parser.add_argument("--tokens", choices=("ode", "frames"), default="ode",
                        help="train through the latent ODE (the model) or each frame's own features")
    parser.add_argument("--state-weight", type=float, default=0.0, help="weight of the state term (default 0)")
    parser.add_argument("--lr", type=float, help="η (default: the demo preset's)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="model config override (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-batches", type=int, default=2, help="batches of 4 whole clips per evaluation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = preset_config("demo")
    if args.sets:
        config = config.override(_pairs(args.sets))
    options = TrainOptions.for_preset("demo")
    lr = args.lr if args.lr is not None else options.learning_rate()
    trained = _trained(args.checkpoint) if args.checkpoint else None
    probe = Probe(trained.config if trained else config, args.seed, trained)
    data = TrainData(args.data, split="train")
    try:
        held = TrainData(args.data, split="val")
    except InputError:  # a folder without a val split: hold out nothing, use the training clips
        held = data
    held_out = _whole_clips(held if held.videos else data, probe.config, args.val_batches)
    train_clips = _whole_clips(data, probe.config, args.val_batches)
    if trained is not None:
        print(json.dumps({"checkpoint": str(args.checkpoint), "step": trained.step,
                          **evaluate(probe, held_out, train_clips)}), flush=True)
        return 0
    sampler = BinSampler(data, batch_size=options.batch_size, n_frames=options.n_frames,
                         nominal_fps=config.nominal_fps, seed=args.seed, irregular=options.irregular)
    dynamics = list(probe.model.dynamics.parameters())
    rest = [p for name, p in probe.model.named_parameters() if not name.startswith("dynamics.")]
    optimizers = [torch.optim.Adam(dynamics, lr=options.encoder_lr_factor * lr),
                  torch.optim.Adam(rest, lr=lr, betas=(0.9, 0.99))]
    print(json.dumps({"step": 0, **evaluate(probe, held_out, train_clips)}), flush=True)
    start = time.perf_counter()
    batches = sampler.batches()
    for step in range(1, args.steps + 1):
        _, _, batch = next(batches)
        error, static, state, _ = probe.errors(batch, args.tokens)
        total = options.wplus_lambda * error + args.state_weight * state
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total.backward()
        for opt in optimizers:
            opt.step()
        if step % max(1, args.every) == 0 or step == args.steps:
            line = {"step": step, "train_ratio": round(float(error.detach() / static), 4),
                    "state_term": round(float(state.detach()), 4), **evaluate(probe, held_out, train_clips),
                    "seconds": round(time.perf_counter() - start, 1)}
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
