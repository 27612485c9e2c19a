"""The one place that selects the scale of a computation and the device it runs on.

Two scales exist:

``quick``
    the default: CPU-sized sample counts, minutes per chapter; what CI runs.
``paper``
    the sample sizes of the papers; meant for a GPU.

Select the scale with the environment variable ``LIB_SCALE`` (``quick`` or ``paper``)
and the device with ``LIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ...).  Without
``LIB_DEVICE`` the device is CUDA when available, otherwise the CPU.  ``LIB_THREADS``
sets the number of CPU threads torch uses for a chapter (:meth:`Profile.configure_torch`);
on the CPU the default is one thread: the element-wise loops of the samplers gain little
from a second thread on a two-core machine and lose a factor 5-10 when the machine is busy
with anything else (torch's OpenMP threads spin at every barrier).  Nothing is read at
import time: call :func:`current` when the value is needed.

Derived in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from lib.core.checks import require_int

__all__ = ["Profile", "current", "SCALES"]

#: the scales a run can have
SCALES = ("quick", "paper")


@dataclass(frozen=True)
class Profile:
    """Scale and device of a run."""

    scale: str  # "quick" (CPU, minutes) or "paper" (the papers' sample sizes)
    device: str  # torch device string, e.g. "cpu" or "cuda"
    threads: int | None = None  # CPU threads for torch (None: leave torch's default)

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a valid torch device: {err}") from None
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")

    @property
    def is_paper(self) -> bool:
        return self.scale == "paper"

    def pick(self, quick: Any, paper: Any) -> Any:
        """Return ``quick`` or ``paper`` according to the scale."""
        return paper if self.is_paper else quick

    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def configure_torch(self) -> "Profile":
        """Set torch's number of CPU threads to ``threads`` (if not None); called once in a chapter's setup cell."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return self


def current(scale: str | None = None, device: str | None = None, threads: int | None = None,
            cpu_threads: int = 1) -> Profile:
    """The profile selected by the arguments, else by ``LIB_SCALE``/``LIB_DEVICE``/``LIB_THREADS``, else the
    defaults (quick scale; CUDA when available; ``cpu_threads`` CPU threads on the CPU, torch's default on a GPU).

    ``cpu_threads`` is a chapter's default for the CPU when ``LIB_THREADS`` is not set: 1 for the element-wise
    samplers; 2 where the work is large batched convolutions (the full Jacobians of
    :doc:`/book/part3/exact_sampler`, measured 1.5 times faster on two cores)."""
    scale = scale or os.environ.get("LIB_SCALE", "quick").strip().lower() or "quick"
    device = device or os.environ.get("LIB_DEVICE", "").strip()
    if not device:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"LIB_DEVICE={device!r} was requested but CUDA is not available on this machine")
    if threads is None:
        text = os.environ.get("LIB_THREADS", "").strip()
        if text:
            try:
                threads = int(text)
            except ValueError:
                raise ValueError(f"LIB_THREADS must be a positive integer, got {text!r}") from None
        elif device == "cpu":
            threads = require_int(cpu_threads, "cpu_threads")
    return Profile(scale=scale, device=device, threads=threads)
