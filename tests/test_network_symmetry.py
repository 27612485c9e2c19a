"""The recipes of the chapter on the score network's symmetries (lib.recipes.network_symmetry)."""
import dataclasses

import pytest

from lib.recipes import network_symmetry as ns
from lib.recipes.pipelines import phi4_ensembles as ens


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


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_the_authors_training_generates_with_the_last_and_the_averaged_weights(scale):
    specs = ns.book_specs(scale)
    theirs, ours = specs["authors' training"], specs["models"]["long run", "periodic, odd"]
    # the authors' network and optimiser: full resolution, zero padding, not odd; Adam at lr 1e-3, batch 64, constant
    assert (theirs.net.kind, theirs.net.padding, theirs.net.odd) == ("cnn", "zeros", False)
    assert (theirs.train.lr, theirs.train.batch_size, theirs.train.lr_schedule) == (1e-3, 64, "constant")
    assert theirs.ensembles == (specs["authors"],) and not theirs.train.augment_flip
    assert theirs.train.n_steps == ours.train.n_steps and theirs.train.ema_decay == ours.train.ema_decay
    last, averaged = specs["authors' samples"]["last"], specs["authors' samples"]["sampling"]
    assert (last.weights, averaged.weights) == ("last", "sampling")
    assert dataclasses.replace(last, weights="sampling") == averaged
    # the chapter's seeds are none of the trials'
    assert theirs.seed not in ns.AUTHORS_TRIAL_SEEDS["training"]
    assert averaged.seed not in ns.AUTHORS_TRIAL_SEEDS["generation"]


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        ns.book_specs("gpu")
