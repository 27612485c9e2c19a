"""The single source of Gaussian noise for every stochastic update in :mod:`lib`.

All samplers draw their noise through :func:`standard_normal`, with an explicit
``torch.Generator``; nothing in :mod:`lib` touches the global random state.  Tests
monkeypatch this function to check update formulas exactly.
"""
from __future__ import annotations

import torch

__all__ = ["standard_normal", "make_generator", "require_generator"]


def standard_normal(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise with the shape, dtype and device of ``like``.

    Complex ``like`` gets *real* noise of the matching real dtype (complex Langevin uses real noise).
    """
    if generator is not None:
        require_generator(generator)
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


def require_generator(generator, name: str = "generator") -> torch.Generator:
    """``generator`` if it is a ``torch.Generator``; otherwise a ``ValueError`` that names the argument, says what was
    given and how to make one (a numpy Generator, a seed or None are the usual mistakes)."""
    if isinstance(generator, torch.Generator):
        return generator
    given = type(generator).__name__
    if type(generator).__module__.startswith("numpy"):
        hint = "a numpy Generator draws numpy numbers; torch samplers need a torch.Generator"
    elif isinstance(generator, int) and not isinstance(generator, bool):
        hint = f"for the seed {generator}, pass lib.core.random.make_generator({generator})"
    elif generator is None:
        hint = "lib never draws from torch's global random state"
    else:
        hint = "randomness in lib is explicit"
    raise ValueError(f"{name} must be a torch.Generator, got {given} ({hint}); create one with "
                     "lib.core.random.make_generator(seed, device)")
