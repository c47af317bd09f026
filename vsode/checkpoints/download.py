"""Installing checkpoints into the cache: HTTP download with resume, or import of a local copy.

A download streams into ``<file>.part`` beside the target, hashing as it goes (an existing part
file is hashed first and resumed with an HTTP Range request). Only a file whose size and SHA-256
match the registry is renamed into place, so the cache never holds a corrupt final file. A part
file that fails the check is deleted; one left by a dropped connection or Ctrl-C is kept for the
next run.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import requests

from .. import __version__
from ..errors import ChecksumError, InputError, ModelMissingError, VsodeError
from ..fileio import atomic_path
from ..progress import Progress, Stage, ensure
from .cache import CHUNK, Cache, offline_requested
from .registry import REGISTRY, DownloadSource, Entry, Registry

MAX_BACKOFF = 30.0
# Network reads: small enough that a dropped connection loses little (urllib3 drops a partly read
# chunk when the connection breaks).
NET_CHUNK = 1 << 16


@dataclass(frozen=True)
class DownloadOptions:
    """How :func:`download` talks to the network.

    Parameters
    ----------
    timeout: seconds to wait for a connection and for each read.
    retries: retries per URL after a network failure or a 5xx/429 answer (0 = one attempt).
        The part file is kept, so running the command again resumes.
    backoff: delay before the first retry, doubled for each next one (at most 30 s).
    allow_unverified: permit entries with no published SHA-256; the computed hash is recorded.
    force: download again even if the model is installed.
    offline: never touch the network (also ``$VSODE_OFFLINE``).
    mirror: a base URL tried first as ``<mirror>/<file name>`` (the CLI reads ``$VSODE_MIRROR``).
    """

    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    allow_unverified: bool = False
    force: bool = False
    offline: bool = False
    mirror: str | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise InputError(f"--timeout must be positive, got {self.timeout}")
        if not 0 <= self.retries <= 100:
            raise InputError(f"--retries must be between 0 and 100, got {self.retries}")
        if not self.backoff >= 0:
            raise InputError(f"backoff must be >= 0, got {self.backoff}")
        if self.mirror is not None and not self.mirror.startswith(("http://", "https://")):
            raise InputError(
                f"mirror must be an http(s) base URL (--mirror / VSODE_MIRROR), got {self.mirror!r}"
            )


@dataclass(frozen=True)
class InstallResult:
    """What one install did. ``status`` is ``downloaded``, ``imported``, ``present``, ``builtin``
    or ``failed`` (then ``error`` and ``exit_code`` say why).

    ``verified`` is True when the file's bytes matched the registry's pinned SHA-256;
    ``hash_status`` says where that pin comes from (``official``, ``third-party``, ``unpinned``).
    """

    name: str
    status: str
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None
    verified: bool = False
    hash_status: str = "unpinned"
    source: str | None = None
    resumed_from: int = 0
    attempts: int = 0
    warnings: tuple[str, ...] = ()
    error: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "sha256": self.sha256,
            "verified": self.verified,
            "hash_status": self.hash_status,
            "source": self.source,
            "resumed_from": self.resumed_from,
            "attempts": self.attempts,
            "warnings": list(self.warnings),
            "error": self.error,
        }


def install_many(
    names: list[str],
    *,
    all_models: bool = False,
    from_file: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
    options: DownloadOptions | None = None,
    progress: Progress | None = None,
) -> list[InstallResult]:
    """Install several models, going on after a failure (reported as a ``failed`` result).

    All names are checked first (:class:`InputError` listing the known names). ``all_models``
    takes every registered model not shipped in a package. With ``from_file`` exactly one name is
    allowed and the file is imported (:func:`import_file`) instead of downloaded.
    """
    registry = REGISTRY if registry is None else registry
    options = options or DownloadOptions()
    if all_models:
        if names or from_file is not None:
            raise InputError("--all takes no model names and no --from-file")
        names = [e.name for e in registry if not e.builtin]
    if not names:
        raise InputError(
            f"name the models to download, or pass --all; known models: {', '.join(registry.names())}"
        )
    for name in names:
        registry.get(name)
    if from_file is not None:
        if len(names) != 1:
            raise InputError("--from-file imports one file: give exactly one model name")
        return [
            import_file(
                names[0],
                from_file,
                cache_dir=cache_dir,
                registry=registry,
                allow_unverified=options.allow_unverified,
                force=options.force,
                progress=progress,
            )
        ]
    results = []
    for name in dict.fromkeys(names):
        try:
            result = download(
                name, cache_dir=cache_dir, registry=registry, options=options, progress=progress
            )
        except VsodeError as err:
            result = InstallResult(name=name, status="failed", error=str(err), exit_code=err.exit_code)
        results.append(result)
    return results


def download(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
    options: DownloadOptions | None = None,
    progress: Progress | None = None,
) -> InstallResult:
    """Download a registered model into the cache (no-op if installed), verified.

    Parameters
    ----------
    name: registry name.
    cache_dir: cache root; default ``$VSODE_CACHE_DIR`` or the user cache folder.
    registry: default :data:`REGISTRY`.
    options: network behaviour, see :class:`DownloadOptions`.
    progress: receives one stage, ``download NAME``, in bytes.

    Raises :class:`ModelMissingError` (exit 3) when offline or when the file has no scriptable
    URL (Drive only), :class:`InputError` for an unpinned entry without ``allow_unverified``,
    :class:`ChecksumError` (exit 1) when the bytes do not match, :class:`VsodeError` (exit 1)
    when every URL failed.
    """
    options = options or DownloadOptions()
    entry = (REGISTRY if registry is None else registry).get(name)
    cache = Cache.open(cache_dir)
    final = cache.path(entry)
    if entry.builtin or (final.is_file() and not options.force and _size_ok(entry, final)):
        return _present(entry, cache)
    if offline_requested(options.offline):
        how = entry.how_to_get()
        if entry.urls:
            how += f" when online, or import a copy with `vsode download {entry.name} --from-file PATH`"
        raise ModelMissingError(
            f"model {entry.name} is not installed and offline mode (--offline / VSODE_OFFLINE) "
            f"forbids downloading; {how}"
        )
    if not entry.pinned and not options.allow_unverified:
        raise InputError(
            f"{entry.name} has no published SHA-256, so its download cannot be verified; pass "
            "--allow-unverified to download it anyway (the computed hash is recorded)"
        )
    sources = _sources(entry, options.mirror)
    if not sources:
        raise ModelMissingError(f"{entry.name} has no direct download URL; {entry.how_to_get()}")

    progress = ensure(progress)
    failures: list[str] = []
    mismatch: ChecksumError | None = None
    with cache.lock(entry), progress.stage(f"download {entry.name}", total=entry.size, unit="B") as stage:
        part = _PartFile(cache.part_path(entry))
        resumed_from = part.size
        stage.advance(part.size)
        try:
            for source in sources:
                for _ in range(2):
                    had_prefix = part.size > 0
                    try:
                        attempts = _fetch(entry, source.url, part, options, stage, progress)
                        _check(entry, part, source.url)
                    except _SourceFailed as err:
                        failures.append(f"{source.url}: {err}")
                        break
                    except ChecksumError as err:
                        _restart(part, stage)
                        mismatch = err
                        progress.log(str(err))
                        if had_prefix:
                            continue  # the resumed prefix may be the bad part: once more from zero
                        break
                    part.close()
                    os.replace(part.path, final)
                    return _installed(entry, cache, part, source, resumed_from, attempts)
        finally:
            part.close()
    if mismatch is not None:
        others = f"; other sources failed: {'; '.join(failures)}" if failures else ""
        raise ChecksumError(f"{mismatch}{others}")
    raise VsodeError(f"could not download {entry.name}: {'; '.join(failures)}")


def import_file(
    name: str,
    source: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
    allow_unverified: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> InstallResult:
    """Import a local copy of a registered model (e.g. fetched by hand from Google Drive).

    The file is checked (size, then SHA-256 while it is copied to a temporary file beside the
    target) and renamed into place only if it matches; it is not modified or moved.
    Raises :class:`InputError` for a missing file or an unpinned entry without
    ``allow_unverified``, :class:`ChecksumError` (exit 1) for a file that does not match.
    """
    entry = (REGISTRY if registry is None else registry).get(name)
    cache = Cache.open(cache_dir)
    if entry.builtin:
        return _present(entry, cache)
    src = Path(source).expanduser()
    if not src.is_file():
        raise InputError(f"--from-file {src} does not exist or is not a file")
    if not entry.pinned and not allow_unverified:
        raise InputError(
            f"{entry.name} has no published SHA-256, so {src} cannot be verified; pass "
            "--allow-unverified to import it anyway (its hash is recorded)"
        )
    final = cache.path(entry)
    if final.is_file() and not force:
        present = _present(entry, cache)
        return _with_warning(present, f"{entry.name} is already installed; pass --force to replace it")
    size = src.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumError(
            f"{src} has {size} bytes but {entry.name} ({entry.file_name}) has {entry.size}; "
            "nothing was imported"
        )
    with cache.lock(entry), atomic_path(final, force=True) as tmp:
        digest = hashlib.sha256()
        with ensure(progress).stage(f"import {entry.name}", total=size, unit="B") as stage:
            try:
                with open(src, "rb") as fin, open(tmp, "wb") as fout:
                    while chunk := fin.read(CHUNK):
                        digest.update(chunk)
                        fout.write(chunk)
                        stage.advance(len(chunk))
            except OSError as err:
                raise VsodeError(f"cannot copy {src} into {final.parent}: {err.strerror or err}") from None
        actual = digest.hexdigest()
        if entry.sha256 is not None and actual != entry.sha256:
            raise ChecksumError(
                f"{src} is not the registered {entry.file_name}: SHA-256 expected {entry.sha256}, "
                f"got {actual}; nothing was imported"
            )
    record = _record(entry, size, actual, f"file:{src.resolve()}")
    cache.write_record(entry, record)
    return _result(entry, final, record, "imported")


# -- internals ------------------------------------------------------------------------------------


class _SourceFailed(Exception):
    """This URL cannot deliver the file (after retries); try the next one."""


class _Transient(Exception):
    """Worth retrying: connection dropped, timeout, 5xx/429."""


class _PartFile:
    """The ``.part`` file being appended to, with the SHA-256 of everything it holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self._file: BinaryIO | None = None
        if path.exists():  # resume: hash the prefix already on disk
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    self.digest.update(chunk)
                    self.size += len(chunk)

    def append(self, chunk: bytes) -> None:
        try:
            if self._file is None:
                self._file = open(self.path, "ab")
            self._file.write(chunk)
        except OSError as err:
            raise VsodeError(f"cannot write {self.path}: {err.strerror or err}") from None
        self.digest.update(chunk)
        self.size += len(chunk)

    def discard(self) -> None:
        """Delete the file and forget its contents."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.digest = hashlib.sha256()
        self.size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _sources(entry: Entry, mirror: str | None) -> list[DownloadSource]:
    out = list(entry.urls)
    if mirror:
        url = f"{mirror.rstrip('/')}/{quote(entry.file_name)}"
        out.insert(0, DownloadSource(url, third_party=False, note="VSODE_MIRROR"))
    return out


def _fetch(
    entry: Entry, url: str, part: _PartFile, options: DownloadOptions, stage: Stage, progress: Progress
) -> int:
    """Bring ``part`` to the whole file from ``url``, retrying transient failures; returns the
    number of attempts. Raises :class:`_SourceFailed` or :class:`ChecksumError`."""
    with requests.Session() as http:
        http.headers.update({"User-Agent": f"vsode/{__version__}", "Accept-Encoding": "identity"})
        attempt = 0
        while True:
            attempt += 1
            try:
                _attempt(http, entry, url, part, options, stage, progress)
                return attempt
            except _Transient as err:
                if attempt > options.retries:
                    tries = f"{attempt} attempts" if attempt > 1 else "1 attempt"
                    raise _SourceFailed(f"{err} (gave up after {tries})") from None
                delay = min(MAX_BACKOFF, options.backoff * 2 ** (attempt - 1))
                progress.log(f"{entry.name}: {err}; retry {attempt}/{options.retries} in {delay:.1f} s")
                time.sleep(delay)


# Request errors that retrying the same URL cannot fix.
_PERMANENT = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.TooManyRedirects)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def _attempt(
    http: requests.Session,
    entry: Entry,
    url: str,
    part: _PartFile,
    options: DownloadOptions,
    stage: Stage,
    progress: Progress,
) -> None:
    """One try: a request resuming ``part``, and one from zero if the server rejects the resume."""
    if entry.size is not None and part.size > entry.size:
        _restart(part, stage)
    if entry.size is not None and part.size == entry.size:
        return  # a complete part file from an earlier run: only the check is left
    if not _request(http, entry, url, part, options, stage, progress):
        _request(http, entry, url, part, options, stage, progress)  # no Range now: cannot be rejected


def _request(
    http: requests.Session,
    entry: Entry,
    url: str,
    part: _PartFile,
    options: DownloadOptions,
    stage: Stage,
    progress: Progress,
) -> bool:
    """Stream ``url`` onto ``part``; False if the server rejected the resume (``part`` is emptied)."""
    offset = part.size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with http.get(url, headers=headers, stream=True, timeout=options.timeout) as r:
            if r.status_code in (408, 425, 429) or r.status_code >= 500:
                raise _Transient(f"HTTP {r.status_code} {r.reason}")
            match = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
            ours = match is not None and int(match.group(1)) == offset
            if offset and (r.status_code == 416 or (r.status_code == 206 and not ours)):
                # Our part is at or past the end of the server's file, or the range is not ours.
                progress.log(f"{entry.name}: {url} rejected the resume at byte {offset}; restarting")
                _restart(part, stage)
                return False
            if r.status_code == 206 and ours:
                total = None if match.group(3) == "*" else int(match.group(3))
            elif r.status_code == 200:
                if offset:
                    progress.log(f"{entry.name}: {url} ignores Range requests; restarting from zero")
                    _restart(part, stage)
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise _SourceFailed(f"HTTP {r.status_code} {r.reason}".strip())
            if total is None and entry.size is None and entry.sha256 is None:
                # Nothing to check against: without a length a cut connection would pass as complete.
                raise _SourceFailed("no file size from the server: an unverified download cannot be checked")
            if total is not None and entry.size is not None and total != entry.size:
                raise ChecksumError(
                    f"{entry.name}: {url} serves {total} bytes, expected {entry.size}; "
                    "the partial download was deleted"
                )
            if total is not None and stage.total is None:
                stage.update_total(total)
            for chunk in r.iter_content(NET_CHUNK):
                part.append(chunk)
                stage.advance(len(chunk))
                if entry.size is not None and part.size > entry.size:
                    raise ChecksumError(
                        f"{entry.name}: {url} sent more than the expected {entry.size} bytes; "
                        "the partial download was deleted"
                    )
            if total is not None and part.size < total:
                raise _Transient(f"the connection closed at byte {part.size} of {total}")
            return True
    except requests.Timeout:
        raise _Transient(f"no answer within {options.timeout:g} s") from None
    except _PERMANENT as err:
        raise _SourceFailed(_short(err)) from None
    except (requests.RequestException, OSError) as err:
        raise _Transient(f"connection failed ({_short(err)})") from None


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _restart(part: _PartFile, stage: Stage) -> None:
    part.discard()
    stage.advance(-stage.completed)


def _check(entry: Entry, part: _PartFile, url: str) -> None:
    if entry.size is not None and part.size != entry.size:
        raise ChecksumError(
            f"{entry.name}: {url} sent {part.size} bytes, expected {entry.size}; "
            "the partial download was deleted"
        )
    actual = part.digest.hexdigest()
    if entry.sha256 is not None and actual != entry.sha256:
        raise ChecksumError(
            f"{entry.name}: SHA-256 mismatch for {url}: expected {entry.sha256}, got {actual}; "
            "the partial download was deleted"
        )


def _size_ok(entry: Entry, path: Path) -> bool:
    return entry.size is None or path.stat().st_size == entry.size


def _record(entry: Entry, size: int, sha256: str, source: str) -> dict[str, Any]:
    return {
        "name": entry.name,
        "file_name": entry.file_name,
        "size": size,
        "sha256": sha256,
        "verified": entry.sha256 is not None and sha256 == entry.sha256,
        "hash_status": entry.hash_status,
        "source": source,
        "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vsode": __version__,
    }


def _installed(
    entry: Entry, cache: Cache, part: _PartFile, source: DownloadSource, resumed_from: int, attempts: int
) -> InstallResult:
    record = _record(entry, part.size, part.digest.hexdigest(), source.url)
    cache.write_record(entry, record)
    result = _result(entry, cache.path(entry), record, "downloaded")
    return replace(result, resumed_from=resumed_from, attempts=attempts)


def _result(entry: Entry, path: Path, record: dict[str, Any], status: str) -> InstallResult:
    warnings = []
    if entry.hash_status == "third-party":
        warnings.append(
            f"{entry.name}: its pinned SHA-256 comes from a third-party mirror and was not checked "
            "against the official copy"
        )
    elif entry.hash_status == "unpinned" and not entry.builtin:
        warnings.append(
            f"{entry.name}: no published SHA-256; recorded {record.get('sha256')} "
            "(`vsode models --verify` checks against it)"
        )
    return InstallResult(
        name=entry.name,
        status=status,
        path=path,
        size=record.get("size"),
        sha256=record.get("sha256"),
        verified=bool(record.get("verified")),
        hash_status=entry.hash_status,
        source=record.get("source"),
        warnings=tuple(warnings),
    )


def _present(entry: Entry, cache: Cache) -> InstallResult:
    path = cache.path(entry)
    if entry.builtin:
        if not path.is_file():
            raise ModelMissingError(
                f"model {entry.name} is missing from the package ({path}); {entry.how_to_get()}"
            )
        return InstallResult(
            name=entry.name,
            status="builtin",
            path=path,
            size=path.stat().st_size,
            sha256=entry.sha256,
            hash_status=entry.hash_status,
            source="builtin",
        )
    record = cache.read_record(entry) or {}
    return InstallResult(
        name=entry.name,
        status="present",
        path=path,
        size=path.stat().st_size,
        sha256=record.get("sha256", entry.sha256),
        verified=bool(record.get("verified")),
        hash_status=entry.hash_status,
        source=record.get("source"),
    )


def _with_warning(result: InstallResult, warning: str) -> InstallResult:
    return replace(result, warnings=result.warnings + (warning,))
