"""Experiment (issue 12): a lattice DM trained at L = 32 (CNN or U-Net), sampled with stochastic Heun; chi_2, U_L, cumulants against HMC.

Environment: NT (torch threads, 1), LR (2e-3), BS (batch, 32), LRS (lr schedule: constant | cosine), TS (t sampling).
"""
import sys, time, torch, numpy as np
from lib.diffusion import lattice_nets, training
from lib.recipes import phi4_hmc
from lib.recipes.pipelines import lattice_sampling as dms, lattice_training as dmt
from lib.infra.cache import ArtefactCache

torch.set_num_threads(int(__import__("os").environ.get("NT", "1")))
kappa = sys.argv[1] if len(sys.argv) > 1 else "0.21"
n_train_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
n_heun = int(sys.argv[3]) if len(sys.argv) > 3 else 20
cache = ArtefactCache()
big = phi4_hmc.book_specs("quick")
names = ("k0.21-hot", "k0.21-cold") if kappa == "0.21" else ("k0.4-cold", "k0.4-below")
arch = sys.argv[4] if len(sys.argv) > 4 else "cnn"
if arch.startswith("unet"):
    ch = tuple(int(c) for c in arch[4:].split(",")) if len(arch) > 4 else (16, 32, 32)
    cnn = lattice_nets.LatticeNetConfig(kind="unet", channels=ch, embed_dim=32, odd=True, group_norm=True)
else:
    cnn = lattice_nets.LatticeNetConfig(kind="cnn", channels=(16, 16, 16), odd=True, group_norm=False)
import os
tc = training.TrainConfig(n_steps=n_train_steps, lr=float(os.environ.get("LR", "2e-3")), batch_size=int(os.environ.get("BS", "32")), augment_flip=True, ema_decay=0.99,
                          lr_schedule=os.environ.get("LRS", "constant"), t_sampling=os.environ.get("TS", "uniform"))
print(tc, flush=True)
spec = dmt.DMSpec(tuple(big[n] for n in names), cnn, tc, seed=int(os.environ.get("SEED", "7321")))
t0 = time.perf_counter()
data = dmt.training_configs(spec, cache, progress=False)
print("data", tuple(data.shape), f"{time.perf_counter() - t0:.0f} s", flush=True)
t0 = time.perf_counter()
result, norm = dmt.trained_model(spec, cache, progress=False)
print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
n_gen = int(sys.argv[5]) if len(sys.argv) > 5 else 1536
sample = dms.SampleSpec(n_samples=n_gen, n_steps=n_heun, batch=256, record_every=max(1, n_heun // 10), seed=7100)
t0 = time.perf_counter()
out = dms.generate(spec, sample, cache, progress=False)
print(f"sampled {sample.n_samples} with {n_heun} Heun steps in {time.perf_counter() - t0:.0f} s", flush=True)
phi = out["configs"].double()
V = phi.shape[-1] ** 2
def summary(x):
    M = x.sum((-2, -1)) / V
    m2, m4 = (M**2).mean(), (M**4).mean()
    chi2 = V * (m2 - M.mean()**2)
    UL = 1 - m4 / (3 * m2**2)
    return float(M.mean()), float(M.abs().mean()), float(chi2), float(UL), float((x**2).mean())
def err(x, f, nb=200, seed=0):
    rng = np.random.default_rng(seed); n = x.shape[0]
    vals = np.array([f(x[torch.as_tensor(rng.integers(0, n, n))]) for _ in range(nb)])
    return vals.std(0)
names_o = ("<M>", "<|M|>", "chi2", "U_L", "<phi^2>")
dm_v, dm_e = summary(phi), err(phi, summary)
hmc = data.double()
h_v, h_e = summary(torch.cat([hmc, -hmc])), err(hmc, summary)
for n, a, ea, b, eb in zip(names_o, dm_v, dm_e, h_v, h_e):
    print(f"{n:8s} DM {a:.4f}({ea:.4f})  HMC {b:.4f}({eb:.4f})  diff/sigma {(a-b)/np.hypot(ea, eb):+.1f}")
if kappa != "0.21":
    print("fraction M > 0:", float((phi.sum((-2, -1)) > 0).double().mean()))
if kappa != "0.21":
    from lib import stats
    x = phi.reshape(-1)
    xs = torch.cat([hmc, -hmc]).reshape(-1)
    kd = stats.cumulants_from_moments(np.array([float((x**n).mean()) for n in range(9)]))
    kh = stats.cumulants_from_moments(np.array([float((xs**n).mean()) for n in range(9)]))
    for n in (2, 4, 6, 8):
        print(f"kappa_{n}: DM {kd[n]:.4g}  HMC {kh[n]:.4g}  ratio {kd[n]/kh[n]:.3f}")
    for n in (4, 6, 8):
        print(f"kappa_{n}/kappa_2^{n//2}: DM {kd[n]/kd[2]**(n//2):.4g}  HMC {kh[n]/kh[2]**(n//2):.4g}")
