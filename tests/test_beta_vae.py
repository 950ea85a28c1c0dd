"""Tests of lesson 4: the Gaussian decoder (seed 003, eq. 3-4), its optimal gamma, the
beta = 2 gamma^2 equivalence, the KL warm-up schedule, and a tiny beta sweep.

Each formula is checked against an independent computation (torch.distributions, a grid
search, autograd), so that a wrong constant, factor or sign makes a test fail.
"""
import math

import pytest
import torch

from course_lib import losses
from course_lib.data import load_dataset
from course_lib.models import VAE
from course_lib.schedules import KLWarmup, kl_warmup, warmup_beta
from course_lib.train import checkpoint_key, evaluate_terms, fit


def _pair(shape, seed=0, noise=0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    return x, x + noise * torch.randn(shape, generator=g)


# --- the Gaussian decoder's negative log-likelihood (eq. 3) ----------------------------------

@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (3, 3, 4, 4), (7, 10)])
@pytest.mark.parametrize("log_gamma", [-2.0, -0.3, 0.0, 0.8])
def test_gaussian_nll_is_the_normal_log_density(shape, log_gamma):
    x, x_hat = _pair(shape)
    lg = torch.tensor(log_gamma)
    ref = -torch.distributions.Normal(x_hat, lg.exp()).log_prob(x).reshape(len(x), -1).sum(1)
    got = losses.gaussian_nll(x_hat, x, lg)
    assert got.shape == (shape[0],)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-4)
    # the seed's form: ||x - x_hat||^2 / (2 gamma^2) + k log gamma + (k/2) log 2 pi
    k = x[0].numel()
    sse = ((x - x_hat) ** 2).reshape(len(x), -1).sum(1)
    seed = sse / (2 * math.exp(2 * log_gamma)) + k * log_gamma + 0.5 * k * math.log(2 * math.pi)
    assert torch.allclose(got, seed, rtol=1e-5, atol=1e-4)


def test_vae_gaussian_decoder_log_prob_matches_eq3():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), latent_dim=3, hidden=(16,), likelihood="gaussian", gamma=0.4)
    x = torch.rand(6, 1, 8, 8)
    z = torch.randn(6, 3)
    dist = model.decode(z)
    assert torch.allclose(-dist.log_prob(x), losses.gaussian_nll(dist.mean, x, math.log(0.4)), rtol=1e-5)


# --- the optimal gamma ------------------------------------------------------------------------

@pytest.mark.parametrize("noise", [0.05, 0.3, 2.0])
def test_optimal_gamma_minimises_gaussian_nll_on_a_grid(noise):
    x, x_hat = _pair((32, 1, 8, 8), seed=1, noise=noise)
    g_star = losses.optimal_gamma(x_hat, x)
    assert torch.allclose(g_star ** 2, ((x - x_hat) ** 2).mean()), "gamma*^2 is the MSE per pixel"
    grid = g_star * torch.logspace(-1, 1, 401)
    values = torch.stack([losses.gaussian_nll(x_hat, x, g.log()).mean() for g in grid])
    best = losses.gaussian_nll(x_hat, x, g_star.log()).mean()
    assert best <= values.min() + 1e-4
    assert grid[values.argmin()] == pytest.approx(g_star.item(), rel=0.02)
    # plugged back: (k/2) log(2 pi e gamma*^2)
    k = x[0].numel()
    assert best.item() == pytest.approx(0.5 * k * math.log(2 * math.pi * math.e * g_star.item() ** 2), rel=1e-5, abs=1e-4)


def test_optimal_gamma_is_where_gradient_descent_on_log_gamma_ends():
    x, x_hat = _pair((64, 1, 8, 8), seed=2, noise=0.15)
    lg = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([lg], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = losses.gaussian_nll(x_hat, x, lg).mean()
        loss.backward()
        return loss

    opt.step(closure)
    assert lg.exp().item() == pytest.approx(losses.optimal_gamma(x_hat, x).item(), rel=1e-4)


def test_optimal_gamma_is_a_stationary_point_by_autograd():
    x, x_hat = _pair((16, 20), seed=3)
    lg = losses.optimal_gamma(x_hat, x).log().detach().requires_grad_(True)
    loss = losses.gaussian_nll(x_hat, x, lg).mean()
    (grad,) = torch.autograd.grad(loss, lg)
    assert abs(grad.item()) < 1e-4 * x[0].numel()
    (hess,) = torch.autograd.grad(torch.autograd.grad(losses.gaussian_nll(x_hat, x, lg).mean(), lg, create_graph=True)[0], lg)
    assert hess.item() > 0, "a minimum, not a maximum"


# --- a fixed gamma is a beta in disguise: beta = 2 gamma^2 ------------------------------------

@pytest.mark.parametrize("gamma", [0.1, 0.5, 1.0])
def test_fixed_gamma_loss_is_a_scaled_mse_beta_vae(gamma):
    torch.manual_seed(0)
    model = VAE((1, 8, 8), latent_dim=4, hidden=(32,), likelihood="gaussian", gamma=gamma)
    x = torch.rand(20, 1, 8, 8)
    torch.manual_seed(1)
    loss = model.loss(x)["loss"]
    g1 = torch.autograd.grad(loss, list(model.parameters()))
    torch.manual_seed(1)
    mu, logvar = model.encoder_params(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = model.decoder(z).view_as(x)
    mse_beta = (((x - x_hat) ** 2).flatten(1).sum(1) + 2 * gamma ** 2 * losses.gaussian_kl(mu, logvar)).mean()
    g2 = torch.autograd.grad(mse_beta, list(model.parameters()))
    k = 64
    const = k * math.log(gamma) + 0.5 * k * math.log(2 * math.pi)
    assert loss.item() == pytest.approx(mse_beta.item() / (2 * gamma ** 2) + const, rel=1e-5)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b / (2 * gamma ** 2), rtol=1e-4, atol=1e-6)


def test_beta_weights_the_kl_term():
    torch.manual_seed(0)
    x = torch.rand(10, 1, 8, 8)
    for beta in (0.0, 0.5, 4.0):
        model = VAE((1, 8, 8), latent_dim=4, hidden=(32,), beta=beta)
        with torch.no_grad():
            t = model.loss(x)
        assert torch.allclose(t["loss"], t["recon"] + beta * t["kl"])
        assert torch.allclose(t["neg_elbo"], t["recon"] + t["kl"])


# --- the KL warm-up schedule ------------------------------------------------------------------

def test_warmup_beta_values():
    assert [warmup_beta(t, 4) for t in range(1, 8)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [warmup_beta(t, 2, beta_max=3.0) for t in (1, 2, 3, 10)] == [0.0, 1.5, 3.0, 3.0]
    assert [warmup_beta(t, 2, beta_max=1.0, start=0.5) for t in (1, 2, 3)] == [0.5, 0.75, 1.0]
    assert warmup_beta(1, 0, beta_max=2.0) == 2.0, "no warm-up: beta_max from the start"
    with pytest.raises(ValueError):
        warmup_beta(0, 3)
    with pytest.raises(ValueError):
        kl_warmup(-1)


def test_kl_warmup_callback_sets_the_next_epochs_beta():
    cb = kl_warmup(3, beta_max=2.0)
    assert isinstance(cb, KLWarmup) and cb.initial == 0.0

    class M:
        beta = 7.0

    m = M()
    cb.prepare(m)
    assert m.beta == 0.0 and m.kl_warmup == (3, 2.0, 0.0)
    seen = []
    for epoch in range(1, 7):
        seen.append(m.beta)
        cb(m, epoch, None)
    assert seen == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0, 2.0, 2.0])


def test_kl_warmup_inside_fit_and_in_the_checkpoint_key(tmp_path):
    data = load_dataset("digits", "train", device="cpu", limit=128)
    seen = []

    def record(model, epoch, history):      # runs after the warm-up callback: the beta of epoch + 1
        seen.append(model.beta)

    cb = kl_warmup(4, beta_max=1.0)
    model = cb.prepare(VAE(data.shape, latent_dim=2, hidden=(8,)))
    plain = VAE(data.shape, latent_dim=2, hidden=(8,))
    plain.beta = 0.0
    settings = dict(epochs=6)
    assert checkpoint_key(model, data, settings) != checkpoint_key(plain, data, settings), \
        "a warm-up run must not share a checkpoint with a plain beta = 0 run"
    other = kl_warmup(2).prepare(VAE(data.shape, latent_dim=2, hidden=(8,)))
    assert checkpoint_key(model, data, settings) != checkpoint_key(other, data, settings)
    fit(model, data, epochs=6, batch_size=64, callbacks=[cb, record], progress=False,
        checkpoint="warmup-test", checkpoint_dir=tmp_path)
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


# --- a tiny sweep: a large beta has a lower rate ---------------------------------------------

def test_tiny_sweep_large_beta_lowers_the_kl():
    train = load_dataset("digits", "train", device="cpu", limit=512)
    rates, distortions, active = {}, {}, {}
    for beta in (0.5, 8.0):
        torch.manual_seed(0)
        model = VAE(train.shape, latent_dim=4, hidden=(32,), beta=beta)
        fit(model, train, epochs=8, batch_size=128, lr=5e-3, progress=False)
        torch.manual_seed(1)
        terms = evaluate_terms(model, train)
        rates[beta], distortions[beta] = terms["kl"], terms["recon"]
        with torch.no_grad():
            active[beta] = int((model.encoder_params(train.images)[0].var(0) > 1e-2).sum())
    assert rates[8.0] < 0.5 * rates[0.5], rates
    assert distortions[8.0] > distortions[0.5], distortions
    assert active[8.0] <= active[0.5], active


# --- seed 003, eq. 20-21 with the errata fixed ------------------------------------------------------

@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
def test_gaussian_nll_in_terms_of_the_mse_per_pixel(gamma):
    """-log p(x|z) = k log gamma + k MSE / (2 gamma^2) + (k/2) log 2 pi, MSE = (1/k) sum_i (x_i - x_hat_i)^2."""
    x, x_hat = _pair((6, 1, 5, 5), seed=3)
    k = x[0].numel()
    mse = ((x - x_hat) ** 2).flatten(1).mean(1)
    nll = losses.gaussian_nll(x_hat, x, math.log(gamma))
    want = k * math.log(gamma) + k * mse / (2 * gamma**2) + 0.5 * k * math.log(2 * math.pi)
    assert torch.allclose(nll, want, rtol=1e-5)
    seed_form = k * math.log(gamma) + k * mse / (2 * gamma) + 0.5 * k * math.log(2 * math.pi)   # eq. 21 as printed
    assert not torch.allclose(nll, seed_form, rtol=1e-3), "the seed's k / (2 gamma) is a different loss"


def test_free_bits_changes_the_training_loss_not_the_reported_elbo():
    torch.manual_seed(0)
    x = (torch.rand(32, 1, 4, 4) < 0.5).float()
    plain = VAE((1, 4, 4), latent_dim=3, hidden=(8,))
    fb = VAE((1, 4, 4), latent_dim=3, hidden=(8,), free_bits=1.0)
    fb.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    a = plain.loss(x)
    torch.manual_seed(1)
    b = fb.loss(x)
    assert torch.allclose(a["neg_elbo"], b["neg_elbo"]) and torch.allclose(a["kl"], b["kl"])
    assert b["loss"] > a["loss"], "untrained units sit near the prior, below lambda = 1: each is charged lambda"
    assert a["kl"] < 1 and torch.allclose(b["loss"] - b["recon"], torch.tensor(3.0)), "3 dimensions, each charged lambda"


# --- the synthetic data set with known factors (lesson 4, section 9) ------------------------

from course_lib import synthetic  # noqa: E402


def test_squares_grid_is_complete_deterministic_and_drawn_where_the_factors_say():
    a, b = synthetic.squares(device="cpu"), synthetic.squares(device="cpu")
    assert torch.equal(a.data.images, b.data.images) and torch.equal(a.factors, b.factors)
    n_pos, n_side = len(a.values[0]), len(a.values[2])
    assert len(a) == n_pos * n_pos * n_side and a.data.shape == (1, 28, 28)
    # every combination of the three factors exactly once: independent, uniform factors
    codes = a.factors[:, 0] * n_pos * n_side + a.factors[:, 1] * n_side + a.factors[:, 2]
    assert torch.equal(codes.sort().values, torch.arange(len(a)))
    assert set(a.data.images.unique().tolist()) == {0.0, 1.0}
    for i in (0, 17, len(a) - 1):
        img = a.data.images[i, 0]
        rows, cols = img.nonzero(as_tuple=True)
        cx, cy, side = (a.values[k][a.factors[i, k]].item() for k in range(3))
        assert img.sum() == side * side
        assert (cols.float().mean() + 0.5).item() == pytest.approx(cx) and (rows.float().mean() + 0.5).item() == pytest.approx(cy)
    with pytest.raises(ValueError, match="leaves"):
        synthetic.squares(xs=(2, 14), sides=(8,))


def test_mutual_information_and_mig_on_codes_we_understand():
    fd = synthetic.squares(device="cpu")
    H = synthetic.factor_entropies(fd.factors)
    assert torch.allclose(H, torch.log(torch.tensor([9.0, 9.0, 4.0])))
    g = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(len(fd), 3, generator=g)
    aligned = fd.factors.float() + noise                                     # unit k = factor k
    mi = synthetic.mutual_information(torch.cat([aligned, torch.randn(len(fd), 2, generator=g)], 1), fd.factors)
    assert mi.shape == (5, 3) and (mi >= -1e-6).all()
    assert (mi.argmax(0) == torch.arange(3)).all() and (mi.diagonal() > 0.7 * torch.minimum(H, torch.tensor(math.log(10)))).all()
    assert (synthetic.mig(mi, H) > 0.6).all()
    # the factors themselves (ties: equal values share a bin): every factor's information in its own unit
    assert torch.allclose(synthetic.mig(synthetic.mutual_information(fd.factors.float(), fd.factors), H), torch.ones(3))
    # the same information, mixed: two units that each hold x + y know about both, the gap shrinks
    mixed = torch.stack([aligned[:, 0] + aligned[:, 1], aligned[:, 0] - aligned[:, 1], aligned[:, 2]], 1)
    mig_mixed = synthetic.mig(synthetic.mutual_information(mixed, fd.factors), H)
    assert (mig_mixed[:2] < 0.15).all() and mig_mixed[2] > 0.6
    # a code that ignores the factors: no unit knows anything
    assert synthetic.mutual_information(torch.randn(len(fd), 4, generator=g), fd.factors).max() < 0.25


def test_factor_figures_draw_one_panel_per_beta_and_mark_inactive_units():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.figures import vae as figs

    fd = synthetic.squares(device="cpu")
    fig, axes = figs.factor_images_figure(fd.data.images[:3], ["a", "b", "c"])
    assert len(axes) == 3
    plt.close(fig)
    mi = {1.0: torch.rand(5, 3), 4.0: torch.rand(5, 3)}
    fig, axes = figs.factor_unit_figure(mi, (1.0, 4.0), fd.names, {1.0: torch.rand(3), 4.0: torch.rand(3)}, {1.0: 5, 4.0: 3})
    assert axes.shape == (1, 2)
    labels = [t.get_text() for t in axes[0, 1].get_yticklabels()]
    assert labels[2] == "z3" and labels[3] == "z4 (off)"
    plt.close(fig)
