"""Where checkpoints live on disk, and turning a name into a file.

Layout under the cache root (``--cache-dir``, else ``$VSODE_CACHE_DIR``, else the platform's user
cache folder for "vsode")::

    checkpoints/<name>/<file_name>        the verified file (only ever created by os.replace)
    checkpoints/<name>/<file_name>.part   an interrupted download, resumed by the next one
    checkpoints/<name>/install.json       where it came from, its size and SHA-256
    checkpoints/<name>/.lock              held while a process installs it

A folder per registry name keeps two entries with the same file name apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from ..errors import ChecksumError, InputError, ModelMissingError, VsodeError
from ..fileio import atomic_write_bytes
from ..progress import Progress, ensure
from .registry import REGISTRY, Entry, Registry

ENV_CACHE_DIR = "VSODE_CACHE_DIR"
ENV_OFFLINE = "VSODE_OFFLINE"

CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$VSODE_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir("vsode")``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vsode"))


def offline_requested(flag: bool = False) -> bool:
    """True when ``flag`` is set or ``$VSODE_OFFLINE`` is 1/true/yes/on."""
    return flag or os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: Path, progress: Progress | None = None, *, label: str | None = None) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks, with an optional progress stage."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with ensure(progress).stage(label or f"hash {path.name}", total=size, unit="B") as stage:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                stage.advance(len(chunk))
    return digest.hexdigest()


@dataclass(frozen=True)
class Cache:
    """The checkpoint cache rooted at ``root``."""

    root: Path

    @classmethod
    def open(cls, cache_dir: str | os.PathLike | None = None) -> "Cache":
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        if root.exists() and not root.is_dir():
            raise InputError(f"cache folder {root} is a file; give a folder with --cache-dir")
        return cls(root)

    def folder(self, entry: Entry) -> Path:
        return self.root / "checkpoints" / entry.name

    def path(self, entry: Entry) -> Path:
        """The installed file: inside the package for builtin entries, else in the cache."""
        if entry.builtin:
            base = importlib.resources.files(entry.builtin_package)
            return Path(str(base.joinpath(*entry.builtin_path.split("/"))))
        return self.folder(entry) / entry.file_name

    def part_path(self, entry: Entry) -> Path:
        return self.folder(entry) / (entry.file_name + ".part")

    def record_path(self, entry: Entry) -> Path:
        return self.folder(entry) / "install.json"

    def is_installed(self, entry: Entry) -> bool:
        return self.path(entry).is_file()

    def read_record(self, entry: Entry) -> dict[str, Any] | None:
        """The install record, or None if missing or unreadable (it is advisory only)."""
        try:
            return json.loads(self.record_path(entry).read_text())
        except (OSError, ValueError):
            return None

    def write_record(self, entry: Entry, record: dict[str, Any]) -> None:
        atomic_write_bytes(self.record_path(entry), (json.dumps(record, indent=2) + "\n").encode())

    @contextlib.contextmanager
    def lock(self, entry: Entry) -> Iterator[None]:
        """Hold an exclusive lock on the entry's folder while installing (POSIX; a no-op elsewhere)."""
        folder = self.folder(entry)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create cache folder {folder}: {err.strerror}") from None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent installs are the user's risk
            yield
            return
        with open(folder / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise VsodeError(
                    f"another vsode process is installing {entry.name} (lock {folder / '.lock'}); "
                    "wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith((".", "~")) or bool(Path(text).suffix)


def resolve(
    name_or_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
) -> Path:
    """Turn a registered model name or a file path into an existing checkpoint file.

    Never touches the network and never hashes (``vsode models --verify`` does that).

    Parameters
    ----------
    name_or_path: a registry name (``e4e-ffhq-encode``) or the path of a checkpoint file.
    cache_dir: the cache root; default ``$VSODE_CACHE_DIR`` or the user cache folder.
    registry: the registry to look names up in; default :data:`REGISTRY`.

    Raises :class:`ModelMissingError` (exit 3) naming the command that installs a registered model
    that is not installed, :class:`ChecksumError` if the cached file has the wrong size, and
    :class:`InputError` (exit 2) for a path that does not exist or an unknown name.
    """
    registry = REGISTRY if registry is None else registry
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and text in registry:
        entry = registry.get(text)
        path = Cache.open(cache_dir).path(entry)
        if not path.is_file():
            raise ModelMissingError(f"model {entry.name} is not installed (no {path}); {entry.how_to_get()}")
        if entry.size is not None and not entry.builtin and path.stat().st_size != entry.size:
            raise ChecksumError(
                f"cached {entry.name} at {path} has {path.stat().st_size} bytes, expected {entry.size}; "
                f"fetch it again with `vsode download {entry.name} --force`"
            )
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise InputError(f"checkpoint {path} is a folder; give the checkpoint file")
    if not isinstance(name_or_path, str) or _looks_like_path(text):
        raise InputError(f"checkpoint file {path} does not exist")
    raise registry.unknown(text)


@dataclass(frozen=True)
class ModelStatus:
    """One line of ``vsode models``: a registry entry and what the cache holds for it.

    ``check`` is None unless verified: then ``ok``, ``mismatch`` or ``no-hash`` (neither the
    registry nor an install record has a hash to compare with).
    """

    entry: Entry
    path: Path
    installed: bool
    installed_size: int | None
    record: dict[str, Any] | None
    check: str | None = None
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = self.record or {}
        return {
            **self.entry.to_dict(),
            "sha256": self.entry.sha256 or record.get("sha256"),
            "installed": self.installed,
            "installed_size": self.installed_size,
            "path": str(self.path),
            "source": record.get("source"),
            "check": self.check,
            "actual_sha256": self.actual_sha256,
            "problem": self.problem,
        }


def list_models(
    *,
    cache_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
    verify: bool = False,
    progress: Progress | None = None,
) -> list[ModelStatus]:
    """The status of every registered model; with ``verify``, re-hash the installed files.

    Mismatches are reported in the result (``check == "mismatch"``), not raised: the caller
    decides (the CLI exits 1).
    """
    registry = REGISTRY if registry is None else registry
    cache = Cache.open(cache_dir)
    out = []
    for entry in registry:
        path = cache.path(entry)
        installed = path.is_file()
        status = ModelStatus(
            entry=entry,
            path=path,
            installed=installed,
            installed_size=path.stat().st_size if installed else None,
            record=None if entry.builtin else cache.read_record(entry),
        )
        if verify and installed:
            status = _verify(status, progress)
        out.append(status)
    return out


def _verify(status: ModelStatus, progress: Progress | None) -> ModelStatus:
    entry = status.entry
    expected = entry.sha256 or (status.record or {}).get("sha256")
    if entry.size is not None and status.installed_size != entry.size:
        return _replace(
            status, "mismatch", expected, None, f"size {status.installed_size} B, expected {entry.size} B"
        )
    actual = sha256_file(status.path, progress, label=f"verify {entry.name}")
    if expected is None:
        return _replace(status, "no-hash", None, actual, None)
    if actual != expected:
        return _replace(status, "mismatch", expected, actual, f"SHA-256 {actual}, expected {expected}")
    return _replace(status, "ok", expected, actual, None)


def _replace(
    status: ModelStatus, check: str, expected: str | None, actual: str | None, problem: str | None
) -> ModelStatus:
    return replace(status, check=check, expected_sha256=expected, actual_sha256=actual, problem=problem)
