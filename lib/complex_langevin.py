r"""Complex Langevin dynamics for a holomorphic action, and two exactly solvable targets.

For a complex weight :math:`\rho(x) = e^{-S(x)}/Z` the degree of freedom is complexified,
:math:`z = x + iy`, and evolved with the holomorphic drift :math:`K(z) = -S'(z)`:

.. math::

    \dot x = K_x + \eta_x, \qquad \dot y = K_y + \eta_y, \qquad
    K_x = \operatorname{Re} K(z), \quad K_y = \operatorname{Im} K(z),

with :math:`\langle \eta_x \eta_x \rangle = 2 N_x \delta`, :math:`\langle \eta_y \eta_y \rangle = 2 N_y \delta` and
:math:`N_x - N_y = 1` (real noise: :math:`N_x = 1`, :math:`N_y = 0`).  The real and positive distribution
:math:`P(x, y)` sampled by the process obeys the Fokker-Planck equation

.. math::

    \partial_t P = [\partial_x (N_x \partial_x - K_x) + \partial_y (N_y \partial_y - K_y)] P,

and, when complex Langevin (CL) is correct, :math:`\int dx\,dy\,P(x, y)\,O(x + iy) = \int dx\,\rho(x)\,O(x)` for
holomorphic :math:`O`.  The discretised update (Euler-Maruyama, the convention :math:`\epsilon \to 2\epsilon` of the
exercise sheet, eq. ``eq-cl-update``) is

.. math::

    x_{n+1} = x_n + \epsilon_n K_x + \sqrt{2 N_x \epsilon_n}\,\eta_{x,n}, \qquad
    y_{n+1} = y_n + \epsilon_n K_y + \sqrt{2 N_y \epsilon_n}\,\eta_{y,n}.

Everything is derived in :doc:`book/part4/complex_langevin`.  Models (frozen dataclasses):
:class:`GaussianModel` (:math:`S = \sigma_0 z^2 / 2`, exact :math:`P(x, y)`) and :class:`QuarticModel`
(:math:`S = \sigma_0 z^2/2 + \lambda z^4/4`, CL confined to a strip); exact expectation values come from
quadrature of the complex weight on the real axis.  The stationary Fokker-Planck equation of these models is
solved in :mod:`lib.fokker_planck`.

Trajectories are batch-first complex tensors ``(B, ...)``; all noise is drawn through
:func:`lib._random.standard_normal` with an explicit ``torch.Generator``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy import integrate, linalg

from lib import _random
from lib._checks import NonFiniteError, expand_like, require_nonnegative, require_positive
from lib.stats import cumulants_from_moments

__all__ = [
    "RunawayError",
    "GaussianModel",
    "QuarticModel",
    "quadrature_moments",
    "cl_step",
    "adaptive_step",
    "CLRun",
    "complex_langevin",
    "CLSamples",
    "sample_xy",
    "cached_sample_xy",
]


class RunawayError(NonFiniteError, RuntimeError):
    """A complex Langevin trajectory ran away (non-finite, or :math:`|z|` beyond the guard threshold).

    Both a :class:`lib._checks.NonFiniteError` (a ``ValueError``) and a ``RuntimeError``, so either can be caught.
    """


# --------------------------------------------------------------------------- exact expectation values
def _real_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_n_max(n_max) -> int:
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise ValueError(f"n_max must be an integer >= 1, got {n_max!r}")
    return int(n_max)


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
    :math:`Z = \int dx\, e^{-S(x)}`.  See :doc:`book/part4/complex_langevin` (eq. ``eq-cl-exact``).

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
        r"""Exact cumulants from :meth:`exact_moments` by :func:`lib.stats.cumulants_from_moments`."""
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

    Exact results (:doc:`book/part4/complex_langevin`, eqs. ``eq-gauss-moments``, ``eq-gauss-p``):
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

    @property
    def sigma0(self) -> complex:
        r""":math:`\sigma_0 = A + iB`."""
        return complex(self.A, self.B)

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

        Derived in :doc:`book/part4/complex_langevin` (eq. ``eq-gauss-moments``).
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

        The identity is eq. ``eq-cl-projection`` of :doc:`book/part4/complex_langevin`.

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
        Shows the :math:`O(\epsilon)` step-size bias (:doc:`book/part4/complex_langevin`).  Requires :math:`|a| < 1`.
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
    (Aarts, Giudice, Seiler, Annals Phys. 337 (2013) 238).  Derived in :doc:`book/part4/complex_langevin`
    (eq. ``eq-strip``).  Exact moments by quadrature of :math:`e^{-S(x)}` (:meth:`exact_moments`).
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

    @property
    def sigma0(self) -> complex:
        r""":math:`\sigma_0 = A + iB`."""
        return complex(self.A, self.B)

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


# --------------------------------------------------------------------------- the CL update
def _as_complex_batch(z0) -> torch.Tensor:
    if not isinstance(z0, torch.Tensor) or z0.ndim < 1:
        raise ValueError(f"z0 must be a tensor of shape (B, ...) with the batch on axis 0, got {type(z0).__name__}"
                         + (f" of shape {tuple(z0.shape)}" if isinstance(z0, torch.Tensor) else ""))
    if z0.is_complex():
        z = z0
    elif z0.is_floating_point():
        z = torch.complex(z0, torch.zeros_like(z0))
    else:
        raise ValueError(f"z0 must be a complex or floating tensor, got dtype {z0.dtype}")
    if z.shape[0] == 0:
        raise ValueError("z0 holds no trajectory (batch size 0)")
    if not bool(torch.isfinite(torch.view_as_real(z)).all()):
        raise ValueError("z0 contains non-finite values (NaN or inf)")
    return z


def cl_step(z: torch.Tensor, K: torch.Tensor, eps, generator: torch.Generator | None = None,
            imag_noise: float = 0.0) -> torch.Tensor:
    r"""One Euler-Maruyama step of complex Langevin (eq. ``eq-cl-update`` of :doc:`book/part4/complex_langevin`).

    .. math::

        x' = x + \epsilon K_x + \sqrt{2 N_x \epsilon}\,\eta_x, \qquad
        y' = y + \epsilon K_y + \sqrt{2 N_y \epsilon}\,\eta_y, \qquad N_x = 1 + N_y .

    Parameters
    ----------
    z : torch.Tensor
        Complex state of shape ``(B, ...)``.
    K : torch.Tensor
        The drift :math:`K(z)`, like ``z``.
    eps : float or torch.Tensor
        Step size, a number or a per-trajectory ``(B,)`` tensor (broadcast with :func:`lib._checks.expand_like`).
    generator : torch.Generator, optional
        Source of the noise; :math:`\eta_x` is drawn first, then (only if :math:`N_y > 0`) :math:`\eta_y`,
        both with :func:`lib._random.standard_normal` (real, shape of ``z``).
    imag_noise : float
        :math:`N_y \ge 0` (0: real noise).

    Returns
    -------
    torch.Tensor
        The new state, like ``z``.
    """
    e = expand_like(eps, z.real)
    n_y = float(imag_noise)
    eta_x = _random.standard_normal(z, generator)
    x = z.real + e * K.real + torch.sqrt(2.0 * (1.0 + n_y) * e) * eta_x
    y = z.imag + e * K.imag
    if n_y > 0:
        eta_y = _random.standard_normal(z, generator)
        y = y + torch.sqrt(2.0 * n_y * e) * eta_y
    return torch.complex(x, y)


def adaptive_step(K: torch.Tensor, eps_max: float, k_ref: float | None = None,
                  scope: str = "trajectory") -> torch.Tensor:
    r"""Adaptive step size :math:`\epsilon = \min(\bar\epsilon,\ \bar\epsilon\, K_\mathrm{ref} / K_\max)`.

    The prescription of Aarts, James, Seiler, Stamatescu (Phys. Lett. B 687 (2010) 154), with
    :math:`K_\max = \max |K|` over the configuration of each trajectory (``scope="trajectory"``, the default:
    independent trajectories do not slow each other down) or over the whole batch (``scope="global"``, one step
    for all, as on a lattice).  ``k_ref=None`` gives the fixed step :math:`\bar\epsilon`.  Derived in
    :doc:`book/part4/complex_langevin` (eq. ``eq-cl-adaptive``).

    Returns
    -------
    torch.Tensor
        ``(B,)`` step sizes in the real dtype of ``K``.
    """
    real_dtype = K.real.dtype
    batch = K.shape[0]
    if k_ref is None:
        return torch.full((batch,), float(eps_max), dtype=real_dtype, device=K.device)
    kmax = K.abs().reshape(batch, -1).amax(dim=1)
    if scope == "global":
        kmax = kmax.amax().expand(batch)
    elif scope != "trajectory":
        raise ValueError(f"scope must be 'trajectory' or 'global', got {scope!r}")
    ratio = float(k_ref) / kmax.clamp_min(torch.finfo(real_dtype).tiny)
    return float(eps_max) * ratio.clamp(max=1.0)


class CLRun(NamedTuple):
    """Result of :func:`complex_langevin`."""

    z: torch.Tensor  # final state (B, ...), complex
    time: torch.Tensor  # (B,) float64 Langevin time of each trajectory at the end (thermalisation included)
    t: torch.Tensor  # (n_records, B) float64 Langevin time at each record
    eps: torch.Tensor  # (n_records, B) step size eps(z) at each record: weights of time averages under adaptive steps
    records: dict  # name -> tensor stacked along a new first axis (n_records, ...)


def _guard(z: torch.Tensor, max_abs: float, step: int, time: torch.Tensor):
    bad = ~((z.real.abs() <= max_abs) & (z.imag.abs() <= max_abs))  # NaN compares False: caught as well
    bad = bad.reshape(z.shape[0], -1).any(dim=1)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        nonfinite = not bool(torch.isfinite(torch.view_as_real(z)).all())
        what = "non-finite values" if nonfinite else f"|Re z| or |Im z| > {max_abs:g}"
        raise RunawayError(
            f"complex Langevin: {n_bad} of {z.shape[0]} trajectories ran away at step {step} "
            f"(Langevin time up to {float(time.max()):.6g}): {what}. Reduce the step size, use the adaptive step "
            "(k_ref), or check that the drift is stable."
        )


def complex_langevin(drift, z0: torch.Tensor, eps: float, n_steps: int, generator: torch.Generator | None = None, *,
                     imag_noise: float = 0.0, k_ref: float | None = None, scope: str = "trajectory",
                     n_therm: int = 0, record_every: int = 1, observe: Callable | None = None,
                     max_abs: float = 1e6, progress: bool = False) -> CLRun:
    r"""Run complex Langevin for many independent trajectories (batch-first complex tensors).

    Each step: :math:`K = K(z)`, :math:`\epsilon_n` from :func:`adaptive_step` (fixed when ``k_ref`` is
    ``None``), then :func:`cl_step`.  After ``n_therm`` unrecorded thermalisation steps, ``n_steps`` further steps
    are made and the state is recorded after every ``record_every``-th of them (``n_steps // record_every``
    records); nothing else is kept in memory.  With an adaptive step, time averages are
    :math:`\sum_i \epsilon_i O_i / \sum_i \epsilon_i` with the recorded ``eps`` (each sample stands for the
    Langevin time it is held).  Derived in :doc:`book/part4/complex_langevin`.

    Parameters
    ----------
    drift : callable or model
        ``z -> K(z)`` (tensor like ``z``), or an object with a ``drift`` method (:class:`GaussianModel`,
        :class:`QuarticModel`).
    z0 : torch.Tensor
        Initial state ``(B, ...)``, complex (a real tensor is promoted); fixes dtype and device.
    eps : float
        (Maximal) step size :math:`\bar\epsilon > 0`.
    n_steps : int
        Steps after thermalisation (>= 0).
    generator : torch.Generator, optional
        Explicit source of randomness (on the device of ``z0``).
    imag_noise : float
        :math:`N_y \ge 0`; :math:`N_x = 1 + N_y`.
    k_ref, scope :
        Adaptive step size, see :func:`adaptive_step`.
    n_therm : int
        Thermalisation steps (not recorded).
    record_every : int
        Record spacing in steps (>= 1).
    observe : callable, optional
        ``z -> dict[str, Tensor]``; default ``{"z": z}``.
    max_abs : float
        Runaway guard: :class:`RunawayError` (naming the step and the number of runaways) as soon as a
        trajectory has :math:`|\operatorname{Re} z|` or :math:`|\operatorname{Im} z|` above ``max_abs`` or a
        non-finite value.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    CLRun
    """
    K_fn = drift.drift if hasattr(drift, "drift") else drift
    if not callable(K_fn):
        raise ValueError("drift must be a callable z -> K(z) or a model with a drift method")
    z = _as_complex_batch(z0)
    eps = require_positive(eps, "eps")
    for name, value, lo in (("n_steps", n_steps, 0), ("n_therm", n_therm, 0), ("record_every", record_every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    n_y = require_nonnegative(imag_noise, "imag_noise")
    max_abs = require_positive(max_abs, "max_abs")
    if k_ref is not None:
        k_ref = require_positive(k_ref, "k_ref")
    if scope not in ("trajectory", "global"):
        raise ValueError(f"scope must be 'trajectory' or 'global', got {scope!r}")
    observe = observe or (lambda state: {"z": state})

    from tqdm.auto import tqdm

    batch = z.shape[0]
    time = torch.zeros(batch, dtype=torch.float64, device=z.device)
    recs: dict[str, list] = {}
    ts, epss = [], []
    total = int(n_therm) + int(n_steps)
    K = K_fn(z)
    step_size = adaptive_step(K, eps, k_ref, scope)
    for step in tqdm(range(1, total + 1), disable=not progress, desc="complex Langevin", leave=False):
        z = cl_step(z, K, step_size, generator, n_y)
        time = time + step_size.to(torch.float64)
        _guard(z, max_abs, step, time)
        K = K_fn(z)
        step_size = adaptive_step(K, eps, k_ref, scope)
        k = step - n_therm
        if k > 0 and k % record_every == 0:
            for name, value in observe(z).items():
                recs.setdefault(name, []).append(value)
            ts.append(time.clone())
            epss.append(step_size.to(torch.float64))
    empty = torch.zeros((0, batch), dtype=torch.float64, device=z.device)
    return CLRun(
        z=z,
        time=time,
        t=torch.stack(ts) if ts else empty,
        eps=torch.stack(epss) if epss else empty,
        records={name: torch.stack(values) for name, values in recs.items()},
    )


# --------------------------------------------------------------------------- training data
class CLSamples(NamedTuple):
    """Result of :func:`sample_xy`: CL samples as real pairs :math:`(x, y)`."""

    xy: torch.Tensor  # (n_records, n_chains, ..., 2): x = Re z, y = Im z at each record of each chain
    t: torch.Tensor  # (n_records, n_chains) Langevin time of each sample
    eps: torch.Tensor  # (n_records, n_chains) step size at each sample (weights if the step is adaptive)
    z: torch.Tensor  # (n_chains, ...) final complex state (to continue the run)

    def flat(self) -> torch.Tensor:
        """All samples as ``(n_records * n_chains, ..., 2)`` (training data for a diffusion model)."""
        return self.xy.reshape((-1,) + tuple(self.xy.shape[2:]))

    def complex(self) -> torch.Tensor:
        """The samples as complex :math:`z = x + iy` of shape ``(n_records, n_chains, ...)``."""
        return torch.complex(self.xy[..., 0], self.xy[..., 1])


def sample_xy(model, n_chains: int, n_records: int, eps: float = 1e-3, generator: torch.Generator | None = None, *,
              record_every: int = 10, n_therm: int | None = None, z0: torch.Tensor | None = None,
              dtype: torch.dtype = torch.float64, device=None, imag_noise: float = 0.0,
              k_ref: float | None = None, scope: str = "trajectory", max_abs: float = 1e6,
              progress: bool = False) -> CLSamples:
    r"""Thermalise ``n_chains`` CL trajectories, then record :math:`(x, y)` every ``record_every`` steps.

    Produces ``n_chains * n_records`` samples of the stationary CL distribution :math:`P(x, y)` (up to the
    :math:`O(\epsilon)` step-size bias), e.g. :math:`10^6` samples for training a diffusion model
    (:doc:`book/part4/cl_diffusion`); only the records are kept in memory.  Samples of one record are independent
    across chains; along a chain they are autocorrelated (analyse with :func:`lib.stats.tau_int` on the
    ``(n_records, n_chains)`` layout).  Warns (``RuntimeWarning``) when the model says CL is not expected to be
    correct (:attr:`QuarticModel.cl_expected_correct`).  See :doc:`book/part4/complex_langevin`.

    Parameters
    ----------
    model : model or callable
        A model with ``drift`` (or a drift callable).
    n_chains, n_records : int
        Independent trajectories and records per trajectory (>= 1).
    eps : float
        (Maximal) step size.
    generator : torch.Generator, optional
        Explicit randomness; its device is used when neither ``z0`` nor ``device`` is given.
    record_every : int
        Steps between records.
    n_therm : int or None
        Thermalisation steps; ``None``: Langevin time 10, i.e. ``ceil(10 / eps)``.
    z0 : torch.Tensor, optional
        Initial state ``(n_chains, ...)``; default zeros of shape ``(n_chains,)``.
    dtype, device :
        Real dtype and device of the default ``z0``.
    imag_noise, k_ref, scope, max_abs, progress :
        As in :func:`complex_langevin`.
    """
    for name, value in (("n_chains", n_chains), ("n_records", n_records), ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    eps = require_positive(eps, "eps")
    if n_therm is None:
        n_therm = math.ceil(10.0 / eps)
    if getattr(model, "cl_expected_correct", True) is False:
        warnings.warn(
            f"{model!r}: 3A^2 - B^2 <= 0, complex Langevin is not expected to converge to the correct result",
            RuntimeWarning, stacklevel=2,
        )
    if z0 is None:
        if device is None and generator is not None:
            device = generator.device
        z0 = torch.zeros(n_chains, dtype=dtype, device=device)
    elif z0.shape[0] != n_chains:
        raise ValueError(f"z0 must have n_chains = {n_chains} trajectories on axis 0, got shape {tuple(z0.shape)}")
    run = complex_langevin(
        model, z0, eps, n_records * record_every, generator, imag_noise=imag_noise, k_ref=k_ref, scope=scope,
        n_therm=n_therm, record_every=record_every, observe=lambda z: {"xy": torch.view_as_real(z).clone()},
        max_abs=max_abs, progress=progress,
    )
    return CLSamples(xy=run.records["xy"], t=run.t, eps=run.eps, z=run.z)


def cached_sample_xy(model, n_chains: int, n_records: int, eps: float, seed: int, *, record_every: int = 10,
                     n_therm: int | None = None, k_ref: float | None = None, scope: str = "trajectory",
                     scale: str = "quick", device="cpu", cache=None, progress: bool = False) -> dict:
    r"""CL samples of :func:`sample_xy`, stored as an artefact of :class:`lib.cache.ArtefactCache`.

    The run starts from :math:`z = 0` in float64 with real noise and a ``torch.Generator`` seeded with ``seed``
    (:func:`lib._random.make_generator`) on ``device``.  The artefact (kind ``"cl_samples"``) is keyed by every
    parameter of the run: the model (a frozen dataclass), ``n_chains``, ``n_records``, ``eps``, ``record_every``,
    ``n_therm`` (resolved: ``None`` means ``ceil(10 / eps)``), ``k_ref``, ``scope``, ``seed``, ``scale``
    (the profile label) and ``device``, so a changed parameter never reuses a stale run.  The same call with the
    same arguments returns the stored samples, which makes them reusable as training data
    (:doc:`book/part4/cl_diffusion`).  Produced in :doc:`book/part4/complex_langevin`.

    Returns
    -------
    dict
        ``"xy"``: float32 tensor ``(n_records, n_chains, 2)`` of :math:`(x, y)` (records along axis 0, independent
        chains along axis 1); ``"eps"``: float32 ``(n_records, n_chains)`` step size at each sample (the weights
        of time averages when ``k_ref`` is set); ``"z_final"``: complex128 final state ``(n_chains,)``;
        ``"params"``: the parameters of the run (as stored in the cache key).
    """
    from lib import cache as _cache

    eps = require_positive(eps, "eps")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if n_therm is None:
        n_therm = math.ceil(10.0 / eps)
    params = {
        "model": model, "n_chains": int(n_chains), "n_records": int(n_records), "eps": float(eps),
        "record_every": int(record_every), "n_therm": int(n_therm), "k_ref": None if k_ref is None else float(k_ref),
        "scope": str(scope), "seed": int(seed), "scale": str(scale), "device": str(torch.device(device)),
        "imag_noise": 0.0, "z0": "zeros", "dtype": "float64", "stored_dtype": "float32",
    }

    def compute():
        generator = _random.make_generator(int(seed), device)
        with warnings.catch_warnings():
            # sample_xy warns when CL is not expected to be correct: that is the caller's choice here
            warnings.simplefilter("ignore", RuntimeWarning)
            run = sample_xy(model, int(n_chains), int(n_records), eps, generator, record_every=int(record_every),
                            n_therm=int(n_therm), k_ref=k_ref, scope=scope, device=device, progress=progress)
        return {"xy": run.xy.to(torch.float32).cpu(), "eps": run.eps.to(torch.float32).cpu(),
                "z_final": run.z.cpu(), "params": _cache.canonical_params(params)}

    store = cache if cache is not None else _cache.ArtefactCache()
    return store.get_or_compute("cl_samples", params, compute, seed=int(seed))
