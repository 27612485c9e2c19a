"""lib.diffusion.force_score and lib.diffusion.path_training."""
import math

import pytest
import torch
from torch import nn

from lib.core.random import make_generator
from lib.diffusion import sde as sdes
from lib.diffusion.force_score import ForceScore, force_weight
from lib.diffusion.mode_gaussian import ModeGaussian, gaussian_score
from lib.diffusion.path_sampler import geometric, path_proposals
from lib.diffusion.path_training import PathTrainConfig, train_on_path_weight


def _propagator(L: int, m2: float) -> torch.Tensor:
    p = 2 * math.pi * torch.fft.fftfreq(L, d=1.0).to(torch.float64)
    return 1.0 / (4 * torch.sin(p[:, None] / 2) ** 2 + 4 * torch.sin(p[None, :] / 2) ** 2 + m2)


def test_force_score_is_the_gaussian_score_when_the_force_has_no_non_gaussian_part():
    L, sde = 6, sdes.ve(25.0)
    v = _propagator(L, 0.4)
    score = ForceScore(sde, v, lambda y: torch.zeros_like(y))
    x = ModeGaussian(v, (L, L)).sample(5, make_generator(1))
    t = torch.tensor([0.01, 0.1, 0.3, 0.6, 1.0], dtype=torch.float64)
    assert torch.allclose(score(x, t), gaussian_score(x, t, sde, v), atol=1e-12)


def test_force_score_adds_the_weighted_residual_only_below_the_cut():
    L, sde = 4, sdes.ve(25.0)
    v = _propagator(L, 0.4)
    vbar = float(v.mean())
    score = ForceScore(sde, v, lambda y: torch.ones_like(y), power=4.0, cut=1.0)
    x = torch.zeros(3, L, L, dtype=torch.float64)
    t = torch.tensor([1e-4, 0.2, 0.9], dtype=torch.float64)
    w = force_weight(t, sde, vbar, 4.0, 1.0)
    assert float(w[-1]) == 0.0 and float(w[0]) > 0.99  # Xi(0.9) >> vbar; Xi(1e-4) << vbar
    assert torch.allclose(score(x, t), w.reshape(-1, 1, 1).expand(3, L, L), atol=1e-12)
    with pytest.raises(ValueError, match="residual"):
        ForceScore(sde, v, None)
    with pytest.raises(ValueError, match="power"):
        ForceScore(sde, v, lambda y: y, power=0.0)


class _Scaled(nn.Module):
    """A Gaussian score times a learnable factor: the exact score at factor 1."""

    def __init__(self, sde, v, factor):
        super().__init__()
        self.sde, self.v = sde, v
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x, t):
        return self.factor * gaussian_score(x, t, self.sde, self.v)


def test_training_on_the_path_weight_moves_a_wrong_score_towards_the_exact_one():
    L, sde = 4, sdes.ve(25.0)
    v = _propagator(L, 0.5)
    target = ModeGaussian(v, (L, L))
    model = _Scaled(sde, v, 0.6)
    grid = geometric(sde, 12, 1e-3)
    config = PathTrainConfig(n_steps=60, batch=64, transitions=6, lr=2e-2)
    result = train_on_path_weight(model, sde, grid, lambda x: -target.log_prob(x), (L, L), config,
                                  make_generator(4), mode_variance=v)
    assert abs(float(model.factor.detach()) - 1.0) < 0.15, float(model.factor.detach())
    assert float(result.sd_log_w[-10:].mean()) < 0.5 * float(result.sd_log_w[:5].mean())
    paths = path_proposals(sde, lambda x, t: model(x, t).detach(), grid, (L, L), 256, make_generator(5),
                           mode_variance=v)
    assert float((-target.log_prob(paths.x) - paths.log_q).std()) < float(result.sd_log_w[:5].mean())


def test_path_training_refuses_bad_input():
    sde = sdes.ve(25.0)
    grid = geometric(sde, 4, 1e-3)
    with pytest.raises(ValueError, match="PathTrainConfig"):
        train_on_path_weight(nn.Linear(1, 1), sde, grid, lambda x: x.sum(), (2, 2), {"n_steps": 1},
                             make_generator(0), mode_variance=1.0)
    with pytest.raises(ValueError, match="batch"):
        PathTrainConfig(batch=1)
