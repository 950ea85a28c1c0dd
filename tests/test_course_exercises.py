"""The course's own exercise notebooks: in sync with their sources, and graded right.

For every notebook in solutions/: the solution scores full marks and the generated,
untouched exercise scores zero on every exercise.
"""
from pathlib import Path

import pytest

from course_lib import exercises, grading, notebooks

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
    sol = grading.grade_submission(ROOT / "solutions" / f"{stem}.ipynb", ROOT / "solutions", timeout=300)
    ex = grading.grade_submission(ROOT / "exercises" / f"{stem}.ipynb", ROOT / "solutions", timeout=300)
    assert sol and all(r.status != "error" for r in sol + ex)
    assert [r.exercise for r in sol] == [r.exercise for r in ex]
    missed = [(r.exercise, r.message) for r in sol if r.points != r.max_points]
    assert not missed, f"the solution of {stem} loses points: {missed}"
    assert sum(r.max_points for r in sol) > 0
    earned = [(r.exercise, r.points) for r in ex if r.points != 0]
    assert not earned, f"the untouched exercise {stem} earns points: {earned}"
