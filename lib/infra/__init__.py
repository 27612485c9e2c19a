"""Infrastructure: scale and device, the artefact cache with provenance, reproduction tables and checks.

See :mod:`lib` for the layers.
"""
