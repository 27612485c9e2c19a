"""Moments and cumulants of samples, and cumulants from moments.

Everything here works in numpy ``float64`` / ``complex128``; torch tensors (on any device) and numpy arrays are
accepted.  Orders are indices: ``mu[n] = <x^n>`` and ``kappa[n]`` is the ``n``-th cumulant, with ``mu[0] = 1`` and
``kappa[0] = 0``.  Derived in :doc:`/book/part2/cumulants`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lib.core.checks import require_int
from lib.stats._arrays import as_array, check_axis

__all__ = ["moments", "cumulants", "cumulants_from_moments", "cumulants_from_power_sums"]


# --------------------------------------------------------------------------- input handling
def _power_means(d: np.ndarray, n_max: int, axis) -> np.ndarray:
    """``[<d^0>, <d^1>, ..., <d^n_max>]`` along ``axis`` (``None``: every element), stacked on axis 0."""
    out = []
    p = np.ones_like(d)
    out.append(p.mean(axis=axis))
    for _ in range(n_max):
        p = p * d
        out.append(p.mean(axis=axis))
    return np.stack(out)


# --------------------------------------------------------------------------- moments and cumulants
def moments(x, n_max: int = 8, axis=None) -> np.ndarray:
    r"""Raw moments :math:`\mu_n = \langle x^n \rangle` for :math:`n = 0, \dots, n_\max`.

    Parameters
    ----------
    x : torch.Tensor or array_like
        Samples, real or complex.
    n_max : int
        Highest order (>= 1).
    axis : int or None
        ``None`` pools every element (single-site pooling of lattice fields); an integer
        averages along that axis only (``axis=0``: per-component moments).

    Returns
    -------
    numpy.ndarray
        ``mu`` with ``mu[n] = <x^n>`` and ``mu[0] = 1``; shape ``(n_max + 1,)`` for
        ``axis=None``, else ``(n_max + 1,) + x.shape`` without ``axis``.
    """
    n_max = require_int(n_max, "n_max")
    arr = as_array(x)
    return _power_means(arr, n_max, check_axis(arr, axis))


def cumulants_from_moments(mu) -> np.ndarray:
    r"""Cumulants from raw (or central) moments by the recursion

    .. math::
        \kappa_n = \mu_n - \sum_{m=1}^{n-1} \binom{n-1}{m-1} \kappa_m \mu_{n-m},

    derived in :doc:`/book/part2/cumulants`.  Exact on exact moments (no sampling involved).

    Parameters
    ----------
    mu : array_like
        Moments indexed by order along axis 0, ``mu[0] = 1``; any trailing shape.

    Returns
    -------
    numpy.ndarray
        ``kappa`` with the shape of ``mu`` and ``kappa[0] = 0``.  Central moments give
        ``kappa[1] = 0`` and the same higher cumulants.
    """
    mu = as_array(mu, "mu")
    if mu.shape[0] < 2:
        raise ValueError(f"mu must hold at least the orders 0 and 1 along axis 0, got shape {mu.shape}")
    if not np.allclose(mu[0], 1.0, rtol=1e-10, atol=1e-10):
        raise ValueError("mu[0] must equal 1 (moments are indexed by order, mu[0] = <x^0> = 1)")
    n_max = mu.shape[0] - 1
    kappa = np.zeros_like(mu)
    for n in range(1, n_max + 1):
        acc = mu[n].copy()
        for m in range(1, n):
            acc = acc - math.comb(n - 1, m - 1) * kappa[m] * mu[n - m]
        kappa[n] = acc
    return kappa


def _cumulants_from_central(mean, central: np.ndarray) -> np.ndarray:
    kappa = cumulants_from_moments(central)
    kappa[1] = mean
    return kappa


def cumulants(x, n_max: int = 8, axis=None) -> np.ndarray:
    r"""Cumulants :math:`\kappa_n` for :math:`n = 0, \dots, n_\max` of samples ``x``.

    Numerically stable: central moments :math:`\langle (x - \bar x)^n \rangle` are fed to
    :func:`cumulants_from_moments` and then :math:`\kappa_1 = \bar x`.  These are the plain
    (biased, :math:`O(1/N)`) moment estimators, not k-statistics.  For real or complex ``x``
    (for complex ``x`` the powers are :math:`z^n`, not :math:`|z|^n`).  See
    :doc:`/book/part2/cumulants`.

    Parameters
    ----------
    x : torch.Tensor or array_like
        Samples.
    n_max : int
        Highest order (>= 1).
    axis : int or None
        As in :func:`moments`.

    Returns
    -------
    numpy.ndarray
        ``kappa`` indexed by order, ``kappa[0] = 0``.
    """
    n_max = require_int(n_max, "n_max")
    arr = as_array(x)
    axis = check_axis(arr, axis)
    mean = arr.mean(axis=axis, keepdims=axis is not None)
    central = _power_means(arr - mean, n_max, axis)
    return _cumulants_from_central(mean if axis is None else np.squeeze(mean, axis), central)


def cumulants_from_power_sums(power_sums) -> np.ndarray:
    r"""Cumulants :math:`\kappa_0..\kappa_n` of each row of power sums :math:`\sum x^0, \sum x^1, \dots, \sum x^n`.

    ``power_sums`` has shape ``(..., n + 1)`` (e.g. ``(n_records, 9)``, as recorded by
    :func:`lib.physics.observables.pooled_power_records` along a run); the moments are
    ``power_sums[..., k] / power_sums[..., 0]`` and the cumulants follow from :func:`cumulants_from_moments`.
    """
    sums = torch.as_tensor(power_sums, dtype=torch.float64)
    rows = sums.reshape(-1, sums.shape[-1])
    out = np.array([cumulants_from_moments((row / row[0]).numpy()) for row in rows])
    return out.reshape(tuple(sums.shape))
