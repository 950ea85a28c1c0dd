"""Test-wide settings: quick mode, the CPU, a private checkpoint folder, no GUI backend.

Set here (before any test or notebook kernel starts) so that ``pytest`` alone, as the
README runs it, tests what a new user gets, in quick mode. nbval's kernels inherit
this environment.
"""
import os
import tempfile

os.environ["COURSE_QUICK"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("COURSE_CHECKPOINT_DIR", tempfile.mkdtemp(prefix="course_ckpt_"))
os.environ.setdefault("TQDM_MININTERVAL", "5")
# Quick-mode models are tiny: one thread per process is faster than two fighting over 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402


@pytest.fixture
def one_thread():
    """Small models train much faster on one thread when the CPU is shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
