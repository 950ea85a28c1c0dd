"""Where the course runs: device choice, seeding, and quick mode.

Quick mode shrinks data and epochs so that every lesson runs in about a minute
on two CPU cores, on 5,000 real 28x28 MNIST digits that need no download. It is
the default on a machine without CUDA (a laptop, CI, the grader); full mode (all
of MNIST, bigger models, more epochs) is the default where CUDA is available.
``COURSE_QUICK=1`` or ``COURSE_QUICK=0`` overrides either default. Lessons read
the sizes they need from :func:`pick` in one visible cell, so that nothing else
differs between the two modes.

``COURSE_SEED=N`` (default 0) changes every random number a lesson draws: each
seed a lesson names (``seed_everything(k)``, ``make_generator(k)``, ``fit(seed=k)``)
is turned into :func:`derive_seed` ``(k)``, which equals ``k`` for ``COURSE_SEED=0``
and differs for every other course seed. A claim a lesson asserts must hold for
every course seed (``python -m course_lib claims --seeds 0 1 2 3 4`` checks it). The data
stay the same under every course seed (the quick-mode split, the static binarization of a
test set): the seed moves what a lesson draws (initial weights, batches, noise, samples).

Quick mode also runs PyTorch on one CPU thread (unless ``OMP_NUM_THREADS`` says
otherwise): its models are so small that a second thread only adds
synchronisation, which on a busy machine (a CI runner, a grader marking a class)
can make training ten times slower.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "course_seed", "derive_seed", "make_generator", "is_quick", "mode_reason", "QUICK", "pick", "describe"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _forced_mode() -> bool | None:
    """True/False when ``COURSE_QUICK`` forces quick/full mode, None when it is unset."""
    value = os.environ.get("COURSE_QUICK", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise ValueError(f"COURSE_QUICK={value!r} is not understood; use COURSE_QUICK=1 (quick) or 0 (full), "
                         "or unset it (quick without CUDA, full with CUDA).")
    return None


def is_quick() -> bool:
    """Quick mode? ``COURSE_QUICK=1``/``0`` decides; unset, quick exactly when CUDA is not available."""
    forced = _forced_mode()
    return (not torch.cuda.is_available()) if forced is None else forced


def mode_reason() -> str:
    """Why the course runs in the mode it does, in a few words."""
    forced = _forced_mode()
    if forced is not None:
        return f"COURSE_QUICK={os.environ['COURSE_QUICK'].strip()} was set"
    return ("no CUDA GPU here (set COURSE_QUICK=0 to force full mode)" if not torch.cuda.is_available()
            else "a CUDA GPU is available (set COURSE_QUICK=1 for quick mode)")


QUICK = is_quick()
if QUICK and "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


def pick(quick, full):
    """Return ``quick`` in quick mode and ``full`` otherwise (read at call time)."""
    return quick if is_quick() else full


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device the course computes on.

    Order: the ``device`` argument, then the environment variable
    ``COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), then CUDA, then
    Apple's MPS, then the CPU. Asking for a device that is not there raises a
    ``RuntimeError`` that says which ones are.
    """
    wanted = device if device is not None else os.environ.get("COURSE_DEVICE") or None
    if wanted is not None:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(wanted)!r} was asked for (argument or COURSE_DEVICE) but CUDA is "
                "not available here; use 'cpu' or unset COURSE_DEVICE."
            )
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError(
                f"device {str(wanted)!r} was asked for but MPS is not available here; use 'cpu'."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def course_seed() -> int:
    """The course seed: the integer in ``COURSE_SEED`` (default 0), read at call time."""
    value = os.environ.get("COURSE_SEED", "").strip()
    if not value:
        return 0
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(f"COURSE_SEED={value!r} is not an integer; use e.g. COURSE_SEED=3, or unset it "
                         "(seed 0).") from None
    if seed < 0:
        raise ValueError(f"COURSE_SEED={seed} is negative; use an integer >= 0.")
    return seed


_SEED_STRIDE = 1_000_003  # a prime larger than any seed a lesson names: derived seeds never collide


def derive_seed(seed: int = 0) -> int:
    """The seed actually used for a lesson's seed ``seed``: ``seed + 1,000,003 * COURSE_SEED``.

    With ``COURSE_SEED`` unset (or 0) it is ``seed`` itself, so the default course is reproducible
    run to run; every other course seed moves every draw of the lesson.
    """
    return int(seed) + _SEED_STRIDE * course_seed()


def make_generator(seed: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` ``(seed)``: the lessons' private streams."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed))
    return g


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) with :func:`derive_seed` ``(seed)``.

    Returns a CPU generator seeded the same way. ``COURSE_SEED`` therefore changes every
    lesson's weights, batches and samples, while ``COURSE_SEED=0`` keeps seed ``seed`` as is.
    """
    actual = derive_seed(seed)
    random.seed(actual)
    np.random.seed(actual % (2**32))
    torch.manual_seed(actual)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(actual)
    return make_generator(seed)


def describe() -> str:
    """One line for the top of a lesson: the mode and why, the device, the torch version."""
    mode = "QUICK (5,000 MNIST digits, small models)" if is_quick() else "FULL (all of MNIST, full-size models)"
    dev = get_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    seed = course_seed()
    return (f"mode: {mode}, because {mode_reason()} | course seed {seed}"
            f"{'' if seed else ' (set COURSE_SEED=N for another)'} | device: {name} | torch {torch.__version__}")
