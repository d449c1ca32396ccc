"""Keep freed heap memory for reuse instead of handing it back to the kernel at every call.

glibc serves large allocations (above 128 kB to 32 MB, adjusted at run time) with fresh
``mmap`` pages and unmaps them on free, so every call that allocates the same large
temporaries again pays a page fault per 4 kB page: at ``L = 512`` about a fifth of a forward
pass went to the kernel. :func:`keep_freed_memory` turns ``mmap`` allocation off and raises
the trim threshold to 1 GB (``mallopt``), once per process, so freed blocks are reused.

Threads other than the main one (XLA's, where the host callbacks run, and the ``ducc``
backend's pool) allocate from arenas of 64 MB heaps, and glibc deletes a heap once nothing
in it is in use unless the pad it keeps at the top (``M_TOP_PAD``, 128 kB by default) covers
it: arrays of 10-60 MB that come and go took a new heap, fresh pages, each call (L = 128,
4 samples: 5,000 page faults a step, 0.07-0.13 of a core in the kernel). A 64 MB pad keeps
the heaps (0.02 of a core; 235 against 250 ms a step). Arrays larger than a heap are kept by
the backend itself (:mod:`s2scat_core.transforms.ducc.buffers`).

The process keeps up to 1 GB of freed memory after a computation. Set
``S2SCAT_KEEP_MALLOC=1`` to leave the allocator alone. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Apply the settings once; True if they were set."""
    if os.environ.get("S2SCAT_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    pad = mallopt(_M_TOP_PAD, 1 << 26) == 1
    return mallopt(_M_TRIM_THRESHOLD, 2**30) == 1 and no_mmap and pad
