"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (tiny convolutions on a shared machine are many times
    faster); a module asks with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quiet_machine(one_thread, tmp_path_factory):
    """One torch thread and a private model/latents cache, for one test module (request it from a
    module-scoped autouse fixture so it comes before the module's other fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSODE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
