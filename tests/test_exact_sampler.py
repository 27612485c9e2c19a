"""Tests of the exact-density flow proposals (lib.diffusion.flow_map) and the independence Metropolis-Hastings chain
(lib.physics.metropolis): the density of the fixed-step probability-flow map against its closed form for a Gaussian
target (to machine precision), detailed balance in practice (a poor proposal corrected to the target), bad input."""
import math

import pytest
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import grids
from lib.diffusion.flow_map import flow_proposals
from lib.diffusion.sde import ve, vp
from lib.physics.metropolis import chain_observable, independence_metropolis


def gauss_score(sde, v0):
    def score(x, t):
        var = v0 * sde.f(t) ** 2 + sde.xi(t)
        return -x / var.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    return score


def gauss_flow_factor(sde, v0, grid, method):
    """The fixed-step map is x -> A x for a Gaussian target and the exact score; A in closed form.

    In the variables x~ = x / f, s = sqrt(Xi) / f of Karras et al. the flow is dx~/ds = s x~ / (v0 + s^2)."""
    def level(t):
        t = torch.tensor(t, dtype=torch.float64)
        return float(sde.f(t)), float(sde.noise_to_signal(t))

    A = 1.0
    for t, tn in zip(grid.t[:-1].tolist(), grid.t[1:].tolist()):
        (f0, s0), (f1, s1) = level(t), level(tn)
        c0, c1, ds = s0 / (v0 + s0 ** 2), s1 / (v0 + s1 ** 2), s1 - s0
        A *= (f1 / f0) * (1 + ds * c0 if method == "euler" else 1 + 0.5 * ds * (c0 + c1 * (1 + ds * c0)))
    return A


@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("make_sde", [lambda: ve(10.0), lambda: vp(10.0)])
def test_flow_density_is_exact_for_a_gaussian(method, make_sde):
    sde, v0, shape = make_sde(), 0.7, (3, 3)
    grid = grids.uniform_states(sde, 12, 1e-3)
    out = flow_proposals(sde, gauss_score(sde, v0), grid, shape, 40, make_generator(1), method=method, batch=16)
    A = gauss_flow_factor(sde, v0, grid, method)
    d = math.prod(shape)
    torch.testing.assert_close(out.x, A * out.x_T, rtol=1e-12, atol=1e-12)
    var = A * A * sde.prior_std() ** 2
    exact = -0.5 * out.x.reshape(40, -1).pow(2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)
    torch.testing.assert_close(out.log_q, exact, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.log_det, torch.full((40,), d * math.log(abs(A)), dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)


def test_metropolis_corrects_a_poor_proposal_to_the_target():
    """Proposals from the flow of a Gaussian of variance 1.6 (a wrong model, wider than the target, so that the
    independence sampler is uniformly ergodic); target S = x^2 / 2 per site (variance 1):
    the raw proposals miss <x^2> by many sigma, the corrected chain agrees within 4 sigma (errors from tau_int)."""
    sde, shape, n = ve(10.0), (2, 2), 6000
    grid = grids.uniform_states(sde, 20, 1e-3)
    prop = flow_proposals(sde, gauss_score(sde, 1.6), grid, shape, n, make_generator(2), method="heun", batch=2000)

    def action(x):
        return 0.5 * x.reshape(x.shape[0], -1).pow(2).sum(1)

    chain = independence_metropolis(prop.x, prop.log_q, action, make_generator(3))
    assert 0.2 < chain.acceptance < 0.95
    x2 = prop.x.reshape(n, -1).pow(2).mean(1)
    raw_mean, raw_err = float(x2.mean()), float(x2.std() / math.sqrt(n))
    assert abs(raw_mean - 1.0) > 10 * raw_err  # the proposal alone is wrong
    series = chain_observable(chain, x2).numpy()
    mean, err = stats.mean_error(series)
    assert abs(mean - 1.0) < 4 * err
    assert stats.tau_int(series).tau > 0.5  # rejections make the chain autocorrelated


def test_bad_input_is_refused():
    x = torch.zeros(5, 2, dtype=torch.float64)
    S = lambda x: x.sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="one entry per proposal"):
        independence_metropolis(x, torch.zeros(4), S, make_generator(0))
    with pytest.raises(ValueError, match="log_q contains non-finite"):
        independence_metropolis(x, torch.tensor([0.0, 0, float("nan"), 0, 0]), S, make_generator(0))
    with pytest.raises(ValueError, match="start must lie"):
        independence_metropolis(x, torch.zeros(5), S, make_generator(0), start=4)
    sde = ve()
    with pytest.raises(ValueError, match="TimeGrid"):
        flow_proposals(sde, gauss_score(sde, 1.0), 10, (2,), 4, make_generator(0))
    with pytest.raises(ValueError, match="method"):
        flow_proposals(sde, gauss_score(sde, 1.0), grids.uniform_states(sde, 4), (2,), 4, make_generator(0), "rk4")


def test_lattice_network_flow_runs_and_is_invertible():
    """An (untrained) periodic lattice network: jacfwd through the CNN works, every det J > 0 for small steps."""
    from lib.diffusion import lattice_nets

    sde = ve(25.0)
    net = lattice_nets.build_lattice_net(lattice_nets.LatticeNetConfig(kind="cnn", channels=(4,), embed_dim=8,
                                                                       group_norm=False), sde,
                                         generator=make_generator(0)).double().eval()
    out = flow_proposals(sde, lambda x, t: net(x, t), grids.karras(sde, 10, 1e-3), (4, 4), 6, make_generator(1),
                         batch=3)
    assert out.x.shape == (6, 4, 4) and bool(torch.isfinite(out.log_q).all())
    # the stochastic-trace error: zero for the diagonal Jacobians of a Gaussian target, zero-mean noise for a network
    gauss = flow_proposals(sde, gauss_score(sde, 0.7), grids.karras(sde, 6, 1e-3), (3, 3), 4, make_generator(2),
                           probes=3)
    assert gauss.hutchinson_error.shape == (4, 3) and float(gauss.hutchinson_error.abs().max()) < 1e-12
    noisy = flow_proposals(sde, lambda x, t: net(x, t), grids.karras(sde, 10, 1e-3), (4, 4), 2, make_generator(1),
                           batch=3, probes=4000)
    err = noisy.hutchinson_error
    assert float(err.std()) > 0
    assert bool((err.mean(1).abs() < 5 * err.std(1) / math.sqrt(4000)).all())
    torch.testing.assert_close(noisy.log_q, out.log_q[:2])  # the probes do not change the proposals
