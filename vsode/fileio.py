"""Writing files safely: a temporary file beside the target, renamed over it only on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError, OutputExistsError


def check_output_path(path: str | os.PathLike, *, force: bool) -> Path:
    """Validate an output path before any work starts.

    Raises :class:`OutputExistsError` if it exists and ``force`` is false, and :class:`InputError`
    if its folder does not exist or the path is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name with -o")
    if path.exists() and not force:
        raise OutputExistsError(f"output {path} already exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output folder {parent} does not exist; create it first")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    The temporary name keeps the target's suffix so tools that look at it (ffmpeg) still work.
    """
    target = check_output_path(path, force=force)
    tmp = temp_beside(target, "part")
    try:
        yield tmp
        if not force and target.exists():
            raise OutputExistsError(f"output {target} already exists; pass --force to overwrite it")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def temp_beside(target: Path, tag: str) -> Path:
    """Create an empty hidden temporary file next to ``target`` (same suffix) and return its path.

    It gets the permissions a plain ``open()`` would give (mkstemp's are private, 0600).
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".{tag}{target.suffix}",
                                dir=target.parent or ".")
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_torch(obj: Any, path: str | os.PathLike, *, force: bool = True) -> Path:
    """``torch.save`` through :func:`atomic_path`.

    The data goes through an open file object, so the archive's inner folder is torch's fixed
    "archive" rather than the temporary file's random name: the same object saves to the same bytes.
    """
    import torch

    with atomic_path(path, force=force) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = True) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)
