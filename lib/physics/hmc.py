r"""Hybrid Monte Carlo for the lattice :math:`\phi^4` theory, many chains at once.

Each batch element of a ``(B, L, L)`` field is an independent Markov chain with its own
momenta and its own Metropolis accept/reject.  One trajectory:

1. momenta :math:`\pi(x) \sim \mathcal N(0, 1)` (through :func:`lib.core.random.standard_normal`);
2. :math:`H = \frac12 \sum_x \pi(x)^2 + S[\phi]`;
3. integrate Hamilton's equations :math:`\dot\phi = \pi`, :math:`\dot\pi = F = -\partial S/\partial\phi`
   with ``n_steps`` steps of size ``step`` of a reversible, area-preserving integrator
   (:func:`leapfrog` or :func:`omelyan`);
4. accept the end point with probability :math:`\min(1, e^{-\Delta H})`, using one uniform
   number per chain from ``torch.rand`` with the same generator (drawn after the momenta).

Derived in :doc:`/book/part3/phi4_hmc` (eqs. ``eq-hmc-hamiltonian``, ``eq-leapfrog``,
``eq-omelyan``, ``eq-metropolis``).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from lib.core import random as _random
from lib.core.random import require_generator
from lib.core.checks import (NonFiniteError, describe_members, expand_like, failing_members, require_in_range, require_int,
                             require_positive)
from lib.core.recording import Recorder
from lib.physics.phi4 import Phi4Params, action, check_field, force, hot_start

__all__ = [
    "OMELYAN_LAMBDA",
    "leapfrog",
    "omelyan",
    "INTEGRATORS",
    "HMCRun",
    "default_observables",
    "hmc",
    "chain_ends",
]

OMELYAN_LAMBDA = 0.1931833275037836
"""Parameter of Omelyan's second-order minimum-norm integrator (Omelyan, Mryglod, Folk 2003)."""


def _step_tensor(step, x: torch.Tensor) -> torch.Tensor:
    """``step`` (number, 0-d or (B,) tensor) as a tensor broadcasting against ``x``."""
    return expand_like(step, x)


def leapfrog(phi: torch.Tensor, pi: torch.Tensor, force: Callable[[torch.Tensor], torch.Tensor], step,
             n_steps: int):
    r"""Leapfrog (Störmer-Verlet) integration of :math:`\dot\phi = \pi`, :math:`\dot\pi = F(\phi)`.

    .. math::
        \pi \leftarrow \pi + \tfrac{\epsilon}{2} F(\phi), \quad
        \phi \leftarrow \phi + \epsilon \pi, \quad
        \pi \leftarrow \pi + \tfrac{\epsilon}{2} F(\phi),

    repeated ``n_steps`` times (the inner half kicks merged: ``n_steps + 1`` force evaluations).
    Reversible and area preserving; the energy error of a trajectory of fixed length is
    :math:`O(\epsilon^2)`, so :math:`\langle\Delta H\rangle \propto V\epsilon^4`.
    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-leapfrog``).

    Parameters
    ----------
    phi, pi : torch.Tensor
        Fields and momenta, same shape ``(B, ...)``; not modified.
    force : callable
        ``phi -> F(phi)``.
    step : float or torch.Tensor
        Step size :math:`\epsilon`, a number or one per chain (shape ``(B,)``).
    n_steps : int
        Number of steps (>= 1).

    Returns
    -------
    (phi, pi) : new tensors at the end of the trajectory.
    """
    n_steps = _n_steps(n_steps)
    eps = _step_tensor(step, phi)
    half = 0.5 * eps
    phi = phi.clone()
    pi = torch.addcmul(pi, half, force(phi))
    for k in range(n_steps):
        phi.addcmul_(eps, pi)
        pi.addcmul_(eps if k < n_steps - 1 else half, force(phi))
    return phi, pi


def omelyan(phi: torch.Tensor, pi: torch.Tensor, force: Callable[[torch.Tensor], torch.Tensor], step,
            n_steps: int, lam: float = OMELYAN_LAMBDA):
    r"""Omelyan's second-order minimum-norm integrator (force-first form).

    One step of size :math:`\epsilon`:

    .. math::
        \pi \leftarrow \pi + \lambda\epsilon F, \;
        \phi \leftarrow \phi + \tfrac{\epsilon}{2}\pi, \;
        \pi \leftarrow \pi + (1-2\lambda)\epsilon F, \;
        \phi \leftarrow \phi + \tfrac{\epsilon}{2}\pi, \;
        \pi \leftarrow \pi + \lambda\epsilon F,

    with :math:`\lambda = 0.1931833\ldots` minimising the norm of the leading error term
    (I. P. Omelyan, I. M. Mryglod, R. Folk, Comput. Phys. Commun. 151 (2003) 272; Takaishi and
    de Forcrand, Phys. Rev. E 73 (2006) 036706).  Two force evaluations per step (the outer
    kicks merged), an energy error about ten times smaller than leapfrog's at the same step.
    Derived in :doc:`/book/part3/phi4_hmc` (eq. ``eq-omelyan``).  Arguments as :func:`leapfrog`.
    """
    n_steps = _n_steps(n_steps)
    eps = _step_tensor(step, phi)
    half, inner, outer, last = 0.5 * eps, (1.0 - 2.0 * lam) * eps, 2.0 * lam * eps, lam * eps
    phi = phi.clone()
    pi = torch.addcmul(pi, last, force(phi))
    for k in range(n_steps):
        phi.addcmul_(half, pi)
        pi.addcmul_(inner, force(phi))
        phi.addcmul_(half, pi)
        pi.addcmul_(outer if k < n_steps - 1 else last, force(phi))
    return phi, pi


#: molecular-dynamics integrators by name
INTEGRATORS = {"leapfrog": leapfrog, "omelyan": omelyan}


class HMCRun(NamedTuple):
    """Result of :func:`hmc` (records only; configurations only where ``keep_every`` asks)."""

    phi: torch.Tensor  # final fields, (B, L, L)
    accepted: torch.Tensor  # (n_traj, B) bool, accept decision of every measured trajectory
    dH: torch.Tensor  # (n_traj, B) energy violation H_end - H_start of every measured trajectory
    traj: torch.Tensor  # (n_records,) int64, trajectory number (1 .. n_traj, after thermalisation) of each record
    records: dict  # name -> (n_records, B) tensor of the observables after those trajectories
    kept: torch.Tensor | None  # (n_kept, B, L, L) configurations every keep_every trajectories, or None
    kept_traj: torch.Tensor | None  # (n_kept,) int64 trajectory numbers of the kept configurations

    @property
    def acceptance(self) -> float:
        """Fraction of accepted trajectories over all chains and measured trajectories."""
        return float(self.accepted.to(torch.float64).mean()) if self.accepted.numel() else float("nan")


def _action_of(phi: torch.Tensor, params: Phi4Params) -> torch.Tensor:
    return action(phi, params, check=False)


def default_observables(phi: torch.Tensor, params: Phi4Params, action: torch.Tensor | None = None) -> dict:
    r"""Cheap per-configuration observables recorded by :func:`hmc` when ``observe`` is None.

    ``M`` (magnetisation :math:`M = V^{-1}\sum_x\phi(x)`), ``absM`` (:math:`|M|`), ``M2``
    (:math:`M^2`) and ``action`` (:math:`S[\phi]`; pass it when already known), each of shape ``(B,)``.
    """
    m = phi.mean(dim=(1, 2))
    if action is None:
        action = _action_of(phi, params)
    return {"M": m, "absM": m.abs(), "M2": m * m, "action": action}


def hmc(params: Phi4Params, phi0: torch.Tensor, n_traj: int, step, n_steps: int,
        generator: torch.Generator | None, integrator: str = "leapfrog", observe=None, record_every: int = 1,
        progress: bool = False, n_therm: int = 0, keep_every: int = 0, jitter: float = 0.0) -> HMCRun:
    r"""Run Hybrid Monte Carlo on every chain of the batch ``phi0`` in parallel.

    Each chain (batch element) has its own momenta and its own Metropolis test
    :math:`u < e^{-\Delta H}`, :math:`u \sim U(0,1)`, :math:`H = \frac12\sum_x\pi^2 + S[\phi]`.
    Per trajectory the generator is used for ``B`` uniform numbers for the step sizes (only when
    ``jitter > 0``), the momenta (:func:`lib.core.random.standard_normal`) and ``B`` uniform numbers
    for the accept/reject (``torch.rand``), in this order.  Derived in :doc:`/book/part3/phi4_hmc`
    (eqs. ``eq-hmc-hamiltonian`` to ``eq-metropolis``).

    With ``jitter > 0`` every chain draws its step size for each trajectory uniformly from
    :math:`[\epsilon(1 - j), \epsilon(1 + j)]` (``n_steps`` fixed), i.e. a random trajectory
    length.  The choice does not depend on the state, so detailed balance holds for each
    value; it removes the resonances of a fixed trajectory length with the nearly harmonic
    modes, which otherwise make some observables (the action, or single momentum modes of a
    free field) decorrelate very slowly (Mackenzie, Phys. Lett. B 226 (1989) 369).

    Parameters
    ----------
    params : Phi4Params
    phi0 : torch.Tensor
        Start fields ``(B, L, L)`` (e.g. :func:`lib.physics.phi4.hot_start`); dtype and device are kept.
    n_traj : int
        Number of measured trajectories (>= 0) after ``n_therm`` thermalisation trajectories.
    step : float or torch.Tensor
        Step size (> 0), a number or one per chain (shape ``(B,)``).
    n_steps : int
        Integration steps per trajectory (>= 1); trajectory length ``step * n_steps``.
    generator : torch.Generator or None
        Source of all randomness (None: torch's default generator).
    integrator : {"leapfrog", "omelyan"}
    observe : callable or None
        ``(phi, k) -> dict[str, (B,) tensor]`` recorded after every ``record_every``-th measured
        trajectory ``k`` (:mod:`lib.core.recording`); None records :func:`default_observables`.
    record_every : int
        Record interval (>= 0; 0 records nothing).
    progress : bool
        Show a tqdm progress bar.
    n_therm : int
        Thermalisation trajectories (>= 0): run first, not recorded, not kept.
    keep_every : int
        Keep a copy of the fields after every ``keep_every``-th measured trajectory
        (0: keep none).  Memory grows as ``n_traj / keep_every`` configurations per chain.
    jitter : float
        Relative half-width :math:`j \in [0, 1)` of the random step size (0: fixed step).

    Returns
    -------
    HMCRun
        Final fields, accept decisions and :math:`\Delta H` of the measured trajectories,
        records, kept configurations.

    Raises
    ------
    lib.core.checks.NonFiniteError
        The Hamiltonian became NaN or infinite in some chain (step too large); the message
        names the trajectory.
    ValueError
        Bad parameters or start fields.
    """
    check_field(phi0, params, "phi0")
    if generator is not None:
        require_generator(generator)
    n_traj = require_int(n_traj, "n_traj", 0)
    n_therm = require_int(n_therm, "n_therm", 0)
    record_every = require_int(record_every, "record_every", 0)
    keep_every = require_int(keep_every, "keep_every", 0)
    n_steps = _n_steps(n_steps)
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}")
    integrate = INTEGRATORS[integrator]
    step = _check_step(step, phi0)
    jitter = require_in_range(jitter, "jitter", 0.0, 1.0)
    if jitter == 1.0:
        raise ValueError("jitter must be < 1 (the step size must stay positive)")
    default = observe is None

    def force_of(x):
        return force(x, params, check=False)

    phi = phi0.clone()
    B = phi.shape[0]
    S = _action_of(phi, params)
    accepted = torch.zeros((n_traj, B), dtype=torch.bool, device=phi.device)
    dH_hist = torch.zeros((n_traj, B), dtype=phi.dtype, device=phi.device)
    rec = Recorder((lambda x, t: default_observables(x, params, S)) if default else observe)
    kept, kept_traj = [], []
    long = dict(dtype=torch.int64, device=phi.device)

    def result(done: int) -> HMCRun:
        """The run after ``done`` measured trajectories."""
        return HMCRun(phi=phi, accepted=accepted[:done], dH=dH_hist[:done], traj=rec.times(**long),
                      records=rec.stacked(), kept=torch.stack(kept) if kept else None,
                      kept_traj=torch.tensor(kept_traj, **long) if kept else None)

    for n in tqdm(range(n_therm + n_traj), disable=not progress, desc="HMC", leave=False):
        eps = step
        if jitter > 0.0:
            u = torch.rand(B, generator=generator, dtype=phi.dtype, device=phi.device)
            eps = step * (1.0 + jitter * (2.0 * u - 1.0))
        pi = _random.standard_normal(phi, generator)
        h_old = 0.5 * (pi * pi).sum(dim=(1, 2)) + S
        phi_new, pi_new = integrate(phi, pi, force_of, eps, n_steps)
        S_new = _action_of(phi_new, params)
        dH = 0.5 * (pi_new * pi_new).sum(dim=(1, 2)) + S_new - h_old
        if not bool(torch.isfinite(dH).all()):
            bad = failing_members(dH, torch.isfinite(dH))
            stage = f"thermalisation trajectory {n + 1}" if n < n_therm else f"trajectory {n - n_therm + 1}"
            raise NonFiniteError(
                f"non-finite Hamiltonian in HMC {stage} in {describe_members(bad, B, 'chains')}; reduce the step "
                f"size (step = {step if not isinstance(step, torch.Tensor) else 'per-chain'}, n_steps = {n_steps}); "
                "the measured trajectories before it are in the exception's .partial",
                partial=result(max(n - n_therm, 0)), bad=bad)
        u = torch.rand(B, generator=generator, dtype=phi.dtype, device=phi.device)
        acc = u < torch.exp(-dH)
        phi = torch.where(acc[:, None, None], phi_new, phi)
        S = torch.where(acc, S_new, S)
        if n < n_therm:
            continue
        k = n - n_therm + 1  # trajectory number after thermalisation, 1-based
        accepted[k - 1] = acc
        dH_hist[k - 1] = dH
        if record_every and k % record_every == 0:
            rec(phi, k)
        if keep_every and k % keep_every == 0:
            kept.append(phi.clone())
            kept_traj.append(k)

    return result(n_traj)


def chain_ends(params: Phi4Params, n_configs: int, generator: torch.Generator | None,
                     n_traj: int = 128, step: float = 0.01, n_steps: int = 100,
                     dtype: torch.dtype = torch.float64, device=None, progress: bool = False) -> torch.Tensor:
    r"""The authors' protocol, vectorised: one fresh hot-started chain per configuration.

    Every configuration is the end point of its own chain started from
    :math:`\phi \sim \mathcal N(0,1)` after ``n_traj = 128`` leapfrog trajectories of
    ``n_steps = 100`` steps of ``step = 0.01`` (trajectory length 1).  The chains run in
    parallel as the batch of :func:`hmc`.  The configurations are independent by
    construction, but whether 128 trajectories thermalise the chains is not checked here
    (see :doc:`/book/part3/phi4_hmc`).

    Returns
    -------
    torch.Tensor
        ``(n_configs, L, L)`` fields (``device`` defaults to the generator's device).
    """
    phi0 = hot_start(params, n_configs, generator, dtype=dtype, device=device)
    run = hmc(params, phi0, n_traj, step, n_steps, generator, integrator="leapfrog", record_every=0,
              progress=progress)
    return run.phi


def _n_steps(n_steps) -> int:
    return require_int(n_steps, "n_steps", 1)

def _check_step(step, phi: torch.Tensor):
    if isinstance(step, torch.Tensor) and step.ndim > 0:
        if step.ndim != 1 or step.shape[0] != phi.shape[0]:
            raise ValueError(f"step must be a number or have shape ({phi.shape[0]},), got {tuple(step.shape)}")
        if not bool(torch.isfinite(step).all()) or not bool((step > 0).all()):
            raise ValueError("step must be finite and > 0 for every chain")
        return step.to(dtype=phi.dtype, device=phi.device)
    return require_positive(step, "step")
