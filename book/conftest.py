"""Collect the book's chapters for ``pytest --nbval book/``.

The chapters are MyST Markdown notebooks (``.md`` files with jupytext front matter and
``{code-cell}`` directives).  nbval itself only collects ``.ipynb`` files, so this conftest
adds a collector that

- collects exactly the chapters listed in ``_toc.yml`` (at the repository root) that are MyST
  notebooks with at least one code cell; files under ``book/`` that are not in the table of
  contents, plain Markdown pages and stray ``.ipynb`` files are ignored;
- runs them longest first, by the wall seconds recorded in ``book/chapter_seconds.json`` (ties
  in table-of-contents order), so that two xdist workers finish together, and prints a fresh
  table of each chapter's seconds at the end of the run;
- reads each chapter with ``jupytext.read`` (so what runs is exactly what Jupyter Book runs);
- executes it cell by cell in a kernel of the *running* Python interpreter (nbval's
  ``--nbval-current-env`` kernel), with the chapter's directory as working directory, as
  Jupyter Book does; ``--nbval-kernel-name NAME`` still overrides the kernel;
- never compares outputs (MyST chapters store none): a cell fails when it raises, e.g. when a
  check fails, and the failure names the chapter, the cell and its line in the ``.md`` file;
- keeps the outputs of every chapter that passed whole in Jupyter Book's execution cache
  (``_build/.jupyter_cache``, jupyter-cache, as myst-nb reads the chapter), so that ``jupyter-book build`` renders
  those executions instead of running the chapter again (``--no-book-cache`` turns this off).

Cells tagged ``skip-execution`` (not executed by Jupyter Book either) or ``nbval-skip`` are
skipped; cells tagged ``raises-exception`` may raise, as in Jupyter Book.  The per-cell
timeout is nbval's ``--nbval-cell-timeout`` (default 2000 s).

Nothing here is active without ``--nbval`` (or ``--nbval-lax``), and ``pytest tests/`` never
loads this file.
"""
from __future__ import annotations

import json
import re
import time
import warnings
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbval.kernel import CURRENT_ENV_KERNEL_NAME
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

BOOK_DIR = Path(__file__).resolve().parent
REPO_ROOT = BOOK_DIR.parent
TOC_PATH = REPO_ROOT / "_toc.yml"
# Wall seconds of each chapter (one torch thread, cold cache): the order in which the chapters are handed out, the
# longest first, so that with two workers no long chapter starts last.  A run of the whole book prints a fresh table.
CHAPTER_SECONDS_PATH = BOOK_DIR / "chapter_seconds.json"
# Jupyter Book's execution cache (myst-nb: <build folder>/.jupyter_cache, the build folder being _build)
BOOK_EXECUTION_CACHE = REPO_ROOT / "_build" / ".jupyter_cache"

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
_CODE_CELL = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*\{code-cell\}")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --------------------------------------------------------------------------------------
# The table of contents
# --------------------------------------------------------------------------------------


def toc_entries(toc_path: Path = TOC_PATH) -> list[str]:
    """Every document of ``_toc.yml`` in reading order (root first), as written there."""
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    entries: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    entries.append(node[key])
            for key in ("parts", "chapters", "sections", "subtrees", "entries"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return entries


def resolve_entry(entry: str, root: Path = REPO_ROOT) -> Path:
    """The file of a toc entry (entries may omit the suffix); the ``.md`` path if none exists."""
    path = root / entry
    if path.suffix in (".md", ".ipynb", ".rst") and path.is_file():
        return path.resolve()
    for suffix in (".md", ".ipynb", ".rst"):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate.resolve()
    return path.with_name(path.name + ".md").resolve()


def front_matter(path: Path) -> dict:
    """The YAML front matter of a Markdown file ({} when there is none)."""
    match = _FRONT_MATTER.match(Path(path).read_text(encoding="utf-8"))
    if not match:
        return {}
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else {}


def is_myst_notebook(path: Path) -> bool:
    """True for a Markdown file that Jupyter Book (myst-nb) executes as a notebook.

    myst-nb's rule: front matter with ``jupytext.text_representation.format_name: myst``
    (or ``file_format: mystnb``), and a ``kernelspec``.
    """
    path = Path(path)
    if path.suffix != ".md" or not path.is_file():
        return False
    meta = front_matter(path)
    fmt = ((meta.get("jupytext") or {}).get("text_representation") or {}).get("format_name")
    return (fmt == "myst" or meta.get("file_format") == "mystnb") and "kernelspec" in meta


def read_chapter(path: Path):
    """The chapter as an nbformat v4 notebook, read by jupytext in the MyST format."""
    return jupytext.read(str(path), fmt="md:myst")


def code_cell_lines(path: Path) -> list[int]:
    """1-based line numbers of the ``{code-cell}`` directives of a MyST file, in order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(lines, start=1) if _CODE_CELL.match(line)]


@lru_cache(maxsize=None)
def _toc_chapters(toc_path: Path, toc_mtime: float) -> dict[Path, int]:
    """Existing toc chapters that are MyST notebooks -> their position in the toc."""
    chapters: dict[Path, int] = {}
    for position, entry in enumerate(toc_entries(toc_path)):
        path = resolve_entry(entry, toc_path.parent)
        if is_myst_notebook(path) and path not in chapters:
            chapters[path] = position
    return chapters


def toc_notebook_chapters(toc_path: Path = TOC_PATH) -> list[Path]:
    """The chapters ``pytest --nbval book/`` executes: existing MyST notebooks of the toc."""
    chapters = _toc_chapters(toc_path, toc_path.stat().st_mtime)
    return sorted(chapters, key=chapters.get)


def missing_toc_entries(toc_path: Path = TOC_PATH) -> list[str]:
    """Toc entries whose file does not exist (reported in the header; a test in tests/ fails)."""
    return [e for e in toc_entries(toc_path) if not resolve_entry(e, toc_path.parent).is_file()]


# --------------------------------------------------------------------------------------
# pytest hooks and the collector
# --------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--no-book-cache", action="store_true", default=False,
                     help="do not keep the executed chapters in Jupyter Book's execution cache (_build/.jupyter_cache)")


def _nbval_active(config) -> bool:
    return bool(getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False))


# xdist distributions that keep every chapter on one worker (its cells share one kernel, in order).
CHAPTER_PRESERVING_DIST = ("no", "loadfile", "loadscope")


def pytest_configure(config):
    """Refuse an xdist distribution that would split a chapter's cells between workers.

    ``pytest --nbval book/ -n 2 --dist loadfile`` runs two chapters at once, each whole on one worker;
    ``-n 2`` alone (xdist's default ``--dist load``) would hand the cells of one chapter to different kernels.
    """
    if not _nbval_active(config):
        return
    dist = getattr(config.option, "dist", "no")
    if getattr(config.option, "numprocesses", None) and dist not in CHAPTER_PRESERVING_DIST:
        raise pytest.UsageError(
            f"pytest --nbval book/ with xdist needs --dist loadfile (or loadscope), got --dist {dist}: "
            "a chapter's cells share one kernel and must run in order on one worker"
        )
    # xdist would reorder the chapters by their number of cells; keep ours (longest first, see below)
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(_ChapterClock(), "book-chapter-clock")


def pytest_report_header(config):
    if not _nbval_active(config):
        return None
    chapters = toc_notebook_chapters()
    lines = [f"book: {len(chapters)} notebook chapter(s) from {TOC_PATH.name}"]
    missing = missing_toc_entries()
    if missing:
        lines.append("book: missing toc entries (not collected): " + ", ".join(missing))
    return lines


def pytest_ignore_collect(collection_path, config):
    # Chapters are MyST Markdown; a notebook under book/ is a stray (git-ignored) copy that
    # nbval would otherwise collect and compare against its stored outputs.
    if collection_path.suffix == ".ipynb" or collection_path.name in {
        ".ipynb_checkpoints",
        "__pycache__",
        "_build",
        ".jupyter_cache",
    }:
        return True
    return None


def chapter_seconds(path: Path = CHAPTER_SECONDS_PATH) -> dict[str, float]:
    """The recorded wall seconds by chapter (path relative to the repository root); ``{}`` without the file."""
    if not path.is_file():
        return {}
    try:
        seconds = json.loads(path.read_text(encoding="utf-8"))["seconds"]
        return {str(name): float(value) for name, value in seconds.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise pytest.UsageError(f"{path}: expected {{\"seconds\": {{chapter: seconds}}}}, cannot read it ({err})")


def _chapter_name(path) -> str:
    return Path(path).resolve().relative_to(REPO_ROOT).as_posix()


def pytest_collection_modifyitems(session, config, items):
    """Run the chapters longest first by their recorded seconds (a chapter without a record counts as the longest),
    ties in table-of-contents order; each chapter's cells stay together, in order."""
    chapters = toc_notebook_chapters()
    position = {path: index for index, path in enumerate(chapters)}
    seconds = chapter_seconds()
    cells = [item for item in items if isinstance(item, ChapterCell)]
    if not cells:
        return

    def key(item):
        path = item.path.resolve()
        return (-seconds.get(_chapter_name(path), float("inf")), position.get(path, len(position)), str(item.path),
                item.cell_num)

    ordered = iter(sorted(cells, key=key))
    items[:] = [next(ordered) if isinstance(item, ChapterCell) else item for item in items]


class _ChapterClock:
    """Adds up each chapter's wall time (setup, call and teardown of its cells) and prints the table of
    ``book/chapter_seconds.json`` at the end; registered in the controlling process only (with xdist the reports of
    the workers arrive there)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split("::", 1)[0]
        if name.endswith(".md"):
            self.seconds[name] = self.seconds.get(name, 0.0) + report.duration

    def pytest_terminal_summary(self, terminalreporter):
        if not self.seconds:
            return
        measured = dict(sorted(self.seconds.items(), key=lambda kv: -kv[1]))
        terminalreporter.write_sep("-", f"wall seconds per chapter (the table of {CHAPTER_SECONDS_PATH.name})")
        for name, value in measured.items():
            terminalreporter.write_line(f"{value:8.0f}  {name}")
        terminalreporter.write_line(json.dumps({name: round(value) for name, value in measured.items()}))


def pytest_collect_file(file_path, parent):
    if not _nbval_active(parent.config) or file_path.suffix != ".md":
        return None
    if file_path.resolve() not in set(toc_notebook_chapters()):
        return None
    return MystChapter.from_parent(parent, path=file_path)


def myst_nb_notebook(path: Path):
    """The chapter as myst-nb reads it for Jupyter Book (its code cells and metadata decide the execution-cache key)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8")) or {}
    extensions = ((config.get("parse") or {}).get("myst_enable_extensions")) or []
    return read_myst_markdown_notebook(Path(path).read_text(encoding="utf-8"),
                                       MdParserConfig(enable_extensions=set(extensions)), path=Path(path))


def keep_execution(path: Path, outputs: list, seconds: float, cache_dir: Path = BOOK_EXECUTION_CACHE) -> bool:
    """Put the executed chapter (the outputs of its code cells, in order) into Jupyter Book's execution cache, so that
    ``jupyter-book build`` renders it without running it again.  Returns False (and changes nothing) when the
    chapter as myst-nb reads it has another number of code cells."""
    import fcntl

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = myst_nb_notebook(path)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if len(code) != len(outputs):
        return False
    for count, (cell, outs) in enumerate(zip(code, outputs), start=1):
        cell.outputs = outs
        cell.execution_count = count
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.parent / ".jupyter_cache.lock", "w") as lock:  # two xdist workers share one SQLite file
        fcntl.flock(lock, fcntl.LOCK_EX)
        get_cache(str(cache_dir)).cache_notebook_bundle(
            CacheBundleIn(nb, str(Path(path).resolve()), data={"execution_seconds": seconds}),
            check_validity=False, overwrite=True)
    return True


class MystChapter(IPyNbFile):
    """A MyST Markdown chapter, executed by nbval without output comparison."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False  # MyST files hold no outputs to compare against
        self.failed_cell: ChapterCell | None = None  # the first cell that failed, if any
        self.outputs: dict[int, list] = {}  # outputs of the cells that ran, by cell number
        self.seconds = 0.0  # wall time of the cells that ran
        self.n_cells = 0

    def collect(self):
        self.nb = read_chapter(self.path)
        # nbval's setup() takes the kernel from --nbval-current-env, then --nbval-kernel-name,
        # then the notebook's kernelspec: naming the current-environment kernel here makes the
        # chapter run in the interpreter that runs pytest (the virtual environment's python).
        self.nb.metadata["kernelspec"] = {
            "name": CURRENT_ENV_KERNEL_NAME,
            "display_name": "pytest's python",
            "language": "python",
        }
        code_cells = [cell for cell in self.nb.cells if cell.cell_type == "code"]
        self.n_cells = len(code_cells)
        lines = code_cell_lines(self.path)
        if len(lines) != len(code_cells):
            lines = [None] * len(code_cells)
        for cell_num, (cell, line) in enumerate(zip(code_cells, lines)):
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(dict(find_comment_markers(cell.source)))
            if "skip-execution" in (cell.metadata.get("tags") or []):
                options["skip"] = True
            options["check"] = False  # never compare outputs
            item = ChapterCell.from_parent(
                self, name=f"Cell {cell_num}", cell_num=cell_num, cell=cell, options=options
            )
            item.source_line = line
            yield item


class ChapterCell(IPyNbCell):
    """One code cell of a chapter; failures name the chapter, the cell and its line."""

    source_line: int | None = None

    def _where(self) -> str:
        path = self.path.resolve()
        chapter = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        line = f", line {self.source_line}" if self.source_line else ""
        return f"{chapter}: code cell {self.cell_num}{line}"

    def runtest(self):
        # As in Jupyter Book, a chapter stops at its first failing cell: the later cells are
        # skipped (they would only fail in turn on the state the failed cell did not create).
        failed = self.parent.failed_cell
        if failed is not None:
            pytest.skip(f"not run: {failed._where()} failed")
        start = time.perf_counter()
        try:
            super().runtest()
        except BaseException as err:
            if not isinstance(err, pytest.skip.Exception):
                self.parent.failed_cell = self
            raise
        finally:
            self.parent.seconds += time.perf_counter() - start
        chapter = self.parent
        chapter.outputs[self.cell_num] = [nbformat.from_dict(dict(out)) for out in (self.test_outputs or [])]
        if self.cell_num == chapter.n_cells - 1 and len(chapter.outputs) == chapter.n_cells \
                and not self.config.getoption("no_book_cache", default=False):
            try:
                kept = keep_execution(self.path, [chapter.outputs[i] for i in range(chapter.n_cells)], chapter.seconds)
            except Exception as err:  # the chapter passed: only the book build will execute it again
                kept = f"{type(err).__name__}: {err}"
            if kept is not True:
                warnings.warn(f"{self._where()}: the execution is not kept for the book "
                              f"({kept or 'myst-nb reads another number of code cells'}); jupyter-book will run the "
                              "chapter again", stacklevel=1)

    def reportinfo(self):
        line = self.source_line - 1 if self.source_line else 0
        return self.path, line, self._where()

    def repr_failure(self, excinfo):
        text = f"Chapter {self._where()} failed\n" + str(super().repr_failure(excinfo))
        if not self.config.get_terminal_writer().hasmarkup:
            text = _ANSI.sub("", text)  # kernel tracebacks are coloured; plain text in logs
        return text
