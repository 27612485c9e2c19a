"""Experiment (issue 31): a zero mode that is not Gaussian in the path-space sampler near the critical point.

The free-field proposal draws the zero mode u = sum(y)/sqrt(V) (unitary FFT) from a Gaussian.  Near kappa_c the
magnetisation is not Gaussian (U_L > 0).  Here the zero mode's score is that of a symmetric Gaussian mixture fitted to
the data (lib.diffusion.zero_mode.ZeroModeMixture, K components by maximum likelihood, K from the environment, 3 by
default; the first runs of the README's table used a two-component mixture matched to <u^2> and <u^4>, code since
replaced).  Every other mode keeps the free-field (or force) score; the kernel is the momentum-space posterior kernel
of the data's propagator (PROPOSAL ending in "-k": its zero-mode variance the narrowest component's s^2).

Usage: exp_path_zero_mode.py L PROPOSAL N_PATHS [SEED]   PROPOSAL: free | zero | force | force+zero
An HMC ensemble at kappa = 0.27 (seed 33270 + L, 32 chains, 640 trajectories after 200) is the data.
Environment NT: torch threads (1); K: mixture components (3); P, C: the force's power and cut (4, 1).
"""
import dataclasses
import math
import os
import sys
import time

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import path_sampler as ps
from lib.diffusion.zero_mode import ZeroModeMixture
from lib.physics import phi4
from lib.physics.metropolis import independence_metropolis
from lib.recipes import path_sampler as rps
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import path_proposals as pp

torch.set_num_threads(int(os.environ.get("NT", "1")))
L, proposal, n_paths = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 33000
chain, dm = rps.critical_specs(L)
chain = dataclasses.replace(chain, seed=33270 + L, n_chains=32, n_traj=640)
dm = dataclasses.replace(dm, ensembles=(chain,))
params = chain.params
V = L * L
x = lt.training_configs(dm)
norm = lt.normalisation(dm, x)
y = norm.forward(x).to(torch.float64)
v = pp.data_mode_variance(dm)
sde = lt.forward_sde(dm)
zero = ZeroModeMixture.fit(y, int(os.environ.get("K", "3")))
print(f"L {L}: {len(x)} configurations, zero mode {zero} (v_0 {float(v[0, 0]):.3f})")
if not proposal.startswith("force"):
    from lib.diffusion.mode_gaussian import gaussian_score
    base = lambda yy, t: gaussian_score(yy, t, sde, v)  # noqa: E731
else:
    from lib.diffusion.force_score import ForceScore
    fs = ForceScore(sde, v, pp.phi4_residual(params, norm, v), power=float(os.environ.get("P", "4")),
                    cut=float(os.environ.get("C", "1")))
    base = lambda yy, t: fs(yy, t)  # noqa: E731
score = zero.score_on(base, sde, v) if "zero" in proposal else base
grid = ps.geometric(sde, 100, 1e-4)
t0 = time.perf_counter()
v_kernel = v.clone()
if proposal.endswith("-k"):  # the kernel's zero-mode variance: the width of one peak, s^2, instead of <u^2>
    v_kernel[0, 0] = min(zero.s) ** 2
out = ps.path_proposals(sde, score, grid, (L, L), n_paths, make_generator(seed), kernel="posterior",
                        mode_variance=v_kernel, batch=128)
secs = time.perf_counter() - t0
phi = norm.inverse(out.x.to(torch.float64))
log_q = out.log_q - V * math.log(norm.scale)
S = phi4.action(phi, params)
log_w = (-S - log_q).numpy()
chain_mh = independence_metropolis(phi, log_q, lambda p: S, make_generator(seed + 1))
acc, acc_e = stats.mean_error(chain_mh.accepted.double().numpy())
M = phi.mean((-2, -1))[chain_mh.index].numpy()
Md = x.double().mean((-2, -1)).numpy()
U = lambda m: 1 - (m**4).mean() / (3 * (m**2).mean() ** 2)  # noqa: E731
print(f"{proposal}: {n_paths} paths {1e3 * secs / n_paths:.1f} ms/path  sd(log w) {np.std(log_w):.2f}  "
      f"ESS/n {stats.importance_ess(log_w) / n_paths:.3f}  k-hat {stats.pareto_k(log_w):.2f} "
      f"(thr {stats.pareto_k_threshold(n_paths):.2f})  acceptance {acc:.3f}({1000 * acc_e:.0f})  "
      f"chain <|M|> {np.abs(M).mean():.4f} U_L {U(M):.3f}  data <|M|> {np.abs(Md).mean():.4f} U_L {U(Md):.3f}",
      flush=True)
top = np.argsort(log_w)[-10:][::-1]
Mp = phi.mean((-2, -1)).numpy()
print("the 10 largest weights: log w - max " + " ".join(f"{log_w[i] - log_w[top[0]]:.1f}" for i in top)
      + " | |M| " + " ".join(f"{abs(Mp[i]):.2f}" for i in top)
      + f" | |M| quartiles of the proposals {np.quantile(np.abs(Mp), [0.25, 0.5, 0.75]).round(2).tolist()}")
