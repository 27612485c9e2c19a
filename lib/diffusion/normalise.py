r"""Affine normalisation of lattice ensembles before training a diffusion model.

The authors mapped every configuration to :math:`[-1, 1]` with the global minimum and
maximum of the ensemble, :math:`x \to 2(x - \min)/(\max - \min) - 1`.  Unless
:math:`\min = -\max` this *shifts* the field and breaks the :math:`Z_2` symmetry
:math:`\phi \to -\phi`; the alternative :math:`x \to x / \max|x|` only rescales.  Both are
:math:`y = (x - a)/s`, so cumulants transform as :math:`\kappa_1 \to (\kappa_1 - a)/s` and
:math:`\kappa_n \to \kappa_n / s^n` for :math:`n \ge 2` (the ratios
:math:`\kappa_{2n}/\kappa_2^n` are invariant).  Derived in :doc:`/book/part3/phi4_diffusion`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Normalisation", "minmax_normalise", "maxabs_normalise"]


def _extremes(data) -> tuple[float, float, float]:
    if isinstance(data, torch.Tensor):
        if data.numel() == 0:
            raise ValueError("data is empty")
        if not bool(torch.isfinite(data).all()):
            raise ValueError("data contains non-finite values")
        return float(data.min()), float(data.max()), float(data.abs().max())
    arr = np.asarray(data, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("data is empty")
    if not np.isfinite(arr).all():
        raise ValueError("data contains non-finite values")
    return float(arr.min()), float(arr.max()), float(np.abs(arr).max())


@dataclass(frozen=True)
class Normalisation:
    r"""The affine map :math:`y = (x - \mathrm{shift}) / \mathrm{scale}` and its inverse.

    Build it from an ensemble with :meth:`minmax` (the authors' choice) or :meth:`maxabs`
    (no shift).  See :doc:`/book/part3/phi4_diffusion`.
    """

    shift: float  # a, subtracted first (0 for maxabs; (max + min)/2 for minmax)
    scale: float  # s > 0, divides afterwards (max|x| for maxabs; (max - min)/2 for minmax)

    def __post_init__(self):
        if not math.isfinite(self.shift):
            raise ValueError(f"shift must be finite, got {self.shift}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {self.scale}")

    @classmethod
    def minmax(cls, data) -> "Normalisation":
        r"""The authors' map to :math:`[-1, 1]`: :math:`y = 2(x - \min)/(\max - \min) - 1` (global extremes)."""
        lo, hi, _ = _extremes(data)
        if hi <= lo:
            raise ValueError(f"data is constant (min = max = {lo}); min/max normalisation is undefined")
        return cls(shift=0.5 * (hi + lo), scale=0.5 * (hi - lo))

    @classmethod
    def maxabs(cls, data) -> "Normalisation":
        r"""Scale only: :math:`y = x / \max|x|` (keeps :math:`\phi \to -\phi` symmetry)."""
        _, _, amax = _extremes(data)
        if amax == 0.0:
            raise ValueError("data is identically zero; max|x| normalisation is undefined")
        return cls(shift=0.0, scale=amax)

    @classmethod
    def std(cls, data) -> "Normalisation":
        r"""Scale only, to unit variance per site: :math:`y = x / \sqrt{\langle x^2 \rangle}` over all sites and samples
        (keeps :math:`\phi \to -\phi` symmetry; with the variance-preserving process the prior then has the width of
        the data, and the probability flow is close to the identity, see :doc:`/book/part3/exact_sampler`)."""
        x = torch.as_tensor(data, dtype=torch.float64)
        if x.numel() == 0 or not bool(torch.isfinite(x).all()):
            raise ValueError("data must be non-empty and finite to build a normalisation")
        rms = float(x.pow(2).mean().sqrt())
        if rms == 0.0:
            raise ValueError("data is identically zero; unit-variance normalisation is undefined")
        return cls(shift=0.0, scale=rms)

    def forward(self, x):
        """:math:`y = (x - a)/s` (tensor or array, any shape)."""
        return (x - self.shift) / self.scale

    def inverse(self, y):
        """:math:`x = s y + a`."""
        return y * self.scale + self.shift

    def cumulants(self, kappa) -> np.ndarray:
        r"""Cumulants of :math:`y` from those of :math:`x` (indexed by order, ``kappa[0] = 0``).

        :math:`\kappa_1^{(y)} = (\kappa_1 - a)/s`, :math:`\kappa_n^{(y)} = \kappa_n / s^n` for :math:`n \ge 2`.
        """
        kappa = np.array(kappa, dtype=np.result_type(np.asarray(kappa).dtype, np.float64), copy=True)
        n = np.arange(kappa.shape[0]).reshape((-1,) + (1,) * (kappa.ndim - 1))
        out = kappa / self.scale ** n
        if kappa.shape[0] > 1:
            out[1] = (kappa[1] - self.shift) / self.scale
        return out


def minmax_normalise(data):
    """``(normalised data, Normalisation)`` with the authors' min/max map to [-1, 1]."""
    norm = Normalisation.minmax(data)
    return norm.forward(data), norm


def maxabs_normalise(data):
    """``(normalised data, Normalisation)`` dividing by max|x| (no shift)."""
    norm = Normalisation.maxabs(data)
    return norm.forward(data), norm
