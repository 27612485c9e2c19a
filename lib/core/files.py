"""Writing files so that an interrupted process never leaves a half-written one behind.

Used by the training checkpoints (:mod:`lib.diffusion.training`) and by the batches of resumable runs
(:mod:`lib.recipes.phi4_diffusion`).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch

__all__ = ["atomic_save"]


def atomic_save(obj, path) -> None:
    """``torch.save(obj)`` to a temporary file in the directory of ``path``, then one ``os.replace`` onto ``path``.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
