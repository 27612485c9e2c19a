"""Writing files so that an interrupted process never leaves a half-written one behind.

Used by the training checkpoints (:mod:`lib.diffusion.training`) and by the batches of resumable runs
(:meth:`lib.infra.cache.ArtefactCache.batches`).
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import torch

__all__ = ["atomic_save", "STALE_AGE"]

#: seconds after which the temporary file of a killed writer is removed by the next write of the same file
STALE_AGE = 3600.0


def atomic_save(obj, path) -> None:
    """``torch.save(obj)`` to a temporary file in the directory of ``path``, then one ``os.replace`` onto ``path``.

    A reader sees either the old file or the complete new one, never a partial write.  Temporary files of this path
    left by a killed writer (``.<name>.tmp-*``, older than :data:`STALE_AGE` seconds, so that a concurrent writer's
    is never touched) are removed after a successful write.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            if now - stale.stat().st_mtime > STALE_AGE:
                stale.unlink()
        except OSError:  # removed meanwhile by another writer, or not ours to remove
            pass
