"""lib: diffusion models as stochastic quantisation in lattice field theory.

The package is layered; every import points down this list, never up or sideways into a recipe:

- ``lib.recipes``: the book's recipes, what each chapter runs, at each scale, cached, in two tiers: the shared
  pipelines of :mod:`lib.recipes.pipelines` (trained networks from the store, the cache or a training; HMC ensembles;
  the lattice diffusion model's training, sampling, likelihood and flow proposals; the toy-model networks), and one
  module per chapter that chooses its settings (e.g. :mod:`lib.recipes.phi4_hmc`, :mod:`lib.recipes.phi4_diffusion`,
  :mod:`lib.recipes.complex_langevin`).  Only recipes use the artefact cache.
- ``lib.physics``: the physical models and their own samplers: toy targets (:mod:`lib.physics.toy`), real Langevin
  (:mod:`lib.physics.langevin`), lattice phi^4 (:mod:`lib.physics.phi4`), Hybrid Monte Carlo
  (:mod:`lib.physics.hmc`), lattice observables (:mod:`lib.physics.observables`), the independence
  Metropolis-Hastings chain (:mod:`lib.physics.metropolis`); complex Langevin: solvable
  models (:mod:`lib.physics.cl_models`), dynamics (:mod:`lib.physics.complex_langevin`), the Fokker-Planck solver
  (:mod:`lib.physics.fokker_planck`).
- ``lib.diffusion``: the diffusion machinery: the SDE family (:mod:`lib.diffusion.sde`), time grids
  (:mod:`lib.diffusion.grids`), solvers (:mod:`lib.diffusion.solvers`), score networks (:mod:`lib.diffusion.nets`,
  :mod:`lib.diffusion.lattice_nets`), the loss (:mod:`lib.diffusion.losses`) and its training loop
  (:mod:`lib.diffusion.training`), the probability-flow likelihood (:mod:`lib.diffusion.likelihood`), the fixed-step flow map with its exact
  density (:mod:`lib.diffusion.flow_map`), data normalisation (:mod:`lib.diffusion.normalise`).
- ``lib.stats``: statistics: moments and cumulants, bootstrap and jackknife, autocorrelation, weighted fits.
- ``lib.infra``: infrastructure: scale and device (:mod:`lib.infra.profile`), the code behind a cache key
  (:mod:`lib.infra.sources`), the artefact cache (:mod:`lib.infra.cache`), the store of trained networks
  (:mod:`lib.infra.store`), reproduction tables and checks (:mod:`lib.infra.report`).
- ``lib.core``: what every layer uses: validation (:mod:`lib.core.checks`), explicit random generators
  (:mod:`lib.core.random`), the one recorder of every sampler (:mod:`lib.core.recording`), atomic file writes
  (:mod:`lib.core.files`).

``physics`` and ``diffusion`` are siblings: neither imports the other (a diffusion model meets a lattice action only
in a recipe or a chapter).  The layout is drawn on the book's notation page.  Nothing is computed at import time;
import the modules you need, e.g. ``from lib.diffusion import sde, solvers``.
"""
__version__ = "0.1.0"
