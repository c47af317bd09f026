"""Building, saving and loading VidStyleODE models (``vsode/vidstyleode@1`` checkpoints) and the
frozen backbones they name.

Checkpoints hold the config, the trainable weights and the name + SHA-256 of the frozen backbones
the model was trained with; :func:`load_model` resolves those through the checkpoint manager. Once
fitted, the prior ``vsode generate`` samples (:mod:`.prior`) is kept beside them under ``"prior"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ChecksumError, InputError
from .config import BACKBONE_KINDS, FORMAT, ModelConfig
from .presets import as_config
from .module import VidStyleODE
from .prior import Prior

# --- building, saving, loading -------------------------------------------------------------------


def build_model(preset: str | ModelConfig = "ffhq", *, seed: int | None = None) -> VidStyleODE:
    """A randomly initialised :class:`VidStyleODE` (trainable parts only, no backbones).

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    """
    config = as_config(preset)
    if seed is None:
        return VidStyleODE(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VidStyleODE(config)


def model_checkpoint(model: VidStyleODE, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``vsode/vidstyleode@1`` dict of a model: config, trainable weights, backbone refs."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "backbones": {k: (dict(v) if v else None) for k, v in model.backbone_refs.items()},
        "state_dict": state,
    }
    if model.prior is not None:
        ckpt["prior"] = model.prior.to_dict()
    if extra:
        ckpt.update(extra)
    return ckpt


def save_model(
    model: VidStyleODE, path: str | os.PathLike, *, force: bool = False, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` as a ``vsode/vidstyleode@1`` checkpoint (temp file + rename)."""
    from ..fileio import save_torch

    return save_torch(model_checkpoint(model, extra=extra), path, force=force)


def model_from_checkpoint(ckpt: Mapping[str, Any], *, label: str = "checkpoint") -> VidStyleODE:
    """Build and strictly load the trainable model of a ``vsode/vidstyleode@1`` dict."""
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise InputError(
            f"{label} is not a VidStyleODE checkpoint ({FORMAT}; found {found!r}); "
            "train one with `vsode train` or convert one with `vsode import-official`"
        )
    config = ModelConfig.from_dict(ckpt.get("config", {}))
    model = VidStyleODE(config)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise InputError(f"{label} has no state_dict")
    from ..checkpoints.load import check_layout

    check_layout(model.state_dict(), state, f"{label} does not match its config")
    model.load_state_dict(state, strict=True)
    refs = ckpt.get("backbones") or {}
    model.backbone_refs = {k: (dict(refs[k]) if refs.get(k) else None) for k in BACKBONE_KINDS}
    if ckpt.get("prior") is not None:
        prior = Prior.from_dict(ckpt["prior"])
        prior.check((config.dynamics.state_channels, *config.dynamics.grid), (config.n_latent, config.style_dim), label)
        model.prior = prior
    return model


def load_model(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    backbones: bool | Sequence[str] = ("generator", "clip"),
    overrides: Mapping[str, str | os.PathLike] | None = None,
    verify: bool = True,
) -> VidStyleODE:
    """Load a trained VidStyleODE and the frozen backbones it names, in eval mode.

    Args:
        source: a checkpoint path, a registry name, or the checkpoint dict.
        device: where everything goes.
        cache_dir: the checkpoint cache to resolve backbone names in.
        backbones: which backbones to load (``True``: all it names; ``False``: none).
        overrides: ``{"generator": path_or_name, ...}`` used instead of the recorded ones.
        verify: check each backbone file's SHA-256 against the one recorded at training time.

    Raises:
        InputError: not a VidStyleODE checkpoint, or weights that do not fit the config.
        ModelMissingError: a named backbone is not installed (the message says how to get it).
        ChecksumError: a backbone file differs from the one the model was trained with.
    """
    from ..checkpoints.cache import resolve
    from ..checkpoints.load import safe_load

    if isinstance(source, Mapping):
        label, ckpt = "checkpoint", source
    else:
        path = resolve(source, cache_dir=cache_dir)
        label, ckpt = os.fspath(path), safe_load(path, map_location="cpu")
    model = model_from_checkpoint(ckpt, label=label)
    wanted = BACKBONE_KINDS if backbones is True else (() if backbones is False else tuple(backbones))
    overrides = dict(overrides or {})
    loaded = {}
    for kind in wanted:
        ref = model.backbone_refs.get(kind) or {}
        name = overrides.get(kind) or ref.get("name") or getattr(model.config.backbones, kind)
        if name is None:
            continue
        loaded[kind] = load_backbone(
            kind, os.fspath(name), cache_dir=cache_dir,
            sha256=ref.get("sha256") if (verify and kind not in overrides) else None,
        )
    model.attach(**loaded)
    return model.to(device).eval()


def load_backbone(
    kind: str, name_or_path: str, *, cache_dir: str | os.PathLike | None = None, sha256: str | None = None
) -> Any:
    """Resolve and load one frozen backbone (``generator``, ``encoder``, ``clip``, ``dino``)."""
    from ..checkpoints.cache import resolve
    from ..invert import model_ref

    path = resolve(name_or_path, cache_dir=cache_dir)
    if sha256 is not None:
        found = model_ref(name_or_path, path, Path(cache_dir) if cache_dir else None)["sha256"]
        if found != sha256:
            raise ChecksumError(
                f"{kind} {name_or_path} ({path}) has SHA-256 {found[:12]}…, but the model was trained "
                f"with {sha256[:12]}…; install that file or pass --{kind} to use another deliberately"
            )
    if kind == "generator":
        from ..stylegan2 import load_generator

        return load_generator(path)
    if kind == "encoder":
        from ..encoders import load_encoder

        return load_encoder(path)
    if kind == "clip":
        from ..clip import load_clip

        return load_clip(path)
    if kind == "dino":
        from ..checkpoints.load import safe_load
        from ..dino import ClipViTFeatures, load_dino

        ckpt = safe_load(path, map_location="cpu")
        if isinstance(ckpt, Mapping) and ckpt.get("format") == "vsode/clip@1":
            from ..clip import load_clip

            return ClipViTFeatures(load_clip(ckpt))  # a CLIP image tower standing in for DINO
        return load_dino(ckpt)
    raise InputError(f"unknown backbone kind {kind!r}")


def backbone_ref(kind: str, name_or_path: str, *, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"name", "sha256"}`` of a backbone as a checkpoint records it."""
    from ..checkpoints.cache import resolve
    from ..invert import model_ref

    path = resolve(name_or_path, cache_dir=cache_dir)
    return model_ref(name_or_path, path, Path(cache_dir) if cache_dir else None) | {"kind": kind}


def parameter_counts(model: VidStyleODE) -> dict[str, int]:
    """Trainable parameters per stage and in total."""
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("dynamics", "modulation", "mapper")
    }
    counts["total"] = sum(counts.values())
    return counts
