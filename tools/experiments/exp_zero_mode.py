"""Experiment (issue 12): the quick kappa = 0.21 recipe of phi4_diffusion.book_specs with another training seed and
zero-mode weight of the loss; chi_2, U_L, <phi^2> of the generated configurations against the HMC training data.

Usage: exp_zero_mode.py SEED W [N_GEN] [N_STEPS].  Environment: NT (torch threads, 1).
"""
import dataclasses, os, sys
import numpy as np, torch
from _run import train_and_generate
from lib.recipes import phi4_diffusion as dm


torch.set_num_threads(int(os.environ.get("NT", "1")))
seed, weight = int(sys.argv[1]), float(sys.argv[2])
n_gen = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
specs = dm.book_specs("quick")
spec = specs["k0.21"]
train = dataclasses.replace(spec.train, zero_mode_weight=weight)
if len(sys.argv) > 4:
    train = dataclasses.replace(train, n_steps=int(sys.argv[4]))
spec = dataclasses.replace(spec, train=train, seed=seed)
sample = dataclasses.replace(specs["samples"]["k0.21"], n_samples=n_gen)
phi, hmc, train_s, sample_s = train_and_generate(spec, sample)


def summary(x):
    V = x.shape[-1] ** 2
    M = x.sum((-2, -1)) / V
    m2, m4 = (M ** 2).mean(), (M ** 4).mean()
    return np.array([float(V * (m2 - M.mean() ** 2)), float(1 - m4 / (3 * m2 ** 2)), float((x ** 2).mean())])


def boot(x, nb=200):
    rng = np.random.default_rng(0)
    return np.std([summary(x[torch.as_tensor(rng.integers(0, len(x), len(x)))]) for _ in range(nb)], axis=0)


d, de, h, he = summary(phi), boot(phi), summary(hmc), boot(hmc)
print(f"seed {seed} w {weight:g} steps {train.n_steps} n_gen {n_gen} train {train_s:.0f} s sample {sample_s:.0f} s: "
      + "  ".join(f"{n} {a:.4f}({ea:.4f}) vs {b:.4f}({eb:.4f})"
                  for n, a, ea, b, eb in zip(("chi2", "U_L", "phi2"), d, de, h, he)), flush=True)
