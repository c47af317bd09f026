"""Reading checkpoint files without running code from them, and checking a state dict's layout.

Every checkpoint goes through :func:`safe_load`, i.e. ``torch.load(..., weights_only=True)``:
tensors, plain containers and the few classes in :data:`ALLOWED_GLOBALS`. A pickle that names any
other global (``os.system``, a model class, ``numpy`` internals) is refused before anything of it
runs; the error names the file and the global. Before a strict ``load_state_dict``, every loader
calls :func:`check_layout`, so a file that does not fit is one line naming the keys.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from collections.abc import Mapping
from typing import IO, Any, Iterator

from ..errors import InputError, UnsafeCheckpointError

# Plain-data classes that real checkpoints hold, allowed only for the duration of a safe_load call.
# rosinality's train.py stores its argparse namespace under "args". (pSp/e4e "opts" is a dict.)
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

_STRING_OPS = frozenset(
    {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
# Globals torch's weights-only unpickler accepts by itself (tensor rebuilding, storages).
_TORCH_OWN = ("torch.", "collections.OrderedDict")


def safe_load(path_or_fileobj: str | os.PathLike | IO[bytes], *, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path_or_fileobj: a file path, or a seekable binary file object.
    map_location: passed to ``torch.load``; CPU by default (the published files hold CUDA
        tensors).

    Raises :class:`UnsafeCheckpointError` for a pickle that would import a global outside the
    allow-list (nothing from it is executed) or a TorchScript archive, and :class:`InputError`
    for a missing, truncated or unreadable file.
    """
    import torch

    if isinstance(path_or_fileobj, (str, os.PathLike)):
        path = Path(path_or_fileobj)
        if not path.is_file():
            raise InputError(f"checkpoint file {path} does not exist")
        label = str(path)
        source: Any = path
    else:
        label = getattr(path_or_fileobj, "name", None) or "<file object>"
        source = path_or_fileobj
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)), warnings.catch_warnings():
            # torch warns about pickle protocols and TorchScript before refusing; the error says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(source)
        if refused:
            raise UnsafeCheckpointError(
                f"refused to load {label}: its pickle imports {', '.join(refused)}, which could run "
                "arbitrary code; vsode loads only tensors and plain data (weights_only). Convert it "
                "to a plain state dict with code you trust"
            ) from None
        raise InputError(f"cannot read checkpoint {label}: {_short(err)}") from None
    except RuntimeError as err:
        if _is_torchscript(source):
            raise UnsafeCheckpointError(
                f"refused to load {label}: it is a TorchScript archive (it carries code), not a "
                "plain checkpoint; load it with the component that expects it"
            ) from None
        raise InputError(f"cannot read checkpoint {label}: {_short(err)} (corrupt or truncated?)") from None
    except (EOFError, KeyError, ValueError, IndexError, OSError, zipfile.BadZipFile) as err:
        raise InputError(
            f"cannot read checkpoint {label}: truncated or not a torch checkpoint "
            f"({type(err).__name__}{': ' + _short(err) if str(err) else ''})"
        ) from None


def check_layout(expected: Mapping[str, Any], state: Mapping[str, Any], what: str, *, hint: str = "") -> None:
    """Raise :class:`InputError` unless ``state`` holds exactly ``expected``'s keys, each a tensor
    of the expected shape (what ``load_state_dict(strict=True)`` needs; dtypes are not checked).

    The message is ``{what}: missing keys 'a', ...; unknown keys 'b', ...; wrong shapes 'c' (2, 3)
    (expected (3, 3)), ...{hint}``, naming the first 6 of each kind and counting the rest.

    Args:
        expected: the module's own ``state_dict()`` (a meta-device one will do: only shapes are read).
        state: the weights about to be loaded.
        what: the start of the message, naming the file and the layout it should have.
        hint: appended to the message (how to get a file that fits).
    """
    import torch

    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    wrong = [
        f"{k!r} {tuple(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__} "
        f"(expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape))
    ]
    parts = [
        f"{kind} {_first(names)}"
        for kind, names in (
            ("missing keys", [repr(k) for k in missing]),
            ("unknown keys", [repr(k) for k in unknown]),
            ("wrong shapes", wrong),
        )
        if names
    ]
    if parts:
        raise InputError(f"{what}: {'; '.join(parts)}{hint}")


def _first(items: list[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _short(err: BaseException) -> str:
    """The first sentence of an error message, for a one-line error."""
    text = " ".join(str(err).split()) or type(err).__name__
    first = text.split(". ")[0]
    return first if len(first) <= 200 else first[:197] + "..."


def _rewound(source: Any) -> IO[bytes]:
    if isinstance(source, Path):
        return open(source, "rb")
    source.seek(0)
    return source


def _is_torchscript(source: Any) -> bool:
    f = _rewound(source)
    try:
        if not zipfile.is_zipfile(f):
            return False
        f.seek(0)
        with zipfile.ZipFile(f) as z:
            return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    finally:
        if isinstance(source, Path):
            f.close()


def _refused_globals(source: Any) -> list[str]:
    """The globals a pickle names that torch does not allow by itself, found without unpickling.

    Reads the opcodes only (``pickletools``), so nothing in the file runs. Handles torch's zip
    format (``*/data.pkl``) and legacy / raw pickles (several pickles in a row).
    """
    f = _rewound(source)
    try:
        if zipfile.is_zipfile(f):
            f.seek(0)
            with zipfile.ZipFile(f) as z:
                names = [n for n in z.namelist() if n.endswith(".pkl")]
                found = [g for n in names for g in _pickle_globals(io.BytesIO(z.read(n)))]
        else:
            f.seek(0)
            found = list(_pickle_globals(f))
    except (OSError, zipfile.BadZipFile):
        return []
    finally:
        if isinstance(source, Path):
            f.close()
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in ALLOWED_GLOBALS}
    refused = [g for g in found if g not in allowed and not g.startswith(_TORCH_OWN)]
    return list(dict.fromkeys(refused))


def _pickle_globals(f: IO[bytes], max_pickles: int = 16) -> Iterator[str]:
    # Legacy torch files are a few pickles in a row followed by raw storage bytes, where
    # genops fails: stop there. STACK_GLOBAL takes module and name from the stack, so track the
    # strings pushed (directly or through the memo); this is a best effort for the message.
    for _ in range(max_pickles):
        pushed: list[str | None] = []
        memo: dict[int, str | None] = {}
        try:
            for op, arg, _pos in pickletools.genops(f):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    yield str(arg).replace(" ", ".")
                elif name in _STRING_OPS:
                    pushed.append(arg if isinstance(arg, str) else None)
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = pushed[-1] if pushed else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    pushed.append(memo.get(int(arg)))
                elif name == "STACK_GLOBAL":
                    if len(pushed) >= 2 and pushed[-2] and pushed[-1]:
                        yield f"{pushed[-2]}.{pushed[-1]}"
                    else:
                        yield "<a global named on the stack>"
                elif op.stack_after and name not in ("FRAME", "PROTO"):
                    pushed.append(None)
        except Exception:  # not a pickle (any more): raw storage bytes or garbage
            return
