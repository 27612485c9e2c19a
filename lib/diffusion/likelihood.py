"""Log-likelihood of a score model through the probability-flow ODE (Chen et al. 2018; Song et al. 2021, eq. 39).

The probability-flow ODE of a :class:`lib.diffusion.sde.LinearDriftSDE`, in forward time :math:`t`,

.. math::

    \\frac{dx}{dt} = \\tilde f(x, t) = K(x, t) - \\tfrac12 g^2(t)\\, s(x, t),

transports :math:`p(x, t)` exactly when :math:`s` is the exact score, and the density along a trajectory obeys the
instantaneous change of variables :math:`d \\log p(x(t), t)/dt = -\\nabla \\cdot \\tilde f(x(t), t)`.  Integrating from
``t_eps`` to ``T``,

.. math::

    \\log p_{t_\\epsilon}(x(t_\\epsilon))
    = \\log p_T(x(T)) + \\int_{t_\\epsilon}^T \\nabla \\cdot \\tilde f(x(t), t)\\,dt,

with the prior :math:`\\mathcal N(0, \\Xi(T))` in place of :math:`p_T`.  The divergence is the trace of the Jacobian
(:func:`divergence`, exactly or with the Skilling-Hutchinson estimator).  Used in :doc:`/book/part3/phi4_diffusion`,
where the effective action :math:`-\\log q` of the diffusion model is compared with the lattice action :math:`S`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib.core.checks import NonFiniteError, require_batch, require_int, require_positive

__all__ = ["Likelihood", "divergence", "log_likelihood"]

_METHODS = ("exact", "hutchinson")

# probes(p0, n, b0, nb) -> cotangents of shape (n, nb, ...) for probes p0..p0+n-1 and samples b0..b0+nb-1
Probes = Callable[[int, int, int, int], torch.Tensor]


class Likelihood(NamedTuple):
    """Result of :func:`log_likelihood`."""

    logp: torch.Tensor  # (B,) float64: log p_{t_eps}(x0) of the model, prior_logp(x_T) + int div f~ dt
    x_T: torch.Tensor  # end of the probability-flow trajectory at t = T, shape and dtype of x0
    nfev: int  # evaluations of the augmented right-hand side (each: drift and divergence on the whole batch)


# --- checks ----------------------------------------------------------------------------------------------------------
def _check_batch(x, name: str) -> None:
    require_batch(x, name, finite=True, non_empty=True)


def _check_method(method: str, generator) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "hutchinson" and not isinstance(generator, torch.Generator):
        raise ValueError("method='hutchinson' draws random probes and needs an explicit torch.Generator "
                         "(generator=...)")


def _check_time(t, x: torch.Tensor):
    if isinstance(t, torch.Tensor) and not (t.ndim == 0 or t.shape == (x.shape[0],)):
        raise ValueError(f"t must be a number, a 0-d tensor or a tensor of shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


# --- divergence ------------------------------------------------------------------------------------------------------
def _one_hot(shape: tuple, dtype, device) -> Probes:
    """Cotangents e_j (j = probe index) for the exact trace, built chunk by chunk (never all d x d at once)."""
    d = math.prod(shape)

    def probes(p0: int, n: int, b0: int, nb: int) -> torch.Tensor:
        v = torch.zeros((n, nb, d), dtype=dtype, device=device)
        v[torch.arange(n, device=device), :, torch.arange(p0, p0 + n, device=device)] = 1.0
        return v.reshape((n, nb) + shape)

    return probes


def _rademacher(shape: tuple, generator: torch.Generator, dtype, device) -> torch.Tensor:
    """Independent +-1 entries with probability 1/2 (Rademacher), from ``generator``, moved to ``device``."""
    bits = torch.randint(0, 2, shape, generator=generator, device=generator.device)
    return (2 * bits - 1).to(dtype=dtype, device=device)


def _fixed(v: torch.Tensor) -> Probes:
    """Cotangents sliced from a tensor ``v`` of shape (n_probes, B, ...)."""
    return lambda p0, n, b0, nb: v[p0:p0 + n, b0:b0 + nb]


def _trace_vjp(fn: Callable, x: torch.Tensor, t, probes: Probes, n_probes: int, chunk_size: int):
    """``fn(x, t)`` and :math:`\\sum_p v_p^\\top J(x)\\, v_p` per sample, from vector-Jacobian products.

    The batch is replicated once per probe (row ``p * nb + b`` holds sample ``b`` with cotangent ``v_p``), so
    ``fn`` only ever sees an ordinary batch: this works for any module, also one that mixes the batch axis
    internally in a per-sample way (e.g. ``cat([x, -x])``).  At most ``chunk_size`` rows (at least one batch
    slice) go through ``fn`` at a time.  Returns ``(fn(x, t) detached, sum over probes)``.
    """
    B = x.shape[0]
    bs = min(B, chunk_size)
    per = max(1, chunk_size // bs)
    value = torch.empty_like(x)
    total = torch.zeros(B, dtype=x.dtype, device=x.device)
    for b0 in range(0, B, bs):
        xb = x[b0:b0 + bs].detach()
        nb = xb.shape[0]
        tb = t[b0:b0 + nb] if isinstance(t, torch.Tensor) and t.ndim == 1 else t
        for p0 in range(0, n_probes, per):
            n = min(per, n_probes - p0)
            v = probes(p0, n, b0, nb)
            xr = xb.expand((n,) + xb.shape).reshape((n * nb,) + xb.shape[1:]).clone().requires_grad_(True)
            tr = tb.repeat(n) if isinstance(tb, torch.Tensor) and tb.ndim == 1 else tb
            with torch.enable_grad():
                out = fn(xr, tr)
                if not isinstance(out, torch.Tensor) or out.shape != xr.shape:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ValueError(f"fn(x, t) must return a tensor of the shape of x {tuple(xr.shape)}, got {got}")
                grad = None
                if out.requires_grad:
                    (grad,) = torch.autograd.grad(out, xr, grad_outputs=v.reshape(out.shape).to(out.dtype),
                                                  allow_unused=True)
            if p0 == 0:
                value[b0:b0 + nb] = out[:nb].detach()
            if grad is not None:  # no graph to x: fn is constant in x, its divergence vanishes
                total[b0:b0 + nb] += (grad * v.reshape(grad.shape)).reshape(n, nb, -1).sum(dim=(0, 2))
    return value, total


def divergence(fn: Callable, x: torch.Tensor, t, method: str = "exact", generator: torch.Generator | None = None,
               n_probes: int = 1, chunk_size: int = 4096) -> torch.Tensor:
    """Divergence :math:`\\nabla \\cdot F = \\operatorname{tr} \\partial F / \\partial x` over the configuration axes.

    ``"exact"``: the trace from :math:`d` vector-Jacobian products with the unit vectors,
    :math:`\\sum_{j=1}^d e_j^\\top J\\, e_j`, :math:`d` = number of elements of a configuration.
    ``"hutchinson"``: the Skilling-Hutchinson estimator :math:`\\frac1n \\sum_{p=1}^n v_p^\\top J\\, v_p` with
    Rademacher probes :math:`v_p \\in \\{-1, 1\\}^d` (unbiased, since :math:`E[v v^\\top] = 1`).

    Parameters
    ----------
    fn : callable
        Vector field ``fn(x, t) -> tensor like x``, differentiable in ``x`` with autograd and acting on every sample
        of the batch separately.  It is called on replicated batches of up to ``chunk_size`` rows; a per-sample
        ``t`` is replicated with them.
    x : tensor, shape (B, ...)
        Points at which to evaluate; any trailing shape.
    t : float, 0-d tensor or tensor of shape (B,)
        Passed through to ``fn``.
    method : {"exact", "hutchinson"}
    generator : torch.Generator
        Source of the probes; required for ``"hutchinson"``.
    n_probes : int
        Number of probes averaged by ``"hutchinson"`` (ignored by ``"exact"``).
    chunk_size : int
        Maximal number of rows per call of ``fn`` (the batch itself is the minimum).

    Returns
    -------
    tensor, shape (B,)
        The divergence per sample, detached, in the dtype of ``x``.  A field whose output has no autograd graph
        to ``x`` is treated as constant (divergence 0).
    """
    _check_batch(x, "x")
    _check_method(method, generator)
    _check_time(t, x)
    n_probes = require_int(n_probes, "n_probes")
    chunk_size = require_int(chunk_size, "chunk_size")
    shape = tuple(x.shape[1:])
    if method == "exact":
        probes, n, scale = _one_hot(shape, x.dtype, x.device), math.prod(shape), 1.0
    else:
        v = _rademacher((n_probes,) + tuple(x.shape), generator, x.dtype, x.device)
        probes, n, scale = _fixed(v), n_probes, 1.0 / n_probes
    return _trace_vjp(fn, x, t, probes, n, chunk_size)[1] * scale


# --- log-likelihood --------------------------------------------------------------------------------------------------
def log_likelihood(sde, score: Callable, x0: torch.Tensor, t_eps: float = 1e-3, method: str = "exact",
                   rtol: float = 1e-5, atol: float = 1e-5, generator: torch.Generator | None = None,
                   n_probes: int = 1, chunk_size: int = 4096) -> Likelihood:
    """Log density :math:`\\log p_{t_\\epsilon}(x_0)` of the score model, from the probability-flow ODE.

    The augmented ODE

    .. math::

        \\frac{d}{dt}\\begin{pmatrix} x \\\\ \\delta \\end{pmatrix}
        = \\begin{pmatrix} \\tilde f(x, t) \\\\ \\nabla \\cdot \\tilde f(x, t) \\end{pmatrix}, \\qquad
        \\tilde f = K - \\tfrac12 g^2 s = -\\,\\texttt{sde.probability\\_flow\\_drift},

    (``probability_flow_drift`` is :math:`dx/d\\tau` in the backward time :math:`\\tau = T - t`) is integrated from
    :math:`x(t_\\epsilon) = x_0`, :math:`\\delta = 0` up to ``T`` with scipy's RK45 (Dormand & Prince), the whole
    batch one float64 state vector; then

    .. math::

        \\log p_0(x(0)) = \\log p_T(x(T)) + \\int_0^T \\nabla \\cdot \\tilde f(x(t), t)\\,dt

    with :math:`0 \\to t_\\epsilon` and ``sde.prior_logp`` for :math:`\\log p_T`: ``logp = prior_logp(x_T) + delta(T)``
    (Song et al. 2021, eq. 39; Chen et al. 2018).  The score is evaluated in the dtype of ``x0``.
    Derived in :doc:`/book/part3/phi4_diffusion`.

    Parameters
    ----------
    sde : LinearDriftSDE
    score : callable
        ``score(x, t) -> tensor like x`` with ``t`` a ``(B,)`` tensor of ``x``'s dtype; it must be differentiable in
        ``x`` with autograd (do not wrap it in :func:`torch.no_grad`).
    x0 : tensor, shape (B, ...)
        Data at which to evaluate the density; finite, any trailing shape.
    t_eps : float
        Start time, ``0 < t_eps < T`` (the score is singular at ``t = 0``).
    method : {"exact", "hutchinson"}
        Divergence as in :func:`divergence`.  ``"hutchinson"`` draws ``n_probes`` Rademacher probes per sample once
        and keeps them for the whole trajectory (so the right-hand side is a smooth function for the adaptive solver).
    rtol, atol : float
        Tolerances of ``solve_ivp`` (on every component of ``x`` and of ``delta``).
    generator : torch.Generator
        Required for ``"hutchinson"``.
    n_probes, chunk_size : int
        As in :func:`divergence`.

    Returns
    -------
    Likelihood
        ``logp`` (B,) float64, ``x_T`` (shape and dtype of ``x0``), ``nfev``; all detached.

    Raises
    ------
    ValueError
        For bad arguments, or a score without an autograd graph to ``x``.
    NonFiniteError
        When the solver fails or the drift, its divergence or the result becomes non-finite.
    """
    from scipy.integrate import solve_ivp

    _check_batch(x0, "x0")
    if not callable(score):
        raise ValueError(f"score must be a callable score(x, t) -> tensor like x, got {type(score).__name__}")
    _check_method(method, generator)
    T = float(sde.T)
    t_eps = require_positive(t_eps, "t_eps")
    if not t_eps < T:
        raise ValueError(f"t_eps must lie in (0, T) = (0, {T}), got {t_eps}")
    rtol, atol = require_positive(rtol, "rtol"), require_positive(atol, "atol")
    n_probes, chunk_size = require_int(n_probes, "n_probes"), require_int(chunk_size, "chunk_size")

    shape, dtype, device = tuple(x0.shape), x0.dtype, x0.device
    B, n = shape[0], x0.numel()
    with torch.enable_grad():
        xr = x0.detach().clone().requires_grad_(True)
        s = score(xr, torch.full((B,), t_eps, dtype=dtype, device=device))
    if not isinstance(s, torch.Tensor) or s.shape != x0.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score(x, t) must return a tensor of the shape of x {shape}, got {got}")
    if not s.requires_grad:
        raise ValueError("score(x, t) returned a tensor without an autograd graph to x; the divergence needs "
                         "gradients through the score (do not evaluate it under torch.no_grad)")
    if method == "exact":
        probes, n_cot, scale = _one_hot(shape[1:], dtype, device), n // B, 1.0
    else:
        v = _rademacher((n_probes,) + shape, generator, dtype, device)
        probes, n_cot, scale = _fixed(v), n_probes, 1.0 / n_probes

    def rhs(t, y):
        t = min(float(t), T)
        x = torch.from_numpy(y[:n]).to(device=device, dtype=dtype).reshape(shape)

        def field(xx, tt):  # dx/dt = K - g^2 s / 2 = -(dx/dtau)
            return -sde.probability_flow_drift(xx, t, score(xx, tt))

        drift, div = _trace_vjp(field, x, torch.full((B,), t, dtype=dtype, device=device), probes, n_cot, chunk_size)
        out = torch.cat([drift.reshape(-1), div * scale]).to(torch.float64).cpu()
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteError(f"log_likelihood: the drift or its divergence became non-finite at t = {t:.6g}")
        return out.numpy()

    y0 = torch.cat([x0.detach().to(torch.float64).cpu().reshape(-1), torch.zeros(B, dtype=torch.float64)]).numpy()
    sol = solve_ivp(rhs, (t_eps, T), y0, method="RK45", rtol=rtol, atol=atol, t_eval=[T])
    if not sol.success:
        raise NonFiniteError(f"log_likelihood: solve_ivp failed ({sol.message})")
    y = torch.from_numpy(sol.y[:, -1].copy())
    x_T64 = y[:n].reshape(shape)
    if not bool(torch.isfinite(y).all()):
        raise NonFiniteError("log_likelihood: the end state of the probability flow is non-finite")
    logp = (sde.prior_logp(x_T64) + y[n:]).to(device)
    return Likelihood(logp.detach(), x_T64.to(device=device, dtype=dtype), int(sol.nfev))
