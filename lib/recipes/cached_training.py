"""A trained score network kept in the artefact cache: trained (resumably) on first use, read back afterwards.

The numerics of training live in :mod:`lib.diffusion.training`; this recipe adds the cache key, the seeds of data
and training, and the checkpoint directory.  Used by the recipes of every part that trains a network.
"""
from __future__ import annotations

import copy
import os
import uuid
import warnings
from typing import Callable

import torch
from torch import nn

from lib.core.random import make_generator
from lib.diffusion.sde import LinearDriftSDE
from lib.diffusion.training import CheckpointError, TrainConfig, TrainResult, train_score_model
from lib.infra.cache import ArtefactCache, CacheWarning

__all__ = ["trained_score_model"]


def trained_score_model(cache: ArtefactCache, kind: str, params: dict, sde: LinearDriftSDE,
                        build: Callable[[torch.Generator], nn.Module], data_fn: Callable[[torch.Generator], torch.Tensor],
                        config: TrainConfig, seed: int, device="cpu", progress: bool | None = None) -> TrainResult:
    """A trained score network from the artefact cache, trained (resumably) and stored there if absent.

    The cache key holds ``params`` (describe the network and the data here, e.g. ``{"net": MLPConfig(...),
    "target": "two_peak", "n_data": 500_000}``), the ``sde``, the ``config`` and the ``seed``.  One CPU generator
    seeded with ``seed`` first draws the seeds of the data and of the training, then initialises the network:

    * ``build(generator) -> nn.Module`` builds the untrained network on the CPU (e.g.
      ``lambda g: build_mlp(cfg, sde, generator=g)``); it is moved to ``device``;
    * ``data_fn(generator) -> tensor`` returns the training data (called only when training is needed);
    * training uses a generator on ``device`` and checkpoints to ``cache.scratch_dir(kind, key)``, so an interrupted
      call continues where it stopped; the scratch directory is removed once the weights are stored.

    A checkpoint that cannot be resumed from (corrupt, or of another run with the same key) is moved aside with a
    :class:`lib.infra.cache.CacheWarning` and the training starts again; an unwritable cache trains without
    checkpoints and returns the network uncached, with a warning.

    Stored: the ``state_dict`` of the model (``"model"``) and of its EMA (``"ema"``), the loss history, the kept
    snapshots (``TrainConfig.keep_at``), with a
    provenance record (seed, wall time, versions, device).  Weights are read back with
    ``torch.load(weights_only=True)`` (via :meth:`~lib.infra.cache.ArtefactCache.load`), never executed.
    Used in :doc:`/book/part2/two_peak`.
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict describing the network and the data, got {type(params).__name__}")
    key = {"params": params, "sde": sde, "train": config, "seed": seed}
    init_gen = make_generator(seed)
    data_seed, train_seed = torch.randint(0, 2**62, (2,), generator=init_gen).tolist()
    model = build(init_gen).to(device)
    ema = copy.deepcopy(model) if config.ema_decay is not None else None
    stored = cache.load(kind, key)
    if stored is not None:
        model.load_state_dict(stored["model"])
        if ema is not None:
            ema.load_state_dict(stored["ema"])
        provenance = cache.provenance(kind, key) or {}
        return TrainResult(model, ema, stored["losses"], float(provenance.get("wall_time") or float("nan")),
                           (provenance.get("extra") or {}).get("resumed_from"), from_cache=True,
                           snapshots={int(k): v for k, v in stored.get("snapshots", {}).items()})
    data = data_fn(make_generator(data_seed))
    try:
        scratch = cache.scratch_dir(kind, key)
    except OSError as err:  # an unwritable cache: train without checkpoints, the result is still returned
        warnings.warn(f"no checkpoints for {kind!r}: the scratch directory cannot be created ({err})", CacheWarning,
                      stacklevel=2)
        scratch = None
    try:
        result = train_score_model(model, sde, data, config, make_generator(train_seed, device),
                                   checkpoint_dir=scratch, progress=progress)
    except CheckpointError as err:  # recover by itself: set the checkpoint aside and train from the start
        aside = err.path.with_name(f"{err.path.name}.refused-{uuid.uuid4().hex[:8]}")
        os.replace(err.path, aside)
        warnings.warn(f"{err}; it was moved to {aside} and the training starts again", CacheWarning, stacklevel=2)
        result = train_score_model(model, sde, data, config, make_generator(train_seed, device),
                                   checkpoint_dir=scratch, progress=progress)
    stored_data = {"model": result.model.state_dict(), "losses": result.losses,
                   "snapshots": {str(k): v for k, v in result.snapshots.items()}}
    if result.ema is not None:
        stored_data["ema"] = result.ema.state_dict()
    extra = {"device": str(device), "steps": result.steps, "resumed_from": result.resumed_from,
             "final_loss": float(result.losses[-100:].mean()), "n_data": int(data.shape[0])}
    try:
        cache.save(kind, key, stored_data, seed=seed, extra=extra, wall_time=result.wall_time)
    except OSError as err:  # nothing computed is lost: the trained network is returned all the same
        warnings.warn(f"could not store the trained network {kind!r} in {cache.root} ({err}); it is returned but "
                      "not cached", CacheWarning, stacklevel=2)
        return result
    cache.clear_scratch(kind, key)
    return result
