"""Threads for the host-side kernels of the ``ducc`` backend.

One pool of ``THREADS - 1`` workers beside the calling thread (``THREADS``: the cores this
process may use), each running one task at a time on one thread: ducc0 calls (which release
the GIL), matrix products and large elementwise passes (the ``ducc`` backend's rounds of
calls are drained by the calling thread and the workers together). Two things make this
faster than letting each library thread itself on a 2-core machine:

* ducc0's own threads on one map scale poorly (L = 512: 0.75x the one-thread time on two
  threads), while two maps, or two halves of one map's ``m`` range, on two workers take 0.52x
  and 0.6x.
* OpenBLAS, which NumPy's matrix products call, keeps its own threads spinning for a while
  after each product; with a product every few milliseconds they never sleep and take a core
  from ducc0 and XLA (at L = 512 a fifth of the CPU time of a forward pass went to
  ``blas_thread_server``). Each worker asks OpenBLAS for one thread (its thread-local setting,
  OpenBLAS >= 0.3.27, found through the libraries this process has loaded); products are
  split across the workers instead. Elsewhere (another BLAS, another OS) nothing is changed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading

THREADS = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else (os.cpu_count() or 1))

_POOL = None
_POOL_PID = None
_LOCK = threading.Lock()
_LOCAL = threading.local()


@functools.lru_cache(maxsize=None)
def _openblas_local():
    """OpenBLAS's ``openblas_set_num_threads_local`` from a loaded library, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
    return None


def _start_worker():
    _LOCAL.worker = True
    setter = _openblas_local()
    if setter is not None:
        setter(1)


#: Bytes kept for a C ``fenv_t`` (32 on x86-64 glibc, 8 on AArch64): room to spare.
_FENV_BYTES = 256


@functools.lru_cache(maxsize=None)
def _fenv_functions():
    """libm's ``fegetenv`` and ``fesetenv``, or None where they are not found."""
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        return libm.fegetenv, libm.fesetenv
    except (OSError, AttributeError, TypeError):
        return None


def float_environment():
    """The calling thread's floating-point environment (``fegetenv``: the rounding mode and,
    in SSE's MXCSR or AArch64's FPCR, whether denormal numbers are flushed to zero), or None.

    XLA flushes denormals to zero in the threads that run a computation, host callbacks
    included, and a fresh thread does not; a task handed to a worker runs in its caller's
    environment (:func:`run`, :class:`.schedule._Calls`), so that its result does not depend
    on the thread that happened to run it (Legendre recursions reach denormal values at high
    ``m``). The other source of runs that differ between processes, ducc0's AVX-512 build, is
    capped in ``s2scat_core._ducc0_build``."""
    functions = _fenv_functions()
    if functions is None:
        return None
    env = ctypes.create_string_buffer(_FENV_BYTES)
    return env if functions[0](env) == 0 else None


@contextlib.contextmanager
def in_float_environment(env):
    """Run the block in the floating-point environment ``env`` (from
    :func:`float_environment`; None: as it is), the thread's own restored after."""
    functions = _fenv_functions()
    if env is None or functions is None:
        yield
        return
    own = ctypes.create_string_buffer(_FENV_BYTES)
    functions[0](own)
    functions[1](env)
    try:
        yield
    finally:
        functions[1](own)


def _in(env, task):
    with in_float_environment(env):
        return task()


@contextlib.contextmanager
def one_blas_thread():
    """OpenBLAS on one thread in the calling thread for the duration (its thread-local
    setting, restored after): the host kernels split their products across the workers
    themselves, and OpenBLAS's own threads, spinning after a product in the calling thread,
    take a core from the ducc0 calls running beside it (L = 128 gradient: 1.2 ms of 45)."""
    setter = _openblas_local()
    if setter is None or in_worker():
        yield
        return
    previous = setter(1)
    try:
        yield
    finally:
        setter(previous)


def in_worker() -> bool:
    """Whether the calling thread is one of the pool's workers."""
    return getattr(_LOCAL, "worker", False)


def cores() -> int:
    """The cores a library call from the calling thread may use: ``THREADS``, or 1 in a worker
    or while :func:`run` shares tasks out (the other cores are busy with them)."""
    return 1 if in_worker() or getattr(_LOCAL, "sharing", False) else THREADS


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """The shared pool, created on first use in each process (a child made by ``fork`` does not
    inherit the parent's threads, so it gets a pool of its own). It has ``THREADS - 1``
    workers (the calling thread is the last one: it takes a share of the work too), all
    started at once: ``ThreadPoolExecutor`` starts a worker only when none is idle, and counts
    one idle again after each task it ends, so a pool used one task at a time would keep one
    worker, and tasks submitted together later would queue behind each other on it."""
    global _POOL, _POOL_PID
    with _LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            workers = max(1, THREADS - 1)
            _POOL = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="s2scat-host",
                                                          initializer=_start_worker)
            _POOL_PID = os.getpid()
            started = threading.Barrier(workers + 1)
            for _ in range(workers):  # each waits for the others: none idle, so each starts one
                _POOL.submit(started.wait)
            started.wait()
        return _POOL


def run(tasks) -> list:
    """Run callables side by side, the first in the calling thread and the others on the
    pool, in the caller's floating-point environment (:func:`float_environment`); their
    results in order. All run in the calling thread if there is one task or one
    core, or if the caller is a worker (a worker waiting on the pool could wait for ever) or
    one of the tasks of a ``run`` (the other cores are busy with the others).

    A task that no worker has started by the time the calling thread is free (the workers may
    still be draining ducc0 calls queued before it, :class:`.schedule._Calls`) is taken back
    and run in the calling thread, one at a time from the back of the queue while the workers
    take from its front: waiting for it would leave a core idle (L = 128, 8 fields, forward:
    the calling thread waited for half of the time)."""
    if len(tasks) <= 1 or cores() == 1:
        return [task() for task in tasks]
    env = float_environment()
    futures = [pool().submit(_in, env, task) for task in tasks[1:]]
    mine = {}
    with sharing():
        first = tasks[0]()
        for i in reversed(range(len(futures))):  # the workers take from the front of the queue
            if not futures[i].cancel():
                break
            mine[i] = tasks[i + 1]()
    return [first] + [mine[i] if i in mine else f.result() for i, f in enumerate(futures)]


@contextlib.contextmanager
def sharing():
    """Mark the calling thread as one of several sharing the cores for the duration
    (:func:`cores` is 1 there)."""
    previous = getattr(_LOCAL, "sharing", False)
    _LOCAL.sharing = True
    try:
        yield
    finally:
        _LOCAL.sharing = previous


def matmul_columns(a, b, out):
    """``out = a @ b`` for a small ``a (K, C)`` and a wide ``b (C, Y)`` (``out (K, Y)``,
    C-contiguous), the columns split across the workers from ``SPLIT_BYTES`` of ``b`` on (``a``
    5 x 3: 4 MB, 0.46 ms split against 0.67 ms in one thread; 1 MB, 0.17 against 0.12 ms); in
    one thread where :func:`cores` is 1."""
    Y = b.shape[1]
    parts = min(cores(), max(1, b.nbytes // SPLIT_BYTES))
    cuts = [Y * i // parts for i in range(parts + 1)]

    def product(lo, hi):
        import numpy as np

        np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])

    run([functools.partial(product, lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])])
    return out


#: Elementwise passes over arrays of at least this many bytes are split across the workers.
SPLIT_BYTES = 1 << 22


def by_rows(fn, out, *ins):
    """``fn(out[a:b], *(x[a:b] for x in ins))`` over slices of the leading axis, side by side
    on the workers when ``out`` is large (NumPy's ufuncs release the GIL) and :func:`cores`
    allows; ``ins`` must have ``out``'s leading axis. Returns ``out``."""
    n = out.shape[0]
    parts = min(cores(), n) if out.nbytes >= SPLIT_BYTES else 1
    cuts = [n * i // parts for i in range(parts + 1)]
    run([functools.partial(fn, out[a:b], *(x[a:b] for x in ins))
         for a, b in zip(cuts[:-1], cuts[1:])])
    return out
