"""Checkpoints: the registry of known files, the cache, downloads and loading without code execution.

Other stages need one line: ``safe_load(resolve(name_or_path))``. ``resolve`` never downloads;
a missing model raises :class:`vsode.errors.ModelMissingError` naming the ``vsode download``
command. Nothing here imports torch until :func:`safe_load` is called.
"""

from __future__ import annotations

from .cache import Cache, ModelStatus, default_cache_dir, list_models, offline_requested, resolve, sha256_file
from .download import DownloadOptions, InstallResult, download, import_file, install_many
from .load import ALLOWED_GLOBALS, safe_load
from .registry import KINDS, KNOWN, REGISTRY, DownloadSource, Entry, Registry

__all__ = [
    "ALLOWED_GLOBALS",
    "KINDS",
    "KNOWN",
    "REGISTRY",
    "Cache",
    "DownloadOptions",
    "DownloadSource",
    "Entry",
    "InstallResult",
    "ModelStatus",
    "Registry",
    "default_cache_dir",
    "download",
    "import_file",
    "install_many",
    "list_models",
    "offline_requested",
    "resolve",
    "safe_load",
    "sha256_file",
]
