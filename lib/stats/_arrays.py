"""Input handling shared by the modules of :mod:`lib.stats` (package-internal)."""
from __future__ import annotations

import numpy as np
import torch

from lib.core.checks import require_finite

__all__ = ["as_array", "check_axis"]


def as_array(x, name: str = "x") -> np.ndarray:
    """``x`` as a non-empty, finite float64 or complex128 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.resolve_conj() if x.is_complex() else x
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        arr = arr.astype(np.complex128, copy=False)
    elif arr.dtype.kind in "fiub":
        arr = arr.astype(np.float64, copy=False)
    else:
        raise ValueError(f"{name} must hold real or complex numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one sample is needed")
    require_finite(arr, name)
    return arr


def check_axis(arr: np.ndarray, axis):
    """``axis`` as an int in range for ``arr`` (or None); ``ValueError`` otherwise."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be None or an integer, got {axis!r}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis {axis} is out of range for data of shape {arr.shape}")
    return int(axis)
