"""Experiment (issue 12 item 2): one training step and one score evaluation of the quick T5 network (U-Net (8, 16, 32),
L = 32, training batch 32, forward batch 64, one thread) in eager mode, under bf16 autocast and under torch.compile.

Usage: probe_compile_bf16.py eager|bf16|compile
"""
import time, sys, torch
from lib.diffusion import lattice_nets, losses
from lib.recipes import phi4_diffusion as dm
from lib.core.random import make_generator
torch.set_num_threads(1)
mode = sys.argv[1]
spec = dm.book_specs("quick")["k0.21"]
sde = dm.forward_sde(spec); L = spec.params.L
net = lattice_nets.build_lattice_net(spec.net, sde, generator=make_generator(0))
gen = make_generator(1)
data = 0.5*torch.randn(spec.train.batch_size, L, L, generator=gen)
x = torch.randn(64, L, L, generator=gen)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
lossfn = losses.dsm_loss
def step():
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = lossfn(net, sde, data, gen, 1e-5)
    else:
        loss = lossfn(net, sde, data, gen, 1e-5)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
fwd_net = net
if mode == "compile":
    fwd_net = torch.compile(net)
    cnet = fwd_net
    def step():
        loss = lossfn(cnet, sde, data, gen, 1e-5)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
@torch.no_grad()
def fwd():
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fwd_net(x, 0.5)
    else:
        fwd_net(x, 0.5)
t0=time.perf_counter(); step(); step(); print(mode, "warm train", time.perf_counter()-t0, flush=True)
t0=time.perf_counter()
for _ in range(10): step()
print(mode, "train step s", (time.perf_counter()-t0)/10, flush=True)
t0=time.perf_counter(); fwd(); fwd(); print(mode,"warm fwd", time.perf_counter()-t0)
t0=time.perf_counter()
for _ in range(5): fwd()
print(mode, "fwd per config ms", (time.perf_counter()-t0)/5/64*1e3)
