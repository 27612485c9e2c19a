"""Tests of lib.diffusion.sde: exact schedule formulas against quadrature, shapes, statistics of the kernel, bad input."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lib.core import random as _random
from lib.core.random import make_generator
from lib.diffusion.sde import ExponentialNoise, LinearBetaNoise, LinearDriftSDE, interpolating, ve, vp

# (sde, g^2 written out independently of lib) for the quadrature tests
CASES = {
    "ve": (ve(10.0), lambda t: 10.0 ** (2 * t)),
    "vp": (vp(10.0), lambda t: 10.0 ** (2 * t)),
    "c=0.5": (interpolating(0.5, sigma=10.0), lambda t: 10.0 ** (2 * t)),
    "ve sigma=25 T=2": (ve(25.0, T=2.0), lambda t: 25.0 ** (t)),
    "linear beta vp": (LinearDriftSDE(LinearBetaNoise(0.1, 20.0), c=1.0), lambda t: 0.1 + 19.9 * t),
    "linear beta c=0.3 T=3": (LinearDriftSDE(LinearBetaNoise(0.5, 4.0, T=3.0), c=0.3), lambda t: 0.5 + 3.5 * t / 3),
}
SHAPES = [(7,), (7, 2), (7, 4, 4)]


def _quad(fun, a, b):
    value, _ = integrate.quad(fun, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize("name", CASES)
def test_u_f_xi_against_quadrature(name):
    sde, g2 = CASES[name]
    T, c = sde.T, sde.c

    def f_quad(t, s):  # f(t, s) = exp(-1/2 int_s^t k), k = c g^2
        return math.exp(-0.5 * c * _quad(g2, s, t))

    for frac_t in (0.1, 0.37, 0.8, 1.0):
        t = frac_t * T
        assert float(sde.u(t)) == pytest.approx(_quad(g2, 0.0, t), rel=1e-10)
        assert float(sde.g2(t)) == pytest.approx(g2(t), rel=1e-12)
        assert float(sde.g(t)) == pytest.approx(math.sqrt(g2(t)), rel=1e-12)
        assert float(sde.k(t)) == pytest.approx(c * g2(t), rel=1e-12, abs=0.0)
        for s in (0.0, 0.05 * T, 0.5 * t):
            xi_quad = _quad(lambda sp: f_quad(t, sp) ** 2 * g2(sp), s, t)
            assert float(sde.f(t, s)) == pytest.approx(f_quad(t, s), rel=1e-10)
            assert float(sde.xi(t, s)) == pytest.approx(xi_quad, rel=1e-8)


@pytest.mark.parametrize("sigma", [10.0, 25.0, 0.5])
def test_ve_closed_form(sigma):
    sde = ve(sigma) if sigma > 1 else LinearDriftSDE(ExponentialNoise(sigma), c=0.0)  # ve() needs sigma > 1
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    expected = (sigma ** (2 * t) - 1) / (2 * math.log(sigma))
    torch.testing.assert_close(sde.xi(t), expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sde.f(t), torch.ones_like(t), rtol=0, atol=0)
    assert sde.prior_std() == pytest.approx(math.sqrt((sigma**2 - 1) / (2 * math.log(sigma))), rel=1e-12)


@pytest.mark.parametrize("sde", [vp(10.0), vp(2.0, T=3.0), vp(noise=LinearBetaNoise())])
def test_vp_xi_is_one_minus_f_squared(sde):
    t = torch.linspace(0, sde.T, 13, dtype=torch.float64)
    torch.testing.assert_close(sde.xi(t), 1 - sde.f(t) ** 2, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sde.f(t), torch.exp(-0.5 * sde.u(t)), rtol=1e-12, atol=0)
    assert sde.prior_std() == pytest.approx(math.sqrt(-math.expm1(-float(sde.u(sde.T)))), rel=1e-12)


def test_sigma_one_limit_is_continuous():
    t = torch.tensor([0.0, 1e-3, 0.3, 1.0], dtype=torch.float64)
    exact = ExponentialNoise(sigma=1.0)
    torch.testing.assert_close(exact.u(t), t, rtol=0, atol=0)
    torch.testing.assert_close(exact.g(t), torch.ones_like(t), rtol=0, atol=0)
    near = ExponentialNoise(sigma=1.0 + 1e-9)
    torch.testing.assert_close(near.u(t), t, rtol=1e-8, atol=0)
    torch.testing.assert_close(LinearDriftSDE(exact, c=1.0).xi(t), -torch.expm1(-t), rtol=1e-14, atol=0)


def test_c_zero_limit_is_continuous():
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    tiny = interpolating(1e-12)
    torch.testing.assert_close(tiny.xi(t), ve().xi(t), rtol=1e-9, atol=0)
    torch.testing.assert_close(tiny.f(t), torch.ones_like(t), rtol=1e-9, atol=0)


@pytest.mark.parametrize("sde", [ve(10.0), vp(10.0), LinearDriftSDE(LinearBetaNoise(), c=0.5)])
def test_xi_over_short_interval_has_no_cancellation(sde):
    t, h = 0.9, 1e-10
    # Xi(t, t - h) = g^2(t) h + O(h^2): the difference u(t) - u(t - h) must not lose digits
    assert float(sde.xi(t, t - h)) == pytest.approx(float(sde.g2(t)) * h, rel=1e-6)
    assert float(sde.xi(t, t)) == 0.0
    assert float(sde.f(t, t)) == 1.0


def test_schedule_dtypes_and_per_sample_times():
    sde = vp()
    assert sde.g2(0.5).dtype == torch.float64 and sde.g2(0.5).ndim == 0
    t32 = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float32)
    for fn in (sde.g, sde.g2, sde.u, sde.k, sde.f, sde.xi, sde.diffusion):
        out = fn(t32)
        assert out.dtype == torch.float32 and out.shape == (3,)
        # computed in float64 internally, then rounded
        torch.testing.assert_close(out, fn(t32.double()).float(), rtol=0, atol=0)
    assert sde.f(torch.tensor([0.5, 1.0]), torch.tensor([0.1, 0.2])).shape == (2,)


# --- functions of x: shapes, per-sample t, formulas -------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sde", [ve(), vp(), interpolating(0.5)], ids=["ve", "vp", "c=0.5"])
def test_shapes_and_per_sample_time(sde, shape):
    gen = make_generator(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    score = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.linspace(0.05, 1.0, shape[0], dtype=torch.float64)

    def row(i):
        return (slice(i, i + 1),)

    outputs = {
        "drift": sde.drift(x, t),
        "reverse": sde.reverse_drift(x, t, score),
        "flow": sde.probability_flow_drift(x, t, score),
        "mean": sde.marginal(x, t)[0],
        "std": sde.marginal(x, t)[1],
    }
    for name, out in outputs.items():
        assert out.shape == shape, name
    for i in range(shape[0]):  # each sample uses its own time
        ti = float(t[i])
        torch.testing.assert_close(outputs["drift"][row(i)], sde.drift(x[row(i)], ti))
        torch.testing.assert_close(outputs["reverse"][row(i)], sde.reverse_drift(x[row(i)], ti, score[row(i)]))
        torch.testing.assert_close(outputs["std"][row(i)], sde.marginal(x[row(i)], ti)[1])
    assert sde.kernel_logpdf(x, t, x).shape == (shape[0],)
    assert sde.prior_logp(x).shape == (shape[0],)
    x_t, eta = sde.sample_marginal(x, t, make_generator(1))
    assert x_t.shape == eta.shape == shape
    prior = sde.prior_sample(shape, make_generator(2))
    assert prior.shape == shape and prior.dtype == torch.float32


def test_drift_and_reverse_drift_formulas():
    sde = interpolating(0.5, sigma=10.0)
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    s = torch.tensor([[0.3, 0.1], [-1.0, 2.0]], dtype=torch.float64)
    t = 0.4
    g2 = 10.0 ** (2 * t)
    K = -0.5 * 0.5 * g2 * x
    torch.testing.assert_close(sde.drift(x, t), K, rtol=1e-14, atol=0)
    torch.testing.assert_close(sde.reverse_drift(x, t, s), -K + g2 * s, rtol=1e-14, atol=0)
    torch.testing.assert_close(sde.probability_flow_drift(x, t, s), -K + 0.5 * g2 * s, rtol=1e-14, atol=0)
    assert float(sde.diffusion(t)) == pytest.approx(10.0**t, rel=1e-14)
    torch.testing.assert_close(ve().drift(x, t), torch.zeros_like(x), rtol=0, atol=0)


def test_float32_input_stays_float32():
    sde = vp()
    x = torch.ones(4, 3, dtype=torch.float32)
    t = torch.full((4,), 0.5, dtype=torch.float32)
    assert sde.drift(x, t).dtype == torch.float32
    assert sde.marginal(x, 0.5)[1].dtype == torch.float32
    assert sde.reverse_drift(x, 0.5, x).dtype == torch.float32


def test_kernel_logpdf_and_prior_logp_against_scipy():
    sde = interpolating(0.5)
    gen = make_generator(3)
    x0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 1.0], dtype=torch.float64)
    f, sd = sde.f(t).numpy()[:, None], np.sqrt(sde.xi(t).numpy())[:, None]
    expected = stats.norm.logpdf(x.numpy(), loc=x0.numpy() * f, scale=sd).sum(axis=1)
    np.testing.assert_allclose(sde.kernel_logpdf(x, t, x0).numpy(), expected, rtol=1e-12)
    expected_prior = stats.norm.logpdf(x.numpy(), scale=sde.prior_std()).sum(axis=1)
    np.testing.assert_allclose(sde.prior_logp(x).numpy(), expected_prior, rtol=1e-12)


def test_sample_marginal_uses_the_shared_noise(monkeypatch):
    sde = vp()
    x0 = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    z = torch.tensor([[0.1, -0.2], [1.5, -0.7]], dtype=torch.float64)
    monkeypatch.setattr(_random, "standard_normal", lambda like, generator=None: z.clone())
    x_t, eta = sde.sample_marginal(x0, 0.3)
    f = math.exp(-0.5 * (100**0.3 - 1) / (2 * math.log(10)))  # VP: f = exp(-u/2), Xi = 1 - f^2
    xi = 1 - f**2
    torch.testing.assert_close(eta, z, rtol=0, atol=0)
    torch.testing.assert_close(x_t, x0 * f + math.sqrt(xi) * z, rtol=1e-14, atol=0)


@pytest.mark.parametrize("sde", [ve(), vp(), interpolating(0.5)], ids=["ve", "vp", "c=0.5"])
def test_sample_marginal_statistics(sde):
    n, t, x0_value = 20000, 0.3, 0.7
    x0 = torch.full((n,), x0_value, dtype=torch.float64)
    x_t, eta = sde.sample_marginal(x0, t, make_generator(4))
    mean, std = x0_value * float(sde.f(t)), math.sqrt(float(sde.xi(t)))
    assert abs(float(x_t.mean()) - mean) <= 5 * std / math.sqrt(n)
    assert abs(float(x_t.std()) - std) <= 5 * std / math.sqrt(2 * n)
    torch.testing.assert_close(x_t, mean + std * eta)


def test_prior_sample_statistics_and_reproducibility():
    sde = ve(10.0)
    a = sde.prior_sample((20000,), make_generator(5), dtype=torch.float64)
    b = sde.prior_sample(20000, make_generator(5), dtype=torch.float64)
    assert torch.equal(a, b)
    std = sde.prior_std()
    assert abs(float(a.std()) - std) <= 5 * std / math.sqrt(2 * 20000)
    assert abs(float(a.mean())) <= 5 * std / math.sqrt(20000)


def test_parameters_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ve().c = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExponentialNoise().sigma = 2.0


# --- bad input --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ExponentialNoise(sigma=0.0), "sigma must be > 0"),
        (lambda: ExponentialNoise(sigma=-1.0), "sigma must be > 0"),
        (lambda: ExponentialNoise(sigma=float("nan")), "sigma must be finite"),
        (lambda: ExponentialNoise(T=0.0), "T must be > 0"),
        (lambda: LinearBetaNoise(beta_min=-0.1), "beta_min must be >= 0"),
        (lambda: LinearBetaNoise(beta_max=0.0), "beta_max must be > 0"),
        (lambda: LinearBetaNoise(beta_min=5.0, beta_max=1.0), "beta_max must be >= beta_min"),
        (lambda: interpolating(-0.1), r"c must lie in \[0.0, 1.0\]"),
        (lambda: interpolating(1.5), r"c must lie in \[0.0, 1.0\]"),
        (lambda: LinearDriftSDE(noise=3.0), "noise must be a schedule"),
        (lambda: ve(sigma=-2.0), "sigma must be > 0"),
        (lambda: vp(25.0, noise=LinearBetaNoise()), "not both"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_times():
    sde = interpolating(0.5, T=2.0)
    x = torch.zeros(3, 2)
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ValueError, match=r"t (must lie in \[0, T\]|contains non-finite)"):
            sde.f(bad)
    with pytest.raises(ValueError, match=r"must lie in \[0, T\] = \[0, 2.0\]"):
        sde.drift(x, torch.tensor([0.5, 2.1, 1.0]))
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        sde.marginal(x, -1e-3)
    with pytest.raises(ValueError, match="require s <= t"):
        sde.f(0.3, 0.5)
    with pytest.raises(ValueError, match="require s <= t"):
        sde.xi(torch.tensor([0.5, 0.3]), torch.tensor([0.1, 0.4]))
    with pytest.raises(ValueError, match=r"s must lie in \[0, T\]"):
        sde.xi(0.5, -0.1)


def test_bad_shapes():
    sde = vp()
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"per-sample time .* shape \(3,\)"):
        sde.drift(x, torch.full((4,), 0.5))
    with pytest.raises(ValueError, match=r"scalar or a 1-D tensor of per-sample times"):
        sde.g2(torch.full((3, 1), 0.5))
    with pytest.raises(ValueError, match="do not broadcast"):
        sde.f(torch.full((3,), 0.5), torch.full((2,), 0.1))
    with pytest.raises(ValueError, match="score must be a tensor of the shape of x"):
        sde.reverse_drift(x, 0.5, torch.zeros(3))
    with pytest.raises(ValueError, match="x and x0 must have the same shape"):
        sde.kernel_logpdf(x, 0.5, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must be a floating tensor of shape \(B, ...\)"):
        sde.drift(np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match=r"x0 must be a floating tensor"):
        sde.marginal(torch.tensor(1.0), 0.5)


def test_non_finite_and_degenerate_input():
    sde = ve()
    x0 = torch.tensor([[0.0, float("nan")]])
    with pytest.raises(ValueError, match="x0 contains non-finite values"):
        sde.marginal(x0, 0.5)
    with pytest.raises(ValueError, match="x0 contains non-finite values"):
        sde.sample_marginal(torch.tensor([float("inf")]), 0.5)
    with pytest.raises(ValueError, match="x contains non-finite values"):
        sde.prior_logp(x0)
    with pytest.raises(ValueError, match=r"Xi\(t\) > 0"):
        sde.kernel_logpdf(torch.zeros(2, 2), 0.0, torch.zeros(2, 2))


@pytest.mark.parametrize("build", [ve, vp, lambda **kw: interpolating(0.5, **kw)])
@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_schemes_refuse_a_noise_that_does_not_grow(build, sigma):
    """Before: ve(sigma=1) and vp(sigma=1) were accepted silently; their prior does not forget the data."""
    with pytest.raises(ValueError, match="sigma must be > 1"):
        build(sigma=sigma)
