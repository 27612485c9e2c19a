"""Tests of lib.diffusion.nets: shapes, dtypes, exact odd symmetry, the 1/sqrt(Xi) output scaling, deterministic
initialisation without global random state, config validation and the adapter for the backward sampler."""
import math

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion import grids
from lib.infra.cache import ArtefactCache
from lib.diffusion.nets import GaussianFourierEmbedding, MLPConfig, ScoreMLP, build_mlp, rescaled_score_fn, score_fn
from lib.diffusion.sde import ve, vp
from lib.diffusion.solvers import backward_em

SHAPES = [(7,), (7, 2), (7, 3, 3)]




def _dim(shape):
    return math.prod(shape[1:])


def _net(shape, odd=False, sde=None, seed=0, **kw):
    return build_mlp(MLPConfig(dim=_dim(shape), odd=odd, **kw), sde, generator=make_generator(seed))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(shape, dtype):
    gen = make_generator(1)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    t = torch.rand(shape[0], generator=gen, dtype=dtype) * 0.9 + 0.1
    for sde in (None, ve()):
        out = _net(shape, sde=sde)(x, t)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_scalar_time_equals_per_sample_time(shape):
    x = torch.randn(shape, generator=make_generator(2))
    net = _net(shape, sde=vp())
    torch.testing.assert_close(net(x, 0.3), net(x, torch.full((shape[0],), 0.3)))
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((shape[0],), 0.3, dtype=torch.float64)))


@pytest.mark.parametrize("shape", SHAPES)
def test_shared_time_fast_path_equals_per_sample_embedding(shape):
    """A batch at one common time embeds it once; the result must equal the per-sample (mixed-time) path."""
    x = torch.randn(shape, generator=make_generator(4))
    net = _net(shape, sde=ve())
    t = torch.full((shape[0],), 0.3)
    mixed = t.clone()
    mixed[-1] = 0.7  # forces the per-sample embedding for the whole batch
    torch.testing.assert_close(net(x, t)[:-1], net(x, mixed)[:-1])
    assert not torch.allclose(net(x, t)[-1], net(x, mixed)[-1])


def test_score_fn_chunks_give_the_same_result():
    x = torch.randn(50, 2, generator=make_generator(5), dtype=torch.float64)
    net = _net((50, 2), sde=vp())
    t = torch.full((50,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(score_fn(net, chunk_size=7)(x, t), score_fn(net, chunk_size=None)(x, t))
    torch.testing.assert_close(score_fn(net, chunk_size=16)(x, 0.4), score_fn(net)(x, t))
    with pytest.raises(ValueError, match="chunk_size"):
        score_fn(net, chunk_size=0)


def test_time_enters_and_samples_are_independent():
    x = torch.randn(5, 2, generator=make_generator(3))
    net = _net((5, 2))
    assert not torch.allclose(net(x, 0.2), net(x, 0.8))
    t = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    full = net(x, t)
    for i in range(5):  # row i depends only on (x_i, t_i)
        torch.testing.assert_close(net(x[i:i + 1], t[i:i + 1]), full[i:i + 1])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sde", [None, ve()])
def test_odd_symmetry_is_exact(shape, sde):
    gen = make_generator(4)
    x = 3.0 * torch.randn(shape, generator=gen)
    t = torch.rand(shape[0], generator=gen) * 0.9 + 0.05
    odd = _net(shape, odd=True, sde=sde)
    assert torch.equal(odd(-x, t), -odd(x, t))  # bit for bit, not merely close
    assert torch.equal(odd(torch.zeros_like(x), t), torch.zeros_like(x))
    plain = _net(shape, odd=False, sde=sde)  # same weights, no antisymmetrisation: not odd
    assert not torch.allclose(plain(-x, t), -plain(x, t), atol=1e-3)
    # the odd network is the antisymmetric part of the plain one with the same weights
    torch.testing.assert_close(odd(x, t), 0.5 * (plain(x, t) - plain(-x, t)))


def test_output_scaled_by_kernel_width():
    sde = ve(sigma=10.0)
    x = torch.randn(6, 2, generator=make_generator(5), dtype=torch.float64)
    t = torch.tensor([1e-5, 1e-3, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    plain, scaled = _net((6, 2), seed=3), _net((6, 2), sde=sde, seed=3)
    torch.testing.assert_close(scaled(x, t) * torch.sqrt(sde.xi(t))[:, None], plain(x, t), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="t > 0"):
        scaled(x, 0.0)
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        scaled(x, 1.5)


def test_initialisation_is_seeded_and_leaves_global_state_alone():
    state = torch.random.get_rng_state()
    a = build_mlp(MLPConfig(dim=2), generator=make_generator(7))
    b = build_mlp(MLPConfig(dim=2), generator=make_generator(7))
    c = build_mlp(MLPConfig(dim=2), generator=make_generator(8))
    d = build_mlp(MLPConfig(dim=2))  # default generator: seed 0
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() and "embed.W" in sa  # the Fourier frequencies are saved with the weights
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.weight"], sc["layers.0.weight"])
    assert torch.equal(d.state_dict()["out.bias"], build_mlp(MLPConfig(dim=2), generator=make_generator(0)).out.bias)
    # PyTorch's default law: uniform in +-1/sqrt(fan_in); frequencies ~ N(0, scale^2)
    w = a.layers[1].weight.detach()
    assert float(w.abs().max()) <= 1 / math.sqrt(64) and float(w.abs().max()) > 0.9 / math.sqrt(64)
    big = GaussianFourierEmbedding(20000, 30.0)
    big.reset_parameters(make_generator(0))
    assert abs(float(big.W.std()) - 30.0) < 5 * 30.0 / math.sqrt(2 * 10000)


def test_parameter_count_of_the_authors_architecture():
    net = build_mlp(MLPConfig(dim=1))  # [64, 64], embedding 128, per-layer time projections
    n = sum(p.numel() for p in net.parameters())
    expected = (128 * 128 + 128) + (1 * 64 + 64) + (64 * 64 + 64) + 2 * (128 * 64 + 64) + (64 * 1 + 1)
    assert n == expected
    assert not any(p is net.embed.W for p in net.parameters())  # frequencies are a buffer, not trained


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 0}, "dim"), ({"dim": 1.5}, "dim"), ({"dim": True}, "dim"),
    ({"dim": 1, "hidden": ()}, "hidden"), ({"dim": 1, "hidden": 64}, "hidden"), ({"dim": 1, "hidden": (64, 0)}, "hidden"),
    ({"dim": 1, "embed_dim": 127}, "even"), ({"dim": 1, "embed_dim": 0}, "embed_dim"),
    ({"dim": 1, "embed_scale": 0.0}, "embed_scale"), ({"dim": 1, "embed_scale": float("nan")}, "embed_scale"),
    ({"dim": 1, "activation": "relu6"}, "activation"), ({"dim": 1, "odd": 1}, "odd"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPConfig(**kwargs)


def test_config_is_hashable_and_a_cache_key(tmp_path):
    cfg = MLPConfig(dim=2, hidden=[32, 32])
    assert cfg.hidden == (32, 32) and hash(cfg) == hash(MLPConfig(dim=2, hidden=(32, 32)))
    cache = ArtefactCache(tmp_path)
    key = lambda config: cache.key("net", {"net": config}, code="lib.diffusion.nets")  # noqa: E731
    assert key(cfg) == key(MLPConfig(dim=2, hidden=(32, 32)))
    assert key(cfg) != key(MLPConfig(dim=2, hidden=(32, 32), odd=True))


def test_bad_input():
    net = _net((4, 2))
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="2 numbers per configuration"):
        net(torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="floating"):
        net(torch.zeros(4, 2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="MLPConfig"):
        ScoreMLP({"dim": 2})
    with pytest.raises(ValueError, match="LinearDriftSDE"):
        build_mlp(MLPConfig(dim=2), sde="ve")
    with pytest.raises(ValueError, match="Module"):
        score_fn(lambda x, t: x)


def test_score_fn_plugs_into_the_backward_sampler():
    sde = ve()
    net = _net((16, 2), odd=True, sde=sde)
    net.train()
    score = score_fn(net)
    assert not net.training
    x = torch.randn(16, 2, dtype=torch.float64, generator=make_generator(9))
    t = torch.full((16,), 0.4, dtype=torch.float64)
    out = score(x, t)
    assert not out.requires_grad and out.dtype == torch.float64
    torch.testing.assert_close(out, net(x, t).detach())
    x_T = sde.prior_sample((16, 2), make_generator(10), dtype=torch.float64)
    traj = backward_em(sde, score, x_T, grids.uniform_evaluations(sde, 20), make_generator(11))
    assert traj.x.shape == (16, 2) and torch.isfinite(traj.x).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_follows_the_module():
    net = _net((8, 2), sde=ve()).to("cuda")
    x = torch.randn(8, 2, device="cuda")
    assert net(x, torch.full((8,), 0.5, device="cuda")).device.type == "cuda"


def test_rescaled_score_fn_chain_rule():
    # u ~ N(0, 1) per component has score -u; x = a * u has score -x / a^2
    a = torch.tensor([1.0, 4.0], dtype=torch.float64)
    x = torch.randn(7, 2, generator=make_generator(3), dtype=torch.float64)
    score = rescaled_score_fn(lambda u, t: -u, a)
    torch.testing.assert_close(score(x, torch.zeros(7, dtype=torch.float64)), -x / a**2)
    torch.testing.assert_close(rescaled_score_fn(lambda u, t: -u, 2.0)(x, 0.0), -x / 4.0)
    assert score(x.float(), 0.0).dtype == torch.float32
    with pytest.raises(ValueError, match="scale"):
        rescaled_score_fn(lambda u, t: -u, torch.tensor([1.0, 0.0]))
