"""The optax optimisers of the engine and their one-step update, for one sample.

``step(x, state, loss_fn) -> (x', state', loss(x))``: one iteration from variables ``x`` with
the loss at ``x`` (before the update). The engine ``vmap``s it over samples, so each sample has
its own optimiser state: its own Adam moments, or its own L-BFGS memory and line search.
"""

from __future__ import annotations

import dataclasses

import jax
import optax

OPTIMIZERS = ("lbfgs", "adam")
SCHEDULES = ("constant", "cosine", "exponential")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """What to build (hashable, so a jitted function may close over it).

    ``learning_rate``, ``schedule``, ``final_lr_fraction``: Adam (``schedule`` spans ``steps``).
    ``memory``, ``linesearch_steps``: L-BFGS (``optax.lbfgs`` with ``scale_by_zoom_linesearch``).
    """

    name: str = "lbfgs"
    learning_rate: float = 0.05
    schedule: str = "cosine"
    final_lr_fraction: float = 0.01
    steps: int = 100
    memory: int = 10
    linesearch_steps: int = 20

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.name!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.name == "adam" and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0 for Adam, got {self.learning_rate!r}")


def learning_rate(spec: OptimizerSpec):
    """Adam's learning rate: a constant or an optax schedule over ``spec.steps``."""
    lr, steps, end = spec.learning_rate, max(spec.steps, 1), spec.final_lr_fraction
    if spec.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, steps, alpha=end)
    if spec.schedule == "exponential":
        return optax.exponential_decay(lr, steps, decay_rate=max(end, 1e-12))
    return lr


def build(spec: OptimizerSpec) -> optax.GradientTransformation:
    """The optax transformation named by ``spec``."""
    if spec.name == "adam":
        return optax.adam(learning_rate(spec))
    return optax.lbfgs(memory_size=spec.memory, linesearch=optax.scale_by_zoom_linesearch(
        max_linesearch_steps=spec.linesearch_steps, initial_guess_strategy="one"))


def make_step(spec: OptimizerSpec, opt: optax.GradientTransformation):
    """``step(x, state, loss_fn) -> (x', state', loss(x))`` for one sample.

    L-BFGS reads the loss and gradient at ``x`` from its line-search state, as
    ``optax.value_and_grad_from_state`` does, but without that function's ``lax.cond``
    fallback: under ``vmap`` a cond with a per-sample predicate runs both branches, i.e. one
    extra gradient a step. The state must therefore hold valid values before the first step,
    which :func:`store_value_and_grad` puts there (the engine does it once, before step 0).
    """
    if spec.name == "lbfgs":
        def step(x, state, loss_fn):
            value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=loss_fn)
            return optax.apply_updates(x, updates), state, value
    else:
        def step(x, state, loss_fn):
            value, grad = jax.value_and_grad(loss_fn)(x)
            updates, state = opt.update(grad, state, x)
            return optax.apply_updates(x, updates), state, value
    return step


def stores_value(spec: OptimizerSpec) -> bool:
    """Whether the optimiser state carries the loss and gradient at the current variables."""
    return spec.name == "lbfgs"


def store_value_and_grad(state, value, grad):
    """``state`` with its stored loss and gradient replaced (L-BFGS line-search state)."""
    return optax.tree.set(state, value=value, grad=grad)


def stored_value_and_grad(state):
    """The loss and gradient stored in an L-BFGS state."""
    return optax.tree.get(state, "value"), optax.tree.get(state, "grad")
