r"""The HMC ensembles of the book: which lattices, couplings, runs and seeds (settings only).

The ensembles of :doc:`/book/part3/phi4_hmc` (:func:`book_specs`), the :math:`8 \times 8` ensembles of the later
chapters (:func:`small_specs`) and the four equilibrium ensembles of both phases at any lattice size
(:func:`equilibrium_specs`), as recipes of the pipeline :mod:`lib.recipes.pipelines.phi4_ensembles`, which computes
and caches them.  :func:`load` returns one of them by name, so later chapters load exactly the ensembles analysed
in :doc:`/book/part3/phi4_hmc`.  Nothing is computed at import time.
"""
from __future__ import annotations

from lib.infra.cache import ArtefactCache
from lib.physics import phi4
from lib.recipes.pipelines import phi4_ensembles as ens

__all__ = ["equilibrium_specs", "book_specs", "small_specs", "load", "provenance"]


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
        "k0.21-hot": ens.ChainSpec(k021, start="hot", seed=seeds[0], **sym),
        "k0.21-cold": ens.ChainSpec(k021, start="cold", seed=seeds[1], **sym),
        "k0.4-cold": ens.ChainSpec(k04, start="cold", seed=seeds[2], **brk),
        "k0.4-below": ens.ChainSpec(k04, start="cold", start_value=0.5 * phi4.classical_vacuum(k04), seed=seeds[3],
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
        "k0.21-authors": ens.ChainEndsSpec(k021, n_configs=5120 if paper else n_auth, seed=2103),
        "k0.4-cold": eq["k0.4-cold"],
        "k0.4-below": eq["k0.4-below"],
        "k0.4-hot": ens.ChainSpec(k04, start="hot", seed=4003, **_BROKEN_HMC, n_therm=0,
                              n_traj=3000 if paper else 1000, keep_every=50, n_chains=256 if paper else 64),
        "k0.4-authors": ens.ChainEndsSpec(k04, n_configs=n_auth, seed=4004),
        "k1.0-cold": ens.ChainSpec(k10, start="cold", seed=1001, step=0.12, n_steps=4, **_equilibrium_run(scale)),
        "k1.0-hot": ens.ChainSpec(k10, start="hot", seed=1002, n_therm=0, n_traj=1000 if paper else 400, **pic),
        "k1.0-authors": ens.ChainEndsSpec(k10, n_configs=16, seed=1003),
        "free": ens.ChainSpec(phi4.Phi4Params(L, 0.2, 0.0), start="hot", seed=2001, step=0.6, n_steps=3,
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
        "k0.21": ens.ChainSpec(k021, start="hot", seed=8021, **sym),
        "k0.21-test": ens.ChainSpec(k021, start="cold", seed=8022, **sym),
        "k0.4-cold": ens.ChainSpec(k04, start="cold", seed=8041, **brk),
        "k0.4-below": ens.ChainSpec(k04, start="cold", start_value=0.5 * phi4.classical_vacuum(k04), seed=8042,
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
    return ens.ensemble(specs[name], cache=cache, progress=progress)


def provenance(spec, cache: ArtefactCache | None = None) -> dict | None:
    """The provenance record (wall time, seed, versions, key, ...) of the cached ensemble of ``spec`` (a
    :class:`~lib.recipes.pipelines.phi4_ensembles.ChainSpec` or ``ChainEndsSpec``), or None when it is not cached."""
    kind = ens.KIND_CHAINS if isinstance(spec, ens.ChainSpec) else ens.KIND_CHAIN_ENDS
    return (ArtefactCache() if cache is None else cache).provenance(kind, {"spec": spec}, code=ens.__name__)
