"""Exercise generation: stubs, hidden tests removed, metadata, marker errors, staleness."""
import ast
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.tooling import exercises, notebooks
from course_lib.tooling.exercises import ANSWER_STUB, HIDDEN_STUB, STUB, generate, make_exercise, strip_blocks

FIXTURE = Path(__file__).parent / "fixtures" / "solutions" / "01_demo.py"


@pytest.fixture
def course(tmp_path):
    """A tiny course in tmp_path: solutions/01_demo.py, built."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(FIXTURE, tmp_path / "solutions" / "01_demo.py")
    notebooks.sync(("solutions",), root=tmp_path)
    generate("solutions", "exercises", root=tmp_path)
    return tmp_path


def code_cell(nb, start):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(start))


def grade_cell(nb, exercise):
    return next(c for c in nb.cells if c.metadata.get("grade", {}).get("exercise") == exercise)


def test_solution_blocks_become_stubs(course):
    ex = nbformat.read(course / "exercises" / "01_demo.ipynb", as_version=4)
    add = code_cell(ex, "def add")
    assert add.source == 'def add(a, b):\n    """Return a + b."""\n    ' + STUB
    assert code_cell(ex, "def square").source == "def square(x):\n    " + STUB
    namespace = {}
    exec(add.source, namespace)
    with pytest.raises(NotImplementedError, match="Exercise: replace this line"):
        namespace["add"](1, 2)
    for cell in ex.cells:  # every code cell still parses
        if cell.cell_type == "code":
            ast.parse(cell.source)
    assert ex.cells[-1].source.endswith(ANSWER_STUB)
    assert "(-x)(-x)" not in ex.cells[-1].source


def test_hidden_tests_are_removed_and_visible_part_kept(course):
    ex = nbformat.read(course / "exercises" / "01_demo.ipynb", as_version=4)
    text = (course / "exercises" / "01_demo.ipynb").read_text()
    assert "BEGIN HIDDEN" not in text and "add(-1, 1)" not in text and "square(-4)" not in text
    assert "BEGIN SOLUTION" not in text
    assert grade_cell(ex, "add").source == "# add is graded on inputs you do not see\n" + HIDDEN_STUB
    assert grade_cell(ex, "square").source == HIDDEN_STUB
    assert grade_cell(ex, "add").metadata["grade"] == {"exercise": "add", "points": 2}
    assert grade_cell(ex, "add").metadata["editable"] is False


def test_exercise_metadata_and_clean_cells(course):
    ex = nbformat.read(course / "exercises" / "01_demo.ipynb", as_version=4)
    assert ex.metadata["course"] == {"solution": "01_demo"}
    assert ex.metadata["kernelspec"]["name"] == "python3"
    assert [c.id for c in ex.cells] == [f"cell-{i:04d}" for i in range(len(ex.cells))]
    assert all(c.outputs == [] and c.execution_count is None for c in ex.cells if c.cell_type == "code")
    assert not any("lines_to_next_cell" in c.metadata for c in ex.cells)


def test_generate_is_deterministic_and_check_detects_drift(course):
    target = course / "exercises" / "01_demo.ipynb"
    before = target.read_bytes()
    assert generate("solutions", "exercises", root=course) == []
    assert target.read_bytes() == before
    assert generate("solutions", "exercises", check=True, root=course) == []

    # Editing the solution source makes the exercise stale, even before the solution .ipynb is rebuilt.
    src = course / "solutions" / "01_demo.py"
    src.write_text(src.read_text().replace("Return `x` squared.", "Return `x` times `x`."))
    stale = generate("solutions", "exercises", check=True, root=course)
    assert [(p.path, p.fixable) for p in stale] == [(target, True)]
    assert "out of date" in stale[0].reason
    assert target.read_bytes() == before  # check writes nothing
    assert len(generate("solutions", "exercises", root=course)) == 1
    assert "times `x`" in target.read_text()
    assert generate("solutions", "exercises", check=True, root=course) == []

    target.unlink()
    assert ["missing" in p.reason for p in generate("solutions", "exercises", check=True, root=course)] == [True]


def test_orphaned_exercises(course):
    ex_dir = course / "exercises"
    shutil.copy(ex_dir / "01_demo.ipynb", ex_dir / "02_gone.ipynb")  # generated, solution gone
    nbformat.write(nbformat.v4.new_notebook(), ex_dir / "03_hand.ipynb")  # not generated
    found = {p.path.name: p.fixable for p in generate("solutions", "exercises", check=True, root=course)}
    assert found == {"02_gone.ipynb": True, "03_hand.ipynb": False}
    generate("solutions", "exercises", root=course)
    assert not (ex_dir / "02_gone.ipynb").exists() and (ex_dir / "03_hand.ipynb").exists()


def test_whole_function_body_and_indentation():
    src = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        x = 1\n        return x\n        ### END SOLUTION\n"
    assert strip_blocks(src) == f"class A:\n    def f(self):\n        {STUB}\n"
    assert strip_blocks("### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS") == HIDDEN_STUB
    assert strip_blocks("### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS", hidden=False).count("assert 1") == 1


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i:04d}"
    return nb


@pytest.mark.parametrize(
    "source, words",
    [
        ("### BEGIN SOLUTION\nx = 1\n", ["never closed"]),
        ("x = 1\n### END SOLUTION\n", ["without a matching"]),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION", ["cannot nest"]),
        ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS\n", ["without a matching"]),
        ("## BEGIN SOLUTION\nx = 1\n## END SOLUTION\n", ["looks like a marker"]),
    ],
)
def test_bad_markers_name_file_and_cell(source, words):
    nb = _nb(nbformat.v4.new_markdown_cell("intro"), nbformat.v4.new_code_cell(source))
    with pytest.raises(ValueError) as info:
        make_exercise(nb, name="07_bad", path="solutions/07_bad.py")
    message = str(info.value)
    assert "solutions/07_bad.py" in message and "cell 2" in message
    for word in words:
        assert word in message


def test_misplaced_hidden_tests_and_grade_metadata():
    hidden = "### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"
    with pytest.raises(ValueError, match="grade metadata"):
        make_exercise(_nb(nbformat.v4.new_code_cell(hidden)), name="x")
    bad = nbformat.v4.new_code_cell("assert True", metadata={"grade": {"exercise": "e", "points": "two"}})
    with pytest.raises(ValueError, match="grade metadata must look like"):
        make_exercise(_nb(bad), name="x")
    g = {"grade": {"exercise": "e", "points": 1}}
    twice = _nb(nbformat.v4.new_code_cell("pass", metadata=dict(g)), nbformat.v4.new_code_cell("pass", metadata=dict(g)))
    with pytest.raises(ValueError, match="already graded"):
        make_exercise(twice, name="x")
    leak = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", metadata=dict(g))
    with pytest.raises(ValueError, match="must not hold a solution"):
        make_exercise(_nb(leak), name="x")


def test_make_exercise_leaves_input_alone():
    nb = _nb(nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"))
    before = nbformat.writes(nb)
    ex = make_exercise(nb, name="x")
    assert nbformat.writes(nb) == before
    assert STUB in ex.cells[0].source and ex.metadata.course.solution == "x"
    assert exercises.solution_stems(Path("/nonexistent")) == []
