"""Command line: ``python -m course_lib {build,notebooks,exercises,grade,bench} ...``.

    build [--check]        regenerate notebooks/*.ipynb, solutions/*.ipynb and exercises/ (--clear-outputs)
    notebooks [--check]    only the .ipynb beside each py:percent source
    exercises [--check]    only exercises/ from solutions/
    grade SUB.ipynb|DIR ... grade submissions (--csv FILE, --jobs N, --exercise STEM, ...; see --help)
    release DIR            what a student gets, without solutions/
    bench [args ...]       course_lib.tooling.bench
    pretrain [--quick]     run every lesson once so that its trained models are cached
    slides [LESSONS ...]   one offline reveal.js deck per lesson in build/slides (course_lib.tooling.slides)
    site                   the course as an offline web site in build/site/html (course_lib.tooling.site)
    claims [LESSONS ...]   run lessons under several COURSE_SEEDs (--seeds, --full) and list failing claims
    timings [--measure]    measure each lesson's run time; write it into README.md and the lesson headers
    mutations [NN ...]     mutation test of the exercises' self-checks (course_lib.tooling.mutations)
    rise [LESSONS ...]     open each lesson in live RISE (JupyterLab) and list the slides that do not fit
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BUILD = "python -m course_lib build"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _report(problems, root: Path, check: bool, what: str) -> int:
    """Print the problems; the last line says what to do. Returns the exit status."""
    fixable = [p for p in problems if p.fixable]
    manual = [p for p in problems if not p.fixable]
    for p in fixable:
        verb = "stale" if check else ("deleted" if p.reason.startswith("orphaned") else "wrote")
        print(f"  {verb}: {_rel(p.path, root)}: {p.reason}")
    for p in manual:
        print(f"  fix by hand: {_rel(p.path, root)}: {p.reason}")
    if manual:
        print(f"{what}: {len(manual)} file(s) need a person (see above), then run `{BUILD}`.")
        return 1
    if check and fixable:
        print(f"{what} out of date ({len(fixable)} file(s)): run `{BUILD}`.")
        return 1
    print(f"{what}: {'wrote ' + str(len(fixable)) + ' file(s)' if fixable else 'up to date'}.")
    return 0


def _root(args) -> Path:
    from .notebooks import repo_root

    return Path(args.root) if args.root else repo_root()


def _sync(args):
    from . import notebooks

    return notebooks.sync(check=args.check, root=_root(args), force=getattr(args, "force", False),
                          clear=getattr(args, "clear_outputs", False))


def _generate(args):
    from . import exercises

    return exercises.generate("solutions", "exercises", check=args.check, root=_root(args))


def _notebooks(args) -> int:
    return _report(_sync(args), _root(args), args.check, "notebooks/ and solutions/ .ipynb")


def _generate_or_explain(args):
    """``_generate``, or None after saying which solution notebook is malformed."""
    try:
        return _generate(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        print("exercises/ cannot be generated from solutions/: fix the solution notebook named above.")
        return None


def _exercises(args) -> int:
    problems = _generate_or_explain(args)
    if problems is None:
        return 1
    return _report(problems, _root(args), args.check, "exercises/ (from solutions/)")


def _build(args) -> int:
    problems = _sync(args)
    generated = _generate_or_explain(args)
    if generated is None:
        return 1
    return _report(problems + generated, _root(args), args.check, "generated notebooks")


def _grade(args) -> int:
    from . import grading

    try:
        results = grading.grade(
            args.submissions, solutions_dir=args.solutions, timeout=args.timeout, cell_timeout=args.cell_timeout,
            quiet=args.quiet, jobs=args.jobs, csv_path=args.csv, exercise=args.exercise, keep_dir=args.feedback,
            progress=not args.quiet, memory_mb=args.memory_mb, sandbox=not args.no_sandbox)
    except OSError as e:  # the CSV or feedback path cannot be written: said before any grading
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # no sandbox can be built here
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.csv:
        print(f"wrote {args.csv}")
    if args.gradebook:
        grading.write_gradebook(results, args.gradebook)
        print(f"wrote {args.gradebook}")
    if args.feedback:
        print(f"feedback and executed notebooks in {args.feedback}/")
    failed = sorted({r.submission for r in results if r.status == "error"})
    graded = len({r.submission for r in results}) - len(failed)
    total = sum(r.points for r in results if r.status != "error")
    print(f"graded {graded} submission(s), {grading._num(total)} point(s) in all", end="")
    print(f"; could not grade {len(failed)}: {', '.join(failed)}" if failed else "")
    return 2 if failed else 0


def _release(args) -> int:
    from .release import release

    try:
        written = release(args.folder, root=_root(args), force=args.force)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote the student release to {args.folder} ({written} files, no solutions)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description="Course tooling.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_check(p, force=True):
        p.add_argument("--check", action="store_true", help="write nothing; exit 1 when something is out of date")
        p.add_argument("--root", help="the course repository (default: the one course_lib lives in)")
        if force:
            p.add_argument(
                "--force", action="store_true", help="overwrite an .ipynb even if it was edited after its .py"
            )
            p.add_argument("--clear-outputs", action="store_true",
                           help="clear the outputs a JupyterLab save left in the lessons (kept otherwise)")
        return p

    with_check(sub.add_parser("build", help="regenerate every .ipynb and exercises/")).set_defaults(func=_build)
    with_check(sub.add_parser("notebooks", help="regenerate the .ipynb beside each .py source")).set_defaults(
        func=_notebooks
    )
    with_check(sub.add_parser("exercises", help="regenerate exercises/ from solutions/"), force=False).set_defaults(
        func=_exercises
    )
    g = sub.add_parser("grade", help="grade submitted exercise notebooks",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Grade submissions (notebooks, or folders of them). Each runs alone, in its own "
                                   "folder, with limits; the hidden tests' values are judged in the grader.")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks, or folders holding them")
    g.add_argument("--csv", metavar="FILE", help="write submission,exercise,points,max_points,status,message rows "
                                                 "to FILE as each submission finishes")
    g.add_argument("--gradebook", metavar="FILE", help="also write one row per submission, one column per exercise")
    g.add_argument("--feedback", metavar="DIR", default="feedback",
                   help="a feedback file and the executed notebook per submission")
    g.add_argument("--solutions", default="solutions", metavar="DIR", help="solution notebooks")
    g.add_argument("--exercise", metavar="STEM", help="grade every submission as this exercise notebook "
                                                       "(e.g. 03_vae), whatever the file names")
    g.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                   help="wall-clock limit per submission (kernel start not counted)")
    g.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="limit per cell; like --timeout, a cell over it stops the submission")
    g.add_argument("--memory-mb", type=float, default=4096, metavar="MB",
                   help="memory limit of each submission (all its processes)")
    g.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N", help="submissions graded at once")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run submissions without the bubblewrap sandbox (they can read and write what you can): "
                        "only for work you trust")
    g.add_argument("--quiet", action="store_true", help="no per-submission tables and no progress bar")
    g.set_defaults(func=_grade)
    r = sub.add_parser("release", help="write what a student gets (lessons, exercises, course_lib) without solutions")
    r.add_argument("folder", metavar="DIR")
    r.add_argument("--root", help="the course repository (default: the one course_lib lives in)")
    r.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    r.set_defaults(func=_release)
    sub.add_parser("bench", help="benchmarks (course_lib.tooling.bench); arguments are passed on", add_help=False)
    sub.add_parser("pretrain", help="run every lesson once (full mode) so its models are cached", add_help=False)
    sub.add_parser("slides", help="offline reveal.js decks of the lessons in build/slides", add_help=False)
    sub.add_parser("site", help="the course as an offline web site in build/site/html", add_help=False)
    sub.add_parser("claims", help="run lessons under several course seeds and list every claim that fails",
                   add_help=False)
    sub.add_parser("timings", help="measure each lesson's run time; write it into README.md and the headers",
                   add_help=False)
    sub.add_parser("mutations", help="make the usual mistakes in each exercise's solution and report which ones "
                                     "its self-check misses", add_help=False)
    sub.add_parser("rise", help="open each lesson in live RISE (JupyterLab) and list the slides that do not fit",
                   add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from . import bench  # written elsewhere; imported only when asked for

        status = bench.main(argv[1:])
        return status if isinstance(status, int) else 0
    if argv and argv[0] == "pretrain":
        from . import pretrain

        return pretrain.main(argv[1:])
    if argv and argv[0] in ("slides", "site", "claims", "timings", "mutations", "rise"):
        from importlib import import_module

        return import_module(f".{argv[0]}", __package__).main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
