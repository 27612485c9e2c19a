"""Tests of lib.diffusion.zero_mode: the fit, the score along the forward process, and the zero mode put into a score."""
import math

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion.mode_gaussian import ModeGaussian, gaussian_score
from lib.diffusion.sde import ve, vp
from lib.diffusion.zero_mode import ZeroModeMixture


def _field_with_zero_mode(u: torch.Tensor, L: int, generator) -> torch.Tensor:
    """Configurations whose zero mode (sum / L) is u, plus Gaussian non-zero modes."""
    y = ModeGaussian(0.5, (L, L)).sample(u.shape[0], generator)
    y = y - y.mean((-2, -1), keepdim=True)
    return y + (u / L)[:, None, None]


def test_fit_recovers_a_symmetric_mixture():
    g = make_generator(0)
    n = 40_000
    sign = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    u = sign * (3.0 + 0.6 * torch.randn(n, generator=g, dtype=torch.float64))
    fit = ZeroModeMixture.fit(_field_with_zero_mode(u, 4, g), components=1)
    assert fit.weights == (1.0,)
    assert fit.mu[0] == pytest.approx(3.0, abs=0.02) and fit.s[0] == pytest.approx(0.6, abs=0.02)
    three = ZeroModeMixture.fit(_field_with_zero_mode(u, 4, g), components=3)
    assert len(three.weights) == 3 and sum(three.weights) == pytest.approx(1.0)
    peak = torch.linspace(2.0, 4.0, 5, dtype=torch.float64)  # where the data are: the same density, however split
    grid = torch.cat([-peak, peak])
    torch.testing.assert_close(three.log_prob(grid), fit.log_prob(grid), atol=0.05, rtol=0)


@pytest.mark.parametrize("sde", [ve(25.0), vp()], ids=["ve", "vp"])
def test_score_is_the_gradient_of_the_diffused_mixture(sde):
    mix = ZeroModeMixture((0.2, 0.8), (0.5, 2.5), (1.0, 0.4))
    u = torch.linspace(-4, 4, 17, dtype=torch.float64)
    for t in (0.01, 0.3, 1.0):
        f, xi = float(sde.f(t)), float(sde.xi(t))
        diffused = ZeroModeMixture(mix.weights, tuple(m * f for m in mix.mu),
                                   tuple(math.sqrt(s * s * f * f + xi) for s in mix.s))
        x = u.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(diffused.log_prob(x).sum(), x)
        torch.testing.assert_close(mix.score(u, t, sde), grad, rtol=1e-9, atol=1e-12)


def test_score_on_replaces_only_the_zero_mode():
    sde, L = ve(25.0), 4
    v = torch.full((L, L), 0.3, dtype=torch.float64)
    v[0, 0] = 5.0
    y = ModeGaussian(v, (L, L)).sample(6, make_generator(2))
    t = torch.full((6,), 0.2, dtype=torch.float64)
    base = lambda x, tt: gaussian_score(x, tt, sde, v)  # noqa: E731
    # a one-component mixture centred at zero with the zero mode's variance is the Gaussian itself
    same = ZeroModeMixture((1.0,), (0.0,), (math.sqrt(5.0),)).score_on(base, sde, v)
    torch.testing.assert_close(same(y, t), base(y, t), rtol=1e-12, atol=1e-12)
    mix = ZeroModeMixture((0.5, 0.5), (1.0, 2.5), (0.5, 0.5))
    out = mix.score_on(base, sde, v)(y, t)
    d_new, d_base = (torch.fft.fftn(s, dim=(-2, -1), norm="ortho") for s in (out, base(y, t)))
    torch.testing.assert_close(d_new[:, 1:], d_base[:, 1:])  # every non-zero mode as the base's
    torch.testing.assert_close(d_new[:, 0, 1:], d_base[:, 0, 1:])
    torch.testing.assert_close(d_new[:, 0, 0].real, mix.score(y.sum((-2, -1)) / L, t, sde))


def test_fit_of_a_gaussian_zero_mode_is_one_wide_peak():
    g = make_generator(3)
    u = 2.0 * torch.randn(20_000, generator=g, dtype=torch.float64)
    fit = ZeroModeMixture.fit(_field_with_zero_mode(u, 4, g), components=2)
    grid = torch.linspace(-4, 4, 9, dtype=torch.float64)  # within two standard deviations, where the data are
    exact = -0.5 * (grid / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    torch.testing.assert_close(fit.log_prob(grid), exact, atol=0.05, rtol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="one entry per component"):
        ZeroModeMixture((1.0,), (0.0, 1.0), (1.0,))
    with pytest.raises(ValueError, match="positive weights summing to 1"):
        ZeroModeMixture((0.5, 0.6), (0.0, 1.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="s > 0"):
        ZeroModeMixture((1.0,), (0.0,), (0.0,))
    with pytest.raises(ValueError, match="finite numbers"):
        ZeroModeMixture((1.0,), (math.nan,), (1.0,))
    with pytest.raises(ValueError, match="at least 2 configurations"):
        ZeroModeMixture.fit(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="vanishes"):
        ZeroModeMixture.fit(torch.zeros(5, 4, 4))
    with pytest.raises(ValueError, match="components must be an integer >= 1"):
        ZeroModeMixture.fit(torch.randn(5, 4, 4), components=0)
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        ZeroModeMixture.fit(torch.randn(5, 4, 4), iterations=0)
    mix = ZeroModeMixture((1.0,), (1.0,), (1.0,))
    score = mix.score_on(lambda x, t: -x, ve(), torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        score(torch.zeros(2, 3, 3), 0.5)
