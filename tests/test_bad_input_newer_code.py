"""Bad and hostile input to the code added since the first reliability round (issue: reliability, second round).

The six silent failures each have a test here that failed before the fix (marked "Before:"); the obscure errors now
name the argument, what was given and what is allowed; the questionable cases are decided (refused or warned).
The transposed stats layout is in tests/test_stats.py, the divergence and checkpoint cases in tests/test_train.py.
"""
import json
import os
import time
import warnings

import numpy as np
import pytest
import torch

from lib.core.checks import NonFiniteError
from lib.core.files import STALE_AGE, atomic_save
from lib.core.random import make_generator
from lib.diffusion import flow_map, grids, sde
from lib.diffusion.ddpm import DDPMSchedule, ancestral_sample, eps_from_score
from lib.infra import report
from lib.infra.cache import ArtefactCache, CacheWarning
from lib.physics import hmc, metropolis, phi4

VE = sde.ve(25.0)


def _gauss_score(x, t, v=0.7):
    return -x / (v + VE.xi(t)).to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))


# --- the silent ones ----------------------------------------------------------------------------------------------
def test_ancestral_sample_refuses_a_model_of_the_wrong_shape():
    """Before: an output of shape (4, 1) was broadcast into (4, 2) without a word."""
    sched = DDPMSchedule.linear(10)
    with pytest.raises(ValueError, match=r"shape of x \(4, 2\), got \(4, 1\) at step 10"):
        ancestral_sample(lambda x, i: torch.zeros(x.shape[0], 1), sched, torch.zeros(4, 2), make_generator(0))


def test_ancestral_sample_raises_on_nan_and_keeps_the_last_state():
    """Before: a NaN model returned NaN samples, where backward_solve raises NonFiniteError."""
    sched = DDPMSchedule.linear(10)

    def eps(x, i):
        out = torch.zeros_like(x)
        if int(i[0]) == 7:
            out[2] = float("nan")
        return out

    with pytest.raises(NonFiniteError, match=r"step 7 of 10 for 1 of 4 samples \(2\)") as info:
        ancestral_sample(eps, sched, torch.ones(4, 2), make_generator(0))
    assert info.value.bad.tolist() == [2] and torch.isfinite(info.value.partial).all()


def test_eps_from_score_refuses_step_zero():
    """Before: step index 0 used step N (negative indexing)."""
    sched = DDPMSchedule.linear(10)
    eps = eps_from_score(lambda x, t: -x, sched, torch.linspace(0.1, 1.0, 10))
    assert eps(torch.ones(3, 1), torch.tensor([1, 5, 10])).shape == (3, 1)
    for bad in ([0, 1, 2], [1, 11, 3]):
        with pytest.raises(ValueError, match=r"step indices must lie in 1\.\.10"):
            eps(torch.ones(3, 1), torch.tensor(bad))


def test_flow_proposals_refuse_a_score_that_couples_the_batch():
    """Before: a score using the batch mean got each sample's log-determinant as if it did not: log q wrong."""
    grid = grids.karras(VE, 4, 1e-3)

    def coupled(x, t):
        return _gauss_score(x, t) + 0.1 * x.mean(dim=0, keepdim=True)

    with pytest.raises(ValueError, match="couples the samples of a batch"):
        flow_map.flow_proposals(VE, coupled, grid, (3, 3), 8, make_generator(0))
    out = flow_map.flow_proposals(VE, _gauss_score, grid, (3, 3), 8, make_generator(0))  # per-sample: accepted
    assert torch.isfinite(out.log_q).all()


def test_karras_grid_refuses_an_underflowing_process():
    """Before: karras(vp(200), 10, 1e-3) returned nine steps of zero length, and later code blamed "steps too large"."""
    with pytest.raises(ValueError, match=r"noise-to-signal ratio .* inf at T .* underflows"):
        grids.karras(sde.vp(200.0), 10, 1e-3)


# --- obscure errors, now named ------------------------------------------------------------------------------------
@pytest.mark.parametrize("generator, match", [(np.random.default_rng(0), "numpy Generator"),
                                              (7, r"make_generator\(7\)"), (None, "global random state")])
def test_a_generator_that_is_not_a_torch_generator_is_named(generator, match):
    x = torch.randn(6, 2, 2, generator=make_generator(0), dtype=torch.float64)
    p = phi4.Phi4Params(2, 0.2, 0.02)
    calls = [
        lambda: flow_map.flow_proposals(VE, _gauss_score, grids.karras(VE, 2, 1e-3), (2, 2), 4, generator),
        lambda: metropolis.independence_metropolis(x, torch.zeros(6), lambda y: torch.zeros(6), generator),
        lambda: ancestral_sample(lambda y, i: torch.zeros_like(y), DDPMSchedule.linear(3), x, generator),
    ]
    if generator is not None:  # hmc's None means torch's default generator, documented
        calls.append(lambda: hmc.hmc(p, x, 2, 0.1, 2, generator))
    for call in calls:
        with pytest.raises(ValueError, match=rf"generator must be a torch\.Generator, got .*{match}"):
            call()


def test_flow_proposals_name_a_bad_shape_dtype_score_or_grid():
    grid, g = grids.karras(VE, 3, 1e-3), make_generator(0)
    with pytest.raises(ValueError, match=r"shape must be a tuple of positive ints.*got 3"):
        flow_map.flow_proposals(VE, _gauss_score, grid, 3, 4, g)
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        flow_map.flow_proposals(VE, _gauss_score, grid, (2, 2), 4, g, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"score\(x, t\) must return a tensor of the shape of x \(4, 2, 2\)"):
        flow_map.flow_proposals(VE, lambda x, t: x[:, 0], grid, (2, 2), 4, g)
    nan_grid = grids.TimeGrid(grid.t.clone(), grid.t_eval.clone(), grid.h.clone())
    nan_grid.t[1] = float("nan")
    upward = grids.TimeGrid(grid.t.flip(0), grid.t.flip(0)[:-1], grid.t.flip(0)[:-1] - grid.t.flip(0)[1:])
    for bad in (nan_grid, upward):
        with pytest.raises(ValueError, match="from T down towards 0 with finite times and positive steps"):
            flow_map.flow_proposals(VE, _gauss_score, bad, (2, 2), 4, g)


def test_independence_metropolis_names_one_proposal_and_a_float_start():
    x = torch.randn(5, 2, generator=make_generator(0), dtype=torch.float64)
    S = lambda y: (y * y).sum(dim=1)  # noqa: E731
    with pytest.raises(ValueError, match="at least two proposals"):
        metropolis.independence_metropolis(x[:1], torch.zeros(1), S, make_generator(0))
    with pytest.raises(ValueError, match="start must be an integer index"):
        metropolis.independence_metropolis(x, torch.zeros(5), S, make_generator(0), start=1.0)


def test_ddpm_schedule_and_karras_name_their_bad_arguments():
    with pytest.raises(ValueError, match=r"betas must be a sequence .* DDPMSchedule\.linear\(N\)"):
        DDPMSchedule(0.1)
    with pytest.raises(ValueError, match=r"rho = 0\.001 .* rho = 7"):
        grids.karras(VE, 10, 1e-3, rho=1e-3)


def test_repro_table_names_a_scalar_row_and_an_unknown_column():
    table = report.ReproTable("t", ["a", "b"])
    with pytest.raises(ValueError, match=r"values must be a sequence with one entry per column \(2\), got float"):
        table.add_row("x", 1.0)
    table.add_row("x", np.array([1.0, 2.0]))
    with pytest.raises(KeyError, match=r"no column 'c' in table 't'; its columns are \['a', 'b'\]"):
        table.cell("x", "c")


# --- questionable cases, decided --------------------------------------------------------------------------------------
def test_a_prior_that_does_not_cover_unit_variance_data_warns():
    with pytest.warns(RuntimeWarning, match=r"Xi\(T\) / f\(T\)\^2 = 1 < 4, the prior does not cover the data"):
        sde.ve(1.0001)
    with pytest.warns(RuntimeWarning, match="does not cover"):
        sde.vp(1.0001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sde.ve(10.0), sde.vp(10.0), sde.ve(25.0)  # the book's processes cover their data


def test_a_hand_edited_provenance_is_a_corrupt_entry(tmp_path):
    """Before: a provenance record edited by hand was trusted (and could break a stored network without naming it)."""
    cache = ArtefactCache(tmp_path)
    path = cache.save("k", {"a": 1}, {"x": torch.ones(2)}, wall_time=3.0, code="lib.core.files")
    record = json.loads((path / "provenance.json").read_text())
    record["wall_time"] = "three seconds"
    (path / "provenance.json").write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match="does not match its own sha256"):
        assert cache.load("k", {"a": 1}, code="lib.core.files") is None


def test_a_dict_cannot_pass_for_a_dataclass_in_a_key(tmp_path):
    """Before: a dataclass and a dict with the same fields and a '__class__' entry gave the same cache key."""
    from lib.diffusion.nets import MLPConfig

    cache = ArtefactCache(tmp_path)
    cfg = MLPConfig(dim=2, hidden=(8,))
    look_alike = {"__class__": "MLPConfig", **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    cache.key("k", {"net": cfg}, code="lib.core.files")
    with pytest.raises(ValueError, match="keys starting with '__' are reserved"):
        cache.key("k", {"net": look_alike}, code="lib.core.files")


def test_checks_refuse_a_non_positive_number_of_sigmas():
    """Before: within_sigma(n_sigma=-1) passed equal values."""
    checks = report.Checks("c")
    for n in (-1, 0):
        with pytest.raises(ValueError, match="n_sigma must be a positive number"):
            checks.within_sigma("x", 1.0, 0.1, 1.0, n_sigma=n)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """Before: a killed training's .checkpoint.pt.tmp-* file stayed for ever."""
    target = tmp_path / "checkpoint.pt"
    old, fresh = tmp_path / ".checkpoint.pt.tmp-deadbeef", tmp_path / ".checkpoint.pt.tmp-cafecafe"
    for f in (old, fresh):
        f.write_bytes(b"partial")
    past = time.time() - 2 * STALE_AGE
    os.utime(old, (past, past))
    atomic_save({"step": 1}, target)
    assert target.is_file() and not old.exists() and fresh.exists()  # a fresh one may be another writer's
