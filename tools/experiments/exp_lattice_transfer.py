"""Run (and cache) everything of the lattice-transfer chapter for one phase; print the observables.

Usage: PYTHONPATH=. python tools/experiments/exp_lattice_transfer.py PHASE   (k0.21 or k0.4)
"""
import sys
import time

import numpy as np
import torch

from lib.infra.cache import ArtefactCache
from lib.physics import observables as obs
from lib.recipes import lattice_transfer as lt
from lib.recipes.pipelines import lattice_sampling as dms
from lib.recipes.pipelines import lattice_training as dmt
from lib.recipes.pipelines import phi4_ensembles as ens

torch.set_num_threads(1)
phase = sys.argv[1]
specs, cache, rng = lt.book_specs("quick"), ArtefactCache(), np.random.default_rng(1)
for L, pair in specs["hmc"][phase].items():
    t0 = time.perf_counter()
    m = torch.cat([ens.kept_magnetisation(ens.ensemble(s, cache=cache)) for s in pair], dim=1)
    s = obs.magnetisation_summary(m, L * L, generator=rng)
    print(f"HMC L={L}: |M| {s['absM']} chi2 {s['chi2']} U_L {s['U_L']} ({time.perf_counter() - t0:.0f} s)", flush=True)
for Lt, spec in specs["models"][phase].items():
    t0 = time.perf_counter()
    dmt.trained_model(spec, cache)
    print(f"trained L_t={Lt} in {time.perf_counter() - t0:.0f} s", flush=True)
    for L in sorted({Lt, *lt.L_SAMPLE}):
        t0 = time.perf_counter()
        g = dms.generate(spec, specs["samples"][phase][Lt, L], cache)
        m = obs.magnetisation(g["configs"].double())
        s = obs.magnetisation_summary(m, L * L, generator=rng, block_length=1)
        r = obs.site_cumulant_ratios(g["configs"], generator=rng, symmetric=True)
        print(f"  L_t={Lt} -> L={L}: |M| {s['absM']} chi2 {s['chi2']} U_L {s['U_L']} ratios {r[0]} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
