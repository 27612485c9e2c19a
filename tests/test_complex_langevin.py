"""Tests of lib.physics.complex_langevin: models, exact values (tables T3, T4), the CL update, runs and guards."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

import lib.core.random
from lib import stats
from lib.core.checks import NonFiniteError
from lib.core.random import make_generator
from lib.physics.cl_models import GaussianModel, QuarticModel, quadrature_moments
from lib.physics.complex_langevin import (
    RunawayError,
    adaptive_step,
    cl_step,
    complex_langevin,
    sample_xy,
    xy_to_complex,
)
from lib.recipes.complex_langevin import cached_sample_xy

N_SIGMA = 4.5


def _digits(value: float, printed: str) -> bool:
    """``value`` rounds to the printed number (same number of decimals)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-12


# --------------------------------------------------------------------------- exact values
def test_gaussian_exact_moments_table_t3():
    mu = GaussianModel(1.0, 1.0).exact_moments(8)
    table = {2: ("0.5", "0.5"), 4: ("0", "1.5"), 6: ("-3.75", "3.75"), 8: ("-26.25", "0")}
    for n, (re, mim) in table.items():
        assert _digits(mu[n].real, re) and _digits(-mu[n].imag, mim), (n, mu[n])
    assert np.all(mu[1::2] == 0) and mu[0] == 1


@pytest.mark.parametrize("A,B", [(1.0, 1.0), (0.7, -2.0), (2.0, 0.3)])
def test_gaussian_quadrature_equals_closed_form(A, B):
    model = GaussianModel(A, B)
    np.testing.assert_allclose(model.quadrature_moments(8), model.exact_moments(8), rtol=1e-9, atol=1e-11)
    k = model.exact_cumulants(6)
    np.testing.assert_allclose(k[2], 1 / model.sigma0, rtol=1e-12)
    np.testing.assert_allclose(k[[1, 3, 4, 5, 6]], 0, atol=1e-12)


def test_quartic_exact_cumulants_table_t4():
    k = QuarticModel(1.0, 1.0, 1.0).exact_cumulants(8)
    table = {2: ("0.428142", "0.148010"), 4: ("-0.060347", "-0.100083"), 6: ("-0.00934", "0.19222"),
             8: ("0.41578", "-0.5923")}
    for n, (re, mim) in table.items():
        assert _digits(k[n].real, re), (n, k[n].real, re)
        assert _digits(-k[n].imag, mim), (n, -k[n].imag, mim)


def test_quadrature_moments_real_quartic():
    # real action: the moments are real and <x^2> matches a direct evaluation
    mu = quadrature_moments(lambda x: x**2 / 2 + x**4 / 4, 4)
    assert abs(mu.imag).max() < 1e-14
    x = np.linspace(-8, 8, 200001)
    w = np.exp(-x**2 / 2 - x**4 / 4)
    np.testing.assert_allclose(mu[2].real, np.trapezoid(x**2 * w, x) / np.trapezoid(w, x), rtol=1e-9)


def test_quartic_strip_and_convergence_flag():
    q = QuarticModel(1.0, 1.0, 1.0)
    assert q.cl_expected_correct
    assert round(q.strip_halfwidth, 4) == 0.3029
    bad = QuarticModel(1.0, 2.0, 1.0)  # 3A^2 - B^2 < 0
    assert not bad.cl_expected_correct and math.isnan(bad.strip_halfwidth)
    # the drift points inwards on the strip boundary for every x
    x = np.linspace(-5, 5, 2001)
    for sign in (1, -1):
        ky = q.drift(x + 1j * sign * q.strip_halfwidth).imag
        assert np.all(sign * ky <= 1e-12)


def test_model_action_and_drift_consistent():
    z = torch.tensor([0.3 + 0.2j, -1.1 + 0.5j, 2.0 - 0.1j], dtype=torch.complex128)
    h = 1e-6
    for model in (GaussianModel(1.0, 0.5), QuarticModel(1.0, 1.0, 0.7)):
        numeric = -(model.action(z + h) - model.action(z - h)) / (2 * h)
        torch.testing.assert_close(model.drift(z), numeric, rtol=1e-8, atol=1e-8)
        # the generic Horner forms agree with the explicit formulas
        generic = type(model).__mro__[1]
        torch.testing.assert_close(generic.drift(model, z), model.drift(z))
        torch.testing.assert_close(generic.action(model, z), model.action(z))


# --------------------------------------------------------------------------- the stationary Gaussian P
@pytest.mark.parametrize("A,B", [(1.0, 1.0), (1.0, 2.0), (2.0, -0.5)])
def test_gaussian_p_solves_lyapunov(A, B):
    model = GaussianModel(A, B)
    a, b, c, N = model.stationary_coefficients()
    assert (a, b, c) == pytest.approx((A, A * (1 + 2 * A**2 / B**2), A**2 / B))
    assert np.sign(c) == np.sign(B)
    prec = np.linalg.inv(model.stationary_covariance()) / 2
    np.testing.assert_allclose(prec, [[a, c], [c, b]], rtol=1e-10)
    # normalised
    x = np.linspace(-8, 8, 801)
    y = np.linspace(-8, 8, 801)
    P = model.stationary_density(x[:, None], y[None, :])
    assert np.trapezoid(np.trapezoid(P, y, axis=1), x) == pytest.approx(1.0, abs=1e-8)
    # and the FPE  d_x (d_x - K_x) P - d_y (K_y P) = 0 holds pointwise (finite differences)
    h = 1e-4
    xs, ys = np.meshgrid(np.linspace(-2, 2, 9), np.linspace(-2, 2, 9), indexing="ij")
    p = lambda u, v: model.stationary_density(u, v)  # noqa: E731
    kx = lambda u, v: -A * u + B * v  # noqa: E731
    ky = lambda u, v: -A * v - B * u  # noqa: E731
    pxx = (p(xs + h, ys) - 2 * p(xs, ys) + p(xs - h, ys)) / h**2
    dx_kxp = (kx(xs + h, ys) * p(xs + h, ys) - kx(xs - h, ys) * p(xs - h, ys)) / (2 * h)
    dy_kyp = (ky(xs, ys + h) * p(xs, ys + h) - ky(xs, ys - h) * p(xs, ys - h)) / (2 * h)
    assert np.abs(pxx - dx_kxp - dy_kyp).max() < 1e-5


@pytest.mark.parametrize("imag_noise", [0.0, 0.5])
def test_gaussian_projection_identity(imag_noise):
    model = GaussianModel(1.0, 1.0)
    x = np.array([-2.0, -0.7, 0.0, 0.4, 1.5])
    rho = model.projected_density(x, imag_noise)
    np.testing.assert_allclose(rho, model.weight(x), atol=1e-10)
    np.testing.assert_allclose(model.weight(x), np.exp(-model.action(x)) / np.sqrt(2 * np.pi / model.sigma0))


def test_weight_is_normalised():
    q = QuarticModel(1.0, 1.0, 1.0)
    x = np.linspace(-6, 6, 6001)
    assert np.trapezoid(q.weight(x), x) == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- the update
def test_cl_step_exact_with_patched_noise(monkeypatch):
    calls = []

    def fake_normal(like, generator=None):
        calls.append(generator)
        value = 0.3 if len(calls) % 2 else -0.7
        return torch.full(like.shape, value, dtype=like.real.dtype, device=like.device)

    monkeypatch.setattr(lib.core.random, "standard_normal", fake_normal)
    z = torch.tensor([0.5 + 0.25j, -1.0 + 0.0j], dtype=torch.complex128)
    K = torch.tensor([1.0 - 2.0j, 0.5 + 0.5j], dtype=torch.complex128)
    eps = torch.tensor([0.01, 0.04], dtype=torch.float64)
    out = cl_step(z, K, eps)
    expected = torch.complex(z.real + eps * K.real + torch.sqrt(2 * eps) * 0.3, z.imag + eps * K.imag)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)
    assert len(calls) == 1  # real noise: one draw
    calls.clear()
    out = cl_step(z, K, 0.02, imag_noise=0.5)  # N_x = 1.5, N_y = 0.5: eta_x first, then eta_y
    expected = torch.complex(z.real + 0.02 * K.real + math.sqrt(2 * 1.5 * 0.02) * 0.3,
                             z.imag + 0.02 * K.imag + math.sqrt(2 * 0.5 * 0.02) * (-0.7))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)
    assert len(calls) == 2


def test_complex_langevin_run_matches_manual_loop(monkeypatch):
    noises = iter(torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(10, 4))

    def fake_normal(like, generator=None):
        return next(noises).reshape(like.shape)

    monkeypatch.setattr(lib.core.random, "standard_normal", fake_normal)
    model = QuarticModel(1.0, 1.0, 1.0)
    z0 = torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64)
    run = complex_langevin(model, z0, 0.05, 6, n_therm=4, record_every=3)
    noises = iter(torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(10, 4))
    z = z0.to(torch.complex128)
    manual = []
    for step in range(1, 11):
        K = -(model.sigma0 * z + z**3)
        z = torch.complex(z.real + 0.05 * K.real + math.sqrt(0.1) * next(noises), z.imag + 0.05 * K.imag)
        if step in (7, 10):
            manual.append(z)
    torch.testing.assert_close(run.records["z"], torch.stack(manual))
    torch.testing.assert_close(run.z, manual[-1])
    torch.testing.assert_close(run.t, torch.tensor([[0.35] * 4, [0.5] * 4], dtype=torch.float64))
    torch.testing.assert_close(run.time, torch.full((4,), 0.5, dtype=torch.float64))
    assert run.eps.shape == (2, 4) and bool((run.eps == 0.05).all())


def test_adaptive_step_sizes():
    K = torch.tensor([[1.0, 0.5], [10.0, -2.0], [0.1, 0.0]], dtype=torch.complex128)
    eps = adaptive_step(K, 0.1, k_ref=2.0)
    torch.testing.assert_close(eps, torch.tensor([0.1, 0.02, 0.1], dtype=torch.float64))
    eps = adaptive_step(K, 0.1, k_ref=2.0, scope="global")
    torch.testing.assert_close(eps, torch.full((3,), 0.02, dtype=torch.float64))
    torch.testing.assert_close(adaptive_step(K, 0.1), torch.full((3,), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="scope"):
        adaptive_step(K, 0.1, 1.0, scope="lattice")


# --------------------------------------------------------------------------- physics
def test_gaussian_cl_moments_and_covariance():
    model = GaussianModel(1.0, 1.0)
    eps = 0.01
    samples = sample_xy(model, 1000, 400, eps, make_generator(11), record_every=20, n_therm=500)
    assert samples.xy.shape == (400, 1000, 2) and samples.flat().shape == (400_000, 2)
    z = samples.complex()
    discrete = model.euler_moments(eps, 4)  # exact moments of the discretised chain
    exact = model.exact_moments(4)
    for n in (2, 4):
        mean, err = stats.mean_error((z**n).numpy())
        for part in ("real", "imag"):
            m, e, d, x = (getattr(v, part) for v in (mean, err, discrete[n], exact[n]))
            assert abs(m - d) < N_SIGMA * e, (n, part, m, e, d)
            assert abs(m - x) < N_SIGMA * e + 2 * abs(d - x), (n, part, m, e, x)  # O(eps) step-size bias
    # covariance of (x, y): exact stationary covariance of the Euler chain (discrete Lyapunov equation)
    Me = np.eye(2) + eps * model.drift_matrix()
    C_eps = linalg.solve_discrete_lyapunov(Me, np.diag([2 * eps, 0.0]))
    xy = samples.xy.numpy()
    for (i, j) in ((0, 0), (1, 1), (0, 1)):
        series = xy[..., i] * xy[..., j]
        mean, err = stats.mean_error(series, layout="draws, chains")  # (records, chains)
        assert abs(mean - C_eps[i, j]) < N_SIGMA * err, (i, j, mean, err, C_eps[i, j])
    assert np.sign(C_eps[0, 1]) == -np.sign(model.B)  # the c x y term of P has the sign of B


def test_gaussian_cl_histogram_matches_p():
    model = GaussianModel(1.0, 1.0)
    samples = sample_xy(model, 2000, 100, 0.005, make_generator(5), record_every=20, n_therm=400)
    xy = samples.flat().numpy()
    edges_x = np.linspace(-2.5, 2.5, 21)
    edges_y = np.linspace(-1.5, 1.5, 13)
    hist, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=(edges_x, edges_y), density=True)
    # exact P averaged over each bin (5 x 5 midpoints per bin)
    fy = (np.arange(60) + 0.5) * (edges_y[1] - edges_y[0]) / 5 + edges_y[0]
    fx = (np.arange(100) + 0.5) * (edges_x[1] - edges_x[0]) / 5 + edges_x[0]
    P = model.stationary_density(fx[:, None], fy[None, :]).reshape(20, 5, 12, 5).mean(axis=(1, 3))
    deviation = np.abs(hist - P).max() / P.max()
    assert deviation < 0.1  # "roughly": autocorrelated samples (about 4% per bin) and the O(eps) bias
    # the mirrored distribution (wrong sign of the c x y term) is far off
    a, b, c, N = model.stationary_coefficients()
    X, Y = fx[:, None], fy[None, :]
    wrong = (N * np.exp(-a * X**2 - b * Y**2 + 2 * c * X * Y)).reshape(20, 5, 12, 5).mean(axis=(1, 3))
    assert np.abs(hist - wrong).max() / P.max() > 0.3


def test_quartic_cl_cumulants_and_strip():
    model = QuarticModel(1.0, 1.0, 1.0)
    samples = sample_xy(model, 1000, 400, 0.002, make_generator(7), record_every=20, n_therm=1000)
    z = samples.complex()
    y_minus = model.strip_halfwidth
    assert float(z.imag.abs().max()) < y_minus  # confined to the strip after thermalisation
    exact = model.exact_moments(4)
    for n in (2, 4):
        mean, err = stats.mean_error((z**n).numpy())
        assert abs(mean.real - exact[n].real) < N_SIGMA * err.real + 0.004 * abs(exact[n]), (n, mean, err)
        assert abs(mean.imag - exact[n].imag) < N_SIGMA * err.imag + 0.004 * abs(exact[n]), (n, mean, err)


def test_quartic_strip_holds_from_inside_even_with_large_steps():
    model = QuarticModel(1.0, 1.0, 1.0)
    z0 = torch.complex(torch.linspace(-2, 2, 200, dtype=torch.float64), torch.full((200,), 0.29, dtype=torch.float64))
    run = complex_langevin(model, z0, 0.02, 2000, make_generator(3), record_every=10,
                           observe=lambda z, t: {"y": z.imag.abs().amax()})
    assert float(run.records["y"].max()) < model.strip_halfwidth


# --------------------------------------------------------------------------- guards and bad input
def test_runaway_guard_unstable_drift():
    z0 = torch.linspace(0.5, 1.5, 10, dtype=torch.float64)
    with pytest.raises(RunawayError, match=r"of 10 trajectories \([0-9, ]+\) ran away at step \d+"):
        complex_langevin(lambda z: z * z, z0, 0.01, 10_000, make_generator(0), max_abs=1e4)


def test_runaway_guard_huge_step_and_adaptive_cure():
    model = QuarticModel(1.0, 1.0, 1.0)
    z0 = torch.full((8,), 10.0 + 0.1j, dtype=torch.complex128)
    with pytest.raises(RuntimeError, match=r"8 of 8 trajectories \([0-9, .]+\) ran away at step 3"):
        complex_langevin(model, z0, 0.05, 50, make_generator(0))
    with pytest.raises(NonFiniteError):
        complex_langevin(model, z0, 0.05, 50, make_generator(0))
    run = complex_langevin(model, z0, 0.05, 2000, make_generator(0), k_ref=1.0, record_every=100)
    assert bool(torch.isfinite(torch.view_as_real(run.z)).all())
    assert float(run.z.abs().max()) < 5
    assert float(run.eps.min()) < 0.05 and float(run.time.min()) < 2000 * 0.05


def test_nonfinite_drift_is_reported():
    z0 = torch.zeros(4, dtype=torch.complex128)
    with pytest.raises(RunawayError, match="non-finite"):
        complex_langevin(lambda z: z + float("nan"), z0, 0.01, 5, make_generator(0))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: GaussianModel(0.0, 1.0), "A"),
        (lambda: GaussianModel(-1.0, 1.0), "A"),
        (lambda: GaussianModel(1.0, float("nan")), "B"),
        (lambda: QuarticModel(1.0, 1.0, 0.0), "lam"),
        (lambda: QuarticModel(-2.0, 1.0, 1.0), "A"),
        (lambda: QuarticModel(1.0, "x", 1.0), "B"),
    ],
)
def test_model_validation(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_run_validation():
    model = GaussianModel()
    z0 = torch.zeros(3, dtype=torch.complex128)
    g = make_generator(0)
    with pytest.raises(ValueError, match="eps"):
        complex_langevin(model, z0, -0.1, 5, g)
    with pytest.raises(ValueError, match="record_every"):
        complex_langevin(model, z0, 0.1, 5, g, record_every=0)
    with pytest.raises(ValueError, match="imag_noise"):
        complex_langevin(model, z0, 0.1, 5, g, imag_noise=-1.0)
    with pytest.raises(ValueError, match="z0"):
        complex_langevin(model, torch.tensor(1.0), 0.1, 5, g)
    with pytest.raises(ValueError, match="z0"):
        complex_langevin(model, torch.tensor([float("nan")]), 0.1, 5, g)
    with pytest.raises(ValueError, match="n_chains"):
        sample_xy(model, 0, 10, 0.1, g)
    with pytest.raises(ValueError, match="imag_noise"):
        model.stationary_coefficients(-0.5)
    with pytest.raises(ValueError, match="B = 0"):
        GaussianModel(1.0, 0.0).stationary_coefficients()
    with pytest.raises(ValueError, match="eps"):
        model.euler_moments(5.0)


def test_warns_when_cl_not_expected_correct():
    with pytest.warns(RuntimeWarning, match="not expected"):
        sample_xy(QuarticModel(1.0, 2.0, 1.0), 4, 2, 1e-3, make_generator(0), n_therm=2, record_every=1)


def test_complex_noise_gaussian_still_correct():
    # N_x - N_y = 1 keeps <z^2> (the Euler chain moments do not depend on N_y)
    model = GaussianModel(1.0, 1.0)
    samples = sample_xy(model, 1000, 200, 0.01, make_generator(2), record_every=20, n_therm=500, imag_noise=0.5)
    mean, err = stats.mean_error((samples.complex() ** 2).numpy(), layout="draws, chains")
    d = model.euler_moments(0.01, 2)[2]
    assert abs(mean.real - d.real) < N_SIGMA * err.real and abs(mean.imag - d.imag) < N_SIGMA * err.imag
    C = model.stationary_covariance(0.5)
    var_y, err_y = stats.mean_error(samples.xy.numpy()[..., 1] ** 2, layout="draws, chains")
    assert abs(var_y - C[1, 1]) < N_SIGMA * err_y + 0.02 * C[1, 1]


def test_cached_sample_xy_stores_and_reuses(tmp_path, monkeypatch):
    from lib.infra.cache import ArtefactCache

    store = ArtefactCache(tmp_path)
    model = GaussianModel(1.0, 1.0)
    kwargs = dict(record_every=5, n_therm=200, cache=store)
    first = cached_sample_xy(model, 64, 30, 0.01, seed=3, **kwargs)
    assert first["xy"].dtype == torch.float32 and tuple(first["xy"].shape) == (30, 64, 2)
    assert tuple(first["eps"].shape) == (30, 64) and first["z_final"].is_complex()
    assert first["params"]["n_therm"] == 200 and first["params"]["model"]["__class__"] == "GaussianModel"
    # the same run, made directly, gives the same samples (rounded to float32)
    direct = sample_xy(model, 64, 30, 0.01, make_generator(3), record_every=5, n_therm=200)
    assert torch.equal(first["xy"], direct.xy.to(torch.float32))
    # a second call loads the artefact instead of recomputing; any changed parameter is a new artefact
    def boom(*args, **kw):
        raise AssertionError("recomputed a cached run")

    monkeypatch.setattr("lib.physics.complex_langevin.sample_xy", boom)
    again = cached_sample_xy(model, 64, 30, 0.01, seed=3, **kwargs)
    assert torch.equal(again["xy"], first["xy"])
    with pytest.raises(AssertionError, match="recomputed"):
        cached_sample_xy(model, 64, 30, 0.01, seed=4, **kwargs)
    with pytest.raises(AssertionError, match="recomputed"):
        cached_sample_xy(QuarticModel(1.0, 1.0, 1.0), 64, 30, 0.01, seed=3, **kwargs)
    with pytest.raises(ValueError, match="seed"):
        cached_sample_xy(model, 64, 30, 0.01, seed=1.5, **kwargs)


def test_xy_to_complex():
    xy = torch.tensor([[[1.0, 2.0], [3.0, -4.0]]], dtype=torch.float32)
    z = xy_to_complex(xy)
    assert z.dtype == torch.complex128 and z.shape == (1, 2)
    assert z.tolist() == [[1 + 2j, 3 - 4j]]
    with pytest.raises(ValueError, match="last axis of length 2"):
        xy_to_complex(torch.zeros(3, 3))


def test_step_sizes_and_couplings_are_validated():
    z = torch.zeros(4, dtype=torch.complex128)
    K = -z
    with pytest.raises(ValueError, match="eps must be > 0"):
        cl_step(z, K, -1.0)
    with pytest.raises(ValueError, match="eps must be finite and > 0 for every trajectory"):
        cl_step(z, K, torch.tensor([0.1, -0.1, 0.1, 0.1], dtype=torch.float64))
    with pytest.raises(ValueError, match="k_ref must be > 0"):
        adaptive_step(K, 0.01, k_ref=-1.0)
    with pytest.raises(ValueError, match="eps_max must be > 0"):
        adaptive_step(K, 0.0)


def test_complex_langevin_warns_when_cl_is_not_expected_to_be_correct():
    bad = QuarticModel(A=1.0, B=4.0, lam=1.0)
    with pytest.warns(RuntimeWarning, match="not expected to converge"):
        complex_langevin(bad, torch.zeros(4, dtype=torch.complex128), 1e-3, 2, make_generator(0), k_ref=10.0)
