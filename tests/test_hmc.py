"""Tests of lib.physics.hmc: integrators (reversibility, energy-error scaling), the Metropolis step
(<exp(-dH)> = 1), bookkeeping (records, kept configurations, acceptance), randomness through
lib.core.random, non-finite runs and bad input."""
import math

import numpy as np
import pytest
import torch

from lib.core import random as _random
from lib.physics import hmc, phi4
from lib.core.checks import NonFiniteError
from lib.core.random import make_generator

F64 = torch.float64


def _force_of(p):
    return lambda x: phi4.force(x, p)


@pytest.fixture(scope="module")
def equilibrated():
    """256 equilibrated chains at L = 8, kappa = 0.25, lambda = 0.022 (float64)."""
    p = phi4.Phi4Params(L=8, kappa=0.25, lam=0.022)
    gen = make_generator(20)
    run = hmc.hmc(p, phi4.hot_start(p, 256, gen), n_traj=1, step=0.1, n_steps=10, generator=gen, n_therm=40)
    return p, run.phi


# ----------------------------------------------------------------------------- integrators
@pytest.mark.parametrize("name", ["leapfrog", "omelyan"])
def test_integrator_is_reversible(name, equilibrated):
    p, phi = equilibrated
    phi = phi[:16]
    pi = _random.standard_normal(phi, make_generator(21))
    step = torch.linspace(0.05, 0.2, 16, dtype=F64)  # one step size per chain
    integrate = hmc.INTEGRATORS[name]
    phi1, pi1 = integrate(phi, pi, _force_of(p), step, 25)
    assert (phi1 - phi).abs().max() > 0.1  # it moved
    phi2, pi2 = integrate(phi1, -pi1, _force_of(p), step, 25)
    assert (phi2 - phi).abs().max() < 1e-10
    assert (pi2 + pi).abs().max() < 1e-10


def test_integrators_do_not_modify_their_inputs(equilibrated):
    p, phi = equilibrated
    phi = phi[:4].clone()
    pi = _random.standard_normal(phi, make_generator(22))
    phi_copy, pi_copy = phi.clone(), pi.clone()
    for integrate in hmc.INTEGRATORS.values():
        integrate(phi, pi, _force_of(p), 0.1, 3)
    assert torch.equal(phi, phi_copy) and torch.equal(pi, pi_copy)


def test_leapfrog_single_step_formula():
    """One leapfrog step by hand for a harmonic force F = -x."""
    x = torch.tensor([[1.0, -2.0]], dtype=F64)
    p = torch.tensor([[0.5, 0.25]], dtype=F64)
    eps = 0.1
    ph = p - eps / 2 * x
    x1 = x + eps * ph
    p1 = ph - eps / 2 * x1
    xo, po = hmc.leapfrog(x, p, lambda y: -y, eps, 1)
    assert torch.allclose(xo, x1, atol=1e-15) and torch.allclose(po, p1, atol=1e-15)


def _acceptance_deficit(p, phi, pi, integrator, eps):
    """1 - <min(1, exp(-dH))> and <dH^2> of one trajectory of length 1 from the same (phi, pi)."""
    n = round(1.0 / eps)
    h0 = 0.5 * (pi**2).sum((1, 2)) + phi4.action(phi, p)
    phi1, pi1 = hmc.INTEGRATORS[integrator](phi, pi, _force_of(p), eps, n)
    dH = 0.5 * (pi1**2).sum((1, 2)) + phi4.action(phi1, p) - h0
    return float(1.0 - torch.clamp(torch.exp(-dH), max=1.0).mean()), float((dH**2).mean())


def test_acceptance_deficit_scales_as_step_squared(equilibrated):
    """Leapfrog: dH ~ eps^2 per trajectory, <dH> = <dH^2>/2 ~ V eps^4, so 1 - acceptance
    ~ sqrt(<dH>) ~ eps^2 (log-log slopes 2 for the deficit and 4 for <dH^2>).

    The same (phi, pi) are used for every step size (common random numbers), so the slope is
    precise.  (<dH> itself is not used: its sample mean over a few hundred chains is dominated
    by the O(eps^2) fluctuations that only cancel in equilibrium on average.)
    """
    p, phi = equilibrated
    pi = _random.standard_normal(phi, make_generator(23))
    steps = np.array([0.1, 0.05, 0.025, 0.0125])
    deficit, mean_dh2 = np.array([_acceptance_deficit(p, phi, pi, "leapfrog", e) for e in steps]).T
    slope_deficit = np.polyfit(np.log(steps), np.log(deficit), 1)[0]
    slope_dh2 = np.polyfit(np.log(steps), np.log(mean_dh2), 1)[0]
    assert slope_deficit == pytest.approx(2.0, abs=0.15), deficit
    assert slope_dh2 == pytest.approx(4.0, abs=0.3), mean_dh2
    # Omelyan: also second order, with a much smaller error at the same step
    om = np.array([_acceptance_deficit(p, phi, pi, "omelyan", e)[0] for e in steps])
    assert np.polyfit(np.log(steps), np.log(om), 1)[0] == pytest.approx(2.0, abs=0.15), om
    assert np.all(om < deficit / 10)


# ----------------------------------------------------------------------------- the Markov chain
def test_exp_minus_dH_averages_to_one(equilibrated):
    p, phi = equilibrated
    gen = make_generator(24)
    run = hmc.hmc(p, phi, n_traj=40, step=0.25, n_steps=4, generator=gen)
    assert 0.6 < run.acceptance < 0.95
    per_chain = torch.exp(-run.dH).mean(0)  # chains are independent: per-chain means give the error
    mean, err = float(per_chain.mean()), float(per_chain.std() / math.sqrt(per_chain.numel()))
    assert abs(mean - 1.0) < 5 * err and err < 0.02, (mean, err)
    assert float(run.dH.mean()) > 0  # Jensen: <dH> >= 0
    # acceptance probability estimated two ways: accept decisions and <min(1, exp(-dH))>
    p_acc = float(torch.clamp(torch.exp(-run.dH), max=1).mean())
    assert run.acceptance == pytest.approx(p_acc, abs=5 * math.sqrt(p_acc * (1 - p_acc) / run.dH.numel()))


def test_records_kept_configurations_and_reproducibility():
    p = phi4.Phi4Params(L=4, kappa=0.3, lam=0.05)
    gen = make_generator(25)
    phi0 = phi4.hot_start(p, 3, gen)
    run = hmc.hmc(p, phi0, n_traj=10, step=0.2, n_steps=5, generator=gen, record_every=5, keep_every=4, n_therm=2)
    assert run.phi.shape == (3, 4, 4) and run.accepted.shape == (10, 3) and run.dH.shape == (10, 3)
    assert run.traj.tolist() == [5, 10]
    assert set(run.records) == {"M", "absM", "M2", "action"}
    assert run.records["M"].shape == (2, 3)
    assert torch.allclose(run.records["M"][-1], run.phi.mean((1, 2)))
    assert torch.allclose(run.records["action"][-1], phi4.action(run.phi, p))
    assert torch.allclose(run.records["M2"], run.records["M"] ** 2)
    assert run.kept.shape == (2, 3, 4, 4) and run.kept_traj.tolist() == [4, 8]
    assert 0.0 <= run.acceptance <= 1.0
    gen2 = make_generator(25)
    phi4.hot_start(p, 3, gen2)
    again = hmc.hmc(p, phi0, n_traj=10, step=0.2, n_steps=5, generator=gen2, record_every=5, keep_every=4, n_therm=2)
    assert torch.equal(again.phi, run.phi) and torch.equal(again.accepted, run.accepted)
    quiet = hmc.hmc(p, phi0, n_traj=3, step=0.2, n_steps=5, generator=gen, record_every=0)
    assert quiet.records == {} and quiet.traj.numel() == 0 and quiet.kept is None
    assert not torch.equal(phi0, run.phi)  # the start is not modified in place ...
    assert torch.equal(phi0, phi4.hot_start(p, 3, make_generator(25)))  # ... and still the hot start


def test_momenta_come_from_lib_random(monkeypatch):
    """All Gaussian noise goes through lib.core.random.standard_normal: zero momenta at a stationary
    point leave the field exactly where it is, with dH = 0 and every trajectory accepted."""
    calls = []

    def zeros(like, generator=None):
        calls.append(tuple(like.shape))
        return torch.zeros_like(like)

    monkeypatch.setattr(_random, "standard_normal", zeros)
    p = phi4.Phi4Params(L=4, kappa=0.4, lam=0.022)
    phi0 = phi4.cold_start(p, 2)
    run = hmc.hmc(p, phi0, n_traj=3, step=0.1, n_steps=5, generator=make_generator(0), integrator="omelyan")
    assert calls == [(2, 4, 4)] * 3
    assert torch.allclose(run.phi, phi0, atol=1e-12) and run.accepted.all() and run.dH.abs().max() < 1e-9


def test_per_chain_accept_reject():
    """A chain with a hopeless step is rejected while its neighbour with a good step moves on."""
    p = phi4.Phi4Params(L=8, kappa=0.2, lam=0.022)
    gen = make_generator(26)
    phi0 = phi4.hot_start(p, 2, gen)
    step = torch.tensor([0.1, 1.3], dtype=F64)  # leapfrog is unstable beyond eps ~ 2/omega_max ~ 1.4
    run = hmc.hmc(p, phi0, n_traj=5, step=step, n_steps=3, generator=gen)
    assert run.accepted[:, 0].float().mean() > 0.5
    assert not run.accepted[:, 1].any() and torch.equal(run.phi[1], phi0[1])


def test_authors_ensemble_is_the_vectorised_protocol():
    p = phi4.Phi4Params(L=4, kappa=0.21, lam=0.022)
    out = hmc.chain_ends(p, 5, make_generator(27), n_traj=3, step=0.05, n_steps=4)
    gen = make_generator(27)
    ref = hmc.hmc(p, phi4.hot_start(p, 5, gen), 3, 0.05, 4, gen, record_every=0).phi
    assert out.shape == (5, 4, 4) and torch.equal(out, ref)


# ----------------------------------------------------------------------------- failures
def test_non_finite_hamiltonian_names_the_trajectory():
    p = phi4.Phi4Params(L=4, kappa=0.2, lam=0.5)
    gen = make_generator(28)
    with pytest.raises(NonFiniteError, match="non-finite Hamiltonian in HMC thermalisation trajectory 1"):
        hmc.hmc(p, phi4.hot_start(p, 2, gen), n_traj=2, step=3.0, n_steps=60, generator=gen, n_therm=1)


def test_bad_arguments():
    p = phi4.Phi4Params(L=4, kappa=0.2, lam=0.022)
    gen = make_generator(29)
    phi = phi4.hot_start(p, 2, gen)
    with pytest.raises(ValueError, match="step must be > 0"):
        hmc.hmc(p, phi, 1, 0.0, 5, gen)
    with pytest.raises(ValueError, match="step must be finite and > 0 for every chain"):
        hmc.hmc(p, phi, 1, torch.tensor([0.1, -0.1]), 5, gen)
    with pytest.raises(ValueError, match=r"step must be a number or have shape \(2,\)"):
        hmc.hmc(p, phi, 1, torch.tensor([0.1, 0.1, 0.1]), 5, gen)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        hmc.hmc(p, phi, 1, 0.1, 0, gen)
    with pytest.raises(ValueError, match="n_traj must be an integer >= 0"):
        hmc.hmc(p, phi, -1, 0.1, 5, gen)
    with pytest.raises(ValueError, match="integrator must be one of"):
        hmc.hmc(p, phi, 1, 0.1, 5, gen, integrator="euler")
    with pytest.raises(ValueError, match=r"phi0 must have shape \(B, L, L\)"):
        hmc.hmc(p, phi[:, :3], 1, 0.1, 5, gen)
    with pytest.raises(ValueError, match="jitter must be < 1"):
        hmc.hmc(p, phi, 1, 0.1, 5, gen, jitter=1.0)
    with pytest.raises(ValueError, match=r"jitter must lie in \[0.0, 1.0\]"):
        hmc.hmc(p, phi, 1, 0.1, 5, gen, jitter=-0.1)
    bad = phi.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="phi0 contains non-finite"):
        hmc.hmc(p, bad, 1, 0.1, 5, gen)
