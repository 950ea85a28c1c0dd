"""Where the course runs: device choice, seeding, and quick mode.

Quick mode (``COURSE_QUICK=1``) shrinks data and epochs so that every lesson
runs in under a minute on two CPU cores; the test suite sets it, students and
instructors get full mode unless they ask for it. Lessons read the sizes they
need from :func:`pick` in one visible cell, so that nothing else differs between
the two modes.

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

__all__ = ["get_device", "seed_everything", "is_quick", "QUICK", "pick", "describe"]

_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """True when the environment variable ``COURSE_QUICK`` asks for quick mode."""
    return os.environ.get("COURSE_QUICK", "").strip().lower() in _TRUE


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


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU); returns a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def describe() -> str:
    """One line for the top of a lesson: mode, device, torch version."""
    mode = "quick (COURSE_QUICK=1)" if is_quick() else "full"
    dev = get_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return f"mode: {mode} | device: {name} | torch {torch.__version__}"
