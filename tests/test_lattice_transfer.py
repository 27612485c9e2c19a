"""The recipes of the lattice-size transfer chapter (lib.recipes.lattice_transfer)."""
import pytest

from lib.recipes import lattice_transfer as lt
from lib.recipes import phi4_diffusion as dm


from lib.recipes.pipelines import lattice_sampling


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_every_model_and_sample_is_on_the_lattice_it_names(scale):
    specs = lt.book_specs(scale)
    sizes = sorted({*lt.L_TRAIN, *lt.L_SAMPLE})
    for phase, kappa in lt.PHASES.items():
        assert sorted(specs["hmc"][phase]) == sizes
        assert set(specs["samples"][phase]) == {(Lt, L) for Lt in lt.L_TRAIN for L in {Lt, *lt.L_SAMPLE}}
        for L, pair in specs["hmc"][phase].items():
            assert {(s.params.L, s.params.kappa, s.params.lam) for s in pair} == {(L, kappa, 0.022)}
            assert len(set(pair)) == 2  # two independent starts
        for L_train, model in specs["models"][phase].items():
            assert model.ensembles == specs["hmc"][phase][L_train]
            assert all(L % model.net.period == 0 for L in sizes)  # the U-Net can run on every lattice
        for (_, L), sample in specs["samples"][phase].items():
            assert sample.L == L and sample.n_samples >= 32
            if scale == "quick":  # batches sized for one CPU thread's cache
                assert sample.batch == min(lattice_sampling.cpu_batch(L), sample.n_samples)
    seeds = [m.seed for p in specs["models"].values() for m in p.values()]
    assert len(set(seeds)) == len(seeds)


def test_shared_lattices_reuse_the_ensembles_of_the_other_chapters():
    """L = 8 and 32 are the ensembles of phi4_ensembles (cached once for the whole book)."""
    specs = lt.book_specs("quick")
    book = dm.book_specs("quick")
    assert specs["hmc"]["k0.21"][32] == book["k0.21"].ensembles
    assert specs["hmc"]["k0.4"][32] == book["k0.4"].ensembles
    assert specs["hmc"]["k0.21"][8][0] == book["small"].ensembles[0]


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        lt.book_specs("huge")


def test_generate_refuses_a_lattice_the_network_cannot_run_on():
    spec = lt.book_specs("quick")["models"]["k0.21"][8]
    sample = lattice_sampling.SampleSpec(n_samples=4, L=10)
    with pytest.raises(ValueError, match="divisible by 4, got L = 10"):
        lattice_sampling.generate(spec, sample)
