"""Artefact cache with provenance: expensive results stored on disk, keyed by every parameter.

An entry lives in ``<root>/<kind>/<key[:16]>/`` and holds ``data.pt`` (``torch.save`` of a dict, loadable
with ``torch.load(..., weights_only=True)``) and ``provenance.json`` (parameters, seed, creation time, wall
time, versions, the modules of the code, sha256 of ``data.pt``).  The key is the sha256 of the canonical JSON of the
kind, the parameters, :data:`FORMAT_VERSION` and the fingerprint of the code that computes the entry: the module
named by the caller (``code``, e.g. ``__name__`` of the recipe) and every module of :mod:`lib` it imports
(:func:`lib.infra.sources.code_fingerprint`), so neither a changed parameter nor a change of that code ever reuses a
stale artefact, and an edit elsewhere in :mod:`lib` recomputes nothing.  A corrupt entry
(checksum mismatch, unreadable file, missing provenance) raises no error: it gives a :class:`CacheWarning`, is
moved aside to ``<dir>.corrupt-<timestamp>`` (nothing is deleted) and counts as absent, so
:meth:`ArtefactCache.get_or_compute` recomputes it.  An entry is written into a temporary directory and moved
into place with one ``os.replace``, so an interrupted write never leaves a valid-looking entry; temporary
directories of a killed writer are removed by a later write once they are older than :data:`ORPHAN_AGE`.  A reader
that fails on an entry reads it once more before calling it corrupt, so an entry replaced by a concurrent writer
while it was read is not moved aside.  Nothing computed is lost: when the cache cannot be written (a read-only or
missing directory), :meth:`ArtefactCache.get_or_compute` warns before the computation and returns its result
uncached; a corrupt entry that cannot be moved aside is recomputed all the same.

The root is ``$LIB_CACHE_DIR`` if set, else ``.artefacts/`` in the checkout (ignored by git).
Described in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from lib.core.files import atomic_save
from lib.infra.sources import code_fingerprint, import_closure

__all__ = ["ArtefactCache", "CacheWarning", "default_root", "canonical_params", "FORMAT_VERSION", "ORPHAN_AGE"]

#: the layout of an entry, bumped when it changes, and every key changes with it (version 2 added the sha256 that a
#: provenance record carries of itself, so that a hand-edited record is caught like a damaged data file)
FORMAT_VERSION = 2
#: seconds after which a temporary directory of a killed writer is removed
ORPHAN_AGE = 3600.0
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # lib/ (this file is lib/infra/cache.py)
_NUMPY_TAG = "__lib_numpy_array__"  # marks a numpy array stored as a tensor in data.pt


class CacheWarning(UserWarning):
    """A cache entry was corrupt or stale; it was moved aside and will be recomputed."""


def default_root() -> Path:
    """Cache root: ``$LIB_CACHE_DIR`` if set, else ``<checkout>/.artefacts``.

    ``<checkout>`` is the directory holding the ``lib`` package when it also holds ``pyproject.toml``
    (an editable install in the repository); otherwise ``Path.cwd() / ".artefacts"``.
    """
    env = os.environ.get("LIB_CACHE_DIR", "")
    if env:
        return Path(env).expanduser().resolve()
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".artefacts"
    return Path.cwd().resolve() / ".artefacts"


def canonical_params(value, name: str = "params"):
    """JSON-able canonical form of ``value`` (the parameters behind an artefact).

    Dicts need string keys; dataclasses become dicts with their class name under ``"__class__"``; tuples
    become lists; ``torch.dtype`` becomes its string; numpy scalars become Python scalars; floats are kept
    (JSON writes them by ``repr``, so 0.1 and 0.1000001 differ).  Anything else raises ``TypeError``
    naming the offending entry, e.g. ``params['net']['act']``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float, str)):
        return canonical_params(value.item(), name)
    if isinstance(value, torch.dtype):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__class__": type(value).__qualname__}
        for f in dataclasses.fields(value):
            out[f.name] = canonical_params(getattr(value, f.name), f"{name}.{f.name}")
        return out
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache parameter {name} has a non-string key {k!r}")
            if k.startswith("__"):
                raise ValueError(f"cache parameter {name} has the key {k!r}: keys starting with '__' are reserved (a "
                                 "dataclass is written with '__class__'), so that no dict can pass for a dataclass")
            out[k] = canonical_params(v, f"{name}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [canonical_params(v, f"{name}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"cache parameter {name} has unsupported type {type(value).__name__}; use numbers, strings, "
        "lists, dicts, dataclasses or torch dtypes"
    )


def _encode(value, name: str):
    """Data -> objects that ``torch.load(weights_only=True)`` accepts (tensors to CPU, arrays tagged)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.ndarray):
        try:
            return {_NUMPY_TAG: torch.from_numpy(np.array(value, copy=True))}
        except TypeError as exc:
            raise TypeError(f"cache data {name}: numpy dtype {value.dtype} cannot be stored") from exc
    if isinstance(value, np.generic):
        return _encode(value.item(), name)
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return value
    if isinstance(value, Mapping):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"cache data {name} has a key {k!r} that is neither str nor int")
            out[k] = _encode(v, f"{name}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"cache data {name} has unsupported type {type(value).__name__}")


def _decode(value):
    """Inverse of :func:`_encode`."""
    if isinstance(value, Mapping):
        if len(value) == 1 and _NUMPY_TAG in value:
            return value[_NUMPY_TAG].numpy()
        return type(value)((k, _decode(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v) for v in value)
    return value


def _round_trip(data: Mapping) -> dict:
    """``data`` as :meth:`ArtefactCache.get_or_compute` returns a stored entry (CPU tensors), without a file."""
    buffer = io.BytesIO()
    torch.save(_encode(data, "data"), buffer)
    buffer.seek(0)
    return _decode(torch.load(buffer, map_location="cpu", weights_only=True))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_checksum(record: Mapping) -> str:
    """sha256 of the canonical JSON of a provenance record without its own ``record_sha256`` entry."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _versions() -> dict:
    import lib

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "lib": getattr(lib, "__version__", "unknown")}


class ArtefactCache:
    """Artefacts on disk, keyed by kind and parameters, with a provenance record.

    Parameters
    ----------
    root : path-like, optional
        Directory of the cache; :func:`default_root` when omitted (read at construction).
    """

    def __init__(self, root=None):
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()

    def __repr__(self):
        return f"ArtefactCache(root={str(self.root)!r})"

    def key(self, kind: str, params: Mapping, *, code) -> str:
        """sha256 hex digest of the canonical JSON of ``{"kind", "params", "format", "code"}``.

        ``code`` names the module (or modules) of :mod:`lib` whose code computes the entry, usually ``__name__`` of the
        recipe; the key holds :func:`lib.infra.sources.code_fingerprint` of it: the source of that module and of
        every module of :mod:`lib` it imports.  Every method below takes the same ``code``.
        """
        if not isinstance(kind, str) or not kind or kind.startswith(".") or any(c in kind for c in "/\\:"):
            raise ValueError(f"cache kind must be a non-empty name without '/', '\\', ':' or a leading '.'; got {kind!r}")
        if not isinstance(params, Mapping):
            raise TypeError(f"cache params must be a dict, got {type(params).__name__}")
        blob = {"kind": kind, "params": canonical_params(params), "format": FORMAT_VERSION,
                "code": code_fingerprint(code)}
        text = json.dumps(blob, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def entry_dir(self, kind: str, params: Mapping, *, code) -> Path:
        """Directory of the entry: ``root / kind / key[:16]``."""
        return self.root / kind / self.key(kind, params, code=code)[:16]

    def scratch_dir(self, kind: str, params: Mapping, *, code) -> Path:
        """Created directory ``root / kind / <key[:16]>.scratch`` for checkpoints of a resumable computation."""
        path = self.root / kind / (self.key(kind, params, code=code)[:16] + ".scratch")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_scratch(self, kind: str, params: Mapping, *, code) -> None:
        """Delete the scratch directory of an entry (e.g. after its final artefact was saved)."""
        shutil.rmtree(self.root / kind / (self.key(kind, params, code=code)[:16] + ".scratch"), ignore_errors=True)

    def batches(self, kind: str, params: Mapping, n_batches: int, compute: Callable[[int], Mapping], *, code) -> list:
        """``[compute(0), ..., compute(n_batches - 1)]``, each batch saved to the scratch directory as it finishes.

        For a long computation made of independent batches (e.g. generated configurations): a run that was
        interrupted continues with the first missing batch, so ``compute(b)`` must depend only on ``b`` (seed each
        batch from ``b``).  A damaged batch file is computed again, and an unwritable cache computes every batch
        without saving it, each with a :class:`CacheWarning`.  Store the combined result with :meth:`save`, then
        :meth:`clear_scratch`.  Safe against another process that makes the same batches and clears the scratch
        directory meanwhile (two chapters run at once): a cleared directory is made again, a batch file that
        vanished is computed.
        """
        try:
            scratch = self.scratch_dir(kind, params, code=code)
        except OSError as err:
            warnings.warn(f"the batches of {kind!r} cannot be saved ({err}); an interrupted run will start again",
                          CacheWarning, stacklevel=2)
            scratch = None
        out = []
        for b in range(int(n_batches)):
            path = None if scratch is None else scratch / f"batch_{b:05d}.pt"
            if path is not None and path.is_file():
                try:
                    out.append(torch.load(path, map_location="cpu", weights_only=True))
                    continue
                except FileNotFoundError:  # cleared by another process since is_file(): compute it
                    pass
                except Exception as err:  # a damaged batch file: say so, recompute it
                    warnings.warn(f"unreadable batch file {path} ({type(err).__name__}); it is computed again",
                                  CacheWarning, stacklevel=2)
                    path.unlink(missing_ok=True)
            data = dict(compute(b))
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)  # another process may have cleared it
                    atomic_save(data, path)
                except OSError as err:
                    warnings.warn(f"could not save batch {b} of {kind!r} ({err})", CacheWarning, stacklevel=2)
            out.append(data)
        return out

    def provenance(self, kind: str, params: Mapping, *, code) -> dict | None:
        """Provenance record of a valid entry, or None (a corrupt entry is moved aside with a warning)."""
        return self._read(kind, params, code)[1]

    def load(self, kind: str, params: Mapping, *, code) -> dict | None:
        """Stored data of the entry, or None when absent or corrupt (corrupt: warning, moved aside)."""
        return self._read(kind, params, code)[0]

    def save(self, kind: str, params: Mapping, data: Mapping, seed=None, extra=None, wall_time=None, *,
             code) -> Path:
        """Store ``data`` (dict of tensors, numpy arrays, numbers, strings, lists, nested dicts) atomically.

        ``seed``, ``extra`` (JSON-able dict) and ``wall_time`` (seconds) go into the provenance record.
        Tensors are stored on the CPU.  Returns the entry directory.
        """
        return self._write(kind, params, data, seed, extra, wall_time, code)[0]

    def get_or_compute(self, kind: str, params: Mapping, compute: Callable[[], Mapping], seed=None, *,
                       code) -> dict:
        """Load the entry, or call ``compute()``, time it, save the result and return it as stored.

        The returned dict is the stored one in both cases (tensors on the CPU), so a chapter behaves the
        same whether or not the artefact was cached.
        """
        data = self.load(kind, params, code=code)
        if data is not None:
            return data
        writable = self._writable(kind)
        if not writable:
            warnings.warn(f"the cache directory {self.root / kind} is not writable: the result of {kind!r} will be "
                          "computed and returned but not stored", CacheWarning, stacklevel=2)
        start = time.perf_counter()
        data = compute()
        wall = time.perf_counter() - start
        try:
            return self._write(kind, params, data, seed, None, wall, code)[1]
        except OSError as exc:  # nothing computed is lost: return it, say it was not stored
            if writable:
                warnings.warn(f"could not store the result of {kind!r} in {self.root / kind} "
                              f"({type(exc).__name__}: {exc}); it is returned but not cached", CacheWarning,
                              stacklevel=2)
            return _round_trip(data)

    # -- internals ---------------------------------------------------------------------------------
    def _writable(self, kind) -> bool:
        folder = self.root / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except OSError:
            return False

    def _clean_orphans(self, folder: Path) -> None:
        """Remove temporary and replaced directories left by a killed writer (older than :data:`ORPHAN_AGE` s)."""
        now = time.time()
        for path in folder.glob(".tmp-*"):
            self._remove_if_old(path, now)
        for path in folder.glob("*.replaced-*"):
            self._remove_if_old(path, now)

    @staticmethod
    def _remove_if_old(path: Path, now: float) -> None:
        try:
            if now - path.stat().st_mtime > ORPHAN_AGE:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass

    def _write(self, kind, params, data, seed, extra, wall_time, code):
        if not isinstance(data, Mapping):
            raise TypeError(f"cache data must be a dict, got {type(data).__name__}")
        key = self.key(kind, params, code=code)
        encoded = _encode(data, "data")
        record = {"kind": kind, "key": key, "format": FORMAT_VERSION, "params": canonical_params(params),
                  "seed": canonical_params(seed, "seed"), "extra": canonical_params(extra, "extra"),
                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "wall_time": None if wall_time is None else float(wall_time), "versions": _versions(),
                  "code": code_fingerprint(code), "code_modules": list(import_closure(code))}
        target = self.root / kind / key[:16]
        tmp = self.root / kind / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        self._clean_orphans(tmp.parent)
        try:
            torch.save(encoded, tmp / "data.pt")
            stored = _decode(torch.load(tmp / "data.pt", map_location="cpu", weights_only=True))
            record["sha256"] = _sha256(tmp / "data.pt")
            record["record_sha256"] = record_checksum(record)
            (tmp / "provenance.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            old = self._move_aside(target, "replaced") if target.exists() else None
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # another process may have written the same key meanwhile
                    raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target, stored

    def _read(self, kind, params, code):
        key = self.key(kind, params, code=code)
        path = self.root / kind / key[:16]
        for attempt in range(2):
            try:
                inode = path.stat().st_ino
            except (FileNotFoundError, NotADirectoryError):  # absent (or a cache root that cannot exist)
                return None, None
            try:
                return self._read_entry(path, key)
            except Exception as exc:  # any failure to read means corrupt: never use it silently
                failure = exc
            # A concurrent writer may have replaced the entry while it was read: read again before judging it.
            try:
                if path.stat().st_ino != inode:
                    continue
            except (FileNotFoundError, NotADirectoryError):
                return None, None
            if attempt == 0:
                time.sleep(0.05)
        try:
            moved = self._move_aside(path, "corrupt")
            where = f"moved to {moved}"
        except OSError as err:  # a read-only cache: leave it, recompute all the same
            where = f"could not be moved aside ({type(err).__name__}: {err})"
        warnings.warn(f"corrupt cache entry {path} ({type(failure).__name__}: {failure}); {where}; "
                      "treated as absent", CacheWarning, stacklevel=3)
        return None, None

    @staticmethod
    def _read_entry(path: Path, key: str):
        record = json.loads((path / "provenance.json").read_text())
        if not isinstance(record, dict) or record.get("key") != key:
            raise ValueError("provenance belongs to another key (stale entry)")
        if record_checksum(record) != record.get("record_sha256"):
            raise ValueError("provenance.json does not match its own sha256 (edited by hand or damaged)")
        if _sha256(path / "data.pt") != record.get("sha256"):
            raise ValueError("sha256 of data.pt does not match its provenance")
        data = _decode(torch.load(path / "data.pt", map_location="cpu", weights_only=True))
        return data, record

    @staticmethod
    def _move_aside(path: Path, label: str) -> Path:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = path.with_name(f"{path.name}.{label}-{stamp}")
        while dest.exists():
            dest = dest.with_name(dest.name + "x")
        os.replace(path, dest)
        return dest
