"""Real Langevin dynamics: stochastic quantisation of an action :math:`S(x)`.

In the convention of the exercise sheet's footnote (:math:`\\epsilon \\to 2\\epsilon`),

.. math::

    x_{n+1} = x_n + \\epsilon K(x_n) + \\sqrt{2\\epsilon}\\, \\eta_n, \\qquad
    K = -\\frac{\\partial S}{\\partial x}, \\qquad \\langle \\eta_n \\eta_{n'} \\rangle = \\delta_{nn'},

whose stationary distribution is :math:`p(x) \\propto e^{-S(x)}` up to :math:`O(\\epsilon)`
corrections.  Derived in :doc:`/book/part1/stochastic_quantisation` (exercises 1-2).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from lib.core import random as _random
from lib.core.checks import NonFiniteError, describe_members, failing_members, require_int, require_positive
from lib.core.recording import Recorder

__all__ = ["LangevinRun", "langevin", "langevin_step"]


class LangevinRun(NamedTuple):
    """Result of :func:`langevin`."""

    x: torch.Tensor  # final state, shape of x0
    t: torch.Tensor  # 1-D float64 tensor: Langevin times of the records (thermalisation included)
    records: dict  # name -> tensor stacked along a new first axis, one entry per record

def langevin_step(force: Callable, x: torch.Tensor, step: float, generator: torch.Generator | None = None):
    r"""One update :math:`x' = x + \epsilon K(x) + \sqrt{2\epsilon}\,\eta`, :math:`\eta \sim \mathcal N(0, 1)`.

    The noise is drawn through :func:`lib.core.random.standard_normal`.  See
    :doc:`/book/part1/stochastic_quantisation` (eq. ``eq-langevin-discrete``).
    """
    drift = force(x)
    if not isinstance(drift, torch.Tensor) or drift.shape != x.shape:
        shape = tuple(drift.shape) if isinstance(drift, torch.Tensor) else type(drift).__name__
        raise ValueError(f"force(x) must return a tensor of the shape of x {tuple(x.shape)}, got {shape}")
    return x + step * drift + math.sqrt(2.0 * step) * _random.standard_normal(x, generator)


def langevin(
    force: Callable,
    x0: torch.Tensor,
    step: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    n_therm: int = 0,
    record_every: int = 1,
    observe: Callable | None = None,
    progress: bool = False,
) -> LangevinRun:
    r"""Run ``n_chains`` independent Langevin chains for the action whose drift is ``force``.

    .. math::
        x_{n+1} = x_n + \epsilon K(x_n) + \sqrt{2\epsilon}\,\eta_n, \qquad K = -S'(x).

    For :math:`S = x^2/2` the discrete chain is Gaussian with stationary variance
    :math:`1/(1 - \epsilon/2)` (not 1): the :math:`O(\epsilon)` step-size bias.  Derived in
    :doc:`/book/part1/stochastic_quantisation`.

    Parameters
    ----------
    force : callable
        ``x -> K(x)``, a tensor of the shape of ``x``.
    x0 : torch.Tensor
        Start, shape ``(n_chains, ...)`` (any configuration shape); real floating point.
    step : float
        Langevin step :math:`\epsilon > 0`.
    n_steps : int
        Number of production steps (>= 0) after thermalisation.
    generator : torch.Generator, optional
        Source of the noise (on the device of ``x0``).
    n_therm : int
        Thermalisation steps before the first record (not recorded).
    record_every : int
        Record every this many production steps (>= 1).
    observe : callable, optional
        ``(x, t) -> dict[str, Tensor]`` with the Langevin time ``t`` of the record (:mod:`lib.core.recording`),
        default ``{"x": x}``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    LangevinRun
        ``x`` the final state; records at production steps ``0, r, 2r, ... <= n_steps``
        (``r = record_every``; step 0 is the state after thermalisation) at Langevin times
        ``t = (n_therm + k) * step``; ``records[name]`` has shape ``(n_records, ...)``.

    Raises
    ------
    ValueError
        Bad step, counts, ``x0`` or force output.
    lib.core.checks.NonFiniteError
        NaN or infinity in the state (runaway), naming the step.
    """
    step = require_positive(step, "step")
    n_steps = require_int(n_steps, "n_steps", 0)
    n_therm = require_int(n_therm, "n_therm", 0)
    record_every = require_int(record_every, "record_every", 1)
    if not isinstance(x0, torch.Tensor) or x0.ndim < 1:
        raise ValueError("x0 must be a tensor of shape (n_chains, ...) with the chains on axis 0")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a real floating-point tensor, got {x0.dtype} (complex Langevin lives elsewhere)")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains non-finite values (NaN or inf)")
    observe = observe if observe is not None else (lambda x, t: {"x": x})

    rec = Recorder(observe, clone=True)

    def record(x, k):
        rec(x, (n_therm + k) * step)

    x = x0
    total = n_therm + n_steps
    for n in tqdm(range(total), disable=not progress, desc="Langevin", leave=False):
        if n == n_therm:
            record(x, 0)
        x_prev, x = x, langevin_step(force, x, step, generator)
        if not bool(torch.isfinite(x).all()):
            phase = "thermalisation" if n < n_therm else "production"
            bad = failing_members(x)
            raise NonFiniteError(
                f"Langevin step {n + 1} of {total} ({phase}, Langevin time {(n + 1) * step:g}) produced non-finite "
                f"values in {describe_members(bad, x.shape[0], 'chains')}; the dynamics ran away: reduce the step "
                f"size (step = {step:g}); the run up to the previous step is in the exception's .partial",
                partial=LangevinRun(x=x_prev, t=rec.times(), records=rec.stacked()), bad=bad)
        k = n + 1 - n_therm
        if k > 0 and k % record_every == 0:
            record(x, k)
    if n_steps == 0:  # the loop never reached production step 0
        record(x, 0)
    return LangevinRun(x=x, t=rec.times(), records=rec.stacked())
