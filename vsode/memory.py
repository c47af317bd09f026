"""The process's memory: handing freed heap back to the operating system between stages.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc keeps what is freed below its
mmap threshold (which grows up to 32 MB as large blocks are freed) in its heaps, and a heap
shrinks only from its top: one long-lived tensor allocated late (a batch's W+, an ODE state)
pins every freed page below it. Over a long video the encoder's and the generator's transient
buffers interleave with the per-frame results the pipeline keeps, and the resident size then
grows with the video's length although nothing live does (measured at full size: 0.15–0.4 GB
held this way before rendering, varying from run to run).

:func:`release` calls ``malloc_trim(0)``, which returns every free whole page of every heap
(``MADV_DONTNEED``), wherever it lies. The pipeline calls it where a stage's transients are
gone: every :data:`EVERY` batches of the inversion and of the render, after the inversion and
after the dynamics encoding.
A fixed low mmap threshold would do the same for large blocks, but it made 1024 px synthesis
about 12 % slower (every activation mapped and faulted in afresh), so it is not used.

Elsewhere than glibc (macOS, musl, Windows) :func:`release` does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable

__all__ = ["EVERY", "release", "resident_mb"]

# Loops over a video's batches (the inversion's, the render's) call release() every this many
# batches: a few milliseconds, against seconds for a batch of 1024 px frames.
EVERY = 8


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only; musl has no such symbol
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release() -> bool:
    """Give the C heap's free pages back to the OS; True when the C library could (glibc), False
    where this is not available. Costs a walk over the heaps: milliseconds, so call it between
    stages or every few batches, not per tensor."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def resident_mb() -> float | None:
    """The process's resident set now (MB, from ``/proc/self/statm``), or None off Linux."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
