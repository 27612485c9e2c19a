"""Experiment (issue 31): fine-tuning a score on the path weight (lib.diffusion.path_training, log-variance loss).

Usage: exp_path_finetune.py START KAPPA L N_OPT BATCH K LR [SEED]
  START  ``base`` (the stored Gaussian-base U-Net of path_sampler, kappa = 0.21, L = 32 only), ``dsm`` (the stored
         DSM network of path_sampler's dm[kappa][L]), ``zero`` (a Gaussian base with a fresh U-Net correction
         whose last layer is zero: the free field to start) or ``force`` (lib.diffusion.force_score.ForceScore,
         p = 4, c = 1, with such a zero correction) or ``zeromode`` (``zero`` with the zero mode of the data, the
         3-component mixture of lib.diffusion.zero_mode as in path_sampler's ``score="zero-mode"``)
  KAPPA  ``k0.21``, ``k0.4`` or ``k0.27`` (the data of path_sampler's ``k0.27`` recipes: L = 16 at the quick scale)
Evaluates sd(log w), ESS/n, k-hat and the acceptance on N_EVAL (256) fresh paths (N = 100, posterior kernel) before
and after, and every EVAL_BLOCKS (1) blocks of 50 steps.  Environment NT: torch threads (1); N_EVAL; SAVE (a file for
the model's state after every block, resumed from if it exists).
"""
import os
import sys
import time

import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import lattice_nets, path_sampler as ps
from lib.diffusion.force_score import ForceScore
from lib.diffusion.mode_gaussian import GaussianBaseScore
from lib.diffusion.path_training import PathTrainConfig, train_on_path_weight
from lib.physics import phi4
from lib.physics.metropolis import independence_metropolis
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import lattice_training as lt, path_proposals as pp

torch.set_num_threads(int(os.environ.get("NT", "1")))
start_kind, kappa, L = sys.argv[1], sys.argv[2], int(sys.argv[3])
n_opt, batch, k, lr = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
seed = int(sys.argv[8]) if len(sys.argv) > 8 else 32000
specs = rp.book_specs("quick")
if start_kind == "base":
    dm = specs["base"]
elif kappa == "k0.27":
    dm = specs["k0.27"][L]
else:
    dm = specs["dm"][kappa][L]
n_eval = int(os.environ.get("N_EVAL", "256"))
sde = lt.forward_sde(dm)
x = lt.training_configs(dm)
norm = lt.normalisation(dm, x)
v = pp.data_mode_variance(dm)
if start_kind in ("zero", "force", "zeromode"):
    net = lattice_nets.build_lattice_net(dm.net, sde, generator=make_generator(seed))
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    if last.bias is not None:
        torch.nn.init.zeros_(last.bias)
    if start_kind == "force":
        model = ForceScore(sde, v, pp.phi4_residual(dm.params, norm, v), 4.0, 1.0, correction=net)
    else:
        model = GaussianBaseScore(net, sde, v)
    if start_kind == "zeromode":
        from lib.diffusion.zero_mode import ZeroModeMixture

        class _ZeroModeScore(torch.nn.Module):
            """The wrapped score with the zero mode of the data (its parameters: those of ``inner``)."""

            def __init__(self, inner):
                super().__init__()
                self.inner = inner
                self.fn = ZeroModeMixture.fit(norm.forward(x).to(torch.float64), 3).score_on(inner, sde, v)

            def forward(self, y, t):
                return self.fn(y, t)

        model = _ZeroModeScore(model)
else:
    model = lt.trained_model(dm)[0].sampling_model
params = dm.params


def action(y):
    return phi4.action(norm.inverse(y.to(torch.float64)), params, check=False)


grid = ps.geometric(sde, 100, 1e-4)


def evaluate(tag, eval_seed):
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        paths = ps.path_proposals(sde, lambda y, t: model(y.float(), t.float()).double(), grid, (L, L), n_eval,
                                  make_generator(eval_seed), mode_variance=v, batch=64)
    sec = (time.perf_counter() - t0) / n_eval
    log_w = -action(paths.x) - paths.log_q
    chain = independence_metropolis(paths.x, paths.log_q, action, make_generator(eval_seed + 1))
    print(f"[{tag}] sd(log w) {float(log_w.std()):.3f}  ESS/n {stats.importance_ess(log_w) / n_eval:.3f}  "
          f"k-hat {stats.pareto_k(log_w):.2f} (thr {stats.pareto_k_threshold(n_eval):.2f})  acceptance {chain.acceptance:.3f}  ({sec * 1e3:.0f} ms/path)", flush=True)


save = os.environ.get("SAVE")  # a file: the model's state after every block; an existing one is resumed
done = 0
if save and os.path.exists(save):
    state = torch.load(save)
    model.load_state_dict(state["model"])
    done = state["blocks"]
    print(f"resumed from {save} after {50 * done} steps", flush=True)
else:
    evaluate("start", seed + 1)
config = PathTrainConfig(n_steps=50, batch=batch, transitions=k, lr=lr)
every = int(os.environ.get("EVAL_BLOCKS", "1"))
for block in range(done, n_opt // 50):
    g = make_generator(seed + 2 + 1000 * block)  # one generator per block: a resumed run draws what it would have
    model.train()
    res = train_on_path_weight(model, sde, grid, action, (L, L), config, g, mode_variance=v)
    print(f"steps {50 * block + 1}-{50 * (block + 1)}: mean sd(log w) of the training paths "
          f"{float(res.sd_log_w.mean()):.3f}, {res.wall_time / 50:.2f} s/step", flush=True)
    if save:
        torch.save({"model": model.state_dict(), "blocks": block + 1}, save)
    if (block + 1) % every == 0 or block + 1 == n_opt // 50:
        evaluate(f"after {50 * (block + 1)}", seed + 10 + block)
