"""Checkpoints trained with the authors' released VidStyleODE code, and the model's stage API.

Loading a released checkpoint
-----------------------------
The released code (PyTorch Lightning) writes ``.ckpt`` files whose ``state_dict`` holds the
trainable ``bVAE_enc.*``, ``modulation_network.*`` and ``style_mapper.*`` plus the frozen
``stylegan_G.*``, ``clip_loss.*`` and ``criterionVGG.*``. :func:`load_official_checkpoint` turns
one into a :class:`~vsode.model.VidStyleODE`:

- the key names go through the one conversion table of :mod:`vsode.checkpoints.convert`, strictly
  (a key it cannot map, a missing key, a wrong shape or dtype, or duplicated ODE-function copies
  that differ are an :class:`~vsode.errors.InputError` naming the released key);
- the architecture comes from ``preset`` ("ffhq" for the RAVDESS face configuration, "fashion");
  the dtype of the ConvGRU, both ODE nets and transform_z0 comes from the file (float64 in
  released runs, so the model reproduces the released float64 arithmetic);
- the frozen backbones in the file are ignored: the model names the preset's generator, pSp
  encoder, CLIP and DINO, which :func:`vsode.model.load_model` resolves. With
  ``use_embedded_generator=True`` the generator stored in the file (``stylegan_G.G.*``, whatever
  the run loaded: the released loader prefers the non-EMA ``g`` of a full rosinality file) is
  attached instead;
- the file is read without executing code from it (see :mod:`vsode.checkpoints.convert`):
  ``weights_only=True`` first, then, for the extra objects Lightning pickles (hyper-parameters,
  callback states), a reader that resolves only torch's tensor-rebuilding allow-list and turns
  every other class or function named in the pickle into an inert placeholder, never importing it.

:func:`import_official_checkpoint` (``vsode import-official``) writes the result as a
``vsode/vidstyleode@1`` checkpoint usable as ``--model``; :func:`to_official_state_dict` goes back
to the released key names.

Stage API
---------
Every stage of a :class:`~vsode.model.VidStyleODE` is a plain module call, for research and for
checking against the released modules stage by stage (``B`` videos, ``T`` observed frames, ``Tq``
query times; *time-major* rows are ``t·B + b``, see :func:`vsode.dynamics.time_major`):

``model.dynamics.encode(frames, times, mask=None) -> z_d0``
    frames ``B×T×3×H×W`` in [0, 1] (resized bicubically to ``config.dynamics.img_size``, 128×128
    for ffhq), ``times`` the ``T`` normalised times, strictly increasing from 0, ``mask`` ``T×1``
    (or ``T`` or ``B×T``) of 0/1. Returns ``z_d0`` ``B×C×h×w`` (256×8×8 for ffhq) in the dynamics
    dtype. Released: ``bVAE_enc.encoder_z0`` on the ``swapae_encoder`` features.
``model.dynamics.solve(z_d0, times) -> (states, tokens)``
    one dopri5 solve of the decoder ODE at every normalised query time. ``states``
    ``B×Tq×C×h×w`` (dynamics dtype), ``tokens`` ``(Tq·B)×(h·w)×512`` float32, time-major rows and
    row-major cells (the 1×1 lift ``conv1x1`` applied). Released: ``bVAE_enc.diffeq_solver`` and
    the tokenisation of the LightningModule.
``model.modulation(style_token, tokens) -> [c_coarse, c_medium, c_fine]``
    ``style_token`` ``N×512`` or ``N×1×512`` (z_S repeated to one row per token row), tokens
    ``N×(h·w)×512``; each condition ``N×512``. Released: ``modulation_network``.
``model.mapper(content_code, conds) -> w``
    ``content_code`` ``N×18×512`` (z_C repeated over time, time-major), the three conditions;
    ``w = z_C + 0.01·Δ``, ``N×18×512``. Released: ``style_mapper`` plus the ``0.01`` delta weight.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoints.convert import (
    TRAINABLE_ROOTS,
    embedded_generator,
    from_official,
    official_state_dtype,
    read_foreign_checkpoint,
    to_official,
)
from .errors import InputError, VsodeError
from .model import BACKBONE_KINDS, FORMAT, ModelConfig, VidStyleODE, save_model
from .model.presets import as_config
from .progress import Progress, ensure


@dataclasses.dataclass
class OfficialCheckpoint:
    """A released checkpoint read by :func:`read_official_checkpoint`.

    model: the converted model (CPU, eval mode; the embedded generator attached if asked for).
    epoch, global_step, lightning_version: the Lightning bookkeeping, when the file has it.
    replaced: globals of the pickle that were read as inert placeholders (never imported).
    ignored: frozen prefix → number of keys skipped.
    """

    model: VidStyleODE
    epoch: int | None
    global_step: int | None
    lightning_version: str | None
    replaced: tuple[str, ...]
    ignored: dict[str, int]


def _uninitialised_model(config: ModelConfig) -> VidStyleODE:
    """A model whose weights are allocated but not initialised: the strict load overwrites them."""
    with torch.device("meta"):
        model = VidStyleODE(config)
    persistent = set(model.state_dict())
    tensors = [*model.named_parameters(), *model.named_buffers()]
    if any(name not in persistent for name, _ in tensors):  # a buffer no state dict carries
        return VidStyleODE(config)
    return model.to_empty(device="cpu")


def _state_dict_of(data: Any, label: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(state_dict, top level) of a whole Lightning checkpoint or a bare state dict."""
    if not isinstance(data, Mapping):
        raise InputError(f"{label} is not a checkpoint dict (it holds a {type(data).__name__})")
    if data.get("format") == FORMAT:
        raise InputError(f"{label} is already a vsode VidStyleODE checkpoint; use it as --model directly")
    inner = data.get("state_dict")
    if isinstance(inner, Mapping):
        return inner, data
    if any(isinstance(k, str) and k.startswith(TRAINABLE_ROOTS) for k in data):
        return data, {}
    keys = [k for k in data if isinstance(k, str)][:8]
    raise InputError(
        f"{label} is not a checkpoint of the released VidStyleODE code: no state_dict and no "
        f"{', '.join(r + '*' for r in TRAINABLE_ROOTS)} keys (found {keys})"
    )


def _plain(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def read_official_checkpoint(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    preset: str | ModelConfig = "ffhq",
    use_embedded_generator: bool = False,
) -> OfficialCheckpoint:
    """:func:`load_official_checkpoint` with the file's bookkeeping (see :class:`OfficialCheckpoint`)."""
    if isinstance(source, Mapping):
        label, data, replaced = "checkpoint", source, ()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"checkpoint file {path} does not exist")
        foreign = read_foreign_checkpoint(path)
        label, data, replaced = str(path), foreign.data, foreign.replaced
    else:
        raise InputError(f"a checkpoint is a path or a dict, not {type(source).__name__}")
    state, top = _state_dict_of(data, label)

    config = as_config(preset)
    dtype = official_state_dtype(state)
    if dtype is not None and dtype != config.dynamics.dtype:
        config = config.override({"dynamics.dtype": dtype})  # the file decides (float64 as released)
    model = _uninitialised_model(config)
    name = preset if isinstance(preset, str) else config.preset
    try:
        converted = from_official(state, model.state_dict(), keep_generator=use_embedded_generator,
                                  label=label)
    except InputError as err:
        if "shape" not in str(err):
            raise
        raise InputError(
            f"{err} (model built from preset {name!r}: released face runs are 'ffhq', fashion runs 'fashion')"
        ) from None
    model.load_state_dict(converted.state_dict, strict=True)
    refs: dict[str, dict[str, Any] | None] = {}
    for kind in BACKBONE_KINDS:
        backbone = getattr(config.backbones, kind)
        refs[kind] = {"name": backbone, "kind": kind} if backbone else None
    if converted.generator is not None:
        model.attach(generator=embedded_generator(converted.generator, label=label))
        refs["generator"] = None  # not a file yet: import_official_checkpoint writes it beside the model
    model.backbone_refs = refs
    return OfficialCheckpoint(
        model=model.eval(),
        epoch=_plain(top.get("epoch"), int),
        global_step=_plain(top.get("global_step"), int),
        lightning_version=_plain(top.get("pytorch-lightning_version"), str),
        replaced=tuple(replaced),
        ignored={p.rstrip("."): n for p, n in converted.ignored.items() if n},
    )


def load_official_checkpoint(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    preset: str | ModelConfig = "ffhq",
    use_embedded_generator: bool = False,
    device: str | torch.device = "cpu",
) -> VidStyleODE:
    """A :class:`VidStyleODE` from a checkpoint trained with the released VidStyleODE code.

    Parameters
    ----------
    source: the ``.ckpt`` path, or the dict ``torch.load`` returns: the whole Lightning
        checkpoint (``{"state_dict": ..., "epoch": ...}``) or its ``state_dict``.
    preset: the architecture the run used: "ffhq" (RAVDESS faces) or "fashion", or a
        :class:`ModelConfig`. The ODE dtype is taken from the file whatever the preset says.
    use_embedded_generator: attach the StyleGAN2 stored in the file (``stylegan_G.G.*``) instead
        of leaving the preset's generator to :func:`vsode.model.load_model`.
    device: where the model goes.

    The model is in eval mode with ``backbone_refs`` naming the preset's frozen backbones (no
    SHA-256: the released checkpoint does not record which files the run used). Reading never
    executes code from the file (module doc).

    Raises :class:`InputError` for a file that is not a released VidStyleODE checkpoint or does
    not fit the preset (the message names the released key), :class:`UnsafeCheckpointError` for
    a TorchScript archive.
    """
    ckpt = read_official_checkpoint(source, preset=preset, use_embedded_generator=use_embedded_generator)
    return ckpt.model.to(device)


def to_official_state_dict(model: VidStyleODE) -> dict[str, torch.Tensor]:
    """The model's trainable weights under the released key names, in the released order, with
    the duplicated ``bVAE_enc.encoder_z0.z0_diffeq_solver.*`` keys (the same tensors as
    ``bVAE_enc.z0_diffeq_solver.*``). Like ``state_dict()``, CPU tensors share memory with the
    model; no frozen backbones."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return to_official(state)


# --- vsode import-official -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What :func:`import_official_checkpoint` wrote and found."""

    output: Path
    generator: Path | None
    preset: str
    dtype: str
    epoch: int | None
    global_step: int | None
    tensors: int
    replaced: tuple[str, ...]
    ignored: dict[str, int]
    backbones: dict[str, str | None]
    missing_backbones: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        d["generator"] = str(self.generator) if self.generator else None
        d["replaced"] = list(self.replaced)
        d["missing_backbones"] = list(self.missing_backbones)
        return d


def generator_path(output: str | os.PathLike) -> Path:
    """Where ``--use-embedded-generator`` writes the generator: ``OUTPUT-STEM.generator.pt``."""
    output = Path(output)
    return output.with_name(output.stem + ".generator.pt")


def import_official_checkpoint(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    preset: str = "ffhq",
    use_embedded_generator: bool = False,
    force: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Convert a released ``.ckpt`` into a ``vsode/vidstyleode@1`` checkpoint at ``output``.

    The checkpoint holds the config (ODE dtype from the file), the trainable weights, the
    preset's backbone names and ``imported_from`` (file name, SHA-256, epoch, global step). With
    ``use_embedded_generator`` the file's generator is written to :func:`generator_path` as a
    rosinality ``{"g_ema": ...}`` checkpoint and the model names it (path + SHA-256). Files are
    written through a temporary file and never overwritten without ``force``. ``cache_dir`` is
    the model cache in which to check that the named backbones are installed (reported in
    ``missing_backbones``; nothing is downloaded).
    """
    from .checkpoints.cache import resolve, sha256_file
    from .fileio import check_output_path, save_torch

    progress = ensure(progress)
    src = Path(source)
    if not src.is_file():
        raise InputError(f"checkpoint file {src} does not exist")
    out = check_output_path(output, force=force)
    gen_out = generator_path(out) if use_embedded_generator else None
    if gen_out is not None:
        check_output_path(gen_out, force=force)
    with progress.stage("read checkpoint"):
        ckpt = read_official_checkpoint(src, preset=preset, use_embedded_generator=use_embedded_generator)
    digest = sha256_file(src, progress, label="hash checkpoint")
    model = ckpt.model
    if gen_out is not None:
        with progress.stage("write generator"):
            state = {k: v.detach().cpu() for k, v in model.generator.state_dict().items()}
            save_torch({"g_ema": state}, gen_out, force=force)
            model.backbone_refs["generator"] = {
                "name": str(gen_out.resolve()), "sha256": sha256_file(gen_out), "kind": "generator",
            }
    imported = {
        "file": src.name, "sha256": digest, "epoch": ckpt.epoch, "global_step": ckpt.global_step,
        "lightning_version": ckpt.lightning_version, "preset": preset,
    }
    with progress.stage("write model"):
        try:
            save_model(model, out, force=force, extra={"imported_from": imported})
        except BaseException:
            if gen_out is not None:
                gen_out.unlink(missing_ok=True)
            raise
    names = {k: (v or {}).get("name") for k, v in model.backbone_refs.items()}
    missing = []
    for kind, name in names.items():
        if name is None or (gen_out is not None and kind == "generator"):
            continue
        try:
            resolve(name, cache_dir=cache_dir)
        except VsodeError:
            missing.append(name)
    return ImportResult(
        output=out,
        generator=gen_out,
        preset=preset,
        dtype=model.config.dynamics.dtype,
        epoch=ckpt.epoch,
        global_step=ckpt.global_step,
        tensors=len(model.state_dict()),
        replaced=ckpt.replaced,
        ignored=ckpt.ignored,
        backbones=names,
        missing_backbones=tuple(missing),
    )


__all__ = [
    "ImportResult",
    "OfficialCheckpoint",
    "generator_path",
    "import_official_checkpoint",
    "load_official_checkpoint",
    "read_official_checkpoint",
    "to_official_state_dict",
]
