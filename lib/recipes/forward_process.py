"""Recipes of :doc:`/book/part1/forward_process`: Euler-Maruyama runs of the forward process, cached.

Two kinds of run: from the two-peak target, recording the second and fourth moments; from the point
:math:`x_0 = 1`, recording the samples themselves (the transition kernel).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from lib.core.random import make_generator
from lib.diffusion import grids, solvers
from lib.infra.cache import ArtefactCache

__all__ = ["STARTS", "Sizes", "sizes", "forward_run"]

#: what a run starts from -> what it records
STARTS = {
    "two-peak": lambda x, t: {"mu2": (x**2).mean(), "mu4": (x**4).mean()},  # moments only
    "x0 = 1": lambda x, t: {"x": x},  # the samples themselves
}


class Sizes(NamedTuple):
    """Run sizes of the chapter at one scale."""

    n_samples: int  # trajectories started from the target
    n_steps: int  # Euler-Maruyama steps from t = 0 to T
    n_kernel: int  # trajectories started from x0 = 1


def sizes(scale: str) -> Sizes:
    """The chapter's sizes at ``scale`` ("quick" or "paper")."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    paper = scale == "paper"
    return Sizes(n_samples=1_000_000 if paper else 60_000, n_steps=20_000 if paper else 10_000,
                 n_kernel=500_000 if paper else 40_000)


def forward_run(sde, target, start: str, n: int, n_steps: int, record_every: int, seed: int, device="cpu",
                cache: ArtefactCache | None = None) -> dict:
    """:func:`lib.diffusion.solvers.forward_em` of ``n`` trajectories from ``start`` (a key of :data:`STARTS`),
    cached: ``t`` and the records of that start."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {sorted(STARTS)}, got {start!r}")
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        if start == "two-peak":
            x0 = target.sample((n,), generator=g, device=device)
        else:
            x0 = torch.ones(n, dtype=torch.float64, device=device)
        tr = solvers.forward_em(sde, x0, grids.uniform_states(sde, n_steps, 0.0), g, observe=STARTS[start],
                                record_every=record_every)
        return {"t": tr.t, **tr.records}

    params = dict(target=target, sde=sde, start=start, n=n, n_steps=n_steps, record_every=record_every, seed=seed)
    return cache.get_or_compute("forward-em", params, compute, seed=seed, code=__name__)
