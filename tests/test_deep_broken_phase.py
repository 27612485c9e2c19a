"""The recipes of the deep-broken-phase chapter (lib.recipes.deep_broken_phase)."""

import pytest

from lib.recipes import deep_broken_phase as db
from lib.recipes import phi4_diffusion as dm
from lib.recipes import phi4_hmc
from lib.recipes.pipelines import lattice_sampling


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_the_model_is_trained_on_the_kappa_one_equilibrium_ensemble(scale):
    specs = db.book_specs(scale)
    hmc = specs["hmc"]
    assert hmc == phi4_hmc.book_specs(scale)["k1.0-cold"]
    assert (hmc.params.L, hmc.params.kappa, hmc.params.lam) == (32, 1.0, 0.022)
    assert hmc.start == "cold" and hmc.n_therm > 0 and hmc.n_chains * (hmc.n_traj // hmc.keep_every) >= 5120
    model = specs["model"]
    assert model.ensembles == (hmc,) and model.train.augment_flip and model.net.odd
    assert model.net == dm.book_specs(scale)["k0.4"].net  # the T2 network, another coupling
    assert isinstance(specs["sample"], lattice_sampling.SampleSpec) and specs["sample"].t_end <= model.train.t_min
    assert specs["hot"].params == specs["authors"].params == hmc.params


def test_paper_scale_is_the_papers():
    specs = db.book_specs("paper")
    assert specs["model"].net.channels == (32, 64, 128, 256)
    assert specs["sample"].n_samples >= 10_000
    assert specs["hmc"].n_chains * (specs["hmc"].n_traj // specs["hmc"].keep_every) >= 10_000


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        db.book_specs("gpu")
