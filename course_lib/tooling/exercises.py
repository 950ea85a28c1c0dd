"""Turn a solution notebook into the student's exercise notebook (nbgrader style).

In code cells, each block between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
becomes ``raise NotImplementedError(...)`` at the marker's indentation, and each
block between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` becomes a
comment (the grader puts the tests back). In markdown cells a solution block
becomes ``*Your answer here.*``. A grade cell carries the metadata
``grade={"exercise": NAME, "points": N}``; its points are earned when it runs
without error (see :mod:`course_lib.tooling.grading`).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from .notebooks import Problem, _clean, build_notebook, is_percent_source, notebook_text, percent_sources, repo_root, write_notebook

__all__ = [
    "STUB",
    "HIDDEN_STUB",
    "ANSWER_STUB",
    "grade_of",
    "strip_blocks",
    "make_exercise",
    "solution_path",
    "read_solution",
    "solution_stems",
    "generate",
]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code.")'
HIDDEN_STUB = "# (hidden tests run by the grader)"
ANSWER_STUB = "*Your answer here.*"

_MARKERS = {
    BEGIN_SOLUTION: ("solution", "begin"),
    END_SOLUTION: ("solution", "end"),
    BEGIN_HIDDEN: ("hidden", "begin"),
    END_HIDDEN: ("hidden", "end"),
}
# Layout hints jupytext keeps so the solution's .py round-trips; the student's copy needs none.
_JUPYTEXT_LAYOUT = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker")
_BEGIN = {"solution": BEGIN_SOLUTION, "hidden": BEGIN_HIDDEN}
_END = {"solution": END_SOLUTION, "hidden": END_HIDDEN}
# A line that looks like a marker but is not exactly one (typo, wrong case, ## instead of ###).
_NEAR_MISS = re.compile(r"#+\s*(begin|end)\s+(solutions?|hidden(\s+tests?)?)\s*", re.IGNORECASE)


def grade_of(cell, where: str = "cell") -> tuple[str, float] | None:
    """``(exercise, points)`` from a cell's ``grade`` metadata, None when it has none.

    Raises ValueError when the metadata is not ``{"exercise": str, "points": number >= 0}``.
    """
    grade = cell.get("metadata", {}).get("grade")
    if grade is None:
        return None
    ok = (
        isinstance(grade, dict)
        and isinstance(grade.get("exercise"), str)
        and grade["exercise"].strip()
        and isinstance(grade.get("points"), (int, float))
        and not isinstance(grade.get("points"), bool)
        and grade["points"] >= 0
    )
    if not ok:
        raise ValueError(
            f"{where}: grade metadata must look like grade={{\"exercise\": \"NAME\", \"points\": 2}}, "
            f"got {grade!r}"
        )
    return grade["exercise"], grade["points"]


def _find_blocks(source: str, where: str) -> list[tuple[str, int, int, str]]:
    """The marker blocks of ``source`` as ``(kind, begin_line, end_line, indent)``; checks balance."""
    blocks, open_block = [], None
    for number, line in enumerate(source.split("\n")):
        stripped = line.strip()
        marker = _MARKERS.get(stripped)
        if marker is None:
            if _NEAR_MISS.fullmatch(stripped):
                raise ValueError(
                    f"{where}, line {number + 1}: {stripped!r} looks like a marker but is not one; "
                    f"write exactly {BEGIN_SOLUTION!r}, {END_SOLUTION!r}, {BEGIN_HIDDEN!r} or {END_HIDDEN!r}"
                )
            continue
        kind, edge = marker
        if edge == "begin":
            if open_block is not None:
                raise ValueError(
                    f"{where}, line {number + 1}: {stripped!r} inside the block opened by "
                    f"{_BEGIN[open_block[0]]!r} on line {open_block[1] + 1}; markers cannot nest, "
                    f"close it with {_END[open_block[0]]!r} first"
                )
            open_block = (kind, number, line[: len(line) - len(line.lstrip())])
        else:
            if open_block is None or open_block[0] != kind:
                raise ValueError(
                    f"{where}, line {number + 1}: {stripped!r} without a matching {_BEGIN[kind]!r} before it"
                )
            blocks.append((kind, open_block[1], number, open_block[2]))
            open_block = None
    if open_block is not None:
        raise ValueError(
            f"{where}, line {open_block[1] + 1}: {_BEGIN[open_block[0]]!r} is never closed; "
            f"add {_END[open_block[0]]!r}"
        )
    return blocks


def strip_blocks(
    source: str, cell_type: str = "code", where: str = "cell", solutions: bool = True, hidden: bool = True
) -> str:
    """``source`` with its solution blocks stubbed (if ``solutions``) and hidden tests removed (if ``hidden``)."""
    lines = source.split("\n")
    for kind, begin, end, indent in reversed(_find_blocks(source, where)):
        if kind == "solution" and solutions:
            lines[begin : end + 1] = [indent + (STUB if cell_type == "code" else ANSWER_STUB)]
        elif kind == "hidden" and hidden:
            lines[begin : end + 1] = [indent + HIDDEN_STUB]
    return "\n".join(lines)


def make_exercise(nb: nbformat.NotebookNode, name: str | None = None, path=None) -> nbformat.NotebookNode:
    """The student version of solution notebook ``nb`` (a new notebook; ``nb`` is left as is).

    ``name`` is the solution notebook's stem, stored as metadata
    ``course = {"solution": name}`` so the grader finds the solution even when
    the student renames the file; ``path`` only names the file in error messages.
    Raises ValueError for unbalanced or nested markers, hidden tests outside a
    grade cell, a solution inside a grade cell, or a repeated exercise name.
    """
    label = str(path or name or "notebook")
    ex = copy.deepcopy(nb)
    seen: dict[str, int] = {}
    for index, cell in enumerate(ex.cells):
        where = f"{label}, cell {index + 1} (id {cell.get('id', '?')})"
        grade = grade_of(cell, where)
        if grade is not None:
            if cell.cell_type != "code":
                raise ValueError(f"{where}: grade metadata belongs on a code cell (the tests), not a {cell.cell_type} cell")
            if grade[0] in seen:
                raise ValueError(
                    f"{where}: exercise {grade[0]!r} is already graded by cell {seen[grade[0]] + 1}; "
                    "give each grade cell its own exercise name"
                )
            seen[grade[0]] = index
        if cell.cell_type not in ("code", "markdown"):
            continue
        kinds = {kind for kind, *_ in _find_blocks(cell.source, where)}
        if "hidden" in kinds and (cell.cell_type != "code" or grade is None):
            raise ValueError(
                f"{where}: hidden tests must sit in a code cell with grade metadata "
                "(grade={\"exercise\": \"NAME\", \"points\": N}); elsewhere the grader would never run them"
            )
        if "solution" in kinds and grade is not None:
            raise ValueError(
                f"{where}: a grade cell must not hold a solution (the grader runs it as written); "
                "move the solution to the cell above"
            )
        cell.source = strip_blocks(cell.source, cell.cell_type, where)
        for key in _JUPYTEXT_LAYOUT:
            cell.metadata.pop(key, None)
        if grade is not None:
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
    _clean(ex)
    if name:
        ex.metadata["course"] = {"solution": name}
    return ex


def solution_stems(solutions_dir: str | Path) -> list[str]:
    """Stems of the solution notebooks in ``solutions_dir`` (a py:percent source or an ``.ipynb``)."""
    folder = Path(solutions_dir)
    stems = {p.stem for p in percent_sources(folder)}
    if folder.is_dir():
        stems |= {p.stem for p in folder.glob("*.ipynb") if not p.name.startswith("_")}
    return sorted(stems)


def solution_path(solutions_dir: str | Path, stem: str) -> Path:
    """The file solution ``stem`` is read from: its py:percent source if there is one, else its ``.ipynb``."""
    folder = Path(solutions_dir)
    py, ipynb = folder / f"{stem}.py", folder / f"{stem}.ipynb"
    if py.exists() and is_percent_source(py):
        return py
    if ipynb.exists():
        return ipynb
    raise FileNotFoundError(f"no solution notebook {stem!r} in {folder} (looked for {py.name} and {ipynb.name})")


def read_solution(solutions_dir: str | Path, stem: str) -> nbformat.NotebookNode:
    """Solution notebook ``stem`` (see :func:`solution_path`)."""
    path = solution_path(solutions_dir, stem)
    return build_notebook(path) if path.suffix == ".py" else nbformat.read(str(path), as_version=4)


def generate(
    solutions_dir: str | Path = "solutions",
    exercises_dir: str | Path = "exercises",
    check: bool = False,
    root: str | Path | None = None,
) -> list[Problem]:
    """Write ``exercises/NN.ipynb`` for every solution notebook ``solutions/NN``.

    The solution is read from its py:percent source when there is one (so a
    stale ``solutions/NN.ipynb`` cannot hide a stale exercise), else from the
    ``.ipynb``. Relative folders are taken from ``root`` (default: the repo).
    Returns the stale or missing exercises (written unless ``check``) and the
    orphaned ones (generated exercises whose solution is gone: deleted unless
    ``check``; other ``.ipynb`` files there are reported, never deleted).
    """
    root = Path(root) if root is not None else repo_root()
    sol_dir = Path(solutions_dir) if Path(solutions_dir).is_absolute() else root / solutions_dir
    ex_dir = Path(exercises_dir) if Path(exercises_dir).is_absolute() else root / exercises_dir
    problems: list[Problem] = []
    stems = solution_stems(sol_dir)
    for stem in stems:
        source = solution_path(sol_dir, stem)
        solution = read_solution(sol_dir, stem)
        exercise = make_exercise(solution, name=stem, path=source)
        target = ex_dir / f"{stem}.ipynb"
        if not target.exists():
            reason = f"missing (solution {source.name})"
        elif target.read_text(encoding="utf-8") != notebook_text(exercise):
            reason = f"out of date with {source.name}"
        else:
            continue
        problems.append(Problem(target, reason))
        if not check:
            write_notebook(exercise, target)
    if ex_dir.is_dir():
        for orphan in sorted(ex_dir.glob("*.ipynb")):
            if orphan.stem in stems:
                continue
            try:
                generated = "course" in nbformat.read(str(orphan), as_version=4).metadata
            except Exception:
                generated = False
            if generated:
                problems.append(Problem(orphan, f"orphaned: no solutions/{orphan.stem} any more"))
                if not check:
                    orphan.unlink()
            else:
                problems.append(
                    Problem(
                        orphan,
                        f"not generated from solutions/: exercises are written from solutions/{orphan.stem}.py; "
                        "move it there (with its solutions and hidden tests) or delete it",
                        fixable=False,
                    )
                )
    return problems

