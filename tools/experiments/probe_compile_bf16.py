"""Experiment (issue 12 item 2): one training step and one score evaluation of the quick T5 network (U-Net (8, 16, 32),
L = 32, training batch 32, forward batch 64, one thread) in eager mode, under bf16 autocast and under torch.compile.

Usage: probe_compile_bf16.py eager|bf16|compile
"""
import contextlib
import sys
import time

import torch

from lib.core.random import make_generator
from lib.diffusion import lattice_nets, losses
from lib.recipes import phi4_diffusion as dm

from lib.recipes.pipelines import lattice_training as dmt
torch.set_num_threads(1)
mode = sys.argv[1]
if mode not in ("eager", "bf16", "compile"):
    raise SystemExit(f"mode must be eager, bf16 or compile, got {mode!r}")
spec = dm.book_specs("quick")["k0.21"]
sde, L = dmt.forward_sde(spec), spec.params.L
net = lattice_nets.build_lattice_net(spec.net, sde, generator=make_generator(0))
model = torch.compile(net) if mode == "compile" else net
gen = make_generator(1)
data = 0.5 * torch.randn(spec.train.batch_size, L, L, generator=gen)
x = torch.randn(64, L, L, generator=gen)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)


def precision():
    return torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()


def step():
    with precision():
        loss = losses.dsm_loss(model, sde, data, gen, 1e-5)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.no_grad()
def forward():
    with precision():
        model(x, 0.5)


for name, fn, repeat, per in (("training step, s", step, 10, 1), ("forward per configuration, ms", forward, 5, 64 / 1e3)):
    t0 = time.perf_counter()
    fn(), fn()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    print(f"{mode}: {name} {(time.perf_counter() - t0) / repeat / per:.3f} (warm-up {warm:.1f} s)", flush=True)
