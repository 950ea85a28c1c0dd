"""Notebook generation from py:percent sources, the drift checks, and the command line."""
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import nbformat
import pytest

import course_lib
from course_lib.tooling import notebooks
from course_lib.__main__ import main
from course_lib.tooling.notebooks import build_notebook, sync

FIXTURE = Path(__file__).parent / "fixtures" / "solutions" / "01_demo.py"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def course(tmp_path):
    """A tiny course in tmp_path: solutions/01_demo.py and notebooks/01_intro.py, not built yet."""
    (tmp_path / "solutions").mkdir()
    (tmp_path / "notebooks").mkdir()
    shutil.copy(FIXTURE, tmp_path / "solutions" / "01_demo.py")
    (tmp_path / "notebooks" / "01_intro.py").write_text(
        '# %% [markdown] slideshow={"slide_type": "slide"}\n# # Intro\n\n# %%\nx = 1\nassert x == 1\n'
    )
    (tmp_path / "notebooks" / "__init__.py").write_text('"""Not a notebook."""\n')
    (tmp_path / "notebooks" / "_draft.py").write_text("# %%\nx = 1\n")
    (tmp_path / "notebooks" / "helpers.py").write_text("def f():\n    return 1\n")
    return tmp_path


def test_build_notebook_metadata_ids_and_grade_roundtrip():
    nb = build_notebook(FIXTURE)
    assert nb.metadata == {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "rise": notebooks.RISE,
    }
    assert nb.metadata["rise"]["scroll"] is True, "slides taller than the screen must scroll"
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [c.id for c in nb.cells] == [f"cell-{i:04d}" for i in range(len(nb.cells))]
    grades = [c.metadata["grade"] for c in nb.cells if "grade" in c.metadata]
    assert grades == [{"exercise": "add", "points": 2}, {"exercise": "square", "points": 3},
                      {"exercise": "double", "points": 1}]
    assert nb.cells[1].metadata["slideshow"] == {"slide_type": "skip"}
    assert notebooks.notebook_text(nb) == notebooks.notebook_text(build_notebook(FIXTURE))


def test_sync_writes_deterministic_files_and_skips_modules(course):
    problems = sync(root=course)
    assert sorted(p.path.name for p in problems) == ["01_demo.ipynb", "01_intro.ipynb"]
    assert all(p.fixable and p.reason == "missing" for p in problems)
    assert sorted(p.name for p in (course / "notebooks").glob("*.ipynb")) == ["01_intro.ipynb"]
    text = (course / "solutions" / "01_demo.ipynb").read_text()
    assert text.endswith("}\n") and text.startswith('{\n "cells": [\n  {\n')  # indent 1, trailing newline
    data = json.loads(text)
    assert (data["nbformat"], data["nbformat_minor"]) == (4, 5) and "jupytext" not in data["metadata"]
    before = {p: p.read_bytes() for p in course.rglob("*.ipynb")}
    assert sync(root=course) == [] and sync(root=course, check=True) == []
    assert {p: p.read_bytes() for p in course.rglob("*.ipynb")} == before


def test_check_reports_edited_source_outputs_and_orphans(course):
    sync(root=course)
    target = course / "notebooks" / "01_intro.ipynb"
    before = target.read_bytes()
    src = course / "notebooks" / "01_intro.py"
    time.sleep(0.01)
    src.write_text(src.read_text() + "\n# %%\ny = 2\n")
    stale = sync(root=course, check=True)
    assert [(p.path, p.fixable) for p in stale] == [(target, True)]
    assert "out of date with 01_intro.py" in stale[0].reason
    assert target.read_bytes() == before  # check wrote nothing
    sync(root=course)
    assert nbformat.read(target, as_version=4).cells[-1].source == "y = 2"
    assert sync(root=course, check=True) == []

    # Outputs in the working copy are the user's: not drift, kept by a build, cleared on request.
    nb = nbformat.read(target, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 1
    nbformat.write(nb, target)
    assert sync(root=course, check=True) == [] and sync(root=course) == []
    assert notebooks.carries_outputs(target)
    assert ["outputs cleared" in p.reason for p in sync(root=course, clear=True)] == [True]
    assert not notebooks.carries_outputs(target)

    # An .ipynb without a .py source cannot be fixed by the build.
    nbformat.write(nbformat.v4.new_notebook(), course / "notebooks" / "02_lost.ipynb")
    orphans = sync(root=course, check=True)
    assert [(p.path.name, p.fixable) for p in orphans] == [("02_lost.ipynb", False)]
    assert "has no 02_lost.py source" in orphans[0].reason


def test_sync_does_not_clobber_an_ipynb_edited_in_jupyter(course):
    sync(root=course)
    target = course / "notebooks" / "01_intro.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[1].source = "x = 2  # edited in JupyterLab without pairing"
    nbformat.write(nb, target)
    old = time.time() - 60
    os.utime(course / "notebooks" / "01_intro.py", (old, old))
    [problem] = sync(root=course)
    assert not problem.fixable and "jupytext --sync" in problem.reason
    assert "edited in JupyterLab" in target.read_text()
    sync(root=course, force=True)
    assert "edited in JupyterLab" not in target.read_text()


def test_is_percent_source(tmp_path):
    header = tmp_path / "h.py"
    header.write_text("# ---\n# jupyter:\n#   kernelspec:\n#     name: python3\n# ---\n\n# %%\nx = 1\n")
    plain = tmp_path / "p.py"
    plain.write_text("import os\n# %%\n")
    assert notebooks.is_percent_source(header) and not notebooks.is_percent_source(plain)


def test_cli_build_check_and_exercises_check(course, capsys):
    assert main(["build", "--check", "--root", str(course)]) == 1
    out = capsys.readouterr().out
    assert "stale: solutions/01_demo.ipynb: missing" in out and "stale: exercises/01_demo.ipynb" in out
    assert "python -m course_lib build" in out.strip().splitlines()[-1]
    assert not (course / "exercises").exists()

    assert main(["build", "--root", str(course)]) == 0
    capsys.readouterr()
    assert main(["build", "--check", "--root", str(course)]) == 0
    assert main(["notebooks", "--check", "--root", str(course)]) == 0
    assert main(["exercises", "--check", "--root", str(course)]) == 0
    capsys.readouterr()

    src = course / "solutions" / "01_demo.py"
    src.write_text(src.read_text().replace("    return a + b\n", "    return b + a\n"))
    assert main(["exercises", "--check", "--root", str(course)]) == 0  # the stub hides the solution change
    src.write_text(src.read_text().replace("Return the sum", "Return the total"))
    assert main(["exercises", "--check", "--root", str(course)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "exercises/" in last and "out of date" in last and "python -m course_lib build" in last
    assert main(["notebooks", "--check", "--root", str(course)]) == 1
    capsys.readouterr()

    # The pre-stop hook runs this as a command: it must exit non-zero.
    proc = subprocess.run(
        [sys.executable, "-m", "course_lib", "exercises", "--check", "--root", str(course)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "out of date" in proc.stdout.strip().splitlines()[-1]


def test_cli_reports_broken_markers(course, capsys):
    src = course / "solutions" / "01_demo.py"
    src.write_text(src.read_text().replace("    ### END SOLUTION\n", "", 1))
    assert main(["exercises", "--root", str(course)]) == 1
    captured = capsys.readouterr()
    assert "01_demo.py, cell" in captured.err and "never closed" in captured.err


def test_cli_bench_delegates(monkeypatch):
    seen = []
    fake = types.ModuleType("course_lib.tooling.bench")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "course_lib.tooling.bench", fake)
    monkeypatch.setattr(course_lib, "bench", fake, raising=False)
    assert main(["bench", "--quick", "--out", "x.json"]) == 3
    assert seen == [["--quick", "--out", "x.json"]]


def test_repo_jupytext_pairing_config():
    for folder in ("notebooks", "solutions"):
        text = (REPO / folder / "jupytext.toml").read_text()
        assert 'formats = "ipynb,py:percent"' in text


def test_top_level_holds_what_the_lessons_import():
    """course_lib's top level is what lessons and exercises import; the tooling lives in course_lib.tooling."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    top = {p.stem for p in (root / "course_lib").glob("*.py") if not p.stem.startswith("_")}
    top |= {p.name for p in (root / "course_lib").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top -= {"tooling"}
    sources = [*root.glob("notebooks/*.py"), *root.glob("solutions/*.py"),
               *[p for p in (root / "course_lib").rglob("*.py") if "tooling" not in p.parts]]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    used = set(re.findall(r"course_lib\.(\w+)", text)) | set(re.findall(r"from course_lib import ([\w, ]+)", text))
    used |= set(re.findall(r"from \.+(\w+)", text))
    names = {n.strip().split(" as ")[0] for group in used for n in group.split(",")}
    assert not {"grading", "notebooks", "exercises", "sandbox", "slides", "site", "pretrain"} & top
    unused = sorted(m for m in top if m not in names)
    assert not unused, f"top-level modules no lesson or library module imports (move them to course_lib.tooling?): {unused}"


def _save_as_jupyterlab(path: Path, run: bool = True, unfold_notes: bool = False) -> None:
    """What JupyterLab 4 writes when a user opens the notebook, runs every cell and saves:
    kernel metadata, outputs, execution counts, widget state, view state (and nbformat 4.5)."""
    data = json.loads(path.read_text())
    data["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    data["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
        "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.2"}
    data["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                  "version_minor": 0}}
    count = 0
    for cell in data["cells"]:
        if cell["cell_type"] == "code" and run:
            count += 1
            cell["execution_count"] = count
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": [f"ran {count}\n"]},
                               {"data": {"text/plain": ["42"]}, "execution_count": count, "metadata": {},
                                "output_type": "execute_result"}]
            cell["metadata"]["scrolled"] = True
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-12-06T20:00:00.000Z"}
        if unfold_notes and cell["metadata"].get("slideshow", {}).get("slide_type") == "notes":
            cell["metadata"]["jupyter"] = {"source_hidden": False}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _notes_course(course: Path) -> Path:
    src = course / "notebooks" / "01_intro.py"
    src.write_text(src.read_text() + '\n# %% [markdown] slideshow={"slide_type": "notes"}\n# Ask: why? Expected: because.\n')
    return src


def test_saving_in_jupyterlab_keeps_the_checks_green_and_build_keeps_the_outputs(course):
    """Editing safety, tested as a user does it: build, open + Run All + save (JupyterLab's JSON), check, build."""
    _notes_course(course)
    assert main(["build", "--root", str(course)]) == 0
    target = course / "notebooks" / "01_intro.ipynb"
    _save_as_jupyterlab(target)
    saved = target.read_text()
    assert sync(root=course, check=True) == []  # the drift check compares sources, not outputs/kernel metadata
    assert main(["build", "--check", "--root", str(course)]) == 0
    assert sync(root=course) == [] and target.read_text() == saved  # the build leaves the saved outputs alone

    # A source edit rewrites the notebook: the outputs of the cells whose code did not change stay (RISE needs them).
    src = course / "notebooks" / "01_intro.py"
    src.write_text(src.read_text().replace("# # Intro", "# # Introduction"))
    [stale] = sync(root=course, check=True)
    assert "out of date" in stale.reason
    [wrote] = sync(root=course)
    assert "outputs of unchanged cells kept" in wrote.reason
    nb = nbformat.read(target, as_version=4)
    assert nb.cells[0].source == "# Introduction"
    assert nb.cells[1].outputs[0].text == "ran 1\n" and nb.cells[1].execution_count == 1
    assert sync(root=course, check=True) == []
    src.write_text(src.read_text().replace("assert x == 1", "assert x == 1, x"))
    sync(root=course)
    assert nbformat.read(target, as_version=4).cells[1].outputs == []  # changed code: its old output is gone
    assert main(["build", "--clear-outputs", "--root", str(course)]) == 0
    assert not notebooks.carries_outputs(target) and sync(root=course, check=True) == []

    # Unfolding the notes (and saving) is a change the build undoes, keeping the outputs.
    _save_as_jupyterlab(target, unfold_notes=True)
    [unfolded] = sync(root=course, check=True)
    assert "out of date" in unfolded.reason
    sync(root=course)
    nb = nbformat.read(target, as_version=4)
    assert nb.cells[-1].metadata["jupyter"] == {"source_hidden": True} and nb.cells[1].outputs


def test_outputs_staged_in_git_are_reported(course):
    """Outputs may live in the working copy (RISE), but a commit must not carry them."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    sync(root=course)
    run = lambda *a: subprocess.run([git, *a], cwd=course, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", "notebooks/01_intro.ipynb")
    target = course / "notebooks" / "01_intro.ipynb"
    _save_as_jupyterlab(target)
    assert sync(root=course, check=True) == []  # saved, not staged: fine
    run("add", "notebooks/01_intro.ipynb")
    [staged] = sync(root=course, check=True)
    assert "staged for commit" in staged.reason and "--clear-outputs" in staged.reason
    sync(root=course, clear=True)
    run("add", "notebooks/01_intro.ipynb")
    assert sync(root=course, check=True) == []


def test_instructor_notes_are_folded_for_students_and_stripped_by_release(course, tmp_path_factory):
    _notes_course(course)
    assert main(["build", "--root", str(course)]) == 0
    nb = nbformat.read(course / "notebooks" / "01_intro.ipynb", as_version=4)
    [notes] = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") == "notes"]
    assert notes.metadata["jupyter"] == {"source_hidden": True}  # folded in JupyterLab
    assert all("jupyter" not in c.metadata for c in nb.cells if c is not notes)

    from course_lib.tooling.release import release

    out = tmp_path_factory.mktemp("release") / "course"
    release(out, root=course)
    for name in ("01_intro.py", "01_intro.ipynb"):
        text = (out / "notebooks" / name).read_text()
        assert "Ask: why?" not in text and "notes" not in text, name
        assert "Intro" in text
    assert main(["notebooks", "--check", "--root", str(out)]) == 0  # the release's sources and notebooks agree
