import pytest
import torch

from course_lib import runtime


def test_quick_mode_reads_env(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert runtime.is_quick() and runtime.pick("q", "f") == "q"
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert not runtime.is_quick() and runtime.pick("q", "f") == "f"


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
