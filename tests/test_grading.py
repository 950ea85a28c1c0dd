"""Grading round trips: real kernels, exact points, time limits, unreadable submissions, CSV."""
import copy
import csv
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from course_lib import exercises, grading, notebooks
from course_lib.__main__ import main

FIXTURE = Path(__file__).parent / "fixtures" / "solutions" / "01_demo.py"
ADD = "def add(a, b):\n    return a + b"
SQUARE = "def square(x):\n    return x * x"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """solutions/ and exercises/ built from the fixture, and an empty subs/ folder."""
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "subs").mkdir()
    shutil.copy(FIXTURE, root / "solutions" / "01_demo.py")
    notebooks.sync(("solutions",), root=root)
    exercises.generate("solutions", "exercises", root=root)
    return root


def exercise(course):
    return nbformat.read(course / "exercises" / "01_demo.ipynb", as_version=4)


def solve(nb, name, code):
    """Put ``code`` in place of the stubbed function ``name``."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"def {name}("))
    cell.source = code
    return nb


def grade_index(nb, name):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("grade", {}).get("exercise") == name)


def save(course, nb, name):
    path = course / "subs" / name
    nbformat.write(nb, path)
    return str(path)


def points(results):
    return {(Path(r.submission).name, r.exercise): (r.points, r.max_points) for r in results}


@pytest.fixture(scope="module")
def batch(course):
    """Grade several submissions in one call (each in its own kernel)."""
    subs = {}
    shutil.copy(course / "solutions" / "01_demo.ipynb", course / "subs" / "01_demo.ipynb")
    subs["solution"] = str(course / "subs" / "01_demo.ipynb")  # found by file name (no metadata)
    subs["untouched"] = save(course, exercise(course), "untouched.ipynb")  # found by metadata
    subs["one_right"] = save(course, solve(exercise(course), "square", SQUARE), "one_right.ipynb")

    # add passes the visible self-check but not the hidden tests; the student also guts the grade
    # cell and raises its points: the grader must run the real tests for the real points.
    nb = solve(solve(exercise(course), "add", "def add(a, b):\n    return 3"), "square", SQUARE)
    nb.cells[grade_index(nb, "add")].source = "pass"
    nb.cells[grade_index(nb, "add")].metadata["grade"]["points"] = 100
    nb.cells[grade_index(nb, "square")].metadata["tags"] = ["skip-execution"]
    subs["tampered"] = save(course, nb, "tampered.ipynb")

    # Grade cell deleted: it is put back at the end.
    nb = solve(solve(exercise(course), "add", ADD), "square", SQUARE)
    del nb.cells[grade_index(nb, "square")]
    subs["deleted"] = save(course, nb, "deleted_grade_cell.ipynb")

    # The kernel dies after exercise 1.
    nb = solve(solve(exercise(course), "add", ADD), "square", SQUARE)
    nb.cells.insert(grade_index(nb, "add") + 1, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    subs["crash"] = save(course, nb, "crash.ipynb")

    (course / "subs" / "garbage.ipynb").write_text("this is not a notebook\n")
    subs["garbage"] = str(course / "subs" / "garbage.ipynb")
    subs["missing"] = str(course / "subs" / "does_not_exist.ipynb")
    order = ["solution", "missing", "untouched", "one_right", "garbage", "tampered", "deleted", "crash"]
    start = time.monotonic()
    results = grading.grade([subs[k] for k in order], solutions_dir=course / "solutions", timeout=60, quiet=True)
    return subs, results, time.monotonic() - start


def test_solution_scores_full_marks(batch):
    assert {k: v for k, v in points(batch[1]).items() if k[0] == "01_demo.ipynb"} == {
        ("01_demo.ipynb", "add"): (2, 2),
        ("01_demo.ipynb", "square"): (3, 3),
    }


def test_untouched_exercise_scores_zero(batch):
    rows = [r for r in batch[1] if r.submission == batch[0]["untouched"]]
    assert [(r.exercise, r.points, r.max_points) for r in rows] == [("add", 0, 2), ("square", 0, 3)]
    assert all("NotImplementedError" in r.message for r in rows)


def test_one_exercise_right_scores_its_points(batch):
    got = points([r for r in batch[1] if r.submission == batch[0]["one_right"]])
    assert got == {("one_right.ipynb", "add"): (0, 2), ("one_right.ipynb", "square"): (3, 3)}


def test_tampered_grade_cell_is_graded_by_the_hidden_tests(batch):
    got = points([r for r in batch[1] if r.submission == batch[0]["tampered"]])
    assert got == {("tampered.ipynb", "add"): (0, 2), ("tampered.ipynb", "square"): (3, 3)}
    [add] = [r for r in batch[1] if r.submission == batch[0]["tampered"] and r.exercise == "add"]
    assert add.message.startswith("AssertionError")


def test_deleted_grade_cell_is_appended(batch):
    got = points([r for r in batch[1] if r.submission == batch[0]["deleted"]])
    assert got == {("deleted_grade_cell.ipynb", "add"): (2, 2), ("deleted_grade_cell.ipynb", "square"): (3, 3)}


def test_dead_kernel_keeps_earlier_points(batch):
    rows = [r for r in batch[1] if r.submission == batch[0]["crash"]]
    assert [(r.exercise, r.points) for r in rows] == [("add", 2), ("square", 0)]
    assert "kernel died" in rows[1].message


def test_unreadable_submissions_are_named_and_others_graded(batch, course):
    subs, results, _ = batch
    errors = [r for r in results if r.status == "error"]
    assert [(r.submission, r.exercise) for r in errors] == [
        (subs["missing"], "<error: file not found>"),
        (subs["garbage"], "<error: not a valid notebook>"),
    ]
    assert len(results) == 2 + 2 * 6  # two error rows, two exercises for each of the six others


def test_errors_go_to_stderr_by_name(course, capsys):
    missing = str(course / "subs" / "nope.ipynb")
    [row] = grading.grade([missing], solutions_dir=course / "solutions")
    assert row.status == "error"
    captured = capsys.readouterr()
    assert f"error: {missing}: file not found" in captured.err
    assert "could not grade" in captured.out


def test_infinite_loop_keeps_points_and_stops_in_time(course):
    # A loop that swallows the per-cell interrupt (and prints forever): the wall-clock limit still ends it.
    stubborn = "while True:\n    try:\n        while True:\n            print('x' * 100)\n    except KeyboardInterrupt:\n        pass"
    nb = solve(solve(exercise(course), "add", ADD), "square", SQUARE)
    nb.cells.insert(grade_index(nb, "add") + 1, nbformat.v4.new_code_cell(stubborn))
    path = save(course, nb, "stubborn_loop.ipynb")
    start = time.monotonic()
    results = grading.grade([path], solutions_dir=course / "solutions", timeout=8, cell_timeout=2, quiet=True)
    elapsed = time.monotonic() - start
    assert [(r.exercise, r.points, r.max_points) for r in results] == [("add", 2, 2), ("square", 0, 3)]
    assert "time limit" in results[1].message
    assert elapsed < 8 + 60  # the limit plus kernel start and shutdown

    # A plain loop is interrupted at the per-cell limit and the later exercise still counts.
    nb = solve(solve(exercise(course), "add", ADD), "square", SQUARE)
    nb.cells.insert(grade_index(nb, "add") + 1, nbformat.v4.new_code_cell("while True:\n    pass"))
    path = save(course, nb, "loop.ipynb")
    results = grading.grade([path], solutions_dir=course / "solutions", timeout=60, cell_timeout=2, quiet=True)
    assert [(r.exercise, r.points) for r in results] == [("add", 2), ("square", 3)]


def test_cli_csv_and_exit_codes(course, capsys):
    sub = str(course / "subs" / "cli_untouched.ipynb")
    nbformat.write(exercise(course), sub)
    out = course / "grades.csv"
    assert main(["grade", sub, "--csv", str(out), "--solutions", str(course / "solutions")]) == 0
    text = capsys.readouterr().out
    assert "total" in text and "0/5" in text
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["submission", "exercise", "points", "max_points"],
        [sub, "add", "0", "2"],
        [sub, "square", "0", "3"],
    ]

    garbage = course / "subs" / "cli_garbage.ipynb"
    garbage.write_text("{")
    assert main(["grade", str(garbage), "--csv", str(out), "--solutions", str(course / "solutions")]) == 2
    captured = capsys.readouterr()
    assert str(garbage) in captured.err
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [
            ["submission", "exercise", "points", "max_points"],
            [str(garbage), "<error: not a valid notebook>", "0", "0"],
        ]


def test_graded_notebook_and_solution_lookup(course):
    solution = exercises.read_solution(course / "solutions", "01_demo")
    sub = exercise(course)
    sub.metadata["course"] = {"solution": "gone"}
    assert grading.find_solution(sub, "01_demo_alice.ipynb", course / "solutions") == "01_demo"
    with pytest.raises(LookupError, match="01_demo"):
        grading.find_solution(sub, "homework.ipynb", course / "solutions")
    bad = copy.deepcopy(sub)
    bad.cells.append(nbformat.v4.new_code_cell("pass", metadata={"grade": {"exercise": "bogus", "points": 9}}))
    nb, where = grading.graded_notebook(bad, solution)
    assert set(where) == {"add", "square"}
    assert "add(-1, 1)" in nb.cells[where["add"][0]].source and where["square"][1] == 3
    assert "grade" not in nb.cells[-1].metadata
