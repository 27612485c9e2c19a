"""Integrated autocorrelation times of Markov chains (Wolff's Gamma method) and errors of their means.

Derived in :doc:`/book/part1/stochastic_quantisation`.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from lib.core.checks import require_positive
from lib.stats._arrays import as_array

__all__ = ["TauInt", "tau_int", "mean_error", "CHAIN_AXES"]


# --------------------------------------------------------------------------- autocorrelation
class TauInt(NamedTuple):
    """Result of :func:`tau_int`."""

    tau: float  # integrated autocorrelation time, 1/2 + sum_{t>=1} rho(t) (iid data: 0.5)
    tau_error: float  # its statistical error, tau * 2 sqrt((W + 1/2 - tau) / n)
    window: int  # summation window W chosen by Wolff's automatic windowing
    n: int  # total number of samples (all chains)


#: the axis of a two-dimensional series that indexes the chains, by name
CHAIN_AXES = {"draws, chains": 1, "chains, draws": 0}


def _warn_layout(shape: tuple, stacklevel: int) -> None:
    warnings.warn(
        f"the series has shape {shape}: read as {shape[1]} chains of {shape[0]} draws (the layout (N, n_chains)); if "
        f"it holds {shape[0]} chains of {shape[1]} draws, pass layout=\"chains, draws\"; pass layout=\"draws, "
        "chains\" to confirm this reading and silence this warning", RuntimeWarning, stacklevel=stacklevel)


def _as_chains(series, layout: str | None) -> np.ndarray:
    """``series`` as an ``(N, n_chains)`` array.

    A two-dimensional series is ``(N, n_chains)`` (draws along axis 0, the book's layout) or, with
    ``layout="chains, draws"``, ``(n_chains, N)`` (the layout of arviz and pyerrors).  Without ``layout`` a series
    with fewer draws than chains is ambiguous, most likely transposed, and gets a warning: its tau_int would be
    computed along the wrong axis (for 8 chains of 200 draws given as (8, 200): 0.5 instead of 7.9).
    """
    if layout is not None and layout not in CHAIN_AXES:
        raise ValueError(f"layout must be one of {sorted(CHAIN_AXES)} or None, got {layout!r}")
    arr = as_array(series, "series")
    if np.iscomplexobj(arr):
        raise ValueError("series must be real; analyse the real and imaginary parts separately")
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim == 2:
        if layout == "chains, draws":
            arr = arr.T
        elif layout is None and arr.shape[0] < arr.shape[1]:
            _warn_layout(arr.shape, stacklevel=4)
    else:
        raise ValueError(f"series must have shape (N,) or (N, n_chains), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"series needs at least 2 samples per chain, got {arr.shape[0]}")
    return arr


def _gamma_method(arr: np.ndarray, S: float):
    """Wolff's Gamma method for one primary observable; returns (tau, dtau, W, n, var, mean)."""
    n_t, n_chains = arr.shape
    n_tot = arr.size
    mean = arr.mean()
    d = arr - mean
    w_max = n_t // 2
    # autocorrelation function by FFT, summed over chains (zero padding against wrap-around)
    size = 1 << (2 * n_t - 1).bit_length()
    fd = np.fft.rfft(d, n=size, axis=0)
    acf = np.fft.irfft(fd * np.conj(fd), n=size, axis=0)[: w_max + 1].sum(axis=1)
    gamma = acf / (n_tot - n_chains * np.arange(w_max + 1))
    if gamma[0] <= 0.0:  # constant series: no fluctuations at all
        return 0.5, 0.0, 0, n_tot, 0.0, mean

    rho = gamma / gamma[0]
    w = np.arange(1, w_max + 1)
    tint = 0.5 + np.cumsum(rho[1:])  # tau_int(W) for W = 1, ..., w_max
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        tau_w = np.where(tint > 0.5, S / np.log((2 * tint + 1) / (2 * tint - 1)), 1e-300)
        g = np.exp(-w / tau_w) - tau_w / np.sqrt(w * n_tot)
    negative = np.flatnonzero(g < 0)
    found = negative.size > 0
    window = int(w[negative[0]]) if found else w_max
    if not found:
        warnings.warn(
            f"tau_int: automatic windowing found no window up to W = {w_max}; the series is too short "
            "compared with its autocorrelation time, the result is unreliable",
            RuntimeWarning,
            stacklevel=3,
        )
    c_f = gamma[0] + 2 * gamma[1 : window + 1].sum()
    if c_f < gamma[0]:
        # tau_int(W) < 1/2: an anticorrelated series, or iid data below 1/2 by chance.  The windowing assumes a
        # positive, decaying rho(t); like the reference implementation pyerrors, tau_int is kept at 1/2 (the error of
        # the mean is then the naive one, an upper bound) instead of shrinking the error, possibly below zero.  A
        # warning only when the anticorrelation is significant (3 standard errors of tau_int(W) below 1/2).
        if c_f / (2 * gamma[0]) < 0.5 - 3 * math.sqrt(window / n_tot):
            warnings.warn(
                f"tau_int: the summed autocorrelation gives tau_int = {c_f / (2 * gamma[0]):.3g} < 1/2 (an "
                "anticorrelated series); tau_int is set to 1/2, so the error of the mean is the naive one (an upper "
                "bound)", RuntimeWarning, stacklevel=3)
        c_f = gamma[0]
    gamma = gamma + c_f / n_tot  # bias correction of Gamma (Wolff 2004)
    c_f = c_f * (1 + (2 * window + 1) / n_tot)
    tau = c_f / (2 * gamma[0])
    dtau = tau * 2 * math.sqrt(max(window - tau + 0.5, 0.0) / n_tot)
    return float(tau), float(dtau), int(window), int(n_tot), float(gamma[0]), float(mean)


def tau_int(series, S: float = 1.5, layout: str | None = None) -> TauInt:
    r"""Integrated autocorrelation time with Wolff's automatic windowing (Gamma method).

    .. math::
        \tau_\mathrm{int} = \frac12 + \sum_{t=1}^{W} \rho(t), \qquad
        \rho(t) = \Gamma(t) / \Gamma(0),

    with :math:`W` the first window where
    :math:`g(W) = e^{-W/\tau(W)} - \tau(W)/\sqrt{W N} < 0`,
    :math:`\tau(W) = S / \ln[(2\tau_\mathrm{int}(W) + 1) / (2\tau_\mathrm{int}(W) - 1)]`,
    and the bias correction :math:`\Gamma(t) \to \Gamma(t) + C_F / N`
    (U. Wolff, Comput. Phys. Commun. 156 (2004) 143).  The error of the mean is then
    :math:`\sqrt{2 \tau_\mathrm{int} \mathrm{var} / N}`; iid data give
    :math:`\tau_\mathrm{int} = 1/2`.  See :doc:`/book/part1/stochastic_quantisation`.

    Parameters
    ----------
    series : torch.Tensor or array_like
        Real time series of shape ``(N,)``, or ``(N, n_chains)`` for independent chains of
        equal length (the autocorrelation function is averaged over chains).
    S : float
        Wolff's parameter (> 0), the ratio of the window to the autocorrelation time
        scale; 1 to 2 is typical.
    layout : str, optional
        The axes of a two-dimensional series: ``"draws, chains"`` (``(N, n_chains)``) or
        ``"chains, draws"`` (``(n_chains, N)``, as arviz and pyerrors store chains).  When omitted,
        ``(N, n_chains)`` is assumed and a series with fewer draws than chains warns (it is most
        likely transposed).

    Returns
    -------
    TauInt
        ``(tau, tau_error, window, n)``.  A ``RuntimeWarning`` is emitted when no window
        is found below ``N / 2`` (series too short).
    """
    S = require_positive(S, "S")
    tau, dtau, window, n, _, _ = _gamma_method(_as_chains(series, layout), S)
    return TauInt(tau, dtau, window, n)


def mean_error(series, S: float = 1.5, layout: str | None = None):
    r"""Mean of a (Markov-chain) time series and its error :math:`\sqrt{2 \tau_\mathrm{int} \mathrm{var} / N}`.

    :math:`\tau_\mathrm{int}` comes from :func:`tau_int` (Wolff's Gamma method, bias-corrected
    variance); see :doc:`/book/part1/stochastic_quantisation`.

    Parameters
    ----------
    series : torch.Tensor or array_like
        Shape ``(N,)`` or ``(N, n_chains)``; complex series are analysed part by part.
    S : float
        Wolff's windowing parameter.
    layout : str, optional
        ``"draws, chains"`` or ``"chains, draws"``, as for :func:`tau_int`.

    Returns
    -------
    (mean, error) : floats (complex ``mean`` and ``error = err(Re) + 1j err(Im)`` for complex input)
    """
    S = require_positive(S, "S")
    arr = as_array(series, "series")
    if np.iscomplexobj(arr):
        if layout is None and arr.ndim == 2 and arr.shape[0] < arr.shape[1]:
            _warn_layout(arr.shape, stacklevel=2)  # once for the complex series, not once per part
            layout = "draws, chains"
        mr, er = mean_error(arr.real, S, layout)
        mi, ei = mean_error(arr.imag, S, layout)
        return complex(mr, mi), complex(er, ei)
    tau, _, _, n, var, mean = _gamma_method(_as_chains(arr, layout), S)
    return mean, math.sqrt(2 * tau * var / n)
