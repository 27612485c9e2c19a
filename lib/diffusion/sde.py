"""The linear-drift SDE family of the forward process (variance expanding, variance preserving, in between).

Forward process, :math:`0 \\le t \\le T`,

.. math::

    dx = K(x, t)\\,dt + g(t)\\,dW, \\qquad K(x, t) = -\\tfrac12 k(t)\\,x, \\qquad k(t) = c\\,g^2(t),
    \\quad 0 \\le c \\le 1,

with :math:`c = 0` variance expanding (VE) and :math:`c = 1` variance preserving (VP, DDPM).
With :math:`u(t) = \\int_0^t g^2` everything is closed form:

.. math::

    f(t, s) = e^{-c\\,[u(t) - u(s)]/2}, \\qquad
    \\Xi(t, s) = \\int_s^t f^2(t, s') g^2(s')\\,ds' = \\frac{1 - e^{-c\\,[u(t) - u(s)]}}{c}
    \\;(= u(t) - u(s) \\text{ for } c = 0),

and the transition kernel is :math:`p(x, t | x_0) = \\mathcal N(x; x_0 f(t, 0), \\Xi(t))`,
:math:`\\Xi(t) \\equiv \\Xi(t, 0)`.  Derived in :doc:`/book/part1/forward_process` (exercises 3-4).

Time arguments are a Python float, a 0-d tensor or a per-sample tensor of shape ``(B,)``; they are checked to lie
in ``[0, T]``.  Schedule functions compute in float64 and return float64 for float input, else the dtype of the
input tensor; multiplied with ``x`` they are cast to its dtype and device by :func:`lib.core.checks.expand_like`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from lib.core import random as _random
from lib.core.checks import as_time, expand_like, require_batch, require_in_range, require_nonnegative, require_positive

__all__ = ["NoiseSchedule", "ExponentialNoise", "LinearBetaNoise", "LinearDriftSDE", "ve", "vp", "interpolating",
           "MIN_PRIOR_COVER"]

_LOG_2PI = math.log(2.0 * math.pi)


def _time(t, T: float, name: str = "t"):
    """Validated time as a float64 tensor, and the dtype the result should be returned in."""
    tt = as_time(t, T, name)
    if tt.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D tensor of per-sample times (B,), got shape {tuple(tt.shape)}")
    return tt.to(torch.float64), tt.dtype


def _interval(t, s, T: float):
    """Validated ``(t, s)`` as float64 tensors with ``s <= t``, and the result dtype (that of the tensor arguments,
    promoted; float64 when both are numbers)."""
    (tt, t_dtype), (ss, s_dtype) = _time(t, T), _time(s, T, "s")
    try:
        bad = bool((ss > tt).any())
    except RuntimeError as err:
        raise ValueError(f"t of shape {tuple(tt.shape)} and s of shape {tuple(ss.shape)} do not broadcast") from err
    if bad:
        raise ValueError("f(t, s), Xi(t, s) and u(t) - u(s) require s <= t")
    dtypes = [d for arg, d in ((t, t_dtype), (s, s_dtype)) if isinstance(arg, torch.Tensor)] or [torch.float64]
    return tt, ss, torch.promote_types(dtypes[0], dtypes[-1])


def _batch(x, name: str = "x", finite: bool = False) -> torch.Tensor:
    """Check that ``x`` is a floating tensor with a batch axis (shape ``(B, ...)``)."""
    return require_batch(x, name, finite=finite)


def _sum_config(x: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the batch axis: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


class NoiseSchedule:
    """Base of the noise schedules: validation and dtypes here, the float64 formulas ``_g2``, ``_du`` in subclasses.

    A subclass is a frozen dataclass with a field ``T`` that implements :math:`g^2(t)` and
    :math:`u(t) - u(s) = \\int_s^t g^2` on validated float64 tensors.
    """

    T: float

    def _g2(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _du(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g2(self, t) -> torch.Tensor:
        """Diffusion coefficient :math:`g^2(t)`."""
        t, dtype = _time(t, self.T)
        return self._g2(t).to(dtype)

    def g(self, t) -> torch.Tensor:
        """Noise amplitude :math:`g(t) = \\sqrt{g^2(t)}`."""
        t, dtype = _time(t, self.T)
        return torch.sqrt(self._g2(t)).to(dtype)

    def u(self, t) -> torch.Tensor:
        """:math:`u(t) = \\int_0^t g^2(s)\\,ds`."""
        t, dtype = _time(t, self.T)
        return self._du(t, torch.zeros_like(t)).to(dtype)

    def delta_u(self, t, s) -> torch.Tensor:
        """:math:`u(t) - u(s) = \\int_s^t g^2`, ``s <= t``, computed without cancellation for ``s`` close to ``t``."""
        t, s, dtype = _interval(t, s, self.T)
        return self._du(t, s).to(dtype)


@dataclass(frozen=True)
class ExponentialNoise(NoiseSchedule):
    """The authors' schedule :math:`g(t) = \\sigma^{t/T}`, :math:`u(t) = T(\\sigma^{2t/T} - 1) / (2\\ln\\sigma)`.

    With :math:`a = 2\\ln\\sigma / T`: :math:`g^2 = e^{a t}`, :math:`u(t) - u(s) = e^{a s}\\,\\mathrm{expm1}(a(t - s)) / a`
    (``t - s`` for ``sigma == 1``).  Derived in :doc:`/book/part1/forward_process` (eq. ``eq-xi-family``).
    """

    sigma: float = 10.0  # noise amplitude at t = T relative to t = 0, g(T) / g(0); > 0 (10 toy model, 25 lattice)
    T: float = 1.0  # final time of the forward process; > 0

    def __post_init__(self):
        object.__setattr__(self, "sigma", require_positive(self.sigma, "sigma"))
        object.__setattr__(self, "T", require_positive(self.T, "T"))

    @property
    def _rate(self) -> float:  # a = 2 ln(sigma) / T, so that g^2(t) = exp(a t); log1p is exact near sigma = 1
        return 2.0 * math.log1p(self.sigma - 1.0) / self.T

    def _g2(self, t):
        return torch.exp(self._rate * t)

    def _du(self, t, s):
        a = self._rate
        return t - s if a == 0.0 else torch.exp(a * s) * torch.expm1(a * (t - s)) / a


@dataclass(frozen=True)
class LinearBetaNoise(NoiseSchedule):
    """Linear schedule :math:`g^2(t) = \\beta_{min} + (\\beta_{max} - \\beta_{min})\\,t/T` (Song et al. VPSDE, Ho et al.).

    :math:`u(t) - u(s) = (t - s)\\,[\\beta_{min} + (\\beta_{max} - \\beta_{min})(t + s) / (2T)]`.
    Derived in :doc:`/book/part1/forward_process`.
    """

    beta_min: float = 0.1  # g^2(0); >= 0
    beta_max: float = 20.0  # g^2(T); > 0 and >= beta_min
    T: float = 1.0  # final time of the forward process; > 0

    def __post_init__(self):
        object.__setattr__(self, "beta_min", require_nonnegative(self.beta_min, "beta_min"))
        object.__setattr__(self, "beta_max", require_positive(self.beta_max, "beta_max"))
        object.__setattr__(self, "T", require_positive(self.T, "T"))
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min = {self.beta_min}, got {self.beta_max}")

    def _g2(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) / self.T * t

    def _du(self, t, s):
        return (t - s) * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) / self.T * (t + s))


@dataclass(frozen=True)
class LinearDriftSDE:
    """Forward SDE :math:`dx = -\\tfrac12 c\\, g^2(t)\\, x\\, dt + g(t)\\, dW` on :math:`[0, T]`.

    Derived in :doc:`/book/part1/forward_process`
    (eqs. ``eq-forward-sde``, ``eq-forward-solution``, ``eq-xi``, ``eq-kernel``);
    the backward process in :doc:`/book/part1/score_matching` (eq. ``eq-backward-sde``).
    """

    noise: NoiseSchedule  # schedule g(t): ExponentialNoise or LinearBetaNoise
    c: float = 0.0  # k(t) = c g^2(t); in [0, 1]: 0 variance expanding, 1 variance preserving (DDPM)

    def __post_init__(self):
        if not isinstance(self.noise, NoiseSchedule):
            raise ValueError(f"noise must be a schedule such as ExponentialNoise or LinearBetaNoise, got {self.noise!r}")
        object.__setattr__(self, "c", require_in_range(self.c, "c", 0.0, 1.0))

    # --- schedule -------------------------------------------------------------------------------------------------
    @property
    def T(self) -> float:
        """Final time of the forward process."""
        return self.noise.T

    def g(self, t) -> torch.Tensor:
        """Noise amplitude :math:`g(t)`."""
        return self.noise.g(t)

    def g2(self, t) -> torch.Tensor:
        """Diffusion coefficient :math:`g^2(t)`."""
        return self.noise.g2(t)

    def u(self, t) -> torch.Tensor:
        """:math:`u(t) = \\int_0^t g^2(s)\\,ds`."""
        return self.noise.u(t)

    def k(self, t) -> torch.Tensor:
        """Drift coefficient :math:`k(t) = c\\,g^2(t)`."""
        t, dtype = _time(t, self.T)
        return (self.c * self.noise._g2(t)).to(dtype)

    def f(self, t, s=0.0) -> torch.Tensor:
        """Damping factor :math:`f(t, s) = \\exp(-\\tfrac12\\int_s^t k) = e^{-c\\,[u(t) - u(s)]/2}`, ``s <= t``.

        Derived in :doc:`/book/part1/forward_process` (eq. ``eq-forward-solution``).
        """
        t, s, dtype = _interval(t, s, self.T)
        return torch.exp(-0.5 * self.c * self.noise._du(t, s)).to(dtype)

    def xi(self, t, s=0.0) -> torch.Tensor:
        """Noise variance :math:`\\Xi(t, s) = \\int_s^t f^2(t, s') g^2(s')\\,ds' = (1 - e^{-c\\Delta u}) / c`.

        :math:`\\Delta u = u(t) - u(s)`; equals :math:`\\Delta u` for ``c = 0`` (VE:
        :math:`\\Xi(t) = (\\sigma^{2t} - 1)/(2\\ln\\sigma)`) and :math:`1 - f^2` for ``c = 1`` and ``s = 0`` (VP).
        Derived in :doc:`/book/part1/forward_process` (eq. ``eq-xi``).
        """
        t, s, dtype = _interval(t, s, self.T)
        du = self.noise._du(t, s)
        return (du if self.c == 0.0 else -torch.expm1(-self.c * du) / self.c).to(dtype)

    def noise_to_signal(self, t) -> torch.Tensor:
        r""":math:`\varsigma(t) = \sqrt{\Xi(t)}/f(t)`, the noise level of Karras et al.: :math:`x_t / f(t) = x_0 +
        \varsigma(t)\,z`; increasing in :math:`t` (the time variable of :func:`lib.diffusion.grids.karras` and of the
        fixed-step flow of :mod:`lib.diffusion.flow_map`)."""
        return torch.sqrt(self.xi(t)) / self.f(t)

    # --- forward process ------------------------------------------------------------------------------------------
    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """Forward drift :math:`K(x, t) = -\\tfrac12 k(t)\\,x`, same shape as ``x``."""
        _batch(x)
        return -0.5 * expand_like(self.k(t), x) * x

    def diffusion(self, t) -> torch.Tensor:
        """Diffusion amplitude :math:`g(t)` multiplying :math:`dW`."""
        return self.noise.g(t)

    def marginal(self, x0: torch.Tensor, t):
        """Mean and standard deviation of the kernel :math:`p(x, t | x_0) = \\mathcal N(x; x_0 f(t, 0), \\Xi(t))`.

        Returns ``(mean, std)``, both of the shape of ``x0`` (``std`` as a broadcast view).
        Derived in :doc:`/book/part1/forward_process` (eq. ``eq-kernel``).
        """
        _batch(x0, "x0", finite=True)
        mean = x0 * expand_like(self.f(t), x0)
        std = torch.broadcast_to(expand_like(torch.sqrt(self.xi(t)), x0), x0.shape)
        return mean, std

    def sample_marginal(self, x0: torch.Tensor, t, generator: torch.Generator | None = None):
        """Draw :math:`x_t = x_0 f(t, 0) + \\sqrt{\\Xi(t)}\\,\\eta`, :math:`\\eta \\sim \\mathcal N(0, 1)`.

        Returns ``(x_t, eta)``; ``eta`` is the target of denoising score matching
        (:doc:`/book/part1/score_matching`, eq. ``eq-dsm-loss``).
        """
        mean, std = self.marginal(x0, t)
        eta = _random.standard_normal(x0, generator)
        return mean + std * eta, eta

    def kernel_logpdf(self, x: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\mathcal N(x; x_0 f(t, 0), \\Xi(t))` summed over configuration axes, shape ``(B,)``.

        Requires :math:`\\Xi(t) > 0` (the kernel is a delta function at ``t = 0``).
        """
        _batch(x, finite=True)
        if x.shape != x0.shape:
            raise ValueError(f"x and x0 must have the same shape, got {tuple(x.shape)} and {tuple(x0.shape)}")
        mean, std = self.marginal(x0, t)
        if not bool((std > 0).all()):
            raise ValueError("kernel_logpdf needs Xi(t) > 0; the kernel is a delta function at t = 0")
        z = (x - mean) / std
        return _sum_config(-0.5 * z * z - torch.log(std) - 0.5 * _LOG_2PI)

    # --- prior ----------------------------------------------------------------------------------------------------
    def prior_std(self) -> float:
        """Standard deviation :math:`\\sqrt{\\Xi(T)}` of the prior :math:`\\mathcal N(0, \\Xi(T))`.

        VE: the authors' prior; VP: 1 up to :math:`e^{-u(T)}`.
        """
        return math.sqrt(float(self.xi(self.T)))

    def prior_sample(self, shape, generator: torch.Generator | None = None, device=None, dtype=torch.float32):
        """Samples of the prior :math:`\\mathcal N(0, \\Xi(T))` of shape ``shape`` (on the generator's device by default)."""
        if device is None and generator is not None:
            device = generator.device
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        like = torch.empty(shape, dtype=dtype, device=device)
        return self.prior_std() * _random.standard_normal(like, generator)

    def prior_logp(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of the prior summed over configuration axes, shape ``(B,)``."""
        _batch(x, finite=True)
        std = self.prior_std()
        return _sum_config(-0.5 * (x / std) ** 2 - math.log(std) - 0.5 * _LOG_2PI)

    # --- backward process -----------------------------------------------------------------------------------------
    def _score_like(self, x: torch.Tensor, score: torch.Tensor) -> None:
        _batch(x)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise ValueError(f"score must be a tensor of the shape of x {tuple(x.shape)}, got {shape}")

    def reverse_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """Drift of the backward process in :math:`\\tau = T - t`: :math:`dx/d\\tau = -K(x, t) + g^2(t)\\,s(x, t)`.

        Derived in :doc:`/book/part1/score_matching` (eq. ``eq-backward-sde``; exercise 7, eq. 27).
        """
        self._score_like(x, score)
        return -self.drift(x, t) + expand_like(self.g2(t), x) * score

    def probability_flow_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """Probability-flow ODE in :math:`\\tau = T - t`: :math:`dx/d\\tau = -K(x, t) + \\tfrac12 g^2(t)\\,s(x, t)`.

        It has the same marginals :math:`p(x, t)` as the backward SDE (:doc:`/book/part1/score_matching`).
        """
        self._score_like(x, score)
        return -self.drift(x, t) + 0.5 * expand_like(self.g2(t), x) * score


def _schedule(sigma: float, T: float, noise: NoiseSchedule | None) -> NoiseSchedule:
    if noise is None:
        return ExponentialNoise(sigma, T)
    if (sigma, T) != (10.0, 1.0):
        raise ValueError("give either sigma and T (ExponentialNoise) or a noise schedule, not both")
    return noise


def _growing(sigma: float, noise: NoiseSchedule | None) -> float:
    """``sigma`` of :func:`ve`, :func:`vp`, :func:`interpolating`: > 1, so that the noise grows and the prior forgets
    the data (an :class:`ExponentialNoise` with any ``sigma > 0`` can still be built explicitly)."""
    if noise is None and not require_positive(sigma, "sigma") > 1.0:
        raise ValueError(f"sigma must be > 1 (g(T) / g(0) = sigma: the noise must grow for the prior to forget the "
                         f"data), got {sigma}; build LinearDriftSDE(ExponentialNoise(sigma, T), c) for another "
                         "schedule")
    return sigma


#: how far the prior must cover unit-variance data at T, as the least ratio Xi(T) / f(T)^2 (f(T)^2 is the variance
#: such data keep at T); below it :func:`ve`, :func:`vp` and :func:`interpolating` warn
MIN_PRIOR_COVER = 4.0


def _covered(sde: LinearDriftSDE) -> LinearDriftSDE:
    r"""``sde``, with a warning when its prior does not cover data of unit variance at :math:`T`.

    At :math:`T` such data have the marginal variance :math:`f(T)^2 + \Xi(T)`, of which the prior
    :math:`\mathcal N(0, \Xi(T))` holds the noise alone; when :math:`\Xi(T) < 4 f(T)^2` the data still make up
    more than a fifth of it (their shape too), and the backward process starts far from :math:`p(x, T)` (for example
    ``ve(1.0001)``: a prior of standard deviation 1.00005 where such data need 1.414).  Deliberate choices (the
    scans of :doc:`/book/part2/gaussian_target`) silence the warning with ``warnings.catch_warnings()``.
    """
    f2, xi = float(sde.f(sde.T)) ** 2, float(sde.xi(sde.T))
    if xi < MIN_PRIOR_COVER * f2:
        warnings.warn(f"{sde!r}: at T the prior N(0, Xi(T)) has variance Xi(T) = {xi:.4g}, while data of unit "
                      f"variance keep f(T)^2 = {f2:.4g} of theirs: Xi(T) / f(T)^2 = {xi / f2:.3g} < {MIN_PRIOR_COVER:g}, "
                      "the prior does not cover the data (a larger sigma or T does)", RuntimeWarning, stacklevel=3)
    return sde


def ve(sigma: float = 10.0, T: float = 1.0, *, noise: NoiseSchedule | None = None) -> LinearDriftSDE:
    """Variance expanding scheme: ``c = 0``, :math:`g = \\sigma^{t/T}`, :math:`\\Xi(t) = T(\\sigma^{2t/T}-1)/(2\\ln\\sigma)`.

    ``noise`` replaces the exponential schedule (e.g. ``LinearBetaNoise()``).  Warns when the prior does not cover
    unit-variance data at :math:`T` (:data:`MIN_PRIOR_COVER`).
    """
    return _covered(LinearDriftSDE(_schedule(_growing(sigma, noise), T, noise), c=0.0))


def vp(sigma: float = 10.0, T: float = 1.0, *, noise: NoiseSchedule | None = None) -> LinearDriftSDE:
    """Variance preserving scheme (DDPM): ``c = 1``, :math:`g = \\sigma^{t/T}`, :math:`\\Xi = 1 - f^2`.

    ``noise`` replaces the exponential schedule; ``vp(noise=LinearBetaNoise())`` is the VPSDE of Song et al.  Warns
    when the prior does not cover unit-variance data at :math:`T` (:data:`MIN_PRIOR_COVER`).
    """
    return _covered(LinearDriftSDE(_schedule(_growing(sigma, noise), T, noise), c=1.0))


def interpolating(c: float, sigma: float = 10.0, T: float = 1.0, *, noise: NoiseSchedule | None = None) -> LinearDriftSDE:
    """Intermediate scheme :math:`k = c\\,g^2`, ``0 <= c <= 1``, with :math:`g = \\sigma^{t/T}` (or ``noise``); warns as
    :func:`ve` does."""
    return _covered(LinearDriftSDE(_schedule(_growing(sigma, noise), T, noise), c=c))
