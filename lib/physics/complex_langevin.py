r"""Complex Langevin dynamics for a holomorphic action, and two exactly solvable targets.

For a complex weight :math:`\rho(x) = e^{-S(x)}/Z` the degree of freedom is complexified,
:math:`z = x + iy`, and evolved with the holomorphic drift :math:`K(z) = -S'(z)`:

.. math::

    \dot x = K_x + \eta_x, \qquad \dot y = K_y + \eta_y, \qquad
    K_x = \operatorname{Re} K(z), \quad K_y = \operatorname{Im} K(z),

with :math:`\langle \eta_x \eta_x \rangle = 2 N_x \delta`, :math:`\langle \eta_y \eta_y \rangle = 2 N_y \delta` and
:math:`N_x - N_y = 1` (real noise: :math:`N_x = 1`, :math:`N_y = 0`).  The real and positive distribution
:math:`P(x, y)` sampled by the process obeys the Fokker-Planck equation

.. math::

    \partial_t P = [\partial_x (N_x \partial_x - K_x) + \partial_y (N_y \partial_y - K_y)] P,

and, when complex Langevin (CL) is correct, :math:`\int dx\,dy\,P(x, y)\,O(x + iy) = \int dx\,\rho(x)\,O(x)` for
holomorphic :math:`O`.  The discretised update (Euler-Maruyama, the convention :math:`\epsilon \to 2\epsilon` of the
exercise sheet, eq. ``eq-cl-update``) is

.. math::

    x_{n+1} = x_n + \epsilon_n K_x + \sqrt{2 N_x \epsilon_n}\,\eta_{x,n}, \qquad
    y_{n+1} = y_n + \epsilon_n K_y + \sqrt{2 N_y \epsilon_n}\,\eta_{y,n}.

Everything is derived in :doc:`/book/part4/complex_langevin`.  The solvable models are in
:mod:`lib.physics.cl_models`, the stationary Fokker-Planck equation in :mod:`lib.physics.fokker_planck`; the cached
runs of the book in :mod:`lib.recipes.complex_langevin`.

Trajectories are batch-first complex tensors ``(B, ...)``; all noise is drawn through
:func:`lib.core.random.standard_normal` with an explicit ``torch.Generator``.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import torch

from lib.core import random as _random
from lib.core.checks import (NonFiniteError, describe_members, expand_like, failing_members, require_int,
                             require_nonnegative, require_positive)
from lib.core.recording import Recorder

__all__ = ["RunawayError", "cl_step", "adaptive_step", "CLRun", "complex_langevin", "CLSamples", "sample_xy", "xy_to_complex"]


class RunawayError(NonFiniteError, RuntimeError):
    """A complex Langevin trajectory ran away (non-finite, or :math:`|z|` beyond the guard threshold).

    Both a :class:`lib.core.checks.NonFiniteError` (a ``ValueError``) and a ``RuntimeError``, so either can be caught.
    """


# --------------------------------------------------------------------------- the CL update
def _as_complex_batch(z0) -> torch.Tensor:
    if not isinstance(z0, torch.Tensor) or z0.ndim < 1:
        raise ValueError(f"z0 must be a tensor of shape (B, ...) with the batch on axis 0, got {type(z0).__name__}"
                         + (f" of shape {tuple(z0.shape)}" if isinstance(z0, torch.Tensor) else ""))
    if z0.is_complex():
        z = z0
    elif z0.is_floating_point():
        z = torch.complex(z0, torch.zeros_like(z0))
    else:
        raise ValueError(f"z0 must be a complex or floating tensor, got dtype {z0.dtype}")
    if z.shape[0] == 0:
        raise ValueError("z0 holds no trajectory (batch size 0)")
    if not bool(torch.isfinite(torch.view_as_real(z)).all()):
        raise ValueError("z0 contains non-finite values (NaN or inf)")
    return z


def cl_step(z: torch.Tensor, K: torch.Tensor, eps, generator: torch.Generator | None = None,
            imag_noise: float = 0.0, check: bool = True) -> torch.Tensor:
    r"""One Euler-Maruyama step of complex Langevin (eq. ``eq-cl-update`` of :doc:`/book/part4/complex_langevin`).

    .. math::

        x' = x + \epsilon K_x + \sqrt{2 N_x \epsilon}\,\eta_x, \qquad
        y' = y + \epsilon K_y + \sqrt{2 N_y \epsilon}\,\eta_y, \qquad N_x = 1 + N_y .

    Parameters
    ----------
    z : torch.Tensor
        Complex state of shape ``(B, ...)``.
    K : torch.Tensor
        The drift :math:`K(z)`, like ``z``.
    eps : float or torch.Tensor
        Step size, a number or a per-trajectory ``(B,)`` tensor (broadcast with :func:`lib.core.checks.expand_like`).
    generator : torch.Generator, optional
        Source of the noise; :math:`\eta_x` is drawn first, then (only if :math:`N_y > 0`) :math:`\eta_y`,
        both with :func:`lib.core.random.standard_normal` (real, shape of ``z``).
    imag_noise : float
        :math:`N_y \ge 0` (0: real noise).
    check : bool
        Validate ``eps`` and ``imag_noise``; :func:`complex_langevin`, whose step sizes come from
        :func:`adaptive_step` and were validated once, passes ``False`` in its inner loop.

    Returns
    -------
    torch.Tensor
        The new state, like ``z``.
    """
    if check:
        if isinstance(eps, torch.Tensor) and eps.ndim > 0:
            if not bool(torch.isfinite(eps).all()) or not bool((eps > 0).all()):
                raise ValueError("eps must be finite and > 0 for every trajectory")
        else:
            eps = require_positive(eps, "eps")
        imag_noise = require_nonnegative(imag_noise, "imag_noise")
    e = expand_like(eps, z.real)
    n_y = float(imag_noise)
    eta_x = _random.standard_normal(z, generator)
    x = z.real + e * K.real + torch.sqrt(2.0 * (1.0 + n_y) * e) * eta_x
    y = z.imag + e * K.imag
    if n_y > 0:
        eta_y = _random.standard_normal(z, generator)
        y = y + torch.sqrt(2.0 * n_y * e) * eta_y
    return torch.complex(x, y)


def adaptive_step(K: torch.Tensor, eps_max: float, k_ref: float | None = None,
                  scope: str = "trajectory") -> torch.Tensor:
    r"""Adaptive step size :math:`\epsilon = \min(\bar\epsilon,\ \bar\epsilon\, K_\mathrm{ref} / K_\max)`.

    The prescription of Aarts, James, Seiler, Stamatescu (Phys. Lett. B 687 (2010) 154), with
    :math:`K_\max = \max |K|` over the configuration of each trajectory (``scope="trajectory"``, the default:
    independent trajectories do not slow each other down) or over the whole batch (``scope="global"``, one step
    for all, as on a lattice).  ``k_ref=None`` gives the fixed step :math:`\bar\epsilon`.  Derived in
    :doc:`/book/part4/complex_langevin` (eq. ``eq-cl-adaptive``).

    Returns
    -------
    torch.Tensor
        ``(B,)`` step sizes in the real dtype of ``K``.
    """
    real_dtype = K.real.dtype
    batch = K.shape[0]
    eps_max = require_positive(eps_max, "eps_max")
    if k_ref is not None:
        k_ref = require_positive(k_ref, "k_ref")
    if k_ref is None:
        return torch.full((batch,), float(eps_max), dtype=real_dtype, device=K.device)
    kmax = K.abs().reshape(batch, -1).amax(dim=1)
    if scope == "global":
        kmax = kmax.amax().expand(batch)
    elif scope != "trajectory":
        raise ValueError(f"scope must be 'trajectory' or 'global', got {scope!r}")
    ratio = float(k_ref) / kmax.clamp_min(torch.finfo(real_dtype).tiny)
    return float(eps_max) * ratio.clamp(max=1.0)


class CLRun(NamedTuple):
    """Result of :func:`complex_langevin`."""

    z: torch.Tensor  # final state (B, ...), complex
    time: torch.Tensor  # (B,) float64 Langevin time of each trajectory at the end (thermalisation included)
    t: torch.Tensor  # (n_records, B) float64 Langevin time at each record
    eps: torch.Tensor  # (n_records, B) step size eps(z) at each record: weights of time averages under adaptive steps
    records: dict  # name -> tensor stacked along a new first axis (n_records, ...)


_EPS = "__eps__"  # the step size, recorded beside the observables (CLRun.eps)


def _guard(z: torch.Tensor, max_abs: float, step: int, time: torch.Tensor, partial: Callable):
    ok = (z.real.abs() <= max_abs) & (z.imag.abs() <= max_abs)  # NaN compares False: caught as well
    if not bool(ok.all()):
        bad = failing_members(z, ok)
        nonfinite = not bool(torch.isfinite(torch.view_as_real(z)).all())
        what = "non-finite values" if nonfinite else f"|Re z| or |Im z| > {max_abs:g}"
        raise RunawayError(
            f"complex Langevin: {describe_members(bad, z.shape[0], 'trajectories')} ran away at step {step} "
            f"(Langevin time up to {float(time.max()):.6g}): {what}. Reduce the step size, use the adaptive step "
            "(k_ref), or check that the drift is stable; the run up to the previous step is in the exception's "
            ".partial", partial=partial(), bad=bad)


def complex_langevin(drift, z0: torch.Tensor, eps: float, n_steps: int, generator: torch.Generator | None = None, *,
                     imag_noise: float = 0.0, k_ref: float | None = None, scope: str = "trajectory",
                     n_therm: int = 0, record_every: int = 1, observe: Callable | None = None,
                     max_abs: float = 1e6, progress: bool = False) -> CLRun:
    r"""Run complex Langevin for many independent trajectories (batch-first complex tensors).

    Each step: :math:`K = K(z)`, :math:`\epsilon_n` from :func:`adaptive_step` (fixed when ``k_ref`` is
    ``None``), then :func:`cl_step`.  After ``n_therm`` unrecorded thermalisation steps, ``n_steps`` further steps
    are made and the state is recorded after every ``record_every``-th of them (``n_steps // record_every``
    records); nothing else is kept in memory.  With an adaptive step, time averages are
    :math:`\sum_i \epsilon_i O_i / \sum_i \epsilon_i` with the recorded ``eps`` (each sample stands for the
    Langevin time it is held).  Derived in :doc:`/book/part4/complex_langevin`.

    Parameters
    ----------
    drift : callable or model
        ``z -> K(z)`` (tensor like ``z``), or an object with a ``drift`` method (:class:`lib.physics.cl_models.GaussianModel`,
        :class:`lib.physics.cl_models.QuarticModel`).
    z0 : torch.Tensor
        Initial state ``(B, ...)``, complex (a real tensor is promoted); fixes dtype and device.
    eps : float
        (Maximal) step size :math:`\bar\epsilon > 0`.
    n_steps : int
        Steps after thermalisation (>= 0).
    generator : torch.Generator, optional
        Explicit source of randomness (on the device of ``z0``).
    imag_noise : float
        :math:`N_y \ge 0`; :math:`N_x = 1 + N_y`.
    k_ref, scope :
        Adaptive step size, see :func:`adaptive_step`.
    n_therm : int
        Thermalisation steps (not recorded).
    record_every : int
        Record spacing in steps (>= 1).
    observe : callable, optional
        ``(z, t) -> dict[str, Tensor]`` with the ``(B,)`` Langevin times ``t`` of the record
        (:mod:`lib.core.recording`); default ``{"z": z}``.
    max_abs : float
        Runaway guard: :class:`RunawayError` (naming the step and the number of runaways) as soon as a
        trajectory has :math:`|\operatorname{Re} z|` or :math:`|\operatorname{Im} z|` above ``max_abs`` or a
        non-finite value.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    CLRun
    """
    K_fn = drift.drift if hasattr(drift, "drift") else drift
    if not callable(K_fn):
        raise ValueError("drift must be a callable z -> K(z) or a model with a drift method")
    z = _as_complex_batch(z0)
    eps = require_positive(eps, "eps")
    for name, value, lo in (("n_steps", n_steps, 0), ("n_therm", n_therm, 0), ("record_every", record_every, 1)):
        require_int(value, name, lo)
    n_y = require_nonnegative(imag_noise, "imag_noise")
    max_abs = require_positive(max_abs, "max_abs")
    if k_ref is not None:
        k_ref = require_positive(k_ref, "k_ref")
    if scope not in ("trajectory", "global"):
        raise ValueError(f"scope must be 'trajectory' or 'global', got {scope!r}")
    observe = observe or (lambda state, t: {"z": state})
    if getattr(drift, "cl_expected_correct", True) is False:
        warnings.warn(
            f"{drift!r}: 3A^2 - B^2 <= 0, complex Langevin is not expected to converge to the correct result",
            RuntimeWarning, stacklevel=2,
        )

    from tqdm.auto import tqdm

    batch = z.shape[0]
    time = torch.zeros(batch, dtype=torch.float64, device=z.device)
    rec = Recorder(lambda state, t: {**observe(state, t), _EPS: step_size.to(torch.float64)})
    total = int(n_therm) + int(n_steps)
    K = K_fn(z)
    step_size = adaptive_step(K, eps, k_ref, scope)
    empty = torch.zeros((0, batch), dtype=torch.float64, device=z.device)

    def result(z_end: torch.Tensor, time_end: torch.Tensor) -> CLRun:
        records = rec.stacked()
        eps_rec = records.pop(_EPS, empty)
        return CLRun(z=z_end, time=time_end, t=rec.times() if len(rec) else empty, eps=eps_rec, records=records)

    for step in tqdm(range(1, total + 1), disable=not progress, desc="complex Langevin", leave=False):
        z_prev, time_prev = z, time
        z = cl_step(z, K, step_size, generator, n_y, check=False)
        time = time + step_size.to(torch.float64)
        _guard(z, max_abs, step, time, lambda: result(z_prev, time_prev))
        K = K_fn(z)
        step_size = adaptive_step(K, eps, k_ref, scope)
        k = step - n_therm
        if k > 0 and k % record_every == 0:
            rec(z, time.clone())
    return result(z, time)


# --------------------------------------------------------------------------- training data
class CLSamples(NamedTuple):
    """Result of :func:`sample_xy`: CL samples as real pairs :math:`(x, y)`."""

    xy: torch.Tensor  # (n_records, n_chains, ..., 2): x = Re z, y = Im z at each record of each chain
    t: torch.Tensor  # (n_records, n_chains) Langevin time of each sample
    eps: torch.Tensor  # (n_records, n_chains) step size at each sample (weights if the step is adaptive)
    z: torch.Tensor  # (n_chains, ...) final complex state (to continue the run)

    def flat(self) -> torch.Tensor:
        """All samples as ``(n_records * n_chains, ..., 2)`` (training data for a diffusion model)."""
        return self.xy.reshape((-1,) + tuple(self.xy.shape[2:]))

    def complex(self) -> torch.Tensor:
        """The samples as complex :math:`z = x + iy` of shape ``(n_records, n_chains, ...)``."""
        return xy_to_complex(self.xy)


def xy_to_complex(xy) -> torch.Tensor:
    """Real pairs ``(..., 2)`` as the complex128 tensor :math:`z = x + iy` of shape ``(...)``."""
    xy = torch.as_tensor(xy).double()
    if xy.ndim < 1 or xy.shape[-1] != 2:
        raise ValueError(f"xy must have a last axis of length 2 (x, y), got shape {tuple(xy.shape)}")
    return torch.complex(xy[..., 0], xy[..., 1])


def sample_xy(model, n_chains: int, n_records: int, eps: float = 1e-3, generator: torch.Generator | None = None, *,
              record_every: int = 10, n_therm: int | None = None, z0: torch.Tensor | None = None,
              dtype: torch.dtype = torch.float64, device=None, imag_noise: float = 0.0,
              k_ref: float | None = None, scope: str = "trajectory", max_abs: float = 1e6,
              progress: bool = False) -> CLSamples:
    r"""Thermalise ``n_chains`` CL trajectories, then record :math:`(x, y)` every ``record_every`` steps.

    Produces ``n_chains * n_records`` samples of the stationary CL distribution :math:`P(x, y)` (up to the
    :math:`O(\epsilon)` step-size bias), e.g. :math:`10^6` samples for training a diffusion model
    (:doc:`/book/part4/cl_diffusion`); only the records are kept in memory.  Samples of one record are independent
    across chains; along a chain they are autocorrelated (analyse with :func:`lib.stats.tau_int` on the
    ``(n_records, n_chains)`` layout).  Warns (``RuntimeWarning``) when the model says CL is not expected to be
    correct (:attr:`lib.physics.cl_models.QuarticModel.cl_expected_correct`).  See :doc:`/book/part4/complex_langevin`.

    Parameters
    ----------
    model : model or callable
        A model with ``drift`` (or a drift callable).
    n_chains, n_records : int
        Independent trajectories and records per trajectory (>= 1).
    eps : float
        (Maximal) step size.
    generator : torch.Generator, optional
        Explicit randomness; its device is used when neither ``z0`` nor ``device`` is given.
    record_every : int
        Steps between records.
    n_therm : int or None
        Thermalisation steps; ``None``: Langevin time 10, i.e. ``ceil(10 / eps)``.
    z0 : torch.Tensor, optional
        Initial state ``(n_chains, ...)``; default zeros of shape ``(n_chains,)``.
    dtype, device :
        Real dtype and device of the default ``z0``.
    imag_noise, k_ref, scope, max_abs, progress :
        As in :func:`complex_langevin`.
    """
    for name, value in (("n_chains", n_chains), ("n_records", n_records), ("record_every", record_every)):
        require_int(value, name, 1)
    eps = require_positive(eps, "eps")
    if n_therm is None:
        n_therm = math.ceil(10.0 / eps)
    if z0 is None:
        if device is None and generator is not None:
            device = generator.device
        z0 = torch.zeros(n_chains, dtype=dtype, device=device)
    elif z0.shape[0] != n_chains:
        raise ValueError(f"z0 must have n_chains = {n_chains} trajectories on axis 0, got shape {tuple(z0.shape)}")
    run = complex_langevin(
        model, z0, eps, n_records * record_every, generator, imag_noise=imag_noise, k_ref=k_ref, scope=scope,
        n_therm=n_therm, record_every=record_every, observe=lambda z, t: {"xy": torch.view_as_real(z).clone()},
        max_abs=max_abs, progress=progress,
    )
    return CLSamples(xy=run.records["xy"], t=run.t, eps=run.eps, z=run.z)
