"""Grade submitted exercise notebooks against the solutions' hidden tests.

For each submission:

1. **Which exercise notebook it is**: ``--exercise STEM``, else its metadata ``course.solution``,
   else its file name, else the solution whose graded exercises it holds.
2. **The hidden tests go back in**: every grade cell is replaced by the solution's (the student
   cannot weaken it); grade cells the student deleted are appended.
3. **It runs alone** (:mod:`course_lib.tooling.sandbox`): in a fresh temporary folder holding a copy of
   itself only, with a minimal environment; where Linux allows it (user namespaces), in its own
   namespaces, every file system read-only but that folder, and the solutions, the submissions
   and the grader's output hidden; memory, CPU time and written file sizes limited; everything
   it started is killed before its result is recorded.
4. **The grader judges values, not the student's kernel**: hidden tests ``record`` what the
   student's functions return on hidden inputs (:mod:`course_lib.tooling.checks`); the solution
   notebook is run the same way once; the two are compared in the grader's own process. An
   exercise earns its points when its grade cell ran without error *and* every value it
   recorded matches the solution's.

Each submission gets one row per exercise: points, status (passed, failed, timeout, crashed,
error) and a message that says what was expected. Rows are written as submissions finish (so
Ctrl-C keeps them), with a feedback file and the executed notebook for each submission.
"""
from __future__ import annotations

import copy
import csv
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TextIO

import nbformat

from . import sandbox
from .checks import ENV as RECORDS_ENV
from .checks import compare
from .exercises import grade_of, read_solution, solution_stems
from .notebooks import _clean, repo_root

__all__ = ["CSV_COLUMNS", "Result", "Reference", "find_solution", "graded_notebook", "reference_run",
           "grade_submission", "grade", "write_csv", "report", "expand", "Grader"]

CSV_COLUMNS = ("submission", "exercise", "points", "max_points", "status", "message")
KERNEL_ENV = {"COURSE_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "PYTHONNOUSERSITE": "1", "TQDM_DISABLE": "1"}
DEFAULT_TIMEOUT = 300.0
DEFAULT_MEMORY_MB = 4096
MAX_RECORD_BYTES = 64 * 2**20


@dataclass
class Result:
    """One exercise of one submission (or one row saying the submission could not be graded)."""

    submission: str
    exercise: str
    points: float
    max_points: float
    status: str = "passed"  # passed | failed | timeout | crashed | error (could not be graded)
    message: str = ""
    seconds: float = 0.0

    def row(self) -> dict:
        """The CSV row: exactly :data:`CSV_COLUMNS`."""
        return {"submission": self.submission, "exercise": self.exercise, "points": _num(self.points),
                "max_points": _num(self.max_points), "status": self.status, "message": self.message}


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _one_line(text, width: int = 300) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 3] + "..."


# --------------------------------------------------------------------------- which notebook, which tests


def _grade_names(nb) -> set:
    names = set()
    for cell in nb.get("cells", []):
        grade = cell.get("metadata", {}).get("grade") if isinstance(cell, dict) else None
        if isinstance(grade, dict) and isinstance(grade.get("exercise"), str):
            names.add(grade["exercise"])
    return names


def find_solution(nb: nbformat.NotebookNode, path: str | Path, solutions_dir: str | Path,
                  exercise: str | None = None) -> str:
    """The stem of the solution notebook for submission ``nb`` read from ``path``.

    ``exercise`` (``--exercise``) first, then metadata ``course.solution``, then the file stem,
    then the longest solution stem the file stem starts with (``01_demo_alice`` -> ``01_demo``),
    then the one solution whose graded exercises the notebook holds. Raises LookupError when
    none fits.
    """
    stems = solution_stems(solutions_dir)
    if exercise is not None:
        if exercise in stems:
            return exercise
        raise LookupError(f"--exercise {exercise!r} is not a solution notebook in {solutions_dir}; "
                          f"choose one of {', '.join(stems) or '(none found)'}")
    course = nb.metadata.get("course")
    wanted = course.get("solution") if isinstance(course, dict) else None
    if isinstance(wanted, str) and wanted in stems:
        return wanted
    stem = Path(path).stem
    if stem in stems:
        return stem
    prefixes = [s for s in stems if stem.startswith(s)]
    if prefixes:
        return max(prefixes, key=len)
    names = _grade_names(nb)
    if names:
        holding = [s for s in stems if names <= _grade_names(read_solution(solutions_dir, s))]
        if len(holding) == 1:
            return holding[0]
    said = f"its metadata names {wanted!r}, which is not there; " if wanted else ""
    raise LookupError(
        f"cannot tell which exercise notebook {Path(path).name} is: {said}pass --exercise STEM, or name the "
        f"file after one of {', '.join(stems) or '(none found)'}"
    )


def graded_notebook(
    submission: nbformat.NotebookNode, solution: nbformat.NotebookNode, label: str = "solution"
) -> tuple[nbformat.NotebookNode, dict[str, tuple[int, float]]]:
    """The notebook to run, and ``{exercise: (cell index, points)}``.

    The submission's cells, each grade cell replaced by the solution's grade
    cell of the same exercise (source and metadata); grade cells missing from
    the submission are appended; a repeated or unknown grade cell loses its
    ``grade`` metadata and earns nothing.
    """
    tests = _tests_of(solution, label)
    nb = copy.deepcopy(submission)
    cells, used = [], set()
    for cell in nb.cells:
        grade = cell.get("metadata", {}).get("grade")
        name = grade.get("exercise") if isinstance(grade, dict) else None
        if isinstance(name, str) and name in tests and name not in used:
            cells.append(copy.deepcopy(tests[name][0]))
            used.add(name)
        else:
            cell.get("metadata", {}).pop("grade", None)
            cells.append(cell)
    cells += [copy.deepcopy(cell) for name, (cell, _) in tests.items() if name not in used]
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 5
    _clean(nb)
    return nb, _where(nb, tests)


def _tests_of(solution, label: str) -> dict:
    tests: dict[str, tuple[nbformat.NotebookNode, float]] = {}
    for index, cell in enumerate(solution.cells):
        grade = grade_of(cell, f"{label}, cell {index + 1}")
        if grade is not None:
            tests[grade[0]] = (cell, grade[1])
    return tests


def _where(nb, tests) -> dict:
    where = {}
    for index, cell in enumerate(nb.cells):
        grade = cell.metadata.get("grade")
        if isinstance(grade, dict) and grade.get("exercise") in tests:
            where[grade["exercise"]] = (index, tests[grade["exercise"]][1])
    return where


# --------------------------------------------------------------------------- running one notebook


def _kernel_env(workdir: Path, token: str, records: Path) -> dict:
    """The kernel's whole environment: nothing of the grader's but PATH, the locale and PYTHONPATH."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "SYSTEMROOT") if k in os.environ}
    env.update(KERNEL_ENV)
    env.update(HOME=str(workdir), TMPDIR=str(workdir), MPLCONFIGDIR=str(workdir / ".matplotlib"),
               IPYTHONDIR=str(workdir / ".ipython"), JUPYTER_RUNTIME_DIR=str(workdir / ".jupyter"),
               COURSE_CHECKPOINT_DIR=str(workdir / "checkpoints"), COURSE_GRADING_TOKEN=token)
    env[RECORDS_ENV] = str(records)
    return env


def _read_records(folder: Path, seen: set) -> list[dict]:
    """New record files in ``folder`` (oldest first), loaded as plain data only."""
    import torch

    out = []
    for path in sorted(folder.glob("*.pt"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        if path.name in seen:
            continue
        seen.add(path.name)
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                out.append({"name": None, "bad": f"a recorded value over {MAX_RECORD_BYTES >> 20} MB"})
                continue
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                raise ValueError("not a record")
            out.append(payload)
        except Exception as err:  # a forged or damaged file: it counts as a wrong value
            out.append({"name": None, "bad": f"an unreadable recorded value ({type(err).__name__})"})
    return out


def _execute(nb, workdir: Path, timeout: float, cell_timeout: float | None, isolate: bool, hide=(),
             memory_mb: float | None = None, managers: set | None = None):
    """Run ``nb`` in ``workdir``; (outcomes by cell index, records by cell index)."""
    from .execution import run_cells

    records_dir = workdir / ".records"
    records_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    env = _kernel_env(workdir, token, records_dir)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    cpu = None if timeout is None else 2 * timeout + 60
    argv = sandbox.command(kernel, str(workdir), hide=hide, mem_mb=memory_mb, cpu_seconds=cpu, isolate=isolate)
    records, seen = {}, set()

    def after_cell(index, _outcome):
        records[index] = _read_records(records_dir, seen)

    outcomes = run_cells(nb, argv, env, workdir, timeout=timeout, cell_timeout=cell_timeout, after_cell=after_cell,
                         marker=token, managers=managers)
    return {o.index: o for o in outcomes}, records


@dataclass
class Reference:
    """The solution notebook, run once: its grade cells and the values each one recorded."""

    stem: str
    solution: nbformat.NotebookNode
    tests: dict
    records: dict  # exercise -> list of record payloads
    seconds: float = 0.0


def reference_run(solutions_dir: str | Path, stem: str, timeout: float = DEFAULT_TIMEOUT) -> Reference:
    """Run solution ``stem`` (trusted code: not sandboxed) and keep what its grade cells recorded.

    Raises RuntimeError when the solution fails its own hidden tests.
    """
    solution = read_solution(solutions_dir, stem)
    label = f"{solutions_dir}/{stem}"
    tests = _tests_of(solution, label)
    nb = copy.deepcopy(solution)
    _clean(nb)
    where = _where(nb, tests)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"reference-{stem}-") as tmp:
        outcomes, records = _execute(nb, Path(tmp), timeout, None, isolate=False)
    bad = [(name, outcomes.get(i)) for name, (i, _) in where.items()
           if outcomes.get(i) is None or outcomes[i].status != "ok"]
    if bad:
        name, o = bad[0]
        why = o.error if o is not None else "not run"
        raise RuntimeError(f"the solution {label} fails its own hidden tests ({name}: {why}); fix it before grading")
    recorded = {name: records.get(i, []) for name, (i, _) in where.items()}
    return Reference(stem, solution, tests, recorded, time.monotonic() - start)


def _judge(expected: list[dict], got: list[dict]) -> str | None:
    """None when every value the solution recorded is matched by the submission's, else what is wrong."""
    by_name: dict[str, list] = {}
    for payload in got:
        if payload.get("name") is None:
            return f"the grade cell left {payload.get('bad', 'an unreadable value')}"
        by_name.setdefault(payload["name"], []).append(payload["value"])
    used: dict[str, int] = {}
    for ref in expected:
        name = ref["name"]
        k = used.get(name, 0)
        used[name] = k + 1
        values = by_name.get(name, [])
        hint = f" {ref['message']}" if ref.get("message") else ""
        if k >= len(values):
            return f"hidden test {name!r} did not record a value.{hint}"
        why = compare(ref["value"], values[k], ref["rtol"], ref["atol"], name)
        if why is not None:
            return f"{why}.{hint}"
    return None


# --------------------------------------------------------------------------- grading one submission


def _error_rows(name: str, what: str, detail: str = "", exercises: dict | None = None) -> list[Result]:
    """Rows of a submission that could not be graded: its exercises at 0 of their points when the
    exercise notebook is known, else one ``<error: ...>`` row."""
    message = f"{what} ({detail})" if detail else what
    if exercises:
        return [Result(name, ex, 0, pts, status="error", message=message) for ex, pts in exercises.items()]
    return [Result(name, f"<error: {what}>", 0, 0, status="error", message=message)]


class Grader:
    """Grades submissions against one solutions folder; runs each solution notebook once.

    ``timeout``: wall-clock seconds for a whole submission (kernel start not counted);
    ``cell_timeout``: seconds for any one cell (default: no separate limit). Both stop the
    submission the same way: the kernel is killed, later cells are not run, the points earned
    before are kept. ``memory_mb``: the kernel's memory limit; ``isolate``: None (namespaces
    where available), True (required) or False.
    """

    def __init__(self, solutions_dir: str | Path = "solutions", timeout: float = DEFAULT_TIMEOUT,
                 cell_timeout: float | None = None, memory_mb: float | None = DEFAULT_MEMORY_MB,
                 isolate: bool | None = None, hide: Iterable[str | Path] = (), keep_dir: str | Path | None = None):
        self.solutions_dir = _solutions_folder(solutions_dir)
        self.timeout = float(timeout)
        self.cell_timeout = cell_timeout
        self.memory_mb = memory_mb
        self.isolate = sandbox.isolation_available() if isolate is None else bool(isolate)
        if isolate and not sandbox.isolation_available():
            raise RuntimeError("isolation was required but this machine does not allow user namespaces (unshare)")
        self.tmp_root = Path(tempfile.mkdtemp(prefix="course-grading-"))  # every submission's folder, hidden
        self.hide = [Path(h).resolve() for h in hide] + [self.tmp_root.resolve()]
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self.managers: set = set()
        self._references: dict[str, Reference | Exception] = {}
        self._lock = threading.Lock()
        self._stem_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        """Remove the folder the submissions ran in."""
        shutil.rmtree(self.tmp_root, ignore_errors=True)

    def reference(self, stem: str) -> Reference:
        with self._lock:
            lock = self._stem_locks.setdefault(stem, threading.Lock())
        with lock:
            if stem not in self._references:
                try:
                    self._references[stem] = reference_run(self.solutions_dir, stem, timeout=max(self.timeout, 600))
                except Exception as err:
                    self._references[stem] = err
        ref = self._references[stem]
        if isinstance(ref, Exception):
            raise ref
        return ref

    def grade_one(self, path: str | Path, exercise: str | None = None) -> list[Result]:
        """Grade one submission: one :class:`Result` per exercise."""
        name = str(path)
        path = Path(path)
        if not path.is_file():
            return _error_rows(name, "file not found" if not path.exists() else "not a file")
        try:
            submission = nbformat.read(str(path), as_version=4)
            if not isinstance(submission.get("cells"), list):
                raise ValueError("no cells")
        except Exception as e:  # nbformat raises several kinds for bad input
            known = self._points_if_known(path, exercise)
            return _error_rows(name, "not a valid notebook", f"{type(e).__name__}: {_one_line(e, 80)}", known)
        try:
            stem = find_solution(submission, path, self.solutions_dir, exercise)
        except LookupError as e:
            return _error_rows(name, "no solution notebook for it", _one_line(e, 300))
        try:
            ref = self.reference(stem)
        except (RuntimeError, ValueError, OSError) as e:
            return _error_rows(name, "its solution notebook is broken", _one_line(e, 300))
        points = {ex: pts for ex, (_, pts) in ref.tests.items()}
        if not points:
            return _error_rows(name, "its solution notebook has no grade cells", stem)
        nb, where = graded_notebook(submission, ref.solution, label=f"{self.solutions_dir}/{stem}")
        hide = _hideable({self.solutions_dir.resolve(), path.resolve().parent, *self.hide})
        tmp = Path(tempfile.mkdtemp(prefix="submission-", dir=self.tmp_root))
        try:
            work = tmp / "work"
            work.mkdir()
            shutil.copy2(path, work / path.name)  # a copy of itself only
            try:
                outcomes, records = _execute(nb, work, self.timeout, self.cell_timeout, self.isolate,
                                             hide=hide, memory_mb=self.memory_mb,
                                             managers=self.managers)
            except Exception as e:  # the kernel could not be started at all
                return _error_rows(name, "could not run it", f"{type(e).__name__}: {_one_line(e, 120)}", points)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        results = []
        elapsed = 0.0
        ordered = sorted(outcomes.values(), key=lambda o: o.index)
        for exercise_name, (index, pts) in sorted(where.items(), key=lambda kv: kv[1][0]):
            outcome = outcomes.get(index)
            elapsed = sum(o.seconds for o in ordered if o.index <= index)
            if outcome is None or outcome.status == "not run":
                why = outcome.error if outcome is not None and outcome.error else "not run"
                status = "crashed" if "(died)" in why else ("timeout" if "(timeout)" in why else "failed")
                results.append(Result(name, exercise_name, 0, pts, status, why, elapsed))
            elif outcome.status == "timeout":
                results.append(Result(name, exercise_name, 0, pts, "timeout", outcome.error, elapsed))
            elif outcome.status == "died":
                results.append(Result(name, exercise_name, 0, pts, "crashed", outcome.error, elapsed))
            elif outcome.status == "error":
                results.append(Result(name, exercise_name, 0, pts, "failed", outcome.error, elapsed))
            else:
                why = _judge(ref.records.get(exercise_name, []), records.get(index, []))
                if why is None:
                    results.append(Result(name, exercise_name, pts, pts, "passed", "", elapsed))
                else:
                    results.append(Result(name, exercise_name, 0, pts, "failed", why, elapsed))
        self._keep(path, nb, outcomes, results)
        return results

    def _points_if_known(self, path: Path, exercise: str | None) -> dict | None:
        stems = solution_stems(self.solutions_dir)
        stem = exercise if exercise in stems else (path.stem if path.stem in stems else None)
        if stem is None:
            prefixes = [s for s in stems if path.stem.startswith(s)]
            stem = max(prefixes, key=len) if prefixes else None
        if stem is None:
            return None
        try:
            return {ex: pts for ex, (_, pts) in _tests_of(read_solution(self.solutions_dir, stem), stem).items()}
        except (ValueError, OSError):
            return None

    def _keep(self, path: Path, nb, outcomes: dict, results: list[Result]) -> None:
        """The executed notebook (outputs as far as the byte budget allowed) and a feedback file."""
        if self.keep_dir is None:
            return
        self.keep_dir.mkdir(parents=True, exist_ok=True)
        base = _safe_name(path)
        executed = copy.deepcopy(nb)
        for index, outcome in outcomes.items():
            cell = executed.cells[index]
            cell["outputs"] = [nbformat.from_dict(_as_output(o)) for o in outcome.outputs]
            if outcome.dropped_bytes:
                cell["outputs"].append(nbformat.v4.new_output(
                    "stream", name="stderr", text=f"[grader: {outcome.dropped_bytes} bytes of output not kept]\n"))
        nbformat.write(executed, str(self.keep_dir / f"{base}.executed.ipynb"))
        (self.keep_dir / f"{base}.feedback.md").write_text(feedback_markdown(results), encoding="utf-8")


def _hideable(paths) -> list[str]:
    """The paths to hide from a kernel, less any that holds what the kernel needs (Python, course_lib)."""
    needed = [Path(sys.prefix).resolve(), Path(__file__).resolve().parents[1], Path(sys.executable).resolve()]
    out = []
    for p in paths:
        p = Path(p)
        if p == Path("/") or any(n == p or p in n.parents for n in needed):
            continue
        out.append(str(p))
    return sorted(out)


def _as_output(o: dict) -> dict:
    kind = o["output_type"]
    if kind == "stream":
        return {"output_type": "stream", "name": o.get("name", "stdout"), "text": o.get("text", "")}
    if kind == "error":
        return {"output_type": "error", "ename": o.get("ename", ""), "evalue": o.get("evalue", ""),
                "traceback": o.get("traceback", [])}
    out = {"output_type": kind, "data": o.get("data", {}), "metadata": o.get("metadata", {})}
    if kind == "execute_result":
        out["execution_count"] = o.get("execution_count")
    return out


def _safe_name(path: Path) -> str:
    parent = path.resolve().parent.name
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{parent}__{path.stem}")
    return stem[:120]


def feedback_markdown(results: list[Result]) -> str:
    """A student's feedback: each exercise's points, what was wrong, and when it finished."""
    if not results:
        return ""
    total = sum(r.points for r in results)
    most = sum(r.max_points for r in results)
    lines = [f"# Feedback: {Path(results[0].submission).name}", "",
             f"**Total: {_num(total)} / {_num(most)} points**", "",
             "| exercise | points | status | after | what to look at |", "|---|---|---|---|---|"]
    for r in results:
        msg = r.message.replace("|", "\\|") if r.status != "passed" else "correct"
        lines.append(f"| {r.exercise} | {_num(r.points)} / {_num(r.max_points)} | {r.status} | {r.seconds:.1f} s | {msg} |")
    return "\n".join(lines) + "\n"


def grade_submission(path: str | Path, solutions_dir: str | Path, timeout: float = DEFAULT_TIMEOUT,
                     cell_timeout: float | None = None, exercise: str | None = None, **kwargs) -> list[Result]:
    """Grade one submission (see :class:`Grader`)."""
    grader = Grader(solutions_dir, timeout=timeout, cell_timeout=cell_timeout, **kwargs)
    try:
        return grader.grade_one(path, exercise)
    finally:
        grader.close()


# --------------------------------------------------------------------------- grading a class


def _solutions_folder(solutions_dir: str | Path) -> Path:
    folder = Path(solutions_dir)
    if not folder.is_absolute() and not folder.is_dir() and (repo_root() / folder).is_dir():
        return repo_root() / folder
    return folder


def expand(paths: Iterable[str | Path]) -> list[str]:
    """Submissions: files as given, folders replaced by the notebooks inside them (sorted, recursively)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += [str(q) for q in sorted(p.rglob("*.ipynb")) if ".ipynb_checkpoints" not in q.parts]
        else:
            out.append(str(p))
    return out


def report(results: list[Result]) -> str:
    """A readable table of one submission's results, with its total."""
    if not results:
        return ""
    lines = [f"== {results[0].submission}"]
    if len(results) == 1 and results[0].exercise.startswith("<error"):
        return "\n".join(lines + [f"   could not grade: {results[0].message}"])
    width = max(len("exercise"), *(len(r.exercise) for r in results))
    lines.append(f"   {'exercise':<{width}}  {'points':>9}")
    for r in results:
        score = f"{_num(r.points)}/{_num(r.max_points)}"
        note = f"  [{r.status}] {r.message}" if r.status != "passed" else ""
        lines.append(f"   {r.exercise:<{width}}  {score:>9}{note}")
    total = f"{_num(sum(r.points for r in results))}/{_num(sum(r.max_points for r in results))}"
    lines.append(f"   {'total':<{width}}  {total:>9}")
    return "\n".join(lines)


class _RowWriter:
    """Writes CSV rows as submissions finish, in the order they were given (flushed each time)."""

    def __init__(self, f: TextIO | None):
        self.f = f
        self.writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n") if f is not None else None
        if self.writer is not None:
            self.writer.writeheader()
            f.flush()
        self.done: dict[int, list[Result]] = {}
        self.next = 0

    def add(self, i: int, rows: list[Result]) -> None:
        self.done[i] = rows
        while self.next in self.done:
            self._write(self.done[self.next])
            self.next += 1

    def flush_rest(self) -> None:
        """On interruption: every finished submission, even out of order."""
        for i in sorted(k for k in self.done if k >= self.next):
            self._write(self.done[i])
        self.next = max(self.done, default=-1) + 1

    def _write(self, rows: list[Result]) -> None:
        if self.writer is None:
            return
        for r in rows:
            self.writer.writerow(r.row())
        self.f.flush()


def grade(paths: Iterable[str | Path], solutions_dir: str | Path = "solutions", timeout: float = DEFAULT_TIMEOUT,
          cell_timeout: float | None = None, quiet: bool = False, out: TextIO | None = None,
          err: TextIO | None = None, jobs: int = 1, csv_path: str | Path | None = None, exercise: str | None = None,
          keep_dir: str | Path | None = None, progress: bool = False, memory_mb: float | None = DEFAULT_MEMORY_MB,
          isolate: bool | None = None) -> list[Result]:
    """Grade each submission in ``paths`` (folders expanded), ``jobs`` at a time.

    Prints a table per submission to ``out`` and problems to ``err``; with ``csv_path``, writes
    the rows as they finish (the path is opened before grading starts, so a bad one fails at
    once). A missing or unreadable submission gives rows with status ``error`` and 0 points.
    ``keep_dir``: where the executed notebooks and feedback files go. Ctrl-C stops grading,
    kills the running kernels and keeps every finished row.
    """
    out = None if quiet else (out or sys.stdout)
    err = err or sys.stderr
    paths = expand(paths)
    hide = []
    f = None
    if csv_path is not None:
        csv_path = Path(csv_path)
        f = open(csv_path, "w", encoding="utf-8", newline="")  # fails now, not after grading
        hide.append(csv_path.resolve())
    if keep_dir is not None:
        Path(keep_dir).mkdir(parents=True, exist_ok=True)
        hide.append(Path(keep_dir).resolve())
    grader = Grader(solutions_dir, timeout=timeout, cell_timeout=cell_timeout, memory_mb=memory_mb, isolate=isolate,
                    hide=hide, keep_dir=keep_dir)
    if not grader.isolate:
        print("warning: Linux user namespaces are not available here: submissions run with limits but not "
              "isolated (they can read and write what your user can). Grade in a container or a throw-away account.",
              file=err, flush=True)
    rows_out = _RowWriter(f)
    results: dict[int, list[Result]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), unit="submission", desc="grading", file=err)
    lock = threading.Lock()

    def finished(i: int, rows: list[Result]) -> None:
        with lock:
            results[i] = rows
            rows_out.add(i, rows)
            if rows and rows[0].status == "error":
                print(f"error: {paths[i]}: {rows[0].message}", file=err, flush=True)
            if out is not None:
                print(report(rows), file=out, flush=True)
            if bar is not None:
                bar.set_postfix_str(Path(paths[i]).name, refresh=False)
                bar.update(1)

    def one(i: int) -> None:
        finished(i, grader.grade_one(paths[i], exercise))

    try:
        if jobs <= 1:
            for i in range(len(paths)):
                one(i)
        else:
            pool = ThreadPoolExecutor(max_workers=jobs)
            try:
                futures = [pool.submit(one, i) for i in range(len(paths))]
                for fut in futures:
                    while not fut.done():
                        time.sleep(0.1)  # wake up for Ctrl-C
                    fut.result()
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
    except KeyboardInterrupt:
        from .execution import kill_process_tree

        for km in list(grader.managers):
            kill_process_tree(km)
        with lock:
            rows_out.flush_rest()
        print(f"interrupted: kept the {len(results)} submission(s) graded so far", file=err, flush=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        if f is not None:
            f.close()
        grader.close()
    return [r for i in sorted(results) for r in results[i]]


def write_csv(results: Iterable[Result], path: str | Path | TextIO) -> None:
    """Write ``results`` as CSV with the columns :data:`CSV_COLUMNS`."""
    if hasattr(path, "write"):
        w = _RowWriter(path)
        w.add(0, list(results))
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        _RowWriter(f).add(0, list(results))


def write_gradebook(results: Iterable[Result], path: str | Path) -> None:
    """One row per submission, one column per exercise (points), then the total: for a spreadsheet or an LMS."""
    results = list(results)
    exercises, seen = [], set()
    for r in results:
        if not r.exercise.startswith("<error") and r.exercise not in seen:
            seen.add(r.exercise)
            exercises.append(r.exercise)
    table: dict[str, dict] = {}
    for r in results:
        row = table.setdefault(r.submission, {"submission": r.submission})
        if r.exercise in seen:
            row[r.exercise] = _num(r.points)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["submission", *exercises, "total", "max_total"], lineterminator="\n")
        w.writeheader()
        for sub, row in table.items():
            mine = [r for r in results if r.submission == sub]
            row["total"] = _num(sum(r.points for r in mine))
            row["max_total"] = _num(sum(r.max_points for r in mine))
            w.writerow(row)
