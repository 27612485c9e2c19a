"""Artefacts made of independent batches: a seed per batch, the batches run (and saved as they finish), combined.

The proposals of :mod:`lib.recipes.pipelines.flow_proposals` and :mod:`lib.recipes.pipelines.path_proposals` are
made this way: :func:`draw_batches` computes them now, :func:`cached_batches` through the artefact cache, where an
interrupted run resumes with the first missing batch (:meth:`lib.infra.cache.ArtefactCache.batches`).  Nothing is
computed at import time.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from lib.core.checks import require_int
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache

__all__ = ["draw_batches", "cached_batches"]


def draw_batches(n: int, batch: int, seed: int, one_batch: Callable, fields: tuple, rate: str,
                 run_batches: Callable | None = None) -> dict:
    """``n`` items in batches of ``batch``: ``one_batch(b, size, batch_seed)`` returns a dict of tensors (items
    first) for batch ``b`` of ``size`` items, drawn from ``batch_seed`` (one per batch, from ``seed``).

    Returns the ``fields`` concatenated over the batches and ``rate``: the wall time per item (float64 tensor).
    ``run_batches(n_batches, fn)`` runs the batches (default: one after the other; :func:`cached_batches` passes the
    cache's, which saves each as it finishes).
    """
    n, batch = require_int(n, "n"), require_int(batch, "batch")
    n_batches = math.ceil(n / batch)
    seeds = torch.randint(0, 2**62, (n_batches,), generator=make_generator(seed)).tolist()

    def timed(b):
        t0 = time.perf_counter()
        out = dict(one_batch(b, min(batch, n - b * batch), seeds[b]))
        out["wall_time"] = time.perf_counter() - t0
        return out

    batches = (run_batches or (lambda m, fn: [fn(b) for b in range(m)]))(n_batches, timed)
    data = {name: torch.cat([b[name] for b in batches]) for name in fields}
    data[rate] = torch.tensor(sum(float(b["wall_time"]) for b in batches) / n, dtype=torch.float64)
    return data


def cached_batches(cache: ArtefactCache, kind: str, key: dict, seed: int, code: str, draw: Callable) -> dict:
    """The artefact ``(kind, key)`` from ``cache``, else ``draw(run_batches)`` with the cache's batch runner (each
    batch saved as it finishes, so an interrupted run resumes), stored with ``seed``; the scratch batches are then
    cleared."""
    data = cache.get_or_compute(kind, key, lambda: draw(lambda n, fn: cache.batches(kind, key, n, fn, code=code)),
                                seed=seed, code=code)
    cache.clear_scratch(kind, key, code=code)
    return data
