"""Training a score network by denoising score matching: hyperparameters, the resumable loop, checkpoints.

The loss is :func:`lib.diffusion.losses.dsm_loss`.  All randomness (batches, times, noise) comes from one
explicit ``torch.Generator``; the loop saves checkpoints from which an interrupted run continues bit for bit.
Derived in :doc:`/book/part1/score_matching`; the training of the two-peak model in :doc:`/book/part2/two_peak`.
A trained network kept in the store of trained networks or the artefact cache is a recipe:
:func:`lib.recipes.pipelines.trained_networks.trained`.
"""
from __future__ import annotations

import copy
import hashlib
import io
import math
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lib.core.checks import (NonFiniteError, require_batch, require_in_range, require_int, require_nonnegative,
                             require_positive)
from lib.core.files import atomic_save
from lib.diffusion.losses import T_SAMPLINGS, check_t_sampling, dsm_loss
from lib.diffusion.sde import LinearDriftSDE

__all__ = ["TrainConfig", "TrainResult", "train_score_model", "learning_rate", "CHECKPOINT_NAME", "T_SAMPLINGS",
           "LR_SCHEDULES", "CheckpointError", "TrainingDiverged", "run_identity", "data_fingerprint", "save_checkpoint",
           "load_checkpoint"]

#: file name of the checkpoint inside checkpoint_dir
CHECKPOINT_NAME = "checkpoint.pt"
#: layout of a checkpoint file; {"format", "sha256", "payload"}
CHECKPOINT_FORMAT = 2
_RESUME_FIELDS = ("lr", "batch_size", "augment_flip", "ema_decay", "t_min", "t_sampling", "lr_schedule",
                  "keep_at", "zero_mode_weight")  # must match
#: steps over which the mean loss is compared with the first step's (TrainConfig.max_loss_growth)
DIVERGENCE_WINDOW = 100
#: learning-rate schedules of train_score_model
LR_SCHEDULES = ("constant", "cosine")


def _optional_count(value, name: str):
    return None if value is None else require_int(value, name, 1)


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
    # stop with TrainingDiverged when the mean loss of the last 100 steps (of all steps, before the 100th) exceeds
    # this factor times the loss of the first step (the untrained network), checked after every step: a diverging
    # run, e.g. a learning rate far too large; None: never
    max_loss_growth: float | None = 1e4
    # steps after which a copy of the sampling weights (EMA if kept) is kept in TrainResult.snapshots: the networks
    # of one run at several stages of training; strictly increasing, each >= 1 and at most the number of steps
    keep_at: tuple = ()
    # extra weight of the residual's constant component (on a lattice the p = 0 mode, whose variance is the
    # susceptibility) in the loss; >= 0; the minimiser stays the exact score (lib.diffusion.losses.dsm_loss)
    zero_mode_weight: float = 0.0
    # keep the weights of the last step beside the moving average (TrainResult.model) when the trained network is
    # stored (lib.recipes.pipelines.trained_networks); False: only the averaged weights, which generate, are kept
    keep_last: bool = False

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
        check_t_sampling(self.t_sampling)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if _optional_count(self.checkpoint_every, "checkpoint_every") is None:
            raise ValueError("checkpoint_every must be a positive integer, got None")
        if self.max_loss_growth is not None:
            growth = require_positive(self.max_loss_growth, "max_loss_growth")
            if growth <= 1.0:
                raise ValueError(f"max_loss_growth must be > 1 (a factor of growth of the loss) or None, got {growth}")
            object.__setattr__(self, "max_loss_growth", growth)
        if isinstance(self.keep_at, (str, bytes)) or not isinstance(self.keep_at, (tuple, list)):
            raise ValueError(f"keep_at must be a sequence of step numbers, got {self.keep_at!r}")
        keep = tuple(require_int(k, "keep_at step", 1) for k in self.keep_at)
        if any(b <= a for a, b in zip(keep, keep[1:])):
            raise ValueError(f"keep_at must be strictly increasing, got {keep}")
        if keep and self.n_steps is not None and keep[-1] > self.n_steps:
            raise ValueError(f"keep_at asks for step {keep[-1]}, beyond n_steps = {self.n_steps}")
        object.__setattr__(self, "keep_at", keep)
        object.__setattr__(self, "zero_mode_weight", require_nonnegative(self.zero_mode_weight, "zero_mode_weight"))
        if not isinstance(self.keep_last, bool):
            raise ValueError(f"keep_last must be True or False, got {self.keep_last!r}")


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``.

    ``"constant"``: ``config.lr``; ``"cosine"``: :math:`\\tfrac12\\,\\mathrm{lr}\\,(1 + \\cos(\\pi\\,
    \\mathrm{step} / \\mathrm{total}))`, which anneals the noise of the last steps away (the small-:math:`t` score
    is a noisy regression, see :doc:`/book/part4/cl_diffusion`).
    """
    if config.lr_schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))


@dataclass
class TrainResult:
    """Outcome of :func:`train_score_model`, and of a stored training (:mod:`lib.recipes.pipelines.trained_networks`).

    The same fields whether the network was just trained or read back from the store or the artefact cache.
    """

    model: nn.Module | None  # the trained network (last weights); None when a stored network did not keep them
    ema: nn.Module | None  # copy of the network holding the moving average of the weights; None without EMA
    losses: torch.Tensor  # float64 tensor (n_steps,): the loss of every step
    wall_time: float  # seconds of training (of this call, or of the run that stored the network)
    resumed_from: int | None = None  # step of the checkpoint the training continued from; None: from scratch
    source: str = "trained"  # where the weights come from: "trained" (now), "cache" (artefact cache) or "store"
    snapshots: dict = dataclasses.field(default_factory=dict)  # step -> state_dict of the sampling weights after
    # that step, for the steps of TrainConfig.keep_at (load into a copy of the network with load_state_dict)
    inputs: dict = dataclasses.field(default_factory=dict)  # the map from physical data to the network's input
    # (e.g. a normalisation), stored with a trained network
    record: dict = dataclasses.field(default_factory=dict)  # provenance of a stored network (seed, wall time,
    # steps, machine, versions); empty for a network trained by train_score_model directly

    @property
    def steps(self) -> int:
        """Number of optimiser steps."""
        return int(self.losses.numel())

    @property
    def seconds_per_step(self) -> float:
        """Wall time per optimiser step (of the run that produced the weights)."""
        return self.wall_time / max(self.steps, 1)

    @property
    def sampling_model(self) -> nn.Module:
        """The network to sample with (the EMA weights when kept, else the last weights)."""
        return self.ema if self.ema is not None else self.model

    @property
    def last_model(self) -> nn.Module:
        """The network of the last training step; raises when a stored network did not keep it."""
        if self.model is None:
            raise ValueError("this network's last weights were not kept (TrainConfig.keep_last=False): only the "
                             "averaged weights are stored; train with keep_last=True to generate with the last weights")
        return self.model


# --- checkpoints --------------------------------------------------------------------------------------------------
def _resume_config(config: TrainConfig) -> dict:
    return {k: getattr(config, k) for k in _RESUME_FIELDS}


class TrainingDiverged(NonFiniteError):
    """The training loss grew by more than ``TrainConfig.max_loss_growth`` (a diverging run)."""


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed from: unreadable, corrupt (checksum) or of another run.

    ``path`` is the checkpoint file; the message says what is wrong or what differs.
    """

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


def data_fingerprint(data: torch.Tensor) -> str:
    """sha256 of the shape, dtype and values of a tensor (on any device)."""
    arr = data.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{tuple(arr.shape)}|{arr.dtype}|".encode())
    digest.update(arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b"")
    return digest.hexdigest()


def run_identity(model: nn.Module, sde: LinearDriftSDE, data: torch.Tensor, config: TrainConfig) -> dict:
    """Everything that determines a training run besides the generator and the number of steps: the SDE, the network
    (class, configuration, parameter shapes), the hyperparameters that must match on resuming and a fingerprint of the
    (augmented) training data.  Stored in every checkpoint and compared on resuming."""
    return {
        "sde": repr(sde),
        "network": f"{type(model).__qualname__}({getattr(model, 'config', '')!r})",
        # the SDE baked into the network's output (its division by the kernel width), which may differ from the loss's
        "network_sde": repr(getattr(model, "sde", None)),
        "parameters": [[name, list(value.shape)] for name, value in model.state_dict().items()],
        "train": {k: v for k, v in _resume_config(config).items()},
        "data": data_fingerprint(data),
    }


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` atomically with a sha256 checksum of its serialised bytes (see :func:`load_checkpoint`)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    atomic_save({"format": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                 "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, path)


def load_checkpoint(path: Path, identity: dict | None = None) -> dict | None:
    """The state in the checkpoint file ``path``, or None when there is none.

    Raises :class:`CheckpointError` naming the file when it is unreadable, when its checksum does not match (a
    flipped byte anywhere, weights included), or when ``identity`` (:func:`run_identity`) differs from the stored
    one (the message names every field that differs).  Loaded with ``weights_only=True``: nothing is executed.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
        payload, expected = outer["payload"].numpy().tobytes(), outer["sha256"]
        if outer.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {outer.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    except Exception as err:
        raise CheckpointError(f"the training checkpoint {path} is unreadable (not a complete checkpoint written by "
                              f"lib: {type(err).__name__}); delete it or use another checkpoint_dir", path) from None
    if hashlib.sha256(payload).hexdigest() != expected:
        raise CheckpointError(f"the training checkpoint {path} is corrupt: the sha256 of its contents does not match "
                              "the checksum stored with it; delete it or use another checkpoint_dir", path)
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if identity is not None:
        saved = state.get("identity") or {}
        differs = [f"{k} (checkpoint: {_short(saved.get(k))}, requested: {_short(identity[k])})"
                   for k in identity if saved.get(k) != identity[k]]
        if differs:
            raise CheckpointError(f"the training checkpoint {path} belongs to another run; differs in "
                                  + "; ".join(differs) + ". Delete it or use another checkpoint_dir", path)
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
    """Train ``model`` in place by minimising :func:`~lib.diffusion.losses.dsm_loss` with Adam.

    Each epoch visits the data (with ``-x`` appended if ``config.augment_flip``) in the order of
    ``torch.randperm(generator=generator)``; every step draws times and noise from the same generator.  After each
    step the moving average :math:`\\bar\\theta \\leftarrow d\\,\\bar\\theta + (1 - d)\\,\\theta` of the weights is
    updated (``d = config.ema_decay``).

    Parameters
    ----------
    model : nn.Module
        Network ``model(x, t)``, e.g. from :func:`lib.diffusion.nets.build_mlp`, already on its device.  Data are moved to
        the model's device and dtype.
    sde : LinearDriftSDE
        Forward process.
    data : tensor (N, ...)
        Training configurations.  Non-finite data raise :class:`~lib.core.checks.NonFiniteError`.
    config : TrainConfig
        Hyperparameters.
    generator : torch.Generator
        On the model's device; its state is advanced (and restored from a checkpoint when resuming).
    checkpoint_dir : path-like, optional
        If given, ``checkpoint.pt`` (model, EMA, optimiser, step, generator state, epoch order, losses) is written
        atomically every ``config.checkpoint_every`` steps and at the end.  If it already holds a checkpoint the
        run continues from it (the weights of ``model`` and the state of ``generator`` are replaced), and the result
        is bitwise identical to an uninterrupted run.  The checkpoint carries a checksum and the identity of its run
        (:func:`run_identity`: the SDE, the network, ``lr``, ``batch_size``, ``augment_flip``, ``ema_decay``,
        ``t_min``, ``t_sampling``, ``lr_schedule``, ``keep_at`` and a fingerprint of the data); an unreadable, corrupt or foreign
        checkpoint raises :class:`CheckpointError` naming the file and what differs.  ``n_steps``/``epochs`` may
        grow (a cosine schedule then continues on the longer run's curve).
    progress : bool, optional
        Show a tqdm bar; ``None`` shows it only on an interactive terminal.

    Returns
    -------
    TrainResult
        Model, EMA copy and the loss of every step.

    Raises
    ------
    lib.core.checks.NonFiniteError
        When the loss becomes NaN or infinite; the message names the step.  The step is not applied.
    TrainingDiverged
        When the loss grows by more than ``config.max_loss_growth`` (a :class:`~lib.core.checks.NonFiniteError`).
    CheckpointError
        When the checkpoint in ``checkpoint_dir`` cannot be resumed from.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator must be a torch.Generator (explicit randomness); see lib.core.random.make_generator")
    dtype, device = _model_dtype_device(model)
    if generator.device.type != device.type:
        raise ValueError(f"the generator lives on {generator.device} but the model on {device}")
    require_batch(data, "training data", finite=True, non_empty=True)
    if config.t_min >= sde.T:
        raise ValueError(f"t_min = {config.t_min} must be < T = {sde.T}")
    data = data.to(device=device, dtype=dtype)
    if config.augment_flip:
        data = torch.cat([data, -data])
    n_data = data.shape[0]
    per_epoch = math.ceil(n_data / config.batch_size)
    total = config.n_steps if config.n_steps is not None else config.epochs * per_epoch
    if config.keep_at and config.keep_at[-1] > total:
        raise ValueError(f"keep_at asks for step {config.keep_at[-1]}, beyond the {total} steps of this training")

    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = copy.deepcopy(model) if config.ema_decay is not None else None
    if ema is not None:
        ema.requires_grad_(False)
    losses: list[float] = []
    snapshots: dict = {}
    step, perm, resumed_from = 0, None, None
    path = identity = None
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = run_identity(model, sde, data, config)
        state = load_checkpoint(path, identity)
        if state is not None:
            if state["step"] > total:
                raise ValueError(f"the checkpoint {path} is at step {state['step']}, beyond the requested {total}")
            model.load_state_dict(state["model"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            optimiser.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            step, perm, resumed_from = state["step"], state["perm"].to(device), state["step"]
            losses = state["losses"].tolist()
            snapshots = {int(k): v for k, v in state.get("snapshots", {}).items()}

    def write_checkpoint():
        save_checkpoint({"step": step, "identity": identity,
                         "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                         "optimizer": optimiser.state_dict(), "generator": generator.get_state(),
                         "perm": perm.cpu() if perm is not None else torch.empty(0, dtype=torch.long),
                         "losses": torch.tensor(losses, dtype=torch.float64), "snapshots": snapshots}, path)

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
            loss = dsm_loss(model, sde, x0, generator, config.t_min, t_sampling=config.t_sampling,
                            zero_mode_weight=config.zero_mode_weight)
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
            if step in config.keep_at:
                snapshots[step] = copy.deepcopy((ema if ema is not None else model).state_dict())
            if config.max_loss_growth is not None:
                window = losses[-DIVERGENCE_WINDOW:]
                first, last = losses[0], sum(window) / len(window)
                if last > config.max_loss_growth * first:
                    raise TrainingDiverged(
                        f"train_score_model: the loss diverged: mean {last:.4g} over steps {step - len(window) + 1}-{step}, "
                        f"{last / first:.3g} times the loss {first:.4g} of the untrained network at the first step "
                        f"(max_loss_growth = {config.max_loss_growth:g}); lower the learning rate (lr = {config.lr:g})")
            bar.update(1)
            if step % 100 == 0 or step == total:
                bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4g}")
            if path is not None and (step % config.checkpoint_every == 0 or step == total):
                write_checkpoint()
    finally:
        bar.close()
    return TrainResult(model, ema, torch.tensor(losses, dtype=torch.float64), time.perf_counter() - start,
                       resumed_from, snapshots=snapshots)


