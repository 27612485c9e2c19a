"""Exactly solvable targets: Gaussian mixtures under the forward process, and the quartic oscillator.

The Gaussian mixture (exercise 7 of the exercise sheet) is the paper's toy model: its
moments, cumulants, time-dependent density and score are known in closed form, so a
learned score and the samples of the backward process can be compared against exact
values.  Derived in :doc:`/book/part1/score_matching` (eqs. ``eq-mixture-t``,
``eq-mixture-score``).  The quartic oscillator is the one-degree-of-freedom target of
stochastic quantisation (:doc:`/book/part1/stochastic_quantisation`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate

from lib.core import random as _random
from lib.core.checks import expand_like, require_finite, require_int, require_nonnegative, require_positive
from lib.stats import cumulants_from_moments

__all__ = ["GaussianMixture", "QuarticOscillator", "gaussian_moments"]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_moments(mean: float, std: float, n_max: int) -> np.ndarray:
    r"""Raw moments of :math:`\mathcal N(m, s^2)`,

    .. math::
        \langle x^n \rangle = \sum_{k\ \mathrm{even}} \binom{n}{k} m^{n-k} s^k (k-1)!!,

    for :math:`n = 0, \dots, n_\max` (``numpy`` float64, index = order).
    """
    n_max = require_int(n_max, "n_max")
    z = [1.0 if k % 2 == 0 else 0.0 for k in range(n_max + 1)]  # E[Z^k] = (k-1)!! for even k
    for k in range(2, n_max + 1, 2):
        z[k] = z[k - 2] * (k - 1)
    return np.array(
        [sum(math.comb(n, k) * mean ** (n - k) * std**k * z[k] for k in range(0, n + 1, 2)) for n in range(n_max + 1)]
    )


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            x = x.to(torch.float64)
        return x
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


@dataclass(frozen=True)
class GaussianMixture:
    r"""One-dimensional Gaussian mixture :math:`p_0(x) = \sum_i w_i \mathcal N(x; m_i, s_i^2)`, applied elementwise.

    Under the linear-drift forward process each component stays Gaussian:

    .. math::
        p(x, t) = \sum_i w_i\, \mathcal N\big(x; m_i f(t, 0),\; s_i^2 f^2(t, 0) + \Xi(t)\big),

    derived in :doc:`/book/part1/score_matching` (exercise 7, eqs. 23-24).  For a
    configuration of several components (``(B, 2)``, ``(B, L, L)``) every element is an
    independent draw.
    """

    means: tuple[float, ...]  # component means m_i
    stds: tuple[float, ...]  # component standard deviations s_i > 0
    weights: tuple[float, ...]  # component weights w_i > 0, summing to 1

    def __post_init__(self):
        fields = {}
        for name in ("means", "stds", "weights"):
            value = getattr(self, name)
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a sequence of real numbers, got {value!r}") from None
            if not value:
                raise ValueError(f"{name} must hold at least one component")
            if not all(math.isfinite(v) for v in value):
                raise ValueError(f"{name} must be finite, got {value}")
            fields[name] = value
        if not len(fields["means"]) == len(fields["stds"]) == len(fields["weights"]):
            raise ValueError(
                "means, stds and weights must have equal lengths, got "
                f"{len(fields['means'])}, {len(fields['stds'])}, {len(fields['weights'])}"
            )
        if min(fields["stds"]) <= 0:
            raise ValueError(f"stds must all be > 0, got {fields['stds']}")
        if min(fields["weights"]) <= 0:
            raise ValueError(f"weights must all be > 0, got {fields['weights']}")
        if abs(sum(fields["weights"]) - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1, got sum {sum(fields['weights'])}")
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # --- constructors -------------------------------------------------------------------------------------------
    @classmethod
    def two_peak(cls, mu0: float = 1.0, s0: float = 0.25) -> "GaussianMixture":
        r"""The paper's toy model :math:`p_0 = \tfrac12[\mathcal N(\mu_0, s_0^2) + \mathcal N(-\mu_0, s_0^2)]` (eq. 22)."""
        mu0 = float(mu0)
        s0 = require_positive(s0, "s0")
        return cls(means=(mu0, -mu0), stds=(s0, s0), weights=(0.5, 0.5))

    @classmethod
    def gaussian(cls, s0: float = 1.0, mu: float = 0.0) -> "GaussianMixture":
        r"""A single Gaussian :math:`\mathcal N(\mu, s_0^2)`."""
        return cls(means=(float(mu),), stds=(require_positive(s0, "s0"),), weights=(1.0,))

    @property
    def n_components(self) -> int:
        return len(self.means)

    # --- sampling -----------------------------------------------------------------------------------------------
    def sample(self, shape, generator: torch.Generator | None, dtype=torch.float64, device=None) -> torch.Tensor:
        """Elementwise iid samples of shape ``shape`` (a component is chosen, then Gaussian noise added).

        ``device`` defaults to the generator's device (CPU without a generator).
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if device is None:
            device = generator.device if generator is not None else "cpu"
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        cum = torch.tensor(np.cumsum(self.weights)[:-1], dtype=dtype, device=device)
        comp = torch.searchsorted(cum, u.reshape(-1), right=True).reshape(shape)
        means = torch.tensor(self.means, dtype=dtype, device=device)
        stds = torch.tensor(self.stds, dtype=dtype, device=device)
        return means[comp] + stds[comp] * _random.standard_normal(u, generator)

    # --- exact moments ------------------------------------------------------------------------------------------
    def moments(self, n_max: int = 8) -> np.ndarray:
        r"""Exact raw moments :math:`\mu_n = \sum_i w_i \sum_{k} \binom{n}{k} m_i^{n-k} s_i^k\, E[Z^k]`,
        :math:`E[Z^k] = (k-1)!!` for even :math:`k`, zero for odd (index = order)."""
        n_max = require_int(n_max, "n_max")
        return sum(w * gaussian_moments(m, s, n_max) for m, s, w in zip(self.means, self.stds, self.weights))

    def cumulants(self, n_max: int = 8) -> np.ndarray:
        r"""Exact cumulants from the exact moments (:func:`lib.stats.cumulants_from_moments`).

        For the two-peak model: :math:`\kappa_2 = \mu_0^2 + s_0^2`, and the higher cumulants are
        those of :math:`\pm\mu_0` (derivatives of :math:`\log\cosh`): :math:`\kappa_4 = -2\mu_0^4`,
        :math:`\kappa_6 = 16\mu_0^6`, :math:`\kappa_8 = -272\mu_0^8`.
        """
        return cumulants_from_moments(self.moments(n_max))

    # --- forward process ----------------------------------------------------------------------------------------
    def at(self, sde, t) -> "GaussianMixture":
        r"""The mixture :math:`p(x, t)` of the forward process at one time ``t``: means :math:`m_i f(t, 0)`,
        variances :math:`s_i^2 f^2(t, 0) + \Xi(t)` (exercise 7, eqs. 23-24)."""
        if isinstance(t, torch.Tensor) and t.numel() != 1:
            raise ValueError(f"at(sde, t) needs a single time, got a tensor of shape {tuple(t.shape)}")
        f = float(sde.f(t))
        xi = float(sde.xi(t))
        return GaussianMixture(
            means=tuple(m * f for m in self.means),
            stds=tuple(math.sqrt(s * s * f * f + xi) for s in self.stds),
            weights=self.weights,
        )

    def _components(self, x: torch.Tensor, sde, t):
        """Per-element component means, variances and log weights, broadcast as ``x[..., None]``."""
        x = _as_tensor(x)
        means = torch.tensor(self.means, dtype=x.dtype, device=x.device)
        var0 = torch.tensor(self.stds, dtype=x.dtype, device=x.device) ** 2
        logw = torch.log(torch.tensor(self.weights, dtype=x.dtype, device=x.device))
        if sde is None:
            if (isinstance(t, torch.Tensor) and bool((t != 0).any())) or (not isinstance(t, torch.Tensor) and t != 0):
                raise ValueError("a time t != 0 needs the forward process: pass sde=...")
            return x, means, var0, logw
        f = expand_like(sde.f(t), x)[..., None]
        xi = expand_like(sde.xi(t), x)[..., None]
        return x, means * f, var0 * f * f + xi, logw

    def _log_joint(self, x, sde, t):
        x, mu, var, logw = self._components(x, sde, t)
        xe = x[..., None]
        return xe, mu, var, logw - 0.5 * ((xe - mu) ** 2 / var + torch.log(var) + _LOG_2PI)

    def log_density(self, x, sde=None, t=0.0) -> torch.Tensor:
        r"""Elementwise :math:`\log p(x, t)` (logsumexp over components); ``t`` scalar or ``(B,)``.

        Without ``sde`` only ``t = 0`` (the target) is allowed.
        """
        _, _, _, log_joint = self._log_joint(x, sde, t)
        return torch.logsumexp(log_joint, dim=-1)

    def density(self, x, sde=None, t=0.0) -> torch.Tensor:
        """Elementwise :math:`p(x, t)`."""
        return torch.exp(self.log_density(x, sde, t))

    def score(self, x, t, sde) -> torch.Tensor:
        r"""Exact score :math:`s(x, t) = \partial_x \log p(x, t)`, elementwise, ``t`` scalar or ``(B,)``.

        .. math::
            s(x, t) = -\sum_i r_i(x, t) \frac{x - m_i(t)}{s_i^2(t)}, \qquad
            r_i = \frac{w_i \mathcal N(x; m_i(t), s_i^2(t))}{p(x, t)},

        computed with a softmax (stable far in the tails).  For the symmetric two-peak model it
        equals :math:`-x/\sigma^2(t) + \mu(t)/\sigma^2(t) \tanh(\mu(t) x / \sigma^2(t))` (eq. 26),
        derived in :doc:`/book/part1/score_matching`.
        """
        x = _as_tensor(x)
        t = _collapse_time(t, x)
        if self._is_symmetric_pair():
            f = expand_like(sde.f(t), x)
            var = self.stds[0] ** 2 * f * f + expand_like(sde.xi(t), x)
            mu = self.means[0] * f
            return (mu * torch.tanh(mu * x / var) - x) / var
        xe, mu, var, log_joint = self._log_joint(x, sde, t)
        resp = torch.softmax(log_joint, dim=-1)
        return -(resp * (xe - mu) / var).sum(dim=-1)

    def _is_symmetric_pair(self) -> bool:
        """True for the two-peak form of eq. (22): equal weights and widths, means +-mu0 (fast path, eq. 26)."""
        return (len(self.means) == 2 and self.means[0] == -self.means[1] and self.stds[0] == self.stds[1]
                and self.weights[0] == self.weights[1])

    def score_fn(self, sde):
        """The exact score as a callable ``(x, t) -> tensor like x`` for the samplers in :mod:`lib.diffusion.solvers`."""

        def score(x: torch.Tensor, t) -> torch.Tensor:
            return self.score(x, t, sde)

        return score


def _collapse_time(t, x: torch.Tensor):
    """A per-sample time of shape ``(B,)`` whose entries are all equal (as the samplers pass it) becomes a
    scalar: the schedule is then evaluated once instead of once per sample.  Other shapes pass unchanged
    (and are validated by :func:`lib.core.checks.expand_like`)."""
    if (isinstance(t, torch.Tensor) and t.ndim == 1 and x.ndim >= 1 and t.shape[0] == x.shape[0]
            and t.numel() > 0 and bool((t == t[0]).all())):
        return t[0]
    return t


@dataclass(frozen=True)
class QuarticOscillator:
    r"""One degree of freedom with action :math:`S(x) = m_2 x^2 / 2 + \lambda x^4 / 4`.

    The target of stochastic quantisation: Langevin dynamics with drift
    :math:`K = -S'(x)` has stationary distribution :math:`\propto e^{-S(x)}`
    (:doc:`/book/part1/stochastic_quantisation`, exercise 2).  ``m2 < 0`` gives a double well.
    """

    m2: float = 1.0  # mass term m^2 (any sign if lam > 0; > 0 if lam == 0)
    lam: float = 1.0  # quartic coupling lambda >= 0

    def __post_init__(self):
        lam = require_nonnegative(self.lam, "lam")
        m2 = require_positive(self.m2, "m2 (needed when lam == 0)") if lam == 0 else float(self.m2)
        if not math.isfinite(m2):
            raise ValueError(f"m2 must be finite, got {self.m2}")
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "m2", m2)

    def action(self, x):
        r""":math:`S(x) = m_2 x^2 / 2 + \lambda x^4 / 4`, elementwise."""
        return 0.5 * self.m2 * x**2 + 0.25 * self.lam * x**4

    def force(self, x):
        r"""Langevin drift :math:`K(x) = -S'(x) = -m_2 x - \lambda x^3`, elementwise."""
        return -self.m2 * x - self.lam * x**3

    def exact_moments(self, n_max: int = 8) -> np.ndarray:
        r""":math:`\langle x^n \rangle = \int dx\, x^n e^{-S(x)} / \int dx\, e^{-S(x)}` by quadrature
        (``scipy.integrate.quad``); odd moments vanish by symmetry (index = order)."""
        n_max = require_int(n_max, "n_max")
        s_min = -self.m2**2 / (4 * self.lam) if self.m2 < 0 else 0.0

        def integral(n: int) -> float:
            value, _ = integrate.quad(lambda x: x**n * math.exp(-(self.action(x) - s_min)), -np.inf, np.inf,
                                      epsabs=0.0, epsrel=1e-12, limit=200)
            return value

        z = integral(0)
        out = np.zeros(n_max + 1)
        out[0] = 1.0
        for n in range(2, n_max + 1, 2):
            out[n] = integral(n) / z
        return require_finite(out, "exact moments")

    def exact_cumulants(self, n_max: int = 8) -> np.ndarray:
        """Exact cumulants from :meth:`QuarticOscillator.exact_moments` (:func:`lib.stats.cumulants_from_moments`)."""
        return cumulants_from_moments(self.exact_moments(n_max))
