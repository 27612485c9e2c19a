"""The one recorder of every sampler: observables taken along a run, stacked along a new first axis.

A sampler calls the recorder with its state and the time (or trajectory number) of the record; the recorder hands
both to ``observe(x, t)``, which returns a dict of tensors (so an observer can act at chosen times of a grid
without counting calls); at the end :meth:`Recorder.stacked` gives ``name -> tensor (n_records, ...)`` and
:meth:`Recorder.times` the times.  Used by :mod:`lib.diffusion.solvers`, :mod:`lib.physics.langevin`,
:mod:`lib.physics.hmc` and :mod:`lib.physics.complex_langevin`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["Recorder", "Observe"]

#: an observer ``observe(x, t) -> dict of tensors`` of the state and the time (or trajectory number) of the record
Observe = Callable[[torch.Tensor, Any], dict]


class Recorder:
    """Calls ``observe`` at the points a sampler chooses and keeps the results (detached; copies if ``clone``)."""

    def __init__(self, observe: Observe | None, clone: bool = False):
        if observe is not None and not callable(observe):
            raise ValueError(f"observe must be a callable (x, t) -> dict of tensors, got {type(observe).__name__}")
        self.observe, self.clone = observe, clone
        self._times: list = []
        self._rows: dict[str, list] = {}

    def __call__(self, x, t) -> None:
        """Record ``observe(x, t)`` at time ``t`` (nothing without an ``observe``)."""
        if self.observe is None:
            return
        values = self.observe(x, t)
        if not isinstance(values, dict):
            raise ValueError(f"observe(x, t) must return a dict of tensors, got {type(values).__name__}")
        for name, value in values.items():
            value = torch.as_tensor(value).detach()
            self._rows.setdefault(name, []).append(value.clone() if self.clone else value)
        self._times.append(t)

    def __len__(self) -> int:
        return len(self._times)

    def times(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """The times of the records: a 1-D tensor of numbers, or the records' time tensors stacked."""
        if self._times and isinstance(self._times[0], torch.Tensor):
            return torch.stack(self._times)
        return torch.tensor(self._times, dtype=dtype, device=device)

    def stacked(self) -> dict:
        """``name -> tensor`` with the records along a new first axis (empty without records)."""
        return {name: torch.stack(values) for name, values in self._rows.items()}
