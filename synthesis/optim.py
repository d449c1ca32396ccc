"""The optax optimisers of the engine and their one-step update.

The optimiser sees the whole batch ``x (B, 2, L, L)`` and the batch's total loss
``sum_i loss_i(x_i)``. The problem is separable, so:

* Adam (element-wise) moves each sample exactly as if it were optimised alone;
* L-BFGS runs one quasi-Newton iteration on the batch: the line-search step and the curvature
  pairs are shared by the samples (with ``count = 1`` it is plain L-BFGS on one field). This
  keeps the zoom line search's ``lax.cond`` real branches; ``vmap``-ing a per-sample L-BFGS
  would turn them into selects that evaluate every branch (about 3 gradients a step).
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
    """``step(x, state, loss_fn) -> (x', state', loss(x))`` on the whole batch ``x``.

    ``loss_fn`` is the batch's total loss (a scalar). L-BFGS takes the loss and gradient at
    ``x`` from its line-search state with ``optax.value_and_grad_from_state`` (evaluated afresh
    only before the first step), so a step costs one gradient per line-search trial.
    """
    if spec.name == "lbfgs":
        def step(x, state, loss_fn):
            value, grad = optax.value_and_grad_from_state(loss_fn)(x, state=state)
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=loss_fn)
            return optax.apply_updates(x, updates), state, value
    else:
        def step(x, state, loss_fn):
            value, grad = jax.value_and_grad(loss_fn)(x)
            updates, state = opt.update(grad, state, x)
            return optax.apply_updates(x, updates), state, value
    return step
