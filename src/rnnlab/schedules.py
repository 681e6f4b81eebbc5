"""Learning-rate schedules: callables ``schedule(step) -> lr``.

``step`` counts optimiser steps from 0: ``optimizer.step(params, grads, lr=schedule(i))``.
:func:`constant`, :func:`step_decay`, :func:`cosine` and :func:`warmup` build the common
ones. They raise ValueError for arguments out of range, and so does a schedule for a step
that is not an integer >= 0. A schedule shows as its arguments, e.g.
``Cosine(lr=0.1, total_steps=100, min_lr=0.0)``.

Examples
--------
>>> sched = warmup(cosine(0.1, total_steps=100), warmup_steps=10)
>>> [round(sched(i), 4) for i in (0, 9, 100)]
[0.01, 0.098, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import checks

__all__ = ["Schedule", "constant", "cosine", "step_decay", "warmup"]

Schedule = Callable[[int], float]
"""A learning-rate schedule: maps the step index (from 0) to a learning rate."""

# Fields are the arguments; identity equality and the shared repr below.
_schedule = dataclass(eq=False, repr=False)


class _Schedule:
    """Base of the schedules: checks the step; shows as e.g. ``Cosine(lr=1.0, ...)``."""

    def __call__(self, step: int) -> float:
        return self._at(checks.integer(step, "step", minimum=0))

    def _at(self, step: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__.lstrip('_')}({args})"


@_schedule
class _Constant(_Schedule):
    lr: float

    def _at(self, step: int) -> float:
        return self.lr


@_schedule
class _StepDecay(_Schedule):
    lr: float
    step_size: int
    gamma: float

    def _at(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@_schedule
class _Cosine(_Schedule):
    lr: float
    total_steps: int
    min_lr: float

    def _at(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * frac))


@_schedule
class _Warmup(_Schedule):
    schedule: Schedule
    warmup_steps: int

    def _at(self, step: int) -> float:
        lr = self.schedule(step)
        return lr * (step + 1) / self.warmup_steps if step < self.warmup_steps else lr


def constant(lr: float) -> Schedule:
    """Return the schedule ``step -> lr``, for a learning rate `lr` >= 0."""
    return _Constant(checks.number(lr, "lr", low=0))


def step_decay(lr: float, step_size: int, gamma: float) -> Schedule:
    """Return the schedule ``step -> lr * gamma ** (step // step_size)``.

    Parameters
    ----------
    lr : float
        Initial learning rate (>= 0).
    step_size : int
        Number of steps between decays (>= 1).
    gamma : float
        Multiplicative decay factor in (0, 1].
    """
    return _StepDecay(checks.number(lr, "lr", low=0), checks.positive_int(step_size, "step_size"),
                      checks.number(gamma, "gamma", low=0, high=1, low_open=True))


def cosine(lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """Return a cosine annealing schedule from `lr` down to `min_lr`.

    ``step -> min_lr + (lr - min_lr) * (1 + cos(pi * s / total_steps)) / 2`` with
    ``s = min(step, total_steps)``: `lr` at step 0, `min_lr` from `total_steps` on.

    Parameters
    ----------
    lr : float
        Initial learning rate (>= 0).
    total_steps : int
        Length of the annealing (>= 1).
    min_lr : float, default 0.0
        Final learning rate, in [0, lr].
    """
    lr = checks.number(lr, "lr", low=0)
    return _Cosine(lr, checks.positive_int(total_steps, "total_steps"),
                   checks.number(min_lr, "min_lr", low=0, high=lr))


def warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """Add a linear warm-up to `schedule`.

    ``step -> schedule(step) * (step + 1) / warmup_steps`` while ``step < warmup_steps``,
    then ``schedule(step)``. The wrapped schedule keeps counting from step 0 (it is not
    shifted by the warm-up), so the warm-up reaches the full value
    ``schedule(warmup_steps - 1)`` at its last step.

    Parameters
    ----------
    schedule : callable
        The schedule to warm up, e.g. from :func:`cosine`.
    warmup_steps : int
        Length of the warm-up (>= 0; 0 means no warm-up).
    """
    if not callable(schedule):
        raise ValueError(f"schedule must be a callable step -> lr, got {schedule!r}")
    return _Warmup(schedule, checks.integer(warmup_steps, "warmup_steps", minimum=0))
