import time

import pytest
import torch
from torch import nn

from course_lib.data import load_dataset
from course_lib.models import VAE, Autoencoder
from course_lib.train import TrainingDiverged, evaluate_terms, fit


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", device="cpu").take(400)


def test_fit_logs_every_term_and_learns(digits):
    val = load_dataset("digits", "test", device="cpu").take(100)
    torch.manual_seed(0)
    model = VAE(digits.shape, latent_dim=4, hidden=(64,))
    before = evaluate_terms(model, val)["loss"]
    hist = fit(model, digits, val, epochs=6, progress=False)
    assert set(hist.train) == {"loss", "recon", "kl", "neg_elbo"} and set(hist.val) == set(hist.train)
    assert len(hist.train["loss"]) == 6 == hist.epochs and len(hist.epoch_seconds) == 6
    assert hist.train["loss"][-1] < hist.train["loss"][0] - 5
    assert hist.last("loss", "val") < before - 5
    assert hist.last("loss", "val") == pytest.approx(evaluate_terms(model, val)["loss"], rel=0.05)


def test_checkpoint_loads_instantly_and_is_keyed_by_configuration(digits, tmp_path):
    torch.manual_seed(0)
    a = Autoencoder(digits.shape, latent_dim=2, hidden=(32,))
    h1 = fit(a, digits, epochs=3, checkpoint="ae", checkpoint_dir=tmp_path, progress=False)
    assert not h1.loaded and len(list(tmp_path.glob("ae-*.pt"))) == 1
    b = Autoencoder(digits.shape, latent_dim=2, hidden=(32,))  # different random init, same configuration
    t0 = time.perf_counter()
    h2 = fit(b, digits, epochs=3, checkpoint="ae", checkpoint_dir=tmp_path, progress=False)
    assert h2.loaded and time.perf_counter() - t0 < 2
    assert h2.train == h1.train
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # a changed hyper-parameter, architecture, data or setting trains anew
    fit(Autoencoder(digits.shape, latent_dim=2, hidden=(32,), noise=0.2), digits, epochs=3, checkpoint="ae",
        checkpoint_dir=tmp_path, progress=False)
    fit(Autoencoder(digits.shape, latent_dim=3, hidden=(32,)), digits, epochs=3, checkpoint="ae",
        checkpoint_dir=tmp_path, progress=False)
    fit(Autoencoder(digits.shape, latent_dim=2, hidden=(32,)), digits.take(300), epochs=3, checkpoint="ae",
        checkpoint_dir=tmp_path, progress=False)
    h = fit(Autoencoder(digits.shape, latent_dim=2, hidden=(32,)), digits, epochs=4, checkpoint="ae",
            checkpoint_dir=tmp_path, progress=False)
    assert not h.loaded and len(list(tmp_path.glob("ae-*.pt"))) == 5
    # retrain=True ignores the checkpoint
    assert not fit(b, digits, epochs=3, checkpoint="ae", checkpoint_dir=tmp_path, retrain=True, progress=False).loaded


class _RunsCode:
    def __reduce__(self):
        return (print, ("this checkpoint ran code",))


def test_checkpoints_load_weights_only_never_code(digits, tmp_path, capsys):
    torch.manual_seed(0)
    fit(Autoencoder(digits.shape, latent_dim=2, hidden=(16,)), digits, epochs=1, checkpoint="safe",
        checkpoint_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("safe-*.pt")
    state = torch.load(path, weights_only=True)
    state["history"]["device"] = _RunsCode()  # what a malicious copy could hold
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="only load checkpoints you trust"):
        fit(Autoencoder(digits.shape, latent_dim=2, hidden=(16,)), digits, epochs=1, checkpoint="safe",
            checkpoint_dir=tmp_path, progress=False)
    assert "ran code" not in capsys.readouterr().out
    assert fit(Autoencoder(digits.shape, latent_dim=2, hidden=(16,)), digits, epochs=1, checkpoint="safe",
               checkpoint_dir=tmp_path, progress=False, retrain=True).loaded is False


def test_beta_is_part_of_the_key(digits, tmp_path):
    fit(VAE(digits.shape, 2, (16,), beta=1.0), digits, epochs=1, checkpoint="v", checkpoint_dir=tmp_path,
        progress=False)
    h = fit(VAE(digits.shape, 2, (16,), beta=4.0), digits, epochs=1, checkpoint="v", checkpoint_dir=tmp_path,
            progress=False)
    assert not h.loaded


class Exploding(nn.Module):
    def __init__(self, at_step):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.at_step, self.calls = at_step, 0

    def loss(self, x, y=None):
        self.calls += 1
        bad = torch.tensor(float("nan")) if self.calls == self.at_step else torch.tensor(0.0)
        recon = (self.w * x.mean()) ** 2
        return {"loss": recon + bad, "recon": recon, "weird": bad}


def test_nan_stops_training_naming_epoch_step_and_term(digits):
    # 400 examples / batch 100 = 4 steps per epoch: step 6 is in epoch 2
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 6: term 'loss'"):
        fit(Exploding(6), digits, epochs=3, batch_size=100, progress=False)


def test_loss_contract_is_checked(digits):
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def loss(self, x, y=None):
            return (self.w * x).sum()

    with pytest.raises(TypeError, match="dict of named scalar tensors"):
        fit(Bad(), digits, epochs=1, progress=False)


def test_fit_accepts_plain_tensors():
    class Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = nn.Parameter(torch.zeros(2))

        def loss(self, x, y=None):
            d = ((x - self.m) ** 2).sum(1).mean()
            return {"loss": d}

    x = torch.randn(512, 2) + torch.tensor([3.0, -1.0])
    m = Mean()
    fit(m, x, epochs=30, lr=0.1, progress=False)
    assert torch.allclose(m.m.detach(), x.mean(0), atol=0.1)


def test_bench_reports_speed_up(capsys):
    from course_lib.tooling.bench import main

    assert main(["--epochs", "2", "--n", "1024"]) == 0
    out = capsys.readouterr().out
    assert "DataLoader loop" in out and "speed-up x" in out


def test_optimizer_settings_and_callbacks_are_part_of_the_key(digits, tmp_path):
    def make():
        torch.manual_seed(0)
        return Autoencoder(digits.shape, latent_dim=2, hidden=(16,))

    def run(model, **kw):
        return fit(model, digits, epochs=1, checkpoint="k", checkpoint_dir=tmp_path, progress=False, **kw)

    m = make()
    run(m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1))
    m = make()
    assert not run(m, optimizer=torch.optim.SGD(m.parameters(), lr=0.01)).loaded
    m = make()
    assert run(m, optimizer=torch.optim.SGD(m.parameters(), lr=0.01)).loaded

    def grouped(m, lr_decoder):  # a parameter group with its own learning rate is part of the key too
        return torch.optim.SGD([{"params": m.encoder.parameters()},
                                {"params": m.decoder.parameters(), "lr": lr_decoder}], lr=0.01)

    m = make()
    assert not run(m, optimizer=grouped(m, 0.1)).loaded
    m = make()
    assert not run(m, optimizer=grouped(m, 0.5)).loaded
    m = make()
    assert run(m, optimizer=grouped(m, 0.5)).loaded

    def schedule(limit):
        def cb(model, epoch, history):
            return limit
        return cb

    assert not run(make(), callbacks=[schedule(5)]).loaded
    assert not run(make(), callbacks=[schedule(10)]).loaded
    assert run(make(), callbacks=[schedule(10)]).loaded
