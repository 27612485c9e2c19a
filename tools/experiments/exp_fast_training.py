"""Experiment (issue 12, speed): can the T5 model (kappa = 0.21, L = 32) be trained in fewer steps?

The quick kappa = 0.21 recipe of phi4_diffusion.book_specs (U-Net (8, 16, 32), zero-mode weight 100, cosine lr, EMA
0.99, 50 Heun steps) with another learning rate, number of steps and batch. Prints chi_2, <phi^2> and the propagator
ratio G_gen(p) / G_hmc(p) by shell of p^2 (p = 0 is chi_2) against the HMC training data, and the wall times.

Usage: exp_fast_training.py LR STEPS BATCH [N_GEN] [SEED] [HEUN_STEPS].  Environment: NT (torch threads, 1).
"""
import dataclasses, os, sys
import numpy as np, torch
from _run import train_and_generate
from lib.physics import observables, phi4
from lib.recipes import phi4_diffusion as dm


torch.set_num_threads(int(os.environ.get("NT", "1")))
lr, n_steps, batch = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
n_gen = int(sys.argv[4]) if len(sys.argv) > 4 else 512
specs = dm.book_specs("quick")
spec = specs["k0.21"]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else spec.seed
spec = dataclasses.replace(spec, seed=seed,
                           train=dataclasses.replace(spec.train, lr=lr, n_steps=n_steps, batch_size=batch))
sample = dataclasses.replace(specs["samples"]["k0.21"], n_samples=n_gen)
if len(sys.argv) > 6:
    sample = dataclasses.replace(sample, n_steps=int(sys.argv[6]))
phi, hmc, train_s, sample_s = train_and_generate(spec, sample)
L = phi.shape[-1]
p2 = phi4.lattice_momentum_squared(L)
edges = [(0, 0), (1e-9, 0.2), (0.2, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 6), (6, 8.1)]


def shells(x):
    g = observables.two_point_momentum(x)
    return np.array([float(g[(p2 >= a) & (p2 <= b)].mean()) if a == b else float(g[(p2 >= a) & (p2 < b)].mean())
                     for a, b in edges])


ratio = shells(phi) / shells(hmc)
m = phi.mean((-2, -1))
chi2 = float(L * L * (m ** 2).mean())
err = chi2 * np.sqrt(2 / n_gen)
print(f"lr {lr:g} steps {n_steps} batch {batch} seed {seed} n_gen {n_gen} heun {sample.n_steps}: train {train_s:.0f} s, sample {sample_s:.0f} s;"
      f" chi2 {chi2:.3f}({err:.3f}) vs HMC {float(L * L * (hmc.mean((-2, -1)) ** 2).mean()):.3f};"
      f" phi2 {float((phi ** 2).mean()):.4f} vs {float((hmc ** 2).mean()):.4f}; G ratio by shell "
      + " ".join(f"{r:.3f}" for r in ratio), flush=True)
