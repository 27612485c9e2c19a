"""Euler-Maruyama integrators of the forward and backward processes of a :class:`lib.sde.LinearDriftSDE`.

Forward, on the grid :math:`t_k = kT/N`, :math:`\\Delta t = T/N`:

.. math:: x_{k+1} = x_k + K(x_k, t_k)\\,\\Delta t + g(t_k)\\sqrt{\\Delta t}\\,z_k, \\qquad z_k \\sim \\mathcal N(0, 1).

Backward (the authors' sampler, after the tutorial of Song et al.), in :math:`\\tau = T - t` on the grid
``linspace(T, t_end, N)``:

.. math:: x \\leftarrow x + [-K(x, t) + g^2(t)\\,s(x, t)]\\,\\Delta t + g(t)\\sqrt{\\Delta t}\\,z,

without noise on the last step; the probability-flow ODE replaces :math:`g^2 s` by :math:`g^2 s / 2` and drops the
noise.  Derived in :doc:`book/part1/forward_process` and :doc:`book/part1/score_matching` (eq. ``eq-backward-sde``).

Better integrators of the backward process (:func:`backward_solve`: Euler-Maruyama or stochastic Heun on a grid
that ends exactly at ``t_end``, for the SDE or the probability-flow ODE; :func:`probability_flow_ivp`: the ODE with
scipy's adaptive RK45) are derived and compared in :doc:`book/part2/two_peak`.

Score functions have the signature ``score(x, t) -> tensor like x`` with ``t`` a ``(B,)`` tensor of ``x``'s dtype.
Both solvers run under :func:`torch.no_grad` (a score that needs autograd must use :func:`torch.enable_grad`).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib import _random
from lib._checks import NonFiniteError, expand_like, require_int, require_positive
from lib.sde import LinearDriftSDE

__all__ = ["Trajectory", "FlowResult", "authors_grid", "backward_grid", "karras_grid", "em_step", "heun_step", "forward_em", "backward_em",
           "backward_em_variance", "backward_solve", "probability_flow_ivp"]

Observe = Callable[[torch.Tensor], dict]


class Trajectory(NamedTuple):
    """Result of a solver run (no trajectories are kept in memory, only what ``observe`` returns)."""

    x: torch.Tensor  # final state, shape of the initial state
    t: torch.Tensor  # 1-D float64 tensor: the (forward) times at which records were taken
    records: dict  # name -> tensor stacked along a new first axis, one entry per record (empty without observe)


def authors_grid(n_steps: int = 1000, T: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    """The authors' backward time grid ``linspace(T, t_end, n_steps)`` (float64); ``n_steps >= 2``, ``0 < t_end < T``."""
    if require_int(n_steps, "n_steps") < 2:
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
    n_steps, record_every = require_int(n_steps, "n_steps"), require_int(record_every, "record_every")
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
    record_every = require_int(record_every, "record_every")
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


def backward_em_variance(sde: LinearDriftSDE, precision: Callable, var_T: float, n_steps: int = 1000,
                         t_end: float = 1e-3, noise_last: bool = False, probability_flow: bool = False):
    """Exact variance of :func:`backward_em` for a linear score :math:`s(x, t) = -\\lambda(t)\\,x` (no sampling).

    Every step of the sampler is then linear, :math:`x \\leftarrow a\\,x + g\\sqrt{\\Delta t}\\,z` with
    :math:`a = 1 + [k(t)/2 - g^2(t)\\lambda(t)]\\Delta t` (:math:`g^2\\lambda/2` and no noise for the probability
    flow), so the second moment of the start, ``var_T``, obeys the recursion
    :math:`V \\leftarrow a^2 V + g^2\\Delta t` (without the noise term on the last step unless ``noise_last``):
    what :func:`backward_em` gives for infinitely many trajectories, on the same grid.  For a Gaussian target of
    variance :math:`v_0`, :math:`\\lambda = 1/(v_0 f^2 + \\Xi)`.  Derived in :doc:`book/part2/gaussian_target`.

    Parameters
    ----------
    sde : LinearDriftSDE
    precision : callable
        ``t -> lambda(t)``, called once with the float64 tensor of the grid times (:func:`authors_grid`); returns a
        tensor of the same shape, so that the score is ``-lambda(t) x``.
    var_T : float
        Second moment (variance, for a centred start) of ``x_T``; ``>= 0``.
    n_steps, t_end, noise_last, probability_flow
        As in :func:`backward_em`.

    Returns
    -------
    (t, V) : float64 tensors of length ``n_steps + 1``
        The times of :func:`backward_em`'s records with ``record_every=1`` (``T``, then ``t - dt`` after each step)
        and the variance there.
    """
    if not callable(precision):
        raise ValueError(f"precision must be a callable t -> lambda(t), got {type(precision).__name__}")
    var_T = float(var_T)
    if not math.isfinite(var_T) or var_T < 0:
        raise ValueError(f"var_T must be a finite variance >= 0, got {var_T!r}")
    grid = authors_grid(n_steps, sde.T, t_end)
    lam = torch.as_tensor(precision(grid), dtype=torch.float64)
    if lam.shape != grid.shape:
        raise ValueError(f"precision(t) must return a tensor of the shape of t {tuple(grid.shape)}, got {tuple(lam.shape)}")
    dt = float(grid[0] - grid[1])
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
    times = torch.cat([grid[:1], grid - dt])
    return times, torch.tensor(variances, dtype=torch.float64)


# --- better integrators of the backward process ------------------------------------------------------------------------
# Derived and compared with Euler-Maruyama in :doc:`book/part2/two_peak` (section "Better integrators").

class FlowResult(NamedTuple):
    """Result of :func:`probability_flow_ivp`."""

    x: torch.Tensor  # final state at t_end, shape and dtype of x_T
    nfev: int  # number of score evaluations (one per evaluation of the right-hand side on the whole batch)


def backward_grid(n_steps: int, T: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    """``n_steps`` steps from ``T`` down to ``t_end``: ``linspace(T, t_end, n_steps + 1)`` (float64).

    Unlike :func:`authors_grid` (``n`` points, ``n`` steps, last step ending at ``t_end - dt``) every step ends on
    a grid point, so the state at the end belongs to ``t_end`` for any ``n_steps``.
    """
    n_steps = require_int(n_steps, "n_steps")
    T = require_positive(T, "T")
    if not 0.0 <= float(t_end) < T:
        raise ValueError(f"t_end must lie in [0, T) = [0, {T}), got {t_end}")
    return torch.linspace(T, float(t_end), n_steps + 1, dtype=torch.float64)


def karras_grid(sde: LinearDriftSDE, n_steps: int, t_end: float = 1e-4, rho: float = 7.0) -> torch.Tensor:
    r"""``n_steps`` steps from ``T`` down to ``t_end``, uniform in :math:`\Xi(t)^{1/(2\rho)}` (Karras et al. 2022).

    With :math:`\varsigma_i = \sqrt{\Xi(t_i)}` the grid is
    :math:`\varsigma_i = \big[\varsigma_{max}^{1/\rho} + \tfrac in (\varsigma_{min}^{1/\rho} - \varsigma_{max}^{1/\rho})\big]^\rho`,
    :math:`i = 0..n`, mapped back to times by inverting the increasing :math:`\Xi(t)` (bisection).  The steps are
    small where the noise is small, where the score changes fastest relative to the width of the data: a target
    mode of variance :math:`v` needs :math:`\Delta\Xi \ll v`, which a uniform grid in :math:`t` violates for small
    :math:`v` near the end.  Float64, ``grid[0] = T``, ``grid[-1] = t_end``; for :func:`backward_solve`.
    Used in :doc:`book/part3/phi4_diffusion`.
    """
    n_steps = require_int(n_steps, "n_steps")
    rho = require_positive(rho, "rho")
    T = sde.T
    if not 0.0 < float(t_end) < T:
        raise ValueError(f"t_end must lie in (0, T) = (0, {T}), got {t_end}")
    lo_s, hi_s = math.sqrt(float(sde.xi(float(t_end)))), math.sqrt(float(sde.xi(T)))
    i = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    target = (hi_s ** (1 / rho) + i * (lo_s ** (1 / rho) - hi_s ** (1 / rho))) ** (2 * rho)  # Xi on the grid
    lo, hi = torch.full_like(target, float(t_end)), torch.full_like(target, T)
    for _ in range(100):  # bisection of the increasing Xi(t); 100 halvings reach float64 resolution
        mid = 0.5 * (lo + hi)
        above = sde.xi(mid) > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    grid = 0.5 * (lo + hi)
    grid[0], grid[-1] = T, float(t_end)
    return grid


def heun_step(x, drift_fn: Callable, t: float, t_next: float, noise=None) -> torch.Tensor:
    """One stochastic Heun (predictor-corrector) step from ``t`` to ``t_next`` (backward: ``t_next < t``).

    With :math:`h = t - t_{next}` and the noise increment :math:`w` (``noise``; ``None`` for an ODE),

    .. math::

        \\tilde x = x + D(x, t)\\,h + w, \\qquad
        x_{next} = x + \\tfrac12\\,[D(x, t) + D(\\tilde x, t_{next})]\\,h + w .

    For additive noise this is the explicit weak order-2 scheme of Kloeden & Platen (Sec. 15.1); without noise it
    is Heun's second-order method (the sampler of Karras et al. 2022).  ``drift_fn(x, t)`` returns
    :math:`dx/d\\tau` as a tensor like ``x``; two evaluations per step.
    """
    h = t - t_next
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
def backward_solve(sde: LinearDriftSDE, score: Callable, x_T: torch.Tensor, n_steps: int = 100,
                   method: str = "heun", generator=None, t_end: float = 1e-3, probability_flow: bool = False,
                   observe: Observe | None = None, record_every: int = 1, spacing: str = "uniform") -> Trajectory:
    """Backward process (or probability-flow ODE) from ``x_T`` at ``T`` to exactly ``t_end`` on :func:`backward_grid`.

    ``method="euler"``: Euler-Maruyama, :math:`x \\leftarrow x + D(x, t_i) h + g(t_i)\\sqrt h\\, z` (one score
    evaluation per step; noise on every step, so the end state samples :math:`p(x, t_{end})`).
    ``method="heun"``: :func:`heun_step` (two score evaluations per step) with the noise increment
    :math:`w = \\sqrt{u(t_i) - u(t_{i+1})}\\, z`, whose variance is exactly that of :math:`\\int g\\,dW` over the step.
    ``probability_flow=True`` integrates the ODE :math:`dx/d\\tau = -K + g^2 s/2` (no noise).
    The score is evaluated only at grid times ``>= t_end``; ``t_end = 0`` is allowed for scores that are finite at
    ``t = 0`` (e.g. the exact score of a smooth target).  ``observe`` is recorded at ``T``, every ``record_every``
    steps and at ``t_end``.  Non-finite states raise :class:`NonFiniteError`.  ``spacing="karras"`` replaces the
    uniform grid by :func:`karras_grid` (``t_end > 0``).
    """
    _check_start(x_T, "x_T")
    if not callable(score):
        raise ValueError(f"score must be a callable score(x, t) -> tensor like x, got {type(score).__name__}")
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    record_every = require_int(record_every, "record_every")
    if spacing not in ("uniform", "karras"):
        raise ValueError(f"spacing must be 'uniform' or 'karras', got {spacing!r}")
    grid = (backward_grid(n_steps, sde.T, t_end) if spacing == "uniform" else karras_grid(sde, n_steps, t_end)).tolist()
    drift = _backward_drift(sde, score, probability_flow)
    rec, x = _Recorder(observe), x_T
    rec(x, grid[0])
    for i in range(n_steps):
        t, t_next = grid[i], grid[i + 1]
        h = t - t_next
        if method == "euler":
            x = em_step(x, drift(x, t), expand_like(sde.g(t), x), h, generator, add_noise=not probability_flow)
        else:
            noise = None
            if not probability_flow:
                scale = math.sqrt(max(float(sde.u(t)) - float(sde.u(t_next)), 0.0))
                noise = scale * _random.standard_normal(x, generator)
            x = heun_step(x, drift, t, t_next, noise)
        _check_step(x, f"backward_solve({method})", i + 1, n_steps, t_next)
        if (i + 1) % record_every == 0 or i + 1 == n_steps:
            rec(x, t_next)
    return rec.result(x)


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
