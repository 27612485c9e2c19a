r"""Stationary Fokker-Planck equation of complex Langevin, solved by a double expansion in Hermite functions.

For a polynomial drift :math:`K(z) = \sum_j k_j z^j` the CL distribution :math:`P(x, y)` is the null vector of

.. math::

    L = N_x \partial_x^2 + N_y \partial_y^2 - \partial_x K_x(x, y) - \partial_y K_y(x, y), \qquad
    N_x = 1 + N_y

(real noise: :math:`N_y = 0`).  Following Aarts, Giudice, Seiler, Annals Phys. 337 (2013) 238
(arXiv:1306.3075), :math:`P` is expanded in scaled Hermite functions,

.. math::

    P(x, y) = \sum_{m < n_x} \sum_{n < n_y} c_{mn}\, \psi_m(x / s_x)\, \psi_n(y / s_y), \qquad
    \psi_n(u) = \frac{H_n(u)\, e^{-u^2/2}}{\sqrt{2^n n! \sqrt\pi}},

and :math:`L` becomes a sparse matrix (Galerkin projection) built from the exact matrix elements of
:math:`u = (a + a^\dagger)/\sqrt2` and :math:`d/du = (a - a^\dagger)/\sqrt2` (ladder operators,
:math:`a \psi_n = \sqrt n\, \psi_{n-1}`).  Monomials :math:`x^p y^q` of the drift are matrix products computed in a
basis larger by the polynomial degree and then truncated, so every retained matrix element is exact.  The
stationary solution is the eigenvector of the eigenvalue closest to zero (inverse iteration with a sparse LU
factorisation), normalised to :math:`\int P = 1`.  Moments :math:`\langle z^n \rangle = \int dx\,dy\,(x+iy)^n P`
follow exactly from the coefficients (:meth:`FPSolution.moments`) or from a grid (:meth:`FPSolution.grid_moments`).

Accuracy (measured; see :doc:`/book/part4/complex_langevin`, section on the Fokker-Planck equation): for the
Gaussian model the expansion converges geometrically (default scales: :math:`|P - P_\mathrm{exact}| \approx
10^{-12}` and moments to :math:`10^{-6}` at 30 x 30).  For the quartic model (:math:`A = B = \lambda = 1`, real
noise) :math:`P` lives in the strip :math:`|y| < y_-` with steep edges, so the convergence in :math:`n_y` is slower
and not monotonic, and needs a narrow :math:`y` scale (default :math:`s_y = 1.2\, y_- / \sqrt{2 n_y + 1}`, so that the
basis just covers the strip).  Errors of :math:`\langle z^2 \rangle`, :math:`\langle z^4 \rangle`:
:math:`1 \cdot 10^{-2}` at :math:`(n_x, n_y) = (40, 40)`, :math:`2\text{-}4 \cdot 10^{-3}` at (40, 60),
:math:`2\text{-}3 \cdot 10^{-4}` at (40, 100), :math:`2 \cdot 10^{-5}` at (40, 160), :math:`4 \cdot 10^{-7}` at
(60, 240); :math:`n_x = 40` is converged in :math:`x`.  The eigenvalue closest to zero
(``FPSolution.eigenvalue``) tends to zero with the truncation and is a useful diagnostic.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg

from lib.core.checks import require_int, require_nonnegative, require_positive
from lib.stats import cumulants_from_moments

__all__ = [
    "ladder_matrices",
    "hermite_functions",
    "hermite_integrals",
    "drift_monomials",
    "fp_operator",
    "default_scales",
    "FPSolution",
    "solve_stationary",
    "moments_vs_truncation",
]


# --------------------------------------------------------------------------- Hermite functions
def ladder_matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Matrices of :math:`u = (a + a^\dagger)/\sqrt2` and :math:`d/du = (a - a^\dagger)/\sqrt2`.

    In the basis :math:`\psi_0, \dots, \psi_{n-1}`.

    Convention: an operator :math:`O` acts on coefficient vectors, :math:`O_{jm} = \int \psi_j\, O \psi_m`
    (:math:`a_{n-1,n} = \sqrt n`).  Exact for indices below ``n - 1`` in products; see :func:`fp_operator`.
    """
    n = require_int(n, "n")
    a = np.diag(np.sqrt(np.arange(1.0, n)), 1)
    return (a + a.T) / math.sqrt(2.0), (a - a.T) / math.sqrt(2.0)


def hermite_functions(n: int, u) -> np.ndarray:
    r"""Values :math:`\psi_0(u), \dots, \psi_{n-1}(u)`, shape ``(n,) + u.shape``.

    Stable three-term recursion :math:`\psi_{k+1} = \sqrt{2/(k+1)}\, u\, \psi_k - \sqrt{k/(k+1)}\, \psi_{k-1}`,
    :math:`\psi_0 = \pi^{-1/4} e^{-u^2/2}`.
    """
    n = require_int(n, "n")
    u = np.asarray(u, dtype=np.float64)
    out = np.empty((n,) + u.shape)
    out[0] = math.pi ** -0.25 * np.exp(-u * u / 2)
    if n > 1:
        out[1] = math.sqrt(2.0) * u * out[0]
    for k in range(1, n - 1):
        out[k + 1] = math.sqrt(2.0 / (k + 1)) * u * out[k] - math.sqrt(k / (k + 1)) * out[k - 1]
    return out


def hermite_integrals(n: int, p: int = 0, scale: float = 1.0) -> np.ndarray:
    r""":math:`\int dx\, x^p\, \psi_m(x / s)` for :math:`m = 0, \dots, n-1` (exact).

    :math:`I_m = \int \psi_m` obeys :math:`I_0 = \sqrt2\, \pi^{1/4}`, :math:`I_m = \sqrt{(m-1)/m}\, I_{m-2}`,
    zero for odd
    :math:`m` (from :math:`\int a \psi = \int a^\dagger \psi`); then :math:`\int u^p \psi_m = (U^p)^T I` with the
    position matrix :math:`U` of a basis larger by :math:`p`, and :math:`x = s u` gives the factor :math:`s^{p+1}`.
    """
    n = require_int(n, "n")
    p = require_int(p, "p", 0)
    scale = require_positive(scale, "scale")
    big = n + p + 1
    integ = np.zeros(big)
    integ[0] = math.sqrt(2.0) * math.pi**0.25
    for m in range(2, big, 2):
        integ[m] = math.sqrt((m - 1) / m) * integ[m - 2]
    U, _ = ladder_matrices(big)
    v = integ
    for _ in range(p):
        v = U.T @ v
    return scale ** (p + 1) * v[:n]


# --------------------------------------------------------------------------- the Fokker-Planck operator
def drift_monomials(coefficients) -> dict[tuple[int, int], complex]:
    r"""Expand :math:`K(x + iy) = \sum_j k_j (x + iy)^j = \sum_{p,q} d_{pq}\, x^p y^q`; returns ``{(p, q): d_pq}``.

    :math:`K_x = \sum \operatorname{Re} d_{pq}\, x^p y^q`, :math:`K_y = \sum \operatorname{Im} d_{pq}\, x^p y^q`.
    """
    out: dict[tuple[int, int], complex] = {}
    for j, k in enumerate(coefficients):
        k = complex(k)
        if k == 0:
            continue
        for q in range(j + 1):
            key = (j - q, q)
            out[key] = out.get(key, 0j) + k * math.comb(j, q) * 1j**q
    return out


def _factor(n: int, scale: float, power: int, derivative: bool, pad: int) -> sparse.csr_matrix:
    """Matrix of ``d/dx^derivative x^power`` in the first ``n`` scaled Hermite functions (built larger, truncated)."""
    big = n + pad
    U, D = ladder_matrices(big)
    M = np.eye(big)
    for _ in range(power):
        M = (scale * U) @ M
    if derivative:
        M = (D / scale) @ M
    M = M[:n, :n]
    M[np.abs(M) < 1e-300] = 0.0
    return sparse.csr_matrix(M)


def fp_operator(coefficients, n_x: int, n_y: int, scale_x: float, scale_y: float,
                imag_noise: float = 0.0) -> sparse.csr_matrix:
    r"""Sparse matrix of the FP operator :math:`L` in the basis :math:`\psi_m(x/s_x)\psi_n(y/s_y)`.

    .. math::

        L = N_x D_x^2 \otimes 1 + N_y 1 \otimes D_y^2
            - \sum_{pq} \operatorname{Re} d_{pq}\, (D_x X^p) \otimes Y^q
            - \sum_{pq} \operatorname{Im} d_{pq}\, X^p \otimes (D_y Y^q),

    with :math:`X = s_x U`, :math:`D_x = D / s_x` (:func:`ladder_matrices`) and :math:`d_{pq}` from
    :func:`drift_monomials`.  Each one-dimensional product is computed in a basis larger by the degree plus two and
    then truncated to the first ``n`` functions, so the retained elements are the exact Galerkin projection.
    Coefficients are ordered ``c[m, n] -> m * n_y + n``.  Derived in :doc:`/book/part4/complex_langevin`
    (eq. ``eq-fpe-hermite``).
    """
    n_x = require_int(n_x, "n_x")
    n_y = require_int(n_y, "n_y")
    scale_x = require_positive(scale_x, "scale_x")
    scale_y = require_positive(scale_y, "scale_y")
    n_i = require_nonnegative(imag_noise, "imag_noise")
    coefficients = tuple(complex(c) for c in coefficients)
    pad = len(coefficients) + 2
    ix, iy = sparse.identity(n_x, format="csr"), sparse.identity(n_y, format="csr")
    L = (1.0 + n_i) * sparse.kron(_second_derivative(n_x, scale_x, pad), iy)
    if n_i > 0:
        L = L + n_i * sparse.kron(ix, _second_derivative(n_y, scale_y, pad))
    for (p, q), d in drift_monomials(coefficients).items():
        if d.real != 0:
            L = L - d.real * sparse.kron(_factor(n_x, scale_x, p, True, pad), _factor(n_y, scale_y, q, False, pad))
        if d.imag != 0:
            L = L - d.imag * sparse.kron(_factor(n_x, scale_x, p, False, pad), _factor(n_y, scale_y, q, True, pad))
    return sparse.csr_matrix(L)


def _second_derivative(n: int, scale: float, pad: int) -> sparse.csr_matrix:
    _, D = ladder_matrices(n + pad)
    return sparse.csr_matrix((D @ D)[:n, :n] / scale**2)


# --------------------------------------------------------------------------- scales
def default_scales(model, n_x: int, n_y: int, imag_noise: float = 0.0) -> tuple[float, float]:
    r"""Hermite scales :math:`(s_x, s_y)` such that the basis covers the support of :math:`P`.

    - Gaussian model (:class:`lib.physics.cl_models.GaussianModel`): :math:`s` equal to the marginal standard
      deviations of the exact stationary Gaussian (the expansion then converges geometrically, to a relative
      :math:`10^{-8}` or better at 40 functions per direction).
    - Quartic model with real noise: the functions :math:`\psi_n(x/s)`, :math:`n < N`, reach out to
      :math:`|x| \approx s\sqrt{2N + 1}`, so :math:`s = X / \sqrt{2N + 1}` for the extent :math:`X` of
      :math:`P`: :math:`X_y = 1.2\, y_-` (just covering the strip, which the steep edges of :math:`P` at
      :math:`|y| \lesssim y_-` require) and :math:`X_x` where :math:`A x^2/2 + \lambda x^4/4 = 25`.

    Other cases (e.g. the quartic model with complex noise, no strip) need explicit scales (``ValueError``).
    """
    n_x = require_int(n_x, "n_x")
    n_y = require_int(n_y, "n_y")
    n_i = require_nonnegative(imag_noise, "imag_noise")
    if hasattr(model, "stationary_covariance"):
        C = model.stationary_covariance(n_i)
        return math.sqrt(C[0, 0]), math.sqrt(C[1, 1])
    if hasattr(model, "strip_halfwidth") and hasattr(model, "lam"):
        y_minus = model.strip_halfwidth
        if n_i > 0 or not (y_minus > 0):
            raise ValueError(
                "default scales need the strip |y| < y_- of the quartic model with real noise "
                f"(got imag_noise = {n_i}, y_- = {y_minus}); pass scale_x and scale_y explicitly"
            )
        ext_y = 1.2 * y_minus
        A, lam = model.A, model.lam
        ext_x = math.sqrt((-A + math.sqrt(A * A + 100.0 * lam)) / lam)  # A x^2/2 + lam x^4/4 = 25
    else:
        raise ValueError(f"no default Hermite scales for {type(model).__name__}; pass scale_x and scale_y explicitly")
    return ext_x / math.sqrt(2 * n_x + 1), ext_y / math.sqrt(2 * n_y + 1)


# --------------------------------------------------------------------------- the solution
@dataclass(frozen=True)
class FPSolution:
    r"""Stationary :math:`P(x, y) = \sum_{mn} c_{mn} \psi_m(x/s_x) \psi_n(y/s_y)`, normalised to :math:`\int P = 1`."""

    coefficients: np.ndarray  # (n_x, n_y) real expansion coefficients c_mn
    scale_x: float  # Hermite scale s_x of the x direction
    scale_y: float  # Hermite scale s_y of the y direction
    eigenvalue: float  # eigenvalue of the truncated L closest to zero (-> 0 as the truncation grows)
    residual: float  # ||L c|| / ||c|| of the returned vector
    converged: bool  # whether inverse iteration converged

    @property
    def shape(self) -> tuple[int, int]:
        """Truncation orders ``(n_x, n_y)``."""
        return self.coefficients.shape

    def density(self, x, y) -> np.ndarray:
        r""":math:`P` on the grid ``x`` (1-D) times ``y`` (1-D): shape ``(len(x), len(y))`` (``indexing="ij"``)."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        y = np.atleast_1d(np.asarray(y, dtype=np.float64))
        if x.ndim != 1 or y.ndim != 1:
            raise ValueError(f"x and y must be 1-D grids, got shapes {x.shape} and {y.shape}")
        n_x, n_y = self.shape
        fx = hermite_functions(n_x, x / self.scale_x)
        fy = hermite_functions(n_y, y / self.scale_y)
        return fx.T @ self.coefficients @ fy

    def marginal_x(self, x) -> np.ndarray:
        r""":math:`\int dy\, P(x, y)` (exact in :math:`y`)."""
        n_x, n_y = self.shape
        fx = hermite_functions(n_x, np.asarray(x, dtype=np.float64) / self.scale_x)
        w = self.coefficients @ hermite_integrals(n_y, 0, self.scale_y)
        return np.tensordot(w, fx, axes=(0, 0))

    def marginal_y(self, y) -> np.ndarray:
        r""":math:`\int dx\, P(x, y)` (exact in :math:`x`)."""
        n_x, n_y = self.shape
        fy = hermite_functions(n_y, np.asarray(y, dtype=np.float64) / self.scale_y)
        w = hermite_integrals(n_x, 0, self.scale_x) @ self.coefficients
        return np.tensordot(w, fy, axes=(0, 0))

    def xy_moments(self, p_max: int, q_max: int) -> np.ndarray:
        r""":math:`\langle x^p y^q \rangle` for :math:`p \le p_\max`, :math:`q \le q_\max` (exact in the basis)."""
        n_x, n_y = self.shape
        Ix = np.stack([hermite_integrals(n_x, p, self.scale_x) for p in range(p_max + 1)])
        Iy = np.stack([hermite_integrals(n_y, q, self.scale_y) for q in range(q_max + 1)])
        return Ix @ self.coefficients @ Iy.T

    def moments(self, n_max: int = 8) -> np.ndarray:
        r"""Moments :math:`\langle z^n \rangle = \sum_k \binom{n}{k} i^k \langle x^{n-k} y^k \rangle`.

        Returns complex128 ``mu`` indexed by order, ``mu[0] = 1`` (the normalisation).
        """
        n_max = require_int(n_max, "n_max")
        xy = self.xy_moments(n_max, n_max)
        return np.array([sum(math.comb(n, k) * 1j**k * xy[n - k, k] for k in range(n + 1)) for n in range(n_max + 1)])

    def cumulants(self, n_max: int = 8) -> np.ndarray:
        r"""Cumulants of :math:`z` from :meth:`moments` (:func:`lib.stats.cumulants_from_moments`)."""
        return cumulants_from_moments(self.moments(n_max))

    def grid_moments(self, x, y, n_max: int = 8) -> np.ndarray:
        r""":math:`\int dx\,dy\,(x + iy)^n P(x, y)` by the trapezoidal rule on the grid ``x`` times ``y``."""
        n_max = require_int(n_max, "n_max")
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        P = self.density(x, y)
        z = x[:, None] + 1j * y[None, :]
        out = np.empty(n_max + 1, dtype=np.complex128)
        zn = np.ones_like(z)
        for n in range(n_max + 1):
            out[n] = np.trapezoid(np.trapezoid(zn * P, y, axis=1), x)
            zn = zn * z
        return out


def _inverse_iteration(L: sparse.csr_matrix, max_iter: int, tol: float, normal: bool = False):
    """Inverse iteration for the null vector of ``L``: with ``L^{-1}`` (eigenvector of the eigenvalue closest
    to 0) or, with ``normal=True``, with ``(L^T L)^{-1}`` (right singular vector of the smallest singular value)."""
    lu = sparse_linalg.splu(L.tocsc())
    v = np.ones(L.shape[0]) / math.sqrt(L.shape[0])
    converged = False
    for _ in range(max_iter):
        w = lu.solve(lu.solve(v, trans="T")) if normal else lu.solve(v)
        norm = np.linalg.norm(w)
        if not np.isfinite(norm) or norm == 0:
            break
        w /= norm
        if w @ v < 0:
            w = -w
        change = np.linalg.norm(w - v)
        v = w
        if change < tol:
            converged = True
            break
    Lv = L @ v
    return v, float(v @ Lv), float(np.linalg.norm(Lv)), converged


def solve_stationary(model, n_x: int = 40, n_y: int = 160, scale_x: float | None = None,
                     scale_y: float | None = None, imag_noise: float = 0.0, method: str = "eig",
                     max_iter: int = 200, tol: float = 1e-12) -> FPSolution:
    r"""Stationary solution of the CL Fokker-Planck equation of ``model`` in the truncated Hermite basis.

    Builds :func:`fp_operator` from ``model.drift_coefficients()`` and finds its null vector:
    ``method="eig"`` (default) the eigenvector of the eigenvalue closest to zero (inverse iteration),
    ``method="svd"`` the right singular vector of the smallest singular value (least :math:`\|Lc\|`; measured to
    be less accurate for the quartic model).  The vector is normalised to :math:`\int P = 1`.
    See :doc:`/book/part4/complex_langevin` (eq. ``eq-fpe-hermite``).

    Parameters
    ----------
    model : GaussianModel or QuarticModel (anything with ``drift_coefficients()``)
    n_x, n_y : int
        Number of Hermite functions in :math:`x` and :math:`y`.
    scale_x, scale_y : float or None
        Hermite scales; ``None``: :func:`default_scales`.
    imag_noise : float
        :math:`N_y \ge 0` (complex noise; real noise by default).
    method : {"eig", "svd"}
    max_iter, tol :
        Inverse iteration controls; a ``RuntimeWarning`` is emitted if it does not converge.

    Returns
    -------
    FPSolution
    """
    n_x = require_int(n_x, "n_x")
    n_y = require_int(n_y, "n_y")
    n_i = require_nonnegative(imag_noise, "imag_noise")
    if method not in ("eig", "svd"):
        raise ValueError(f"method must be 'eig' or 'svd', got {method!r}")
    if scale_x is None or scale_y is None:
        sx, sy = default_scales(model, n_x, n_y, n_i)
        scale_x = sx if scale_x is None else scale_x
        scale_y = sy if scale_y is None else scale_y
    scale_x = require_positive(scale_x, "scale_x")
    scale_y = require_positive(scale_y, "scale_y")
    L = fp_operator(model.drift_coefficients(), n_x, n_y, scale_x, scale_y, n_i)
    normal = method != "eig"
    v, eigenvalue, residual, converged = _inverse_iteration(L, max_iter, tol, normal=normal)
    if not converged:
        warnings.warn(
            f"solve_stationary: {method} iteration did not converge in {max_iter} iterations at (n_x, n_y) = "
            f"({n_x}, {n_y}); the eigenvalue closest to zero may be complex or degenerate: change the truncation "
            "or the scales",
            RuntimeWarning, stacklevel=2,
        )
    c = v.reshape(n_x, n_y)
    norm = hermite_integrals(n_x, 0, scale_x) @ c @ hermite_integrals(n_y, 0, scale_y)
    if norm == 0 or not np.isfinite(norm):
        raise RuntimeError("solve_stationary: the null vector has zero integral and cannot be normalised")
    c = c / norm
    return FPSolution(coefficients=c, scale_x=scale_x, scale_y=scale_y, eigenvalue=eigenvalue,
                      residual=residual, converged=converged)


def moments_vs_truncation(model, orders, n_max: int = 8, **kwargs) -> np.ndarray:
    r"""Moments :math:`\langle z^n \rangle` of :func:`solve_stationary` for a list of truncation orders.

    ``orders`` holds integers (the same order in both directions) or pairs ``(n_x, n_y)``; further keyword
    arguments go to :func:`solve_stationary` (scales default to :func:`default_scales` at each order).
    Returns complex128 of shape ``(len(orders), n_max + 1)``.  Shows the convergence of the expansion
    (:doc:`/book/part4/complex_langevin`).
    """
    rows = []
    for order in orders:
        n_x, n_y = (order, order) if np.isscalar(order) else tuple(order)
        rows.append(solve_stationary(model, int(n_x), int(n_y), **kwargs).moments(n_max))
    return np.array(rows)
