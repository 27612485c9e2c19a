"""The path-space sampler: exact path densities, the weight of a Gaussian target, an exact chain from a wrong score."""
import math

import pytest
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import grids, sde as sdes
from lib.diffusion.mode_gaussian import GaussianBaseScore, ModeGaussian, gaussian_score, mode_variance
from lib.diffusion.path_sampler import geometric, path_log_prob, path_proposals
from lib.physics.metropolis import chain_observable, independence_metropolis


def _free_propagator(L: int, m2: float) -> torch.Tensor:
    p = 2 * math.pi * torch.fft.fftfreq(L, d=1.0).to(torch.float64)
    p2 = 4 * torch.sin(p[:, None] / 2) ** 2 + 4 * torch.sin(p[None, :] / 2) ** 2
    return 1.0 / (p2 + m2)


def _gaussian(v: torch.Tensor, sde):
    """Exact score and action of the centred Gaussian with mode variances v (2D lattice), and log Z."""
    dims = (-2, -1)

    def action(x):
        xp = torch.fft.fftn(x.to(torch.float64), dim=dims, norm="ortho")
        return 0.5 * ((xp.real ** 2 + xp.imag ** 2) / v).sum(dims)

    log_z = 0.5 * v.numel() * math.log(2 * math.pi) + 0.5 * float(torch.log(v).sum())
    return (lambda x, t: gaussian_score(x, t, sde, v)), action, log_z


def test_mode_gaussian_matches_the_dense_covariance():
    L = 4
    v = _free_propagator(L, 0.5)
    g = ModeGaussian(v, (L, L))
    # the dense covariance C = F^dagger diag(v) F, built column by column from the colouring
    eye = torch.eye(L * L, dtype=torch.float64).reshape(L * L, L, L)
    root = g.colour(eye).reshape(L * L, L * L)  # rows: C^(1/2) e_j (C^(1/2) is symmetric)
    cov = root @ root.T
    x = g.sample(5, make_generator(3))
    dense = torch.distributions.MultivariateNormal(torch.zeros(L * L, dtype=torch.float64), covariance_matrix=cov)
    assert torch.allclose(g.log_prob(x), dense.log_prob(x.reshape(5, -1)), atol=1e-9)


def test_mode_gaussian_refuses_variances_that_are_not_even_or_positive():
    v = _free_propagator(4, 0.5).clone()
    v[0, 1] *= 2  # c[p] != c[-p]
    with pytest.raises(ValueError, match="even"):
        ModeGaussian(v, (4, 4))
    with pytest.raises(ValueError, match="positive"):
        ModeGaussian(-1.0, (4, 4))
    with pytest.raises(ValueError, match="shape"):
        ModeGaussian(torch.ones(3, 3), (4, 4))


def test_posterior_kernel_with_the_exact_score_gives_every_path_the_weight_z():
    L, sde = 8, sdes.ve(25.0)
    v = _free_propagator(L, 0.3)
    score, action, log_z = _gaussian(v, sde)
    paths = path_proposals(sde, score, geometric(sde, 20, 1e-4), (L, L), 64, make_generator(5), mode_variance=v)
    log_w = -action(paths.x) - paths.log_q
    assert torch.allclose(log_w, torch.full_like(log_w, log_z), atol=1e-8)


def test_a_wrong_score_gives_an_exact_chain_while_the_raw_samples_miss():
    """Target: the free field; score and kernel: those of a field with 1.3 times its variance.  The raw samples' mean square
    misses the exact value by many standard errors; the independence chain on paths reproduces it within 3 sigma."""
    L, sde = 4, sdes.ve(10.0)
    v = _free_propagator(L, 1.0)
    _, action, _ = _gaussian(v, sde)
    wrong, _, _ = _gaussian(1.3 * v, sde)
    g = make_generator(11)
    paths = path_proposals(sde, wrong, geometric(sde, 20, 1e-4), (L, L), 6000, g, mode_variance=1.3 * v)
    exact = float(v.mean())  # <phi_x^2> = (1/V) sum_p v_p
    sq = (paths.x.to(torch.float64) ** 2).mean((-2, -1))
    raw, raw_err = float(sq.mean()), float(sq.std() / math.sqrt(sq.numel()))
    assert abs(raw - exact) > 5 * raw_err
    chain = independence_metropolis(paths.x, paths.log_q, action, g)
    series = chain_observable(chain, sq)
    mean, err = stats.mean_error(series)
    assert 0.05 < chain.acceptance < 0.95
    assert abs(float(mean) - exact) < 3 * float(err), (float(mean), float(err), exact)


def test_geometric_grid_ends_at_zero_and_is_geometric_in_the_noise():
    sde = sdes.ve(25.0)
    grid = geometric(sde, 10, 1e-4)
    assert grid.n_steps == 10 and float(grid.t[-1]) == 0.0 and float(grid.t[0]) == sde.T
    root = torch.sqrt(sde.xi(grid.t[:-1]))
    ratios = root[1:] / root[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-8)
    assert math.isclose(float(root[-1]) ** 2, 1e-4, rel_tol=1e-8)


def test_bad_input_is_named():
    sde = sdes.ve(10.0)
    v = _free_propagator(4, 1.0)
    score, _, _ = _gaussian(v, sde)
    grid = geometric(sde, 5, 1e-3)
    g = make_generator(0)
    with pytest.raises(ValueError, match="mode_variance"):
        path_proposals(sde, score, grid, (4, 4), 4, g)
    with pytest.raises(ValueError, match="kernel"):
        path_proposals(sde, score, grid, (4, 4), 4, g, kernel="ddim")
    with pytest.raises(ValueError, match="generator"):
        path_proposals(sde, score, grid, (4, 4), 4, 0, mode_variance=v)
    with pytest.raises(ValueError, match="grid"):
        path_proposals(sde, score, grids.uniform_states(sdes.ve(10.0, T=2.0), 5, 0.0), (4, 4), 4, g, mode_variance=v)
    with pytest.raises(ValueError, match="shape of x"):
        path_proposals(sde, lambda x, t: x[:, :1], grid, (4, 4), 4, g, mode_variance=v)


def test_euler_maruyama_weights_average_to_z():
    """Any normalised reverse kernel gives E[w] = Z: with the Euler-Maruyama kernel (not exact for the Gaussian, so
    the weights scatter, sd(log w) about 2.4) their mean over 20000 paths is Z within 3 standard errors."""
    L, sde = 2, sdes.ve(10.0)
    v = _free_propagator(L, 1.0)
    score, action, log_z = _gaussian(v, sde)
    paths = path_proposals(sde, score, geometric(sde, 50, 1e-4), (L, L), 20000, make_generator(2),
                           kernel="euler-maruyama", batch=20000)
    w = torch.exp(-action(paths.x) - paths.log_q - log_z)
    err = float(w.std()) / math.sqrt(w.numel())
    assert err < 0.1 and abs(float(w.mean()) - 1.0) < 3 * err


def test_gaussian_score_is_the_gradient_of_the_log_density_of_the_forward_marginal():
    L, sde = 4, sdes.ve(10.0)
    v = _free_propagator(L, 0.7)
    t = 0.37
    marginal = ModeGaussian(float(sde.f(t)) ** 2 * v + float(sde.xi(t)), (L, L))
    x = marginal.sample(3, make_generator(4)).requires_grad_(True)
    marginal.log_prob(x).sum().backward()
    assert torch.allclose(gaussian_score(x.detach(), t, sde, v), x.grad, atol=1e-10)


def test_gaussian_base_score_adds_its_correction_and_keeps_the_variance_in_its_state():
    L, sde = 4, sdes.ve(10.0)
    v = _free_propagator(L, 0.7)

    class Shift(torch.nn.Module):
        def forward(self, x, t):
            return torch.full_like(x, 0.5)

    model = GaussianBaseScore(Shift(), sde, v)
    x = torch.randn(2, L, L, generator=make_generator(1), dtype=torch.float64)
    t = torch.full((2,), 0.2, dtype=torch.float64)
    assert torch.allclose(model(x, t), gaussian_score(x, t, sde, v) + 0.5)
    assert "variance" in model.state_dict()
    with pytest.raises(ValueError, match="even"):
        GaussianBaseScore(Shift(), sde, v + torch.arange(L * L, dtype=torch.float64).reshape(L, L) * 1e-3)


def test_mode_variance_measures_the_propagator_of_gaussian_samples():
    """20000 samples: each mode's variance within 5 standard errors (sqrt(2/N) relative) of the exact one."""
    L = 6
    v = _free_propagator(L, 0.5)
    x = ModeGaussian(v, (L, L)).sample(20000, make_generator(0))
    measured = mode_variance(x)
    assert torch.equal(measured, torch.roll(torch.flip(measured, (0, 1)), (1, 1), (0, 1)))  # exactly even
    assert float((measured / v - 1).abs().max()) < 5 * math.sqrt(2 / 20000)
    with pytest.raises(ValueError, match="batch"):
        mode_variance(torch.ones(4))


@pytest.mark.parametrize("kernel", ["posterior", "euler-maruyama"])
def test_path_log_prob_recomputes_the_transitions_of_the_kept_states(kernel):
    L, sde = 4, sdes.ve(25.0)
    v = _free_propagator(L, 0.3)

    def score(x, t):  # a deliberately wrong score, so the transitions are not those of the Gaussian
        return 0.7 * gaussian_score(x, t, sde, v)

    grid = geometric(sde, 12, 1e-3)
    paths = path_proposals(sde, score, grid, (L, L), 6, make_generator(8), kernel=kernel, mode_variance=v,
                           keep_states=True, batch=4)
    assert paths.states.shape == (13, 6, L, L) and torch.equal(paths.states[-1], paths.x)
    prior = ModeGaussian(v * float(sde.f(sde.T)) ** 2 + float(sde.xi(sde.T)), (L, L)) if kernel == "posterior" \
        else ModeGaussian(float(sde.xi(sde.T)), (L, L))
    lp = path_log_prob(sde, score, grid, paths.states, kernel, mode_variance=v)
    assert torch.allclose(lp + prior.log_prob(paths.states[0]), paths.log_p_path, atol=1e-8)
    some = path_log_prob(sde, score, grid, paths.states, kernel, mode_variance=v, steps=[0, 5])
    rest = path_log_prob(sde, score, grid, paths.states, kernel, mode_variance=v,
                         steps=[i for i in range(12) if i not in (0, 5)])
    assert torch.allclose(some + rest, lp, atol=1e-9)
    with pytest.raises(ValueError, match="n_states"):
        path_log_prob(sde, score, grid, paths.states[1:], kernel, mode_variance=v)


def test_path_chain_and_full_jacobian_chain_agree_on_phi4_with_the_same_wrong_score():
    """Issue 31's L = 8 agreement, at unit-test size: on a 4 x 4 phi^4 lattice (kappa = 0.21, lambda = 0.022) the score
    is that of the free field at lambda = 0 (wrong: the quartic term changes the field's distribution).  The raw
    path samples miss <phi^2>; the independence chain on paths and the chain on the probability-flow map with its full
    Jacobian (lib.diffusion.flow_map), two different exact samplers fed the same score, agree with each other and with
    a long HMC run on <phi^2> and chi_2 within 3 combined standard errors."""
    from lib.diffusion.flow_map import flow_proposals
    from lib.physics import hmc, phi4

    params = phi4.Phi4Params(4, 0.21, 0.022)
    L, V, sde = params.L, params.L ** 2, sdes.ve(10.0)
    v = phi4.free_propagator(phi4.Phi4Params(4, 0.21, 0.0))  # the free field at lambda = 0: the wrong model
    score, _, _ = _gaussian(v, sde)

    def action(x):
        return phi4.action(x.to(torch.float64), params)

    def observables(x):
        x = x.to(torch.float64)
        return {"phi2": (x ** 2).mean((-2, -1)), "chi2": V * x.mean((-2, -1)) ** 2}

    g = make_generator(31)
    path = path_proposals(sde, score, geometric(sde, 20, 1e-4), (L, L), 4000, g, mode_variance=v)
    flow = flow_proposals(sde, score, grids.uniform_states(sde, 20, 1e-4), (L, L), 4000, g)
    estimates = {}
    for name, props in (("path", path), ("flow", flow)):
        chain = independence_metropolis(props.x, props.log_q, action, g)
        assert 0.05 < chain.acceptance < 0.95, (name, chain.acceptance)
        estimates[name] = {key: tuple(float(a) for a in stats.mean_error(chain_observable(chain, values)))
                           for key, values in observables(props.x).items()}
    raw = observables(path.x)["phi2"]
    run = hmc.hmc(params, phi4.hot_start(params, 32, make_generator(32)), n_traj=600, step=0.4, n_steps=4,
                  generator=make_generator(33), n_therm=100, keep_every=1, record_every=0, jitter=0.3)
    ref = observables(run.kept)  # (600, 32)
    estimates["hmc"] = {}
    for key, values in ref.items():
        per_chain = values.mean(0)  # 32 independent chains: the spread of their means is the error
        estimates["hmc"][key] = (float(per_chain.mean()), float(per_chain.std() / math.sqrt(32)))
    hmc_phi2 = estimates["hmc"]["phi2"]
    assert abs(float(raw.mean()) - hmc_phi2[0]) > 5 * math.hypot(float(raw.std() / math.sqrt(raw.numel())), hmc_phi2[1])
    for a, b in (("path", "flow"), ("path", "hmc"), ("flow", "hmc")):
        for key in ("phi2", "chi2"):
            (ma, ea), (mb, eb) = estimates[a][key], estimates[b][key]
            assert abs(ma - mb) < 3 * math.hypot(ea, eb), (a, b, key, estimates)
