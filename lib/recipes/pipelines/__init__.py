"""The shared pipelines of the book's recipes: what several chapters compute, each in its own module.

:mod:`~lib.recipes.pipelines.trained_networks` (a trained score network: from the store of trained networks, the
artefact cache, or trained), :mod:`~lib.recipes.pipelines.phi4_ensembles` (HMC ensembles of lattice
:math:`\\phi^4`), :mod:`~lib.recipes.pipelines.lattice_training` and :mod:`~lib.recipes.pipelines.lattice_sampling`
(the lattice diffusion model: trained on HMC ensembles, then generating), :mod:`~lib.recipes.pipelines.lattice_likelihood`
(its effective action), :mod:`~lib.recipes.pipelines.flow_proposals` (its flow with an exact density, for an exact
sampler) and :mod:`~lib.recipes.pipelines.toy_dm` (score networks of one- and two-dimensional toy targets).
A chapter's recipe module (``lib.recipes.<chapter>``) only chooses their settings, so a chapter's settings change only that
chapter's cache keys; each pipeline names itself as the code of its artefacts (:mod:`lib.infra.sources`).
"""
