"""Validation and broadcasting helpers shared by every module of :mod:`lib`.

A batch is always the first axis and a configuration is everything after it:
``(B,)``, ``(B, 2)``, ``(B, L, L)``, ``(B, 1, L, L)``.  :func:`expand_like` is the
single broadcasting helper that turns a per-sample quantity of shape ``(B,)``
(or a scalar) into one that broadcasts against such a batch.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

__all__ = [
    "expand_like",
    "require_finite",
    "require_positive",
    "require_nonnegative",
    "require_in_range",
    "require_int",
    "require_batch",
    "as_time",
    "NonFiniteError",
    "failing_members",
    "describe_members",
]


class NonFiniteError(ValueError):
    """Raised when NaN or infinity appears in data, a training loss or a stochastic run.

    A sampler that fails part-way attaches what it had finished, so that nothing computed is lost: ``partial`` is the
    run up to the last complete step (the sampler's own result type, or None) and ``bad`` the indices (a 1-D int64
    tensor, or None) of the batch members (chains, samples, trajectories) that failed.
    """

    def __init__(self, message: str, partial=None, bad=None):
        super().__init__(message)
        self.partial, self.bad = partial, bad


def failing_members(x: torch.Tensor, ok: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the batch members (axis 0) of ``x`` with a non-finite value, or of the False entries of ``ok``."""
    if ok is None:
        ok = torch.isfinite(x if not x.is_complex() else torch.view_as_real(x))
    return (~ok).reshape(ok.shape[0], -1).any(dim=1).nonzero().reshape(-1).cpu()


def describe_members(bad: torch.Tensor, total: int, what: str = "samples") -> str:
    """``"3 of 64 samples (2, 17, 40)"``: a short account of failing batch members for an error message."""
    shown = ", ".join(str(int(i)) for i in bad[:8]) + (", ..." if bad.numel() > 8 else "")
    return f"{bad.numel()} of {total} {what} ({shown})"


def expand_like(t, x: torch.Tensor) -> torch.Tensor:
    """Reshape a scalar or per-sample tensor ``t`` so that it broadcasts against ``x``.

    ``t`` may be a Python number, a 0-d tensor or a tensor of shape ``(B,)`` where
    ``B = x.shape[0]``; the result has shape ``()`` or ``(B, 1, ..., 1)`` with
    ``x.ndim`` axes, on the device and with the dtype of ``x``.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"per-sample time must be a scalar or have shape ({x.shape[0]},) to match a batch "
            f"of shape {tuple(x.shape)}; got shape {tuple(t.shape)}"
        )
    return t.reshape((-1,) + (1,) * (x.ndim - 1))


def require_finite(x, name: str):
    """Raise :class:`NonFiniteError` naming ``name`` if ``x`` holds NaN or infinity; return ``x``."""
    if isinstance(x, torch.Tensor):
        ok = bool(torch.isfinite(x).all())
    elif isinstance(x, Real):
        ok = math.isfinite(x)
    else:
        arr = np.asarray(x)
        ok = bool(np.isfinite(arr).all()) if arr.dtype.kind in "fciub" else True
    if not ok:
        raise NonFiniteError(f"{name} contains non-finite values (NaN or inf)")
    return x


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        if isinstance(value, torch.Tensor) and value.ndim == 0:
            value = value.item()
        else:
            raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def require_positive(value, name: str) -> float:
    """Return ``float(value)``; raise ``ValueError`` naming ``name`` unless it is finite and > 0."""
    value = _real(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def require_nonnegative(value, name: str) -> float:
    """Return ``float(value)``; raise ``ValueError`` naming ``name`` unless it is finite and >= 0."""
    value = _real(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def require_int(value, name: str, lo: int = 1) -> int:
    """Return ``int(value)``; raise ``ValueError`` naming ``name`` unless it is an integer (not a bool) ``>= lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def require_batch(x, name: str, finite: bool = False, non_empty: bool = False) -> torch.Tensor:
    """Return ``x``; raise ``ValueError`` naming ``name`` unless it is a floating tensor of shape ``(B, ...)``.

    ``non_empty``: also ``B >= 1``; ``finite``: also no NaN or infinity (:class:`NonFiniteError`).  The one check of a
    batch of configurations in :mod:`lib` (a batch is the first axis, a configuration everything after it).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating tensor of shape (B, ...) with the batch on axis 0, got {shape}")
    if non_empty and x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name} contains non-finite values (NaN or inf)")
    return x


def require_in_range(value, name: str, lo: float, hi: float) -> float:
    """Return ``float(value)``; raise ``ValueError`` unless ``lo <= value <= hi``."""
    value = _real(value, name)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value}")
    return value


def as_time(t, T: float, name: str = "t", dtype=torch.float64, device=None) -> torch.Tensor:
    """Convert ``t`` (number or tensor) to a tensor and check ``0 <= t <= T``.

    Tensors keep their dtype and device; numbers become ``dtype`` tensors on ``device``.
    Raises ``ValueError`` naming ``name`` for values outside ``[0, T]`` or non-finite values.
    """
    if isinstance(t, torch.Tensor):
        tt = t if t.is_floating_point() else t.to(dtype)
    else:
        tt = torch.as_tensor(t, dtype=dtype, device=device)
    if not bool(torch.isfinite(tt).all()):
        raise ValueError(f"{name} contains non-finite values")
    lo, hi = float(tt.min()), float(tt.max())
    if lo < 0 or hi > T * (1 + 1e-12):
        raise ValueError(f"{name} must lie in [0, T] = [0, {T}], got values in [{lo}, {hi}]")
    return tt
