r"""Recipes of :doc:`/book/part4/cl_diffusion`: diffusion models trained on the complex Langevin samples, cached.

The data are the pairs :math:`(x, y)` of the main CL runs (:func:`lib.recipes.complex_langevin.main_run`); the network
sees :math:`u = (x, y)/a` with the stretch :math:`a = (1, \mathrm{std}(y)/\mathrm{std}(x))` (:func:`stretch_of`), so
that both directions are equally wide; the forward process is VE with :math:`\sigma = 10`
(:data:`SCHEME`); samples are generated with the authors' sampler and mapped back to :math:`(x, y) = a u`.
"""
from __future__ import annotations

import dataclasses

import torch

from lib.core.random import make_generator
from lib.diffusion import nets, sde, solvers, training
from lib.infra.cache import ArtefactCache
from lib.recipes.cached_training import trained_score_model

__all__ = ["SCHEME", "NET", "TRAIN_SEEDS", "N_STEPS", "train_config", "uniform_times_constant_rate", "n_generated",
           "stretch_of", "learned_score", "trained", "generated"]

#: the forward process
SCHEME = sde.ve(sigma=10.0)
#: the score network
NET = nets.MLPConfig(dim=2, hidden=(64, 64, 64), embed_dim=128, activation="leaky_relu")
#: seeds of the networks' initial weights and training, by model
TRAIN_SEEDS = {"gauss": 301, "quartic": 302}
#: steps of the authors' sampler
N_STEPS = 1000


def train_config(scale: str) -> training.TrainConfig:
    """Ours: mixture of uniform and log-uniform times, cosine learning rate; quick: 2e4 steps at 1e-3, paper: the
    authors' 200 epochs at 1e-4."""
    if scale == "quick":
        return training.TrainConfig(n_steps=20_000, lr=1e-3, batch_size=512, augment_flip=True, ema_decay=0.999,
                                    t_sampling="mixture", lr_schedule="cosine")
    if scale == "paper":
        return training.TrainConfig(epochs=200, lr=1e-4, batch_size=512, augment_flip=True, ema_decay=0.999,
                                    t_sampling="mixture", lr_schedule="cosine")
    raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")


def uniform_times_constant_rate(config: training.TrainConfig) -> training.TrainConfig:
    """``config`` with the authors' choices instead of ours: uniform times, constant learning rate."""
    return dataclasses.replace(config, t_sampling="uniform", lr_schedule="constant")


def n_generated(scale: str) -> int:
    """Generated samples per model: 1e5 (quick), 1e6 (paper, the authors' number)."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    return 1_000_000 if scale == "paper" else 100_000


def stretch_of(xy: torch.Tensor) -> list:
    """a = (1, std(y) / std(x)) of samples ``xy`` (N, 2): the network sees u = (x, y) / a."""
    sd = xy.double().std(dim=0)
    return [1.0, float(sd[1] / sd[0])]


def learned_score(result: training.TrainResult, a):
    """The score of a trained network in the original coordinates (x, y) = a u."""
    return nets.rescaled_score_fn(nets.score_fn(result.sampling_model, chunk_size=None), a)


def trained(name: str, data: dict, a, config: training.TrainConfig, device="cpu",
            cache: ArtefactCache | None = None) -> training.TrainResult:
    """The network for model ``name`` trained on the CL run ``data`` (a :func:`lib.recipes.complex_langevin.run`
    result) in the stretched coordinates, cached."""
    xy = data["xy"].reshape(-1, 2)
    return trained_score_model(
        ArtefactCache() if cache is None else cache, "cl-diffusion-score",
        {"net": NET, "data": data["params"], "n_data": int(xy.shape[0]), "stretch": a}, SCHEME,
        build=lambda g: nets.build_mlp(NET, SCHEME, generator=g), data_fn=lambda g: xy / torch.tensor(a),
        config=config, seed=TRAIN_SEEDS[name], device=device)


def generated(name: str, data: dict, result: training.TrainResult, a, config: training.TrainConfig, n: int,
              seed: int, device="cpu", cache: ArtefactCache | None = None) -> dict:
    """``n`` samples of the authors' sampler with the learned score, mapped back to (x, y) = a u (cached): ``xy`` and
    ``wall_time`` (of the run that produced them)."""
    cache = ArtefactCache() if cache is None else cache

    def compute():
        g = make_generator(seed, device)
        u_T = SCHEME.prior_sample((n, 2), generator=g, device=device, dtype=torch.float32)
        run = solvers.backward_em(SCHEME, nets.score_fn(result.sampling_model), u_T, n_steps=N_STEPS, generator=g)
        return {"xy": run.x.cpu() * torch.tensor(a)}

    params = dict(data=data["params"], sde=SCHEME, net=NET, train=config, train_seed=TRAIN_SEEDS[name],
                  stretch=a, n=n, n_steps=N_STEPS, t_end=1e-3, noise_last=False, weights="ema", seed=seed)
    out = cache.get_or_compute("cl-diffusion-samples", params, compute, seed=seed)
    return {**out, "wall_time": cache.provenance("cl-diffusion-samples", params)["wall_time"]}
