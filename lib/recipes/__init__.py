"""The book's recipes: what each chapter runs, at each scale, cached in the artefact cache (the only layer that uses the cache).

See :mod:`lib` for the layers.
"""
