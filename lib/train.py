"""Denoising score matching: the loss, a resumable training loop, and trained weights in the artefact cache.

With :math:`x_t = x_0 f(t, 0) + \\sqrt{\\Xi(t)}\\,\\eta`, :math:`\\eta \\sim \\mathcal N(0, 1)`, the loss with
weight :math:`\\lambda(t) = \\Xi(t)` is

.. math::

    \\mathcal L(\\theta) = \\tfrac12\\, \\mathbb E_{t \\sim U(t_{min}, T)}\\, \\mathbb E_{x_0, \\eta}
    \\big\\| \\sqrt{\\Xi(t)}\\, s_\\theta(x_t, t) + \\eta \\big\\|^2 ,

with one time drawn *per sample* and :math:`t_{min} = 10^{-5}` (the authors' value).  It differs from the
weighted distance to the true score, :math:`\\tfrac12 \\mathbb E\\, \\Xi(t) \\| s_\\theta - \\nabla \\log p(x, t)\\|^2`,
by a constant, so its minimiser is the exact score.  That stays true for any other distribution of :math:`t` with
support :math:`(t_{min}, T)` (it only changes the weight of each time), which is why ``t_sampling`` may put more
samples at small :math:`t`, where the uniform distribution leaves the score poorly determined.  Derived in :doc:`book/part1/score_matching`
(eq. ``eq-dsm-loss``); the training of the two-peak model in :doc:`book/part2/two_peak`.

All randomness (batches, times, noise) comes from one explicit ``torch.Generator``; the training loop saves
checkpoints from which an interrupted run continues bit for bit.
"""
from __future__ import annotations

import copy
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from lib._checks import NonFiniteError, expand_like, require_finite, require_in_range, require_positive
from lib._random import make_generator
from lib.cache import ArtefactCache
from lib.sde import LinearDriftSDE

__all__ = ["TrainConfig", "TrainResult", "dsm_loss", "sample_times", "train_score_model", "trained_score_model",
           "CHECKPOINT_NAME", "T_SAMPLINGS", "LR_SCHEDULES", "learning_rate"]

CHECKPOINT_NAME = "checkpoint.pt"  # file name of the checkpoint inside checkpoint_dir
_RESUME_FIELDS = ("lr", "batch_size", "augment_flip", "ema_decay", "t_min", "t_sampling", "lr_schedule")  # must match
LR_SCHEDULES = ("constant", "cosine")  # learning-rate schedules of train_score_model
T_SAMPLINGS = ("uniform", "log-uniform", "mixture")  # the distributions of t that dsm_loss can draw from


def _optional_count(value, name: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return value


def _check_t_sampling(t_sampling) -> str:
    if t_sampling not in T_SAMPLINGS:
        raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
    return t_sampling


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train_score_model`; give exactly one of ``n_steps`` and ``epochs``."""

    n_steps: int | None = None  # number of optimiser steps (>= 1), or None when epochs is given
    epochs: int | None = None  # number of passes over the (augmented) data (>= 1), or None when n_steps is given
    lr: float = 1e-4  # Adam learning rate; > 0 (the authors': 1e-4 for the toy model)
    batch_size: int = 512  # samples per step; >= 1 (the authors': 512); the last batch of an epoch may be smaller
    augment_flip: bool = False  # append -x to the data (the authors doubled their data by x -> -x)
    ema_decay: float | None = 0.999  # decay of the exponential moving average of the weights, in (0, 1); None: off
    t_min: float = 1e-5  # smallest diffusion time of the loss, t ~ U(t_min, T); > 0
    # distribution of t on (t_min, T): "uniform" (the authors'), "log-uniform", or "mixture" (half of each)
    t_sampling: str = "uniform"
    # learning rate at each step: "constant" (lr throughout) or "cosine" (from lr down to 0 at the last step)
    lr_schedule: str = "constant"
    checkpoint_every: int = 1000  # steps between checkpoints (when a checkpoint_dir is given); >= 1

    def __post_init__(self):
        _optional_count(self.n_steps, "n_steps")
        _optional_count(self.epochs, "epochs")
        if (self.n_steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of n_steps and epochs, got n_steps={self.n_steps}, epochs={self.epochs}")
        object.__setattr__(self, "lr", require_positive(self.lr, "lr"))
        if _optional_count(self.batch_size, "batch_size") is None:
            raise ValueError("batch_size must be a positive integer, got None")
        if not isinstance(self.augment_flip, bool):
            raise ValueError(f"augment_flip must be True or False, got {self.augment_flip!r}")
        if self.ema_decay is not None:
            decay = require_in_range(self.ema_decay, "ema_decay", 0.0, 1.0)
            if decay in (0.0, 1.0):
                raise ValueError(f"ema_decay must lie in the open interval (0, 1) or be None, got {decay}")
            object.__setattr__(self, "ema_decay", decay)
        object.__setattr__(self, "t_min", require_positive(self.t_min, "t_min"))
        _check_t_sampling(self.t_sampling)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if _optional_count(self.checkpoint_every, "checkpoint_every") is None:
            raise ValueError("checkpoint_every must be a positive integer, got None")


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``.

    ``"constant"``: ``config.lr``; ``"cosine"``: :math:`\\tfrac12\\,\\mathrm{lr}\\,(1 + \\cos(\\pi\\,
    \\mathrm{step} / \\mathrm{total}))`, which anneals the noise of the last steps away (the small-:math:`t` score
    is a noisy regression, see :doc:`book/part4/cl_diffusion`).
    """
    if config.lr_schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))


@dataclass
class TrainResult:
    """Outcome of :func:`train_score_model` or :func:`trained_score_model`."""

    model: nn.Module  # the trained network (last weights)
    ema: nn.Module | None  # copy of the network holding the moving average of the weights; None without EMA
    losses: torch.Tensor  # float64 tensor (n_steps,): the loss of every step
    from_cache: bool = False  # True when the weights were loaded from the artefact cache
    info: dict = field(default_factory=dict)  # e.g. wall time, number of steps, checkpoint it resumed from

    @property
    def sampling_model(self) -> nn.Module:
        """The network to sample with: the EMA weights when kept, else the last weights."""
        return self.ema if self.ema is not None else self.model


def sample_times(batch: int, sde: LinearDriftSDE, t_min: float = 1e-5, t_sampling: str = "uniform",
                 generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``batch`` diffusion times in :math:`(t_{min}, T)`, float64, from the distribution ``t_sampling``.

    * ``"uniform"``: :math:`t = t_{min} + (T - t_{min})\\,u`, :math:`u \\sim U(0, 1)` (the authors' choice);
    * ``"log-uniform"``: :math:`t = t_{min}\\,(T / t_{min})^u`, every decade of :math:`t` equally often;
    * ``"mixture"``: each time from one of the two above with probability 1/2.

    The first draw is always the ``batch`` uniform numbers ``u``, so ``"uniform"`` consumes the generator exactly
    as :func:`dsm_loss` always did.
    """
    _check_t_sampling(t_sampling)
    t_min = require_positive(t_min, "t_min")
    if t_min >= sde.T:
        raise ValueError(f"t_min must be < T = {sde.T}, got {t_min}")
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
    if t_sampling == "uniform":
        return t_min + (sde.T - t_min) * u
    t_log = t_min * (sde.T / t_min) ** u
    if t_sampling == "log-uniform":
        return t_log
    pick_log = torch.rand(batch, generator=generator, dtype=torch.float64, device=device) < 0.5
    return torch.where(pick_log, t_log, t_min + (sde.T - t_min) * u)


def dsm_loss(score_model: Callable, sde: LinearDriftSDE, x0: torch.Tensor, generator: torch.Generator | None = None,
             t_min: float = 1e-5, reduction: str = "mean", t_sampling: str = "uniform") -> torch.Tensor:
    """Denoising score matching loss :math:`\\tfrac12 \\| \\sqrt{\\Xi(t)}\\, s(x_t, t) + \\eta \\|^2`.

    Parameters
    ----------
    score_model : callable
        ``score_model(x, t) -> tensor like x`` with ``t`` a float64 ``(B,)`` tensor.
    sde : LinearDriftSDE
        Forward process; :math:`x_t` is drawn with :meth:`LinearDriftSDE.sample_marginal`.
    x0 : tensor (B, ...)
        Data batch.
    generator : torch.Generator
        Source of the times (one per sample, :func:`sample_times`) and of the noise :math:`\\eta`.
    t_min : float
        Lower end of the time interval, ``0 < t_min < T``.
    reduction : {"mean", "none"}
        Mean over the batch (a scalar), or the per-sample losses, shape ``(B,)`` (summed over configuration axes).
    t_sampling : {"uniform", "log-uniform", "mixture"}
        Distribution of the times, see :func:`sample_times`; ``"uniform"`` is the loss above.

    Notes
    -----
    For a Gaussian target :math:`\\mathcal N(0, s_0^2)` per degree of freedom and the exact score the expectation
    at fixed ``t`` is :math:`\\tfrac d2\\, s_0^2 f^2 / (s_0^2 f^2 + \\Xi)`, the minimum of the loss.
    Derived in :doc:`book/part1/score_matching` (eq. ``eq-dsm-loss``).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError("x0 must be a non-empty floating tensor of shape (B, ...) with the batch on axis 0")
    batch = x0.shape[0]
    t = sample_times(batch, sde, t_min, t_sampling, generator, x0.device)
    x_t, eta = sde.sample_marginal(x0, t, generator)
    std = expand_like(torch.sqrt(sde.xi(t)), x0)
    residual = std * score_model(x_t, t) + eta
    per_sample = 0.5 * residual.pow(2).reshape(batch, -1).sum(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample


# --- checkpoints --------------------------------------------------------------------------------------------------
def _atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then one ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _resume_config(config: TrainConfig) -> dict:
    return {k: getattr(config, k) for k in _RESUME_FIELDS}


def _load_checkpoint(path: Path, config: TrainConfig) -> dict | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("config", {})
    if saved != _resume_config(config):
        raise ValueError(f"the checkpoint {path} was written with {saved}, which differs from the requested "
                         f"{_resume_config(config)}; delete it or use another checkpoint_dir")
    return state


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """:math:`\\bar\\theta \\leftarrow d\\,\\bar\\theta + (1 - d)\\,\\theta`; buffers are copied."""
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def _model_dtype_device(model: nn.Module):
    for p in model.parameters():
        return p.dtype, p.device
    raise ValueError("the model has no parameters to train")


def train_score_model(model: nn.Module, sde: LinearDriftSDE, data: torch.Tensor, config: TrainConfig,
                      generator: torch.Generator, checkpoint_dir=None, progress: bool | None = None) -> TrainResult:
    """Train ``model`` in place by minimising :func:`dsm_loss` with Adam.

    Each epoch visits the data (with ``-x`` appended if ``config.augment_flip``) in the order of
    ``torch.randperm(generator=generator)``; every step draws times and noise from the same generator.  After each
    step the moving average :math:`\\bar\\theta \\leftarrow d\\,\\bar\\theta + (1 - d)\\,\\theta` of the weights is
    updated (``d = config.ema_decay``).

    Parameters
    ----------
    model : nn.Module
        Network ``model(x, t)``, e.g. from :func:`lib.nets.build_mlp`, already on its device.  Data are moved to
        the model's device and dtype.
    sde : LinearDriftSDE
        Forward process.
    data : tensor (N, ...)
        Training configurations.  Non-finite data raise :class:`NonFiniteError`.
    config : TrainConfig
        Hyperparameters.
    generator : torch.Generator
        On the model's device; its state is advanced (and restored from a checkpoint when resuming).
    checkpoint_dir : path-like, optional
        If given, ``checkpoint.pt`` (model, EMA, optimiser, step, generator state, epoch order, losses) is written
        atomically every ``config.checkpoint_every`` steps and at the end.  If it already holds a checkpoint the
        run continues from it (the weights of ``model`` and the state of ``generator`` are replaced), and the result
        is bitwise identical to an uninterrupted run.  ``lr``, ``batch_size``, ``augment_flip``, ``ema_decay``,
        ``t_min``, ``t_sampling`` and ``lr_schedule`` must match the checkpoint (else ``ValueError``);
        ``n_steps``/``epochs`` may grow (a cosine schedule then continues on the longer run's curve).
    progress : bool, optional
        Show a tqdm bar; ``None`` shows it only on an interactive terminal.

    Returns
    -------
    TrainResult
        Model, EMA copy and the loss of every step.

    Raises
    ------
    NonFiniteError
        When the loss becomes NaN or infinite; the message names the step.  The step is not applied.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator must be a torch.Generator (explicit randomness); see lib._random.make_generator")
    dtype, device = _model_dtype_device(model)
    if generator.device.type != device.type:
        raise ValueError(f"the generator lives on {generator.device} but the model on {device}")
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.ndim < 1 or data.shape[0] < 1:
        raise ValueError("data must be a non-empty floating tensor of shape (N, ...) with the samples on axis 0")
    require_finite(data, "training data")
    if config.t_min >= sde.T:
        raise ValueError(f"t_min = {config.t_min} must be < T = {sde.T}")
    data = data.to(device=device, dtype=dtype)
    if config.augment_flip:
        data = torch.cat([data, -data])
    n_data = data.shape[0]
    per_epoch = math.ceil(n_data / config.batch_size)
    total = config.n_steps if config.n_steps is not None else config.epochs * per_epoch

    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = copy.deepcopy(model) if config.ema_decay is not None else None
    if ema is not None:
        ema.requires_grad_(False)
    losses: list[float] = []
    step, perm, resumed_from = 0, None, None
    path = None
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        state = _load_checkpoint(path, config)
        if state is not None:
            if state["n_data"] != n_data:
                raise ValueError(f"the checkpoint {path} was trained on {state['n_data']} samples, not {n_data}")
            if state["step"] > total:
                raise ValueError(f"the checkpoint {path} is at step {state['step']}, beyond the requested {total}")
            model.load_state_dict(state["model"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            optimiser.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            step, perm, resumed_from = state["step"], state["perm"].to(device), state["step"]
            losses = state["losses"].tolist()

    def save_checkpoint():
        _atomic_save({"step": step, "n_data": n_data, "config": _resume_config(config),
                      "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                      "optimizer": optimiser.state_dict(), "generator": generator.get_state(),
                      "perm": perm.cpu() if perm is not None else torch.empty(0, dtype=torch.long),
                      "losses": torch.tensor(losses, dtype=torch.float64)}, path)

    start = time.perf_counter()
    model.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=None if progress is None else not progress)
    try:
        while step < total:
            pos = (step % per_epoch) * config.batch_size
            if pos == 0:
                perm = torch.randperm(n_data, generator=generator, device=generator.device).to(device)
            x0 = data[perm[pos:pos + config.batch_size]]
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step, total)
            loss = dsm_loss(model, sde, x0, generator, config.t_min, t_sampling=config.t_sampling)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteError(f"train_score_model: the loss became non-finite ({value}) at step {step + 1} "
                                     f"of {total}; lower the learning rate or check the data and the network")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if ema is not None:
                _ema_update(ema, model, config.ema_decay)
            losses.append(value)
            step += 1
            bar.update(1)
            if step % 100 == 0 or step == total:
                bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4g}")
            if path is not None and (step % config.checkpoint_every == 0 or step == total):
                save_checkpoint()
    finally:
        bar.close()
    info = {"steps": step, "steps_per_epoch": per_epoch, "resumed_from": resumed_from,
            "wall_time": time.perf_counter() - start}
    return TrainResult(model, ema, torch.tensor(losses, dtype=torch.float64), False, info)


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

    Stored: the ``state_dict`` of the model (``"model"``) and of its EMA (``"ema"``), the loss history, with a
    provenance record (seed, wall time, versions, device).  Weights are read back with
    ``torch.load(weights_only=True)`` (via :meth:`ArtefactCache.load`), never executed.
    Used in :doc:`book/part2/two_peak`.
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
        info = {"steps": len(stored["losses"]), "provenance": cache.provenance(kind, key)}
        return TrainResult(model, ema, stored["losses"], True, info)
    data = data_fn(make_generator(data_seed))
    result = train_score_model(model, sde, data, config, make_generator(train_seed, device),
                               checkpoint_dir=cache.scratch_dir(kind, key), progress=progress)
    stored_data = {"model": result.model.state_dict(), "losses": result.losses}
    if result.ema is not None:
        stored_data["ema"] = result.ema.state_dict()
    extra = {"device": str(device), "steps": result.info["steps"], "resumed_from": result.info["resumed_from"],
             "final_loss": float(result.losses[-100:].mean()), "n_data": int(data.shape[0])}
    cache.save(kind, key, stored_data, seed=seed, extra=extra, wall_time=result.info["wall_time"])
    cache.clear_scratch(kind, key)
    return result
