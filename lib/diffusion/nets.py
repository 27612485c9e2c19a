"""Time-conditioned score networks for low-dimensional data (the two-peak model, complex Langevin pairs).

The network approximates the score :math:`s(x, t) = \\nabla_x \\log p(x, t)` of the forward process.  A
configuration of ``dim`` real numbers (any trailing shape: ``(B,)``, ``(B, 2)``, ``(B, 3, 3)``) is flattened,
fed through an MLP whose hidden layers all receive a Gaussian Fourier embedding of the time (Tancik et al.
2020, Song et al. 2021),

.. math::

    e(t) = \\big[\\sin 2\\pi W t,\\ \\cos 2\\pi W t\\big], \\quad W_j \\sim \\mathcal N(0, \\varsigma^2)
    \\text{ (fixed)}, \\qquad
    h_{l+1} = \\phi\\big(A_l h_l + b_l + D_l\\,\\phi(E\\,e(t) + c)\\big),

and reshaped back to the shape of ``x``.  Two options build physics into the network:

* ``sde`` given: the output is divided by the width of the transition kernel,
  :math:`s(x, t) = \\mathrm{net}(x, t) / \\sqrt{\\Xi(t)}` (the tutorial of Song et al.): the network then
  predicts :math:`-\\eta`, which is :math:`O(1)` at every time, instead of a score that grows like
  :math:`\\Xi(t)^{-1/2}` as :math:`t \\to 0`;
* ``odd=True``: the output is antisymmetrised, :math:`s(x) = [\\mathrm{net}(x) - \\mathrm{net}(-x)] / 2`, so
  :math:`s(-x, t) = -s(x, t)` holds exactly, as for every :math:`Z_2`-symmetric target.

The authors' toy model used hidden layers ``[64, 64]``, a time embedding of size 128 and LeakyReLU.
Derived and used in :doc:`/book/part2/two_peak`.  Nothing is computed at import time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lib.core.checks import expand_like, require_batch, require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["ACTIVATIONS", "MLPConfig", "GaussianFourierEmbedding", "ScoreMLP", "build_mlp", "score_fn",
           "rescaled_score_fn", "batch_times", "divide_by_kernel_width", "TimeConditionedScore", "check_time_conditioning"]

#: activation functions by name
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "leaky_relu": nn.LeakyReLU,  # the authors' choice (negative slope 0.01)
    "silu": nn.SiLU,  # Song et al.'s choice (swish)
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}

def check_time_conditioning(config) -> None:
    """Validate the fields every score-network configuration shares: ``embed_dim`` (even, >= 2), ``embed_scale``
    (> 0, stored as a float), ``activation`` (a key of :data:`ACTIVATIONS`) and ``odd`` (a bool)."""
    if require_int(config.embed_dim, "embed_dim", lo=2) % 2:
        raise ValueError(f"embed_dim must be even (sine and cosine features), got {config.embed_dim}")
    object.__setattr__(config, "embed_scale", require_positive(config.embed_scale, "embed_scale"))
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {config.activation!r}")
    if not isinstance(config.odd, bool):
        raise ValueError(f"odd must be True or False, got {config.odd!r}")


@dataclass(frozen=True)
class MLPConfig:
    """Architecture of :class:`ScoreMLP` (hashable, so it can key the artefact cache)."""

    dim: int  # number of real degrees of freedom of one configuration (product of the trailing shape); >= 1
    hidden: tuple[int, ...] = (64, 64)  # widths of the hidden layers, each >= 1 (the authors': [64, 64])
    embed_dim: int = 128  # size of the Fourier time embedding; even, >= 2 (the authors': 128)
    embed_scale: float = 30.0  # std of the fixed Fourier frequencies W (Song et al.: 30); > 0
    activation: str = "leaky_relu"  # one of ACTIVATIONS (the authors': LeakyReLU)
    odd: bool = False  # antisymmetrise, s(-x) = -s(x) exactly (for Z2-symmetric targets)

    def __post_init__(self):
        require_int(self.dim, "dim")
        if isinstance(self.hidden, int) or not isinstance(self.hidden, (tuple, list)) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty sequence of layer widths, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(require_int(w, "hidden width") for w in self.hidden))
        check_time_conditioning(self)


class GaussianFourierEmbedding(nn.Module):
    """Random Fourier features of the time, :math:`e(t) = [\\sin 2\\pi W t, \\cos 2\\pi W t]`.

    The frequencies :math:`W_j \\sim \\mathcal N(0, \\varsigma^2)` are a fixed buffer (not trained, but saved in
    the ``state_dict``), drawn at initialisation (Tancik et al. 2020; Song et al. 2021).
    """

    def __init__(self, embed_dim: int, scale: float, device=None):
        super().__init__()
        self.scale = scale
        self.register_buffer("W", torch.empty(embed_dim // 2, device=device))

    def reset_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.W.normal_(0.0, self.scale, generator=generator)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = 2.0 * math.pi * t[:, None] * self.W[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class TimeConditionedScore(nn.Module):
    """The skeleton every score network of :mod:`lib` shares: validated construction, a Fourier time embedding
    computed once per call when one time serves the whole batch, optional antisymmetrisation, and the division by
    the kernel width :math:`\\sqrt{\\Xi(t)}`.

    A subclass builds its layers on the ``meta`` device after ``super().__init__`` (``META``), then calls
    ``_initialise(generator)``; it implements ``_as_input(x)`` (validate ``x``, return the network's input in the module's
    dtype), ``_net(h, emb)`` and ``reset_parameters(generator)``.  ``_odd(h, emb, same_time)`` antisymmetrises;
    the default evaluates the network twice, :math:`[\\mathrm{net}(h) - \\mathrm{net}(-h)]/2`.
    """

    META = torch.device("meta")  # build without touching any random state, initialise afterwards

    def __init__(self, config, config_type: type, sde: LinearDriftSDE | None, generator: torch.Generator | None):
        super().__init__()
        if not isinstance(config, config_type):
            raise ValueError(f"config must be a{'n' if config_type.__name__[0] in 'AEIMO' else ''} "
                             f"{config_type.__name__}, got {type(config).__name__}")
        if sde is not None and not isinstance(sde, LinearDriftSDE):
            raise ValueError(f"sde must be a LinearDriftSDE or None, got {type(sde).__name__}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.config, self.sde = config, sde
        self.embed = GaussianFourierEmbedding(config.embed_dim, config.embed_scale, device=self.META)
        self.embed_dense = nn.Linear(config.embed_dim, config.embed_dim, device=self.META)

    def _initialise(self, generator: torch.Generator | None) -> None:
        self.to_empty(device="cpu")
        self.reset_parameters(make_generator(0) if generator is None else generator)

    @staticmethod
    def _check_cpu(generator: torch.Generator) -> None:
        if generator.device.type != "cpu":
            raise ValueError("initialise the network with a CPU generator, then move it with .to(device)")

    def _odd(self, h: torch.Tensor, emb: torch.Tensor, same_time: bool) -> torch.Tensor:
        # two calls of the same shape, so that s(-x) = -s(x) holds bit for bit
        return 0.5 * (self._net(h, emb) - self._net(-h, emb))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        """Score :math:`s_\\theta(x, t)`, a tensor of the shape, dtype and device of ``x``; ``t`` is a number, a 0-d
        tensor or a ``(B,)`` tensor."""
        h = self._as_input(x)
        tt, tb, same_time = batch_times(t, x.shape[0], x.device)
        # One time for the whole batch (the samplers' case): embed it once and broadcast it in _net; this
        # removes the (B, embed_dim) x (embed_dim, embed_dim) product, ~90% of the cost of a score evaluation.
        emb = self.act(self.embed_dense(self.embed((tb[:1] if same_time else tb).to(h.dtype))))
        y = self._odd(h, emb, same_time) if self.config.odd else self._net(h, emb)
        return divide_by_kernel_width(y.reshape(x.shape).to(x.dtype), self.sde, tt)


class ScoreMLP(TimeConditionedScore):
    """MLP score network :math:`s_\\theta(x, t)` for configurations of ``config.dim`` real numbers.

    Parameters
    ----------
    config : MLPConfig
        Architecture.
    sde : LinearDriftSDE, optional
        If given, the output is :math:`\\mathrm{net}(x, t) / \\sqrt{\\Xi(t)}` (the network predicts
        :math:`-\\eta`); then ``t`` must be > 0 and lie in ``[0, T]``.
    generator : torch.Generator, optional
        CPU generator for the initial weights (PyTorch's default uniform
        :math:`\\pm 1/\\sqrt{\\text{fan-in}}` law, Fourier frequencies normal); ``make_generator(0)`` if omitted.
        The global random state is never used.

    The module is created on the CPU in float32; move it with ``.to(device)``.  Inputs must live on the
    module's device; they are cast to its dtype and the output is returned in the dtype of ``x``.
    Derived in :doc:`/book/part2/two_peak`.
    """

    def __init__(self, config: MLPConfig, sde: LinearDriftSDE | None = None, generator: torch.Generator | None = None):
        super().__init__(config, MLPConfig, sde, generator)
        act, meta = ACTIVATIONS[config.activation], self.META
        widths = (config.dim,) + config.hidden
        self.layers = nn.ModuleList(nn.Linear(a, b, device=meta) for a, b in zip(widths[:-1], widths[1:]))
        self.time_dense = nn.ModuleList(nn.Linear(config.embed_dim, b, device=meta) for b in config.hidden)
        self.out = nn.Linear(widths[-1], config.dim, device=meta)
        self.act = act()
        self._initialise(generator)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Draw all weights from ``generator``: linear layers uniform in :math:`\\pm 1/\\sqrt{\\text{fan-in}}`."""
        self._check_cpu(generator)
        with torch.no_grad():
            self.embed.reset_parameters(generator)
            for lin in [self.embed_dense, *self.layers, *self.time_dense, self.out]:
                bound = 1.0 / math.sqrt(lin.in_features)
                lin.weight.uniform_(-bound, bound, generator=generator)
                lin.bias.uniform_(-bound, bound, generator=generator)

    def _net(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer, tdense in zip(self.layers, self.time_dense):
            h = self.act(layer(h) + tdense(emb))
        return self.out(h)

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(B,)`` or ``(B, ...)`` with ``dim`` numbers per configuration, as ``(B, dim)``."""
        require_batch(x, "x")
        batch, n = x.shape[0], math.prod(x.shape[1:])
        if n != self.config.dim:
            raise ValueError(f"the network expects {self.config.dim} numbers per configuration, "
                             f"got x of shape {tuple(x.shape)}")
        return x.reshape(batch, n).to(self.out.weight.dtype)


def batch_times(t, batch: int, device) -> tuple:
    """``(tt, tb, same_time)`` for a network call: ``t`` as a float tensor, expanded to ``(batch,)``, and whether one
    time serves the whole batch (then the time embedding is computed once).  ``t`` is a number, a 0-d tensor or a
    ``(batch,)`` tensor; anything else raises ``ValueError``."""
    tt = torch.as_tensor(t, device=device)
    tt = tt if tt.is_floating_point() else tt.to(torch.float64)
    if tt.ndim == 0:
        tb = tt.expand(batch)
    elif tt.shape == (batch,):
        tb = tt
    else:
        raise ValueError(f"t must be a number or have shape ({batch},), got shape {tuple(tt.shape)}")
    return tt, tb, tt.ndim == 0 or batch <= 1 or bool((tb == tb[0]).all())


def divide_by_kernel_width(y: torch.Tensor, sde: LinearDriftSDE | None, tt: torch.Tensor) -> torch.Tensor:
    r""":math:`y / \sqrt{\Xi(t)}` (the network's output as a score, see the module docstring); ``y`` if ``sde`` is
    None.  ``ValueError`` if some :math:`t \le 0`."""
    if sde is None:
        return y
    std = torch.sqrt(sde.xi(tt.to(torch.float64)))
    if not bool((std > 0).all()):
        raise ValueError("a network scaled by 1/sqrt(Xi(t)) needs t > 0")
    return y / expand_like(std, y)


def build_mlp(config: MLPConfig, sde: LinearDriftSDE | None = None,
              generator: torch.Generator | None = None) -> ScoreMLP:
    """The score network of ``config``; divided by :math:`\\sqrt{\\Xi(t)}` of ``sde`` when given.

    ``generator`` (CPU) draws the initial weights (``make_generator(0)`` when omitted), so two calls with equally
    seeded generators give identical networks.  See :class:`ScoreMLP`; derived in :doc:`/book/part2/two_peak`.
    """
    return ScoreMLP(config, sde, generator)


def score_fn(model: nn.Module, chunk_size: int | None = 16384) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Adapter ``score(x, t)`` of a trained network for :func:`lib.diffusion.solvers.backward_em`.

    Puts ``model`` in evaluation mode and evaluates it under :func:`torch.no_grad`; ``t`` is a ``(B,)`` tensor
    (or a number).  The result has the shape, dtype and device of ``x``.  Large batches are evaluated in pieces of
    ``chunk_size`` samples (``None``: in one piece): the activations then stay in the CPU cache, which makes a
    sampler step with :math:`10^5` samples about 2.5 times faster; the result does not depend on it.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if chunk_size is not None:
        require_int(chunk_size, "chunk_size")
    model.eval()

    def score(x: torch.Tensor, t) -> torch.Tensor:
        with torch.no_grad():
            if chunk_size is None or x.shape[0] <= chunk_size:
                return model(x, t)
            tt = torch.as_tensor(t, device=x.device)
            tt = tt.expand(x.shape[0]) if tt.ndim == 0 else tt
            return torch.cat([model(xc, tc) for xc, tc in zip(x.split(chunk_size), tt.split(chunk_size))])

    return score


def rescaled_score_fn(score: Callable, scale) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Score in the original coordinates :math:`x = a \odot u` of a model trained on rescaled data :math:`u = x / a`.

    With :math:`p_x(x) = p_u(x / a) / \prod a`, the chain rule gives

    .. math::

        \nabla_x \log p_x(x, t) = \nabla_u \log p_u(u, t)\big|_{u = x / a} \,/\, a

    (elementwise). ``scale`` (:math:`a`, positive) is a number or a tensor of the configuration shape, e.g. ``(2,)``
    for :math:`(x, y)` pairs; it is broadcast against the trailing axes of ``x``.  Rescaling one direction of the data
    makes a thin direction as wide as the others, so that the isotropic noise of the forward process resolves both
    equally (used for the complex Langevin strip in :doc:`/book/part4/cl_diffusion`).  Note that the noise in the
    original coordinates is then :math:`a \odot` (isotropic noise): :math:`p_x(x, t)` is the data convolved with
    :math:`\mathcal N(0, \Xi(t)\,\mathrm{diag}(a^2))`.
    """
    a = torch.as_tensor(scale, dtype=torch.float64)
    if not bool(torch.isfinite(a).all()) or not bool((a > 0).all()):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")

    def rescaled(x: torch.Tensor, t) -> torch.Tensor:
        aa = a.to(device=x.device, dtype=x.dtype)
        return score(x / aa, t) / aa

    return rescaled
