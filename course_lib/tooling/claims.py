"""``python -m course_lib claims``: run lessons under several course seeds and list every claim that fails.

A lesson asserts each sentence that describes a result in the cell that produces it. An
assert that holds on one seed only is not evidence, so this sweep runs each lesson once per
``COURSE_SEED`` (quick mode by default, full mode with ``--full``: on a machine without a GPU
that means full-size models on the offline digits) and reports, per lesson and seed, every
cell that raised (cells tagged ``raises-exception`` are expected to raise), with the first
line of the cell and the error. A cell that raised is followed by the rest of the lesson, so
one run lists every failing claim (a later failure may be a consequence of an earlier one:
the table marks the first).

    python -m course_lib claims --seeds 0 1 2 3 4            # every lesson, quick mode
    python -m course_lib claims 04 07 --seeds 0 1 --full     # two lessons, full mode
    make claims                                              # seeds 0-4, every lesson

Each run uses a fresh checkpoint folder (nothing is loaded that another run trained) unless
``--checkpoints DIR`` is given. The report is printed and written as Markdown to
``build/claims/report.md`` (``--report FILE``). Exit status 1 when any claim failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .notebooks import repo_root

__all__ = ["Failure", "Run", "run_lesson", "sweep", "report_markdown", "main"]

CELL_TIMEOUT = 1800.0   # seconds: one cell (full mode on a CPU trains for minutes)
TOTAL_TIMEOUT = 7200.0  # seconds: one lesson


@dataclass
class Failure:
    """A cell that raised when it should not have: its number (1-based, code and Markdown cells
    counted as JupyterLab shows them), the first line of its source, and the error's last line."""

    cell: int
    first_line: str
    error: str


@dataclass
class Run:
    """One lesson run under one course seed."""

    lesson: str
    seed: int
    full: bool
    seconds: float = 0.0
    status: str = "pass"  # pass, fail, stopped (a time limit or a dead kernel)
    failures: list = field(default_factory=list)
    note: str = ""
    printed: str = ""  # what the lesson printed (its stdout, in cell order): the numbers behind each claim


def _read(path: Path):
    """The lesson as a notebook: its jupytext source when there is one (never a stale .ipynb)."""
    import nbformat

    source = path.with_suffix(".py")
    if source.exists():
        import jupytext

        return jupytext.read(str(source))
    return nbformat.read(str(path), as_version=4)


def _kernel_env(seed: int, full: bool, checkpoint_dir: str) -> dict:
    env = dict(os.environ)
    env.update(COURSE_SEED=str(seed), COURSE_QUICK="0" if full else "1", COURSE_CHECKPOINT_DIR=checkpoint_dir,
               MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.setdefault("TQDM_MININTERVAL", "30")
    return env


def run_lesson(path: str | Path, seed: int, full: bool = False, checkpoint_dir: str | None = None,
               timeout: float = TOTAL_TIMEOUT, cell_timeout: float = CELL_TIMEOUT) -> Run:
    """Run one lesson with ``COURSE_SEED=seed``; every cell that raised unexpectedly is a :class:`Failure`."""
    from .execution import run_cells
    from .slides import kernel_argv

    path = Path(path)
    nb = _read(path)
    run = Run(path.stem, seed, full)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course_claims_") as cwd:
        ckpt = checkpoint_dir or str(Path(cwd) / "checkpoints")
        # the lesson's own folder on the path, as when JupyterLab opens it; the kernel runs in a scratch folder
        env = _kernel_env(seed, full, ckpt)
        outcomes = run_cells(nb, kernel_argv(), env, cwd, timeout=timeout, cell_timeout=cell_timeout,
                             max_cell_bytes=20_000, max_total_bytes=2_000_000)
    run.seconds = time.monotonic() - start
    run.printed = _printed(outcomes)
    for outcome in outcomes:
        cell = nb.cells[outcome.index]
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:100]
        if outcome.status in ("timeout", "died"):
            run.status, run.note = "stopped", f"cell {outcome.index + 1}: {outcome.error}"
            run.failures.append(Failure(outcome.index + 1, first, outcome.error))
            break
        if outcome.status == "error" and "raises-exception" not in cell.metadata.get("tags", []):
            run.failures.append(Failure(outcome.index + 1, first, outcome.error))
        elif outcome.status == "ok" and "raises-exception" in cell.metadata.get("tags", []):
            run.failures.append(Failure(outcome.index + 1, first, "tagged raises-exception but raised nothing"))
    if run.failures and run.status == "pass":
        run.status = "fail"
    return run


def _printed(outcomes, limit: int = 200_000) -> str:
    """The text the cells printed (stream outputs), in order; the last ``limit`` characters."""
    text = "".join(o.get("text", "") for outcome in outcomes for o in outcome.outputs
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return text[-limit:]


def sweep(lessons, seeds, full: bool = False, jobs: int = 1, checkpoint_dir: str | None = None, log=print,
          **limits) -> list[Run]:
    """Every lesson under every seed (``jobs`` runs at once); runs in lesson order, then seed order."""
    tasks = [(Path(p), s) for p in lessons for s in seeds]

    def one(task):
        path, seed = task
        run = run_lesson(path, seed, full=full, checkpoint_dir=checkpoint_dir, **limits)
        word = {"pass": "pass", "fail": f"FAIL ({len(run.failures)} cell(s))", "stopped": "STOPPED"}[run.status]
        log(f"{run.lesson} seed {seed} {'full' if full else 'quick'}: {word} in {run.seconds:.0f} s", flush=True)
        for f in run.failures:
            log(f"    cell {f.cell} [{f.first_line}]: {f.error}", flush=True)
        return run

    if jobs <= 1:
        return [one(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, tasks))


def report_markdown(runs: list[Run]) -> str:
    """A table lesson x seed (pass, or the failing cells), then each failure in full."""
    lessons = list(dict.fromkeys(r.lesson for r in runs))
    seeds = list(dict.fromkeys(r.seed for r in runs))
    by = {(r.lesson, r.seed): r for r in runs}
    modes = sorted({"full" if r.full else "quick" for r in runs})
    lines = [f"# Claims sweep ({', '.join(modes)} mode)", "",
             "| lesson | " + " | ".join(f"seed {s}" for s in seeds) + " | time (s) |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for lesson in lessons:
        cells = []
        for s in seeds:
            r = by.get((lesson, s))
            if r is None:
                cells.append("")
            elif r.status == "pass":
                cells.append("pass")
            else:
                cells.append(("STOPPED " if r.status == "stopped" else "FAIL ") + ",".join(str(f.cell) for f in r.failures))
        times = [by[(lesson, s)].seconds for s in seeds if (lesson, s) in by]
        lines.append(f"| {lesson} | " + " | ".join(cells) + f" | {min(times):.0f}-{max(times):.0f} |")
    failed = [r for r in runs if r.failures]
    if failed:
        lines += ["", "## Failures (the first failure of a run may cause the later ones)", ""]
        for r in failed:
            for f in r.failures:
                lines.append(f"- {r.lesson}, seed {r.seed}, cell {f.cell} `{f.first_line}`: {f.error}")
    passed = sum(r.status == "pass" for r in runs)
    lines += ["", f"{passed} of {len(runs)} runs passed."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .slides import lesson_paths

    p = argparse.ArgumentParser(prog="python -m course_lib claims", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("lessons", nargs="*", help="lessons (01, 04_beta_vae, a path; default: every lesson)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], metavar="N", help="course seeds")
    p.add_argument("--full", action="store_true", help="full mode (COURSE_QUICK=0; on a CPU: full-size models, "
                                                        "offline digits)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="lesson runs at once")
    p.add_argument("--checkpoints", metavar="DIR", help="a checkpoint folder shared by the runs (default: a fresh "
                                                        "one per run)")
    p.add_argument("--timeout", type=float, default=TOTAL_TIMEOUT, metavar="SECONDS", help="limit per lesson run")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS", help="limit per cell")
    p.add_argument("--report", metavar="FILE", help="Markdown report (default: build/claims/report.md); a JSON "
                                                    "file with the same name ending .json is written beside it")
    args = p.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        p.error("seeds are integers >= 0")
    try:
        paths = lesson_paths(args.lessons)
    except ValueError as e:
        p.error(str(e))
    print(f"claims sweep: {len(paths)} lesson(s) x seeds {' '.join(map(str, args.seeds))}, "
          f"{'full' if args.full else 'quick'} mode, {args.jobs} at once", flush=True)
    runs = sweep(paths, args.seeds, full=args.full, jobs=args.jobs, checkpoint_dir=args.checkpoints,
                 timeout=args.timeout, cell_timeout=args.cell_timeout)
    text = report_markdown(runs)
    print()
    print(text)
    report = Path(args.report) if args.report else repo_root() / "build" / "claims" / "report.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
    report.with_suffix(".json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    print(f"report written to {report}")
    return 0 if all(r.status == "pass" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
