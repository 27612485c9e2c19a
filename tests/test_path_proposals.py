"""Tests of lib.recipes.pipelines.path_proposals and lib.recipes.path_sampler: recipes validate, path proposals are
cached and resume after an interruption, their density is that of the field, the Gaussian kernel check, the narrow
Gaussian proposals, the book's recipes at both scales."""
import math

import numpy as np
import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion import lattice_nets, training
from lib.infra.cache import ArtefactCache
from lib.physics import phi4
from lib.recipes import path_sampler as rp
from lib.recipes.pipelines import flow_proposals, lattice_training, path_proposals
from lib.recipes.pipelines import phi4_ensembles as ens

P = phi4.Phi4Params(4, 0.21, 0.022)
NET = lattice_nets.LatticeNetConfig(kind="cnn", channels=(4,), embed_dim=8, group_norm=False)
TRAIN = training.TrainConfig(n_steps=6, lr=1e-3, batch_size=8, augment_flip=True, ema_decay=0.9)
CHAIN = ens.ChainSpec(P, n_chains=4, n_therm=2, n_traj=8, keep_every=2, step=0.4, n_steps=3, seed=1)
DM = lattice_training.DMSpec((CHAIN,), NET, TRAIN, seed=3, normalisation="std")


def test_path_specs_validate():
    for kwargs, match in (({"score": "exact"}, "score"), ({"kernel": "heun"}, "kernel"), ({"n_steps": 1}, "n_steps"),
                          ({"xi_min": 0.0}, "xi_min"), ({"force_cut": -1.0}, "force_cut"),
                          ({"zero_mode_components": 0}, "zero_mode_components")):
        with pytest.raises(ValueError, match=match):
            path_proposals.PathSpec(DM, 8, **kwargs)
    with pytest.raises(ValueError, match="dm must be a DMSpec"):
        path_proposals.PathSpec("model", 8)
    with pytest.raises(ValueError, match="n_paths"):
        path_proposals.PathSpec(DM, 1)
    for scale in ("quick", "paper"):
        specs = rp.book_specs(scale)
        assert specs["main"]["force"].dm.params.L == 32 and specs["main"]["force"].score == "force"
        assert specs["base"].base == "gaussian"
        assert specs["main"]["k0.27 L=16 zero"].score == "zero-mode"
        assert set(rp.networks(scale)) >= {"k0.21 base", "k0.21 L=32"}
    with pytest.raises(ValueError, match="scale"):
        rp.book_specs("huge")


def _resumes_after_an_interruption(crash_at, owner, name: str, make, reference: dict) -> None:
    """``make()`` interrupted at the second call of ``owner.name`` (a batch), then run again, gives ``reference``."""
    undo = crash_at(owner, name, 2, KeyboardInterrupt("simulated interruption"))
    with pytest.raises(KeyboardInterrupt):
        make()
    undo()
    resumed = make()
    for field in ("phi", "log_q", "action"):
        torch.testing.assert_close(resumed[field], reference[field])


@pytest.mark.parametrize("score", ["network", "gaussian", "force", "zero-mode"])
def test_path_proposals_are_cached_resume_and_make_an_exact_chain(tmp_path, crash_at, score):
    spec = path_proposals.PathSpec(DM, 10, score=score, n_steps=6, batch=4, seed=5)
    reference = path_proposals.proposals(spec, ArtefactCache(tmp_path / "a"))
    assert reference["phi"].shape == (10, 4, 4)
    torch.testing.assert_close(reference["action"], phi4.action(reference["phi"], P))
    assert math.isfinite(float(reference["log_q"].sum())) and float(reference["seconds_per_path"]) > 0
    cache = ArtefactCache(tmp_path / "b")
    _resumes_after_an_interruption(crash_at, path_proposals.ps, "path_proposals",
                                   lambda: path_proposals.proposals(spec, cache), reference)
    out = flow_proposals.corrected_chain(reference, make_generator(0))
    assert out["M"].shape == (9,) and math.isfinite(out["k_hat"]) or out["k_hat"] == float("inf")
    summary = path_proposals.weight_summary(reference)
    assert summary["n"] == 10 and 0 < summary["ess_fraction"] <= 1 and summary["sd_log_w"] >= 0


@pytest.mark.parametrize("score, mass, base", [("gaussian", "data", "score"), ("zero-mode", "narrowest", "score"),
                                              ("network", "narrowest", "zero-mode")])
def test_annealed_proposals_are_cached_resume_and_keep_the_weight_of_the_base_target(tmp_path, crash_at, score, mass,
                                                                                      base):
    paths = path_proposals.PathSpec(DM, 10, score=score, n_steps=6, batch=4, seed=5)
    spec = path_proposals.AnnealedSpec(paths, path_proposals.HMCLayers(3, 0.2), zero_mode_mass=mass, base=base,
                                       batch=4, seed=6)
    cache = ArtefactCache(tmp_path / "a")
    reference = path_proposals.annealed(spec, cache)
    assert reference["phi"].shape == (10, 4, 4) and reference["layer_acceptance"].shape == (3, 3)
    torch.testing.assert_close(reference["action"], phi4.action(reference["phi"], P))
    raw = path_proposals.proposals(paths, cache)
    assert float(reference["seconds_per_path"]) > float(raw["seconds_per_path"])
    other = ArtefactCache(tmp_path / "b")
    _resumes_after_an_interruption(crash_at, path_proposals.annealing, "annealed_layers",
                                   lambda: path_proposals.annealed(spec, other), reference)
    # annealing from the target to itself (base = target) leaves each path's weight as it was
    log_b, c = path_proposals.base_density(paths, cache, mass, base)
    target = lambda phi: -phi4.action(phi, P, check=False)  # noqa: E731
    same = path_proposals.annealing.annealed_layers(raw["phi"], raw["log_q"], target, target,
                                                    path_proposals.HMCLayers(3, 0.2), make_generator(1), c)
    torch.testing.assert_close(-phi4.action(same.x, P) - same.log_q, -raw["action"] - raw["log_q"])
    assert tuple(log_b(raw["phi"]).shape) == (10,) and tuple(c.shape) == (4, 4)
    fresh = path_proposals.draw_annealed(spec, cache)  # computed now, not stored: the same numbers
    for name in ("phi", "log_q", "action"):
        torch.testing.assert_close(fresh[name], reference[name])


def test_annealed_specs_validate():
    paths = path_proposals.PathSpec(DM, 8, score="gaussian")
    layers = path_proposals.HMCLayers(2, 0.1)
    with pytest.raises(ValueError, match="narrowest"):
        path_proposals.AnnealedSpec(paths, layers, zero_mode_mass="narrowest")
    with pytest.raises(ValueError, match="zero_mode_mass"):
        path_proposals.AnnealedSpec(paths, layers, zero_mode_mass="wide")
    with pytest.raises(ValueError, match="HMCLayers"):
        path_proposals.AnnealedSpec(paths, (2, 0.1))
    with pytest.raises(ValueError, match="PathSpec"):
        path_proposals.AnnealedSpec(DM, layers)
    with pytest.raises(ValueError, match="narrowest"):
        path_proposals.base_density(paths, None, "narrowest")
    with pytest.raises(ValueError, match="base"):
        path_proposals.AnnealedSpec(paths, layers, base="exact")
    path_proposals.AnnealedSpec(paths, layers, zero_mode_mass="narrowest", base="zero-mode")  # a fitted zero mode


def test_the_path_density_is_that_of_the_field_in_its_own_units(tmp_path):
    """The pipeline's paths are those of lib.diffusion.path_sampler in the normalised variables y = phi / s, and their
    log q is that of y minus V log s (the Jacobian of phi = s y)."""
    from lib.diffusion import path_sampler as ps
    from lib.diffusion.mode_gaussian import gaussian_score

    cache = ArtefactCache(tmp_path)
    spec = path_proposals.PathSpec(DM, 6, score="gaussian", n_steps=5, batch=6, seed=2)
    a = path_proposals.proposals(spec, cache)
    x = lattice_training.training_configs(DM, cache)
    norm = lattice_training.normalisation(DM, x)
    v = path_proposals.data_mode_variance(DM, cache)
    sde = lattice_training.forward_sde(DM)
    seed = torch.randint(0, 2**62, (1,), generator=make_generator(spec.seed)).tolist()[0]
    y = ps.path_proposals(sde, lambda z, t: gaussian_score(z, t, sde, v), ps.geometric(sde, 5, spec.xi_min), (4, 4),
                          6, make_generator(seed), mode_variance=v)
    torch.testing.assert_close(a["phi"], norm.inverse(y.x))
    torch.testing.assert_close(a["log_q"], y.log_q - 16 * math.log(norm.scale))
    chain = flow_proposals.corrected_chain(a, make_generator(1))
    torch.testing.assert_close(chain["chain"].log_w, -a["action"] - a["log_q"])


def test_gaussian_kernel_check_is_exact_for_the_momentum_space_kernel():
    from lib.diffusion import sde as sdes

    L = 4
    p = 2 * math.pi * torch.fft.fftfreq(L, d=1.0).to(torch.float64)
    v = 1.0 / (4 * torch.sin(p[:, None] / 2) ** 2 + 4 * torch.sin(p[None, :] / 2) ** 2 + 0.5)
    exact = path_proposals.gaussian_kernel_check(v, sdes.ve(25.0), 10, "posterior", v, 32, seed=0)
    assert exact["max_dev_log_Z"] < 1e-8 and exact["acceptance"] == 1.0
    em = path_proposals.gaussian_kernel_check(v, sdes.ve(25.0), 10, "euler-maruyama", None, 32, seed=0)
    assert em["sd_log_w"] > 1e-3 and em["acceptance"] < 1.0


def test_gaussian_proposals_have_their_density_and_chain_site_ratios_have_errors(tmp_path):
    props = path_proposals.gaussian_proposals(DM, 0.8, 64, seed=3, cache=ArtefactCache(tmp_path))
    assert props["phi"].shape == (64, 4, 4)
    torch.testing.assert_close(props["action"], phi4.action(props["phi"], P))
    with pytest.raises(ValueError, match="width"):
        path_proposals.gaussian_proposals(DM, 0.0, 64, seed=3)
    out = flow_proposals.corrected_chain(props, make_generator(2))
    est, err = path_proposals.chain_site_ratios(props["phi"], out["chain"], np.random.default_rng(0), orders=(4,))
    assert est.shape == (1,) and err[0] > 0
