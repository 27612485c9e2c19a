r"""Cached lattice :math:`\phi^4` ensembles: the recipes behind the book's HMC data sets.

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

Configurations are stored as float32 (the runs themselves use float64).  :func:`book_specs`
lists the ensembles of :doc:`/book/part3/phi4_hmc` at a given scale and :func:`load` returns one
of them by name (computing and caching it on first use), so later chapters load exactly the
ensembles analysed there.  Derived in :doc:`/book/part3/phi4_hmc`.
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
    "book_specs",
    "equilibrium_specs",
    "small_specs",
    "load",
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
    return cache.get_or_compute(kind, {"spec": spec}, lambda: runner(spec, progress=progress), seed=spec.seed)


#: Omelyan step and steps per trajectory of the equilibrium ensembles at lambda = 0.022, by phase, the same at every
#: lattice size (acceptances in :doc:`/book/part3/phi4_hmc`)
_SYMMETRIC_HMC = dict(step=0.45, n_steps=3)
_BROKEN_HMC = dict(step=0.25, n_steps=3)


def _equilibrium_run(scale: str) -> dict:
    """Chains, trajectories, thermalisation and thinning of an equilibrium ensemble at ``scale`` (quick: 64 chains x
    320 trajectories; paper: 128 x 400 = 12800 configurations), one configuration kept every 4 trajectories."""
    chains, traj = (128, 400) if scale == "paper" else (64, 320)
    return dict(n_therm=100, n_traj=traj, keep_every=4, n_chains=chains)


def equilibrium_specs(L: int, scale: str, seeds: tuple) -> dict:
    r"""The four equilibrium ensembles of both phases on an :math:`L \times L` lattice (:math:`\lambda = 0.022`).

    Names: ``k0.21-hot`` and ``k0.21-cold`` (symmetric phase, hot and cold starts), ``k0.4-cold`` and
    ``k0.4-below`` (broken phase, starts at the classical vacuum :math:`\phi_0` and at :math:`\phi_0 / 2`), with
    the four ``seeds`` in this order.  The same HMC and run length at every ``L``: the ensembles at :math:`L = 32`
    in :func:`book_specs` and those of the lattice-size transfer (:mod:`lib.recipes.lattice_transfer`).
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    if not isinstance(seeds, (tuple, list)) or len(seeds) != 4:
        raise ValueError(f"seeds must be four seeds (k0.21-hot, k0.21-cold, k0.4-cold, k0.4-below), got {seeds!r}")
    k021, k04 = phi4.Phi4Params(L, 0.21, 0.022), phi4.Phi4Params(L, 0.4, 0.022)
    sym, brk = dict(**_SYMMETRIC_HMC, **_equilibrium_run(scale)), dict(**_BROKEN_HMC, **_equilibrium_run(scale))
    return {
        "k0.21-hot": ChainSpec(k021, start="hot", seed=seeds[0], **sym),
        "k0.21-cold": ChainSpec(k021, start="cold", seed=seeds[1], **sym),
        "k0.4-cold": ChainSpec(k04, start="cold", seed=seeds[2], **brk),
        "k0.4-below": ChainSpec(k04, start="cold", start_value=0.5 * phi4.classical_vacuum(k04), seed=seeds[3],
                                **brk),
    }


def book_specs(scale: str = "quick") -> dict:
    r"""The ensembles of :doc:`/book/part3/phi4_hmc` at ``scale`` ("quick" or "paper"), by name.

    Names: ``k0.21-hot``, ``k0.21-cold`` (symmetric phase, Table T5), ``k0.21-authors``;
    ``k0.4-cold``, ``k0.4-below`` (broken phase, equilibrium ensembles from the classical vacuum
    and from half of it), ``k0.4-hot`` (hot start, same HMC: trapped domain walls),
    ``k0.4-authors`` (Table T2); ``k1.0-cold`` (the equilibrium ensemble of :doc:`/book/part3/deep_broken_phase`),
    ``k1.0-hot``, ``k1.0-authors`` (pictures);
    ``free`` (:math:`\lambda = 0`, :math:`\kappa = 0.2`, test of the propagator).
    All on a 32 x 32 lattice with :math:`\lambda = 0.022` unless stated.  Steps: Omelyan with
    jitter 0.3; at :math:`\kappa = 0.4` the integrated autocorrelation times are about 1.2-1.4
    trajectories, so configurations kept every 4 trajectories are separated by more than
    :math:`2\tau_\mathrm{int}`.  Paper scale: at least :math:`10^4` configurations per
    equilibrium ensemble and per authors' ensemble.
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    paper = scale == "paper"
    L, lam = 32, 0.022
    k021, k04, k10 = (phi4.Phi4Params(L, k, lam) for k in (0.21, 0.4, 1.0))
    n_auth = 10240 if paper else 256
    pic = dict(step=0.12, n_steps=4, n_chains=16, keep_every=50)
    eq = equilibrium_specs(L, scale, seeds=(2101, 2102, 4001, 4002))
    return {
        "k0.21-hot": eq["k0.21-hot"],
        "k0.21-cold": eq["k0.21-cold"],
        "k0.21-authors": ChainEndsSpec(k021, n_configs=5120 if paper else n_auth, seed=2103),
        "k0.4-cold": eq["k0.4-cold"],
        "k0.4-below": eq["k0.4-below"],
        "k0.4-hot": ChainSpec(k04, start="hot", seed=4003, **_BROKEN_HMC, n_therm=0,
                              n_traj=3000 if paper else 1000, keep_every=50, n_chains=256 if paper else 64),
        "k0.4-authors": ChainEndsSpec(k04, n_configs=n_auth, seed=4004),
        "k1.0-cold": ChainSpec(k10, start="cold", seed=1001, step=0.12, n_steps=4, **_equilibrium_run(scale)),
        "k1.0-hot": ChainSpec(k10, start="hot", seed=1002, n_therm=0, n_traj=1000 if paper else 400, **pic),
        "k1.0-authors": ChainEndsSpec(k10, n_configs=16, seed=1003),
        "free": ChainSpec(phi4.Phi4Params(L, 0.2, 0.0), start="hot", seed=2001, step=0.6, n_steps=3,
                          n_therm=50, n_traj=2000 if paper else 600, keep_every=2, n_chains=32),
    }


def small_specs() -> dict:
    r"""HMC ensembles on an :math:`8 \times 8` lattice (:math:`\lambda = 0.022`), by name.

    ``k0.21`` (hot start) and ``k0.21-test`` (cold start, other seed: held out) in the symmetric phase;
    ``k0.4-cold`` and ``k0.4-below`` (starts :math:`\phi_0` and :math:`\phi_0/2`) in the broken phase.  Each has
    5120 configurations kept every 4 Omelyan trajectories (more than :math:`2\tau_\mathrm{int}`, see
    :doc:`/book/part3/phi4_hmc`), with the step sizes of the :math:`32 \times 32` ensembles.
    """
    k021, k04 = phi4.Phi4Params(8, 0.21, 0.022), phi4.Phi4Params(8, 0.4, 0.022)
    sym = dict(**_SYMMETRIC_HMC, **_equilibrium_run("quick"))
    brk = dict(sym, **_BROKEN_HMC, n_chains=32)
    return {
        "k0.21": ChainSpec(k021, start="hot", seed=8021, **sym),
        "k0.21-test": ChainSpec(k021, start="cold", seed=8022, **sym),
        "k0.4-cold": ChainSpec(k04, start="cold", seed=8041, **brk),
        "k0.4-below": ChainSpec(k04, start="cold", start_value=0.5 * phi4.classical_vacuum(k04), seed=8042,
                                    **brk),
    }


def load(name: str, scale: str | None = None, cache: ArtefactCache | None = None, progress: bool = False) -> dict:
    """One ensemble of :func:`book_specs` by name (scale: None selects :func:`lib.infra.profile.current`)."""
    if scale is None:
        from lib.infra import profile

        scale = profile.current().scale
    specs = book_specs(scale)
    if name not in specs:
        raise ValueError(f"unknown ensemble {name!r}; known: {sorted(specs)}")
    return ensemble(specs[name], cache=cache, progress=progress)


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
