"""Tests of lib.recipes.phi4_ensembles (cached HMC ensembles) and lib.physics.observables.site_cumulant_ratios."""
import dataclasses

import numpy as np
import pytest
import torch

from lib.physics import hmc, observables, phi4
from lib.recipes import phi4_hmc
from lib.recipes.pipelines import phi4_ensembles as ens
from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache

P = phi4.Phi4Params(6, 0.21, 0.022)


def small_chain_spec(**kw):
    base = dict(params=P, n_chains=3, n_therm=4, n_traj=6, keep_every=2, step=0.4, n_steps=3, seed=5)
    base.update(kw)
    return ens.ChainSpec(**base)


def test_run_chains_shapes_and_bookkeeping():
    data = ens.run_chains(small_chain_spec())
    assert data["configs"].shape == (3, 3, 6, 6) and data["configs"].dtype == torch.float32
    assert data["kept_traj"].tolist() == [2, 4, 6]
    assert data["M_therm"].shape == (4, 3) and data["M"].shape == (6, 3) and data["accepted"].shape == (6, 3)
    # the last kept configuration is the final field; M is its magnetisation
    torch.testing.assert_close(data["configs"][-1], data["phi_final"].float())
    torch.testing.assert_close(data["M"][-1], data["phi_final"].mean(dim=(1, 2)))


def test_run_chains_matches_direct_hmc():
    spec = small_chain_spec(start="hot")
    data = ens.run_chains(spec)
    gen = make_generator(spec.seed, None)
    phi = phi4.hot_start(P, 3, gen)
    kw = dict(step=spec.step, n_steps=spec.n_steps, generator=gen, integrator="omelyan", jitter=0.3)
    phi = hmc.hmc(P, phi, spec.n_therm, **kw).phi
    run = hmc.hmc(P, phi, spec.n_traj, **kw)
    torch.testing.assert_close(data["phi_final"], run.phi)


def test_cold_start_value_is_used():
    data = ens.run_chains(small_chain_spec(n_therm=0, n_traj=1, keep_every=1, step=1e-6, n_steps=1,
                                          start_value=0.7))
    assert torch.allclose(data["phi_final"], torch.full((3, 6, 6), 0.7, dtype=torch.float64), atol=1e-4)


def test_run_authors_equals_authors_ensemble():
    spec = ens.ChainEndsSpec(P, n_configs=5, seed=3, n_traj=3, n_steps=5, step=0.05, batch=2)
    data = ens.run_chain_ends(spec)
    gen = make_generator(3, None)
    parts = [hmc.chain_ends(P, n, gen, n_traj=3, step=0.05, n_steps=5) for n in (2, 2, 1)]
    torch.testing.assert_close(data["configs"], torch.cat(parts).float())
    assert data["M"].shape == (3, 5)
    torch.testing.assert_close(data["M"][-1], torch.cat(parts).mean(dim=(1, 2)))
    assert 0.0 <= data["acceptance"] <= 1.0


def test_ensemble_caches_with_provenance(tmp_path):
    cache = ArtefactCache(tmp_path)
    spec = small_chain_spec()
    first = ens.ensemble(spec, cache=cache)
    prov = cache.provenance(ens.KIND_CHAINS, {"spec": spec}, code=ens.__name__)
    assert prov is not None and prov["seed"] == spec.seed
    again = ens.ensemble(spec, cache=cache)
    torch.testing.assert_close(first["configs"], again["configs"])
    # a changed parameter is a different entry
    other = ens.ensemble(small_chain_spec(seed=6), cache=cache)
    assert not torch.equal(other["configs"], first["configs"])


def test_configurations_orders_chain_by_chain():
    configs = torch.arange(2 * 3).float().reshape(2, 3, 1, 1).expand(2, 3, 2, 2)  # (n_kept=2, chains=3)
    flat = ens.configurations({"configs": configs})
    assert flat[:, 0, 0].tolist() == [0, 3, 1, 4, 2, 5]
    assert ens.configurations({"configs": torch.zeros(4, 2, 2)}).shape == (4, 2, 2)


def test_book_specs_and_bad_input():
    quick, paper = phi4_hmc.book_specs("quick"), phi4_hmc.book_specs("paper")
    assert set(quick) == set(paper)
    for name in ("k0.21-hot", "k0.21-cold", "k0.4-cold", "k0.4-below"):
        spec = paper[name]
        assert spec.n_chains * (spec.n_traj // spec.keep_every) >= 10_000
    assert paper["k0.4-authors"].n_configs >= 10_000
    assert quick["k0.4-authors"].n_traj == 128 and quick["k0.4-authors"].step == 0.01
    with pytest.raises(ValueError, match="scale"):
        phi4_hmc.book_specs("huge")
    with pytest.raises(ValueError, match="unknown ensemble"):
        phi4_hmc.load("nope", scale="quick")
    with pytest.raises(ValueError, match="start"):
        small_chain_spec(start="warm")
    with pytest.raises(ValueError, match="keep_every"):
        small_chain_spec(keep_every=0)
    with pytest.raises(ValueError, match="n_configs"):
        ens.ChainEndsSpec(P, n_configs=0, seed=1)


def test_equilibrium_specs_are_the_same_run_at_every_lattice_size():
    """The L = 32 ensembles of book_specs are equilibrium_specs(32); at another L only the lattice and seeds differ."""
    for scale in ("quick", "paper"):
        book = phi4_hmc.book_specs(scale)
        at32 = phi4_hmc.equilibrium_specs(32, scale, seeds=(2101, 2102, 4001, 4002))
        assert all(book[name] == spec for name, spec in at32.items())
        at16 = phi4_hmc.equilibrium_specs(16, scale, seeds=(1, 2, 3, 4))
        for name, spec in at16.items():
            assert spec.params.L == 16 and spec.params.kappa == at32[name].params.kappa
            assert dataclasses.replace(spec, params=at32[name].params, seed=at32[name].seed,
                                       start_value=at32[name].start_value) == at32[name]
        assert at16["k0.4-below"].start_value == pytest.approx(0.5 * phi4.classical_vacuum(at16["k0.4-below"].params))
    with pytest.raises(ValueError, match="seeds"):
        phi4_hmc.equilibrium_specs(16, "quick", seeds=(1, 2, 3))
    with pytest.raises(ValueError, match="scale"):
        phi4_hmc.equilibrium_specs(16, "huge", seeds=(1, 2, 3, 4))


def test_site_cumulant_ratios_two_peak_and_invariance():
    rng = np.random.default_rng(0)
    mu, s = 1.0, 0.25
    n_cfg, sites = 4000, 64
    signs = rng.choice([-1.0, 1.0], size=(n_cfg, sites))
    x = signs * mu + s * rng.standard_normal((n_cfg, sites))
    k2 = mu**2 + s**2
    exact = np.array([-2 * mu**4 / k2**2, 16 * mu**6 / k2**3, -272 * mu**8 / k2**4])
    est, err = observables.site_cumulant_ratios(x, n_boot=200, generator=np.random.default_rng(1), n_blocks=200)
    assert np.all(np.abs(est - exact) < 5 * err), (est, err, exact)
    assert np.all(err > 0)
    # invariant under an affine map (the authors' min/max normalisation)
    est2, _ = observables.site_cumulant_ratios(0.3 * x - 0.1, n_boot=2, generator=np.random.default_rng(1))
    np.testing.assert_allclose(est2, est, rtol=1e-8)
    # a Gaussian field has vanishing ratios (and the test can fail: the two-peak values are far from 0)
    g, gerr = observables.site_cumulant_ratios(rng.standard_normal((n_cfg, sites)), n_boot=200,
                                               generator=np.random.default_rng(2), n_blocks=200)
    assert np.all(np.abs(g) < 5 * gerr)
    assert np.all(np.abs(est) > 10 * err)
    with pytest.raises(ValueError, match="orders"):
        observables.site_cumulant_ratios(x, orders=(2,), generator=np.random.default_rng(0))
