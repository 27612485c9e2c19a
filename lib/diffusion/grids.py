r"""Time grids of the backward process, as values: built once, handed to the solver and to whatever records along it.

A :class:`TimeGrid` of ``n`` steps runs from :math:`T` down towards 0 and holds

- ``t``: the ``n + 1`` times of the states (``t[0] = T``; the state after step ``i`` belongs to ``t[i + 1]``);
- ``t_eval``: the ``n`` times at which step ``i`` evaluates the drift (and the score);
- ``h``: the ``n`` step sizes.

Three builders:

:func:`uniform_states`
    ``t = linspace(T, t_end, n + 1)``, ``t_eval = t[:-1]``, ``h = t[:-1] - t[1:]``: every step ends on a grid
    point, the last state belongs to ``t_end``.
:func:`karras`
    states uniform in :math:`\varsigma(t)^{1/\rho}`, :math:`\varsigma = \sqrt{\Xi}/f` (Karras et al. 2022), small steps where the noise is small.
:func:`uniform_evaluations`
    the authors' grid (after the tutorial of Song et al.): the drift is evaluated at ``linspace(T, t_end, n)``
    with the fixed step ``dt = (T - t_end)/(n - 1)``, so the last state belongs to ``t_end - dt`` (slightly
    negative when ``t_end < dt``).

Derived in :doc:`/book/part1/score_matching` and compared in :doc:`/book/part2/two_peak` and
:doc:`/book/part3/phi4_diffusion`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from lib.core.checks import require_int, require_positive
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["TimeGrid", "uniform_states", "uniform_evaluations", "karras", "SPACINGS", "build"]

#: the names :func:`build` accepts
SPACINGS = ("uniform", "karras", "uniform-evaluations")


class TimeGrid(NamedTuple):
    """Times of a backward run of ``n`` steps (float64, on the CPU)."""

    t: torch.Tensor  # (n + 1,) times of the states, t[0] = T
    t_eval: torch.Tensor  # (n,) time at which step i evaluates the drift
    h: torch.Tensor  # (n,) size of step i (> 0)

    @property
    def n_steps(self) -> int:
        return int(self.h.numel())

    @property
    def t_end(self) -> float:
        """Time of the last state."""
        return float(self.t[-1])


def _from_states(t: torch.Tensor) -> TimeGrid:
    return TimeGrid(t, t[:-1].clone(), t[:-1] - t[1:])


def uniform_states(sde: LinearDriftSDE, n_steps: int, t_end: float = 1e-3) -> TimeGrid:
    """``n_steps`` equal steps from ``T`` to exactly ``t_end`` (``0 <= t_end < T``)."""
    n_steps = require_int(n_steps, "n_steps")
    T = require_positive(sde.T, "T")
    if not 0.0 <= float(t_end) < T:
        raise ValueError(f"t_end must lie in [0, T) = [0, {T}), got {t_end}")
    return _from_states(torch.linspace(T, float(t_end), n_steps + 1, dtype=torch.float64))


def uniform_evaluations(sde: LinearDriftSDE, n_steps: int = 1000, t_end: float = 1e-3) -> TimeGrid:
    """The authors' grid: drift at ``linspace(T, t_end, n_steps)``, steps ``dt = t_eval[0] - t_eval[1]``.

    ``n_steps >= 2`` and ``0 < t_end < T``; the state after step ``i`` belongs to ``t_eval[i] - dt``.
    """
    if require_int(n_steps, "n_steps") < 2:
        raise ValueError(f"n_steps must be >= 2 for this grid, got {n_steps}")
    T = require_positive(sde.T, "T")
    if not 0.0 < require_positive(t_end, "t_end") < T:
        raise ValueError(f"t_end must lie in (0, T) = (0, {T}), got {t_end}")
    t_eval = torch.linspace(T, t_end, n_steps, dtype=torch.float64)
    dt = t_eval[0] - t_eval[1]
    return TimeGrid(torch.cat([t_eval[:1], t_eval - dt]), t_eval, torch.full_like(t_eval, float(dt)))


def karras(sde: LinearDriftSDE, n_steps: int, t_end: float = 1e-4, rho: float = 7.0) -> TimeGrid:
    r"""``n_steps`` steps from ``T`` down to ``t_end``, uniform in :math:`\varsigma^{1/\rho}` (Karras et al. 2022).

    :math:`\varsigma(t) = \sqrt{\Xi(t)}/f(t)` is the noise-to-signal ratio, the noise level of Karras et al.:
    :math:`\sqrt{\Xi}` for the variance-expanding process (:math:`f = 1`).  The states are at
    :math:`\varsigma_i = \big[\varsigma_{max}^{1/\rho} + \tfrac in (\varsigma_{min}^{1/\rho} - \varsigma_{max}^{1/\rho})\big]^\rho`,
    :math:`i = 0..n`, mapped back to times by inverting the increasing :math:`\varsigma(t)` (bisection).  The steps
    are small where the noise is small, where the score changes fastest relative to the width of the data: a target
    mode of variance :math:`v` needs :math:`\Delta\Xi \ll v`, which a uniform grid in :math:`t` violates for small
    :math:`v` near the end.  Used in :doc:`/book/part3/phi4_diffusion` and :doc:`/book/part3/exact_sampler`.
    """
    n_steps = require_int(n_steps, "n_steps")
    rho = require_positive(rho, "rho")
    T = sde.T
    if not 0.0 < float(t_end) < T:
        raise ValueError(f"t_end must lie in (0, T) = (0, {T}), got {t_end}")
    lo_s, hi_s = float(sde.noise_to_signal(float(t_end))), float(sde.noise_to_signal(T))
    if not (math.isfinite(hi_s) and 0.0 < lo_s < hi_s):
        raise ValueError(f"the noise-to-signal ratio sqrt(Xi)/f of {sde!r} is {lo_s:.3g} at t_end = {t_end} and "
                         f"{hi_s:.3g} at T = {T}: it must be finite and grow from t_end to T (at T the signal f(T) = "
                         f"{float(sde.f(T)):.3g} underflows when the process is far too strong; use a smaller sigma)")
    i = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    try:
        target = (hi_s ** (1 / rho) + i * (lo_s ** (1 / rho) - hi_s ** (1 / rho))) ** rho  # varsigma on the grid
    except OverflowError:
        target = torch.full_like(i, math.inf)
    if not bool(torch.isfinite(target).all()) or not bool((target[:-1] > target[1:]).all()):
        raise ValueError(f"rho = {rho} makes the noise levels of the grid overflow or coincide (varsigma from "
                         f"{lo_s:.3g} to {hi_s:.3g} to the power 1/rho); Karras et al. take rho = 7, use a value of "
                         "order 1 to 10")
    lo, hi = torch.full_like(target, float(t_end)), torch.full_like(target, T)
    for _ in range(100):  # bisection of the increasing varsigma(t); 100 halvings reach float64 resolution
        mid = 0.5 * (lo + hi)
        above = sde.noise_to_signal(mid) > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    grid = 0.5 * (lo + hi)
    grid[0], grid[-1] = T, float(t_end)
    if not bool((grid[:-1] > grid[1:]).all()):
        zero = int((grid[:-1] <= grid[1:]).sum())
        raise ValueError(f"{zero} of the {n_steps} steps of the grid have zero length: the noise-to-signal ratio of "
                         f"{sde!r} does not resolve them in float64 (too many steps for this process, or a process "
                         "far too strong)")
    return _from_states(grid)


def build(sde: LinearDriftSDE, spacing: str, n_steps: int, t_end: float) -> TimeGrid:
    """The grid named ``spacing`` (one of :data:`SPACINGS`)."""
    if spacing == "uniform":
        return uniform_states(sde, n_steps, t_end)
    if spacing == "karras":
        return karras(sde, n_steps, t_end)
    if spacing == "uniform-evaluations":
        return uniform_evaluations(sde, n_steps, t_end)
    raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
