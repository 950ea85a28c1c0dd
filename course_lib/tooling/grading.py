"""Grade submitted exercise notebooks against the solutions' hidden tests.

For each submission:

1. **Which exercise notebook it is**: ``--exercise STEM``, else its file name (or the longest
   solution stem it starts with), else the one solution whose graded exercises it holds. A
   symbolic link is refused; a path given twice is graded once.
2. **The hidden tests go back in**: every grade cell (a code cell with ``grade`` metadata) is
   replaced by the solution's (the student cannot weaken it); grade cells the student deleted are
   appended.
3. **It runs alone** (:mod:`course_lib.tooling.sandbox`): in a bubblewrap sandbox that shows it only
   the Python environment, ``course_lib`` and a private home holding a copy of itself, in its own
   user, PID, IPC and network namespaces, with memory and processes limited for the submission as
   a whole (control groups where the grader can make them) and disk by the size of its home.
   The solution notebook is run first, the same way. Without bubblewrap the grader refuses to run
   unless ``sandbox=False`` (``--no-sandbox``) is asked for.
4. **The grader judges values, not the student's kernel**: hidden tests ``record`` what the
   student's functions return on hidden inputs (:mod:`course_lib.tooling.checks`); the records
   are read as untrusted data (:func:`load_record`) and compared with the solution's in the
   grader's own process. An exercise earns its points when its grade cell ran without error,
   every value it recorded matches the solution's, and it used no function its grade cell
   forbids (:mod:`course_lib.tooling.forbidden`).

Each submission gets one row per exercise: points, status (passed, failed, timeout, crashed,
error) and a message that says what was expected. Rows are written as submissions finish (so
Ctrl-C keeps them), with a feedback file and an executed notebook (the student's cells and the
results, not the hidden tests) for each submission. Nothing a submission does ends the run.
"""
from __future__ import annotations

import copy
import csv
import functools
import hashlib
import math
import os
import re
import secrets
import stat
import shutil
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TextIO

import nbformat

from . import forbidden as forbid
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
MAX_SUBMISSION_BYTES = 50 * 2**20
MAX_RECORD_BYTES = 16 * 2**20      # one record file as written
MAX_INFLATED_BYTES = 64 * 2**20    # the same once decompressed
MAX_RECORD_DEPTH = 32
MAX_RECORDS_PER_CELL = 500
RECORDS_SECONDS = 20.0             # reading one cell's records
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@functools.lru_cache(maxsize=None)
def _dtypes() -> frozenset:
    """The dtypes a recorded tensor may have."""
    import torch

    return frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
                      torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool})


def clean_text(text) -> str:
    """``text`` without terminal escapes or control characters (tabs and newlines become spaces)."""
    text = str(text).replace("\t", " ").replace("\r\n", " ").replace("\n", " ")
    return _CONTROL.sub("", text)


def _csv_cell(value):
    """A CSV cell a spreadsheet shows as text: one beginning with = + - @ (a formula) is quoted."""
    if isinstance(value, str):
        value = clean_text(value)
        if value[:1] in ("=", "+", "-", "@"):
            return "'" + value
    return value


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

    def __post_init__(self):
        self.message = clean_text(self.message)
        self.exercise = clean_text(self.exercise)

    def row(self) -> dict:
        """The CSV row: exactly :data:`CSV_COLUMNS` (text cells safe for a spreadsheet)."""
        return {"submission": _csv_cell(self.submission), "exercise": _csv_cell(self.exercise),
                "points": _num(self.points), "max_points": _num(self.max_points), "status": self.status,
                "message": _csv_cell(self.message)}


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
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        grade = cell.get("metadata", {}).get("grade")
        if isinstance(grade, dict) and isinstance(grade.get("exercise"), str):
            names.add(grade["exercise"])
    return names


def find_solution(nb: nbformat.NotebookNode, path: str | Path, solutions_dir: str | Path,
                  exercise: str | None = None) -> str:
    """The stem of the solution notebook for submission ``nb`` read from ``path``.

    ``exercise`` (``--exercise``) first, then the file stem, then the longest solution stem the
    file stem starts with (``01_demo_alice`` -> ``01_demo``), then the one solution whose graded
    exercises the notebook holds. The notebook's own metadata never decides. Raises LookupError
    when none fits.
    """
    stems = solution_stems(solutions_dir)
    if exercise is not None:
        if exercise in stems:
            return exercise
        raise LookupError(f"--exercise {exercise!r} is not a solution notebook in {solutions_dir}; "
                          f"choose one of {', '.join(stems) or '(none found)'}")
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
    raise LookupError(
        f"cannot tell which exercise notebook {clean_text(Path(path).name)} is: pass --exercise STEM, or name the "
        f"file after one of {', '.join(stems) or '(none found)'}"
    )


def graded_notebook(
    submission: nbformat.NotebookNode, solution: nbformat.NotebookNode, label: str = "solution"
) -> tuple[nbformat.NotebookNode, dict[str, tuple[int, float]]]:
    """The notebook to run, and ``{exercise: (cell index, points)}``.

    The submission's cells, each grade cell (a code cell) replaced by the solution's
    grade cell of the same exercise (source and metadata); grade cells missing from
    the submission are appended; a repeated or unknown grade cell, or grade metadata
    on a markdown cell, is dropped and earns nothing.
    """
    tests = _tests_of(solution, label)
    nb = copy.deepcopy(submission)
    cells, used = [], set()
    for cell in nb.cells:
        grade = cell.get("metadata", {}).get("grade")
        name = grade.get("exercise") if isinstance(grade, dict) else None
        if cell.cell_type == "code" and isinstance(name, str) and name in tests and name not in used:
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
        if cell.cell_type == "code" and isinstance(grade, dict) and grade.get("exercise") in tests:
            where[grade["exercise"]] = (index, tests[grade["exercise"]][1])
    return where


# --------------------------------------------------------------------------- running one notebook


def _kernel_env(home: str, token: str, records: str, boxed: bool) -> dict:
    """The kernel's whole environment: nothing of the grader's but the locale (and, unsandboxed, PATH)."""
    env = {k: os.environ[k] for k in ("LANG", "LC_ALL", "SYSTEMROOT") if k in os.environ}
    if boxed:
        env.update(PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", PYTHONPATH=sandbox.COURSE)
    else:
        env.update({k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ})
    env.update(KERNEL_ENV)
    env.update(HOME=home, TMPDIR=home, MPLCONFIGDIR=f"{home}/.matplotlib", IPYTHONDIR=f"{home}/.ipython",
               JUPYTER_RUNTIME_DIR=f"{home}/.jupyter", COURSE_CHECKPOINT_DIR=f"{home}/checkpoints",
               COURSE_CACHE_DIR=f"{home}/.course_cache", COURSE_GRADING_TOKEN=token)
    env[RECORDS_ENV] = records
    return env


class _RecordReader:
    """The values a kernel recorded, read as data from an adversary: only regular files (no link, pipe
    or device is ever opened), each under a size limit before and after decompression, at most
    :data:`MAX_RECORDS_PER_CELL` new ones and :data:`RECORDS_SECONDS` of reading per cell, and a
    structure of plain values only (dense CPU tensors, bounded nesting)."""

    def __init__(self, base, parts: tuple[str, ...]):
        self.base, self.parts, self.seen = base, parts, set()

    def _folder(self) -> int:
        base = self.base() if callable(self.base) else self.base
        if base is None:
            raise FileNotFoundError("the kernel is gone")
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for part in self.parts:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nxt
        return fd

    def read(self) -> list[dict]:
        try:
            folder = self._folder()
        except OSError:
            return []  # no folder (deleted, replaced by a link, kernel gone): nothing recorded
        try:
            names = [n for n in os.listdir(folder) if n.endswith(".pt") and n not in self.seen]
            if len(names) > MAX_RECORDS_PER_CELL:
                self.seen.update(names)
                return [{"name": None, "bad": f"more than {MAX_RECORDS_PER_CELL} recorded values in one cell"}]
            start, found = time.monotonic(), []
            for name in names:
                self.seen.add(name)
                if time.monotonic() - start > RECORDS_SECONDS:
                    return [{"name": None, "bad": "recorded values that took too long to read"}]
                found.append(self._one(folder, name))
            found.sort(key=lambda x: (x[0], x[1]))
            return [payload for _, _, payload in found]
        finally:
            os.close(folder)

    def _one(self, folder: int, name: str):
        bad = {"name": None, "bad": "an unreadable recorded value"}
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return (0, name, {"name": None, "bad": "a recorded value that is not a regular file"})
            if st.st_size > MAX_RECORD_BYTES:
                return (st.st_mtime_ns, name, {"name": None, "bad": f"a recorded value over {MAX_RECORD_BYTES >> 20} MB"})
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    return (0, name, {"name": None, "bad": "a recorded value that is not a regular file"})
                data = os.read(fd, MAX_RECORD_BYTES + 1)
            finally:
                os.close(fd)
            if len(data) > MAX_RECORD_BYTES:
                return (st.st_mtime_ns, name, {"name": None, "bad": f"a recorded value over {MAX_RECORD_BYTES >> 20} MB"})
            return (st.st_mtime_ns, name, load_record(data))
        except ValueError as e:
            return (0, name, {"name": None, "bad": f"an unusable recorded value ({_one_line(e, 120)})"})
        except Exception as e:  # a forged or damaged file: it counts as a wrong value
            return (0, name, {**bad, "bad": f"an unreadable recorded value ({type(e).__name__})"})


def load_record(data: bytes) -> dict:
    """A record file's bytes as ``{"name", "value", "rtol", "atol", "message"}``; ValueError when it is
    not one (too big once inflated, not plain data, nested too deep, a tensor that is not dense on the CPU)."""
    import io
    import zipfile

    import torch

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("not a torch.save archive") from None
    stored, budget = io.BytesIO(), MAX_INFLATED_BYTES
    with archive, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as out:
        members = archive.infolist()
        if len(members) > 1000:
            raise ValueError("too many parts")
        for info in members:
            with archive.open(info) as f:
                chunk = f.read(budget + 1)
            budget -= len(chunk)
            if budget < 0:
                raise ValueError(f"inflates past {MAX_INFLATED_BYTES >> 20} MB")
            out.writestr(info.filename, chunk)
    stored.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns while it checks a sparse tensor, which is refused below
        payload = torch.load(stored, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or set(payload) != {"name", "value", "rtol", "atol", "message"}:
        raise ValueError("not a record")
    if not isinstance(payload["name"], str) or not isinstance(payload["message"], str):
        raise ValueError("not a record")
    for key in ("rtol", "atol"):
        if type(payload[key]) is not float or not math.isfinite(payload[key]) or payload[key] < 0:
            raise ValueError("not a record")
    _check_plain(payload["value"], 0, [0])
    return payload


def _check_plain(value, depth: int, count: list) -> None:
    import torch

    count[0] += 1
    if depth > MAX_RECORD_DEPTH or count[0] > 100_000:
        raise ValueError(f"nested deeper than {MAX_RECORD_DEPTH} levels or too many values")
    if value is None or type(value) in (bool, int, float):
        return
    if type(value) is str:
        if len(value) > 100_000:
            raise ValueError("a string that is too long")
        return
    if type(value) in (list, tuple):
        for v in value:
            _check_plain(v, depth + 1, count)
        return
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise ValueError("a dict key that is not a string")
            _check_plain(v, depth + 1, count)
        return
    if type(value) is torch.Tensor:
        if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized or value.is_meta:
            raise ValueError("a tensor that is not dense on the CPU")
        if value.dtype not in _dtypes():
            raise ValueError(f"a tensor of dtype {value.dtype}")
        return
    raise ValueError(f"a {type(value).__name__}")


def _sandbox_base(inside: dict):
    """Where this process sees the sandbox's root (None once the kernel has gone)."""
    def base():
        pid = inside.get("pid")
        return f"/proc/{pid}/root" if pid else None
    return base


def _execute(nb, rundir: Path, timeout: float, cell_timeout: float | None, boxed: bool, limits: sandbox.Limits,
             managers: set | None = None, copy_of: Path | None = None, cgroups: set | None = None):
    """Run ``nb`` (sandboxed unless ``boxed`` is False); (outcomes by cell index, records by cell index)."""
    from .execution import run_cells

    token = secrets.token_hex(8)
    rundir.mkdir(parents=True, exist_ok=True)
    records: dict = {}
    if not boxed:
        home = rundir / "work"
        (home / ".records").mkdir(parents=True, exist_ok=True)
        if copy_of is not None:
            shutil.copy2(copy_of, home / copy_of.name)
        env = _kernel_env(str(home), token, str(home / ".records"), boxed=False)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        argv = sandbox.unboxed_command(kernel, limits)
        reader = _RecordReader(str(home), (".records",))

        def after_cell(index, _outcome):
            records[index] = reader.read()

        outcomes = run_cells(nb, argv, env, home, timeout=timeout, cell_timeout=cell_timeout,
                             after_cell=after_cell, marker=token, managers=managers,
                             connection_file=rundir / "kernel.json")
        return {o.index: o for o in outcomes}, records
    home = sandbox.HOME
    env = _kernel_env(home, token, f"{home}/.records", boxed=True)
    conn = rundir / "kernel.json"
    files = {f"{sandbox.RUN}/connection.json": str(conn)}
    if copy_of is not None:
        files[f"{home}/{copy_of.name}"] = str(copy_of)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", f"{sandbox.RUN}/connection.json"]
    cgroup = sandbox.Cgroup.create(limits)
    if cgroups is not None:
        cgroups.add(cgroup)
    inside: dict = {}
    reader = _RecordReader(_sandbox_base(inside), tuple(p for p in home.split("/") if p) + (".records",))

    def locate(km):
        pid = sandbox.inside_pid(km.provisioner.process.pid)
        if pid is None:
            return None
        inside["pid"] = pid
        return f"/proc/{pid}/root{sandbox.RUN}/k"

    def after_cell(index, _outcome):
        records[index] = reader.read()

    try:
        argv = sandbox.command(kernel, limits=limits, cgroup=cgroup, files=files, dirs=[f"{home}/.records"])
        outcomes = run_cells(nb, argv, env, rundir, timeout=timeout, cell_timeout=cell_timeout, after_cell=after_cell,
                             marker=token, managers=managers, transport="ipc", ip=f"{sandbox.RUN}/k",
                             connection_file=conn, locate=locate)
    finally:
        cgroup.remove()
        if cgroups is not None:
            cgroups.discard(cgroup)
    return {o.index: o for o in outcomes}, records


@dataclass
class Reference:
    """The solution notebook, run once: its grade cells and the values each one recorded."""

    stem: str
    solution: nbformat.NotebookNode
    tests: dict
    records: dict  # exercise -> list of record payloads
    seconds: float = 0.0
    forbidden: dict | None = None  # exercise -> forbidden dotted names


def _student_sources(nb, grade_cells: set, solution) -> list[str]:
    """The code the forbidden-call rule judges: every code cell but the grade cells and the cells the
    course itself wrote unchanged (set-up, self-checks: they may call what an answer must not)."""
    course = {c.source.strip() for c in solution.cells
              if c.cell_type == "code" and "### BEGIN SOLUTION" not in c.source}
    return [c.source for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and i not in grade_cells and c.source.strip() not in course]


def _forbidden_of(cell) -> list[str]:
    grade = cell.get("metadata", {}).get("grade")
    names = grade.get("forbidden", []) if isinstance(grade, dict) else []
    if isinstance(names, str):
        names = [names]
    return [n for n in names if isinstance(n, str) and n]


def reference_run(solutions_dir: str | Path, stem: str, timeout: float = DEFAULT_TIMEOUT, boxed: bool = True,
                  limits: sandbox.Limits | None = None, workdir: str | Path | None = None) -> Reference:
    """Run solution ``stem`` (in the same sandbox as the submissions, first) and keep what its grade
    cells recorded. Raises RuntimeError when the solution fails its own hidden tests, or breaks its
    own forbidden-call rule (static check and run-time guard, as a submission would be judged)."""
    solution = read_solution(solutions_dir, stem)
    label = f"{solutions_dir}/{stem}"
    tests = _tests_of(solution, label)
    nb = copy.deepcopy(solution)
    _clean(nb)
    where = _where(nb, tests)
    forbidden = {name: _forbidden_of(cell) for name, (cell, _) in tests.items()}
    grade_cells = {i for i, _ in where.values()}
    sources = _student_sources(nb, grade_cells, solution)
    for name, names in forbidden.items():
        hits = forbid.static_uses(sources, names) if names else []
        if hits:
            raise RuntimeError(f"the solution {label} uses {hits[0]}, which exercise {name} forbids; fix it before grading")
    run_nb, run_where, guard_at, _ = _with_guards(nb, where, forbidden)
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"reference-{stem}-", dir=workdir))
    try:
        outcomes, records = _execute(run_nb, tmp / "run", timeout, None, boxed, limits or sandbox.Limits())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = [(name, outcomes.get(i)) for name, (i, _) in run_where.items()
           if outcomes.get(i) is None or outcomes[i].status != "ok"]
    if bad:
        name, o = bad[0]
        why = o.error if o is not None else "not run"
        raise RuntimeError(f"the solution {label} fails its own hidden tests ({name}: {why}); fix it before grading")
    for name, index in guard_at.items():
        verdict = _guard_verdict(outcomes.get(index), name)
        if verdict is not None:
            raise RuntimeError(f"the solution {label}, exercise {name}: {verdict}; fix it before grading")
    recorded = {name: records.get(i, []) for name, (i, _) in run_where.items()}
    broken = [(name, p["bad"]) for name, ps in recorded.items() for p in ps if p.get("name") is None]
    if broken:
        raise RuntimeError(f"the solution {label} left {broken[0][1]} in {broken[0][0]}")
    return Reference(stem, solution, tests, recorded, time.monotonic() - start, forbidden)


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
        try:
            why = compare(ref["value"], values[k], ref["rtol"], ref["atol"], name)
        except Exception as e:  # a value compare cannot handle: wrong, not the end of the run
            why = f"{name}: a value that cannot be compared ({type(e).__name__})"
        if why is not None:
            return f"{why}.{hint}"
    return None


def _not_reached(expected: list[dict], got: list[dict]) -> str:
    """The first hidden test (name and hint) the submission did not record, or ''."""
    counts: dict[str, int] = {}
    for payload in got:
        if payload.get("name") is not None:
            counts[payload["name"]] = counts.get(payload["name"], 0) + 1
    for ref in expected:
        if counts.get(ref["name"], 0) > 0:
            counts[ref["name"]] -= 1
            continue
        hint = f": {ref['message']}" if ref.get("message") else ""
        return f"hidden test {ref['name']!r} was not reached{hint}"
    return ""


# --------------------------------------------------------------------------- grading one submission


def _error_rows(name: str, what: str, detail: str = "", exercises: dict | None = None) -> list[Result]:
    """Rows of a submission that could not be graded: its exercises at 0 of their points when the
    exercise notebook is known, else one ``<error: ...>`` row."""
    message = f"{what} ({detail})" if detail else what
    if exercises:
        return [Result(name, ex, 0, pts, status="error", message=message) for ex, pts in exercises.items()]
    return [Result(name, f"<error: {what}>", 0, 0, status="error", message=message)]


def _read_submission(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` (not followed if a link), as plain code, markdown and raw cells."""
    fd = os.open(str(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = f.read(MAX_SUBMISSION_BYTES + 1)
    if len(data) > MAX_SUBMISSION_BYTES:
        raise ValueError(f"over {MAX_SUBMISSION_BYTES >> 20} MB")
    raw = nbformat.reads(data.decode("utf-8"), as_version=4)
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no cells")
    nb = nbformat.v4.new_notebook()
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError(f"cell {i + 1} is not a code, markdown or raw cell")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(x, str) for x in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError(f"cell {i + 1} has no text")
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}[cell["cell_type"]]
        nb.cells.append(make(source, metadata=copy.deepcopy(meta)))
    return nb


class Grader:
    """Grades submissions against one solutions folder; runs each solution notebook once, first.

    ``timeout``: wall-clock seconds for a whole submission (kernel start not counted);
    ``cell_timeout``: seconds for any one cell (default: no separate limit). Both stop the
    submission the same way: the kernel is killed, later cells are not run, the points earned
    before are kept. ``memory_mb``: memory of the whole submission (see :class:`sandbox.Limits`).
    ``sandbox``: True (default; RuntimeError where bubblewrap cannot build one) or False
    (``--no-sandbox``: per-process limits only). ``isolate`` is the older name of ``sandbox``.
    """

    def __init__(self, solutions_dir: str | Path = "solutions", timeout: float = DEFAULT_TIMEOUT,
                 cell_timeout: float | None = None, memory_mb: float | None = DEFAULT_MEMORY_MB,
                 isolate: bool | None = None, hide: Iterable[str | Path] = (), keep_dir: str | Path | None = None,
                 sandbox: bool | None = None, limits: "sandbox_mod.Limits | None" = None):
        self.solutions_dir = _solutions_folder(solutions_dir)
        self.timeout = float(timeout)
        self.cell_timeout = cell_timeout
        self.boxed = bool(sandbox if sandbox is not None else (isolate if isolate is not None else True))
        del hide  # the sandbox shows an allow-list: nothing needs hiding
        if self.boxed:
            why = sandbox_mod.unavailable()
            if why is not None:
                raise RuntimeError(f"{why}: {sandbox_mod.INSTALL_HINT}")
        self.limits = limits or sandbox_mod.Limits(memory_mb=memory_mb)
        if cell_timeout is None and self.limits.cpu_seconds is None:
            self.limits.cpu_seconds = 2 * self.timeout + 60
        self.tmp_root = Path(tempfile.mkdtemp(prefix="course-grading-"))
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self.managers: set = set()
        self.cgroups: set = set()
        self._references: dict[str, Reference | Exception] = {}
        self._lock = threading.Lock()
        self._stem_locks: dict[str, threading.Lock] = {}
        self._names: set = set()

    def describe(self) -> str:
        """What isolates each submission and which limits hold (one line for the output)."""
        if not self.boxed:
            return ("no sandbox (--no-sandbox): submissions run as your user and can read and write what you can; "
                    "limits per process only")
        probe = sandbox_mod.Cgroup.create(self.limits)
        how = probe.how
        probe.remove()
        return sandbox_mod.describe(self.limits, how)

    def close(self) -> None:
        """Kill what still runs and remove the folder the submissions ran in."""
        for cg in list(self.cgroups):
            cg.remove()
        shutil.rmtree(self.tmp_root, ignore_errors=True)

    def reference(self, stem: str) -> Reference:
        with self._lock:
            lock = self._stem_locks.setdefault(stem, threading.Lock())
        with lock:
            if stem not in self._references:
                try:
                    self._references[stem] = reference_run(self.solutions_dir, stem, timeout=max(self.timeout, 600),
                                                            boxed=self.boxed, limits=self.limits,
                                                            workdir=self.tmp_root)
                except Exception as err:
                    self._references[stem] = err
        ref = self._references[stem]
        if isinstance(ref, Exception):
            raise ref
        return ref

    def grade_one(self, path: str | Path, exercise: str | None = None) -> list[Result]:
        """Grade one submission: one :class:`Result` per exercise (never raises for a bad submission)."""
        name = str(path)
        try:
            return self._grade_one(name, Path(path), exercise)
        except Exception as e:  # whatever went wrong, it is this submission's row, not the end of the run
            return _error_rows(name, "the grader could not grade it", f"{type(e).__name__}: {_one_line(e, 120)}",
                               self._points_if_known(Path(path), exercise))

    def _grade_one(self, name: str, path: Path, exercise: str | None) -> list[Result]:
        if os.path.islink(path):
            return _error_rows(name, "a symbolic link, not a notebook: submit the notebook file itself", "",
                               self._points_if_known(path, exercise))
        if not path.is_file():
            return _error_rows(name, "file not found" if not path.exists() else "not a file")
        try:
            submission = _read_submission(path)
        except Exception as e:  # nbformat and json raise several kinds for bad input
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
        static = self._static_uses(nb, where, ref)
        run_nb, run_where, guard_at, moved = _with_guards(nb, where, ref.forbidden or {})
        tmp = Path(tempfile.mkdtemp(prefix="submission-", dir=self.tmp_root))
        try:
            copy_of = tmp / "copy" / _plain_name(path)
            copy_of.parent.mkdir()
            nbformat.write(submission, str(copy_of))  # a copy of itself only (the cells it was graded on)
            try:
                outcomes, records = _execute(run_nb, tmp / "run", self.timeout, self.cell_timeout, self.boxed,
                                             self.limits, managers=self.managers, copy_of=copy_of,
                                             cgroups=self.cgroups)
            except Exception as e:  # the kernel could not be started at all
                return _error_rows(name, "could not run it", f"{type(e).__name__}: {_one_line(e, 120)}", points)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        results = []
        ordered = sorted(outcomes.values(), key=lambda o: o.index)
        for exercise_name, (index, pts) in sorted(run_where.items(), key=lambda kv: kv[1][0]):
            outcome = outcomes.get(index)
            elapsed = sum(o.seconds for o in ordered if o.index <= index)
            expected, got = ref.records.get(exercise_name, []), records.get(index, [])
            if outcome is None or outcome.status == "not run":
                why = outcome.error if outcome is not None and outcome.error else "not run"
                status = "crashed" if "(died)" in why else ("timeout" if "(timeout)" in why else "failed")
                results.append(Result(name, exercise_name, 0, pts, status, why, elapsed))
            elif outcome.status == "timeout":
                results.append(Result(name, exercise_name, 0, pts, "timeout", outcome.error, elapsed))
            elif outcome.status == "died":
                results.append(Result(name, exercise_name, 0, pts, "crashed", outcome.error, elapsed))
            elif outcome.status == "error":
                missed = _not_reached(expected, got)
                why = f"{missed} (the grade cell stopped: {outcome.error})" if missed else outcome.error
                results.append(Result(name, exercise_name, 0, pts, "failed", why, elapsed))
            else:
                why = _judge(expected, got)
                if why is None and static.get(exercise_name):
                    why = forbid.rule_message(static[exercise_name][0])
                if why is None and exercise_name in guard_at:
                    why = _guard_verdict(outcomes.get(guard_at[exercise_name]), exercise_name)
                if why is None:
                    results.append(Result(name, exercise_name, pts, pts, "passed", "", elapsed))
                else:
                    results.append(Result(name, exercise_name, 0, pts, "failed", why, elapsed))
        self._keep(path, nb, where, outcomes, moved, results)
        return results

    def _static_uses(self, nb, where: dict, ref: Reference) -> dict:
        sources = _student_sources(nb, {i for i, _ in where.values()}, ref.solution)
        return {ex: forbid.static_uses(sources, names) for ex, names in (ref.forbidden or {}).items() if names}

    def _points_if_known(self, path: Path, exercise: str | None) -> dict | None:
        try:
            stems = solution_stems(self.solutions_dir)
            stem = exercise if exercise in stems else (path.stem if path.stem in stems else None)
            if stem is None:
                prefixes = [s for s in stems if path.stem.startswith(s)]
                stem = max(prefixes, key=len) if prefixes else None
            if stem is None:
                return None
            return {ex: pts for ex, (_, pts) in _tests_of(read_solution(self.solutions_dir, stem), stem).items()}
        except (ValueError, OSError):
            return None

    def _unique_name(self, path: Path) -> str:
        with self._lock:
            base = _safe_name(path)
            name, k = base, 1
            while name in self._names:
                k += 1
                name = f"{base}-{k}"
            self._names.add(name)
            return name

    def _keep(self, path: Path, nb, where: dict, outcomes: dict, moved: dict, results: list[Result]) -> None:
        """The executed notebook (the student's cells with their outputs, each grade cell replaced by its
        result) and a feedback file."""
        if self.keep_dir is None:
            return
        self.keep_dir.mkdir(parents=True, exist_ok=True)
        base = self._unique_name(path)
        executed = copy.deepcopy(nb)
        by_exercise = {r.exercise: r for r in results}
        for index, cell in enumerate(executed.cells):
            if cell.cell_type != "code":
                continue
            grade = cell.metadata.get("grade")
            if index in {i for i, _ in where.values()} and isinstance(grade, dict):
                r = by_exercise.get(grade.get("exercise"))
                cell.source = f"# hidden tests of exercise {grade.get('exercise')!r} (run by the grader)"
                text = (f"{_num(r.points)} / {_num(r.max_points)} points: {r.status}"
                        f"{': ' + r.message if r.message else ''}\n") if r else "not graded\n"
                cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=text)]
                continue
            outcome = outcomes.get(moved.get(index, -1))
            if outcome is None:
                continue
            cell["outputs"] = [nbformat.from_dict(_as_output(o)) for o in outcome.outputs]
            if outcome.dropped_bytes:
                cell["outputs"].append(nbformat.v4.new_output(
                    "stream", name="stderr", text=f"[grader: {outcome.dropped_bytes} bytes of output not kept]\n"))
        nbformat.write(executed, str(self.keep_dir / f"{base}.executed.ipynb"))
        (self.keep_dir / f"{base}.feedback.md").write_text(feedback_markdown(results), encoding="utf-8")


sandbox_mod = sandbox


def _with_guards(nb, where: dict, forbidden: dict):
    """``nb`` with the forbidden-call guard's two cells around each grade cell that forbids something;
    (notebook, where in it, {exercise: index of its guard's report cell}, {index in ``nb``: index in it})."""
    out = copy.deepcopy(nb)
    by_index = {i: ex for ex, (i, _) in where.items()}
    cells, new_where, guard_at, moved = [], {}, {}, {}
    for index, cell in enumerate(out.cells):
        ex = by_index.get(index)
        names = forbidden.get(ex) if ex is not None else None
        if names:
            cells.append(nbformat.v4.new_code_cell(forbid.guard_on_source(ex, names, cell.source)))
        if ex is not None:
            new_where[ex] = (len(cells), where[ex][1])
        moved[index] = len(cells)
        cells.append(cell)
        if names:
            guard_at[ex] = len(cells)
            cells.append(nbformat.v4.new_code_cell(forbid.guard_off_source()))
    out.cells = cells
    return out, new_where, guard_at, moved


def _guard_verdict(report_outcome, exercise: str) -> str | None:
    """None when the guard around ``exercise``'s grade cell saw no forbidden call, else why not."""
    if report_outcome is None or report_outcome.status != "ok":
        return "the forbidden-call check did not run (the guard's report cell failed)"
    reports = [o["data"][forbid.MIME] for o in report_outcome.outputs
               if o.get("output_type") == "display_data" and forbid.MIME in o.get("data", {})]
    if len(reports) != 1 or not isinstance(reports[0], dict) or reports[0].get("exercise") != exercise:
        return "the forbidden-call check did not report"
    calls = reports[0].get("calls")
    if not isinstance(calls, list) or not all(isinstance(c, str) for c in calls):
        return "the forbidden-call check did not report"
    if calls:
        return forbid.rule_message(calls[0])
    if reports[0].get("intact") is not True:
        return "the forbidden-call check was switched off while the hidden tests ran"
    return None


def _plain_name(path: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.name)[:100]
    return name if name.endswith(".ipynb") else "submission.ipynb"


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
    """A file name for ``path``'s feedback: readable, and different for any two paths (a hash of the whole path)."""
    full = os.path.abspath(str(path))
    parent = Path(full).parent.name
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{parent}__{Path(full).stem}")
    return f"{stem[:100]}-{hashlib.sha256(full.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def feedback_markdown(results: list[Result]) -> str:
    """A student's feedback: each exercise's points, what was wrong, and when it finished."""
    if not results:
        return ""
    total = sum(r.points for r in results)
    most = sum(r.max_points for r in results)
    lines = [f"# Feedback: {clean_text(Path(results[0].submission).name)}", "",
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
    """Submissions: files as given, folders replaced by the notebooks inside them (sorted, recursively,
    links included: they are refused when graded); a file named twice is graded once."""
    out, seen = [], set()
    for p in paths:
        p = Path(p)
        found = ([str(q) for q in sorted(p.rglob("*.ipynb")) if ".ipynb_checkpoints" not in q.parts]
                 if p.is_dir() and not p.is_symlink() else [str(p)])
        for q in found:
            key = os.path.normpath(os.path.abspath(q))
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def report(results: list[Result]) -> str:
    """A readable table of one submission's results, with its total."""
    if not results:
        return ""
    lines = [f"== {clean_text(results[0].submission)}"]
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
          isolate: bool | None = None, sandbox: bool | None = None, limits: "sandbox_mod.Limits | None" = None
          ) -> list[Result]:
    """Grade each submission in ``paths`` (folders expanded), ``jobs`` at a time.

    Prints a table per submission to ``out`` and problems to ``err``; with ``csv_path``, writes
    the rows as they finish (the path is opened before grading starts, so a bad one fails at
    once). A missing or unreadable submission gives rows with status ``error`` and 0 points.
    ``keep_dir``: where the executed notebooks and feedback files go. Ctrl-C stops grading,
    kills the running kernels and keeps every finished row. ``sandbox=False`` (``--no-sandbox``)
    runs the submissions unisolated; otherwise RuntimeError where no sandbox can be built.
    """
    out = None if quiet else (out or sys.stdout)
    err = err or sys.stderr
    paths = expand(paths)
    f = None
    if csv_path is not None:
        f = open(Path(csv_path), "w", encoding="utf-8", newline="")  # fails now, not after grading
    try:
        if keep_dir is not None:
            Path(keep_dir).mkdir(parents=True, exist_ok=True)
        grader = Grader(solutions_dir, timeout=timeout, cell_timeout=cell_timeout, memory_mb=memory_mb,
                        isolate=isolate, keep_dir=keep_dir, sandbox=sandbox, limits=limits)
    except BaseException:
        if f is not None:
            f.close()
        raise
    print(("warning: " if not grader.boxed else "") + grader.describe(), file=err, flush=True)
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
                print(f"error: {clean_text(paths[i])}: {rows[0].message}", file=err, flush=True)
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
        for cg in list(grader.cgroups):
            cg.kill()
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
