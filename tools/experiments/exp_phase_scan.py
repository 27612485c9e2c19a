"""Experiment (for issue 32): where across the transition is a proposal without a network an exact sampler?

For each kappa (lambda = 0.022) on an L x L lattice: an HMC ensemble (32 chains, 640 trajectories after 200, one
configuration kept every 10; hot starts up to kappa = 0.28, cold above), then the path-space chain
(lib.recipes.pipelines.path_proposals, N = 100, momentum-space posterior kernel with the ensemble's propagator) with
the free-field score and with the free field plus the zero mode fitted to the data (3 components), and (added in
the fifth session of 2026-12-07) that zero mode followed by the path chapter's annealed HMC layers
(lib.recipes.path_sampler.LAYERS: "short" at L <= 16, "critical" above; "broken", with the narrowest peak's mass,
for kappa >= 0.30; layer seed 35800 + 100 * i + L).  Printed per
proposal: sd(log w), ESS/n, the Pareto k-hat against its threshold, the acceptance, and the chain's <|M|> and U_L
against the data's.  The baseline that a kappa-conditioned network (issue 32) must beat, and where.

Usage: exp_phase_scan.py L N_PATHS KAPPA [KAPPA ...]
Environment NT: torch threads (1); SCORES: the proposals, comma-separated, of gaussian, zero-mode, annealed (all);
BROKEN_FROM: the kappa from which the annealed layers are the broken phase's (0.30).
Seeds: HMC 35000 + 100 * i + L, paths 35500 + 100 * i + L (and + 1 for the chain), i the index of kappa.
"""
import dataclasses
import os
import sys
import time

import numpy as np
import torch

from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache
from lib.physics import observables as obs, phi4
from lib.recipes import path_sampler as rps
from lib.recipes.pipelines import flow_proposals as flows
from lib.recipes.pipelines import path_proposals as pp
from lib.recipes.pipelines import phi4_ensembles as ens

torch.set_num_threads(int(os.environ.get("NT", "1")))
L, n_paths, kappas = int(sys.argv[1]), int(sys.argv[2]), [float(k) for k in sys.argv[3:]]
cache = ArtefactCache()
chain0, dm0 = rps.critical_specs(L)
for i, kappa in enumerate(kappas):
    t0 = time.perf_counter()
    chain = dataclasses.replace(chain0, params=phi4.Phi4Params(L, kappa, 0.022), n_chains=32, n_traj=640,
                                start="hot" if kappa <= 0.28 else "cold", seed=35000 + 100 * i + L)
    dm = dataclasses.replace(dm0, ensembles=(chain,))
    data = ens.ensemble(chain, cache=cache)
    m = ens.kept_magnetisation(data)
    d = obs.magnetisation_summary(m, L * L, np.random.default_rng(0))
    print(f"L {L} kappa {kappa}: HMC {m.numel()} configurations, <|M|> {d['absM'][0]:.4f}({d['absM'][1]:.4f}) "
          f"U_L {d['U_L'][0]:.3f}({d['U_L'][1]:.3f}) ({time.perf_counter() - t0:.0f} s)", flush=True)
    for score in os.environ.get("SCORES", "gaussian,zero-mode,annealed").split(","):
        spec = pp.PathSpec(dm, n_paths, score="zero-mode" if score == "annealed" else score,
                           seed=35500 + 100 * i + L, batch=128)
        t0 = time.perf_counter()
        if score == "annealed":
            broken = kappa >= float(os.environ.get("BROKEN_FROM", "0.30"))
            layers = rps.LAYERS["broken" if broken else "short" if L <= 16 else "critical"]
            props = pp.draw_annealed(pp.AnnealedSpec(spec, layers, zero_mode_mass="narrowest" if broken else "data",
                                                     seed=35800 + 100 * i + L), cache)
        else:
            props = pp.draw(spec, cache)
        w = pp.weight_summary(props)
        ch = flows.corrected_chain(props, make_generator(spec.seed + 1))
        try:
            s = obs.magnetisation_summary(ch["M"], L * L, np.random.default_rng(0))
            cs = f"<|M|> {s['absM'][0]:.4f}({s['absM'][1]:.4f}) U_L {s['U_L'][0]:.3f}({s['U_L'][1]:.3f})"
        except ValueError:
            cs = "stuck (no error estimate)"
        print(f"  {score:9s} sd(log w) {w['sd_log_w']:9.2f} ESS/n {w['ess_fraction']:.3f} k-hat {w['k_hat']:6.2f} "
              f"({w['k_threshold']:.2f}) acceptance {ch['acceptance']:.3f}({ch['acceptance_error']:.3f}) chain {cs} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
