r"""A diffusion model as a proposal with an exact density: the fixed-step probability-flow map and its log-Jacobian.

A fixed-step integrator of the probability-flow ODE on a :class:`lib.diffusion.grids.TimeGrid` is a deterministic map
:math:`\Phi = \Phi_{n-1} \circ \dots \circ \Phi_0` of the prior sample :math:`x_T \sim \mathcal N(0, \Xi(T))` to the
generated configuration :math:`x = \Phi(x_T)`.  Each step is a smooth map, an Euler or Heun step of the ODE written
in the variables of Karras et al. (:func:`flow_step`).  Where the map is a bijection, the density of the configuration
actually proposed is, by the change of variables,

.. math::

    \log q(x) = \log p_T(x_T) - \sum_{i=0}^{n-1} \log \big|\det J_i(y_i)\big|, \qquad
    J_i = \partial \Phi_i / \partial y ,

for the map actually computed, whatever the quality of the score: no solver tolerance, no stochastic trace.  What is
checked and what is not: every step must have :math:`\det J_i > 0` at every proposed point (else an error), which
makes the map a local diffeomorphism there; it does not prove that the map is one-to-one globally (a fold where no
proposal lands would go unseen), so the steps must stay small enough for the flow of a smooth score to be
invertible.  The score must treat each sample of a batch on its own (the Jacobian is taken per sample): a score that
couples the batch (a batch mean, a batch norm in training mode) is refused by a check on part of a batch.  The
Jacobians are computed in full by forward-mode automatic differentiation (``d`` Jacobian-vector products per step,
batched, for a configuration of ``d`` numbers), which is affordable on small lattices (``d = 64`` on
:math:`8 \times 8`).  This is what an exact Metropolis-Hastings correction needs (:mod:`lib.physics.metropolis`);
derived in :doc:`/book/part3/exact_sampler`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from lib.core.checks import NonFiniteError, require_int
from lib.core.random import require_generator
from lib.diffusion.grids import TimeGrid
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["FlowProposal", "flow_step", "flow_proposals", "flow_from", "METHODS"]

#: the fixed-step integrators of the probability-flow ODE
METHODS = ("euler", "heun")


class FlowProposal(NamedTuple):
    """Configurations proposed by :func:`flow_proposals` with their exact log-density (float64)."""

    x: torch.Tensor  # (n, ...) generated configurations, dtype of the computation
    log_q: torch.Tensor  # (n,) float64: log density of x under the map actually used
    x_T: torch.Tensor  # (n, ...) the prior samples they came from
    log_det: torch.Tensor  # (n,) float64: sum over the steps of log |det J_i|
    # (n, probes) float64: sum over the steps of v^T (J_i - I) v - tr(J_i - I) for independent Rademacher vectors v,
    # the error a stochastic (Hutchinson) trace would add to -log q; (n, 0) unless asked for
    hutchinson_error: torch.Tensor


def _noise_level(sde: LinearDriftSDE, t: float) -> tuple[float, float]:
    """``(f(t), varsigma(t))`` as Python floats."""
    return float(sde.f(t)), float(sde.noise_to_signal(t))


def flow_step(sde: LinearDriftSDE, score: Callable, y: torch.Tensor, t: float, t_next: float,
              method: str = "heun") -> torch.Tensor:
    r"""One step of the probability-flow ODE from ``t`` down to ``t_next``, in the variables of Karras et al.

    With :math:`\tilde x = x/f(t)` and the noise-to-signal ratio :math:`\varsigma = \sqrt{\Xi}/f`
    (:meth:`lib.diffusion.sde.LinearDriftSDE.noise_to_signal`) the probability-flow ODE of any linear-drift process
    reads :math:`d\tilde x/d\varsigma = -\varsigma\, f\, s(f \tilde x, t)`: no linear drift, and for data of
    variance :math:`v` a right-hand side :math:`\varsigma \tilde x / (v + \varsigma^2)` that is smooth in
    :math:`\varsigma`.  ``"euler"``: :math:`\tilde x + \Delta\varsigma\, d_0`; ``"heun"``:
    :math:`\tilde x + \tfrac12 \Delta\varsigma\, (d_0 + d_1)` with :math:`d_1` at the Euler point
    (:math:`\Delta\varsigma < 0`); then :math:`x = f(t_{next})\, \tilde x`.  Differentiable in ``y`` (no
    ``no_grad``), as :func:`flow_proposals` needs.
    """
    (f0, s0), (f1, s1) = _noise_level(sde, t), _noise_level(sde, t_next)

    def slope(x_tilde, tt, f, sigma):
        x = f * x_tilde
        return -sigma * f * score(x, torch.full((x.shape[0],), tt, dtype=x.dtype, device=x.device))

    x_tilde = y / f0
    d0 = slope(x_tilde, t, f0, s0)
    euler = x_tilde + (s1 - s0) * d0
    if method == "euler":
        return f1 * euler
    if method == "heun":
        return f1 * (x_tilde + 0.5 * (s1 - s0) * (d0 + slope(euler, t_next, f1, s1)))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _step_with_logdet(sde, score, y, t, t_next, method, mode: str = "forward"):
    """The step and ``log |det J|`` per sample, the Jacobian in full by forward-mode differentiation.

    :func:`torch.func.jacfwd` pushes the ``d`` unit tangents through one batched forward pass with tangents; for the
    square Jacobians of a flow step this was 1.1-1.3 times faster than the ``d`` cotangents of reverse mode on this
    machine's CPU at L = 8 (``benchmarks/exact_sampler.py --jacobian`` prints the ratio), with the same Jacobian to
    rounding.  Under ``no_grad`` no graph to
    the network's parameters is kept.
    """
    shape, d = y.shape[1:], math.prod(y.shape[1:])

    def one(v):  # a single configuration, flattened
        out = flow_step(sde, score, v.reshape((1,) + tuple(shape)), t, t_next, method)
        return out.reshape(d)

    with torch.no_grad():
        flat = y.reshape(y.shape[0], d)
        jacobian = torch.func.jacfwd if mode == "forward" else torch.func.jacrev  # "reverse": the benchmark's reference
        jac = torch.func.vmap(jacobian(one))(flat)  # (B, d, d): d (co)tangents per sample, one batched pass
        jac = jac.detach().to(torch.float64)
        sign, logabs = torch.linalg.slogdet(jac)
        y_next = flow_step(sde, score, y, t, t_next, method)
    return y_next, sign, logabs, jac


def _hutchinson_error(jac: torch.Tensor, probes: int, generator: torch.Generator) -> torch.Tensor:
    """``v^T (J - I) v - tr(J - I)`` for ``probes`` Rademacher vectors per sample: ``(B, probes)``."""
    B, d = jac.shape[0], jac.shape[-1]
    v = (torch.randint(0, 2, (B, probes, d), generator=generator, device=generator.device) * 2 - 1).to(jac)
    a = jac - torch.eye(d, dtype=jac.dtype, device=jac.device)
    quad = torch.einsum("bpi,bij,bpj->bp", v, a, v)
    return quad - a.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)


def _check_score(score: Callable, x: torch.Tensor, t: float) -> None:
    """The score returns one value per sample and site, and treats the samples of a batch independently: on the first
    half of the batch, in reverse order, it must give the same values (to rounding) as on the whole batch, which a batch
    mean, a batch norm in training mode or any other coupling of the samples breaks; the per-sample Jacobians would be
    wrong."""
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        out = score(x, tt)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise ValueError(f"score(x, t) must return a tensor of the shape of x {tuple(x.shape)}, got "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        if x.shape[0] < 2:
            return
        part = torch.arange(max(1, x.shape[0] // 2) - 1, -1, -1, device=x.device)
        alone = score(x[part], tt[part])
    scale = float(out.abs().max()) or 1.0
    if not torch.allclose(alone, out[part], rtol=1e-4, atol=1e-4 * scale):
        raise ValueError("score(x, t) couples the samples of a batch (its value for a sample changes with the other "
                         "samples of the batch: a batch mean, or a batch norm in training mode?); the exact density "
                         "needs a score that acts on each sample alone")


def flow_proposals(sde: LinearDriftSDE, score: Callable, grid: TimeGrid, shape: tuple, n: int,
                   generator: torch.Generator, method: str = "heun", batch: int = 256, dtype=torch.float64,
                   device=None, probes: int = 0) -> FlowProposal:
    """``n`` configurations of shape ``shape`` from the fixed-step probability-flow map on ``grid``, with exact ``log q``.

    ``x_T`` is drawn from the prior (:meth:`lib.diffusion.sde.LinearDriftSDE.prior_sample`) with ``generator``, in
    batches of ``batch``; ``score(x, t)`` must be differentiable in ``x`` with :mod:`torch.func` (a network, or an
    exact score built from torch operations).  Raises :class:`lib.core.checks.NonFiniteError` when a step is not
    invertible for some sample (:math:`\\det J_i \\le 0`: steps too large for this score), naming the step.

    ``probes > 0`` also returns, from the same Jacobians, what a stochastic trace would make of the density: for
    each proposal ``probes`` independent draws of :math:`\\sum_i [v_i^T (J_i - I) v_i - \\mathrm{tr}(J_i - I)]`
    (Rademacher :math:`v_i`, drawn with ``generator`` after the prior samples of the batch), the zero-mean error of a
    Hutchinson estimate of :math:`\\sum_i \\mathrm{tr}(J_i - I) \\approx \\sum_i \\log\\det J_i`, the divergence
    integral of the probability-flow likelihood.

    The score is checked once, on the first batch: one value per site, and no coupling of the samples of a batch.
    What no check can see: a fold of the map away from the proposed points (see the module's docstring).
    """
    require_generator(generator)
    if not isinstance(grid, TimeGrid):
        raise ValueError(f"grid must be a lib.diffusion.grids.TimeGrid, got {type(grid).__name__}")
    if not bool(torch.isfinite(grid.t).all()) or not bool((grid.h > 0).all()):
        raise ValueError("the grid must run from T down towards 0 with finite times and positive steps; got times "
                         f"{grid.t.tolist()[:4]}...")
    if isinstance(shape, (int, str)) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                                for s in tuple(shape)):
        raise ValueError(f"shape must be a tuple of positive ints, the shape of one configuration (e.g. (L, L)), got "
                         f"{shape!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype (float32 or float64), got {dtype!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if grid.t_eval.tolist() != grid.t[:-1].tolist():
        raise ValueError("the flow steps from state to state: give a grid whose evaluation times are the states' times "
                         "(grids.uniform_states or grids.karras)")
    n, batch = require_int(n, "n"), require_int(batch, "batch")
    probes = require_int(probes, "probes", 0)
    shape = tuple(int(s) for s in shape)
    parts = []
    for start in range(0, n, batch):
        size = min(batch, n - start)
        x_T = sde.prior_sample((size,) + shape, generator=generator, device=device, dtype=dtype)
        if start == 0:
            _check_score(score, x_T, float(grid.t[0]))
        parts.append(flow_from(sde, score, grid, x_T, method, probes, generator))
    return FlowProposal(*(torch.cat([getattr(p, name) for p in parts]) for name in FlowProposal._fields))


def flow_from(sde: LinearDriftSDE, score: Callable, grid: TimeGrid, x_T: torch.Tensor, method: str = "heun",
              probes: int = 0, generator: torch.Generator | None = None) -> FlowProposal:
    """The fixed-step flow of the start points ``x_T`` (one batch, in their dtype) with the exact log-density of the
    results, as in :func:`flow_proposals` (which draws ``x_T`` from the prior and calls this); ``generator`` draws the
    Rademacher probes when ``probes > 0``.  Running the same ``x_T`` in float64 with a float64 copy of the network
    measures the rounding error of a float32 flow (:func:`lib.recipes.pipelines.flow_proposals.precision_check`)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if probes:
        require_generator(generator)
    t_state = grid.t.tolist()
    n_steps, size = len(t_state) - 1, x_T.shape[0]
    y, log_det = x_T, torch.zeros(size, dtype=torch.float64, device=x_T.device)
    noise = torch.zeros(size, probes, dtype=torch.float64, device=x_T.device)
    for i, t in enumerate(t_state[:-1]):
        y, sign, logabs, jac = _step_with_logdet(sde, score, y, t, t_state[i + 1], method)
        bad = (sign <= 0) | ~torch.isfinite(logabs) | ~torch.isfinite(y.reshape(size, -1)).all(dim=1)
        if bool(bad.any()):
            raise NonFiniteError(f"flow_proposals: step {i + 1} of {n_steps} (t = {t:.4g}) is not invertible "
                                 f"for {int(bad.sum())} of {size} samples (det J <= 0 or non-finite): use smaller "
                                 "steps", bad=bad.nonzero().reshape(-1).cpu())
        log_det = log_det + logabs
        if probes:
            noise = noise + _hutchinson_error(jac, probes, generator)
    return FlowProposal(y, sde.prior_logp(x_T).to(torch.float64) - log_det, x_T, log_det, noise)
