"""Tests of lib.recipes.diffusion_as_sq at small sizes: the recipes of the chapter 'Diffusion models are stochastic
quantisation' (exact two-peak score; no trained network)."""
import numpy as np
import pytest

from lib.physics.toy import GaussianMixture
from lib.recipes import diffusion_as_sq as dsq


def test_sizes_by_scale():
    assert dsq.sizes("paper").n_samples == 10 * dsq.sizes("quick").n_samples
    with pytest.raises(ValueError, match="scale"):
        dsq.sizes("huge")


def test_late_start_of_a_gaussian_target_follows_the_closed_form():
    """Linear score: the prior's mismatch is transported, -v0^3 / (v0 + Xi(T'))^2 at the end."""
    target = GaussianMixture.gaussian(1.0625 ** 0.5)
    out = dsq.late_start((1.0, 0.3), n_samples=20_000, target=target)
    for t in (1.0, 0.3):
        k, dk = out[t]
        assert abs(k[2] - out["exact"][2] - out["gaussian_error"][t]) < 4 * dk[2]
    assert out["gaussian_error"][0.3] < -0.3  # large enough to be seen: the test can fail
    assert out["xi"][1.0] > out["xi"][0.3] > 0


def test_late_start_rejects_a_start_outside_the_process():
    with pytest.raises(ValueError, match="starting time"):
        dsq.late_start((1.5,), n_samples=100)
    with pytest.raises(ValueError, match="starting time"):
        dsq.late_start((0.0,), n_samples=100)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_frozen_drift_langevin_relaxes_to_the_power_of_the_marginal(alpha):
    r = dsq.frozen_drift_relaxation(0.3, alpha=alpha, n_steps=2000, n_chains=5000)
    assert abs(r["cumulants"][2] - r["exact"][2]) < max(4 * r["errors"][2], 0.02 * r["exact"][2])
    # alpha = 1/2 samples p^2: a much narrower distribution than p
    if alpha == 0.5:
        assert r["exact"][2] < 0.7 * dsq.frozen_drift_relaxation(0.3, alpha=1.0, n_steps=10, n_chains=10)["exact"][2]


def test_ddpm_and_euler_maruyama_converge_with_the_number_of_steps():
    out = dsq.ddpm_convergence((10, 300), n_samples=20_000)
    exact = out["exact"][2]
    k10, dk10 = out["ddpm"][10]
    k300, dk300 = out["ddpm"][300]
    assert abs(k10[2] - exact) > 5 * dk10[2]
    assert abs(k300[2] - exact) < 4 * dk300[2] + 0.01 * exact  # O(1/N) bias at N = 300 below 1%
    assert set(out["em"]) == {10, 300}


def test_loss_minimisers_are_at_the_exact_score():
    out = dsq.loss_minimisers((0.9, 1.0, 1.1), n_samples=10_000)
    assert np.argmin(out["eps"]) == 1 and np.argmin(out["dsm"]) == 1


def test_mode_signal_to_noise_drowns_the_ultraviolet_first():
    out = dsq.mode_signal_to_noise((0.05, 0.3, 0.6), L=16)
    assert out["p_hat"][0] == 0.0 and np.all(np.diff(out["p_hat"]) >= 0)
    for t in (0.05, 0.3, 0.6):  # the free propagator falls with |p|: so does the ratio
        assert np.all(np.diff(out["snr"][t]) <= 1e-12)
    assert out["p_star"][0.05] == out["p_hat"][-1]  # early: every mode above the noise
    assert 0.0 < out["p_star"][0.3] < out["p_hat"][-1]  # the crossing inside the zone
    assert out["p_star"][0.6] == 0.0  # late: every mode drowned
    crossing = out["p_star"][0.3]  # the ratio is 1 there, between the neighbouring modes
    below, above = out["snr"][0.3][out["p_hat"] < crossing], out["snr"][0.3][out["p_hat"] > crossing]
    assert below.min() >= 1.0 > above.max()
