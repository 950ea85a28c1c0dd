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


def test_course_seed_moves_every_draw_and_zero_keeps_the_lesson_seeds(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert runtime.course_seed() == 0 and runtime.derive_seed(7) == 7
    a = runtime.seed_everything(3)
    x0, g0 = torch.rand(3), torch.rand(3, generator=a)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(3), x0)  # course seed 0: seed 3 is seed 3
    monkeypatch.setenv("COURSE_SEED", "2")
    assert runtime.course_seed() == 2 and runtime.derive_seed(7) != 7
    b = runtime.seed_everything(3)
    x2, g2 = torch.rand(3), torch.rand(3, generator=b)
    assert not torch.equal(x0, x2) and not torch.equal(g0, g2)
    assert torch.equal(torch.rand(3, generator=runtime.make_generator(3)), g2)
    # different lesson seeds under different course seeds never coincide
    seen = {runtime.derive_seed(k) for k in range(200)}
    monkeypatch.setenv("COURSE_SEED", "3")
    assert seen.isdisjoint({runtime.derive_seed(k) for k in range(200)})


def test_course_seed_moves_fit_and_its_checkpoint(monkeypatch, tmp_path):
    from course_lib.models import Autoencoder
    from course_lib.train import fit

    x = torch.rand(64, 1, 8, 8)
    weights = {}
    for s in ("0", "1"):
        monkeypatch.setenv("COURSE_SEED", s)
        runtime.seed_everything(0)
        model = Autoencoder((1, 8, 8), latent_dim=2, hidden=(8,))
        fit(model, x, epochs=1, batch_size=16, checkpoint="ae", checkpoint_dir=tmp_path, progress=False)
        weights[s] = next(model.parameters()).detach().clone()
    assert not torch.equal(weights["0"], weights["1"])
    assert len(list(tmp_path.glob("ae-*.pt"))) == 2  # one checkpoint per course seed, none loaded for the other


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_course_seed_rejects_what_it_cannot_use(monkeypatch, value):
    monkeypatch.setenv("COURSE_SEED", value)
    with pytest.raises(ValueError, match="COURSE_SEED"):
        runtime.course_seed()
