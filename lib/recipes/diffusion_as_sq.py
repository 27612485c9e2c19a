r"""The recipes of :doc:`/book/part1/diffusion_as_sq`: the discrete DDPM against the VP SDE, and the Langevin picture
of the backward process (stochastic quantisation with the frozen drift of one time), a later start, the flow of the
effective action and the momentum modes of the forward process; the two-peak model with its exact score throughout.
Nothing is computed at import time.  Everything here takes seconds and is not cached, except the trained network of
:func:`effective_action_flow`, which the chapter hands in: the two-peak chapter's
(:func:`lib.recipes.two_peak.network_specs`, trained by the pipeline :mod:`lib.recipes.pipelines.toy_dm`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from lib import stats
from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion import grids, likelihood, solvers
from lib.diffusion.ddpm import DDPMSchedule, ancestral_sample, eps_from_score, eps_loss
from lib.diffusion.losses import dsm_loss
from lib.diffusion.sde import LinearBetaNoise, LinearDriftSDE, ve, vp
from lib.physics.cl_models import quadrature_moments
from lib.physics.langevin import langevin
from lib.physics.phi4 import Phi4Params, free_propagator, lattice_momentum_squared
from lib.physics.toy import GaussianMixture
from lib.recipes.pipelines import toy_dm

__all__ = ["Sizes", "sizes", "vp_sde", "ddpm_convergence", "frozen_drift_relaxation", "late_start", "loss_minimisers",
           "effective_action_flow", "mode_signal_to_noise"]


class Sizes(NamedTuple):
    """Sample sizes of the chapter (all its computations use the exact score of the two-peak model)."""

    n_samples: int  # samples per sampler and number of steps (DDPM convergence, late start, the losses)
    n_chains: int  # Langevin chains per frozen time (the frozen-drift relaxation)


def sizes(scale: str) -> Sizes:
    """Quick: 4e4 samples and 2e4 chains (seconds each); paper: ten times more (errors smaller by about 3)."""
    if scale == "quick":
        return Sizes(40_000, 20_000)
    if scale == "paper":
        return Sizes(400_000, 200_000)
    raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")


def vp_sde() -> LinearDriftSDE:
    """The VP SDE of Song et al. (``LinearBetaNoise``: :math:`\\beta` from 0.1 to 20 on :math:`[0, 1]`)."""
    return vp(noise=LinearBetaNoise())


def ddpm_convergence(n_list, n_samples: int = 100_000, seed: int = 0, n_max: int = 4,
                     target: GaussianMixture | None = None) -> dict:
    r"""Cumulants of the DDPM (Algorithm 2, exact score) and of Euler-Maruyama for the VP SDE at ``N`` steps.

    For each ``N`` in ``n_list``: the schedule :meth:`~lib.diffusion.ddpm.DDPMSchedule.from_sde` of :func:`vp_sde`,
    ``n_samples`` draws from the same prior samples for both samplers; cumulants with bootstrap errors.

    Returns
    -------
    dict
        ``{"exact": kappa (n_max + 1,), "ddpm": {N: (kappa, err)}, "em": {N: (kappa, err)}}``.
    """
    n_samples = require_int(n_samples, "n_samples", 2)
    target = GaussianMixture.two_peak() if target is None else target
    sde = vp_sde()
    score = target.score_fn(sde)
    rng = np.random.default_rng(seed)
    out = {"exact": np.asarray(target.cumulants(n_max)), "ddpm": {}, "em": {}}
    for n in n_list:
        n = require_int(n, "N")
        x_T = torch.randn(n_samples, 1, generator=make_generator(seed + n), dtype=torch.float64)
        sched = DDPMSchedule.from_sde(sde, n)
        times = torch.linspace(0.0, sde.T, n + 1, dtype=torch.float64)[1:]
        ddpm = ancestral_sample(eps_from_score(score, sched, times), sched, x_T, make_generator(seed + 10_000 + n))
        em = solvers.backward_solve(sde, score, x_T, grids.uniform_states(sde, n, 0.0), "euler",
                                    make_generator(seed + 20_000 + n), noise_last=False).x
        for name, x in (("ddpm", ddpm), ("em", em)):
            k, dk = stats.bootstrap_cumulants(x, n_max, generator=rng)
            out[name][n] = (np.asarray(k), np.asarray(dk))
    return out


def frozen_drift_relaxation(t: float, alpha: float = 1.0, step: float = 1e-3, n_steps: int = 4000,
                            n_chains: int = 20_000, seed: int = 0, target: GaussianMixture | None = None) -> dict:
    r"""Stochastic quantisation with the action :math:`S_t = -\log p(x, t)` frozen at one forward time ``t``.

    Langevin chains :math:`x' = x + \epsilon\, \partial_x \log p(x, t) + \sqrt{2\alpha\epsilon}\,\eta` from
    :math:`\mathcal N(0, 1)` relax to :math:`\propto e^{-S_t/\alpha} = p(x, t)^{1/\alpha}`: for :math:`\alpha = 1`
    the marginal that the backward process passes through at :math:`\tau = T - t`; :math:`\alpha = 1/2` is the
    backward process's own ratio of drift to noise (drift :math:`g^2 s`, noise :math:`g`), whose frozen equilibrium
    is :math:`p^2`.  Returns the final configurations ``x`` (``(n_chains,)``), the ``exact`` cumulants of
    :math:`p^{1/\alpha}` (orders 0..4, by quadrature) and the sampled ``cumulants`` with their ``errors``.
    """
    step, n_steps = require_positive(step, "step"), require_int(n_steps, "n_steps")
    alpha = require_positive(alpha, "alpha")
    target = GaussianMixture.two_peak() if target is None else target
    sde = vp_sde()
    tt = torch.tensor(float(t), dtype=torch.float64)
    score = target.score_fn(sde)
    x0 = torch.randn(n_chains, 1, generator=make_generator(seed), dtype=torch.float64)
    # x' = x + eps s + sqrt(2 alpha eps) eta  is  langevin(force = s / alpha, step = alpha eps)
    run = langevin(lambda x: score(x, tt.expand(x.shape[0])) / alpha, x0, alpha * step, n_steps,
                   make_generator(seed + 1), record_every=n_steps)
    x = run.x.reshape(-1)
    k, dk = stats.bootstrap_cumulants(x, 4, generator=np.random.default_rng(seed))
    # e^{-S_t / alpha} by quadrature (the helper of the complex Langevin models; the weight here is real)
    mu = quadrature_moments(lambda y: -target.log_density(torch.as_tensor(y), sde, float(t)).numpy() / alpha, 4)
    exact = np.asarray(stats.cumulants_from_moments(mu.real))
    return {"x": x, "exact": exact, "cumulants": np.asarray(k), "errors": np.asarray(dk)}


def late_start(t_starts, n_samples: int = 40_000, n_steps: int = 200, seed: int = 0, sigma: float = 10.0,
               target: GaussianMixture | None = None) -> dict:
    r"""Start the backward process later: from :math:`\mathcal N(0, \Xi(T'))` at :math:`T' \le T` instead of at
    :math:`T`, with the exact score, for the VE scheme with ``sigma`` (the two-peak chapter's).

    The prior ignores the data's own variance and shape, an error that shrinks as :math:`T'` grows; the backward
    process with the exact score carries it to the end.  Stochastic Heun, ``n_steps`` uniform steps from
    :math:`T'` to 0, the same prior normals (scaled) for every :math:`T'`.

    For a Gaussian target of variance :math:`v_0` the end error of :math:`\kappa_2` is known in closed form,
    :math:`-v_0^3/[v_0 + \Xi(T')]^2` (eq. ``eq-gt-ve-error`` of :doc:`/book/part2/gaussian_target` with
    :math:`T \to T'`); it is returned for :math:`v_0` = the target's :math:`\kappa_2`, whatever the target is.

    Returns
    -------
    dict
        ``{"exact": kappa, "xi": {T': Xi(T')}, "gaussian_error": {T': float}, T': (kappa, err)}``, cumulants of
        orders 0..4 at the end of the backward process.
    """
    n_samples, n_steps = require_int(n_samples, "n_samples", 2), require_int(n_steps, "n_steps")
    target = GaussianMixture.two_peak() if target is None else target
    sde = ve(sigma)
    score = target.score_fn(sde)
    rng = np.random.default_rng(seed)
    z = torch.randn(n_samples, 1, generator=make_generator(seed), dtype=torch.float64)
    out = {"exact": np.asarray(target.cumulants(4)), "xi": {}, "gaussian_error": {}}
    v0 = float(out["exact"][2])
    for t_start in t_starts:
        t_start = float(t_start)
        if not 0.0 < t_start <= sde.T:
            raise ValueError(f"a starting time must lie in (0, T = {sde.T}], got {t_start}")
        t = torch.linspace(t_start, 0.0, n_steps + 1, dtype=torch.float64)
        grid = grids.TimeGrid(t, t[:-1].clone(), (t[:-1] - t[1:]).clone())
        x_T = float(sde.xi(t_start)) ** 0.5 * z
        x = solvers.backward_solve(sde, score, x_T, grid, "heun", make_generator(seed + 1), noise_last=False).x
        k, dk = stats.bootstrap_cumulants(x, 4, generator=rng)
        out[t_start] = (np.asarray(k), np.asarray(dk))
        out["xi"][t_start] = float(sde.xi(t_start))
        out["gaussian_error"][t_start] = -v0**3 / (v0 + out["xi"][t_start]) ** 2
    return out


def loss_minimisers(factors, n_samples: int = 40_000, n_steps: int = 100, seed: int = 0, v0: float = 0.3) -> dict:
    r"""The :math:`\epsilon`-loss and the denoising score-matching loss along one family of models, for a Gaussian
    target of variance ``v0``: the exact score scaled by each factor in ``factors`` (1 is exact).

    Returns ``{"factors", "eps", "dsm"}`` (numpy arrays): both losses on the same data, for the VP SDE and its DDPM
    schedule of ``n_steps`` steps; both must be smallest at factor 1.
    """
    sde = vp_sde()
    sched = DDPMSchedule.from_sde(sde, require_int(n_steps, "n_steps"))
    times = torch.linspace(0.0, sde.T, n_steps + 1, dtype=torch.float64)[1:]
    target = GaussianMixture.gaussian(v0 ** 0.5)
    score = target.score_fn(sde)
    x0 = target.sample((n_samples, 1), make_generator(seed))
    eps, dsm = [], []
    for factor in factors:
        scaled = (lambda f: (lambda x, t: f * score(x, t)))(float(factor))
        eps.append(float(eps_loss(eps_from_score(scaled, sched, times), sched, x0, make_generator(seed + 1))))
        dsm.append(float(dsm_loss(scaled, sde, x0, make_generator(seed + 2), t_min=1e-3)))
    return {"factors": np.asarray(factors, dtype=float), "eps": np.asarray(eps), "dsm": np.asarray(dsm)}


def effective_action_flow(spec: toy_dm.MixtureNetSpec, times, x_min: float = -2.5, x_max: float = 2.5,
                          n_x: int = 101, device="cpu") -> dict:
    r"""The flow of the effective action of a toy model: :math:`-\log p(x, t)` exact and learned.

    Learned: the probability-flow log-likelihood (:func:`lib.diffusion.likelihood.log_likelihood`, exact divergence,
    RK45 with tolerances :math:`10^{-6}`) of the trained network of ``spec`` (a one-dimensional
    :class:`~lib.recipes.pipelines.toy_dm.MixtureNetSpec`, e.g. one of :func:`lib.recipes.two_peak.network_specs`)
    at each time, on ``n_x`` points of :math:`[x_{min}, x_{max}]`; exact: the density of ``spec.target``.

    Returns ``{"x": (n_x,), "exact": {t: (n_x,)}, "learned": {t: (n_x,)}}`` (float64 numpy arrays) and
    ``"network"``, the trained network (its :class:`~lib.diffusion.training.TrainResult`, with its training record).
    """
    sde, target = spec.sde, spec.target
    network = toy_dm.trained(spec, device=device)
    model = network.sampling_model.eval()
    x = torch.linspace(x_min, x_max, require_int(n_x, "n_x", 2), dtype=torch.float32, device=device).reshape(-1, 1)
    out = {"x": x.reshape(-1).double().cpu().numpy(), "exact": {}, "learned": {}, "network": network}
    for t in times:
        t = float(t)
        logp = likelihood.log_likelihood(sde, model, x, t_eps=t, rtol=1e-6, atol=1e-6).logp
        out["learned"][t] = -logp.double().reshape(-1).cpu().numpy()
        out["exact"][t] = -target.log_density(x.double().reshape(-1).cpu(), sde, t).numpy()
    return out


def mode_signal_to_noise(times, kappa: float = 0.21, L: int = 32, sigma: float = 25.0) -> dict:
    r"""Signal-to-noise ratio of each lattice momentum mode along the forward process, free field.

    For the free lattice field (:math:`\lambda = 0`, :func:`lib.physics.phi4.free_propagator`) under the VE process
    with ``sigma`` (the papers' lattice schedule), mode :math:`p` carries the signal :math:`f^2 G_0(p)` against the
    noise :math:`\Xi(t)` (:math:`G(p, t) = f^2 G_0(p) + \Xi(t)`).  The crossing momentum :math:`\hat p_*(t)` is where
    the ratio falls through 1 (linear interpolation in :math:`\hat p^2` between the sorted modes; 0 if every mode is
    below 1, the largest :math:`\hat p` if none is).

    Returns
    -------
    dict
        ``{"p_hat": (n_modes,) sorted lattice momenta |p-hat|, "snr": {t: (n_modes,)}, "p_star": {t: float}}``.
    """
    params = Phi4Params(L=require_int(L, "L", 2), kappa=kappa, lam=0.0)
    p2 = lattice_momentum_squared(params.L).reshape(-1)
    g0 = free_propagator(params).reshape(-1)
    order = torch.argsort(p2)
    p2, g0 = p2[order].numpy(), g0[order].numpy()
    sde = ve(require_positive(sigma, "sigma"))
    out = {"p_hat": np.sqrt(p2), "snr": {}, "p_star": {}}
    for t in times:
        t = float(t)
        snr = float(sde.f(t)) ** 2 * g0 / float(sde.xi(t))
        out["snr"][t] = snr
        below = np.nonzero(snr < 1.0)[0]
        if below.size == 0:
            out["p_star"][t] = float(out["p_hat"][-1])
        elif below[0] == 0:
            out["p_star"][t] = 0.0
        else:
            i = below[0]  # snr falls through 1 between modes i - 1 and i (G_0 decreases with p-hat^2)
            w = (snr[i - 1] - 1.0) / (snr[i - 1] - snr[i])
            out["p_star"][t] = float(np.sqrt(p2[i - 1] + w * (p2[i] - p2[i - 1])))
    return out
