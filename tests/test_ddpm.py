"""Tests of lib.diffusion.ddpm: the discrete DDPM as a discretisation of the VP SDE."""
import math

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion.ddpm import DDPMSchedule, ancestral_sample, eps_from_score, eps_loss
from lib.diffusion.sde import LinearBetaNoise, vp


def gauss_score(sde, v0):
    def score(x, t):
        var = v0 * sde.f(t) ** 2 + sde.xi(t)
        return -x / var.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    return score


def test_schedule_from_the_vp_sde_has_its_marginals_exactly():
    sde = vp(noise=LinearBetaNoise())
    sched = DDPMSchedule.from_sde(sde, 50)
    t = torch.linspace(0, 1, 51, dtype=torch.float64)[1:]
    torch.testing.assert_close(sched.alpha_bar, sde.f(t) ** 2, rtol=1e-12, atol=1e-14)
    lin = DDPMSchedule.linear()
    assert lin.n == 1000 and math.isclose(lin.betas[0], 1e-4) and math.isclose(lin.betas[-1], 0.02)
    assert float(lin.posterior_variance()[0]) == 0.0
    with pytest.raises(ValueError, match="variance-preserving"):
        from lib.diffusion.sde import ve
        DDPMSchedule.from_sde(ve(), 10)
    with pytest.raises(ValueError, match="beta_2"):
        DDPMSchedule((0.1, 1.0))


@pytest.mark.parametrize("n", [20, 400])
def test_ancestral_sampling_with_the_exact_score_converges_to_the_target(n):
    """Gaussian target of variance v0: Algorithm 2 with the exact score; the variance error shrinks with N."""
    sde, v0 = vp(noise=LinearBetaNoise()), 0.3
    sched = DDPMSchedule.from_sde(sde, n)
    times = torch.linspace(0, 1, n + 1, dtype=torch.float64)[1:]
    eps = eps_from_score(gauss_score(sde, v0), sched, times)
    x = ancestral_sample(eps, sched, torch.randn(40000, 1, generator=make_generator(1), dtype=torch.float64),
                         make_generator(2))
    err = abs(float(x.var()) / v0 - 1)
    if n == 400:
        assert err < 0.04  # statistical error ~0.7%, discretisation ~1/N
    else:
        assert err > 0.04  # too few steps: visibly off


def test_eps_loss_minimiser_is_the_exact_score():
    """At the exact epsilon-predictor the loss is lower than at a rescaled one (the minimiser)."""
    sde, v0 = vp(noise=LinearBetaNoise()), 0.3
    sched = DDPMSchedule.from_sde(sde, 100)
    times = torch.linspace(0, 1, 101, dtype=torch.float64)[1:]
    exact = eps_from_score(gauss_score(sde, v0), sched, times)
    x0 = math.sqrt(v0) * torch.randn(20000, 1, generator=make_generator(3), dtype=torch.float64)
    losses = {}
    for factor in (0.9, 1.0, 1.1):
        losses[factor] = float(eps_loss(lambda x, i: factor * exact(x, i), sched, x0, make_generator(4)))
    assert losses[1.0] < losses[0.9] and losses[1.0] < losses[1.1]
