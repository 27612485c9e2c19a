r"""Weighted least-squares polynomial fits, e.g. the extrapolation of a step-size scan to zero step size.

With measurements :math:`y_i \pm \sigma_i` at :math:`x_i`, the fit :math:`y = \sum_{k=0}^{d} c_k x^k` minimises
:math:`\chi^2 = \sum_i (y_i - \sum_k c_k x_i^k)^2 / \sigma_i^2`; the errors of the coefficients are the square roots of
the diagonal of :math:`(D^T D)^{-1}`, :math:`D_{ik} = x_i^k / \sigma_i`.  :math:`c_0` is the value extrapolated to
:math:`x = 0`.  Used in :doc:`/book/part1/stochastic_quantisation` and :doc:`/book/part4/complex_langevin`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lib.core.checks import require_int

__all__ = ["PolyFit", "weighted_polyfit"]


class PolyFit(NamedTuple):
    """Result of :func:`weighted_polyfit`."""

    coef: np.ndarray  # c_0 .. c_d (c_0: the value at x = 0)
    error: np.ndarray  # their standard errors
    chi2_dof: float  # chi^2 per degree of freedom (nan when there are no degrees of freedom)


def weighted_polyfit(x, values, errors, degree: int = 1) -> PolyFit:
    """Fit a polynomial of ``degree`` to ``values +- errors`` at ``x`` by weighted least squares."""
    degree = require_int(degree, "degree", 0)
    x, y, s = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (x, values, errors))
    if not x.size == y.size == s.size:
        raise ValueError(f"x, values and errors must have equal length, got {x.size}, {y.size}, {s.size}")
    if x.size < degree + 1:
        raise ValueError(f"a polynomial of degree {degree} needs at least {degree + 1} points, got {x.size}")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise ValueError("x and values must be finite")
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError(f"errors must be finite and > 0, got {s.tolist()}")
    design = np.vander(x, degree + 1, increasing=True) / s[:, None]
    coef, *_ = np.linalg.lstsq(design, y / s, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    dof = x.size - degree - 1
    chi2 = float(np.sum(((design @ coef) - y / s) ** 2)) / dof if dof > 0 else float("nan")
    return PolyFit(coef, np.sqrt(np.diag(cov)), chi2)
