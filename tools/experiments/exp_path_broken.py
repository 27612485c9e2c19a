"""Experiment (issue 31): the path-space sampler in the broken phase, kappa = 0.4, L = 32, with the zero mode of the data.

The free-field proposal draws the zero mode from one Gaussian of variance V<M^2> (normalised units), centred between
the two vacua: in the broken phase it proposes almost no configuration near either vacuum (sd(log w) ~ 10^4 in the
first trials).  Here the zero mode's score is that of a symmetric Gaussian mixture fitted to the training data
(lib.diffusion.zero_mode.ZeroModeMixture, K components, K from the environment, 2 by default): two narrow peaks at
+-u_0.  Every other mode keeps the free-field score of the data's propagator (PROPOSAL "zero") or the free field plus
the force at small noise (PROPOSAL "force+zero"); PROPOSAL "-k" suffix: the kernel's zero-mode variance is the
narrowest component's s^2 instead of <u^2>.  Data: the kappa = 0.4, L = 32 model's training ensembles of
lib.recipes.phi4_diffusion (as the chapter path_sampler uses), the reference the same ensembles and the held-out
authors' HMC run.

Usage: exp_path_broken.py PROPOSAL N_PATHS [SEED]   PROPOSAL: free | zero | force+zero (optionally with -k)
Environment NT: torch threads (1); K: mixture components (2); P, C: the force's power and cut (4, 1; the chapter's);
DM: "k0.4" (default) or "k1.0", the deep broken phase's equilibrium ensemble k1.0-cold (lib.recipes.deep_broken_phase,
its model's DMSpec for the data and the normalisation).
"""
import math
import os
import sys
import time

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import path_sampler as ps
from lib.diffusion.mode_gaussian import gaussian_score
from lib.diffusion.zero_mode import ZeroModeMixture
from lib.physics import observables as obs, phi4
from lib.physics.metropolis import chain_observable, independence_metropolis
from lib.recipes import path_sampler as rps
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import path_proposals as pp

torch.set_num_threads(int(os.environ.get("NT", "1")))
proposal, n_paths = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 34000
if os.environ.get("DM", "k0.4") == "k1.0":
    from lib.recipes import deep_broken_phase
    dm = deep_broken_phase.book_specs("quick")["model"]
else:
    dm = rps.book_specs("quick")["dm"]["k0.4"][32]
params = dm.params
L, V = params.L, params.L ** 2
x = lt.training_configs(dm)
norm = lt.normalisation(dm, x)
y = norm.forward(x).to(torch.float64)
v = pp.data_mode_variance(dm)
sde = lt.forward_sde(dm)
zero = ZeroModeMixture.fit(y, int(os.environ.get("K", "2")))
print(f"kappa {params.kappa}, L {L}: {len(x)} configurations, zero mode {zero} (v_0 {float(v[0, 0]):.3f})", flush=True)
if proposal.startswith("force"):
    from lib.diffusion.force_score import ForceScore
    fs = ForceScore(sde, v, pp.phi4_residual(params, norm, v), power=float(os.environ.get("P", "4")),
                    cut=float(os.environ.get("C", "1")))
    base = lambda yy, t: fs(yy, t)  # noqa: E731
else:
    base = lambda yy, t: gaussian_score(yy, t, sde, v)  # noqa: E731
score = zero.score_on(base, sde, v) if "zero" in proposal else base
grid = ps.geometric(sde, 100, 1e-4)
v_kernel = v.clone()
if proposal.endswith("-k"):
    v_kernel[0, 0] = min(zero.s) ** 2
t0 = time.perf_counter()
out = ps.path_proposals(sde, score, grid, (L, L), n_paths, make_generator(seed), kernel="posterior",
                        mode_variance=v_kernel, batch=128)
secs = time.perf_counter() - t0
phi = norm.inverse(out.x.to(torch.float64))
log_q = out.log_q - V * math.log(norm.scale)
S = phi4.action(phi, params)
log_w = (-S - log_q).numpy()
chain = independence_metropolis(phi, log_q, lambda p: S, make_generator(seed + 1))
acc, acc_e = stats.mean_error(chain.accepted.double().numpy())
print(f"{proposal}: {n_paths} paths {1e3 * secs / n_paths:.1f} ms/path  sd(log w) {np.std(log_w):.2f}  "
      f"ESS/n {stats.importance_ess(log_w) / n_paths:.3f}  k-hat {stats.pareto_k(log_w):.2f} "
      f"(thr {stats.pareto_k_threshold(n_paths):.2f})  acceptance {acc:.3f}({1000 * acc_e:.0f})", flush=True)
absm = phi.mean((-2, -1)).abs()
s2 = phi.pow(2).mean((-2, -1))
for name, values in (("|M|", absm), ("<phi^2>", s2)):
    c, ce = stats.mean_error(chain_observable(chain, values).numpy())
    r, re = float(values.mean()), float(values.std() / math.sqrt(len(values)))
    d = {"|M|": x.double().mean((-2, -1)).abs(), "<phi^2>": x.double().pow(2).mean((-2, -1))}[name]
    print(f"  {name}: chain {c:.4f}({ce:.4f})  raw {r:.4f}({re:.4f})  data {float(d.mean()):.4f}", flush=True)
kept = phi[chain.index]
chi_abs = {name: V * float(m.pow(2).mean() - m.abs().mean() ** 2)
           for name, m in (("chain", kept.mean((-2, -1))), ("raw", phi.mean((-2, -1))),
                           ("data", x.double().mean((-2, -1))))}
print("  chi_|M| (no errors): " + ", ".join(f"{k} {v:.4f}" for k, v in chi_abs.items()), flush=True)
ratios = obs.site_cumulant_ratios(kept, orders=(4, 6), symmetric=True, generator=np.random.default_rng(0),
                                  n_blocks=min(32, len(kept)))
data_ratios = obs.site_cumulant_ratios(x.double(), orders=(4, 6), symmetric=True, generator=np.random.default_rng(0),
                                       n_blocks=32)
print(f"  k4/k2^2, k6/k2^3: chain (naive blocks) {ratios[0]} +- {ratios[1]}  data {data_ratios[0]}", flush=True)
