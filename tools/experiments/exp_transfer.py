"""Experiment (issue 12, item 3): the 8 x 8 CNN models (phi4_diffusion before issue 12) sampled at L = 8, 16, 32."""
import sys, time, torch
from lib.recipes import phi4_diffusion as dm, phi4_hmc
from lib.recipes.pipelines import lattice_sampling as dms, lattice_training as dmt, phi4_ensembles as ens
from lib.infra.cache import ArtefactCache
torch.set_num_threads(1)
name = sys.argv[1] if len(sys.argv) > 1 else "k0.4"
Ls = [int(a) for a in sys.argv[2:]] or [8, 16, 32]
cache = ArtefactCache()
# the 8 x 8 models of the quick scale before issue 12 (the CNN of phi4_diffusion.book_specs()["small"])
small, ref = phi4_hmc.small_specs(), dm.book_specs("quick")["small"]
spec = ref if name == "k0.21" else dmt.DMSpec((small["k0.4-cold"], small["k0.4-below"]), ref.net, ref.train, seed=5040)
t0 = time.perf_counter(); dmt.trained_model(spec, cache); print(f"trained {name} at L = {spec.params.L}: {time.perf_counter() - t0:.0f} s", flush=True)
big = phi4_hmc.book_specs("quick")
hmc32 = torch.cat([ens.configurations(ens.ensemble(big[n], cache=cache)) for n in (("k0.4-cold", "k0.4-below") if name == "k0.4" else ("k0.21-hot",))]).double()
for L in Ls:
    sample = dms.SampleSpec(n_samples=512, n_steps=50, batch=256, record_every=10, seed=7200, L=L)
    t0 = time.perf_counter()
    phi = dms.generate(spec, sample, cache)["configs"].double()
    V = L * L
    M = phi.sum((-2, -1)) / V
    m2, m4 = float((M**2).mean()), float((M**4).mean())
    print(f"L = {L}: {time.perf_counter() - t0:.0f} s; <|M|> {float(M.abs().mean()):.4f}, chi2 {V * m2:.4g}, "
          f"U_L {1 - m4 / (3 * m2**2):.4f}, <phi^2> {float((phi**2).mean()):.4f}, M>0 {float((M > 0).double().mean()):.3f}", flush=True)
M32 = hmc32.mean((-2, -1))
print(f"HMC L = 32: <|M|> {float(M32.abs().mean()):.4f}, chi2 {1024 * float((M32**2).mean()):.4g}, <phi^2> {float((hmc32**2).mean()):.4f}")
