r"""Lattice diffusion models of :math:`\phi^4`, likelihood: the model's effective action on held-out configurations.

:class:`LikelihoodSpec` (cache kind ``"phi4-dm-effective-action"``) evaluates the probability-flow log-likelihood of a
trained network (:class:`~lib.recipes.pipelines.lattice_training.DMSpec`) on held-out HMC configurations, to compare
:math:`-\log q` with the lattice action (arXiv:2309.17082).  Nothing is computed at import time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion import likelihood
from lib.infra.cache import ArtefactCache
from lib.physics import phi4
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.recipes.pipelines.lattice_training import DMSpec, forward_sde, trained_model

__all__ = ["KIND_EFFECTIVE_ACTION", "LikelihoodSpec", "effective_action"]

#: cache kind of the effective action
KIND_EFFECTIVE_ACTION = "phi4-dm-effective-action"


@dataclass(frozen=True)
class LikelihoodSpec:
    """Recipe of the effective-action comparison (:func:`effective_action`); every field is part of the cache key."""

    test: ens.ChainSpec  # held-out HMC ensemble (not used in training) whose configurations are evaluated
    n_configs: int = 128  # configurations evaluated (the first n_configs, chain by chain)
    t_eps: float = 1e-3  # the likelihood is that of the model's distribution at t = t_eps
    rtol: float = 1e-4  # tolerances of the adaptive RK45 integration of the probability-flow ODE
    atol: float = 1e-4
    method: str = "exact"  # divergence: "exact" (L^2 vector-Jacobian products) or "hutchinson"

    def __post_init__(self):
        if not isinstance(self.test, ens.ChainSpec):
            raise ValueError(f"test must be a ChainSpec, got {type(self.test).__name__}")
        object.__setattr__(self, "n_configs", require_int(self.n_configs, "n_configs", 3))
        for name in ("t_eps", "rtol", "atol"):
            object.__setattr__(self, name, require_positive(getattr(self, name), name))
        if self.t_eps >= 1.0:
            raise ValueError(f"t_eps must lie in (0, T = 1), got {self.t_eps}")
        if self.method not in ("exact", "hutchinson"):
            raise ValueError(f"method must be 'exact' or 'hutchinson', got {self.method!r}")


def effective_action(spec: DMSpec, lik: LikelihoodSpec, cache: ArtefactCache | None = None, device=None,
                     progress: bool | None = None) -> dict:
    r"""The model's :math:`-\log q(\phi)` and the lattice action :math:`S(\phi)` on held-out HMC configurations.

    :math:`\log q` is the probability-flow log-likelihood (:func:`lib.diffusion.likelihood.log_likelihood`) of the
    model's distribution at :math:`t = t_\epsilon`, computed for the normalised field :math:`y = (\phi - a)/s` and
    converted to the field, :math:`\log q_\phi(\phi) = \log q_y(y) - V \log s`.  For a perfect model
    :math:`-\log q = S + \log Z`: slope 1 against :math:`S` (arXiv:2309.17082).  Cached under kind
    ``"phi4-dm-effective-action"``.

    Returns
    -------
    dict
        ``S``, ``minus_log_q`` (n,) float64; ``nfev`` (score evaluations of the ODE solver); ``seconds``.
    """
    if lik.test.params != spec.params:
        raise ValueError(f"the test ensemble has {lik.test.params}, the model was trained on {spec.params}")
    for s in spec.ensembles:
        if s == lik.test:
            raise ValueError("the test ensemble must not be one of the training ensembles")
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)

    def compute():
        result, norm = trained_model(spec, cache, device=device, progress=progress)
        model = result.sampling_model.eval()
        phi = ens.configurations(ens.ensemble(lik.test, cache=cache))[: lik.n_configs]
        start = time.perf_counter()
        out = likelihood.log_likelihood(forward_sde(spec), model, norm.forward(phi).to(device), t_eps=lik.t_eps,
                                        method=lik.method, rtol=lik.rtol, atol=lik.atol,
                                        generator=make_generator(spec.seed, device))
        volume = phi.shape[-1] * phi.shape[-2]
        log_q = out.logp.cpu().to(torch.float64) - volume * math.log(norm.scale)
        return {"S": phi4.action(phi.to(torch.float64), spec.params).cpu(), "minus_log_q": -log_q,
                "nfev": out.nfev, "seconds": time.perf_counter() - start}

    return cache.get_or_compute(KIND_EFFECTIVE_ACTION, {"dm": spec, "likelihood": lik}, compute, seed=spec.seed,
                                code=__name__)
