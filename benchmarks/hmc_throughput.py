"""Throughput of independent phi^4 configurations: our vectorised HMC against the authors' protocol.

Usage::

    .venv/bin/python benchmarks/hmc_throughput.py [--chains 128] [--therm 100] [--traj 1000]
        [--integrator omelyan --step 0.45 --n-steps 3 --jitter 0.3] [--ref-configs 3]
        [--ref-tau-chains 64 --ref-tau-traj 160] [--threads 1] [--float32] [--seed 0]

Model: L = 32, kappa = 0.21, lambda = 0.022 (symmetric phase, Table T5 of arXiv:2309.17082).

*Reference* (the authors' protocol, plain numpy, one chain at a time): a fresh hot-started
chain per configuration, 128 leapfrog trajectories of 100 steps of 0.01, the last configuration
kept.  Its configurations are independent by construction, so its rate is configurations per
second.  For comparison the script also measures the integrated autocorrelation time of that
HMC update (in trajectories) with the vectorised code: the protocol spends 128 trajectories per
configuration where a thermalised chain would need ~2 tau_int.

*Ours* (lib.physics.hmc.hmc): all chains in one batch, Omelyan integrator with a tuned step, trajectory
length ~1.35 and jittered step sizes; after thermalisation, tau_int (Wolff's Gamma method,
lib.stats.tau_int, averaged over chains) of |M|, M^2 and the action is measured in the same
run, and configurations are counted as independent when separated by 2 tau_max (the slowest
of the three).  Rate = chains * measured trajectories / (2 tau_max) / wall time of the
measured trajectories (the rate including the thermalisation time is printed as well).

Both run single-threaded by default (``--threads 1``; numpy's elementwise operations are
single-threaded), so the ratio compares algorithms and vectorisation on one core.  (On a
shared, loaded machine torch's OpenMP threads can be many times *slower* than one thread.)
About 128 chains per batch is fastest on a CPU (the fields stay in cache); ``--float32``
roughly doubles our rate.  Default runtime: well under a minute on an idle machine.

Back-link: book/part3/phi4_hmc.md.  A script, not a test (benchmarks print ratios
against a reference run in the same process).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lib import stats
from lib.physics import hmc, phi4
from lib.core.random import make_generator

L, KAPPA, LAM = 32, 0.21, 0.022


# ----------------------------------------------------------------------------- the reference (authors' protocol)
def np_action(phi: np.ndarray, kappa: float, lam: float) -> float:
    hop = phi * (np.roll(phi, -1, 0) + np.roll(phi, -1, 1))
    phi2 = phi * phi
    return float(np.sum(-2.0 * kappa * hop + (1.0 - 2.0 * lam) * phi2 + lam * phi2 * phi2))


def np_force(phi: np.ndarray, kappa: float, lam: float) -> np.ndarray:
    nb = np.roll(phi, 1, 0) + np.roll(phi, -1, 0) + np.roll(phi, 1, 1) + np.roll(phi, -1, 1)
    return 2.0 * kappa * nb - 2.0 * (1.0 - 2.0 * lam) * phi - 4.0 * lam * phi**3


def np_leapfrog(phi, pi, kappa, lam, step, n_steps):
    pi = pi + 0.5 * step * np_force(phi, kappa, lam)
    for k in range(n_steps):
        phi = phi + step * pi
        f = np_force(phi, kappa, lam)
        pi = pi + (step if k < n_steps - 1 else 0.5 * step) * f
    return phi, pi


def np_authors_configuration(rng: np.random.Generator, kappa=KAPPA, lam=LAM, L=L, n_traj=128, step=0.01,
                             n_steps=100):
    """One configuration by the authors' protocol: hot start, n_traj leapfrog trajectories (numpy)."""
    phi = rng.standard_normal((L, L))
    s = np_action(phi, kappa, lam)
    n_acc = 0
    for _ in range(n_traj):
        pi = rng.standard_normal((L, L))
        h0 = 0.5 * np.sum(pi * pi) + s
        phi_new, pi_new = np_leapfrog(phi, pi, kappa, lam, step, n_steps)
        s_new = np_action(phi_new, kappa, lam)
        dh = 0.5 * np.sum(pi_new * pi_new) + s_new - h0
        if rng.uniform() < np.exp(-dh):
            phi, s = phi_new, s_new
            n_acc += 1
    return phi, n_acc / n_traj


# ----------------------------------------------------------------------------- helpers
def taus(records: dict) -> dict:
    return {name: stats.tau_int(records[name]) for name in ("absM", "M2", "action")}


def fmt_tau(t) -> str:
    return f"{t.tau:.2f}({t.tau_error:.2f})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", type=int, default=128)
    ap.add_argument("--therm", type=int, default=100)
    ap.add_argument("--traj", type=int, default=1000)
    ap.add_argument("--integrator", default="omelyan", choices=sorted(hmc.INTEGRATORS))
    ap.add_argument("--step", type=float, default=0.45)
    ap.add_argument("--n-steps", type=int, default=3)
    ap.add_argument("--jitter", type=float, default=0.3)
    ap.add_argument("--ref-configs", type=int, default=3)
    ap.add_argument("--ref-tau-chains", type=int, default=64)
    ap.add_argument("--ref-tau-traj", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.float32 else torch.float64
    params = phi4.Phi4Params(L=L, kappa=KAPPA, lam=LAM)
    print(f"phi^4: L = {L}, kappa = {KAPPA}, lambda = {LAM}; torch {torch.__version__}, "
          f"threads = {torch.get_num_threads()}, dtype = {dtype}")

    # --- reference: the authors' protocol, numpy, one chain at a time
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    ref_acc = [np_authors_configuration(rng)[1] for _ in range(args.ref_configs)]
    t_ref = time.perf_counter() - t0
    rate_ref = args.ref_configs / t_ref
    print("\nreference (numpy, authors' protocol: hot start, 128 x 100 leapfrog steps of 0.01 per configuration)")
    print(f"  {args.ref_configs} configurations in {t_ref:.2f} s, acceptance {np.mean(ref_acc):.3f}")
    print(f"  rate: {rate_ref:.3f} independent configurations / s (one fresh chain each)")

    # tau_int of the authors' HMC update itself (vectorised, same algorithm), after their 128 trajectories
    gen = make_generator(args.seed + 1)
    start = phi4.hot_start(params, args.ref_tau_chains, gen, dtype=dtype)
    t0 = time.perf_counter()
    ref_run = hmc.hmc(params, start, args.ref_tau_traj, 0.01, 100, gen, n_therm=128)
    t_ref_tau = time.perf_counter() - t0
    ref_taus = taus(ref_run.records)
    ref_tmax = max(t.tau for t in ref_taus.values())
    print(f"  tau_int of that update (leapfrog 100 x 0.01, {args.ref_tau_chains} chains x {args.ref_tau_traj} "
          f"trajectories after 128, {t_ref_tau:.0f} s with lib.physics.hmc): "
          + ", ".join(f"{k} {fmt_tau(t)}" for k, t in ref_taus.items()))
    print(f"  -> the protocol spends 128 trajectories per configuration; 2 tau_max = {2 * ref_tmax:.1f} would do "
          "once thermalised")

    # --- ours: vectorised chains, tuned integrator
    gen = make_generator(args.seed + 2)
    phi0 = phi4.hot_start(params, args.chains, gen, dtype=dtype)
    t0 = time.perf_counter()
    therm = hmc.hmc(params, phi0, 0, args.step, args.n_steps, gen, integrator=args.integrator, n_therm=args.therm,
                    jitter=args.jitter)
    t_therm = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = hmc.hmc(params, therm.phi, args.traj, args.step, args.n_steps, gen, integrator=args.integrator,
                  jitter=args.jitter)
    t_meas = time.perf_counter() - t0
    our_taus = taus(run.records)
    tmax = max(t.tau for t in our_taus.values())
    n_indep = args.chains * args.traj / (2.0 * tmax)
    rate = n_indep / t_meas
    rate_incl = n_indep / (t_meas + t_therm)
    print(f"\nours (lib.physics.hmc, {args.chains} chains in one batch, {args.integrator} step {args.step} x {args.n_steps}, "
          f"jitter {args.jitter}, trajectory length {args.step * args.n_steps:.2f})")
    print(f"  thermalisation {args.therm} trajectories: {t_therm:.1f} s; measurement {args.traj} trajectories: "
          f"{t_meas:.1f} s; acceptance {run.acceptance:.3f}")
    print("  tau_int [trajectories]: " + ", ".join(f"{k} {fmt_tau(t)}" for k, t in our_taus.items())
          + f"; slowest {tmax:.2f}")
    print(f"  chi_2 = {params.volume * float(run.records['M2'].mean() - run.records['M'].mean() ** 2):.3f}, "
          f"<|M|> = {float(run.records['absM'].mean()):.4f}")
    print(f"  rate: {rate:.1f} independent configurations / s ({rate_incl:.1f} / s including thermalisation)")

    print(f"\nratio ours / reference: {rate / rate_ref:.0f} (including thermalisation: {rate_incl / rate_ref:.0f}); "
          "target >= 100")
    return rate / rate_ref


if __name__ == "__main__":
    main()
