"""vsode.memory: freed C heap goes back to the OS between stages (glibc's malloc_trim)."""

import ctypes.util
import sys

import pytest
import torch

from vsode.memory import release, resident_mb

GLIBC = sys.platform.startswith("linux") and "musl" not in (ctypes.util.find_library("c") or "")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere release() is a documented no-op")
def test_release_gives_a_fragmented_heap_back():
    """Tensors freed between long-lived ones (what an inversion or a render leaves) stay resident
    until release(); after it the process holds little more than what is still alive."""
    release()
    start = resident_mb()
    blocks = [torch.ones(1 << 17) for _ in range(400)]  # 400 × 512 KB, written so they are resident
    kept = blocks[::8]  # every 8th stays alive and pins the heap above the freed ones
    del blocks
    assert release() is True
    held = resident_mb() - start
    freed = 350 * 0.5
    assert held < 0.5 * freed, f"{held:.0f} MB still resident after release, for {len(kept) * 0.5:.0f} MB alive"


def test_release_is_a_no_op_without_malloc_trim(monkeypatch):
    import vsode.memory as memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release() is False
