"""Tests of lib.diffusion.solvers.backward_em_variance: the exact variance recursion of the backward Euler-Maruyama sampler
for a linear score (kept apart from tests/test_solvers.py only to avoid concurrent edits; merge at will)."""
import math

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion import grids
from lib.diffusion.sde import interpolating, ve, vp
from lib.diffusion.solvers import backward_em, backward_em_variance

SCHEMES = {"ve": ve(10.0), "vp": vp(10.0), "c=0.5": interpolating(0.5, sigma=5.0)}
V0 = 0.7  # target variance


def _precision(sde):
    return lambda t: 1.0 / (V0 * sde.f(t) ** 2 + sde.xi(t))


def _score(sde):
    return lambda x, t: -x / (V0 * sde.f(t) ** 2 + sde.xi(t)).to(x.dtype)




@pytest.mark.parametrize("spacing", ["uniform-evaluations", "karras"])
@pytest.mark.parametrize("name", SCHEMES)
def test_probability_flow_recursion_is_exact(name, spacing):
    """Without noise the sampler is a deterministic linear map: x_end^2 / x_T^2 equals the recursion exactly, on the
    authors' grid and on any other (the recursion reads the same grid)."""
    sde = SCHEMES[name]
    grid = grids.build(sde, spacing, 200, 1e-3)
    x_T = torch.tensor([1.3, -0.4], dtype=torch.float64)
    run = backward_em(sde, _score(sde), x_T, grid, probability_flow=True, record_every=1,
                      observe=lambda x, t: {"x": x})
    t, V = backward_em_variance(sde, _precision(sde), 1.0, grid, probability_flow=True)
    torch.testing.assert_close(t, run.t)
    torch.testing.assert_close(run.records["x"] ** 2 / x_T**2, V[:, None].expand(-1, 2), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", SCHEMES)
@pytest.mark.parametrize("noise_last", [False, True])
def test_recursion_matches_monte_carlo(name, noise_last):
    """The backward sampler with the exact Gaussian score, from the prior: sample variance at the records within
    5 statistical sigma of the recursion (the sampler's discretisation bias is part of both)."""
    sde, n = SCHEMES[name], 40_000
    x_T = sde.prior_sample((n,), make_generator(3), dtype=torch.float64)
    run = backward_em(sde, _score(sde), x_T, grids.uniform_evaluations(sde, 100), make_generator(4), noise_last=noise_last,
                      record_every=25, observe=lambda x, t: {"m2": (x**2).mean(), "m4": (x**4).mean()})
    t, V = backward_em_variance(sde, _precision(sde), sde.prior_std() ** 2, grids.uniform_evaluations(sde, 100),
                                noise_last=noise_last)
    idx = [torch.argmin((t - tr).abs()).item() for tr in run.t]
    torch.testing.assert_close(t[idx], run.t)
    err = ((run.records["m4"] - run.records["m2"] ** 2) / n).sqrt()
    assert bool(((run.records["m2"] - V[idx]).abs() <= 5 * err).all())


def test_recursion_converges_to_the_forward_variance():
    """Started from the exact p(x, T), the continuum backward variance retraces the forward one, V = v(T - tau);
    the recursion deviates from it by O(dt): ten times more steps, about ten times smaller deviation."""
    sde = SCHEMES["vp"]
    v = lambda t: V0 * sde.f(t) ** 2 + sde.xi(t)
    devs = []
    for n in (500, 5000):
        t, V = backward_em_variance(sde, _precision(sde), float(v(1.0)), grids.uniform_evaluations(sde, n))
        devs.append(float((V - v(t.clamp(0.0, 1.0))).abs().max()))
    assert devs[1] < 0.01
    assert 5 < devs[0] / devs[1] < 20


def test_bad_input():
    sde = SCHEMES["ve"]
    with pytest.raises(ValueError):
        backward_em_variance(sde, 1.0, 1.0)
    with pytest.raises(ValueError):
        backward_em_variance(sde, _precision(sde), -1.0)
    with pytest.raises(ValueError):
        backward_em_variance(sde, lambda t: torch.ones(3), 1.0)
    with pytest.raises(ValueError):
        backward_em_variance(sde, _precision(sde), math.nan)


# ----------------------------------------------------------------------------- stochastic Heun
from lib.diffusion.solvers import backward_heun_variance, backward_solve  # noqa: E402


@pytest.mark.parametrize("name", SCHEMES)
def test_heun_probability_flow_recursion_is_exact(name):
    """Without noise Heun with a linear score is a deterministic linear map: x_end^2 / x_T^2 is the recursion."""
    sde = SCHEMES[name]
    grid = grids.karras(sde, 30, 1e-4)
    x_T = torch.tensor([1.3, -0.4], dtype=torch.float64)
    run = backward_solve(sde, _score(sde), x_T, grid, method="heun", probability_flow=True, record_every=1,
                         observe=lambda x, t: {"x": x})
    V = backward_heun_variance(sde, _precision(sde), 1.0, grid, probability_flow=True)
    torch.testing.assert_close(run.records["x"] ** 2 / x_T**2, V[:, None].expand(-1, 2), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", SCHEMES)
def test_heun_recursion_matches_monte_carlo(name):
    """Stochastic Heun with the exact Gaussian score from the prior: the sample variance at the records lies within
    5 statistical sigma of the recursion, on a grid coarse enough that the sampler's bias is far larger (checked)."""
    sde, n = SCHEMES[name], 40_000
    grid = grids.karras(sde, 5, 1e-3)
    x_T = sde.prior_sample((n,), make_generator(5), dtype=torch.float64)
    run = backward_solve(sde, _score(sde), x_T, grid, method="heun", generator=make_generator(6), record_every=1,
                         observe=lambda x, t: {"m2": (x**2).mean(), "m4": (x**4).mean()})
    V = backward_heun_variance(sde, _precision(sde), sde.prior_std() ** 2, grid)
    err = ((run.records["m4"] - run.records["m2"] ** 2) / n).sqrt()
    assert bool(((run.records["m2"] - V).abs() <= 5 * err).all())
    exact_end = V0 * float(sde.f(1e-3)) ** 2 + float(sde.xi(1e-3))
    assert abs(float(V[-1]) - exact_end) > 10 * float(err[-1])  # the recursion carries the discretisation bias


def test_heun_recursion_converges():
    """More Heun steps on the Karras grid: the end variance approaches the exact one, second order in 1/n."""
    sde = SCHEMES["ve"]
    exact = V0 + float(sde.xi(1e-4))
    devs = [abs(float(backward_heun_variance(sde, _precision(sde), float(V0 + sde.xi(1.0)), grids.karras(sde, n, 1e-4))[-1])
                - exact) for n in (40, 80)]
    assert devs[1] < devs[0] / 3


def test_heun_recursion_bad_input():
    sde = SCHEMES["ve"]
    grid = grids.karras(sde, 10, 1e-3)
    with pytest.raises(ValueError, match="callable"):
        backward_heun_variance(sde, 1.0, 1.0, grid)
    with pytest.raises(ValueError, match="variance"):
        backward_heun_variance(sde, _precision(sde), -1.0, grid)
    with pytest.raises(ValueError, match="shape"):
        backward_heun_variance(sde, lambda t: torch.ones(3), 1.0, grid)
    with pytest.raises(ValueError, match="TimeGrid"):
        backward_heun_variance(sde, _precision(sde), 1.0, "karras")
    with pytest.raises(ValueError, match="states' times"):
        backward_heun_variance(sde, _precision(sde), 1.0, grids.uniform_evaluations(sde, 10, 1e-3))
