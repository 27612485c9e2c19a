"""The recipes of the chapter on the score network's symmetries (lib.recipes.network_symmetry)."""
import dataclasses

import pytest

from lib.recipes import network_symmetry as ns
from lib.recipes import phi4_ensembles as ens


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_the_two_models_differ_only_in_padding_and_oddness(scale):
    specs = ns.book_specs(scale)
    for data, ensemble in (("long run", specs["hmc"]), ("authors' protocol", specs["authors"])):
        ours, theirs = specs["models"][data, "periodic, odd"], specs["models"][data, "zero-padded, not odd"]
        assert (ours.net.padding, ours.net.odd) == ("circular", True)
        assert (theirs.net.padding, theirs.net.odd) == ("zeros", False)
        assert dataclasses.replace(theirs, net=ours.net) == ours  # same data, training, seed, everything else
        assert ours.ensembles == (ensemble,) and not ours.train.augment_flip
    assert len(specs["models"]) == 4
    assert specs["hmc"].params == specs["authors"].params == ns.PARAMS
    assert isinstance(specs["authors"], ens.ChainEndsSpec) and specs["authors"].n_traj == 128


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        ns.book_specs("gpu")
