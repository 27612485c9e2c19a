"""Experiment (issue 31): the path-space sampler with the book's stored networks and with the free-field score.

Reproduces the issue's second table at the quick scale: the stochastic backward process on a grid geometric in
sqrt(Xi) (``lib.diffusion.path_sampler.geometric``, down to t = 0), with the momentum-space posterior kernel built from
the propagator measured on the training ensemble (or the Euler-Maruyama kernel), the path weight, an independence
Metropolis-Hastings chain on paths, Kish's ESS and the Pareto k-hat of the weights.

Usage: exp_path_sampler.py MODEL PROPOSAL KERNEL N_STEPS N_PATHS [SEED] [TRAIN_STEPS]
  MODEL     phi4_diffusion's ``k0.21`` or ``k0.4`` (L = 32), from the store
  PROPOSAL  ``net`` (the stored DSM network), ``free`` (the Gaussian score of the measured propagator, no network)
            or ``base`` (the same recipe with ``base="gaussian"``: the network learns a correction to that Gaussian
            score; training seed 31100, TRAIN_STEPS steps, default the recipe's; trained here and cached)
  KERNEL    ``posterior`` or ``euler-maruyama``
Environment NT: torch threads (1).  Prints sd(log w), acceptance, ESS/n, k-hat and <|M|>, chi_2 of the raw proposals,
of the chain and of the training ensemble.
"""
import dataclasses
import os
import sys
import time

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import path_sampler as ps
from lib.diffusion.mode_gaussian import gaussian_score
from lib.physics import observables as obs, phi4
from lib.physics.metropolis import chain_observable, independence_metropolis
from lib.recipes import phi4_diffusion as pd
from lib.recipes.pipelines import lattice_training as lt

torch.set_num_threads(int(os.environ.get("NT", "1")))
model, proposal, kernel, n_steps, n_paths = sys.argv[1:4] + [int(a) for a in sys.argv[4:6]]
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 31000
spec = pd.book_specs("quick")[model]
if proposal == "base":
    steps = int(sys.argv[7]) if len(sys.argv) > 7 else spec.train.n_steps
    spec = dataclasses.replace(spec, base="gaussian", seed=31100, train=dataclasses.replace(spec.train, n_steps=steps))
params = spec.ensembles[0].params
L, V = params.L, params.L ** 2
start = time.perf_counter()
result, norm = lt.trained_model(spec)
print(f"network: {result.source}, {len(result.losses)} steps, {time.perf_counter() - start:.0f} s here")
train = lt.training_configs(spec)
sde = lt.forward_sde(spec)
v = obs.momentum_power(norm.forward(train).to(torch.float64)).mean(0)  # per-mode variance of the normalised field
v = 0.5 * (v + torch.roll(torch.flip(v, (0, 1)), (1, 1), (0, 1)))  # even to rounding
net = result.sampling_model.eval()


def net_score(x, t):
    with torch.no_grad():
        return net(x.to(torch.float32), t.to(torch.float32)).to(x.dtype)


def free_score(x, t):
    return gaussian_score(x, t, sde, v)


def action(y):  # the action of the physical field; the normalisation's Jacobian is a constant
    return phi4.action(norm.inverse(y.to(torch.float64)), params, check=False)


score = free_score if proposal == "free" else net_score
grid = ps.geometric(sde, n_steps, 1e-4)
g = make_generator(seed)
start = time.perf_counter()
paths = ps.path_proposals(sde, score, grid, (L, L), n_paths, g, kernel=kernel,
                          mode_variance=v if kernel == "posterior" else None, batch=64)
seconds = time.perf_counter() - start
log_w = -action(paths.x) - paths.log_q
chain = independence_metropolis(paths.x, paths.log_q, action, g)
m = obs.magnetisation(norm.inverse(paths.x.to(torch.float64)))
m_train = obs.magnetisation(train.to(torch.float64))
m_chain = chain_observable(chain, m)
rng = np.random.default_rng(seed)


def chi(mm):
    return V * float((mm ** 2).mean())


print(f"{model} {proposal} {kernel} N={n_steps} paths={n_paths} seed={seed}: {seconds / n_paths:.3f} s per path")
print(f"  sd(log w) {float(log_w.std()):.3g}  acceptance {chain.acceptance:.3f}  "
      f"ESS/n {stats.importance_ess(log_w) / n_paths:.3f}  k-hat {stats.pareto_k(log_w):.2f} "
      f"(reliable below {stats.pareto_k_threshold(n_paths):.2f})")
mean_abs, err_abs = stats.mean_error(m_chain.abs())
print(f"  <|M|>: raw {float(m.abs().mean()):.4f}, chain {float(mean_abs):.4f}({float(err_abs):.4f}), "
      f"training {float(m_train.abs().mean()):.4f}")
print(f"  chi_2: raw {chi(m):.3f}, chain {chi(m_chain):.3f}, training {chi(m_train):.3f}")
