"""Tests of lib.physics.langevin: the update formula, the stationary distribution and its O(eps) bias, shapes, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lib.core.random
from lib import stats
from lib.core.checks import NonFiniteError
from lib.physics.langevin import LangevinRun, langevin, langevin_step
from lib.physics.toy import QuarticOscillator

N_SIGMA = 4.0


def gaussian_force(x):
    return -x  # S = x^2 / 2


class FakeNoise:
    """Deterministic stand-in for lib.core.random.standard_normal: call k returns 0.1 k + 0.01 * index."""

    def __init__(self):
        self.calls = 0

    def __call__(self, like, generator=None):
        self.calls += 1
        ramp = torch.arange(like.numel(), dtype=like.dtype).reshape(like.shape)
        return 0.1 * self.calls + 0.01 * ramp


# --------------------------------------------------------------------------- update formula
def test_update_formula_exact(monkeypatch):
    noise = FakeNoise()
    monkeypatch.setattr(lib.core.random, "standard_normal", noise)
    q = QuarticOscillator(m2=0.5, lam=0.3)
    x0 = torch.tensor([[0.2, -1.0], [1.5, 0.0], [-0.3, 0.7]], dtype=torch.float64)
    eps, n_therm, n_steps = 0.05, 2, 3
    run = langevin(q.force, x0, eps, n_steps, n_therm=n_therm)
    expected = x0.clone()
    reference = FakeNoise()
    records = []
    for n in range(n_therm + n_steps):
        if n >= n_therm:
            records.append(expected.clone())
        expected = expected - eps * (0.5 * expected + 0.3 * expected**3) + math.sqrt(2 * eps) * reference(expected)
    records.append(expected.clone())
    assert noise.calls == n_therm + n_steps
    torch.testing.assert_close(run.x, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(run.records["x"], torch.stack(records), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(run.t, eps * torch.arange(n_therm, n_therm + n_steps + 1, dtype=torch.float64))
    # a single step
    monkeypatch.setattr(lib.core.random, "standard_normal", lambda like, generator=None: torch.ones_like(like))
    torch.testing.assert_close(langevin_step(gaussian_force, x0, eps), x0 * (1 - eps) + math.sqrt(2 * eps))


def test_records_observe_and_reproducible():
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    x0 = torch.zeros(8, 3)
    obs = lambda x, t: {"m": x.mean(dim=1), "m2": (x**2).mean()}  # noqa: E731
    run = langevin(gaussian_force, x0, 0.1, 10, generator=gen(), n_therm=5, record_every=3, observe=obs)
    assert isinstance(run, LangevinRun)
    assert set(run.records) == {"m", "m2"}
    assert run.records["m"].shape == (4, 8) and run.records["m2"].shape == (4,)  # production steps 0, 3, 6, 9
    torch.testing.assert_close(run.t, torch.tensor([0.5, 0.8, 1.1, 1.4], dtype=torch.float64))
    again = langevin(gaussian_force, x0, 0.1, 10, generator=gen(), n_therm=5, record_every=3, observe=obs)
    assert torch.equal(run.x, again.x)
    other = langevin(gaussian_force, x0, 0.1, 10, generator=torch.Generator().manual_seed(2), n_therm=5)
    assert not torch.equal(run.x, other.x)
    # no production steps: the thermalised state is the one record
    run0 = langevin(gaussian_force, x0, 0.1, 0, generator=gen(), n_therm=5)
    assert run0.records["x"].shape == (1, 8, 3)
    torch.testing.assert_close(run0.records["x"][0], run0.x)


# --------------------------------------------------------------------------- stationary distribution
def test_gaussian_stationary_variance_has_the_exact_step_size_bias():
    """x' = (1 - eps) x + sqrt(2 eps) eta: var = 2 eps / (1 - (1 - eps)^2) = 1 / (1 - eps/2), tau_int(x) = (2 - eps) / (2 eps)."""
    eps = 0.1
    x0 = torch.zeros(1000, dtype=torch.float64)
    run = langevin(gaussian_force, x0, eps, 2000, generator=torch.Generator().manual_seed(3), n_therm=300)
    x = run.records["x"].numpy()  # (n_records, n_chains): chains along axis 1
    var, err = stats.mean_error(x**2)
    exact = 1.0 / (1.0 - eps / 2)
    assert abs(var - exact) <= N_SIGMA * err, (var, err, exact)
    assert abs(var - 1.0) > N_SIGMA * err  # the O(eps) bias is resolved: the test can tell 1 from 1/(1 - eps/2)
    mean, err_mean = stats.mean_error(x)
    assert abs(mean) <= N_SIGMA * err_mean
    # the chain is an AR(1) process with a = 1 - eps
    res = stats.tau_int(x)
    assert abs(res.tau - 0.5 * (2 - eps) / eps) <= N_SIGMA * res.tau_error, res


@pytest.mark.parametrize("shape", [(200, 2), (50, 4, 4)])
def test_gaussian_stationary_variance_any_shape(shape):
    eps = 0.2
    run = langevin(gaussian_force, torch.zeros(shape), eps, 1000, generator=torch.Generator().manual_seed(4),
                   n_therm=100, observe=lambda x, t: {"x2": (x**2).flatten(1).mean(dim=1)})
    assert run.x.shape == shape and run.x.dtype == torch.float32
    var, err = stats.mean_error(run.records["x2"].double().numpy())
    exact = 1.0 / (1.0 - eps / 2)
    assert abs(var - exact) <= N_SIGMA * err, (var, err, exact)
    assert abs(var - 1.0) > N_SIGMA * err


def test_quartic_oscillator_moments():
    """Small step: <x^2>, <x^4> of exp(-S) up to the O(eps) bias (a wrong noise normalisation is off by ~35%)."""
    q = QuarticOscillator(m2=1.0, lam=1.0)
    eps = 0.01
    run = langevin(q.force, torch.zeros(500, dtype=torch.float64), eps, 3000,
                   generator=torch.Generator().manual_seed(5), n_therm=500, record_every=5)
    x = run.records["x"].numpy()
    exact = q.exact_moments(4)
    for n in (2, 4):
        value, err = stats.mean_error(x**n)
        assert abs(value - exact[n]) <= N_SIGMA * err + 0.03 * exact[n], (n, value, err, exact[n])


# --------------------------------------------------------------------------- runaway and bad input
def test_runaway_raises_naming_the_step():
    def unstable_force(x):  # S = -x^4: K = 4 x^3 pushes x to infinity
        return 4 * x**3

    with pytest.raises(NonFiniteError, match=r"Langevin step \d+ of 100"):
        langevin(unstable_force, torch.full((4,), 2.0), 0.5, 100, generator=torch.Generator().manual_seed(6))
    with pytest.raises(NonFiniteError, match="step 1 of 10"):
        langevin(lambda x: x * float("nan"), torch.ones(3), 0.1, 10)


@pytest.mark.parametrize("step", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_step(step):
    with pytest.raises(ValueError, match="step"):
        langevin(gaussian_force, torch.zeros(3), step, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_steps=-1), "n_steps"),
        (dict(n_steps=2.5), "n_steps"),
        (dict(n_steps=True), "n_steps"),
        (dict(n_therm=-1), "n_therm"),
        (dict(record_every=0), "record_every"),
        (dict(x0=np.zeros(3)), "x0"),
        (dict(x0=torch.zeros(())), "x0"),
        (dict(x0=torch.zeros(3, dtype=torch.int64)), "floating"),
        (dict(x0=torch.zeros(3, dtype=torch.complex64)), "complex"),
        (dict(x0=torch.tensor([0.0, float("nan")])), "non-finite"),
        (dict(force=lambda x: x.sum()), "shape"),
        (dict(observe=lambda x, t: x), "dict"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(force=gaussian_force, x0=torch.zeros(3), step=0.1, n_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        langevin(**args)
