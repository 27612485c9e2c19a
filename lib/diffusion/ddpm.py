r"""The discrete denoising diffusion probabilistic model (DDPM, Ho et al. 2020) as a discretisation of the VP SDE.

Forward chain :math:`q(x_i \mid x_{i-1}) = \mathcal N(\sqrt{\alpha_i}\, x_{i-1}, \beta_i)`, :math:`\alpha_i = 1 - \beta_i`,
:math:`i = 1..N`, so that :math:`q(x_i \mid x_0) = \mathcal N(\sqrt{\bar\alpha_i}\, x_0, 1 - \bar\alpha_i)` with
:math:`\bar\alpha_i = \prod_{j \le i} \alpha_j`.  A noise schedule is a :class:`DDPMSchedule` of the
:math:`\beta_i`: Ho et al.'s linear one (:meth:`DDPMSchedule.linear`), or the exact transitions of a
variance-preserving SDE on a uniform grid (:meth:`DDPMSchedule.from_sde`), for which
:math:`\bar\alpha_i = f(t_i)^2` holds exactly and the DDPM is that SDE observed at the grid times.

Training minimises the :math:`\epsilon`-loss of Algorithm 1, :func:`eps_loss`; sampling is the ancestral Algorithm 2,
:func:`ancestral_sample`, :math:`x_{i-1} = (x_i - \beta_i\, \epsilon_\theta / \sqrt{1 - \bar\alpha_i}) / \sqrt{\alpha_i}
+ \sigma_i z`.  With :math:`\epsilon = -\sqrt{1 - \bar\alpha}\, s` (:func:`eps_from_score`) the
:math:`\epsilon`-loss is the denoising score-matching loss with a time-dependent weight, and Algorithm 2 becomes
the Euler-Maruyama scheme of the backward VP SDE as :math:`N \to \infty`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lib.core.checks import NonFiniteError, describe_members, expand_like, failing_members, require_batch, require_int
from lib.core.random import require_generator
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["DDPMSchedule", "eps_from_score", "eps_loss", "ancestral_sample", "SIGMAS"]

#: the two choices of Ho et al. for the variance of a reverse step
SIGMAS = ("beta", "posterior")


@dataclass(frozen=True)
class DDPMSchedule:
    """The variances :math:`\\beta_1 .. \\beta_N` of the forward chain (float64 tuple; each in (0, 1))."""

    betas: tuple  # beta_i, i = 1..N, each in the open interval (0, 1)

    def __post_init__(self):
        if isinstance(self.betas, (str, bytes)) or not hasattr(self.betas, "__iter__"):
            raise ValueError(f"betas must be a sequence of the N variances beta_1..beta_N, got {self.betas!r}; for "
                             "a schedule of N steps use DDPMSchedule.linear(N) or DDPMSchedule.from_sde(sde, N)")
        betas = tuple(float(b) for b in self.betas)
        if not betas:
            raise ValueError("betas must hold at least one value")
        for i, b in enumerate(betas, start=1):
            if not 0.0 < b < 1.0:
                raise ValueError(f"beta_{i} must lie in (0, 1), got {b}")
        object.__setattr__(self, "betas", betas)

    @classmethod
    def linear(cls, n: int = 1000, beta_1: float = 1e-4, beta_n: float = 0.02) -> "DDPMSchedule":
        """Ho et al.'s schedule: ``n`` values from ``beta_1`` to ``beta_n``, linearly."""
        n = require_int(n, "n")
        return cls(tuple(torch.linspace(beta_1, beta_n, n, dtype=torch.float64).tolist()))

    @classmethod
    def from_sde(cls, sde: LinearDriftSDE, n: int) -> "DDPMSchedule":
        r"""The exact transitions of a variance-preserving ``sde`` (``c = 1``) on ``n`` equal steps of :math:`[0, T]`:
        :math:`\beta_i = 1 - f(t_i, t_{i-1})^2`, hence :math:`\bar\alpha_i = f(t_i)^2`."""
        n = require_int(n, "n")
        if sde.c != 1.0:
            raise ValueError(f"a DDPM discretises a variance-preserving SDE (c = 1), got c = {sde.c}")
        t = torch.linspace(0.0, sde.T, n + 1, dtype=torch.float64)
        f = sde.f(t[1:], t[:-1])
        return cls(tuple((1.0 - f * f).tolist()))

    @property
    def n(self) -> int:
        return len(self.betas)

    @property
    def beta(self) -> torch.Tensor:
        """:math:`\\beta_i`, float64 ``(N,)``."""
        return torch.tensor(self.betas, dtype=torch.float64)

    @property
    def alpha_bar(self) -> torch.Tensor:
        """:math:`\\bar\\alpha_i = \\prod_{j \\le i} (1 - \\beta_j)`, float64 ``(N,)``."""
        return torch.cumprod(1.0 - self.beta, dim=0)

    def posterior_variance(self) -> torch.Tensor:
        """:math:`\\tilde\\beta_i = \\beta_i (1 - \\bar\\alpha_{i-1}) / (1 - \\bar\\alpha_i)` (:math:`\\tilde\\beta_1 = 0`)."""
        ab = self.alpha_bar
        prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        return self.beta * (1.0 - prev) / (1.0 - ab)


def eps_from_score(score: Callable, schedule: DDPMSchedule, times: torch.Tensor) -> Callable:
    r"""An :math:`\epsilon`-predictor from a score :math:`s(x, t)`: :math:`\epsilon(x, i) = -\sqrt{1 - \bar\alpha_i}\, s(x, t_i)`.

    ``times`` ``(N,)`` are the continuous times :math:`t_i` of the steps (e.g. ``i T / N``); the returned function
    takes the integer step indices ``i`` (1-based, ``(B,)``).
    """
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.shape != (schedule.n,):
        raise ValueError(f"times must have one entry per step ({schedule.n}), got {tuple(times.shape)}")
    root = torch.sqrt(1.0 - schedule.alpha_bar)

    def eps(x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        steps = torch.as_tensor(i).long().cpu()
        if steps.numel() and (int(steps.min()) < 1 or int(steps.max()) > schedule.n):
            raise ValueError(f"step indices must lie in 1..{schedule.n} (1-based), got {int(steps.min())}..."
                             f"{int(steps.max())}")
        idx = steps - 1
        return -expand_like(root[idx].to(x), x) * score(x, times[idx].to(x.device))

    return eps


def eps_loss(eps_model: Callable, schedule: DDPMSchedule, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    r"""Algorithm 1 of Ho et al.: :math:`\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_i} x_0 + \sqrt{1 - \bar\alpha_i}
    \epsilon, i) \|^2`, ``i`` uniform in :math:`1..N`, averaged over the batch (summed over a configuration)."""
    require_batch(x0, "x0", non_empty=True)
    require_generator(generator)
    B = x0.shape[0]
    i = torch.randint(1, schedule.n + 1, (B,), generator=generator, device=generator.device).to(x0.device)
    ab = schedule.alpha_bar.to(x0.device)[i - 1].to(x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    x_i = expand_like(ab.sqrt(), x0) * x0 + expand_like((1.0 - ab).sqrt(), x0) * eps
    diff = (eps - eps_model(x_i, i)).reshape(B, -1)
    return diff.pow(2).sum(dim=1).mean()


def ancestral_sample(eps_model: Callable, schedule: DDPMSchedule, x_N: torch.Tensor, generator: torch.Generator,
                     sigma: str = "beta") -> torch.Tensor:
    r"""Algorithm 2 of Ho et al. from :math:`x_N` down to :math:`x_0`; no noise is added on the last step.

    ``sigma``: ``"beta"`` (:math:`\sigma_i^2 = \beta_i`) or ``"posterior"`` (:math:`\sigma_i^2 = \tilde\beta_i`).
    ``eps_model(x, i)`` must return a tensor of the shape of ``x``.  A non-finite state raises
    :class:`lib.core.checks.NonFiniteError` naming the step and the failing samples; it carries the state before
    that step (``partial``) and their indices (``bad``).
    """
    if sigma not in SIGMAS:
        raise ValueError(f"sigma must be one of {SIGMAS}, got {sigma!r}")
    require_batch(x_N, "x_N", finite=True, non_empty=True)
    require_generator(generator)
    beta, ab = schedule.beta, schedule.alpha_bar
    var = beta if sigma == "beta" else schedule.posterior_variance()
    x = x_N
    for i in range(schedule.n, 0, -1):
        idx = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        b, a_bar = float(beta[i - 1]), float(ab[i - 1])
        eps = eps_model(x, idx)
        if not isinstance(eps, torch.Tensor) or eps.shape != x.shape:
            raise ValueError(f"eps_model(x, i) must return a tensor of the shape of x {tuple(x.shape)}, got "
                             f"{tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__} at step {i}")
        x_prev, x = x, (x - b / (1.0 - a_bar) ** 0.5 * eps) / (1.0 - b) ** 0.5
        if i > 1:
            z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
            x = x + float(var[i - 1]) ** 0.5 * z
        if not bool(torch.isfinite(x).all()):
            bad = failing_members(x)
            raise NonFiniteError(f"ancestral_sample: x became non-finite at step {i} of {schedule.n} for "
                                 f"{describe_members(bad, x.shape[0])}; the state before it is the exception's "
                                 ".partial", partial=x_prev, bad=bad)
    return x
