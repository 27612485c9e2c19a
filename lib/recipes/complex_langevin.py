r"""The complex Langevin runs of Part IV: the models, seeds and sizes of the main runs, cached.

:func:`cached_sample_xy` stores a run of :func:`lib.physics.complex_langevin.sample_xy` keyed by every parameter;
:func:`run_scale` gives the sizes of the book's runs at a scale, :func:`run` one run of the book's kind, and
:func:`main_run` the main run of a model, which :doc:`/book/part4/complex_langevin` analyses and
:doc:`/book/part4/cl_diffusion` trains on (the same call, hence the same cache entry).
"""
from __future__ import annotations

import math
import warnings

import torch

from lib.core.checks import require_int, require_positive
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache, canonical_params
from lib.physics import complex_langevin
from lib.physics.cl_models import GaussianModel, QuarticModel

__all__ = ["MODELS", "MAIN_SEEDS", "run_scale", "run_params", "cached_sample_xy", "run", "main_run", "main_run_params"]

#: the complex Langevin models of arXiv 2412.01919, by name
MODELS = {"gauss": GaussianModel(A=1.0, B=1.0), "quartic": QuarticModel(A=1.0, B=1.0, lam=1.0)}
#: seeds of the main runs; the chapter's other runs use 2024 + offset
MAIN_SEEDS = {"gauss": 2024, "quartic": 2025}
_SCALES = {
    # (max) step size, independent chains, records per chain, Langevin time between records
    "quick": {"eps": 1e-3, "n_chains": 4000, "n_records": 250, "dt_record": 0.1},
    "paper": {"eps": 5e-4, "n_chains": 10_000, "n_records": 200, "dt_record": 0.25},
}


def run_scale(scale: str) -> dict:
    """Sizes of the book's CL runs at ``scale``: ``eps``, ``n_chains``, ``n_records``, ``dt_record``."""
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {sorted(_SCALES)}, got {scale!r}")
    return dict(_SCALES[scale])


def run_params(model, n_chains: int, n_records: int, eps: float, seed: int, *, record_every: int = 10,
               n_therm: int | None = None, k_ref: float | None = None, scope: str = "trajectory", scale: str = "quick",
               device="cpu") -> dict:
    """The parameters of a run of :func:`cached_sample_xy` as they enter its cache key (``n_therm`` resolved)."""
    eps = require_positive(eps, "eps")
    require_int(seed, "seed", 0)
    if n_therm is None:
        n_therm = math.ceil(10.0 / eps)
    return {
        "model": model, "n_chains": int(n_chains), "n_records": int(n_records), "eps": float(eps),
        "record_every": int(record_every), "n_therm": int(n_therm), "k_ref": None if k_ref is None else float(k_ref),
        "scope": str(scope), "seed": int(seed), "scale": str(scale), "device": str(torch.device(device)),
        "imag_noise": 0.0, "z0": "zeros", "dtype": "float64", "stored_dtype": "float32",
    }


def cached_sample_xy(model, n_chains: int, n_records: int, eps: float, seed: int, *, record_every: int = 10,
                     n_therm: int | None = None, k_ref: float | None = None, scope: str = "trajectory",
                     scale: str = "quick", device="cpu", cache=None, progress: bool = False) -> dict:
    r"""CL samples of :func:`lib.physics.complex_langevin.sample_xy`, stored as an artefact of :class:`lib.infra.cache.ArtefactCache`.

    The run starts from :math:`z = 0` in float64 with real noise and a ``torch.Generator`` seeded with ``seed``
    (:func:`lib.core.random.make_generator`) on ``device``.  The artefact (kind ``"cl_samples"``) is keyed by every
    parameter of the run: the model (a frozen dataclass), ``n_chains``, ``n_records``, ``eps``, ``record_every``,
    ``n_therm`` (resolved: ``None`` means ``ceil(10 / eps)``), ``k_ref``, ``scope``, ``seed``, ``scale``
    (the profile label) and ``device``, so a changed parameter never reuses a stale run.  The same call with the
    same arguments returns the stored samples, which makes them reusable as training data
    (:doc:`/book/part4/cl_diffusion`).  Produced in :doc:`/book/part4/complex_langevin`.

    Returns
    -------
    dict
        ``"xy"``: float32 tensor ``(n_records, n_chains, 2)`` of :math:`(x, y)` (records along axis 0, independent
        chains along axis 1); ``"eps"``: float32 ``(n_records, n_chains)`` step size at each sample (the weights
        of time averages when ``k_ref`` is set); ``"z_final"``: complex128 final state ``(n_chains,)``;
        ``"params"``: the parameters of the run (as stored in the cache key).
    """
    params = run_params(model, n_chains, n_records, eps, seed, record_every=record_every, n_therm=n_therm,
                        k_ref=k_ref, scope=scope, scale=scale, device=device)
    eps, n_therm = params["eps"], params["n_therm"]

    def compute():
        generator = make_generator(int(seed), device)
        with warnings.catch_warnings():
            # sample_xy warns when CL is not expected to be correct: that is the caller's choice here
            warnings.simplefilter("ignore", RuntimeWarning)
            run = complex_langevin.sample_xy(model, int(n_chains), int(n_records), eps, generator, record_every=int(record_every),
                            n_therm=int(n_therm), k_ref=k_ref, scope=scope, device=device, progress=progress)
        return {"xy": run.xy.to(torch.float32).cpu(), "eps": run.eps.to(torch.float32).cpu(),
                "z_final": run.z.cpu(), "params": canonical_params(params)}

    store = cache if cache is not None else ArtefactCache()
    return store.get_or_compute("cl_samples", params, compute, seed=int(seed), code=__name__)


def _run_args(model, eps: float, seed: int, scale: str, device, k_ref, n_chains, n_records, dt_record) -> dict:
    sizes = run_scale(scale)
    dt_record = dt_record or sizes["dt_record"]
    return dict(model=model, n_chains=n_chains or sizes["n_chains"], n_records=n_records or sizes["n_records"],
                eps=eps, seed=seed, record_every=max(1, round(dt_record / eps)), k_ref=k_ref, scale=scale, device=device)


def run(model, eps: float, seed: int, scale: str = "quick", device="cpu", k_ref: float | None = None,
        n_chains: int | None = None, n_records: int | None = None, dt_record: float | None = None,
        cache: ArtefactCache | None = None) -> dict:
    """A cached CL run of the book's kind: thermalise for Langevin time 10, then record every ``dt_record``.

    Sizes not given are those of :func:`run_scale` at ``scale``; ``record_every = max(1, round(dt_record / eps))``.
    """
    return cached_sample_xy(**_run_args(model, eps, seed, scale, device, k_ref, n_chains, n_records, dt_record),
                            cache=cache)


def _main_args(name: str, scale: str, device) -> dict:
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return _run_args(MODELS[name], run_scale(scale)["eps"], MAIN_SEEDS[name], scale, device, None, None, None, None)


def main_run(name: str, scale: str = "quick", device="cpu", cache: ArtefactCache | None = None) -> dict:
    """The main run of model ``name`` (``"gauss"`` or ``"quartic"``) at ``scale``: the T3/T4 CL rows and the
    training data of the diffusion models."""
    return cached_sample_xy(**_main_args(name, scale, device), cache=cache)


def main_run_params(name: str, scale: str = "quick", device="cpu") -> dict:
    """The parameters of :func:`main_run` as they enter its cache key (no run): they describe the training data of
    the diffusion models of :doc:`/book/part4/cl_diffusion`."""
    return run_params(**_main_args(name, scale, device))
