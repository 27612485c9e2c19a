"""Integrators of the forward and backward processes of a :class:`lib.diffusion.sde.LinearDriftSDE`.

Forward (:func:`forward_em`), up a :class:`lib.diffusion.grids.TimeGrid` read from its last time to :math:`T`
(:math:`t_k = kT/N` for ``grids.uniform_states(sde, N, 0.0)``), :math:`\\Delta t_k = t_{k+1} - t_k`:

.. math:: x_{k+1} = x_k + K(x_k, t_k)\\,\\Delta t_k + g(t_k)\\sqrt{\\Delta t_k}\\,z_k, \\qquad z_k \\sim \\mathcal N(0, 1).

Backward (:func:`backward_solve`), in :math:`\\tau = T - t` on a :class:`lib.diffusion.grids.TimeGrid`, step
:math:`i` of size :math:`h_i` with the drift at :math:`t_i` (``grid.t_eval[i]``):

.. math:: x \\leftarrow x + [-K(x, t_i) + g^2(t_i)\\,s(x, t_i)]\\,h_i + g(t_i)\\sqrt{h_i}\\,z

(Euler-Maruyama), or stochastic Heun (:func:`heun_step`); the probability-flow ODE replaces :math:`g^2 s` by
:math:`g^2 s / 2` and drops the noise.  The authors' sampler (after the tutorial of Song et al.) is Euler-Maruyama on
:func:`lib.diffusion.grids.uniform_evaluations` without noise on the last step: :func:`backward_em`.  Derived in
:doc:`/book/part1/forward_process` and :doc:`/book/part1/score_matching` (eq. ``eq-backward-sde``); the better
integrators (Heun, the Karras grid, :func:`probability_flow_ivp` with scipy's adaptive RK45) are compared in
:doc:`/book/part2/two_peak`.

Score functions have the signature ``score(x, t) -> tensor like x`` with ``t`` a ``(B,)`` tensor of ``x``'s dtype.
The solvers run under :func:`torch.no_grad` (a score that needs autograd must use :func:`torch.enable_grad`).
The fixed-step solvers take their times from a :class:`lib.diffusion.grids.TimeGrid`.  Records go through the one recorder of
:mod:`lib.core.recording`: ``observe(x, t)`` receives each recorded state with its time on the grid.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib.core import random as _random
from lib.core.checks import (NonFiniteError, describe_members, expand_like, failing_members, require_batch, require_int,
                             require_positive)
from lib.core.recording import Observe, Recorder
from lib.diffusion import grids as _grids
from lib.diffusion.grids import TimeGrid
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["Trajectory", "FlowResult", "em_step", "heun_step", "forward_em", "forward_marginals", "backward_solve", "backward_em",
           "backward_em_variance", "backward_heun_variance", "probability_flow_ivp"]


class Trajectory(NamedTuple):
    """Result of a solver run (no trajectories are kept in memory, only what ``observe`` returns)."""

    x: torch.Tensor  # final state, shape of the initial state
    t: torch.Tensor  # 1-D float64 tensor: the (forward) times at which records were taken
    records: dict  # name -> tensor stacked along a new first axis, one entry per record (empty without observe)


def em_step(x, drift, g, dt: float, generator=None, add_noise: bool = True) -> torch.Tensor:
    """One Euler-Maruyama step :math:`x + D\\,\\Delta t + g\\sqrt{\\Delta t}\\,z` (``z`` from :mod:`lib.core.random`).

    ``drift`` is a tensor like ``x``; ``g`` a scalar or a tensor broadcasting against ``x``.
    """
    mean = x + drift * dt
    if not add_noise:
        return mean
    return mean + (g * math.sqrt(dt)) * _random.standard_normal(x, generator)


def _result(rec: Recorder, x: torch.Tensor) -> Trajectory:
    return Trajectory(x, rec.times(), rec.stacked())


def _check_start(x: torch.Tensor, name: str) -> None:
    require_batch(x, name, finite=True)


def _check_grid(grid) -> None:
    if not isinstance(grid, TimeGrid):
        raise ValueError(f"grid must be a lib.diffusion.grids.TimeGrid (build it with lib.diffusion.grids), "
                         f"got {type(grid).__name__}")


def _check_step(x: torch.Tensor, solver: str, step: int, n_steps: int, t: float, rec: Recorder | None = None,
                x_prev: torch.Tensor | None = None) -> None:
    """Raise :class:`NonFiniteError` when ``x`` is not finite; it carries the run up to the previous step
    (``partial``: a :class:`Trajectory` ending in ``x_prev``) and the failing samples (``bad``)."""
    if not bool(torch.isfinite(x).all()):
        bad = failing_members(x)
        partial = None if rec is None or x_prev is None else _result(rec, x_prev)
        raise NonFiniteError(f"{solver}: x became non-finite at step {step} of {n_steps} (t = {t:.6g}) in "
                             f"{describe_members(bad, x.shape[0])}; the run up to step {step - 1} is in the "
                             "exception's .partial", partial=partial, bad=bad)


@torch.no_grad()
def forward_em(sde: LinearDriftSDE, x0: torch.Tensor, grid: TimeGrid, generator=None,
               observe: Observe | None = None, record_every: int = 1) -> Trajectory:
    """Integrate the forward SDE from ``x0`` with Euler-Maruyama along the time grid ``grid``, read upwards.

    The run starts at the grid's last time ``grid.t[-1]`` (``t = 0`` for ``grids.uniform_states(sde, n, 0.0)``) and
    steps through ``grid.t`` in reverse to ``grid.t[0] = T``, each step with the drift and ``g`` at the time where it
    starts.  ``observe(x, t)`` is recorded at the start, after every ``record_every`` steps and at the end, at the
    grid's times.  Derived in :doc:`/book/part1/forward_process`; the discretisation is that of
    :doc:`/book/part1/stochastic_quantisation` (eq. ``eq-sde-discrete``).
    """
    _check_start(x0, "x0")
    _check_grid(grid)
    record_every = require_int(record_every, "record_every")
    times = grid.t.flip(0).tolist()
    n_steps = len(times) - 1
    rec, x = Recorder(observe), x0
    rec(x, times[0])
    for k in range(n_steps):
        t, t_next = times[k], times[k + 1]
        x_prev, x = x, em_step(x, sde.drift(x, t), expand_like(sde.g(t), x), t_next - t, generator)
        _check_step(x, "forward_em", k + 1, n_steps, t_next, rec, x_prev)
        if (k + 1) % record_every == 0 or k + 1 == n_steps:
            rec(x, t_next)
    return _result(rec, x)


@torch.no_grad()
def forward_marginals(sde: LinearDriftSDE, x0: torch.Tensor, times, generator=None,
                      observe: Observe | None = None) -> Trajectory:
    r"""Records of the exact forward marginal :math:`x_t = f(t, 0)\,x_0 + \sqrt{\Xi(t)}\,\eta` at each ``t`` of ``times``.

    Draws :meth:`lib.diffusion.sde.LinearDriftSDE.sample_marginal` of the batch ``x0`` with fresh noise per time (no
    time stepping: every time is exact) and records ``observe(x_t)``.  The returned state ``x`` is the draw at the
    last time.  Used for the forward cumulants and propagator of :doc:`/book/part3/phi4_diffusion`.
    """
    _check_start(x0, "x0")
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if t.numel() < 1:
        raise ValueError("times must hold at least one time")
    rec, x_t = Recorder(observe), x0
    for tk in t.tolist():
        x_t, _ = sde.sample_marginal(x0, torch.full((x0.shape[0],), tk, dtype=torch.float64), generator)
        rec(x_t, tk)
    return _result(rec, x_t)


def heun_step(x, drift_fn: Callable, t: float, t_next: float, noise=None, h: float | None = None) -> torch.Tensor:
    """One stochastic Heun (predictor-corrector) step from ``t`` to ``t_next`` (backward: ``t_next < t``).

    With :math:`h = t - t_{next}` (or ``h`` when given) and the noise increment :math:`w` (``noise``; ``None`` for
    an ODE),

    .. math::

        \\tilde x = x + D(x, t)\\,h + w, \\qquad
        x_{next} = x + \\tfrac12\\,[D(x, t) + D(\\tilde x, t_{next})]\\,h + w .

    For additive noise this is the explicit weak order-2 scheme of Kloeden & Platen (Sec. 15.1); without noise it
    is Heun's second-order method (the sampler of Karras et al. 2022).  ``drift_fn(x, t)`` returns
    :math:`dx/d\\tau` as a tensor like ``x``; two evaluations per step.
    """
    h = t - t_next if h is None else h
    d0 = drift_fn(x, t)
    pred = x + d0 * h
    if noise is not None:
        pred = pred + noise
    out = x + 0.5 * (d0 + drift_fn(pred, t_next)) * h
    return out if noise is None else out + noise


def _backward_drift(sde: LinearDriftSDE, score: Callable, probability_flow: bool) -> Callable:
    rhs = sde.probability_flow_drift if probability_flow else sde.reverse_drift

    def drift(x: torch.Tensor, t: float) -> torch.Tensor:
        return rhs(x, t, score(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)))

    return drift


@torch.no_grad()
def backward_solve(sde: LinearDriftSDE, score: Callable, x_T: torch.Tensor, grid: TimeGrid, method: str = "heun",
                   generator=None, probability_flow: bool = False, noise_last: bool = True,
                   observe: Observe | None = None, record_every: int = 1) -> Trajectory:
    """Backward process (or probability-flow ODE) from ``x_T`` at ``grid.t[0] = T`` along the time grid ``grid``.

    ``method="euler"``: Euler-Maruyama, :math:`x \\leftarrow x + D(x, t_i) h_i + g(t_i)\\sqrt{h_i}\\, z` (one score
    evaluation per step), with ``t_i = grid.t_eval[i]``; no noise on the last step unless ``noise_last``.
    ``method="heun"``: :func:`heun_step` from ``grid.t_eval[i]`` to ``grid.t[i + 1]`` (two score evaluations per
    step) with the noise increment :math:`w = \\sqrt{u(t_i) - u(t_{i+1})}\\, z`, whose variance is exactly that of
    :math:`\\int g\\,dW` over the step (grids whose evaluation times are the states' times:
    :func:`lib.diffusion.grids.uniform_states`, :func:`lib.diffusion.grids.karras`).
    ``probability_flow=True`` integrates the ODE :math:`dx/d\\tau = -K + g^2 s/2` (no noise).
    ``observe`` is recorded at ``grid.t[0]``, every ``record_every`` steps and at the end, at the times
    ``grid.t``.  Non-finite states raise :class:`lib.core.checks.NonFiniteError`.
    """
    _check_start(x_T, "x_T")
    if not callable(score):
        raise ValueError(f"score must be a callable score(x, t) -> tensor like x, got {type(score).__name__}")
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    _check_grid(grid)
    record_every = require_int(record_every, "record_every")
    t_state, t_eval, h_step = grid.t.tolist(), grid.t_eval.tolist(), grid.h.tolist()
    if method == "heun" and t_eval != t_state[:-1]:
        raise ValueError("stochastic Heun needs a grid whose evaluation times are the states' times "
                         "(grids.uniform_states or grids.karras)")
    n_steps = len(h_step)
    drift = _backward_drift(sde, score, probability_flow)
    rec, x = Recorder(observe), x_T
    rec(x, t_state[0])
    for i in range(n_steps):
        t, t_next, h = t_eval[i], t_state[i + 1], h_step[i]
        last, x_prev = i == n_steps - 1, x
        if method == "euler":
            add_noise = not probability_flow and (noise_last or not last)
            x = em_step(x, drift(x, t), expand_like(sde.g(t), x), h, generator, add_noise)
        else:
            noise = None
            if not probability_flow:
                scale = math.sqrt(max(float(sde.u(t)) - float(sde.u(t_next)), 0.0))
                noise = scale * _random.standard_normal(x, generator)
            x = heun_step(x, drift, t, t_next, noise, h)
        _check_step(x, f"backward_solve({method})", i + 1, n_steps, t_next, rec, x_prev)
        if (i + 1) % record_every == 0 or last:
            rec(x, t_next)
    return _result(rec, x)


def backward_em(sde: LinearDriftSDE, score: Callable, x_T: torch.Tensor, grid: TimeGrid | None = None, generator=None,
                noise_last: bool = False, probability_flow: bool = False, observe: Observe | None = None,
                record_every: int = 1) -> Trajectory:
    """The authors' sampler: :func:`backward_solve` with Euler-Maruyama and no noise on the last step unless
    ``noise_last``, on ``grid``; by default their grid, :func:`lib.diffusion.grids.uniform_evaluations` with 1000
    steps to ``t_end = 1e-3`` (records at ``T`` and after the steps, at ``t_eval - dt``).
    """
    grid = _grids.uniform_evaluations(sde) if grid is None else grid
    return backward_solve(sde, score, x_T, grid, "euler", generator, probability_flow, noise_last, observe,
                          record_every)


def backward_em_variance(sde: LinearDriftSDE, precision: Callable, var_T: float, grid: TimeGrid | None = None,
                         noise_last: bool = False, probability_flow: bool = False):
    """Exact variance of :func:`backward_em` for a linear score :math:`s(x, t) = -\\lambda(t)\\,x` (no sampling).

    Every step of the sampler is then linear, :math:`x \\leftarrow a\\,x + g\\sqrt{\\Delta t}\\,z` with
    :math:`a = 1 + [k(t)/2 - g^2(t)\\lambda(t)]\\Delta t` (:math:`g^2\\lambda/2` and no noise for the probability
    flow), so the second moment of the start, ``var_T``, obeys the recursion
    :math:`V \\leftarrow a^2 V + g^2\\Delta t` (without the noise term on the last step unless ``noise_last``), with
    the step's drift time :math:`t` and size :math:`\\Delta t` from the grid: what :func:`backward_em` gives on the
    same grid for infinitely many trajectories.  For a Gaussian target of
    variance :math:`v_0`, :math:`\\lambda = 1/(v_0 f^2 + \\Xi)`.  Derived in :doc:`/book/part2/gaussian_target`.

    Parameters
    ----------
    sde : LinearDriftSDE
    precision : callable
        ``t -> lambda(t)``, called once with the float64 tensor of the grid's evaluation times ``grid.t_eval``;
        returns a tensor of the same shape, so that the score is ``-lambda(t) x``.
    var_T : float
        Second moment (variance, for a centred start) of ``x_T``; ``>= 0``.
    grid, noise_last, probability_flow
        As in :func:`backward_em` (the default grid is the authors').

    Returns
    -------
    (t, V) : float64 tensors of length ``n_steps + 1``
        The states' times ``grid.t`` (those of :func:`backward_em`'s records with ``record_every=1``) and the
        variance there.
    """
    if not callable(precision):
        raise ValueError(f"precision must be a callable t -> lambda(t), got {type(precision).__name__}")
    var_T = float(var_T)
    if not math.isfinite(var_T) or var_T < 0:
        raise ValueError(f"var_T must be a finite variance >= 0, got {var_T!r}")
    tg = _grids.uniform_evaluations(sde) if grid is None else grid
    _check_grid(tg)
    grid, dt = tg.t_eval.to(torch.float64), tg.h.to(torch.float64)
    lam = torch.as_tensor(precision(grid), dtype=torch.float64)
    if lam.shape != grid.shape:
        raise ValueError(f"precision(t) must return a tensor of the shape of t {tuple(grid.shape)}, got {tuple(lam.shape)}")
    g2, k = sde.g2(grid), sde.k(grid)
    a = 1.0 + (0.5 * k - (0.5 if probability_flow else 1.0) * g2 * lam) * dt
    noise = g2 * dt
    if probability_flow:
        noise = torch.zeros_like(noise)
    elif not noise_last:
        noise[-1] = 0.0
    v, variances = var_T, [var_T]
    for a_i, q_i in zip((a * a).tolist(), noise.tolist()):
        v = a_i * v + q_i
        variances.append(v)
    if not all(math.isfinite(x) for x in variances):
        step = next(i for i, x in enumerate(variances) if not math.isfinite(x))
        raise NonFiniteError(f"backward_em_variance: the variance became non-finite at step {step} "
                             f"(t = {float(grid[step - 1]):.6g})")
    return tg.t, torch.tensor(variances, dtype=torch.float64)


def backward_heun_variance(sde: LinearDriftSDE, precision: Callable, var_T: float, grid: TimeGrid,
                           probability_flow: bool = False) -> torch.Tensor:
    """Exact variance of :func:`backward_solve` with ``method="heun"`` for a linear score :math:`s = -\\lambda(t)\\,x`.

    The drift is then :math:`D(x, t) = c(t)\\,x` with :math:`c = k/2 - g^2\\lambda` (:math:`k/2 - g^2\\lambda/2` for the
    probability flow), and a step of :func:`heun_step` from :math:`t` to :math:`t'` with :math:`h = t - t'` is
    :math:`x' = A\\,x + B\\,w`, :math:`A = 1 + \\tfrac h2\\,[c(t) + c(t')(1 + c(t)h)]`, :math:`B = 1 + \\tfrac h2\\,c(t')`,
    :math:`\\mathrm{Var}(w) = u(t) - u(t')` (0 for the probability flow).  So the second moment obeys
    :math:`V' = A^2 V + B^2\\,\\mathrm{Var}(w)` from ``var_T``: what :func:`backward_solve` gives on ``grid`` for
    infinitely many samples, without sampling noise.  The Heun counterpart of :func:`backward_em_variance`; for a
    Gaussian target of variance :math:`v_0`, :math:`\\lambda = 1/(v_0 f^2 + \\Xi)`.  Used to choose the number of
    steps in :doc:`/book/part3/deep_broken_phase`.

    Parameters
    ----------
    sde : LinearDriftSDE
    precision : callable
        ``t -> lambda(t)``, called once with the float64 tensor of the grid's state times ``grid.t``; returns a
        tensor of the same shape.
    var_T : float
        Second moment of ``x_T``; ``>= 0``.
    grid : TimeGrid
        A grid whose evaluation times are the states' times (:func:`lib.diffusion.grids.karras`,
        :func:`lib.diffusion.grids.uniform_states`), as :func:`backward_solve` requires for Heun.

    Returns
    -------
    torch.Tensor
        float64, length ``n_steps + 1``: the variance at each state time ``grid.t``.
    """
    if not callable(precision):
        raise ValueError(f"precision must be a callable t -> lambda(t), got {type(precision).__name__}")
    _check_grid(grid)
    if grid.t_eval.tolist() != grid.t[:-1].tolist():
        raise ValueError("stochastic Heun needs a grid whose evaluation times are the states' times "
                         "(grids.uniform_states or grids.karras)")
    var_T = float(var_T)
    if not math.isfinite(var_T) or var_T < 0:
        raise ValueError(f"var_T must be a finite variance >= 0, got {var_T!r}")
    t = grid.t.to(torch.float64)
    lam = torch.as_tensor(precision(t), dtype=torch.float64)
    if lam.shape != t.shape:
        raise ValueError(f"precision(t) must return a tensor of the shape of t {tuple(t.shape)}, got {tuple(lam.shape)}")
    c = 0.5 * sde.k(t) - (0.5 if probability_flow else 1.0) * sde.g2(t) * lam
    h = grid.h.to(torch.float64)
    c0, c1 = c[:-1], c[1:]
    a = 1.0 + 0.5 * h * (c0 + c1 * (1.0 + c0 * h))
    b = 1.0 + 0.5 * h * c1
    u = sde.u(t)
    noise = torch.zeros_like(h) if probability_flow else (u[:-1] - u[1:]).clamp(min=0.0)  # as backward_solve
    v, variances = var_T, [var_T]
    for a_i, q_i in zip((a * a).tolist(), (b * b * noise).tolist()):
        v = a_i * v + q_i
        variances.append(v)
    if not all(math.isfinite(x) for x in variances):
        step = next(i for i, x in enumerate(variances) if not math.isfinite(x))
        raise NonFiniteError(f"backward_heun_variance: the variance became non-finite at step {step}")
    return torch.tensor(variances, dtype=torch.float64)


class FlowResult(NamedTuple):
    """Result of :func:`probability_flow_ivp`."""

    x: torch.Tensor  # final state at t_end, shape and dtype of x_T
    nfev: int  # number of score evaluations (one per evaluation of the right-hand side on the whole batch)


@torch.no_grad()
def probability_flow_ivp(sde: LinearDriftSDE, score: Callable, x_T: torch.Tensor, t_end: float = 1e-3,
                         rtol: float = 1e-5, atol: float = 1e-5, method: str = "RK45") -> FlowResult:
    """Probability-flow ODE from ``T`` to ``t_end`` with an adaptive solver of :func:`scipy.integrate.solve_ivp`.

    The whole batch is one state vector (float64), :math:`dx/dt = K(x, t) - g^2(t)\\, s(x, t)/2` integrated
    backwards in :math:`t`; the step size is controlled by ``rtol``/``atol`` on the worst component (an embedded
    Runge-Kutta pair for ``"RK45"``, Dormand & Prince 1980).  Returns the end state (dtype of ``x_T``) and the
    number of score evaluations ``nfev``.
    """
    from scipy.integrate import solve_ivp

    _check_start(x_T, "x_T")
    if not 0.0 <= float(t_end) < sde.T:
        raise ValueError(f"t_end must lie in [0, T) = [0, {sde.T}), got {t_end}")
    require_positive(rtol, "rtol")
    require_positive(atol, "atol")
    shape, dtype, device = x_T.shape, x_T.dtype, x_T.device
    drift = _backward_drift(sde, score, probability_flow=True)

    def rhs(t, y):  # dx/dt = -(dx/dtau)
        x = torch.from_numpy(y).to(device=device, dtype=dtype).reshape(shape)
        return (-drift(x, float(t))).reshape(-1).to(torch.float64).cpu().numpy()

    y0 = x_T.detach().to(torch.float64).cpu().reshape(-1).numpy()
    sol = solve_ivp(rhs, (sde.T, float(t_end)), y0, method=method, rtol=rtol, atol=atol, t_eval=[float(t_end)])
    if not sol.success:
        raise NonFiniteError(f"probability_flow_ivp: solve_ivp failed ({sol.message})")
    x = torch.from_numpy(sol.y[:, -1].copy()).to(device=device, dtype=dtype).reshape(shape)
    _check_step(x, "probability_flow_ivp", sol.nfev, sol.nfev, float(t_end))
    return FlowResult(x, int(sol.nfev))
