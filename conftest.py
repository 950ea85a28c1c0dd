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
