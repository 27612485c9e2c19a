"""Recipes of :doc:`/book/part1/stochastic_quantisation`: Langevin chains of a one-dimensional action, cached.

:func:`sizes` gives the chapter's run sizes at a scale, :func:`langevin_moments` one cached run at a step size.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache
from lib.physics import langevin

__all__ = ["ORDERS", "Sizes", "sizes", "langevin_moments"]

#: the recorded powers of x, by name
ORDERS = {"x2": 2, "x4": 4, "x6": 6}


class Sizes(NamedTuple):
    """Run sizes of the chapter at one scale."""

    n_chains: int  # independent chains run at once
    langevin_time: float  # measured Langevin time per chain
    steps: tuple  # step sizes of the scan
    record_time: float  # Langevin time between records
    therm_time: float  # Langevin time of thermalisation (not recorded)


def sizes(scale: str) -> Sizes:
    """The chapter's sizes at ``scale`` ("quick" or "paper")."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    paper = scale == "paper"
    return Sizes(n_chains=20_000 if paper else 2_000, langevin_time=1000.0 if paper else 200.0,
                 steps=(0.01, 0.02, 0.05, 0.1), record_time=0.1, therm_time=10.0)


def langevin_moments(action, eps: float, seed: int, size: Sizes, device="cpu",
                     cache: ArtefactCache | None = None) -> dict:
    """Chains of :func:`lib.physics.langevin.langevin` for ``action`` at step ``eps``, started at 0 (cached).

    Returns the averages of :data:`ORDERS` (``mean``) with errors from the integrated autocorrelation time
    (``err``, :func:`lib.stats.mean_error`), the final states ``x_final`` and ``tau_x2`` of :math:`x^2` in records.
    """
    cache = ArtefactCache() if cache is None else cache

    def compute():
        run = langevin.langevin(
            action.force, torch.zeros(size.n_chains, dtype=torch.float64, device=device), step=eps,
            n_steps=int(round(size.langevin_time / eps)), generator=make_generator(seed, device),
            n_therm=int(round(size.therm_time / eps)), record_every=max(1, int(round(size.record_time / eps))),
            observe=lambda x, t: {name: x**n for name, n in ORDERS.items()},
        )
        series = {name: run.records[name].cpu().numpy() for name in ORDERS}  # (records, chains)
        mean_err = np.array([stats.mean_error(series[name], layout="draws, chains") for name in ORDERS])
        return {"mean": mean_err[:, 0], "err": mean_err[:, 1], "x_final": run.x.cpu(),
                "tau_x2": stats.tau_int(series["x2"], layout="draws, chains").tau}

    params = dict(action=action, eps=eps, chains=size.n_chains, time=size.langevin_time, therm=size.therm_time,
                  record_time=size.record_time, orders=list(ORDERS.values()), seed=seed)
    return cache.get_or_compute("langevin-moments", params, compute, seed=seed, code=__name__)
