"""Grade submitted exercise notebooks against the solutions' hidden tests.

For each submission: find its solution notebook (metadata ``course.solution``,
else the file name), replace every grade cell by the solution's (so the hidden
tests are back and cannot be weakened; grade cells the student deleted are
appended), run it in a fresh ``python3`` kernel of this interpreter (in the
submission's folder, ``COURSE_QUICK=1``, ``MPLBACKEND=Agg``) under a wall-clock
limit, and give each exercise its points when its grade cell ran without
error. A submission that crashes the kernel or loops forever keeps the points
it earned before. This is not a sandbox: run only code you are willing to run.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import csv
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TextIO

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .exercises import grade_of, read_solution, solution_stems
from .notebooks import _clean, repo_root

__all__ = ["CSV_COLUMNS", "Result", "find_solution", "graded_notebook", "grade_submission", "grade", "write_csv", "report"]

CSV_COLUMNS = ("submission", "exercise", "points", "max_points")
KERNEL_ENV = {"COURSE_QUICK": "1", "MPLBACKEND": "Agg"}
MAX_OUTPUTS = 100

_quiet = logging.getLogger("course_lib.grading.nbclient")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass
class Result:
    """One exercise of one submission (or one row saying the submission could not be graded)."""

    submission: str
    exercise: str
    points: float
    max_points: float
    status: str = "passed"  # passed | failed | error (submission not graded)
    message: str = ""

    def row(self) -> dict:
        """The CSV row: exactly :data:`CSV_COLUMNS`."""
        return {
            "submission": self.submission,
            "exercise": self.exercise,
            "points": _num(self.points),
            "max_points": _num(self.max_points),
        }


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _one_line(text: str, width: int = 110) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 3] + "..."


# --------------------------------------------------------------------------- building


def find_solution(nb: nbformat.NotebookNode, path: str | Path, solutions_dir: str | Path) -> str:
    """The stem of the solution notebook for submission ``nb`` read from ``path``.

    Metadata ``course.solution`` first, then the file stem, then the longest
    solution stem the file stem starts with (``01_demo_alice`` -> ``01_demo``).
    Raises LookupError when none fits.
    """
    stems = solution_stems(solutions_dir)
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
    said = f"its metadata names {wanted!r}, which is not there; " if wanted else ""
    raise LookupError(
        f"no solution notebook for {Path(path).name} in {solutions_dir}: {said}name the file after one of "
        f"{', '.join(stems) or '(none found)'} or pass --solutions DIR"
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
    tests: dict[str, tuple[nbformat.NotebookNode, float]] = {}
    for index, cell in enumerate(solution.cells):
        grade = grade_of(cell, f"{label}, cell {index + 1}")
        if grade is not None:
            tests[grade[0]] = (cell, grade[1])
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
    where = {}
    for index, cell in enumerate(nb.cells):
        grade = cell.metadata.get("grade")
        if isinstance(grade, dict):
            where[grade["exercise"]] = (index, tests[grade["exercise"]][1])
    return nb, where


# --------------------------------------------------------------------------- running


def _kernel_manager():
    """An async kernel manager for ``python3`` that runs this very interpreter (whatever kernelspecs say)."""
    import zmq
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    native = get_kernel_dict()  # argv uses sys.executable; metadata says what this ipykernel supports
    spec = KernelSpec(
        argv=native["argv"],
        display_name="Python 3",
        language="python",
        metadata=native.get("metadata", {}),
        env=dict(KERNEL_ENV),
        resource_dir="",
    )

    class _ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return spec

    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
    # Encrypt the kernel's sockets where both sides can (newer jupyter_client and ipykernel).
    if km.has_trait("transport_encryption") and zmq.has("curve") and "curve" in spec.metadata.get("supported_encryption", []):
        km.transport_encryption = "auto"
    return km


def _error_of(cell, reply) -> str | None:
    """The error's last line when the cell failed, None when it ran cleanly."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return _one_line(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
    if reply is None:
        return "did not run"
    content = reply.get("content", {})
    if content.get("status") != "ok":
        return _one_line(f"{content.get('ename', 'Error')}: {content.get('evalue', '')}")
    return None


def _let_ctrl_c_stop_grading() -> None:
    """Undo nbclient's SIGINT handler (it only cleans up this kernel): Ctrl-C stops the whole run."""
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    except (RuntimeError, NotImplementedError, ValueError):
        pass


class _Client(NotebookClient):
    """Keeps at most ``MAX_OUTPUTS`` outputs a cell (errors always), so a printing loop cannot eat the memory."""

    def output(self, outs, msg, display_id, cell_index):
        if len(outs) >= MAX_OUTPUTS and msg["msg_type"] != "error":
            return None
        return super().output(outs, msg, display_id, cell_index)


async def _execute(nb, cwd: Path, timeout: float, cell_timeout: float | None, outcome: dict) -> None:
    """Run ``nb``'s code cells in order; ``outcome[index] = None`` (ran cleanly) or an error line."""
    replies: dict[int, dict] = {}

    def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply

    km = _kernel_manager()
    client = _Client(
        nb,
        km=km,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=False,
        shutdown_kernel="immediate",
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=on_executed,
        log=_quiet,
    )
    env = {**os.environ, **KERNEL_ENV}
    async with client.async_setup_kernel(env=env, cleanup_kc=True):
        _let_ctrl_c_stop_grading()
        deadline = time.monotonic() + timeout
        stopped = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if stopped is None and time.monotonic() >= deadline:
                stopped = f"not run: the {timeout:g} s time limit was used up before this cell"
            if stopped is not None:
                outcome[index] = stopped
                continue
            remaining = max(deadline - time.monotonic(), 0.5)
            client.timeout_func = lambda _cell, limit=remaining: limit
            interrupted = []
            watchdog = None
            if cell_timeout is not None and cell_timeout < remaining:
                # A cell over its own limit is interrupted (KeyboardInterrupt) and the next cells still run.
                watchdog = asyncio.ensure_future(_interrupt_after(km, cell_timeout, interrupted))
            try:
                await client.async_execute_cell(cell, index)
            except CellTimeoutError:
                outcome[index] = f"timed out: the submission's {timeout:g} s time limit ran out in this cell"
                stopped = f"not run: the {timeout:g} s time limit ran out in cell {index + 1}"
                continue
            except DeadKernelError:
                outcome[index] = "the kernel died in this cell (crash, exit or out of memory)"
                stopped = f"not run: the kernel died in cell {index + 1}"
                continue
            finally:
                if watchdog is not None:
                    watchdog.cancel()
            if interrupted:
                outcome[index] = f"timed out: this cell ran longer than {cell_timeout:g} s and was interrupted"
            elif not cell.source.strip():
                outcome[index] = None
            else:
                outcome[index] = _error_of(cell, replies.get(index))


async def _interrupt_after(km, delay: float, interrupted: list) -> None:
    await asyncio.sleep(delay)
    interrupted.append(True)
    await km.interrupt_kernel()


def _run(coro):
    """Run ``coro`` to completion, also from inside a running event loop (a Jupyter notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --------------------------------------------------------------------------- grading


def _error(submission: str, what: str, detail: str = "") -> Result:
    """The one row of a submission that could not be graded: ``<error: what>``, 0 of 0 points."""
    message = f"{what} ({detail})" if detail else what
    return Result(submission, f"<error: {what}>", 0, 0, status="error", message=message)


def grade_submission(
    path: str | Path, solutions_dir: str | Path, timeout: float = 600, cell_timeout: float | None = None
) -> list[Result]:
    """Grade one submission: one :class:`Result` per exercise, or one error row when it cannot be graded."""
    name = str(path)
    path = Path(path)
    if not path.is_file():
        return [_error(name, "file not found" if not path.exists() else "not a file")]
    try:
        submission = nbformat.read(str(path), as_version=4)
        if not isinstance(submission.get("cells"), list):
            raise ValueError("no cells")
    except Exception as e:  # nbformat raises several kinds for bad input
        return [_error(name, "not a valid notebook", f"{type(e).__name__}: {_one_line(e, 80)}")]
    try:
        stem = find_solution(submission, path, solutions_dir)
        solution = read_solution(solutions_dir, stem)
        nb, where = graded_notebook(submission, solution, label=f"{solutions_dir}/{stem}")
    except LookupError as e:
        return [_error(name, "no solution notebook for it", _one_line(e, 300))]
    except (ValueError, OSError) as e:
        return [_error(name, "its solution notebook is broken", _one_line(e, 300))]
    if not where:
        return [_error(name, "its solution notebook has no grade cells", stem)]
    outcome: dict[int, str | None] = {}
    try:
        # The per-cell limits enforce ``timeout``; this outer bound also covers a hung kernel start or shutdown.
        _run(asyncio.wait_for(_execute(nb, path.resolve().parent, timeout, cell_timeout, outcome), timeout + 180))
    except Exception as e:  # kernel failed to start, or the outer bound: keep what ran
        if not outcome:
            return [_error(name, "could not run it", f"{type(e).__name__}: {_one_line(e, 80)}")]
    results = []
    for exercise, (index, points) in where.items():
        error = outcome.get(index, "not run")
        results.append(
            Result(name, exercise, points if error is None else 0, points, "passed" if error is None else "failed", error or "")
        )
    return results


def _solutions_folder(solutions_dir: str | Path) -> Path:
    folder = Path(solutions_dir)
    if not folder.is_absolute() and not folder.is_dir() and (repo_root() / folder).is_dir():
        return repo_root() / folder
    return folder


def report(results: list[Result]) -> str:
    """A readable table of one submission's results, with its total."""
    if not results:
        return ""
    lines = [f"== {results[0].submission}"]
    if results[0].status == "error":
        return "\n".join(lines + [f"   could not grade: {results[0].message}"])
    width = max(len("exercise"), *(len(r.exercise) for r in results))
    lines.append(f"   {'exercise':<{width}}  {'points':>9}")
    for r in results:
        score = f"{_num(r.points)}/{_num(r.max_points)}"
        note = f"  {r.message}" if r.status != "passed" else ""
        lines.append(f"   {r.exercise:<{width}}  {score:>9}{note}")
    total = f"{_num(sum(r.points for r in results))}/{_num(sum(r.max_points for r in results))}"
    lines.append(f"   {'total':<{width}}  {total:>9}")
    return "\n".join(lines)


def grade(
    paths: Iterable[str | Path],
    solutions_dir: str | Path = "solutions",
    timeout: float = 600,
    cell_timeout: float | None = None,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> list[Result]:
    """Grade each submission in ``paths``; print a table per submission to ``out`` and problems to ``err``.

    ``timeout`` bounds each submission's run (seconds of wall clock, kernel
    start not counted); ``cell_timeout`` optionally bounds each cell (a cell
    over it is interrupted and the rest still run). A missing or unreadable
    submission gives one row with exercise ``<error: ...>`` and 0 points (and
    a line on ``err`` naming it). ``quiet`` drops the tables, not the errors.
    """
    out = None if quiet else (out or sys.stdout)
    err = err or sys.stderr
    folder = _solutions_folder(solutions_dir)
    results: list[Result] = []
    for path in paths:
        rows = grade_submission(path, folder, timeout=timeout, cell_timeout=cell_timeout)
        results += rows
        if rows[0].status == "error":
            print(f"error: {path}: {rows[0].message}", file=err, flush=True)
        if out is not None:
            print(report(rows), file=out, flush=True)
    return results


def write_csv(results: Iterable[Result], path: str | Path | TextIO) -> None:
    """Write ``results`` as CSV with exactly the columns ``submission,exercise,points,max_points``."""
    if hasattr(path, "write"):
        _write_rows(results, path)
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        _write_rows(results, f)


def _write_rows(results, f) -> None:
    writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(r.row())
