"""``python -m course_lib slides [LESSONS ...]``: one offline reveal.js deck per lesson.

Each lesson is executed in a fresh kernel (quick mode by default; ``--full`` uses full mode,
which loads the models that ``pretrain`` cached) by :func:`execute_notebook`, with a per-cell
and a total time limit (:func:`course_lib.tooling.execution.run_cells`: a kernel that never reports
"idle" cannot stall it). The executed notebook is then prepared for the room
(:func:`prepare_for_slides`: ``skip`` cells and ``remove-cell`` cells dropped, ``remove-input``
/ ``hide-input`` code hidden, widget outputs replaced by their still image and "try it in
JupyterLab", figures drawn with ``static/slides.matplotlibrc``) and written as
``build/slides/NN_name.slides.html`` with reveal.js 5 and MathJax 3 from ``course_lib/tooling/static``
(copied to ``build/slides/_static``): the decks need no network.

Executed notebooks are cached in ``build/executed/`` keyed by the notebook's code cells, the mode
and the library's sources (an edit of the Markdown or of the slide structure re-uses the outputs), so that the slides, the site and the browser tests run a lesson
once.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .notebooks import RISE, repo_root

__all__ = ["STATIC", "lesson_paths", "execute_notebook", "executed", "prepare_outputs", "prepare_for_slides",
           "without_asserts", "is_progress_bar", "write_deck", "build_slides", "main", "ExecutionFailed",
           "KEEP_ASSERTS_TAG"]

STATIC = Path(__file__).resolve().parent / "static"
TEMPLATES = Path(__file__).resolve().parent / "templates"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("Interactive widget: try it in JupyterLab (open the lesson, Run All, move the controls). "
               "{what}")
# tags honoured on slides (the site honours the same ones through MyST-NB)
REMOVE_CELL_TAGS = {"remove-cell"}
REMOVE_INPUT_TAGS = {"remove-input", "hide-input"}
REMOVE_OUTPUT_TAGS = {"remove-output", "hide-output"}
# Self-check asserts run in the notebooks and in the build, but are not shown on slides; a cell
# whose asserts are the point (a lesson about testing, say) keeps them with this tag.
KEEP_ASSERTS_TAG = "slides-keep-asserts"
# tqdm's notebook bar is a widget whose text form is the bar: "VAE:   0%|          | 0/30 [00:00<?, ?epoch/s]"
_PROGRESS_TEXT = re.compile(r"(^|\s)\d{1,3}%\|.*\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?\s*\[|^HBox\(children=\(HTML\(value=")
# fit()'s note when it loads a checkpoint instead of training: the slide's equivalent of a finished bar
_LOADED_LINE = re.compile(r"^Loaded \S+\.pt: trained .*\n?", re.M)
CELL_TIMEOUT = 600.0   # seconds, one cell (a full-mode training cell loads a checkpoint; quick trains)
TOTAL_TIMEOUT = 1800.0  # seconds, one lesson


class ExecutionFailed(RuntimeError):
    """A lesson could not be executed to the end (a time limit, a dead kernel)."""


@dataclass
class Execution:
    """An executed notebook and what went wrong in it (cells that raised unexpectedly)."""

    nb: nbformat.NotebookNode
    seconds: float
    errors: list = field(default_factory=list)


def lesson_paths(names=(), root: str | Path | None = None) -> list[Path]:
    """The lesson notebooks named by ``names`` ("01", "01_autoencoders", a path); all lessons when empty."""
    root = Path(root) if root is not None else repo_root()
    every = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb" and p.exists():
            chosen.append(p.resolve())
            continue
        stem = p.stem if p.suffix in (".py", ".ipynb") else p.name
        hits = [q for q in every if q.stem == stem or q.stem.split("_")[0] == stem.zfill(2)]
        if not hits:
            raise ValueError(f"no lesson called {name!r}: give a number such as 01, or a name such as "
                             f"{every[0].stem if every else '01_autoencoders'}.")
        chosen.extend(hits)
    return list(dict.fromkeys(chosen))


def kernel_argv() -> list[str]:
    return [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


# Run by the kernel before the lesson (an IPython startup file): every figure the inline backend shows
# carries a one-sentence alt text written from the figure itself (its titles, axis labels and what is
# drawn), in the output's metadata ("alt"); the site puts it on the <img>.
ALT_TEXT_STARTUP = r'''
import re as _re


def _course_plain(text):
    greek = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "theta": "θ", "lambda": "λ",
             "mu": "μ", "pi": "π", "sigma": "σ", "tau": "τ", "phi": "φ", "psi": "ψ", "omega": "ω", "Sigma": "Σ",
             "mid": "|", "cdot": "·", "times": "×", "leq": "≤", "geq": "≥", "approx": "≈", "infty": "∞",
             "log": "log", "exp": "exp", "mathbb": "", "mathcal": "", "mathrm": "", "operatorname": "", "hat": "",
             "tilde": "", "bar": "", ",": " ", ";": " ", "!": "", "left": "", "right": ""}
    text = _re.sub(r"\\([A-Za-z]+|[,;!])", lambda m: greek.get(m.group(1), m.group(1)), str(text))
    return _re.sub(r"\s+", " ", text.replace("$", "").replace("{", "").replace("}", "")).strip()


def _course_alt(fig):
    def kind(ax):
        what = []
        if ax.images:
            what.append("image")
        if ax.lines:
            what.append("curves" if len(ax.lines) > 1 else "curve")
        if ax.collections:
            what.append("points")
        if len(ax.patches) > 2:
            what.append("bars")
        return " and ".join(what) or "drawing"

    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    sup = _course_plain(fig._suptitle.get_text()) if getattr(fig, "_suptitle", None) is not None else ""
    panels = []
    for ax in axes:
        title = _course_plain(" ".join(t for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right")) if t))
        xl, yl = _course_plain(ax.get_xlabel()), _course_plain(ax.get_ylabel())
        axis = f" of {yl} against {xl}" if xl and yl else (f" against {xl}" if xl else "")
        panels.append((title, f"{kind(ax)}{axis}"))
    if not panels:
        return f"Figure: {sup}." if sup else "Figure."
    if len(panels) == 1:
        title, what = panels[0]
        name = sup or title
        return (f"Figure '{name}': {what}." if name else f"Figure: {what}.").replace("..", ".")
    named = [t for t, _ in panels if t]
    kinds = sorted({w.split(" of ")[0] for _, w in panels})
    head = f"Figure '{sup}': " if sup else "Figure: "
    body = f"{len(panels)} panels of {' and '.join(kinds)}"
    if named:
        body += " (" + "; ".join(named[:6]) + (f"; and {len(named) - 6} more" if len(named) > 6 else "") + ")"
    return head + body + "."


try:
    import matplotlib_inline.backend_inline as _course_bi

    _course_fetch = _course_bi._fetch_figure_metadata

    def _fetch_figure_metadata(fig):
        meta = dict(_course_fetch(fig) or {})
        try:
            meta["alt"] = _course_alt(fig)[:300]
        except Exception:
            pass
        return meta or None

    _course_bi._fetch_figure_metadata = _fetch_figure_metadata
except Exception:
    pass
'''


def _ipython_dir() -> str:
    """An IPYTHONDIR whose default profile runs :data:`ALT_TEXT_STARTUP` (made once per process)."""
    folder = Path(tempfile.gettempdir()) / f"course_ipython_{hashlib.sha256(ALT_TEXT_STARTUP.encode()).hexdigest()[:12]}"
    startup = folder / "profile_default" / "startup" / "00-course-alt-text.py"
    if not startup.exists():
        startup.parent.mkdir(parents=True, exist_ok=True)
        tmp = startup.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(ALT_TEXT_STARTUP, encoding="utf-8")
        tmp.replace(startup)
    return str(folder)


def _kernel_env(quick: bool) -> dict:
    env = dict(os.environ)
    env["IPYTHONDIR"] = _ipython_dir()
    env["COURSE_QUICK"] = "1" if quick else "0"
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    env["MATPLOTLIBRC"] = str(STATIC / "slides.matplotlibrc")
    env.setdefault("TQDM_MININTERVAL", "5")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def _output(o: dict) -> nbformat.NotebookNode:
    kind = o["output_type"]
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=o.get("name", "stdout"), text=o.get("text", ""))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=o.get("ename", ""), evalue=o.get("evalue", ""),
                                      traceback=o.get("traceback", []))
    out = nbformat.v4.new_output(kind, data=o.get("data", {}), metadata=o.get("metadata", {}))
    if kind == "execute_result":
        out["execution_count"] = o.get("execution_count")
    return out


def execute_notebook(path: str | Path, quick: bool = True, cell_timeout: float | None = CELL_TIMEOUT,
                     timeout: float = TOTAL_TIMEOUT, argv: list[str] | None = None) -> Execution:
    """Run ``path`` in a fresh kernel (working folder: a temporary one) and return it with its outputs.

    Raises :class:`ExecutionFailed` with a one-line reason when a time limit runs out or the
    kernel dies; a cell that raises (other than one tagged ``raises-exception``) is listed in
    ``Execution.errors`` and the run goes on. ``argv``: the kernel's command line
    (``{connection_file}`` in it; default: this Python's ipykernel).
    """
    from .execution import run_cells

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course_run_") as cwd:
        outcomes = run_cells(nb, argv or kernel_argv(), _kernel_env(quick), cwd, timeout=timeout, cell_timeout=cell_timeout,
                             max_cell_bytes=50_000_000, max_total_bytes=500_000_000)
    seconds = time.monotonic() - start
    errors = []
    count = 0
    for outcome in outcomes:
        cell = nb.cells[outcome.index]
        if outcome.status in ("timeout", "died"):
            raise ExecutionFailed(f"{path.name}: code cell {outcome.index + 1}: {outcome.error}; "
                                  f"raise the limit with --cell-timeout/--timeout, or run the lesson in "
                                  f"JupyterLab to see why it is slow.")
        if outcome.status == "not run":
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = [_output(o) for o in outcome.outputs]
        for o in cell.outputs:
            if o.output_type == "execute_result":
                o.execution_count = count
        if outcome.status == "error" and "raises-exception" not in cell.metadata.get("tags", []):
            errors.append(f"cell {outcome.index + 1}: {outcome.error}")
    return Execution(nb, seconds, errors)


def _library_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]  # course_lib: what the lessons import (not the tooling)
    for p in sorted(here.rglob("*.py")):
        if "tooling" not in p.relative_to(here).parts:  # the delivery tooling does not change what a lesson computes
            h.update(p.read_bytes())
    h.update((STATIC / "slides.matplotlibrc").read_bytes())
    h.update(ALT_TEXT_STARTUP.encode())  # the figures' alt text is written in the kernel
    return h.hexdigest()[:16]


def _code_key(nb: nbformat.NotebookNode) -> bytes:
    """What execution depends on in a notebook: its code cells' sources and tags (not Markdown, not slide types)."""
    import json

    return json.dumps([[c.source, sorted(c.metadata.get("tags", []))] for c in nb.cells if c.cell_type == "code"]).encode()


def executed(path: str | Path, quick: bool = True, cache: str | Path | None = None, log=print,
             **limits) -> Execution:
    """:func:`execute_notebook`, cached in ``cache`` (default ``build/executed``) by code and mode.

    The key is the code cells (sources and tags), the library's sources and the mode: an edit of
    the Markdown or of the slide structure re-uses the outputs (put into the current notebook).
    """
    path = Path(path)
    cache = Path(cache) if cache is not None else repo_root() / "build" / "executed"
    current = nbformat.read(str(path), as_version=4)
    key = hashlib.sha256(_code_key(current) + _library_hash().encode() + (b"q" if quick else b"f")).hexdigest()[:16]
    target = cache / f"{path.stem}.{'quick' if quick else 'full'}.{key}.ipynb"
    if target.exists():
        done = nbformat.read(str(target), as_version=4)
        ran = [c for c in done.cells if c.cell_type == "code"]
        for cell, old in zip([c for c in current.cells if c.cell_type == "code"], ran):
            cell.outputs, cell.execution_count = old.outputs, old.execution_count
        return Execution(current, 0.0, list(done.metadata.get("course_execution", {}).get("errors", [])))
    log(f"{path.name}: running in {'quick' if quick else 'full'} mode ...")
    run = execute_notebook(path, quick=quick, **limits)
    log(f"{path.name}: ran in {run.seconds:.0f} s" + (f"; {len(run.errors)} cell(s) raised" if run.errors else ""))
    if run.errors:  # not cached: the next build tries again
        return run
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{path.stem}.{'quick' if quick else 'full'}.*.ipynb"):
        old.unlink()
    nb = copy.deepcopy(run.nb)
    nb.metadata["course_execution"] = {"seconds": round(run.seconds, 1), "errors": run.errors,
                                       "mode": "quick" if quick else "full"}
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(target)
    return run


def _has_image(outputs) -> bool:
    return any(o.output_type in ("display_data", "execute_result") and
               any(k.startswith("image/") for k in o.get("data", {})) for o in outputs)


def is_progress_bar(output) -> bool:
    """True for a progress bar's output (tqdm's notebook widget or its text form), not a widget to try."""
    data = output.get("data", {})
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return bool(_PROGRESS_TEXT.search(text.strip()))


def _columns(lines: list[str]) -> list[tuple[int, int]] | None:
    """The (start, end) character spans of the columns of whitespace-aligned ``lines``, or None.

    A gutter is a run of two or more character positions that are blank in every line; at least three
    columns, each non-empty in most lines, make a table."""
    width = max(len(line) for line in lines)
    padded = [line.ljust(width) for line in lines]
    blank = [all(line[i] == " " for line in padded) for i in range(width)]
    for i in range(width):  # a single blank position separates words, not columns
        if blank[i] and not (i > 0 and blank[i - 1]) and not (i + 1 < width and blank[i + 1]):
            blank[i] = False
    spans, start = [], None
    for i, b in enumerate(blank + [True]):
        if not b and start is None:
            start = i
        elif b and start is not None:
            spans.append((start, i))
            start = None
    merged: list[tuple[int, int]] = []  # a span blank in two or more lines spills over from its neighbour
    for a, b in spans:
        if merged and sum(1 for line in padded if not line[a:b].strip()) >= 2:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    if len(merged) < 3 or any(sum(1 for line in padded if not line[a:b].strip()) >= 2 for a, b in merged):
        return None
    return merged


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$", re.I)


def printed_table_html(text: str) -> str | None:
    """HTML for printed output that holds a whitespace-aligned table (a header row of labels, no number in
    it, and >= 2 rows with numbers); the lines around the table stay as preformatted text. None when there
    is no table."""
    import html as _html

    lines = text.rstrip("\n").split("\n")
    best = None
    for i in range(len(lines)):
        for j in range(len(lines), i + 2, -1):  # the longest block from line i with aligned columns
            block = lines[i:j]
            if any(not line.strip() for line in block):
                continue
            spans = _columns(block)
            if spans and not any(_NUMBER.match(block[0].ljust(spans[-1][1])[a:b].strip()) for a, b in spans) \
                    and all(any(_NUMBER.match(line[a:b].strip()) for a, b in spans) for line in block[1:]):
                best = (i, j, spans)
                break
        if best:
            break
    if best is None:
        return None
    i, j, spans = best
    rows = [[line.ljust(spans[-1][1])[a:b].strip() for a, b in spans] for line in lines[i:j]]
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    parts = []
    if lines[:i]:
        parts.append(f"<pre>{_html.escape(chr(10).join(lines[:i]))}</pre>")
    parts.append(f'<table class="course-result"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    if lines[j:]:
        parts.append(f"<pre>{_html.escape(chr(10).join(lines[j:]))}</pre>")
    return "".join(parts)


def tables_from_prints(cell) -> None:
    """Printed tables (stdout) of a code cell become rendered HTML tables (the text stays as text/plain); in place."""
    outputs = []
    for o in cell.outputs:
        if o.output_type == "stream" and o.get("name") == "stdout":
            html = printed_table_html(o.text)
            if html:
                o = nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": o.text})
        outputs.append(o)
    cell.outputs = outputs


def prepare_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace widget outputs by a note (the still image the widget drew stays above it); in place.

    Progress bars (tqdm in a notebook is a widget) are dropped, never announced as a widget: the
    bar shown at display time is empty, its progress lives in the kernel. Also drops the notebook's
    saved widget state, which would make the page fetch the widget manager from the network.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") in ("display_data", "execute_result")
                                                        and is_progress_bar(o))]
        for o in cell.outputs:  # a cached model's "Loaded ..." line is progress too: shown neither way
            if o.get("output_type") == "stream":
                text = o.get("text", "")
                o["text"] = _LOADED_LINE.sub("", "".join(text) if isinstance(text, list) else text)
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and not o["text"].strip())]
        tables_from_prints(cell)
        widget = [o for o in cell.outputs if WIDGET_MIME in o.get("data", {})]
        if not widget:
            continue
        kept = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
        what = ("Above: the figure it draws for its starting values." if _has_image(kept)
                else "It draws nothing until its controls are moved.")
        note = WIDGET_NOTE.format(what=what)
        html = f'<div class="course-widget-note">&#9654; {note}</div>'
        kept.append(nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": note}))
        cell.outputs = kept
    return nb


def _coalesce(nb):
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    return nb


_BODIES = ("body", "orelse", "finalbody")


def _dropped(node: ast.stmt) -> bool:
    """An assert, or a block whose every statement is dropped (``for k in ks: assert ...``)."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith)):
        stmts = [n for b in _BODIES for n in getattr(node, b, [])]
        return bool(stmts) and all(_dropped(n) for n in stmts)
    return False


def _assert_lines(stmts, drop: set) -> None:
    for node in stmts:
        if _dropped(node):
            drop.update(range(node.lineno - 1, node.end_lineno))
            continue
        for b in _BODIES:
            body = getattr(node, b, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt) and \
                    not all(_dropped(n) for n in body):  # a block left empty would not parse: keep it whole
                _assert_lines(body, drop)


def without_asserts(source: str) -> str:
    """``source`` without its self-check asserts: every ``assert`` (however many lines, at any depth) and
    every block made only of asserts, with the comment lines just above them; unchanged if it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): lines that start an assert statement on one line
        return "\n".join(line for line in source.splitlines() if not re.match(r"\s*assert\b.*[^\\,(]$", line))
    lines = source.splitlines()
    drop: set = set()
    _assert_lines(tree.body, drop)
    if not drop:
        return source
    for first in sorted(drop):
        above = first - 1
        while above >= 0 and above not in drop and lines[above].lstrip().startswith("#"):
            drop.add(above)
            above -= 1
    kept = [line for i, line in enumerate(lines) if i not in drop]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def prepare_for_slides(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed lesson as the room sees it (see the module's docstring).

    Self-check asserts are not shown (:func:`without_asserts`; the tag ``slides-keep-asserts``
    keeps them): a cell left without code shows only its output, or goes if it has none. A dropped
    cell that opened a slide hands its ``slide``/``subslide`` mark to the next cell shown.
    """
    nb = prepare_outputs(_coalesce(copy.deepcopy(nb)))
    cells, pending = [], None  # pending: the slide mark of a dropped cell, for the next cell shown
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        kind = _slide_type(cell)
        if kind == "notes":  # folded for students in JupyterLab; the speaker view shows them
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
        drop = kind == "skip" or bool(tags & REMOVE_CELL_TAGS)
        if not drop and cell.cell_type == "code":
            if KEEP_ASSERTS_TAG not in tags:
                cell.source = without_asserts(cell.source)
            cell.source = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", cell.source)  # one blank line at most
            if tags & REMOVE_INPUT_TAGS or not cell.source.strip():
                cell.metadata["transient"] = {"remove_source": True}
            if tags & REMOVE_OUTPUT_TAGS:
                cell.outputs = []
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.get("name") == "stderr")]
            drop = (not cell.source.strip() or tags & REMOVE_INPUT_TAGS) and not cell.outputs
        if drop:
            if kind in ("slide", "subslide") and (pending is None or kind == "slide"):
                pending = kind
            continue
        if pending is not None:
            if kind in ("-", "fragment"):
                cell.metadata.setdefault("slideshow", {})["slide_type"] = pending
            elif kind == "subslide" and pending == "slide":
                cell.metadata["slideshow"]["slide_type"] = "slide"
            pending = None if kind != "notes" else pending
        cells.append(cell)
    nb.cells = cells
    return nb


def copy_static(dest: Path) -> Path:
    """Copy course_lib/tooling/static (reveal.js, MathJax, the course CSS) to ``dest`` (replacing it).

    Copied beside ``dest`` first and renamed into place, so two builds writing the same folder at
    once never see a half-copied or half-deleted one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".static-", dir=dest.parent))
    shutil.copytree(STATIC, fresh / "s", ignore=shutil.ignore_patterns("*.md", "*.matplotlibrc"))
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}-old-{os.getpid()}-{threading.get_ident()}")
        try:
            os.replace(dest, old)
        except OSError:
            old = None
    try:
        os.replace(fresh / "s", dest)
    except OSError:  # another build put its (identical) copy there first
        pass
    shutil.rmtree(fresh, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def write_deck(nb: nbformat.NotebookNode, out: str | Path, name: str, static_url: str = "_static") -> Path:
    """Write ``nb`` (already prepared) as a reveal.js deck at ``out`` using the files at ``static_url``."""
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="course_reveal",
                              exclude_input_prompt=True, exclude_output_prompt=True,
                              reveal_url_prefix=f"{static_url}/reveal.js", reveal_theme="white",
                              reveal_transition="none", reveal_scroll=True, reveal_number="c/t",
                              reveal_width=str(RISE["width"]), reveal_height=str(RISE["height"]))
    resources = {"metadata": {"name": name}, "course_static": static_url}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


class Timer:
    """Wall-clock and CPU seconds (this process and the kernels it ran) since it was made."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        import resource

        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def seconds(self) -> dict:
        return {"wall_s": round(time.perf_counter() - self.wall, 1), "cpu_s": round(self._cpu() - self.cpu, 1)}


def write_timings(path: Path, what: str, total: dict, items: dict, log=print) -> None:
    """Write the build's own timings as JSON (docs/PRESENTING.md quotes them) and print the total."""
    import json
    import platform

    record = {"what": what, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
              "machine": platform.machine(), **total, "items": items}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log(f"{what}: {total['wall_s']:.0f} s wall, {total['cpu_s']:.0f} s CPU (kernels included) on {os.cpu_count()} "
        f"CPU(s); timings in {path}")


def build_slides(names=(), out: str | Path | None = None, quick: bool = True, cache=None, log=print,
                 **limits) -> tuple[list[Path], list[str]]:
    """Execute (or take from the cache) and write the decks; returns (decks, problems).

    Writes its own timings to ``OUT/timings.json`` (per lesson: run seconds, or 0 when cached; deck
    seconds) and prints the total wall and CPU time.
    """
    out = Path(out) if out is not None else repo_root() / "build" / "slides"
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    copy_static(out / "_static")
    decks, problems, items = [], [], {}
    for path in lesson_paths(names):
        try:
            run = executed(path, quick=quick, cache=cache, log=log, **limits)
        except ExecutionFailed as err:
            problems.append(str(err))
            log(f"{path.name}: FAILED: {err}")
            continue
        problems += [f"{path.name}: {e}" for e in run.errors]
        t0 = time.perf_counter()
        deck = write_deck(prepare_for_slides(run.nb), out / f"{path.stem}.slides.html", path.stem)
        items[path.stem] = {"run_s": round(run.seconds, 1), "cached": run.seconds == 0.0,
                            "deck_s": round(time.perf_counter() - t0, 1)}
        log(f"{path.name}: wrote {deck} ({items[path.stem]['deck_s']:.1f} s)")
        decks.append(deck)
    write_timings(out / "timings.json", f"slides ({'quick' if quick else 'full'} mode, {len(decks)} deck(s))",
                  timer.seconds(), items, log)
    return decks, problems


def build_arguments(prog: str, description: str, default_out: str) -> argparse.ArgumentParser:
    """The options ``slides`` and ``site`` share: lessons, mode, output folder and time limits."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("lessons", nargs="*", metavar="LESSON", help="01, 01_autoencoders or a path (default: every lesson)")
    p.add_argument("--full", action="store_true", help="full mode (load the models cached by `pretrain`)")
    p.add_argument("--out", default=None, help=f"output folder (default: {default_out})")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS", help="limit per cell")
    p.add_argument("--timeout", type=float, default=TOTAL_TIMEOUT, metavar="SECONDS", help="limit per lesson")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="executed lessons (default: build/executed; an empty folder times a build from nothing)")
    return p


def run_build(build, report) -> int:
    """``build()`` gives (result, problems): print the problems, then ``report(result)``; the exit status."""
    try:
        result, problems = build()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    report(result)
    return 1 if problems else 0


def main(argv=None) -> int:
    args = build_arguments("python -m course_lib slides", __doc__.splitlines()[0], "build/slides").parse_args(argv)

    def report(decks):
        if decks:
            print(f"{len(decks)} deck(s) in {decks[0].parent}; open one in a browser (no network needed).")

    return run_build(lambda: build_slides(args.lessons, out=args.out, quick=not args.full, cache=args.cache,
                                          cell_timeout=args.cell_timeout, timeout=args.timeout), report)
