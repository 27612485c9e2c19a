"""Reproduction tables side by side with the papers, and the checks that end every chapter.

:class:`TrainingRecords` shows where each trained network of a chapter comes from (the store of trained networks,
the artefact cache, or a training just now) and what it cost.  Values are written in the concise notation ``1.0624(5)`` = 1.0624 +- 0.0005: the digits in parentheses are
the error in units of the last digit shown.  :class:`ReproTable` shows our values (with errors), the papers'
cells exactly as printed and the exact values; :class:`Checks` collects pass/fail checks of our values against
exact values or the papers' cells and raises :class:`CheckFailed` at the end, naming every failing cell.
Described in the preface of the book (``book/intro.md``).
"""
from __future__ import annotations

import cmath
import html
import math
import numbers
import re
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import torch

__all__ = ["parse_value", "format_value", "pull", "split_complex", "split_complex_errors", "ReproTable", "Checks", "CheckFailed",
           "SOURCES", "TrainingRecords"]

#: where a table row comes from
SOURCES = ("ours", "paper", "exact")
_MISSING = "\u2014"  # em dash for an empty cell
_NUM = r"[+-]?(?:\d+(?:\.(?P<dec>\d*))?|\.(?P<dec2>\d+))"
_PAREN = re.compile(rf"^(?P<val>{_NUM})\((?P<err>\d+(?:\.\d*)?)\)(?:[eE](?P<exp>[+-]?\d+))?$")
_PLUSMINUS = re.compile(r"^(?P<val>\S+?)\s*(?:\+-|\+/-|\u00b1)\s*(?P<err>\S+)$")
_ROW_BG = {"ours": "rgba(31,119,180,0.13)", "paper": "rgba(255,179,0,0.16)", "exact": "rgba(128,128,128,0.13)"}
_CELL = "padding:0.2em 0.7em;border-bottom:1px solid rgba(128,128,128,0.35);"


def _as_number(x, name="value"):
    """Python int, float or complex from a number, numpy scalar, or one-element array or tensor."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if (x.numel() if isinstance(x, torch.Tensor) else x.size) != 1:
            raise ValueError(f"{name} must be a single number, got an array of shape {tuple(x.shape)}")
        x = x.item()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, numbers.Number):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}")
    if isinstance(x, (int, float, complex)):
        return x
    return float(x) if isinstance(x, numbers.Real) else complex(x)


def parse_value(text: str) -> tuple[float, float | None]:
    """Parse a printed value: ``"1.0624(5)"`` -> (1.0624, 0.0005), ``"0.0012 +- 0.0007"`` -> (0.0012, 0.0007),
    ``"-2"`` -> (-2.0, None).  Also ``"1.20(3)e-5"``, ``"1.5(1.2)"`` (absolute error) and ``"\u00b1"``.
    """
    s = str(text).strip().replace("\u2212", "-").replace("\u2009", "").replace("\u00a0", " ")
    m = _PAREN.match(s.replace(" ", ""))
    if m:
        decimals = len(m["dec"] or m["dec2"] or "")
        exp = int(m["exp"] or 0)
        err = Decimal(m["err"]) if "." in m["err"] else Decimal(m["err"]).scaleb(-decimals)
        return float(Decimal(m["val"]).scaleb(exp)), float(err.scaleb(exp))
    m = _PLUSMINUS.match(s)
    try:
        if m:
            return float(m["val"]), abs(float(m["err"]))
        return float(s), None
    except ValueError:
        raise ValueError(f"cannot parse {text!r} as a value like '1.0624(5)', '0.0012 +- 0.0007' or '-2'") from None


def _with_error(value: float, error: float) -> str:
    e = Decimal(repr(error))
    n_sig = 2 if e.as_tuple().digits[0] in (1, 2) else 1  # two digits when the error starts with 1 or 2
    decimals = n_sig - 1 - e.adjusted()
    err = int(e.scaleb(decimals).to_integral_value(ROUND_HALF_UP))
    if err >= 10**n_sig or (n_sig == 2 and err >= 30):  # rounding changed the leading digit: start again
        return _with_error(value, float(Decimal(err).scaleb(-decimals)))
    if decimals >= 0:
        v, err_s = f"{value:.{decimals}f}", str(err)
    else:
        q = 10 ** (-decimals)
        v, err_s = str(int(round(value / q)) * q), str(err * q)
    if float(v) == 0:
        v = v.lstrip("-")
    return f"{v}({err_s})"


def format_value(value, error=None, digits: int = 4) -> str:
    """Format ``value`` with ``error`` as ``"1.0624(5)"``; without error as ``digits`` significant digits.

    The error keeps two significant digits when its leading digit is 1 or 2, else one, and the value is
    rounded to the same decimal.  Complex values give ``"re+imi"`` (a complex error gives the errors of the
    two parts).  Very small or large numbers use an exponent: ``"1.20(3)e-5"``.
    """
    value = _as_number(value)
    err = None if error is None else _as_number(error, "error")
    if isinstance(value, complex):
        er, ei = (None, None) if err is None else (err.real, err.imag) if isinstance(err, complex) else (err, err)
        im = format_value(abs(value.imag), ei, digits)
        return f"{format_value(value.real, er, digits)}{'-' if math.copysign(1, value.imag) < 0 else '+'}{im}i"
    if isinstance(err, complex):
        raise ValueError(f"a real value {value!r} needs a real error, got {err!r}")
    if err is not None and err < 0:
        raise ValueError(f"error must be non-negative, got {err!r}")
    if isinstance(value, int) and not err:
        return str(value)
    value = float(value)
    if err is None or err == 0 or not math.isfinite(value):
        return f"{value:.{digits}g}"
    if not math.isfinite(err):
        return f"{value:.{digits}g} +- {err}"
    exp = math.floor(math.log10(max(abs(value), err)))
    if exp < -4 or exp >= 6:
        return f"{_with_error(value / 10**exp, float(Decimal(repr(float(err))).scaleb(-exp)))}e{exp}"
    return _with_error(value, float(err))


def pull(ours, reference) -> float:
    r"""The deviation of ``ours`` from ``reference`` in combined standard errors,
    :math:`(a - b)/\sqrt{\sigma_a^2 + \sigma_b^2}`; each is a ``(value, error)`` pair, or a number for an exact
    reference (error 0).  Raises ``ValueError`` when the combined error is zero or either value is not finite,
    ``TypeError`` when one is not a number."""
    (a, ea), (b, eb) = (_pair(x, name) for x, name in ((ours, "ours"), (reference, "reference")))
    err = math.hypot(ea, eb)
    if not err > 0 or not math.isfinite(err):
        raise ValueError(f"pull: the combined error of {ours!r} and {reference!r} must be finite and positive")
    return (a - b) / err


def _pair(x, name: str) -> tuple[float, float]:
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"pull: {name} must be a (value, error) pair or a number, got {x!r}")
        value = float(_as_number(x[0], name))
        error = 0.0 if x[1] is None else float(_as_number(x[1], f"the error of {name}"))
    else:
        value, error = float(_as_number(x, name)), 0.0
    if not (math.isfinite(value) and math.isfinite(error) and error >= 0):
        raise ValueError(f"pull: {name} must have a finite value and a finite error >= 0, got {x!r}")
    return value, error


def split_complex(values) -> list:
    """Complex numbers as the cells ``(Re, -Im)`` of each, the convention of the tables of arXiv:2412.01919."""
    return [x for v in values for x in (complex(v).real, -complex(v).imag)]


def split_complex_errors(errors) -> list:
    """Errors ``err(Re) + 1j err(Im)`` (as :func:`lib.stats.bootstrap_cumulants` gives them) as the cells of
    :func:`split_complex`."""
    return [x for e in errors for x in (complex(e).real, complex(e).imag)]


def _finite(x) -> bool:
    return cmath.isfinite(x) if isinstance(x, complex) else math.isfinite(x)


def _cells(values, n, what, label):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().tolist()
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"row {label!r}: {what} must be a sequence with one entry per column ({n}), got "
                         f"{type(values).__name__} {values!r}")
    values = list(values)
    if len(values) != n:
        raise ValueError(f"row {label!r}: {what} has {len(values)} entries, the table has {n} columns")
    return values


class ReproTable:
    """A reproduction table: rows of our values, the paper's cells (as printed) and exact values.

    Parameters
    ----------
    title : str
        Caption of the table (say which scale produced the numbers).
    columns : sequence of str
        Column headings, e.g. ``["k2", "k4", "k6", "k8"]``.
    """

    def __init__(self, title: str, columns):
        self.title, self.columns, self.rows = str(title), [str(c) for c in columns], []
        if not self.columns:
            raise ValueError("a table needs at least one column")

    def add_row(self, label, values, errors=None, source="ours", digits=None):
        """Add a row of numbers (``None`` = empty cell); ``errors`` likewise.

        ``source`` is ``"ours"``, ``"paper"`` or ``"exact"``.  Values without error show ``digits``
        significant digits (default 6 for exact rows, else 4).
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        n = len(self.columns)
        values = _cells(values, n, "values", label)
        errors = [None] * n if errors is None else _cells(errors, n, "errors", label)
        digits = digits or (6 if source == "exact" else 4)
        for column, v, e in zip(self.columns, values, errors):
            for what, x in (("value", v), ("error", e)):
                if x is not None and not _finite(_as_number(x, f"{what} of row {label!r}, column {column!r}")):
                    raise ValueError(f"row {label!r}, column {column!r}: the {what} is {x!r}; a table cell must be "
                                     "finite (None leaves the cell empty)")
        texts = [_MISSING if v is None else format_value(v, e, digits) for v, e in zip(values, errors)]
        cells = [None if v is None else (_as_number(v), None if e is None else _as_number(e, "error"))
                 for v, e in zip(values, errors)]
        self.rows.append({"label": str(label), "source": source, "cells": cells, "texts": texts})
        return self

    def add_paper_row(self, label, strings):
        """Add the paper's cells as printed (parsed with :func:`parse_value`; ``None`` or ``""`` = empty)."""
        strings = _cells(strings, len(self.columns), "strings", label)
        empty = [s is None or str(s).strip() in ("", "-", _MISSING) for s in strings]
        cells = [None if e else parse_value(s) for s, e in zip(strings, empty)]
        texts = [_MISSING if e else str(s).strip() for s, e in zip(strings, empty)]
        self.rows.append({"label": str(label), "source": "paper", "cells": cells, "texts": texts})
        return self

    def cell(self, label, column) -> tuple:
        """(value, error) of a cell, found by row label and column heading."""
        if str(column) not in self.columns:
            raise KeyError(f"no column {column!r} in table {self.title!r}; its columns are {self.columns}")
        j = self.columns.index(str(column))
        for row in self.rows:
            if row["label"] == str(label):
                return row["cells"][j]
        raise KeyError(f"no row labelled {label!r} in table {self.title!r}")

    def to_markdown(self) -> str:
        """Markdown table with the title as a bold caption and a source column."""
        lines = [f"**{self.title}**", "", "| | " + " | ".join(self.columns) + " | source |",
                 "|---|" + "---:|" * len(self.columns) + "---|"]
        lines += [f"| {r['label']} | " + " | ".join(r["texts"]) + f" | {r['source']} |" for r in self.rows]
        return "\n".join(lines) + "\n"

    __str__ = to_markdown

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="{_CELL}text-align:right">{html.escape(c)}</th>' for c in self.columns)
        body = []
        for r in self.rows:
            cells = "".join(f'<td style="{_CELL}text-align:right">{html.escape(t)}</td>' for t in r["texts"])
            body.append(f'<tr class="lib-src-{r["source"]}" style="background:{_ROW_BG[r["source"]]}">'
                        f'<th scope="row" style="{_CELL}text-align:left">{html.escape(r["label"])}</th>{cells}'
                        f'<td style="{_CELL}font-size:85%;font-style:italic">{r["source"]}</td></tr>')
        return ('<table class="lib-repro" style="border-collapse:collapse;margin:0.5em 0;'
                'font-variant-numeric:tabular-nums">'
                f'<caption style="caption-side:top;text-align:left;font-weight:bold;padding:0.3em 0">'
                f'{html.escape(self.title)}</caption><thead><tr><th style="{_CELL}"></th>{head}'
                f'<th style="{_CELL}text-align:left">source</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


class TrainingRecords:
    """The training record of the trained networks a chapter uses: where each comes from and what it cost.

    ``results`` maps a name to a trained network (a :class:`lib.diffusion.training.TrainResult`, or anything with its
    ``source``, ``steps``, ``wall_time``, ``losses`` and ``record``).  One row per network: the source (``store``:
    the repository's store of trained networks; ``cache``: the artefact cache; ``trained``: trained in this run),
    the optimiser steps, the training wall time and time per step of the run that made the weights, the mean loss of
    the last 100 steps, the machine (CPU, torch threads, torch version) and the date.
    """

    columns = ("source", "steps", "training", "per step", "final loss", "machine", "torch", "trained on")

    def __init__(self, title: str, results):
        self.title, self.rows = str(title), []
        for name, result in dict(results).items():
            record = getattr(result, "record", None) or {}
            extra = record.get("extra") or {}
            machine = extra.get("machine") or {}
            steps = int(result.steps)
            wall = float(result.wall_time)
            cpu = machine.get("cpu") or machine.get("arch") or "?"
            threads = machine.get("torch_threads")
            self.rows.append({
                "label": str(name), "wall": wall,
                "texts": [str(result.source), f"{steps:,}", _seconds(wall),
                          f"{1e3 * wall / max(steps, 1):.1f} ms" if math.isfinite(wall) else _MISSING,
                          f"{float(result.losses[-100:].mean()):.4g}",
                          cpu + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""),
                          str((record.get("versions") or {}).get("torch", "?")),
                          str(record.get("created", "?"))[:10]],
            })

    @property
    def total_seconds(self) -> float:
        """Sum of the training wall times (seconds) of the networks listed."""
        return sum(r["wall"] for r in self.rows)

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| | " + " | ".join(self.columns) + " |",
                 "|---|" + "---|" * len(self.columns)]
        lines += [f"| {r['label']} | " + " | ".join(r["texts"]) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    __str__ = to_markdown

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="{_CELL}text-align:left">{html.escape(c)}</th>' for c in self.columns)
        body = "".join(f'<tr><th scope="row" style="{_CELL}text-align:left">{html.escape(r["label"])}</th>'
                       + "".join(f'<td style="{_CELL}">{html.escape(t)}</td>' for t in r["texts"]) + "</tr>"
                       for r in self.rows)
        return ('<table class="lib-training" style="border-collapse:collapse;margin:0.5em 0;font-size:90%;'
                'font-variant-numeric:tabular-nums">'
                f'<caption style="caption-side:top;text-align:left;font-weight:bold;padding:0.3em 0">'
                f'{html.escape(self.title)}</caption><thead><tr><th style="{_CELL}"></th>{head}</tr></thead>'
                f'<tbody>{body}</tbody></table>')


def _seconds(wall: float) -> str:
    if not math.isfinite(wall):
        return _MISSING
    return f"{wall:.0f} s" if wall < 600 else f"{wall / 60:.1f} min"


class CheckFailed(AssertionError):
    """Raised by :meth:`Checks.assert_all` when at least one check failed."""


class Checks:
    """Collects the checks of a chapter, shows them as a table and raises at the end if any failed.

    Every check returns whether it passed and appends ``{"cell", "ours", "reference", "rule", "passed",
    "detail"}`` (display strings and a bool) to ``results``.
    """

    def __init__(self, name: str):
        self.name, self.results = str(name), []

    def _record(self, cell, ours, reference, rule, passed, detail="", numbers=()):
        """Append a result; a check whose inputs (``numbers``) are not all finite fails, whatever its rule says."""
        bad = [x for x in numbers if not _finite(x)]
        if bad:
            passed, detail = False, f"non-finite input {bad}: a check cannot pass on NaN or infinity"
        self.results.append({"cell": str(cell), "ours": ours, "reference": reference, "rule": rule,
                             "passed": bool(passed), "detail": detail})
        return bool(passed)

    @staticmethod
    def _n_sigma(cell, n_sigma):
        n = _as_number(n_sigma, f"n_sigma of {cell}")
        if isinstance(n, complex) or not n > 0:
            raise ValueError(f"check {cell!r}: n_sigma must be a positive number, got {n_sigma!r}")
        return float(n)

    @staticmethod
    def _error(cell, error):
        err = None if error is None else _as_number(error, f"error of {cell}")
        if err is None or isinstance(err, complex) or err < 0:
            raise ValueError(f"check {cell!r}: the error must be a non-negative real number, got {error!r}")
        return float(err)

    def within_sigma(self, cell, value, error, reference, n_sigma=3.0) -> bool:
        """Pass when ``|ours - ref| <= n_sigma * error`` (``n_sigma > 0``)."""
        n_sigma = self._n_sigma(cell, n_sigma)
        value, err, ref = _as_number(value), self._error(cell, error), _as_number(reference, "reference")
        dev = abs(value - ref)
        detail = f"{dev / err:.2g} sigma" if err > 0 else f"|ours - ref| = {dev:.3g}"
        return self._record(cell, format_value(value, err), format_value(ref, digits=6),
                            f"|ours - ref| <= {n_sigma:g} sigma", dev <= n_sigma * err, detail,
                            (value, err, ref, n_sigma))

    def within_sigma_or_paper(self, cell, value, error, exact, paper_value, n_sigma=3.0) -> bool:
        """Pass when within ``n_sigma`` of exact, or no further from exact than the paper's cell.

        Our statistical error is allowed on top of the paper's deviation, so that reproducing the paper's
        bias does not fail half of the time: ``|ours - exact| <= |paper - exact| + n_sigma * error``.
        ``paper_value`` is a number, a ``(value, error)`` pair or the printed string.
        """
        n_sigma = self._n_sigma(cell, n_sigma)
        paper_text = str(paper_value).strip() if isinstance(paper_value, str) else None
        if paper_text is not None:
            paper_value = parse_value(paper_text)
        if isinstance(paper_value, tuple):
            paper_value = paper_value[0]
        value, err = _as_number(value), self._error(cell, error)
        exact, paper_value = _as_number(exact, "exact"), _as_number(paper_value, "paper value")
        dev, dev_paper = abs(value - exact), abs(paper_value - exact)
        ref = f"exact {format_value(exact, digits=6)}; paper {paper_text or format_value(paper_value, digits=6)}"
        detail = f"|ours - exact| = {dev:.3g}, |paper - exact| = {dev_paper:.3g}, sigma = {err:.2g}"
        rule = f"within {n_sigma:g} sigma of exact or no further from exact than the paper's cell"
        return self._record(cell, format_value(value, err), ref, rule, dev <= dev_paper + n_sigma * err, detail,
                            (value, err, exact, paper_value, n_sigma))

    def within_sigma_or_floor(self, cell, value, error, reference, floor, n_sigma=3.0, floor_name="floor") -> bool:
        """Pass when ``|ours - ref| <= max(n_sigma * error, floor)``.

        For comparisons whose tolerance has a known systematic part, e.g. a generated row against the data it
        learned from, allowed to deviate as much as the paper's generated row deviates from exact
        (:doc:`/book/part4/cl_diffusion`); ``floor_name`` says where the floor comes from in the rule.
        """
        n_sigma = self._n_sigma(cell, n_sigma)
        value, err, ref = _as_number(value), self._error(cell, error), _as_number(reference, "reference")
        floor = _as_number(floor, "floor")
        if isinstance(floor, complex) or not floor >= 0:
            raise ValueError(f"check {cell!r}: the floor must be a non-negative real number, got {floor!r}")
        dev, tol = abs(value - ref), max(n_sigma * err, floor)
        detail = f"|ours - ref| = {dev:.3g}, {n_sigma:g} sigma = {n_sigma * err:.3g}, {floor_name} = {floor:.3g}"
        return self._record(cell, format_value(value, err), format_value(ref, digits=6),
                            f"|ours - ref| <= max({n_sigma:g} sigma, {floor_name})", dev <= tol, detail,
                            (value, err, ref, floor, n_sigma))

    def close(self, cell, value, reference, rtol=0.0, atol=0.0) -> bool:
        """Pass when ``|ours - ref| <= atol + rtol |ref|``."""
        if not (rtol >= 0 and atol >= 0):
            raise ValueError(f"check {cell!r}: rtol and atol must be non-negative, got {rtol!r}, {atol!r}")
        value, ref = _as_number(value), _as_number(reference, "reference")
        dev = abs(value - ref)
        return self._record(cell, format_value(value, digits=6), format_value(ref, digits=6),
                            f"|ours - ref| <= atol + rtol |ref| (atol={atol:g}, rtol={rtol:g})",
                            dev <= atol + rtol * abs(ref), f"|ours - ref| = {dev:.3g}", (value, ref, rtol, atol))

    def true(self, cell, condition, message: str) -> bool:
        """Pass when ``condition`` holds; ``message`` states the rule.

        ``condition`` is a bool (Python, numpy or a one-element tensor); a number counts only when finite, so that a
        NaN (which Python calls true) fails.
        """
        if isinstance(condition, torch.Tensor) and condition.numel() == 1:
            condition = condition.item()
        elif isinstance(condition, (np.ndarray, np.generic)) and np.size(condition) == 1:
            condition = condition.item()
        if isinstance(condition, bool):
            return self._record(cell, str(condition), "True", str(message), condition)
        if isinstance(condition, numbers.Number):
            return self._record(cell, str(condition), "True", str(message), bool(condition), numbers=(condition,))
        raise TypeError(f"check {cell!r}: the condition must be a bool, got {type(condition).__name__}")

    @property
    def failures(self) -> list:
        """Results of the failed checks."""
        return [r for r in self.results if not r["passed"]]

    def assert_all(self) -> None:
        """Raise :class:`CheckFailed` naming every failing cell, our value, the reference and the rule."""
        failed = self.failures
        if failed:
            lines = [f"- {r['cell']}: ours {r['ours']}, reference {r['reference']}, rule: {r['rule']}"
                     + (f" ({r['detail']})" if r["detail"] else "") for r in failed]
            raise CheckFailed(f"{self.name}: {len(failed)} of {len(self.results)} checks failed\n" + "\n".join(lines))

    def _summary(self) -> str:
        return f"{self.name}: {len(self.results) - len(self.failures)} of {len(self.results)} checks passed"

    def to_markdown(self) -> str:
        """Markdown table of all checks."""
        lines = [f"**{self._summary()}**", "", "| cell | ours | reference | rule | result |", "|---|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['ours']} | {r['reference']} | {r['rule']} | "
                  + ("pass" if r["passed"] else "**FAIL**") + " |" for r in self.results]
        return "\n".join(lines) + "\n"

    __str__ = to_markdown

    def _repr_html_(self) -> str:
        rows = []
        for r in self.results:
            bg, mark = ("rgba(40,167,69,0.13)", "\u2714 pass") if r["passed"] else ("rgba(220,53,69,0.2)", "\u2718 FAIL")
            cells = "".join(f'<td style="{_CELL}">{html.escape(str(r[k]))}</td>'
                            for k in ("cell", "ours", "reference", "rule"))
            rows.append(f'<tr style="background:{bg}" title="{html.escape(r["detail"])}">{cells}'
                        f'<td style="{_CELL}font-weight:bold">{mark}</td></tr>')
        head = "".join(f'<th style="{_CELL}text-align:left">{h}</th>' for h in ("cell", "ours", "reference", "rule", "result"))
        return ('<table class="lib-checks" style="border-collapse:collapse;margin:0.5em 0">'
                f'<caption style="caption-side:top;text-align:left;font-weight:bold;padding:0.3em 0">'
                f'{html.escape(self._summary())}</caption><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')
