r"""Diffusion models of lattice :math:`\phi^4`: training data, trained weights and generated ensembles as artefacts.

The recipes of :doc:`/book/part3/phi4_diffusion`, each a frozen dataclass whose every field enters the cache key
(:class:`lib.infra.cache.ArtefactCache`):

:class:`DMSpec` (cache kind ``"phi4-dm-weights"``)
    a score network (:mod:`lib.diffusion.lattice_nets`) trained by denoising score matching (:mod:`lib.diffusion.training`) on the pooled
    configurations of one or more HMC ensembles (:mod:`lib.recipes.phi4_ensembles`), normalised with
    :class:`lib.diffusion.normalise.Normalisation` (``"maxabs"``: :math:`\phi/\max|\phi|`, no shift; ``"minmax"``: the
    authors' map to :math:`[-1, 1]`), for the variance-expanding scheme with :math:`\sigma = 25`
    (arXiv:2309.17082).  The flip augmentation :math:`\phi \to -\phi` makes the training set
    :math:`Z_2`-symmetric.
:class:`SampleSpec` (cache kind ``"phi4-dm-samples"``)
    configurations generated with the authors' Euler-Maruyama sampler (:func:`lib.diffusion.solvers.backward_em`), in
    batches that are saved as they finish (an interrupted run resumes at the next batch) by stochastic Heun on the
    grid of Karras et al. (:func:`lib.diffusion.grids.karras`) or by the authors' Euler-Maruyama sampler, with the pooled
    single-site moments and the momentum-space power spectrum recorded along the backward process and a few
    configurations kept at chosen times :math:`t` of the backward process (denoising snapshots).

Generated configurations are returned in the physical units of the lattice action (the normalisation is
inverted).  Nothing is computed at import time.
"""
from __future__ import annotations

import dataclasses

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.diffusion import grids, lattice_nets, sde as _sde, solvers, training
from lib.diffusion.nets import score_fn
from lib.diffusion.normalise import Normalisation
from lib.infra.cache import ArtefactCache, CacheWarning
from lib.physics import observables, phi4
from lib.recipes import phi4_ensembles as ens
from lib.recipes.cached_training import trained_score_model

__all__ = [
    "KIND_WEIGHTS",
    "KIND_SAMPLES",
    "NORMALISATIONS",
    "DMSpec",
    "SampleSpec",
    "LikelihoodSpec",
    "training_configs",
    "normalisation",
    "forward_sde",
    "sampling_grid",
    "trained_model",
    "generate",
    "effective_action",
    "book_specs",
    "MOMENT_ORDER",
    "PROCESSES",
]

#: cache kind of the trained weights
KIND_WEIGHTS = "phi4-dm-weights"
#: cache kind of the generated ensembles
KIND_SAMPLES = "phi4-dm-samples"
#: the data normalisations a :class:`DMSpec` may name
NORMALISATIONS = ("maxabs", "minmax", "std")
#: the forward processes a :class:`DMSpec` may name
PROCESSES = ("ve", "vp")
#: pooled single-site moments <phi^n>, n = 0..8, recorded along the backward process
MOMENT_ORDER = 8


@dataclass(frozen=True)
class DMSpec:
    """Recipe of a trained lattice diffusion model (:func:`trained_model`); every field is part of the cache key."""

    ensembles: tuple  # ChainSpec / ChainEndsSpec of lib.recipes.phi4_ensembles whose configurations are pooled for training
    net: lattice_nets.LatticeNetConfig  # architecture of the score network
    train: training.TrainConfig  # optimiser, batch, steps or epochs, EMA, flip augmentation
    seed: int  # seed of the initial weights and of the training
    sigma: float = 25.0  # noise scale, g(t) = sigma^t, > 1 (the authors' lattice value: 25, VE)
    # "maxabs" (phi / max|phi|), "minmax" (the authors' map to [-1, 1]) or "std" (phi / rms(phi): unit variance)
    normalisation: str = "maxabs"
    n_train: int | None = None  # use the first n_train pooled configurations (None: all)
    process: str = "ve"  # forward process: "ve" (variance expanding, the authors') or "vp" (variance preserving)

    def __post_init__(self):
        ensembles = tuple(self.ensembles) if isinstance(self.ensembles, (tuple, list)) else (self.ensembles,)
        if not ensembles:
            raise ValueError("ensembles must name at least one HMC ensemble spec")
        for spec in ensembles:
            if not isinstance(spec, (ens.ChainSpec, ens.ChainEndsSpec)):
                raise ValueError(f"ensembles must be ChainSpec or ChainEndsSpec, got {type(spec).__name__}")
        if len({s.params for s in ensembles}) != 1:
            raise ValueError(f"all training ensembles must share L, kappa and lambda, got "
                             f"{sorted({s.params for s in ensembles}, key=str)}")
        object.__setattr__(self, "ensembles", ensembles)
        if not isinstance(self.net, lattice_nets.LatticeNetConfig):
            raise ValueError(f"net must be a LatticeNetConfig, got {type(self.net).__name__}")
        if not isinstance(self.train, training.TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        object.__setattr__(self, "seed", require_int(self.seed, "seed", 0))
        sigma = require_positive(self.sigma, "sigma")
        if sigma <= 1.0:
            raise ValueError(f"sigma must be > 1 (the noise must grow), got {sigma}")
        object.__setattr__(self, "sigma", sigma)
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.n_train is not None:
            object.__setattr__(self, "n_train", require_int(self.n_train, "n_train", 2))
        if self.process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {self.process!r}")

    @property
    def params(self) -> phi4.Phi4Params:
        """Lattice size and couplings of the training ensembles."""
        return self.ensembles[0].params


@dataclass(frozen=True)
class SampleSpec:
    """Recipe of a generated ensemble (:func:`generate`); every field is part of the cache key."""

    n_samples: int  # configurations to generate (>= 2)
    n_steps: int = 100  # steps of the backward process (>= 2); Heun evaluates the score twice per step
    method: str = "heun"  # "heun": stochastic Heun (lib.diffusion.solvers.backward_solve); "em": the authors' Euler-Maruyama
    spacing: str = "karras"  # Heun's grid: "karras" (lib.diffusion.grids.karras) or "uniform"; EM: the authors' grid
    t_end: float = 1e-4  # last time of the grid (the authors' EM: 1e-3, no noise on its last step)
    batch: int = 1024  # configurations per batch; each finished batch is saved, so a run resumes
    record_every: int = 10  # record pooled moments and the power spectrum every record_every steps
    snapshot_times: tuple = (1.0, 0.75, 0.5, 0.25, 0.0)  # forward times t of the kept snapshots (0: the end)
    n_snapshots: int = 4  # configurations kept per snapshot time (from the first batch)
    seed: int = 0  # seed of the prior draws and of the sampler noise
    L: int | None = None  # lattice side of the generated configurations; None: the training lattice's. A fully
    # convolutional network trained at one L samples at any other (lattice-size transfer, no retraining)

    def __post_init__(self):
        for name, lo in (("n_samples", 2), ("n_steps", 2), ("batch", 1), ("record_every", 1), ("n_snapshots", 0),
                         ("seed", 0)):
            object.__setattr__(self, name, require_int(getattr(self, name), name, lo))
        if self.L is not None:
            object.__setattr__(self, "L", require_int(self.L, "L", 2))
        if self.method not in ("heun", "em"):
            raise ValueError(f"method must be 'heun' or 'em', got {self.method!r}")
        if self.spacing not in ("karras", "uniform"):
            raise ValueError(f"spacing must be 'karras' or 'uniform', got {self.spacing!r}")
        t_end = require_positive(self.t_end, "t_end")
        if t_end >= 1.0:
            raise ValueError(f"t_end must lie in (0, T = 1), got {t_end}")
        times = tuple(float(x) for x in self.snapshot_times)
        if any(not 0.0 <= x <= 1.0 for x in times):
            raise ValueError(f"snapshot_times must lie in [0, 1], got {times}")
        object.__setattr__(self, "snapshot_times", times)

    @property
    def score_evaluations(self) -> int:
        """The score evaluations per configuration (two per step for Heun, one for Euler-Maruyama)."""
        return 2 * self.n_steps if self.method == "heun" else self.n_steps


# --- training ---------------------------------------------------------------------------------------------------
def training_configs(spec: DMSpec, cache: ArtefactCache | None = None, progress: bool = False) -> torch.Tensor:
    """The pooled training configurations ``(N, L, L)`` float32 in physical units (chain by chain)."""
    parts = [ens.configurations(ens.ensemble(s, cache=cache, progress=progress)) for s in spec.ensembles]
    data = torch.cat(parts)
    if spec.n_train is not None:
        if spec.n_train > data.shape[0]:
            raise ValueError(f"n_train = {spec.n_train} exceeds the {data.shape[0]} pooled configurations")
        data = data[: spec.n_train]
    return data


def normalisation(spec: DMSpec, data: torch.Tensor) -> Normalisation:
    """The map of ``spec.normalisation`` built from the training configurations ``data``."""
    return getattr(Normalisation, spec.normalisation)(data)


def forward_sde(spec: DMSpec) -> _sde.LinearDriftSDE:
    r"""The forward process of ``spec``: variance expanding or preserving, :math:`g(t) = \sigma^t`, :math:`T = 1`."""
    return _sde.ve(spec.sigma) if spec.process == "ve" else _sde.vp(spec.sigma)


def trained_model(spec: DMSpec, cache: ArtefactCache | None = None, device=None, progress: bool | None = None):
    """``(TrainResult, Normalisation)``: the network of ``spec``, trained and cached on first use.

    The network sees normalised configurations; use :func:`generate` (which inverts the normalisation) to sample.
    Weights are cached under kind ``"phi4-dm-weights"`` with provenance (wall time, steps, final loss);
    an interrupted training continues from its checkpoint (:func:`lib.recipes.cached_training.trained_score_model`).
    """
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    data = training_configs(spec, cache)
    norm = normalisation(spec, data)
    sde = forward_sde(spec)
    result = trained_score_model(
        cache, KIND_WEIGHTS, {"spec": spec}, sde,
        build=lambda g: lattice_nets.build_lattice_net(spec.net, sde, generator=g),
        data_fn=lambda g: norm.forward(data), config=spec.train, seed=spec.seed, device=device, progress=progress)
    return result, norm


# --- sampling ---------------------------------------------------------------------------------------------------
def sampling_grid(sde: _sde.LinearDriftSDE, spec: SampleSpec) -> grids.TimeGrid:
    """The time grid of ``spec``: the authors' grid for Euler-Maruyama, else ``spec.spacing``."""
    if spec.method == "em":
        return grids.uniform_evaluations(sde, spec.n_steps, spec.t_end)
    return grids.build(sde, spec.spacing, spec.n_steps, spec.t_end)


def _snapshot_steps(state_t: list, times: tuple, t_end: float) -> dict:
    """Index of the recorded state closest to each forward time t; times at or below ``t_end`` map to the end."""
    last = len(state_t) - 1
    return {t: last if t <= t_end else int(np.argmin([abs(t - s) for s in state_t])) for t in times}


def _sample_batch(model_score, sde, norm: Normalisation, L: int, size: int, spec: SampleSpec,
                  generator: torch.Generator, device, keep_snapshots: bool) -> dict:
    """One batch of the backward process; everything returned is in physical units except the records."""
    x_T = sde.prior_sample((size, L, L), generator=generator, device=device, dtype=torch.float32)
    grid = sampling_grid(sde, spec)
    snap_at = _snapshot_steps(grid.t.tolist(), spec.snapshot_times, spec.t_end) if keep_snapshots and spec.n_snapshots else {}
    snaps, step = {}, [0]
    n_keep = min(spec.n_snapshots, size)

    def observe(x):
        for t_snap, i in snap_at.items():
            if i == step[0]:
                snaps[t_snap] = norm.inverse(x[:n_keep].to(torch.float32)).cpu()
        step[0] += 1
        return observables.pooled_power_records(x, MOMENT_ORDER)

    # The recorder is called at T and after every step (record_every = 1) so that snapshots can be taken at any
    # step; records are thinned to every spec.record_every steps below.
    traj = solvers.backward_solve(sde, model_score, x_T, grid, "euler" if spec.method == "em" else "heun", generator,
                                  noise_last=spec.method != "em", observe=observe, record_every=1)
    keep = [0] + [i for i in range(1, len(traj.t)) if i % spec.record_every == 0 or i == len(traj.t) - 1]
    return {"configs": norm.inverse(traj.x).to(torch.float32).cpu(),
            "t": traj.t[keep], "power_sums": traj.records["power_sums"][keep],
            "spectrum_sum": traj.records["spectrum_sum"][keep],
            "snapshots": [snaps[t_snap] for t_snap in spec.snapshot_times] if snap_at else []}


def generate(spec: DMSpec, sample: SampleSpec, cache: ArtefactCache | None = None, device=None,
             progress: bool | None = None) -> dict:
    r"""Configurations generated by the trained model of ``spec`` (cached under kind ``"phi4-dm-samples"``), on the
    training lattice or, with ``sample.L``, on a lattice of another size (the network is applied unchanged).

    Returns
    -------
    dict
        ``configs`` ``(n_samples, L, L)`` float32 in physical units; ``t`` (n_rec,) the forward times of the
        records (from :math:`T` down to :math:`\approx 0`); ``power_sums`` (n_rec, 9): sums of
        :math:`x^n` over sites and configurations of the normalised field, so that
        ``power_sums[:, n] / power_sums[:, 0]`` are the pooled moments; ``spectrum_sum`` (n_rec, L, L): the sum over
        configurations of :math:`|\tilde x(p)|^2/V` of the normalised field; ``snapshots``
        ``(len(snapshot_times), n_snapshots, L, L)`` in physical units at the forward times ``snapshot_times``
        (from the first batch); ``shift``, ``scale``: the normalisation; ``seconds_per_config``: wall time of sampling.

    Each batch of ``sample.batch`` configurations is written to the cache's scratch directory as it finishes; a
    run that was interrupted continues with the next missing batch, and the batches are independent of where the
    run stopped (each batch has its own generator seeded from ``sample.seed`` and the batch index).
    """
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)
    L = spec.params.L if sample.L is None else sample.L
    if L % spec.net.period:
        raise ValueError(f"the network ({spec.net.kind}, {spec.net.levels} levels) needs a lattice side divisible "
                         f"by {spec.net.period}, got L = {L}")
    key = {"dm": spec, "sample": sample}
    stored = cache.load(KIND_SAMPLES, key)
    if stored is not None:
        return stored
    result, norm = trained_model(spec, cache, device=device, progress=progress)
    score = score_fn(result.sampling_model, chunk_size=None)
    sde = forward_sde(spec)
    n_batches = math.ceil(sample.n_samples / sample.batch)
    seeds = torch.randint(0, 2**62, (n_batches,), generator=make_generator(sample.seed)).tolist()
    start = time.perf_counter()

    def one_batch(b):
        t0 = time.perf_counter()
        size = min(sample.batch, sample.n_samples - b * sample.batch)
        out = _sample_batch(score, sde, norm, L, size, sample, make_generator(seeds[b], device), device, b == 0)
        out["wall_time"] = time.perf_counter() - t0
        return out

    batches = cache.batches(KIND_SAMPLES, key, n_batches, one_batch)
    wall = sum(float(b["wall_time"]) for b in batches)
    data = {
        "configs": torch.cat([b["configs"] for b in batches]),
        "t": batches[0]["t"],
        "power_sums": sum(b["power_sums"] for b in batches),
        "spectrum_sum": sum(b["spectrum_sum"] for b in batches),
        "snapshot_times": torch.tensor(sample.snapshot_times, dtype=torch.float64),
        "snapshots": torch.stack(batches[0]["snapshots"]) if batches[0]["snapshots"] else torch.empty(0),
        "shift": torch.tensor(norm.shift, dtype=torch.float64),
        "scale": torch.tensor(norm.scale, dtype=torch.float64),
        "seconds_per_config": torch.tensor(wall / sample.n_samples, dtype=torch.float64),
    }
    try:
        cache.save(KIND_SAMPLES, key, data, seed=sample.seed, wall_time=time.perf_counter() - start,
                   extra={"device": str(device), "sampling_seconds": wall, "n_batches": n_batches})
    except OSError as err:  # nothing computed is lost
        warnings.warn(f"could not store {KIND_SAMPLES!r} in {cache.root} ({err}); returned but not cached",
                      CacheWarning, stacklevel=2)
        return data
    cache.clear_scratch(KIND_SAMPLES, key)
    return data


# --- the effective action ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LikelihoodSpec:
    """Recipe of the effective-action comparison (:func:`effective_action`); every field is part of the cache key."""

    test: ens.ChainSpec  # held-out HMC ensemble (not used in training) whose configurations are evaluated
    n_configs: int = 128  # configurations evaluated (the first n_configs, chain by chain)
    t_eps: float = 1e-3  # the likelihood is that of the model's distribution at t = t_eps
    rtol: float = 1e-4  # tolerances of the adaptive RK45 integration of the probability-flow ODE
    atol: float = 1e-4
    method: str = "exact"  # divergence: "exact" (L^2 vector-Jacobian products) or "hutchinson"

    def __post_init__(self):
        if not isinstance(self.test, ens.ChainSpec):
            raise ValueError(f"test must be a ChainSpec, got {type(self.test).__name__}")
        object.__setattr__(self, "n_configs", require_int(self.n_configs, "n_configs", 3))
        for name in ("t_eps", "rtol", "atol"):
            object.__setattr__(self, name, require_positive(getattr(self, name), name))
        if self.t_eps >= 1.0:
            raise ValueError(f"t_eps must lie in (0, T = 1), got {self.t_eps}")
        if self.method not in ("exact", "hutchinson"):
            raise ValueError(f"method must be 'exact' or 'hutchinson', got {self.method!r}")


def effective_action(spec: DMSpec, lik: LikelihoodSpec, cache: ArtefactCache | None = None, device=None,
                     progress: bool | None = None) -> dict:
    r"""The model's :math:`-\log q(\phi)` and the lattice action :math:`S(\phi)` on held-out HMC configurations.

    :math:`\log q` is the probability-flow log-likelihood (:func:`lib.diffusion.likelihood.log_likelihood`) of the
    model's distribution at :math:`t = t_\epsilon`, computed for the normalised field :math:`y = (\phi - a)/s` and
    converted to the field, :math:`\log q_\phi(\phi) = \log q_y(y) - V \log s`.  For a perfect model
    :math:`-\log q = S + \log Z`: slope 1 against :math:`S` (arXiv:2309.17082).  Cached under kind
    ``"phi4-dm-effective-action"``.

    Returns
    -------
    dict
        ``S``, ``minus_log_q`` (n,) float64; ``nfev`` (score evaluations of the ODE solver); ``seconds``.
    """
    from lib.diffusion import likelihood

    if lik.test.params != spec.params:
        raise ValueError(f"the test ensemble has {lik.test.params}, the model was trained on {spec.params}")
    for s in spec.ensembles:
        if s == lik.test:
            raise ValueError("the test ensemble must not be one of the training ensembles")
    cache = ArtefactCache() if cache is None else cache
    device = torch.device("cpu" if device is None else device)

    def compute():
        result, norm = trained_model(spec, cache, device=device, progress=progress)
        model = result.sampling_model.eval()
        phi = ens.configurations(ens.ensemble(lik.test, cache=cache))[: lik.n_configs]
        start = time.perf_counter()
        out = likelihood.log_likelihood(forward_sde(spec), model, norm.forward(phi).to(device), t_eps=lik.t_eps,
                                        method=lik.method, rtol=lik.rtol, atol=lik.atol,
                                        generator=make_generator(spec.seed, device))
        volume = phi.shape[-1] * phi.shape[-2]
        log_q = out.logp.cpu().to(torch.float64) - volume * math.log(norm.scale)
        return {"S": phi4.action(phi.to(torch.float64), spec.params).cpu(), "minus_log_q": -log_q,
                "nfev": out.nfev, "seconds": time.perf_counter() - start}

    return cache.get_or_compute("phi4-dm-effective-action", {"dm": spec, "likelihood": lik}, compute,
                                seed=spec.seed)


# --- the book's recipes -----------------------------------------------------------------------------------------
def book_specs(scale: str = "quick") -> dict:
    r"""The recipes of :doc:`/book/part3/phi4_diffusion` at ``scale`` ("quick" or "paper").

    Keys: ``"k0.21"`` and ``"k0.4"`` (:class:`DMSpec` of the T5 and T2 models), ``"k0.4-authors"`` (the T2 model's
    recipe trained on the authors'-protocol ensemble instead, for a like-for-like comparison with the paper's DM row),
    ``"samples"`` (a :class:`SampleSpec` per model, same keys), ``"test-k0.21"`` (held-out HMC ensemble of the T5 lattice),
    ``"small"`` (:class:`DMSpec` on :math:`8\times 8` at :math:`\kappa = 0.21`, for the effective action) and
    ``"likelihood"`` (:class:`LikelihoodSpec`).

    Both scales are :math:`32\times 32`, trained on the ensembles of :func:`lib.recipes.phi4_ensembles.book_specs`
    (two per phase: :math:`\kappa = 0.21` hot and cold starts, :math:`\kappa = 0.4` starts :math:`\phi_0` and
    :math:`\phi_0/2`) and tested on the authors'-protocol ensemble at :math:`\kappa = 0.21`.

    Quick scale (a CPU, minutes): a small U-Net, channels (8, 16, 32), 1500 steps of batch 32 (learning rate
    :math:`2\times10^{-3}` with a cosine decay, EMA 0.99); at :math:`\kappa = 0.21`, whose table T5 is about the
    :math:`p = 0` mode, 4000 steps and a zero-mode weight of 100 in the loss
    (:func:`lib.diffusion.losses.dsm_loss`); and 50 stochastic Heun steps on the Karras grid (100
    score evaluations): 1536 configurations at :math:`\kappa = 0.21` (a :math:`\chi_2` error below the paper's 0.10), 512 at
    :math:`\kappa = 0.4`.  Paper scale (a GPU): the U-Net with channels (32, 64, 128, 256), batch 64 and learning
    rate :math:`10^{-3}` (arXiv:2309.17082), 2 x 12800 training configurations per phase, and 10240 configurations
    with 250 Heun steps.  The effective action uses the :math:`8\times 8` model at both scales (an exact
    divergence needs :math:`L^2` vector-Jacobian products per evaluation).
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    small = ens.small_specs()
    cnn = lattice_nets.LatticeNetConfig(kind="cnn", channels=(16, 16, 16), odd=True, group_norm=False)
    cpu_train = training.TrainConfig(n_steps=2000, lr=1e-3, batch_size=128, augment_flip=True, ema_decay=0.995)
    out = {"small": DMSpec((small["k0.21"],), cnn, cpu_train, seed=5021),
           "likelihood": LikelihoodSpec(small["k0.21-test"], n_configs=48, rtol=1e-3, atol=1e-3)}
    big = ens.book_specs(scale)
    phases = {"k0.21": (big["k0.21-hot"], big["k0.21-cold"]), "k0.4": (big["k0.4-cold"], big["k0.4-below"])}
    out["test-k0.21"] = big["k0.21-authors"]
    if scale == "quick":
        unet = lattice_nets.LatticeNetConfig(kind="unet", channels=(8, 16, 32), embed_dim=32, odd=True)
        train = training.TrainConfig(n_steps=1500, lr=2e-3, batch_size=32, augment_flip=True, ema_decay=0.99,
                                     lr_schedule="cosine")
        # T5 is about the p = 0 mode (chi_2), one mode of 1024: longer training and a zero-mode weight of 100 in the
        # loss (tools/experiments/README.md: without them chi_2 scatters between seeds by ~10%, 20% low at 4000 steps)
        train_t5 = dataclasses.replace(train, n_steps=4000, zero_mode_weight=100.0)
        out.update({
            "k0.21": DMSpec(phases["k0.21"], unet, train_t5, seed=5121),
            "k0.4": DMSpec(phases["k0.4"], unet, train, seed=5140),
            "k0.4-authors": DMSpec((big["k0.4-authors"],), unet, train, seed=5142),
            "samples": {"k0.21": SampleSpec(n_samples=1536, n_steps=50, batch=256, record_every=5, seed=5100),
                        "k0.4": SampleSpec(n_samples=512, n_steps=50, batch=256, record_every=5, seed=5101),
                        "k0.4-authors": SampleSpec(n_samples=512, n_steps=50, batch=256, record_every=5, seed=5102)},
        })
        return out
    unet = lattice_nets.LatticeNetConfig(kind="unet", channels=(32, 64, 128, 256), embed_dim=64, odd=True)
    # 25 epochs of the 2 x 12800 configurations, doubled by the flip, in batches of 64: 20000 steps, the authors' count
    # (250 epochs of 5120 configurations)
    gpu_train = training.TrainConfig(epochs=25, lr=1e-3, batch_size=64, augment_flip=True, ema_decay=0.999)
    sample = SampleSpec(n_samples=10240, n_steps=250, batch=1024, record_every=5, seed=5300)
    # the authors' own budget on their ensemble: 20000 steps of batch 64
    authors_train = dataclasses.replace(gpu_train, epochs=None, n_steps=20000)
    out.update({
        "k0.21": DMSpec(phases["k0.21"], unet, gpu_train, seed=5321),
        "k0.4": DMSpec(phases["k0.4"], unet, gpu_train, seed=5340),
        "k0.4-authors": DMSpec((big["k0.4-authors"],), unet, authors_train, seed=5342),
        "samples": {"k0.21": sample, "k0.4": sample, "k0.4-authors": sample},
    })
    return out
