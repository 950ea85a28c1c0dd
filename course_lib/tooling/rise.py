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

from .notebooks import repo_root

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
  return JSON.stringify({id: s.id, cells: cells, total_cells: every.length, title: (heading ? heading.textContent : s.textContent).replace(/\s+/g, ' ').replace('¶', '').trim().slice(0, 70),
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
               screenshots: str | Path | None = None) -> dict:
    """Open ``notebooks/<name>`` in RISE and press Space through it; every slide measured with all its
    fragments shown. Returns ``{"slides": [...], "failed": [...]}``; a failed slide has ``why``."""
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
        if screenshots is not None and state["content"] > state["room"] + 1:
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
        if why:
            report["failed"].append({**s, "index": i + 1, "why": why})
    return report


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


def mark_subslides(source: str | Path, indices) -> int:
    """Start a subslide at each cell ``indices`` (0-based notebook order) of a jupytext percent source, by
    its ``# %%`` header's ``slideshow`` metadata; returns how many headers changed."""
    import re

    path = Path(source)
    lines = path.read_text().splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if re.match(r"^# %%( |$)", line)]
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
    parser.add_argument("--add-breaks", action="store_true",
                        help="where a slide too tall holds several cells, start a subslide at the first cell that "
                             "does not fit (edits the lessons' .py sources and rebuilds the notebooks; up to 4 rounds)")
    args = parser.parse_args(argv)
    for round_ in range(4 if args.add_breaks else 1):
        failed, changed = 0, 0
        with tempfile.TemporaryDirectory(prefix="course_rise_") as tmp:
            names = copy_for_rise(args.lessons or None, Path(tmp) / "root")
            with jupyterlab(Path(tmp) / "root", tmp) as (base, token), Browser() as browser:
                for name in names:
                    report = check_rise(browser, base, token, name, screenshots=args.screenshots)
                    print(describe_rise(report), flush=True)
                    failed += len(report["failed"])
                    cells_seen = {c.get("total_cells") for c in report["slides"]}
                    if args.add_breaks and cells_seen != {_cell_count(Path(tmp) / "root" / "notebooks" / name)}:
                        print(f"  {name}: RISE drew {cells_seen} cells, not the notebook's: no breaks added")
                    elif args.add_breaks:
                        n = mark_subslides(repo_root() / "notebooks" / Path(name).with_suffix(".py"),
                                           proposed_breaks(report))
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
