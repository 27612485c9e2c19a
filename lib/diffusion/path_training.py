r"""Training a score on the path weight itself: the log-variance loss on paths of the backward process.

The path weight of :mod:`lib.diffusion.path_sampler`,
:math:`\log w = -S(x_0) + \log q(x_{1:N} \mid x_0) - \log p_\theta(x_{0:N})`, is the same number :math:`\log Z` for
every path exactly when the backward process :math:`p_\theta` is the forward process started at the target. The
log-variance loss (Richter et al. 2020, "VarGrad"; Nüsken and Richter 2021)

.. math::

    \mathcal L(\theta) = \mathrm{Var}_{\text{paths}}\big[\log w_\theta\big]

vanishes there and nowhere else. Its gradient needs no backpropagation through the solver: the paths are drawn from
the current model and then held fixed (they are data; any path distribution with full support has the same
minimum), and only the Gaussian transition log-densities :math:`\log p_\theta(x_{k-1} \mid x_k)` depend on
:math:`\theta`, through the score at :math:`(x_k, t_k)` (:func:`lib.diffusion.path_sampler.path_log_prob`).  With
:math:`c_i = 2(\log w_i - \overline{\log w})/B`,

.. math::

    \nabla_\theta \mathcal L = -\sum_i c_i\, \nabla_\theta \log p_\theta(\text{path}_i),

estimated without bias from a random subset of the transitions of each step (scaled by :math:`N/K`).  This is how
the Stochastic Path Sampler trains; here it fine-tunes a network trained first by denoising score matching.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lib.core.checks import require_int, require_positive
from lib.core.random import require_generator
from lib.diffusion.grids import TimeGrid
from lib.diffusion.path_sampler import KERNELS, path_log_prob, path_proposals
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["PathTrainConfig", "PathTrainResult", "train_on_path_weight"]


@dataclass(frozen=True)
class PathTrainConfig:
    """Settings of :func:`train_on_path_weight`."""

    n_steps: int = 200  # optimisation steps
    batch: int = 32  # paths drawn per step
    transitions: int = 20  # transitions per path in each gradient (a random subset of the grid's, unbiased)
    lr: float = 1e-4  # Adam's learning rate
    clip: float = 1.0  # the gradient's norm is clipped to this

    def __post_init__(self):
        for name, lo in (("n_steps", 1), ("batch", 2), ("transitions", 1)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        object.__setattr__(self, "lr", require_positive(self.lr, "lr"))
        object.__setattr__(self, "clip", require_positive(self.clip, "clip"))


@dataclass
class PathTrainResult:
    """What :func:`train_on_path_weight` returns: the per-step spread of the path weights (of the paths each step drew
    from the model before its update) and the wall time."""

    sd_log_w: torch.Tensor  # (n_steps,) standard deviation of log w of the step's paths
    wall_time: float


def train_on_path_weight(model: nn.Module, sde: LinearDriftSDE, grid: TimeGrid, action: Callable, shape: tuple,
                         config: PathTrainConfig, generator: torch.Generator, kernel: str = "posterior",
                         mode_variance=None, progress: Callable | None = None) -> PathTrainResult:
    r"""Minimise the variance of the path log-weight of ``model`` (a score network ``model(x, t)``) in place.

    ``action(x)`` is the target's action on the network's variables (float64, ``(B,)``; a constant offset does not
    matter), ``grid``, ``kernel`` and ``mode_variance`` those of :func:`lib.diffusion.path_sampler.path_proposals`.
    Paths and the subsets of transitions are drawn with ``generator``; ``progress(step, sd_log_w)`` (optional) is
    called after every step.
    """
    require_generator(generator)
    if not isinstance(config, PathTrainConfig):
        raise ValueError(f"config must be a PathTrainConfig, got {type(config).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    n_trans = int(grid.t.numel()) - 1
    k = min(config.transitions, n_trans)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = torch.optim.Adam(params, lr=config.lr)
    dtype = next(iter(params)).dtype

    def score(x, t):
        return model(x.to(dtype), t.to(dtype)).to(x.dtype)

    sds = torch.empty(config.n_steps, dtype=torch.float64)
    start = time.perf_counter()
    for step in range(config.n_steps):
        paths = path_proposals(sde, score, grid, shape, config.batch, generator, kernel=kernel,
                               mode_variance=mode_variance, batch=config.batch, keep_states=True)
        log_w = -torch.as_tensor(action(paths.x), dtype=torch.float64).reshape(-1) - paths.log_q
        if not bool(torch.isfinite(log_w).all()):
            raise ValueError(f"train_on_path_weight: non-finite path weights at step {step}")
        sds[step] = log_w.std()
        c = 2.0 * (log_w - log_w.mean()) / config.batch
        subset = torch.randperm(n_trans, generator=generator, device=generator.device)[:k].tolist()
        opt.zero_grad(set_to_none=True)
        lp = path_log_prob(sde, score, grid, paths.states, kernel, mode_variance, steps=subset) * (n_trans / k)
        surrogate = -(c.to(lp.device) * lp).sum()
        surrogate.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        opt.step()
        if progress is not None:
            progress(step, float(sds[step]))
    return PathTrainResult(sds, time.perf_counter() - start)
