"""Moments, cumulants, bootstrap errors and integrated autocorrelation times.

Everything here works in numpy ``float64`` / ``complex128``; torch tensors (on any
device) and numpy arrays are accepted.  Orders are indices: ``mu[n] = <x^n>`` and
``kappa[n]`` is the ``n``-th cumulant, with ``mu[0] = 1`` and ``kappa[0] = 0``.

The cumulants are derived in the cumulants chapter of part 2 (:doc:`book/part2/cumulants`);
the autocorrelation analysis of Markov chains (Langevin, HMC) in
:doc:`book/part1/stochastic_quantisation`.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import numpy as np
import torch

from lib._checks import require_finite, require_int, require_positive

__all__ = [
    "moments",
    "cumulants",
    "cumulants_from_moments",
    "bootstrap",
    "bootstrap_cumulants",
    "jackknife",
    "TauInt",
    "tau_int",
    "mean_error",
    "WeightedMean",
    "weighted_mean",
]


# --------------------------------------------------------------------------- input handling
def _as_array(x, name: str = "x") -> np.ndarray:
    """``x`` as a non-empty, finite float64 or complex128 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.resolve_conj() if x.is_complex() else x
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        arr = arr.astype(np.complex128, copy=False)
    elif arr.dtype.kind in "fiub":
        arr = arr.astype(np.float64, copy=False)
    else:
        raise ValueError(f"{name} must hold real or complex numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one sample is needed")
    require_finite(arr, name)
    return arr


def _power_means(d: np.ndarray, n_max: int, axis) -> np.ndarray:
    """``[<d^0>, <d^1>, ..., <d^n_max>]`` along ``axis`` (``None``: every element), stacked on axis 0."""
    out = []
    p = np.ones_like(d)
    out.append(p.mean(axis=axis))
    for _ in range(n_max):
        p = p * d
        out.append(p.mean(axis=axis))
    return np.stack(out)


def _check_axis(arr: np.ndarray, axis):
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be None or an integer, got {axis!r}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis {axis} is out of range for data of shape {arr.shape}")
    return int(axis)


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
    arr = _as_array(x)
    return _power_means(arr, n_max, _check_axis(arr, axis))


def cumulants_from_moments(mu) -> np.ndarray:
    r"""Cumulants from raw (or central) moments by the recursion

    .. math::
        \kappa_n = \mu_n - \sum_{m=1}^{n-1} \binom{n-1}{m-1} \kappa_m \mu_{n-m},

    derived in :doc:`book/part2/cumulants`.  Exact on exact moments (no sampling involved).

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
    mu = _as_array(mu, "mu")
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
    :doc:`book/part2/cumulants`.

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
    arr = _as_array(x)
    axis = _check_axis(arr, axis)
    mean = arr.mean(axis=axis, keepdims=axis is not None)
    central = _power_means(arr - mean, n_max, axis)
    return _cumulants_from_central(mean if axis is None else np.squeeze(mean, axis), central)


# --------------------------------------------------------------------------- bootstrap
def _check_generator(generator):
    if not isinstance(generator, np.random.Generator):
        raise ValueError(
            "an explicit numpy.random.Generator is required (generator=np.random.default_rng(seed)), "
            f"got {generator!r}"
        )
    return generator


def _check_count(value, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _block_edges(n: int, n_blocks: int) -> np.ndarray:
    """Edges of ``n_blocks`` contiguous blocks covering ``range(n)``; sizes differ by at most one."""
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def _spread(samples: np.ndarray) -> np.ndarray:
    """Standard deviation over axis 0; real and imaginary parts separately for complex data."""
    if np.iscomplexobj(samples):
        return samples.real.std(axis=0, ddof=1) + 1j * samples.imag.std(axis=0, ddof=1)
    return samples.std(axis=0, ddof=1)


def bootstrap(data, statistic: Callable, n_boot: int = 500, generator: np.random.Generator | None = None,
              n_blocks: int | None = None):
    r"""Estimate and (block) bootstrap error of ``statistic(data)``.

    The samples along axis 0 of ``data`` are cut into ``n_blocks`` contiguous blocks
    (``None``: every sample is its own block); each of the ``n_boot`` resamples draws
    ``n_blocks`` blocks with replacement.  Blocks much longer than the integrated
    autocorrelation time (:func:`tau_int`) make the error valid for Markov-chain data
    (:doc:`book/part1/stochastic_quantisation`).

    Parameters
    ----------
    data : torch.Tensor or numpy.ndarray
        Samples along axis 0.  ``statistic`` receives an object of the same kind.
    statistic : callable
        ``data -> scalar or array`` (real or complex).
    n_boot : int
        Number of resamples (>= 2).
    generator : numpy.random.Generator
        Required; the same seed gives the same error.
    n_blocks : int or None
        Number of blocks (2 <= n_blocks <= len(data)).

    Returns
    -------
    (estimate, error) : numpy arrays (0-d for scalar statistics)
        ``estimate = statistic(data)``, ``error`` = standard deviation over the resamples
        (for complex statistics ``error = err(Re) + 1j err(Im)``).
    """
    generator = _check_generator(generator)
    n_boot = _check_count(n_boot, "n_boot", 2)
    is_torch = isinstance(data, torch.Tensor)
    if not is_torch:
        data = _as_array(data, "data")
    elif data.numel() == 0:
        raise ValueError("data is empty: at least one sample is needed")
    else:
        require_finite(data, "data")
    if data.ndim == 0:
        raise ValueError("data must have a sample axis (axis 0), got a scalar")
    n = data.shape[0]
    n_blocks = n if n_blocks is None else _check_count(n_blocks, "n_blocks", 2)
    if n_blocks > n or n < 2:
        raise ValueError(f"n_blocks = {n_blocks} needs at least that many samples (and >= 2), got {n}")
    edges = _block_edges(n, n_blocks)
    starts, sizes = edges[:-1], np.diff(edges)

    estimate = np.asarray(_to_numpy(statistic(data)))
    replicas = []
    for _ in range(n_boot):
        ids = generator.integers(0, n_blocks, size=n_blocks)
        lengths = sizes[ids]
        offsets = np.cumsum(lengths) - lengths
        idx = np.arange(lengths.sum()) + np.repeat(starts[ids] - offsets, lengths)
        resample = data.index_select(0, torch.as_tensor(idx, device=data.device)) if is_torch else data[idx]
        replicas.append(np.asarray(_to_numpy(statistic(resample))))
    return estimate, _spread(np.stack(replicas))


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.resolve_conj().numpy() if value.is_complex() else value.numpy()
    return value


def bootstrap_cumulants(x, n_max: int = 8, n_boot: int = 500, generator: np.random.Generator | None = None,
                        n_blocks: int = 1000, kind: str = "cumulants"):
    r"""Cumulants (or raw moments) pooled over all elements of ``x``, with block-bootstrap errors.

    Fast path of :func:`bootstrap` for :func:`cumulants` / :func:`moments` with ``axis=None``.
    The samples along axis 0 (configurations; their sites stay together) are cut into
    ``n_blocks`` contiguous blocks and per-block power sums about the global mean
    :math:`m`, :math:`P_{bn} = \sum_{i \in b} (x_i - m)^n`, are computed once.  A resample
    is a multinomial weight vector :math:`w_b` (``n_blocks`` draws with replacement), so its
    moments about :math:`m` are :math:`M_n = \sum_b w_b P_{bn} / \sum_b w_b P_{b0}`; these are
    shifted to the resample's own mean (central moments) or to zero (raw moments) with the
    binomial theorem.  See :doc:`book/part2/cumulants`.

    Parameters
    ----------
    x : torch.Tensor or array_like
        Samples along axis 0, real or complex, any trailing shape (pooled).
    n_max : int
        Highest order (>= 1).
    n_boot : int
        Number of resamples (>= 2).
    generator : numpy.random.Generator
        Required; the same seed gives the same errors.
    n_blocks : int
        Number of blocks, reduced to ``len(x)`` when there are fewer samples.
    kind : {"cumulants", "moments"}
        What to estimate.

    Returns
    -------
    (estimate, error) : numpy.ndarray, each of shape ``(n_max + 1,)``
        ``estimate`` equals :func:`cumulants` (or :func:`moments`) of ``x``; for complex ``x``
        ``error = err(Re) + 1j err(Im)``.
    """
    n_max = require_int(n_max, "n_max")
    generator = _check_generator(generator)
    n_boot = _check_count(n_boot, "n_boot", 2)
    n_blocks = _check_count(n_blocks, "n_blocks", 2)
    if kind not in ("cumulants", "moments"):
        raise ValueError(f"kind must be 'cumulants' or 'moments', got {kind!r}")
    arr = _as_array(x)
    if arr.ndim == 0 or arr.shape[0] < 2:
        raise ValueError(f"x needs at least 2 samples along axis 0, got shape {arr.shape}")
    n = arr.shape[0]
    n_blocks = min(n_blocks, n)
    per_sample = arr.size // n
    flat = arr.reshape(-1)
    m = flat.mean()
    d = flat - m

    # per-block power sums P[b, k] = sum_{i in b} d_i^k, one pass per order
    offsets = _block_edges(n, n_blocks)[:-1] * per_sample
    sums = np.empty((n_blocks, n_max + 1), dtype=arr.dtype)
    sums[:, 0] = np.diff(np.append(offsets, flat.size))
    p = d.copy()
    for k in range(1, n_max + 1):
        sums[:, k] = np.add.reduceat(p, offsets)
        if k < n_max:
            p *= d

    # multinomial block weights: how often each block is drawn in each resample (row 0: the data itself)
    ids = generator.integers(0, n_blocks, size=(n_boot, n_blocks)) + n_blocks * np.arange(1, n_boot + 1)[:, None]
    weights = np.bincount(ids.reshape(-1), minlength=(n_boot + 1) * n_blocks).reshape(n_boot + 1, n_blocks)
    weights[0] = 1
    tot = np.einsum("rb,bk->rk", weights.astype(np.float64), sums)  # (1 + n_boot, n_max + 1); no BLAS threads
    about_m = tot / tot[:, :1].real  # moments about the global mean m
    result = _shift_moments(about_m, m, n_max, kind)
    return result[0], _spread(result[1:])


def jackknife(batch_means, statistic: Callable, axis: int = 0):
    r"""Estimate and jackknife error of a function of means, from the means over independent batches.

    The samples were cut into :math:`B` independent batches of equal size and ``batch_means`` holds the
    batch averages :math:`\bar a_b` of the primary quantities (e.g. raw moments :math:`\langle x^n\rangle_b`,
    as recorded with ``observe`` in :mod:`lib.solvers`).  With :math:`\bar a` the mean over batches and
    :math:`\bar a_{(b)} = (B\bar a - \bar a_b)/(B - 1)` the leave-one-out means,

    .. math::
        \hat\theta = \theta(\bar a), \qquad
        \sigma_\theta^2 = \frac{B-1}{B}\sum_{b=1}^{B}\big(\theta(\bar a_{(b)}) - \overline{\theta_{(\cdot)}}\big)^2 .

    Each leave-one-out estimate uses all but one batch, so the error is valid for nonlinear statistics such as
    cumulants from moments (:doc:`book/part2/cumulants`), unlike the spread of per-batch estimates.

    Parameters
    ----------
    batch_means : torch.Tensor or array_like
        Batch averages, batches along ``axis`` (at least 2), any other shape.
    statistic : callable
        ``mean -> scalar or array``: receives an array of ``batch_means``'s shape without ``axis``.
    axis : int
        The batch axis.

    Returns
    -------
    (estimate, error) : numpy arrays (0-d for scalar statistics)
        For complex statistics ``error = err(Re) + 1j err(Im)``.
    """
    arr = _as_array(batch_means, "batch_means")
    axis = _check_axis(arr, axis)
    arr = np.moveaxis(arr, axis, 0)
    n_batches = arr.shape[0]
    if n_batches < 2:
        raise ValueError(f"jackknife needs at least 2 batches along axis {axis}, got {n_batches}")
    total = arr.sum(axis=0)
    estimate = np.asarray(_to_numpy(statistic(total / n_batches)))
    loo = np.stack([np.asarray(_to_numpy(statistic((total - a) / (n_batches - 1)))) for a in arr])
    dev = loo - loo.mean(axis=0)
    scale = (n_batches - 1) / n_batches
    if np.iscomplexobj(dev):
        error = np.sqrt(scale * (dev.real**2).sum(axis=0)) + 1j * np.sqrt(scale * (dev.imag**2).sum(axis=0))
    else:
        error = np.sqrt(scale * (dev**2).sum(axis=0))
    return estimate, error


def _shift_moments(about_m: np.ndarray, m, n_max: int, kind: str) -> np.ndarray:
    """Rows of moments about ``m`` -> cumulants (via central moments) or raw moments."""
    binom = [[math.comb(n, k) for k in range(n + 1)] for n in range(n_max + 1)]
    out = np.empty_like(about_m)
    if kind == "moments":
        for n in range(n_max + 1):
            out[:, n] = sum(binom[n][k] * about_m[:, k] * m ** (n - k) for k in range(n + 1))
        return out
    delta = about_m[:, 1]  # resample mean minus m
    central = np.empty_like(about_m)
    for n in range(n_max + 1):
        central[:, n] = sum(binom[n][k] * about_m[:, k] * (-delta) ** (n - k) for k in range(n + 1))
    central[:, 0] = 1.0
    kappa = cumulants_from_moments(central.T).T
    kappa[:, 1] = m + delta
    return kappa


# --------------------------------------------------------------------------- autocorrelation
class TauInt(NamedTuple):
    """Result of :func:`tau_int`."""

    tau: float  # integrated autocorrelation time, 1/2 + sum_{t>=1} rho(t) (iid data: 0.5)
    tau_error: float  # its statistical error, tau * 2 sqrt((W + 1/2 - tau) / n)
    window: int  # summation window W chosen by Wolff's automatic windowing
    n: int  # total number of samples (all chains)


def _as_chains(series) -> np.ndarray:
    arr = _as_array(series, "series")
    if np.iscomplexobj(arr):
        raise ValueError("series must be real; analyse the real and imaginary parts separately")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
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
    gamma = gamma + c_f / n_tot  # bias correction of Gamma (Wolff 2004)
    c_f = gamma[0] + 2 * gamma[1 : window + 1].sum()
    tau = c_f / (2 * gamma[0])
    dtau = tau * 2 * math.sqrt(max(window - tau + 0.5, 0.0) / n_tot)
    return float(tau), float(dtau), int(window), int(n_tot), float(gamma[0]), float(mean)


def tau_int(series, S: float = 1.5) -> TauInt:
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
    :math:`\tau_\mathrm{int} = 1/2`.  See :doc:`book/part1/stochastic_quantisation`.

    Parameters
    ----------
    series : torch.Tensor or array_like
        Real time series of shape ``(N,)``, or ``(N, n_chains)`` for independent chains of
        equal length (the autocorrelation function is averaged over chains).
    S : float
        Wolff's parameter (> 0), the ratio of the window to the autocorrelation time
        scale; 1 to 2 is typical.

    Returns
    -------
    TauInt
        ``(tau, tau_error, window, n)``.  A ``RuntimeWarning`` is emitted when no window
        is found below ``N / 2`` (series too short).
    """
    S = require_positive(S, "S")
    tau, dtau, window, n, _, _ = _gamma_method(_as_chains(series), S)
    return TauInt(tau, dtau, window, n)


def mean_error(series, S: float = 1.5):
    r"""Mean of a (Markov-chain) time series and its error :math:`\sqrt{2 \tau_\mathrm{int} \mathrm{var} / N}`.

    :math:`\tau_\mathrm{int}` comes from :func:`tau_int` (Wolff's Gamma method, bias-corrected
    variance); see :doc:`book/part1/stochastic_quantisation`.

    Parameters
    ----------
    series : torch.Tensor or array_like
        Shape ``(N,)`` or ``(N, n_chains)``; complex series are analysed part by part.
    S : float
        Wolff's windowing parameter.

    Returns
    -------
    (mean, error) : floats (complex ``mean`` and ``error = err(Re) + 1j err(Im)`` for complex input)
    """
    S = require_positive(S, "S")
    arr = _as_array(series, "series")
    if np.iscomplexobj(arr):
        mr, er = mean_error(arr.real, S)
        mi, ei = mean_error(arr.imag, S)
        return complex(mr, mi), complex(er, ei)
    tau, _, _, n, var, mean = _gamma_method(_as_chains(arr), S)
    return mean, math.sqrt(2 * tau * var / n)


class WeightedMean(NamedTuple):
    """Result of :func:`weighted_mean`."""

    mean: float  # inverse-variance weighted mean
    error: float  # its error, multiplied by the scale factor
    chi2: float  # sum of squared pulls from the mean
    scale: float  # max(1, sqrt(chi2 / (n - 1))): the Particle Data Group's scale factor


def weighted_mean(values, errors) -> WeightedMean:
    r"""Inverse-variance weighted mean of independent measurements of one quantity.

    .. math::

        \bar x = \frac{\sum_i x_i/\sigma_i^2}{\sum_i 1/\sigma_i^2}, \qquad
        \sigma_{\bar x} = S \Big(\sum_i 1/\sigma_i^2\Big)^{-1/2}, \qquad
        S = \max\Big(1, \sqrt{\chi^2/(n-1)}\Big), \quad \chi^2 = \sum_i (x_i - \bar x)^2/\sigma_i^2 .

    The scale factor :math:`S` enlarges the error when the measurements disagree by more than their errors
    allow (the rule of the Particle Data Group, Review of Particle Physics, Introduction, Sec. 5.2).
    Used to combine the paper's two HMC rows of Table T5 in :doc:`book/part3/phi4_hmc`.
    """
    x = _as_array(values, "values").reshape(-1).astype(np.float64)
    s = _as_array(errors, "errors").reshape(-1).astype(np.float64)
    if x.shape != s.shape or x.size < 1:
        raise ValueError(f"values and errors must be non-empty and of equal length, got {x.size} and {s.size}")
    if not np.all(s > 0):
        raise ValueError(f"errors must all be > 0, got {s.tolist()}")
    w = 1.0 / s**2
    mean = float(np.sum(w * x) / np.sum(w))
    chi2 = float(np.sum(w * (x - mean) ** 2))
    scale = max(1.0, math.sqrt(chi2 / (x.size - 1))) if x.size > 1 else 1.0
    return WeightedMean(mean, scale / math.sqrt(float(np.sum(w))), chi2, scale)
