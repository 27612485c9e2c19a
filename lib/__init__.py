"""lib: diffusion models as stochastic quantisation in lattice field theory.

Small modules, one concept each (see the book's notation page):

- :mod:`lib.diffusion.sde`: the linear-drift SDE family (variance expanding, variance preserving, in between)
- :mod:`lib.diffusion.solvers`: Euler-Maruyama for the forward and backward processes
- :mod:`lib.physics.langevin`: Langevin (stochastic quantisation) sampler for a given action
- :mod:`lib.physics.toy`: Gaussian-mixture targets with exact moments, cumulants, density and score
- :mod:`lib.stats`: moments, cumulants, bootstrap, autocorrelation
- :mod:`lib.infra.profile`: scale (quick / paper) and device
- :mod:`lib.infra.cache`: artefact cache with provenance
- :mod:`lib.infra.report`: reproduction tables and checks
- :mod:`lib.physics.phi4`, :mod:`lib.physics.hmc`, :mod:`lib.physics.observables`, :mod:`lib.diffusion.normalise`: lattice phi^4 theory,
  Hybrid Monte Carlo, lattice observables, the authors' data normalisation
- :mod:`lib.physics.complex_langevin`, :mod:`lib.physics.fokker_planck`: complex Langevin dynamics and the
  Hermite-function solution of its Fokker-Planck equation

Nothing is computed at import time; import the submodules you need.
"""
__version__ = "0.1.0"
