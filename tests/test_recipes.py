"""Tests of the recipe layer (lib.recipes): each recipe computes once, stores in the cache and reads back the same data;
sizes exist at both scales and bad names are refused.  Tiny sizes, a temporary cache."""
import numpy as np
import pytest
import torch

from lib.diffusion import sde
from lib.infra.cache import ArtefactCache
from lib.physics import toy
from lib.recipes import cl_diffusion as cld
from lib.recipes import complex_langevin as cl_runs
from lib.recipes import cumulants, forward_process, gaussian_target, score_matching, stochastic_quantisation, two_peak
from lib.recipes.pipelines import toy_dm

TARGET = toy.GaussianMixture.two_peak(mu0=1.0, s0=0.25)


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        elif isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("module", [stochastic_quantisation, forward_process, score_matching, cumulants, two_peak])
def test_sizes_at_both_scales(module):
    quick, paper = module.sizes("quick"), module.sizes("paper")
    assert all(p >= q for p, q in zip(paper, quick) if isinstance(p, (int, float)))
    with pytest.raises(ValueError, match="scale"):
        module.sizes("huge")


def test_langevin_moments_cached(tmp_path):
    cache = ArtefactCache(tmp_path)
    size = stochastic_quantisation.Sizes(n_chains=50, langevin_time=40.0, steps=(0.1,), record_time=0.1, therm_time=1.0)
    model = toy.QuarticOscillator(m2=1.0, lam=0.0)
    first = stochastic_quantisation.langevin_moments(model, 0.1, 3, size, cache=cache)
    again = stochastic_quantisation.langevin_moments(model, 0.1, 3, size, cache=cache)
    _same(first, again)
    assert first["mean"].shape == (3,) and first["x_final"].shape == (50,)
    assert abs(first["mean"][0] - 1 / (1 - 0.05)) < 5 * first["err"][0]  # Gaussian: <x^2> = 1/(1 - eps/2)


@pytest.mark.parametrize("start", ["two-peak", "x0 = 1"])
def test_forward_run_cached(tmp_path, start):
    cache = ArtefactCache(tmp_path)
    run = forward_process.forward_run(sde.vp(), TARGET, start, 200, 20, 10, seed=1, cache=cache)
    _same(run, forward_process.forward_run(sde.vp(), TARGET, start, 200, 20, 10, seed=1, cache=cache))
    assert run["t"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="start"):
        forward_process.forward_run(sde.vp(), TARGET, "cold", 200, 20, 10, seed=1, cache=cache)


def test_exact_score_backward_cached(tmp_path):
    cache = ArtefactCache(tmp_path)
    run = score_matching.exact_score_backward(sde.ve(), TARGET, "prior", 300, seed=2, cache=cache)
    _same(run, score_matching.exact_score_backward(sde.ve(), TARGET, "prior", 300, seed=2, cache=cache))
    assert run["x"].shape == (300,) and run["mu"].shape == (101, 8)


def test_cumulants_recipes_cached(tmp_path):
    cache = ArtefactCache(tmp_path)
    run = cumulants.forward_batch_moments(sde.ve(), TARGET, 400, 40, seed=3, cache=cache)
    assert run["mu"].shape == (41, cumulants.N_BATCHES, 9)
    _same(run, cumulants.forward_batch_moments(sde.ve(), TARGET, 400, 40, seed=3, cache=cache))
    ens = cumulants.nested_ensembles_at_T(sde.ve(), TARGET, [10, 40], 2, seed=4, cache=cache)
    assert ens["kappa_10"].shape == (9, 8) and ens["kappa_40"].shape == (9, 2)


def test_gaussian_target_recipe(tmp_path):
    cache, s, v0 = ArtefactCache(tmp_path), sde.vp(), 1.0625
    assert float(gaussian_target.backward_variance(s, 1.0, float(gaussian_target.forward_variance(s, 1.0, v0)), v0)) \
        == pytest.approx(float(gaussian_target.forward_variance(s, 1.0, v0)))
    run = gaussian_target.backward_second_moments(s, v0, 2000, 50, seed=5, record_every=25, cache=cache)
    assert run["mu2"].shape == (3,)
    _same(run, gaussian_target.backward_second_moments(s, v0, 2000, 50, seed=5, record_every=25, cache=cache))


def test_two_peak_integrator_study_cached(tmp_path):
    cache = ArtefactCache(tmp_path)
    out = two_peak.integrator_study("VE", 100, [10], [1e-2], 1e-3, seed=6, cache=cache)
    assert {"reference", "em-10", "heun-10", "ode-heun-10", "rk45-0", "rk45-nfev"} <= out.keys()
    _same(out, two_peak.integrator_study("VE", 100, [10], [1e-2], 1e-3, seed=6, cache=cache))
    with pytest.raises(ValueError, match="which"):
        two_peak.backward_moments("VE", "guessed", "quick", 10, 10, seed=1, cache=cache)


def test_complex_langevin_run_and_cl_diffusion_recipes(tmp_path, monkeypatch):
    cache = ArtefactCache(tmp_path)
    data = cl_runs.run(cl_runs.MODELS["gauss"], 0.01, seed=7, n_chains=32, n_records=8, dt_record=0.05, cache=cache)
    assert data["xy"].shape == (8, 32, 2) and data["params"]["record_every"] == 5
    with pytest.raises(ValueError, match="name"):
        cl_runs.main_run("sextic")
    config = cld.uniform_times_constant_rate(cld.train_config("quick"))
    assert config.t_sampling == "uniform" and config.lr_schedule == "constant"
    tiny = config.__class__(n_steps=3, lr=1e-3, batch_size=16, ema_decay=0.9)
    # a main run of 32 chains x 8 records instead of the quick scale's: the network learns from it
    monkeypatch.setitem(cl_runs._SCALES, "quick", {"eps": 0.01, "n_chains": 32, "n_records": 8, "dt_record": 0.05})
    assert cld.network("gauss", "quick", tiny).params["data"] == cl_runs.main_run_params("gauss", "quick")
    res = cld.trained("gauss", "quick", tiny, cache=cache)
    assert res.steps == 3 and res.source == "trained"
    main = cl_runs.main_run("gauss", "quick", cache=cache)["xy"].reshape(-1, 2)
    assert res.inputs["stretch"] == pytest.approx(cld.stretch_of(main))
    again = cld.trained("gauss", "quick", tiny, cache=cache)
    assert again.source == "cache" and again.wall_time == pytest.approx(res.wall_time)
    monkeypatch.setattr(cld, "N_STEPS", 5)
    gen = cld.generated("gauss", "quick", tiny, 64, seed=8, cache=cache)
    assert gen["xy"].shape == (64, 2) and gen["wall_time"] >= 0
    score = cld.learned_score(res)
    assert score(torch.zeros(4, 2), torch.full((4,), 0.5)).shape == (4, 2)
    with pytest.raises(ValueError, match="name"):
        cld.network("sextic", "quick", tiny)
    with pytest.raises(ValueError, match="scale"):
        cld.n_generated("huge")


def test_two_peak_network_specs_are_the_toy_pipelines():
    for scale in ("quick", "paper"):
        specs = two_peak.network_specs(scale)
        assert set(specs) == set(two_peak.SCHEMES)
        for name, spec in specs.items():
            assert spec.sde == two_peak.SCHEMES[name] and spec.target == two_peak.TARGET
            assert spec.train == two_peak.train_config(scale) and spec.seed == two_peak.TRAIN_SEEDS[name]
    with pytest.raises(ValueError, match="MixtureNetSpec"):
        toy_dm.network("VE")
