"""Recipes of :doc:`/book/part1/score_matching`: the backward process of the two-peak model with its exact score.

The authors' sampler (:func:`lib.diffusion.solvers.backward_em`: 1000 Euler-Maruyama steps to :math:`t = 10^{-3}`)
from samples of the exact :math:`p(x, T)` or of the prior, recording the moments :math:`\\langle x^n\\rangle`,
:math:`n = 1..8`, every 10 steps.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from lib.core.random import make_generator
from lib.diffusion import grids, solvers
from lib.infra.cache import ArtefactCache
from lib.recipes.pipelines.toy_dm import moment_records

__all__ = ["STARTS", "Sizes", "sizes", "exact_score_backward"]

#: where the backward process starts
STARTS = ("exact p(x,T)", "prior")


class Sizes(NamedTuple):
    """Sample sizes of the chapter at one scale."""

    n_loss: int  # samples of the loss-gradient test
    n_gen: int  # trajectories of each backward run


def sizes(scale: str) -> Sizes:
    """The chapter's sizes at ``scale`` ("quick" or "paper")."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    return Sizes(4_000_000, 1_000_000) if scale == "paper" else Sizes(400_000, 200_000)


def exact_score_backward(sde, target, start: str, n: int, seed: int, device="cpu",
                         cache: ArtefactCache | None = None) -> dict:
    """The backward process with the exact score of ``target`` from ``start`` (cached): ``x`` (the end samples),
    ``t`` and ``mu`` (the records of :func:`lib.recipes.pipelines.toy_dm.moment_records`)."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        if start == "exact p(x,T)":
            xT = sde.sample_marginal(target.sample((n,), generator=g, device=device), sde.T, g)[0]
        else:
            xT = sde.prior_sample((n,), generator=g, device=device, dtype=torch.float64)
        run = solvers.backward_em(sde, target.score_fn(sde), xT, grids.uniform_evaluations(sde, 1000), g, record_every=10,
                                  observe=moment_records)
        return {"x": run.x, "t": run.t, "mu": run.records["mu"]}

    params = dict(target=target, sde=sde, start=start, n=n, n_steps=1000, t_end=1e-3, seed=seed)
    return cache.get_or_compute("two-peak-exact-score-backward", params, compute, seed=seed, code=__name__)
