"""Recipes of :doc:`/book/part2/cumulants`: forward runs recording batch moments, and exact ensembles of
:math:`p(x, T)` for the scaling of the cumulants' noise, cached."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from lib import stats
from lib.core.random import make_generator
from lib.diffusion import grids, solvers
from lib.infra.cache import ArtefactCache

__all__ = ["N_BATCHES", "Sizes", "sizes", "batch_moments", "forward_batch_moments", "nested_ensembles_at_T"]

#: independent batches of trajectories whose moments are recorded (for jackknife errors)
N_BATCHES = 100


class Sizes(NamedTuple):
    """Sample sizes of the chapter at one scale."""

    n_traj: int  # trajectories of each forward run
    n_steps: int  # Euler-Maruyama steps of each forward run
    n0: int  # smallest ensemble of the scaling study (then 4 n0 and 16 n0)
    n_rep: int  # ensembles of 16 n0 samples


def sizes(scale: str) -> Sizes:
    """The chapter's sizes at ``scale`` ("quick" or "paper")."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    if scale == "paper":
        return Sizes(n_traj=1_000_000, n_steps=20_000, n0=62_500, n_rep=64)
    return Sizes(n_traj=100_000, n_steps=5_000, n0=12_500, n_rep=64)


def batch_moments(x: torch.Tensor, t=None) -> dict:
    """Raw moments mu_0..mu_8 of each of :data:`N_BATCHES` batches of trajectories, ``(N_BATCHES, 9)``, in double
    precision (an observer of :mod:`lib.core.recording`; ``t``, the record's time, is not used)."""
    xb = x.reshape(N_BATCHES, -1).double()
    return {"mu": torch.stack([(xb**n).mean(dim=1) for n in range(9)], dim=1)}


def forward_batch_moments(sde, target, n_traj: int, n_steps: int, seed: int, device="cpu",
                          cache: ArtefactCache | None = None) -> dict:
    """Forward Euler-Maruyama run (float32 trajectories) from ``target``, recording :func:`batch_moments` every
    ``n_steps // 40`` steps (cached): ``t`` and ``mu`` ``(n_records, N_BATCHES, 9)``."""
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        x0 = target.sample((n_traj,), generator=g, dtype=torch.float32, device=device)
        tr = solvers.forward_em(sde, x0, grids.uniform_states(sde, n_steps, 0.0), g, observe=batch_moments,
                                record_every=n_steps // 40)
        return {"t": tr.t, "mu": tr.records["mu"]}

    params = dict(target=target, sde=sde, n=n_traj, n_steps=n_steps, n_batches=N_BATCHES, dtype="float32", seed=seed)
    return cache.get_or_compute("cumulants-forward-em", params, compute, seed=seed, code=__name__)


def nested_ensembles_at_T(sde, target, sizes_: list, n_rep: int, seed: int, device="cpu",
                          cache: ArtefactCache | None = None) -> dict:
    """Cumulants of independent exact ensembles of :math:`p(x, T)`, nested (cached): each of the ``n_rep`` ensembles
    of ``sizes_[-1]`` samples is also split into ensembles of each smaller size.  ``kappa_<n>``: ``(9, number of
    ensembles of n samples)``."""
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        out = {n: [] for n in sizes_}
        for _ in range(n_rep):
            xT = sde.sample_marginal(target.sample((sizes_[-1],), generator=g, device=device), sde.T, g)[0]
            for n in sizes_:
                out[n].append(stats.cumulants(xT.reshape(-1, n), 8, axis=1))  # (9, sizes_[-1] / n)
        return {f"kappa_{n}": np.concatenate(out[n], axis=1) for n in sizes_}

    params = dict(target=target, sde=sde, t=sde.T, sizes=sizes_, n_rep=n_rep, nested=True, seed=seed)
    return cache.get_or_compute("cumulants-ve-ensembles", params, compute, seed=seed, code=__name__)
