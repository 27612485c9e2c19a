r"""Annealed HMC layers after a proposal with a known path density: a stochastic normalizing flow.

A proposal :math:`x_0` with :math:`\log q` known (e.g. the end of a backward path,
:attr:`lib.diffusion.path_sampler.PathProposal.log_q`, whose importance weight is :math:`w = -S(x_0) - \log q`) is
moved by :math:`K` Markov layers, layer :math:`k` in detailed balance with

.. math:: \mu_k(x) \propto \exp\big[\beta_k \log\pi(x) + (1 - \beta_k) \log b(x)\big],
          \qquad \beta_k = (k/K)^{p},\ k = 1, \dots, K,

between a base density :math:`b` (what the proposal approximates) and the target :math:`\pi \propto e^{-S}`.  Taking
each layer's own kernel as its reverse kernel, the ratio of reverse to forward kernel is
:math:`\mu_k(x_{k-1})/\mu_k(x_k)` (detailed balance; Wu, Koehler and Noe 2020), so the extended path
:math:`(\text{path}, x_1, \dots, x_K)` has the exact importance weight

.. math:: \log w = \log\pi(x_K) - \log q + \sum_{k=1}^{K} \big[\log\mu_k(x_{k-1}) - \log\mu_k(x_k)\big],

for any base :math:`b`, any schedule and any step size: a poor choice costs acceptance, never exactness.  Telescoped
it is annealed importance sampling (Neal 2001) from :math:`b` to :math:`\pi`, started from the proposal.  The layers
are Metropolis-adjusted HMC steps with a mass diagonal in momentum space (the inverse of a given per-mode variance,
e.g. the data's propagator: Fourier acceleration), fresh momenta each layer, gradients by autograd.

:func:`annealed_layers` returns the moved configurations and :math:`\log q_K = \log q - \sum_k[\dots]`, so that
:math:`w = \log\pi(x_K) - \log q_K` and the independence chain (:func:`lib.physics.metropolis.independence_metropolis`)
takes :math:`\log q_K` as it takes :math:`\log q`.  Used by :doc:`/book/part3/path_sampler`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from lib.core.checks import require_int, require_positive
from lib.core.random import require_generator
from lib.diffusion.mode_gaussian import ModeGaussian

__all__ = ["HMCLayers", "Annealed", "annealed_layers"]


@dataclass(frozen=True)
class HMCLayers:
    r"""``n_layers`` annealed HMC layers of ``n_leapfrog`` leapfrog steps of size ``step`` each, with
    :math:`\beta_k = (k/K)^{\mathrm{power}}`."""

    n_layers: int
    step: float
    n_leapfrog: int = 3
    power: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "n_layers", require_int(self.n_layers, "n_layers", 1))
        object.__setattr__(self, "n_leapfrog", require_int(self.n_leapfrog, "n_leapfrog", 1))
        object.__setattr__(self, "step", require_positive(self.step, "step"))
        object.__setattr__(self, "power", require_positive(self.power, "power"))

    def betas(self) -> list:
        """:math:`\\beta_1, \\dots, \\beta_K`, the last one 1."""
        return [(k / self.n_layers) ** self.power for k in range(1, self.n_layers + 1)]


class Annealed(NamedTuple):
    """Result of :func:`annealed_layers`."""

    x: torch.Tensor  # (n, ...) the configurations after the last layer, float64
    log_q: torch.Tensor  # (n,) float64: log q - sum_k [log mu_k(in) - log mu_k(out)]; w = log pi(x) - log_q
    acceptance: torch.Tensor  # (n_layers,) float64: the fraction of HMC steps accepted in each layer


def _checked(name: str, fn: Callable, x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0],):
        raise ValueError(f"{name}(x) must return one log-density per configuration, shape ({x.shape[0]},), got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out.to(torch.float64)


def annealed_layers(x: torch.Tensor, log_q: torch.Tensor, log_target: Callable, log_base: Callable, layers: HMCLayers,
                    generator: torch.Generator, mass_variance=None) -> Annealed:
    r"""Move the proposals ``x`` (batch first, any configuration shape) through the annealed HMC ``layers``.

    ``log_q`` ``(n,)``: the proposals' log-density (of the path, for path proposals); ``log_target(x)`` and
    ``log_base(x)``: unnormalised log-densities ``(n,)`` of the target and of the base, differentiable in ``x``
    (float64); ``mass_variance``: the variance of each Fourier mode that the momenta's mass inverts (a tensor of the
    configuration's shape, even in :math:`p`, or a scalar; ``None``: 1).  Momenta and accept decisions are drawn
    with ``generator`` (on the device of ``x``).  See the module for the weight.
    """
    require_generator(generator)
    if not isinstance(layers, HMCLayers):
        raise ValueError(f"layers must be an HMCLayers, got {type(layers).__name__}")
    x = torch.as_tensor(x).to(torch.float64)
    log_q = torch.as_tensor(log_q, dtype=torch.float64, device=x.device)
    if x.dim() < 2 or tuple(log_q.shape) != (x.shape[0],):
        raise ValueError(f"x must be a batch of configurations and log_q one number per configuration, got shapes "
                         f"{tuple(x.shape)} and {tuple(log_q.shape)}")
    if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(log_q).all()):
        raise ValueError("x and log_q must be finite")
    mass = ModeGaussian(1.0 if mass_variance is None else mass_variance, tuple(x.shape[1:]))
    c = mass.variance.to(x.device)
    dims = tuple(range(1, x.dim()))

    def log_mu(y, beta):
        return beta * _checked("log_target", log_target, y) + (1.0 - beta) * _checked("log_base", log_base, y)

    def grad(y, beta):
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            g, = torch.autograd.grad(log_mu(y, beta).sum(), y)
        return g

    def times_c(p):  # C p, C diagonal in momentum space
        return torch.fft.ifftn(torch.fft.fftn(p, dim=dims, norm="ortho") * c, dim=dims, norm="ortho").real

    def kinetic(p):
        pp = torch.fft.fftn(p, dim=dims, norm="ortho")
        return 0.5 * ((pp.real ** 2 + pp.imag ** 2) * c).sum(dims)

    eps, acceptance = layers.step, []
    for beta in layers.betas():
        z = torch.randn(x.shape, generator=generator, dtype=torch.float64, device=x.device)
        p = torch.fft.ifftn(torch.fft.fftn(z, dim=dims, norm="ortho") / torch.sqrt(c), dim=dims, norm="ortho").real
        with torch.no_grad():
            lm_in = log_mu(x, beta)
        h0 = -lm_in + kinetic(p)
        y, p = x, p + 0.5 * eps * grad(x, beta)
        for j in range(layers.n_leapfrog):
            y = y + eps * times_c(p)
            if j < layers.n_leapfrog - 1:
                p = p + eps * grad(y, beta)
        p = p + 0.5 * eps * grad(y, beta)
        with torch.no_grad():
            lm_new = log_mu(y, beta)
            h1 = -lm_new + kinetic(p)
            u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
            ok = torch.isfinite(h1) & (u < torch.exp(torch.clamp(h0 - h1, max=0.0)))
            mask = ok.reshape((-1,) + (1,) * len(dims))
            x = torch.where(mask, y, x).detach()
            lm_out = torch.where(ok, lm_new, lm_in)
            log_q = log_q - (lm_in - lm_out)
        acceptance.append(float(ok.to(torch.float64).mean()))
    return Annealed(x, log_q, torch.tensor(acceptance, dtype=torch.float64))
