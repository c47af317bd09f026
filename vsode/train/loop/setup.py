"""``vsode train`` as a function: a preset plus overrides and backbone names in, a finished (or
resumed) run out. The command line parses; this resolves the preset, the options, the device and
the frozen backbones, then calls :func:`vsode.train.loop.train`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ...device import resolve_device
from ...errors import InputError
from ...model import backbone_ref, load_backbone, preset_config
from ...progress import Progress
from .distributed import Distributed
from .objective import FrozenModels
from .options import TrainOptions, split_overrides
from .run import TrainResult, train


def train_preset(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    preset: str = "ffhq",
    changes: Mapping[str, Any] | None = None,
    generator: str | None = None,
    clip: str | None = None,
    dino: str | None = None,
    use_dino: bool = True,
    cache_dir: str | os.PathLike | None = None,
    device: str = "auto",
    restart: bool = False,
    progress: Progress | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the ``preset`` VidStyleODE on a prepared dataset (``vsode train``).

    Args:
        changes: training options and model config fields to override, dotted keys
            (``{"rec.hi": 0.5, "dynamics.dtype": "float64", "max_steps": 100}``); strings are
            converted to each field's type.
        generator, clip, dino: backbones instead of the preset's (registry names or files).
        use_dino: False trains without the DINO structure and appearance losses.
        device: ``auto``/``cpu``/``cuda``; under torchrun each CUDA rank takes its local GPU.
        restart: start over in a run folder that holds a run with other settings.
        log: receives every stats entry; note: one-line remarks for the user.
    """
    train_changes, model_changes = split_overrides(dict(changes or {}))
    options = TrainOptions.for_preset(preset).override(train_changes)
    config = preset_config(preset)
    if model_changes:
        config = config.override(model_changes)
    dist_info = Distributed.from_env()
    dev = resolve_device(device)
    if dev.type == "cuda" and dist_info.world_size > 1:
        dev = torch.device("cuda", dist_info.local_rank)
    names = {
        "generator": generator or config.backbones.generator,
        "clip": clip or config.backbones.clip,
        "dino": (dino or config.backbones.dino) if use_dino else None,
    }
    for kind in ("generator", "clip"):
        if names[kind] is None:
            raise InputError(f"preset {preset} names no {kind}; give one with --{kind}")
    loaded = {k: (load_backbone(k, v, cache_dir=cache_dir) if v else None) for k, v in names.items()}
    refs = {k: backbone_ref(k, v, cache_dir=cache_dir) for k, v in names.items() if v}
    if config.backbones.encoder:
        refs["encoder"] = {"name": config.backbones.encoder}
    if names["dino"] is None and note is not None:
        note("training without DINO: the structure and appearance losses are off")
    return train(
        data_dir, run_dir, model_config=config, options=options,
        backbones=FrozenModels(loaded["generator"], loaded["clip"], loaded["dino"]),
        backbone_refs=refs, device=dev, progress=progress, log=log, restart=restart,
    )
