"""Tests of lib.physics.fokker_planck: Hermite-function solution of the stationary CL Fokker-Planck equation."""
import math

import numpy as np
import pytest

from lib.core.random import make_generator
from lib.physics.cl_models import GaussianModel, QuarticModel
from lib.physics.complex_langevin import sample_xy
from lib.physics.fokker_planck import (
    default_scales,
    drift_monomials,
    fp_operator,
    hermite_functions,
    hermite_integrals,
    ladder_matrices,
    moments_vs_truncation,
    solve_stationary,
)


# --------------------------------------------------------------------------- Hermite machinery
def test_hermite_functions_orthonormal_and_ladder():
    u = np.linspace(-12, 12, 12001)
    psi = hermite_functions(30, u)
    gram = np.trapezoid(psi[:, None, :] * psi[None, :, :], u, axis=-1)
    np.testing.assert_allclose(gram, np.eye(30), atol=1e-10)
    U, D = ladder_matrices(31)
    psi31 = hermite_functions(31, u)
    # u psi_m = sum_j U_jm psi_j and psi_m' = sum_j D_jm psi_j (exact for m < 30)
    np.testing.assert_allclose(u * psi31[:30], (U.T @ psi31)[:30], atol=1e-10)
    dpsi = np.gradient(psi31, u, axis=1)
    np.testing.assert_allclose(dpsi[:30], (D.T @ psi31)[:30], atol=2e-4)  # finite differences, h = 0.002


@pytest.mark.parametrize("p", [0, 1, 2, 5])
def test_hermite_integrals(p):
    s = 0.7
    x = np.linspace(-20, 20, 40001)
    numeric = np.trapezoid(x**p * hermite_functions(25, x / s), x, axis=-1)
    np.testing.assert_allclose(hermite_integrals(25, p, s), numeric, atol=1e-9)


@pytest.mark.parametrize("power,derivative", [(3, True), (3, False), (2, True), (0, True)])
def test_truncated_products_are_exact_matrix_elements(power, derivative):
    # <psi_j(x/s)| d/dx^derivative x^power |psi_m(x/s)> / s by quadrature, for every j, m < n (incl. the last rows)
    from lib.physics.fokker_planck import _factor

    n, s = 8, 0.6
    x = np.linspace(-15, 15, 30001)
    f = hermite_functions(n, x / s)
    g = x**power * f
    if derivative:
        g = np.gradient(g, x, axis=1)
    exact = np.trapezoid(f[:, None, :] * g[None, :, :], x, axis=-1) / s
    built = _factor(n, s, power, derivative, pad=6).toarray()
    np.testing.assert_allclose(built, exact, atol=2e-4)  # finite differences


def test_drift_monomials_quartic():
    q = QuarticModel(1.0, 1.0, 1.0)
    d = drift_monomials(q.drift_coefficients())
    x, y = 0.37, -0.21
    K = sum(c * x**p * y**q_ for (p, q_), c in d.items())
    assert K == pytest.approx(complex(q.drift(complex(x, y))))


def test_operator_annihilates_exact_gaussian():
    model = GaussianModel(1.0, 1.0)
    sx, sy = default_scales(model, 40, 40)
    # expand the exact P in the basis (projection by quadrature) and apply L
    x = np.linspace(-12, 12, 2401)
    y = np.linspace(-8, 8, 1601)
    fx, fy = hermite_functions(40, x / sx), hermite_functions(40, y / sy)
    P = model.stationary_density(x[:, None], y[None, :])
    wx = np.full(x.size, x[1] - x[0])
    wy = np.full(y.size, y[1] - y[0])
    c = (fx * wx) @ P @ (fy * wy).T / (sx * sy)  # c_mn = int psi_m(x/sx) psi_n(y/sy) P / (sx sy)
    L = fp_operator(model.drift_coefficients(), 40, 40, sx, sy)
    assert np.linalg.norm(L @ c.ravel()) < 1e-6 * np.linalg.norm(c)


# --------------------------------------------------------------------------- Gaussian model: exact P known
@pytest.mark.parametrize("A,B,imag_noise", [(1.0, 1.0, 0.0), (1.0, -2.0, 0.0), (1.0, 1.0, 0.5)])
def test_gaussian_solution_reproduces_exact_p(A, B, imag_noise):
    model = GaussianModel(A, B)
    sol = solve_stationary(model, 30, 30, imag_noise=imag_noise)
    assert sol.converged and abs(sol.eigenvalue) < 1e-8
    x = np.linspace(-4, 4, 81)
    y = np.linspace(-3, 3, 61)
    exact = model.stationary_density(x[:, None], y[None, :], imag_noise)
    assert np.abs(sol.density(x, y) - exact).max() < 1e-7 * exact.max()
    mu = sol.moments(8)
    assert mu[0] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(mu, model.exact_moments(8), rtol=0, atol=1e-6 * 26.25)


def test_gaussian_marginals():
    model = GaussianModel(1.0, 1.0)
    sol = solve_stationary(model, 30, 30)
    C = model.stationary_covariance()
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(sol.marginal_x(x), np.exp(-x**2 / (2 * C[0, 0])) / math.sqrt(2 * math.pi * C[0, 0]),
                               atol=1e-8)
    np.testing.assert_allclose(sol.marginal_y(x), np.exp(-x**2 / (2 * C[1, 1])) / math.sqrt(2 * math.pi * C[1, 1]),
                               atol=1e-8)


# --------------------------------------------------------------------------- quartic model
@pytest.fixture(scope="module")
def quartic():
    return QuarticModel(1.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def quartic_exact(quartic):
    return quartic.exact_moments(8)


def test_quartic_moments_at_40x100(quartic, quartic_exact):
    # measured: |error| 2.1e-4 (n=2), 2.9e-4 (n=4), 4.8e-4 (n=6), 9.7e-4 (n=8)
    sol = solve_stationary(quartic, 40, 100)
    err = np.abs(sol.moments(8) - quartic_exact)
    assert err[0] < 1e-12
    assert err[2] < 1e-3 and err[4] < 1e-3, err
    assert err[6] < 2e-3 and err[8] < 4e-3, err


def test_quartic_convergence_in_truncation(quartic, quartic_exact):
    # measured errors of <z^2>, <z^4>: about 1e-2 at (40,40), 3e-3 at (40,60), 3e-4 at (40,100), 2e-5 at (40,160)
    mu = moments_vs_truncation(quartic, [(40, 40), (40, 60), (40, 100), (40, 160)], n_max=4)
    err = np.abs(mu - quartic_exact[:5])[:, [2, 4]].max(axis=1)
    assert err[1] < 6e-3 and err[2] < 1e-3 and err[3] < 1e-4, err
    assert err[3] < err[2] < err[1] < err[0], err
    # n_x = 40 is converged in x
    mu60 = moments_vs_truncation(quartic, [(60, 100)], n_max=4)[0]
    assert np.abs(mu60 - mu[2]).max() < 1e-5


def test_quartic_cumulants_table_t4_at_high_truncation(quartic):
    # measured |error| at (40, 160): 1.5e-5 (k2), 2.0e-5 (k4), 6.4e-5 (k6), 3.5e-4 (k8)
    k = solve_stationary(quartic, 40, 160).cumulants(8)
    table = {2: (0.428142, 0.148010), 4: (-0.060347, -0.100083), 6: (-0.00934, 0.19222), 8: (0.41578, -0.5923)}
    tolerance = {2: 5e-5, 4: 5e-5, 6: 2e-4, 8: 1e-3}
    for n, (re, mim) in table.items():
        assert abs(k[n].real - re) < tolerance[n] and abs(-k[n].imag - mim) < tolerance[n], (n, k[n])


def test_quartic_grid_moments_and_strip(quartic):
    sol = solve_stationary(quartic, 40, 100)
    x = np.linspace(-4, 4, 401)
    y = np.linspace(-0.45, 0.45, 901)
    np.testing.assert_allclose(sol.grid_moments(x, y, 4), sol.moments(4), atol=1e-7)
    # P is (up to truncation wiggles) confined to the strip |y| < y_-
    y_minus = quartic.strip_halfwidth
    my = sol.marginal_y(y)
    inside = np.abs(y) < y_minus
    assert np.trapezoid(np.where(inside, my, 0.0), y) > 0.995
    assert np.abs(my[~inside]).max() < 0.05 * my.max()


def test_quartic_marginal_matches_cl_histogram(quartic):
    sol = solve_stationary(quartic, 40, 160)
    samples = sample_xy(quartic, 500, 200, 0.002, make_generator(1), record_every=25, n_therm=1000)
    y = samples.xy.numpy()[..., 1].ravel()
    edges = np.linspace(-0.3, 0.3, 13)
    hist, _ = np.histogram(y, bins=edges, density=True)
    fine = np.linspace(-0.3, 0.3, 1201)
    my = sol.marginal_y(fine)
    binned = np.array([np.trapezoid(my[(fine >= a) & (fine <= b)], fine[(fine >= a) & (fine <= b)]) / (b - a)
                       for a, b in zip(edges[:-1], edges[1:])])
    assert np.abs(hist - binned).max() < 0.12 * binned.max(), (hist, binned)


# --------------------------------------------------------------------------- bad input
def test_validation(quartic):
    with pytest.raises(ValueError, match="n_x"):
        solve_stationary(quartic, 0, 10)
    with pytest.raises(ValueError, match="method"):
        solve_stationary(quartic, 10, 10, method="qr")
    with pytest.raises(ValueError, match="scale_y"):
        solve_stationary(quartic, 10, 10, scale_x=0.3, scale_y=-1.0)
    with pytest.raises(ValueError, match="strip"):
        default_scales(quartic, 10, 10, imag_noise=0.5)
    with pytest.raises(ValueError, match="strip"):
        default_scales(QuarticModel(1.0, 2.0, 1.0), 10, 10)
    with pytest.raises(ValueError, match="B = 0"):
        default_scales(GaussianModel(1.0, 0.0), 10, 10)
    with pytest.raises(ValueError, match="1-D"):
        solve_stationary(GaussianModel(), 5, 5).density(np.zeros((2, 2)), np.zeros(3))
