"""Grade a small class on a real exercise notebook and time it (not a test: a measurement).

    PYTHONPATH=$PWD .venv/bin/python tests/attacks/bench_class.py 03_vae --jobs 1 2

builds 12 submissions of ``solutions/STEM`` in a temporary folder (honest, partial, untouched,
five escapes, a symbolic link, four stoppers), grades them with each ``--jobs`` value and prints
the rows, the attack table (attack -> points) and the seconds per submission.
"""
import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from attacks.corpus import ESCAPES, STEAL, USE, stopper_cell  # noqa: E402

from course_lib.tooling import grading  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def build(stem: str, folder: Path, feedback: Path) -> dict:
    solution = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    exercise = nbformat.read(ROOT / "exercises" / f"{stem}.ipynb", as_version=4)
    grade_at = [i for i, c in enumerate(exercise.cells) if "grade" in c.metadata]
    funcs = [c.source.split("def ", 1)[1].split("(", 1)[0] for c in solution.cells
             if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source and c.source.lstrip().startswith("def ")]
    subs = {}

    def save(nb, name):
        path = folder / f"{stem}_{name}.ipynb"
        nbformat.write(nb, path)
        subs[name] = str(path)

    shutil.copy(ROOT / "solutions" / f"{stem}.ipynb", folder / f"{stem}_honest.ipynb")
    subs["honest"] = str(folder / f"{stem}_honest.ipynb")
    partial = nbformat.read(ROOT / "exercises" / f"{stem}.ipynb", as_version=4)
    first = funcs[0]
    src = next(c.source for c in solution.cells if c.cell_type == "code" and c.source.lstrip().startswith(f"def {first}("))
    next(c for c in partial.cells if c.cell_type == "code" and f"def {first}(" in c.source).source = src
    save(partial, "partial")
    save(exercise, "untouched")
    fill = {"course": ROOT, "subs": folder, "feedback": feedback, "grader_tmp": "/tmp/course-grading-*",
            "grading_py": Path(grading.__file__).resolve(), "stem": stem}
    for attack in ("network_kernel", "git_solutions", "classmates", "proc_sys", "host_files"):
        nb = nbformat.read(ROOT / "exercises" / f"{stem}.ipynb", as_version=4)
        for i in reversed(grade_at):
            nb.cells.insert(i, nbformat.v4.new_code_cell(USE))
        code = ESCAPES[attack]
        for key, value in fill.items():
            code = code.replace("{" + key + "}", str(value))
        nb.cells.insert(0, nbformat.v4.new_code_cell(STEAL.replace("{functions}", repr(set(funcs))) + "\n" + code))
        save(nb, attack)
    os.symlink(ROOT / "solutions" / f"{stem}.ipynb", folder / f"{stem}_symlink.ipynb")
    subs["symlink"] = str(folder / f"{stem}_symlink.ipynb")
    for attack in ("record_without_value", "named_pipe", "zip_bomb", "many_records"):
        nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
        at = next(i for i, c in enumerate(nb.cells) if "grade" in c.metadata)
        nb.cells.insert(at, nbformat.v4.new_code_cell(stopper_cell(attack, funcs[0])))
        save(nb, attack)
    return subs


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stem")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "class").mkdir()
        subs = build(args.stem, tmp / "class", tmp / "feedback")
        for jobs in args.jobs:
            err = io.StringIO()
            start = time.monotonic()
            results = grading.grade(list(subs.values()), solutions_dir=ROOT / "solutions", quiet=True, jobs=jobs,
                                    err=err, keep_dir=tmp / f"feedback{jobs}")
            wall = time.monotonic() - start
            print(err.getvalue().splitlines()[0])
            print(f"\n--jobs {jobs}: {wall:.1f} s for {len(subs)} submissions = {wall / len(subs):.2f} s per submission")
            for name, path in subs.items():
                rows = [r for r in results if r.submission == path]
                got = sum(r.points for r in rows)
                most = sum(r.max_points for r in rows)
                why = "; ".join(sorted({f"{r.status}: {r.message[:90]}" for r in rows if r.status != "passed"}))
                print(f"  {name:22s} {grading._num(got)}/{grading._num(most)}  {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
