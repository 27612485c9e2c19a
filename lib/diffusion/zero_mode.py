r"""The zero mode of a lattice field as a symmetric Gaussian mixture, and a score whose zero mode follows it.

Near a critical point and in a broken phase the zero mode :math:`u = \sum_x y(x)/\sqrt V` (the :math:`p = 0`
component of the unitary FFT, :math:`\sqrt V` times the magnetisation) is far from Gaussian: its Binder cumulant
:math:`U = 1 - \langle u^4\rangle / 3\langle u^2\rangle^2` is positive.  A free-field score (:mod:`lib.diffusion.mode_gaussian`)
draws it from a Gaussian all the same.  :class:`ZeroModeMixture` is the symmetric mixture

.. math:: \sum_k w_k \left[\tfrac12\,\mathcal N(+\mu_k, s_k^2) + \tfrac12\,\mathcal N(-\mu_k, s_k^2)\right],

fitted to the data's zero modes by maximum likelihood (:meth:`ZeroModeMixture.fit`, expectation-maximisation).  Along
a forward process with signal :math:`f(t)` and noise :math:`\Xi(t)` it stays such a mixture, with means
:math:`\pm\mu_k f` and variances :math:`c_k = s_k^2 f^2 + \Xi`, so its score is known in closed form
(:meth:`ZeroModeMixture.score`; for one component :math:`s_0(u, t) = [-u + \mu f \tanh(\mu f u / c)]/c`).

:meth:`ZeroModeMixture.score_on` puts it in place of the zero-mode component of any score on the lattice (the
free-field or the force score), leaving every other mode as it was.  Used by :doc:`/book/part3/path_sampler`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lib.core.checks import require_int
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["ZeroModeMixture"]


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - torch.log(sd) - 0.5 * math.log(2.0 * math.pi)


def _zero_mode(y: torch.Tensor, dims: tuple) -> torch.Tensor:
    volume = math.prod(y.shape[d] for d in dims)
    return y.sum(dim=dims) / math.sqrt(volume)


@dataclass(frozen=True)
class ZeroModeMixture:
    r"""A symmetric Gaussian mixture of the zero mode: component :math:`k` has weight ``weights[k]`` split equally
    between :math:`\mathcal N(+\mu_k, s_k^2)` and :math:`\mathcal N(-\mu_k, s_k^2)`, ``mu >= 0``, ``s > 0``, in the
    units of the field it was fitted to (see the module)."""

    weights: tuple
    mu: tuple
    s: tuple

    def __post_init__(self):
        for name in ("weights", "mu", "s"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, values)
        if not len(self.weights) == len(self.mu) == len(self.s):
            raise ValueError("weights, mu and s must have one entry per component")
        if min(self.weights) <= 0 or abs(sum(self.weights) - 1.0) > 1e-9 or min(self.mu) < 0 or min(self.s) <= 0:
            raise ValueError(f"need positive weights summing to 1, mu >= 0 and s > 0; got {self}")

    @classmethod
    def fit(cls, y: torch.Tensor, components: int = 3, iterations: int = 500) -> "ZeroModeMixture":
        r"""The maximum-likelihood symmetric mixture of ``components`` components for the zero mode of the
        configurations ``y`` (batch first, any number of lattice axes): expectation-maximisation on the zero modes
        and their mirror images, started from means at quantiles of :math:`|u|`, ``iterations`` steps."""
        y = torch.as_tensor(y)
        if y.dim() < 2 or y.shape[0] < 2 or not y.is_floating_point() or not bool(torch.isfinite(y).all()):
            raise ValueError(f"y must be a finite floating batch of at least 2 configurations, got shape "
                             f"{tuple(y.shape)} and dtype {y.dtype}")
        components, iterations = require_int(components, "components"), require_int(iterations, "iterations")
        u = _zero_mode(y.to(torch.float64), tuple(range(1, y.dim())))
        if float(u.abs().max()) == 0.0:
            raise ValueError("the zero mode of y vanishes in every configuration: no distribution to fit")
        a = u.abs()
        mu = torch.quantile(a, torch.linspace(0.1, 0.9, components, dtype=torch.float64))
        s = torch.full_like(mu, float(a.std()) / components + 1e-3 * float(a.mean()))
        w = torch.full_like(mu, 1.0 / components)
        for _ in range(iterations):
            # responsibilities of the 2K mirrored components for |u| (the mixture is symmetric: |u| suffices)
            m, sd = mu[:, None], s[:, None]
            logp = torch.stack([_log_normal(a, m, sd), _log_normal(a, -m, sd)], 0) + torch.log(0.5 * w)[:, None]
            r = torch.softmax(logp.reshape(-1, a.shape[0]), 0).reshape(logp.shape)  # (2, K, n)
            rk = r.sum((0, 2))
            w = rk / rk.sum()
            mu = ((r[0] - r[1]) * a).sum(1) / rk
            dev2 = r[0] * (a - mu[:, None]) ** 2 + r[1] * (a + mu[:, None]) ** 2
            s = torch.sqrt(dev2.sum(1) / rk).clamp(min=1e-6 * float(a.std()))
        keep = w > 1e-12
        w, mu, s = w[keep] / w[keep].sum(), mu[keep], s[keep]
        flip = mu < 0  # a component's sign is immaterial in a symmetric mixture
        return cls(tuple(w.tolist()), tuple(torch.where(flip, -mu, mu).tolist()), tuple(s.tolist()))

    def score(self, u: torch.Tensor, t, sde: LinearDriftSDE) -> torch.Tensor:
        r"""The score of the mixture after the forward process to ``t`` (a number or one per element of ``u``):
        each component moves to :math:`\pm\mu_k f` with variance :math:`s_k^2 f^2 + \Xi`; float64."""
        tt = torch.as_tensor(t, dtype=torch.float64).cpu()
        f = sde.f(tt).to(u.device).reshape(-1, 1)
        xi = sde.xi(tt).to(u.device).reshape(-1, 1)
        u = u.to(torch.float64).reshape(-1, 1)
        mu = torch.tensor(self.mu, dtype=torch.float64, device=u.device) * f
        c = torch.tensor(self.s, dtype=torch.float64, device=u.device) ** 2 * f * f + xi
        logw = torch.log(0.5 * torch.tensor(self.weights, dtype=torch.float64, device=u.device))
        sd = torch.sqrt(c)
        logp = torch.cat([_log_normal(u, mu, sd) + logw, _log_normal(u, -mu, sd) + logw], 1)
        grad = torch.cat([-(u - mu) / c, -(u + mu) / c], 1)
        return (torch.softmax(logp, 1) * grad).sum(1)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """Log-density of the zero modes ``u`` under the mixture (at ``t = 0``), float64."""
        u = u.to(torch.float64).reshape(-1, 1)
        mu, s = (torch.tensor(v, dtype=torch.float64, device=u.device) for v in (self.mu, self.s))
        logw = torch.log(0.5 * torch.tensor(self.weights, dtype=torch.float64, device=u.device))
        return torch.logsumexp(torch.cat([_log_normal(u, mu, s) + logw, _log_normal(u, -mu, s) + logw], 1), 1)

    def score_on(self, base: Callable, sde: LinearDriftSDE, variance: torch.Tensor) -> Callable:
        r"""``score(y, t)``: the score ``base(y, t)`` with its zero-mode component replaced by :meth:`score`.

        ``variance`` (the mode variances of the configuration's shape, those of ``base``'s free-field part) fixes the
        lattice axes; ``base``'s zero-mode component is taken from its own output, so any base works.
        """
        dims = tuple(range(-torch.as_tensor(variance).dim(), 0))
        shape = tuple(torch.as_tensor(variance).shape)
        root_v = math.sqrt(math.prod(shape))

        def score(y: torch.Tensor, t) -> torch.Tensor:
            if tuple(y.shape[1:]) != shape:
                raise ValueError(f"y must be a batch of configurations of shape {shape}, got {tuple(y.shape)}")
            s = base(y, t)
            tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(y.shape[0])
            target = self.score(_zero_mode(y, dims), tt, sde)
            have = _zero_mode(s.to(torch.float64), dims)
            shift = ((target - have) / root_v).reshape((-1,) + (1,) * len(dims))
            return (s.to(torch.float64) + shift).to(s.dtype)

        return score
