"""Nothing computed is lost: a sampler that fails part-way raises an error that names the failing members and carries
the run up to the last complete step (``.partial``) and their indices (``.bad``).  Before, a runaway complex Langevin
trajectory, one diverging HMC chain of 16 or a NaN score at step k discarded everything computed so far."""
import pytest
import torch

from lib.core.checks import NonFiniteError
from lib.core.random import make_generator
from lib.diffusion import grids, solvers
from lib.diffusion.sde import ve
from lib.physics import hmc, langevin, phi4
from lib.physics.complex_langevin import RunawayError, complex_langevin


def test_backward_run_with_a_nan_score_keeps_the_finished_steps():
    sde = ve()

    def score(x, t):  # sample 3 gets a NaN score below t = 0.5
        s = -x
        if float(t[0]) < 0.5:
            s = s.clone()
            s[3] = float("nan")
        return s

    x_T = torch.zeros(64, 2, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match=r"1 of 64 samples \(3\)") as info:
        solvers.backward_solve(sde, score, x_T, grids.uniform_states(sde, 10, 0.1), "euler", make_generator(0),
                               observe=lambda x, t: {"m": x.mean()})
    err = info.value
    assert err.bad.tolist() == [3]
    assert err.partial.x.shape == (64, 2) and bool(torch.isfinite(err.partial.x).all())
    # the score at t = 0.46 (step 7) fails: the states after steps 1-6 are kept
    assert err.partial.t.tolist() == pytest.approx([1.0, 0.91, 0.82, 0.73, 0.64, 0.55, 0.46])
    assert err.partial.records["m"].shape == (7,)


def test_hmc_with_one_diverging_chain_keeps_the_measured_trajectories(monkeypatch):
    params = phi4.Phi4Params(4, 0.21, 0.022)
    gen = make_generator(1)
    phi0 = phi4.hot_start(params, 16, gen)
    real, calls = phi4._force, []

    def force(phi, kappa, lam):  # chain 5 blows up in the 4th trajectory (3 steps each)
        calls.append(1)
        out = real(phi, kappa, lam)
        if len(calls) > 3 * 4:
            out = out.clone()
            out[5] = float("inf")
        return out

    monkeypatch.setattr(phi4, "_force", force)
    with pytest.raises(NonFiniteError, match=r"trajectory 4 in 1 of 16 chains \(5\)") as info:
        hmc.hmc(params, phi0, 10, 0.3, 3, gen, keep_every=1)
    run = info.value.partial
    assert info.value.bad.tolist() == [5]
    assert run.accepted.shape == (3, 16) and run.records["M"].shape == (3, 16) and run.kept.shape == (3, 16, 4, 4)
    assert bool(torch.isfinite(run.phi).all())


def test_runaway_complex_langevin_keeps_the_run_and_names_the_chain():
    z0 = torch.zeros(64, dtype=torch.complex128)
    z0[10] = 50.0  # far out: z^3 drift sends it away at once
    with pytest.raises(RunawayError, match=r"1 of 64 trajectories \(10\)") as info:
        complex_langevin(lambda z: -(z**3), z0, 0.01, 100, make_generator(2), record_every=1, max_abs=1e4)
    err = info.value
    assert err.bad.tolist() == [10] and isinstance(err, NonFiniteError)
    assert err.partial.z.shape == (64,) and err.partial.records["z"].shape[1] == 64


def test_langevin_runaway_keeps_the_records():
    x0 = torch.zeros(8, dtype=torch.float64)
    x0[2] = 30.0

    def force(x):
        return x**3  # unstable: the chain at 30 runs away

    with pytest.raises(NonFiniteError, match=r"1 of 8 chains \(2\)") as info:
        langevin.langevin(force, x0, step=0.01, n_steps=1000, generator=make_generator(3))
    assert info.value.bad.tolist() == [2] and info.value.partial.x.shape == (8,)
    assert info.value.partial.records["x"].shape[1:] == (8,)
