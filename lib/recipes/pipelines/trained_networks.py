"""A trained score network: from the store of trained networks, else the artefact cache, else trained (resumably).

A :class:`NetworkRecipe` describes a network completely: its kind, the parameters of the network and of its data,
the forward process, the training configuration, the seed, and the modules of :mod:`lib` whose code computes it (the
data, the network, the training).  Its key is that of the artefact cache (:meth:`NetworkRecipe.key_params` and the
import closure of ``code``), the same in the store (:mod:`lib.infra.store`) and in the cache.  :func:`trained`
returns the network in the same form wherever it came from; the numerics of training live in
:mod:`lib.diffusion.training`.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import platform
import uuid
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lib.core.random import make_generator
from lib.diffusion.sde import LinearDriftSDE
from lib.diffusion.training import CheckpointError, TrainConfig, TrainResult, train_score_model
from lib.infra import store as _store
from lib.infra.cache import ArtefactCache, CacheWarning, _round_trip

__all__ = ["NetworkRecipe", "trained", "machine"]


@dataclass(frozen=True, eq=False)
class NetworkRecipe:
    """Everything that makes a trained network; ``kind``, ``params``, ``sde``, ``train``, ``seed`` and ``code`` make its key.

    ``build(generator)`` returns the untrained network on the CPU; ``data(generator)`` returns ``(x, inputs)``: the
    training data as the network sees them and a dict of numbers describing the map from physical data to the
    network's input (e.g. a normalisation), stored with the weights.  ``data`` is called only when the network is
    trained.
    """

    kind: str  # cache kind and folder in the store, e.g. "phi4-dm-weights"
    params: dict  # the network and its data, e.g. {"spec": DMSpec(...)}; every entry enters the key
    sde: LinearDriftSDE  # the forward process of the loss (and of the network's output scaling)
    train: TrainConfig  # the training
    seed: int  # seeds the data, the initial weights and the training
    code: tuple  # modules of lib whose code computes the network and its data (usually the recipe's __name__)
    build: Callable[[torch.Generator], nn.Module] = dataclasses.field(repr=False)
    data: Callable[[torch.Generator], tuple] = dataclasses.field(repr=False)

    def __post_init__(self):
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be a dict describing the network and the data, got "
                             f"{type(self.params).__name__}")
        if not isinstance(self.sde, LinearDriftSDE):
            raise ValueError(f"sde must be a LinearDriftSDE, got {type(self.sde).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        code = (self.code,) if isinstance(self.code, str) else tuple(self.code)
        object.__setattr__(self, "code", code)

    def key_params(self) -> dict:
        """The parameters of the key (with ``code``: :meth:`lib.infra.cache.ArtefactCache.key`)."""
        return {"params": self.params, "sde": self.sde, "train": self.train, "seed": self.seed}


def machine() -> dict:
    """Where a network was trained: the CPU model (Linux), architecture, cores, torch threads, platform."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "arch": platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True)}


def _stored_result(recipe: NetworkRecipe, data: dict, record: dict, source: str, device) -> TrainResult:
    """The :class:`~lib.diffusion.training.TrainResult` of a stored network (cache or store)."""
    init = make_generator(recipe.seed)
    torch.randint(0, 2**62, (2,), generator=init)  # the seeds of data and training, as in training
    sampling = recipe.build(init).to(device)
    sampling.load_state_dict(data["sampling"])
    last = None
    if "last" in data:
        last = copy.deepcopy(sampling)
        last.load_state_dict(data["last"])
    averaged = recipe.train.ema_decay is not None
    extra = record.get("extra") or {}
    return TrainResult(model=last if averaged else sampling, ema=sampling if averaged else None,
                       losses=data["losses"], wall_time=float(record.get("wall_time") or float("nan")),
                       resumed_from=extra.get("resumed_from"), source=source,
                       snapshots={int(k): v for k, v in data.get("snapshots", {}).items()},
                       inputs=dict(data.get("inputs", {})), record=record)


def trained(recipe: NetworkRecipe, cache: ArtefactCache | None = None, device=None,
            progress: bool | None = None) -> TrainResult:
    """The network of ``recipe``: from the store (:mod:`lib.infra.store`, unless ``LIB_STORE=off``), else from the
    artefact cache, else trained now (resumably) and saved in the cache.

    Training: one CPU generator seeded with ``recipe.seed`` draws the seeds of the data and of the training, then
    initialises the network (``recipe.build``); the data come from ``recipe.data``; training uses a generator on
    ``device`` and checkpoints to the cache's scratch directory, so an interrupted call continues where it stopped.
    A checkpoint that cannot be resumed from is moved aside with a :class:`~lib.infra.cache.CacheWarning` and the
    training starts again; an unwritable cache trains without checkpoints and returns the network uncached.

    Kept (store and cache alike): the sampling weights (the moving average when the training keeps one), the last
    weights when ``recipe.train.keep_last`` (or when there is no average), the snapshots of ``train.keep_at``, the
    loss of every step and the ``inputs`` of ``recipe.data``, with a provenance record (seed, steps, wall time, final
    loss, device, machine, versions).  The result is the same whichever the source (``TrainResult.source``:
    ``"store"``, ``"cache"`` or ``"trained"``); without kept last weights ``TrainResult.model`` is None.  Weights are
    read with ``torch.load(weights_only=True)``, never executed.

    Raises
    ------
    lib.infra.store.StoreError
        When the store's entry for this network is damaged (named in the message).
    lib.infra.store.StoreMissing
        With ``LIB_STORE=require``, when the store has no entry for this network.
    """
    if not isinstance(recipe, NetworkRecipe):
        raise ValueError(f"recipe must be a NetworkRecipe, got {type(recipe).__name__}")
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    kind, key, code = recipe.kind, recipe.key_params(), recipe.code
    how = _store.mode()
    if how != "off":
        found = _store.NetworkStore().load(kind, key, code=code)
        if found is not None:
            return _stored_result(recipe, *found, "store", device)
        if how == "require":
            raise _store.StoreMissing(
                f"the store {_store.default_root()} has no trained network of kind {kind!r} for {recipe!r} with the "
                f"current code (key {cache.key(kind, key, code=code)[:16]}): run `make models` (LIB_STORE=require "
                "forbids training it here)")
    stored = cache.load(kind, key, code=code)
    if stored is not None:
        return _stored_result(recipe, stored, cache.provenance(kind, key, code=code) or {}, "cache", device)

    init = make_generator(recipe.seed)
    data_seed, train_seed = torch.randint(0, 2**62, (2,), generator=init).tolist()
    model = recipe.build(init).to(device)
    x, inputs = recipe.data(make_generator(data_seed))
    try:
        scratch = cache.scratch_dir(kind, key, code=code)
    except OSError as err:  # an unwritable cache: train without checkpoints, the result is still returned
        warnings.warn(f"no checkpoints for {kind!r}: the scratch directory cannot be created ({err})", CacheWarning,
                      stacklevel=2)
        scratch = None
    initial = copy.deepcopy(model.state_dict())
    try:
        result = train_score_model(model, recipe.sde, x, recipe.train, make_generator(train_seed, device),
                                   checkpoint_dir=scratch, progress=progress)
    except CheckpointError as err:  # recover by itself: set the checkpoint aside and train from the start
        aside = err.path.with_name(f"{err.path.name}.refused-{uuid.uuid4().hex[:8]}")
        os.replace(err.path, aside)
        warnings.warn(f"{err}; it was moved to {aside} and the training starts again", CacheWarning, stacklevel=2)
        model.load_state_dict(initial)
        result = train_score_model(model, recipe.sde, x, recipe.train, make_generator(train_seed, device),
                                   checkpoint_dir=scratch, progress=progress)
    kept = {"sampling": result.sampling_model.state_dict(), "losses": result.losses,
            "snapshots": {str(k): v for k, v in result.snapshots.items()}, "inputs": dict(inputs)}
    if recipe.train.keep_last and result.ema is not None:
        kept["last"] = result.model.state_dict()
    extra = {"device": str(device), "steps": result.steps, "resumed_from": result.resumed_from,
             "final_loss": float(result.losses[-100:].mean()), "n_data": int(x.shape[0]), "machine": machine()}
    try:
        cache.save(kind, key, kept, seed=recipe.seed, extra=extra, wall_time=result.wall_time, code=code)
    except OSError as err:  # nothing computed is lost: the trained network is returned all the same
        warnings.warn(f"could not store the trained network {kind!r} in {cache.root} ({err}); it is returned but "
                      "not cached", CacheWarning, stacklevel=2)
        record = {"extra": extra, "wall_time": result.wall_time, "seed": recipe.seed}
        return _stored_result(recipe, _round_trip(kept), record, "trained", device)
    cache.clear_scratch(kind, key, code=code)
    return _stored_result(recipe, cache.load(kind, key, code=code), cache.provenance(kind, key, code=code),
                          "trained", device)
