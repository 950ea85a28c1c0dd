"""``python -m course_lib pretrain``: run every lesson once so its models are cached.

Instructors run this before class (in full mode, ideally on a GPU): each lesson's
``fit(..., checkpoint=...)`` cells save their weights under ``checkpoints/`` (or
``COURSE_CHECKPOINT_DIR``), and in class the same cells load them in seconds. The
notebooks themselves are not modified (outputs are discarded).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .notebooks import repo_root

__all__ = ["main", "run_notebook"]


CELL_TIMEOUT = 3 * 3600.0   # seconds: one cell (a full-mode training run on a GPU)
TOTAL_TIMEOUT = 8 * 3600.0  # seconds: one lesson


def run_notebook(path: Path, quick: bool = False, timeout: float | None = TOTAL_TIMEOUT,
                 cell_timeout: float | None = CELL_TIMEOUT) -> float:
    """Execute one notebook in a fresh kernel (full mode unless ``quick``); returns seconds.

    With a per-cell and a total time limit (:func:`course_lib.tooling.execution.run_cells`, which also
    never waits on a kernel that does not report "idle" after its last reply); when one runs out,
    or the kernel dies, raises RuntimeError saying which cell and which limit.
    """
    from .slides import ExecutionFailed, execute_notebook

    try:
        run = execute_notebook(path, quick=quick, cell_timeout=cell_timeout,
                               timeout=TOTAL_TIMEOUT if timeout is None else timeout)
    except ExecutionFailed as err:
        raise RuntimeError(str(err)) from None
    if run.errors:
        raise RuntimeError(f"{path.name}: {len(run.errors)} cell(s) raised; first: {run.errors[0]}")
    return run.seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib pretrain", description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="lesson notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--quick", action="store_true", help="quick mode (checks the run; caches the small models)")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS",
                   help="stop a lesson when one cell runs longer than this")
    p.add_argument("--timeout", type=float, default=TOTAL_TIMEOUT, metavar="SECONDS",
                   help="stop a lesson when it runs longer than this")
    args = p.parse_args(argv)
    paths = [Path(n) for n in args.notebooks] or sorted((repo_root() / "notebooks").glob("[0-9]*.ipynb"))
    failed = []
    for path in paths:
        print(f"{path.name}: running in {'quick' if args.quick else 'full'} mode ...", flush=True)
        try:
            seconds = run_notebook(path, quick=args.quick, timeout=args.timeout, cell_timeout=args.cell_timeout)
            print(f"{path.name}: done in {seconds:.0f} s", flush=True)
        except Exception as err:  # report and go on with the next lesson
            failed.append(path.name)
            print(f"{path.name}: FAILED: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}", file=sys.stderr)
    print(f"checkpoints in {os.environ.get('COURSE_CHECKPOINT_DIR') or repo_root() / 'checkpoints'}")
    return 1 if failed else 0
