r"""Two holomorphic actions solvable by quadrature, the targets of complex Langevin in the book.

:class:`GaussianModel` (:math:`S = \sigma_0 z^2 / 2`, with the exact complex Langevin distribution :math:`P(x, y)`)
and :class:`QuarticModel` (:math:`S = \sigma_0 z^2/2 + \lambda z^4/4`, complex Langevin confined to a strip), frozen
dataclasses with the drift :math:`K(z) = -S'(z)`; exact expectation values come from quadrature of the complex weight
on the real axis (:func:`quadrature_moments`).  The dynamics is :mod:`lib.physics.complex_langevin`, the stationary
Fokker-Planck equation :mod:`lib.physics.fokker_planck`.  Derived in :doc:`/book/part4/complex_langevin`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import integrate, linalg

from lib.core.checks import require_int, require_nonnegative, require_positive
from lib.stats import cumulants_from_moments

__all__ = ["GaussianModel", "QuarticModel", "quadrature_moments"]


# --------------------------------------------------------------------------- exact expectation values
def _real_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_n_max(n_max) -> int:
    return require_int(n_max, "n_max", 1)


def _cutoff(action: Callable, n_max: int) -> float:
    """Smallest power of two ``L`` with ``Re S(+-L) - n_max ln L > 60`` (the weight is negligible beyond)."""

    def re_s(x):
        return float(np.real(action(np.float64(x))))

    L = 1.0
    while min(re_s(L), re_s(-L)) - n_max * math.log(L) <= 60.0:
        L *= 2.0
        if L > 1e6:
            raise ValueError("exp(-Re S(x)) does not decay on the real axis: the integral does not converge")
    return L


def _quad_complex(f: Callable, L: float) -> complex:
    """``int_{-L}^{L} f(x) dx`` for complex ``f``: real and imaginary parts with ``scipy.integrate.quad``."""
    pieces = ((-L, 0.0), (0.0, L))
    scale = sum(integrate.quad(lambda x: abs(f(x)), a, b, limit=400)[0] for a, b in pieces)
    tol = 1e-14 * max(scale, 1e-300)
    total = 0j
    for a, b in pieces:
        re = integrate.quad(lambda x: np.real(f(x)), a, b, epsabs=tol, epsrel=1e-12, limit=1000)[0]
        im = integrate.quad(lambda x: np.imag(f(x)), a, b, epsabs=tol, epsrel=1e-12, limit=1000)[0]
        total += complex(re, im)
    return total


def quadrature_moments(action: Callable, n_max: int = 8, cutoff: float | None = None) -> np.ndarray:
    r"""Moments :math:`\langle z^n \rangle = Z^{-1} \int dx\, x^n e^{-S(x)}` of a complex weight, by quadrature.

    The real and imaginary parts of :math:`x^n e^{-S(x)}` are integrated separately with
    ``scipy.integrate.quad`` on :math:`[-L, 0]` and :math:`[0, L]`, and normalised by
    :math:`Z = \int dx\, e^{-S(x)}`.  See :doc:`/book/part4/complex_langevin` (eq. ``eq-cl-exact``).

    Parameters
    ----------
    action : callable
        ``x -> S(x)`` for real numpy ``x`` (complex result); :math:`\operatorname{Re} S(x)` must grow at
        large :math:`|x|`.
    n_max : int
        Highest order (>= 1).
    cutoff : float or None
        Integration range :math:`L`; ``None`` chooses the smallest power of two with
        :math:`\operatorname{Re} S(\pm L) - n_\max \ln L > 60`.

    Returns
    -------
    numpy.ndarray
        complex128 ``mu`` with ``mu[n] = <z^n>``, ``mu[0] = 1``.
    """
    n_max = _check_n_max(n_max)
    L = _cutoff(action, n_max) if cutoff is None else require_positive(cutoff, "cutoff")

    def weight(x):
        return np.exp(-action(np.asarray(x, dtype=np.float64)))

    Z = _quad_complex(weight, L)
    if Z == 0:
        raise ValueError("the partition function Z = int exp(-S) vanishes: moments are undefined")
    mu = np.empty(n_max + 1, dtype=np.complex128)
    mu[0] = 1.0
    for n in range(1, n_max + 1):
        mu[n] = _quad_complex(lambda x, n=n: x**n * weight(x), L) / Z
    return mu


class _HolomorphicModel:
    """Shared methods of the models: exact moments and cumulants by quadrature of :math:`e^{-S}`."""

    @property
    def sigma0(self) -> complex:
        r""":math:`\sigma_0 = A + iB`."""
        return complex(self.A, self.B)

    def drift_coefficients(self) -> tuple:  # pragma: no cover - overridden
        raise NotImplementedError

    def action(self, z):
        r"""The action :math:`S(z)` for a complex tensor, numpy array or number ``z`` (elementwise)."""
        return -_poly_antiderivative(self.drift_coefficients(), z)

    def drift(self, z):
        r"""The CL drift :math:`K(z) = -S'(z)` (elementwise, same type as ``z``)."""
        out = 0
        for c in reversed(self.drift_coefficients()):  # Horner
            out = out * z + c
        return out

    def quadrature_moments(self, n_max: int = 8) -> np.ndarray:
        r"""Exact :math:`\langle z^n \rangle` by quadrature of :math:`e^{-S(x)}` on the real axis.

        See :func:`quadrature_moments`.
        """
        return quadrature_moments(self.action, n_max)

    def exact_moments(self, n_max: int = 8) -> np.ndarray:
        r"""Exact moments :math:`\langle z^n \rangle`, ``mu[0] = 1`` (complex128, index = order)."""
        return self.quadrature_moments(n_max)

    def exact_cumulants(self, n_max: int = 8) -> np.ndarray:
        r"""Exact cumulants from ``exact_moments`` by :func:`lib.stats.cumulants_from_moments`."""
        return cumulants_from_moments(self.exact_moments(n_max))

    def weight(self, x) -> np.ndarray:
        r"""The normalised complex weight :math:`\rho(x) = e^{-S(x)} / Z` for real ``x`` (numpy complex128)."""
        x = np.asarray(x, dtype=np.float64)
        Z = _quad_complex(lambda u: np.exp(-self.action(u)), _cutoff(self.action, 0))
        return np.exp(-self.action(x)) / Z


def _poly_antiderivative(coefficients, z):
    """:math:`\\sum_j c_j z^{j+1} / (j + 1)` by Horner's scheme (the drift integrated once)."""
    out = 0
    for j in reversed(range(len(coefficients))):
        out = (out + coefficients[j] / (j + 1)) * z
    return out


@dataclass(frozen=True)
class GaussianModel(_HolomorphicModel):
    r"""Gaussian model :math:`S(z) = \sigma_0 z^2 / 2`, :math:`\sigma_0 = A + iB`, drift :math:`K = -\sigma_0 z`.

    Exact results (:doc:`/book/part4/complex_langevin`, eqs. ``eq-gauss-moments``, ``eq-gauss-p``):
    :math:`\langle z^n \rangle = (n-1)!!\, \sigma_0^{-n/2}` for even :math:`n` (0 for odd), and with real noise the
    stationary CL distribution

    .. math::

        P(x, y) = N e^{-a x^2 - b y^2 - 2 c x y}, \quad a = A, \quad b = A (1 + 2A^2/B^2), \quad
        c = A^2 / B, \quad N = \sqrt{ab - c^2} / \pi .

    At :math:`A = B = 1`: :math:`\langle z^2 \rangle = (1 - i)/2`, :math:`\langle z^4 \rangle = -3i/2`,
    :math:`\langle z^6 \rangle = -\tfrac{15}{4}(1 + i)`, :math:`\langle z^8 \rangle = -105/4`.
    """

    A: float = 1.0  # Re sigma0; > 0 so that exp(-S) is integrable on the real axis
    B: float = 1.0  # Im sigma0; any real number (B = 0: real Gaussian, P(x,y) = rho(x) delta(y) with real noise)

    def __post_init__(self):
        A = _real_float(self.A, "A")
        if A <= 0:
            raise ValueError(f"A (the real part of sigma0) must be > 0, got {A}")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", _real_float(self.B, "B"))

    def drift_coefficients(self) -> tuple:
        r"""Coefficients :math:`(k_0, k_1)` of :math:`K(z) = \sum_j k_j z^j = -\sigma_0 z`."""
        return (0j, -self.sigma0)

    def action(self, z):
        r""":math:`S(z) = \sigma_0 z^2 / 2` (elementwise; tensors, arrays or numbers)."""
        return self.sigma0 * z * z / 2

    def drift(self, z):
        r""":math:`K(z) = -\sigma_0 z`."""
        return -self.sigma0 * z

    def exact_moments(self, n_max: int = 8) -> np.ndarray:
        r"""Closed form :math:`\langle z^n \rangle = (n-1)!!\, \sigma_0^{-n/2}` (even :math:`n`), 0 for odd.

        Derived in :doc:`/book/part4/complex_langevin` (eq. ``eq-gauss-moments``).
        """
        n_max = _check_n_max(n_max)
        mu = np.zeros(n_max + 1, dtype=np.complex128)
        mu[0] = 1.0
        inv = 1.0 / self.sigma0
        for n in range(2, n_max + 1, 2):
            mu[n] = math.prod(range(n - 1, 0, -2)) * inv ** (n // 2)
        return mu

    def weight(self, x) -> np.ndarray:
        r""":math:`\rho(x) = \sqrt{\sigma_0 / 2\pi}\, e^{-\sigma_0 x^2/2}` (principal square root, :math:`A > 0`)."""
        x = np.asarray(x, dtype=np.float64)
        return np.sqrt(self.sigma0 / (2 * np.pi)) * np.exp(-self.sigma0 * x * x / 2)

    # ---------------------------------------------------------------- the stationary CL distribution
    def drift_matrix(self) -> np.ndarray:
        r"""The linear CL drift :math:`(K_x, K_y)^T = M (x, y)^T`, :math:`M = [[-A, B], [-B, -A]]`."""
        return np.array([[-self.A, self.B], [-self.B, -self.A]])

    def stationary_covariance(self, imag_noise: float = 0.0) -> np.ndarray:
        r"""Covariance :math:`C` of the stationary Gaussian :math:`P(x, y)`.

        The Lyapunov equation :math:`M C + C M^T + 2\,\mathrm{diag}(N_x, N_y) = 0` is solved with
        ``scipy.linalg.solve_continuous_lyapunov``; ``imag_noise`` is :math:`N_y`, :math:`N_x = 1 + N_y`.
        Raises ``ValueError`` when :math:`P` is degenerate (:math:`B = 0` with real noise).
        """
        n_y = require_nonnegative(imag_noise, "imag_noise")
        if n_y == 0 and self.B == 0:
            raise ValueError("B = 0 with real noise: y relaxes to 0 and P(x, y) = rho(x) delta(y) is degenerate")
        Q = np.diag([2.0 * (1.0 + n_y), 2.0 * n_y])
        C = linalg.solve_continuous_lyapunov(self.drift_matrix(), -Q)
        return (C + C.T) / 2

    def stationary_coefficients(self, imag_noise: float = 0.0) -> tuple[float, float, float, float]:
        r"""``(a, b, c, N)`` of :math:`P(x, y) = N e^{-a x^2 - b y^2 - 2cxy}`.

        Real noise (``imag_noise = 0``): the closed form :math:`a = A`, :math:`b = A(1 + 2A^2/B^2)`,
        :math:`c = A^2/B`, :math:`N = \sqrt{ab - c^2}/\pi` (requires :math:`B \ne 0`; :math:`c` has the sign of
        :math:`B`).  Complex noise: from the inverse of :meth:`stationary_covariance`,
        :math:`[[a, c], [c, b]] = C^{-1}/2`.
        """
        n_y = require_nonnegative(imag_noise, "imag_noise")
        if n_y == 0:
            if self.B == 0:
                raise ValueError("B = 0 with real noise: P(x, y) = rho(x) delta(y) has no Gaussian form in y")
            A, B = self.A, self.B
            a, b, c = A, A * (1 + 2 * A**2 / B**2), A**2 / B
        else:
            prec = np.linalg.inv(self.stationary_covariance(n_y)) / 2
            a, b, c = float(prec[0, 0]), float(prec[1, 1]), float(prec[0, 1])
        return a, b, c, math.sqrt(a * b - c * c) / math.pi

    def stationary_density(self, x, y, imag_noise: float = 0.0):
        r"""Exact stationary :math:`P(x, y) = N e^{-a x^2 - b y^2 - 2cxy}` (elementwise, broadcasting ``x``, ``y``).

        ``x``, ``y`` may be numpy arrays (float64 result), torch tensors (result on their device) or complex
        numbers (analytic continuation, used for :meth:`projected_density`).
        """
        a, b, c, N = self.stationary_coefficients(imag_noise)
        expo = -a * x * x - b * y * y - 2 * c * x * y
        return N * (torch.exp(expo) if isinstance(expo, torch.Tensor) else np.exp(expo))

    def projected_density(self, x, imag_noise: float = 0.0) -> np.ndarray:
        r""":math:`\int dy\, P(x - iy, y)` by quadrature; equals :math:`\rho(x) = e^{-S(x)}/Z`.

        The identity is eq. ``eq-cl-projection`` of :doc:`/book/part4/complex_langevin`.

        The analytic continuation of :math:`P` in its first argument is integrated over :math:`y` (real and
        imaginary parts with ``scipy.integrate.quad``) for each real ``x``.  Returns complex128 of ``x``'s shape.
        """
        a, b, c, N = self.stationary_coefficients(imag_noise)
        xs = np.asarray(x, dtype=np.float64)
        out = np.empty(xs.shape, dtype=np.complex128)
        for idx, xv in np.ndenumerate(xs):
            def f(yv, xv=xv):
                w = xv - 1j * yv
                return N * np.exp(-a * w * w - b * yv * yv - 2 * c * w * yv)

            re = integrate.quad(lambda yv: np.real(f(yv)), -np.inf, np.inf, epsabs=1e-13, epsrel=1e-11, limit=400)[0]
            im = integrate.quad(lambda yv: np.imag(f(yv)), -np.inf, np.inf, epsabs=1e-13, epsrel=1e-11, limit=400)[0]
            out[idx] = complex(re, im)
        return out

    def euler_moments(self, eps: float, n_max: int = 8) -> np.ndarray:
        r"""Exact stationary moments of the *discretised* CL chain :math:`z' = (1 - \epsilon\sigma_0) z + \zeta`.

        The noise :math:`\zeta = \sqrt{2N_x\epsilon}\,\eta_x + i\sqrt{2N_y\epsilon}\,\eta_y` is Gaussian with
        :math:`\langle \zeta^2 \rangle = 2\epsilon (N_x - N_y) = 2\epsilon`, so for every :math:`N_y`
        :math:`m_n (1 - a^n) = \sum_{k \ge 2,\ \mathrm{even}} \binom{n}{k} a^{n-k} (k-1)!!\,(2\epsilon)^{k/2} m_{n-k}`
        with :math:`a = 1 - \epsilon\sigma_0`; e.g.
        :math:`\langle z^2 \rangle_\epsilon = 1/[\sigma_0(1 - \epsilon\sigma_0/2)]`.
        Shows the :math:`O(\epsilon)` step-size bias (:doc:`/book/part4/complex_langevin`).  Requires :math:`|a| < 1`.
        """
        eps = require_positive(eps, "eps")
        n_max = _check_n_max(n_max)
        a = 1.0 - eps * self.sigma0
        if abs(a) >= 1:
            raise ValueError(f"eps = {eps} is too large: |1 - eps sigma0| = {abs(a):.4g} >= 1, the chain is unstable")
        m = np.zeros(n_max + 1, dtype=np.complex128)
        m[0] = 1.0
        for n in range(2, n_max + 1, 2):
            acc = 0j
            for k in range(2, n + 1, 2):
                noise_moment = math.prod(range(k - 1, 0, -2)) * (2 * eps) ** (k // 2)  # <zeta^k>
                acc += math.comb(n, k) * a ** (n - k) * noise_moment * m[n - k]
            m[n] = acc / (1 - a**n)
        return m


@dataclass(frozen=True)
class QuarticModel(_HolomorphicModel):
    r"""Quartic model :math:`S(z) = \sigma_0 z^2/2 + \lambda z^4/4`, :math:`\sigma_0 = A + iB`,
    drift :math:`K = -\sigma_0 z - \lambda z^3`.

    With real noise, CL is expected to converge to the correct result when :math:`3A^2 - B^2 > 0`
    (:attr:`cl_expected_correct`); the process is then confined to the strip :math:`|y| < y_-`,

    .. math::

        y_-^2 = \frac{A}{2\lambda}\left(1 - \sqrt{1 - \frac{B^2}{3A^2}}\right)

    (:math:`y_- = 0.3029` at :math:`A = B = \lambda = 1`), where :math:`K_y` points inwards for every :math:`x`
    (Aarts, Giudice, Seiler, Annals Phys. 337 (2013) 238).  Derived in :doc:`/book/part4/complex_langevin`
    (eq. ``eq-strip``).  Exact moments by quadrature of :math:`e^{-S(x)}` (``exact_moments``).
    """

    A: float = 1.0  # Re sigma0; > 0
    B: float = 1.0  # Im sigma0; any real number (CL expected correct for B^2 < 3 A^2)
    lam: float = 1.0  # quartic coupling lambda; > 0

    def __post_init__(self):
        A = _real_float(self.A, "A")
        if A <= 0:
            raise ValueError(f"A (the real part of sigma0) must be > 0, got {A}")
        lam = _real_float(self.lam, "lam")
        if lam <= 0:
            raise ValueError(f"lam (the quartic coupling lambda) must be > 0, got {lam}")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", _real_float(self.B, "B"))
        object.__setattr__(self, "lam", lam)

    def drift_coefficients(self) -> tuple:
        r"""Coefficients of :math:`K(z) = \sum_j k_j z^j = -\sigma_0 z - \lambda z^3`."""
        return (0j, -self.sigma0, 0j, complex(-self.lam))

    def action(self, z):
        r""":math:`S(z) = \sigma_0 z^2 / 2 + \lambda z^4 / 4` (elementwise)."""
        z2 = z * z
        return self.sigma0 * z2 / 2 + self.lam * z2 * z2 / 4

    def drift(self, z):
        r""":math:`K(z) = -\sigma_0 z - \lambda z^3`."""
        return -(self.sigma0 + self.lam * z * z) * z

    @property
    def cl_expected_correct(self) -> bool:
        r"""``True`` when :math:`3A^2 - B^2 > 0`: CL with real noise stays in the strip and converges correctly."""
        return 3 * self.A**2 - self.B**2 > 0

    @property
    def strip_halfwidth(self) -> float:
        r""":math:`y_-` of the strip :math:`|y| < y_-` (``nan`` when :math:`3A^2 - B^2 \le 0`: no strip)."""
        if not self.cl_expected_correct:
            return math.nan
        return math.sqrt(self.A / (2 * self.lam) * (1 - math.sqrt(1 - self.B**2 / (3 * self.A**2))))


