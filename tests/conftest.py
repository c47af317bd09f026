"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="session")
def prepared_demo_data(tmp_path_factory) -> Path:
    """A small prepared training folder: 5 demo clips of 8 frames at 25 fps, 64 px, one of them in
    the val split, inverted with ``psp-demo``. Tests read it; none may write into it."""
    from vsode.demo.dataset import write_dataset
    from vsode.train.prepare import PrepareOptions, prepare_dataset

    base = tmp_path_factory.mktemp("prepared-demo")
    write_dataset(base / "demo", n_videos=5, n_frames=8, fps=25, size=64, seed=0, val_fraction=0.2)
    prepare_dataset(base / "demo", base / "data", PrepareOptions(device="cpu", batch_size=8))
    return base / "data"
