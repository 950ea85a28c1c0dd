"""What a student hands in, for the grader's tests (test_grading, test_sandbox): the fixture course's
three exercises solved honestly, and helpers to put any code in place of a stub."""
import nbformat

ADD = "def add(a, b):\n    return a + b"
SQUARE = "def square(x):\n    return x * x"
DOUBLE = "import torch\n\n\ndef double(t):\n    return 2 * t"
FULL = {"add": 2, "square": 3, "double": 1}


def exercise(course, stem="01_demo"):
    """The student version of exercise notebook ``stem`` of the fixture course."""
    return nbformat.read(course / "exercises" / f"{stem}.ipynb", as_version=4)


def solve(nb, name, code):
    """Put ``code`` in place of the stubbed function ``name``."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
    cell.source = code
    return nb


def honest(course):
    """The three exercises of 01_demo solved correctly."""
    return solve(solve(solve(exercise(course), "add", ADD), "square", SQUARE), "double", DOUBLE)


def grade_index(nb, name):
    """The index of exercise ``name``'s grade cell."""
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("grade", {}).get("exercise") == name)
