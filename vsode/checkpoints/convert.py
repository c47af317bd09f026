"""Foreign VidStyleODE layouts: the released code's Lightning checkpoints, read and renamed.

The authors' code (PyTorch Lightning) saves ``{"state_dict": ..., "epoch", "global_step",
"callbacks", "optimizer_states", "loops", ...}``. Its ``state_dict`` holds the three trainable
modules under ``bVAE_enc.``, ``modulation_network.`` and ``style_mapper.`` and the frozen
``stylegan_G.``, ``clip_loss.`` and ``criterionVGG.`` (design doc §16). This module is the one
place that knows those names:

- :data:`OFFICIAL_PREFIXES` is the whole conversion table: a vsode key is a released key with one
  prefix swapped. The released encoder registers its ODE function twice, so the 8 keys under
  ``bVAE_enc.encoder_z0.z0_diffeq_solver.ode_func.`` repeat ``bVAE_enc.z0_diffeq_solver.ode_func.``
  (:data:`ALIAS_PREFIXES`); they must hold identical tensors and are restored on the way back.
- :func:`from_official` maps a released state dict onto a model's, strictly: a key it cannot map,
  a key the model has that the file lacks, a wrong shape or dtype, or aliases that differ are an
  :class:`~vsode.errors.InputError` naming the released key. The frozen backbones are skipped
  (vsode resolves its own) unless the embedded generator is asked for.
- :func:`to_official` is the inverse, aliases included.

Reading without running code. :func:`read_foreign_checkpoint` first tries
:func:`vsode.checkpoints.load.safe_load` (``weights_only=True``). Lightning checkpoints usually
pickle more than tensors (hyper-parameters as an ``AttributeDict``, OmegaConf or argparse object,
callback states, ``pytorch_lightning.utilities`` objects), which that refuses. The fallback reads
the same file through ``torch.load`` with a restricted unpickler: a global is resolved only from
the allow-list of torch's own weights-only loader (tensor and storage rebuilders, dtypes,
``OrderedDict``...) plus :data:`~vsode.checkpoints.load.ALLOWED_GLOBALS`, looked up by name in
that table and never imported. Every other global (classes, functions, ``os.system``) becomes an
inert :class:`ForeignObject` class that only records its constructor arguments and state, so no
code from the file runs and no module named in it is imported. Tensors and plain containers come
out unchanged; the names replaced are reported. TorchScript archives are refused outright.
"""

from __future__ import annotations

import _compat_pickle
import dataclasses
import os
import pickle
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, UnsafeCheckpointError
from .load import ALLOWED_GLOBALS, _is_torchscript, _short, safe_load

# vsode sub-module of Dynamics → released sub-module of VideoEncoderWLatentODE (design doc §16)
DYNAMICS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("frame_encoder.", "swapae_encoder."),
    ("ode_enc.", "z0_diffeq_solver.ode_func."),
    ("gru.", "encoder_z0.cell_list.0."),
    ("transform_z0.", "encoder_z0.transform_z0."),
    ("ode_dec.", "diffeq_solver.ode_func."),
    ("to_tokens.", "conv1x1."),
)
# the conversion table: vsode VidStyleODE key prefix → released LightningModule key prefix
OFFICIAL_PREFIXES: tuple[tuple[str, str], ...] = (
    *((f"dynamics.{ours}", f"bVAE_enc.{theirs}") for ours, theirs in DYNAMICS_PREFIXES),
    ("modulation.", "modulation_network."),
    ("mapper.", "style_mapper."),
)
# released duplicate prefix → the released prefix it repeats (one module registered twice)
ALIAS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("bVAE_enc.encoder_z0.z0_diffeq_solver.ode_func.", "bVAE_enc.z0_diffeq_solver.ode_func."),
)
# frozen modules stored in every released checkpoint; vsode resolves its own
FROZEN_PREFIXES: tuple[str, ...] = ("stylegan_G.", "clip_loss.", "criterionVGG.")
GENERATOR_PREFIX = "stylegan_G.G."  # the embedded rosinality generator
# released keys of the parts the released code runs in float64
FLOAT64_PREFIXES: tuple[str, ...] = tuple(
    f"bVAE_enc.{theirs}" for ours, theirs in DYNAMICS_PREFIXES
    if ours in ("ode_enc.", "gru.", "transform_z0.", "ode_dec.")
)
TRAINABLE_ROOTS = ("bVAE_enc.", "modulation_network.", "style_mapper.")


def official_key(key: str) -> str:
    """The released name of a vsode VidStyleODE state-dict key."""
    for ours, theirs in OFFICIAL_PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    raise InputError(f"{key!r} is not a key of a vsode VidStyleODE")


def vsode_key(key: str) -> str | None:
    """The vsode name of a released trainable key (aliases map to their original), else None."""
    for alias, original in ALIAS_PREFIXES:
        if key.startswith(alias):
            key = original + key[len(alias) :]
    for ours, theirs in OFFICIAL_PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return None


def _alias_of(key: str) -> str | None:
    for alias, original in ALIAS_PREFIXES:
        if key.startswith(alias):
            return original + key[len(alias) :]
    return None


def _aliases(key: str) -> list[str]:
    """The released duplicates of a released key."""
    return [alias + key[len(original) :] for alias, original in ALIAS_PREFIXES if key.startswith(original)]


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# --- the conversion --------------------------------------------------------------------------------


@dataclasses.dataclass
class Converted:
    """A released state dict split by :func:`from_official`.

    state_dict: vsode keys → tensors, ready for ``model.load_state_dict(strict=True)``.
    generator: the embedded ``stylegan_G.G.*`` state dict (prefix stripped), when asked for.
    ignored: frozen prefix → number of its keys that were skipped.
    """

    state_dict: dict[str, torch.Tensor]
    generator: dict[str, torch.Tensor] | None
    ignored: dict[str, int]


def official_state_dtype(state: Mapping[str, Any]) -> str | None:
    """``"float64"`` or ``"float32"``: the dtype of the released ConvGRU, ODE nets and transform_z0
    in ``state`` (the released code trains them in float64). None when the file has none of them.
    """
    found: dict[torch.dtype, str] = {}
    for key, value in state.items():
        if isinstance(key, str) and key.startswith(FLOAT64_PREFIXES) and isinstance(value, torch.Tensor):
            found.setdefault(value.dtype, key)
    if not found:
        return None
    if len(found) > 1:
        detail = ", ".join(f"{k} is {str(d).removeprefix('torch.')}" for d, k in found.items())
        raise InputError(f"the ODE-ConvGRU tensors mix dtypes ({detail}); they must share one")
    dtype = next(iter(found))
    if dtype not in (torch.float32, torch.float64):
        raise InputError(
            f"{found[dtype]} is {str(dtype).removeprefix('torch.')}; vsode runs the ODE state in "
            "float32 or float64"
        )
    return str(dtype).removeprefix("torch.")


def from_official(
    state: Mapping[str, Any],
    expected: Mapping[str, torch.Tensor],
    *,
    keep_generator: bool = False,
    label: str = "checkpoint",
) -> Converted:
    """Map a released ``state_dict`` onto vsode's keys, strictly.

    Parameters
    ----------
    state: the released LightningModule's ``state_dict`` (``bVAE_enc.*``, ``modulation_network.*``,
        ``style_mapper.*``, frozen ``stylegan_G.*``, ``clip_loss.*``, ``criterionVGG.*``).
    expected: the target model's ``state_dict()`` (only keys, shapes and dtypes are read).
    keep_generator: also return the embedded generator (``stylegan_G.G.*``, prefix stripped).
    label: names the source in error messages.

    Raises :class:`InputError` naming the released keys that cannot be mapped, that the model
    needs but the file lacks, whose shape or dtype differs from the model's, or whose duplicated
    ODE-function copies differ.
    """
    if not isinstance(state, Mapping):
        raise InputError(f"{label}: a state dict is a dict, not a {type(state).__name__}")
    ours: dict[str, torch.Tensor] = {}
    generator: dict[str, torch.Tensor] = {}
    ignored = {prefix: 0 for prefix in FROZEN_PREFIXES}
    unknown: list[str] = []
    not_tensors: list[str] = []
    for key, value in state.items():
        if not isinstance(key, str):
            unknown.append(repr(key))
            continue
        frozen = next((p for p in FROZEN_PREFIXES if key.startswith(p)), None)
        if frozen is not None:
            if keep_generator and key.startswith(GENERATOR_PREFIX):
                if not isinstance(value, torch.Tensor):
                    not_tensors.append(key)
                else:
                    generator[key[len(GENERATOR_PREFIX) :]] = value
            else:
                ignored[frozen] += 1
            continue
        name = vsode_key(key)
        if _alias_of(key) is not None and name in expected:
            continue  # checked against its original below
        if name is None or name not in expected:
            unknown.append(key)
        elif not isinstance(value, torch.Tensor):
            not_tensors.append(key)
        else:
            ours[name] = value
    problems = []
    if unknown:
        problems.append(f"unknown key(s) {_names(unknown)} (no vsode counterpart)")
    if not_tensors:
        problems.append(f"{_names(not_tensors)} hold(s) no tensor")
    missing = [official_key(k) for k in expected if k not in ours]
    missing += [
        alias for k in expected for alias in _aliases(official_key(k)) if alias not in state
    ]
    if missing:
        problems.append(f"missing key(s) {_names(missing)}")
    wrong = []
    for name, value in ours.items():
        want = expected[name]
        if tuple(value.shape) != tuple(want.shape):
            wrong.append(
                f"{official_key(name)!r} has shape {tuple(value.shape)}, the model expects {tuple(want.shape)}"
            )
        elif value.dtype != want.dtype:
            wrong.append(
                f"{official_key(name)!r} is {str(value.dtype).removeprefix('torch.')}, the model expects "
                f"{str(want.dtype).removeprefix('torch.')}"
            )
    problems += wrong[:4] + ([f"{len(wrong) - 4} more mismatches"] if len(wrong) > 4 else [])
    for key, value in state.items():
        original = _alias_of(key) if isinstance(key, str) else None
        if original is None or vsode_key(key) not in expected or original not in state:
            continue  # an unknown alias or a missing original is reported above
        first = state[original]
        same = isinstance(value, torch.Tensor) and isinstance(first, torch.Tensor) and \
            first.shape == value.shape and first.dtype == value.dtype and torch.equal(first, value)
        if not same:
            problems.append(
                f"{key!r} differs from {original!r} (the released code registers one ODE function "
                "twice, so the two copies must be identical)"
            )
    if keep_generator and not generator:
        problems.append(f"no embedded generator ({GENERATOR_PREFIX}* keys) to use")
    if problems:
        raise InputError(f"{label} does not fit the model: " + "; ".join(problems))
    ordered = {k: ours[k] for k in expected}
    return Converted(ordered, generator if keep_generator else None, ignored)


def to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A vsode VidStyleODE state dict under the released names, in the released order.

    The duplicated ODE-function keys are added right after their originals and hold the very same
    tensor objects (as in a state dict of the released module, where one module is registered
    twice). Frozen backbones are not included.
    """
    out: dict[str, torch.Tensor] = {}
    pending: list[tuple[str, torch.Tensor]] = []
    for key, value in state.items():
        name = official_key(key)
        if pending and not _aliases(name):
            out.update(pending)  # the duplicates follow the block they repeat
            pending = []
        out[name] = value
        pending += [(alias, value) for alias in _aliases(name)]
    out.update(pending)
    return out


def embedded_generator(state: Mapping[str, torch.Tensor], *, label: str = "checkpoint") -> Any:
    """Build the released checkpoint's generator (``stylegan_G.G.*``, stripped) as a vsode
    :class:`~vsode.stylegan2.Generator`, strictly, through :func:`vsode.stylegan2.load_generator`.

    It is whatever generator the run loaded: the released loader prefers the non-EMA ``g`` of a
    full rosinality file (design doc §5), so this may differ from the ``g_ema`` vsode renders.
    """
    from ..stylegan2 import load_generator

    try:
        return load_generator(dict(state))
    except InputError as err:
        raise InputError(
            f"{label}: the embedded generator ({GENERATOR_PREFIX}*) cannot be loaded: {err}"
        ) from None


# --- reading a Lightning checkpoint without running it ---------------------------------------------


class ForeignObject:
    """An inert stand-in for an object of a class (or a call of a function) the reader did not
    import. It keeps what the pickle gave it: ``args``/``kwargs`` (constructor or call arguments),
    ``state`` (``__setstate__``), ``items`` (dict entries) and ``list`` (list entries)."""

    foreign_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "ForeignObject":
        self = object.__new__(cls)
        self.__dict__.update(args=args, kwargs=kwargs, state=None, items={}, list=[])
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:
        self.__dict__["list"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["list"].extend(values)

    def add(self, value: Any) -> None:
        self.__dict__["list"].append(value)

    def __call__(self, *args: Any, **kwargs: Any) -> "ForeignObject":
        # a pickle may call what another call returned; the answer stays inert
        return _placeholder(f"{self.foreign_name}()", {})(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<foreign {self.foreign_name}>"


def _placeholder(full_name: str, cache: dict[str, type]) -> type:
    cls = cache.get(full_name)
    if cls is None:
        short = full_name.rsplit(".", 1)[-1] or "Foreign"
        cls = type(short, (ForeignObject,), {"foreign_name": full_name, "__module__": __name__})
        cache[full_name] = cls
    return cls


def _allowed_globals() -> dict[str, Any]:
    """Globals the reader resolves for real: torch's weights-only allow-list (tensor and storage
    rebuilders, dtypes, devices, ``OrderedDict``...) and vsode's :data:`ALLOWED_GLOBALS`."""
    table: dict[str, Any] = {}
    own = getattr(getattr(torch, "_weights_only_unpickler", None), "_get_allowed_globals", None)
    if own is not None:
        table.update(own())
    else:  # a torch without the private table: the rebuilders a state dict needs
        import torch._utils as tu

        table["collections.OrderedDict"] = OrderedDict
        table["torch.Size"] = torch.Size
        table["torch.device"] = torch.device
        table["torch.nn.parameter.Parameter"] = torch.nn.Parameter
        for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                     "_rebuild_parameter_with_state"):
            if hasattr(tu, name):
                table[f"torch._utils.{name}"] = getattr(tu, name)
        for name in dir(torch):
            if isinstance(getattr(torch, name, None), torch.dtype):
                table[f"torch.{name}"] = getattr(torch, name)
    table.update({f"{c.__module__}.{c.__qualname__}": c for c in ALLOWED_GLOBALS})
    return table


def _inert_pickle_module(replaced: dict[str, type]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module whose unpickler never imports: see the module doc."""
    allowed = _allowed_globals()

    class InertUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # protocol-2 pickles (torch.save's default) spell Python 3 names the Python 2 way
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            full = f"{module}.{name}"
            if full in allowed:
                return allowed[full]
            return _placeholder(full, replaced)

    def load(file: Any, **kwargs: Any) -> Any:
        return InertUnpickler(file, **kwargs).load()

    module = types.ModuleType("vsode_inert_pickle")
    module.Unpickler = InertUnpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return module


@dataclasses.dataclass(frozen=True)
class ForeignCheckpoint:
    """What :func:`read_foreign_checkpoint` read: ``data`` as ``torch.load`` would return it, with
    every global outside the allow-list replaced by a :class:`ForeignObject` class; ``replaced``
    names those globals (empty when ``weights_only=True`` could read the file as it is)."""

    data: Any
    replaced: tuple[str, ...]


def read_foreign_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> ForeignCheckpoint:
    """Read a checkpoint written by foreign training code without executing anything in it.

    Tries :func:`safe_load`; if the pickle names globals outside its allow-list, reads it again
    with the inert unpickler (module doc). Large zip checkpoints are memory-mapped, so optimiser
    states and frozen backbones that are never used are not read into memory.

    Raises :class:`InputError` for a missing or unreadable file and
    :class:`UnsafeCheckpointError` for a TorchScript archive.
    """
    path = Path(path)
    try:
        return ForeignCheckpoint(safe_load(path, map_location=map_location), ())
    except UnsafeCheckpointError:
        if _is_torchscript(path):
            raise
    replaced: dict[str, type] = {}
    mmap = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Couldn't retrieve source code for container"
            data = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap,
                              pickle_module=_inert_pickle_module(replaced))
    except RuntimeError as err:
        if "explicit pickle_module" in str(err):  # TORCH_FORCE_WEIGHTS_ONLY_LOAD is set
            raise UnsafeCheckpointError(
                f"refused to read {path}: it pickles objects other than tensors, and "
                "TORCH_FORCE_WEIGHTS_ONLY_LOAD forbids vsode's inert reader; unset it"
            ) from None
        raise InputError(f"cannot read checkpoint {path}: {_short(err)} (corrupt or truncated?)") from None
    except Exception as err:  # anything the foreign data trips over: unreadable, never executed
        raise InputError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {_short(err)}"
        ) from None
    return ForeignCheckpoint(data, tuple(sorted(replaced)))
