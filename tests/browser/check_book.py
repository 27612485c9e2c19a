"""Open every page of the built HTML book in headless Chromium, without a network, and check what a reader sees.

Usage (after ``jupyter-book build .``; see the README)::

    .venv/bin/python tests/browser/check_book.py [_build/html] [--chromium /usr/bin/chromium]

For every page, from ``file://`` with all network requests blocked, the page fails when

* a formula is left untypeset (a ``.math`` element without a MathJax container, or a MathJax error), or TeX is left
  as text anywhere a reader sees it (a ``$`` or a backslash macro such as ``\phi`` or ``\,`` outside typeset
  formulas, code, program output and scripts: a formula broken by the Markdown around it, a cross-reference or a
  sidebar caption that shows a title's TeX source);
* an image does not load;
* an internal link points nowhere (a missing file, or a ``#fragment`` that no element of the target page has);
* the page logs a JavaScript error (an uncaught exception or a console error), or tries to reach the network;
* a code cell is wider than its box (a line cut off at the default window width, 1280 x 900).

One line per page; the exit status is 1 when any page fails.  Needs the Python package ``playwright`` (without its
browsers: Debian's ``chromium`` is used) and Chromium (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

WAIT_MATH_JS = """
async () => {
  if (!window.MathJax) { return 'no-mathjax'; }
  if (MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  if (MathJax.typesetPromise) { await MathJax.typesetPromise(); }
  return 'ok';
}
"""

PAGE_CHECKS_JS = """
() => {
  const out = {math: 0, untypeset: [], merror: [], images: [], overflow: []};
  for (const el of document.querySelectorAll('.math')) {
    out.math += 1;
    if (!el.querySelector('mjx-container') && el.tagName !== 'MJX-CONTAINER') {
      out.untypeset.push(el.textContent.slice(0, 60));
    }
  }
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error]')) {
    out.merror.push((el.getAttribute('data-mjx-error') || el.textContent).slice(0, 80));
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) { out.images.push(img.getAttribute('src')); }
  }
  // TeX left as text: visible text outside typeset math, code, program output, scripts and the search index
  out.tex = [];
  const skip = 'mjx-container, script, style, code, pre, kbd, samp, textarea, .math, .highlight, .MathJax, ' +
               'mjx-assistive-mml, [aria-hidden="true"] , .headerlink, title';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texRe = /\$|\\[A-Za-z]+|\\[,;:!{}()\[\]]/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue;
    if (!texRe.test(text)) { continue; }
    const el = node.parentElement;
    if (!el || el.closest(skip)) { continue; }
    const style = window.getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') { continue; }
    const m = text.match(texRe);
    const at = Math.max(0, m.index - 30);
    out.tex.push(text.slice(at, m.index + 40).replace(/\s+/g, ' ').trim());
  }
  for (const pre of document.querySelectorAll('div.cell_input pre, div.highlight pre')) {
    if (pre.scrollWidth > pre.clientWidth + 1) {
      const line = pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '');
      out.overflow.push(line.slice(0, 70));
    }
  }
  return out;
}
"""


class _Anchors(HTMLParser):
    """Collects the ids of a page and the targets of its links."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def broken_links(root: Path, pages: list[Path]) -> dict[Path, list[str]]:
    """Internal links of each page whose file or fragment does not exist."""
    parsed = {}
    for page in pages:
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        parsed[page] = parser
    out = {}
    for page, parser in parsed.items():
        bad = []
        for href in parser.links:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https", "mailto", "javascript", "data") or parts.netloc:
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                bad.append(f"{href} (no file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _Anchors().ids
                if target not in parsed:
                    extra = _Anchors()
                    extra.feed(target.read_text(encoding="utf-8", errors="replace"))
                    ids = extra.ids
                if unquote(parts.fragment) not in ids:
                    bad.append(f"{href} (no #{parts.fragment})")
        out[page] = sorted(set(bad))
    return out


def _redirect_target(page: Path) -> Path | None:
    """The target of a page that only redirects (``<meta http-equiv="Refresh" content="0; url=...">``), else None."""
    text = page.read_text(encoding="utf-8", errors="replace")
    m = re.search(r'<meta[^>]+http-equiv="refresh"[^>]+url=([^"]+)"', text, flags=re.IGNORECASE)
    return None if m is None else (page.parent / unquote(m.group(1).strip())).resolve()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                    help="the Chromium executable (default: chromium on the PATH)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per page (default 30)")
    args = ap.parse_args(argv)
    root = Path(args.html).resolve()
    if not (root / "index.html").is_file():
        print(f"error: {root / 'index.html'} does not exist: build the book first (make book)", file=sys.stderr)
        return 2
    if not args.chromium or not Path(args.chromium).exists():
        print("error: Chromium not found: install it (apt-get install chromium) or pass --chromium PATH",
              file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
                   and p.name not in ("genindex.html", "search.html", "py-modindex.html"))
    links = broken_links(root, pages)
    failed, start = 0, time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
        network: list[str] = []

        def route(r):
            url = r.request.url
            if url.startswith(("file:", "data:", "blob:", "about:")):
                return r.continue_()
            network.append(url)
            return r.abort()

        context.route("**/*", route)
        for page_path in pages:
            name = page_path.relative_to(root).as_posix()
            redirect = _redirect_target(page_path)
            if redirect is not None:  # the root index.html of Jupyter Book only redirects to the first page
                ok = redirect.is_file()
                print(f"{'ok  ' if ok else 'FAIL'} {name:42s} redirects to {redirect.relative_to(root).as_posix()}"
                      + ("" if ok else " (missing)"), flush=True)
                failed += not ok
                continue
            errors: list[str] = []
            network.clear()
            page = context.new_page()
            page.on("pageerror", lambda exc, errors=errors: errors.append(f"uncaught: {exc}"))
            page.on("console", lambda msg, errors=errors: errors.append(f"console: {msg.text[:120]}")
                    if msg.type == "error" else None)
            t0 = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="load", timeout=args.timeout * 1000)
            state = page.evaluate(WAIT_MATH_JS)
            found = page.evaluate(PAGE_CHECKS_JS)
            page.close()
            problems = []
            if found["math"] and state != "ok":
                problems.append("MathJax did not load")
            if found["untypeset"]:
                problems.append(f"{len(found['untypeset'])} untypeset formulas, e.g. {found['untypeset'][0]!r}")
            if found["tex"]:
                problems.append(f"{len(found['tex'])} pieces of TeX left as text, e.g. {found['tex'][:2]!r}")
            if found["merror"]:
                problems.append(f"MathJax errors: {found['merror'][:2]}")
            if found["images"]:
                problems.append(f"images not loaded: {found['images'][:3]}")
            if links[page_path]:
                problems.append(f"broken links: {links[page_path][:3]}" + (" ..." if len(links[page_path]) > 3 else ""))
            if errors:
                problems.append(f"JavaScript errors: {errors[:2]}")
            if network:
                problems.append(f"network requests: {sorted(set(network))[:2]}")
            if found["overflow"]:
                problems.append(f"{len(found['overflow'])} code cells wider than the page, e.g. {found['overflow'][0]!r}")
            status = "ok  " if not problems else "FAIL"
            print(f"{status} {name:42s} {found['math']:4d} formulas, {time.perf_counter() - t0:5.1f} s"
                  + ("" if not problems else ": " + "; ".join(problems)), flush=True)
            failed += bool(problems)
        browser.close()
    print(f"{len(pages) - failed} passed, {failed} failed ({time.perf_counter() - start:.0f} s, {root})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
