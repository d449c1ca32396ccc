r"""A synthesis run's state on disk: written atomically between chunks, read back to resume.

One file, an uncompressed ``.npz`` (NumPy's zip of ``.npy`` arrays), written under a temporary
name, flushed to disk (``fsync``) and renamed over the previous checkpoint, so a run killed at
any moment (SIGKILL included) leaves either the previous checkpoint or the new one, whole.

=================  ============================================================================
``meta``           JSON (a 0-d string array): format version, ``stopped`` (``null`` while
                   running; ``"steps"``/``"tolerance"``: finished; ``"callback"``,
                   ``"interrupted"``: may be resumed), ``initial`` (the mean loss at the start,
                   the tolerance's reference), ``elapsed`` (seconds of run so far),
                   ``arguments`` (every argument of :func:`synthesis.synthesize` that shapes
                   the run, and the operator's configuration), ``environment`` (JAX version,
                   backend, device count) and ``info`` (the caller's: the CLI stores the
                   resolved experiment and the frames drawn)
``x``              ``(count, 2, L, L)`` or ``(count, 2, 2, L, L)``: the samples' variables
``opt_NN``         the optimiser state's leaves in ``jax.tree_util`` order (L-BFGS: 12 leaves,
                   ``int32`` / ``int64`` / ``float64``, ``3 + 2 memory`` arrays the size of
                   ``x``; Adam: 4), the tree rebuilt from ``opt.init`` of the same spec
``step``, ``done``, ``last``  the loop's counters: steps taken, tolerance reached, last mean loss
``history``        ``(step + 1,)`` mean loss before each step; ``sample_losses (k, count)`` and
                   ``timeline (k, 2)`` at each chunk boundary
``target_flm``     ``(M, L, 2L-1)``: the target (members), as truncated for the run;
                   ``mask`` and ``second_flm`` when given (a coarse-to-fine run: at the final
                   ``L``, the stage and the earlier stages' records in ``arguments["stages"]``)
=================  ============================================================================

The random state: the only random draw of a run is the initial noise, from
``jax.random.key(seed)`` (``seed`` is in ``arguments``); the optimisers are deterministic. So the
state above is the whole run: resumed on the same backend and device count, the run ends
with the same samples, bit for bit, as one never interrupted.

A batch sharded over devices (:mod:`synthesis.devices`) is gathered to the host and its
padded rows (zeros) are dropped: ``x`` and the optimiser's batch-shaped leaves hold the
``count`` real samples, ``environment["devices"]`` the device count; :func:`restore` pads them
again for the run that resumes (another device count continues equal to rounding).

Why ``.npz`` and not orbax-checkpoint: the state is a dozen arrays, gathered to one host, and
NumPy writes them exactly (every dtype, bit for bit) into one file that the project's atomic
writer (:mod:`synthesis.io`) puts in place. orbax-checkpoint 0.12 brings tensorstore,
protobuf, uvloop, msgpack and ten more packages, writes a folder per step, asynchronously,
and writes sharded arrays shard by shard across hosts, which a batch of samples (megabytes to
a few GB) does not need; a checkpoint it writes is not readable without it.
``np.load(allow_pickle=False)`` reads ours anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .io import atomic_path

__all__ = ["FORMAT", "Saved", "read", "restore", "snapshot", "unfinished", "write"]

#: Version of the layout above; a checkpoint of another version is refused with a message.
FORMAT = 1
#: Values of ``stopped`` after which there is nothing left to run.
FINISHED = ("steps", "tolerance")


@dataclasses.dataclass
class Saved:
    """A run's state (module doc): NumPy arrays and plain values."""

    x: np.ndarray
    opt_leaves: list
    step: int
    done: bool
    last: float
    history: np.ndarray
    sample_losses: np.ndarray
    timeline: np.ndarray
    initial: float
    elapsed: float
    stopped: str | None
    arguments: dict
    arrays: dict          # target_flm, and mask / second_flm when given
    environment: dict
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """The run reached its step budget or tolerance: nothing is left to run."""
        return _finished(self.stopped, self.arguments)


def write(path, saved: Saved) -> Path:
    """Write ``saved`` to ``path`` atomically (temporary name, ``fsync``, rename)."""
    meta = {"format": FORMAT, "stopped": saved.stopped, "initial": float(saved.initial),
            "elapsed": float(saved.elapsed), "arguments": saved.arguments,
            "environment": saved.environment, "info": saved.info,
            "optimizer_leaves": len(saved.opt_leaves)}
    arrays = {"meta": np.array(json.dumps(meta)), "x": np.asarray(saved.x),
              "step": np.int64(saved.step), "done": np.bool_(saved.done),
              "last": np.float64(saved.last), "history": np.asarray(saved.history, np.float64),
              "sample_losses": np.asarray(saved.sample_losses),
              "timeline": np.asarray(saved.timeline, np.float64)}
    arrays.update({f"opt_{i:02d}": np.asarray(leaf) for i, leaf in enumerate(saved.opt_leaves)})
    arrays.update({name: np.asarray(a) for name, a in saved.arrays.items() if a is not None})
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def _finished(stopped, arguments: dict) -> bool:
    """Nothing left to run: the budget or tolerance reached, in the last stage of a
    coarse-to-fine run (:mod:`synthesis.stages`: ``arguments["stages"]``)."""
    staged = arguments.get("stages")
    last = staged is None or staged["index"] == len(staged["bandlimits"]) - 1
    return stopped in FINISHED and last


def unfinished(path) -> bool:
    """Whether ``path`` is a readable checkpoint of a run not finished (reads its ``meta``
    only)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
        return meta.get("format") == FORMAT and not _finished(meta.get("stopped"),
                                                              meta.get("arguments") or {})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return False


def read(path) -> Saved:
    """The state in ``path``; ``ValueError`` naming the file if it is missing or not a
    checkpoint of this format."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is not readable ({type(err).__name__}: "
                         f"{err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} has format {meta.get('format')!r}; this "
                         f"version reads format {FORMAT}")
    try:
        count = int(meta["optimizer_leaves"])
        return Saved(
            x=data["x"], opt_leaves=[data[f"opt_{i:02d}"] for i in range(count)],
            step=int(data["step"]), done=bool(data["done"]), last=float(data["last"]),
            history=data["history"], sample_losses=data["sample_losses"],
            timeline=data["timeline"], initial=float(meta["initial"]),
            elapsed=float(meta["elapsed"]), stopped=meta["stopped"],
            arguments=meta["arguments"],
            arrays={k: data[k] for k in ("target_flm", "mask", "second_flm") if k in data},
            environment=meta["environment"], info=meta.get("info") or {})
    except KeyError as err:
        raise ValueError(f"checkpoint {str(path)!r} lacks {err.args[0]!r}") from None


def snapshot(problem, carry, history, per_sample, timeline, *, initial: float, elapsed: float,
             stopped: str | None, info: dict, plan: dict) -> Saved:
    """The state of ``problem`` (:class:`synthesis.engine._Problem`) at ``carry`` and the
    loop's records, as NumPy arrays (``plan``: the checkpoint rule, kept for the resume). A
    sharded batch's padded rows (zeros) are dropped: the file holds the real samples."""
    x, state = carry.x, carry.state
    if problem.batch is not None:
        x, state = problem.batch.unpad_tree((x, state), x.shape)
    devices = problem.batch.devices.count if problem.batch is not None else 1
    return Saved(
        np.asarray(x), [np.asarray(a) for a in jax.tree_util.tree_leaves(state)],
        int(carry.step), bool(carry.done), float(carry.last), np.asarray(history, np.float64),
        np.stack(per_sample), np.asarray(timeline, np.float64).reshape(-1, 2), initial, elapsed,
        stopped, {**problem.arguments, "plan": plan}, problem.arrays,
        {"jax": jax.__version__, "backend": jax.default_backend(), "devices": devices},
        info)


def restore(problem, saved: Saved):
    """The loop's carry from ``saved``, checked against ``problem``'s shapes and dtypes; the
    tree of the optimiser state is that of ``problem``'s fresh one (same spec). A sharded
    batch is padded again (zeros) and placed on ``problem``'s devices."""
    batch = problem.batch
    fresh_x, fresh_state = problem.carry.x, problem.carry.state
    if batch is not None:  # the shapes of the real samples' state
        fresh_x, fresh_state = batch.shapes((fresh_x, fresh_state), fresh_x.shape)
    fresh, treedef = jax.tree_util.tree_flatten(fresh_state)
    got = [(a.shape, a.dtype) for a in saved.opt_leaves]
    want = [(a.shape, a.dtype) for a in fresh]
    if saved.x.shape != fresh_x.shape or got != want:
        raise ValueError(f"the checkpoint's state (x {saved.x.shape}, optimiser {got}) does not "
                         f"fit this run (x {fresh_x.shape}, optimiser {want})")
    x = jnp.asarray(saved.x)
    state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in saved.opt_leaves])
    if batch is not None:
        x, state = batch.pad_tree((x, state), saved.x.shape)
    carry = problem.carry._replace(x=x, state=state, step=jnp.asarray(np.int64(saved.step)),
                                   done=jnp.asarray(np.bool_(saved.done)),
                                   last=jnp.asarray(np.float64(saved.last)))
    return carry if batch is None else batch.place(carry, x.shape)
