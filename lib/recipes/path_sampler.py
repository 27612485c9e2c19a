r"""The settings of :doc:`/book/part3/path_sampler`: the path proposals, networks and HMC ensembles it compares.

Recipes only: the proposals are :class:`~lib.recipes.pipelines.path_proposals.PathSpec` (the pipeline
:mod:`lib.recipes.pipelines.path_proposals` computes them; the chain is
:func:`lib.recipes.pipelines.flow_proposals.corrected_chain`).  The networks are those of
:doc:`/book/part3/phi4_diffusion` (:math:`L = 32`), :doc:`/book/part3/lattice_transfer` (:math:`L = 8, 16`) and
:doc:`/book/part3/exact_sampler` (the :math:`8 \times 8` CNN of the full-Jacobian chain), read from the store, and
one network of this chapter: the :math:`\kappa = 0.21`, :math:`L = 32` U-Net of Table T5 trained as a correction to
the Gaussian score of its data's propagator (``base="gaussian"``).  Nothing is computed at import time.
"""
from __future__ import annotations

import dataclasses

from lib.diffusion.annealing import HMCLayers
from lib.physics import phi4
from lib.recipes import deep_broken_phase, exact_sampler, lattice_transfer, phi4_diffusion, phi4_hmc
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.recipes.pipelines.path_proposals import AnnealedSpec, PathSpec

__all__ = ["TRIAL_SEEDS", "FORCE", "LAYERS", "critical_specs", "book_specs", "networks"]

#: the seeds the trials used, recorded in tools/experiments/README.md; path proposals 31000 (exp_path_sampler.py)
#: and 32001-32003 (the force score's p and c), the training of the Gaussian-base network 31100, the narrow Gaussian
#: proposals 31001 (exp_narrow_proposal.py), fine-tuning on the path weight 32000-32012 (exp_path_finetune.py), the
#: zero mode fitted to the data 33000-33003 with the HMC seed 33286 (exp_path_zero_mode.py), the zero mode in the
#: broken phase 34000-34003 and at kappa = 1.0 34100-34103 (exp_path_broken.py), training the zero-mode proposal on
#: the path weight at kappa = 0.27 36000-36016 and 36100-36112 with 36102 + 1000 b for its blocks b < 12
#: (exp_path_finetune.py), annealed layers after the path 37000-37037 (exp_path_snf.py; 37040-37041 a check of the
#: pipeline) and 37100-37202 (exp_path_annealed.py, seeds s, s + 1, s + 2 for s = 37100, 37110, ..., 37200),
#: longer and wider networks 37300-37303 (exp_path_longer.py), the scan across the transition 35000-35832
#: (exp_phase_scan.py, for issue 32); the chapter uses none of them
TRIAL_SEEDS = {"paths": (31000, 32001, 32002, 32003), "training": (31100,), "narrow": (31001,),
               "fine-tuning": tuple(range(32000, 32013)), "zero mode": (33000, 33001, 33002, 33003, 33286),
               "broken zero mode": (34000, 34001, 34002, 34003), "deep broken zero mode": (34100, 34101, 34102, 34103),
               "zero-mode fine-tuning": tuple(range(36000, 36017)) + tuple(range(36100, 36113))
               + tuple(36102 + 1000 * b for b in range(1, 12)),
               "annealed layers": tuple(37000 + 10 * i + j for i in range(4) for j in (0, 1, 7)) + (37040, 37041)
               + tuple(s + j for s in range(37100, 37201, 10) for j in range(3)) + (37300, 37301, 37302, 37303),
               "phase scan": tuple(b + 100 * i + L + j for b in (35000, 35500, 35800) for i in range(5) for L in (16, 32)
                                   for j in ((0,) if b == 35000 else (0, 1) if b == 35500 else (0,)))}
#: p and c of the force score (lib.diffusion.force_score), chosen in a trial at kappa = 0.21, L = 32 on seed 32001
#: among p = 2, 4, 8 and c = 0.5, 1, 2, 4 (acceptance 0.69 for p = 4, c = 1; tools/experiments/README.md)
FORCE = {"force_power": 4.0, "force_cut": 1.0}
#: the annealed HMC layers after the path (lib.diffusion.annealing), chosen in trials (tools/experiments/README.md):
#: 50 layers of 3 leapfrog steps of 0.3 where they were accepted 70-80% of the time (kappa = 0.21, L = 32 and
#: kappa = 0.27, L = 16); at L = 32 near the critical point 0.3 was accepted half the time and the chain missed HMC on
#: one trial seed, so 100 layers of 6 steps of 0.15 there, and of 0.1 in the broken phase (0.2 left <abs M> and <phi^2>
#: 2 sigma low on one trial seed)
LAYERS = {"short": HMCLayers(50, 0.3), "critical": HMCLayers(100, 0.15, n_leapfrog=6),
          "broken": HMCLayers(100, 0.1, n_leapfrog=6)}


def critical_specs(L: int, scale: str = "quick") -> tuple:
    r"""``(ChainSpec, DMSpec)`` near the critical point, :math:`\kappa = 0.27`, :math:`\lambda = 0.022`, on an
    :math:`L \times L` lattice: a long HMC run (64 chains from hot starts, 1280 trajectories after 200 of
    thermalisation at the quick scale, 4000 at the paper scale, one configuration kept every 10), and the recipe
    whose data (the propagator of that run) the Gaussian and force scores use; its network (the U-Net recipe of
    :doc:`/book/part3/lattice_transfer`) is never trained here."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    L = int(L)
    chain = ens.ChainSpec(phi4.Phi4Params(L, 0.27, 0.022), start="hot", seed=31270 + L, step=0.45, n_steps=3,
                          n_therm=200, n_traj=4000 if scale == "paper" else 1280, keep_every=10, n_chains=64)
    template = lattice_transfer.book_specs(scale)["models"]["k0.21"][16]
    return chain, dataclasses.replace(template, ensembles=(chain,), seed=31280 + L)


def book_specs(scale: str = "quick") -> dict:
    r"""The recipes of :doc:`/book/part3/path_sampler` at ``scale`` ("quick" or "paper").

    Keys:

    ``"dm"``
        ``{kappa: {L: DMSpec}}`` for :math:`\kappa` ``"k0.21"``, ``"k0.4"`` and :math:`L = 8, 16, 32`: the stored
        networks of the other chapters (and, for the Gaussian score, their training data);
    ``"base"``
        the :math:`\kappa = 0.21`, :math:`L = 32` recipe with ``base="gaussian"`` (this chapter's network);
    ``"k0.27"``
        ``{L: DMSpec}`` at :math:`\kappa = 0.27`, :math:`L = 16` (and 32 at the paper scale): only their data are
        used (the Gaussian score; no network is trained);
    ``"hmc"``
        the HMC ensembles the chains are compared with: ``"k0.21-L32"`` (the held-out independent configurations of
        Table T5), ``"k0.27"`` (``{L: ChainSpec}``, long runs near the critical point) and ``"k1.0"`` (the
        equilibrium ensemble of :doc:`/book/part3/deep_broken_phase`, also the data of ``main["k1.0 zero"]``);
    ``"kernels"``
        the Gaussian-target check: lattice sizes, steps and paths;
    ``"scan"``
        ``{"L", "n_steps", "n_paths", "n_paths_network", "seed"}`` of the acceptance scans (paths per point with the
        Gaussian score and with a network);
    ``"main"``
        the long chains at :math:`L = 32`: ``{name: PathSpec}``;
    ``"annealed"``
        ``{name: AnnealedSpec}``: the proposals of ``"main"`` continued by annealed HMC layers (:data:`LAYERS`) at
        :math:`\kappa = 0.21` (free field), 0.27 (:math:`L = 16` and 32, the data zero mode) and 0.4 (the data zero
        mode; its first 1024 paths at the quick scale), with the HMC runs at :math:`\kappa = 0.27` in
        ``hmc["k0.27 annealed"]`` (``{L: ChainSpec}``, :math:`L = 16, 32` at both scales);
    ``"exact_L8"``
        the path chain with the :math:`8\times 8` network of :doc:`/book/part3/exact_sampler` and that chapter's
        full-Jacobian proposals (:class:`~lib.recipes.pipelines.flow_proposals.ProposalSpec`) of the same network;
    ``"narrow"``
        widths and number of the Gaussian proposals of the untrustworthy chain (on the :math:`8 \times 8` data).

    Quick (a CPU): 100 steps of the backward process; 2048 free-field paths, 256 paths of the Gaussian-base network
    and 256 of the DSM network at :math:`L = 32`, 128 per point of the scans (64 with a network).  Paper (a GPU): the papers' :math:`L = 64` added to the scans,
    :math:`10^4` paths per chain, 1024 per point of the scans.
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    paper = scale == "paper"
    transfer, diffusion = lattice_transfer.book_specs(scale), phi4_diffusion.book_specs(scale)
    exact = exact_sampler.book_specs(scale)
    dm = {kappa: {8: transfer["models"][kappa][8], 16: transfer["models"][kappa][16], 32: diffusion[kappa]}
          for kappa in ("k0.21", "k0.4")}
    base = dataclasses.replace(diffusion["k0.21"], base="gaussian", seed=31131)
    crit_L = (16, 32) if paper else (16,)
    k027_hmc = {L: critical_specs(L, scale)[0] for L in crit_L}
    k027 = {L: critical_specs(L, scale)[1] for L in crit_L}
    hmc = {"k0.21-L32": phi4_hmc.book_specs(scale)["k0.21-authors"], "k0.27": k027_hmc,
           "k1.0": deep_broken_phase.book_specs(scale)["hmc"]}
    # quick scans: 128 paths per point, 64 with a network (256 and 128 until December 2026, halved for the time of CI;
    # the Euler-Maruyama/momentum-kernel acceptance gap at L = 32 was 0.40 against an error of 0.04)
    n_long, n_net, n_scan = (10240, 10240, 1024) if paper else (2048, 1024, 128)
    scan_L = (8, 16, 32, 64) if paper else (8, 16, 32)
    if paper:  # the papers' L = 64: the free-field proposal from the lattice-transfer HMC ensembles
        for kappa in dm:
            dm[kappa][64] = dataclasses.replace(dm[kappa][16], ensembles=transfer["hmc"][kappa][64])
    main = {
        "free": PathSpec(dm["k0.21"][32], n_long, score="gaussian", seed=31201),
        "force": PathSpec(dm["k0.21"][32], n_long, score="force", seed=31206, **FORCE),
        # quick: 256 DSM paths (with 128 its chain stuck after 7 acceptances: too short a series for an error) and
        # 256 Gaussian-base paths (512 until December 2026, halved for the time of CI)
        "dsm": PathSpec(dm["k0.21"][32], n_net if paper else n_net // 4, seed=31202),
        "base": PathSpec(base, n_net if paper else n_net // 4, seed=31203),
    }
    for L in crit_L:
        main[f"k0.27 L={L} free"] = PathSpec(k027[L], n_long, score="gaussian", seed=31210 + L)
        main[f"k0.27 L={L} force"] = PathSpec(k027[L], n_long, score="force", seed=31310 + L, **FORCE)
        main[f"k0.27 L={L} zero"] = PathSpec(k027[L], n_long, score="zero-mode", seed=31510 + L)
    # the broken phase: the free field with the zero mode of the data (its two vacua), L = 32
    main["k0.4 zero"] = PathSpec(dm["k0.4"][32], n_long, score="zero-mode", seed=31540)
    # the deep broken phase, kappa = 1.0, L = 32: the same proposal on the equilibrium ensemble of deep_broken_phase
    main["k1.0 zero"] = PathSpec(deep_broken_phase.book_specs(scale)["model"], n_long, score="zero-mode", seed=31550)
    # annealed layers after the path: the same paths as main where it has them; kappa = 0.27, L = 32 has 1024 paths
    # at the quick scale (main's recipe, which exists at the paper scale only); kappa = 0.4 the first 1024 of main's
    crit32 = critical_specs(32, scale)
    hmc["k0.27 annealed"] = {16: critical_specs(16, scale)[0], 32: crit32[0]}
    annealed = {
        "k0.21 L=32": AnnealedSpec(main["free"], LAYERS["short"], seed=31601),
        "k0.27 L=16": AnnealedSpec(main["k0.27 L=16 zero"], LAYERS["short"], seed=31602),
        "k0.27 L=32": AnnealedSpec(PathSpec(crit32[1], n_long if paper else 1024, score="zero-mode", seed=31542),
                                   LAYERS["critical"], seed=31603),
        "k0.4 L=32": AnnealedSpec(dataclasses.replace(main["k0.4 zero"], n_paths=n_long if paper else 1024),
                                  LAYERS["broken"], zero_mode_mass="narrowest", seed=31604),
    }
    return {
        "dm": dm, "base": base, "k0.27": k027, "hmc": hmc, "main": main, "annealed": annealed,
        # 128 paths per kernel at the quick scale (256 until December 2026, halved for the time of CI: the table has one
        # check, the exact kernel's log w = log Z to rounding, which does not depend on the number of paths)
        "kernels": {"L": (8, 32), "n_steps": (50, 1000), "n_paths": 128 if not paper else 1024, "seed": 31220},
        "scan": {"L": scan_L, "n_steps": (25, 100, 400), "n_paths": n_scan, "n_paths_network": n_scan // 2,
                 "seed": 31400, "force": FORCE},
        # the full-Jacobian proposals of the exact-sampler chapter, the same artefact (whichever chapter runs first
        # makes it; two chapters making it at once each finish it, ArtefactCache.batches)
        "exact_L8": {"full": exact["main"],
                     "path": PathSpec(exact["k0.21"], exact["main"].n_proposals, seed=31230),
                     "hmc": exact["hmc"]["k0.21"]},
        "narrow": {"widths": (1.0, 0.9, 0.8, 0.7), "n": 4096 if not paper else 16384, "seed": 31240,
                   "dm": dm["k0.21"][8], "hmc": transfer["hmc"]["k0.21"][8][1]},
    }


def networks(scale: str) -> dict:
    """The trained networks the chapter uses at ``scale``, by name (its own ``"k0.21 base"`` and those it reads from
    the other chapters): what the store must hold."""
    specs = book_specs(scale)
    out = {f"{kappa} L={L}": lt.network(spec) for kappa, by_L in specs["dm"].items() for L, spec in by_L.items()
           if L <= 32}
    return out | {"k0.21 base": lt.network(specs["base"]), "k0.21 L=8 CNN": lt.network(specs["exact_L8"]["path"].dm)}
