r"""Gaussians diagonal in momentum space on a periodic lattice: their densities, their scores along a linear-drift
forward process, and a score network built on one.

A centred Gaussian field whose Fourier modes are independent with variances :math:`v_p` (a free field, or the
measured propagator of an interacting one) stays such a Gaussian under the forward process: at time :math:`t` its
modes have variances :math:`A_p(t) = f(t)^2 v_p + \Xi(t)` and its score is
:math:`s(x, t) = -\mathcal F^{-1}[\tilde x_p / A_p(t)]` (unitary FFT over the configuration axes).

- :class:`ModeGaussian`: sampling and log-density of such a Gaussian;
- :func:`gaussian_score`: its score along the forward process;
- :class:`GaussianBaseScore`: that score plus a learned correction, a network that can never do worse than the
  Gaussian it starts from (the correction starts near zero) and learns only what the Gaussian misses.

Used by :mod:`lib.diffusion.path_sampler`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lib.diffusion.sde import LinearDriftSDE

__all__ = ["ModeGaussian", "mode_variance", "gaussian_score", "GaussianBaseScore"]

_LOG_2PI = math.log(2.0 * math.pi)


class ModeGaussian:
    r"""A centred Gaussian on configurations whose covariance is diagonal in momentum space: variance ``c[p]`` of the
    Fourier mode ``p`` (unitary FFT over the configuration axes).  ``c`` must be real, positive and even,
    :math:`c_p = c_{-p}`, so that the field is real; a scalar is the isotropic case.  Log-densities are float64."""

    def __init__(self, variance, shape: tuple):
        self.shape = tuple(int(s) for s in shape)
        c = torch.as_tensor(variance, dtype=torch.float64)
        if c.dim() == 0:
            c = c.expand(self.shape)
        if tuple(c.shape) != self.shape:
            raise ValueError(f"the mode variances must be a scalar or of the configuration's shape {self.shape}, got "
                             f"{tuple(c.shape)}")
        if not bool(torch.isfinite(c).all()) or not bool((c > 0).all()):
            raise ValueError(f"the mode variances must be finite and positive, got min {float(c.min()):.3g}")
        dims = tuple(range(c.dim()))
        mirror = torch.roll(torch.flip(c, dims), shifts=(1,) * c.dim(), dims=dims)  # c[-p]
        if not torch.allclose(c, mirror, rtol=1e-10, atol=0.0):
            raise ValueError("the mode variances must be even, c[p] = c[-p], for a real field")
        self.variance = c
        self.isotropic = bool((c == c.reshape(-1)[0]).all())
        self._dims = tuple(range(-c.dim(), 0))

    def _to(self, x: torch.Tensor) -> torch.Tensor:
        return self.variance.to(device=x.device)

    def sample(self, n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
        """``n`` samples, drawn with ``generator``, on its device."""
        z = torch.randn((n,) + self.shape, generator=generator, dtype=torch.float64, device=generator.device)
        return self.colour(z).to(dtype)

    def colour(self, z: torch.Tensor) -> torch.Tensor:
        """White noise ``z`` (float64) made into samples of this Gaussian: :math:`C^{1/2} z`."""
        c = self._to(z)
        if self.isotropic:
            return z * torch.sqrt(c.reshape(-1)[0])
        zp = torch.fft.fftn(z, dim=self._dims, norm="ortho")
        return torch.fft.ifftn(zp * torch.sqrt(c), dim=self._dims, norm="ortho").real

    def log_prob(self, r: torch.Tensor) -> torch.Tensor:
        """Log-density of the deviations ``r`` (batch first), float64, shape ``(B,)``."""
        r = r.to(torch.float64)
        c = self._to(r)
        flat = r.reshape(r.shape[0], -1)
        if self.isotropic:
            v = c.reshape(-1)[0]
            quad = (flat * flat).sum(1) / v
            logdet = flat.shape[1] * torch.log(v)
        else:
            rp = torch.fft.fftn(r, dim=self._dims, norm="ortho")
            quad = ((rp.real ** 2 + rp.imag ** 2) / c).reshape(r.shape[0], -1).sum(1)
            logdet = torch.log(c).sum()
        return -0.5 * (quad + logdet + flat.shape[1] * _LOG_2PI)


def mode_variance(x: torch.Tensor) -> torch.Tensor:
    r"""The variance of each Fourier mode of the configurations ``x`` (batch first, any number of configuration axes),
    :math:`\langle|\tilde x_p|^2\rangle` with the unitary FFT, float64, made exactly even (:math:`p \to -p`): the
    measured propagator (not connected: the mean is not subtracted) of a centred ensemble."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.dim() < 2 or x.shape[0] < 1 or not bool(torch.isfinite(x).all()):
        raise ValueError(f"x must be a non-empty, finite batch of configurations, got shape {tuple(x.shape)}")
    dims = tuple(range(1, x.dim()))
    xp = torch.fft.fftn(x, dim=dims, norm="ortho")
    v = (xp.real ** 2 + xp.imag ** 2).mean(0)
    mirror = torch.roll(torch.flip(v, tuple(range(v.dim()))), (1,) * v.dim(), tuple(range(v.dim())))
    return 0.5 * (v + mirror)


def _mode_variance(variance) -> torch.Tensor:
    v = torch.as_tensor(variance, dtype=torch.float64)
    if v.dim() < 1 or not bool(torch.isfinite(v).all()) or not bool((v > 0).all()):
        raise ValueError("the mode variances must be a tensor of the configuration's shape, finite and positive")
    return v


def gaussian_score(x: torch.Tensor, t, sde: LinearDriftSDE, variance: torch.Tensor) -> torch.Tensor:
    r"""The score at time ``t`` of the forward process started from the centred Gaussian with mode variances
    ``variance`` (of the configuration's shape): :math:`-\mathcal F^{-1}[\tilde x_p / (f(t)^2 v_p + \Xi(t))]`, in
    the dtype of ``x``; ``t`` is a number or one time per sample."""
    v = variance.to(device=x.device, dtype=torch.float64)
    if tuple(x.shape[1:]) != tuple(v.shape):
        raise ValueError(f"x must be a batch of configurations of shape {tuple(v.shape)}, got {tuple(x.shape)}")
    dims = tuple(range(-v.dim(), 0))
    tt = torch.as_tensor(t, dtype=torch.float64, device=x.device).reshape(-1)
    tt = tt.expand(x.shape[0]) if tt.numel() == 1 else tt
    f2 = (sde.f(tt.cpu()) ** 2).to(x.device).reshape((-1,) + (1,) * v.dim())
    xi = sde.xi(tt.cpu()).to(x.device).reshape((-1,) + (1,) * v.dim())
    xp = torch.fft.fftn(x.to(torch.float64), dim=dims, norm="ortho")
    return torch.fft.ifftn(-xp / (f2 * v + xi), dim=dims, norm="ortho").real.to(x.dtype)


class GaussianBaseScore(nn.Module):
    r"""The score :math:`s(x, t) = s_G(x, t) + c_\theta(x, t)`: the Gaussian score of :func:`gaussian_score` for the
    mode variances ``variance`` (kept as a buffer, so it travels with the ``state_dict``) plus the correction
    network ``correction`` (any score network of :mod:`lib`).  Denoising score matching of the sum trains the
    correction on what the Gaussian misses; an odd correction keeps the sum odd."""

    def __init__(self, correction: nn.Module, sde: LinearDriftSDE, variance):
        super().__init__()
        if not isinstance(correction, nn.Module):
            raise ValueError(f"correction must be a torch.nn.Module, got {type(correction).__name__}")
        if not isinstance(sde, LinearDriftSDE):
            raise ValueError(f"sde must be a LinearDriftSDE, got {type(sde).__name__}")
        ModeGaussian(variance, tuple(torch.as_tensor(variance).shape))  # validates: positive, even
        self.correction, self.sde = correction, sde
        self.config = getattr(correction, "config", None)  # the correction's architecture names the network
        self.register_buffer("variance", _mode_variance(variance).to(torch.float32))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        return gaussian_score(x, t, self.sde, self.variance) + self.correction(x, t)
