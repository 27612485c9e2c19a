"""Time-conditioned score networks for real scalar fields on a periodic two-dimensional lattice.

A configuration :math:`\\phi_x` on an :math:`L \\times L` lattice with periodic boundary conditions (shape
``(B, L, L)`` or ``(B, 1, L, L)``) is mapped to the score :math:`s(\\phi, t) = \\nabla_\\phi \\log p(\\phi, t)` of
the same shape.  Two architectures share one set of building blocks:

* ``kind="cnn"``: a small residual CNN at the full resolution, cheap enough for the CPU;
* ``kind="unet"``: a multi-scale U-Net (stride-2 downsampling, nearest-neighbour upsampling, skip connections),
  the variant of the score network of Song et al. used by the authors for :math:`L = 32` with widths
  ``(32, 64, 128, 256)``.

Every convolution pads circularly (``padding_mode="circular"``), so the lattice is a torus and no site is special.
``padding="zeros"`` pads with zeros instead, as the authors' network does: the lattice then has edges, and the network
no longer commutes with translations (kept to show what that costs, :doc:`/book/part3/network_symmetry`).
The time enters as in NCSN++ (Song et al. 2021): a Gaussian Fourier embedding :math:`e(t)`
(:class:`lib.diffusion.nets.GaussianFourierEmbedding`) is passed through a dense layer and the activation,
:math:`\\tau = \\phi(E\\,e(t) + c)`, and every residual block adds its own per-channel projection of it,

.. math::

    h \\mapsto S h + C_2\\,\\phi\\big(\\mathrm{GN}\\big(C_1\\,\\phi(\\mathrm{GN}(h))\\big) + D\\,\\tau\\big),

with :math:`C_{1,2}` circular :math:`k \\times k` convolutions, GN a group normalisation, :math:`D` a dense layer
broadcast over the lattice and :math:`S` the identity (or a :math:`1 \\times 1` convolution when the width changes).
The time is added *after* the normalisation: a per-channel constant added before it would be partly (with one channel
per group, entirely) removed again by the subtraction of the group mean.
As for :class:`lib.diffusion.nets.ScoreMLP`, ``sde`` divides the output by :math:`\\sqrt{\\Xi(t)}` and ``odd=True`` makes
:math:`s(-\\phi, t) = -s(\\phi, t)` exact, the :math:`Z_2` symmetry of the :math:`\\phi^4` action.

Derived and used in :doc:`/book/part3/phi4_diffusion`.  Nothing is computed at import time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lib.core.checks import require_int
from lib.diffusion.nets import ACTIVATIONS, TimeConditionedScore, check_time_conditioning
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["KINDS", "PADDINGS", "LatticeNetConfig", "LatticeScoreNet", "build_lattice_net"]

#: the network kinds of :class:`LatticeNetConfig`
KINDS = ("cnn", "unet")
#: how the convolutions pad the lattice, "circular" (periodic) or "zeros" (edges, as in the authors' network)
PADDINGS = ("circular", "zeros")

_OUT_SCALE = 0.1  # the output convolution is drawn 10x smaller than the others: the initial score is close to 0
_MAX_GROUPS = 32  # group normalisation: the most groups <= min(width // 4, 32) that divide the width (NCSN++)


@dataclass(frozen=True)
class LatticeNetConfig:
    """Architecture of :class:`LatticeScoreNet` (hashable, so it can key the artefact cache)."""

    kind: str = "cnn"  # "cnn": residual CNN at full resolution (CPU); "unet": multi-scale U-Net (the authors', L = 32)
    channels: tuple[int, ...] = (16, 16, 16)  # cnn: width of each residual block; unet: width per level, fine to
    # coarse (the authors': (32, 64, 128, 256)); each >= 1, non-empty
    kernel_size: int = 3  # side of every (non-1x1) convolution kernel; odd, >= 1
    embed_dim: int = 32  # size of the Fourier time embedding; even, >= 2
    embed_scale: float = 16.0  # std of the fixed Fourier frequencies W; > 0
    activation: str = "silu"  # one of lib.diffusion.nets.ACTIVATIONS (Song et al.: SiLU / swish)
    odd: bool = True  # antisymmetrise, s(-phi) = -s(phi) exactly (Z2 symmetry of the phi^4 action)
    group_norm: bool = True  # group norms in the residual blocks (Song et al.); they normalise each configuration,
    # which removes its overall amplitude from the features: switch off for small, nearly Gaussian lattices
    padding: str = "circular"  # "circular" (periodic lattice, translation covariant) or "zeros" (the authors' choice:
    # edges at the lattice boundary, no translation symmetry)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.channels, (str, bytes)) or not isinstance(self.channels, (tuple, list)) \
                or not self.channels:
            raise ValueError(f"channels must be a non-empty sequence of widths, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(require_int(c, "channels width") for c in self.channels))
        if require_int(self.kernel_size, "kernel_size") % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred stencil), got {self.kernel_size}")
        check_time_conditioning(self)
        if not isinstance(self.group_norm, bool):
            raise ValueError(f"group_norm must be True or False, got {self.group_norm!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")

    @property
    def levels(self) -> int:
        """The number of resolutions, ``len(channels)`` for the U-Net and 1 for the CNN."""
        return len(self.channels) if self.kind == "unet" else 1

    @property
    def period(self) -> int:
        """Translations by multiples of ``period`` sites commute with the network exactly: :math:`2^{levels - 1}`."""
        return 2 ** (self.levels - 1)


def _channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-D tensor is stored channels-last (False inside :func:`torch.func.vmap`, which cannot say)."""
    try:
        return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # "querying is_contiguous inside of vmap": batched tensors are padded contiguously
        return False


def _wrap(x: torch.Tensor, pad: tuple) -> torch.Tensor:
    """The periodic halo of width ``pad = (left, right, top, bottom)`` around the last two axes: the values of
    ``F.pad(x, pad, mode="circular")`` (rows first, then columns, corners included), in the memory format of ``x``
    (torch's circular padding returns a contiguous tensor, which costs a channels-last network a reordering at every
    convolution).  One allocation and five copies; works under :mod:`torch.func` transforms."""
    left, right, top, bottom = pad
    H, W = x.shape[-2], x.shape[-1]
    if x.ndim == 4 and _channels_last(x):
        B, C = x.shape[:2]
        out = x.new_empty((B, H + top + bottom, W + left + right, C)).permute(0, 3, 1, 2)  # channels-last strides
    else:
        out = x.new_empty(x.shape[:-2] + (H + top + bottom, W + left + right))
    out[..., top:top + H, left:left + W] = x
    if top:
        out[..., :top, left:left + W] = x[..., H - top:, :]
    if bottom:
        out[..., top + H:, left:left + W] = x[..., :bottom, :]
    if left:
        out[..., :left] = out[..., W:W + left]
    if right:
        out[..., left + W:] = out[..., left:left + right]
    return out


class _CircularPad(torch.autograd.Function):
    """Circular padding (the values of ``F.pad(x, pad, mode="circular")``) with a backward pass that folds the halo's
    gradient back in place, and a forward-mode rule.

    The forward pass copies the halo into a new tensor of the input's memory format (:func:`_wrap`), so a channels-last
    tensor stays channels-last.  Torch differentiates its circular padding as a chain of slice copies, each of whose
    backward passes allocates a zero tensor of the padded size; this backward clones the gradient once and adds each
    halo onto the sites it was copied from, in the reverse order of torch's copies (rows last to first, then columns),
    so every sum is grouped as torch groups it and the gradient is the same bit for bit (tested against torch's in
    ``tests/test_lattice_nets.py``).  In a training step of the book's U-Net at :math:`L = 32` torch's version spends
    about a third of the time in these copies (``benchmarks/phi4_dm_cost.py --padding`` measures the ratio).
    The backward is made of differentiable operations, so double backward works, and the function supports the
    :mod:`torch.func` transforms (``vmap``, ``jacrev`` and, through :meth:`jvp`, ``jacfwd``: the flow's exact Jacobian
    in :mod:`lib.diffusion.flow_map`).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, pad: tuple) -> torch.Tensor:
        return _wrap(x, pad)

    @staticmethod
    def jvp(ctx, x_tangent: torch.Tensor, pad_tangent=None) -> torch.Tensor:
        # the padding is linear: the tangent is padded as the input is
        return _wrap(x_tangent, ctx.pad)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.pad = inputs[1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        left, right, top, bottom = ctx.pad
        g = grad.clone()
        H, W = g.shape[-2], g.shape[-1]
        if bottom:
            g[..., top:top + bottom, :] += g[..., H - bottom:, :]
        if top:
            g[..., H - bottom - top:H - bottom, :] += g[..., :top, :]
        if right:
            g[..., left:left + right] += g[..., W - right:]
        if left:
            g[..., W - right - left:W - right] += g[..., :left]
        # contiguous, as torch's own gradient is: the layer before (e.g. upsampling) then sums in the same order
        return g[..., top:H - bottom, left:W - right].contiguous(), None


class _Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose circular padding is :class:`_CircularPad` (same parameters, same numbers, faster backward)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "circular":
            return super()._conv_forward(x, weight, bias)
        return F.conv2d(_CircularPad.apply(x, self._reversed_padding_repeated_twice), weight, bias, self.stride, 0,
                        self.dilation, self.groups)


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, device=None, padding: str = "circular") -> nn.Conv2d:
    """A ``k x k`` convolution padded circularly or with zeros (``L -> L / stride`` for ``L`` divisible by ``stride``)."""
    return _Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode=padding, device=device)


def _group_norm(c: int, device=None, enabled: bool = True) -> nn.Module:
    """Group norm over ``c`` channels with at least 4 channels per group where possible (Song et al.'s choice);
    the identity when not ``enabled``."""
    if not enabled:
        return nn.Identity()
    groups = max(g for g in range(1, max(1, min(c // 4, _MAX_GROUPS)) + 1) if c % g == 0)
    return nn.GroupNorm(groups, c, device=device)


def _uniform_init(layer: nn.Module, generator: torch.Generator, scale: float = 1.0) -> None:
    """Weight and bias of a linear or convolutional layer uniform in :math:`\\pm\\,\\text{scale}/\\sqrt{\\text{fan-in}}`.

    The fan-in is ``in_features`` for a dense layer and ``in_channels * k * k`` for a convolution (PyTorch's default
    law, drawn from ``generator``).
    """
    bound = scale / math.sqrt(layer.weight[0].numel())
    layer.weight.uniform_(-bound, bound, generator=generator)
    layer.bias.uniform_(-bound, bound, generator=generator)


class _ResBlock(nn.Module):
    """:math:`h \\mapsto S h + C_2\\,\\phi(\\mathrm{GN}(C_1\\,\\phi(\\mathrm{GN}(h))) + D\\tau)`, circular, width
    ``c_in -> c_out``."""

    def __init__(self, c_in: int, c_out: int, k: int, embed_dim: int, act: nn.Module, device=None,
                 norm: bool = True, padding: str = "circular"):
        super().__init__()
        self.act = act
        self.norm1, self.norm2 = _group_norm(c_in, device, norm), _group_norm(c_out, device, norm)
        self.conv1 = _conv(c_in, c_out, k, device=device, padding=padding)
        self.conv2 = _conv(c_out, c_out, k, device=device, padding=padding)
        self.temb = nn.Linear(embed_dim, c_out, device=device)
        self.skip = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, device=device)

    def forward(self, h: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.act(self.norm1(h)))
        y = self.conv2(self.act(self.norm2(y) + self.temb(tau)[:, :, None, None]))
        return (h if self.skip is None else self.skip(h)) + y


class LatticeScoreNet(TimeConditionedScore):
    """Score network :math:`s_\\theta(\\phi, t)` for a real scalar field on a periodic :math:`L \\times L` lattice.

    Parameters
    ----------
    config : LatticeNetConfig
        Architecture.
    sde : LinearDriftSDE, optional
        If given, the output is :math:`\\mathrm{net}(\\phi, t) / \\sqrt{\\Xi(t)}` (the network predicts
        :math:`-\\eta`); then ``t`` must be > 0 and lie in ``[0, T]``.
    generator : torch.Generator, optional
        CPU generator for the initial weights (dense layers and convolutions uniform in
        :math:`\\pm 1/\\sqrt{\\text{fan-in}}`, fan-in = ``in_channels * k * k`` for a convolution, the output
        convolution 10 times smaller; Fourier frequencies normal; group norms start as the identity);
        ``make_generator(0)`` if omitted.  The global random state is never used.

    Notes
    -----
    ``kind="cnn"``: a circular ``k x k`` input convolution to ``channels[0]``, one residual block per entry of
    ``channels`` (a :math:`1 \\times 1` convolution on the skip path where the width changes), group norm, activation
    and a circular output convolution to one channel.  Every layer acts at the full resolution with circular
    padding, so the network commutes with every lattice translation,
    ``net(torch.roll(phi, s, (-2, -1))) == torch.roll(net(phi), s, (-2, -1))`` up to rounding, for any ``L``.

    ``kind="unet"``: level ``i`` works on a ``L / 2**i`` lattice with ``channels[i]`` channels.  Going down, a
    stride-2 circular convolution halves the lattice and changes the width, followed by a residual block; going up,
    nearest-neighbour upsampling and a circular convolution return to the finer level, whose skip connection is
    concatenated before a residual block.  ``L`` must be divisible by :math:`2^{levels - 1}`.  A stride-2 layer
    commutes only with translations by even numbers of sites, so the U-Net is equivariant exactly under
    translations by multiples of :math:`2^{levels - 1}` (``config.period``); a shift by one site is only
    approximately a symmetry (learned, not built in).

    The module is created on the CPU in float32; move it with ``.to(device)``.  Inputs must live on the module's
    device; they are cast to its dtype and the output is returned in the dtype of ``x``.
    Derived in :doc:`/book/part3/phi4_diffusion`.
    """

    def __init__(self, config: LatticeNetConfig, sde: LinearDriftSDE | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(config, LatticeNetConfig, sde, generator)
        meta = self.META
        k, e, ch = config.kernel_size, config.embed_dim, config.channels
        self.act = ACTIVATIONS[config.activation]()
        pad = config.padding
        self.conv_in = _conv(1, ch[0], k, device=meta, padding=pad)

        def block(a, b):
            return _ResBlock(a, b, k, e, self.act, device=meta, norm=config.group_norm, padding=pad)

        if config.kind == "cnn":
            widths = (ch[0],) + ch
            self.blocks = nn.ModuleList(block(a, b) for a, b in zip(widths[:-1], widths[1:]))
            c_last = ch[-1]
        else:
            self.enc = nn.ModuleList([block(ch[0], ch[0])])
            self.down = nn.ModuleList()
            for a, b in zip(ch[:-1], ch[1:]):
                self.down.append(_conv(a, b, k, stride=2, device=meta, padding=pad))
                self.enc.append(block(b, b))
            self.mid = block(ch[-1], ch[-1])
            self.up = nn.ModuleList(_conv(b, a, k, device=meta, padding=pad) for a, b in zip(ch[:-1], ch[1:]))
            self.dec = nn.ModuleList(block(2 * a, a) for a in ch[:-1])
            c_last = ch[0]
        self.norm_out = _group_norm(c_last, meta, config.group_norm)
        self.conv_out = _conv(c_last, 1, k, device=meta, padding=pad)
        self._initialise(generator)
        # channels-last weights: every activation then stays channels-last (the circular padding keeps the layout),
        # which made the small-channel U-Net (8, 16, 32) at L = 32 on one CPU thread 1.7 times faster per forward pass
        # and 1.2 times per training step (benchmarks/phi4_dm_cost.py --layout); the values of the weights are those
        # drawn above
        self.to(memory_format=torch.channels_last)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Draw all weights from ``generator`` (see the class docstring); the output convolution is scaled by 0.1."""
        self._check_cpu(generator)
        with torch.no_grad():
            self.embed.reset_parameters(generator)
            for module in self.modules():  # registration order: deterministic
                if isinstance(module, nn.GroupNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                elif isinstance(module, (nn.Linear, nn.Conv2d)):
                    _uniform_init(module, generator, _OUT_SCALE if module is self.conv_out else 1.0)

    # --- the network on a (2B or B, 1, L, L) batch in the module's dtype -------------------------------------------
    def _net(self, h: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(h)
        if self.config.kind == "cnn":
            for blk in self.blocks:
                h = blk(h, tau)
        else:
            h = self.enc[0](h, tau)
            skips = [h]
            for down, blk in zip(self.down, self.enc[1:]):
                h = blk(down(h), tau)
                skips.append(h)
            h = self.mid(skips.pop(), tau)
            for up, blk in zip(reversed(self.up), reversed(self.dec)):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
                h = blk(torch.cat([h, skips.pop()], dim=1), tau)
        return self.conv_out(self.act(self.norm_out(h)))

    def _check_lattice(self, x) -> int:
        """Lattice side ``L`` of a ``(B, L, L)`` or ``(B, 1, L, L)`` batch; ``ValueError`` naming the shape if not."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"x must be a floating tensor of shape (B, L, L) or (B, 1, L, L), "
                             f"got {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
        shape = tuple(x.shape)
        square = (x.ndim == 3 and shape[1] == shape[2]) or (x.ndim == 4 and shape[1] == 1 and shape[2] == shape[3])
        if not square or shape[-1] < 1:
            raise ValueError(f"x must have shape (B, L, L) or (B, 1, L, L) (a periodic square lattice), got {shape}")
        L, cfg = shape[-1], self.config
        if L % cfg.period:
            raise ValueError(f"the U-Net with {cfg.levels} levels needs L divisible by 2**{cfg.levels - 1} = "
                             f"{cfg.period}, got x of shape {shape}")
        if L // cfg.period < cfg.kernel_size // 2:
            raise ValueError(f"circular padding of a kernel of size {cfg.kernel_size} needs a coarsest lattice of at "
                             f"least {cfg.kernel_size // 2} sites, got x of shape {shape}")
        return L

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(B, L, L)`` or ``(B, 1, L, L)`` as ``(B, 1, L, L)`` in the module's dtype."""
        L = self._check_lattice(x)
        return x.reshape(x.shape[0], 1, L, L).to(self.conv_out.weight.dtype)

    def _odd(self, h: torch.Tensor, tau: torch.Tensor, same_time: bool) -> torch.Tensor:
        """With ``odd=True`` the network runs once on the batch concatenated with its negative,
        :math:`s = [\\mathrm{net}(\\phi) - \\mathrm{net}(-\\phi)] / 2`: both halves take the same path, so
        :math:`s(-\\phi) = -s(\\phi)` bit for bit."""
        batch = h.shape[0]
        y = self._net(torch.cat([h, -h]), tau if same_time else torch.cat([tau, tau]))
        return 0.5 * (y[:batch] - y[batch:])


def build_lattice_net(config: LatticeNetConfig, sde: LinearDriftSDE | None = None,
                      generator: torch.Generator | None = None) -> LatticeScoreNet:
    """The lattice score network of ``config``; divided by :math:`\\sqrt{\\Xi(t)}` of ``sde`` when given.

    ``generator`` (CPU) draws the initial weights (``make_generator(0)`` when omitted), so two calls with equally
    seeded generators give identical networks.  See :class:`LatticeScoreNet`; derived in
    :doc:`/book/part3/phi4_diffusion`.
    """
    return LatticeScoreNet(config, sde, generator)
