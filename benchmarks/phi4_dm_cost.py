"""Cost of a phi^4 configuration from the diffusion model against one from HMC, measured in one run.

Usage::

    .venv/bin/python benchmarks/phi4_dm_cost.py [--scale quick|paper|both] [--train-steps 5] [--sample-batch 64]
        [--threads 1] [--device cpu]

For each scale of ``lib.recipes.phi4_diffusion.book_specs`` the script builds the network of the kappa = 0.4 model and
measures, on this machine:

* the wall time of a few training steps (denoising score matching and Adam, the batch size of the recipe), from
  which it extrapolates the whole training (``n_steps`` or ``epochs`` of the recipe);
* the wall time of one score evaluation on a batch, from which it extrapolates the sampling cost per
  configuration (two evaluations per step for stochastic Heun, one for Euler-Maruyama);
* as the reference, in the same run, our HMC (Omelyan, the ensemble recipe of the training data) for a few
  trajectories on the same lattice, counted per kept configuration (kept every ``keep_every`` trajectories, more
  than 2 tau_int).

It prints the cost per configuration of each and their ratio.  The paper scale (U-Net on 32 x 32) is meant for a
GPU; on a CPU it is estimated from the measured fraction.  Back-link: book/part3/phi4_diffusion.md.  A script, not a
test (benchmarks print ratios against a reference measured in the same run).
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from lib.diffusion import lattice_nets, losses
from lib.physics import hmc, phi4
from lib.recipes import phi4_diffusion as dm
from lib.core.random import make_generator


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def measure(scale: str, train_steps: int, sample_batch: int, device) -> dict:
    specs = dm.book_specs(scale)
    spec, sample = specs["k0.4"], specs["sample"]
    L = spec.params.L
    sde = dm.forward_sde(spec)
    net = lattice_nets.build_lattice_net(spec.net, sde, generator=make_generator(0)).to(device)
    gen = make_generator(1, device)
    data = torch.randn(spec.train.batch_size, L, L, generator=gen, device=device) * 0.5
    opt = torch.optim.Adam(net.parameters(), lr=spec.train.lr)

    def train_step():
        loss = losses.dsm_loss(net, sde, data, gen, spec.train.t_min)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec_step = _time(train_step, train_steps)
    n_data = sum(s.n_chains * (s.n_traj // s.keep_every) for s in spec.ensembles)
    per_epoch = math.ceil(2 * n_data / spec.train.batch_size)  # flip augmentation doubles the data
    total_steps = spec.train.n_steps or spec.train.epochs * per_epoch
    x = torch.randn(sample_batch, L, L, generator=gen, device=device)

    @torch.no_grad()
    def sample_step():
        net(x, 0.5)

    sec_eval = _time(sample_step, 3)
    n_evals = sample.score_evaluations  # Heun: two evaluations per step
    ens_spec = spec.ensembles[0]
    phi = phi4.cold_start(ens_spec.params, ens_spec.n_chains, device=device)
    n_traj = 4 * ens_spec.keep_every

    def hmc_run():
        hmc.hmc(ens_spec.params, phi, n_traj, ens_spec.step, ens_spec.n_steps, make_generator(2, device),
                integrator=ens_spec.integrator, jitter=ens_spec.jitter)

    sec_hmc = _time(hmc_run, 1)
    return {
        "L": L, "net": spec.net.kind, "n_data": n_data, "train_steps": total_steps,
        "train_s": sec_step * total_steps, "train_per_config_ms": 1e3 * sec_step * total_steps / n_data,
        "sample_per_config_ms": 1e3 * sec_eval / sample_batch * n_evals,
        "hmc_per_config_ms": 1e3 * sec_hmc / (ens_spec.n_chains * n_traj / ens_spec.keep_every),
        "n_gen": sample.n_samples, "n_evals": n_evals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="both", choices=["quick", "paper", "both"])
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scales = ["quick", "paper"] if args.scale == "both" else [args.scale]
    for scale in scales:
        r = measure(scale, args.train_steps, args.sample_batch, torch.device(args.device))
        print(f"[{scale}] L = {r['L']}, {r['net']}, {r['n_data']} training configurations, {r['train_steps']} steps")
        print(f"  training: {r['train_s'] / 3600:.2f} h in all = {r['train_per_config_ms']:.1f} ms per training "
              f"configuration")
        print(f"  sampling: {r['sample_per_config_ms']:.1f} ms per configuration ({r['n_evals']} score evaluations); "
              f"{r['n_gen']} configurations: {r['sample_per_config_ms'] * r['n_gen'] / 3.6e6:.2f} h")
        print(f"  HMC (reference, same run): {r['hmc_per_config_ms']:.3f} ms per kept configuration")
        print(f"  ratio DM sampling / HMC: {r['sample_per_config_ms'] / r['hmc_per_config_ms']:.0f}; "
              f"including training amortised over {r['n_gen']} samples: "
              f"{(r['sample_per_config_ms'] + r['train_s'] * 1e3 / r['n_gen']) / r['hmc_per_config_ms']:.0f}")


if __name__ == "__main__":
    main()
