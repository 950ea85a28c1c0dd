import pytest
import torch

from course_lib import runtime


def test_quick_mode_reads_env(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert runtime.is_quick() and runtime.pick("q", "f") == "q"
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert not runtime.is_quick() and runtime.pick("q", "f") == "f"


def test_mode_defaults_to_quick_without_cuda_and_full_with_it(monkeypatch):
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.is_quick() and "no CUDA" in runtime.mode_reason()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not runtime.is_quick() and "CUDA GPU is available" in runtime.mode_reason()
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert runtime.is_quick() and "COURSE_QUICK=1" in runtime.mode_reason()
    monkeypatch.setenv("COURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="COURSE_QUICK=1"):
        runtime.is_quick()


def test_describe_says_the_mode_and_why(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    line = runtime.describe()
    assert line.startswith("mode: QUICK") and "because COURSE_QUICK=1 was set" in line


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    assert runtime.get_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_missing_cuda_is_explained(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        runtime.get_device()


def test_seed_everything_reproducible():
    runtime.seed_everything(3)
    a = torch.randn(5)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.randn(5))
