r"""The two-dimensional lattice :math:`\phi^4` theory: parameters, action, force, starts.

On an :math:`L \times L` periodic lattice (volume :math:`V = L^2`) the action in the
hopping-parameter form used by the papers is

.. math::
    S[\phi] = \sum_x \Big[ -2\kappa \sum_{\mu=1}^{2} \phi(x)\,\phi(x+\hat\mu)
              + (1 - 2\lambda)\,\phi(x)^2 + \lambda\,\phi(x)^4 \Big],

and the force that drives Hybrid Monte Carlo (:mod:`lib.physics.hmc`) is its negative gradient

.. math::
    F(x) = -\frac{\partial S}{\partial \phi(x)}
         = 2\kappa \sum_{\mu} \big[\phi(x+\hat\mu) + \phi(x-\hat\mu)\big]
           - 2(1 - 2\lambda)\,\phi(x) - 4\lambda\,\phi(x)^3 .

Fields are batch-first tensors of shape ``(B, L, L)`` (one configuration per batch
element); results follow the dtype and device of the input.  Derived in
:doc:`/book/part3/phi4_hmc` (eqs. ``eq-phi4-action`` and ``eq-phi4-force``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lib.core import random as _random
from lib.core.checks import require_finite, require_int, require_nonnegative

__all__ = [
    "Phi4Params",
    "check_field",
    "action",
    "force",
    "hot_start",
    "cold_start",
    "classical_vacuum",
    "classical_susceptibility",
    "symmetrise_z2",
    "free_propagator",
    "lattice_momenta",
    "lattice_momentum_squared",
]

_DIMS = (1, 2)  # the two lattice axes of a (B, L, L) batch


@dataclass(frozen=True)
class Phi4Params:
    r"""Parameters of the lattice :math:`\phi^4` action (see :mod:`lib.physics.phi4`).

    The critical hopping parameter of the Gaussian theory is :math:`\kappa_c = (1-2\lambda)/4`
    in two dimensions (mean field); with :math:`\lambda = 0` the action is bounded below
    only for :math:`\kappa < 1/4`, which is enforced.  Derived in :doc:`/book/part3/phi4_hmc`.
    """

    L: int  # linear lattice size (integer >= 2); the lattice has V = L**2 sites, periodic
    kappa: float  # hopping parameter (>= 0; < 1/4 when lam == 0); not a cumulant
    lam: float  # quartic coupling lambda (>= 0); the papers use 0.022

    def __post_init__(self):
        object.__setattr__(self, "L", require_int(self.L, "L", 2))
        kappa = require_nonnegative(self.kappa, "kappa")
        lam = require_nonnegative(self.lam, "lam (lambda)")
        if lam == 0.0 and kappa >= 0.25:
            raise ValueError(
                f"kappa must be < 1/4 when lam == 0 (the free action is unbounded below otherwise), got {kappa}"
            )
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "lam", lam)

    @property
    def volume(self) -> int:
        """Number of lattice sites :math:`V = L^2`."""
        return self.L * self.L


def check_field(phi, params: Phi4Params, name: str = "phi") -> torch.Tensor:
    """Validate a batch of fields: a finite floating-point tensor of shape ``(B, L, L)``.

    Raises
    ------
    ValueError
        Wrong type, dtype or shape (naming the expected shape ``(B, L, L)``).
    lib.core.checks.NonFiniteError
        NaN or infinity in the field (a ``ValueError``).
    """
    if not isinstance(phi, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, {params.L}, {params.L}), got {type(phi)}")
    if not phi.is_floating_point():
        raise ValueError(f"{name} must have a real floating-point dtype, got {phi.dtype}")
    if phi.dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"{name} must be float32 or float64, got {phi.dtype}: the phi^4 term overflows a 16-bit float "
                         "(65504) already at |phi| > 16")
    if phi.ndim != 3 or tuple(phi.shape[1:]) != (params.L, params.L) or phi.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (B, L, L) = (B, {params.L}, {params.L}) with B >= 1, got {tuple(phi.shape)}"
        )
    require_finite(phi, name)
    return phi


def _action(phi: torch.Tensor, kappa: float, lam: float) -> torch.Tensor:
    # sum_x sum_mu phi(x) phi(x + mu) from slices (the wrap-around bond separately): no rolled copies
    hop = ((phi[:, :-1] * phi[:, 1:]).sum(dim=_DIMS) + (phi[:, -1] * phi[:, 0]).sum(dim=1)
           + (phi[:, :, :-1] * phi[:, :, 1:]).sum(dim=_DIMS) + (phi[:, :, -1] * phi[:, :, 0]).sum(dim=1))
    phi2 = phi * phi
    local = (phi2 * lam).add_(1.0 - 2.0 * lam).mul_(phi2).sum(dim=_DIMS)  # (1 - 2 lam) phi^2 + lam phi^4
    return local - (2.0 * kappa) * hop


def _neighbour_sum(phi: torch.Tensor) -> torch.Tensor:
    """sum_mu [phi(x + mu) + phi(x - mu)] on the periodic (B, L, L) lattice (slices: fewer passes than roll)."""
    out = torch.empty_like(phi)
    out[:, 1:] = phi[:, :-1]
    out[:, :1] = phi[:, -1:]
    out[:, :-1] += phi[:, 1:]
    out[:, -1:] += phi[:, :1]
    out[:, :, 1:] += phi[:, :, :-1]
    out[:, :, :1] += phi[:, :, -1:]
    out[:, :, :-1] += phi[:, :, 1:]
    out[:, :, -1:] += phi[:, :, :1]
    return out


def _force(phi: torch.Tensor, kappa: float, lam: float) -> torch.Tensor:
    out = _neighbour_sum(phi).mul_(2.0 * kappa)
    local = (phi * phi).mul_(4.0 * lam).add_(2.0 - 4.0 * lam).mul_(phi)  # 2(1-2 lam) phi + 4 lam phi^3
    return out.sub_(local)


def action(phi: torch.Tensor, params: Phi4Params, check: bool = True) -> torch.Tensor:
    r"""The action :math:`S[\phi]` of every configuration in the batch.

    .. math::
        S[\phi] = \sum_x \Big[ -2\kappa \sum_{\mu} \phi(x)\phi(x+\hat\mu)
                  + (1-2\lambda)\phi(x)^2 + \lambda\phi(x)^4 \Big]

    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-phi4-action``).

    Parameters
    ----------
    phi : torch.Tensor
        Fields of shape ``(B, L, L)``, periodic.
    params : Phi4Params
    check : bool
        Validate ``phi`` (:func:`check_field`); samplers that validated their start field pass ``False`` in
        their inner loop.

    Returns
    -------
    torch.Tensor
        Shape ``(B,)``, dtype and device of ``phi``.
    """
    if check:
        check_field(phi, params)
    return _action(phi, params.kappa, params.lam)


def force(phi: torch.Tensor, params: Phi4Params, check: bool = True) -> torch.Tensor:
    r"""The force :math:`F = -\partial S / \partial \phi(x)` at every site.

    .. math::
        F(x) = 2\kappa \sum_\mu [\phi(x+\hat\mu) + \phi(x-\hat\mu)]
               - 2(1-2\lambda)\phi(x) - 4\lambda\phi(x)^3

    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-phi4-force``).  ``check`` as in :func:`action`.

    Returns
    -------
    torch.Tensor
        Shape ``(B, L, L)`` like ``phi``.
    """
    if check:
        check_field(phi, params)
    return _force(phi, params.kappa, params.lam)


def hot_start(params: Phi4Params, n_chains: int, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""Hot start: :math:`\phi(x) \sim \mathcal N(0, 1)` independently at every site (the authors' start).

    Noise is drawn through :func:`lib.core.random.standard_normal`.  See :doc:`/book/part3/phi4_hmc`.

    Returns
    -------
    torch.Tensor
        Shape ``(n_chains, L, L)``.  ``device`` defaults to the generator's device.
    """
    n_chains = require_int(n_chains, "n_chains")
    if device is None and generator is not None:
        device = generator.device
    like = torch.empty((n_chains, params.L, params.L), dtype=dtype, device=device)
    return _random.standard_normal(like, generator)


def classical_vacuum(params: Phi4Params) -> float:
    r"""Positive minimum :math:`\phi_0` of the action restricted to constant fields.

    For :math:`\phi(x) = c`, :math:`S/V = (1 - 2\lambda - 4\kappa) c^2 + \lambda c^4`, minimised by
    :math:`c^2 = (4\kappa - 1 + 2\lambda) / (2\lambda)` when this is positive, else :math:`c = 0`.
    See :doc:`/book/part3/phi4_hmc`.
    """
    mass_term = 1.0 - 2.0 * params.lam - 4.0 * params.kappa
    if mass_term >= 0.0 or params.lam == 0.0:
        return 0.0
    return math.sqrt(-mass_term / (2.0 * params.lam))


def classical_susceptibility(params: Phi4Params) -> float:
    r"""Tree-level susceptibility: the inverse curvature of the constant-field action per site at its minimum.

    For :math:`u(c) = (1 - 2\lambda - 4\kappa) c^2 + \lambda c^4` (:func:`classical_vacuum`) the zero mode
    :math:`M` alone has the weight :math:`e^{-V u(M)}`; expanded to second order around the minimum :math:`c_0` this
    gives :math:`\chi_2 = V\,\mathrm{Var}(M) = 1/u''(c_0)`: :math:`1/(2(1 - 2\lambda - 4\kappa))` in the
    symmetric phase, :math:`1/(4(4\kappa - 1 + 2\lambda))` in the broken phase (connected, around one vacuum).
    The leading term of the deep broken phase, where the fluctuations around the vacuum are narrow; undefined on
    the classical critical line :math:`u''(c_0) = 0`.  See :doc:`/book/part3/deep_broken_phase`.
    """
    mass_term = 1.0 - 2.0 * params.lam - 4.0 * params.kappa
    curvature = 2.0 * mass_term if classical_vacuum(params) == 0.0 else -4.0 * mass_term
    if curvature <= 0.0:
        raise ValueError(f"the constant-field action has no positive curvature at its minimum for {params} "
                         f"(classical critical point or lambda = 0 in the broken phase)")
    return 1.0 / curvature


def cold_start(params: Phi4Params, n_chains: int, value: float | None = None,
               dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""Cold (ordered) start: :math:`\phi(x) = c` at every site.

    ``value=None`` uses the classical vacuum :func:`classical_vacuum` (:math:`c = 0` in the
    symmetric phase of the classical potential).  See :doc:`/book/part3/phi4_hmc`.

    Returns
    -------
    torch.Tensor
        Shape ``(n_chains, L, L)``.
    """
    n_chains = require_int(n_chains, "n_chains")
    c = classical_vacuum(params) if value is None else value
    if not math.isfinite(float(c)):
        raise ValueError(f"value must be finite, got {value}")
    return torch.full((n_chains, params.L, params.L), float(c), dtype=dtype, device=device)


def symmetrise_z2(phi: torch.Tensor) -> torch.Tensor:
    r"""Append the :math:`Z_2` images: ``cat([phi, -phi])`` along the batch axis.

    The action is invariant under :math:`\phi \to -\phi`, so the doubled ensemble samples the
    same distribution with exactly :math:`\langle \phi^{2n+1} \rangle = 0`.  Shape-agnostic.
    See :doc:`/book/part3/phi4_hmc`.
    """
    if not isinstance(phi, torch.Tensor) or phi.ndim < 1:
        raise ValueError("phi must be a torch.Tensor with a batch axis")
    return torch.cat([phi, -phi], dim=0)


def lattice_momenta(L: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""Momenta :math:`p = 2\pi n / L` in FFT order (``n = 0, 1, ..., L-1``), shape ``(L,)``.

    Index ``n`` of :func:`torch.fft.fft2` corresponds to :math:`p = 2\pi n/L`.
    """
    L = require_int(L, "L", 2)
    return 2.0 * math.pi * torch.arange(L, dtype=dtype, device=device) / L


def lattice_momentum_squared(L: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r""":math:`\hat p^2 = 4\sum_\mu \sin^2(p_\mu/2)` on the :math:`L\times L` momentum grid, shape ``(L, L)`` in FFT
    order (the lattice Laplacian's eigenvalues; :math:`\hat p^2 \to p^2` for small :math:`p`)."""
    s2 = 4.0 * torch.sin(lattice_momenta(L, dtype=dtype, device=device) / 2) ** 2
    return s2[:, None] + s2[None, :]


def free_propagator(params: Phi4Params, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""Exact momentum-space propagator of the free theory (:math:`\lambda = 0`).

    With :math:`\tilde\phi(p) = \sum_x e^{-ipx}\phi(x)` the free action is
    :math:`S = \frac1V \sum_p |\tilde\phi(p)|^2 \,(1 - 2\kappa\sum_\mu \cos p_\mu)`, a Gaussian
    :math:`\exp(-\frac12 \phi^T M \phi)` with eigenvalues :math:`2(1 - 2\kappa \sum_\mu \cos p_\mu)`, so

    .. math::
        G(p) = \frac{\langle |\tilde\phi(p)|^2 \rangle}{V} = \frac{1}{2\,(1 - 2\kappa \sum_\mu \cos p_\mu)} .

    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-free-propagator``).

    Returns
    -------
    torch.Tensor
        Shape ``(L, L)`` in FFT order (index ``(n1, n2)`` is :math:`p = 2\pi (n_1, n_2)/L`).
    """
    if params.lam != 0.0:
        raise ValueError(f"free_propagator needs lam == 0 (the free theory), got lam = {params.lam}")
    p = lattice_momenta(params.L, dtype=dtype, device=device)
    cos_sum = torch.cos(p)[:, None] + torch.cos(p)[None, :]
    return 1.0 / (2.0 * (1.0 - 2.0 * params.kappa * cos_sum))
