"""Execute every chapter into notebooks with outputs, and compare the outputs of two such executions.

Used to show that a restructuring of ``lib`` changes no number of the book (same seeds)::

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && PYTHONPATH=/tmp/before LIB_CACHE_DIR=/tmp/cache-before \
        python /path/to/tools/book_outputs.py run /tmp/out-before)
    PYTHONPATH=. LIB_CACHE_DIR=/tmp/cache-after python tools/book_outputs.py run /tmp/out-after
    python tools/book_outputs.py compare /tmp/out-before /tmp/out-after

``run OUT [CHAPTER ...]`` executes the chapters of ``_toc.yml`` of the current directory (working directory: each
chapter's folder, as under ``pytest --nbval``) into ``OUT/<part>_<name>.ipynb``, skipping those already there (an
interrupted run resumes).  ``compare A B`` lists, per chapter, the glued values (by name) and the output lines
(tables split into rows) that differ; wall times and cache keys differ by nature.
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import jupytext
import nbformat


def run(out: Path, only: list[str]) -> None:
    from nbclient import NotebookClient

    sys.path.insert(0, "book")
    from conftest import is_myst_notebook, resolve_entry, toc_entries

    out.mkdir(parents=True, exist_ok=True)
    for entry in toc_entries():
        path = resolve_entry(entry)
        if not is_myst_notebook(path) or (only and path.stem not in only):
            continue
        name = f"{path.parent.name}_{path.stem}"
        if (out / f"{name}.ipynb").exists():
            continue
        nb = jupytext.read(str(path), fmt="md:myst")
        t0 = time.time()
        NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       allow_errors=True).execute()
        nbformat.write(nb, out / f"{name}.ipynb")
        errors = [o.get("ename") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        print(f"{name}: {time.time() - t0:.0f} s" + (f", ERRORS {errors}" if errors else ""), flush=True)


def outputs(nb):
    """Glued values by name, and the other output lines (HTML tables split into rows) as a multiset."""
    glue, lines = {}, Counter()
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                lines.update(line.strip() for line in o.text.splitlines() if line.strip())
            elif o.output_type in ("display_data", "execute_result"):
                name = (o.get("metadata", {}).get("scrapbook") or {}).get("name")
                data, text = o.get("data", {}), None
                for mime in ("text/markdown", "text/html", "text/plain"):
                    text = next((data[k] for k in data if k.endswith(mime)), None)
                    if text is not None:
                        break
                if text is None:
                    continue
                if name:
                    glue[name] = "<figure>" if text.startswith("<Figure") else text
                elif not text.startswith("<Figure"):
                    for row in re.split(r"</tr>|\n", text):
                        row = re.sub(r"(\s*\|\s*)+", " | ", re.sub(r"<[^>]+>", " | ", row)).strip(" |")
                        if row:
                            lines[row] += 1
            elif o.output_type == "error":
                lines["ERROR " + o.ename + ": " + o.evalue] += 1
    return glue, lines


def compare(a_dir: str, b_dir: str) -> int:
    total_same = total_diff = 0
    for fa in sorted(glob.glob(a_dir + "/*.ipynb")):
        name = os.path.basename(fa)
        fb = os.path.join(b_dir, name)
        if not os.path.exists(fb):
            print(f"== {name}: missing in {b_dir}")
            continue
        ga, la = outputs(nbformat.read(fa, 4))
        gb, lb = outputs(nbformat.read(fb, 4))
        differ = [k for k in sorted(set(ga) | set(gb)) if ga.get(k) != gb.get(k)]
        only_a, only_b = la - lb, lb - la
        same = sum(1 for k in ga if gb.get(k) == ga[k]) + sum((la & lb).values())
        total_same += same
        total_diff += len(differ) + sum(only_a.values()) + sum(only_b.values())
        print(f"== {name}: {same} identical; {len(differ)} glued values and "
              f"{sum(only_a.values())}/{sum(only_b.values())} output lines differ")
        for k in differ:
            print(f"   glue {k}: {str(ga.get(k, '<missing>'))[:90]!r} -> {str(gb.get(k, '<missing>'))[:90]!r}")
        for line in only_a:
            print("   - " + line[:200])
        for line in only_b:
            print("   + " + line[:200])
    print(f"TOTAL: {total_same} identical, {total_diff} differing")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
