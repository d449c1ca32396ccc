r"""What a forward pass of the two layers leaves on the host for its VJP.

``_KEPT.put(rows, signs)`` keeps, for every scale, the rows ``R (..., A*K*C + C, L, L)``
complex and the signs of the first layer's maps ``(..., K, L, 2L-1)`` int8 (:mod:`.layers`)
under an integer ticket, which goes through JAX as the ``custom_vjp``'s residual;
``_KEPT.take(ticket)`` gives them back to the VJP. Neither the rows nor their cotangents cross
into XLA: at L = 128 that is 8 MB that no longer go to XLA and back in a gradient (about 4 ms
of copies).
"""

from __future__ import annotations

import collections
import itertools
import threading


class _Kept:
    """What a forward pass of :func:`.face._two_layers_op` leaves on the host for its VJP (its rows,
    ``O(N L^2)`` each, and the signs of the first layer's maps), under a ticket that goes
    through JAX as the residual, so that neither the rows nor their cotangents cross into
    XLA. The last ``KEEP`` forward passes are kept, within ``KEEP_BYTES`` (the newest always);
    a VJP takes its entry out, or, if it is gone (more forward passes than that before their
    VJPs, or a VJP run twice), computes the forward pass again from the residual inputs: the
    results are the same either way."""

    KEEP = 4
    KEEP_BYTES = 1 << 30

    def __init__(self):
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)

    def put(self, rows, signs):
        size = sum(r.nbytes for r in rows) + sum(s.nbytes for s in signs)
        with self._lock:
            ticket = next(self._tickets)
            self._entries[ticket] = (rows, signs, size)
            while len(self._entries) > 1 and (
                    len(self._entries) > self.KEEP
                    or sum(e[2] for e in self._entries.values()) > self.KEEP_BYTES):
                self._entries.popitem(last=False)
        return ticket

    def take(self, ticket):
        """``(rows, signs)`` of the forward pass ``ticket``, or None if gone."""
        with self._lock:
            entry = self._entries.pop(ticket, None)
        return None if entry is None else entry[:2]


_KEPT = _Kept()
