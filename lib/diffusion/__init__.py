"""The diffusion machinery: the SDE family, time grids, solvers, score networks, the loss, training, the probability-flow likelihood.

See :mod:`lib` for the layers.
"""
