"""``record``: how a hidden test hands a value to the grader.

A hidden test computes a value with the student's function on hidden inputs and *records* it::

    record("kl, random batch", gaussian_kl(mu, logvar), rtol=1e-5,
           message="the KL of a random batch is off: check the sign of log sigma^2")

When the grader runs a submission (``COURSE_GRADING_RECORDS`` names a folder), each recorded
value is written there with ``torch.save``. The grader runs the solution notebook the same way,
then compares the two sets of values *in its own process*, with the tolerances the solution
recorded: nothing in the student's kernel (a patched ``torch.allclose``, an input transformer,
a rewritten grade cell) can change that comparison. A value can only pass by being right.

Outside grading, ``record`` checks that the value can be sent (tensors, numbers, strings,
``None``, and lists, tuples and dicts of them) and returns it unchanged.
"""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import torch

__all__ = ["record", "to_plain", "compare", "ENV"]

ENV = "COURSE_GRADING_RECORDS"
_counter = itertools.count()


def to_plain(value, where: str = "value"):
    """``value`` as plain tensors (CPU, detached), numbers, strings, None, lists, tuples and dicts."""
    if torch.is_tensor(value):
        return value.detach().cpu().as_subclass(torch.Tensor).clone()
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)  # a subclass becomes a plain str
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if type(value).__module__ == "numpy":
        import numpy as np

        arr = np.asarray(value)
        return torch.from_numpy(arr.copy()) if arr.ndim else arr.item()
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {str(k): to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"record: {where} is a {type(value).__name__}; record tensors, numbers, strings, None, "
                    "or lists, tuples and dicts of them.")


def record(name: str, value, *, rtol: float = 1e-4, atol: float = 1e-5, message: str = ""):
    """Hand ``value`` to the grader under ``name`` (see the module docstring); returns ``value``."""
    plain = to_plain(value, repr(name))
    folder = os.environ.get(ENV)
    if folder:
        payload = {"name": str(name), "value": plain, "rtol": float(rtol), "atol": float(atol),
                   "message": str(message)}
        path = Path(folder) / f"{os.getpid()}-{next(_counter):06d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
    return value


def compare(expected, got, rtol: float, atol: float, where: str = "") -> str | None:
    """None when ``got`` matches ``expected`` (same structure, values within tolerance), else why not."""
    label = where or "the value"
    if torch.is_tensor(expected):
        if not torch.is_tensor(got):
            return f"{label}: expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"{label}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if expected.dtype == torch.bool or not (expected.is_floating_point() or expected.is_complex()):
            if got.is_floating_point() and not expected.dtype == torch.bool:
                got = got.round()
            if not torch.equal(got.to(expected.dtype), expected):
                wrong = int((got.to(expected.dtype) != expected).sum())
                return f"{label}: {wrong} of {expected.numel()} entries differ"
            return None
        e, g = expected.double(), got.double() if got.is_floating_point() else got.double()
        if not torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            diff = (g - e).abs()
            diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
            return f"{label}: largest difference {float(diff.max()):.3g} (tolerance {atol:g} + {rtol:g} x |expected|)"
        return None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return None if (type(got) is type(expected) and got == expected) else f"{label}: expected {expected!r}, got {_short(got)}"
    if isinstance(expected, (int, float)):
        if torch.is_tensor(got) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"{label}: expected a number, got {_short(got)}"
        if math.isnan(expected) and math.isnan(got):
            return None
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{label}: expected {expected:.6g}, got {got:.6g}"
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"{label}: expected {len(expected)} values, got {_short(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            why = compare(e, g, rtol, atol, f"{label}[{i}]")
            if why:
                return why
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"{label}: expected keys {sorted(expected)}, got {_short(got)}"
        for k in expected:
            why = compare(expected[k], got[k], rtol, atol, f"{label}[{k!r}]")
            if why:
                return why
        return None
    return f"{label}: cannot compare a {type(expected).__name__}"


def _short(x) -> str:
    if torch.is_tensor(x):
        return f"a tensor of shape {tuple(x.shape)}"
    text = repr(x)
    return text if len(text) < 60 else text[:57] + "..."
