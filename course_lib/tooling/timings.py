"""``python -m course_lib timings``: measure how long each lesson runs, and write that one figure everywhere.

The README's lesson table and the "**Run time**" paragraph at the top of every lesson give the
same numbers, and neither is typed by hand: ``--measure`` runs each lesson and its exercise
solution once, alone, in a fresh kernel (quick mode, course seed 0, no checkpoints: what a student
meets the first time; the kernel start counts), and stores the wall-clock seconds with a
description of the machine in ``docs/timings.json``. Without ``--measure`` the command only
rewrites the README table and the lesson headers from that file; ``--check`` writes nothing and
exits 1 when either is out of date (the test suite runs it).

    python -m course_lib timings --measure          # every lesson (a few minutes), then rewrite
    python -m course_lib timings --measure 04 07    # only these lessons
    python -m course_lib timings --check            # is everything written from docs/timings.json?

Measure on an otherwise idle machine: the figures are meant to tell a student what to expect.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from .notebooks import repo_root

__all__ = ["machine", "measure", "header_paragraph", "readme_cell", "rewrite", "main"]

TIMINGS = Path("docs") / "timings.json"
_ROW = re.compile(r"^\| (\d+) \| `(\d\d_[a-z0-9_]+)` \|")


def machine() -> str:
    """The machine in a few words: cores, processor, GPU or not."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        gpu = "no GPU"
    return f"{os.cpu_count()} CPU cores ({model}), {gpu}"


def measure(stems, root: Path, log=print) -> dict:
    """Run each lesson and its solution notebook once; ``{stem: {"lesson": s, "exercise": s}}``."""
    from .claims import run_lesson

    out = {}
    for stem in stems:
        entry = {}
        for kind, folder in (("lesson", "notebooks"), ("exercise", "solutions")):
            path = root / folder / f"{stem}.ipynb"
            if not path.exists():
                continue
            run = run_lesson(path, seed=0, full=False)
            if run.status != "pass":
                raise RuntimeError(f"{folder}/{stem} does not run to the end ({run.failures[0].error}): fix it "
                                   "before measuring its time.")
            entry[kind] = round(run.seconds)
            log(f"{folder}/{stem}: {run.seconds:.0f} s", flush=True)
        out[stem] = entry
    return out


def _seconds(s) -> str:
    return f"{s} s" if s < 120 else f"{s / 60:.1f} min"


def header_paragraph(stem: str, data: dict) -> str:
    """The lesson's "**Run time**" paragraph (jupytext comment lines, no trailing newline); ``data["notes"]``
    may add a sentence per lesson (what is known of full mode where it was not measured)."""
    t = data["lessons"][stem]
    full = data.get("full", {}).get(stem)
    text = (f"**Run time** (measured with `python -m course_lib timings` on {data['machine']}): quick mode, the "
            f"default without a GPU, {_seconds(t['lesson'])} for this notebook from a fresh kernel"
            + (f", {_seconds(t['exercise'])} for its exercise notebook" if "exercise" in t else "") + ". "
            + (f"Full mode on the same CPU: {_seconds(full)}. " if full else "")
            + "Full mode on a GPU: not measured. Trained models are cached as checkpoints: a second run loads them."
            + (" " + data["notes"][stem] if stem in data.get("notes", {}) else ""))
    words, lines, line = text.split(" "), [], "#"
    for w in words:  # wrap at 118 columns like the lessons' Markdown
        if len(line) + 1 + len(w) > 118:
            lines.append(line)
            line = "#"
        line += " " + w
    lines.append(line)
    return "\n".join(lines)


def readme_cell(stem: str, data: dict) -> str:
    t = data["lessons"][stem]
    return f"{_seconds(t['lesson'])} + {_seconds(t['exercise'])}" if "exercise" in t else _seconds(t["lesson"])


def _rewrite_header(source: str, paragraph: str) -> str:
    lines = source.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("# **Run time**")), None)
    if start is None:
        raise ValueError("no '# **Run time**' paragraph in the lesson's header: add one (any text) for the tool to fill")
    end = start + 1
    while end < len(lines) and lines[end].startswith("#") and lines[end].strip() != "#" and not lines[end].startswith("# **"):
        end += 1
    return "\n".join(lines[:start] + paragraph.split("\n") + lines[end:])


def _rewrite_readme(text: str, data: dict) -> str:
    out = []
    for line in text.split("\n"):
        m = _ROW.match(line)
        if m and m.group(2) in data["lessons"]:
            cells = line.split(" | ")
            cells[4] = readme_cell(m.group(2), data)  # "| #", notebook, topic, seeds, quick, "full |"
            line = " | ".join(cells)
        elif line.startswith("Quick-mode times:"):
            line = (f"Quick-mode times: wall clock of the notebook alone from a fresh kernel (lesson + its exercise "
                    f"notebook), measured by `python -m course_lib timings --measure` on {data['machine']}, "
                    f"{data['date']}.")
        out.append(line)
    return "\n".join(out)


def rewrite(root: Path, check: bool = False) -> list[str]:
    """Write the README table and the lesson headers from ``docs/timings.json``; the files that changed
    (or, with ``check``, would change)."""
    data = json.loads((root / TIMINGS).read_text())
    changed = []
    readme = root / "README.md"
    text = readme.read_text()
    new = _rewrite_readme(text, data)
    if new != text:
        changed.append("README.md")
        if not check:
            readme.write_text(new)
    for stem in sorted(data["lessons"]):
        path = root / "notebooks" / f"{stem}.py"
        src = path.read_text()
        new = _rewrite_header(src, header_paragraph(stem, data))
        if new != src:
            changed.append(str(path.relative_to(root)))
            if not check:
                path.write_text(new)
    return changed


def main(argv=None) -> int:
    from .slides import lesson_paths

    p = argparse.ArgumentParser(prog="python -m course_lib timings", description=__doc__.splitlines()[0])
    p.add_argument("lessons", nargs="*", help="lessons to measure (default: every lesson)")
    p.add_argument("--measure", action="store_true", help="run the lessons and store their times first")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the README or a header is stale")
    args = p.parse_args(argv)
    root = repo_root()
    if args.measure:
        stems = [path.stem for path in lesson_paths(args.lessons, root)]
        path = root / TIMINGS
        data = json.loads(path.read_text()) if path.exists() else {"lessons": {}}
        data["lessons"].update(measure(stems, root))
        data["machine"], data["date"] = machine(), time.strftime("%Y-%m-%d")
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    changed = rewrite(root, check=args.check)
    for name in changed:
        print(f"  {'stale' if args.check else 'wrote'}: {name}")
    if args.check and changed:
        print("run times out of date with docs/timings.json: run `python -m course_lib timings` (then "
              "`python -m course_lib build`).")
        return 1
    print("run times: " + ("up to date" if not changed else f"wrote {len(changed)} file(s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
