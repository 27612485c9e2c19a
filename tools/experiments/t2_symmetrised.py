"""Experiment (issue 12): T2 cumulants of every cached kappa = 0.4, L = 32 generated ensemble in .artefacts, raw and
Z2-symmetrised (observables symmetric=True), relative to the symmetrised HMC training ensemble (read from the cache
files directly, whatever code fingerprint made them)."""
import json, glob, torch, numpy as np
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.physics import observables as obs, phi4
from lib.diffusion.normalise import Normalisation
torch.set_num_threads(1)
rng = np.random.default_rng(0)
def load(d):
    return torch.load(d + "/data.pt", weights_only=False)
hmc = {}
for d in glob.glob(".artefacts/phi4-hmc-ensemble/*"):
    try: p = json.load(open(d + "/provenance.json"))
    except Exception: continue
    sp = p["params"]["spec"]
    if sp.get("params", {}).get("L") == 32 and sp.get("seed") in (4001, 4002) and sp["__class__"] == "ChainSpec":
        hmc.setdefault(sp["seed"], (p["created"], d))
        if p["created"] > hmc[sp["seed"]][0]: hmc[sp["seed"]] = (p["created"], d)
x_train = torch.cat([ens.configurations(load(hmc[s][1])) for s in (4001, 4002)]).double()
norm = Normalisation.minmax(phi4.symmetrise_z2(x_train))
kt, dkt = obs.site_cumulants_bootstrap(norm.forward(x_train), n_boot=200, generator=rng, n_blocks=1000, symmetric=True)
rt, drt = obs.site_cumulant_ratios(x_train, n_boot=200, generator=rng, n_blocks=1000, symmetric=True)
print("train rel errors", [f"{dkt[n]/abs(kt[n]):.4f}" for n in (2,4,6,8)], [f"{drt[j]/abs(rt[j]):.4f}" for j in range(3)])
for d in sorted(glob.glob(".artefacts/phi4-dm-samples/*"), key=lambda d: __import__("os").path.getmtime(d)):
    if d.endswith(".scratch"): continue
    p = json.load(open(d + "/provenance.json"))["params"]
    dmp = p["dm"]
    if dmp["ensembles"][0]["params"]["kappa"] != 0.4 or dmp["ensembles"][0]["params"]["L"] != 32: continue
    tr = dmp["train"]
    x = load(d)["configs"].double()
    print(dmp["net"]["kind"], dmp["net"]["channels"], tr["n_steps"], tr.get("lr_schedule"), tr.get("t_sampling"), "heun", p["sample"]["n_steps"], "n", x.shape[0])
    for sym in (False, True):
        k, dk = obs.site_cumulants_bootstrap(norm.forward(x), n_boot=200, generator=rng, n_blocks=x.shape[0], symmetric=sym)
        r, dr = obs.site_cumulant_ratios(x, n_boot=200, generator=rng, n_blocks=x.shape[0], symmetric=sym)
        print("   sym" if sym else "   raw", " ".join(f"k{n} {k[n]/kt[n]-1:+.4f}({dk[n]/abs(kt[n]):.4f})" for n in (2,4,6,8)),
              " ratios", " ".join(f"{r[j]/rt[j]-1:+.4f}({dr[j]/abs(rt[j]):.4f})" for j in range(3)))
