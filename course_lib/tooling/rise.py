"""Check the lessons in live RISE (JupyterLab's slideshow, ``jupyterlab-rise``), as an instructor shows them.

RISE draws a lesson's own cells, with the outputs that *Run All* left in them, on the 1280 x 720 canvas
of the lesson's ``rise`` metadata. Unlike the offline decks it cannot continue a slide that is too tall
on the next one (it makes that slide scroll), so every slide of the notebook itself must fit:

    python -m course_lib rise                 # every lesson: the slides that do not fit, in px
    python -m course_lib rise 03 05 --screenshots build/rise

Each lesson is copied, with the outputs of its quick-mode run (the decks' cache, ``build/executed``) and
``notebooks/rise.css``, into a scratch folder that a JupyterLab server on 127.0.0.1 serves; headless
Chromium opens ``/rise/notebooks/NN_name.ipynb`` and presses Space through every slide and fragment
(Space visits every slide and subslide in RISE). A slide fails when its content is taller than the
canvas (RISE then adds a scroll bar), or when a code line is cut at the right edge.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .browser import MIN_FIGURE_SCALE
from .notebooks import PERCENT_CELL, repo_root

__all__ = ["jupyterlab", "copy_for_rise", "check_rise", "describe_rise", "main"]

# The slide shown now (RISE: a <section id="slide-H-V"> inside the present horizontal <section>): its
# content height against the height it is given, in the canvas's px (before Reveal's scaling).
_SLIDE_JS = r"""(() => {
  const s = document.querySelector('.reveal .slides > section.present > section.present');
  if (!s) return 'null';
  const reveal = document.querySelector('.reveal').getBoundingClientRect();
  const rect = s.getBoundingClientRect();
  const scale = s.offsetWidth ? rect.width / s.offsetWidth : 1;
  // RISE (scroll: true) gives a slide taller than 95 % of the screen a height of 95vh and a scroll bar
  const room = s.style.overflowY === 'scroll' ? s.clientHeight : 0.95 * reveal.height / scale;
  const heading = s.querySelector('h1, h2, h3, h4');
  const cut = Array.from(s.querySelectorAll('.cm-content, .jp-OutputArea-output pre'))
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 2).length;
  const every = Array.from(document.querySelectorAll('.jp-Cell'));
  const top0 = s.getBoundingClientRect().top;
  const cells = Array.from(s.querySelectorAll('.jp-Cell')).filter(c => c.offsetParent !== null)
    .map(c => [every.indexOf(c), Math.round((c.getBoundingClientRect().top - top0) / scale + s.scrollTop),
               Math.round(c.getBoundingClientRect().height / scale)]);
  const kinds = Array.from(s.querySelectorAll('.jp-Cell')).filter(c => c.offsetParent !== null)
    .map(c => c.classList.contains('jp-MarkdownCell') ? 'markdown' : 'code');
  const figures = Array.from(s.querySelectorAll('.jp-OutputArea-output img')).filter(i => i.offsetParent !== null && i.naturalHeight > 0);
  const figure_scale = figures.length ? Math.min(...figures.map(i => i.getBoundingClientRect().height / scale / i.naturalHeight)) : null;
  return JSON.stringify({id: s.id, cells: cells, kinds: kinds, figure_scale: figure_scale, total_cells: every.length, title: (heading ? heading.textContent : s.textContent).replace(/\s+/g, ' ').replace('¶', '').trim().slice(0, 70),
    content: s.scrollHeight, room: Math.round(room), scrolls: s.style.overflowY === 'scroll',
    fragments_left: s.querySelectorAll('.fragment:not(.visible)').length, cut: cut,
    number: (document.querySelector('.reveal .slide-number') || {}).textContent || ''});
})()"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(root: str | Path, scratch: str | Path, timeout: float = 120.0):
    """A JupyterLab server on 127.0.0.1 serving ``root`` (its settings and runtime files in ``scratch``);
    yields ``(base_url, token)``. Stopped (its whole process group) on exit."""
    port, token = _free_port(), secrets.token_hex(8)
    scratch = Path(scratch)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         "--ServerApp.allow_root=True"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, JUPYTER_CONFIG_DIR=str(scratch / "config"), JUPYTER_RUNTIME_DIR=str(scratch / "runtime")))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not start within {timeout:g} s") from None
                time.sleep(0.5)
        yield base, token
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass


def copy_for_rise(lessons, root: str | Path, log=print) -> list[str]:
    """Each lesson with the outputs of its quick-mode run (as after *Run All*), and ``rise.css``, into
    ``root/notebooks``; returns the notebook names. Runs a lesson whose outputs are not cached yet."""
    import nbformat

    from .slides import executed, lesson_paths

    dest = Path(root) / "notebooks"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo_root() / "notebooks" / "rise.css", dest / "rise.css")
    names = []
    for path in lesson_paths(lessons):
        run = executed(path, quick=True, log=log)
        if run.errors:
            raise RuntimeError(f"{path.name}: cells raised while running it: {run.errors[:2]}")
        nbformat.write(run.nb, str(dest / path.name))
        names.append(path.name)
    return names


def check_rise(browser, base: str, token: str, name: str, max_presses: int = 600,
               screenshots: str | Path | None = None, every: bool = False) -> dict:
    """Open ``notebooks/<name>`` in RISE and press Space through it; every slide measured with all its
    fragments shown. Returns ``{"slides": [...], "failed": [...]}``; a failed slide has ``why``.
    ``screenshots``: a folder for a PNG of each slide too tall (of every slide with ``every``)."""
    browser.set_viewport(1280, 720)
    browser.open(f"{base}/rise/notebooks/{name}?token={token}", settle=1)
    first = "null"
    for _ in range(120):  # RISE draws the slideshow once the notebook's model has loaded
        first = browser.evaluate(_SLIDE_JS)
        if first != "null" and browser.evaluate(
                "!!document.querySelector('link[href$=\"/notebooks/rise.css\"]') && "
                "document.querySelectorAll('.reveal mjx-container').length > 0"):
            break
        time.sleep(0.5)
    if first == "null":
        raise RuntimeError(f"RISE did not show {name}")
    time.sleep(1.5)  # MathJax and the figures settle
    slides: dict[str, dict] = {}
    order = []
    last, same = None, 0
    for _ in range(max_presses):
        time.sleep(0.15)
        state = json.loads(browser.evaluate(_SLIDE_JS))
        if state["id"] not in slides:
            order.append(state["id"])
        slides[state["id"]] = state  # the last state: every fragment shown
        if screenshots is not None and (every or state["content"] > state["room"] + 1):
            Path(screenshots).mkdir(parents=True, exist_ok=True)
            browser.screenshot(Path(screenshots) / f"{Path(name).stem}_{state['id']}.png")
        key = (state["id"], state["fragments_left"])
        same = same + 1 if key == last else 0
        last = key
        if same >= 3:  # Space no longer moves: the end
            break
        for kind in ("keyDown", "keyUp"):
            browser.call("Input.dispatchKeyEvent", type=kind, key=" ", code="Space", windowsVirtualKeyCode=32,
                         nativeVirtualKeyCode=32)
    report = {"lesson": name, "slides": [slides[i] for i in order], "failed": []}
    for i, s in enumerate(report["slides"]):
        why = []
        if s["content"] > s["room"] + 1:
            why.append(f"{s['content'] - s['room']} px too tall (RISE scrolls it)")
        if s["cut"]:
            why.append(f"{s['cut']} code block(s) cut at the right edge")
        if s.get("figure_scale") is not None and s["figure_scale"] < MIN_FIGURE_SCALE:
            why.append(f"a figure drawn at {s['figure_scale']:.2f} of its size (labels under 12 px)")
        if why:
            report["failed"].append({**s, "index": i + 1, "why": why})
    return report


def _cell_headers(lines) -> list[int]:
    """The line numbers of a jupytext percent source's ``# %%`` cell markers: cell k starts at the k-th."""
    return [i for i, line in enumerate(lines) if PERCENT_CELL.match(line)]


def proposed_breaks(report: dict) -> list[int]:
    """For each slide too tall that holds several cells: the first cell (not the slide's first) whose bottom
    is below the room RISE gives, as a notebook cell index; a subslide starting there shortens the slide."""
    out = []
    for s in report["failed"]:
        if s["content"] <= s["room"] + 1:
            continue
        for index, top, height in s["cells"][1:]:
            if top + height > s["room"]:
                out.append(index)
                break
    return out


def proposed_markdown_splits(report: dict) -> dict[int, float]:
    """Slides too tall that are one Markdown cell (or end with one that starts within the room): that cell's
    index -> the fraction of its height that fits (where :func:`split_markdown` cuts it)."""
    out = {}
    for s in report["failed"]:
        if s["content"] <= s["room"] + 1:
            continue
        for (index, top, height), kind in zip(s["cells"], s.get("kinds", [])):
            if kind == "markdown" and top < s["room"] < top + height and height > 0:
                out[index] = (s["room"] - top) / height
                break
    return out


def split_markdown(source: str | Path, splits: dict[int, float]) -> int:
    """Split Markdown cells of a jupytext percent source: cell ``index`` (0-based) is cut at the blank line
    nearest below ``fraction`` of its lines (never inside a list, a table or a display formula), and the
    rest starts a subslide. Returns how many cells were split."""
    path = Path(source)
    lines = path.read_text().splitlines(keepends=True)
    headers = _cell_headers(lines) + [len(lines)]
    done = 0
    for k in sorted(splits, reverse=True):  # from the end: earlier line numbers stay valid
        start, end = headers[k], headers[k + 1]
        if "[markdown]" not in lines[start]:
            continue
        body = lines[start + 1:end]
        while body and not body[-1].strip():
            end -= 1
            body = body[:-1]
        candidates, in_math = [], False
        for j, line in enumerate(body):
            text = line[1:].strip() if line.startswith("#") else line.strip()
            if text.startswith("$$"):
                in_math = not in_math if text.count("$$") == 1 else in_math
            prev = body[j - 1] if j else ""
            if line.startswith("# - ") and prev.startswith(("# - ", "#   ")) and not in_math and j > 1:
                candidates.append(-j)  # between two bullets of a list: the rest is a list on the next slide
            if text == "" and not in_math and 0 < j < len(body) - 1:
                nxt = body[j + 1][1:].strip() if body[j + 1].startswith("#") else body[j + 1].strip()
                if nxt and not nxt.startswith("|") and not re.match(r"[2-9]\.|\d\d+\.", nxt):
                    candidates.append(j)  # not inside a table, nor before the 2nd, 3rd ... item of a numbered list
        target = splits[k] * len(body) * 0.9  # a little below the estimate: the first part must fit
        fitting = [j for j in candidates if abs(j) <= target]
        if not fitting:
            continue
        j = max(fitting, key=abs)
        header = '\n# %% [markdown] slideshow={"slide_type": "subslide"}\n'
        if j > 0:   # a blank line becomes the cut
            lines[start + 1 + j] = header
        else:       # between two bullets: the cut is inserted
            lines[start + 1 - j] = header + lines[start + 1 - j]
        done += 1
    path.write_text("".join(lines))
    return done


_FIGURE_PREFIXES = ("plt", "fig", "ax", "display", "interact")
_FIGURE_PARTS = ("plot", "show", "scatter", "figure", "draw", "hist", "widget", "slider", "image", "grid", "curve",
                 "picture", "envelope", "field", "strip", "rows")


def _draws(node) -> bool:
    """Whether a statement may draw on a matplotlib figure or show something (a name or attribute that looks
    like it): a cut must never separate a figure from its ``plt.show()``."""
    import ast

    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
        if name and (name.lower().startswith(_FIGURE_PREFIXES) or any(w in name.lower() for w in _FIGURE_PARTS)):
            return True
    return False


def code_cut(code: str) -> int | None:
    """Where to cut a code cell in two without changing what it shows: the line (0-based) of the first
    top-level statement that draws, when every statement before it neither draws nor is a bare expression
    (whose value the cell would now show), and at least three lines of code come before it. None if none."""
    import ast

    try:
        body = ast.parse(code).body
    except SyntaxError:
        return None
    for k, stmt in enumerate(body):
        if _draws(stmt):
            before = body[:k]
            if not before or any(isinstance(b, ast.Expr) for b in before):
                return None
            first = stmt.lineno - 1
            lines = code.splitlines()
            while first > 0 and lines[first - 1].lstrip().startswith("#"):  # its comment lines go with it
                first -= 1
            ahead = [x for x in lines[:first] if x.strip() and not x.lstrip().startswith("#")]
            return first if len(ahead) >= 3 else None  # a slide of one or two lines is not worth a cut
    return None


def split_code(source: str | Path, indices) -> int:
    """Cut each code cell ``indices`` (0-based notebook order) of a jupytext percent source at
    :func:`code_cut`: the computing part stays, the drawing part starts a subslide. Cells with tags are left
    alone. Returns how many cells were cut."""
    path = Path(source)
    lines = path.read_text().splitlines(keepends=True)
    headers = _cell_headers(lines) + [len(lines)]
    done = 0
    for k in sorted(set(indices), reverse=True):
        start, end = headers[k], headers[k + 1]
        if "[markdown]" in lines[start] or "tags=" in lines[start]:
            continue
        cut = code_cut("".join(lines[start + 1:end]))
        if cut is None:
            continue
        at = start + 1 + cut
        lines[at] = '\n# %% slideshow={"slide_type": "subslide"}\n' + lines[at]
        # the blank lines that ended the first part stay above the new header
        done += 1
    path.write_text("".join(lines))
    return done


def proposed_code_splits(report: dict) -> list[int]:
    """Slides too tall that are one code cell: that cell's index."""
    return [s["cells"][0][0] for s in report["failed"]
            if s["content"] > s["room"] + 1 and len(s["cells"]) == 1 and s.get("kinds") == ["code"]]


def mark_subslides(source: str | Path, indices) -> int:
    """Start a subslide at each cell ``indices`` (0-based notebook order) of a jupytext percent source, by
    its ``# %%`` header's ``slideshow`` metadata; returns how many headers changed."""
    path = Path(source)
    lines = path.read_text().splitlines(keepends=True)
    headers = _cell_headers(lines)
    changed = 0
    for k in sorted(set(indices)):
        line = lines[headers[k]]
        if '"slide_type": "slide"' in line or '"slide_type": "subslide"' in line:
            continue
        if "slideshow=" in line:
            line = re.sub(r'slideshow=\{"slide_type": "[^"]*"\}', 'slideshow={"slide_type": "subslide"}', line)
        else:
            line = line.rstrip("\n") + ' slideshow={"slide_type": "subslide"}\n'
        lines[headers[k]] = line
        changed += 1
    path.write_text("".join(lines))
    return changed


def _cell_count(path: Path) -> int:
    import nbformat

    return len(nbformat.read(str(path), as_version=4).cells)


def describe_rise(report: dict) -> str:
    lines = [f"{report['lesson']}: {len(report['slides'])} RISE slides, {len(report['failed'])} do not fit"]
    for s in report["failed"]:
        lines.append(f"  slide {s['index']} ({s['id']}, {s['title']!r}): {'; '.join(s['why'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import tempfile

    from .browser import Browser

    parser = argparse.ArgumentParser(prog="python -m course_lib rise", description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lessons (default: every lesson)")
    parser.add_argument("--screenshots", metavar="DIR", help="save a PNG of every slide that does not fit")
    parser.add_argument("--every", action="store_true", help="with --screenshots: a PNG of every slide")
    parser.add_argument("--add-breaks", action="store_true",
                        help="where a slide too tall holds several cells, start a subslide at the first cell that "
                             "does not fit (edits the lessons' .py sources and rebuilds the notebooks; up to 4 rounds)")
    parser.add_argument("--split-markdown", action="store_true",
                        help="with --add-breaks: also cut a Markdown cell too tall at a blank line, the rest on a "
                             "subslide")
    parser.add_argument("--split-code", action="store_true",
                        help="with --add-breaks: also cut a code cell too tall before its first drawing statement "
                             "(only where what the cell shows cannot change; re-run the lesson after)")
    args = parser.parse_args(argv)
    for round_ in range(4 if args.add_breaks else 1):
        failed, changed = 0, 0
        with tempfile.TemporaryDirectory(prefix="course_rise_") as tmp:
            names = copy_for_rise(args.lessons or None, Path(tmp) / "root")
            with jupyterlab(Path(tmp) / "root", tmp) as (base, token), Browser() as browser:
                for name in names:
                    report = check_rise(browser, base, token, name, screenshots=args.screenshots, every=args.every)
                    print(describe_rise(report), flush=True)
                    failed += len(report["failed"])
                    cells_seen = {c.get("total_cells") for c in report["slides"]}
                    if args.add_breaks and cells_seen != {_cell_count(Path(tmp) / "root" / "notebooks" / name)}:
                        print(f"  {name}: RISE drew {cells_seen} cells, not the notebook's: no breaks added")
                    elif args.add_breaks:
                        source = repo_root() / "notebooks" / Path(name).with_suffix(".py")
                        n = mark_subslides(source, proposed_breaks(report))
                        if not n and args.split_markdown:
                            n = split_markdown(source, proposed_markdown_splits(report))
                        if not n and args.split_code:
                            n = split_code(source, proposed_code_splits(report))
                        changed += n
                        if n:
                            print(f"  {name}: {n} subslide break(s) added", flush=True)
        if not changed:
            break
        subprocess.run([sys.executable, "-m", "course_lib", "build"], check=True, stdout=subprocess.DEVNULL)
    print(f"{failed} slide(s) do not fit in RISE" if failed else "every RISE slide fits 1280 x 720")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
