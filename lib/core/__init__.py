"""What every layer of lib uses: validation, explicit random generators, the one recorder of every sampler, atomic file writes.

See :mod:`lib` for the layers.
"""
