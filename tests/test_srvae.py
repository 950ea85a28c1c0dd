"""Tests of lesson 10: the two-stage super-resolution VAE of seed 003 (course_lib.models.srvae).

The loss is recomputed term by term by hand from the same noise (eq. 19); eq. 21, corrected, is
compared with the Gaussian log-density (and the seed's printed form is shown to differ); generation
and super-resolution return the shapes of both stages.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from course_lib.distributions import MixtureOfGaussians
from course_lib.models.srvae import SRVAE, downscale, neg_log_gaussian_from_mse


def _digits(n=6, seed=0, size=28, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g, dtype=dtype)


# --- y = d(x) ------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [2, 4])
def test_downscale_is_the_block_average(factor):
    x = _digits(3)
    y = downscale(x, factor)
    assert y.shape == (3, 1, 28 // factor, 28 // factor)
    blocks = x.reshape(3, 1, 28 // factor, factor, 28 // factor, factor).mean(dim=(3, 5))
    assert torch.allclose(y, blocks, atol=1e-6)
    assert torch.equal(downscale(x, factor), y), "y | x is deterministic"


def test_bad_factor_and_input_raise():
    with pytest.raises(ValueError, match="factor"):
        downscale(_digits(2), 3)
    with pytest.raises(ValueError, match="factor"):
        SRVAE((1, 28, 28), factor=3)
    with pytest.raises(ValueError, match="prior"):
        SRVAE(prior="gaussian")
    with pytest.raises(ValueError, match="kl_u"):
        SRVAE(prior="mixture", kl_u="exact")
    with pytest.raises(ValueError, match="shape"):
        SRVAE().loss(torch.rand(4, 1, 14, 14))
    with pytest.raises(TypeError, match="float"):
        SRVAE().loss(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))


# --- eq. 21, corrected ------------------------------------------------------------------------

@pytest.mark.parametrize("log_gamma", [-2.5, -0.7, 0.0, 0.4])
@pytest.mark.parametrize("k_side", [7, 28])
def test_eq21_corrected_is_the_gaussian_log_density(log_gamma, k_side):
    x = _digits(5, size=k_side, dtype=torch.float64)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = k_side * k_side
    mse = ((x - x_hat) ** 2).flatten(1).mean(1)                      # eq. 20 with the square
    got = neg_log_gaussian_from_mse(mse, log_gamma, k)
    ref = -Normal(x_hat, math.exp(log_gamma)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-9)
    # the seed's printed form, k/(2 gamma) MSE (and the MSE without the square), is not the log-density
    gamma = math.exp(log_gamma)
    seed_form = k * log_gamma + k / (2 * gamma) * mse + 0.5 * k * math.log(2 * math.pi)
    if abs(gamma - 1) > 0.1:
        assert ((seed_form - ref).abs() > 1e-3).all()
    no_square = (x - x_hat).flatten(1).mean(1)
    assert ((neg_log_gaussian_from_mse(no_square, log_gamma, k) - ref).abs() > 1e-3).all()


# --- the loss: every term of eq. 19, by hand --------------------------------------------------

def _by_hand(model, x, seed):
    """The negative ELBO's terms from the model's networks, with the model's noise order (u, then z)."""
    torch.manual_seed(seed)
    k_x, k_y = x[0].numel(), x[0].numel() // model.factor ** 2
    y = F.avg_pool2d(x, model.factor)
    mu_u, lv_u = model.enc_u(y.flatten(1)).chunk(2, -1)
    u = mu_u + torch.exp(lv_u / 2) * torch.randn_like(mu_u)
    mu_z, lv_z = model.enc_z(x.flatten(1)).chunk(2, -1)
    z = mu_z + torch.exp(lv_z / 2) * torch.randn_like(mu_z)
    mu_p, lv_p = model.prior_z_net(torch.cat([y.flatten(1), u], 1)).chunk(2, -1)
    y_hat = model.dec_y(u).view_as(y)
    x_hat = F.interpolate(y, size=(28, 28), mode="bilinear", align_corners=False) + model.dec_x(
        torch.cat([y.flatten(1), z], 1)).view_as(x)
    g1, g2 = model.log_gamma_x.exp(), model.log_gamma_y.exp()
    recon_x = ((x - x_hat) ** 2).flatten(1).sum(1) / (2 * g1 ** 2) + k_x * torch.log(g1) + k_x / 2 * math.log(2 * math.pi)
    recon_y = ((y - y_hat) ** 2).flatten(1).sum(1) / (2 * g2 ** 2) + k_y * torch.log(g2) + k_y / 2 * math.log(2 * math.pi)
    q_u = Independent(Normal(mu_u, torch.exp(lv_u / 2)), 1)
    if model.prior_kind == "normal":
        kl_u = 0.5 * (lv_u.exp() + mu_u ** 2 - 1 - lv_u).sum(1)
    else:
        w = torch.softmax(model.mix_logits, 0)
        scale = model.mix_log_scale.exp()
        if model.kl_u_kind == "bound":
            kl_u = sum(w[k] * kl_divergence(q_u, Independent(Normal(model.mix_loc[k], scale[k]), 1))
                       for k in range(model.n_components))
        elif model.kl_u_kind == "tight":
            kl_u = -torch.log(sum(w[k] * torch.exp(-kl_divergence(q_u, Independent(Normal(model.mix_loc[k], scale[k]), 1)))
                                  for k in range(model.n_components)))
        else:
            dens = sum(w[k] * Normal(model.mix_loc[k], scale[k]).log_prob(u).sum(1).exp()
                       for k in range(model.n_components))
            kl_u = q_u.log_prob(u) - dens.log()
    kl_z = 0.5 * (lv_p - lv_z + (lv_z.exp() + (mu_z - mu_p) ** 2) / lv_p.exp() - 1).sum(1)
    return {"recon_x": recon_x.mean(), "recon_y": recon_y.mean(), "kl_u": kl_u.mean(), "kl_z": kl_z.mean()}


@pytest.mark.parametrize("prior,kl_u", [("normal", "bound"), ("mixture", "bound"), ("mixture", "tight"), ("mixture", "mc")])
@pytest.mark.parametrize("factor", [2, 4])
def test_loss_is_the_sum_of_its_terms_computed_by_hand(prior, kl_u, factor):
    torch.manual_seed(0)
    model = SRVAE((1, 28, 28), factor=factor, u_dim=3, z_dim=4, hidden=16, prior=prior, n_components=4,
                  kl_u=kl_u, gamma_init=0.3)
    with torch.no_grad():                                   # not at initialisation values only
        model.log_gamma_y.fill_(-1.2)
        if prior == "mixture":
            model.mix_logits.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
            model.mix_log_scale.fill_(-0.4)
    x = _digits(6)
    torch.manual_seed(7)
    terms = model.loss(x)
    hand = _by_hand(model, x, seed=7)
    for name, value in hand.items():
        assert torch.allclose(terms[name], value, rtol=1e-4, atol=1e-3), f"{name}: {terms[name]} vs {value}"
    assert torch.allclose(terms["loss"], sum(hand.values()), rtol=1e-4, atol=1e-3)
    assert torch.allclose(terms["gamma_x"], torch.tensor(0.3)) and torch.allclose(terms["gamma_y"], torch.tensor(math.exp(-1.2)))
    assert all(v.dim() == 0 for v in terms.values()), "each term is a scalar (nats per example)"
    assert terms["kl_z"] >= 0 and (prior == "mixture" and kl_u == "mc" or terms["kl_u"] >= 0)


def test_decoders_are_the_gaussians_of_eq16():
    torch.manual_seed(0)
    model = SRVAE(factor=4, u_dim=3, z_dim=4, hidden=16, gamma_init=0.2)
    x = _digits(4)
    y = model.low_res(x)
    u, z = torch.randn(4, 3), torch.randn(4, 4)
    p_x, p_y = model.decode_x(y, z), model.decode_y(u)
    assert p_x.event_shape == (1, 28, 28) and p_y.event_shape == (1, 7, 7)
    ref = -Normal(model.x_hat(y, z), 0.2).log_prob(x).flatten(1).sum(1)
    mse = ((x - model.x_hat(y, z)) ** 2).flatten(1).mean(1)
    assert torch.allclose(-p_x.log_prob(x), ref, rtol=1e-5)
    assert torch.allclose(-p_x.log_prob(x), neg_log_gaussian_from_mse(mse, math.log(0.2), 784), rtol=1e-5)
    assert isinstance(SRVAE(prior="mixture", n_components=5).prior, MixtureOfGaussians)


def test_the_bound_makes_the_loss_larger_than_the_monte_carlo_estimate_on_average():
    torch.manual_seed(0)
    bound = SRVAE(factor=4, u_dim=2, z_dim=3, hidden=16, prior="mixture", n_components=6, kl_u="bound")
    mc = SRVAE(factor=4, u_dim=2, z_dim=3, hidden=16, prior="mixture", n_components=6, kl_u="mc")
    mc.load_state_dict(bound.state_dict())
    with torch.no_grad():
        bound.mix_loc.mul_(3.0)                             # well-separated components: a loose bound
        mc.mix_loc.copy_(bound.mix_loc)
        x = _digits(64).repeat(20, 1, 1, 1)
        torch.manual_seed(1)
        kb = bound.terms(x)["kl_u"]
        torch.manual_seed(1)
        km = mc.terms(x)["kl_u"]
    assert kb.mean() > km.mean() + 3 * km.std() / math.sqrt(len(km)), "sum_k w_k KL_k >= KL, on average over u"


# --- generation -------------------------------------------------------------------------------

@pytest.mark.parametrize("factor,low", [(2, 14), (4, 7)])
@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_generation_produces_both_stages(factor, low, prior):
    torch.manual_seed(0)
    model = SRVAE(factor=factor, u_dim=3, z_dim=4, hidden=16, prior=prior, n_components=4).eval()
    y, x = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert y.shape == (5, 1, low, low) and x.shape == (5, 1, 28, 28)
    y2, x2 = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, y2) and torch.equal(x, x2), "a seeded generator reproduces the samples"
    ys, xs = model.generate(torch.zeros(2, 3), sample_z=False)
    assert ys.shape == (2, 1, low, low) and xs.shape == (2, 1, 28, 28)
    sr = model.super_resolve(_digits(4, size=low), n=3)
    assert sr.shape == (3, 4, 1, 28, 28)
    assert not torch.allclose(sr[0], sr[1]), "several x for one y: the conditional is not deterministic"
    mean_sr = model.super_resolve(_digits(4, size=low), n=2, sample=False)
    assert torch.equal(mean_sr[0], mean_sr[1])
    with pytest.raises(ValueError, match="shape"):
        model.generate(torch.zeros(2, 5))


def test_training_lowers_the_loss_and_learns_gamma():
    from course_lib.data import load_dataset
    from course_lib.train import evaluate_terms, fit

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_dataset("mnist5k", "train", device="cpu").take(512)
        torch.manual_seed(0)
        model = SRVAE(factor=4, u_dim=4, z_dim=8, hidden=64, prior="mixture", n_components=4, gamma_init=0.5)
        torch.manual_seed(0)
        start = evaluate_terms(model, data)
        fit(model, data, epochs=4, batch_size=64, lr=3e-3, progress=False, device="cpu")
        torch.manual_seed(0)
        end = evaluate_terms(model, data)
    finally:
        torch.set_num_threads(before)
    assert end["loss"] < start["loss"] - 100
    assert end["gamma_x"] < 0.5 and end["gamma_y"] < 0.5, "gamma_1 and gamma_2 should shrink towards the RMSE"


def test_tight_bound_lies_between_the_monte_carlo_kl_and_the_convexity_bound_in_the_model():
    torch.manual_seed(0)
    tight = SRVAE(factor=4, u_dim=2, z_dim=3, hidden=16, prior="mixture", n_components=6, kl_u="tight")
    bound = SRVAE(factor=4, u_dim=2, z_dim=3, hidden=16, prior="mixture", n_components=6, kl_u="bound")
    mc = SRVAE(factor=4, u_dim=2, z_dim=3, hidden=16, prior="mixture", n_components=6, kl_u="mc")
    with torch.no_grad():
        tight.mix_loc.mul_(3.0)                             # well-separated components
    bound.load_state_dict(tight.state_dict())
    mc.load_state_dict(tight.state_dict())
    x = _digits(8)
    with torch.no_grad():
        kt, kb = tight.terms(x)["kl_u"], bound.terms(x)["kl_u"]
        km = torch.stack([mc.terms(x)["kl_u"] for _ in range(400)])
    se = km.std(0) / math.sqrt(len(km))
    assert (kt <= kb + 1e-5).all() and (kt >= km.mean(0) - 4 * se).all()
