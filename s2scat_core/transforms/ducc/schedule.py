r"""How the host work of the ``ducc`` backend runs: ducc0 calls on the pool, kernels in rounds.

A ducc0 call is a ``functools.partial`` of ``ducc0.sht.alm2leg`` or ``leg2alm`` lacking only
``nthreads``; its cost is taken as rings times the ``(l, m)`` it covers, twice for a spin pair
(:func:`_work`). The calls of a round, of every scale, go to one queue, largest first, drained
by the calling thread and the one-thread workers of :mod:`.host_threads` together
(:class:`_Calls`): on this 2-core machine that beats ducc0's own threads (two maps at a time
take 0.52x the serial time at L = 512, ducc0's two threads 0.75x). A call alone uses ducc0's
threads: all cores for ``L >= 128``, one below, where starting threads costs more than it saves
(:func:`_threads`).

A kernel is a callable of ``calls`` that queues ducc0 calls on it and returns either
``finish()`` (one round) or a generator that yields after each round it queues and returns its
result (several rounds: transforms that feed transforms). :func:`_together` advances kernels in
lockstep (:func:`_lockstep`), one round each, then runs the round's calls, so that one host
callback does a whole layer (crossing into Python once per layer instead of once per scale
saves the XLA round trips that dominated at L = 128). Given their sizes, the kernels' NumPy
work between rounds is shared out over the threads too, whole kernels to each (:func:`_share`).
"""

from __future__ import annotations

import collections
import functools
import inspect

from . import host_threads


def _threads(L):
    return 1 if L < 128 else host_threads.cores()



def _run(calls):
    """Run ducc0 calls (``functools.partial`` of ``alm2leg``/``leg2alm`` taking ``nthreads``):
    one call alone with ducc0's own threads; several from one queue, largest first, drained by
    the calling thread and the host pool's one-thread workers together (:class:`_Calls`), so
    that no thread waits while work is left."""
    if len(calls) == 1:
        calls[0](nthreads=_threads(len(calls[0].keywords["theta"])))
        return
    batch = _Calls()
    batch += calls
    batch.run()



class _Calls(list):
    """The ducc0 calls a round queues (a list of them). :meth:`launch` moves those queued so
    far to the queue, largest first, and starts the host pool's workers on it, so that the
    calling thread can go on with work that does not wait for them (the small scales' table
    products); :meth:`run`, at the end of the round, launches the rest, drains the queue with
    the calling thread too, and waits for the workers (raising their errors). On one core, or
    from a worker, the calling thread alone drains it."""

    def __init__(self):
        super().__init__()
        self._queue = collections.deque()
        self._workers = []

    def launch(self):
        if not self:
            return
        self._queue.extend(sorted(self, key=_work, reverse=True))
        self.clear()
        if host_threads.cores() == 1:
            return
        alive = []
        for worker in self._workers:  # a finished worker's error is raised here
            if worker.done():
                worker.result()
            else:
                alive.append(worker)
        self._workers = alive
        pool = host_threads.pool()
        env = host_threads.float_environment()  # the workers run the calls as this thread would
        self._workers += [pool.submit(self._drain, env)
                          for _ in range(host_threads.THREADS - 1 - len(self._workers))]

    def _drain(self, env=None):
        with host_threads.in_float_environment(env):
            while True:
                try:
                    call = self._queue.popleft()
                except IndexError:
                    return
                call(nthreads=1)

    def run(self):
        if len(self) == 1 and not self._queue and not self._workers:
            _run(list(self))  # a lone call: on ducc0's own threads
            self.clear()
            return
        self.launch()
        self._drain()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.result()



def _work(call):
    """Rough cost of a call: rings times the ``(l, m)`` it covers, twice for a spin pair (in
    Python integers: sorting a round's calls by it should cost nothing)."""
    kw = call.keywords
    m0, m1, lmax = int(kw["mval"][0]), int(kw["mval"][-1]), kw["lmax"]
    return len(kw["theta"]) * (m1 - m0 + 1) * (2 * lmax + 2 - m0 - m1) * (2 if kw["spin"] else 1)



def _together(kernels):
    """Run kernels side by side, all their ducc0 calls on the pool at once; their results in
    order. A kernel is a callable of ``calls`` that queues ducc0 calls on it and returns either
    ``finish()`` (one round of calls) or a generator that yields after each round it queues
    and returns its result (several rounds: transforms that feed transforms)."""
    calls = _Calls()
    rounds = _lockstep([_rounds(kernel, calls) for kernel in kernels])
    with host_threads.one_blas_thread():
        while True:
            try:
                next(rounds)
            except StopIteration as stop:
                return tuple(stop.value)
            calls.run()



def _lockstep(generators, launch=None, sizes=None):
    """A generator that advances ``generators`` one round each, yields (their calls to run),
    and so on; it returns the list of their results. ``launch``: ``(k, calls)``: in each round,
    the calls queued by the first ``k`` generators are launched (:meth:`_Calls.launch`) before
    the others advance, side by side with them. ``sizes``: the work of each of the first ``k``
    generators (all of them without ``launch``); given, they are shared out over the calling
    thread and the host pool's workers (:func:`_share`), each advancing its own in turn."""
    results = [None] * len(generators)
    k = len(generators) if launch is None else launch[0]
    pending = list(range(len(generators)))

    def advance(indices):
        still = []
        for i in indices:
            try:
                next(generators[i])
                still.append(i)
            except StopIteration as stop:
                results[i] = stop.value
        return still

    while pending:
        first = [i for i in pending if i < k]
        if sizes is None:
            still = advance(first)
        else:
            still = sum(host_threads.run([functools.partial(advance, part)
                                           for part in _share(first, sizes)]), [])
        if launch is not None:
            launch[1].launch()
        still += advance([i for i in pending if i >= k])
        if still:
            yield
        pending = sorted(still)
    return results



def _share(indices, sizes):
    """``indices`` in at most ``host_threads.THREADS`` groups of about equal total
    ``sizes[i]`` (largest first, each to the lightest group)."""
    groups = [[] for _ in range(min(host_threads.THREADS, len(indices)))]
    loads = [0] * len(groups)
    for i in sorted(indices, key=lambda i: -sizes[i]):
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += sizes[i]
    return [g for g in groups if g]



def _rounds(kernel, calls):
    out = kernel(calls=calls)
    if inspect.isgenerator(out):
        return (yield from out)
    yield
    return out()
