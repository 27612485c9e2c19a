r"""The symmetries of the score network near the critical point: the authors' failure case at :math:`L = 16`.

The recipes of :doc:`/book/part3/network_symmetry`.  The authors' public notebook for arXiv:2309.17082 trains its
score network (zero-padded convolutions, no :math:`Z_2` symmetry) on an :math:`L = 16` ensemble at
:math:`\kappa = 0.27`, :math:`\lambda = 0.022`, just below the critical point, and reports a generated ensemble
that prefers one vacuum.  Here one long HMC run at that point trains two networks that differ only in the two
symmetries: ours (circular padding, exactly odd) and one of the authors' kind (zero padding, not odd), with the same
data, architecture, seed and training budget; once on the long run and once on the authors' protocol.  Then the
network of the authors' kind is trained the authors' way (their notebook's full-resolution network, Adam at a constant
learning rate), and generates once with the last weights of training, as they did, and once with the weights averaged.
Nothing is computed at import time.
"""
from __future__ import annotations

import dataclasses

from lib.diffusion import lattice_nets, training
from lib.physics import phi4
from lib.recipes.pipelines import lattice_sampling as ls
from lib.recipes.pipelines import lattice_training as lt
from lib.recipes.pipelines import phi4_ensembles as ens

__all__ = ["PARAMS", "AUTHORS_NOTEBOOK", "AUTHORS_TRIAL_SEEDS", "AUTHORS_TRAINING_SEEDS", "book_specs", "networks"]

#: the seeds of the trials (tools/experiments/README.md, exp_authors_kind.py) from which the rules of the authors'
#: training were written: training 2720 and 2721, generation 2710
AUTHORS_TRIAL_SEEDS = {"training": (2720, 2721), "generation": (2710,)}
#: the seeds of the chapter's authors' training and of its two generated ensembles, used by no trial
AUTHORS_TRAINING_SEEDS = {"training": 2730, "generation": 2731}

#: the lattice and couplings of the authors' notebook (L = 16, kappa = 0.27 with the critical point near 0.2709, lambda = 0.022)
PARAMS = phi4.Phi4Params(16, 0.27, 0.022)

#: the values printed by the authors' public notebook for arXiv 2309.17082 at PARAMS, as (value, error)
AUTHORS_NOTEBOOK = {
    "HMC": {"M": (0.030, 0.007), "absM": (0.6593, 0.0033), "chi2": (139.4, 1.1)},
    "DM": {"M": (0.325, 0.022), "chi2": (124.9, 3.8)},
}


def book_specs(scale: str = "quick") -> dict:
    r"""The recipes of :doc:`/book/part3/network_symmetry` at ``scale`` ("quick" or "paper").

    Keys: ``"hmc"`` (a :class:`~lib.recipes.pipelines.phi4_ensembles.ChainSpec`: hot starts, Omelyan, a configuration kept
    every 20 trajectories of a long run), ``"authors"`` (a :class:`~lib.recipes.pipelines.phi4_ensembles.ChainEndsSpec`: the
    authors' protocol, one hot-started chain of 128 leapfrog trajectories per configuration), ``"models"``
    (``{(data, network): DMSpec}`` with data ``"long run"`` or ``"authors' protocol"`` and network ``"periodic, odd"`` or ``"zero-padded, not odd"``: the same U-Net, seed and
    training, the two networks differing only in ``padding`` and ``odd``), ``"authors' training"`` (a DMSpec: the
    network of the authors' kind as their notebook has it, convolutions at the full resolution (``kind="cnn"``), zero
    padding, not odd, trained on the authors' protocol with their optimiser, Adam at a constant learning rate of 1e-3
    and batch 64; the moving average of the weights is kept beside them, as for every other model of the book, and
    does not change the training, and the last weights are kept with it), ``"sample"`` (one
    :class:`~lib.recipes.pipelines.lattice_sampling.SampleSpec` for the four models: the averaged weights generate) and
    ``"authors' samples"`` (``{"last": ..., "sampling": ...}``: the authors' training generating with the weights of
    its last step, as the authors did, and with its averaged weights, from the same noise).  The authors' training
    and its samples have seeds that no trial used (:data:`AUTHORS_TRAINING_SEEDS`; the trials': :data:`AUTHORS_TRIAL_SEEDS`).

    No model is trained with the flip augmentation: the authors' was not, and ours is odd, so that it could not
    change anything.  Quick scale: the quick U-Net of :func:`lib.recipes.phi4_diffusion.book_specs` (8, 16, 32),
    1500 steps of batch 32, 512 generated configurations with 50 Heun steps (1024 until December 2026, halved for
    the time of CI) and 1024 from the authors' training, whose preference for one vacuum is the chapter's finding.  Paper scale: the authors' U-Net
    (32, 64, 128, 256), 20000 steps of batch 64, 10240 configurations with 250 Heun steps.  The authors' training:
    the CNN (16, 16, 16) for 1500 steps at the quick scale; at the paper scale the widths of the authors' network,
    (32, 64, 128, 256), for 20000 steps; its average of the weights decays as the other models' (0.99 quick, 0.999
    paper).
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    paper = scale == "paper"
    hmc = ens.ChainSpec(PARAMS, n_chains=256 if paper else 64, n_therm=500, n_traj=10000, keep_every=20,
                        step=0.4, n_steps=3, start="hot", seed=2701)
    authors = ens.ChainEndsSpec(PARAMS, n_configs=10240 if paper else 1024, seed=2702)
    if paper:
        net = lattice_nets.LatticeNetConfig(kind="unet", channels=(32, 64, 128, 256), embed_dim=64, odd=True)
        train = training.TrainConfig(n_steps=20000, lr=1e-3, batch_size=64, augment_flip=False, ema_decay=0.999)
        sample = ls.SampleSpec(n_samples=10240, n_steps=250, batch=1024, record_every=250, n_snapshots=0, seed=2710)
    else:
        net = lattice_nets.LatticeNetConfig(kind="unet", channels=(8, 16, 32), embed_dim=32, odd=True)
        train = training.TrainConfig(n_steps=1500, lr=2e-3, batch_size=32, augment_flip=False, ema_decay=0.99,
                                     lr_schedule="cosine")
        sample = ls.SampleSpec(n_samples=512, n_steps=50, batch=256, record_every=50, n_snapshots=0, seed=2710)
    nets = {"periodic, odd": net, "zero-padded, not odd": dataclasses.replace(net, padding="zeros", odd=False)}
    data = {"long run": hmc, "authors' protocol": authors}
    flat = lattice_nets.LatticeNetConfig(kind="cnn", channels=(32, 64, 128, 256) if paper else (16, 16, 16),
                                         embed_dim=net.embed_dim, odd=False, padding="zeros")
    theirs = training.TrainConfig(n_steps=train.n_steps, lr=1e-3, batch_size=64, augment_flip=False,
                                  ema_decay=train.ema_decay, keep_last=True)
    return {"hmc": hmc, "authors": authors,
            "models": {(d, n): lt.DMSpec((ensemble,), cfg, train, seed=2720)
                       for d, ensemble in data.items() for n, cfg in nets.items()},
            "authors' training": lt.DMSpec((authors,), flat, theirs, seed=AUTHORS_TRAINING_SEEDS["training"]),
            "sample": sample,
            "authors' samples": {w: dataclasses.replace(sample, seed=AUTHORS_TRAINING_SEEDS["generation"], weights=w,
                                                        n_samples=2 * sample.n_samples if not paper else sample.n_samples)
                                 for w in ("last", "sampling")}}


def networks(scale: str) -> dict:
    """The trained networks of the chapter at ``scale``, by name: what the store must hold."""
    specs = book_specs(scale)
    out = {f"{data}, {net}": lt.network(spec) for (data, net), spec in specs["models"].items()}
    return out | {"authors' training": lt.network(specs["authors' training"])}
