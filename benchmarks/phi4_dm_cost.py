"""Cost of a phi^4 configuration from the diffusion model against one from HMC, measured in one run.

Usage::

    .venv/bin/python benchmarks/phi4_dm_cost.py [--scale quick|paper|both] [--train-steps 5] [--sample-batch N]
        [--threads 1] [--device cpu] [--authors] [--padding] [--layout] [--batch-scan]

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
GPU; on a CPU it is estimated from the measured fraction.

With ``--authors`` it also measures, in the same run and at L = 32, the authors' configuration (arXiv:2309.17082: the
U-Net with channels (32, 64, 128, 256), zero padding and no Z2 antisymmetrisation, batch 64, 20000 training steps, a 500-step
Euler-Maruyama sampler) and prints, against the quick recipe of the book: configurations per second of one score
evaluation (forward), training steps per second, and the cost of the T5 row (kappa = 0.21) at equal generated
sample size (the quick recipe's); the authors' cost is extrapolated from their measured step times (tens of CPU hours;
it is not run).  With ``--padding`` it measures the quick T5 network with lib's circular padding
(:class:`lib.diffusion.lattice_nets._CircularPad`, a cheaper backward pass with the same numbers) against torch's
own.  With ``--layout`` it measures the quick T5 network as lib builds it (channels-last weights and activations)
against the same network in the contiguous layout with torch's padding.  With ``--batch-scan`` it measures a score evaluation per configuration against the number of configurations
per batch at L = 16, 32 and 64, and the speed of :func:`lib.recipes.pipelines.lattice_sampling.cpu_batch`'s batch against a
batch of 256.  Back-link: book/part3/phi4_diffusion.md.  A script, not a
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
from lib.recipes.pipelines import lattice_sampling as dms
from lib.recipes.pipelines import lattice_training as dmt
from lib.core.random import make_generator


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def measure(scale: str, train_steps: int, sample_batch: int | None, device) -> dict:
    specs = dm.book_specs(scale)
    spec, sample = specs["k0.4"], specs["samples"]["k0.4"]
    L = spec.params.L
    sde = dmt.forward_sde(spec)
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
    sample_batch = sample_batch or dms.cpu_batch(L)
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


#: the authors' recipe (arXiv:2309.17082): network, batch, training steps, Euler-Maruyama steps
AUTHORS_NET = lattice_nets.LatticeNetConfig(kind="unet", channels=(32, 64, 128, 256), embed_dim=64, odd=False,
                                            padding="zeros")
AUTHORS_BATCH, AUTHORS_TRAIN_STEPS, AUTHORS_SAMPLER_STEPS = 64, 20000, 500


def torch_padding(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with every convolution turned back into torch's own ``nn.Conv2d`` (its circular padding and backward)."""
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.__class__ = torch.nn.Conv2d
    return net


def network_speed(config, L: int, train_batch: int, forward_batch: int | None, repeat: int, device,
                  reference_padding: bool = False, contiguous: bool = False) -> dict:
    """Seconds per configuration of one score evaluation and per training step (batch ``train_batch``) at ``L``;
    with ``reference_padding`` the network pads with torch's own circular padding (:func:`torch_padding`), with
    ``contiguous`` its weights (and so its activations) are in the contiguous layout instead of channels-last."""
    sde = dmt.forward_sde(dm.book_specs("quick")["k0.21"])
    net = lattice_nets.build_lattice_net(config, sde, generator=make_generator(0)).to(device)
    if contiguous:
        net.to(memory_format=torch.contiguous_format)
    if reference_padding:
        torch_padding(net)
    gen = make_generator(1, device)
    forward_batch = forward_batch or dms.cpu_batch(L)
    x = torch.randn(forward_batch, L, L, generator=gen, device=device)
    data = 0.5 * torch.randn(train_batch, L, L, generator=gen, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    @torch.no_grad()
    def forward():
        net(x, 0.5)

    def train_step():
        loss = losses.dsm_loss(net, sde, data, gen, 1e-5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"forward_per_config": _time(forward, max(2, repeat // 4)) / forward_batch,
            "train_step": _time(train_step, repeat),
            "parameters": sum(p.numel() for p in net.parameters())}


def against_authors(train_steps: int, forward_batch: int | None, device) -> None:
    """Print our quick T5 recipe against the authors' at equal generated sample size, measured in this run."""
    specs = dm.book_specs("quick")
    spec, sample = specs["k0.21"], specs["samples"]["k0.21"]
    L = spec.params.L
    ours = network_speed(spec.net, L, spec.train.batch_size, forward_batch, train_steps, device)
    theirs = network_speed(AUTHORS_NET, L, AUTHORS_BATCH, forward_batch, train_steps, device)
    print(f"[ours against the authors' recipe] L = {L}")
    for name, r, b in ((f"ours: U-Net {spec.net.channels}, odd", ours, spec.train.batch_size),
                       (f"authors': U-Net {AUTHORS_NET.channels}", theirs, AUTHORS_BATCH)):
        print(f"  {name:38s} {r['parameters']:>9,} parameters: {1 / r['forward_per_config']:7.1f} configurations/s "
              f"forward, {1 / r['train_step']:6.2f} training steps/s (batch {b})")
    print(f"  ratio ours / authors': forward {theirs['forward_per_config'] / ours['forward_per_config']:.1f}x, "
          f"training steps {theirs['train_step'] / ours['train_step']:.1f}x")
    n_gen = sample.n_samples
    ours_s = spec.train.n_steps * ours["train_step"] + n_gen * sample.score_evaluations * ours["forward_per_config"]
    theirs_s = (AUTHORS_TRAIN_STEPS * theirs["train_step"]
                + n_gen * AUTHORS_SAMPLER_STEPS * theirs["forward_per_config"])
    print(f"  T5 row, {n_gen} generated configurations: ours {spec.train.n_steps} training steps + "
          f"{sample.score_evaluations} score evaluations each = {ours_s / 60:.1f} min; authors' "
          f"{AUTHORS_TRAIN_STEPS} steps + {AUTHORS_SAMPLER_STEPS} = {theirs_s / 3600:.1f} h (extrapolated)")
    print(f"  ratio authors' / ours: {theirs_s / ours_s:.0f}")


def against_torch_padding(train_steps: int, forward_batch: int | None, device) -> None:
    """Print the quick T5 network with lib's circular padding against torch's own, measured in this run."""
    spec = dm.book_specs("quick")["k0.21"]
    L = spec.params.L
    ours = network_speed(spec.net, L, spec.train.batch_size, forward_batch, train_steps, device)
    torchs = network_speed(spec.net, L, spec.train.batch_size, forward_batch, train_steps, device,
                           reference_padding=True)
    print(f"[circular padding: lib's backward against torch's] U-Net {spec.net.channels}, L = {L}")
    for name, r in (("lib", ours), ("torch", torchs)):
        print(f"  {name:6s} {1 / r['forward_per_config']:7.1f} configurations/s forward, "
              f"{1 / r['train_step']:6.2f} training steps/s (batch {spec.train.batch_size})")
    print(f"  ratio lib / torch: forward {torchs['forward_per_config'] / ours['forward_per_config']:.2f}x, "
          f"training steps {torchs['train_step'] / ours['train_step']:.2f}x")


def against_contiguous_layout(train_steps: int, forward_batch: int | None, device) -> None:
    """Print the quick T5 network as lib builds it (channels-last weights, a padding that keeps the layout) against
    the same network in the contiguous layout with torch's circular padding (lib's network before the switch),
    measured in this run."""
    spec = dm.book_specs("quick")["k0.21"]
    L = spec.params.L
    ours = network_speed(spec.net, L, spec.train.batch_size, forward_batch, train_steps, device)
    ref = network_speed(spec.net, L, spec.train.batch_size, forward_batch, train_steps, device,
                        reference_padding=True, contiguous=True)
    print(f"[memory layout: channels-last against contiguous] U-Net {spec.net.channels}, L = {L}")
    for name, r in (("channels-last", ours), ("contiguous", ref)):
        print(f"  {name:13s} {1 / r['forward_per_config']:7.1f} configurations/s forward, "
              f"{1 / r['train_step']:6.2f} training steps/s (batch {spec.train.batch_size})")
    print(f"  ratio channels-last / contiguous: forward {ref['forward_per_config'] / ours['forward_per_config']:.2f}x, "
          f"training steps {ref['train_step'] / ours['train_step']:.2f}x")


def batch_scan(repeat: int, device) -> None:
    """Print the score evaluation of the quick T5 network per configuration at L = 16, 32, 64 and several batch
    sizes, against a batch of 256 (the book's generation batch before :func:`lib.recipes.pipelines.lattice_sampling.cpu_batch`)."""
    spec = dm.book_specs("quick")["k0.21"]
    sde = dmt.forward_sde(spec)
    net = lattice_nets.build_lattice_net(spec.net, sde, generator=make_generator(0)).to(device)
    print(f"[generation batch] U-Net {spec.net.channels}, one score evaluation, ms per configuration "
          f"(best of {repeat}); cpu_batch(L) is the recipes' batch")
    for L in (16, 32, 64):
        batches = sorted({16, 64, 256, dms.cpu_batch(L)})
        best = {}
        with torch.no_grad():
            for b in batches:
                x = torch.randn(b, L, L, generator=make_generator(1, device), device=device)
                n = max(1, 2**21 // (L * L * b))  # the same number of sites per timing
                best[b] = min(_time(lambda: [net(x, 0.5) for _ in range(n)], 1) for _ in range(repeat)) / (n * b)
        row = "  ".join(f"{b}: {1e3 * t:.2f}" for b, t in best.items())
        print(f"  L = {L:2d}  {row}  ->  cpu_batch = {dms.cpu_batch(L)}: "
              f"{best[256] / best[dms.cpu_batch(L)]:.2f}x the speed of batch 256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="both", choices=["quick", "paper", "both"])
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--sample-batch", type=int, default=None,
                        help="configurations per score evaluation (default: the book's, cpu_batch(L))")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--authors", action="store_true", help="also compare the quick T5 recipe with the authors'")
    parser.add_argument("--batch-scan", action="store_true",
                        help="score evaluations per configuration against the generation batch size")
    parser.add_argument("--layout", action="store_true",
                        help="also compare the channels-last network with the contiguous one on the quick T5 network")
    parser.add_argument("--padding", action="store_true",
                        help="also compare lib's circular padding with torch's own on the quick T5 network")
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
    if args.authors:
        against_authors(args.train_steps, args.sample_batch, torch.device(args.device))
    if args.padding:
        against_torch_padding(args.train_steps, args.sample_batch, torch.device(args.device))
    if args.layout:
        against_contiguous_layout(args.train_steps, args.sample_batch, torch.device(args.device))
    if args.batch_scan:
        batch_scan(3, torch.device(args.device))


if __name__ == "__main__":
    main()
