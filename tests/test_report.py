"""Tests of lib.infra.report: value notation, reproduction tables, checks."""
import math

import numpy as np
import pytest
import torch

from lib.infra.report import CheckFailed, Checks, ReproTable, TrainingRecords, format_value, parse_value, pull


@pytest.mark.parametrize("text, value, error", [
    ("1.0624(5)", 1.0624, 0.0005),
    ("-272.0(6)", -272.0, 0.6),
    ("0.90108(28)", 0.90108, 0.00028),
    ("-5.8689(25)", -5.8689, 0.0025),
    ("0.0012 +- 0.0007", 0.0012, 0.0007),
    ("-0.0198 +- 0.1035", -0.0198, 0.1035),
    ("-2", -2.0, None),
    ("16", 16.0, None),
    ("0.3029", 0.3029, None),
    ("0.81(68)", 0.81, 0.68),
    ("16.00(2)", 16.0, 0.02),
    ("-26.4(3)", -26.4, 0.3),
    ("272(6)", 272.0, 6.0),
    ("1.5(1.2)", 1.5, 1.2),
    ("1.20(3)e-5", 1.2e-5, 3e-7),
    (" 2.5 \u00b1 0.1 ", 2.5, 0.1),
    ("\u22120.5(1)", -0.5, 0.1),
])
def test_parse_value(text, value, error):
    v, e = parse_value(text)
    assert v == pytest.approx(value, rel=1e-12, abs=0)
    assert e is None if error is None else e == pytest.approx(error, rel=1e-12)


@pytest.mark.parametrize("text", ["", "abc", "1.0(", "1.0(5", "(5)", "1.0 +- x"])
def test_parse_value_rejects(text):
    with pytest.raises(ValueError, match="cannot parse"):
        parse_value(text)


@pytest.mark.parametrize("value, error, text", [
    (1.06243, 0.00052, "1.0624(5)"),
    (-272.03, 0.61, "-272.0(6)"),
    (0.90108, 0.00028, "0.90108(28)"),
    (-5.86894, 0.0025, "-5.8689(25)"),
    (0.0012, 0.0007, "0.0012(7)"),
    (16.004, 0.021, "16.004(21)"),
    (2.5160, 0.0457, "2.52(5)"),
    (1.0, 0.00096, "1.0000(10)"),  # rounding 0.00096 up gives a leading 1: two digits
    (1.0, 0.0296, "1.00(3)"),  # rounding 0.0296 gives a leading 3: one digit
    (12345.0, 600.0, "12300(600)"),
    (-1e-5, 0.5, "0.0(5)"),  # no negative zero
    (1.2e-5, 3e-7, "1.20(3)e-5"),
    (1.0625, None, "1.062"),
    (-2, None, "-2"),
    (16.0, None, "16"),
    (0.3029, None, "0.3029"),
    (0.5, 0.0, "0.5"),
])
def test_format_value(value, error, text):
    assert format_value(value, error) == text


def test_format_value_digits_and_round_trip():
    assert format_value(1.0625, digits=6) == "1.0625"
    assert format_value(0.428142, digits=6) == "0.428142"
    for v, e in [(1.06243, 0.00052), (-272.03, 0.61), (0.90108, 0.00028), (3.3e-6, 2.2e-8), (4.2e7, 3e5)]:
        pv, pe = parse_value(format_value(v, e))
        assert abs(pv - v) <= 0.51 * pe and pe == pytest.approx(e, rel=0.35)


def test_format_value_numpy_torch_complex():
    assert format_value(np.float64(1.06243), np.float32(0.00052)) == "1.0624(5)"
    assert format_value(np.int64(16)) == "16"
    assert format_value(torch.tensor(-272.03), torch.tensor(0.61)) == "-272.0(6)"
    assert format_value(np.array([0.3029])) == "0.3029"
    assert format_value(np.complex128(0.4986 - 0.499j), 0.0007) == "0.4986(7)-0.4990(7)i"
    assert format_value(0.5 + 0.25j, 0.001 + 0.002j) == "0.5000(10)+0.2500(20)i"
    assert format_value(float("nan")) == "nan"
    assert format_value(1.0, float("inf")) == "1 +- inf"


def test_format_value_rejects():
    with pytest.raises(ValueError, match="non-negative"):
        format_value(1.0, -0.1)
    with pytest.raises(ValueError, match="single number"):
        format_value(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="number"):
        format_value("1.0")


def t1_table():
    table = ReproTable("T1: two-peak model, cumulants after the backward process", ["k2", "k4", "k6", "k8"])
    table.add_row("Exact", [1.0625, -2, 16, -272], source="exact")
    table.add_paper_row("Variance expanding", ["1.0692(6)", "-2.001(2)", "16.03(3)", "-272.7(6)"])
    table.add_row("Variance expanding", np.array([1.06891, -2.0013, 16.021, -272.49]),
                  errors=[0.00061, 0.0021, 0.029, 0.63])
    table.add_row("Variance preserving", [1.0611, None, 15.73, -265.7], errors=[0.0005, None, 0.02, 0.6])
    return table


def test_repro_table_markdown_and_html():
    table = t1_table()
    md = table.to_markdown()
    assert "T1: two-peak model" in md and "| Exact | 1.0625 | -2 | 16 | -272 | exact |" in md
    assert "| Variance expanding | 1.0692(6) | -2.001(2) | 16.03(3) | -272.7(6) | paper |" in md
    assert "| Variance expanding | 1.0689(6) | -2.0013(21) | 16.021(29) | -272.5(6) | ours |" in md
    assert "\u2014" in md  # the empty cell
    page = table._repr_html_()
    assert page.startswith("<table") and "<caption" in page and "T1: two-peak model" in page
    for text in ("1.0625", "1.0692(6)", "-272.7(6)", "1.0689(6)", "lib-src-paper", "lib-src-ours", "lib-src-exact"):
        assert text in page
    assert str(table) == md


def test_repro_table_paper_strings_as_printed():
    table = ReproTable("T5", ["<M>", "chi_2"])
    table.add_paper_row("Training (HMC)", ["0.0012 +- 0.0007", "2.5160 +- 0.0457"])
    assert "0.0012 +- 0.0007" in table._repr_html_() and "&lt;M&gt;" in table._repr_html_()
    assert table.cell("Training (HMC)", "chi_2") == pytest.approx((2.516, 0.0457))


def test_repro_table_cells_and_errors():
    table = t1_table()
    assert table.cell("Exact", "k8") == (-272, None)
    assert table.cell("Variance expanding", "k4") == pytest.approx((-2.001, 0.002))  # first matching row
    assert table.cell("Variance preserving", "k4") is None
    with pytest.raises(KeyError):
        table.cell("nope", "k2")
    with pytest.raises(ValueError, match="4 columns"):
        table.add_row("short", [1.0, 2.0])
    with pytest.raises(ValueError, match="source"):
        table.add_row("x", [1, 2, 3, 4], source="theirs")
    with pytest.raises(ValueError, match="cannot parse"):
        table.add_paper_row("x", ["1", "2", "3", "four"])


def test_within_sigma():
    checks = Checks("T1")
    assert checks.within_sigma("T1 Data k2", 1.0624, 0.0005, 1.0625)
    assert not checks.within_sigma("T1 Data k4", -2.01, 0.002, -2.0, n_sigma=3.0)
    assert checks.within_sigma("T1 Data k4 5 sigma", -2.009, 0.002, -2.0, n_sigma=5.0)
    assert not checks.within_sigma("nan", float("nan"), 0.1, 1.0)
    with pytest.raises(CheckFailed) as info:
        checks.assert_all()
    msg = str(info.value)
    assert "T1 Data k4" in msg and "-2.0100(20)" in msg and "-2" in msg and "|ours - ref| <= 3 sigma" in msg
    assert "nan" in msg and "T1 Data k2" not in msg and "2 of 4 checks failed" in msg
    with pytest.raises(ValueError, match="error"):
        checks.within_sigma("no error", 1.0, None, 1.0)


def test_within_sigma_or_paper():
    checks = Checks("T1 VE")
    assert checks.within_sigma_or_paper("k2 close", 1.0627, 0.0006, 1.0625, "1.0692(6)")
    assert checks.within_sigma_or_paper("k2 like paper", 1.0695, 0.0006, 1.0625, "1.0692(6)")
    assert checks.within_sigma_or_paper("k2 tuple", 1.0680, 0.0006, 1.0625, (1.0692, 0.0006))
    assert not checks.within_sigma_or_paper("k2 worse", 1.0750, 0.0006, 1.0625, 1.0692)
    assert checks.results[0]["passed"] and not checks.results[-1]["passed"]
    with pytest.raises(CheckFailed) as info:
        checks.assert_all()
    msg = str(info.value)
    assert "k2 worse" in msg and "1.0750(6)" in msg and "exact 1.0625" in msg and "paper 1.069" in msg
    assert "no further from exact than the paper" in msg and "k2 close" not in msg


def test_within_sigma_or_floor():
    checks = Checks("T3 DM")
    assert checks.within_sigma_or_floor("sigma wins", 0.5025, 0.001, 0.5, floor=0.002)
    assert checks.within_sigma_or_floor("floor wins", 0.520, 0.001, 0.5, floor=0.021, floor_name="|paper - exact|")
    assert not checks.within_sigma_or_floor("both fail", 0.530, 0.001, 0.5, floor=0.021, floor_name="|paper - exact|")
    assert not checks.within_sigma_or_floor("nan", float("nan"), 0.1, 1.0, floor=1.0)
    with pytest.raises(CheckFailed) as info:
        checks.assert_all()
    msg = str(info.value)
    assert "both fail" in msg and "max(3 sigma, |paper - exact|)" in msg and "floor wins" not in msg
    assert "2 of 4 checks failed" in msg
    with pytest.raises(ValueError, match="floor"):
        checks.within_sigma_or_floor("bad floor", 1.0, 0.1, 1.0, floor=-1.0)


def test_close_and_true():
    checks = Checks("misc")
    assert checks.close("y_-", 0.30291, 0.3029, atol=1e-4)
    assert checks.close("rel", 101.0, 100.0, rtol=0.02)
    assert not checks.close("exact", 1.0 + 1e-12, 1.0)
    assert checks.true("finite", math.isfinite(1.0), "sample is finite")
    assert not checks.true("converged", np.bool_(False), "the chain has converged")
    with pytest.raises(CheckFailed) as info:
        checks.assert_all()
    msg = str(info.value)
    assert "exact: ours 1" in msg and "atol=0, rtol=0" in msg and "converged" in msg
    assert "the chain has converged" in msg and "y_-" not in msg
    with pytest.raises(ValueError, match="non-negative"):
        checks.close("bad", 1.0, 1.0, rtol=-1.0)


def test_assert_all_passes_and_html():
    checks = Checks("all good")
    checks.within_sigma("k2", 1.0624, 0.0005, 1.0625)
    checks.close("k8", -272.0, -272, atol=0.5)
    checks.assert_all()  # nothing failed: no exception
    page = checks._repr_html_()
    assert "1.0624(5)" in page and "1.0625" in page and "-272" in page and "2 of 2 checks passed" in page
    assert "pass" in page and "FAIL" not in page
    checks.true("bad", False, "must hold")
    assert "FAIL" in checks._repr_html_() and "**FAIL**" in checks.to_markdown()
    assert len(checks.failures) == 1 and issubclass(CheckFailed, AssertionError)


def test_split_complex_cells():
    from lib.infra.report import split_complex, split_complex_errors

    assert split_complex([0.5 - 0.5j, 2.0]) == [0.5, 0.5, 2.0, -0.0]
    assert split_complex_errors([0.1 + 0.2j]) == [0.1, 0.2]


# --- NaN never passes, never reaches a table (issue: reliability) -------------------------------------------------
def test_checks_cannot_pass_on_non_finite_input():
    from lib.infra.report import Checks

    c = Checks("nan")
    assert not c.within_sigma("inf error", 1.0, float("inf"), 0.0)
    assert not c.within_sigma("nan value", float("nan"), 0.1, 0.0)
    assert not c.within_sigma_or_floor("inf floor", 5.0, 0.1, 0.0, floor=float("inf"))
    assert not c.within_sigma_or_paper("nan paper", 1.0, 0.1, 1.0, float("nan"))
    assert not c.close("nan ref", 1.0, float("nan"), atol=1.0)
    assert not c.true("nan condition", float("nan"), "a NaN is not true")
    assert not c.true("nan numpy", np.float64("nan"), "a NaN is not true")
    assert c.true("numpy bool", np.bool_(True), "ok") and c.true("tensor bool", torch.tensor(True), "ok")
    assert all("non-finite input" in r["detail"] for r in c.results[:7])
    with pytest.raises(TypeError, match="must be a bool"):
        c.true("string", "yes", "no strings")
    with pytest.raises(CheckFailed):
        c.assert_all()


def test_a_table_refuses_non_finite_cells():
    t = ReproTable("t", ["a", "b"])
    with pytest.raises(ValueError, match=r"row 'ours', column 'b': the value is nan"):
        t.add_row("ours", [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"row 'ours', column 'a': the error is nan"):
        t.add_row("ours", [1.0, 2.0], [float("nan"), 0.1])
    t.add_row("ours", [1.0, None], [0.1, None])  # None is an empty cell


def test_training_records_show_where_each_network_comes_from():
    class Result:
        source, steps, wall_time = "store", 1500, 812.0
        losses = torch.full((1500,), 0.25, dtype=torch.float64)
        record = {"extra": {"machine": {"cpu": "Some CPU", "torch_threads": 1}}, "versions": {"torch": "2.13.0"},
                  "created": "2026-12-07T03:00:00+00:00"}

    table = TrainingRecords("networks", {"a": Result(), "b": Result()})
    text = table.to_markdown()
    assert "| a | store | 1,500 | 13.5 min | 541.3 ms | 0.25 | Some CPU, 1 thread | 2.13.0 | 2026-12-07 |" in text
    assert table.total_seconds == pytest.approx(1624.0)
    assert "<table" in table._repr_html_() and "Some CPU" in table._repr_html_()


def test_pull_in_combined_standard_errors():
    assert pull((1.3, 0.3), (0.9, 0.4)) == pytest.approx(0.8)
    assert pull((1.0, 0.5), 2.0) == pytest.approx(-2.0)  # an exact reference has no error
    assert pull((1.0, 0.5), (2.0, None)) == pytest.approx(-2.0)
    assert pull((np.float64(3.0), torch.tensor(1.0)), (0.0, 0.0)) == pytest.approx(3.0)
    for ours, ref, match in (((1.0, 0.0), 1.0, "combined error"), ((1.0, -0.1), 1.0, "error >= 0"),
                             ((math.nan, 0.1), 1.0, "finite"), ((1.0, 0.1, 2.0), 1.0, "pair")):
        with pytest.raises(ValueError, match=match):
            pull(ours, ref)
    with pytest.raises(TypeError, match="reference must be a number"):
        pull((1.0, 0.1), "x")
