"""The store of trained networks: weights kept with the repository, addressed by the keys of the artefact cache.

A trained network is an input of a chapter, like published weights with the recipe that made them.  The store holds,
for every network the quick-scale book needs, the entry that training wrote into the artefact cache
(:class:`lib.infra.cache.ArtefactCache`): ``<root>/<scale>/<kind>/<key[:16]>/data.pt`` (the sampling weights, the last
weights where a recipe keeps them, snapshots, the loss of every step and the map from physical data to the
network's input) and ``provenance.json`` (the training record: parameters, seed, steps, wall time, machine, versions,
the modules of the code, a sha256 of ``data.pt``).  The key is the cache's, so a changed parameter or a change of
the code behind the network (its import closure in :mod:`lib`) finds no entry, and the network is trained again.

Unlike the cache, the store is only read by a chapter: an entry whose checksum does not match, or that cannot be
read, raises :class:`StoreError` naming the file (nothing is moved or recomputed silently).  ``make models``
(``tools/models.py``) writes it.

``$LIB_STORE`` selects how the store is used:

``on`` (default)
    a network in the store is loaded from it; one that is not is looked up in the artefact cache, else trained;
``off``
    the store is not read: every network comes from the artefact cache or is trained from scratch;
``require``
    like ``on``, but a network missing from the store raises :class:`StoreMissing` (CI: never a silent retraining).

The root is ``$LIB_STORE_DIR`` if set, else ``models/`` in the checkout; the quick-scale networks live in
``models/quick/`` (committed), the paper-scale ones in ``models/paper/`` (ignored by git: too large to commit).
Described in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from lib.infra.cache import ArtefactCache, _decode, _sha256, record_checksum

__all__ = ["MODES", "SCALES", "StoreError", "StoreMissing", "mode", "default_root", "NetworkStore"]

#: the values of ``$LIB_STORE``
MODES = ("on", "off", "require")
#: the scales a store holds, one folder each
SCALES = ("quick", "paper")
_CHECKOUT = Path(__file__).resolve().parent.parent.parent  # the folder holding lib/


class StoreError(RuntimeError):
    """An entry of the store that cannot be used: unreadable, or its checksum does not match; ``path`` names it."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


class StoreMissing(LookupError):
    """A network the current code and recipe need is not in the store (raised with ``LIB_STORE=require``)."""


def mode() -> str:
    """The store mode from ``$LIB_STORE`` (``on`` when unset); anything else raises naming the allowed values."""
    value = os.environ.get("LIB_STORE", "").strip().lower() or "on"
    if value not in MODES:
        raise ValueError(f"LIB_STORE must be one of {MODES}, got {os.environ.get('LIB_STORE')!r}")
    return value


def default_root() -> Path:
    """``$LIB_STORE_DIR`` if set, else ``models/`` in the checkout (the folder holding ``lib/`` and
    ``pyproject.toml``), else ``models/`` in the working directory."""
    env = os.environ.get("LIB_STORE_DIR", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT / "models"
    return Path.cwd().resolve() / "models"


class NetworkStore:
    """The entries of the store under ``root`` (one folder per scale, each laid out as an artefact cache).

    Parameters
    ----------
    root : path-like, optional
        :func:`default_root` when omitted.
    """

    def __init__(self, root=None):
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()

    def __repr__(self):
        return f"NetworkStore(root={str(self.root)!r})"

    def scale_root(self, scale: str) -> Path:
        """The folder of one scale's entries (an :class:`~lib.infra.cache.ArtefactCache` root)."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        return self.root / scale

    def find(self, kind: str, params: Mapping, *, code) -> Path | None:
        """The entry directory of a network in any scale's folder, or None."""
        for scale in SCALES:
            path = ArtefactCache(self.scale_root(scale)).entry_dir(kind, params, code=code)
            if path.is_dir():
                return path
        return None

    def load(self, kind: str, params: Mapping, *, code) -> tuple[dict, dict] | None:
        """``(data, provenance)`` of the network, or None when the store has no entry for its key.

        Raises :class:`StoreError` naming the file when the entry is unreadable, belongs to another key or its
        ``data.pt`` does not match the sha256 of its provenance record.
        """
        path = self.find(kind, params, code=code)
        if path is None:
            return None
        key = ArtefactCache(path.parent.parent).key(kind, params, code=code)
        record_path, data_path = path / "provenance.json", path / "data.pt"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StoreError(f"the store entry {record_path} cannot be read ({type(err).__name__}: {err}); restore it "
                             "from git or run `make models`", record_path) from None
        if not isinstance(record, dict) or record.get("key") != key:
            raise StoreError(f"the store entry {record_path} belongs to another key; restore it from git or run "
                             "`make models`", record_path)
        if record_checksum(record) != record.get("record_sha256"):
            raise StoreError(f"the store entry {record_path} does not match its own sha256: it was edited by hand or "
                             "damaged; restore it from git or run `make models`", record_path)
        try:
            digest = _sha256(data_path)
        except OSError as err:
            raise StoreError(f"the store file {data_path} cannot be read ({err}); restore it from git or run "
                             "`make models`", data_path) from None
        if digest != record.get("sha256"):
            raise StoreError(f"the store file {data_path} does not match its checksum (sha256 {digest[:16]}..., "
                             f"recorded {str(record.get('sha256'))[:16]}...): it was changed or damaged; restore it "
                             "from git or run `make models`", data_path)
        try:
            data = _decode(torch.load(data_path, map_location="cpu", weights_only=True))
        except Exception as err:
            raise StoreError(f"the store file {data_path} cannot be loaded ({type(err).__name__}: {err})",
                             data_path) from None
        return data, record

    def put(self, scale: str, entry: Path) -> Path:
        """Copy an artefact-cache entry (a folder with ``data.pt`` and ``provenance.json``) into the store of
        ``scale`` under the same kind and key; returns the new entry directory."""
        entry = Path(entry)
        record = json.loads((entry / "provenance.json").read_text(encoding="utf-8"))
        if _sha256(entry / "data.pt") != record.get("sha256"):
            raise StoreError(f"the cache entry {entry} does not match its checksum; it is not copied", entry)
        target = self.scale_root(scale) / record["kind"] / entry.name
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("data.pt", "provenance.json"):
            shutil.copy2(entry / name, tmp / name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target

    def entries(self, scale: str) -> list[Path]:
        """Every entry directory of ``scale`` (``<kind>/<key[:16]>``), sorted."""
        root = self.scale_root(scale)
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*/*") if p.is_dir() and (p / "provenance.json").is_file())

    def size(self, scale: str) -> int:
        """Bytes of the entries of ``scale``."""
        return sum(f.stat().st_size for p in self.entries(scale) for f in p.iterdir() if f.is_file())
