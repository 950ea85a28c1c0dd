"""``python -m course_lib release DIR``: what a student should get, without the solutions.

The course repository carries ``solutions/`` (the complete exercise notebooks and their
hidden tests). A student release holds the lessons, the exercise notebooks, ``course_lib``,
the tests that need no solutions, and the set-up files, so that ``make lab`` and ``make test``
work in it; it is checked to hold no solution block and no hidden test. The instructor's
notes (cells with ``slide_type: notes``: "Ask: ... Expected: ...") are stripped from the
lessons' sources and notebooks.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from .exercises import BEGIN_HIDDEN, BEGIN_SOLUTION
from .notebooks import PERCENT_CELL, build_notebook, is_notes, is_percent_source, write_notebook

__all__ = ["release", "strip_notes", "RELEASED", "WITHHELD_TESTS"]

RELEASED = ("notebooks", "exercises", "course_lib", "tests", "README.md", "CONTRIBUTING.md", "requirements.txt",
            "pyproject.toml", "Makefile", "conftest.py", ".gitignore")
WITHHELD_TESTS = ("test_course_exercises.py",)  # grades solutions/ against exercises/
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".course_cache", *WITHHELD_TESTS)
NOTE = """# Student release

This folder is the course without `solutions/`: lessons in `notebooks/`, exercises in `exercises/`.
Set up and run exactly as the README says (`make lab`, `make test`). Each exercise has a self-check
cell; your instructor grades the notebooks you hand in with the hidden tests.
"""

_NOTES_MARKER = re.compile(r'"slide_type"\s*:\s*"notes"')


def strip_notes(folder: Path) -> int:
    """Drop the instructor-notes cells from the py:percent sources and notebooks in ``folder``;
    each ``.ipynb`` with a source is rebuilt from the stripped source. Returns the cells dropped."""
    dropped = 0
    for py in sorted(folder.glob("*.py")):
        if not is_percent_source(py):
            continue
        kept, skipping = [], False
        for line in py.read_text(encoding="utf-8").splitlines(keepends=True):
            if PERCENT_CELL.match(line):
                skipping = bool(_NOTES_MARKER.search(line))
                dropped += skipping
            if not skipping:
                kept.append(line)
        py.write_text("".join(kept), encoding="utf-8")
        if py.with_suffix(".ipynb").exists():
            write_notebook(build_notebook(py), py.with_suffix(".ipynb"))
    for ipynb in sorted(folder.glob("*.ipynb")):
        if ipynb.with_suffix(".py").exists():
            continue
        nb = nbformat.read(str(ipynb), as_version=4)
        before = len(nb.cells)
        nb.cells = [c for c in nb.cells if not is_notes(c)]
        if len(nb.cells) != before:
            dropped += before - len(nb.cells)
            nbformat.write(nb, str(ipynb))
    return dropped


def release(folder: str | Path, root: str | Path, force: bool = False) -> int:
    """Copy the student's part of the course at ``root`` into ``folder``; returns the number of files."""
    root, folder = Path(root), Path(folder)
    if folder.resolve() == root.resolve() or root.resolve() in folder.resolve().parents:
        raise ValueError(f"{folder} is inside the course repository; choose a folder outside it")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise FileExistsError(f"{folder} is not empty; choose an empty folder or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    for name in RELEASED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=_SKIP, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, folder / name)
    for sub in ("notebooks", "exercises"):
        if (folder / sub).is_dir():
            strip_notes(folder / sub)
    (folder / "RELEASE.md").write_text(NOTE, encoding="utf-8")
    files = [p for p in folder.rglob("*") if p.is_file()]
    leaks = []
    for p in [*(folder / "notebooks").rglob("*"), *(folder / "exercises").rglob("*")]:
        if p.is_file() and p.suffix in (".py", ".ipynb"):
            text = p.read_text(encoding="utf-8", errors="replace")
            if BEGIN_SOLUTION in text or BEGIN_HIDDEN in text:
                leaks.append(str(p.relative_to(folder)))
    if leaks:
        raise ValueError(f"the release would hold solution or hidden-test blocks: {', '.join(leaks[:5])}")
    return len(files)
