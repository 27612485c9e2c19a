"""Tests of lib.recipes.phi4_diffusion: recipes, training and generation through the cache, resume, the forward flow."""
import dataclasses
import math

import pytest
import torch


from lib import stats
from lib.diffusion import lattice_nets, solvers, training
from lib.physics import observables
from lib.physics import phi4
from lib.recipes import phi4_diffusion as dm
from lib.recipes.pipelines import lattice_likelihood
from lib.recipes.pipelines import lattice_sampling
from lib.recipes.pipelines import lattice_training
from lib.recipes.pipelines import phi4_ensembles as ens

from lib.core.random import make_generator
from lib.infra.cache import ArtefactCache, CacheWarning
from lib.diffusion.sde import ve

P = phi4.Phi4Params(4, 0.21, 0.022)
NET = lattice_nets.LatticeNetConfig(kind="cnn", channels=(4,), embed_dim=8)
TRAIN = training.TrainConfig(n_steps=5, lr=1e-3, batch_size=8, augment_flip=True, ema_decay=0.9)


def chain(seed=1, params=P, **kw):
    base = dict(params=params, n_chains=4, n_therm=2, n_traj=8, keep_every=2, step=0.4, n_steps=3, seed=seed)
    base.update(kw)
    return ens.ChainSpec(**base)


def tiny_dm(**kw):
    base = dict(ensembles=(chain(),), net=NET, train=TRAIN, seed=3)
    base.update(kw)
    return lattice_training.DMSpec(**base)


SAMPLE = lattice_sampling.SampleSpec(n_samples=6, n_steps=4, batch=4, record_every=2, n_snapshots=2, seed=9)


def test_specs_validate():
    with pytest.raises(ValueError, match="normalisation"):
        tiny_dm(normalisation="zscore")
    with pytest.raises(ValueError, match="sigma"):
        tiny_dm(sigma=1.0)
    with pytest.raises(ValueError, match="base"):
        tiny_dm(base="free")
    with pytest.raises(ValueError, match="share L, kappa and lambda"):
        tiny_dm(ensembles=(chain(), chain(params=phi4.Phi4Params(4, 0.4, 0.022))))
    with pytest.raises(ValueError, match="net"):
        tiny_dm(net="cnn")
    with pytest.raises(ValueError, match="at least one"):
        tiny_dm(ensembles=())
    with pytest.raises(ValueError, match="n_samples"):
        lattice_sampling.SampleSpec(n_samples=1)
    with pytest.raises(ValueError, match="t_end"):
        lattice_sampling.SampleSpec(n_samples=4, t_end=1.0)
    with pytest.raises(ValueError, match="method"):
        lattice_sampling.SampleSpec(n_samples=4, method="ode")
    with pytest.raises(ValueError, match="spacing"):
        lattice_sampling.SampleSpec(n_samples=4, spacing="log")
    with pytest.raises(ValueError, match="snapshot_times"):
        lattice_sampling.SampleSpec(n_samples=4, snapshot_times=(1.5,))
    with pytest.raises(ValueError, match="weights"):
        lattice_sampling.SampleSpec(n_samples=4, weights="ema")
    with pytest.raises(ValueError, match="method"):
        lattice_likelihood.LikelihoodSpec(chain(), method="trace")
    with pytest.raises(ValueError, match="scale"):
        dm.book_specs("huge")
    assert tiny_dm(ensembles=[chain()]).ensembles == (chain(),)  # a list becomes a tuple (hashable key)


def test_training_data_and_normalisation(tmp_path):
    cache = ArtefactCache(tmp_path)
    spec = tiny_dm(n_train=10)
    data = lattice_training.training_configs(spec, cache)
    assert data.shape == (10, 4, 4)
    norm = lattice_training.normalisation(spec, data)
    assert norm.shift == 0.0 and math.isclose(norm.scale, float(data.abs().max()), rel_tol=1e-6)
    norm_mm = lattice_training.normalisation(tiny_dm(normalisation="minmax"), data)
    assert float(norm_mm.forward(data).min()) == pytest.approx(-1.0) and float(norm_mm.forward(data).max()) == \
        pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_train"):
        lattice_training.training_configs(tiny_dm(n_train=1000), cache)


def test_generate_shapes_units_and_cache(tmp_path):
    cache = ArtefactCache(tmp_path)
    spec = tiny_dm()
    out = lattice_sampling.generate(spec, SAMPLE, cache)
    assert out["configs"].shape == (6, 4, 4) and out["configs"].dtype == torch.float32
    assert torch.isfinite(out["configs"]).all()
    assert out["snapshots"].shape == (5, 2, 4, 4)
    n_rec = out["t"].shape[0]
    assert out["power_sums"].shape == (n_rec, lattice_sampling.MOMENT_ORDER + 1) and out["spectrum_sum"].shape == (n_rec, 4, 4)
    assert float(out["t"][0]) == 1.0 and bool((out["t"][1:] < out["t"][:-1]).all())
    # the pooled count of the records is every site of every configuration
    assert float(out["power_sums"][0, 0]) == 6 * 16
    # the snapshot at t = 0 is the first of the final configurations (physical units, first batch)
    torch.testing.assert_close(out["snapshots"][-1], out["configs"][:2])
    again = lattice_sampling.generate(spec, SAMPLE, cache)
    torch.testing.assert_close(again["configs"], out["configs"])
    # the authors' Euler-Maruyama sampler: same layout, the snapshot at t = 0 is again the end
    em = lattice_sampling.generate(spec, lattice_sampling.SampleSpec(n_samples=3, n_steps=5, method="em", t_end=1e-3, batch=4, n_snapshots=1),
                     cache)
    assert em["configs"].shape == (3, 4, 4) and em["snapshots"].shape == (5, 1, 4, 4)
    torch.testing.assert_close(em["snapshots"][-1], em["configs"][:1])


def test_generate_with_the_last_weights(tmp_path, monkeypatch):
    """weights="last" generates with TrainResult.model, the default with the moving average (one training for both);
    the last weights are kept only when the training asks for them (TrainConfig.keep_last)."""
    cache = ArtefactCache(tmp_path)
    last_spec = lattice_sampling.SampleSpec(n_samples=4, n_steps=4, batch=4, n_snapshots=0, weights="last")
    with pytest.raises(ValueError, match="keep_last"):
        lattice_sampling.generate(tiny_dm(), last_spec, cache)
    spec = tiny_dm(train=dataclasses.replace(TRAIN, keep_last=True))
    result, _ = lattice_training.trained_model(spec, cache)
    used = []
    original = lattice_sampling.score_fn
    monkeypatch.setattr(lattice_sampling, "score_fn", lambda model, **kw: used.append(model) or original(model, **kw))
    last = lattice_sampling.generate(spec, last_spec, cache)
    averaged = lattice_sampling.generate(spec, dataclasses.replace(last_spec, weights="sampling"), cache)
    assert [m.state_dict().keys() == result.model.state_dict().keys() for m in used] == [True, True]
    torch.testing.assert_close(used[0].state_dict(), result.model.state_dict())
    torch.testing.assert_close(used[1].state_dict(), result.ema.state_dict())
    assert not torch.equal(result.model.conv_out.weight, result.ema.conv_out.weight)
    assert not torch.equal(last["configs"], averaged["configs"])  # the same noise, different weights


def _interrupt_at_second_batch(monkeypatch, spec, cache):
    """Run lattice_sampling.generate until the second batch raises KeyboardInterrupt (the first batch is saved)."""
    original, calls = lattice_sampling._sample_batch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(lattice_sampling, "_sample_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lattice_sampling.generate(spec, SAMPLE, cache)
    monkeypatch.setattr(lattice_sampling, "_sample_batch", original)


def test_generate_resumes_after_an_interruption(tmp_path, monkeypatch):
    spec = tiny_dm()
    reference = lattice_sampling.generate(spec, SAMPLE, ArtefactCache(tmp_path / "a"))
    cache = ArtefactCache(tmp_path / "b")
    _interrupt_at_second_batch(monkeypatch, spec, cache)
    scratch = cache.scratch_dir(lattice_sampling.KIND_SAMPLES, {"dm": spec, "sample": SAMPLE}, code=lattice_sampling.__name__)
    assert sorted(p.name for p in scratch.glob("batch_*.pt")) == ["batch_00000.pt"]
    resumed = lattice_sampling.generate(spec, SAMPLE, cache)
    torch.testing.assert_close(resumed["configs"], reference["configs"])
    torch.testing.assert_close(resumed["power_sums"], reference["power_sums"])


def test_generate_warns_about_a_damaged_batch_and_regenerates_it(tmp_path, monkeypatch):
    spec = tiny_dm()
    cache = ArtefactCache(tmp_path)
    reference = lattice_sampling.generate(spec, SAMPLE, ArtefactCache(tmp_path / "ref"))
    _interrupt_at_second_batch(monkeypatch, spec, cache)
    scratch = cache.scratch_dir(lattice_sampling.KIND_SAMPLES, {"dm": spec, "sample": SAMPLE}, code=lattice_sampling.__name__)
    (scratch / "batch_00000.pt").write_bytes(b"half a batch")
    with pytest.warns(CacheWarning, match="unreadable batch file .*batch_00000.pt"):
        out = lattice_sampling.generate(spec, SAMPLE, cache)
    torch.testing.assert_close(out["configs"], reference["configs"])


def test_forward_marginal_power_records_match_the_kernel():
    sde = ve(25.0)
    x0 = 0.5 * torch.randn(4000, 4, 4, generator=make_generator(0), dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.6], dtype=torch.float64)
    out = solvers.forward_marginals(sde, x0, t, make_generator(1),
                                    observe=lambda x, t: observables.pooled_power_records(x, spectrum_squares=True)).records
    g = out["spectrum_sum"] / x0.shape[0]
    err = torch.sqrt((out["spectrum_sq_sum"] / x0.shape[0] - g**2) / (x0.shape[0] - 1))
    expected = g[0] + sde.xi(t)[:, None, None]
    pull = (g - expected) / torch.hypot(err, err[0])
    assert float(pull[1:].abs().max()) < 5.0
    k2 = out["power_sums"][:, 2] / out["power_sums"][:, 0]
    torch.testing.assert_close(k2 - k2[0], sde.xi(t), rtol=0.05, atol=0.01)


def test_effective_action_runs_and_refuses_training_data(tmp_path):
    cache = ArtefactCache(tmp_path)
    spec = tiny_dm()
    with pytest.raises(ValueError, match="must not be one of the training ensembles"):
        lattice_likelihood.effective_action(spec, lattice_likelihood.LikelihoodSpec(chain(), n_configs=4), cache)
    with pytest.raises(ValueError, match="trained on"):
        lattice_likelihood.effective_action(spec, lattice_likelihood.LikelihoodSpec(chain(params=phi4.Phi4Params(4, 0.4, 0.022)), n_configs=4),
                            cache)
    out = lattice_likelihood.effective_action(spec, lattice_likelihood.LikelihoodSpec(chain(seed=2), n_configs=4, rtol=1e-3, atol=1e-3), cache)
    assert out["S"].shape == (4,) and out["minus_log_q"].shape == (4,)
    assert torch.isfinite(out["minus_log_q"]).all() and out["nfev"] > 0
    torch.testing.assert_close(out["S"], phi4.action(
        ens.configurations(ens.ensemble(chain(seed=2), cache=cache))[:4].double(), P))


def test_book_specs_both_scales_and_paper_unet_smoke():
    quick, paper = dm.book_specs("quick"), dm.book_specs("paper")
    for specs in (quick, paper):  # the papers' lattice at both scales; a U-Net (the whole lattice in view)
        assert specs["k0.21"].params.L == specs["k0.4"].params.L == 32 and specs["small"].params.L == 8
        assert specs["k0.21"].net.kind == specs["k0.4"].net.kind == "unet"
        assert set(specs["samples"]) == {"k0.21", "k0.4", "k0.4-authors"}
        assert specs["test-k0.21"] not in specs["k0.21"].ensembles
        # like-for-like T2: the T2 recipe on the authors'-protocol ensemble (one chain end per configuration)
        authors = specs["k0.4-authors"]
        assert authors.params == specs["k0.4"].params and len(authors.ensembles) == 1
        assert isinstance(authors.ensembles[0], ens.ChainEndsSpec) and authors.net == specs["k0.4"].net
    assert quick["k0.4-authors"].train == quick["k0.4"].train and paper["k0.4-authors"].train.n_steps == 20000
    assert paper["samples"]["k0.21"].n_samples >= 10_000 and paper["k0.21"].net.channels == (32, 64, 128, 256)
    assert sum(s.n_chains * (s.n_traj // s.keep_every) for s in paper["k0.21"].ensembles) >= 5120
    # the quick T5 row: enough configurations for a chi_2 error below the paper's 0.10 (chi_2 ~ 2.6, error ~ 2.5/sqrt(N))
    assert quick["samples"]["k0.21"].n_samples >= 1024
    # both networks run on a 32 x 32 batch and are odd
    for spec in (quick["k0.4"], paper["k0.4"]):
        net = lattice_nets.build_lattice_net(spec.net, lattice_training.forward_sde(spec), generator=make_generator(0))
        x = torch.randn(2, 32, 32, generator=make_generator(1))
        with torch.no_grad():
            s = net(x, 0.5)
            assert s.shape == x.shape and torch.equal(net(-x, 0.5), -s)


def test_cumulants_from_power_records_and_kept_magnetisation(tmp_path):
    x = torch.randn(5000, 2, 2, generator=make_generator(4), dtype=torch.float64)
    sums = observables.pooled_power_records(x, lattice_sampling.MOMENT_ORDER)["power_sums"][None]
    k = stats.cumulants_from_power_sums(sums)
    assert k.shape == (1, lattice_sampling.MOMENT_ORDER + 1)
    assert abs(k[0, 2] - float(x.var())) < 1e-3 and abs(k[0, 4]) < 0.2
    data = ens.ensemble(chain(), cache=ArtefactCache(tmp_path))
    m = ens.kept_magnetisation(data)
    assert m.shape == data["configs"].shape[:2]
    torch.testing.assert_close(m[-1], data["M"][-1].to(m.dtype))
    with pytest.raises(ValueError, match="chain ensemble"):
        ens.kept_magnetisation({"configs": data["configs"][0]})


def test_generate_on_another_lattice_size(tmp_path):
    """A CNN trained on 4 x 4 samples 8 x 8 configurations (lattice-size transfer), cached apart from the 4 x 4 ones."""
    cache = ArtefactCache(tmp_path)
    spec = tiny_dm()
    small = lattice_sampling.generate(spec, SAMPLE, cache)
    big = lattice_sampling.generate(spec, lattice_sampling.SampleSpec(**{**SAMPLE.__dict__, "L": 8}), cache)
    assert small["configs"].shape == (6, 4, 4) and big["configs"].shape == (6, 8, 8)
    assert torch.isfinite(big["configs"]).all() and big["spectrum_sum"].shape[-2:] == (8, 8)
    with pytest.raises(ValueError, match="L"):
        lattice_sampling.SampleSpec(n_samples=4, L=1)


def test_cpu_batch_caps_the_sites_per_batch():
    # at most 2^16 sites per batch (benchmarks/phi4_dm_cost.py --batch-scan), at most `cap` configurations, at least one
    assert [lattice_sampling.cpu_batch(L) for L in (8, 16, 32, 64, 128, 512)] == [256, 256, 64, 16, 4, 1]
    assert lattice_sampling.cpu_batch(8, cap=1024) == 1024 and lattice_sampling.cpu_batch(32, cap=16) == 16
    for L in (8, 16, 32, 64, 128):
        assert lattice_sampling.cpu_batch(L) * L * L <= lattice_sampling.CPU_BATCH_SITES
    quick = dm.book_specs("quick")
    assert all(s.batch == lattice_sampling.cpu_batch(quick["k0.21"].params.L) for s in quick["samples"].values())
    with pytest.raises(ValueError, match="L"):
        lattice_sampling.cpu_batch(0)
    with pytest.raises(ValueError, match="cap"):
        lattice_sampling.cpu_batch(32, cap=0)


def test_a_network_on_the_gaussian_base_learns_a_correction_and_reloads(tmp_path):
    """base="gaussian": the network is GaussianBaseScore around the lattice net, its buffer the propagator of the
    normalised training data; reloaded from the cache it gives the same scores."""
    from lib.diffusion.mode_gaussian import GaussianBaseScore, mode_variance

    cache = ArtefactCache(tmp_path)
    spec = tiny_dm(base="gaussian")
    result, norm = lattice_training.trained_model(spec, cache)
    model = result.sampling_model
    assert isinstance(model, GaussianBaseScore)
    data = lattice_training.training_configs(spec, cache)
    assert torch.allclose(model.variance.double(), mode_variance(norm.forward(data)).float().double())
    again, _ = lattice_training.trained_model(spec, cache)
    x = torch.randn(3, 4, 4, generator=make_generator(2))
    assert again.source == "cache"
    assert torch.equal(again.sampling_model(x, 0.3), model(x, 0.3))
