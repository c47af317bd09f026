"""Models shipped inside the package resolve offline and match their registry entries."""

from __future__ import annotations

import hashlib

import pytest

from vsode.checkpoints import resolve
from vsode.checkpoints.registry import BUILTIN, REGISTRY


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.name)
def test_builtin_file_matches_its_entry(entry, tmp_path, monkeypatch):
    monkeypatch.setenv("VSODE_OFFLINE", "1")
    path = resolve(entry.name, cache_dir=tmp_path)  # an empty cache: no download needed
    assert path.stat().st_size == entry.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assert entry.name in REGISTRY
