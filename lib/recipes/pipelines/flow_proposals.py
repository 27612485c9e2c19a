r"""Diffusion models as exact samplers of lattice :math:`\phi^4`: proposals with their exact density, as artefacts.

The pipeline of :doc:`/book/part3/exact_sampler`.  A trained lattice diffusion model
(:class:`~lib.recipes.pipelines.lattice_training.DMSpec`, here with the Karras-variable flow of
:mod:`lib.diffusion.flow_map`) proposes
configurations :math:`\phi` with the exact density :math:`q(\phi)` of the map actually used; the independence
Metropolis-Hastings chain (:mod:`lib.physics.metropolis`) with the lattice action then samples
:math:`e^{-S}/Z` exactly.

:class:`ProposalSpec` (cache kind ``"phi4-flow-proposals"``)
    ``n_proposals`` configurations from the fixed-step flow of one network (the final one, or a snapshot kept along
    its training run, ``TrainConfig.keep_at``), made in batches that are saved as they finish (an interrupted run
    resumes with the next batch), with :math:`\log q` in the units of the lattice field, the action and the
    stochastic-trace errors of :func:`lib.diffusion.flow_map.flow_proposals`.

Nothing is computed at import time.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion import flow_map, grids
from lib.infra.cache import ArtefactCache
from lib import stats
from lib.physics import hmc, metropolis, observables, phi4
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.recipes.pipelines.batched import cached_batches, draw_batches
from lib.recipes.pipelines.lattice_training import DMSpec, forward_sde, trained_model

__all__ = ["KIND_PROPOSALS", "ProposalSpec", "network", "draw", "proposals", "precision_check", "observables_of", "summary", "corrected_chain", "hmc_seconds_per_trajectory",
           "gaussian_check"]

#: cache kind of the proposals
KIND_PROPOSALS = "phi4-flow-proposals"


@dataclass(frozen=True)
class ProposalSpec:
    """Recipe of a set of flow proposals (:func:`proposals`); every field is part of the cache key."""

    dm: DMSpec  # the trained network; with at_step, one of the snapshots kept along its run (dm.train.keep_at)
    n_proposals: int  # number of proposals (>= 2)
    n_steps: int = 8  # steps of the fixed-step probability-flow map on the Karras grid (>= 1)
    method: str = "heun"  # "heun" (two score evaluations per step) or "euler" (one), lib.diffusion.flow_map.METHODS
    t_end: float = 1e-3  # last time of the grid, in (0, 1): the proposals are the model's distribution at t_end
    at_step: int | None = None  # training step of the snapshot to use (in dm.train.keep_at); None: the final network
    probes: int = 16  # Rademacher probes per proposal for the stochastic-trace error (0: none)
    batch: int = 64  # proposals per batch; each finished batch is saved, so a run resumes
    seed: int = 0  # seed of the prior draws and of the probes

    def __post_init__(self):
        if not isinstance(self.dm, DMSpec):
            raise ValueError(f"dm must be a DMSpec, got {type(self.dm).__name__}")
        for name, lo in (("n_proposals", 2), ("n_steps", 1), ("probes", 0), ("batch", 1), ("seed", 0)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        if self.method not in flow_map.METHODS:
            raise ValueError(f"method must be one of {flow_map.METHODS}, got {self.method!r}")
        t_end = require_positive(self.t_end, "t_end")
        if t_end >= 1.0:
            raise ValueError(f"t_end must lie in (0, T = 1), got {t_end}")
        if self.at_step is not None:
            object.__setattr__(self, "at_step", require_int(self.at_step, "at_step", 1))
            if self.at_step not in self.dm.train.keep_at:
                raise ValueError(f"at_step = {self.at_step} is not a kept snapshot of the training run "
                                 f"(dm.train.keep_at = {self.dm.train.keep_at})")

    @property
    def score_evaluations(self) -> int:
        """Score evaluations per proposal (two per Heun step, one per Euler step)."""
        return (2 if self.method == "heun" else 1) * self.n_steps


def network(spec: DMSpec, at_step: int | None = None, cache: ArtefactCache | None = None, device=None):
    """``(model, Normalisation)``: the sampling network of ``spec`` (EMA weights), or its snapshot at ``at_step``."""
    result, norm = trained_model(spec, cache, device=device)
    model = result.sampling_model
    if at_step is not None:
        if at_step not in result.snapshots:
            raise ValueError(f"no snapshot at step {at_step}; kept: {sorted(result.snapshots)}")
        model = copy.deepcopy(model)
        model.load_state_dict(result.snapshots[at_step])
    return model.eval(), norm


def draw(spec: ProposalSpec, cache: ArtefactCache | None = None, device=None, run_batches=None) -> dict:
    """The proposals of ``spec`` computed now and not stored (see :func:`proposals`; the network is cached).

    ``run_batches(n_batches, one_batch)`` runs the batches (default: one after the other; :func:`proposals` passes
    :meth:`lib.infra.cache.ArtefactCache.batches`, which saves each as it finishes).
    """
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    model, norm = network(spec.dm, spec.at_step, cache, device)
    sde, params = forward_sde(spec.dm), spec.dm.params
    grid = grids.karras(sde, spec.n_steps, spec.t_end)
    volume_log_scale = params.L * params.L * math.log(norm.scale)

    def one_batch(b, size, seed):
        out = flow_map.flow_proposals(sde, lambda x, t: model(x, t), grid, (params.L, params.L), size,
                                      make_generator(seed, device), method=spec.method, batch=size,
                                      dtype=torch.float32, device=device, probes=spec.probes)
        phi = norm.inverse(out.x.to(torch.float64)).cpu()
        return {"phi": phi, "log_q": out.log_q.cpu() - volume_log_scale, "action": phi4.action(phi, params),
                "hutchinson_error": out.hutchinson_error.cpu()}

    return draw_batches(spec.n_proposals, spec.batch, spec.seed, one_batch,
                        ("phi", "log_q", "action", "hutchinson_error"), "seconds_per_proposal", run_batches)


def precision_check(spec: ProposalSpec, n: int = 32, cache: ArtefactCache | None = None, device=None) -> dict:
    r"""The rounding error of the float32 flow: the first ``n`` proposals of ``spec`` again in float64.

    The proposals of :func:`proposals` are computed in float32 (network, flow and Jacobians; the log-determinants are
    summed in float64).  Here the same start points :math:`x_T` (the first ``n`` of the first batch, drawn as
    :func:`draw` draws them) go through the flow twice, with the network in float32 and with a float64 copy of it,
    and the log-weights :math:`\log w = -S(\phi) - \log q(\phi)` of the two are compared.  Computed now, not stored.

    Returns
    -------
    dict
        ``max_log_w_error`` (the largest :math:`|\Delta \log w|`), ``max_log_q_error``, ``max_action_error``,
        ``max_field_error`` (the largest :math:`|\Delta\phi|` at a site) and ``n``.
    """
    n = require_int(n, "n", 1)
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    model, norm = network(spec.dm, spec.at_step, cache, device)
    sde, params = forward_sde(spec.dm), spec.dm.params
    grid = grids.karras(sde, spec.n_steps, spec.t_end)
    seed = torch.randint(0, 2**62, (1,), generator=make_generator(spec.seed)).item()
    x_T = sde.prior_sample((min(spec.batch, spec.n_proposals), params.L, params.L), generator=make_generator(seed, device),
                           device=device, dtype=torch.float32)[:n]
    model64 = copy.deepcopy(model).double()
    out = {}
    for name, net, x0 in (("32", model, x_T), ("64", model64, x_T.double())):
        flow = flow_map.flow_from(sde, lambda x, t, net=net: net(x, t), grid, x0, spec.method)
        phi = norm.inverse(flow.x.to(torch.float64)).cpu()
        log_q = flow.log_q.cpu() - params.L * params.L * math.log(norm.scale)
        out[name] = (phi, log_q, phi4.action(phi, params))
    (phi32, q32, s32), (phi64, q64, s64) = out["32"], out["64"]
    return {"max_log_w_error": float(((-s32 - q32) - (-s64 - q64)).abs().max()),
            "max_log_q_error": float((q32 - q64).abs().max()), "max_action_error": float((s32 - s64).abs().max()),
            "max_field_error": float((phi32 - phi64).abs().max()), "n": int(x_T.shape[0])}


def proposals(spec: ProposalSpec, cache: ArtefactCache | None = None, device=None) -> dict:
    r"""The proposals of ``spec`` with their exact density (cached under kind ``"phi4-flow-proposals"``).

    Made in batches of ``spec.batch`` saved as they finish (an interrupted run resumes with the next batch; each
    batch has its own generator seeded from ``spec.seed`` and its index).

    Returns
    -------
    dict
        ``phi`` ``(n, L, L)`` float64 in the units of the lattice action; ``log_q`` ``(n,)`` float64, the exact
        log-density of ``phi`` (the normalised field's density minus :math:`V \log s`); ``action`` ``(n,)``
        :math:`S(\phi)`; ``hutchinson_error`` ``(n, probes)``; ``seconds_per_proposal`` (wall time of the flow and
        its Jacobians, on the device of the run that made them).
    """
    cache = ArtefactCache() if cache is None else cache
    return cached_batches(cache, KIND_PROPOSALS, {"proposals": spec}, spec.seed, __name__,
                          lambda run_batches: draw(spec, cache, device, run_batches))


def observables_of(phi: torch.Tensor, action: torch.Tensor) -> dict:
    r"""Per-configuration observables: ``M``, ``abs_M``, ``M2`` (:math:`M^2`), ``sign_M``, ``action``,
    ``action_density`` (:math:`S/V`) and ``phi2`` (:math:`V^{-1}\sum_x \phi(x)^2`, whose mean is the single-site
    :math:`\kappa_2`); ``phi`` is ``(n, L, L)``, ``action`` ``(n,)``."""
    M = observables.magnetisation(phi)
    volume = phi.shape[-1] * phi.shape[-2]
    return {"M": M, "abs_M": M.abs(), "M2": M * M, "sign_M": torch.sign(M), "action": action,
            "action_density": action / volume, "phi2": phi.pow(2).mean(dim=(-2, -1))}


def summary(series: dict, volume: int, generator, independent: bool = False) -> dict:
    r"""Means with errors of a chain (or of independent samples): the magnetisation observables of
    :func:`lib.physics.observables.magnetisation_summary` (from ``series["M"]``) and the means of
    ``series["action_density"]`` and ``series["phi2"]``, errors from :func:`lib.stats.mean_error` (tau_int).

    ``series`` holds ``(N,)`` or ``(N, chains)`` tensors, e.g. the output of :func:`corrected_chain` or of
    :func:`observables_of`; ``independent=True`` for independent samples (blocks of one).
    """
    out = observables.magnetisation_summary(series["M"], volume, generator, block_length=1 if independent else None)
    return out | {key: stats.mean_error(series[key].numpy()) for key in ("action_density", "phi2")}


def corrected_chain(props: dict, generator: torch.Generator, log_q_error=None) -> dict:
    r"""The independence Metropolis-Hastings chain through the proposals ``props`` of :func:`proposals`.

    ``log_q_error`` (optional, ``(n,)``) is added to :math:`\log q` before the chain is run, e.g. one column of
    ``props["hutchinson_error"]`` (a stochastic-trace density, :doc:`/book/part3/exact_sampler`).

    Returns
    -------
    dict
        ``chain`` (:class:`lib.physics.metropolis.MHChain`), ``acceptance`` and its error ``acceptance_error``
        (:func:`lib.stats.mean_error` of the accept decisions), ``k_hat`` (the Pareto shape of the largest weights,
        :func:`lib.stats.pareto_k`) and ``k_threshold`` (:func:`lib.stats.pareto_k_threshold`: above it the chain
        cannot be trusted, :doc:`/book/part3/path_sampler`), and the time series along the chain of every
        observable of :func:`observables_of`.
    """
    log_q = props["log_q"] if log_q_error is None else props["log_q"] + log_q_error
    chain = metropolis.independence_metropolis(props["phi"], log_q, lambda phi: props["action"], generator)
    out = {name: metropolis.chain_observable(chain, values)
           for name, values in observables_of(props["phi"], props["action"]).items()}
    acceptance, error = stats.mean_error(chain.accepted.double().numpy())
    out.update(chain=chain, acceptance=acceptance, acceptance_error=error, k_hat=stats.pareto_k(chain.log_w),
               k_threshold=stats.pareto_k_threshold(int(chain.log_w.shape[0])))
    return out


def gaussian_check(L: int = 8, variance: float = 0.7, n: int = 64, n_steps: int = 8, seed: int = 0) -> dict:
    r"""The exact density of the flow where it is known: a Gaussian target of ``variance`` per site, exact score.

    With the score :math:`-x/(v f^2 + \Xi)` every step is a multiplication by a number, so the map is
    :math:`x = A x_T` and the proposals are :math:`\mathcal N(0, A^2\, \Xi(T))` per site.  Measured ``A`` from
    the proposals themselves (``x / x_T``, which must be one number), the closed-form log-density against the
    ``log q`` of :func:`lib.diffusion.flow_map.flow_proposals` (float64, VE with :math:`\sigma = 25`, Heun on the
    Karras grid).  Returns ``max_log_q_error``, ``max_ratio_spread`` and ``A``.
    """
    from lib.diffusion.sde import ve

    sde = ve(25.0)

    def score(x, t):
        return -x / (variance * sde.f(t) ** 2 + sde.xi(t)).to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))

    out = flow_map.flow_proposals(sde, score, grids.karras(sde, n_steps, 1e-3), (L, L), n, make_generator(seed))
    ratio = (out.x / out.x_T).reshape(-1)
    A = float(ratio.mean())
    var, d = A * A * sde.prior_std() ** 2, L * L
    exact = -0.5 * out.x.reshape(n, -1).pow(2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)
    return {"max_log_q_error": float((out.log_q - exact).abs().max()),
            "max_ratio_spread": float((ratio - A).abs().max()), "A": A}


def hmc_seconds_per_trajectory(spec: ens.ChainSpec, n_traj: int = 50, cache: ArtefactCache | None = None,
                               device=None) -> float:
    """Wall time of one HMC trajectory of one chain of ``spec``, measured now.

    ``n_traj`` trajectories of all ``spec.n_chains`` chains in parallel (as the ensembles are made), continued from
    the final configurations of the cached ensemble, divided by ``n_traj * n_chains``.  Nothing is stored.
    """
    n_traj = require_int(n_traj, "n_traj")
    phi = ens.ensemble(spec, cache=cache)["phi_final"].to(device=device or "cpu", dtype=torch.float64)
    gen = make_generator(spec.seed + 1, phi.device)
    start = time.perf_counter()
    hmc.hmc(spec.params, phi, n_traj, step=spec.step, n_steps=spec.n_steps, generator=gen,
            integrator=spec.integrator, jitter=spec.jitter)
    return (time.perf_counter() - start) / (n_traj * spec.n_chains)
