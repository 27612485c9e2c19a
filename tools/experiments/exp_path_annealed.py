"""Experiment (issue 31): the path chapter's annealed proposals (lib.recipes.pipelines.path_proposals.AnnealedSpec)
against HMC, on trial seeds, to set the chapter's rules.

Usage: exp_path_annealed.py CASE N_PATHS K STEP [SEED]
  CASE  k0.21-32 (free field), k0.27-16, k0.27-32 (zero mode), k0.4-32 (zero mode, the narrowest peak's mass)
Prints, for the same paths without and with the K layers: sd(log w), ESS/n, k-hat, acceptance; then the chain's
observables against HMC's with errors (tau_int) and their distance in combined standard errors.
Environment SCORE (the proposal's score instead of the case's; with DM=base and k0.21-32 the chapter's Gaussian-base
U-Net), NT: torch threads (1); POW: the schedule's power (1); NLF: leapfrog steps per layer (3).
"""
import os
import sys

import numpy as np
import torch

from lib.core.random import make_generator
from lib.physics import observables as obs
from lib.physics import phi4
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import flow_proposals as flows
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import path_proposals as pp
from lib.recipes.pipelines import phi4_ensembles as ens

torch.set_num_threads(int(os.environ.get("NT", "1")))
case, n, K, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
power, n_lf = float(os.environ.get("POW", "1")), int(os.environ.get("NLF", "3"))
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 37100
specs = rp.book_specs("quick")
rng = np.random.default_rng(seed)
kappa, L = case.split("-")
L = int(L)
if kappa == "k0.27":
    hmc_spec, dm = rp.critical_specs(L, "quick")
    score, mass = "zero-mode", "data"
else:
    dm = specs["dm"][kappa][L]
    score, mass = ("gaussian", "data") if kappa == "k0.21" else ("zero-mode", "narrowest")
if os.environ.get("SCORE"):  # e.g. SCORE=network: the stored network of dm (DM=base: the Gaussian-base U-Net)
    score = os.environ["SCORE"]
    dm = specs["base"] if os.environ.get("DM") == "base" else dm
paths = pp.PathSpec(dm, n, score=score, seed=seed)
spec = pp.AnnealedSpec(paths, pp.HMCLayers(K, step, n_lf, power), zero_mode_mass=mass, seed=seed + 2)
raw, moved = pp.proposals(paths), pp.annealed(spec)
V = L * L
for label, props in (("no layers", raw), (f"{K} layers", moved)):
    w = pp.weight_summary(props)
    ch = flows.corrected_chain(props, make_generator(seed + 1))
    print(f"{case} {label}: sd(log w) {w['sd_log_w']:.2f} ESS/n {w['ess_fraction']:.3f} k-hat {w['k_hat']:.2f} "
          f"(thr {w['k_threshold']:.2f}) acceptance {ch['acceptance']:.3f}({1000 * ch['acceptance_error']:.0f}) "
          f"{1e3 * float(props['seconds_per_path']):.1f} ms/path", flush=True)
print(f"  layers' acceptance {float(moved['layer_acceptance'].mean()):.2f}", flush=True)
chain = flows.corrected_chain(moved, make_generator(seed + 1))
if kappa == "k0.27":
    hmc = ens.ensemble(hmc_spec)
    c, h = obs.magnetisation_summary(chain["M"], V, rng), obs.magnetisation_summary(hmc["M"], V, rng)
    keys = ("absM", "chi2", "U_L")
else:
    x = (lt.training_configs(dm) if kappa == "k0.4" else
         ens.ensemble(specs["hmc"]["k0.21-L32"])["configs"]).double()
    hmc = {"M": obs.magnetisation(x), "action_density": phi4.action(x, dm.params) / V,
           "phi2": x.pow(2).mean(dim=(-2, -1))}
    c, h = flows.summary(chain, V, rng), flows.summary(hmc, V, rng, independent=True)
    keys = ("absM", "phi2", "chi2", "U_L")
    sym = kappa == "k0.4"
    cr = pp.chain_site_ratios(moved["phi"], chain["chain"], rng, orders=(4,), symmetric=sym)
    hr = obs.site_cumulant_ratios(x, orders=(4,), generator=rng, n_blocks=x.shape[0], symmetric=sym)
    c, h = dict(c, r4=(cr[0][0], cr[1][0])), dict(h, r4=(hr[0][0], hr[1][0]))
    keys = keys + ("r4",)
for k in keys:
    (a, ea), (b, eb) = c[k], h[k]
    print(f"  {k}: chain {a:.5g}({ea:.2g})  HMC {b:.5g}({eb:.2g})  z {(a - b) / np.hypot(ea, eb):+.2f}", flush=True)
