"""Large host arrays whose memory is kept for the next call instead of going back to the kernel.

glibc serves each thread but the main one from an arena of 64 MB heaps, and a request larger
than a heap from a fresh ``mmap``, unmapped again when it is freed (glibc 2.35 and later do so
even with ``M_MMAP_MAX = 0``, which :mod:`s2scat_core._malloc` sets). The ``ducc`` backend's
host kernels run in XLA's threads, so each of their arrays above 64 MB had every page faulted
in afresh at every call: with 16 samples at L = 128, a few arrays of 60-140 MB a step and 0.2-0.3
of a core in the kernel.

:func:`empty` gives arrays of at least ``MIN_BYTES`` from blocks kept here. Every view of such
an array has the block's :class:`_Lease` as its ``base`` (NumPy points a view at the first
owner that is not an array), and the block goes back on the shelf only when the lease is
gone, that is when nothing can read or write it any more. At most ``KEEP_BYTES`` of free
blocks are kept, the oldest let go first. ``S2SCAT_KEEP_MALLOC=1`` (as for
:mod:`s2scat_core._malloc`) turns the shelf off.
"""

from __future__ import annotations

import os
import threading

import numpy as np

#: Arrays from this size on come from the shelf (smaller ones are reused within glibc's heaps).
MIN_BYTES = 1 << 25
#: The most bytes of free blocks kept.
KEEP_BYTES = 1 << 30
#: A block is reused for a request of at least this fraction of its size.
FIT = 0.8


class _Shelf:
    """Free blocks (``uint8`` arrays), oldest first."""

    def __init__(self):
        self._free = {}  # id -> block
        self._lock = threading.RLock()  # re-entrant: a lease may be freed while it is held

    def take(self, nbytes: int) -> np.ndarray:
        """A free block of ``nbytes`` to ``nbytes / FIT`` bytes, the smallest, or a new one."""
        with self._lock:
            fits = [(b.nbytes, key) for key, b in list(self._free.items())
                    if nbytes <= b.nbytes and FIT * b.nbytes <= nbytes]
            block = self._free.pop(min(fits)[1], None) if fits else None
        return np.empty(nbytes, np.uint8) if block is None else block

    def put(self, block: np.ndarray) -> None:
        with self._lock:
            self._free[id(block)] = block
            while sum(b.nbytes for b in self._free.values()) > KEEP_BYTES:
                self._free.pop(next(iter(self._free)))

    def free_bytes(self) -> int:
        with self._lock:
            return sum(b.nbytes for b in self._free.values())

    def after_fork(self) -> None:
        """A child made by ``fork`` gets a lock of its own (the parent's may have been held)."""
        self._lock = threading.RLock()


_SHELF = _Shelf()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _SHELF.after_fork())


class _Lease:
    """Owner of a block while arrays use it: their ``base``; gives the block back when gone."""

    __slots__ = ("block", "shelf", "__array_interface__")

    def __init__(self, block: np.ndarray, shape: tuple, dtype: np.dtype):
        self.block, self.shelf = block, _SHELF
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "version": 3,
                                    "data": (block.ctypes.data, False)}

    def __del__(self):
        try:
            self.shelf.put(self.block)
        except Exception:  # at interpreter exit, once the module's globals are gone
            pass


def _enabled() -> bool:
    return os.environ.get("S2SCAT_KEEP_MALLOC") != "1"


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, C-contiguous; from a kept block from ``MIN_BYTES`` on."""
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or dtype.hasobject or not _enabled():
        return np.empty(shape, dtype)
    return np.asarray(_Lease(_SHELF.take(nbytes), shape, dtype))


def contiguous(x: np.ndarray) -> np.ndarray:
    """``np.ascontiguousarray(x)``, a copy (when one is needed) in an array from :func:`empty`."""
    if x.flags.c_contiguous:
        return x
    out = empty(x.shape, x.dtype)
    np.copyto(out, x)
    return out
