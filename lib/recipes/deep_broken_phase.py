r"""The deep broken phase, :math:`\kappa = 1.0`: an equilibrium ensemble and a diffusion model trained on it.

The recipes of :doc:`/book/part3/deep_broken_phase`.  At :math:`\kappa = 1.0`, :math:`\lambda = 0.022` the classical
vacuum is :math:`\phi_0 \approx 8.3` and the fluctuations around it are narrow; arXiv:2309.17082 shows configurations
there with "numerous bulk patterns".  The equilibrium ensemble is the cold-started HMC ensemble ``k1.0-cold`` of
:func:`lib.recipes.phi4_hmc.book_specs`; the diffusion model is the :math:`\kappa = 0.4` (Table T2) recipe of
:func:`lib.recipes.phi4_diffusion.book_specs` trained on it, with the flip augmentation (the ensemble sits in one
vacuum, the odd network and the flip give both).  Nothing is computed at import time.
"""
from __future__ import annotations

import dataclasses

from lib.recipes import phi4_diffusion as dm
from lib.recipes import phi4_hmc
from lib.recipes.pipelines import lattice_training

__all__ = ["book_specs", "networks", "TRIAL_SEEDS", "TRAIN_SEED", "SAMPLE_SEED"]

#: the seeds of the trials that chose the recipe and the rules (tools/experiments/README.md), training 5410 and
#: generation 5411; the chapter runs on seeds that no trial used
TRIAL_SEEDS = {"training": (5410,), "generation": (5411,)}
#: the chapter's seeds (the training of the network, the generated configurations)
TRAIN_SEED, SAMPLE_SEED = 5420, 5421


def book_specs(scale: str = "quick") -> dict:
    r"""The recipes of :doc:`/book/part3/deep_broken_phase` at ``scale`` ("quick" or "paper").

    Keys: ``"hmc"`` (the equilibrium :class:`~lib.recipes.pipelines.phi4_ensembles.ChainSpec` ``k1.0-cold``), ``"hot"`` and
    ``"authors"`` (the hot-started and authors'-protocol ensembles ``k1.0-hot`` and ``k1.0-authors``, for the
    pictures), ``"model"`` (the :class:`~lib.recipes.pipelines.lattice_training.DMSpec` of the :math:`\kappa = 0.4` model with
    the :math:`\kappa = 1.0` ensemble as training data and, as for Table T5, a zero-mode weight of 100 in the loss)
    and ``"sample"`` (its :class:`~lib.recipes.pipelines.lattice_sampling.SampleSpec`: that of the :math:`\kappa = 0.4` model with
    80 Heun steps to :math:`t_\mathrm{end} = 10^{-5}`, the grid that the exact variance recursion of the sampler
    selects for the narrow modes of this phase, see the chapter).  Quick scale: the quick U-Net (8, 16, 32), 1500
    steps, 256 configurations (512 until December 2026, halved for the time of CI: the chapter's misses are tens of
    standard errors wide); paper scale: the authors' U-Net, 25 epochs of the 12800 configurations (doubled by the
    flip) in batches of 64, 10240 configurations.
    """
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    hmc = phi4_hmc.book_specs(scale)
    recipes = dm.book_specs(scale)
    t2 = recipes["k0.4"]
    train = dataclasses.replace(t2.train, zero_mode_weight=100.0)
    return {"hmc": hmc["k1.0-cold"], "hot": hmc["k1.0-hot"], "authors": hmc["k1.0-authors"],
            "model": dataclasses.replace(t2, ensembles=(hmc["k1.0-cold"],), train=train, seed=TRAIN_SEED),
            "sample": dataclasses.replace(recipes["samples"]["k0.4"], n_steps=80, t_end=1e-5, seed=SAMPLE_SEED,
                                          n_samples=256 if scale == "quick" else recipes["samples"]["k0.4"].n_samples)}


def networks(scale: str) -> dict:
    """The trained network of the chapter at ``scale`` (``"model"``): what the store must hold."""
    return {"model": lattice_training.network(book_specs(scale)["model"])}
