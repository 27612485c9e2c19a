r"""Recipes of :doc:`/book/part2/gaussian_target`: the backward process of a Gaussian target with its exact score.

For the target :math:`\mathcal N(0, v_0)` the forward variance is :math:`v(t) = v_0 f^2(t, 0) + \Xi(t)`
(:func:`forward_variance`) and the exact score is linear, :math:`s(x, t) = -x / v(t)`.
"""
from __future__ import annotations

import torch

from lib.core.random import make_generator
from lib.diffusion import grids, solvers
from lib.infra.cache import ArtefactCache

__all__ = ["forward_variance", "backward_variance", "second_moments", "backward_second_moments"]


def forward_variance(sde, t, v0: float):
    r""":math:`v(t) = v_0 f^2(t, 0) + \Xi(t)` (eq. ``eq-gt-forward``)."""
    return v0 * sde.f(t) ** 2 + sde.xi(t)


def backward_variance(sde, t, var_start: float, v0: float):
    r"""Variance of the exact backward process started with variance ``var_start``, at forward time ``t``
    (eq. ``eq-gt-solution``): :math:`v(t) + [V_T - v(T)]\, F^2`, :math:`F = f(T, t)\, v(t) / v(T)`."""
    F = sde.f(sde.T, t) * forward_variance(sde, t, v0) / forward_variance(sde, sde.T, v0)
    return forward_variance(sde, t, v0) + (var_start - forward_variance(sde, sde.T, v0)) * F**2


def second_moments(x: torch.Tensor, t=None) -> dict:
    """``mu2`` and ``mu4`` of a batch (double precision): the records of :func:`backward_second_moments` (an observer
    of :mod:`lib.core.recording`; ``t``, the record's time, is not used)."""
    x = x.double()
    return {"mu2": (x**2).mean(), "mu4": (x**4).mean()}


def backward_second_moments(sde, v0: float, n_traj: int, n_steps: int, seed: int, record_every: int = 10,
                            device="cpu", cache: ArtefactCache | None = None) -> dict:
    """The authors' sampler (float32) from the prior with the exact score of :math:`\\mathcal N(0, v_0)`, recording
    :func:`second_moments` every ``record_every`` steps (cached): ``t``, ``mu2``, ``mu4``."""
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        xT = sde.prior_sample((n_traj,), generator=g, device=device, dtype=torch.float32)
        score = lambda x, t: -x / forward_variance(sde, t[:1], v0)  # noqa: E731
        run = solvers.backward_em(sde, score, xT, grids.uniform_evaluations(sde, n_steps), g, observe=second_moments,
                                  record_every=record_every)
        return {"t": run.t, **run.records}

    params = dict(sde=sde, v0=v0, start="prior", n=n_traj, n_steps=n_steps, t_end=1e-3, dtype="float32",
                  record_every=record_every, seed=seed)
    return cache.get_or_compute("gaussian-target-backward", params, compute, seed=seed, code=__name__)
