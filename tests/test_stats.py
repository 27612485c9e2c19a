"""Tests of lib.stats: moments, cumulants, bootstrap errors, integrated autocorrelation time."""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from lib import stats
from lib.core.checks import NonFiniteError

N_SIGMA = 5.0  # statistical tolerance of the sampling tests


# --------------------------------------------------------------------------- helpers
def gamma_cumulants(k, theta, n_max):
    """Exact cumulants of the gamma distribution: kappa_n = k (n-1)! theta^n."""
    return np.array([0.0] + [k * math.factorial(n - 1) * theta**n for n in range(1, n_max + 1)])


def gamma_moments(k, theta, n_max):
    """Exact raw moments: theta^n Gamma(k + n) / Gamma(k)."""
    return np.array([theta**n * math.gamma(k + n) / math.gamma(k) for n in range(n_max + 1)])


def gaussian_moments(m, s, n_max):
    z = [1.0 if k % 2 == 0 else 0.0 for k in range(n_max + 1)]
    for k in range(2, n_max + 1, 2):
        z[k] = z[k - 2] * (k - 1)
    return np.array(
        [sum(math.comb(n, k) * m ** (n - k) * s**k * z[k] for k in range(n + 1)) for n in range(n_max + 1)]
    )


TWO_PEAK = np.array([0.0, 0.0, 1.0625, 0.0, -2.0, 0.0, 16.0, 0.0, -272.0])  # mu0 = 1, s0 = 0.25
UNIFORM = np.array([0.0, 0.5, 1 / 12, 0.0, -1 / 120, 0.0, 1 / 252, 0.0, -1 / 240])  # U(0, 1): B_n / n


def two_peak_samples(rng, n, mu0=1.0, s0=0.25):
    return rng.choice([-mu0, mu0], size=n) + s0 * rng.normal(size=n)


def ar1(rng, a, n, chains=None):
    """Stationary AR(1) x_{n+1} = a x_n + sqrt(1 - a^2) z_n with unit variance."""
    shape = (n,) if chains is None else (n, chains)
    z = rng.normal(size=shape)
    x0 = rng.normal(size=shape[1:])
    return lfilter([math.sqrt(1 - a * a)], [1.0, -a], z, axis=0, zi=(a * np.asarray(x0))[None])[0]


def assert_within(est, err, exact, orders, n_sigma=N_SIGMA):
    for n in orders:
        assert err[n] > 0, f"order {n}: zero error"
        assert abs(est[n] - exact[n]) <= n_sigma * err[n], (
            f"order {n}: estimate {est[n]:.6g} +- {err[n]:.2g} vs exact {exact[n]:.6g} "
            f"({(est[n] - exact[n]) / err[n]:.1f} sigma)"
        )


# --------------------------------------------------------------------------- moments
def test_moments_of_small_arrays_exact():
    x = np.array([1.0, 2.0, 3.0, -1.0])
    mu = stats.moments(x, n_max=4)
    assert mu.shape == (5,)
    np.testing.assert_allclose(mu, [1.0, 5 / 4, 15 / 4, 35 / 4, 99 / 4])
    # per-component moments along axis 0, torch input, any trailing shape
    xt = torch.tensor([[1.0, 2.0], [3.0, -2.0]])
    mu0 = stats.moments(xt, n_max=3, axis=0)
    assert mu0.shape == (4, 2)
    np.testing.assert_allclose(mu0[:, 0], [1.0, 2.0, 5.0, 14.0])
    np.testing.assert_allclose(mu0[:, 1], [1.0, 0.0, 4.0, 0.0])
    # complex: <z^n>, not <|z|^n>
    z = np.array([1j, -1j, 1 + 0j, -1 + 0j])
    np.testing.assert_allclose(stats.moments(z, n_max=4), [1, 0, 0, 0, 1])
    assert stats.moments(torch.tensor([1j, 1j]), n_max=2)[2] == -1


def test_moments_any_order():
    x = np.array([2.0, -2.0])
    mu = stats.moments(x, n_max=12)
    np.testing.assert_allclose(mu[::2], 2.0 ** np.arange(0, 13, 2))
    np.testing.assert_allclose(mu[1::2], 0.0)


# --------------------------------------------------------------------------- exact recursion
def test_cumulants_from_exact_moments():
    # Gaussian: only kappa_1 and kappa_2
    kap = stats.cumulants_from_moments(gaussian_moments(0.7, 1.3, 10))
    np.testing.assert_allclose(kap[:3], [0.0, 0.7, 1.69], rtol=1e-12)
    np.testing.assert_allclose(kap[3:], 0.0, atol=1e-10)
    # gamma and exponential: kappa_n = k (n-1)! theta^n
    for k, theta in [(1.0, 1.0), (3.0, 0.5), (0.5, 2.0)]:
        np.testing.assert_allclose(
            stats.cumulants_from_moments(gamma_moments(k, theta, 12)), gamma_cumulants(k, theta, 12), rtol=1e-9
        )
    # two-peak mixture (mu0 = 1, s0 = 0.25): the paper's exact row
    mu = 0.5 * (gaussian_moments(1.0, 0.25, 8) + gaussian_moments(-1.0, 0.25, 8))
    np.testing.assert_allclose(stats.cumulants_from_moments(mu), TWO_PEAK, rtol=1e-12, atol=1e-12)
    # uniform on (0, 1): moments 1/(n+1), cumulants B_n / n
    np.testing.assert_allclose(
        stats.cumulants_from_moments(1.0 / np.arange(1, 10)), UNIFORM, rtol=1e-10, atol=1e-13
    )


def test_cumulants_from_moments_along_axis0():
    mus = np.stack([gamma_moments(k, 1.0, 6) for k in (1.0, 2.0, 5.0)], axis=1)  # (7, 3)
    kap = stats.cumulants_from_moments(mus)
    assert kap.shape == (7, 3)
    for j, k in enumerate((1.0, 2.0, 5.0)):
        np.testing.assert_allclose(kap[:, j], gamma_cumulants(k, 1.0, 6), rtol=1e-10)


def test_cumulants_shift_invariant_and_consistent():
    rng = np.random.default_rng(1)
    x = two_peak_samples(rng, 10_000)
    kap = stats.cumulants(x)
    # on well-scaled data the raw-moment route agrees
    np.testing.assert_allclose(kap, stats.cumulants_from_moments(stats.moments(x)), rtol=1e-8, atol=1e-10)
    # higher cumulants do not depend on a shift (the central-moment route stays accurate)
    shifted = stats.cumulants(x + 1.0e3)
    np.testing.assert_allclose(shifted[2:], kap[2:], rtol=1e-7, atol=1e-7)
    assert shifted[1] == pytest.approx(kap[1] + 1.0e3, rel=1e-12)
    # per-component cumulants and torch input with any configuration shape
    xt = torch.from_numpy(x.reshape(100, 10, 10))
    np.testing.assert_allclose(stats.cumulants(xt), kap, rtol=1e-10, atol=1e-12)
    per = stats.cumulants(xt.reshape(100, 100), axis=0)
    assert per.shape == (9, 100)
    np.testing.assert_allclose(per[:, 7], stats.cumulants(x.reshape(100, 100)[:, 7]), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- sampled cumulants against exact values
def test_sampled_cumulants_real_distributions():
    rng = np.random.default_rng(2)
    n = 200_000
    gauss = np.zeros(9)
    gauss[1], gauss[2] = 0.3, 2.25
    est, err = stats.bootstrap_cumulants(0.3 + 1.5 * rng.normal(size=n), generator=rng)
    assert_within(est, err, gauss, range(1, 9))
    # gamma: low orders only (the bootstrap of high cumulants of a skewed, long-tailed law is not Gaussian)
    est, err = stats.bootstrap_cumulants(rng.gamma(3.0, 0.5, size=n), n_max=4, generator=rng)
    assert_within(est, err, gamma_cumulants(3.0, 0.5, 4), range(1, 5))
    est, err = stats.bootstrap_cumulants(two_peak_samples(rng, n), generator=rng)
    assert_within(est, err, TWO_PEAK, range(1, 9))
    est, err = stats.bootstrap_cumulants(rng.uniform(size=n), generator=rng)
    assert_within(est, err, UNIFORM, range(1, 9))
    # the test can fail: a wrong reference (kappa_4 = -1.9) is excluded
    wrong = TWO_PEAK.copy()
    wrong[4] = -1.9
    est, err = stats.bootstrap_cumulants(two_peak_samples(rng, n), generator=rng)
    assert abs(est[4] - wrong[4]) > N_SIGMA * err[4]


def test_sampled_cumulants_complex():
    """z = x + i y with independent parts: kappa_n(z) = kappa_n(x) + i^n kappa_n(y)."""
    rng = np.random.default_rng(3)
    n = 200_000
    x = 0.2 + 0.8 * rng.normal(size=n)
    y = two_peak_samples(rng, n)
    exact_x = np.zeros(9)
    exact_x[1], exact_x[2] = 0.2, 0.64
    exact = exact_x + (1j ** np.arange(9)) * TWO_PEAK
    z = torch.from_numpy(x + 1j * y)
    est, err = stats.bootstrap_cumulants(z, generator=rng)
    assert np.iscomplexobj(est) and np.iscomplexobj(err)
    np.testing.assert_allclose(est, stats.cumulants(z), rtol=1e-10, atol=1e-12)
    assert_within(est.real, err.real, exact.real, range(1, 9))
    assert_within(est.imag, err.imag, exact.imag, [1, 2, 4, 6, 8])  # odd imaginary parts vanish (exact: 0)
    for k in (3, 5, 7):
        assert abs(est.imag[k]) <= N_SIGMA * err.imag[k]


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_reproducible_and_seeded():
    data = np.random.default_rng(4).normal(size=2000)
    a = stats.bootstrap(data, np.mean, n_boot=200, generator=np.random.default_rng(7))
    b = stats.bootstrap(data, np.mean, n_boot=200, generator=np.random.default_rng(7))
    c = stats.bootstrap(data, np.mean, n_boot=200, generator=np.random.default_rng(8))
    assert a[0] == b[0] and a[1] == b[1]
    assert a[1] != c[1]
    fa = stats.bootstrap_cumulants(data, generator=np.random.default_rng(7), n_boot=100)
    fb = stats.bootstrap_cumulants(data, generator=np.random.default_rng(7), n_boot=100)
    np.testing.assert_array_equal(fa[1], fb[1])


def test_bootstrap_error_of_mean_iid():
    n = 10_000
    data = np.random.default_rng(5).normal(size=n)
    est, err = stats.bootstrap(data, np.mean, n_boot=1000, generator=np.random.default_rng(6))
    assert est == pytest.approx(data.mean())
    assert err == pytest.approx(1 / math.sqrt(n), rel=0.10)
    # torch data: the statistic sees a tensor
    est_t, err_t = stats.bootstrap(torch.from_numpy(data), torch.mean, n_boot=1000, generator=np.random.default_rng(6))
    assert float(est_t) == pytest.approx(data.mean())
    assert float(err_t) == pytest.approx(float(err), rel=1e-12)


def test_block_bootstrap_autocorrelated():
    """Blocks >> tau_int give the error sqrt(2 tau_int / N) of the mean of AR(1) data (a = 0.9, tau = 9.5)."""
    n = 100_000
    x = ar1(np.random.default_rng(9), 0.9, n)
    exact = math.sqrt(2 * 9.5 / n)
    _, err_blocks = stats.bootstrap(x, np.mean, n_boot=1000, generator=np.random.default_rng(10), n_blocks=100)
    _, err_naive = stats.bootstrap(x, np.mean, n_boot=300, generator=np.random.default_rng(10))
    assert err_blocks == pytest.approx(exact, rel=0.25)
    assert err_naive < 0.5 * exact  # ignoring the autocorrelation underestimates the error


def test_bootstrap_cumulants_fast_path_matches_generic():
    rng = np.random.default_rng(11)
    x = two_peak_samples(rng, 20_000)
    est, err = stats.bootstrap_cumulants(x, n_boot=1500, generator=np.random.default_rng(12), n_blocks=200)
    gen_est, gen_err = stats.bootstrap(
        x, stats.cumulants, n_boot=1500, generator=np.random.default_rng(13), n_blocks=200
    )
    np.testing.assert_allclose(est, gen_est, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(err[1:], gen_err[1:], rtol=0.15)
    # moments
    mom, mom_err = stats.bootstrap_cumulants(x, n_boot=1500, generator=np.random.default_rng(12), n_blocks=200,
                                             kind="moments")
    gen_mom, gen_mom_err = stats.bootstrap(
        x, stats.moments, n_boot=1500, generator=np.random.default_rng(13), n_blocks=200
    )
    np.testing.assert_allclose(mom, gen_mom, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mom_err[1:], gen_mom_err[1:], rtol=0.15)


def test_bootstrap_cumulants_error_matches_replica_spread():
    """The bootstrap error is the spread of the estimate over independent data sets (within 30%)."""
    estimates, errors = [], []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        est, err = stats.bootstrap_cumulants(two_peak_samples(rng, 20_000), n_boot=300, generator=rng)
        estimates.append(est)
        errors.append(err)
    spread = np.std(estimates, axis=0, ddof=1)
    np.testing.assert_allclose(np.mean(errors, axis=0)[1:], spread[1:], rtol=0.30)


def test_bootstrap_cumulants_lattice_shape_pools_sites():
    rng = np.random.default_rng(14)
    x = torch.from_numpy(rng.normal(size=(500, 4, 4)))
    est, err = stats.bootstrap_cumulants(x, n_max=4, generator=rng, n_blocks=50)
    np.testing.assert_allclose(est, stats.cumulants(x.reshape(-1), n_max=4), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.bootstrap_cumulants(x, n_max=4, generator=rng, kind="moments")[0],
                               stats.moments(x, n_max=4), rtol=1e-10, atol=1e-12)
    assert err.shape == (5,)


def test_bootstrap_cumulants_fast_for_a_million_samples():
    rng = np.random.default_rng(15)
    x = rng.normal(size=1_000_000)
    z = x + 1j * rng.normal(size=x.size)
    stats.bootstrap_cumulants(x[:1000], generator=rng)  # warm-up
    start = time.perf_counter()
    stats.bootstrap_cumulants(x, generator=rng)
    real_time = time.perf_counter() - start
    start = time.perf_counter()
    stats.bootstrap_cumulants(z, generator=rng)
    complex_time = time.perf_counter() - start
    assert real_time < 1.0, f"real path took {real_time:.2f} s"
    assert complex_time < 1.5, f"complex path took {complex_time:.2f} s"


# --------------------------------------------------------------------------- autocorrelation
@pytest.mark.parametrize("a, n", [(0.9, 200_000), (0.5, 100_000)])
def test_tau_int_ar1(a, n):
    exact = 0.5 * (1 + a) / (1 - a)
    res = stats.tau_int(ar1(np.random.default_rng(16), a, n))
    assert res.n == n and res.window >= 1
    assert abs(res.tau - exact) <= 4 * res.tau_error, res
    assert res.tau_error == pytest.approx(exact * 2 * math.sqrt((res.window + 0.5 - exact) / n), rel=0.1)


def test_tau_int_multiple_chains():
    x = ar1(np.random.default_rng(17), 0.9, 20_000, chains=10)
    res = stats.tau_int(x)
    assert res.n == 200_000
    assert abs(res.tau - 9.5) <= 4 * res.tau_error, res
    # treating the chains as one long series along axis 0 would be wrong; the result differs from a
    # single chain only by statistics: compare with the chain-0 estimate
    single = stats.tau_int(x[:, 0])
    assert abs(single.tau - 9.5) <= 4 * single.tau_error


def test_tau_int_error_matches_spread():
    taus, errs = [], []
    for seed in range(30):
        res = stats.tau_int(ar1(np.random.default_rng(200 + seed), 0.9, 50_000))
        taus.append(res.tau)
        errs.append(res.tau_error)
    assert np.mean(errs) == pytest.approx(np.std(taus, ddof=1), rel=0.5)
    assert abs(np.mean(taus) - 9.5) <= 4 * np.std(taus, ddof=1) / math.sqrt(len(taus))


def test_tau_int_iid_and_constant():
    res = stats.tau_int(np.random.default_rng(18).normal(size=100_000))
    assert abs(res.tau - 0.5) <= 4 * res.tau_error + 1e-12
    assert res.window <= 3
    const = stats.tau_int(np.full(100, 2.0))
    assert const.tau == 0.5 and const.tau_error == 0.0
    assert stats.mean_error(np.full(100, 2.0)) == (2.0, 0.0)


def test_mean_error_ar1():
    n = 100_000
    mean, err = stats.mean_error(ar1(np.random.default_rng(20), 0.9, n))
    assert err == pytest.approx(math.sqrt(2 * 9.5 / n), rel=0.15)
    assert abs(mean) <= 4 * err
    # matches the spread of means over independent chains
    means, errs = [], []
    for seed in range(50):
        m, e = stats.mean_error(ar1(np.random.default_rng(300 + seed), 0.9, 10_000))
        means.append(m)
        errs.append(e)
    assert np.mean(errs) == pytest.approx(np.std(means, ddof=1), rel=0.30)
    # iid data: the naive error
    x = np.random.default_rng(21).normal(size=n)
    assert stats.mean_error(x)[1] == pytest.approx(x.std() / math.sqrt(n), rel=0.05)


def test_mean_error_complex_and_chains():
    rng = np.random.default_rng(22)
    re, im = ar1(rng, 0.9, 20_000, chains=5), ar1(rng, 0.5, 20_000, chains=5)
    mean, err = stats.mean_error(torch.from_numpy(re + 1j * im))
    assert isinstance(mean, complex) and isinstance(err, complex)
    assert err.real == pytest.approx(stats.mean_error(re)[1], rel=1e-12)
    assert err.imag == pytest.approx(stats.mean_error(im)[1], rel=1e-12)
    assert err.real == pytest.approx(math.sqrt(19 / re.size), rel=0.15)
    assert err.imag == pytest.approx(math.sqrt(3 / im.size), rel=0.15)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("func", [stats.moments, stats.cumulants])
def test_bad_input(func):
    with pytest.raises(ValueError, match="empty"):
        func(np.array([]))
    with pytest.raises(NonFiniteError, match="non-finite"):
        func(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        func(torch.tensor([1.0, float("inf")]))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_max"):
            func(np.ones(3), n_max=bad)
    with pytest.raises(ValueError, match="axis"):
        func(np.ones((3, 2)), axis=2)


def test_bad_input_bootstrap_and_tau():
    x = np.random.default_rng(23).normal(size=100)
    with pytest.raises(ValueError, match="Generator"):
        stats.bootstrap(x, np.mean)
    with pytest.raises(ValueError, match="Generator"):
        stats.bootstrap_cumulants(x, generator=np.random.RandomState(0))
    with pytest.raises(ValueError, match="kind"):
        stats.bootstrap_cumulants(x, generator=np.random.default_rng(0), kind="raw")
    with pytest.raises(ValueError, match="n_blocks"):
        stats.bootstrap(x, np.mean, generator=np.random.default_rng(0), n_blocks=1000)
    with pytest.raises(ValueError, match="empty"):
        stats.bootstrap_cumulants(np.array([]), generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-finite"):
        stats.bootstrap(np.array([1.0, np.inf, 2.0]), np.mean, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        stats.tau_int(np.array([]))
    with pytest.raises(ValueError, match="non-finite"):
        stats.tau_int(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="real"):
        stats.tau_int(x + 1j)
    with pytest.raises(ValueError, match="shape"):
        stats.tau_int(np.ones((4, 2, 2)))
    with pytest.raises(ValueError, match="S"):
        stats.tau_int(x, S=0.0)
    with pytest.raises(ValueError, match="mu\\[0\\]"):
        stats.cumulants_from_moments([2.0, 1.0, 1.0])


# --------------------------------------------------------------------------- jackknife over batches
def test_jackknife_of_cumulants_from_batch_moments():
    """Cumulants from pooled batch moments: the estimate equals the cumulants of all samples, and the jackknife
    error agrees with the spread over independent repetitions (within 25 %, the uncertainty of a spread from
    200 repetitions plus that of the jackknife itself is ~10 %)."""
    rng = np.random.default_rng(11)
    n_batches, per_batch, n_rep = 50, 400, 200
    estimates, errors = [], []
    for _ in range(n_rep):
        x = rng.gamma(2.0, 1.0, size=(n_batches, per_batch))
        mu = np.stack([(x**n).mean(axis=1) for n in range(5)], axis=1)  # (n_batches, 5)
        est, err = stats.jackknife(mu, lambda m: stats.cumulants_from_moments(m), axis=0)
        np.testing.assert_allclose(est, stats.cumulants_from_moments(stats.moments(x, 4)), rtol=1e-10, atol=1e-12)
        estimates.append(est)
        errors.append(err)
    spread = np.std(estimates, axis=0, ddof=1)[2:]
    mean_err = np.mean(errors, axis=0)[2:]
    np.testing.assert_allclose(mean_err / spread, 1.0, atol=0.25)
    exact = gamma_cumulants(2.0, 1.0, 4)[2:]
    assert np.all(np.abs(np.mean(estimates, axis=0)[2:] - exact) <= N_SIGMA * spread / np.sqrt(n_rep))


def test_jackknife_axis_and_bad_input():
    a = np.arange(12.0).reshape(3, 4)
    est, err = stats.jackknife(a, lambda m: m.sum(), axis=1)
    assert est == pytest.approx(a.mean(axis=1).sum())
    assert err == pytest.approx(np.std(a.sum(axis=0), ddof=1) / np.sqrt(4))  # linear statistic: standard error
    with pytest.raises(ValueError):
        stats.jackknife(a[:, :1], lambda m: m.sum(), axis=1)
    with pytest.raises(ValueError):
        stats.jackknife(a, lambda m: m.sum(), axis=2)


def test_weighted_mean_consistent_and_scaled():
    # two agreeing measurements: plain inverse-variance mean, no scale factor
    wm = stats.weighted_mean([1.0, 1.2], [0.1, 0.2])
    assert wm.mean == pytest.approx((1.0 / 0.01 + 1.2 / 0.04) / (1 / 0.01 + 1 / 0.04))
    assert wm.error == pytest.approx((1 / 0.01 + 1 / 0.04) ** -0.5)
    assert wm.scale == 1.0
    # two disagreeing ones: the error grows by sqrt(chi2 / (n - 1))
    wm = stats.weighted_mean([0.0, 1.0], [0.1, 0.1])
    assert wm.mean == pytest.approx(0.5)
    assert wm.chi2 == pytest.approx(50.0)
    assert wm.error == pytest.approx(0.1 / 2**0.5 * 50**0.5)
    with pytest.raises(ValueError, match="errors"):
        stats.weighted_mean([1.0, 2.0], [0.1, 0.0])
    with pytest.raises(ValueError, match="equal length"):
        stats.weighted_mean([1.0, 2.0], [0.1])


def test_weighted_polyfit_recovers_a_line_and_its_errors():
    from lib.stats import weighted_polyfit

    x = np.array([0.0, 1.0, 2.0, 3.0])
    fit = weighted_polyfit(x, 2.0 + 0.5 * x, np.full(4, 0.1), degree=1)
    np.testing.assert_allclose(fit.coef, [2.0, 0.5], atol=1e-12)
    assert fit.chi2_dof == pytest.approx(0.0, abs=1e-20)
    # errors: (D^T D)^-1 with D = vander / sigma
    design = np.vander(x, 2, increasing=True) / 0.1
    np.testing.assert_allclose(fit.error, np.sqrt(np.diag(np.linalg.inv(design.T @ design))))
    quad = weighted_polyfit(x, 1.0 + x**2, np.ones(4), degree=2)
    np.testing.assert_allclose(quad.coef, [1.0, 0.0, 1.0], atol=1e-10)
    with pytest.raises(ValueError, match="at least 3 points"):
        weighted_polyfit(x[:2], x[:2], np.ones(2), degree=2)
    with pytest.raises(ValueError, match="errors must be finite and > 0"):
        weighted_polyfit(x, x, np.zeros(4))


def test_cumulants_from_power_sums():
    from lib.stats import cumulants_from_power_sums, cumulants

    x = np.random.default_rng(0).normal(size=1000)
    sums = np.array([[np.sum(x**n) for n in range(9)]])
    np.testing.assert_allclose(cumulants_from_power_sums(sums)[0], cumulants(x, 8), rtol=1e-9, atol=1e-9)


def _ar1_chains(n_chains, n, phi=0.9, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n_chains))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.standard_normal(n_chains)
    return x


def test_a_transposed_series_warns_and_the_chain_layout_can_be_named():
    """Before: 8 AR(0.9) chains of 200 draws given as (8, 200) gave tau_int 0.5 (instead of about 9.5) and no word."""
    x = _ar1_chains(8, 200)
    right = stats.tau_int(x)
    assert right.tau > 4
    with pytest.warns(RuntimeWarning, match=r"shape \(8, 200\).*layout=\"chains, draws\""):
        wrong = stats.tau_int(x.T)
    assert wrong.tau < 1  # read along the wrong axis, as the warning says
    named = stats.tau_int(x.T, layout="chains, draws")
    assert named.tau == pytest.approx(right.tau) and named.n == right.n
    assert stats.mean_error(x.T, layout="chains, draws") == pytest.approx(stats.mean_error(x))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*layout.*")
        stats.tau_int(x[:50, :], layout="draws, chains")
        stats.tau_int(_ar1_chains(80, 40), layout="draws, chains")  # 40 draws of 80 chains, said so: no warning
    with pytest.raises(ValueError, match="layout must be one of"):
        stats.tau_int(x, layout="rows")
