"""The mutation tester itself (course_lib.tooling.mutations), on the tiny fixture tests/fixtures/mutations.

`total`'s self-check catches a sign flip and a wrong dim but not a sum/mean swap: the report must say
exactly that. `count_up` has mutants that loop forever (stopped by the per-cell time limit) and one that
does not change the recorded value (not counted).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.tooling import mutations

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "mutations" / "solutions" / "01_tiny.py"
DEMO = ROOT / "tests" / "fixtures" / "solutions" / "01_demo.py"


@pytest.fixture(scope="module")
def report():
    [rep] = mutations.run([FIXTURE], cell_timeout=0.5, log=lambda *a: None)
    return rep


def _exercise(rep, name):
    [e] = [e for e in rep["exercises"] if e["name"] == name]
    return e


def test_plan_finds_solution_self_check_and_grade_cells():
    cells = mutations.read_cells(FIXTURE)
    plan = mutations.find_exercises(cells)
    assert [(e.name, len(e.solutions), len(e.checks)) for e in plan] == [("total", 1, 1), ("count_up", 1, 1)]
    assert all(e.solutions[0] < e.checks[0] < e.grade for e in plan)
    # the mutants of `total` are the mistakes listed, each once, and nothing outside the solution block
    kinds = sorted(m.kind for m in mutations.mutants_of(cells, plan[0]))
    assert kinds == sorted(["sign flipped", "sum -> mean", "dim -1 -> 0", "dim dropped", "off by one"]), kinds
    assert all(m.file_line == 17 for m in mutations.mutants_of(cells, plan[0]))  # `return x.sum(-1)`


def test_sign_flip_caught_sum_mean_swap_missed(report):
    assert report["error"] is None
    e = _exercise(report, "total")
    assert e["error"] is None and not e["unstable"]
    assert (e["mutants"], e["output_changing"], e["caught"], e["percent"]) == (5, 5, 4, 80.0)
    [missed] = e["missed"]
    assert missed["kind"] == "sum -> mean" and missed["line"] == 17
    assert missed["diff"] == ["- return x.sum(-1)", "+ return x.mean(-1)"]
    by_kind = {d["kind"]: d for d in e["details"]}
    assert by_kind["sign flipped"]["caught"] and "check the sign" in by_kind["sign flipped"]["caught_by"]
    assert by_kind["dim -1 -> 0"]["caught"] and "sum over dim=-1" in by_kind["dim -1 -> 0"]["caught_by"]
    text = mutations.format_notebook(report)
    assert "80.0 %   " in text and "< 90 %" in text
    assert "line 17   sum -> mean          return x.sum(-1)  =>  return x.mean(-1)" in text


def test_endless_mutants_time_out_and_same_output_is_not_counted(report):
    e = _exercise(report, "count_up")
    by_diff = {tuple(d["diff"]): d for d in e["details"]}
    endless = by_diff[("- i += 1", "+ i -= 1")]
    assert endless["caught"] and endless["output_changing"] and "CellTimeout" in endless["caught_by"]
    assert "CellTimeout" in endless["grade"]
    same = by_diff[("- i = 0", "+ i = 1")]  # counts to 3 all the same
    assert not same["output_changing"] and not same["caught"]
    assert e["output_changing"] == sum(d["output_changing"] for d in e["details"]) < e["mutants"]
    # the solution's values are still there after the mutants (the unmutated cells ran last)
    assert e["unstable"] is None


def test_cli_exit_status_and_json(tmp_path):
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, str(ROOT / "course_lib" / "tooling" / "mutations.py"), str(FIXTURE),
                           "--exercise", "total", "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # total is below the bar
    assert "below 90 %: 01_tiny:total 80.0 %" in proc.stdout
    [rep] = json.loads(out.read_text())
    assert [e["name"] for e in rep["exercises"]] == ["total"]


def test_sample_is_deterministic_and_keeps_order():
    cells = mutations.read_cells(FIXTURE)
    ex = mutations.find_exercises(cells)[0]
    every = mutations.mutants_of(cells, ex)
    two = mutations.sample(every, 2)
    assert len(two) == 2 and two == mutations.sample(mutations.mutants_of(cells, ex), 2)
    assert [every.index(m) for m in two] == sorted(every.index(m) for m in two)


def test_grade_cell_assert_check(tmp_path):
    assert mutations.grade_cell_asserts(FIXTURE) == []
    assert mutations.grade_cell_asserts(DEMO) == []  # the grader's fixture records only
    text = DEMO.read_text()
    text = text.replace("### BEGIN HIDDEN TESTS\nrecord(\"add(-1, 1)\"", "assert add(0, 0) == 0\n### BEGIN HIDDEN TESTS\n"
                        "assert add(-1, 1) == 0\nrecord(\"add(-1, 1)\"", 1)
    text = text.replace("record(\"double(t)\"", "assert (double(_t) == 2 * _t).all()\nrecord(\"double(t)\"", 1)
    bad = tmp_path / "01_demo.py"
    bad.write_text(text)
    problems = mutations.grade_cell_asserts(bad)
    assert any(p.startswith("add: assert on line") and "before its records" in p for p in problems), problems
    assert any(p.startswith("double: assert") for p in problems), problems


def _one_exercise(solution_source):
    cells = [mutations.Cell(0, solution_source, {}, 1), mutations.Cell(1, "pass", {}, None),
             mutations.Cell(2, "pass", {"grade": {"exercise": "e", "points": 1}}, None)]
    [ex] = mutations.find_exercises(cells)
    return {tuple(m.diff): m.kind for m in mutations.mutants_of(cells, ex)}


def test_wrong_variable_and_stale_count_mutants():
    by_diff = _one_exercise(
        "def transfer(model, x, y_source, y_target):\n"
        "    ### BEGIN SOLUTION\n"
        "    z = model(x, y_source)\n"
        "    new_size = 0.9 * size + 1\n"
        "    return z + new_size\n"
        "    ### END SOLUTION\n")
    assert by_diff[("- z = model(x, y_source)", "+ z = model(x, y_target)")] == "wrong variable"
    assert by_diff[("- z = model(x, y_source)", "+ z = model(y_source, x)")] == "swapped arguments"
    assert by_diff[("- new_size = 0.9 * size + 1", "+ new_size = 0.9 * size")] == "dropped term"
    # only close names are confused (x and z are not), and nothing outside the solution block is touched
    assert not any("model(z" in d or "+ def" in d for diff in by_diff for d in diff)


def test_negative_literals_and_ipython_lines():
    by_diff = _one_exercise("def f(t):\n    ### BEGIN SOLUTION\n    return t.sum(dim=-1)\n    ### END SOLUTION\n")
    news = sorted(d[1] for d in by_diff)
    assert news == sorted(["+ return -t.sum(dim=-1)", "+ return t.mean(dim=-1)", "+ return t.sum(dim=0)",
                           "+ return t.sum()", "+ return t.sum(dim=-2)"]), news
    assert mutations._without_magics("%matplotlib inline\nx = 1\n  !ls") == "pass\nx = 1\n  pass"


def test_no_grad_and_reduction_mutants():
    by_diff = _one_exercise(
        "def f(x, y, w):\n"
        "    ### BEGIN SOLUTION\n"
        "    with torch.no_grad():\n"
        "        w.mul_(0.5)\n"
        "    return F.mse_loss(x, y, reduction='sum')\n"
        "    ### END SOLUTION\n")
    kinds = set(by_diff.values())
    assert {"no_grad removed", "reduction sum -> mean", "dropped statement", "swapped arguments"} <= kinds, kinds
    [diff] = [d for d, k in by_diff.items() if k == "no_grad removed"]
    assert diff == ("- with torch.no_grad():", "+ if True:")
