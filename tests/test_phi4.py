"""Tests of lib.physics.phi4 (action, force, starts), lib.physics.observables and lib.diffusion.normalise.

Physics checks run HMC (lib.physics.hmc) against exact results: the decoupled-site limit kappa = 0
(quadrature) and the free field lambda = 0 (exact lattice propagator).  Errors come from
per-chain means over independent chains, so autocorrelations are accounted for.
"""
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from lib import stats
from lib.diffusion import normalise
from lib.physics import hmc, observables, phi4
from lib.core.checks import NonFiniteError
from lib.core.random import make_generator

F64 = torch.float64


def naive_action(phi, kappa, lam):
    """Site-by-site loop over the lattice (reference for the vectorised action)."""
    B, L, _ = phi.shape
    out = torch.zeros(B, dtype=phi.dtype)
    for x in range(L):
        for y in range(L):
            p = phi[:, x, y]
            hop = p * (phi[:, (x + 1) % L, y] + phi[:, x, (y + 1) % L])
            out += -2 * kappa * hop + (1 - 2 * lam) * p**2 + lam * p**4
    return out


# ----------------------------------------------------------------------------- parameters and input checks
def test_params_are_validated():
    p = phi4.Phi4Params(L=np.int64(8), kappa=0.21, lam=0.022)
    assert p.L == 8 and isinstance(p.L, int) and p.volume == 64
    with pytest.raises(ValueError, match="L must be an integer >= 2"):
        phi4.Phi4Params(L=1, kappa=0.2, lam=0.0)
    with pytest.raises(ValueError, match="L must be an integer"):
        phi4.Phi4Params(L=8.0, kappa=0.2, lam=0.0)
    with pytest.raises(ValueError, match="L must be an integer"):
        phi4.Phi4Params(L=True, kappa=0.2, lam=0.0)
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        phi4.Phi4Params(L=8, kappa=-0.1, lam=0.022)
    with pytest.raises(ValueError, match="lam"):
        phi4.Phi4Params(L=8, kappa=0.2, lam=-0.5)
    with pytest.raises(ValueError, match="kappa must be < 1/4 when lam == 0"):
        phi4.Phi4Params(L=8, kappa=0.3, lam=0.0)
    with pytest.raises(ValueError, match="kappa must be finite"):
        phi4.Phi4Params(L=8, kappa=float("nan"), lam=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.kappa = 0.3


def test_field_validation():
    p = phi4.Phi4Params(L=4, kappa=0.2, lam=0.1)
    with pytest.raises(ValueError, match=r"shape \(B, L, L\) = \(B, 4, 4\)"):
        phi4.action(torch.zeros(2, 4, 5, dtype=F64), p)
    with pytest.raises(ValueError, match="shape"):
        phi4.force(torch.zeros(4, 4, dtype=F64), p)
    with pytest.raises(ValueError, match="floating-point"):
        phi4.action(torch.zeros(2, 4, 4, dtype=torch.int64), p)
    with pytest.raises(ValueError, match="torch.Tensor"):
        phi4.action(np.zeros((2, 4, 4)), p)
    bad = torch.zeros(2, 4, 4, dtype=F64)
    bad[1, 2, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="non-finite"):
        phi4.action(bad, p)
    with pytest.raises(ValueError, match="non-finite"):
        phi4.force(bad, p)
    with pytest.raises(ValueError, match="n_chains"):
        phi4.hot_start(p, 0, make_generator(0))


# ----------------------------------------------------------------------------- action and force
@pytest.mark.parametrize("L", [2, 3, 5])
def test_action_matches_site_loop(L):
    p = phi4.Phi4Params(L=L, kappa=0.31, lam=0.17)
    phi = phi4.hot_start(p, 3, make_generator(1))
    assert torch.allclose(phi4.action(phi, p), naive_action(phi, p.kappa, p.lam), rtol=1e-12, atol=1e-12)


def test_force_is_minus_autograd_gradient():
    p = phi4.Phi4Params(L=5, kappa=0.4, lam=0.022)
    phi = (2.0 * phi4.hot_start(p, 4, make_generator(2))).requires_grad_(True)
    (grad,) = torch.autograd.grad(phi4.action(phi, p).sum(), phi)
    f = phi4.force(phi.detach(), p)
    assert f.shape == phi.shape and f.dtype == F64
    assert torch.allclose(f, -grad, rtol=1e-12, atol=1e-12)


def test_cold_start_sits_in_the_classical_vacuum():
    broken = phi4.Phi4Params(L=6, kappa=0.4, lam=0.022)
    c = phi4.classical_vacuum(broken)
    assert c == pytest.approx(math.sqrt((4 * 0.4 - 1 + 2 * 0.022) / (2 * 0.022)), rel=1e-14)
    phi = phi4.cold_start(broken, 2)
    assert torch.all(phi == c)
    assert phi4.force(phi, broken).abs().max() < 1e-12  # stationary point
    symmetric = phi4.Phi4Params(L=6, kappa=0.21, lam=0.022)
    assert phi4.classical_vacuum(symmetric) == 0.0
    assert torch.all(phi4.cold_start(symmetric, 2, value=0.5) == 0.5)


@pytest.mark.parametrize("kappa", [0.21, 0.4, 1.0])
def test_classical_susceptibility_is_the_inverse_curvature_of_the_constant_field_action(kappa):
    p = phi4.Phi4Params(L=4, kappa=kappa, lam=0.022)
    c0, h = phi4.classical_vacuum(p), 1e-3
    s = [float(phi4.action(phi4.cold_start(p, 1, value=c0 + d), p)[0]) / p.volume for d in (-h, 0.0, h)]
    curvature = (s[0] - 2 * s[1] + s[2]) / h**2  # u''(c0) by central differences of S/V on constant fields
    assert phi4.classical_susceptibility(p) == pytest.approx(1.0 / curvature, rel=1e-5)


def test_classical_susceptibility_refuses_a_flat_minimum():
    lam = 0.022
    with pytest.raises(ValueError, match="curvature"):
        phi4.classical_susceptibility(phi4.Phi4Params(L=4, kappa=(1 - 2 * lam) / 4, lam=lam))


def test_hot_start_is_standard_normal_and_follows_generator_device():
    p = phi4.Phi4Params(L=16, kappa=0.2, lam=0.022)
    phi = phi4.hot_start(p, 64, make_generator(3))
    assert phi.shape == (64, 16, 16) and phi.dtype == F64 and phi.device.type == "cpu"
    assert abs(float(phi.mean())) < 5 / 128 and abs(float(phi.var()) - 1) < 5 * math.sqrt(2) / 128
    assert torch.equal(phi, phi4.hot_start(p, 64, make_generator(3)))


def test_symmetrise_z2():
    phi = torch.randn(5, 4, 4, dtype=F64, generator=make_generator(0))
    both = phi4.symmetrise_z2(phi)
    assert both.shape == (10, 4, 4)
    assert torch.equal(both[5:], -phi)
    assert abs(float(observables.magnetisation(both).mean())) < 1e-15


# ----------------------------------------------------------------------------- observables
def test_magnetisation_chi2_binder_formulas():
    rng = np.random.default_rng(4)
    m = rng.normal(0.3, 0.2, size=1000)
    assert observables.susceptibility(m, 64) == pytest.approx(64 * (np.mean(m**2) - np.mean(m) ** 2), rel=1e-12)
    assert observables.binder_cumulant(m) == pytest.approx(1 - np.mean(m**4) / (3 * np.mean(m**2) ** 2), rel=1e-12)
    assert observables.binder_cumulant(np.array([1.0, -1.0, 1.0])) == pytest.approx(2 / 3, abs=1e-15)
    g = rng.normal(0.0, 1.0, size=200_000)  # Gaussian M: U_L = 0
    assert abs(observables.binder_cumulant(g)) < 0.02
    phi = torch.randn(3, 4, 4, dtype=F64, generator=make_generator(0))
    assert torch.allclose(observables.magnetisation(phi), phi.reshape(3, -1).mean(1))
    with pytest.raises(ValueError, match="non-finite"):
        observables.susceptibility([0.1, float("inf")], 16)


def test_two_point_functions_agree_with_direct_sums():
    phi = torch.randn(6, 6, 6, dtype=F64, generator=make_generator(0)) + 0.3
    V = 36
    m = phi.mean(dim=(1, 2))
    c_direct = torch.zeros(6, 6, dtype=F64)
    for r1 in range(6):
        for r2 in range(6):
            shifted = torch.roll(phi, shifts=(-r1, -r2), dims=(1, 2))
            c_direct[r1, r2] = (phi * shifted).sum(dim=(1, 2)).mean() / V
    c = observables.two_point_position(phi, connected=False, full=True)
    assert torch.allclose(c, c_direct, atol=1e-12)
    cc = observables.two_point_position(phi, full=True)
    assert torch.allclose(cc, c_direct - m.mean() ** 2, atol=1e-12)
    g = observables.two_point_position(phi)
    assert torch.allclose(g, 0.5 * (cc[:, 0] + cc[0, :]), atol=1e-14) and g.shape == (6,)
    # G(p = 0) connected is chi_2, and the connected C(r) sums to chi_2
    gp = observables.two_point_momentum(phi)
    chi2 = observables.susceptibility(m, V)
    assert float(gp[0, 0]) == pytest.approx(chi2, rel=1e-10)
    assert float(cc.sum()) == pytest.approx(chi2, rel=1e-10)
    assert torch.allclose(observables.two_point_momentum(phi, connected=False),
                          observables.momentum_power(phi).mean(0), atol=1e-14)
    with pytest.raises(ValueError, match=r"shape \(B, L, L\)"):
        observables.two_point_momentum(torch.zeros(2, 4, 5, dtype=F64))


def test_site_cumulants_pool_sites_and_configurations():
    gen = make_generator(5)
    p = phi4.Phi4Params(L=8, kappa=0.2, lam=0.022)
    phi = 0.7 * phi4.hot_start(p, 400, gen)
    k = observables.site_cumulants(phi, n_max=6)
    assert np.allclose(k, stats.cumulants(phi.reshape(-1), n_max=6), rtol=1e-12, atol=1e-12)
    est, err = observables.site_cumulants_bootstrap(phi, n_max=4, n_boot=200, generator=np.random.default_rng(0))
    assert est[2] == pytest.approx(0.49, abs=5 * err[2])
    assert abs(est[4]) < 5 * err[4]


def test_magnetisation_summary_accounts_for_autocorrelation():
    rng = np.random.default_rng(6)
    rho, n, chains = 0.9, 20_000, 4
    x = np.empty((n, chains))
    x[0] = rng.normal(size=chains)
    noise = rng.normal(size=(n, chains)) * math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + noise[t]
    m = 0.05 * x  # a stationary AR(1) "magnetisation", tau_int = (1 + rho) / (2 (1 - rho)) = 9.5
    out = observables.magnetisation_summary(m, volume=64, generator=np.random.default_rng(7), n_boot=300)
    assert out["tau_M2"].tau > 3 and out["block_length"] >= 30
    exact_err = 0.05 * math.sqrt(2 * 9.5 / (n * chains))
    assert out["M"][1] == pytest.approx(exact_err, rel=0.3)
    assert abs(out["M"][0]) < 5 * exact_err
    assert out["chi2"][0] == pytest.approx(64 * 0.05**2, abs=5 * out["chi2"][1])
    assert abs(out["U_L"][0]) < 5 * out["U_L"][1]
    # symmetric about 0: <|M|>^2 < <M>^2 + Var(M), so chi_|M| = V (<M^2> - <|M|>^2) is the fraction 1 - 2/pi of chi_2
    assert out["chi2_abs"][0] == pytest.approx((1 - 2 / math.pi) * 64 * 0.05**2, abs=5 * out["chi2_abs"][1])
    shifted = observables.magnetisation_summary(m + 3.0, 64, np.random.default_rng(7), n_boot=100)
    assert shifted["chi2_abs"][0] == pytest.approx(shifted["chi2"][0], rel=1e-9)  # one sign: the two agree
    iid = observables.magnetisation_summary(m[:, 0], 64, np.random.default_rng(8), n_boot=100, block_length=1)
    assert iid["M"][1] < out["M"][1]  # naive error ignores autocorrelation
    with pytest.raises(ValueError, match="too short"):
        observables.magnetisation_summary(m[:3, :1], 64, np.random.default_rng(0), block_length=3)


# ----------------------------------------------------------------------------- normalisation
def test_normalisations_and_cumulant_transform():
    gen = make_generator(9)
    phi = phi4.hot_start(phi4.Phi4Params(L=8, kappa=0.2, lam=0.022), 50, gen) * 1.3 + 0.4
    y, norm = normalise.minmax_normalise(phi)
    assert float(y.min()) == pytest.approx(-1.0, abs=1e-14) and float(y.max()) == pytest.approx(1.0, abs=1e-14)
    assert torch.allclose(norm.inverse(y), phi, atol=1e-13)
    ky = stats.cumulants(y, n_max=8)
    assert np.allclose(norm.cumulants(stats.cumulants(phi, n_max=8)), ky, rtol=1e-9, atol=1e-12)
    z, nabs = normalise.maxabs_normalise(phi)
    assert nabs.shift == 0.0 and float(z.abs().max()) == pytest.approx(1.0, abs=1e-15)
    assert torch.allclose(z, phi / phi.abs().max())
    with pytest.raises(ValueError, match="constant"):
        normalise.Normalisation.minmax(torch.ones(3, 2, 2))
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        normalise.Normalisation(shift=0.0, scale=0.0)


# ----------------------------------------------------------------------------- physics: exact limits
def _chain_mean_and_error(per_chain: torch.Tensor):
    """Mean over independent chains and its standard error (per_chain: (n_chains, ...))."""
    n = per_chain.shape[0]
    return per_chain.mean(0), per_chain.std(0) / math.sqrt(n)


@pytest.mark.parametrize("lam, integrator, jitter", [(0.022, "leapfrog", 0.0), (1.0, "omelyan", 0.5)])
def test_kappa_zero_matches_single_site_quadrature(lam, integrator, jitter):
    """kappa = 0: the sites decouple, p(phi) ~ exp(-(1 - 2 lam) phi^2 - lam phi^4) (lam = 1: double well)."""
    p = phi4.Phi4Params(L=8, kappa=0.0, lam=lam)
    gen = make_generator(10)
    run = hmc.hmc(p, phi4.hot_start(p, 128, gen), n_traj=100, step=0.1, n_steps=10, generator=gen,
                  integrator=integrator, jitter=jitter, n_therm=20,
                  observe=lambda x, t: {"p2": (x**2).mean((1, 2)), "p4": (x**4).mean((1, 2))})
    weight = lambda x, n: x**n * math.exp(-(1 - 2 * lam) * x**2 - lam * x**4)  # noqa: E731
    z = integrate.quad(weight, -np.inf, np.inf, args=(0,))[0]
    for name, n in (("p2", 2), ("p4", 4)):
        exact = integrate.quad(weight, -np.inf, np.inf, args=(n,))[0] / z
        mean, err = _chain_mean_and_error(run.records[name].mean(0))
        assert abs(float(mean) - exact) < 5 * float(err), (name, float(mean), float(err), exact)
        assert float(err) < 0.01 * exact  # the test has teeth
    assert 0.8 < run.acceptance < 1.0


def test_free_field_propagator_matches_exact_lattice_result():
    """lambda = 0, kappa = 0.2, L = 8: G(p) = 1 / (2 (1 - 2 kappa sum_mu cos p_mu)) at every momentum."""
    p = phi4.Phi4Params(L=8, kappa=0.2, lam=0.0)
    gen = make_generator(11)
    # trajectory length 1 < pi / omega_max: a fixed length with omega_p * length close to pi for some
    # free mode would leave that mode frozen (the known non-ergodicity of HMC for free fields)
    run = hmc.hmc(p, phi4.hot_start(p, 128, gen), n_traj=120, step=0.1, n_steps=10, generator=gen,
                  n_therm=20, observe=lambda x, t: {"G": observables.momentum_power(x)})
    mean, err = _chain_mean_and_error(run.records["G"].mean(0))  # (L, L) with per-chain errors
    exact = phi4.free_propagator(p)
    assert float(exact[0, 0]) == pytest.approx(2.5) and float(exact[4, 4]) == pytest.approx(1 / 3.6)
    z = (mean - exact) / err
    assert float(z.abs().max()) < 5.0, z
    assert float((err / exact).max()) < 0.05
    # the last record is the power spectrum of the final fields
    assert torch.allclose(run.records["G"][-1].mean(0), observables.two_point_momentum(run.phi, connected=False))


def test_lattice_momentum_squared():
    p2 = phi4.lattice_momentum_squared(4)
    assert p2.shape == (4, 4) and float(p2[0, 0]) == 0.0
    torch.testing.assert_close(p2[2, 2], torch.tensor(8.0, dtype=torch.float64))  # p = (pi, pi): 4 + 4
    torch.testing.assert_close(p2, p2.T)


def test_observables_of_a_zero_field_raise_instead_of_nan():
    """Before: binder_cumulant and site_cumulant_ratios of a field with M = 0 returned NaN silently."""
    from lib.physics import observables as obs

    with pytest.raises(ValueError, match="U_L is undefined"):
        obs.binder_cumulant(torch.zeros(10))
    with pytest.raises(ValueError, match="the field is constant"):
        obs.site_cumulant_ratios(torch.zeros(10, 4, 4), n_boot=10, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="every magnetisation is zero"):
        obs.magnetisation_summary(torch.zeros(20, 2), 16, generator=np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_fields_are_refused(dtype):
    """Before: float16 fields overflowed in phi4.action to NaN silently."""
    params = phi4.Phi4Params(4, 0.21, 0.022)
    with pytest.raises(ValueError, match="must be float32 or float64"):
        phi4.action(torch.full((2, 4, 4), 20.0, dtype=dtype), params)


def test_symmetric_site_cumulants_equal_those_of_the_doubled_ensemble_with_honest_errors():
    """symmetric=True gives the cumulants and ratios of cat([phi, -phi]) (odd moments zero) while resampling the
    original configurations: a configuration and its image stay together, so the error is not that of 2N samples."""
    from lib.physics import observables as obs

    g = torch.Generator().manual_seed(3)
    sign = torch.where(torch.rand(400, 1, 1, generator=g) < 0.7, 1.0, -1.0)  # unequal vacua: 70 / 30
    phi = (sign * (2.0 + 0.3 * torch.randn(400, 4, 4, generator=g, dtype=torch.float64)))
    doubled = phi4.symmetrise_z2(phi)
    k, dk = obs.site_cumulants_bootstrap(phi, n_boot=300, generator=np.random.default_rng(0), symmetric=True)
    k2, dk2 = obs.site_cumulants_bootstrap(doubled, n_boot=300, generator=np.random.default_rng(0), n_blocks=800)
    np.testing.assert_allclose(k, k2, rtol=1e-9, atol=1e-9)
    assert abs(k[1]) < 1e-12 and abs(k[3]) < 1e-9
    # the errors are those of resampling the configurations and symmetrising each resample (pairs kept together)
    from lib import stats

    flat = phi.reshape(400, -1).numpy()
    _, dk_pairs = stats.bootstrap(flat, lambda rows: stats.cumulants(np.concatenate([rows, -rows]), n_max=8, axis=None),
                                  n_boot=300, generator=np.random.default_rng(0), n_blocks=400)
    np.testing.assert_allclose(dk, dk_pairs, rtol=1e-6, atol=1e-9)
    assert not np.allclose(dk[[2, 4]], dk2[[2, 4]], rtol=0.05)  # the doubled array, resampled image by image, is not
    r, dr = obs.site_cumulant_ratios(phi, n_boot=300, generator=np.random.default_rng(0), symmetric=True)
    r2, _ = obs.site_cumulant_ratios(doubled, n_boot=300, generator=np.random.default_rng(0))
    np.testing.assert_allclose(r, r2, rtol=1e-9)
    r_raw, _ = obs.site_cumulant_ratios(phi, n_boot=10, generator=np.random.default_rng(0))
    assert abs(r_raw[0] - r[0]) > 0.1  # without it the 70 / 30 split of the vacua distorts kappa_4 / kappa_2^2


def test_sign_interfaces_count_domain_walls():
    from lib.physics.observables import sign_interfaces

    one_vacuum = torch.full((2, 8, 8), 3.0, dtype=torch.float64) + 0.1 * torch.randn(2, 8, 8, dtype=torch.float64)
    assert torch.equal(sign_interfaces(one_vacuum), torch.zeros(2, dtype=torch.float64))
    stripe = torch.ones(1, 8, 8, dtype=torch.float64)
    stripe[:, :, :4] = -1.0  # two straight walls around the torus: 2 x 8 links of 2 x 64
    assert float(sign_interfaces(stripe)) == pytest.approx(16 / 128)
    assert float(sign_interfaces(-stripe)) == pytest.approx(16 / 128)
