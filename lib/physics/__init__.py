"""The physical models and their own samplers: toy targets, real and complex Langevin, lattice phi^4 with HMC and observables, the Fokker-Planck solver.

See :mod:`lib` for the layers.
"""
