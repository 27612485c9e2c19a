"""Every trained network the book needs, by chapter: what ``make models`` trains and the store of trained networks holds.

Each chapter's recipe module lists its own networks (``networks(scale)``); this module gathers them, so that the store
can be checked without training anything (``tests/test_store.py``) and filled by ``tools/models.py``.  A chapter that
uses a network missing here still works (it trains the network), but with ``LIB_STORE=require``, as in CI, it fails
naming the network, so a gap never goes unnoticed.  Nothing is computed at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.recipes import (cl_diffusion, deep_broken_phase, exact_sampler, lattice_transfer, network_symmetry,
                         path_sampler, phi4_diffusion, two_peak)
from lib.recipes.pipelines.trained_networks import NetworkRecipe

__all__ = ["BookNetwork", "book_networks"]


@dataclass(frozen=True, eq=False)
class BookNetwork:
    """A network one chapter of the book uses."""

    chapter: str  # the chapter's file, e.g. "book/part2/two_peak.md"
    name: str  # its name in the chapter's recipe module
    recipe: NetworkRecipe  # what makes it (its key is the store's address)


def book_networks(scale: str, device="cpu") -> list[BookNetwork]:
    """Every network the chapters use at ``scale`` (``"quick"`` or ``"paper"``), in table-of-contents order; a network
    that two chapters use appears under both.  ``device``: where the complex Langevin training data of Part IV are run
    (a part of those networks' keys)."""
    if scale not in ("quick", "paper"):
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")
    chapters = {
        "book/part1/diffusion_as_sq.md": {"two-peak VE": two_peak.networks(scale)["VE"]},
        "book/part2/two_peak.md": two_peak.networks(scale),
        "book/part3/phi4_diffusion.md": phi4_diffusion.networks(scale),
        "book/part3/deep_broken_phase.md": deep_broken_phase.networks(scale),
        "book/part3/lattice_transfer.md": lattice_transfer.networks(scale),
        "book/part3/network_symmetry.md": network_symmetry.networks(scale),
        "book/part3/exact_sampler.md": exact_sampler.networks(scale),
        "book/part3/path_sampler.md": path_sampler.networks(scale),
        "book/part4/cl_diffusion.md": cl_diffusion.networks(scale, device),
    }
    return [BookNetwork(chapter, name, recipe) for chapter, nets in chapters.items() for name, recipe in nets.items()]
