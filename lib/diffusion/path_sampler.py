r"""A diffusion model as a proposal on paths: the stochastic backward process with an exact path density, no Jacobian.

On a :class:`lib.diffusion.grids.TimeGrid` with states at :math:`T = t_0 > t_1 > \dots > t_n`, the backward process
draws :math:`x_{t_0}` from a Gaussian prior and each next state from a Gaussian transition
:math:`p(x_{t_{i+1}} \mid x_{t_i})` whose mean uses the score at :math:`t_i`.  The density of the whole path is a
product of Gaussians, known exactly.  With the forward process's own transitions
:math:`q(x_{t_i} \mid x_{t_{i+1}}) = \mathcal N(f(t_i, t_{i+1})\, x_{t_{i+1}}, \Xi(t_i, t_{i+1}))` as the reverse
kernel, the weight of a path ending in :math:`x = x_{t_n}`

.. math::

    \log w = -S(x) + \sum_i \log q(x_{t_i} \mid x_{t_{i+1}})
             - \log p_T(x_{t_0}) - \sum_i \log p(x_{t_{i+1}} \mid x_{t_i})

is an importance weight on paths whose marginal target for :math:`x` is :math:`e^{-S}/Z`: for any reverse kernel
that is a normalised density, :math:`E_p[w\, h(x)] = Z\, E_{e^{-S}/Z}[h]`.  An independence Metropolis-Hastings chain
on paths with this weight is therefore exact for :math:`x`
(:func:`lib.physics.metropolis.independence_metropolis` with ``log_q`` the path's :attr:`PathProposal.log_q`, so
that its :math:`w = -S - \log q` is the path weight).  It costs one sampling run plus Gaussian log-densities.  The
last state of the grid is the sample: a grid that ends at :math:`t = 0` (``grids.uniform_states(..., t_end=0)``,
:func:`geometric`) gives the forward process's kernel from the sample itself.

Two transition kernels:

``"euler-maruyama"``
    mean :math:`x + h\,[\tfrac12 k(t_i) x + g^2(t_i)\, s(x, t_i)]`, covariance :math:`g^2(t_i)\, h\, I`;
``"posterior"``
    the exact backward transition of Gaussian data of per-mode variance :math:`v_p` (the propagator, diagonal in
    momentum space on a periodic lattice): with :math:`a = f(t_i, t_{i+1})`, :math:`b = \Xi(t_i, t_{i+1})` and
    :math:`A_p(t) = f(t)^2 v_p + \Xi(t)`, mean :math:`(x + b\, s(x, t_i))/a` (Tweedie's formula: the exact mean of
    :math:`x_{t_{i+1}}` given :math:`x_{t_i}` for any data, when the score is exact) and covariance
    :math:`b\, A_p(t_{i+1})/A_p(t_i)` per Fourier mode (exact for Gaussian data); the prior is then
    :math:`\mathcal N(0, A_p(T))` per mode.  For Gaussian data with the exact score every path has the same weight
    :math:`Z`.

Derived in :doc:`/book/part3/path_sampler`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib.core.checks import NonFiniteError, require_int, require_positive
from lib.core.random import require_generator
from lib.diffusion.grids import TimeGrid, _from_states
from lib.diffusion.mode_gaussian import ModeGaussian
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["KERNELS", "PathProposal", "geometric", "path_proposals", "path_log_prob"]

#: the backward transition kernels of :func:`path_proposals`
KERNELS = ("euler-maruyama", "posterior")

class PathProposal(NamedTuple):
    """Samples of :func:`path_proposals`: the last state of each path and its log-densities (float64)."""

    x: torch.Tensor  # (n, ...) the last state of each path, the proposed configuration
    log_q: torch.Tensor  # (n,) log p(path) - log q(path | x): pass as independence_metropolis' log_q
    log_p_path: torch.Tensor  # (n,) log density of the path under the backward process (prior included)
    log_q_reverse: torch.Tensor  # (n,) log density of the path's states above x under the forward process from x
    states: torch.Tensor | None = None  # (n_states, n, ...) every state of the path, from T down (keep_states=True)


def geometric(sde: LinearDriftSDE, n_steps: int, xi_min: float) -> TimeGrid:
    r"""``n_steps`` steps from ``T`` to ``t = 0``: ``n_steps - 1`` steps geometric in :math:`\sqrt{\Xi(t)}` from
    :math:`\Xi(T)` down to ``xi_min``, then one step to 0 (the sample's own time, where the forward kernel starts)."""
    n_steps = require_int(n_steps, "n_steps", 2)
    xi_min = require_positive(xi_min, "xi_min")
    xi_T = float(sde.xi(sde.T))
    if not xi_min < xi_T:
        raise ValueError(f"xi_min must lie below Xi(T) = {xi_T:.4g}, got {xi_min}")
    i = torch.arange(n_steps, dtype=torch.float64) / (n_steps - 1)
    target = math.sqrt(xi_T) * (math.sqrt(xi_min) / math.sqrt(xi_T)) ** i  # sqrt(Xi) at the states above t = 0
    lo, hi = torch.zeros_like(target), torch.full_like(target, sde.T)
    for _ in range(100):  # bisection of the increasing Xi(t)
        mid = 0.5 * (lo + hi)
        above = torch.sqrt(sde.xi(mid)) > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    t = torch.cat([0.5 * (lo + hi), torch.zeros(1, dtype=torch.float64)])
    t[0] = sde.T
    if not bool((t[:-1] > t[1:]).all()):
        raise ValueError(f"the grid of {n_steps} steps down to Xi = {xi_min} has steps of zero length in float64")
    return _from_states(t)


def _kernel_params(sde: LinearDriftSDE, t_hi: float, t_lo: float):
    return float(sde.f(t_hi, t_lo)), float(sde.xi(t_hi, t_lo))


def path_proposals(sde: LinearDriftSDE, score: Callable, grid: TimeGrid, shape: tuple, n: int,
                   generator: torch.Generator, kernel: str = "posterior", mode_variance=None, batch: int = 256,
                   dtype=torch.float64, keep_states: bool = False) -> PathProposal:
    r"""``n`` paths of the stochastic backward process on ``grid`` with their exact log-densities.

    ``score(x, t)`` returns the score of the state ``x`` (batch first) at the times ``t`` (one per sample), in the
    dtype of ``x``.  ``kernel`` is one of :data:`KERNELS`; ``"posterior"`` needs ``mode_variance``: the variance of
    each Fourier mode of the data (a tensor of the configuration's shape, e.g. the measured propagator, or a scalar).
    Everything is drawn with ``generator``, on its device; the states are kept in ``dtype``, the log-densities in
    float64; ``keep_states=True`` returns every state of every path (:attr:`PathProposal.states`, e.g. for
    :func:`path_log_prob`).  Raises :class:`lib.core.checks.NonFiniteError` when a state becomes non-finite.
    """
    require_generator(generator)
    if not isinstance(grid, TimeGrid):
        raise ValueError(f"grid must be a lib.diffusion.grids.TimeGrid, got {type(grid).__name__}")
    if not bool(torch.isfinite(grid.t).all()) or not bool((grid.h > 0).all()) or float(grid.t[0]) != sde.T:
        raise ValueError(f"the grid must run from T = {sde.T} down towards 0 with positive steps")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if isinstance(shape, (int, str)) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                                for s in tuple(shape)):
        raise ValueError(f"shape must be a tuple of positive ints, the shape of one configuration, got {shape!r}")
    shape = tuple(shape)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if kernel == "posterior" and mode_variance is None:
        raise ValueError("the posterior kernel needs mode_variance: the variance of each Fourier mode of the data "
                         "(e.g. the propagator measured on the training ensemble), or a scalar")
    n, batch = require_int(n, "n"), require_int(batch, "batch")
    v = ModeGaussian(mode_variance, shape).variance if kernel == "posterior" else None
    parts = [_paths(sde, score, grid, shape, min(batch, n - s), generator, kernel, v, dtype, keep_states)
             for s in range(0, n, batch)]
    out = PathProposal(*(torch.cat([getattr(p, name) for p in parts]) for name in PathProposal._fields[:4]))
    return out._replace(states=torch.cat([p.states for p in parts], dim=1)) if keep_states else out


def _transition(sde, kernel, v, shape, t_hi: float, t_lo: float, x: torch.Tensor, s: torch.Tensor):
    """``(mean, ModeGaussian)`` of the backward transition from ``x`` at ``t_hi`` to ``t_lo`` with the score ``s``."""
    a, b = _kernel_params(sde, t_hi, t_lo)
    x64, s64 = x.to(torch.float64), s.to(torch.float64)
    if kernel == "posterior":
        def total_variance(tt):  # A_p(t) = f(t)^2 v_p + Xi(t)
            return float(sde.f(tt)) ** 2 * v + float(sde.xi(tt))
        return (x64 + b * s64) / a, ModeGaussian(b * total_variance(t_lo) / total_variance(t_hi), shape)
    h = t_hi - t_lo
    return (x64 + h * (0.5 * float(sde.k(t_hi)) * x64 + float(sde.g2(t_hi)) * s64),
            ModeGaussian(float(sde.g2(t_hi)) * h, shape))


def _prior(sde, kernel, v, shape, T: float) -> ModeGaussian:
    if kernel == "posterior":
        return ModeGaussian(float(sde.f(T)) ** 2 * v + float(sde.xi(T)), shape)
    return ModeGaussian(float(sde.xi(T)), shape)


def path_log_prob(sde: LinearDriftSDE, score: Callable, grid: TimeGrid, states: torch.Tensor, kernel: str = "posterior",
                  mode_variance=None, steps=None) -> torch.Tensor:
    r"""The log-density of the transitions of given paths under the backward process with ``score``, differentiable
    through ``score`` (for training on the path weight: the states are data, only the score carries gradients).

    ``states`` ``(n_states, n, ...)`` as :attr:`PathProposal.states` on the same ``grid``; ``steps`` (optional) the
    indices ``i`` of the transitions :math:`t_i 	o t_{i+1}` to include (default: all).  Returns ``(n,)`` float64,
    :math:`\sum_i \log p(x_{t_{i+1}} \mid x_{t_i})` without the prior (which does not depend on the score).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    t = grid.t.tolist()
    if states.dim() < 3 or states.shape[0] != len(t):
        raise ValueError(f"states must be (n_states = {len(t)}, n, ...) for this grid, got {tuple(states.shape)}")
    shape = tuple(states.shape[2:])
    v = ModeGaussian(mode_variance, shape).variance if kernel == "posterior" else None
    steps = range(len(t) - 1) if steps is None else [int(i) for i in steps]
    total = torch.zeros(states.shape[1], dtype=torch.float64, device=states.device)
    for i in steps:
        x = states[i]
        s = score(x, torch.full((x.shape[0],), t[i], dtype=x.dtype, device=x.device))
        mean, step = _transition(sde, kernel, v, shape, t[i], t[i + 1], x, s)
        total = total + step.log_prob(states[i + 1].to(torch.float64) - mean)
    return total


def _paths(sde, score, grid, shape, size, generator, kernel, v, dtype, keep_states=False) -> PathProposal:
    t = grid.t.tolist()
    prior = _prior(sde, kernel, v, shape, t[0])
    x = prior.sample(size, generator, dtype)
    log_p = prior.log_prob(x)
    log_q = torch.zeros_like(log_p)
    kept = [x] if keep_states else None
    for i in range(len(t) - 1):
        t_hi, t_lo = t[i], t[i + 1]
        a, b = _kernel_params(sde, t_hi, t_lo)
        with torch.no_grad():
            s = score(x, torch.full((size,), t_hi, dtype=x.dtype, device=x.device))
        if not isinstance(s, torch.Tensor) or s.shape != x.shape:
            raise ValueError(f"score(x, t) must return a tensor of the shape of x {tuple(x.shape)}, got "
                             f"{tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__}")
        mean, step = _transition(sde, kernel, v, shape, t_hi, t_lo, x, s)
        x_next = (mean + step.sample(size, generator, torch.float64)).to(dtype)
        bad = ~torch.isfinite(x_next.reshape(size, -1)).all(dim=1)
        if bool(bad.any()):
            raise NonFiniteError(f"path_proposals: step {i + 1} of {len(t) - 1} (t = {t_hi:.4g}) gave non-finite "
                                 f"states for {int(bad.sum())} of {size} paths", bad=bad.nonzero().reshape(-1).cpu())
        log_p = log_p + step.log_prob(x_next.to(torch.float64) - mean)
        forward = ModeGaussian(b, shape)  # q(x_hi | x_lo) = N(a x_lo, b)
        log_q = log_q + forward.log_prob(x.to(torch.float64) - a * x_next.to(torch.float64))
        x = x_next
        if keep_states:
            kept.append(x)
    return PathProposal(x, log_p - log_q, log_p, log_q, torch.stack(kept) if keep_states else None)

