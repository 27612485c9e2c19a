r"""Cached lattice :math:`\phi^4` ensembles: the pipeline behind the book's HMC data sets.

Two recipes, each a frozen dataclass whose every field enters the cache key
(:class:`lib.infra.cache.ArtefactCache`), so that a changed parameter never reuses a stale ensemble:

:class:`ChainSpec` (cache kind ``"phi4-hmc-ensemble"``)
    ``n_chains`` Markov chains run in parallel by :func:`lib.physics.hmc.hmc` from a cold or hot start:
    ``n_therm`` thermalisation trajectories (their magnetisation history is kept), then
    ``n_traj`` measured trajectories with records of :math:`M` and :math:`S` after every
    trajectory and a configuration kept every ``keep_every`` trajectories.
:class:`ChainEndsSpec` (cache kind ``"phi4-chain-ends-ensemble"``)
    the authors' protocol of :func:`lib.physics.hmc.chain_ends`: one fresh hot-started chain per
    configuration, the configuration after ``n_traj = 128`` leapfrog trajectories of
    ``n_steps = 100`` steps of ``step = 0.01``, with the magnetisation history of every chain.

Configurations are stored as float32 (the runs themselves use float64).  The ensembles of the book are chosen
in :mod:`lib.recipes.phi4_hmc`, so later chapters load exactly the ensembles analysed in
:doc:`/book/part3/phi4_hmc`.  Derived there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lib.physics import hmc as _hmc
from lib.physics import phi4
from lib.core.checks import require_int
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache

__all__ = [
    "KIND_CHAINS",
    "KIND_CHAIN_ENDS",
    "ChainSpec",
    "ChainEndsSpec",
    "run_chains",
    "run_chain_ends",
    "ensemble",
    "configurations",
    "kept_magnetisation",
]

#: cache kind of a Markov-chain ensemble (:class:`ChainSpec`)
KIND_CHAINS = "phi4-hmc-ensemble"
#: cache kind of a chain-ends ensemble (:class:`ChainEndsSpec`)
KIND_CHAIN_ENDS = "phi4-chain-ends-ensemble"


@dataclass(frozen=True)
class ChainSpec:
    """Recipe of a Markov-chain ensemble (:func:`run_chains`); every field is part of the cache key."""

    params: phi4.Phi4Params  # lattice size L, hopping parameter kappa, coupling lambda
    n_chains: int  # independent chains run in parallel (>= 1)
    n_therm: int  # thermalisation trajectories (>= 0), magnetisation recorded, no configurations kept
    n_traj: int  # measured trajectories (>= 1)
    keep_every: int  # keep a configuration every keep_every measured trajectories (>= 1)
    step: float  # integrator step size (> 0)
    n_steps: int  # integrator steps per trajectory (>= 1)
    seed: int  # seed of the run's torch.Generator
    integrator: str = "omelyan"  # "omelyan" or "leapfrog"
    jitter: float = 0.3  # relative half-width of the random step size, in [0, 1)
    start: str = "cold"  # "cold" (uniform field) or "hot" (phi ~ N(0, 1) at every site)
    start_value: float | None = None  # uniform start value for "cold" (None: the classical vacuum)

    def __post_init__(self):
        for name, lo in (("n_chains", 1), ("n_therm", 0), ("n_traj", 1), ("keep_every", 1), ("n_steps", 1),
                         ("seed", 0)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        if not isinstance(self.params, phi4.Phi4Params):
            raise ValueError(f"params must be a Phi4Params, got {type(self.params).__name__}")
        if self.start not in ("cold", "hot"):
            raise ValueError(f"start must be 'cold' or 'hot', got {self.start!r}")
        if self.integrator not in _hmc.INTEGRATORS:
            raise ValueError(f"integrator must be one of {sorted(_hmc.INTEGRATORS)}, got {self.integrator!r}")
        if not (self.step > 0):
            raise ValueError(f"step must be > 0, got {self.step}")
        if not (0.0 <= self.jitter < 1.0):
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.n_traj < self.keep_every:
            raise ValueError(f"n_traj ({self.n_traj}) must be >= keep_every ({self.keep_every})")


@dataclass(frozen=True)
class ChainEndsSpec:
    """Recipe of an ensemble made with the authors' protocol (:func:`run_chain_ends`)."""

    params: phi4.Phi4Params  # lattice size L, hopping parameter kappa, coupling lambda
    n_configs: int  # configurations = independent hot-started chains (>= 1)
    seed: int  # seed of the run's torch.Generator
    n_traj: int = 128  # leapfrog trajectories per chain (the authors: 128)
    step: float = 0.01  # leapfrog step size (the authors: 0.01)
    n_steps: int = 100  # leapfrog steps per trajectory (the authors: 100)
    batch: int = 256  # chains run in parallel per batch (the generator continues across batches)

    def __post_init__(self):
        for name, lo in (("n_configs", 1), ("seed", 0), ("n_traj", 1), ("n_steps", 1), ("batch", 1)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        if not isinstance(self.params, phi4.Phi4Params):
            raise ValueError(f"params must be a Phi4Params, got {type(self.params).__name__}")
        if not (self.step > 0):
            raise ValueError(f"step must be > 0, got {self.step}")


def run_chains(spec: ChainSpec, progress: bool = False, device=None) -> dict:
    r"""Run the chains of ``spec`` (float64) and return the data stored in the cache.

    Returns
    -------
    dict
        ``configs`` (n_kept, n_chains, L, L) float32, in trajectory order (axis 0) per chain
        (axis 1); ``kept_traj`` (n_kept,) trajectory numbers after thermalisation;
        ``M_therm`` (n_therm, n_chains) magnetisation during thermalisation; ``M``, ``action``
        (n_traj, n_chains) after every measured trajectory; ``accepted`` (n_traj, n_chains) bool;
        ``dH`` (n_traj, n_chains); ``phi_final`` (n_chains, L, L) float64 (to continue a run).
    """
    p = spec.params
    gen = make_generator(spec.seed, device)
    if spec.start == "hot":
        phi = phi4.hot_start(p, spec.n_chains, gen, dtype=torch.float64)
    else:
        phi = phi4.cold_start(p, spec.n_chains, value=spec.start_value, device=gen.device)
    common = dict(step=spec.step, n_steps=spec.n_steps, generator=gen, integrator=spec.integrator,
                  jitter=spec.jitter, progress=progress)
    m_therm = torch.zeros((0, spec.n_chains), dtype=torch.float64)
    if spec.n_therm:
        therm = _hmc.hmc(p, phi, spec.n_therm, **common)
        phi, m_therm = therm.phi, therm.records["M"]
    run = _hmc.hmc(p, phi, spec.n_traj, keep_every=spec.keep_every, **common)
    return {
        "configs": run.kept.to(torch.float32).cpu(),
        "kept_traj": run.kept_traj.cpu(),
        "M_therm": m_therm.cpu(),
        "M": run.records["M"].cpu(),
        "action": run.records["action"].cpu(),
        "accepted": run.accepted.cpu(),
        "dH": run.dH.cpu(),
        "phi_final": run.phi.cpu(),
    }


def run_chain_ends(spec: ChainEndsSpec, progress: bool = False, device=None) -> dict:
    r"""The authors' protocol (:func:`lib.physics.hmc.chain_ends`) with magnetisation histories.

    The chains run in batches of ``spec.batch`` with one generator; recording observables does
    not use the generator, so each batch equals :func:`lib.physics.hmc.chain_ends` with the same
    generator state.

    Returns
    -------
    dict
        ``configs`` (n_configs, L, L) float32; ``M`` and ``absM`` (n_traj, n_configs), the
        magnetisation after every trajectory of every chain; ``acceptance`` (float).
    """
    p = spec.params
    gen = make_generator(spec.seed, device)
    configs, m_hist, accepted = [], [], []
    for start in range(0, spec.n_configs, spec.batch):
        size = min(spec.batch, spec.n_configs - start)
        phi0 = phi4.hot_start(p, size, gen, dtype=torch.float64)
        run = _hmc.hmc(p, phi0, spec.n_traj, spec.step, spec.n_steps, gen, integrator="leapfrog",
                       progress=progress)
        configs.append(run.phi.to(torch.float32).cpu())
        m_hist.append(run.records["M"].cpu())
        accepted.append(run.accepted.cpu())
    m = torch.cat(m_hist, dim=1)
    return {
        "configs": torch.cat(configs),
        "M": m,
        "absM": m.abs(),
        "acceptance": float(torch.cat(accepted, dim=1).double().mean()),
    }


def _kind(spec) -> str:
    if isinstance(spec, ChainSpec):
        return KIND_CHAINS
    if isinstance(spec, ChainEndsSpec):
        return KIND_CHAIN_ENDS
    raise ValueError(f"spec must be a ChainSpec or an ChainEndsSpec, got {type(spec).__name__}")


def ensemble(spec, cache: ArtefactCache | None = None, progress: bool = False) -> dict:
    """The ensemble of ``spec`` from the cache, computed and saved (with provenance) when absent.

    Cache kind ``"phi4-hmc-ensemble"`` (:class:`ChainSpec`) or ``"phi4-chain-ends-ensemble"``
    (:class:`ChainEndsSpec`); the parameters are ``{"spec": spec}``, the seed is ``spec.seed``.
    """
    kind = _kind(spec)
    cache = ArtefactCache() if cache is None else cache
    runner = run_chains if kind == KIND_CHAINS else run_chain_ends
    return cache.get_or_compute(kind, {"spec": spec}, lambda: runner(spec, progress=progress), seed=spec.seed,
                                code=__name__)


def configurations(data: dict) -> torch.Tensor:
    """The configurations of a loaded ensemble as one ``(N, L, L)`` batch.

    Chain ensembles are ordered chain by chain (each chain's configurations consecutive in
    trajectory order), so contiguous blocks of a block bootstrap stay within one chain.
    """
    configs = data["configs"]
    if configs.ndim == 4:
        return configs.transpose(0, 1).reshape(-1, *configs.shape[2:])
    if configs.ndim == 3:
        return configs
    raise ValueError(f"configs must have 3 or 4 axes, got shape {tuple(configs.shape)}")


def kept_magnetisation(data: dict) -> torch.Tensor:
    """Magnetisation of the kept configurations of a chain ensemble, shape ``(n_kept, n_chains)`` (time along axis 0,
    as :func:`lib.physics.observables.magnetisation_summary` expects)."""
    configs = data["configs"]
    if configs.ndim != 4:
        raise ValueError(f"a chain ensemble has configs of shape (n_kept, n_chains, L, L), got {tuple(configs.shape)}")
    return configs.mean(dim=(-2, -1))
