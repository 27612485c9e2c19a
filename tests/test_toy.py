"""Tests of lib.physics.toy: exact moments, cumulants, density and score of Gaussian mixtures; the quartic oscillator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from lib import stats
from lib.physics import toy
from lib.physics.toy import GaussianMixture, QuarticOscillator

N_SIGMA = 5.0


class VEStandIn:
    """Minimal VE schedule: f = 1, Xi(t) = (sigma^(2t) - 1) / (2 ln sigma)."""

    def __init__(self, sigma=10.0):
        self.sigma = sigma

    def f(self, t, s=0.0):
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def xi(self, t, s=0.0):
        t = torch.as_tensor(t, dtype=torch.float64)
        return (self.sigma ** (2 * t) - 1) / (2 * math.log(self.sigma))


def _schedules():
    out = [pytest.param(VEStandIn(), id="ve-standin")]
    try:
        from lib.diffusion import sde
    except ImportError:  # lib/sde.py is written by another helper
        return out
    return out + [pytest.param(sde.ve(), id="ve"), pytest.param(sde.vp(), id="vp"),
                  pytest.param(sde.interpolating(0.5), id="c=0.5")]


SCHEDULES = _schedules()
TWO_PEAK = np.array([0.0, 0.0, 1.0625, 0.0, -2.0, 0.0, 16.0, 0.0, -272.0])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(means=(0.0, 1.0), stds=(1.0,), weights=(0.5, 0.5)), "equal lengths"),
        (dict(means=(0.0,), stds=(-1.0,), weights=(1.0,)), "stds"),
        (dict(means=(0.0,), stds=(0.0,), weights=(1.0,)), "stds"),
        (dict(means=(0.0, 1.0), stds=(1.0, 1.0), weights=(0.7, 0.7)), "sum to 1"),
        (dict(means=(0.0, 1.0), stds=(1.0, 1.0), weights=(1.5, -0.5)), "weights"),
        (dict(means=(), stds=(), weights=()), "at least one"),
        (dict(means=(float("nan"),), stds=(1.0,), weights=(1.0,)), "finite"),
    ],
)
def test_mixture_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_mixture_constructors():
    gm = GaussianMixture(means=[1, -1], stds=[0.25, 0.25], weights=[0.5, 0.5])
    assert gm == GaussianMixture.two_peak() and isinstance(gm.means, tuple)
    assert GaussianMixture.gaussian(2.0).stds == (2.0,)
    with pytest.raises(ValueError, match="s0"):
        GaussianMixture.two_peak(s0=0.0)
    with pytest.raises(ValueError, match="n_max"):
        gm.moments(0)


# --------------------------------------------------------------------------- exact moments and cumulants
def test_two_peak_cumulants_paper_values():
    np.testing.assert_allclose(GaussianMixture.two_peak().cumulants(8), TWO_PEAK, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mu0, s0", [(1.0, 0.25), (1.3, 0.4), (0.5, 1.0)])
def test_two_peak_cumulants_log_cosh(mu0, s0):
    """kappa_2 = mu0^2 + s0^2; higher cumulants are the derivatives of log cosh(mu0 k)."""
    kap = GaussianMixture.two_peak(mu0, s0).cumulants(10)
    expected = np.array([0, 0, mu0**2 + s0**2, 0, -2 * mu0**4, 0, 16 * mu0**6, 0, -272 * mu0**8, 0, 7936 * mu0**10])
    np.testing.assert_allclose(kap, expected, rtol=1e-9, atol=1e-9 * max(1.0, mu0**10))


def test_gaussian_moments_and_cumulants():
    s0 = 0.7
    mom = GaussianMixture.gaussian(s0).moments(10)
    double_factorial = [1, 0, 1, 0, 3, 0, 15, 0, 105, 0, 945]
    np.testing.assert_allclose(mom, [d * s0**k for k, d in enumerate(double_factorial)], rtol=1e-14)
    kap = GaussianMixture.gaussian(s0, mu=0.3).cumulants(8)
    np.testing.assert_allclose(kap[:3], [0, 0.3, s0**2], rtol=1e-12)
    np.testing.assert_allclose(kap[3:], 0.0, atol=1e-12)


def test_asymmetric_mixture_moments_by_quadrature():
    gm = GaussianMixture(means=(-1.0, 0.5, 2.0), stds=(0.3, 0.8, 0.5), weights=(0.2, 0.5, 0.3))
    dens = lambda x: float(gm.density(torch.tensor([x], dtype=torch.float64)))  # noqa: E731
    quad = [integrate.quad(lambda x: x**n * dens(x), -np.inf, np.inf, epsabs=1e-13, limit=200)[0] for n in range(9)]
    np.testing.assert_allclose(gm.moments(8), quad, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- sampling
def test_sample_shapes_and_reproducibility():
    gm = GaussianMixture.two_peak()
    a = gm.sample((4, 3, 3), torch.Generator().manual_seed(0))
    b = gm.sample((4, 3, 3), torch.Generator().manual_seed(0))
    assert a.shape == (4, 3, 3) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert gm.sample(5, torch.Generator().manual_seed(1), dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize(
    "gm",
    [GaussianMixture.two_peak(), GaussianMixture(means=(-1.0, 0.5, 2.0), stds=(0.3, 0.8, 0.5), weights=(0.2, 0.5, 0.3))],
    ids=["two-peak", "three-component"],
)
def test_sample_cumulants_match_exact(gm):
    x = gm.sample((200_000,), torch.Generator().manual_seed(2))
    est, err = stats.bootstrap_cumulants(x, n_max=6, generator=np.random.default_rng(3))
    exact = gm.cumulants(6)
    for n in range(1, 7):
        assert abs(est[n] - exact[n]) <= N_SIGMA * err[n], (n, est[n], err[n], exact[n])


# --------------------------------------------------------------------------- forward process
@pytest.mark.parametrize("sde", SCHEDULES)
def test_at_follows_cumulant_evolution(sde):
    """kappa_n(t) = kappa_n(0) f^n for n > 2 and kappa_2(t) = kappa_2(0) f^2 + Xi(t)."""
    gm = GaussianMixture.two_peak()
    for t in (0.0, 0.3, 0.7, 1.0):
        f, xi = float(sde.f(t)), float(sde.xi(t))
        kap = gm.at(sde, t).cumulants(8)
        expected = TWO_PEAK * f ** np.arange(9)
        expected[2] = TWO_PEAK[2] * f**2 + xi
        np.testing.assert_allclose(kap, expected, rtol=1e-9, atol=1e-9)
    assert gm.at(sde, 0.0) == gm
    with pytest.raises(ValueError, match="single time"):
        gm.at(sde, torch.tensor([0.1, 0.2]))


@pytest.mark.parametrize("sde", SCHEDULES)
def test_density_normalised(sde):
    gm = GaussianMixture(means=(-1.0, 0.5, 2.0), stds=(0.3, 0.8, 0.5), weights=(0.2, 0.5, 0.3))
    for t in (0.0, 0.05, 0.5, 1.0):
        dens = lambda x: float(gm.density(torch.tensor([x], dtype=torch.float64), sde, t))  # noqa: E731
        total = integrate.quad(dens, -np.inf, np.inf, epsabs=1e-12, limit=200)[0]
        assert total == pytest.approx(1.0, abs=1e-8), t
        # the mixture at time t has the same density
        x = torch.linspace(-4, 4, 17, dtype=torch.float64)
        torch.testing.assert_close(gm.log_density(x, sde, t), gm.at(sde, t).log_density(x))


def test_density_without_sde_only_at_zero():
    gm = GaussianMixture.two_peak()
    x = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(gm.log_density(x), gm.log_density(x, None, 0.0))
    with pytest.raises(ValueError, match="sde"):
        gm.log_density(x, None, 0.5)


@pytest.mark.parametrize("sde", SCHEDULES)
def test_score_is_gradient_of_log_density(sde):
    gm = GaussianMixture(means=(-1.0, 0.5, 2.0), stds=(0.3, 0.8, 0.5), weights=(0.2, 0.5, 0.3))
    x = torch.linspace(-5, 5, 41, dtype=torch.float64).requires_grad_(True)
    t = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    (grad,) = torch.autograd.grad(gm.log_density(x, sde, t).sum(), x)
    torch.testing.assert_close(gm.score(x.detach(), t, sde), grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sde", SCHEDULES)
def test_two_peak_score_equals_eq26(sde):
    gm = GaussianMixture.two_peak()
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    for t in (0.0, 0.01, 0.4, 1.0):
        mu = float(sde.f(t))
        var = 0.25**2 * mu**2 + float(sde.xi(t))
        exact = -x / var + mu / var * torch.tanh(mu * x / var)
        torch.testing.assert_close(gm.score(x, t, sde), exact, rtol=1e-10, atol=1e-10)


def test_score_stable_in_the_tails():
    gm = GaussianMixture.two_peak()
    x = torch.tensor([-200.0, -40.0, 40.0, 200.0], dtype=torch.float64)
    s = gm.score(x, 0.0, VEStandIn())
    assert bool(torch.isfinite(s).all())
    torch.testing.assert_close(s, -(x - torch.sign(x)) / 0.0625)  # the nearer peak dominates
    assert bool(torch.isfinite(gm.log_density(x)).all())


@pytest.mark.parametrize("shape", [(6,), (6, 2), (6, 3, 3)])
@pytest.mark.parametrize("per_sample_t", [False, True])
def test_score_shapes(shape, per_sample_t):
    sde = SCHEDULES[-1].values[0]
    gm = GaussianMixture.two_peak()
    x = gm.sample(shape, torch.Generator().manual_seed(4), dtype=torch.float32)
    t = torch.linspace(0.1, 0.9, shape[0], dtype=torch.float32) if per_sample_t else 0.3
    s = gm.score(x, t, sde)
    assert s.shape == x.shape and s.dtype == torch.float32
    # each sample agrees with a scalar-time evaluation
    for b in range(shape[0]):
        tb = float(t[b]) if per_sample_t else t
        torch.testing.assert_close(s[b], gm.score(x[b : b + 1], tb, sde)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gm.score_fn(sde)(x, t), s)
    assert gm.log_density(x, sde, t).shape == x.shape
    with pytest.raises(ValueError, match="shape"):
        gm.score(x, torch.full((shape[0] + 1,), 0.3), sde)


def test_forward_samples_match_at():
    """Noising samples of p0 with the exact kernel gives samples of at(sde, t)."""
    sde = SCHEDULES[-1].values[0]
    gm = GaussianMixture.two_peak()
    gen = torch.Generator().manual_seed(5)
    x0 = gm.sample((200_000,), gen)
    t = 0.3
    xt = x0 * float(sde.f(t)) + math.sqrt(float(sde.xi(t))) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    est, err = stats.bootstrap_cumulants(xt, n_max=6, generator=np.random.default_rng(6))
    exact = gm.at(sde, t).cumulants(6)
    for n in range(1, 7):
        assert abs(est[n] - exact[n]) <= N_SIGMA * err[n], (n, est[n], err[n], exact[n])


# --------------------------------------------------------------------------- quartic oscillator
def test_quartic_validation():
    with pytest.raises(ValueError, match="lam"):
        QuarticOscillator(lam=-1.0)
    with pytest.raises(ValueError, match="m2"):
        QuarticOscillator(m2=-1.0, lam=0.0)
    QuarticOscillator(m2=-1.0, lam=1.0)  # double well is fine


def test_quartic_force_is_minus_gradient():
    q = QuarticOscillator(m2=-0.7, lam=1.3)
    x = torch.linspace(-3, 3, 31, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(q.action(x).sum(), x)
    torch.testing.assert_close(q.force(x.detach()), -grad)
    assert q.force(np.array([1.0])) == pytest.approx(0.7 - 1.3)


def test_quartic_exact_moments():
    # pure quartic: <x^n> = 4^(n/4) Gamma((n+1)/4) / Gamma(1/4)
    mom = QuarticOscillator(m2=0.0, lam=1.0).exact_moments(8)
    expected = [4 ** (n / 4) * math.gamma((n + 1) / 4) / math.gamma(0.25) if n % 2 == 0 else 0.0 for n in range(9)]
    np.testing.assert_allclose(mom, expected, rtol=1e-9, atol=1e-12)
    # Gaussian limit: <x^2> = 1/m2, cumulants beyond 2 vanish
    kap = QuarticOscillator(m2=2.0, lam=0.0).exact_cumulants(8)
    np.testing.assert_allclose(kap[2], 0.5, rtol=1e-9)
    np.testing.assert_allclose(kap[3:], 0.0, atol=1e-9)
    # m2 = lam = 1 and a deep double well against a plain Riemann sum
    for m2, lam in [(1.0, 1.0), (-4.0, 0.5)]:
        q = QuarticOscillator(m2=m2, lam=lam)
        x = np.linspace(-12, 12, 200_001)
        w = np.exp(-(q.action(x) - q.action(x).min()))
        riemann = [np.sum(x**n * w) / np.sum(w) for n in range(9)]
        np.testing.assert_allclose(q.exact_moments(8), riemann, rtol=1e-8, atol=1e-10)


def test_gaussian_moments_helper():
    np.testing.assert_allclose(toy.gaussian_moments(1.0, 0.0001, 4), [1, 1, 1 + 1e-8, 1 + 3e-8, 1 + 6e-8], rtol=1e-12)
