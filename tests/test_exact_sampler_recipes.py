"""Tests of lib.recipes.exact_sampler: recipes validate, proposals are cached and resume after an interruption, the
density is consistent with the change of units, the corrected chain, the book's recipes at both scales."""
import math

import pytest
import torch

from lib.core.random import make_generator
from lib.diffusion import lattice_nets, training
from lib.infra.cache import ArtefactCache
from lib.physics import phi4
from lib.recipes import exact_sampler as es

from lib.recipes.pipelines import flow_proposals
from lib.recipes.pipelines import lattice_training
from lib.recipes.pipelines import phi4_ensembles as ens

P = phi4.Phi4Params(4, 0.21, 0.022)
NET = lattice_nets.LatticeNetConfig(kind="cnn", channels=(4,), embed_dim=8, group_norm=False)
TRAIN = training.TrainConfig(n_steps=6, lr=1e-3, batch_size=8, augment_flip=True, ema_decay=0.9, keep_at=(3,))
CHAIN = ens.ChainSpec(P, n_chains=4, n_therm=2, n_traj=8, keep_every=2, step=0.4, n_steps=3, seed=1)
DM = lattice_training.DMSpec((CHAIN,), NET, TRAIN, seed=3, normalisation="std")
SPEC = flow_proposals.ProposalSpec(DM, 10, n_steps=3, probes=2, batch=4, seed=5)


def test_specs_validate():
    with pytest.raises(ValueError, match="at_step = 4 is not a kept snapshot"):
        flow_proposals.ProposalSpec(DM, 10, at_step=4)
    with pytest.raises(ValueError, match="method"):
        flow_proposals.ProposalSpec(DM, 10, method="rk4")
    with pytest.raises(ValueError, match="n_proposals"):
        flow_proposals.ProposalSpec(DM, 1)
    with pytest.raises(ValueError, match="t_end"):
        flow_proposals.ProposalSpec(DM, 10, t_end=1.0)
    with pytest.raises(ValueError, match="dm must be a DMSpec"):
        flow_proposals.ProposalSpec("model", 10)
    assert SPEC.score_evaluations == 6
    for scale in ("quick", "paper"):
        specs = es.book_specs(scale)
        assert specs["under"].at_step in specs["k0.21"].train.keep_at
        assert specs["main"].dm.params.L == {"quick": 8, "paper": 16}[scale]
    with pytest.raises(ValueError, match="scale"):
        es.book_specs("huge")


def test_proposals_are_cached_resume_and_have_the_density_of_the_field(tmp_path, crash_at):
    reference = flow_proposals.proposals(SPEC, ArtefactCache(tmp_path / "a"))
    assert reference["phi"].shape == (10, 4, 4) and reference["hutchinson_error"].shape == (10, 2)
    torch.testing.assert_close(reference["action"], phi4.action(reference["phi"], P))
    # the density of the field is that of the normalised field minus V log(scale)
    model, norm = flow_proposals.network(DM, cache=ArtefactCache(tmp_path / "a"))
    assert norm.scale > 0 and math.isfinite(float(reference["log_q"].sum()))
    # an interrupted run resumes with the next batch and gives the same proposals
    cache = ArtefactCache(tmp_path / "b")
    undo = crash_at(flow_proposals.flow_map, "flow_proposals", 2, KeyboardInterrupt("simulated interruption"))
    with pytest.raises(KeyboardInterrupt):
        flow_proposals.proposals(SPEC, cache)
    undo()
    scratch = cache.scratch_dir(flow_proposals.KIND_PROPOSALS, {"proposals": SPEC}, code=flow_proposals.__name__)
    assert sorted(p.name for p in scratch.glob("batch_*.pt")) == ["batch_00000.pt"]
    resumed = flow_proposals.proposals(SPEC, cache)
    for name in ("phi", "log_q", "hutchinson_error"):
        torch.testing.assert_close(resumed[name], reference[name])
    assert not scratch.exists()  # cleared once stored
    # a snapshot of the run is another network
    early = flow_proposals.proposals(flow_proposals.ProposalSpec(DM, 10, n_steps=3, at_step=3, batch=4, seed=5), cache)
    assert not torch.equal(early["phi"], reference["phi"])


def test_corrected_chain_series_and_noisy_density(tmp_path):
    props = flow_proposals.proposals(SPEC, ArtefactCache(tmp_path))
    out = flow_proposals.corrected_chain(props, make_generator(0))
    assert out["M"].shape == (9,) and set(out) >= {"abs_M", "M2", "action", "sign_M", "acceptance", "chain"}
    M = props["phi"].mean(dim=(1, 2))
    torch.testing.assert_close(out["M2"], (M * M)[out["chain"].index])
    # a large error added to log q changes the decisions (same uniforms)
    noisy = flow_proposals.corrected_chain(props, make_generator(0), log_q_error=torch.linspace(-50, 50, 10, dtype=torch.float64))
    assert not torch.equal(noisy["chain"].accepted, out["chain"].accepted)


def test_summary_and_acceptance_error(tmp_path):
    import numpy as np

    props = flow_proposals.proposals(SPEC, ArtefactCache(tmp_path))
    out = flow_proposals.corrected_chain(props, make_generator(0))
    assert out["acceptance"] == out["chain"].acceptance and out["acceptance_error"] >= 0
    raw = flow_proposals.summary(flow_proposals.observables_of(props["phi"], props["action"]), 16, np.random.default_rng(0), independent=True)
    assert set(raw) >= {"M", "absM", "chi2", "U_L", "action_density", "phi2"}
    torch.testing.assert_close(torch.tensor(raw["phi2"][0], dtype=torch.float64),
                               props["phi"].pow(2).mean(), rtol=1e-12, atol=1e-12)


def test_precision_check_measures_the_float32_rounding_of_log_w(tmp_path):
    out = flow_proposals.precision_check(SPEC, n=3, cache=ArtefactCache(tmp_path))
    assert out["n"] == 3
    for key in ("max_log_w_error", "max_log_q_error", "max_action_error", "max_field_error"):
        assert math.isfinite(out[key]) and 0.0 <= out[key] < 1e-2, (key, out[key])
    assert out["max_field_error"] > 0.0  # float32 and float64 differ: the check measures something
