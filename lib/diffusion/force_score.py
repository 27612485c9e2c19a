r"""A score built from the physics: the Gaussian score of the measured propagator plus the exact non-Gaussian force
at small noise.

As :math:`t \to 0` the score of the forward process started from :math:`e^{-S}/Z` tends to the force
:math:`-\nabla S`; at large noise it tends to the score of a Gaussian with the data's two-point function
(:func:`lib.diffusion.mode_gaussian.gaussian_score`), whatever the interaction.  :class:`ForceScore` joins the two:

.. math::

    s(x, t) = s_G(x, t) + w(t)\, \frac{1}{f(t)}\, R\big(x / f(t)\big), \qquad
    R(y) = -\nabla S(y) + C^{-1} y, \qquad
    w(t) = \Big(\frac{\bar v}{\bar v + \Xi(t)/f(t)^2}\Big)^{p}\, \mathbb 1\big[\Xi(t)/f(t)^2 < c\, \bar v\big],

where :math:`C` is the measured propagator (mode variances :math:`v_p`, mean :math:`\bar v`, the single-site
variance), :math:`R` the non-Gaussian part of the force (zero for a Gaussian theory with that propagator, so the score
is then exact), and the weight :math:`w` switches it on only once the noise is below the field's own fluctuations.
The power :math:`p` and the cut :math:`c` are a choice, not derived: :doc:`/book/part3/path_sampler` says which trial
chose them.  An optional ``correction`` network is added on top (for training on the path weight,
:mod:`lib.diffusion.path_training`).  No network, no training: a proposal for the path sampler
(:mod:`lib.diffusion.path_sampler`) that any learned proposal must beat.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lib.core.checks import require_positive
from lib.diffusion.mode_gaussian import ModeGaussian, gaussian_score
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["ForceScore", "force_weight"]


def force_weight(t, sde: LinearDriftSDE, site_variance: float, power: float, cut: float) -> torch.Tensor:
    r"""The weight :math:`w(t)` of the non-Gaussian force in :class:`ForceScore` (float64, one per time)."""
    tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu()
    ratio = sde.xi(tt) / sde.f(tt) ** 2  # the noise in units of the data
    return (site_variance / (site_variance + ratio)) ** power * (ratio < cut * site_variance)


class ForceScore(nn.Module):
    r"""The score :math:`s_G + w\, R / f` of the module docstring, plus ``correction(x, t)`` when given.

    ``variance``: the mode variances :math:`v_p` of the data (a tensor of the configuration's shape); ``residual(y)``:
    :math:`R(y) = -\nabla S(y) + C^{-1} y` on a batch of configurations in the variables of the score (float64);
    ``power`` and ``cut``: :math:`p` and :math:`c` (positive).
    """

    def __init__(self, sde: LinearDriftSDE, variance, residual: Callable, power: float = 4.0, cut: float = 1.0,
                 correction: nn.Module | None = None):
        super().__init__()
        if not isinstance(sde, LinearDriftSDE):
            raise ValueError(f"sde must be a LinearDriftSDE, got {type(sde).__name__}")
        if not callable(residual):
            raise ValueError("residual must be a callable R(y), the non-Gaussian part of the force")
        if correction is not None and not isinstance(correction, nn.Module):
            raise ValueError(f"correction must be a torch.nn.Module or None, got {type(correction).__name__}")
        v = ModeGaussian(variance, tuple(torch.as_tensor(variance).shape)).variance  # validates: positive, even
        self.sde, self.residual, self.correction = sde, residual, correction
        self.power, self.cut = require_positive(power, "power"), require_positive(cut, "cut")
        self.register_buffer("variance", v)
        self.site_variance = float(v.mean())

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        tt = tt.expand(x.shape[0]) if tt.numel() == 1 else tt
        shape = (-1,) + (1,) * (x.dim() - 1)
        w = force_weight(tt, self.sde, self.site_variance, self.power, self.cut).to(x.device).reshape(shape)
        out = gaussian_score(x, tt, self.sde, self.variance).to(torch.float64)
        on = w.reshape(-1) > 0
        if bool(on.any()):
            f = self.sde.f(tt.cpu()).to(x.device, torch.float64).reshape(shape)
            y = x.to(torch.float64)[on] / f[on]
            out = out.clone()
            out[on] = out[on] + w[on] * self.residual(y) / f[on]
        if self.correction is not None:
            out = out + self.correction(x, t).to(torch.float64)
        return out.to(x.dtype)
