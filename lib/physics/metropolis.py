r"""Independence Metropolis-Hastings: an exact Markov chain for a lattice action from proposals with known density.

Proposals :math:`x'` are drawn independently of the current state from a density :math:`q` (e.g. a diffusion model,
:func:`lib.diffusion.flow_map.flow_proposals`) and accepted with probability

.. math::

    A(x \to x') = \min\Big(1, \frac{e^{-S(x')}\, q(x)}{e^{-S(x)}\, q(x')}\Big) = \min\big(1, e^{w(x') - w(x)}\big),
    \qquad w = -S - \log q,

which satisfies detailed balance with respect to :math:`e^{-S}/Z`: the chain samples the target exactly, whatever
the quality of :math:`q`, provided :math:`\log q` is the exact density of the proposals actually made and
:math:`q > 0` wherever the target is.  The acceptance rate measures how close :math:`q` is to the target; rejections
repeat the current state and make the chain autocorrelated (analyse observables with :func:`lib.stats.tau_int`).
Proposals are made in batches beforehand; the chain then runs through them with an explicit generator.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from lib.core.checks import require_batch
from lib.core.random import require_generator

__all__ = ["MHChain", "independence_metropolis", "chain_observable"]


class MHChain(NamedTuple):
    """Result of :func:`independence_metropolis`."""

    index: torch.Tensor  # (n,) int64: the proposal that is the state of the chain after each step
    accepted: torch.Tensor  # (n,) bool: whether the proposal of each step was accepted
    log_w: torch.Tensor  # (n_proposals,) float64: w = -S - log q of every proposal

    @property
    def acceptance(self) -> float:
        """Fraction of accepted proposals."""
        return float(self.accepted.to(torch.float64).mean())


def independence_metropolis(x: torch.Tensor, log_q: torch.Tensor, action: Callable, generator: torch.Generator,
                            start: int = 0) -> MHChain:
    """Run the independence Metropolis-Hastings chain through the proposals ``x`` (in order) for the action ``S``.

    Parameters
    ----------
    x : tensor (n, ...)
        Proposals, drawn independently from ``q``; ``x[start]`` is the initial state (as if accepted).
    log_q : tensor (n,)
        Their exact log density.
    action : callable
        ``S(x) -> (n,)`` tensor, the target is :math:`e^{-S}/Z`.
    generator : torch.Generator
        Source of the uniform numbers of the accept/reject steps (one per proposal after ``start``).

    Returns
    -------
    MHChain
        The index of the state after each of the ``n - start - 1`` steps, the accept decisions and the weights.
    """
    require_batch(x, "x", finite=True, non_empty=True)
    require_generator(generator)
    if x.shape[0] < 2:
        raise ValueError(f"the chain needs at least two proposals (a start and one step), got {x.shape[0]}")
    if isinstance(start, bool) or not isinstance(start, int):
        raise ValueError(f"start must be an integer index of a proposal, got {start!r}")
    log_q = torch.as_tensor(log_q, dtype=torch.float64).reshape(-1)
    if log_q.shape[0] != x.shape[0]:
        raise ValueError(f"log_q must have one entry per proposal ({x.shape[0]}), got {tuple(log_q.shape)}")
    if not bool(torch.isfinite(log_q).all()):
        raise ValueError("log_q contains non-finite values: the proposal density must be finite where it proposes")
    if not 0 <= int(start) < x.shape[0] - 1:
        raise ValueError(f"start must lie in [0, {x.shape[0] - 2}], got {start}")
    S = torch.as_tensor(action(x)).to(torch.float64).reshape(-1).cpu()
    if S.shape[0] != x.shape[0] or not bool(torch.isfinite(S).all()):
        raise ValueError("action(x) must return one finite number per proposal")
    log_w = -S - log_q.cpu()
    n = x.shape[0] - start - 1
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).cpu()
    index = torch.empty(n, dtype=torch.int64)
    accepted = torch.empty(n, dtype=torch.bool)
    current = int(start)
    lw = log_w.tolist()
    logu = torch.log(u).tolist()
    for k in range(n):
        proposal = start + 1 + k
        ok = logu[k] < lw[proposal] - lw[current]
        if ok:
            current = proposal
        index[k], accepted[k] = current, ok
    return MHChain(index, accepted, log_w)


def chain_observable(chain: MHChain, values: torch.Tensor) -> torch.Tensor:
    """The time series of an observable along the chain: ``values[chain.index]`` (``values`` per proposal)."""
    values = torch.as_tensor(values)
    if values.shape[0] != chain.log_w.shape[0]:
        raise ValueError(f"values must have one entry per proposal ({chain.log_w.shape[0]}), got {values.shape[0]}")
    return values[chain.index]
