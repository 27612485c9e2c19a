"""Experiment (issue 31): annealing after the backward path, a stochastic normalizing flow (SNF).

The path proposals of lib.recipes.pipelines.path_proposals (free field, force or zero mode; or a stored network) end
in phi_0.  K Metropolis-adjusted HMC layers follow, layer k reversible with respect to

    mu_k(phi) ~ exp[-beta_k S(phi) + (1 - beta_k) U(phi)],   beta_k = (k/K)^POW,  k = 1 ... K,

with U the log-density the proposal approximates (the free field of the data's propagator, its zero mode replaced by
the fitted mixture for ``zero-mode``).  For a kernel in detailed balance with mu_k the reverse kernel over the
forward one is mu_k(in)/mu_k(out) (Wu, Koehler, Noe 2020), so the weight of the extended path is

    log w = -S(phi_K) - log_q(path) + sum_k [log mu_k(phi_{k-1}) - log mu_k(phi_k)]

for any U and any schedule: exact, as the path weight.  The HMC is Fourier-accelerated (mass C^-1, C the data's
propagator in the units of phi): NLF leapfrog steps of size EPS.

Usage: exp_path_snf.py CASE SCORE N_PATHS K [SEED]
  CASE   k0.27-16 (the chapter's HMC data at kappa = 0.27, L = 16), k0.27-32 (the same recipe at L = 32),
         k0.21-32, k0.4-32
  SCORE  gaussian | force | zero-mode (PathSpec.score)
Environment: NT threads (1), NLF (3), EPS (0.5), POW (1), KIN (data | narrow), the proposals' batch 64.
Prints sd(log w), ESS/n, k-hat, the acceptance of the independence chain, the HMC layers' mean acceptance, time per
path (backward process, layers), and <|M|>, chi_2, U_L of the chain and of the data (no errors: a trial).
"""
import math
import os
import sys
import time

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion.zero_mode import ZeroModeMixture
from lib.physics import phi4
from lib.physics.metropolis import independence_metropolis
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import path_proposals as pp

torch.set_num_threads(int(os.environ.get("NT", "1")))
case, score, n_paths, K = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 37000
n_lf, eps, power = int(os.environ.get("NLF", "3")), float(os.environ.get("EPS", "0.5")), float(os.environ.get("POW", "1"))
specs = rp.book_specs("quick")
if case.startswith("k0.27"):
    L = int(case.split("-")[1])
    dm = rp.critical_specs(L, "quick")[1]
else:
    kappa, L = case.split("-")
    dm = specs["dm"][kappa][int(L)]
    L = int(L)
params = dm.params
spec = pp.PathSpec(dm, n_paths, score=score, seed=seed, **(rp.FORCE if score == "force" else {}))
t0 = time.perf_counter()
props = pp.draw(spec)
t_path = (time.perf_counter() - t0) / n_paths
x = lt.training_configs(dm).to(torch.float64)
norm = lt.normalisation(dm, x)
v = pp.data_mode_variance(dm)  # of y = (phi - shift) / scale
c_phi = v * norm.scale ** 2  # the propagator in phi's units
dims = (-2, -1)
V = L * L
mixture = ZeroModeMixture.fit(norm.forward(x), 3) if score == "zero-mode" else None
c_kin = c_phi.clone()  # the HMC layers' inverse mass; KIN=narrow: the zero mode's from the mixture's narrowest peak
if os.environ.get("KIN", "data") == "narrow":
    c_kin[0, 0] = (min(mixture.s) * norm.scale) ** 2


def fft(a):
    return torch.fft.fftn(a, dim=dims, norm="ortho")


def ifft(a):
    return torch.fft.ifftn(a, dim=dims, norm="ortho").real


def log_u(phi):
    """U(phi): the free field of the data's propagator (zero mode from the mixture for zero-mode), up to a constant."""
    y = (phi - norm.shift) / norm.scale
    yp = fft(y)
    quad = (yp.real ** 2 + yp.imag ** 2) / v
    if mixture is None:
        return -0.5 * quad.sum(dims)
    u = y.sum(dims) / math.sqrt(V)
    return -0.5 * (quad.sum(dims) - quad[:, 0, 0]) + mixture.log_prob(u)


def log_mu(phi, beta):
    return -beta * phi4.action(phi, params, check=False) + (1.0 - beta) * log_u(phi)


def grad_log_mu(phi, beta):
    with torch.enable_grad():
        p = phi.detach().requires_grad_(True)
        g, = torch.autograd.grad(log_mu(p, beta).sum(), p)
    return g


def hmc_layer(phi, beta, g):
    """One Fourier-accelerated HMC step reversible for mu_beta: (new phi, accepted)."""
    z = torch.randn(phi.shape, generator=g, dtype=torch.float64)
    pi = ifft(fft(z) / torch.sqrt(c_kin))  # momentum ~ N(0, C^-1)

    def kinetic(p):
        pp_ = fft(p)
        return 0.5 * ((pp_.real ** 2 + pp_.imag ** 2) * c_kin).sum(dims)

    h0 = -log_mu(phi, beta) + kinetic(pi)
    q, p = phi.clone(), pi + 0.5 * eps * grad_log_mu(phi, beta)
    for j in range(n_lf):
        q = q + eps * ifft(fft(p) * c_kin)
        if j < n_lf - 1:
            p = p + eps * grad_log_mu(q, beta)
    p = p + 0.5 * eps * grad_log_mu(q, beta)
    h1 = -log_mu(q, beta) + kinetic(p)
    acc = torch.rand(phi.shape[0], generator=g, dtype=torch.float64) < torch.exp(torch.clamp(h0 - h1, max=0.0))
    acc = acc & torch.isfinite(h1)
    return torch.where(acc[:, None, None], q, phi), acc


g = make_generator(seed + 7)
phi = props["phi"].to(torch.float64)
log_w = -props["log_q"].to(torch.float64)
accs = []
t0 = time.perf_counter()
with torch.no_grad():
    for k in range(1, K + 1):
        beta = (k / K) ** power
        new, acc = hmc_layer(phi, beta, g)
        log_w = log_w + log_mu(phi, beta) - log_mu(new, beta)
        phi = new
        accs.append(float(acc.double().mean()))
t_layers = (time.perf_counter() - t0) / n_paths
S = phi4.action(phi, params)
log_w = log_w - S
log_q = -S - log_w
lw = log_w.numpy()
lw0 = (-props["action"] - props["log_q"]).numpy()
chain = independence_metropolis(phi, log_q, lambda p: S, make_generator(seed + 1))
acc, acc_e = stats.mean_error(chain.accepted.double().numpy())
M = phi.mean(dims)[chain.index].numpy()
Md = x.mean(dims).numpy()


def summary(m):
    m2, m4 = (m ** 2).mean(), (m ** 4).mean()
    return np.abs(m).mean(), V * (m2 - np.abs(m).mean() ** 2), 1 - m4 / (3 * m2 ** 2)


print(f"{case} {score} K={K} NLF={n_lf} EPS={eps} POW={power} seed {seed}: {n_paths} paths; without layers "
      f"sd(log w) {np.std(lw0):.2f} ESS/n {stats.importance_ess(lw0) / n_paths:.3f} k-hat {stats.pareto_k(lw0):.2f}",
      flush=True)
print(f"  with layers: sd(log w) {np.std(lw):.2f}  ESS/n {stats.importance_ess(lw) / n_paths:.3f}  k-hat "
      f"{stats.pareto_k(lw):.2f} (thr {stats.pareto_k_threshold(n_paths):.2f})  acceptance {acc:.3f}({1000 * acc_e:.0f})  "
      f"HMC layers' acceptance {np.mean(accs) if accs else 0:.2f} (min {min(accs, default=0):.2f})  ms/path: path {1e3 * t_path:.1f}, "
      f"layers {1e3 * t_layers:.1f}", flush=True)
print("  chain <|M|>, chi_|M|, U_L: %.4f %.4f %.3f   data: %.4f %.4f %.3f" % (summary(M) + summary(Md)), flush=True)
