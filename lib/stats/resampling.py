"""Errors of estimates: the bootstrap (plain and blocked), the jackknife over batches, weighted means.

Every resampling takes an explicit ``numpy.random.Generator``.  Used throughout the book; the blocked bootstrap of
Markov-chain data in :doc:`/book/part3/phi4_hmc`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from lib.core.checks import require_finite, require_int
from lib.stats._arrays import as_array, check_axis
from lib.stats.moments import cumulants_from_moments

__all__ = ["bootstrap", "bootstrap_cumulants", "jackknife", "WeightedMean", "weighted_mean"]


# --------------------------------------------------------------------------- bootstrap
def _check_generator(generator):
    if not isinstance(generator, np.random.Generator):
        raise ValueError(
            "an explicit numpy.random.Generator is required (generator=np.random.default_rng(seed)), "
            f"got {generator!r}"
        )
    return generator


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
    autocorrelation time (:func:`lib.stats.tau_int`) make the error valid for Markov-chain data
    (:doc:`/book/part1/stochastic_quantisation`).

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
    n_boot = require_int(n_boot, "n_boot", 2)
    is_torch = isinstance(data, torch.Tensor)
    if not is_torch:
        data = as_array(data, "data")
    elif data.numel() == 0:
        raise ValueError("data is empty: at least one sample is needed")
    else:
        require_finite(data, "data")
    if data.ndim == 0:
        raise ValueError("data must have a sample axis (axis 0), got a scalar")
    n = data.shape[0]
    n_blocks = n if n_blocks is None else require_int(n_blocks, "n_blocks", 2)
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

    Fast path of :func:`bootstrap` for :func:`lib.stats.cumulants` / :func:`lib.stats.moments` with ``axis=None``.
    The samples along axis 0 (configurations; their sites stay together) are cut into
    ``n_blocks`` contiguous blocks and per-block power sums about the global mean
    :math:`m`, :math:`P_{bn} = \sum_{i \in b} (x_i - m)^n`, are computed once.  A resample
    is a multinomial weight vector :math:`w_b` (``n_blocks`` draws with replacement), so its
    moments about :math:`m` are :math:`M_n = \sum_b w_b P_{bn} / \sum_b w_b P_{b0}`; these are
    shifted to the resample's own mean (central moments) or to zero (raw moments) with the
    binomial theorem.  See :doc:`/book/part2/cumulants`.

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
        ``estimate`` equals :func:`lib.stats.cumulants` (or :func:`lib.stats.moments`) of ``x``; for complex ``x``
        ``error = err(Re) + 1j err(Im)``.
    """
    n_max = require_int(n_max, "n_max")
    generator = _check_generator(generator)
    n_boot = require_int(n_boot, "n_boot", 2)
    n_blocks = require_int(n_blocks, "n_blocks", 2)
    if kind not in ("cumulants", "moments"):
        raise ValueError(f"kind must be 'cumulants' or 'moments', got {kind!r}")
    arr = as_array(x)
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
    as recorded with ``observe`` in :mod:`lib.diffusion.solvers`).  With :math:`\bar a` the mean over batches and
    :math:`\bar a_{(b)} = (B\bar a - \bar a_b)/(B - 1)` the leave-one-out means,

    .. math::
        \hat\theta = \theta(\bar a), \qquad
        \sigma_\theta^2 = \frac{B-1}{B}\sum_{b=1}^{B}\big(\theta(\bar a_{(b)}) - \overline{\theta_{(\cdot)}}\big)^2 .

    Each leave-one-out estimate uses all but one batch, so the error is valid for nonlinear statistics such as
    cumulants from moments (:doc:`/book/part2/cumulants`), unlike the spread of per-batch estimates.

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
    arr = as_array(batch_means, "batch_means")
    axis = check_axis(arr, axis)
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
    Used to combine the paper's two HMC rows of Table T5 in :doc:`/book/part3/phi4_hmc`.
    """
    x = as_array(values, "values").reshape(-1).astype(np.float64)
    s = as_array(errors, "errors").reshape(-1).astype(np.float64)
    if x.shape != s.shape or x.size < 1:
        raise ValueError(f"values and errors must be non-empty and of equal length, got {x.size} and {s.size}")
    if not np.all(s > 0):
        raise ValueError(f"errors must all be > 0, got {s.tolist()}")
    w = 1.0 / s**2
    mean = float(np.sum(w * x) / np.sum(w))
    chi2 = float(np.sum(w * (x - mean) ** 2))
    scale = max(1.0, math.sqrt(chi2 / (x.size - 1))) if x.size > 1 else 1.0
    return WeightedMean(mean, scale / math.sqrt(float(np.sum(w))), chi2, scale)
