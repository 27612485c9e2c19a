"""Experiment (issue 31): longer training and a wider network, measured on the path weight.

kappa = 0.27, L = 16, the data of the path chapter (lib.recipes.path_sampler.critical_specs(16)), the recipe of
lattice_transfer's quick U-Net (channels 8, 16, 32; 1500 steps of batch 32) as the reference, trained here (cached
in .artefacts, not the store) with a DSM loss as a network score (``base="none"``) or as a correction to the
Gaussian score (``base="gaussian"``).  VARIANT: ``quick`` (that recipe), ``long`` (4 x the steps), ``wide`` (2 x the
channels), ``both``.  Then N paths (N = 100, posterior kernel) with the network's score, without and with the
chapter's short annealed layers (lib.recipes.path_sampler.LAYERS["short"]): sd(log w), ESS/n, k-hat, acceptance.

Usage: exp_path_longer.py VARIANT BASE N_PATHS SEED     (BASE: none | gaussian)
Environment NT: torch threads (1); BASE: the layers' base density (AnnealedSpec.base: score, zero-mode).
"""
import dataclasses
import os
import sys
import time

import torch

from lib.core.random import make_generator
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import flow_proposals as flows
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import path_proposals as pp

torch.set_num_threads(int(os.environ.get("NT", "1")))
variant, base, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
dm = dataclasses.replace(rp.critical_specs(16)[1], base=base, seed=seed)
if variant in ("long", "both"):
    dm = dataclasses.replace(dm, train=dataclasses.replace(dm.train, n_steps=4 * dm.train.n_steps))
if variant in ("wide", "both"):
    dm = dataclasses.replace(dm, net=dataclasses.replace(dm.net, channels=tuple(2 * c for c in dm.net.channels)))
t0 = time.perf_counter()
lt.trained_model(dm)
print(f"{variant} base={base}: {dm.net.channels}, {dm.train.n_steps} steps; training (or cache) "
      f"{time.perf_counter() - t0:.0f} s", flush=True)
paths = pp.PathSpec(dm, n, score="network", seed=seed + 1)
for label, props in (("paths", pp.proposals(paths)),
                     ("paths + layers", pp.annealed(pp.AnnealedSpec(paths, rp.LAYERS["short"], seed=seed + 2,
                                                                     base=os.environ.get("BASE", "score"))))):
    w = pp.weight_summary(props)
    ch = flows.corrected_chain(props, make_generator(seed + 3))
    print(f"  {label}: sd(log w) {w['sd_log_w']:.2f} ESS/n {w['ess_fraction']:.3f} k-hat {w['k_hat']:.2f} "
          f"(thr {w['k_threshold']:.2f}) acceptance {ch['acceptance']:.3f}({1000 * ch['acceptance_error']:.0f}) "
          f"{1e3 * float(props['seconds_per_path']):.0f} ms/path", flush=True)
