"""Synthesis of spherical maps from their directional scattering covariances.

    from synthesis import synthesize, targets
    target = targets.standardise(targets.demo.lognormal(64, seed=1))    # (64, 127) flm
    result = synthesize(target, L=64, N=3, J_min=2, optimizer="lbfgs", steps=150, count=4)
    result.samples          # (4, 64, 127) coefficients, s2fft layout
    result.history          # mean loss before each step (last entry: after the last step)

A long run can be checkpointed and resumed (same samples, bit for bit)::

    result = synthesize(target, L=64, N=3, steps=5000, count=100, checkpoint="run.npz")
    result = resume("run.npz")   # after an interruption, in a new process

Command line: ``s2scat-synth run [CONFIG]`` (experiments in ``experiments/*.toml``),
``s2scat-synth resume OUT_DIR`` and ``s2scat-synth encode FILES... --out stats.npz``.
Packages: :mod:`.config` (schema), :mod:`.targets` (files and demo fields), :mod:`.engine`
(loss and optimisation),
:mod:`.render` (frames, GIF), :mod:`.report` (validation), :mod:`.run` (one experiment),
:mod:`.encode` (compression), :mod:`.checkpoint` and :mod:`.loop` (checkpoints, the host
loop), :mod:`.cli`.
"""

import s2scat_core  # noqa: F401  (enables float64 before anything else touches JAX)

from . import config, targets
from .engine import Diverged, Progress, SynthesisResult, resolve_mode, resume, synthesize

__all__ = ["Diverged", "Progress", "SynthesisResult", "config", "resolve_mode", "resume",
           "synthesize", "targets"]
