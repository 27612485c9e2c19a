r"""Diffusion models as exact samplers on the papers' lattices: proposals on the whole backward path, as artefacts.

The pipeline of :doc:`/book/part3/path_sampler`.  A lattice diffusion model
(:class:`~lib.recipes.pipelines.lattice_training.DMSpec`), or no network at all (the Gaussian score of the training
data's measured propagator, the free-field baseline, with or without the exact force at small noise or a zero mode
fitted to the data), proposes configurations with the stochastic backward process
of :mod:`lib.diffusion.path_sampler`; each proposal carries the exact log-density ratio of its path
(:attr:`lib.diffusion.path_sampler.PathProposal.log_q`), so the independence Metropolis-Hastings chain of
:func:`lib.recipes.pipelines.flow_proposals.corrected_chain` samples :math:`e^{-S}/Z` exactly with no Jacobian.

:class:`PathSpec` (cache kind ``"phi4-path-proposals"``)
    ``n_paths`` paths on the grid :func:`lib.diffusion.path_sampler.geometric`, made in batches that are saved as
    they finish (an interrupted run resumes with the next batch).
:class:`AnnealedSpec` (cache kind ``"phi4-annealed-proposals"``)
    those paths continued by annealed HMC layers from the density the proposal approximates to :math:`e^{-S}`
    (:mod:`lib.diffusion.annealing`, a stochastic normalizing flow), with the weight of the extended path.

Also :func:`weight_summary` (the spread of the path weights, Kish's effective sample size and the Pareto
:math:`\hat k` of :func:`lib.stats.importance_ess` and :func:`lib.stats.pareto_k`), :func:`chain_site_ratios` (the single-site cumulant ratios of a
chain with errors from blocks longer than its autocorrelation time), :func:`gaussian_kernel_check` (the kernels on a
Gaussian target with its exact score) and :func:`gaussian_proposals` (a Gaussian proposal of chosen width: the
independence chain that cannot be trusted).  Nothing is computed at import time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from lib import stats
from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion import annealing, path_sampler as ps
from lib.diffusion.annealing import HMCLayers
from lib.diffusion.force_score import ForceScore
from lib.diffusion.mode_gaussian import ModeGaussian, gaussian_score, mode_variance
from lib.diffusion.zero_mode import ZeroModeMixture
from lib.infra.cache import ArtefactCache
from lib.physics import metropolis, observables, phi4
from lib.recipes.pipelines.batched import cached_batches, draw_batches
from lib.recipes.pipelines.lattice_training import DMSpec, forward_sde, normalisation, trained_model, training_configs

__all__ = ["KIND_PATHS", "KIND_ANNEALED", "SCORES", "ZERO_MODE_MASSES", "BASES", "PathSpec", "AnnealedSpec", "data_mode_variance",
           "phi4_residual", "draw", "proposals", "base_density", "annealed", "draw_annealed", "weight_summary",
           "chain_site_ratios", "gaussian_kernel_check", "gaussian_proposals"]

#: cache kinds of the path proposals and of the proposals moved by annealed layers
KIND_PATHS = "phi4-path-proposals"
KIND_ANNEALED = "phi4-annealed-proposals"
#: the scores a :class:`PathSpec` may propose with
SCORES = ("network", "gaussian", "force", "zero-mode")


@dataclass(frozen=True)
class PathSpec:
    """Recipe of a set of path proposals (:func:`proposals`); every field is part of the cache key."""

    dm: DMSpec  # the lattice, training data, normalisation and forward process; with score "network", the network
    n_paths: int  # number of paths (>= 2)
    # "network": the trained network of dm; "gaussian": no network, the Gaussian score of the propagator of dm's
    # normalised training data (lib.diffusion.mode_gaussian.gaussian_score); "force": no network, that Gaussian score
    # plus the exact non-Gaussian force at small noise (lib.diffusion.force_score.ForceScore with force_power and
    # force_cut); "zero-mode": no network, that Gaussian score with the zero mode of the symmetric Gaussian mixture
    # of zero_mode_components components fitted to the data (lib.diffusion.zero_mode); dm's network is trained only
    # for "network"
    score: str = "network"
    n_steps: int = 100  # steps of the backward process on lib.diffusion.path_sampler.geometric (>= 2)
    kernel: str = "posterior"  # lib.diffusion.path_sampler.KERNELS
    xi_min: float = 1e-4  # Xi of the last state above t = 0 (the grid is geometric in sqrt(Xi) down to it)
    batch: int = 64  # paths per batch; each finished batch is saved, so a run resumes
    seed: int = 0  # seed of the batches' generators
    force_power: float = 4.0  # p of lib.diffusion.force_score (score "force" only)
    force_cut: float = 1.0  # c of lib.diffusion.force_score (score "force" only)
    zero_mode_components: int = 3  # components of the zero mode's mixture (score "zero-mode" only)

    def __post_init__(self):
        if not isinstance(self.dm, DMSpec):
            raise ValueError(f"dm must be a DMSpec, got {type(self.dm).__name__}")
        for name, lo in (("n_paths", 2), ("n_steps", 2), ("batch", 1), ("seed", 0), ("zero_mode_components", 1)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.kernel not in ps.KERNELS:
            raise ValueError(f"kernel must be one of {ps.KERNELS}, got {self.kernel!r}")
        object.__setattr__(self, "xi_min", require_positive(self.xi_min, "xi_min"))
        object.__setattr__(self, "force_power", require_positive(self.force_power, "force_power"))
        object.__setattr__(self, "force_cut", require_positive(self.force_cut, "force_cut"))


def data_mode_variance(dm: DMSpec, cache: ArtefactCache | None = None) -> torch.Tensor:
    """The per-mode variance of ``dm``'s normalised training configurations
    (:func:`lib.diffusion.mode_gaussian.mode_variance`): the propagator of the posterior kernel and of the Gaussian
    score, the same as a ``base="gaussian"`` network's."""
    x = training_configs(dm, cache)
    return mode_variance(normalisation(dm, x).forward(x))


def phi4_residual(params: phi4.Phi4Params, norm, variance: torch.Tensor):
    r""":math:`R(y) = -\nabla_y S + C^{-1} y` of :mod:`lib.diffusion.force_score` for the lattice :math:`\phi^4` action
    in the variables :math:`y` of the normalisation ``norm``, with :math:`C` the mode variances ``variance`` of
    :math:`y` (e.g. :func:`data_mode_variance`): the non-Gaussian part of the force."""
    v = torch.as_tensor(variance, dtype=torch.float64)
    dims = tuple(range(-v.dim(), 0))

    def residual(y):
        y = y.to(torch.float64)
        c_inv_y = torch.fft.ifftn(torch.fft.fftn(y, dim=dims, norm="ortho") / v.to(y.device), dim=dims,
                                  norm="ortho").real
        return norm.scale * phi4.force(norm.inverse(y), params, check=False) + c_inv_y

    return residual


def _score(spec: PathSpec, cache, device):
    """``(score(x, t), Normalisation, mode variance)`` of ``spec``."""
    v = data_mode_variance(spec.dm, cache)
    x = training_configs(spec.dm, cache)
    norm = normalisation(spec.dm, x)
    sde = forward_sde(spec.dm)
    if spec.score == "gaussian":
        v_dev = v.to(device)
        return (lambda y, t: gaussian_score(y, t, sde, v_dev)), norm, v
    if spec.score == "zero-mode":
        mixture = ZeroModeMixture.fit(norm.forward(x), spec.zero_mode_components)
        v_dev = v.to(device)
        return mixture.score_on(lambda y, t: gaussian_score(y, t, sde, v_dev), sde, v_dev), norm, v
    if spec.score == "force":
        model = ForceScore(sde, v, phi4_residual(spec.dm.params, norm, v), spec.force_power, spec.force_cut).to(device)
        return (lambda y, t: model(y, t)), norm, v
    result, norm = trained_model(spec.dm, cache, device=device)
    model = result.sampling_model.eval()

    def score(y, t):
        with torch.no_grad():
            return model(y.to(torch.float32), t.to(torch.float32)).to(y.dtype)

    return score, norm, v


def draw(spec: PathSpec, cache: ArtefactCache | None = None, device=None, run_batches=None) -> dict:
    """The path proposals of ``spec`` computed now and not stored (see :func:`proposals`; the network is cached).

    ``run_batches(n_batches, one_batch)`` runs the batches (default: one after the other; :func:`proposals` passes
    :meth:`lib.infra.cache.ArtefactCache.batches`, which saves each as it finishes).
    """
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    score, norm, v = _score(spec, cache, device)
    sde, params = forward_sde(spec.dm), spec.dm.params
    grid = ps.geometric(sde, spec.n_steps, spec.xi_min)
    volume_log_scale = params.L * params.L * math.log(norm.scale)

    def one_batch(b, size, seed):
        out = ps.path_proposals(sde, score, grid, (params.L, params.L), size, make_generator(seed, device),
                                kernel=spec.kernel, mode_variance=v if spec.kernel == "posterior" else None,
                                batch=size)
        phi = norm.inverse(out.x.to(torch.float64)).cpu()
        return {"phi": phi, "log_q": out.log_q.cpu() - volume_log_scale, "action": phi4.action(phi, params)}

    return draw_batches(spec.n_paths, spec.batch, spec.seed, one_batch, ("phi", "log_q", "action"),
                        "seconds_per_path", run_batches)


def proposals(spec: PathSpec, cache: ArtefactCache | None = None, device=None) -> dict:
    r"""The path proposals of ``spec`` (cached under kind ``"phi4-path-proposals"``).

    Made in batches of ``spec.batch`` saved as they finish (an interrupted run resumes with the next batch; each
    batch has its own generator seeded from ``spec.seed`` and its index).

    Returns
    -------
    dict
        ``phi`` ``(n, L, L)`` float64 in the units of the lattice action; ``log_q`` ``(n,)`` float64, the path's
        :math:`\log p(\text{path}) - \log q(\text{path} \mid \phi)` in those units (pass it to the independence
        chain as the proposal density: :func:`lib.recipes.pipelines.flow_proposals.corrected_chain` takes this
        dict); ``action`` ``(n,)`` :math:`S(\phi)`; ``seconds_per_path`` (wall time of the backward process, on the
        device of the run that made them).
    """
    cache = ArtefactCache() if cache is None else cache
    return cached_batches(cache, KIND_PATHS, {"paths": spec}, spec.seed, __name__,
                          lambda run_batches: draw(spec, cache, device, run_batches))


#: what the annealed layers' momenta take as the zero mode's variance (:class:`AnnealedSpec`)
ZERO_MODE_MASSES = ("data", "narrowest")
#: the base density the annealed layers start from (:func:`base_density`)
BASES = ("score", "zero-mode")


@dataclass(frozen=True)
class AnnealedSpec:
    """Path proposals followed by annealed HMC layers (:mod:`lib.diffusion.annealing`), as an artefact
    (:func:`annealed`); every field is part of the cache key."""

    paths: PathSpec  # the proposals the layers start from (the same artefact as without layers)
    layers: HMCLayers  # number, step, leapfrog steps and schedule of the layers
    # the momenta's mass is the inverse of the data's propagator; "narrowest" (score "zero-mode" only) takes for the
    # zero mode the variance of the narrowest peak of the fitted mixture instead of the data's <u^2>, which in a broken
    # phase is the distance between the vacua, not the width of either
    zero_mode_mass: str = "data"
    # "score": the density of the proposal's score where it has one (the free field; its zero mode the fitted mixture
    # for the "zero-mode" score); "zero-mode": the free field with the fitted zero mode whatever the score (e.g. a network)
    base: str = "score"
    batch: int = 256  # proposals per batch; each finished batch is saved, so a run resumes
    seed: int = 0  # seed of the batches' generators (momenta, accept decisions)

    def __post_init__(self):
        if not isinstance(self.paths, PathSpec):
            raise ValueError(f"paths must be a PathSpec, got {type(self.paths).__name__}")
        if not isinstance(self.layers, HMCLayers):
            raise ValueError(f"layers must be a lib.diffusion.annealing.HMCLayers, got {type(self.layers).__name__}")
        if self.zero_mode_mass not in ZERO_MODE_MASSES:
            raise ValueError(f"zero_mode_mass must be one of {ZERO_MODE_MASSES}, got {self.zero_mode_mass!r}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.zero_mode_mass == "narrowest" and "zero-mode" not in (self.paths.score, self.base):
            raise ValueError("zero_mode_mass='narrowest' needs a fitted zero mode (the zero-mode score or base)")
        object.__setattr__(self, "batch", require_int(self.batch, "batch", 1))
        object.__setattr__(self, "seed", require_int(self.seed, "seed", 0))


def base_density(spec: PathSpec, cache: ArtefactCache | None = None, zero_mode_mass: str = "data",
                 base: str = "score"):
    r"""``(log_b(phi), C)``: the log-density, up to a constant, that the proposals of ``spec`` approximate, and the
    per-mode variance of the momenta's inverse mass, both in the units of the lattice action.

    :math:`b` is the Gaussian of the data's propagator (:func:`data_mode_variance`) about the normalisation's shift;
    with the ``"zero-mode"`` score, or ``base="zero-mode"``, its zero mode follows the fitted mixture instead.  Any :math:`b` leaves the annealed
    weights exact (:mod:`lib.diffusion.annealing`); this one is where the layers start.
    """
    cache = ArtefactCache() if cache is None else cache
    if zero_mode_mass not in ZERO_MODE_MASSES:
        raise ValueError(f"zero_mode_mass must be one of {ZERO_MODE_MASSES}, got {zero_mode_mass!r}")
    if base not in BASES:
        raise ValueError(f"base must be one of {BASES}, got {base!r}")
    fitted = spec.score == "zero-mode" or base == "zero-mode"
    if zero_mode_mass == "narrowest" and not fitted:
        raise ValueError("zero_mode_mass='narrowest' needs a fitted zero mode (the zero-mode score or base)")
    x = training_configs(spec.dm, cache)
    norm = normalisation(spec.dm, x)
    v = data_mode_variance(spec.dm, cache)
    mixture = ZeroModeMixture.fit(norm.forward(x), spec.zero_mode_components) if fitted else None
    dims, root_volume = (-2, -1), math.sqrt(spec.dm.params.L ** 2)

    def log_b(phi):
        y = (phi - norm.shift) / norm.scale
        yp = torch.fft.fftn(y, dim=dims, norm="ortho")
        quad = (yp.real ** 2 + yp.imag ** 2) / v.to(y.device)
        if mixture is None:
            return -0.5 * quad.sum(dims)
        return -0.5 * (quad.sum(dims) - quad[:, 0, 0]) + mixture.log_prob(y.sum(dims) / root_volume)

    c = v * norm.scale ** 2
    if zero_mode_mass == "narrowest":
        c = c.clone()
        c[0, 0] = (min(mixture.s) * norm.scale) ** 2
    return log_b, c


def _anneal(spec: AnnealedSpec, props: dict, cache: ArtefactCache, device, run_batches=None) -> dict:
    """The proposals ``props`` of ``spec.paths`` moved through ``spec.layers``, in batches (see :func:`annealed`)."""
    log_b, c = base_density(spec.paths, cache, spec.zero_mode_mass, spec.base)
    params = spec.paths.dm.params

    def one_batch(b, size, seed):
        lo = b * spec.batch
        out = annealing.annealed_layers(props["phi"][lo:lo + size].to(device), props["log_q"][lo:lo + size],
                                        lambda phi: -phi4.action(phi, params, check=False), log_b, spec.layers,
                                        make_generator(seed, device), mass_variance=c.to(device))
        phi = out.x.cpu()
        return {"phi": phi, "log_q": out.log_q.cpu(), "action": phi4.action(phi, params),
                "layer_acceptance": out.acceptance.reshape(1, -1)}

    data = draw_batches(int(props["phi"].shape[0]), spec.batch, spec.seed, one_batch,
                        ("phi", "log_q", "action", "layer_acceptance"), "seconds_layers_per_path", run_batches)
    data["seconds_per_path"] = data["seconds_layers_per_path"] + props["seconds_per_path"]
    return data


def draw_annealed(spec: AnnealedSpec, cache: ArtefactCache | None = None, device=None) -> dict:
    """The annealed proposals of ``spec`` computed now, paths included, and not stored (e.g. to time them in the run
    that compares the times; :func:`annealed` caches).  The same fields as :func:`annealed`."""
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    return _anneal(spec, draw(spec.paths, cache, device), cache, device)


def annealed(spec: AnnealedSpec, cache: ArtefactCache | None = None, device=None) -> dict:
    r"""The path proposals of ``spec.paths`` (:func:`proposals`, cached) moved through ``spec.layers``
    (:func:`lib.diffusion.annealing.annealed_layers`, target :math:`e^{-S}`, base :func:`base_density`); cached
    under kind ``"phi4-annealed-proposals"``, in batches saved as they finish.

    Returns the fields of :func:`proposals` for the moved configurations (``log_q`` includes the layers, so
    :func:`lib.recipes.pipelines.flow_proposals.corrected_chain` and :func:`weight_summary` take the dict as they
    are), ``layer_acceptance`` ``(n_batches, n_layers)`` and ``seconds_per_path``: the path's wall time plus the
    layers' (``seconds_layers_per_path``).
    """
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    props = proposals(spec.paths, cache, device)
    return cached_batches(cache, KIND_ANNEALED, {"annealed": spec}, spec.seed, __name__,
                          lambda run_batches: _anneal(spec, props, cache, device, run_batches))


def weight_summary(props: dict) -> dict:
    r"""The importance weights :math:`\log w = -S - \log q` of proposals ``props`` (a dict with ``action`` and
    ``log_q``): their standard deviation ``sd_log_w``, Kish's effective sample size per proposal ``ess_fraction``
    (:func:`lib.stats.importance_ess`), the Pareto shape ``k_hat`` of the largest weights
    (:func:`lib.stats.pareto_k`) and the threshold ``k_threshold`` above which it flags an unreliable estimate
    (:func:`lib.stats.pareto_k_threshold`)."""
    log_w = (-props["action"].to(torch.float64) - props["log_q"].to(torch.float64)).numpy()
    n = log_w.shape[0]
    return {"sd_log_w": float(np.std(log_w)), "ess_fraction": float(stats.importance_ess(log_w)) / n,
            "k_hat": float(stats.pareto_k(log_w)), "k_threshold": float(stats.pareto_k_threshold(n)), "n": n}


def chain_site_ratios(phi: torch.Tensor, chain: metropolis.MHChain, generator: np.random.Generator,
                      orders=(4, 6, 8), block_factor: float = 10.0, symmetric: bool = False):
    r"""The single-site ratios :math:`\kappa_n/\kappa_2^{n/2}` of the configurations along ``chain`` (``phi`` holds
    one configuration per proposal) with block-bootstrap errors
    (:func:`lib.physics.observables.site_cumulant_ratios`, ``symmetric=True``: of the :math:`Z_2`-symmetrised
    field, as Table T2), the blocks ``block_factor`` times longer than the integrated autocorrelation time of the
    chain's :math:`\sum_x \phi(x)^2` and of its accept decisions."""
    along = phi[chain.index]
    tau = max(stats.tau_int(along.pow(2).mean(dim=(-2, -1)).numpy()).tau,
              stats.tau_int(chain.accepted.double().numpy()).tau, 0.5)
    n_blocks = max(2, int(along.shape[0] // math.ceil(block_factor * tau)))
    return observables.site_cumulant_ratios(along, orders=orders, generator=generator, n_blocks=n_blocks,
                                            symmetric=symmetric)


def gaussian_kernel_check(variance: torch.Tensor, sde, n_steps: int, kernel: str, kernel_variance, n: int,
                          seed: int, xi_min: float = 1e-4) -> dict:
    r"""The path weights on a Gaussian target with its exact score: the effect of the transition kernel alone.

    The target is the centred Gaussian with mode variances ``variance`` (a tensor of the configuration's shape),
    :math:`S(x) = \tfrac12 \sum_p |\tilde x_p|^2 / v_p` whose partition function is :math:`\log Z = \tfrac12
    \sum_p \log(2\pi v_p)`; the score is its exact score along ``sde``
    (:func:`lib.diffusion.mode_gaussian.gaussian_score`).  ``kernel`` and ``kernel_variance`` are passed to
    :func:`lib.diffusion.path_sampler.path_proposals` (``kernel_variance``: the per-mode variances the posterior
    kernel assumes; ``variance`` itself makes every weight equal to :math:`Z`, a scalar gives an isotropic kernel).
    Returns the spread ``sd_log_w`` of the weights, ``max_dev_log_Z`` (the largest :math:`|\log w - \log Z|`),
    the acceptance of the independence chain through them and its ``seconds`` of wall time.
    """
    variance = torch.as_tensor(variance, dtype=torch.float64)
    target = ModeGaussian(variance, tuple(variance.shape))
    g = make_generator(seed)
    start = time.perf_counter()
    paths = ps.path_proposals(sde, lambda x, t: gaussian_score(x, t, sde, variance),
                              ps.geometric(sde, n_steps, xi_min), tuple(variance.shape), n, g, kernel=kernel,
                              mode_variance=kernel_variance)
    seconds = time.perf_counter() - start
    log_Z = 0.5 * float(torch.log(2 * math.pi * variance).sum())
    log_w = target.log_prob(paths.x) + log_Z - paths.log_q
    chain = metropolis.independence_metropolis(paths.x, paths.log_q, lambda x: -target.log_prob(x) - log_Z, g)
    return {"sd_log_w": float(log_w.std()), "max_dev_log_Z": float((log_w - log_Z).abs().max()),
            "acceptance": chain.acceptance, "seconds": seconds}


def gaussian_proposals(dm: DMSpec, width: float, n: int, seed: int, cache: ArtefactCache | None = None) -> dict:
    r"""``n`` independent proposals from the centred Gaussian whose mode variances are ``width**2`` times the
    measured propagator of ``dm``'s training configurations (in the units of the lattice action), with their exact
    log-density: a proposal that is narrower than the target for ``width < 1``.  Returns ``phi``, ``log_q`` and
    ``action`` as :func:`proposals`."""
    width = require_positive(width, "width")
    n = require_int(n, "n", 2)
    x = training_configs(dm, cache)
    gauss = ModeGaussian(width ** 2 * mode_variance(x), tuple(x.shape[1:]))
    phi = gauss.sample(n, make_generator(seed))
    return {"phi": phi, "log_q": gauss.log_prob(phi), "action": phi4.action(phi, dm.params)}
