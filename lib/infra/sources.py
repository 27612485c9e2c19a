"""The source code behind an artefact: the import closure of a module within :mod:`lib`, and its fingerprint.

An artefact's cache key (:class:`lib.infra.cache.ArtefactCache`) holds the fingerprint of the code that computed it,
not of the whole package: the modules named by the computing recipe and every module of :mod:`lib` they import,
directly or not (:func:`import_closure`).  Editing a module outside that closure (the report module, another
chapter's recipe, a docstring of the complex Langevin models for a :math:`\\phi^4` network) changes no key; editing
one inside it (the training loop for every trained network) changes every key that depends on it.

The closure is read from the source text, not from a running interpreter: every ``import`` statement of a module
counts, wherever it stands (inside a function too), so the closure errs on the side of recomputing.  Rules:

* ``import lib.a.b`` and ``from lib.a import b`` (``b`` a module) add the module ``lib.a.b``;
  ``from lib.a import name`` (``name`` not a module) adds the package ``lib.a`` (its ``__init__``, which re-exports
  ``name``); relative imports are resolved against the importing module;
* a package's ``__init__`` counts only when the package itself is imported, not when one of its submodules is;
* modules that store artefacts and compute nothing (:data:`STORAGE_MODULES`) are left out, and their imports are not
  followed: the layout of a stored entry is versioned by :data:`lib.infra.cache.FORMAT_VERSION`.

Described in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

__all__ = ["STORAGE_MODULES", "PACKAGE", "module_path", "imports_of", "import_closure", "code_fingerprint"]

#: the top-level package whose modules make up a closure
PACKAGE = "lib"
#: the modules that store artefacts and compute none, never part of a closure
STORAGE_MODULES = ("lib.infra.cache", "lib.infra.store")
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # lib/ (this file is lib/infra/sources.py)


def module_path(name: str, package_dir: Path = _PACKAGE_DIR) -> Path | None:
    """The source file of module ``name`` of :data:`PACKAGE` (``lib/a/b.py`` or ``lib/a/b/__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = Path(package_dir).joinpath(*parts[1:])
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _is_package(name: str, package_dir: Path) -> bool:
    path = module_path(name, package_dir)
    return path is not None and path.name == "__init__.py"


@lru_cache(maxsize=None)
def _imports_cached(name: str, package_dir: Path, mtime_ns: int) -> tuple[str, ...]:
    path = module_path(name, package_dir)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"cannot read the imports of {name} ({path}): {err}") from None
    package = name if _is_package(name, package_dir) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                if node.level > 1:
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if module_path(sub, package_dir) is not None else base)
    return tuple(sorted(m for m in found if module_path(m, package_dir) is not None))


def imports_of(name: str, package_dir: Path = _PACKAGE_DIR) -> tuple[str, ...]:
    """The modules of :data:`PACKAGE` that module ``name`` imports directly (any ``import`` statement in its source)."""
    package_dir = Path(package_dir).resolve()
    path = module_path(name, package_dir)
    if path is None:
        raise ValueError(f"{name!r} is not a module of {PACKAGE} (no file under {package_dir})")
    return _imports_cached(name, package_dir, path.stat().st_mtime_ns)


def import_closure(modules: str | Iterable[str], package_dir: Path = _PACKAGE_DIR) -> tuple[str, ...]:
    """``modules`` and every module of :mod:`lib` they import, directly or not, sorted; :data:`STORAGE_MODULES` left
    out.  ``modules`` is a module name (e.g. ``__name__`` of the computing recipe) or a sequence of them."""
    if not isinstance(modules, (str, tuple, list)):
        raise ValueError(f"code must name a module of {PACKAGE} (or a sequence of them), e.g. __name__ of the recipe "
                         f"that computes the artefact; got {modules!r}")
    start = [modules] if isinstance(modules, str) else list(modules)
    if not start:
        raise ValueError("name at least one module whose code computes the artefact")
    for name in start:
        if not isinstance(name, str) or module_path(name, package_dir) is None:
            raise ValueError(f"{name!r} is not a module of {PACKAGE}: name the module that computes the artefact "
                             "(e.g. __name__ of the recipe)")
    seen: set[str] = set()
    todo = [m for m in start if m not in STORAGE_MODULES]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in imports_of(name, package_dir) if m not in seen and m not in STORAGE_MODULES)
    return tuple(sorted(seen))


def code_fingerprint(modules: str | Iterable[str], package_dir: Path = _PACKAGE_DIR) -> str:
    """sha256 of the source of :func:`import_closure` of ``modules``: each file's path relative to ``lib/`` and its
    bytes, in sorted order.  Part of every cache key."""
    package_dir = Path(package_dir).resolve()
    digest = hashlib.sha256()
    for name in import_closure(modules, package_dir):
        path = module_path(name, package_dir)
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
