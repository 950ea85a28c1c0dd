"""``python -m course_lib mutations``: do the exercises' self-checks catch the usual mistakes?

For each graded exercise of a solution notebook (``solutions/NN_name.py``) this tool makes the
mistakes students make, one at a time, by rewriting the code between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (AST rewrites: ``+``/``-`` and ``*``/``/`` swaps, ``sum``/``mean`` swaps, a
changed ``dim``, a dropped term or factor, swapped arguments, the wrong variable (``y_target`` for
``y_source``, a stale count), a dropped minus sign, ``log``/``exp`` removed, ``.detach()`` added or
removed, off-by-one constants, ``range`` bounds, slices and comparisons, ``keepdim`` flips, a dropped
1/2, ...; mutants that unparse to the same code are kept once). Each *mutant* is run in place of the solution, followed by
the exercise's visible self-check cell(s) and its grade cell:

- the mutant is **caught** when a visible cell after the solution cell raises (the self-check);
- it is **output-changing** when the grade cell raises or records a value that differs from the
  solution's (compared as the grader compares them: ``course_lib.tooling.checks.compare`` with the
  tolerances of each ``record``). A mutant whose recorded values all match is a mistake the hidden
  inputs cannot see; it does not count.

The figure per exercise is caught / output-changing; the bar of issue 17 is 90 %. The report lists
the missed mutants (output-changing, not caught) as ``line N  kind:  old  =>  new``, so the author of
the exercise sees which mistake the self-check lets through.

Each notebook runs in one Python process: its other cells once, in order; each exercise's cells
once per mutant, with the random state of the unmutated run and a time limit per cell.

    python -m course_lib mutations 03 04                  # two notebooks (numbers, stems or paths)
    python -m course_lib mutations --json build/mutations.json
    python -m course_lib mutations 07 --exercise ema_step --all   # every mutant and what caught it
    python -m course_lib mutations --asserts              # issue 17 item 4: asserts in grade cells

It is also a standalone script needing only ``course_lib.tooling.checks`` of the course it runs
in, so it can test a worktree that does not hold this file::

    cd /path/to/course && PYTHONPATH=$PWD python /elsewhere/course_lib/tooling/mutations.py solutions/04_beta_vae.py

Exit status 1 when an exercise is below ``--bar`` (90 %) or a notebook cannot be run.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a script: its folder (tooling/) must not shadow top-level modules
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import argparse
import ast
import contextlib
import copy
import difflib
import hashlib
import io
import json
import re
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cell", "Exercise", "Mutant", "read_cells", "find_exercises", "mutants_of", "run_notebook",
           "run", "format_report", "grade_cell_asserts", "main"]

BAR = 90.0
CELL_TIMEOUT = 30.0        # seconds: one cell of one mutant (a mutant may loop forever)
NOTEBOOK_TIMEOUT = 3600.0  # seconds: one notebook, all its mutants
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# --------------------------------------------------------------------------- reading a solution notebook


@dataclass
class Cell:
    """A code cell: its position among the notebook's cells, its source, metadata and first line in the file."""

    index: int
    source: str
    metadata: dict
    line: int | None = None  # 1-based line of the cell's first source line in the file, when known

    @property
    def grade(self):
        g = self.metadata.get("grade")
        return g if isinstance(g, dict) and isinstance(g.get("exercise"), str) else None

    @property
    def is_solution(self) -> bool:
        return any(line.strip() == BEGIN_SOLUTION for line in self.source.split("\n"))

    @property
    def raises(self) -> bool:
        return "raises-exception" in (self.metadata.get("tags") or [])

    def regions(self, begin: str = BEGIN_SOLUTION, end: str = END_SOLUTION) -> list[tuple[int, int]]:
        """1-based (begin, end) source lines of each marker block of the cell."""
        out, start = [], None
        for number, line in enumerate(self.source.split("\n"), 1):
            if line.strip() == begin:
                start = number
            elif line.strip() == end and start is not None:
                out.append((start, number))
                start = None
        return out


@dataclass
class Exercise:
    """A graded exercise: its solution cell(s), the visible cells after them, its grade cell (positions in ``cells``)."""

    name: str
    points: float
    solutions: list[int]
    checks: list[int]
    grade: int

    @property
    def block(self) -> list[int]:
        """The cells run for each mutant: from the first solution cell to the grade cell, in order."""
        return sorted(set(self.solutions) | set(self.checks)) + [self.grade]


def read_cells(path: str | Path) -> list[Cell]:
    """The code cells of a solution notebook: a jupytext py:percent source or an ``.ipynb``."""
    path = Path(path)
    if path.suffix == ".py":
        import jupytext

        nb = jupytext.read(str(path))
    else:
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
    text = path.read_text(encoding="utf-8") if path.suffix == ".py" else ""
    cells, pos = [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        line = None
        if text and cell.source:
            found = text.find(cell.source, pos)
            if found >= 0:
                line = text.count("\n", 0, found) + 1
                pos = found + len(cell.source)
        cells.append(Cell(index, cell.source, dict(cell.get("metadata", {})), line))
    return cells


def find_exercises(cells: list[Cell]) -> list[Exercise]:
    """The graded exercises: each grade cell with the solution cells since the previous grade cell."""
    out, solutions, after = [], [], []
    for k, cell in enumerate(cells):
        if cell.grade is not None:
            g = cell.grade
            out.append(Exercise(g["exercise"], g.get("points", 0), solutions, after, k))
            solutions, after = [], []
        elif cell.is_solution:
            solutions = solutions + [k]
            after = []
        elif solutions:
            after = after + [k]
    return out


# --------------------------------------------------------------------------- mutants


@dataclass
class Mutant:
    """One mistake: the rewritten cell ``cell`` (position in ``cells``) and where and what was changed."""

    cell: int
    kind: str
    line: int            # line in the cell source (1-based)
    file_line: int | None
    source: str          # the whole mutated cell (unparsed)
    diff: list[str]      # '- old' / '+ new' lines
    key: str = ""        # a stable hash of the mutated code (deterministic sampling)


_MODULES = {"torch", "np", "numpy", "F", "math", "nn", "functional", "special", "linalg", "scipy"}
_SWAP_CALLS = [("sum", "mean"), ("nansum", "nanmean"), ("max", "min"), ("argmax", "argmin"), ("amax", "amin"),
               ("maximum", "minimum"), ("softmax", "log_softmax"), ("log", "log2"), ("std", "var"),
               ("cummax", "cummin"), ("logsumexp", "logmeanexp")]
_SWAPS = {a: b for a, b in _SWAP_CALLS} | {b: a for a, b in _SWAP_CALLS}
_SWAPS.pop("logmeanexp")
_SWAPS.pop("logsumexp")
_REMOVABLE = {"log": "log removed", "exp": "exp removed", "log1p": "log removed", "expm1": "exp removed",
              "log2": "log removed", "log10": "log removed", "sqrt": "sqrt removed", "rsqrt": "sqrt removed",
              "abs": "abs removed", "detach": "detach removed", "clamp": "clamp removed",
              "clamp_min": "clamp removed", "clamp_max": "clamp removed", "clip": "clamp removed",
              "square": "square removed", "exp2": "exp removed", "sigmoid": "sigmoid removed",
              "softplus": "softplus removed", "logsigmoid": "log removed", "reciprocal": "reciprocal removed",
              "neg": "negation removed", "negative": "negation removed"}
_DIM_CALLS = {"sum", "mean", "nansum", "nanmean", "logsumexp", "softmax", "log_softmax", "max", "min", "argmax",
              "argmin", "amax", "amin", "prod", "cumsum", "cumprod", "std", "var", "norm", "cat", "concat",
              "concatenate", "stack", "squeeze", "unsqueeze", "all", "any", "count_nonzero", "median", "flip",
              "cummax", "cummin", "logcumsumexp", "sort", "argsort", "gather", "index_select", "flatten", "unbind",
              "mode"}
_CMP_SWAPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
              ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq]}
_BIN_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_AUG_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_function_call(node: ast.Call) -> bool:
    """``torch.sum(x, 1)`` (the input is the first argument) rather than ``x.sum(1)``."""
    f = node.func
    if isinstance(f, ast.Name):
        return True
    value = f.value if isinstance(f, ast.Attribute) else None
    while isinstance(value, ast.Attribute):
        value = value.value
    return isinstance(value, ast.Name) and value.id in _MODULES


def _int_of(node) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    return None


def _int_node(v: int):
    return ast.Constant(v) if v >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-v))


def _other_dims(v: int) -> list[int]:
    if v == 0:
        return [-1, 1]
    if v in (1, -1):
        return [0]
    return [v - 1] if v > 1 else [v + 1]


def _plus(node, k: int):
    return ast.BinOp(node, ast.Add() if k > 0 else ast.Sub(), ast.Constant(abs(k)))


def _rules(node, detach_aware: bool, literals: set):
    """(kind, make) pairs: ``make(copy_of_node)`` returns the node that replaces it in the mutant.

    ``literals``: ids of the constants inside a negative literal such as ``-1`` (moved as a whole).
    """
    out = []
    if id(node) in literals:
        return out
    if isinstance(node, ast.UnaryOp) and _int_of(node) is not None:  # a negative integer literal
        return [("off by one", lambda n: _int_node(_int_of(n) + 1)), ("off by one", lambda n: _int_node(_int_of(n) - 1))]
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op in _BIN_SWAPS:
            sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
            kind = f"{sym[op]} -> {sym[_BIN_SWAPS[op]]}"
            out.append((kind, lambda n: (setattr(n, "op", _BIN_SWAPS[type(n.op)]()), n)[1]))
        if op in (ast.Add, ast.Sub):
            out.append(("dropped term", lambda n: n.left))
            out.append(("dropped term", lambda n: n.right if isinstance(n.op, ast.Add)
                        else ast.UnaryOp(ast.USub(), n.right)))
        if op in (ast.Mult, ast.Div):
            half = lambda x: isinstance(x, ast.Constant) and x.value == 0.5  # noqa: E731
            if op is ast.Mult and half(node.left):
                out.append(("dropped 1/2", lambda n: n.right))
            elif (op is ast.Mult and half(node.right)) or (op is ast.Div and isinstance(node.right, ast.Constant)
                                                           and node.right.value == 2):
                out.append(("dropped 1/2", lambda n: n.left))
            out.append(("dropped factor", lambda n: n.left))
            if op is ast.Mult:
                out.append(("dropped factor", lambda n: n.right))
        if op is ast.Pow and isinstance(node.right, ast.Constant) and node.right.value == 0.5:
            out.append(("sqrt removed", lambda n: n.left))
    elif isinstance(node, ast.AugAssign):
        op = type(node.op)
        if op in _AUG_SWAPS:
            sym = {ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/="}
            out.append((f"{sym[op]} -> {sym[_AUG_SWAPS[op]]}",
                        lambda n: (setattr(n, "op", _AUG_SWAPS[type(n.op)]()), n)[1]))
        out.append(("dropped update", lambda n: ast.Pass()))
    elif isinstance(node, ast.With) and any(isinstance(item.context_expr, ast.Call) and
                                            _call_name(item.context_expr) in ("no_grad", "inference_mode")
                                            for item in node.items):
        out.append(("no_grad removed", lambda n: ast.If(ast.Constant(True), n.body, [])))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("dropped statement", lambda n: ast.Pass()))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_SWAPS:
        sym = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
        for new in _CMP_SWAPS[type(node.ops[0])]:
            out.append((f"{sym[type(node.ops[0])]} -> {sym[new]}",
                        lambda n, new=new: (setattr(n, "ops", [new()]), n)[1]))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        out.append(("negation removed", lambda n: n.operand))
    elif isinstance(node, ast.Return) and node.value is not None and not isinstance(
            node.value, (ast.Tuple, ast.List, ast.Dict, ast.Constant, ast.Compare, ast.BoolOp, ast.ListComp)):
        out.append(("sign flipped", lambda n: (setattr(n, "value", ast.UnaryOp(ast.USub(), n.value)), n)[1]))
        if detach_aware:
            out.append(("detach added", lambda n: (setattr(n, "value", _detached(n.value)), n)[1]))
    elif isinstance(node, ast.Call):
        out += _call_rules(node)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append(("off by one", lambda n: ast.Constant(n.value + 1)))
        out.append(("off by one", lambda n: _int_node(n.value - 1)))
    elif isinstance(node, ast.Slice):
        for part in ("lower", "upper"):
            value = getattr(node, part)
            if value is not None and _int_of(value) is None:
                for k in (1, -1):
                    out.append(("off by one (slice)",
                                lambda n, part=part, k=k: (setattr(n, part, _plus(getattr(n, part), k)), n)[1]))
    if detach_aware and isinstance(node, ast.BinOp):
        for side in ("left", "right"):
            value = getattr(node, side)
            if isinstance(value, (ast.Name, ast.Subscript, ast.BinOp)) and not _is_detach(value):
                out.append(("detach added", lambda n, side=side: (setattr(n, side, _detached(getattr(n, side))), n)[1]))
    return out


def _tokens(name: str) -> set:
    return {t for t in re.split(r"_+|(?<=[a-z])(?=[0-9])", name.lower()) if t}


def _confusable(a: str, b: str) -> bool:
    """Names a student mixes up: ``y_source``/``y_target``, ``x``/``x_hat``, ``cluster_size``/``new_size``."""
    return a != b and bool(_tokens(a) & _tokens(b))


def _wrong_variable(node: ast.Name, functions) -> list:
    """Another variable of the same function in place of ``node`` (the target instead of the source, a stale
    count): the function's parameters and the names it assigned on an earlier line, when their names are close."""
    inner = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
    if not inner:
        return []
    fn = max(inner, key=lambda f: f.lineno)
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    for sub in ast.walk(fn):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and sub.lineno < node.lineno:
            names.append(sub.id)
    if node.id not in names:
        return []
    out, done = [], set()
    for other in names:
        if other not in done and _confusable(node.id, other):
            done.add(other)
            out.append(("wrong variable", lambda n, other=other: ast.Name(other, ast.Load())))
    return out


def _detached(node):
    return ast.Call(ast.Attribute(node, "detach", ast.Load()), [], [])


def _is_detach(node) -> bool:
    return isinstance(node, ast.Call) and _call_name(node) == "detach"


def _call_rules(node: ast.Call):
    out = []
    name = _call_name(node)
    function_call = _is_function_call(node)
    attr = isinstance(node.func, ast.Attribute)
    if attr and name in _SWAPS:
        new = _SWAPS[name]
        out.append((f"{name} -> {new}", lambda n, new=new: (setattr(n.func, "attr", new), n)[1]))
    if name in _REMOVABLE:
        kind = _REMOVABLE[name]
        if function_call and node.args:
            out.append((kind, lambda n: n.args[0]))
        elif not function_call and attr:
            out.append((kind, lambda n: n.func.value))
    if name in _DIM_CALLS and attr:
        pos = 1 if function_call else 0
        if name == "norm":
            pos += 1
        keyword = next((k for k, kw in enumerate(node.keywords) if kw.arg in ("dim", "axis")), None)
        if keyword is not None:
            v = _int_of(node.keywords[keyword].value)
            for other in ([] if v is None else _other_dims(v)):
                out.append((f"dim {v} -> {other}",
                            lambda n, k=keyword, o=other: (setattr(n.keywords[k], "value", _int_node(o)), n)[1]))
            out.append(("dim dropped", lambda n, k=keyword: (n.keywords.pop(k), n)[1]))
        elif len(node.args) > pos and not isinstance(node.args[pos], ast.Starred):
            v = _int_of(node.args[pos])
            for other in ([] if v is None else _other_dims(v)):
                out.append((f"dim {v} -> {other}",
                            lambda n, p=pos, o=other: (n.args.__setitem__(p, _int_node(o)), n)[1]))
            if v is not None and len(node.args) == pos + 1:
                out.append(("dim dropped", lambda n, p=pos: (n.args.pop(p), n)[1]))
    for k, kw in enumerate(node.keywords):
        if kw.arg == "keepdim" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool):
            out.append(("keepdim flipped", lambda n, k=k: (setattr(n.keywords[k], "value",
                                                                   ast.Constant(not n.keywords[k].value.value)), n)[1]))
        if kw.arg == "reduction" and isinstance(kw.value, ast.Constant) and kw.value.value in ("sum", "mean"):
            other = {"sum": "mean", "mean": "sum"}[kw.value.value]
            out.append((f"reduction {kw.value.value} -> {other}",
                        lambda n, k=k, o=other: (setattr(n.keywords[k], "value", ast.Constant(o)), n)[1]))
    if name == "range" and isinstance(node.func, ast.Name):
        for p in range(min(len(node.args), 2)):
            if _int_of(node.args[p]) is None:  # constants are moved by 'off by one'
                for k in (1, -1):
                    out.append(("off by one (range)",
                                lambda n, p=p, k=k: (n.args.__setitem__(p, _plus(n.args[p], k)), n)[1]))
    args = [a for a in node.args if not isinstance(a, ast.Starred)]
    if len(args) == len(node.args) and len(args) >= 2 and name not in ("range",):
        pairs = [(i, j) for i in range(len(args)) for j in range(i + 1, len(args))] if len(args) <= 4 else \
            [(i, i + 1) for i in range(len(args) - 1)]
        for i, j in pairs:
            if ast.dump(args[i]) != ast.dump(args[j]):
                out.append(("swapped arguments", lambda n, i=i, j=j: (
                    n.args.__setitem__(slice(None), _swapped(n.args, i, j)), n)[1]))
    return out


def _swapped(items, i, j):
    items = list(items)
    items[i], items[j] = items[j], items[i]
    return items


def _replace(tree, target, new) -> bool:
    for parent in ast.walk(tree):
        for fieldname, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, fieldname, new)
                return True
            if isinstance(value, list):
                for k, item in enumerate(value):
                    if item is target:
                        value[k] = new
                        return True
    return False


def _unparse(tree) -> str:
    return ast.unparse(ast.fix_missing_locations(tree))


def _line_diff(old: str, new: str) -> list[str]:
    a, b = old.split("\n"), new.split("\n")
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            out += [f"- {line.strip()}" for line in a[i1:i2]] + [f"+ {line.strip()}" for line in b[j1:j2]]
    return out


def mutants_of(cells: list[Cell], exercise: Exercise) -> list[Mutant]:
    """Every distinct mutant of the exercise's solution code (deduplicated by unparsed source)."""
    out, seen = [], set()
    for k in exercise.solutions:
        cell = cells[k]
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython syntax: not mutated
        base = _unparse(copy.deepcopy(tree))
        seen.add(base)
        regions = cell.regions()
        inside = lambda node: any(b < node.lineno < e for b, e in regions)  # noqa: E731
        nodes = list(ast.walk(tree))
        literals = {id(n.operand) for n in nodes if isinstance(n, ast.UnaryOp) and _int_of(n) is not None}
        region_src = "\n".join("\n".join(cell.source.split("\n")[b:e - 1]) for b, e in regions)
        detach_aware = "detach" in region_src or "no_grad" in region_src
        functions = [f for f in nodes if isinstance(f, (ast.FunctionDef, ast.Lambda))]
        for i, node in enumerate(nodes):
            if not hasattr(node, "lineno") and not isinstance(node, ast.Slice):
                continue
            line = getattr(node, "lineno", None)
            if line is None or not inside(node):
                continue
            rules = _rules(node, detach_aware, literals)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                rules = rules + _wrong_variable(node, functions)
            for kind, make in rules:
                mutated = copy.deepcopy(tree)
                target = list(ast.walk(mutated))[i]
                try:
                    new = make(target)
                    if new is not target and not _replace(mutated, target, new):
                        continue
                    text = _unparse(mutated)
                    compile(text, "<mutant>", "exec")
                except Exception:
                    continue
                if text in seen:
                    continue
                seen.add(text)
                file_line = None if cell.line is None else cell.line + line - 1
                out.append(Mutant(k, kind, line, file_line, text, _line_diff(base, text),
                                  hashlib.sha1(f"{exercise.name}\n{text}".encode()).hexdigest()))
    return out


def sample(mutants: list[Mutant], limit: int | None) -> list[Mutant]:
    """At most ``limit`` mutants, chosen by the hash of their code (the same ones on every run), in order."""
    if limit is None or len(mutants) <= limit:
        return mutants
    keep = {m.key for m in sorted(mutants, key=lambda m: m.key)[:limit]}
    return [m for m in mutants if m.key in keep]


# --------------------------------------------------------------------------- running one notebook (worker)


class CellTimeout(BaseException):
    """A cell ran past its time limit (raised by SIGALRM; a BaseException so ``except Exception`` cannot hide it)."""


def _on_alarm(signum, frame):
    raise CellTimeout("the cell ran past its time limit")


@dataclass
class Outcome:
    """What one run of an exercise's cells gave."""

    raised: dict = field(default_factory=dict)   # cell position -> first line of the error
    records: list = field(default_factory=list)
    grade_error: str | None = None
    seconds: float = 0.0
    cell_seconds: dict = field(default_factory=dict)


def _error_line(err: BaseException) -> str:
    text = str(err).strip().split("\n")[0]
    return f"{type(err).__name__}: {text}"[:200] if text else type(err).__name__


class _Runner:
    def __init__(self, path: Path, cell_timeout: float):
        self.path, self.cell_timeout = path, cell_timeout
        self.ns: dict = {"__name__": "__main__", "__file__": str(path)}
        self.records: list = []

    def install(self):
        """Capture ``record`` calls (the grader's payload) instead of writing them anywhere."""
        import inspect

        from course_lib.tooling import checks

        os.environ.pop(getattr(checks, "ENV", "COURSE_GRADING_RECORDS"), None)
        original = checks.record
        params = inspect.signature(original).parameters
        rtol0 = params["rtol"].default if "rtol" in params else 1e-4
        atol0 = params["atol"].default if "atol" in params else 1e-5

        def record(name, value, *, rtol=rtol0, atol=atol0, message=""):
            self.records.append({"name": str(name), "value": checks.to_plain(value, repr(name)),
                                 "rtol": float(rtol), "atol": float(atol), "message": str(message)})
            return value

        record.__doc__ = original.__doc__
        checks.record = record
        self.compare = checks.compare
        try:
            from IPython.display import display
        except Exception:  # pragma: no cover
            display = print
        self.ns["display"] = display

    def exec_cell(self, source: str, name: str, timeout: float | None = None) -> BaseException | None:
        """Run ``source`` in the notebook's namespace (IPython magics and shell lines skipped), at most ``timeout``
        seconds; the exception it raised, if any (its output is swallowed)."""
        sink = io.StringIO()
        signal.signal(signal.SIGALRM, _on_alarm)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            code = compile(_without_magics(source), name, "exec")
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(code, self.ns)
        except (Exception, CellTimeout, SystemExit, RecursionError) as err:  # a mutant may raise anything
            return err
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _close_figures()
        return None


def _without_magics(source: str) -> str:
    """``source`` with its IPython lines (``%magic``, ``!shell``, ``%%cell magic``) replaced by ``pass``."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines[i] = line[: len(line) - len(stripped)] + "pass"
    return "\n".join(lines)


def _close_figures():
    mpl = sys.modules.get("matplotlib.pyplot")
    if mpl is not None:
        try:
            mpl.close("all")
        except Exception:
            pass


def _rng_state():
    import random

    import torch

    state = {"torch": torch.get_rng_state(), "random": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state()
    return state


def _set_rng(state):
    import random

    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "numpy" in state:
        sys.modules["numpy"].random.set_state(state["numpy"])


def _defined_names(source: str) -> set:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _judge(compare, expected: list[dict], got: list[dict]) -> str | None:
    """None when every value recorded by the solution is matched (by name, in order) by the run's values."""
    by_name: dict = {}
    for payload in got:
        by_name.setdefault(payload["name"], []).append(payload["value"])
    used: dict = {}
    for ref in expected:
        k = used.get(ref["name"], 0)
        used[ref["name"]] = k + 1
        values = by_name.get(ref["name"], [])
        if k >= len(values):
            return f"{ref['name']!r} not recorded"
        why = compare(ref["value"], values[k], ref["rtol"], ref["atol"], ref["name"])
        if why is not None:
            return why
    return None


def _run_block(runner: _Runner, cells: list[Cell], ex: Exercise, mutant: Mutant | None, rng,
               reference: Outcome | None = None) -> Outcome:
    """Run the exercise's cells (the mutant's in place of its cell) from random state ``rng``. With a ``reference``
    run, each cell may take ``cell_timeout`` seconds or 5 times its reference time, whichever is longer."""
    out = Outcome()
    start = time.monotonic()
    _set_rng(rng)
    runner.records = []
    for k in ex.block:
        source = cells[k].source
        if mutant is not None and k == mutant.cell:
            source = mutant.source
            for name in _defined_names(source):  # a mutant cell that raises must not leave the solution defined
                runner.ns.pop(name, None)
        if k == ex.grade:
            runner.records = []
        limit = None
        if reference is not None:
            limit = max(runner.cell_timeout, 5 * reference.cell_seconds.get(k, 0.0))
        t0 = time.monotonic()
        err = runner.exec_cell(source, f"<cell {cells[k].index + 1}>", limit)
        out.cell_seconds[k] = time.monotonic() - t0
        if err is not None:
            if k == ex.grade:
                out.grade_error = _error_line(err)
            elif not cells[k].raises:
                out.raised[k] = _error_line(err)
    out.records = runner.records
    out.seconds = time.monotonic() - start
    return out


def _limit(max_mutants, name: str):
    """The mutant limit of exercise ``name``: ``max_mutants`` is None, a number, or {exercise: number, "*": default}."""
    if isinstance(max_mutants, dict):
        return max_mutants.get(name, max_mutants.get("*"))
    return max_mutants


def run_notebook(path: str | Path, exercises: list[str] | None = None, max_mutants=None,
                 cell_timeout: float = CELL_TIMEOUT, log=None) -> dict:
    """Run the mutants of every graded exercise of solution notebook ``path`` in this process; the report (a dict).

    ``max_mutants``: None (all), a number, or a dict {exercise: number, "*": default}.
    """
    path = Path(path).resolve()
    started, cpu = time.monotonic(), time.process_time()
    report = {"notebook": str(path), "stem": path.stem, "error": None, "exercises": [], "seconds": 0.0,
              "cpu_seconds": 0.0}
    cells = read_cells(path)
    plan = find_exercises(cells)
    starts = {ex.block[0]: ex for ex in plan}
    in_block = {k for ex in plan for k in ex.block}
    last = max(in_block) if in_block else -1
    runner = _Runner(path, cell_timeout)
    os.chdir(path.parent)
    runner.install()
    k = 0
    while k <= last:
        ex = starts.get(k)
        if ex is None:
            if k not in in_block:
                err = runner.exec_cell(cells[k].source, f"<cell {cells[k].index + 1}>")
                if err is not None and not cells[k].raises:
                    report["error"] = (f"cell {cells[k].index + 1} (line {cells[k].line}) raised "
                                       f"{_error_line(err)}: the notebook cannot be run")
                    break
            k += 1
            continue
        if exercises and ex.name not in exercises:
            for j in ex.block:  # run the solution as is, so that later exercises find what it defines
                runner.exec_cell(cells[j].source, f"<cell {cells[j].index + 1}>")
            k = ex.grade + 1
            continue
        report["exercises"].append(_mutate_exercise(runner, cells, ex, _limit(max_mutants, ex.name), log))
        k = ex.grade + 1
    report["seconds"] = round(time.monotonic() - started, 2)
    report["cpu_seconds"] = round(time.process_time() - cpu, 2)
    return report


def _mutate_exercise(runner: _Runner, cells: list[Cell], ex: Exercise, max_mutants, log) -> dict:
    say = log or (lambda *a: None)
    result = {"name": ex.name, "points": ex.points, "mutants": 0, "output_changing": 0, "caught": 0, "percent": None,
              "error": None, "unstable": None, "sampled_from": None, "seconds": 0.0, "cpu_seconds": 0.0, "missed": [],
              "details": []}
    if not ex.solutions:
        result["error"] = "no ### BEGIN SOLUTION cell before this grade cell"
        return result
    if not ex.checks:
        result["error"] = "no self-check cell between the solution cell and the grade cell"
    started, cpu = time.monotonic(), time.process_time()
    rng = _rng_state()
    reference = _run_block(runner, cells, ex, None, rng)
    if reference.raised or reference.grade_error:
        where = next(iter(reference.raised.items()), None)
        why = (f"the solution fails its self-check (cell {cells[where[0]].index + 1}: {where[1]})" if where
               else f"the solution fails its grade cell ({reference.grade_error})")
        result["error"] = why
        return result
    every = mutants_of(cells, ex)
    chosen = sample(every, max_mutants)
    if len(chosen) < len(every):
        result["sampled_from"] = len(every)
    say(f"  {ex.name}: {len(chosen)} mutants (reference run {reference.seconds:.1f} s)")
    for m in chosen:
        got = _run_block(runner, cells, ex, m, rng, reference)
        raised_after = {k: e for k, e in got.raised.items() if k != m.cell and k > m.cell}
        own = got.raised.get(m.cell)
        why = got.grade_error or _judge(runner.compare, reference.records, got.records)
        changing = why is not None
        caught = bool(raised_after)
        result["details"].append({
            "kind": m.kind, "line": m.file_line or m.line, "diff": m.diff, "output_changing": changing,
            "caught": caught, "caught_by": next(iter(raised_after.values()), None), "own_cell_error": own,
            "grade": why, "seconds": round(got.seconds, 3)})
    # the unmutated cells again: restores what they define, and shows whether the recorded values are reproducible
    again = _run_block(runner, cells, ex, None, rng)
    unstable = again.grade_error or _judge(runner.compare, reference.records, again.records)
    result["unstable"] = unstable
    d = result["details"]
    result["mutants"] = len(d)
    result["output_changing"] = sum(x["output_changing"] for x in d)
    result["caught"] = sum(x["output_changing"] and x["caught"] for x in d)
    if result["output_changing"]:
        result["percent"] = round(100.0 * result["caught"] / result["output_changing"], 1)
    result["missed"] = [{"kind": x["kind"], "line": x["line"], "diff": x["diff"], "grade": x["grade"]}
                        for x in d if x["output_changing"] and not x["caught"]]
    result["seconds"] = round(time.monotonic() - started, 2)
    result["cpu_seconds"] = round(time.process_time() - cpu, 2)
    return result


# --------------------------------------------------------------------------- driving workers, reporting


def _course_root(notebook: Path) -> Path:
    """The course a solution notebook belongs to (``solutions/..``), else the one this file belongs to."""
    root = notebook.resolve().parent.parent
    return root if (root / "course_lib").is_dir() else Path(__file__).resolve().parents[2]


def _worker_env(root: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("COURSE_QUICK", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TQDM_DISABLE", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("COURSE_GRADING_RECORDS", None)
    return env


def run(paths, exercises=None, max_mutants=None, cell_timeout=CELL_TIMEOUT, timeout=NOTEBOOK_TIMEOUT,
        log=print, one_process: bool = False) -> list[dict]:
    """Each notebook's report. Each notebook runs in a worker process of its own (this file, ``--worker``), or,
    with ``one_process``, all of them in one worker (torch is imported once; a crash loses them all).

    ``max_mutants``: None (all), a number, or a dict {exercise: number, "*": default}.
    """
    paths = [Path(p).resolve() for p in paths]
    batches = [paths] if one_process and paths else [[p] for p in paths]
    reports = []
    for batch in batches:
        for path in batch:
            log(f"{path.name}: running its mutants ...")
        got = _run_worker(batch, exercises, max_mutants, cell_timeout, timeout * len(batch))
        if len(batch) > 1 and got and got[0].get("worker_failed"):  # one notebook took the others down with it
            log("the shared worker failed; each notebook again in a worker of its own")
            got = [r for p in batch for r in _run_worker([p], exercises, max_mutants, cell_timeout, timeout)]
        for report in got:
            reports.append(report)
            log(format_notebook(report, show_all=False))
    return reports


def _run_worker(batch: list[Path], exercises, max_mutants, cell_timeout, timeout) -> list[dict]:
    root = _course_root(batch[0])
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        out = Path(tmp) / "report.json"
        argv = [sys.executable, os.path.abspath(__file__), "--worker", *map(str, batch), "--json", str(out),
                "--cell-timeout", str(cell_timeout)]
        limits = max_mutants if isinstance(max_mutants, dict) else {} if max_mutants is None else {"*": max_mutants}
        for name, n in limits.items():
            argv += ["--max-mutants", str(n)] if name == "*" else ["--cap", f"{name}={n}"]
        for name in exercises or []:
            argv += ["--exercise", name]
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, env=_worker_env(root), cwd=str(batch[0].parent), timeout=timeout,
                                  capture_output=True, text=True)
            failed = None if proc.returncode == 0 and out.exists() else \
                f"the worker exited with status {proc.returncode}: {(proc.stderr or '').strip()[-1500:]}"
        except subprocess.TimeoutExpired:
            failed = f"the mutants ran past {timeout:.0f} s"
        if failed:
            return [{"notebook": str(p), "stem": p.stem, "error": failed, "exercises": [], "worker_failed": True,
                     "seconds": round(time.monotonic() - start, 2), "cpu_seconds": None} for p in batch]
        return json.loads(out.read_text())


def _exercise_line(e: dict) -> str:
    pct = "   n/a" if e["percent"] is None else f"{e['percent']:5.1f} %"
    sampled = f" (sampled from {e['sampled_from']})" if e.get("sampled_from") else ""
    cpu = e.get("cpu_seconds")
    return (f"  {e['name']:<28} {e['mutants']:>7}{sampled:<17} {e['output_changing']:>15} {e['caught']:>7}   {pct}"
            f"   {e['seconds']:6.1f} s" + ("" if cpu is None else f" ({cpu:.1f} s CPU)"))


def format_notebook(report: dict, show_all: bool = False, bar: float = BAR) -> str:
    cpu = report.get("cpu_seconds")
    lines = [f"{report['stem']} ({report['seconds']:.0f} s" + ("" if cpu is None else f", {cpu:.0f} s CPU") + ")"]
    if report.get("error"):
        lines.append(f"  ERROR: {report['error']}")
    if report["exercises"]:
        lines.append(f"  {'exercise':<28} {'mutants':>7}{'':<17} {'output-changing':>15} {'caught':>7}   "
                     f"{'caught %':>7}   time")
    for e in report["exercises"]:
        lines.append(_exercise_line(e) + ("" if e["percent"] is None or e["percent"] >= bar else f"   < {bar:g} %"))
        if e.get("error"):
            lines.append(f"    ERROR: {e['error']}")
        if e.get("unstable"):
            lines.append(f"    WARNING: the solution's recorded values differ from run to run ({e['unstable']}); "
                         "mutants may look output-changing when they are not")
        shown = e["details"] if show_all else [x for x in e["details"] if x["output_changing"] and not x["caught"]]
        if shown and not show_all:
            lines.append(f"    missed by the self-check ({len(shown)}): line, mistake, old => new")
        for x in shown:
            old = " / ".join(d[2:] for d in x["diff"] if d.startswith("- "))
            new = " / ".join(d[2:] for d in x["diff"] if d.startswith("+ "))
            tag = ""
            if show_all:
                tag = ("caught " if x["caught"] else "MISSED " if x["output_changing"] else "same   ")
            lines.append(f"    {tag}line {x['line']:<4} {x['kind']:<20} {_clip(old)}  =>  {_clip(new)}")
            if show_all and x["caught"]:
                lines.append(f"        caught by: {x['caught_by']}")
    return "\n".join(lines)


def _clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_report(reports: list[dict], show_all: bool = False, bar: float = BAR) -> str:
    parts = [format_notebook(r, show_all, bar) for r in reports]
    rows = [(r["stem"], e) for r in reports for e in r["exercises"]]
    below = [f"{stem}:{e['name']} {e['percent']} %" for stem, e in rows if e["percent"] is not None
             and e["percent"] < bar]
    parts.append(f"{len(rows)} exercise(s); below {bar:g} %: {', '.join(below) if below else 'none'}")
    return "\n\n".join(parts)


def resolve(names: list[str], solutions: Path) -> list[Path]:
    """Solution notebooks from numbers (``03``), stems (``03_vae``) or paths; every one when ``names`` is empty."""
    if not names:
        return sorted(p for p in solutions.glob("[0-9]*.py"))
    out = []
    for name in names:
        p = Path(name)
        if p.suffix in (".py", ".ipynb") and p.exists():
            out.append(p.with_suffix(".py") if p.with_suffix(".py").exists() else p)
            continue
        found = sorted(solutions.glob(f"{name}*.py")) or sorted(solutions.glob(f"{name}*.ipynb"))
        if not found:
            raise ValueError(f"no solution notebook {name!r} in {solutions}")
        out.append(found[0])
    return out


# --------------------------------------------------------------------------- the 'no assert in a grade cell' check


def grade_cell_asserts(path: str | Path) -> list[str]:
    """Problems of the grade cells of a solution notebook: an ``assert`` (anywhere in the cell: it would fire
    before or instead of the ``record`` whose message is the student's hint), or no ``record`` at all."""
    problems = []
    for cell in read_cells(path):
        if cell.grade is None:
            continue
        name = cell.grade["exercise"]
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as err:
            problems.append(f"{name}: the grade cell does not parse ({err.msg})")
            continue
        records = sorted(n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == "record")
        for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Assert)), key=lambda n: n.lineno):
            line = node.lineno if cell.line is None else cell.line + node.lineno - 1
            where = ("before its records" if records and node.lineno < records[-1] else
                     "after its records" if records else "and no record")
            problems.append(f"{name}: assert on line {line} {where}: {ast.unparse(node.test)[:80]}")
        if not records:
            problems.append(f"{name}: the grade cell records nothing")
    return problems


# --------------------------------------------------------------------------- command line


def _default_solutions() -> Path:
    here = Path.cwd() / "solutions"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "solutions"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib mutations",
                                description="Mutation test of the exercises' self-checks (issue 17): the usual mistakes "
                                            "that change a grade cell's recorded values but pass the self-check.")
    p.add_argument("notebooks", nargs="*", help="solution notebooks: 03, 03_vae or solutions/03_vae.py "
                                                "(default: every one)")
    p.add_argument("--solutions", metavar="DIR", help="folder of the solution notebooks "
                                                      "(default: ./solutions, else this course's)")
    p.add_argument("--exercise", action="append", metavar="NAME", help="only this exercise (repeatable)")
    p.add_argument("--max-mutants", type=int, metavar="N", help="at most N mutants per exercise, the same ones "
                                                                "on every run (default: all)")
    p.add_argument("--cap", action="append", default=[], metavar="NAME=N",
                   help="at most N mutants for exercise NAME (repeatable; overrides --max-mutants)")
    p.add_argument("--one-process", action="store_true", help="run every notebook in one worker process (torch "
                                                               "imported once; if it dies, each notebook again alone)")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="S", help="limit per cell per mutant, or 5 times the "
                                                                                      "cell's unmutated time if longer (default: 30)")
    p.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT, metavar="S", help="limit per notebook (default: 3600)")
    p.add_argument("--bar", type=float, default=BAR, metavar="PCT", help="exit 1 when an exercise is below it (default: 90)")
    p.add_argument("--all", action="store_true", help="list every mutant and what caught it, not only the missed")
    p.add_argument("--json", metavar="FILE", help="also write the whole report (every mutant) as JSON")
    p.add_argument("--asserts", action="store_true", help="only list the asserts in grade cells (issue 17 item 4) "
                                                          "and the grade cells that record nothing")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args)
    solutions = Path(args.solutions) if args.solutions else _default_solutions()
    try:
        paths = resolve(args.notebooks, solutions)
    except ValueError as e:
        p.error(str(e))
    if not paths:
        p.error(f"no solution notebooks in {solutions}")
    if args.asserts:
        found = False
        for path in paths:
            problems = grade_cell_asserts(path)
            found = found or bool(problems)
            print(f"{path.stem}: " + ("no assert in a grade cell, every grade cell records" if not problems else
                                       f"{len(problems)} problem(s)\n  " + "\n  ".join(problems)))
        return 1 if found else 0
    quiet = lambda *a, **k: None  # noqa: E731
    reports = run(paths, args.exercise, _limits(args), args.cell_timeout, args.timeout,
                  log=print if not args.all else quiet, one_process=args.one_process)
    if args.all:
        print(format_report(reports, show_all=True, bar=args.bar))
    else:
        print()
        print(format_report(reports, show_all=False, bar=args.bar).split("\n\n")[-1])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(reports, indent=1))
        print(f"wrote {args.json}")
    bad = any(r.get("error") for r in reports) or any(
        e.get("error") or (e["percent"] is not None and e["percent"] < args.bar) for r in reports
        for e in r["exercises"])
    return 1 if bad else 0


def _limits(args):
    caps = {}
    for item in args.cap:
        name, _, n = item.partition("=")
        if not n.strip().isdigit():
            raise SystemExit(f"--cap {item!r}: write NAME=N")
        caps[name.strip()] = int(n)
    if not caps:
        return args.max_mutants
    if args.max_mutants is not None:
        caps["*"] = args.max_mutants
    return caps


def _global_state() -> dict:
    import torch

    return {"dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(),
            "cwd": os.getcwd(), "environ": dict(os.environ)}


def _set_global_state(state: dict) -> None:
    import torch

    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])
    torch.set_num_threads(state["threads"])
    os.chdir(state["cwd"])
    os.environ.clear()
    os.environ.update(state["environ"])
    mpl = sys.modules.get("matplotlib")
    if mpl is not None:
        mpl.rcdefaults()


def _worker(args) -> int:
    paths = [Path(p).resolve() for p in args.notebooks]
    root = str(_course_root(paths[0]))
    if root not in sys.path:
        sys.path.insert(0, root)
    reports = []
    fresh = _global_state()
    for path in paths:
        _set_global_state(fresh)  # what one notebook set (torch's default dtype, ...) must not leak into the next
        reports.append(run_notebook(path, args.exercise, _limits(args), args.cell_timeout,
                                    log=lambda *a: print(*a, file=sys.stderr, flush=True)))
        _close_figures()
    Path(args.json).write_text(json.dumps(reports, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
