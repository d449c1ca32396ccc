"""Keep freed heap memory for reuse instead of handing it back to the kernel at every call.

glibc serves large allocations (above 128 kB to 32 MB, adjusted at run time) with fresh
``mmap`` pages and unmaps them on free, so every call that allocates the same large
temporaries again pays a page fault per 4 kB page: at ``L = 512`` about a fifth of a forward
pass went to the kernel. :func:`keep_freed_memory` turns ``mmap`` allocation off and raises
the trim threshold to 1 GB (``mallopt``), once per process, so freed blocks are reused. The
process keeps up to that much freed memory after a computation. Set ``S2SCAT_KEEP_MALLOC=1``
to leave the allocator alone. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD = -1
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
    return mallopt(_M_TRIM_THRESHOLD, 2**30) == 1 and no_mmap
