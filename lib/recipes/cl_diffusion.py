r"""Recipes of :doc:`/book/part4/cl_diffusion`: diffusion models trained on the complex Langevin samples, cached.

The data are the pairs :math:`(x, y)` of the main CL runs (:func:`lib.recipes.complex_langevin.main_run`); the network
sees :math:`u = (x, y)/a` with the stretch :math:`a = (1, \mathrm{std}(y)/\mathrm{std}(x))` (:func:`stretch_of`), so
that both directions are equally wide; the stretch is stored with the weights.  The forward process is VE with
:math:`\sigma = 10` (:data:`SCHEME`); samples are generated with the authors' sampler and mapped back to
:math:`(x, y) = a u`.  Only this chapter trains on CL data, so its networks are recipes of this module (which names
itself, and through its imports the CL runs, as the code of its artefacts).
"""
from __future__ import annotations

import dataclasses

import torch

from lib.core.random import make_generator
from lib.diffusion import grids, nets, sde, solvers, training
from lib.infra.cache import ArtefactCache
from lib.recipes import complex_langevin
from lib.recipes.pipelines.trained_networks import NetworkRecipe, trained as _trained

__all__ = ["SCHEME", "NET", "TRAIN_SEEDS", "N_STEPS", "MODEL_NAMES", "train_config", "uniform_times_constant_rate",
           "n_generated", "stretch_of", "network", "trained", "learned_score", "generated", "networks"]

#: the forward process
SCHEME = sde.ve(sigma=10.0)
#: the score network
NET = nets.MLPConfig(dim=2, hidden=(64, 64, 64), embed_dim=128, activation="leaky_relu")
#: seeds of the networks' initial weights and training, by model
TRAIN_SEEDS = {"gauss": 301, "quartic": 302}
#: steps of the authors' sampler
N_STEPS = 1000
#: the models whose CL samples the networks learn (lib.recipes.complex_langevin.MODELS)
MODEL_NAMES = ("gauss", "quartic")


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


def network(name: str, scale: str, config: training.TrainConfig, device="cpu",
            cache: ArtefactCache | None = None) -> NetworkRecipe:
    """The network for model ``name`` trained with ``config`` on the main CL run of ``name`` at ``scale`` (run on
    ``device``), in the stretched coordinates; the stretch is stored with the weights (``inputs["stretch"]``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")

    def data(generator):  # the data are the CL run itself: no randomness is drawn here
        xy = complex_langevin.main_run(name, scale, device=device, cache=cache)["xy"].reshape(-1, 2)
        a = stretch_of(xy)
        return xy / torch.tensor(a), {"stretch": a}

    params = {"net": NET, "data": complex_langevin.main_run_params(name, scale, device),
              "stretch": "(1, std(y)/std(x))"}
    return NetworkRecipe("cl-diffusion-score", params, SCHEME, config, TRAIN_SEEDS[name], code=__name__,
                         build=lambda g: nets.build_mlp(NET, SCHEME, generator=g), data=data)


def trained(name: str, scale: str, config: training.TrainConfig, device="cpu",
            cache: ArtefactCache | None = None) -> training.TrainResult:
    """The network of :func:`network` from the store of trained networks or the artefact cache, else trained now."""
    return _trained(network(name, scale, config, device, cache), cache, device=device)


def learned_score(result: training.TrainResult):
    """The score of a trained network in the original coordinates (x, y) = a u (a: ``result.inputs["stretch"]``)."""
    return nets.rescaled_score_fn(nets.score_fn(result.sampling_model, chunk_size=None), result.inputs["stretch"])


def generated(name: str, scale: str, config: training.TrainConfig, n: int, seed: int, device="cpu",
              cache: ArtefactCache | None = None) -> dict:
    """``n`` samples of the authors' sampler with the learned score of :func:`trained`, mapped back to
    (x, y) = a u (cached): ``xy`` and ``wall_time`` (of the run that produced them)."""
    cache = ArtefactCache() if cache is None else cache
    recipe = network(name, scale, config, device, cache)

    def compute():
        result = _trained(recipe, cache, device=device)
        g = make_generator(seed, device)
        u_T = SCHEME.prior_sample((n, 2), generator=g, device=device, dtype=torch.float32)
        run = solvers.backward_em(SCHEME, nets.score_fn(result.sampling_model), u_T, grids.uniform_evaluations(SCHEME, N_STEPS),
                                  g)
        return {"xy": run.x.cpu() * torch.tensor(result.inputs["stretch"])}

    params = dict(network=recipe.key_params(), n=n, n_steps=N_STEPS, t_end=1e-3, noise_last=False, weights="ema",
                  seed=seed)
    out = cache.get_or_compute("cl-diffusion-samples", params, compute, seed=seed, code=__name__)
    return {**out, "wall_time": cache.provenance("cl-diffusion-samples", params, code=__name__)["wall_time"]}


def networks(scale: str, device="cpu") -> dict:
    """The trained networks of the chapter at ``scale`` on CL data run on ``device``, by name: the main model of each
    CL model, and the Gaussian model trained with the authors' recipe and with ours at the quick-scale budget (the
    comparison of the two recipes); what the store must hold."""
    quick = train_config("quick")
    out = {name: network(name, scale, train_config(scale), device) for name in MODEL_NAMES}
    out["gauss, authors' recipe"] = network("gauss", scale, uniform_times_constant_rate(quick), device)
    out["gauss, our recipe at the quick budget"] = network("gauss", scale, quick, device)
    return out
