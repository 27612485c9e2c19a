import math, torch
from lib.diffusion import sde as S, solvers, grids
torch.set_num_threads(1)
sde = S.ve(25.0)


def heun_error(v: float, n: int, probability_flow: bool = False) -> float:
    """Relative variance error of a Gaussian mode of variance v after n Heun steps on the Karras grid, exact score."""
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(100000, 1, generator=g, dtype=torch.float64) * math.sqrt(float(sde.xi(1.0)) + v)
    out = solvers.backward_solve(sde, lambda x, t: -x / (v + sde.xi(t).to(x.dtype)[:, None]), x_T,
                                 grids.karras(sde, n, 1e-4), generator=g, probability_flow=probability_flow)
    return float(out.x.var()) / (v + float(sde.xi(1e-4))) - 1


for v in (0.05, 0.1, 0.2, 1.0):
    print(v, " ".join(f"{heun_error(v, n):+.4f}" for n in (10, 20, 30, 50, 100)))
print("probability flow, Heun, Karras")
for v in (0.02, 0.05, 0.1, 0.2, 1.0):
    print(v, " ".join(f"{heun_error(v, n, probability_flow=True):+.4f}" for n in (10, 15, 20, 30, 50)))
from lib.diffusion.flow_map import flow_step
print("probability flow, Heun in Karras variables (flow_step)")
for v in (0.02, 0.05, 0.1, 0.2, 1.0):
    row = []
    for n in (8, 10, 15, 20, 30):
        g = torch.Generator().manual_seed(1)
        x = torch.randn(100000, 1, generator=g, dtype=torch.float64) * math.sqrt(float(sde.xi(1.0)) + v)
        t = grids.karras(sde, n, 1e-4).t.tolist()
        sc = lambda x, tt: -x / (v + sde.xi(tt).to(x.dtype)[:, None])
        for a, b in zip(t[:-1], t[1:]):
            x = flow_step(sde, sc, x, a, b)
        row.append(float(x.var()) / (v + float(sde.xi(1e-4))) - 1)
    print(v, " ".join(f"{r:+.4f}" for r in row))
