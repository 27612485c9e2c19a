r"""Lattice-size transfer: a score network trained on one lattice size samples configurations on others.

The recipes of :doc:`/book/part3/lattice_transfer`.  The lattice score networks of
:mod:`lib.diffusion.lattice_nets` are fully convolutional and periodic, so a network trained on
:math:`L_\mathrm{train}\times L_\mathrm{train}` configurations can be applied unchanged to an :math:`L\times L`
lattice (:class:`lib.recipes.pipelines.lattice_sampling.SampleSpec` with ``L``).  Whether the configurations it generates there
follow the lattice action at that size is the question; the answer is compared against HMC ensembles at every size.

Everything is a recipe of :mod:`lib.recipes.pipelines.phi4_ensembles` (HMC), :mod:`lib.recipes.pipelines.lattice_training`
and :mod:`lib.recipes.pipelines.lattice_sampling` (training and sampling), so every artefact is cached by those modules.  Nothing is computed at import time.
"""
from __future__ import annotations

import dataclasses

from lib.diffusion import lattice_nets, training
from lib.recipes import phi4_hmc
from lib.recipes.pipelines import lattice_sampling as ls
from lib.recipes.pipelines import lattice_training as lt

__all__ = ["PHASES", "L_TRAIN", "L_SAMPLE", "book_specs", "networks"]

#: the two phases by name (symmetric, broken), each with its hopping parameter kappa at lambda = 0.022
PHASES = {"k0.21": 0.21, "k0.4": 0.4}
#: the training lattice sizes
L_TRAIN = (8, 16)
#: the lattice sizes the trained networks generate
L_SAMPLE = (16, 32, 64)


def _hmc_specs(L: int, scale: str) -> dict:
    r"""The HMC ensembles of both phases at lattice size ``L``: the chapter's reference and training data.

    :math:`L = 8` and :math:`L = 32` are the ensembles of :func:`lib.recipes.phi4_hmc.small_specs` and
    :func:`~lib.recipes.phi4_hmc.book_specs` (shared with the other chapters, so cached once); other sizes are
    :func:`~lib.recipes.phi4_hmc.equilibrium_specs`, the same HMC and run length as :math:`L = 32` (thinning
    every 4 trajectories, more than :math:`2\tau_\mathrm{int}`).  Symmetric phase: hot and cold starts; broken
    phase: starts at the classical vacuum :math:`\phi_0` and at :math:`\phi_0/2`, pooled with the flip
    :math:`\phi\to-\phi` in training.
    """
    if L == 8:
        small = phi4_hmc.small_specs()
        return {"k0.21": (small["k0.21"], small["k0.21-test"]), "k0.4": (small["k0.4-cold"], small["k0.4-below"])}
    if L == 32:
        specs = phi4_hmc.book_specs(scale)
    else:
        specs = phi4_hmc.equilibrium_specs(L, scale, seeds=tuple(60000 + 100 * L + i for i in (1, 2, 3, 4)))
    return {"k0.21": (specs["k0.21-hot"], specs["k0.21-cold"]), "k0.4": (specs["k0.4-cold"], specs["k0.4-below"])}


def book_specs(scale: str = "quick") -> dict:
    r"""The recipes of :doc:`/book/part3/lattice_transfer` at ``scale`` ("quick" or "paper").

    Keys:

    ``"hmc"``
        ``{phase: {L: (ChainSpec, ChainSpec)}}`` for :math:`L \in \{8, 16, 32, 64\}`: the HMC ensembles (two starts
        each) that train the networks (:math:`L = 8, 16`) and that every generated ensemble is compared with.
    ``"models"``
        ``{phase: {L_train: DMSpec}}``: the score network trained on the HMC ensembles at :math:`L_\mathrm{train}
        \in \{8, 16\}` (:data:`L_TRAIN`).
    ``"samples"``
        ``{phase: {(L_train, L): SampleSpec}}`` with ``SampleSpec.L = L``: the generated ensemble of the model trained
        at :math:`L_\mathrm{train}` on the :math:`L \times L` lattice (each model samples its own
        :math:`L_\mathrm{train}` and :data:`L_SAMPLE`).

    Quick scale (a CPU, minutes): the quick U-Net of :func:`lib.recipes.phi4_diffusion.book_specs`, channels
    (8, 16, 32), odd, periodic, group norms; 1500 steps with a cosine decay of the learning rate
    :math:`2\times 10^{-3}`, EMA 0.99, the flip augmentation, in batches of 64 (:math:`L = 8`) and 32
    (:math:`L = 16`); 50 stochastic Heun steps on the Karras grid, in batches of
    :func:`lib.recipes.pipelines.lattice_sampling.cpu_batch`.  Generated configurations per lattice: 512, 512, 256, 256 at
    :math:`\kappa = 0.21` (:math:`\chi_2`, the zero mode, to about 8% at :math:`L = 64`), where the model trained at
    :math:`L_\mathrm{train} = 16` generates 128 at :math:`L = 64` (only its :math:`U_L` is checked there), and 256,
    256, 128, 32 at :math:`\kappa = 0.4` (falling with the cost of a network evaluation, proportional to
    :math:`L^2`; the vacuum or the domains show in a few) for :math:`L = 8, 16, 32, 64`.  (Until December 2026 the
    symmetric phase had 512 at :math:`L = 32` and 256 from both models at :math:`L = 64`: cut for the time of CI.)  Paper scale (a GPU): the authors' U-Net
    (32, 64, 128, 256), 20000 steps of batch 64, 250 Heun steps and 10240 configurations on every lattice.
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    sizes = sorted({*L_TRAIN, *L_SAMPLE})
    hmc_by_L = {L: _hmc_specs(L, scale) for L in sizes}
    hmc = {phase: {L: hmc_by_L[L][phase] for L in sizes} for phase in PHASES}
    if scale == "quick":
        net = lattice_nets.LatticeNetConfig(kind="unet", channels=(8, 16, 32), embed_dim=32, odd=True)
        base = training.TrainConfig(n_steps=1500, lr=2e-3, batch_size=32, augment_flip=True, ema_decay=0.99,
                                    lr_schedule="cosine")
        train = {8: dataclasses.replace(base, batch_size=64), 16: base}
        # kappa = 0.21: chi_2 from 64 configurations at L = 64 scattered between 1.3 and 3.0 over sampler seeds
        # (tools/experiments/README.md); 256 make its error about 0.2
        counts = {"k0.21": {8: 512, 16: 512, 32: 256, 64: 256}, "k0.4": {8: 256, 16: 256, 32: 128, 64: 32}}
        counts = {phase: {(Lt, L): n for Lt in L_TRAIN for L, n in by_L.items()} for phase, by_L in counts.items()}
        counts["k0.21"][16, 64] = 128  # only U_L is checked there; the zero mode at L = 64 is the L_train = 8 model's
        n_steps, batch = 50, {L: ls.cpu_batch(L) for L in sizes}
    else:
        net = lattice_nets.LatticeNetConfig(kind="unet", channels=(32, 64, 128, 256), embed_dim=64, odd=True)
        base = training.TrainConfig(n_steps=20000, lr=1e-3, batch_size=64, augment_flip=True, ema_decay=0.999)
        train = {8: base, 16: base}
        counts = {phase: {(Lt, L): 10240 for Lt in L_TRAIN for L in sizes} for phase in PHASES}
        n_steps, batch = 250, {L: 1024 for L in sizes}
    models = {phase: {Lt: lt.DMSpec(hmc[phase][Lt], net, train[Lt], seed=7000 + 10 * Lt + i)
                      for Lt in L_TRAIN} for i, phase in enumerate(PHASES)}
    # the seed is that of the lattice L: both models start from the same prior draws there
    samples = {phase: {(Lt, L): ls.SampleSpec(n_samples=counts[phase][Lt, L], n_steps=n_steps,
                                              batch=min(batch[L], counts[phase][Lt, L]), record_every=n_steps,
                                              n_snapshots=0, L=L, seed=7100 + L + 1000 * i)
                       for Lt in L_TRAIN for L in sorted({Lt, *L_SAMPLE})} for i, phase in enumerate(PHASES)}
    return {"hmc": hmc, "models": models, "samples": samples}


def networks(scale: str) -> dict:
    """The trained networks of the chapter at ``scale``, by name (``"k0.21 L=8"``, ...): what the store must hold."""
    return {f"{phase} L={Lt}": lt.network(spec) for phase, by_L in book_specs(scale)["models"].items()
            for Lt, spec in by_L.items()}
