"""The run: optimisers, the run directory, exact resume, logging, divergence, and :func:`train`."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError, SolverError, VsodeError
from ...fileio import atomic_write_bytes, save_torch
from ...model import ModelConfig, VidStyleODE, build_model, model_checkpoint, model_from_checkpoint
from ...progress import Progress, ensure
from .distributed import Distributed, average_gradients, init_distributed
from .objective import FrozenModels, compute_losses, step_generator, target_captions
from .options import RUN_FORMAT, STATE_FORMAT, TrainOptions
from .validate import _validate, _write_sample


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    step: int
    resumed_from: int | None
    losses: list[float]  # total loss of every step run by this call (rank 0's)
    interrupted: bool
    checkpoint: Path | None
    model_path: Path | None
    validation: dict[str, float] | None
    timings: dict[str, float]


def _optimizers(model: VidStyleODE, options: TrainOptions, world_size: int) -> list[torch.optim.Optimizer]:
    eta = options.learning_rate(world_size)
    return [
        torch.optim.Adam(model.dynamics.parameters(), lr=options.encoder_lr_factor * eta, betas=(0.9, 0.999)),
        torch.optim.Adam(
            [*model.mapper.parameters(), *model.modulation.parameters()], lr=eta, betas=(0.9, 0.99)
        ),
    ]


def run_config(model_config: ModelConfig, options: TrainOptions, data_dir: Path) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "data": str(Path(data_dir).resolve()),
        "model": model_config.to_dict(),
        "train": options.to_dict(),
    }


def _diverged(step: int, what: str, ckpt_path: Path) -> str:
    """The one-line message for a run that diverged at ``step``."""
    where = f"; {ckpt_path} holds the last checkpoint" if ckpt_path.exists() else ""
    return (f"training diverged at step {step} ({what}){where}; start a new --output with a lower --lr "
            "or --set grad_clip=N (stats.jsonl's grad/norm shows the usual gradient norm)")


def _gradient_norm(params: list[torch.nn.Parameter], clip: float) -> float:
    """The gradients' joint L2 norm; scales them down to ``clip`` when it is larger (0: never)."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    if clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(with_grad, clip))
    return float(torch.nn.utils.get_total_norm([p.grad for p in with_grad]))


def _same_run(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Runs match when everything but the stopping point and the logging cadence agrees; an
    option added since the old run was started counts as its default."""
    loose = ("max_steps", "checkpoint_every", "sample_every", "val_every", "log_every", "val_videos")
    defaults = TrainOptions().to_dict()
    strip = lambda c: {  # noqa: E731
        **c, "train": {k: v for k, v in {**defaults, **c["train"]}.items() if k not in loose}
    }
    return strip(dict(old)) == strip(dict(new))


def load_train_state(path: Path) -> dict[str, Any]:
    from ...checkpoints.load import safe_load

    state = safe_load(path, map_location="cpu")
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise InputError(f"{path} is not a vsode training checkpoint ({STATE_FORMAT})")
    return dict(state)


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    model_config: ModelConfig,
    options: TrainOptions,
    backbones: FrozenModels,
    backbone_refs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train (or resume training) a VidStyleODE on a prepared dataset.

    Args:
        data_dir: a folder written by ``vsode prepare`` (or the demo dataset writer + latents).
        run_dir: the run directory; if it holds a run with the same settings, training resumes
            from its last checkpoint; other settings are an error unless ``restart``.
        model_config / options: what to build and how to train it.
        backbones: the frozen generator, CLIP and (optional) DINO.
        backbone_refs: ``{"generator": {"name", "sha256"}, ...}`` recorded in the checkpoints.
        device: the compute device (with torchrun, each rank's ``cuda:LOCAL_RANK`` on CUDA).
        progress: one stage of ``max_steps`` steps.
        log: receives every stats record (they also go to ``stats.jsonl``).
        stop_after: stop after this many steps of *this call* as if interrupted (tests).
        restart: discard an existing run with other settings.

    Returns a :class:`TrainResult`; Ctrl-C/SIGTERM saves a checkpoint and re-raises.
    """
    from ..data import BinSampler, TrainData

    dist_info = Distributed.from_env()
    device = torch.device(device)
    init_distributed(dist_info, device)
    run_dir = Path(run_dir)
    data = TrainData(data_dir, split="train")
    config_record = run_config(model_config, options, Path(data_dir))
    ckpt_path = run_dir / "checkpoints" / "last.pt"

    resumed_from = None
    state = None
    config_path = run_dir / "config.json"
    if config_path.exists() and not restart:
        old = json.loads(config_path.read_text())
        if not _same_run(old, config_record):
            raise InputError(
                f"{run_dir} holds a run with other settings; use a new --output folder, or --restart to start over"
            )
        if ckpt_path.exists():
            state = load_train_state(ckpt_path)
            resumed_from = int(state["step"])

    torch.manual_seed(options.seed)
    model = build_model(model_config, seed=options.seed).to(device)
    model.backbone_refs = {k: (dict(v) if v else None) for k, v in (backbone_refs or {}).items()} | {
        k: None for k in ("generator", "encoder", "clip", "dino") if k not in (backbone_refs or {})
    }
    for module in (backbones.generator, backbones.clip, backbones.dino):
        if module is not None:
            module.requires_grad_(False).eval().to(device)
    optimizers = _optimizers(model, options, dist_info.world_size)
    step, epoch, position = 0, 0, 0
    if state is not None:
        loaded = model_from_checkpoint(state["model"], label=str(ckpt_path))
        model.load_state_dict(loaded.state_dict())
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        step, epoch, position = int(state["step"]), int(state["epoch"]), int(state["position"])
        torch.set_rng_state(state["rng"]["torch"])
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        if restart or not config_path.exists():
            atomic_write_bytes(config_path, (json.dumps(config_record, indent=1) + "\n").encode())
            stats = run_dir / "stats.jsonl"
            if stats.exists():
                stats.unlink()

    sampler = BinSampler(
        data,
        batch_size=options.batch_size,
        n_frames=options.n_frames,
        nominal_fps=model_config.nominal_fps,
        seed=options.seed,
        irregular=options.irregular,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    pool = sorted({v.caption for v in data.videos if v.caption})
    params = [p for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    timings = {"data": 0.0, "step": 0.0, "checkpoint": 0.0, "validation": 0.0, "samples": 0.0}
    interrupted = False
    steps_this_call = 0
    record_log = _logger(run_dir, log, dist_info.main)

    def save_state() -> Path | None:
        if not dist_info.main:
            return None
        start = time.perf_counter()
        save_torch(
            {
                "format": STATE_FORMAT,
                "model": model_checkpoint(model),
                "optimizers": [opt.state_dict() for opt in optimizers],
                "step": step,
                "epoch": epoch,
                "position": position,
                "rng": {"torch": torch.get_rng_state()},
                "config": config_record,
            },
            ckpt_path,
        )
        save_torch(model_checkpoint(model, extra={"training": {"step": step, "run": config_record}}), run_dir / "model.pt")
        timings["checkpoint"] += time.perf_counter() - start
        return ckpt_path

    model.train()
    batches = sampler.batches(start_epoch=epoch, start_position=position)
    last_ckpt = None
    validation = None
    try:
        with ensure(progress).stage("train", options.max_steps, unit="steps") as bar:
            bar.advance(step)
            while step < options.max_steps:
                if stop_after is not None and steps_this_call >= stop_after:
                    interrupted = True
                    break
                start = time.perf_counter()
                epoch, position, batch = next(batches)
                position += 1  # the position to resume from is the next one
                timings["data"] += time.perf_counter() - start
                start = time.perf_counter()
                g = step_generator(options.seed, step, dist_info.rank)
                targets = target_captions(list(batch.captions), pool, g)
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                try:
                    total, logged = compute_losses(
                        model, backbones, batch, options, step, g, target_captions=targets
                    )
                except SolverError as exc:  # the ODE dynamics blew up: a divergence, not a tolerance issue
                    cause = f"the ODE solve gave up: {exc.__cause__ or exc}"
                    raise VsodeError(_diverged(step, cause, ckpt_path)) from exc
                if not torch.isfinite(total):
                    raise VsodeError(_diverged(step, f"loss {float(total)}", ckpt_path))
                total.backward()
                average_gradients(params, dist_info.world_size)
                logged["grad/norm"] = _gradient_norm(params, options.grad_clip)
                for opt in optimizers:
                    opt.step()
                step += 1
                steps_this_call += 1
                losses.append(float(total.detach()))
                timings["step"] += time.perf_counter() - start
                bar.advance()
                if options.log_every and (step % options.log_every == 0 or step == 1):
                    record_log({"step": step, "epoch": epoch, "time": time.time(), **logged})
                if options.checkpoint_every and step % options.checkpoint_every == 0:
                    last_ckpt = save_state()
                if options.val_every and step % options.val_every == 0 and dist_info.main:
                    validation = _validate(model, backbones, data_dir, options, timings)
                    record_log({"step": step, "val": validation})
                if options.sample_every and step % options.sample_every == 0 and dist_info.main:
                    _write_sample(model, backbones, data_dir, run_dir, step, timings)
    except KeyboardInterrupt:
        if dist_info.main:
            save_state()
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    last_ckpt = save_state() if (steps_this_call or last_ckpt is None) else last_ckpt
    if not interrupted and step >= options.max_steps and dist_info.main and len(data) >= 2:
        _fit_prior(model, backbones, data_dir, run_dir / "model.pt", config_record, step, timings, progress)
    if not interrupted and step >= options.max_steps and options.val_every and validation is None and dist_info.main:
        validation = _validate(model, backbones, data_dir, options, timings)
        record_log({"step": step, "val": validation})
    return TrainResult(
        run_dir=run_dir,
        step=step,
        resumed_from=resumed_from,
        losses=losses,
        interrupted=interrupted,
        checkpoint=last_ckpt,
        model_path=(run_dir / "model.pt") if dist_info.main else None,
        validation=validation,
        timings=timings,
    )


def _fit_prior(model: VidStyleODE, backbones: FrozenModels, data_dir: str | os.PathLike, path: Path,
               config_record: dict[str, Any], step: int, timings: dict[str, float], progress: Progress | None) -> None:
    """The finished model's prior (what `vsode generate` samples), fitted on its training clips and
    written into ``model.pt`` (a run of fewer than two clips has none: `vsode fit-prior` fits one later);
    its motion gain is calibrated with the run's generator and CLIP."""
    from ..prior import fit_prior

    start = time.perf_counter()
    model.eval()
    model.attach(generator=backbones.generator, clip=backbones.clip)  # not saved: not in the state dict
    model.prior = fit_prior(model, data_dir, progress=progress)
    save_torch(model_checkpoint(model, extra={"training": {"step": step, "run": config_record}}), path)
    timings["prior"] = time.perf_counter() - start


def _logger(run_dir: Path, log: Callable[[dict[str, Any]], None] | None, main: bool) -> Callable[[dict], None]:
    def record(entry: dict[str, Any]) -> None:
        if log is not None:
            log(entry)
        if main:
            with open(run_dir / "stats.jsonl", "a") as f:
                f.write(json.dumps(entry) + "\n")

    return record
