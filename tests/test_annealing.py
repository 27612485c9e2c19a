"""Annealed HMC layers after a proposal: the extended path's weight is exact for any base, unchanged when the base
is the target, and bad input is refused."""
import math

import pytest
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion.annealing import HMCLayers, annealed_layers
from lib.diffusion.mode_gaussian import ModeGaussian
from lib.physics.metropolis import chain_observable, independence_metropolis


def _quartic(x):
    """A non-Gaussian target per site, -sum(x^2/2 + x^4/4): its <x^2> is known by quadrature."""
    x = x.to(torch.float64)
    return -(0.5 * x ** 2 + 0.25 * x ** 4).sum((-2, -1))


def _quartic_x2() -> float:
    u = torch.linspace(-8, 8, 200001, dtype=torch.float64)
    p = torch.exp(-(0.5 * u ** 2 + 0.25 * u ** 4))
    return float((u ** 2 * p).sum() / p.sum())


def _proposals(width: float, n: int, seed: int):
    g = ModeGaussian(width ** 2, (4, 4))
    x = g.sample(n, make_generator(seed))
    return x, g.log_prob(x)


def test_the_chain_after_the_layers_is_exact_for_a_poor_base_while_the_proposals_miss():
    # proposals too wide for the quartic target (<x^2> 1.0 against 0.47), a base that is neither: the chain through
    # the annealed proposals must find the target's <x^2>; the raw and the moved proposals need not
    exact = _quartic_x2()
    x, log_q = _proposals(1.0, 4096, 1)
    base = ModeGaussian(0.8 ** 2, (4, 4))
    out = annealed_layers(x, log_q, _quartic, base.log_prob, HMCLayers(20, 0.4), make_generator(2))
    chain = independence_metropolis(out.x, out.log_q, lambda y: -_quartic(y), make_generator(3))
    x2 = chain_observable(chain, out.x.pow(2).mean((-2, -1))).numpy()
    est = stats.tau_int(x2)
    mean, err = float(x2.mean()), math.sqrt(2 * est.tau * x2.var() / len(x2))
    assert abs(mean - exact) < 3 * err
    raw = float(x.pow(2).mean())
    assert abs(raw - exact) > 20 * err  # the raw proposals miss by far
    assert 0.3 < chain.acceptance <= 1.0
    assert out.acceptance.shape == (20,) and bool((out.acceptance > 0.3).all())


def test_layers_that_anneal_from_the_target_to_itself_leave_every_weight_unchanged():
    x, log_q = _proposals(1.0, 64, 4)
    w_before = _quartic(x) - log_q
    out = annealed_layers(x, log_q, _quartic, _quartic, HMCLayers(5, 0.3), make_generator(5))
    w_after = _quartic(out.x) - out.log_q
    assert torch.allclose(w_before, w_after, atol=1e-10)
    assert not torch.equal(out.x, x)  # the layers moved the configurations


def test_fourier_mass_and_schedule_are_used_and_the_run_is_reproducible():
    x, log_q = _proposals(1.0, 32, 6)
    v = torch.full((4, 4), 0.5, dtype=torch.float64)
    layers = HMCLayers(4, 0.3, n_leapfrog=2, power=2.0)
    assert layers.betas() == [(k / 4) ** 2 for k in range(1, 5)]
    a = annealed_layers(x, log_q, _quartic, _quartic, layers, make_generator(7), mass_variance=v)
    b = annealed_layers(x, log_q, _quartic, _quartic, layers, make_generator(7), mass_variance=v)
    c = annealed_layers(x, log_q, _quartic, _quartic, layers, make_generator(7))
    assert torch.equal(a.x, b.x) and torch.equal(a.log_q, b.log_q)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize("kwargs, match", [({"n_layers": 0, "step": 0.1}, "n_layers"),
                                           ({"n_layers": 2, "step": -1.0}, "step"),
                                           ({"n_layers": 2, "step": 0.1, "n_leapfrog": 0}, "n_leapfrog"),
                                           ({"n_layers": 2, "step": 0.1, "power": 0.0}, "power")])
def test_layers_refuse_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HMCLayers(**kwargs)


def test_annealed_layers_refuse_bad_input():
    x, log_q = _proposals(1.0, 8, 8)
    layers, g = HMCLayers(2, 0.1), make_generator(9)
    with pytest.raises(ValueError, match="log_q"):
        annealed_layers(x, log_q[:5], _quartic, _quartic, layers, g)
    with pytest.raises(ValueError, match="finite"):
        annealed_layers(x, log_q * float("nan"), _quartic, _quartic, layers, g)
    with pytest.raises(ValueError, match="log_base"):
        annealed_layers(x, log_q, _quartic, lambda y: y.sum(-1), layers, g)
    with pytest.raises(ValueError, match="HMCLayers"):
        annealed_layers(x, log_q, _quartic, _quartic, (2, 0.1), g)
