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
import time
from pathlib import Path

from .notebooks import repo_root

__all__ = ["main", "run_notebook"]


def run_notebook(path: Path, quick: bool = False, timeout: int | None = None) -> float:
    """Execute one notebook in a fresh kernel (full mode unless ``quick``); returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, COURSE_QUICK="1" if quick else "0", MPLBACKEND="Agg")
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)  # env: the kernel's
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib pretrain", description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="lesson notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--quick", action="store_true", help="quick mode (checks the run; caches the small models)")
    args = p.parse_args(argv)
    paths = [Path(n) for n in args.notebooks] or sorted((repo_root() / "notebooks").glob("[0-9]*.ipynb"))
    failed = []
    for path in paths:
        print(f"{path.name}: running in {'quick' if args.quick else 'full'} mode ...", flush=True)
        try:
            seconds = run_notebook(path, quick=args.quick)
            print(f"{path.name}: done in {seconds:.0f} s", flush=True)
        except Exception as err:  # report and go on with the next lesson
            failed.append(path.name)
            print(f"{path.name}: FAILED: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}", file=sys.stderr)
    print(f"checkpoints in {os.environ.get('COURSE_CHECKPOINT_DIR') or repo_root() / 'checkpoints'}")
    return 1 if failed else 0
