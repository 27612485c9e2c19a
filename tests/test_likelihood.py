"""Tests of lib.diffusion.likelihood: exact divergence against Jacobian traces, Hutchinson unbiasedness, and the probability-flow
log-likelihood against the exact log density of Gaussian and two-peak targets under VE and VP."""
import math

import pytest
import torch

from lib.core.checks import NonFiniteError
from lib.core.random import make_generator
from lib.diffusion.likelihood import Likelihood, divergence, log_likelihood
from lib.diffusion.sde import LinearBetaNoise, ve, vp
from lib.physics.toy import GaussianMixture


def _mlp(d_in, seed=0):
    net = torch.nn.Sequential(torch.nn.Linear(d_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, d_in)).double()
    gen = make_generator(seed)
    with torch.no_grad():  # seeded weights without touching the global random state
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def _odd_field(net):
    """A Z2-odd field that concatenates x with -x along the batch axis (as the lattice nets do), times (1 + t)."""

    def fn(x, t):
        B = x.shape[0]
        y = net(torch.cat([x, -x]).reshape(2 * B, -1)).reshape((2 * B,) + x.shape[1:])
        return 0.5 * (y[:B] - y[B:]) * (1.0 + t).reshape((-1,) + (1,) * (x.ndim - 1))

    return fn


def _jacobian_trace(fn, x, t):
    out = []
    for b in range(x.shape[0]):
        def one(xb, b=b):
            return fn(xb[None], t[b:b + 1])[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(one, x[b])
        out.append(torch.diagonal(jac.reshape(x[b].numel(), -1)).sum())
    return torch.stack(out)


# --- divergence ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (5, 2, 2)])
def test_exact_divergence_linear(shape):
    d = math.prod(shape[1:])
    A = torch.randn(d, d, generator=make_generator(1), dtype=torch.float64)

    def fn(x, t):
        return (x.reshape(x.shape[0], -1) @ A.T).reshape(x.shape)

    x = torch.randn(shape, generator=make_generator(2), dtype=torch.float64)
    expected = torch.full((shape[0],), float(torch.trace(A)), dtype=torch.float64)
    torch.testing.assert_close(divergence(fn, x, 0.5), expected)
    torch.testing.assert_close(divergence(fn, x, 0.5, chunk_size=2), expected)  # chunked: probes and batch split


def test_exact_divergence_mlp_batch_mixing():
    net = _mlp(4)
    fn = _odd_field(net)
    x = torch.randn(6, 2, 2, generator=make_generator(3), dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    expected = _jacobian_trace(fn, x, t)
    div = divergence(fn, x, t)
    assert div.shape == (6,) and not div.requires_grad
    torch.testing.assert_close(div, expected)
    torch.testing.assert_close(divergence(fn, x, t, chunk_size=5), expected)
    with torch.no_grad():  # the caller's no_grad does not switch off the divergence
        torch.testing.assert_close(divergence(fn, x, t), expected)


def test_hutchinson_unbiased():
    net = _mlp(3, seed=4)
    fn = _odd_field(net)
    x = torch.randn(2, 3, generator=make_generator(5), dtype=torch.float64)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    exact = divergence(fn, x, t)
    n = 4000  # replicate the two samples: one independent single-probe estimate per row
    est = divergence(fn, x.repeat(n, 1), t.repeat(n), method="hutchinson", generator=make_generator(6))
    est = est.reshape(n, 2)
    se = est.std(dim=0) / math.sqrt(n)
    assert bool((se > 0).all())
    assert bool(((est.mean(dim=0) - exact).abs() < 4 * se).all()), (est.mean(dim=0), exact, se)
    # n_probes averages: same statistics, reproducible from the generator
    avg = divergence(fn, x, t, method="hutchinson", generator=make_generator(7), n_probes=n, chunk_size=512)
    assert bool(((avg - exact).abs() < 4 * se).all())
    again = divergence(fn, x, t, method="hutchinson", generator=make_generator(7), n_probes=n)
    torch.testing.assert_close(again, avg)


# --- log-likelihood ---------------------------------------------------------------------------------------------------
def _gauss_score(sde, s0):
    def score(x, t):
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype
        var = s0**2 * sde.f(t) ** 2 + sde.xi(t)
        return -x / var.reshape((-1,) + (1,) * (x.ndim - 1))

    return score


def _gauss_logp(x, var):
    return (-0.5 * x**2 / var - 0.5 * math.log(2 * math.pi * var)).reshape(x.shape[0], -1).sum(dim=1)


@pytest.mark.parametrize("sde", [ve(10.0), vp(noise=LinearBetaNoise())], ids=["ve", "vp"])
def test_log_likelihood_gaussian(sde):
    s0, t_eps = 0.5, 1e-3
    x0 = s0 * torch.randn(5, 4, generator=make_generator(8), dtype=torch.float64)
    res = log_likelihood(sde, _gauss_score(sde, s0), x0, t_eps=t_eps)
    assert isinstance(res, Likelihood) and res.nfev > 0
    assert res.logp.shape == (5,) and res.logp.dtype == torch.float64 and res.x_T.shape == x0.shape
    assert not res.logp.requires_grad and not res.x_T.requires_grad
    var_eps = s0**2 * float(sde.f(t_eps)) ** 2 + float(sde.xi(t_eps))
    var_T = s0**2 * float(sde.f(sde.T)) ** 2 + float(sde.xi(sde.T))
    # the flow map of a centred Gaussian is a pure rescaling by the ratio of standard deviations
    torch.testing.assert_close(res.x_T, x0 * math.sqrt(var_T / var_eps), rtol=1e-4, atol=1e-4)
    # prior_logp(x_T) replaces log p_T(x_T): swap in the exact one to test the integral of the divergence alone
    prior_gap = _gauss_logp(res.x_T, var_T) - sde.prior_logp(res.x_T)
    exact = _gauss_logp(x0, var_eps)
    torch.testing.assert_close(res.logp + prior_gap, exact, rtol=0, atol=1e-3)
    if sde.c == 1.0:  # VP: the prior is the marginal at T up to e^{-u(T)}
        torch.testing.assert_close(res.logp, exact, rtol=0, atol=1e-3)
    # Hutchinson with Rademacher probes is exact for an isotropic linear field
    hutch = log_likelihood(sde, _gauss_score(sde, s0), x0, t_eps=t_eps, method="hutchinson",
                           generator=make_generator(9))
    torch.testing.assert_close(hutch.logp, res.logp, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sde", [ve(10.0), vp(noise=LinearBetaNoise())], ids=["ve", "vp"])
def test_log_likelihood_two_peak(sde):
    t_eps = 1e-3
    mix = GaussianMixture.two_peak(mu0=1.0, s0=0.25)
    x0 = torch.tensor([-1.3, -1.0, -0.4, 0.0, 0.5, 1.1], dtype=torch.float64)  # shape (B,): one degree of freedom
    res = log_likelihood(sde, mix.score_fn(sde), x0, t_eps=t_eps)
    assert res.logp.shape == (6,)
    prior_gap = mix.log_density(res.x_T, sde, sde.T) - sde.prior_logp(res.x_T)
    torch.testing.assert_close(res.logp + prior_gap, mix.log_density(x0, sde, t_eps), rtol=0, atol=1e-3)


def test_log_likelihood_float32_batch_mixing_model():
    """A float32 score that concatenates x with -x along the batch axis goes through the exact divergence."""
    sde, s0 = vp(noise=LinearBetaNoise()), 0.5
    exact = _gauss_score(sde, s0)

    def score(x, t):
        y = torch.cat([x, -x])
        tt = torch.cat([t, t])
        s = exact(y, tt)
        return 0.5 * (s[: x.shape[0]] - s[x.shape[0]:])

    x0 = s0 * torch.randn(3, 2, 2, generator=make_generator(10))
    res = log_likelihood(sde, score, x0, rtol=1e-4, atol=1e-4)
    assert res.x_T.dtype == torch.float32 and res.logp.dtype == torch.float64
    var = s0**2 * float(sde.f(1e-3)) ** 2 + float(sde.xi(1e-3))
    torch.testing.assert_close(res.logp, _gauss_logp(x0.double(), var), rtol=0, atol=2e-3)


# --- bad input -------------------------------------------------------------------------------------------------------
def test_bad_input():
    sde = ve(10.0)
    score = _gauss_score(sde, 0.5)
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="method"):
        log_likelihood(sde, score, x0, method="skilling")
    with pytest.raises(ValueError, match="method"):
        divergence(lambda x, t: x, x0, 0.0, method="trace")
    for t_eps in (0.0, -1e-3, 1.0, 2.0):
        with pytest.raises(ValueError, match="t_eps"):
            log_likelihood(sde, score, x0, t_eps=t_eps)
    with pytest.raises(ValueError, match="non-finite"):
        log_likelihood(sde, score, torch.tensor([[0.0, float("nan"), 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="Generator"):
        log_likelihood(sde, score, x0, method="hutchinson")
    with pytest.raises(ValueError, match="Generator"):
        divergence(lambda x, t: x, x0, 0.0, method="hutchinson")
    with pytest.raises(ValueError, match="floating"):
        log_likelihood(sde, score, torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        divergence(lambda x, t: x[:, :1], x0, 0.0)
    with pytest.raises(ValueError, match="autograd"):
        log_likelihood(sde, lambda x, t: score(x, t).detach(), x0)


def test_non_finite_score_raises():
    sde = ve(10.0)

    def score(x, t):
        return torch.where(t[:, None] > 0.5, x / 0.0, -x)

    with pytest.raises(NonFiniteError, match="non-finite"):
        log_likelihood(sde, score, torch.ones(2, 3, dtype=torch.float64))
