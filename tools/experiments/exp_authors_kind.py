"""Experiment (issue 12 item 6): what makes the authors' network prefer one vacuum at L = 16, kappa = 0.27?

The model of ``network_symmetry.book_specs("quick")`` trained on the authors' protocol, with the authors' pipeline
(their public notebook, Anguswlx/DMasSQ) switched on piece by piece:

- ``NET``: ``unet`` (the chapter's U-Net (8, 16, 32), stride-2 levels) or ``flat`` (a residual CNN at full
  resolution, widths ``WIDTH`` x 3, as the notebook's ScoreNet, whose convolutions all have stride 1);
- ``NORM``: ``maxabs`` (the chapter's) or ``minmax`` (the notebook's map to [-1, 1], which shifts the field);
- ``OPT``: ``book`` (batch 32, lr 2e-3 cosine, EMA 0.99), ``authors`` (batch 64, lr 1e-3 constant, no EMA) or
  ``authors-ema`` (the authors' with an EMA of decay 0.99);
- ``SAMPLER``: ``heun50`` (the chapter's) or ``em200`` (the notebook's Euler-Maruyama, 200 steps to t = 1e-3);
- ``ODD``: 0 (zero padding, not odd: the authors' kind) or 1 (circular padding, odd: ours).

Usage: exp_authors_kind.py NET NORM OPT SAMPLER ODD STEPS [N_GEN] [WIDTH] [SEED] [DATA]; DATA ``authors`` (the chapter's
authors'-protocol ensemble, default) or ``run`` (the long run).  Prints <M>, <|M|>, chi_2 and the M > 0 fraction of the
generated ensemble and of the training data.  Environment NT: torch threads (1).
"""
import dataclasses, os, sys
import numpy as np, torch
from _run import train_and_generate
from lib.diffusion import lattice_nets
from lib.physics import observables as obs
from lib.recipes import network_symmetry as ns

torch.set_num_threads(int(os.environ.get("NT", "1")))
net_kind, norm, opt, sampler, odd, steps = sys.argv[1:6] + [int(sys.argv[6])]
n_gen = int(sys.argv[7]) if len(sys.argv) > 7 else 1024
width = int(sys.argv[8]) if len(sys.argv) > 8 else 16
seed = int(sys.argv[9]) if len(sys.argv) > 9 else 2720
data = sys.argv[10] if len(sys.argv) > 10 else "authors"
odd = odd == "1"
specs = ns.book_specs("quick")
spec = specs["models"][("authors' protocol" if data == "authors" else "long run", "periodic, odd")]
net = spec.net if net_kind == "unet" else lattice_nets.LatticeNetConfig(kind="cnn", channels=(width,) * 3,
                                                                         embed_dim=spec.net.embed_dim)
net = dataclasses.replace(net, odd=odd, padding="circular" if odd else "zeros")
train = dataclasses.replace(spec.train, n_steps=steps)
if opt.startswith("authors"):
    train = dataclasses.replace(train, batch_size=64, lr=1e-3, lr_schedule="constant",
                                ema_decay=0.99 if opt == "authors-ema" else None)
spec = dataclasses.replace(spec, net=net, train=train, normalisation=norm, seed=seed)
sample = dataclasses.replace(specs["sample"], n_samples=n_gen, batch=256)
if sampler == "em200":
    sample = dataclasses.replace(sample, method="em", n_steps=200, t_end=1e-3, record_every=200)
x, train_x, train_s, sample_s = train_and_generate(spec, sample)
rng = np.random.default_rng(0)
V = x.shape[-1] ** 2


def row(x):
    m = obs.magnetisation(x)
    s = obs.magnetisation_summary(m, V, generator=rng, block_length=1, n_boot=200)
    return (f"<M> {s['M'][0]:+.4f}({s['M'][1]:.4f}) <|M|> {s['absM'][0]:.4f}({s['absM'][1]:.4f}) "
            f"chi2 {s['chi2'][0]:.1f}({s['chi2'][1]:.1f}) M>0 {float((m > 0).double().mean()):.3f}")


print(f"{net_kind} w{width} {norm} {opt} {sampler} odd={int(odd)} steps {steps} seed {seed} data {data} "
      f"train {train_s:.0f} s sample {sample_s:.0f} s\n  DM:   {row(x)}\n  data: {row(train_x)}", flush=True)
