r"""Recipes of :doc:`/book/part2/two_peak`: the score networks of the two-peak model (settings of the pipeline
:mod:`lib.recipes.pipelines.toy_dm`), the runs of the authors' sampler with the learned and the exact score, and the
integrator study, all cached.

The target is :math:`p_0 = \tfrac12[\mathcal N(-\mu_0, s_0^2) + \mathcal N(\mu_0, s_0^2)]` with :math:`\mu_0 = 1`,
:math:`s_0 = 1/4` (:data:`TARGET`), the schemes VE and VP with :math:`\sigma = 10` (:data:`SCHEMES`), the network an
MLP trained on :data:`N_DATA` samples (arXiv:2410.21212).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from lib.core.random import make_generator
from lib.diffusion import grids, nets, sde, solvers, training
from lib.infra.cache import ArtefactCache
from lib.physics import toy
from lib.recipes.pipelines import toy_dm
from lib.recipes.pipelines.toy_dm import moment_records

__all__ = ["TARGET", "SCHEMES", "N_DATA", "NET", "TRAIN_SEEDS", "Sizes", "sizes", "train_config", "network_specs",
           "trained", "forward_moments", "backward_moments", "integrator_study", "networks"]

#: the two-peak target of arXiv 2410.21212
TARGET = toy.GaussianMixture.two_peak(mu0=1.0, s0=0.25)
#: the forward processes by name
SCHEMES = {"VE": sde.ve(sigma=10.0), "VP": sde.vp(sigma=10.0)}
#: training samples of the target
N_DATA = 500_000
#: the score network
NET = nets.MLPConfig(dim=1, hidden=(64, 64), embed_dim=128, activation="leaky_relu")
#: seeds of the networks' initial weights and training, by model
TRAIN_SEEDS = {"VE": 101, "VP": 102}


class Sizes(NamedTuple):
    """Sample sizes of the chapter at one scale."""

    n_gen: int  # generated samples per backward run
    n_steps: int  # steps of the authors' sampler (and of the forward runs)
    n_study: int  # samples of the integrator study


def sizes(scale: str) -> Sizes:
    """The chapter's sizes at ``scale`` ("quick" or "paper")."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    return Sizes(1_000_000, 1000, 1_000_000) if scale == "paper" else Sizes(100_000, 1000, 100_000)


def train_config(scale: str) -> training.TrainConfig:
    """Quick: learning rate 1e-3, 2e4 steps (a minute per scheme on a CPU); paper: the authors' 200 epochs at 1e-4."""
    if scale == "paper":
        return training.TrainConfig(epochs=200, lr=1e-4, batch_size=512, augment_flip=True, ema_decay=0.999)
    if scale == "quick":
        return training.TrainConfig(n_steps=20_000, lr=1e-3, batch_size=512, augment_flip=True, ema_decay=0.999)
    raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")


def network_specs(scale: str) -> dict:
    """The score networks of the two schemes at ``scale``: ``{"VE": MixtureNetSpec, "VP": MixtureNetSpec}``."""
    return {name: toy_dm.MixtureNetSpec(TARGET, s, NET, train_config(scale), TRAIN_SEEDS[name], N_DATA)
            for name, s in SCHEMES.items()}


def trained(name: str, scale: str, device="cpu", cache: ArtefactCache | None = None) -> training.TrainResult:
    """The score network of scheme ``name`` ("VE" or "VP") at ``scale``: from the store, the cache, or trained."""
    return toy_dm.trained(network_specs(scale)[name], cache, device)


def forward_moments(name: str, n: int, n_steps: int, seed: int, device="cpu",
                    cache: ArtefactCache | None = None) -> dict:
    """Forward Euler-Maruyama run of ``n`` target samples, moments every 10 steps (cached): ``t``, ``mu``."""
    s, cache = SCHEMES[name], ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        run = solvers.forward_em(s, TARGET.sample((n,), generator=g, device=device), grids.uniform_states(s, n_steps, 0.0),
                                 g, observe=moment_records, record_every=10)
        return {"t": run.t, "mu": run.records["mu"]}

    params = dict(target=TARGET, sde=s, n=n, n_steps=n_steps, seed=seed)
    return cache.get_or_compute("two-peak-forward", params, compute, seed=seed, code=__name__)


def backward_moments(name: str, which: str, scale: str, n: int, n_steps: int, seed: int, device="cpu",
                     cache: ArtefactCache | None = None) -> tuple:
    """The authors' sampler from the prior with the ``"learned"`` (the network of :func:`trained` at ``scale``) or
    the ``"exact"`` score (cached).  Returns the data (``x``, ``t``, ``mu``) and its provenance record."""
    if which not in ("learned", "exact"):
        raise ValueError(f"which must be 'learned' or 'exact', got {which!r}")
    s, cache = SCHEMES[name], ArtefactCache() if cache is None else cache
    score = (nets.score_fn(trained(name, scale, device, cache).sampling_model) if which == "learned"
             else TARGET.score_fn(s))

    def compute():
        g = make_generator(seed, device)
        x_T = s.prior_sample((n,), generator=g, device=device, dtype=torch.float64)
        run = solvers.backward_em(s, score, x_T, grids.uniform_evaluations(s, n_steps), g, observe=moment_records,
                                  record_every=10)
        return {"x": run.x, "t": run.t, "mu": run.records["mu"]}

    params = dict(target=TARGET, sde=s, score=which, n=n, n_steps=n_steps, t_end=1e-3, seed=seed)
    if which == "learned":
        params.update(net=NET, train=train_config(scale), train_seed=TRAIN_SEEDS[name], n_data=N_DATA)
    out = cache.get_or_compute("two-peak-backward", params, compute, seed=seed, code=__name__)
    return out, cache.provenance("two-peak-backward", params, code=__name__)


def integrator_study(name: str, n: int, nfe_list, rk_tols, t_end: float, seed: int, device="cpu",
                     cache: ArtefactCache | None = None) -> dict:
    """End points of the backward process with the exact score from the same exact samples of :math:`p(x, T)`
    (cached): Euler-Maruyama, stochastic Heun and the Heun ODE on :func:`lib.diffusion.grids.uniform_states` at each
    number of score evaluations of ``nfe_list``, RK45 at each tolerance of ``rk_tols`` (with its ``rk45-nfev``) and
    a reference RK45 solution at tolerance 1e-9."""
    s, cache = SCHEMES[name], ArtefactCache() if cache is None else cache
    score = TARGET.score_fn(s)

    def compute():
        g = make_generator(seed, device)
        x_T = s.sample_marginal(TARGET.sample((n,), generator=g, device=device), s.T, g)[0]
        out = {"reference": solvers.probability_flow_ivp(s, score, x_T, t_end, rtol=1e-9, atol=1e-9).x}
        for nfe in nfe_list:
            out[f"em-{nfe}"] = solvers.backward_solve(s, score, x_T, grids.uniform_states(s, nfe, t_end), "euler", g).x
            half = grids.uniform_states(s, nfe // 2, t_end)
            out[f"heun-{nfe}"] = solvers.backward_solve(s, score, x_T, half, "heun", g).x
            out[f"ode-heun-{nfe}"] = solvers.backward_solve(s, score, x_T, half, "heun", g, probability_flow=True).x
        nfev = []
        for i, tol in enumerate(rk_tols):
            res = solvers.probability_flow_ivp(s, score, x_T, t_end, rtol=tol, atol=tol)
            out[f"rk45-{i}"] = res.x
            nfev.append(res.nfev)
        out["rk45-nfev"] = torch.tensor(nfev)
        return out

    params = dict(target=TARGET, sde=s, n=n, nfe=list(nfe_list), rk_tols=list(rk_tols), t_end=t_end, seed=seed)
    return cache.get_or_compute("two-peak-integrators", params, compute, seed=seed, code=__name__)


def networks(scale: str) -> dict:
    """The trained networks of the chapter at ``scale``, by name (``"VE"``, ``"VP"``): what the store must hold."""
    return {name: toy_dm.network(spec) for name, spec in network_specs(scale).items()}
