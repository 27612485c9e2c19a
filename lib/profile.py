"""The one place that selects the scale of a computation and the device it runs on.

Two scales exist:

``quick``
    the default: CPU-sized sample counts, minutes per chapter; what CI runs.
``paper``
    the sample sizes of the papers; meant for a GPU.

Select the scale with the environment variable ``LIB_SCALE`` (``quick`` or ``paper``)
and the device with ``LIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ...).  Without
``LIB_DEVICE`` the device is CUDA when available, otherwise the CPU.  Nothing is read
at import time: call :func:`current` when the value is needed.

Derived in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Profile", "current", "SCALES"]

SCALES = ("quick", "paper")


@dataclass(frozen=True)
class Profile:
    """Scale and device of a run."""

    scale: str  # "quick" (CPU, minutes) or "paper" (the papers' sample sizes)
    device: str  # torch device string, e.g. "cpu" or "cuda"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a valid torch device: {err}") from None

    @property
    def is_paper(self) -> bool:
        return self.scale == "paper"

    def pick(self, quick: Any, paper: Any) -> Any:
        """Return ``quick`` or ``paper`` according to the scale."""
        return paper if self.is_paper else quick

    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def current(scale: str | None = None, device: str | None = None) -> Profile:
    """The profile selected by the arguments, else by ``LIB_SCALE``/``LIB_DEVICE``, else the defaults."""
    scale = scale or os.environ.get("LIB_SCALE", "quick").strip().lower() or "quick"
    device = device or os.environ.get("LIB_DEVICE", "").strip()
    if not device:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"LIB_DEVICE={device!r} was requested but CUDA is not available on this machine")
    return Profile(scale=scale, device=device)
