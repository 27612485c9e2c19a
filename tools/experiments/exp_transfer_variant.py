"""A variant of the lattice-transfer model: PHASE L_TRAIN KIND GN [ZMW] -> observables at L_TRAIN and 32 (and 64).

Usage: PYTHONPATH=. python tools/experiments/exp_transfer_variant.py k0.21 8 unet 0 [w]
KIND: unet (the chapter's channels) or cnn (16, 16, 16); GN: 1/0 group norms; ZMW: zero-mode weight (default 0).
"""
import dataclasses
import sys
import time

import numpy as np
import torch

from lib.diffusion import lattice_nets
from lib.infra.cache import ArtefactCache
from lib.physics import observables as obs
from lib.recipes import lattice_transfer as lt
from lib.recipes.pipelines import lattice_sampling as dms
from lib.recipes.pipelines import lattice_training as dmt
torch.set_num_threads(1)
phase, Lt, kind, gn = sys.argv[1], int(sys.argv[2]), sys.argv[3], bool(int(sys.argv[4]))
w = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
sizes = [int(x) for x in sys.argv[6].split(",")] if len(sys.argv) > 6 else [Lt, 32]
specs, cache, rng = lt.book_specs("quick"), ArtefactCache(), np.random.default_rng(1)
base = specs["models"][phase][Lt]
net = dataclasses.replace(base.net, group_norm=gn) if kind == "unet" else \
    lattice_nets.LatticeNetConfig(kind="cnn", channels=(16, 16, 16), odd=True, group_norm=gn)
spec = dataclasses.replace(base, net=net, train=dataclasses.replace(base.train, zero_mode_weight=w))
t0 = time.perf_counter()
dmt.trained_model(spec, cache)
print(f"{sys.argv[1:]}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
for L in sizes:
    t0 = time.perf_counter()
    sample = dataclasses.replace(specs["samples"][phase][Lt, L], n_samples=min(256, specs["samples"][phase][Lt, L].n_samples))
    g = dms.generate(spec, sample, cache)
    m = obs.magnetisation(g["configs"].double())
    s = obs.magnetisation_summary(m, L * L, generator=rng, block_length=1)
    print(f"  L={L}: |M| {s['absM'][0]:.4f}({s['absM'][1]:.4f}) chi2 {s['chi2'][0]:.3f}({s['chi2'][1]:.3f}) "
          f"U_L {s['U_L'][0]:.3f}({s['U_L'][1]:.3f}) ({time.perf_counter() - t0:.0f} s)", flush=True)
