"""The forbidden-call rule: an exercise that must be answered without a course_lib function.

A solution's grade cell may declare ``grade={"exercise": ..., "points": ...,
"forbidden": ["course_lib.losses.per_dim_kl", "course_lib.models.autoregressive"]}``: a dotted
function (or class) name, or a module meaning everything defined in it. A submission that uses one
gets 0 points for that exercise, found two ways:

- :func:`static_uses`: the student's cells, parsed (no code run): imports of a forbidden name (or
  ``*`` from the module that holds it) and attribute chains that resolve to one through the
  imports' aliases (``import course_lib.losses as L; L.per_dim_kl``), ``getattr(L, "per_dim_kl")``;
- a run-time guard (:func:`guard_on_source`, :func:`guard_off_source`: two small cells the grader
  runs around the grade cell): a profile hook sees every call of a forbidden function's code while
  the hidden tests run; a call is the student's when the nearest calling frame outside the Python
  library is neither course_lib itself nor the grade cell (so ``importlib``, ``getattr``,
  ``functools.partial``, aliases and reloaded modules are caught). Its report goes to the grader
  as a display message of type :data:`MIME`; a grade cell whose guard did not report, or found
  the hook replaced, earns nothing.
"""
from __future__ import annotations

import ast
import json

__all__ = ["MIME", "static_uses", "guard_on_source", "guard_off_source", "rule_message"]

MIME = "application/x-course-guard+json"


def rule_message(name: str) -> str:
    return f"this exercise must be answered without calling {name}"


def _hits(dotted: str, forbidden: list[str]) -> str | None:
    for f in forbidden:
        if dotted == f or dotted.startswith(f + "."):
            return f
    return None


def _clean_source(source: str) -> str:
    """Cell source with IPython magics and shell escapes blanked (so that it parses)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def static_uses(sources: list[str], forbidden: list[str]) -> list[str]:
    """The forbidden names ``sources`` (the student's code cells, in order) import or reach."""
    found: list[str] = []
    aliases: dict[str, str] = {}

    def hit(dotted: str) -> None:
        f = _hits(dotted, forbidden)
        if f is not None and f not in found:
            found.append(f)

    def dotted_of(node) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in aliases:
            return ".".join([aliases[node.id], *reversed(parts)])
        return None

    for source in sources:
        try:
            tree = ast.parse(_clean_source(source))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):  # imports first, wherever they are (a function body included)
            if isinstance(node, ast.Import):
                for a in node.names:
                    hit(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":
                        if any(f.startswith(node.module + ".") or f == node.module for f in forbidden):
                            found.extend(f for f in forbidden if (f.startswith(node.module + ".") or
                                                                  f == node.module) and f not in found)
                        continue
                    full = f"{node.module}.{a.name}"
                    hit(full)
                    aliases[a.asname or a.name] = full
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)):
                d = dotted_of(node)
                if d is not None:
                    hit(d)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                  and isinstance(node.args[1].value, str)):
                d = dotted_of(node.args[0])
                if d is not None:
                    hit(f"{d}.{node.args[1].value}")
    return found


_ON = r'''
def __course_guard_on(exercise, forbidden, grade_source):
    import importlib, inspect, os, sys, sysconfig, threading, types
    functions, modules = {}, []
    for name in forbidden:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            mod = None
        if mod is not None and getattr(mod, "__file__", None):
            path = os.path.realpath(mod.__file__)
            if os.path.basename(path) == "__init__.py":
                modules.append((os.path.dirname(path) + os.sep, name))  # a package: every file in it
            else:
                modules.append((path, name))
            continue
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError):
            continue
        for f in ([obj] if inspect.isfunction(obj) else
                  [v for v in vars(obj).values() if inspect.isfunction(v)] if inspect.isclass(obj) else []):
            functions[(os.path.realpath(f.__code__.co_filename), f.__code__.co_firstlineno, f.__code__.co_name)] = name
    starts = tuple({k[0] for k in functions} | {p for p, _ in modules})
    library = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"])})
    course = os.path.dirname(os.path.realpath(importlib.import_module("course_lib").__file__)) + os.sep
    try:
        grade_file = get_ipython().compile.get_code_name(grade_source, grade_source, 0)
    except Exception:
        grade_file = None
    real = {}
    def label_of(code):
        f = code.co_filename
        if f not in real:
            real[f] = os.path.realpath(f) if f.startswith(os.sep) else f
        f = real[f]
        if not f.startswith(starts):
            return None
        found = functions.get((f, code.co_firstlineno, code.co_name))
        if found:
            return found
        for prefix, name in modules:
            if f == prefix or (prefix.endswith(os.sep) and f.startswith(prefix)):
                return name
        return None
    calls = []
    def hook(frame, event, arg):
        if event != "call":
            return
        label = label_of(frame.f_code)
        if label is None:
            return
        caller = frame.f_back
        while caller is not None:
            if label_of(caller.f_code) is not None:
                return  # called by a forbidden function: its own first call was judged already
            f = caller.f_code.co_filename
            f = real.get(f) or (os.path.realpath(f) if f.startswith(os.sep) else f)
            if f.startswith(course) or caller.f_code.co_filename == grade_file:
                return
            if not f.startswith(library):
                if label not in calls:
                    calls.append(label)
                return
            caller = caller.f_back
    state = types.SimpleNamespace(exercise=exercise, calls=calls, hook=hook, setprofile=sys.setprofile,
                                  getprofile=sys.getprofile)
    sys.setprofile(hook)
    threading.setprofile(hook)
    return state
'''

_OFF = r'''
def __course_guard_off(state, mime):
    import threading
    intact = state.getprofile() is state.hook
    state.setprofile(None)
    threading.setprofile(None)
    from IPython.display import publish_display_data
    publish_display_data({mime: {"exercise": state.exercise, "calls": list(state.calls), "intact": intact}})
'''


def guard_on_source(exercise: str, forbidden: list[str], grade_source: str) -> str:
    """The cell run just before the grade cell of ``exercise``."""
    return (f"{_ON}\n__course_guard_state = __course_guard_on({exercise!r}, {json.dumps(forbidden)}, "
            f"{grade_source!r})\ndel __course_guard_on\n")


def guard_off_source() -> str:
    """The cell run just after the grade cell: the guard's report (a display message of type MIME)."""
    return (f"{_OFF}\n__course_guard_off(__course_guard_state, {MIME!r})\ndel __course_guard_off, "
            "__course_guard_state\n")
