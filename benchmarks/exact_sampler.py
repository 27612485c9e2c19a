"""Effective samples per second: the Metropolis-corrected diffusion-model chain against HMC, same L and kappa.

Usage::

    .venv/bin/python benchmarks/exact_sampler.py [--phase k0.21|k0.4] [--proposals 256] [--hmc-traj 200]
        [--threads 1] [--scale quick|paper] [--seed 0]

Both samplers are measured in this run, on this machine, at the lattice point of one model of
``lib.recipes.exact_sampler.book_specs`` (quick: L = 8, lambda = 0.022):

*Diffusion model* (lib.diffusion.flow_map + lib.physics.metropolis): ``--proposals`` proposals from the
fixed-step probability-flow map of the trained network with their exact log-density (full Jacobians), then the
independence Metropolis-Hastings chain.  The trained network comes from the artefact cache (trained first if
absent; its training time is printed separately and is not part of the rate).
*HMC* (lib.physics.hmc): the chains of the held-out ensemble's recipe, continued from the cached ensemble's final
configurations for ``--hmc-traj`` trajectories, all chains in one batch.

For each sampler and each of |M|, M^2 and the action: tau_int (Wolff's Gamma method, lib.stats.tau_int) and
effective samples per second = (samples / (2 tau_int)) / wall time.  The ratio HMC / DM is printed per observable.
In the broken phase (``--phase k0.4``) the sign of M is added: HMC's chains do not change vacuum, so its effective
rate for sign(M) is zero whenever no chain changed sign.

Back-link: book/part3/exact_sampler.md.  A script, not a test.
"""
from __future__ import annotations

import argparse
import time

import torch

from lib import stats
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache
from lib.physics import hmc
from lib.recipes import exact_sampler as es

from lib.recipes.pipelines import flow_proposals as flows
from lib.recipes.pipelines import lattice_training as dmt
from lib.recipes.pipelines import phi4_ensembles as ens

from dataclasses import replace


def rate(series, seconds: float) -> tuple[float, float]:
    """(tau_int, effective samples per second) of a (N,) or (N, chains) series generated in ``seconds``."""
    arr = series.numpy()
    if float(arr.std()) == 0.0:  # a constant series (e.g. sign M of a chain that never tunnels) has no information
        return float("inf"), 0.0
    tau = stats.tau_int(arr).tau
    return tau, arr.size / (2 * tau) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", choices=("k0.21", "k0.4"), default="k0.21")
    parser.add_argument("--proposals", type=int, default=256)
    parser.add_argument("--hmc-traj", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", choices=("quick", "paper"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = ArtefactCache()
    specs = es.book_specs(args.scale)
    model_spec = specs[args.phase]
    hmc_specs = specs["hmc"][args.phase]
    hmc_spec = hmc_specs if isinstance(hmc_specs, ens.ChainSpec) else hmc_specs[0]
    p = model_spec.params
    print(f"L = {p.L}, kappa = {p.kappa}, lambda = {p.lam}; {args.threads} thread(s)")

    result, _ = dmt.trained_model(model_spec, cache)
    print(f"training (not in the rates): {result.steps} steps, {result.wall_time:.0f} s"
          f" (weights from the {result.source})")

    # the diffusion model: proposals with exact density, then the chain (not cached: timed here)
    spec = replace(specs["main"] if args.phase == "k0.21" else specs["broken"], n_proposals=args.proposals,
                   seed=10_000 + args.seed, probes=0)
    start = time.perf_counter()
    props = flows.draw(spec, cache)
    chain = flows.corrected_chain(props, make_generator(args.seed))
    dm_seconds = time.perf_counter() - start

    # HMC: continue the held-out ensemble's chains
    phi = ens.ensemble(hmc_spec, cache=cache)["phi_final"].to(torch.float64)
    start = time.perf_counter()
    run = hmc.hmc(p, phi, args.hmc_traj, step=hmc_spec.step, n_steps=hmc_spec.n_steps,
                  generator=make_generator(args.seed + 1), integrator=hmc_spec.integrator, jitter=hmc_spec.jitter)
    hmc_seconds = time.perf_counter() - start
    m_hmc, s_hmc = run.records["M"], run.records["action"]

    print(f"DM chain: {args.proposals} proposals in {dm_seconds:.1f} s, acceptance {chain['acceptance']:.3f}")
    print(f"HMC: {hmc_spec.n_chains} chains x {args.hmc_traj} trajectories in {hmc_seconds:.2f} s")
    observables_ = {"|M|": (chain["abs_M"], m_hmc.abs()), "M^2": (chain["M2"], m_hmc ** 2),
                    "S": (chain["action"], s_hmc)}
    if args.phase == "k0.4":
        observables_["sign M"] = (chain["sign_M"], torch.sign(m_hmc))
    print(f"{'observable':<10} {'tau DM':>8} {'tau HMC':>8} {'ESS/s DM':>10} {'ESS/s HMC':>11} {'HMC/DM':>9}")
    for name, (dm_series, hmc_series) in observables_.items():
        tau_dm, ess_dm = rate(dm_series, dm_seconds)
        tau_hmc, ess_hmc = rate(hmc_series, hmc_seconds)
        ratio = ess_hmc / ess_dm if ess_dm > 0 else float("inf")
        print(f"{name:<10} {tau_dm:8.2f} {tau_hmc:8.2f} {ess_dm:10.3g} {ess_hmc:11.3g} {ratio:9.3g}")


if __name__ == "__main__":
    main()
