"""Tests of lib.diffusion.lattice_nets: shapes and dtypes, exact translation equivariance (CNN: every shift; U-Net: shifts by
multiples of 2**(levels-1)), exact odd symmetry, the 1/sqrt(Xi) output scaling, deterministic initialisation without
global random state, validation of configs and shapes, gradients and the denoising score matching loss."""
import dataclasses

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion import lattice_nets
from lib.diffusion.lattice_nets import LatticeNetConfig, LatticeScoreNet, build_lattice_net
from lib.diffusion.sde import ve, vp
from lib.diffusion.training import dsm_loss

# Small networks so that the whole file runs in seconds on one thread.
CNN = LatticeNetConfig(kind="cnn", channels=(8, 8), embed_dim=16)
UNET = LatticeNetConfig(kind="unet", channels=(8, 16, 16), embed_dim=16)  # 3 levels: period 4
CONFIGS = {"cnn": CNN, "unet": UNET}


def _net(kind="cnn", sde=None, seed=0, **kw):
    return build_lattice_net(dataclasses.replace(CONFIGS[kind], **kw), sde, generator=make_generator(seed))


def _x(shape, seed=1, dtype=torch.float32):
    return torch.randn(shape, generator=make_generator(seed), dtype=dtype)


def _t(batch, seed=2, dtype=torch.float64):
    return 0.1 + 0.9 * torch.rand(batch, generator=make_generator(seed), dtype=dtype)


@pytest.mark.parametrize("kind", ["cnn", "unet"])
@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 1, 8, 8), (2, 16, 16), (1, 1, 16, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device(kind, shape, dtype):
    x = _x(shape, dtype=dtype)
    for sde in (None, ve(25.0)):
        out = _net(kind, sde)(x, _t(shape[0]))
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert torch.isfinite(out).all()


def test_cnn_accepts_any_lattice_size():
    for L in (1, 3, 5, 7):
        assert _net("cnn")(_x((2, L, L)), 0.5).shape == (2, L, L)


@pytest.mark.parametrize("odd", [True, False])
def test_cnn_translation_equivariance(odd):
    net, x, t = _net("cnn", odd=odd), _x((4, 8, 8)), _t(4)
    for shift in [(1, 2), (3, 0), (-1, 5)]:
        torch.testing.assert_close(net(torch.roll(x, shift, (-2, -1)), t), torch.roll(net(x, t), shift, (-2, -1)),
                                   atol=1e-5, rtol=0)


def test_unet_translation_equivariance_by_its_period():
    net, x, t = _net("unet"), _x((3, 16, 16)), _t(3)
    p = UNET.period
    assert p == 4
    for shift in [(p, 0), (p, 2 * p), (-p, 3 * p)]:
        torch.testing.assert_close(net(torch.roll(x, shift, (-2, -1)), t), torch.roll(net(x, t), shift, (-2, -1)),
                                   atol=1e-5, rtol=0)
    # A shift by one site is NOT an exact symmetry of the U-Net (stride-2 layers see the even sublattice): the
    # difference is of the size of the output itself, not rounding.
    out = net(x, t)
    diff = net(torch.roll(x, (1, 0), (-2, -1)), t) - torch.roll(out, (1, 0), (-2, -1))
    assert diff.abs().max() > 1e-3 * out.abs().max()


@pytest.mark.parametrize("kind", ["cnn", "unet"])
@pytest.mark.parametrize("sde", [None, vp()])
@pytest.mark.parametrize("batch", [1, 5])
def test_odd_symmetry_is_exact(kind, sde, batch):
    net = _net(kind, sde)
    for dtype in (torch.float32, torch.float64):
        x = _x((batch, 8, 8), dtype=dtype)
        for t in (0.3, _t(batch)):
            assert torch.equal(net(-x, t), -net(x, t))


def test_not_odd_without_antisymmetrisation():
    net, x = _net("cnn", odd=False), _x((3, 8, 8))
    assert not torch.allclose(net(-x, 0.5), -net(x, 0.5))


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_time_enters_and_samples_are_independent(kind):
    net, x = _net(kind), _x((4, 8, 8))
    assert not torch.allclose(net(x, 0.2), net(x, 0.8))
    torch.testing.assert_close(net(x, 0.3), net(x, torch.full((4,), 0.3)))
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((4,), 0.3, dtype=torch.float64)))
    t = _t(4)
    full = net(x, t)
    for i in range(4):  # row i depends only on (x_i, t_i), also on the mixed-time path
        torch.testing.assert_close(net(x[i:i + 1], t[i:i + 1]), full[i:i + 1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_deterministic_initialisation_from_the_generator(kind):
    a, b, c = _net(kind, seed=7), _net(kind, seed=7), _net(kind, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    x = _x((2, 8, 8))
    assert torch.equal(a(x, 0.4), b(x, 0.4))
    # build_lattice_net and the class agree, and omitting the generator means make_generator(0)
    d = LatticeScoreNet(CONFIGS[kind], generator=make_generator(7))
    assert torch.equal(a(x, 0.4), d(x, 0.4))
    assert torch.equal(build_lattice_net(CONFIGS[kind])(x, 0.4), _net(kind, seed=0)(x, 0.4))


def test_global_random_state_is_untouched():
    state = torch.random.get_rng_state()
    for kind in ("cnn", "unet"):
        net = _net(kind, ve(25.0))
        net(_x((2, 8, 8)), 0.5)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_initialisation_needs_a_cpu_generator():
    with pytest.raises(ValueError, match="generator"):
        LatticeScoreNet(CNN, generator="not a generator")


@pytest.mark.parametrize("kind", ["cnn", "unet"])
@pytest.mark.parametrize("sde", [ve(25.0), vp()])
def test_sde_scaling(kind, sde):
    x, t = _x((3, 8, 8)), _t(3, dtype=torch.float32)
    plain, scaled = _net(kind), _net(kind, sde)
    expected = plain(x, t) / torch.sqrt(sde.xi(t.to(torch.float64))).to(x.dtype)[:, None, None]
    torch.testing.assert_close(scaled(x, t), expected)
    torch.testing.assert_close(scaled(x, 0.5), plain(x, 0.5) / float(torch.sqrt(sde.xi(0.5))))
    with pytest.raises(ValueError, match="t > 0"):
        scaled(x, 0.0)


def test_config_is_hashable_and_normalised():
    a = LatticeNetConfig(channels=[16, 16, 16])
    assert a == LatticeNetConfig() and hash(a) == hash(LatticeNetConfig()) and a.channels == (16, 16, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kind = "unet"
    assert LatticeNetConfig(kind="unet", channels=(32, 64, 128, 256)).period == 8 and a.period == 1


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "resnet"}, "kind"),
    ({"channels": ()}, "channels"),
    ({"channels": 16}, "channels"),
    ({"channels": (16, 0)}, "channels"),
    ({"channels": (16, 2.5)}, "channels"),
    ({"kernel_size": 4}, "kernel_size"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"embed_dim": 15}, "embed_dim"),
    ({"embed_dim": 0}, "embed_dim"),
    ({"embed_scale": 0.0}, "embed_scale"),
    ({"embed_scale": float("nan")}, "embed_scale"),
    ({"activation": "relu6"}, "activation"),
    ({"odd": 1}, "odd"),
    ({"padding": "reflect"}, "padding"),
])
def test_bad_config_raises(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LatticeNetConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="LatticeNetConfig"):
        LatticeScoreNet("cnn")
    with pytest.raises(ValueError, match="LinearDriftSDE"):
        LatticeScoreNet(CNN, sde=25.0)


@pytest.mark.parametrize("kind", ["cnn", "unet"])
@pytest.mark.parametrize("shape", [(4, 8), (4, 8, 7), (4, 2, 8, 8), (4, 1, 8, 7), (8, 8, 8, 8, 1), (8,)])
def test_bad_shapes_raise(kind, shape):
    with pytest.raises(ValueError, match="shape"):
        _net(kind)(torch.zeros(shape), 0.5)


def test_bad_input_and_time_raise():
    net = _net("cnn")
    with pytest.raises(ValueError, match="floating"):
        net(torch.zeros(2, 8, 8, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="t must"):
        net(_x((2, 8, 8)), torch.full((3,), 0.5))


def test_unet_needs_lattice_divisible_by_its_period():
    net = _net("unet")
    for L in (6, 10, 9):
        with pytest.raises(ValueError, match=rf"divisible.*\(2, {L}, {L}\)"):
            net(_x((2, L, L)), 0.5)
    with pytest.raises(ValueError, match="coarsest"):  # a 5x5 kernel cannot wrap around a 1x1 coarsest lattice
        _net("unet", kernel_size=5)(_x((2, 4, 4)), 0.5)


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_gradients_flow_and_training_lowers_a_loss(kind):
    net = _net(kind)
    x, t = _x((16, 8, 8)), _t(16)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss_fn():  # fit the exact score -x of a standard normal field
        return (net(x, t) + x).pow(2).mean()

    first = loss_fn()
    first.backward()
    first = first.item()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(bool(p.grad.abs().sum() > 0) for p in net.parameters())
    opt.step()
    for _ in range(4):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert loss_fn().item() < 0.9 * first


def test_dsm_loss_runs_on_a_lattice_batch():
    sde = ve(25.0)
    net = build_lattice_net(LatticeNetConfig(), sde, generator=make_generator(0))
    loss = dsm_loss(net, sde, _x((8, 8, 8)), make_generator(3))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_cuda_matches_cpu(kind):
    net = _net(kind, ve(25.0))
    x, t = _x((3, 8, 8)), _t(3)
    expected = net(x, t)
    net = net.to("cuda")
    out = net(x.cuda(), t.cuda())
    assert out.device.type == "cuda" and out.dtype == x.dtype
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(net(-x.cuda(), t.cuda()), -out)


def test_without_group_norm_the_amplitude_is_seen():
    """Group norms normalise each configuration; without them the score of 2x differs from that of x."""
    cfg = LatticeNetConfig(kind="cnn", channels=(8, 8), group_norm=False)
    net = build_lattice_net(cfg, generator=make_generator(0))
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    x = torch.randn(3, 8, 8, generator=make_generator(1))
    with torch.no_grad():
        s1, s2 = net(x, 0.3), net(2 * x, 0.3)
        assert torch.equal(net(-x, 0.3), -s1)
        torch.testing.assert_close(net(torch.roll(x, (1, 2), (-2, -1)), 0.3), torch.roll(s1, (1, 2), (-2, -1)),
                                   atol=1e-5, rtol=1e-5)
    assert not torch.allclose(s2, s1, atol=1e-3)
    with pytest.raises(ValueError, match="group_norm"):
        LatticeNetConfig(group_norm="yes")


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_zero_padding_breaks_translation_symmetry_only_at_the_edges(kind):
    """With padding="zeros" (the authors' network) a shift no longer commutes with the network; away from the edges a
    local CNN computes what the periodic one does, so the padding is the only change."""
    x, t = _x((2, 16, 16)), _t(2)
    periodic, zeros = _net(kind), _net(kind, padding="zeros")
    for name, p in periodic.named_parameters():  # same weights: the padding is not a parameter
        torch.testing.assert_close(p, dict(zeros.named_parameters())[name])
    shift = (CONFIGS[kind].period, 0)
    diff = zeros(torch.roll(x, shift, (-2, -1)), t) - torch.roll(zeros(x, t), shift, (-2, -1))
    assert diff.abs().max() > 1e-3
    assert not torch.allclose(zeros(x, t), periodic(x, t))
    if kind == "cnn":  # without group norms (lattice-wide statistics) the CNN is a local stencil of radius
        # 1 + 2 * 2 + 1 = 6: rows 6..9 of a 16-row lattice see no edge
        local_p, local_z = _net(kind, group_norm=False), _net(kind, group_norm=False, padding="zeros")
        torch.testing.assert_close(local_z(x, t)[..., 6:10, 6:10], local_p(x, t)[..., 6:10, 6:10], atol=1e-5, rtol=0)


# --- the circular padding's own backward pass: the same gradient as torch's, bit for bit ---------------------------
def _bits(t):
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (2, 2, 2, 2), (1, 0, 2, 1), (0, 2, 0, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_circular_pad_gradient_is_torchs_bit_for_bit(pad, dtype):
    """Values spread over eight decades, so a sum grouped differently from torch's would show in the last bit."""
    gen = make_generator(7)
    for trial in range(20):
        shape = (2, 3, 3 + trial % 5, 4 + trial % 3)
        x = (torch.randn(shape, generator=gen, dtype=dtype)
             * 10.0 ** torch.randint(-4, 4, shape, generator=gen)).requires_grad_()
        y = torch.nn.functional.pad(x, pad, mode="circular")
        g = torch.randn(y.shape, generator=gen, dtype=dtype) * 10.0 ** torch.randint(-4, 4, y.shape, generator=gen)
        (expected,) = torch.autograd.grad(y, x, g)
        y_ours = lattice_nets._CircularPad.apply(x, pad)
        (got,) = torch.autograd.grad(y_ours, x, g)
        assert torch.equal(y_ours, y)
        assert torch.equal(_bits(got), _bits(expected)), (pad, shape)


def test_circular_pad_has_a_second_derivative():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    f = lambda x: (lattice_nets._CircularPad.apply(x, (1, 1, 1, 1)) ** 3 * w).sum()
    assert torch.autograd.gradcheck(f, (x,)) and torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_training_is_the_same_as_with_torchs_circular_padding(kind, monkeypatch):
    """Five Adam steps of the denoising loss give bit-identical weights with torch's own circular convolution."""
    def train():
        sde = ve(25.0)
        net = _net(kind, sde)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        gen = make_generator(4)
        for _ in range(5):
            opt.zero_grad()
            dsm_loss(net, sde, _x((8, 16, 16)), gen).backward()
            opt.step()
        return net.state_dict()

    ours = train()
    monkeypatch.setattr(lattice_nets._Conv2d, "_conv_forward", torch.nn.Conv2d._conv_forward)
    torchs = train()
    for name, value in ours.items():
        assert torch.equal(_bits(value), _bits(torchs[name])), name


@pytest.mark.parametrize("kind", ["cnn", "unet"])
def test_flow_jacobian_is_the_same_as_with_torchs_circular_padding(kind, monkeypatch):
    """Under torch.func (vmap of jacrev, the exact Jacobian of lib.diffusion.flow_map) the gradient is torch's too."""
    net = _net(kind, ve(25.0))
    x = _x((3, 8, 8))

    def jacobian():
        def one(v):
            return net(v.reshape(1, 8, 8), 0.3).reshape(64)
        return torch.func.vmap(torch.func.jacrev(one))(x.reshape(3, 64))

    ours = jacobian()
    monkeypatch.setattr(lattice_nets._Conv2d, "_conv_forward", torch.nn.Conv2d._conv_forward)
    assert torch.equal(_bits(ours), _bits(jacobian()))
