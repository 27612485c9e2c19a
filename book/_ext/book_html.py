"""Two fixes of the HTML pages, as a local Sphinx extension of the book (``_config.yml``: ``local_extensions``).

* MathJax on every page: Sphinx adds the MathJax script only to pages with formulas, but the navigation sidebar of
  every page shows chapter titles with formulas (e.g. "Lattice $\\phi^4$ theory"); with the assets policy
  ``always`` they are typeset on every page.
* A valid default theme mode (``auto``: the reader's system setting): without one, a fresh browser (no stored
  choice) logs "Got invalid theme mode" as a JavaScript error.
* No script twice: sphinx-thebe (loaded by Jupyter Book, unused here) registers its configuration script once per
  reading of the sources; a second copy redeclares a ``const`` and raises a JavaScript error.  Identical scripts
  are kept once.
"""
from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (str(getattr(js, "filename", js) or ""), repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _valid_default_mode(app, config):
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")
    config.html_context = context


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("config-inited", _valid_default_mode)
    app.connect("html-page-context", _unique_scripts, priority=100)  # before handlers that return a template
    return {"parallel_read_safe": True, "parallel_write_safe": True}
