r"""Importance weights: their effective sample size and the Pareto shape of their largest values.

An independence Metropolis-Hastings chain and an importance-weighted average are exact in the limit of many samples,
but a proposal with lighter tails than the target leaves a finite sample dominated by a few large weights, and its
errors estimated from the sample itself too small.  Two diagnostics of the log-weights :math:`\log w = -S - \log q`:

:func:`lib.stats.importance_ess`
    Kish's effective sample size :math:`(\sum w)^2 / \sum w^2`;
:func:`lib.stats.pareto_k`
    the shape :math:`\hat k` of a generalised Pareto distribution fitted to the largest weights (Vehtari, Simpson,
    Gelman, Yao and Gabry, *Pareto smoothed importance sampling*, JMLR 25 (2024) 72; the fit of Zhang and Stephens,
    Technometrics 51 (2009) 316, with the weakly informative prior of PSIS).  The variance of :math:`w` is finite
    for :math:`k < 1/2`; the PSIS paper finds estimates reliable for :math:`\hat k < 0.7` (for a sample of size
    :math:`S`, :math:`\hat k < 1 - 1/\log_{10} S`), unreliable above, whatever the sample's own error bars say.

The same as ``arviz.psislw``'s ``k`` (not a dependency of ``lib``; ``tests/test_importance.py`` compares the fit with
a generalised Pareto sample of known shape).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["importance_ess", "pareto_k", "pareto_k_threshold"]


def _log_weights(log_w) -> np.ndarray:
    lw = torch.as_tensor(log_w, dtype=torch.float64).reshape(-1).cpu().numpy()
    if lw.size == 0 or not np.isfinite(lw).all():
        raise ValueError("log_w must be a non-empty array of finite log-weights")
    return lw


def importance_ess(log_w) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2/\sum w^2` of the weights :math:`w = e^{\log w}`."""
    lw = _log_weights(log_w)
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (w * w).sum())


def _gpd_fit(x: np.ndarray) -> float:
    """Shape of a generalised Pareto distribution fitted to the sorted positive exceedances ``x`` (Zhang and Stephens
    2009, with PSIS's prior: 10 pseudo-observations at k = 1/2)."""
    n = x.size
    m = 30 + int(math.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=np.float64) - 0.5))
    b = b / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = n * (np.log(-b / k) - k - 1.0)
    weights = 1.0 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(np.float64).eps
    weights, b = weights[keep] / weights[keep].sum(), b[keep]
    b_post = float((b * weights).sum())
    k_post = float(np.log1p(-b_post * x).mean())
    return (n * k_post + 10 * 0.5) / (n + 10)


def pareto_k(log_w) -> float:
    r"""The Pareto shape :math:`\hat k` of the largest importance weights (PSIS's tail: the
    :math:`\min(S/5, 3\sqrt S)` largest of :math:`S`); ``inf`` when that tail has fewer than 5 weights."""
    lw = _log_weights(log_w)
    lw = lw - lw.max()
    n = lw.size
    tail = int(math.ceil(min(0.2 * n, 3 * math.sqrt(n))))
    order = np.sort(lw)
    cutoff = max(order[-tail - 1] if tail < n else order[0], math.log(np.finfo(np.float64).tiny))
    x = np.sort(lw[lw > cutoff])
    if x.size <= 4:
        return math.inf
    x = np.exp(x) - math.exp(cutoff)
    return _gpd_fit(x)


def pareto_k_threshold(n: int) -> float:
    r""":math:`\min(1 - 1/\log_{10} n, 0.7)`: the largest :math:`\hat k` at which PSIS finds ``n`` weights reliable."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer sample size >= 2, got {n!r}")
    return min(1.0 - 1.0 / math.log10(n), 0.7)
