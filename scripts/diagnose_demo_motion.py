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
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vsode.dynamics import batch_major, time_major  # noqa: E402
from vsode.errors import InputError  # noqa: E402
from vsode.model import build_model, load_backbone, preset_config  # noqa: E402
from vsode.model.anchor import neighbours  # noqa: E402
from vsode.train.data import BinSampler, TrainData  # noqa: E402
from vsode.train.loop import TrainOptions, split_overrides  # noqa: E402
from vsode.train.loop.objective import observation_mask, step_generator, supervised_frames  # noqa: E402
from vsode.train.losses import motion_weighted_mse, state_loss  # noqa: E402


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
        self.state_motion = 1.0
        self.wplus_motion = 1.0
        self.model = model if model is not None else build_model(config, seed=seed)
        self.generator = load_backbone("generator", config.backbones.generator).requires_grad_(False).eval()
        self.clip = load_backbone("clip", config.backbones.clip).requires_grad_(False).eval()

    def style(self, content: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.clip.encode_image(self.generator.synthesize(content, noise="const")).float()

    def errors(self, batch, tokens_from: str, mask: torch.Tensor | None = None,
               chosen: torch.Tensor | None = None, *, training: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W+ MSE of the model, W+ MSE of the content code, state term, ODE states) on a batch;
        ``mask`` hides frames from the ODE-GRU, ``chosen`` picks the supervised frames. With
        ``training`` it also sets ``weighted_error`` and ``feature_error``, the W+ and feature
        terms as training weighs them (evaluation does not need them)."""
        model, cfg = self.model, self.config
        numbers = batch.frame_numbers.to(torch.float64)
        tau = (numbers - numbers[0]) / cfg.video_length
        content = batch.w.mean(1)  # B n D: the mean inversion, as in training
        style = self.style(content)
        feats = model.dynamics.features(batch.frames)  # B T C h w
        if chosen is None:
            chosen = torch.arange(len(tau))
        states, tokens = model.dynamics.solve(model.dynamics.encode_features(feats, tau, mask), tau[chosen])
        feats = feats[:, chosen]
        if tokens_from == "frames":
            tokens = model.dynamics.tokens(feats)
        target = time_major(batch.w[:, chosen])
        decoded = model.decode_w(tokens, content, style)
        model_error = F.mse_loss(decoded, target)
        if training:
            b = len(content)
            lifted = model.decode_w(model.dynamics.tokens(feats), content, style)
            self.weighted_error = motion_weighted_mse(batch_major(decoded, b), batch_major(target, b), self.wplus_motion)
            self.feature_error = motion_weighted_mse(batch_major(lifted, b), batch_major(target, b), self.wplus_motion)
        static_error = F.mse_loss(content.repeat(len(chosen), 1, 1), target)
        k = model.dynamics.observed_channels
        state = state_loss(states[:, :, :k], feats[:, :, :k], self.state_motion)
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


def _anchored(probe, batch, observed: list[int], asked: list[int]) -> torch.Tensor:
    """The anchored model's W+ at frames ``asked`` of whole clips observed at frames ``observed``
    only (as an application sees them): ``lerp(w_inv) + M(t) − lerp(M)``, held past the ends."""
    model = probe.model
    numbers = batch.frame_numbers.to(torch.float64)
    tau = (numbers - numbers[observed[0]]) / probe.config.video_length
    content = batch.w[:, observed].mean(1)
    style = probe.style(content)
    feats = model.dynamics.features(batch.frames[:, observed])
    z0 = model.dynamics.encode_features(feats, tau[observed])
    everything = sorted(set(observed) | set(asked))
    _, tokens = model.dynamics.solve(z0, tau[everything])
    m = batch_major(model.decode_w(tokens, content, style), len(content))  # B T n D
    row = {f: i for i, f in enumerate(everything)}
    at_observed, at_asked = m[:, [row[f] for f in observed]], m[:, [row[f] for f in asked]]
    seen, wanted = tau[observed], tau[asked]
    return _lerp(batch.w[:, observed], seen, wanted) + at_asked - _lerp(at_observed, seen, wanted)


def _lerp(codes: torch.Tensor, seen: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Codes at the ``seen`` times (B×K×…) lerped to the ``wanted`` times, held past the ends,
    as anchoring does (:func:`vsode.model.anchor.neighbours`)."""
    left, right, weight, _ = neighbours(seen, wanted)
    a = weight.to(codes.dtype).view(1, -1, *([1] * (codes.ndim - 2)))
    return (1 - a) * codes[:, left] + a * codes[:, right]


def _control(batch, observed: list[int], asked: list[int]) -> torch.Tensor:
    """The model-free control: the observed frames' inversions lerped in time, held past the ends."""
    numbers = batch.frame_numbers.to(torch.float64)
    return _lerp(batch.w[:, observed], numbers[observed], numbers[asked])


def _gains(probe: Probe, batch) -> list[tuple[float, float]]:
    """(anchored model's W+ error, control's) for the two cases the dynamics issue targets, on
    clips of 48 frames at 24 fps: interpolation from every 8th frame (3 fps) to the frames
    between, and extrapolation of the 12 frames (0.5 s) after the first 36 seen at 12 fps (shorter
    clips scale both down)."""
    n = batch.w.shape[1]
    stride, horizon = min(8, max(2, n // 4)), min(12, max(1, n // 4))  # short clips (tests): scaled down
    sparse = list(range(0, n, stride))
    between = [f for f in range(sparse[-1]) if f not in sparse]
    seen = list(range(0, n - horizon, 2))
    after = list(range(seen[-1] + 1, min(n, seen[-1] + horizon + 1)))
    out = []
    for observed, asked in ((sparse, between), (seen, after)):
        truth = batch.w[:, asked]
        model = float(F.mse_loss(_anchored(probe, batch, observed, asked), truth))
        control = float(F.mse_loss(_control(batch, observed, asked), truth))
        out.append((model, control))
    return out


def evaluate(probe: Probe, held_out: list, train_clips: list) -> dict[str, float]:
    probe.model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for split, batches in (("val", held_out), ("train", train_clips)):
            for path in ("ode", "frames"):
                results = [probe.errors(b, path) for b in batches]
                out[f"{split}_{path}"] = round(sum(float(r[0]) for r in results) / sum(float(r[1]) for r in results), 4)
        for split, batches in (("val", held_out),):
            gains = [_gains(probe, b) for b in batches]
            for i, name in enumerate(("interp3", "extrap")):
                out[f"{split}_{name}"] = round(sum(g[i][0] for g in gains) / sum(g[i][1] for g in gains), 4)
        norms = [probe.errors(b, "ode")[3].pow(2).sum(2).mean().sqrt() for b in held_out]
        out["state_norm"] = round(float(sum(norms) / len(norms)), 4)
    probe.model.train()
    return out


# --- what the demo world lets a motion model gain at all (no model: the renderer's own motion) ---

SMOOTH = ("head_x", "head_y", "roll", "brow")  # slow sums of sinusoids (0.1-0.7 Hz)
FAST = ("mouth_open", "blink")  # the mouth at 0.6-4.2 Hz and blinks of 0.16-0.26 s


def ceilings(seeds: range, seconds: float = 2.0, size: int = 64) -> dict[str, dict[str, float]]:
    """PSNR against the truth of motion guesses rendered by the demo world itself, per seed of
    ``vsode demo`` (its source clip), for the two cases the dynamics issue targets:

    - interpolation from 3 fps to the 24 fps frames between: the frame blend; every motion
      channel lerped between the 3 fps frames (what a perfect inversion lerp would give); the
      slow channels (head, roll, brows) exact with the mouth and blinks lerped (a motion model that
      gets every predictable channel right); one channel lerped with the rest exact;
    - extrapolation of the 0.5 s after 2 s seen at 12 fps: everything held at the last frame (the
      held last inversion); the slow channels exact with the mouth and blinks held; the slow
      channels continued at their last velocity with the mouth and blinks held.
    """
    import numpy as np

    from vsode.demo.world import _paint_face, sample_params

    class Moved:
        def __init__(self, params, motion):
            self.appearance, self._motion = params.appearance, motion

        def motion(self, t):
            return self._motion(np.asarray(t, dtype=np.float64))

    def draw(params, motion, t):
        return _paint_face(Moved(params, motion), np.asarray(t), size, False, dtype=torch.float32,
                           device=torch.device("cpu")).image

    def psnr(a, b):
        return round(float(10 * torch.log10(1 / (a - b).pow(2).mean().clamp_min(1e-10))), 2)

    out: dict[str, dict[str, float]] = {}
    for seed in seeds:
        p = sample_params(seed)
        sparse = np.arange(math.floor(seconds * 3)) / 3.0
        grid = np.arange(math.floor(seconds * 24)) / 24.0
        between = grid[(grid <= sparse[-1]) & ~np.isin(np.round(grid * 24), np.round(sparse * 24))]
        seen = p.motion(sparse)

        def lerped(names, seen=seen, sparse=sparse, p=p):
            def motion(t):
                m = p.motion(t)
                for k in names:
                    m[k] = np.interp(t, sparse, seen[k])
                return m
            return motion

        truth = draw(p, p.motion, between)
        frames = draw(p, p.motion, sparse)
        i = np.clip(np.searchsorted(sparse, between, side="right") - 1, 0, len(sparse) - 2)
        a = torch.tensor((between - sparse[i]) / (sparse[i + 1] - sparse[i]), dtype=torch.float32).view(-1, 1, 1, 1)
        row = {"interp3_frame_blend": psnr((1 - a) * frames[i] + a * frames[i + 1], truth),
               "interp3_lerp_all": psnr(draw(p, lerped(SMOOTH + FAST), between), truth),
               "interp3_slow_exact": psnr(draw(p, lerped(FAST), between), truth)}
        for k in SMOOTH + FAST:
            row[f"interp3_only_{k}_lerped"] = psnr(draw(p, lerped((k,)), between), truth)
        seen12 = np.arange(math.floor(seconds * 12)) / 12.0
        last, before = seen12[-1], seen12[-2]
        after = last + np.arange(1, 13) / 24.0
        ends = p.motion(np.array([before, last]))

        def held(names, linear=(), ends=ends, p=p, last=last, before=before):
            def motion(t):
                m = p.motion(t)
                for k in names:
                    m[k] = np.full_like(t, ends[k][1])
                for k in linear:
                    m[k] = ends[k][1] + (ends[k][1] - ends[k][0]) / (last - before) * (t - last)
                return m
            return motion

        truth = draw(p, p.motion, after)
        row.update({"extrap_hold_all": psnr(draw(p, held(SMOOTH + FAST), after), truth),
                    "extrap_slow_exact": psnr(draw(p, held(FAST), after), truth),
                    "extrap_slow_linear": psnr(draw(p, held(FAST, SMOOTH), after), truth)})
        out[str(seed)] = row
    keys = list(next(iter(out.values())))
    out["mean"] = {k: round(sum(out[str(s)][k] for s in seeds) / len(seeds), 2) for k in keys}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a folder written by `vsode prepare`")
    parser.add_argument("--ceilings", action="store_true",
                        help="print what a motion model could gain at all on seeds 0-3 (no data, no model) and stop")
    parser.add_argument("--checkpoint", type=Path, help="score this trained model (train state or model file) and stop")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--every", type=int, default=100, help="print a line every this many steps")
    parser.add_argument("--tokens", choices=("ode", "frames"), default="ode",
                        help="train through the latent ODE (the model) or each frame's own features")
    parser.add_argument("--state-weight", type=float, default=0.0, help="weight of the state term (default 0)")
    parser.add_argument("--lr", type=float, help="η (default: the demo preset's)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="model config override (repeatable)")
    parser.add_argument("--sampling", choices=("static", "interpolate", "extrapolate", "mixed"), default="static",
                        help="which loaded frames the ODE-GRU sees (the training option `sampling`)")
    parser.add_argument("--n-hidden", type=int, default=1, help="frames hidden per clip (`n_hidden`)")
    parser.add_argument("--frames", type=int, help="frames loaded per clip (`n_frames`; default the preset's)")
    parser.add_argument("--supervised", type=int, help="frames supervised per clip (`n_supervised`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-batches", type=int, default=2, help="batches of 4 whole clips per evaluation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.ceilings:
        print(json.dumps(ceilings(range(4))), flush=True)
        return 0
    if args.data is None:
        parser.error("--data is required (or --ceilings)")
    train_sets, model_sets = split_overrides(_pairs(args.sets))
    config = preset_config("demo")
    if model_sets:
        config = config.override(model_sets)
    options = TrainOptions.for_preset("demo").override(train_sets)
    changes = {"sampling": args.sampling, "n_hidden": args.n_hidden}
    if args.frames:
        changes["n_frames"] = args.frames
    if args.supervised:
        changes["n_supervised"] = args.supervised
    options = dataclasses.replace(options, **changes)
    lr = args.lr if args.lr is not None else options.learning_rate()
    trained = _trained(args.checkpoint) if args.checkpoint else None
    probe = Probe(trained.config if trained else config, args.seed, trained)
    probe.state_motion = options.state_motion
    probe.wplus_motion = options.wplus_motion
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
        g = step_generator(args.seed, step, 0)
        mask = observation_mask(options, batch.frames.shape[1], g)
        chosen = supervised_frames(options, mask, g)
        error, static, state, _ = probe.errors(batch, args.tokens, mask, chosen, training=True)
        total = options.wplus_lambda * (probe.weighted_error + options.feature_lambda * probe.feature_error) + \
            (args.state_weight or options.state_lambda) * state
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
