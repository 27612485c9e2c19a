"""Euler-Maruyama integrators of the forward and backward processes of a :class:`lib.sde.LinearDriftSDE`.

Forward, on the grid :math:`t_k = kT/N`, :math:`\\Delta t = T/N`:

.. math:: x_{k+1} = x_k + K(x_k, t_k)\\,\\Delta t + g(t_k)\\sqrt{\\Delta t}\\,z_k, \\qquad z_k \\sim \\mathcal N(0, 1).

Backward (the authors' sampler, after the tutorial of Song et al.), in :math:`\\tau = T - t` on the grid
``linspace(T, t_end, N)``:

.. math:: x \\leftarrow x + [-K(x, t) + g^2(t)\\,s(x, t)]\\,\\Delta t + g(t)\\sqrt{\\Delta t}\\,z,

without noise on the last step; the probability-flow ODE replaces :math:`g^2 s` by :math:`g^2 s / 2` and drops the
noise.  Derived in :doc:`book/part1/forward_process` and :doc:`book/part1/score_matching` (eq. ``eq-backward-sde``).

Score functions have the signature ``score(x, t) -> tensor like x`` with ``t`` a ``(B,)`` tensor of ``x``'s dtype.
Both solvers run under :func:`torch.no_grad` (a score that needs autograd must use :func:`torch.enable_grad`).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib import _random
from lib._checks import NonFiniteError, expand_like, require_positive
from lib.sde import LinearDriftSDE

__all__ = ["Trajectory", "authors_grid", "em_step", "forward_em", "backward_em"]

Observe = Callable[[torch.Tensor], dict]


class Trajectory(NamedTuple):
    """Result of a solver run (no trajectories are kept in memory, only what ``observe`` returns)."""

    x: torch.Tensor  # final state, shape of the initial state
    t: torch.Tensor  # 1-D float64 tensor: the (forward) times at which records were taken
    records: dict  # name -> tensor stacked along a new first axis, one entry per record (empty without observe)


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def authors_grid(n_steps: int = 1000, T: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    """The authors' backward time grid ``linspace(T, t_end, n_steps)`` (float64); ``n_steps >= 2``, ``0 < t_end < T``."""
    if _count(n_steps, "n_steps") < 2:
        raise ValueError(f"n_steps must be >= 2 for the backward grid, got {n_steps}")
    T = require_positive(T, "T")
    if not 0.0 < require_positive(t_end, "t_end") < T:
        raise ValueError(f"t_end must lie in (0, T) = (0, {T}), got {t_end}")
    return torch.linspace(T, t_end, n_steps, dtype=torch.float64)


def em_step(x, drift, g, dt: float, generator=None, add_noise: bool = True) -> torch.Tensor:
    """One Euler-Maruyama step :math:`x + D\\,\\Delta t + g\\sqrt{\\Delta t}\\,z` (``z`` from :mod:`lib._random`).

    ``drift`` is a tensor like ``x``; ``g`` a scalar or a tensor broadcasting against ``x``.
    """
    mean = x + drift * dt
    if not add_noise:
        return mean
    return mean + (g * math.sqrt(dt)) * _random.standard_normal(x, generator)


class _Recorder:
    """Calls ``observe`` at chosen steps and stacks the results."""

    def __init__(self, observe: Observe | None):
        self.observe, self.times, self.rows = observe, [], []

    def __call__(self, x: torch.Tensor, t: float) -> None:
        if self.observe is not None:
            self.times.append(t)
            self.rows.append({k: torch.as_tensor(v).detach() for k, v in self.observe(x).items()})

    def result(self, x: torch.Tensor) -> Trajectory:
        records = {k: torch.stack([row[k] for row in self.rows]) for k in (self.rows[0] if self.rows else {})}
        return Trajectory(x, torch.tensor(self.times, dtype=torch.float64), records)


def _check_start(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError(f"{name} must be a floating tensor of shape (B, ...) with the batch on axis 0")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")


def _check_step(x: torch.Tensor, solver: str, step: int, n_steps: int, t: float) -> None:
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{solver}: x became non-finite at step {step} of {n_steps} (t = {t:.6g})")


@torch.no_grad()
def forward_em(sde: LinearDriftSDE, x0: torch.Tensor, n_steps: int, generator=None,
               observe: Observe | None = None, record_every: int = 1) -> Trajectory:
    """Integrate the forward SDE from ``x0`` at ``t = 0`` to ``t = T`` with ``n_steps`` Euler-Maruyama steps.

    ``observe(x) -> dict`` is recorded at ``t = 0``, after every ``record_every`` steps and at ``t = T``.
    Derived in :doc:`book/part1/forward_process`; the discretisation is that of
    :doc:`book/part1/stochastic_quantisation` (eq. ``eq-sde-discrete``).
    """
    _check_start(x0, "x0")
    n_steps, record_every = _count(n_steps, "n_steps"), _count(record_every, "record_every")
    dt = sde.T / n_steps
    rec, x = _Recorder(observe), x0
    rec(x, 0.0)
    for k in range(n_steps):
        t = k * dt
        x = em_step(x, sde.drift(x, t), expand_like(sde.g(t), x), dt, generator)
        _check_step(x, "forward_em", k + 1, n_steps, t + dt)
        if (k + 1) % record_every == 0 or k + 1 == n_steps:
            rec(x, (k + 1) * dt)
    return rec.result(x)


@torch.no_grad()
def backward_em(sde: LinearDriftSDE, score: Callable, x_T: torch.Tensor, n_steps: int = 1000, generator=None,
                t_end: float = 1e-3, noise_last: bool = False, probability_flow: bool = False,
                observe: Observe | None = None, record_every: int = 1) -> Trajectory:
    """The authors' backward sampler from ``x_T`` at ``t = T`` down to ``t ~ 0``.

    For each ``t`` of :func:`authors_grid` (``dt = grid[0] - grid[1]``):
    ``x <- x + reverse_drift(x, t, score(x, t)) dt + g(t) sqrt(dt) z``, with no noise on the last step unless
    ``noise_last``.  ``probability_flow=True`` integrates the probability-flow ODE (no noise at all).
    After the step at ``t`` the state belongs to time ``t - dt`` (the recorded time; it is ``~0`` at the end for the
    authors' grid, slightly negative when ``t_end < dt``).  ``observe`` is recorded at ``t = T``, every
    ``record_every`` steps and at the end.  Derived in :doc:`book/part1/score_matching` (eq. ``eq-backward-sde``).
    """
    _check_start(x_T, "x_T")
    if not callable(score):
        raise ValueError(f"score must be a callable score(x, t) -> tensor like x, got {type(score).__name__}")
    record_every = _count(record_every, "record_every")
    grid = authors_grid(n_steps, sde.T, t_end).tolist()
    dt = grid[0] - grid[1]
    drift_fn = sde.probability_flow_drift if probability_flow else sde.reverse_drift
    rec, x = _Recorder(observe), x_T
    rec(x, grid[0])
    for i, t in enumerate(grid):
        s = score(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        last = i == n_steps - 1
        add_noise = not probability_flow and (noise_last or not last)
        x = em_step(x, drift_fn(x, t, s), expand_like(sde.g(t), x), dt, generator, add_noise)
        _check_step(x, "backward_em", i + 1, n_steps, t)
        if (i + 1) % record_every == 0 or last:
            rec(x, t - dt)
    return rec.result(x)
