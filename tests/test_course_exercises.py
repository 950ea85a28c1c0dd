"""The course's own exercise notebooks: in sync with their sources, and graded right.

For every notebook in solutions/: the solution scores full marks and the generated,
untouched exercise scores zero on every exercise.
"""
from pathlib import Path

import pytest

from course_lib.tooling import exercises, grading, notebooks

ROOT = Path(__file__).resolve().parents[1]
STEMS = sorted(p.stem for p in (ROOT / "solutions").glob("[0-9]*.py"))


def test_generated_notebooks_are_up_to_date():
    problems = notebooks.sync(check=True, root=ROOT) + exercises.generate(
        "solutions", "exercises", check=True, root=ROOT)
    assert not problems, "run `python -m course_lib build`:\n" + "\n".join(f"{p.path}: {p.reason}" for p in problems)


def test_every_lesson_has_an_exercise_notebook():
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py"))
    assert lessons and set(lessons) == set(STEMS), f"lessons and solutions/ differ: {set(lessons) ^ set(STEMS)}"


@pytest.mark.parametrize("stem", STEMS)
def test_solution_full_marks_exercise_zero(stem):
    grader = grading.Grader(ROOT / "solutions", timeout=300)  # runs the solution once for the reference values
    try:
        sol = grader.grade_one(ROOT / "solutions" / f"{stem}.ipynb")
        ex = grader.grade_one(ROOT / "exercises" / f"{stem}.ipynb")
    finally:
        grader.close()
    assert sol and all(r.status != "error" for r in sol + ex)
    assert [r.exercise for r in sol] == [r.exercise for r in ex]
    missed = [(r.exercise, r.message) for r in sol if r.points != r.max_points]
    assert not missed, f"the solution of {stem} loses points: {missed}"
    assert sum(r.max_points for r in sol) > 0
    earned = [(r.exercise, r.points) for r in ex if r.points != 0]
    assert not earned, f"the untouched exercise {stem} earns points: {earned}"


def _code_only(text: str) -> str:
    """Source without comments, docstring-free lines of markdown, or any whitespace: for verbatim matching."""
    kept = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments and the markdown cells of a py:percent file
        kept.append(line.split("  #")[0])
    return "".join("".join(kept).split())


def _solution_bodies(text: str):
    """The code between each ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of a solution source."""
    bodies, inside, lines = [], False, []
    for line in text.splitlines():
        if "### BEGIN SOLUTION" in line:
            inside, lines = True, []
        elif "### END SOLUTION" in line:
            inside = False
            bodies.append("\n".join(lines))
        elif inside:
            lines.append(line)
    return bodies


@pytest.mark.parametrize("stem", STEMS)
def test_no_graded_solution_is_printed_in_its_lesson(stem):
    """An exercise asks for the next step of the lesson's idea, so its answer is not on the lesson's page:
    neither a whole solution body nor any returned expression of 20 characters or more."""
    lesson = _code_only((ROOT / "notebooks" / f"{stem}.py").read_text(encoding="utf-8"))
    bodies = _solution_bodies((ROOT / "solutions" / f"{stem}.py").read_text(encoding="utf-8"))
    assert bodies, f"solutions/{stem}.py has no ### BEGIN SOLUTION block"
    for body in bodies:
        code = _code_only(body)
        assert code not in lesson, f"the solution\n{body}\nof solutions/{stem}.py is printed in notebooks/{stem}.py"
        for line in body.splitlines():
            expr = line.strip()
            if expr.startswith("return "):
                expr = _code_only(expr[len("return "):])
                assert len(expr) < 20 or expr not in lesson, (
                    f"solutions/{stem}.py returns `{line.strip()}`, which notebooks/{stem}.py prints")


def test_the_verbatim_check_can_fail():
    lesson = _code_only("# %% [markdown]\n# text\nkl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)  # KL\n")
    body = _code_only("    kl = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)\n")
    assert body in lesson
    assert _solution_bodies("a\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nb") == ["x = 1"]


@pytest.mark.parametrize("stem", STEMS)
def test_every_hidden_test_records_what_it_judges(stem):
    """The grader judges recorded values in its own process (a student's kernel can patch any assert):
    each grade cell's hidden part must record at least one value."""
    solution = exercises.read_solution(ROOT / "solutions", stem)
    for cell in solution.cells:
        if "grade" not in cell.metadata:
            continue
        hidden = cell.source.split("### BEGIN HIDDEN TESTS", 1)[-1].split("### END HIDDEN TESTS", 1)[0]
        assert "### BEGIN HIDDEN TESTS" in cell.source and "record(" in hidden, (
            f"solutions/{stem}.py, exercise {cell.metadata['grade']['exercise']}: the hidden tests record no value "
            "(use course_lib.tooling.checks.record)")
