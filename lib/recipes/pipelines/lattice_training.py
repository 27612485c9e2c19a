r"""Lattice diffusion models of :math:`\phi^4`, training: the recipe of a score network trained on HMC ensembles.

:class:`DMSpec` (cache kind ``"phi4-dm-weights"``, every field part of the key) is a score network
(:mod:`lib.diffusion.lattice_nets`) trained by denoising score matching (:mod:`lib.diffusion.training`) on the pooled
configurations of one or more HMC ensembles (:mod:`lib.recipes.pipelines.phi4_ensembles`), normalised with
:class:`lib.diffusion.normalise.Normalisation` (``"maxabs"``: :math:`\phi/\max|\phi|`, no shift; ``"minmax"``: the
authors' map to :math:`[-1, 1]`; ``"std"``: unit variance), for the variance-expanding scheme with :math:`\sigma = 25`
(arXiv:2309.17082) or the variance-preserving one.  The flip augmentation :math:`\phi \to -\phi` makes the training
set :math:`Z_2`-symmetric.  The trained network comes from the store of trained networks, the artefact cache or a
training (:mod:`lib.recipes.pipelines.trained_networks`); generating with it is
:mod:`lib.recipes.pipelines.lattice_sampling`.  Nothing is computed at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lib.core.checks import require_int, require_positive
from lib.diffusion import lattice_nets, sde as _sde, training
from lib.diffusion.mode_gaussian import GaussianBaseScore, mode_variance
from lib.diffusion.normalise import Normalisation
from lib.infra.cache import ArtefactCache
from lib.physics import phi4
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.recipes.pipelines.trained_networks import NetworkRecipe, trained

__all__ = ["KIND_WEIGHTS", "NORMALISATIONS", "PROCESSES", "BASES", "DMSpec", "training_configs", "normalisation", "forward_sde",
           "network", "trained_model"]

#: cache kind of the trained weights
KIND_WEIGHTS = "phi4-dm-weights"
#: the data normalisations a :class:`DMSpec` may name
NORMALISATIONS = ("maxabs", "minmax", "std")
#: the forward processes a :class:`DMSpec` may name
PROCESSES = ("ve", "vp")
#: what the network's score is built on (nothing, or the Gaussian score of the training data's propagator)
BASES = ("none", "gaussian")


@dataclass(frozen=True)
class DMSpec:
    """Recipe of a trained lattice diffusion model (:func:`trained_model`); every field is part of the cache key."""

    ensembles: tuple  # ChainSpec / ChainEndsSpec of lib.recipes.pipelines.phi4_ensembles whose configurations are pooled for training
    net: lattice_nets.LatticeNetConfig  # architecture of the score network
    train: training.TrainConfig  # optimiser, batch, steps or epochs, EMA, flip augmentation
    seed: int  # seed of the initial weights and of the training
    sigma: float = 25.0  # noise scale, g(t) = sigma^t, > 1 (the authors' lattice value: 25, VE)
    # "maxabs" (phi / max|phi|), "minmax" (the authors' map to [-1, 1]) or "std" (phi / rms(phi): unit variance)
    normalisation: str = "maxabs"
    n_train: int | None = None  # use the first n_train pooled configurations (None: all)
    process: str = "ve"  # forward process: "ve" (variance expanding, the authors') or "vp" (variance preserving)
    # "none": the network is the score; "gaussian": the network is a correction to the Gaussian score of the
    # normalised training data's propagator (lib.diffusion.mode_gaussian.GaussianBaseScore)
    base: str = "none"

    def __post_init__(self):
        ensembles = tuple(self.ensembles) if isinstance(self.ensembles, (tuple, list)) else (self.ensembles,)
        if not ensembles:
            raise ValueError("ensembles must name at least one HMC ensemble spec")
        for spec in ensembles:
            if not isinstance(spec, (ens.ChainSpec, ens.ChainEndsSpec)):
                raise ValueError(f"ensembles must be ChainSpec or ChainEndsSpec, got {type(spec).__name__}")
        if len({s.params for s in ensembles}) != 1:
            raise ValueError(f"all training ensembles must share L, kappa and lambda, got "
                             f"{sorted({s.params for s in ensembles}, key=str)}")
        object.__setattr__(self, "ensembles", ensembles)
        if not isinstance(self.net, lattice_nets.LatticeNetConfig):
            raise ValueError(f"net must be a LatticeNetConfig, got {type(self.net).__name__}")
        if not isinstance(self.train, training.TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        object.__setattr__(self, "seed", require_int(self.seed, "seed", 0))
        sigma = require_positive(self.sigma, "sigma")
        if sigma <= 1.0:
            raise ValueError(f"sigma must be > 1 (the noise must grow), got {sigma}")
        object.__setattr__(self, "sigma", sigma)
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.n_train is not None:
            object.__setattr__(self, "n_train", require_int(self.n_train, "n_train", 2))
        if self.process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {self.process!r}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")

    @property
    def params(self) -> phi4.Phi4Params:
        """Lattice size and couplings of the training ensembles."""
        return self.ensembles[0].params



# --- training ---------------------------------------------------------------------------------------------------
def training_configs(spec: DMSpec, cache: ArtefactCache | None = None, progress: bool = False) -> torch.Tensor:
    """The pooled training configurations ``(N, L, L)`` float32 in physical units (chain by chain)."""
    parts = [ens.configurations(ens.ensemble(s, cache=cache, progress=progress)) for s in spec.ensembles]
    data = torch.cat(parts)
    if spec.n_train is not None:
        if spec.n_train > data.shape[0]:
            raise ValueError(f"n_train = {spec.n_train} exceeds the {data.shape[0]} pooled configurations")
        data = data[: spec.n_train]
    return data


def normalisation(spec: DMSpec, data: torch.Tensor) -> Normalisation:
    """The map of ``spec.normalisation`` built from the training configurations ``data``."""
    return getattr(Normalisation, spec.normalisation)(data)


def forward_sde(spec: DMSpec) -> _sde.LinearDriftSDE:
    r"""The forward process of ``spec``: variance expanding or preserving, :math:`g(t) = \sigma^t`, :math:`T = 1`."""
    return _sde.ve(spec.sigma) if spec.process == "ve" else _sde.vp(spec.sigma)


def network(spec: DMSpec, cache: ArtefactCache | None = None) -> NetworkRecipe:
    """The :class:`~lib.recipes.pipelines.trained_networks.NetworkRecipe` of ``spec``: the lattice network of
    ``spec.net`` with the output scaling of :func:`forward_sde`, trained on the normalised pooled HMC configurations
    (computed, or read from ``cache``, only when the network is trained); the normalisation is stored with the
    weights."""
    sde = forward_sde(spec)

    def data(generator):  # the data are the HMC ensembles themselves: no randomness is drawn here
        x = training_configs(spec, cache)
        norm = normalisation(spec, x)
        return norm.forward(x), {"shift": norm.shift, "scale": norm.scale}

    def build(generator):
        net = lattice_nets.build_lattice_net(spec.net, sde, generator=generator)
        if spec.base == "none":
            return net
        x = training_configs(spec, cache)
        return GaussianBaseScore(net, sde, mode_variance(normalisation(spec, x).forward(x)))

    return NetworkRecipe(KIND_WEIGHTS, {"spec": spec}, sde, spec.train, spec.seed, code=__name__, build=build,
                         data=data)


def trained_model(spec: DMSpec, cache: ArtefactCache | None = None, device=None, progress: bool | None = None):
    """``(TrainResult, Normalisation)``: the network of ``spec`` from the store of trained networks or the artefact
    cache, else trained now (:func:`lib.recipes.pipelines.trained_networks.trained`; kind ``"phi4-dm-weights"``).

    The network sees normalised configurations, ``Normalisation.forward(phi)``; use
    :func:`lib.recipes.pipelines.lattice_sampling.generate` (which inverts the normalisation) to sample.
    """
    result = trained(network(spec, cache), cache, device=device, progress=progress)
    return result, Normalisation(**result.inputs)
