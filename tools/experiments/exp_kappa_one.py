"""Experiment (issue 12 item 4): the kappa = 1.0 model of deep_broken_phase.book_specs with another training budget,
zero-mode weight and sampler; <|M|>, chi_|M| = V (<M^2> - <|M|>^2), the single-site variance about the
configuration's mean and the M > 0 fraction of the generated configurations against the HMC training data.

Usage: exp_kappa_one.py TRAIN_STEPS W HEUN_STEPS T_END [N_GEN] [SEED] [T_SAMPLING].  Environment: NT (torch threads,
1), GN=0 (the U-Net without group norms), BATCH (training batch size; default the recipe's).
"""
import dataclasses, os, sys
import numpy as np, torch
from _run import train_and_generate
from lib.physics import observables as obs
from lib.recipes import deep_broken_phase as db

torch.set_num_threads(int(os.environ.get("NT", "1")))
steps, weight, heun, t_end = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
n_gen = int(sys.argv[5]) if len(sys.argv) > 5 else 256
specs = db.book_specs("quick")
spec = specs["model"]
t_sampling = sys.argv[7] if len(sys.argv) > 7 else spec.train.t_sampling
spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, n_steps=steps, zero_mode_weight=weight,
                                                           t_sampling=t_sampling,
                                                           batch_size=int(os.environ.get("BATCH", spec.train.batch_size))),
                           seed=int(sys.argv[6]) if len(sys.argv) > 6 else spec.seed)
if os.environ.get("GN", "1") == "0":
    spec = dataclasses.replace(spec, net=dataclasses.replace(spec.net, group_norm=False))
sample = dataclasses.replace(specs["sample"], n_samples=n_gen, n_steps=heun, t_end=t_end)
x, hmc, train_s, sample_s = train_and_generate(spec, sample)
rng = np.random.default_rng(0)


def row(x):
    m = obs.magnetisation(x)
    s = obs.magnetisation_summary(m, x.shape[-1] ** 2, generator=rng, block_length=1, n_boot=200)
    site = float((x - m[:, None, None]).var())
    return f"<|M|> {s['absM'][0]:.4f}({s['absM'][1]:.4f}) chi|M| {s['chi2_abs'][0]:.4f}({s['chi2_abs'][1]:.4f}) " \
           f"site var {site:.5f} M>0 {float((m > 0).double().mean()):.3f}"


print(f"group norm {spec.net.group_norm} batch {spec.train.batch_size} steps {steps} w {weight:g} t_sampling {t_sampling} heun {heun} t_end {t_end:g} n_gen {n_gen} seed {spec.seed} train {train_s:.0f} s "
      f"sample {sample_s:.0f} s\n  DM:  {row(x)}\n  HMC: {row(hmc)}", flush=True)
