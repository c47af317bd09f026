"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def quiet_machine(tmp_path_factory):
    """One torch thread (tiny convolutions on a shared machine are many times faster) and a private
    model/latents cache, for one test module (request it from a module-scoped autouse fixture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSODE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)
