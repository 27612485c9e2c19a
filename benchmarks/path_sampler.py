"""Effective samples per second near the critical point: the path-space Metropolis chain against HMC, same L, kappa.

Usage::

    .venv/bin/python benchmarks/path_sampler.py [--L 16 32] [--paths 1024] [--hmc-traj 400] [--threads 1]
        [--score force|gaussian|zero-mode|annealed|all] [--seed 0]

At kappa = 0.27, lambda = 0.022 (``lib.recipes.path_sampler.critical_specs``), for each lattice size, both samplers
are measured in this run, on this machine:

*Path chain* (lib.diffusion.path_sampler through lib.recipes.pipelines.path_proposals): ``--paths`` paths of the
stochastic backward process (N = 100, momentum-space posterior kernel) with the free-field score (``gaussian``) or
the free field plus the exact force at small noise (``force``) or the free field with the data's zero mode
(``zero-mode``), or that last one followed by the chapter's annealed HMC layers (``annealed``,
``lib.recipes.path_sampler.LAYERS``: "short" at L <= 16, "critical" above; no network for any), drawn now and not
cached, then the independence Metropolis-Hastings chain on paths.  The HMC ensemble whose propagator the scores use is
made (or read from the cache) first and is not timed.
*HMC* (lib.physics.hmc): the chains of that ensemble, continued from its final configurations for ``--hmc-traj``
trajectories, all chains in one batch.

For each sampler and each of |M|, M^2 and sign(M): tau_int (Wolff's Gamma method) and effective samples per second
= (samples / (2 tau_int)) / wall time; the ratio path / HMC is printed per observable, with the acceptance and the
Pareto k-hat of the path weights (above its threshold the chain cannot be trusted, and neither can its rate).

Back-link: book/part3/path_sampler.md.  A script, not a test.
"""
from __future__ import annotations

import argparse
import time

import torch

from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache
from lib.physics import hmc
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import flow_proposals as flows
from lib.recipes.pipelines import path_proposals as paths
from lib.recipes.pipelines import phi4_ensembles as ens

from exact_sampler import rate  # the same effective rate as benchmarks/exact_sampler.py (this script's folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--L", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--paths", type=int, default=1024)
    parser.add_argument("--hmc-traj", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score", choices=("force", "gaussian", "zero-mode", "annealed", "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = ArtefactCache()
    scores = ("gaussian", "force", "zero-mode", "annealed") if args.score == "all" else (args.score,)
    for L in args.L:
        hmc_spec, dm = rp.critical_specs(L)
        p = hmc_spec.params
        phi = ens.ensemble(hmc_spec, cache=cache)["phi_final"].to(torch.float64)  # not timed
        paths.data_mode_variance(dm, cache)  # the propagator, not timed
        start = time.perf_counter()
        run = hmc.hmc(p, phi, args.hmc_traj, step=hmc_spec.step, n_steps=hmc_spec.n_steps,
                      generator=make_generator(args.seed + 1), integrator=hmc_spec.integrator, jitter=hmc_spec.jitter)
        hmc_seconds = time.perf_counter() - start
        m_hmc = run.records["M"]
        print(f"\nL = {L}, kappa = {p.kappa}, lambda = {p.lam}; {args.threads} thread(s)")
        print(f"HMC: {hmc_spec.n_chains} chains x {args.hmc_traj} trajectories in {hmc_seconds:.2f} s")
        for score in scores:
            extra = rp.FORCE if score == "force" else {}
            spec = paths.PathSpec(dm, args.paths, score="zero-mode" if score == "annealed" else score,
                                  seed=20_000 + args.seed + L, **extra)
            start = time.perf_counter()
            if score == "annealed":
                layers = rp.LAYERS["short" if L <= 16 else "critical"]
                props = paths.draw_annealed(paths.AnnealedSpec(spec, layers, seed=21_000 + args.seed + L), cache)
            else:
                props = paths.draw(spec, cache)
            chain = flows.corrected_chain(props, make_generator(args.seed))
            path_seconds = time.perf_counter() - start
            print(f"path chain ({score}): {args.paths} paths in {path_seconds:.1f} s, acceptance "
                  f"{chain['acceptance']:.3f}, k-hat {chain['k_hat']:.2f} (threshold {chain['k_threshold']:.2f})")
            print(f"  {'observable':<10} {'tau path':>9} {'tau HMC':>8} {'ESS/s path':>11} {'ESS/s HMC':>10} "
                  f"{'path/HMC':>9}")
            for name, (a, b) in {"|M|": (chain["abs_M"], m_hmc.abs()), "M^2": (chain["M2"], m_hmc ** 2),
                                 "sign M": (chain["sign_M"], torch.sign(m_hmc))}.items():
                tau_p, ess_p = rate(a, path_seconds)
                tau_h, ess_h = rate(b, hmc_seconds)
                ratio = ess_p / ess_h if ess_h > 0 else float("inf")
                print(f"  {name:<10} {tau_p:9.2f} {tau_h:8.2f} {ess_p:11.3g} {ess_h:10.3g} {ratio:9.3g}")


if __name__ == "__main__":
    main()
