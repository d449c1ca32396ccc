r"""Devices: a batch of samples sharded over a JAX device mesh (one host or several).

JAX's own SPMD machinery does the work; nothing here schedules anything:

* :func:`resolve` turns ``devices = "all" | N`` into a :class:`Devices`: a one-axis
  ``jax.sharding.Mesh`` (axis ``"batch"``) over the first ``N`` of ``jax.devices()`` (all
  processes' devices after :func:`initialize`; ``local=True``: this process's only). One
  device: no mesh, the engine's unsharded path, unchanged.
* :class:`Batch`: ``count`` real samples padded to ``size``, a multiple of the device count.
  A padded sample's loss is that of a fixed copy of a real sample's start, multiplied by 0,
  and its variables are zeros whose gradient is exactly 0: every optimiser leaves them (and
  their state) at zero, the batch's total loss (what L-BFGS's shared line search minimises) is
  the real samples' sum, and they are dropped from every result and checkpoint (a checkpoint
  holds the ``count`` real samples and is padded again for the device count of the run that
  resumes it).
* :meth:`Devices.batch_map`: a per-sample function over a batch, ``jax.vmap`` inside
  ``jax.shard_map``: each device evaluates its own samples (the ``ducc`` backend's host
  callbacks included, which XLA's partitioner cannot split); the variables ``x (B, ...)``
  and the optimiser state's batch-shaped leaves are ``NamedSharding(mesh, P("batch"))``,
  everything else (operator, target statistics, scalars) replicated.
* Several hosts: :func:`initialize` (``jax.distributed.initialize()``, its arguments from the
  environment), :func:`to_host` (gathers an array that spans other processes), :func:`agree`
  (process 0's decision, for host-side choices every process must make alike),
  :func:`assigned` (which batches of mocks a process takes).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["AXIS", "Batch", "Devices", "agree", "assigned", "initialize", "process", "resolve",
           "to_host", "writer"]

#: Name of the mesh's one axis, along which samples are sharded.
AXIS = "batch"
#: Backends whose transforms call back to the host (``jax.pure_callback``): see :func:`resolve`.
CALLBACK_MODES = ("ducc",)


@dataclasses.dataclass(frozen=True)
class Devices:
    """The devices a batch is sharded over. ``mesh``: one axis :data:`AXIS` over ``count``
    devices, or ``None`` for one device (no sharding); ``platform``: ``"cpu"``, ``"gpu"``..."""

    mesh: Mesh | None
    count: int
    platform: str

    def describe(self) -> dict:
        """``{"count", "platform", "processes"}`` (``metrics.json``'s ``"devices"``)."""
        return {"count": self.count, "platform": self.platform,
                "processes": jax.process_count()}

    def padded(self, count: int) -> int:
        """``count`` rounded up to a multiple of the device count."""
        return -(-count // self.count) * self.count

    def sharding(self, ndim: int, axis: int = 0) -> NamedSharding:
        """An ``ndim``-dimensional array split along ``axis`` (``NamedSharding``)."""
        return NamedSharding(self.mesh, P(*[None] * axis, AXIS))  # (as jit's outputs spell it)

    def put(self, a, axis: int | None = 0) -> jax.Array:
        """``a`` on the mesh, split along ``axis`` (``None``: replicated). Built from the host
        copy with ``jax.make_array_from_callback``, which also builds arrays that span
        several processes (each process supplies its own devices' parts)."""
        host = np.asarray(a)
        sharding = (NamedSharding(self.mesh, P()) if axis is None
                    else self.sharding(host.ndim, axis))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def scalar(self, value) -> jax.Array:
        """A float64 scalar, replicated on the mesh (as the compiled chunk's arguments are:
        an uncommitted one would compile it again)."""
        a = jnp.asarray(value, dtype=jnp.float64)
        return a if self.mesh is None else self.put(a, None)

    def replicate(self, tree):
        """Every array leaf of ``tree`` replicated on the mesh (unchanged without one)."""
        if self.mesh is None:
            return tree
        return jax.tree_util.tree_map(lambda a: self.put(a, None) if _is_array(a) else a, tree)

    def batch_map(self, fn, x, *shared):
        """``fn(x[i], *shared)`` for every sample ``i`` of ``x (B, ...)``, stacked ``(B, ...)``
        (a pytree of such). With a mesh each device maps its own samples (``jax.shard_map``,
        ``x`` split along axis 0, ``shared`` replicated); ``B`` must be a multiple of the
        device count."""
        def per_device(xs, *args):
            return jax.vmap(lambda xi: fn(xi, *args))(xs)

        if self.mesh is None:
            return per_device(x, *shared)
        specs = (P(AXIS),) + (P(),) * len(shared)
        return jax.shard_map(per_device, mesh=self.mesh, in_specs=specs, out_specs=P(AXIS),
                             check_vma=False)(x, *shared)


def _is_array(a) -> bool:
    return isinstance(a, (jax.Array, np.ndarray, np.generic))


def resolve(devices="all", *, local: bool = False, name: str = "devices",
            callbacks: bool = False) -> Devices:
    """``devices``: ``"all"`` or a number ``N >= 1`` of JAX's devices (``local``: this
    process's ``jax.local_devices()``, else ``jax.devices()``: every process's after
    :func:`initialize`); a :class:`Devices` is returned as it is. ``ValueError`` naming
    ``name`` when ``N`` is more than JAX sees.

    ``callbacks``: the computation calls back to the host (the ``ducc`` backend). JAX stages a
    callback's arguments on the first CPU device (``jax.pure_callback`` puts them there);
    when that device is also one of the mesh's CPU devices, busy with its own share, a callback
    of another device can wait for it for ever (seen with forced host devices at L = 64). So
    on the CPU with several devices the first one is left out of the mesh: it stages the
    callbacks' arguments (``N`` forced host devices give ``N - 1`` to shard over; a process
    with one CPU device keeps it: it stages its own callbacks, as on one device).
    """
    if isinstance(devices, Devices):
        return devices
    pool = jax.local_devices() if local else jax.devices()
    platform = pool[0].platform
    staged = False
    if callbacks and platform == "cpu":  # each process's first CPU device, if it has others
        owned = {}
        for d in pool:
            owned.setdefault(d.process_index, []).append(d)
        staging = {min(ds, key=lambda d: d.id) for ds in owned.values() if len(ds) > 1}
        staged = bool(staging)
        pool = [d for d in pool if d not in staging]
    if devices == "all":
        n = len(pool)
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool) and devices >= 1:
        n = int(devices)
        if n > len(pool):
            spare = " besides the one that stages ducc's host callbacks" if staged else ""
            raise ValueError(f"{name} = {n}, but JAX sees {len(pool)} {platform} device(s)"
                             f"{spare} (use \"all\" or at most {len(pool)}; forced CPU devices: "
                             f"XLA_FLAGS=--xla_force_host_platform_device_count="
                             f"{n + 1 if spare else n})")
    else:
        raise ValueError(f"{name} must be \"all\" or a number >= 1, got {devices!r}")
    mesh = Mesh(np.array(pool[:n]), (AXIS,)) if n > 1 else None
    return Devices(mesh, n, platform)


@dataclasses.dataclass(frozen=True)
class Batch:
    """``count`` real samples padded to ``size`` (a multiple of ``devices.count``).

    The padded rows of the variables and of the optimiser state are zeros and stay zeros:
    the loss reads a padded row as a fixed copy of a real sample's starting point
    (:meth:`fill`, finite, so ``0 * loss`` and its gradient are exact zeros; a zero field's
    gradient would be NaN) and multiplies it by ``present = 0``; its gradient with respect to
    the variables is exactly 0. Every optimiser's state is then zero on those rows at every
    step, so a checkpoint drops them and a resumed run pads again with zeros, for its own
    device count.
    """

    devices: Devices
    count: int
    size: int

    @classmethod
    def of(cls, devices: Devices, count: int) -> "Batch":
        return cls(devices, count, devices.padded(count))

    @property
    def padded(self) -> bool:
        return self.size > self.count

    def pad(self, a, *, axis: int = 0, copies: bool = False):
        """``a`` with its ``count`` rows along ``axis`` padded to ``size``: zeros, or copies
        of the real rows (``copies``)."""
        extra = self.size - self.count
        if extra == 0:
            return a
        a = jnp.asarray(a)
        if copies:
            fill = jnp.take(a, jnp.arange(extra) % self.count, axis=axis)
        else:
            shape = list(a.shape)
            shape[axis] = extra
            fill = jnp.zeros(shape, a.dtype)
        return jnp.concatenate([a, fill], axis=axis)

    def padding(self, x0):
        """``(present (size,), fill (size, ...))`` for :func:`synthesis.steps._sample_loss`'s
        batch, from the real samples' start ``x0 (count, ...)``; ``None`` without padding."""
        if not self.padded:
            return None
        present = (np.arange(self.size) < self.count).astype(np.float64)
        return self.devices.put(present), self.devices.put(self.pad(x0, copies=True))

    def place(self, tree, x_shape: tuple):
        """``tree`` (e.g. the loop's carry) on the mesh: leaves whose trailing shape is
        ``x_shape`` (the variables, the optimiser's batch-shaped state) split along their
        batch axis, the rest replicated. Unchanged without a mesh."""
        if self.devices.mesh is None:
            return tree

        def put(a):
            if not _is_array(a):
                return a
            return self.devices.put(a, _batch_axis(np.shape(a), x_shape))

        return jax.tree_util.tree_map(put, tree)

    def constrain(self, tree, x_shape: tuple):
        """Inside ``jit``: the shardings of :meth:`place`, so that a compiled function's
        outputs come back as its inputs went in (one compilation)."""
        if self.devices.mesh is None:
            return tree
        replicated = NamedSharding(self.devices.mesh, P())

        def fix(a):
            axis = _batch_axis(a.shape, x_shape)
            sharding = replicated if axis is None else self.devices.sharding(a.ndim, axis)
            return jax.lax.with_sharding_constraint(a, sharding)

        return jax.tree_util.tree_map(fix, tree)

    def pad_tree(self, tree, x_shape: tuple):
        """``tree``'s leaves for ``count`` samples (``x_shape``: the unpadded variables'
        shape), their batch axis padded with zeros to ``size``."""
        def pad(a):
            axis = _batch_axis(np.shape(a), x_shape)
            return a if axis is None else self.pad(a, axis=axis)

        return jax.tree_util.tree_map(pad, tree)

    def unpad_tree(self, tree, x_shape: tuple):
        """Host copies of ``tree``'s leaves (``x_shape``: the padded variables' shape) with
        the padded rows dropped."""
        def cut(a):
            a = to_host(a)
            axis = _batch_axis(a.shape, x_shape)
            if axis is None or not self.padded:
                return a
            return np.take(a, np.arange(self.count), axis=axis)

        return jax.tree_util.tree_map(cut, tree)

    def shapes(self, tree, x_shape: tuple):
        """``jax.ShapeDtypeStruct`` of ``tree``'s leaves for the ``count`` real samples
        (``x_shape``: the padded variables' shape)."""
        def one(a):
            shape = list(np.shape(a))
            axis = _batch_axis(shape, x_shape)
            if axis is not None:
                shape[axis] = self.count
            return jax.ShapeDtypeStruct(tuple(shape), a.dtype)

        return jax.tree_util.tree_map(one, tree)

    def real(self, a) -> np.ndarray:
        """Host copy of the first ``count`` rows of ``a (size, ...)``."""
        return to_host(a)[:self.count]


def _batch_axis(shape, x_shape) -> int | None:
    """The batch axis of a leaf whose trailing dimensions are ``x_shape`` (``None``: not a
    batch-shaped leaf)."""
    n = len(x_shape)
    if len(shape) >= n and tuple(shape[len(shape) - n:]) == tuple(x_shape):
        return len(shape) - n
    return None


# ------------------------------------------------------------------------------ processes
def to_host(a) -> np.ndarray:
    """``a`` as a NumPy array; an array spanning other processes' devices is gathered
    (``multihost_utils.process_allgather``: every process must call this alike)."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable and not a.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def agree(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (host-side decisions that lead to collective
    operations, e.g. whether to checkpoint after this chunk); ``flag`` itself with one
    process."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.bool_(flag)))


def process() -> tuple[int, int]:
    """``(process_index, process_count)`` of this process."""
    return jax.process_index(), jax.process_count()


def writer() -> bool:
    """Whether this process writes a run's shared outputs (process 0)."""
    return jax.process_index() == 0


def initialize() -> tuple[int, int]:
    """``jax.distributed.initialize()`` with its arguments from the environment: JAX detects
    SLURM and Open MPI itself and reads ``JAX_COORDINATOR_ADDRESS``; ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``, when set, are passed on (elsewhere, e.g. processes started by hand).
    Returns ``(process_index, process_count)``. A failure is a ``ValueError`` in one line."""
    import os

    given = {}
    for key, name in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if os.environ.get(name):
            try:
                given[key] = int(os.environ[name])
            except ValueError:
                raise ValueError(f"--distributed: {name} must be an integer, got "
                                 f"{os.environ[name]!r}") from None
    try:
        jax.distributed.initialize(**given)
    except (RuntimeError, ValueError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"--distributed: jax.distributed.initialize() failed: {text} (run "
                         f"under SLURM/Open MPI, or set JAX_COORDINATOR_ADDRESS, "
                         f"JAX_NUM_PROCESSES and JAX_PROCESS_ID)") from None
    return process()


def assigned(indices, process_index: int, process_count: int) -> list[int]:
    """The batch indices ``k`` a process takes: ``k % process_count == process_index``."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}")
    return [k for k in indices if k % process_count == process_index]
