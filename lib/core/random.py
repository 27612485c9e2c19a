"""The single source of Gaussian noise for every stochastic update in :mod:`lib`.

All samplers draw their noise through :func:`standard_normal`, with an explicit
``torch.Generator``; nothing in :mod:`lib` touches the global random state.  Tests
monkeypatch this function to check update formulas exactly.
"""
from __future__ import annotations

import torch

__all__ = ["standard_normal", "make_generator"]


def standard_normal(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise with the shape, dtype and device of ``like``.

    Complex ``like`` gets *real* noise of the matching real dtype (complex Langevin uses real noise).
    """
    dtype = like.dtype
    if dtype.is_complex:
        dtype = torch.empty((), dtype=dtype).real.dtype
    if generator is not None and generator.device != like.device:
        raise ValueError(
            f"the generator lives on {generator.device} but the data on {like.device}; "
            "create it with lib.core.random.make_generator(seed, device)"
        )
    return torch.randn(like.shape, generator=generator, dtype=dtype, device=like.device)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device`` (explicit randomness, never global state)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
