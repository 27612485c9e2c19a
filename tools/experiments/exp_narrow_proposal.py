"""Experiment (issue 31): the independence chain that cannot be trusted, a Gaussian proposal narrower than the target.

Gaussian proposals with the measured propagator of the 8 x 8 kappa = 0.21 training data times width**2
(lib.recipes.pipelines.path_proposals.gaussian_proposals), the independence chain through them, its chi_2 and
<phi^2> with errors from tau_int against the HMC ensemble, and the Pareto k-hat of the weights.  Chose the widths and
the number of proposals of book/part3/path_sampler.md.

Usage: exp_narrow_proposal.py N SEED WIDTH...
"""
import sys

import numpy as np

from lib.core.random import make_generator
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import flow_proposals as flows, path_proposals as pp, phi4_ensembles as ens

n, seed, widths = int(sys.argv[1]), int(sys.argv[2]), [float(w) for w in sys.argv[3:]]
spec = rp.book_specs("quick")["narrow"]
V = spec["dm"].params.L ** 2
rng = np.random.default_rng(seed)
hmc = ens.ensemble(spec["hmc"][1])
m = ens.kept_magnetisation(hmc)
ref = flows.summary({"M": m, "action_density": m, "phi2": m}, V, rng)
print(f"HMC chi_2 {ref['chi2'][0]:.3f}({ref['chi2'][1]:.3f})")
for w in widths:
    props = pp.gaussian_proposals(spec["dm"], w, n, seed)
    ws = pp.weight_summary(props)
    out = flows.corrected_chain(props, make_generator(seed + 1))
    s = flows.summary(out, V, rng)
    print(f"width {w}: acc {out['acceptance']:.3f}, sd(log w) {ws['sd_log_w']:.2f}, ESS/n {ws['ess_fraction']:.4f}, "
          f"k-hat {ws['k_hat']:.2f} (thr {ws['k_threshold']:.2f}); chain chi_2 {s['chi2'][0]:.3f}({s['chi2'][1]:.3f}), "
          f"phi2 {s['phi2'][0]:.4f}({s['phi2'][1]:.4f})")
