"""The denoising score-matching loss and the distribution of its diffusion times.

With :math:`x_t = x_0 f(t, 0) + \\sqrt{\\Xi(t)}\\,\\eta`, :math:`\\eta \\sim \\mathcal N(0, 1)`, the loss with
weight :math:`\\lambda(t) = \\Xi(t)` is

.. math::

    \\mathcal L(\\theta) = \\tfrac12\\, \\mathbb E_{t \\sim U(t_{min}, T)}\\, \\mathbb E_{x_0, \\eta}
    \\big\\| \\sqrt{\\Xi(t)}\\, s_\\theta(x_t, t) + \\eta \\big\\|^2 ,

with one time drawn *per sample* and :math:`t_{min} = 10^{-5}` (the authors' value).  It differs from the
weighted distance to the true score, :math:`\\tfrac12 \\mathbb E\\, \\Xi(t) \\| s_\\theta - \\nabla \\log p(x, t)\\|^2`,
by a constant, so its minimiser is the exact score.  That stays true for any other distribution of :math:`t` with
support :math:`(t_{min}, T)` (it only changes the weight of each time), which is why ``t_sampling`` may put more
samples at small :math:`t`, where the uniform distribution leaves the score poorly determined.  Derived in
:doc:`/book/part1/score_matching` (eq. ``eq-dsm-loss``).

The same holds for any positive-definite metric in place of the Euclidean norm, :math:`\\|r\\|^2 \\to r^T A r`: each
component of the residual is still minimised by a conditional expectation.  ``zero_mode_weight`` :math:`w` uses
:math:`A = 1 + w P_0`, with :math:`P_0` the projector on the constant configuration (all :math:`d` components
equal), i.e. it adds :math:`\\tfrac w2 (\\sum_i r_i)^2 / d`.  On a lattice that is the :math:`p = 0` mode, whose
variance is the susceptibility: with :math:`w = 0` it is one mode in :math:`d` and weighs :math:`1/d` of the loss.
"""
from __future__ import annotations

from typing import Callable

import torch

from lib.core.checks import expand_like, require_batch, require_nonnegative, require_positive
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["T_SAMPLINGS", "check_t_sampling", "sample_times", "dsm_loss"]

#: the distributions of t that dsm_loss can draw from
T_SAMPLINGS = ("uniform", "log-uniform", "mixture")


def check_t_sampling(t_sampling) -> str:
    """Return ``t_sampling`` if it names one of :data:`T_SAMPLINGS`, else raise ``ValueError``."""
    if t_sampling not in T_SAMPLINGS:
        raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
    return t_sampling


def sample_times(batch: int, sde: LinearDriftSDE, t_min: float = 1e-5, t_sampling: str = "uniform",
                 generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``batch`` diffusion times in :math:`(t_{min}, T)`, float64, from the distribution ``t_sampling``.

    * ``"uniform"``: :math:`t = t_{min} + (T - t_{min})\\,u`, :math:`u \\sim U(0, 1)` (the authors' choice);
    * ``"log-uniform"``: :math:`t = t_{min}\\,(T / t_{min})^u`, every decade of :math:`t` equally often;
    * ``"mixture"``: each time from one of the two above with probability 1/2.

    The first draw is always the ``batch`` uniform numbers ``u``, so ``"uniform"`` consumes the generator exactly
    as :func:`dsm_loss` always did.
    """
    check_t_sampling(t_sampling)
    t_min = require_positive(t_min, "t_min")
    if t_min >= sde.T:
        raise ValueError(f"t_min must be < T = {sde.T}, got {t_min}")
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
    if t_sampling == "uniform":
        return t_min + (sde.T - t_min) * u
    t_log = t_min * (sde.T / t_min) ** u
    if t_sampling == "log-uniform":
        return t_log
    pick_log = torch.rand(batch, generator=generator, dtype=torch.float64, device=device) < 0.5
    return torch.where(pick_log, t_log, t_min + (sde.T - t_min) * u)


def dsm_loss(score_model: Callable, sde: LinearDriftSDE, x0: torch.Tensor, generator: torch.Generator | None = None,
             t_min: float = 1e-5, reduction: str = "mean", t_sampling: str = "uniform",
             zero_mode_weight: float = 0.0) -> torch.Tensor:
    """Denoising score matching loss :math:`\\tfrac12 \\| \\sqrt{\\Xi(t)}\\, s(x_t, t) + \\eta \\|^2`.

    Parameters
    ----------
    score_model : callable
        ``score_model(x, t) -> tensor like x`` with ``t`` a float64 ``(B,)`` tensor.
    sde : LinearDriftSDE
        Forward process; :math:`x_t` is drawn with :meth:`~lib.diffusion.sde.LinearDriftSDE.sample_marginal`.
    x0 : tensor (B, ...)
        Data batch.
    generator : torch.Generator
        Source of the times (one per sample, :func:`sample_times`) and of the noise :math:`\\eta`.
    t_min : float
        Lower end of the time interval, ``0 < t_min < T``.
    reduction : {"mean", "none"}
        Mean over the batch (a scalar), or the per-sample losses, shape ``(B,)`` (summed over configuration axes).
    t_sampling : {"uniform", "log-uniform", "mixture"}
        Distribution of the times, see :func:`sample_times`; ``"uniform"`` is the loss above.
    zero_mode_weight : float
        Extra weight :math:`w \\ge 0` of the residual's component along the constant configuration (the module
        docstring): the loss per sample becomes :math:`\\tfrac12 (\\|r\\|^2 + w (\\sum_i r_i)^2 / d)` with :math:`d`
        the number of components.  The minimiser is still the exact score.

    Notes
    -----
    For a Gaussian target :math:`\\mathcal N(0, s_0^2)` per degree of freedom and the exact score the expectation
    at fixed ``t`` is :math:`\\tfrac d2\\, s_0^2 f^2 / (s_0^2 f^2 + \\Xi)`, the minimum of the loss.
    Derived in :doc:`/book/part1/score_matching` (eq. ``eq-dsm-loss``).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    require_batch(x0, "x0", non_empty=True)
    zero_mode_weight = require_nonnegative(zero_mode_weight, "zero_mode_weight")
    batch = x0.shape[0]
    t = sample_times(batch, sde, t_min, t_sampling, generator, x0.device)
    x_t, eta = sde.sample_marginal(x0, t, generator)
    std = expand_like(torch.sqrt(sde.xi(t)), x0)
    residual = std * score_model(x_t, t) + eta
    flat = residual.reshape(batch, -1)
    per_sample = 0.5 * flat.pow(2).sum(dim=1)
    if zero_mode_weight:
        per_sample = per_sample + 0.5 * zero_mode_weight * flat.sum(dim=1).pow(2) / flat.shape[1]
    return per_sample.mean() if reduction == "mean" else per_sample
