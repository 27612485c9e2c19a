"""The book's table of contents, its chapters and its citations are consistent.

`jupyter-book build` silently leaves out a page missing from _toc.yml (only_build_toc_files),
and `pytest --nbval book/` only executes toc chapters that exist, so these fast checks make a
missing or mis-declared chapter fail `pytest tests/`.
"""
import importlib.util
import subprocess
import sys
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TOC = ROOT / "_toc.yml"
BIB = ROOT / "references.bib"

_CITE = re.compile(r"\{cite(?::[a-z]+)*\}`([^`]*)`")
_BIB_KEY = re.compile(r"^@\w+\s*\{\s*([^,\s]+)\s*,", re.MULTILINE)
_CODE_CELL = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*\{code-cell\}", re.MULTILINE)


def _load_collector():
    """book/conftest.py (the chapter collector of `pytest --nbval book/`) as a plain module."""
    spec = importlib.util.spec_from_file_location("book_collector", BOOK / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


collector = _load_collector()
ENTRIES = collector.toc_entries(TOC)


def test_toc_is_valid_for_jupyter_book():
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(TOC)
    assert site_map.root.docname == "book/intro"
    assert yaml.safe_load(TOC.read_text())["format"] == "jb-book"


@pytest.mark.parametrize("entry", ENTRIES)
def test_toc_entry_exists(entry):
    path = collector.resolve_entry(entry, ROOT)
    assert path.is_file(), f"_toc.yml lists {entry!r} but {path.relative_to(ROOT)} does not exist"


def test_toc_has_no_duplicates():
    duplicates = sorted({e for e in ENTRIES if ENTRIES.count(e) > 1})
    assert not duplicates, f"listed more than once in _toc.yml: {duplicates}"


def test_every_book_page_is_in_the_toc():
    listed = {collector.resolve_entry(e, ROOT) for e in ENTRIES}
    pages = sorted(p.resolve() for p in BOOK.rglob("*.md") if "_build" not in p.parts)
    orphans = [str(p.relative_to(ROOT)) for p in pages if p not in listed]
    assert not orphans, f"pages under book/ missing from _toc.yml (neither built nor tested): {orphans}"


def test_every_chapter_with_code_is_collected_and_runs_python3():
    """A chapter with {code-cell}s but broken front matter would be executed by nobody."""
    collected = set(collector.toc_notebook_chapters(TOC))
    problems = []
    for entry in ENTRIES:
        path = collector.resolve_entry(entry, ROOT)
        if path.suffix != ".md" or not path.is_file():
            continue
        has_code = bool(_CODE_CELL.search(path.read_text(encoding="utf-8")))
        if has_code and path not in collected:
            problems.append(f"{entry}: has code cells but no MyST-notebook front matter")
        if path in collected:
            kernel = collector.front_matter(path)["kernelspec"].get("name")
            if kernel != "python3":
                problems.append(f"{entry}: kernelspec name {kernel!r}, expected 'python3'")
            cells = collector.read_chapter(path).cells
            n_code = sum(cell.cell_type == "code" for cell in cells)
            if n_code != len(collector.code_cell_lines(path)):
                problems.append(f"{entry}: jupytext reads {n_code} code cells, the file has "
                                f"{len(collector.code_cell_lines(path))} {{code-cell}} directives")
    assert not problems, "\n".join(problems)


def test_every_citation_is_in_references_bib():
    keys = set(_BIB_KEY.findall(BIB.read_text(encoding="utf-8")))
    missing = []
    for page in sorted(BOOK.rglob("*.md")):
        for match in _CITE.finditer(page.read_text(encoding="utf-8")):
            for key in (k.strip() for k in match.group(1).split(",")):
                if key and key not in keys:
                    missing.append(f"{page.relative_to(ROOT)}: {key}")
    assert not missing, f"cited but not in references.bib: {missing}"


def test_references_bib_has_unique_keys():
    keys = _BIB_KEY.findall(BIB.read_text(encoding="utf-8"))
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


@pytest.mark.parametrize("dist, ok", [("load", False), ("worksteal", False), ("loadfile", True), ("loadscope", True)])
def test_parallel_chapters_need_a_distribution_that_keeps_each_chapter_on_one_worker(dist, ok):
    """`pytest --nbval book/ -n 2` must keep a chapter's cells on one worker (they share one kernel)."""
    pytest.importorskip("xdist")
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pytest", "--nbval", "book/", "-n", "2", "--dist", dist, "--collect-only", "-q",
           "-p", "no:cacheprovider"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if ok:
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert run.returncode != 0
        assert f"needs --dist loadfile (or loadscope), got --dist {dist}" in run.stderr + run.stdout


def test_every_chapter_has_a_recorded_time_and_the_longest_run_first():
    """book/chapter_seconds.json orders the chapters for two workers; a chapter missing from it would run first, so a
    new chapter must be added (a full run of pytest --nbval book/ prints the table)."""
    seconds = collector.chapter_seconds()
    names = {path.relative_to(ROOT).as_posix() for path in collector.toc_notebook_chapters(TOC)}
    assert names == set(seconds), (sorted(names - set(seconds)), sorted(set(seconds) - names))
    assert all(value >= 0 for value in seconds.values())
    cmd = [sys.executable, "-m", "pytest", "--nbval", "book/", "--collect-only", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    order = list(dict.fromkeys(line.split("::")[0] for line in run.stdout.splitlines() if ".md::" in line))
    assert order == sorted(names, key=lambda name: (-seconds[name], ENTRIES.index(name[:-3]) if name[:-3] in ENTRIES
                                                    else 0)), order


def test_a_bad_chapter_seconds_file_names_itself(tmp_path):
    bad = tmp_path / "chapter_seconds.json"
    bad.write_text('{"book/part1/x.md": 3}')
    with pytest.raises(pytest.UsageError, match="chapter_seconds.json"):
        collector.chapter_seconds(bad)
    assert collector.chapter_seconds(tmp_path / "absent.json") == {}


def test_every_lib_module_has_an_api_page_entry():
    # a module missing from book/api/*.md leaves every {mod} reference to it unresolved, which fails the book build
    # (sphinx -W) only at the end of CI; this finds it in seconds
    documented = set()
    for page in (BOOK / "api").glob("*.md"):
        documented |= set(re.findall(r"automodule::\s+([\w.]+)", page.read_text()))
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "lib").rglob("*.py")
               if p.name != "__init__.py" and not p.name.startswith("_")}
    missing = sorted(m for m in modules if m not in documented)
    assert not missing, f"lib modules without an automodule entry in book/api/*.md: {missing}"
