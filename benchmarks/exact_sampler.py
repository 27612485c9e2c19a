"""Effective samples per second: the Metropolis-corrected diffusion-model chain against HMC, same L and kappa.

Usage::

    .venv/bin/python benchmarks/exact_sampler.py [--phase k0.21|k0.4] [--proposals 256] [--hmc-traj 200]
        [--threads 1] [--scale quick|paper] [--seed 0] [--jacobian]

With ``--jacobian`` it only times one flow step with its full Jacobian by forward mode (lib's) against reverse mode,
in the same run, on the trained network and a batch of prior samples.

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


def jacobian_modes(model_spec, cache, batch: int = 64, repeat: int = 3) -> None:
    """Print the wall time of one flow step with its full Jacobian, forward mode (lib's) against reverse mode, on the
    trained network of ``model_spec`` and a batch of prior samples, measured in this run; and the largest difference
    of the two log-determinants."""
    from lib.diffusion import flow_map, grids

    model, _ = flows.network(model_spec, cache=cache)
    sde, L = dmt.forward_sde(model_spec), model_spec.params.L
    grid = grids.karras(sde, 8, 1e-3)
    y = sde.prior_sample((batch, L, L), generator=make_generator(0), dtype=torch.float32)
    t, t_next = float(grid.t[0]), float(grid.t[1])
    seconds, logdet = {}, {}
    for mode in ("forward", "reverse", "forward", "reverse"):
        start = time.perf_counter()
        for _ in range(repeat):
            _, _, logabs, _ = flow_map._step_with_logdet(sde, lambda x, tt: model(x, tt), y, t, t_next, "heun", mode)
        seconds[mode] = (time.perf_counter() - start) / repeat  # the second, warm measurement is kept
        logdet[mode] = logabs
    print(f"[flow step with its full Jacobian] L = {L}, batch {batch}: forward mode {seconds['forward']:.3f} s, "
          f"reverse mode {seconds['reverse']:.3f} s; ratio reverse / forward {seconds['reverse'] / seconds['forward']:.2f}x; "
          f"max |log det difference| {float((logdet['forward'] - logdet['reverse']).abs().max()):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", choices=("k0.21", "k0.4"), default="k0.21")
    parser.add_argument("--proposals", type=int, default=256)
    parser.add_argument("--hmc-traj", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", choices=("quick", "paper"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jacobian", action="store_true",
                        help="only compare the flow step's Jacobian by forward mode (lib's) with reverse mode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = ArtefactCache()
    if args.jacobian:
        jacobian_modes(es.book_specs(args.scale)[args.phase], cache)
        return
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
