"""Tests of lib.diffusion.solvers: exact update rules with monkeypatched noise, records, shapes, bad input, and statistics
(forward variance against Xi(t) + var0 f^2, backward process with the exact Gaussian score regenerating the target)."""
import math

import numpy as np
import pytest
import torch

from lib.core import random as _random
from lib.core.checks import NonFiniteError
from lib.core.random import make_generator
from lib.diffusion import grids
from lib.diffusion.sde import LinearBetaNoise, LinearDriftSDE, interpolating, ve, vp
from lib.diffusion.solvers import (Trajectory, backward_em, backward_solve, em_step, forward_em, forward_marginals,
                                   heun_step, probability_flow_ivp)

SHAPES = [(6,), (6, 2), (6, 3, 3)]




class FakeNoise:
    """Replacement for lib.core.random.standard_normal: known noise tensors, one per call, with a call log."""

    def __init__(self, seed=123, fail_on=None):
        self.gen, self.calls, self.fail_on = torch.Generator().manual_seed(seed), [], fail_on

    def __call__(self, like, generator=None):
        z = torch.randn(like.shape, generator=self.gen, dtype=like.dtype)
        if self.fail_on is not None and len(self.calls) + 1 == self.fail_on:
            z = torch.full_like(z, float("inf"))
        self.calls.append(z)
        return z


def _gauss_score(sde, s0):
    """Exact score of p(x, t) = N(0, s0^2 f^2 + Xi) for the target N(0, s0^2)."""

    def score(x, t):
        var = s0**2 * sde.f(t) ** 2 + sde.xi(t)
        return -x / var.reshape((-1,) + (1,) * (x.ndim - 1))

    return score


# --- grid and single step ---------------------------------------------------------------------------------------------
def test_uniform_evaluations_is_the_authors_grid():
    tg = grids.uniform_evaluations(ve())
    grid = tg.t_eval
    assert grid.dtype == torch.float64 and grid.shape == (1000,) and tg.t.shape == (1001,) and tg.n_steps == 1000
    assert float(grid[0]) == 1.0 and float(grid[-1]) == pytest.approx(1e-3, rel=1e-12)
    assert float(grid[0] - grid[1]) == pytest.approx(1e-3, rel=1e-9)  # the authors' dt: last step ends at t ~ 0
    small = grids.uniform_evaluations(ve(T=2.0), 5, t_end=0.4)
    torch.testing.assert_close(small.t_eval, torch.tensor([2.0, 1.6, 1.2, 0.8, 0.4], dtype=torch.float64))
    torch.testing.assert_close(small.t, torch.tensor([2.0, 1.6, 1.2, 0.8, 0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(small.h, torch.full((5,), 0.4, dtype=torch.float64))
    for bad in ({"n_steps": 1}, {"n_steps": 5, "t_end": 0.0}, {"n_steps": 5, "t_end": 2.0}):
        with pytest.raises(ValueError):
            grids.uniform_evaluations(ve(T=2.0), **bad)


def test_em_step(monkeypatch):
    noise = FakeNoise()
    monkeypatch.setattr(_random, "standard_normal", noise)
    x, drift = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.25])
    out = em_step(x, drift, 3.0, 0.01)
    torch.testing.assert_close(out, x + drift * 0.01 + 3.0 * 0.1 * noise.calls[0])
    torch.testing.assert_close(em_step(x, drift, 3.0, 0.01, add_noise=False), x + drift * 0.01)
    assert len(noise.calls) == 1


# --- exact update formulas with monkeypatched noise --------------------------------------------------------------------
@pytest.mark.parametrize("c", [0.0, 0.5, 1.0])
def test_forward_em_update_formula(monkeypatch, c):
    noise = FakeNoise()
    monkeypatch.setattr(_random, "standard_normal", noise)
    sde = interpolating(c, sigma=10.0)
    x0 = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.0]], dtype=torch.float64)
    n = 4
    out = forward_em(sde, x0, grids.uniform_states(sde, n, 0.0))
    assert len(noise.calls) == n
    dt, x = 1.0 / n, x0.clone()
    for k in range(n):  # x_{k+1} = x_k - c g^2(t_k) x_k dt / 2 + g(t_k) sqrt(dt) z_k, g = 10^t
        t = k * dt
        x = x - 0.5 * c * 10.0 ** (2 * t) * x * dt + 10.0**t * math.sqrt(dt) * noise.calls[k]
    torch.testing.assert_close(out.x, x, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("c", [0.0, 1.0])
@pytest.mark.parametrize("mode", ["authors", "noise_last", "probability_flow"])
def test_backward_em_update_formula(monkeypatch, c, mode):
    noise = FakeNoise()
    monkeypatch.setattr(_random, "standard_normal", noise)
    sde = interpolating(c, sigma=10.0)
    seen_t = []

    def score(x, t):  # an arbitrary smooth score, with a check of the time argument
        seen_t.append(t.clone())
        return -2.0 * x + 0.3 * t[:, None]

    x_T = torch.tensor([[0.3, -1.2], [2.0, 0.1]], dtype=torch.float64)
    flags = {"noise_last": mode == "noise_last", "probability_flow": mode == "probability_flow"}
    out = backward_em(sde, score, x_T, grids.uniform_evaluations(sde, 4, 0.1), **flags)

    grid, dt = [1.0, 0.7, 0.4, 0.1], 0.3
    n_noise = {"authors": 3, "noise_last": 4, "probability_flow": 0}[mode]
    assert len(noise.calls) == n_noise
    x = x_T.clone()
    for i, t in enumerate(grid):
        g2, s = 10.0 ** (2 * t), -2.0 * x + 0.3 * t
        weight = 0.5 if mode == "probability_flow" else 1.0
        x = x + (0.5 * c * g2 * x + weight * g2 * s) * dt  # -K + g^2 s (ODE: g^2 s / 2)
        if i < n_noise:
            x = x + 10.0**t * math.sqrt(dt) * noise.calls[i]
    torch.testing.assert_close(out.x, x, rtol=1e-12, atol=1e-12)
    for t_arg, t in zip(seen_t, grid):  # score(x, t) gets a (B,) tensor of x's dtype
        assert t_arg.shape == (2,) and t_arg.dtype == torch.float64
        torch.testing.assert_close(t_arg, torch.full((2,), t, dtype=torch.float64))


def test_forward_em_on_a_non_uniform_grid(monkeypatch):
    """forward_em reads any grid upwards: on the Karras grid each step has its own size and starts at a grid time."""
    noise = FakeNoise()
    monkeypatch.setattr(_random, "standard_normal", noise)
    sde = interpolating(1.0, sigma=10.0)
    grid = grids.karras(sde, 5, t_end=0.05)
    x0 = torch.tensor([[0.3, -1.2], [2.0, 0.1]], dtype=torch.float64)
    seen = []
    out = forward_em(sde, x0, grid, observe=lambda x, t: seen.append(t) or {"x": x})
    times = grid.t.flip(0).tolist()
    assert seen == times and len(noise.calls) == 5
    x = x0.clone()
    for k in range(5):
        t, dt = times[k], times[k + 1] - times[k]
        x = x - 0.5 * 10.0 ** (2 * t) * x * dt + 10.0**t * math.sqrt(dt) * noise.calls[k]
    torch.testing.assert_close(out.x, x, rtol=1e-13, atol=1e-13)


# --- records, shapes, reproducibility --------------------------------------------------------------------------------
def test_records():
    sde = vp()
    x0 = torch.zeros(50, 2, dtype=torch.float64)

    seen = []

    def observe(x, t):
        seen.append(t)
        return {"m2": (x**2).mean(), "per_component": x.mean(0)}

    run = forward_em(sde, x0, grids.uniform_states(sde, 10, 0.0), make_generator(0), observe=observe, record_every=3)
    assert seen == run.t.tolist()  # the observer receives each record's time
    assert isinstance(run, Trajectory)
    torch.testing.assert_close(run.t, torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0], dtype=torch.float64))
    assert run.records["m2"].shape == (5,) and run.records["per_component"].shape == (5, 2)
    assert float(run.records["m2"][0]) == 0.0
    torch.testing.assert_close(run.records["m2"][-1], (run.x**2).mean())

    back = backward_em(sde, lambda x, t: -x, run.x, grids.uniform_evaluations(sde, 10, 0.1), make_generator(1),
                       observe=observe, record_every=4)
    grid, dt = grids.uniform_evaluations(sde, 10, 0.1).t_eval, 0.1
    torch.testing.assert_close(back.t, torch.stack([grid[0], grid[3] - dt, grid[7] - dt, grid[9] - dt]))
    torch.testing.assert_close(back.records["m2"][-1], (back.x**2).mean())

    silent = forward_em(sde, x0, grids.uniform_states(sde, 10, 0.0), make_generator(0))
    assert silent.records == {} and silent.t.shape == (0,)
    torch.testing.assert_close(silent.x, run.x, rtol=0, atol=0)  # same seed, same path


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_dtype_and_reproducibility(shape):
    sde = interpolating(0.5)
    x0 = torch.ones(shape, dtype=torch.float32)
    a = forward_em(sde, x0, grids.uniform_states(sde, 20, 0.0), make_generator(7)).x
    b = forward_em(sde, x0, grids.uniform_states(sde, 20, 0.0), make_generator(7)).x
    c = forward_em(sde, x0, grids.uniform_states(sde, 20, 0.0), make_generator(8)).x
    assert a.shape == shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    score = _gauss_score(sde, 1.0)
    for flow in (False, True):
        out = backward_em(sde, score, a, grids.uniform_evaluations(sde, 20), make_generator(9), probability_flow=flow).x
        assert out.shape == shape and out.dtype == torch.float32 and bool(torch.isfinite(out).all())


# --- bad input and runaway -------------------------------------------------------------------------------------------
def test_bad_input():
    sde = ve()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="x0 contains non-finite values"):
        forward_em(sde, torch.tensor([[0.0, float("nan")]]), grids.uniform_states(sde, 10, 0.0))
    with pytest.raises(ValueError, match="x_T contains non-finite values"):
        backward_em(sde, lambda x, t: x, torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match="grid must be a lib.diffusion.grids.TimeGrid"):
        forward_em(sde, x, 10)
    with pytest.raises(ValueError, match="grid must be a lib.diffusion.grids.TimeGrid"):
        backward_em(sde, lambda x, t: x, x, 10)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        grids.uniform_states(sde, 2.5, 0.0)
    with pytest.raises(ValueError, match="record_every must be an integer >= 1"):
        forward_em(sde, x, grids.uniform_states(sde, 10, 0.0), record_every=0)
    with pytest.raises(ValueError, match="n_steps must be >= 2"):
        grids.uniform_evaluations(sde, 1)
    with pytest.raises(ValueError, match=r"t_end must lie in \(0, T\)"):
        grids.uniform_evaluations(sde, 10, 1.0)
    with pytest.raises(ValueError, match="t_end must be > 0"):
        grids.uniform_evaluations(sde, 10, 0.0)
    with pytest.raises(ValueError, match="score must be a tensor of the shape of x"):
        backward_em(sde, lambda x, t: x[:, 0], x, grids.uniform_evaluations(sde, 5))
    with pytest.raises(ValueError, match="score must be a callable"):
        backward_em(sde, torch.zeros(4, 2), x)
    with pytest.raises(ValueError, match=r"x0 must be a floating tensor of shape \(B, ...\)"):
        forward_em(sde, torch.zeros(4, 2, dtype=torch.int64), grids.uniform_states(sde, 10, 0.0))


def test_non_finite_during_forward_run(monkeypatch):
    monkeypatch.setattr(_random, "standard_normal", FakeNoise(fail_on=3))
    with pytest.raises(NonFiniteError, match=r"forward_em: x became non-finite at step 3 of 10 \(t = 0.3\)"):
        forward_em(vp(), torch.zeros(5), grids.uniform_states(vp(), 10, 0.0))


def test_non_finite_during_backward_run():
    def score(x, t):  # blows up below t = 0.5
        return torch.where(t[:, None] < 0.5, torch.full_like(x, float("nan")), -x)

    with pytest.raises(NonFiniteError, match=r"backward_solve\(euler\): x became non-finite at step 7 of 10 \(t = 0.3\)"):
        backward_em(vp(), score, torch.zeros(5, 2), grids.uniform_evaluations(vp(), 10, 0.1), make_generator(0))
    assert issubclass(NonFiniteError, ValueError)


# --- statistics ------------------------------------------------------------------------------------------------------
# 20000 samples: below torch's intra-op parallel threshold, so the runtime does not depend on the machine's load.
N_STAT = 20_000


@pytest.mark.parametrize("c", [0.0, 0.5, 1.0], ids=["ve", "c=0.5", "vp"])
def test_forward_em_moments_match_kernel(c):
    """Mean m0 f(t) and variance var0 f^2 + Xi(t) at t = 0.25, 0.5, 0.75, 1.

    Two checks: (i) the simulation agrees with the exact moments of the Euler-Maruyama chain, m' = a m,
    v' = a^2 v + g^2 dt, a = 1 - c g^2 dt / 2, within 5 statistical sigma; (ii) those differ from the continuous
    m0 f(t), var0 f^2 + Xi(t) by at most 3 % (the O(dt) bias of the scheme; largest for VP at t = T, 2.6 %).
    """
    sde, n, n_steps, m0, var0 = interpolating(c, sigma=10.0), N_STAT, 1000, 1.0, 0.25
    x0 = m0 + math.sqrt(var0) * torch.randn(n, generator=make_generator(11), dtype=torch.float64)
    run = forward_em(sde, x0, grids.uniform_states(sde, n_steps, 0.0), make_generator(12), observe=lambda x, t: {"mean": x.mean(), "var": x.var()},
                     record_every=250)
    torch.testing.assert_close(run.t, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    dt, m, v, em = 1.0 / n_steps, m0, var0, {0: (m0, var0)}
    for k in range(n_steps):
        g2 = 10.0 ** (2 * k * dt)
        a = 1 - 0.5 * c * g2 * dt
        m, v = a * m, a * a * v + g2 * dt
        em[k + 1] = (m, v)
    for j, t in enumerate(run.t.tolist()):
        f, xi = float(sde.f(t)), float(sde.xi(t))
        mean, var = m0 * f, var0 * f**2 + xi
        em_mean, em_var = em[round(t / dt)]
        assert abs(float(run.records["mean"][j]) - em_mean) <= 5 * math.sqrt(em_var / n), t
        assert abs(float(run.records["var"][j]) - em_var) <= 5 * em_var * math.sqrt(2 / (n - 1)), t
        assert abs(em_mean - mean) <= 0.03 * math.sqrt(var) and abs(em_var - var) <= 0.03 * var, t


def _em_backward_variance(sde, s0, v_T, n_steps=1000, t_end=1e-3, flow=False):
    """Exact variance after the authors' sampler for the target N(0, s0^2) with the exact score, started from
    N(0, v_T): the update is linear, x' = a x + g sqrt(dt) z with a = 1 + (c g^2 / 2 - w g^2 / V(t)) dt."""
    grid = grids.uniform_evaluations(sde, n_steps, t_end).t_eval.tolist()
    dt, v, w = grid[0] - grid[1], v_T, 0.5 if flow else 1.0
    for i, t in enumerate(grid):
        g2, V = float(sde.g2(t)), s0**2 * float(sde.f(t)) ** 2 + float(sde.xi(t))
        a = 1 + (0.5 * sde.c * g2 - w * g2 / V) * dt
        v = a * a * v + (0.0 if flow or i == n_steps - 1 else g2 * dt)
    return v


SCHEMES = {"ve sigma=10": ve(10.0), "vp sigma=10": vp(10.0), "vp linear beta": LinearDriftSDE(LinearBetaNoise(), 1.0)}


@pytest.mark.parametrize("name", SCHEMES)
def test_backward_em_with_exact_score_regenerates_gaussian_target(name):
    """The authors' sampler (1000 steps, t = 1 -> 1e-3, no noise on the last step) started from the prior with the
    exact score of p(x, t) = N(0, s0^2 f^2 + Xi) regenerates the target N(0, s0^2):
    variance within 5 statistical sigma + 0.5 % of s0^2 (the Euler-Maruyama bias, < 0.3 % here, is checked
    separately with the exact recursion), mean within 5 sigma of 0."""
    sde, s0, n = SCHEMES[name], 0.8, N_STAT
    x_T = sde.prior_sample((n,), make_generator(21), dtype=torch.float64)
    x = backward_em(sde, _gauss_score(sde, s0), x_T, generator=make_generator(22)).x
    var = s0**2
    assert abs(float(x.mean())) <= 5 * math.sqrt(var / n)
    assert abs(float(x.var()) - var) <= 5 * var * math.sqrt(2 / (n - 1)) + 0.005 * var
    assert abs(_em_backward_variance(sde, s0, sde.prior_std() ** 2) / var - 1) < 0.005


@pytest.mark.parametrize("name", SCHEMES)
def test_probability_flow_maps_marginal_at_T_to_target(name):
    """The probability-flow ODE with the exact score maps p(x, T) to N(0, s0^2).

    Started from p(x, T) itself (x0 ~ target pushed through the exact kernel): the ODE is deterministic and does not
    correct a mismatch of the VE prior N(0, Xi(T)) (for s0 = 0.8 that would be a 3 % bias, see the last assert).
    For this linear problem the flow map is x -> x sqrt(V(0) / V(T)), V(t) = s0^2 f^2 + Xi, so it is checked sample by
    sample (1 %) and in variance (5 statistical sigma + 1 %)."""
    sde, s0, n = SCHEMES[name], 0.8, N_STAT
    x0 = s0 * torch.randn(n, generator=make_generator(31), dtype=torch.float64)
    x_T, _ = sde.sample_marginal(x0, sde.T, make_generator(32))
    out = backward_em(sde, _gauss_score(sde, s0), x_T, probability_flow=True)
    v_T = s0**2 * float(sde.f(sde.T)) ** 2 + float(sde.xi(sde.T))
    np.testing.assert_allclose((out.x / x_T).numpy(), s0 / math.sqrt(v_T), rtol=0.01)
    var = s0**2
    assert abs(float(out.x.var()) - var) <= 5 * var * math.sqrt(2 / (n - 1)) + 0.01 * var
    assert abs(_em_backward_variance(sde, s0, v_T, flow=True) / var - 1) < 0.01
    from_prior = _em_backward_variance(sde, s0, sde.prior_std() ** 2, flow=True) / var
    assert from_prior == pytest.approx(sde.prior_std() ** 2 / v_T, rel=0.01)  # the prior mismatch is carried over


# --- better integrators: stochastic Heun, Heun ODE, adaptive RK45 ----------------------------------------------------
def test_uniform_states_grid():
    tg = grids.uniform_states(ve(), 3, t_end=0.1)
    torch.testing.assert_close(tg.t, torch.tensor([1.0, 0.7, 0.4, 0.1], dtype=torch.float64))
    torch.testing.assert_close(tg.t_eval, tg.t[:-1])
    torch.testing.assert_close(tg.h, tg.t[:-1] - tg.t[1:])
    assert grids.uniform_states(ve(), 1, t_end=0.0).t.tolist() == [1.0, 0.0] and tg.t_end == pytest.approx(0.1)
    for bad in ({"n_steps": 0}, {"n_steps": 3, "t_end": 1.0}, {"n_steps": 3, "t_end": -0.1}):
        with pytest.raises(ValueError):
            grids.uniform_states(ve(), **bad)


def test_backward_solve_takes_a_grid_value():
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="TimeGrid"):
        backward_solve(ve(), lambda x, t: -x, x, 10)
    with pytest.raises(ValueError, match="evaluation times"):  # Heun needs evaluations at the states' times
        backward_solve(ve(), lambda x, t: -x, x, grids.uniform_evaluations(ve(), 10), "heun")
    with pytest.raises(ValueError, match="spacing"):
        grids.build(ve(), "log", 5, 1e-4)


def test_forward_marginals_records_at_the_given_times():
    sde = vp(10.0)
    x0 = torch.ones(4000, 2, dtype=torch.float64)
    run = forward_marginals(sde, x0, [0.0, 0.5, 1.0], make_generator(3),
                            observe=lambda x, t: {"mean": x.mean(), "var": x.var()})
    torch.testing.assert_close(run.t, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    for j, t in enumerate((0.0, 0.5, 1.0)):
        f, xi = float(sde.f(t)), float(sde.xi(t))
        assert abs(float(run.records["mean"][j]) - f) <= 5 * math.sqrt(max(xi, 1e-12) / 8000) + 1e-12
        assert abs(float(run.records["var"][j]) - xi) <= 5 * xi * math.sqrt(2 / 7999) + 1e-12


def test_heun_step_formula():
    def drift(x, t):
        return -3.0 * x * t + x**2

    x, w = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.1, 0.2], dtype=torch.float64)
    h = 0.25
    d0 = drift(x, 1.0)
    pred = x + d0 * h + w
    torch.testing.assert_close(heun_step(x, drift, 1.0, 0.75, w), x + 0.5 * (d0 + drift(pred, 0.75)) * h + w)
    pred = x + d0 * h
    torch.testing.assert_close(heun_step(x, drift, 1.0, 0.75), x + 0.5 * (d0 + drift(pred, 0.75)) * h)


@pytest.mark.parametrize("c", [0.0, 1.0])
@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("flow", [False, True])
def test_backward_solve_update_formula(monkeypatch, c, method, flow):
    noise = FakeNoise()
    monkeypatch.setattr(_random, "standard_normal", noise)
    sde = interpolating(c, sigma=10.0)
    seen_t = []

    def score(x, t):
        seen_t.append(float(t[0]))
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype
        return -2.0 * x + 0.3 * t[:, None]

    x_T = torch.tensor([[0.3, -1.2], [2.0, 0.1]], dtype=torch.float64)
    out = backward_solve(sde, score, x_T, grids.uniform_states(sde, 3, 0.1), method=method, probability_flow=flow)
    assert len(noise.calls) == (0 if flow else 3)
    w = 0.5 if flow else 1.0

    def D(x, t):
        g2 = 10.0 ** (2 * t)
        return 0.5 * c * g2 * x + w * g2 * (-2.0 * x + 0.3 * t)

    u = lambda t: (10.0 ** (2 * t) - 1) / (2 * math.log(10.0))
    x, grid = x_T.clone(), [1.0, 0.7, 0.4, 0.1]
    for i in range(3):
        t, tn = grid[i], grid[i + 1]
        if method == "euler":
            x = x + D(x, t) * 0.3 + (0 if flow else 10.0**t * math.sqrt(0.3) * noise.calls[i])
        else:
            z = 0 if flow else math.sqrt(u(t) - u(tn)) * noise.calls[i]
            pred = x + D(x, t) * 0.3 + z
            x = x + 0.5 * (D(x, t) + D(pred, tn)) * 0.3 + z
    torch.testing.assert_close(out.x, x, rtol=1e-12, atol=1e-12)
    expected_t = grid[:3] if method == "euler" else [s for i in range(3) for s in (grid[i], grid[i + 1])]
    assert seen_t == pytest.approx(expected_t)


@pytest.mark.parametrize("name", ["ve sigma=10", "vp sigma=10"])
def test_heun_ode_is_second_order_and_euler_first_order(name):
    """For a Gaussian target the flow map is x -> x sqrt(V(t_end) / V(T)), V = s0^2 f^2 + Xi. The error of the end
    point must fall by ~4 per halving of the step for Heun (second order) and by ~2 for Euler (first order)."""
    sde, s0 = SCHEMES[name], 0.8
    x_T = torch.ones(1, dtype=torch.float64)
    V = lambda t: s0**2 * float(sde.f(t)) ** 2 + float(sde.xi(t))
    exact = math.sqrt(V(1e-3) / V(1.0))
    for method, order in (("heun", 2), ("euler", 1)):
        err = [abs(float(backward_solve(sde, _gauss_score(sde, s0), x_T, grids.uniform_states(sde, n, 1e-3), method,
                                        probability_flow=True).x) - exact)
               for n in (200, 400, 800)]
        ratios = [err[0] / err[1], err[1] / err[2]]
        assert all(abs(r / 2**order - 1) < 0.15 for r in ratios), (method, ratios)


def test_stochastic_heun_beats_euler_maruyama_at_few_steps():
    """20 steps (40 score evaluations) of stochastic Heun from p(x, T) regenerate the VE variance within
    5 sigma (+0.5 %); Euler-Maruyama with 10 steps is biased by more than 5 sigma."""
    sde, s0, n = ve(10.0), 0.8, N_STAT
    x_T, _ = sde.sample_marginal(s0 * torch.randn(n, generator=make_generator(41), dtype=torch.float64), 1.0,
                                 make_generator(42))
    var = s0**2 + float(sde.xi(1e-3))
    heun = backward_solve(sde, _gauss_score(sde, s0), x_T, grids.uniform_states(sde, 20), "heun", make_generator(43)).x
    euler = backward_solve(sde, _gauss_score(sde, s0), x_T, grids.uniform_states(sde, 10), "euler", make_generator(44),
                           noise_last=True).x
    sigma = var * math.sqrt(2 / (n - 1))
    assert abs(float(heun.var()) - var) <= 5 * sigma + 0.005 * var
    assert abs(float(euler.var()) - var) > 5 * sigma


def test_probability_flow_ivp_gaussian_flow_map():
    sde, s0 = vp(10.0), 0.8
    x_T = torch.linspace(-3, 3, 101, dtype=torch.float64)
    out = probability_flow_ivp(sde, _gauss_score(sde, s0), x_T, t_end=1e-3, rtol=1e-9, atol=1e-9)
    V = lambda t: s0**2 * float(sde.f(t)) ** 2 + float(sde.xi(t))
    torch.testing.assert_close(out.x, x_T * math.sqrt(V(1e-3) / V(1.0)), rtol=1e-6, atol=1e-7)
    assert out.nfev > 10 and out.x.dtype == x_T.dtype
    loose = probability_flow_ivp(sde, _gauss_score(sde, s0), x_T, rtol=1e-3, atol=1e-3)
    assert loose.nfev < out.nfev
    with pytest.raises(ValueError):
        probability_flow_ivp(sde, _gauss_score(sde, s0), x_T, t_end=1.0)


def test_karras_grid_is_uniform_in_xi_to_the_one_over_two_rho():
    sde = ve(25.0)
    grid = grids.karras(sde, 40, t_end=1e-4, rho=7.0).t
    assert grid.dtype == torch.float64 and grid.shape == (41,)
    assert float(grid[0]) == 1.0 and float(grid[-1]) == 1e-4 and bool((grid[1:] < grid[:-1]).all())
    root = sde.xi(grid) ** (1 / 14)
    steps = root[1:] - root[:-1]
    torch.testing.assert_close(steps, steps.mean().expand_as(steps), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="t_end"):
        grids.karras(sde, 10, t_end=0.0)


def test_backward_solve_karras_heun_samples_a_narrow_gaussian():
    """A target of variance 0.01 under VE(25): 50 Heun steps on the Karras grid are unbiased to ~1%,
    the uniform grid is not."""
    sde, v = ve(25.0), 0.01
    def score(x, t):
        return -x / (v + sde.xi(t).to(x.dtype)[:, None])
    gen = make_generator(3)
    x_T = torch.randn(100_000, 1, generator=gen, dtype=torch.float64) * math.sqrt(v + float(sde.xi(1.0)))
    target = v + float(sde.xi(1e-4))
    karras = backward_solve(sde, score, x_T, grids.karras(sde, 50, 1e-4), generator=gen)
    uniform = backward_solve(sde, score, x_T, grids.uniform_states(sde, 50, 1e-4), generator=gen)
    assert abs(float(karras.x.var()) / target - 1) < 0.025  # statistical error 0.45%
    assert abs(float(uniform.x.var()) / target - 1) > 0.1
    with pytest.raises(ValueError, match="spacing"):
        grids.build(sde, "log", 5, 1e-4)
