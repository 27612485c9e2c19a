r"""The toy-model diffusion model: a score MLP trained on samples of a Gaussian mixture, and the moments recorded along
a one-dimensional run.

:class:`MixtureNetSpec` (cache kind ``"mixture-score"``, every field part of the key) is the network of
:doc:`/book/part2/two_peak` (and of the effective-action flow of :doc:`/book/part1/diffusion_as_sq`): an MLP
(:func:`lib.diffusion.nets.build_mlp`) trained by denoising score matching on ``n_data`` samples of the target.
:func:`moment_records` is the recorder of the one-dimensional backward and forward runs of Parts I and II.  Nothing is
computed at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lib.core.checks import require_int
from lib.diffusion import nets, training
from lib.diffusion.sde import LinearDriftSDE
from lib.infra.cache import ArtefactCache
from lib.physics.toy import GaussianMixture
from lib.recipes.pipelines.trained_networks import NetworkRecipe, trained as _trained

__all__ = ["KIND_WEIGHTS", "MixtureNetSpec", "network", "trained", "moment_records"]

#: cache kind of the trained weights
KIND_WEIGHTS = "mixture-score"


@dataclass(frozen=True)
class MixtureNetSpec:
    """Recipe of a score MLP trained on samples of a Gaussian mixture; every field is part of the key."""

    target: GaussianMixture  # the data distribution
    sde: LinearDriftSDE  # the forward process (and the network's output scaling)
    net: nets.MLPConfig  # the network
    train: training.TrainConfig  # the training
    seed: int  # seeds the data, the initial weights and the training
    n_data: int  # training samples of the target (>= 2)

    def __post_init__(self):
        if not isinstance(self.target, GaussianMixture):
            raise ValueError(f"target must be a GaussianMixture, got {type(self.target).__name__}")
        if not isinstance(self.sde, LinearDriftSDE):
            raise ValueError(f"sde must be a LinearDriftSDE, got {type(self.sde).__name__}")
        if not isinstance(self.net, nets.MLPConfig):
            raise ValueError(f"net must be an MLPConfig, got {type(self.net).__name__}")
        if not isinstance(self.train, training.TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        object.__setattr__(self, "seed", require_int(self.seed, "seed", 0))
        object.__setattr__(self, "n_data", require_int(self.n_data, "n_data", 2))


def network(spec: MixtureNetSpec) -> NetworkRecipe:
    """The :class:`~lib.recipes.pipelines.trained_networks.NetworkRecipe` of ``spec``: float32 samples of the target,
    drawn from the data seed."""
    if not isinstance(spec, MixtureNetSpec):
        raise ValueError(f"spec must be a MixtureNetSpec, got {type(spec).__name__}")
    return NetworkRecipe(
        KIND_WEIGHTS, {"net": spec.net, "target": spec.target, "n_data": spec.n_data}, spec.sde, spec.train, spec.seed,
        code=__name__, build=lambda g: nets.build_mlp(spec.net, spec.sde, generator=g),
        data=lambda g: (spec.target.sample((spec.n_data,), generator=g, dtype=torch.float32), {}))


def trained(spec: MixtureNetSpec, cache: ArtefactCache | None = None, device="cpu",
            progress: bool | None = None) -> training.TrainResult:
    """The network of ``spec`` from the store of trained networks or the artefact cache, else trained now
    (:func:`lib.recipes.pipelines.trained_networks.trained`)."""
    return _trained(network(spec), cache, device=device, progress=progress)


def moment_records(x: torch.Tensor, t=None) -> dict:
    """``{"mu": <x^n>, n = 1..8}`` of a batch of samples (the records of the one-dimensional runs; an observer of
    :mod:`lib.core.recording`, ``t`` the record's time, not used)."""
    return {"mu": torch.stack([x.pow(n).mean() for n in range(1, 9)])}
