"""Tests of the Gaussian VAE (course_lib.models.VAE) and of the loss terms it uses (course_lib.losses).

Closed forms are compared with torch.distributions and with Monte Carlo estimates; the model's
distributions and loss terms with the loss functions computed by hand from the same noise.
"""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from course_lib.data import binarize_dynamic, binarize_static, load_dataset
from course_lib.losses import bernoulli_nll, gaussian_kl, gaussian_kl_general, gaussian_nll
from course_lib.models import VAE
from course_lib.train import evaluate_terms, fit

SHAPE = (1, 8, 8)



def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) < 0.4).float()


# --- the KL term ---------------------------------------------------------------------------

@pytest.mark.parametrize("batch,d", [(1, 1), (5, 3), (64, 20)])
def test_gaussian_kl_matches_torch_distributions(batch, d):
    g = torch.Generator().manual_seed(batch + d)
    mu = 2 * torch.randn(batch, d, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(batch, d, generator=g, dtype=torch.float64)
    got = gaussian_kl(mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    want = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert got.shape == (batch,)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    # the slides' form: 1/2 (tr Sigma + mu^T mu - d - log det Sigma)
    sigma2 = logvar.exp()
    slides = 0.5 * (sigma2.sum(-1) + (mu * mu).sum(-1) - d - torch.log(sigma2.prod(-1)))
    assert torch.allclose(got, slides, rtol=1e-8)


def test_gaussian_kl_zero_at_prior_and_positive_elsewhere():
    assert torch.equal(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g)
    assert (gaussian_kl(mu, logvar) > 0).all()
    # 1-D values: mu = 0, sigma^2 = e gives (e - 2) / 2; mu = 2, sigma = 1 gives 2
    assert gaussian_kl(torch.zeros(1, 1), torch.ones(1, 1)).item() == pytest.approx((math.e - 2) / 2, rel=1e-6)
    assert gaussian_kl(torch.tensor([[2.0]]), torch.zeros(1, 1)).item() == pytest.approx(2.0)


def test_gaussian_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(8, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(8, 5, generator=g, dtype=torch.float64)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.manual_seed(3)
    z = q.sample((20_000,))
    terms = q.log_prob(z) - p.log_prob(z)                          # log q(z) - log p(z), z ~ q
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    assert ((mc - gaussian_kl(mu, logvar)) / se).abs().max() < 5


def test_gaussian_kl_general_matches_torch_and_reduces_to_standard():
    g = torch.Generator().manual_seed(4)
    mq, lq, mp, lp = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(4))
    want = kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp))).sum(-1)
    assert torch.allclose(gaussian_kl_general(mq, lq, mp, lp), want, rtol=1e-10)
    zeros = torch.zeros_like(mq)
    assert torch.allclose(gaussian_kl_general(mq, lq, zeros, zeros), gaussian_kl(mq, lq), rtol=1e-12)


# --- the model's distributions -----------------------------------------------------------------

def test_encode_decode_prior_are_distributions_with_the_right_shapes():
    torch.manual_seed(0)
    vae = VAE(SHAPE, latent_dim=3, hidden=(16,))
    x = _batch(5)
    q = vae.encode(x)
    assert isinstance(q, torch.distributions.Distribution)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    mu, logvar = vae.encoder_params(x)
    assert torch.allclose(q.mean, mu) and torch.allclose(q.variance, logvar.exp(), rtol=1e-5)
    z = q.rsample()
    assert z.shape == (5, 3)
    assert q.log_prob(z).shape == (5,)

    px = vae.decode(z)
    assert isinstance(px, torch.distributions.Distribution)
    assert px.batch_shape == (5,) and px.event_shape == SHAPE
    logits = vae.decoder(z).view(5, *SHAPE)
    assert torch.allclose(px.log_prob(x), -bernoulli_nll(logits, x), rtol=1e-5, atol=1e-5)
    assert torch.allclose(px.mean, torch.sigmoid(logits))
    # log_prob sums over pixels: the same as a pixel-wise Bernoulli summed by hand
    by_hand = Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(px.log_prob(x), by_hand, rtol=1e-5, atol=1e-5)

    prior = vae.prior
    assert prior.event_shape == (3,) and prior.batch_shape == ()
    assert torch.equal(prior.mean, torch.zeros(3)) and torch.equal(prior.stddev, torch.ones(3))
    assert torch.allclose(prior.log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    assert torch.allclose(kl_divergence(q, prior), gaussian_kl(mu, logvar), rtol=1e-5, atol=1e-6)


def test_reparameterized_sample_has_the_posterior_moments_and_gradients():
    torch.manual_seed(1)
    vae = VAE(SHAPE, latent_dim=4, hidden=(16,))
    x = _batch(2)
    q = vae.encode(x)
    z = q.rsample((50_000,))                                  # (S, 2, 4)
    mu, std = q.mean.detach(), q.stddev.detach()
    assert ((z.mean(0) - mu) / (std / math.sqrt(len(z)))).abs().max() < 5
    assert torch.allclose(z.std(0), std, rtol=0.03)
    # the formula the VAE's loss uses, with the same noise, is the same sample
    mu_, logvar_ = vae.encoder_params(x)
    eps = torch.randn(2, 4, generator=torch.Generator().manual_seed(5))
    z_formula = mu_ + torch.exp(0.5 * logvar_) * eps
    assert torch.allclose(z_formula, q.mean + q.stddev * eps, atol=1e-6)
    # gradients reach the encoder through the sample
    grads = torch.autograd.grad(z_formula.pow(2).sum(), list(vae.encoder.parameters()))
    assert all(gr.abs().sum() > 0 for gr in grads)


# --- the loss ----------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [1.0, 0.5, 4.0])
def test_bernoulli_loss_terms_are_consistent(beta):
    torch.manual_seed(2)
    vae = VAE(SHAPE, latent_dim=3, hidden=(16,), beta=beta)
    x = _batch(8)
    torch.manual_seed(10)
    terms = vae.loss(x)
    torch.manual_seed(10)
    mu, logvar = vae.encoder_params(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = bernoulli_nll(vae.decoder(z).view_as(x), x).mean()
    kl = gaussian_kl(mu, logvar).mean()
    assert {"loss", "recon", "kl", "neg_elbo"} <= set(terms)
    assert all(t.dim() == 0 for t in terms.values())
    assert torch.allclose(terms["recon"], recon, rtol=1e-5)
    assert torch.allclose(terms["kl"], kl, rtol=1e-5)
    assert torch.allclose(terms["loss"], recon + beta * kl, rtol=1e-5)
    assert torch.allclose(terms["neg_elbo"], recon + kl, rtol=1e-5)
    assert terms["kl"] > 0


def test_untrained_bernoulli_recon_is_about_d_log_2():
    # a fresh decoder outputs small logits, so -log p(x|z) ~ D log 2 (64 pixels -> 44.4 nats)
    torch.manual_seed(3)
    vae = VAE(SHAPE, latent_dim=3, hidden=(16,))
    terms = vae.loss(_batch(256))
    assert terms["recon"].item() == pytest.approx(64 * math.log(2), rel=0.1)


def test_learned_gamma_gaussian_recon_equals_gaussian_nll():
    torch.manual_seed(4)
    vae = VAE(SHAPE, latent_dim=3, hidden=(16,), likelihood="gaussian", gamma="learned")
    with torch.no_grad():
        vae.log_gamma.fill_(math.log(0.3))
    x = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(11)
    terms = vae.loss(x)
    torch.manual_seed(11)
    mu, logvar = vae.encoder_params(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = vae.decoder(z).view_as(x)
    recon = gaussian_nll(x_hat, x, vae.log_gamma).mean()
    assert torch.allclose(terms["recon"], recon, rtol=1e-5)
    assert terms["gamma"].item() == pytest.approx(0.3, rel=1e-6)
    # gaussian_nll written out: ||x - x_hat||^2 / (2 gamma^2) + D log gamma + D/2 log 2 pi
    D = 64
    by_hand = (((x - x_hat) ** 2).sum((1, 2, 3)) / (2 * 0.09) + D * math.log(0.3) + D / 2 * math.log(2 * math.pi)).mean()
    assert torch.allclose(recon, by_hand, rtol=1e-5)
    # and it is the decoder distribution's log-likelihood, summed over pixels
    assert torch.allclose(-vae.decode(z).log_prob(x).mean(), recon, rtol=1e-5)
    # gamma is a parameter that receives a gradient
    (g,) = torch.autograd.grad(terms["loss"], [vae.log_gamma])
    assert g.abs() > 0


def test_fixed_gamma_is_not_a_parameter():
    vae = VAE(SHAPE, latent_dim=2, hidden=(8,), likelihood="gaussian", gamma=0.5)
    assert "log_gamma" not in dict(vae.named_parameters())
    assert vae.gamma.item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        VAE(SHAPE, likelihood="gaussian", gamma=-1.0)


# --- training -------------------------------------------------------------------------------------

def test_tiny_training_run_lowers_the_negative_elbo(one_thread, tmp_path):
    train = load_dataset("digits", "train", device="cpu", limit=400)
    test = load_dataset("digits", "test", device="cpu", limit=200).map(binarize_static)
    torch.manual_seed(0)
    vae = VAE(SHAPE, latent_dim=4, hidden=(64,))
    before = evaluate_terms(vae, test)
    hist = fit(vae, train, test, epochs=15, batch_size=64, lr=3e-3, transform=binarize_dynamic,
               device="cpu", progress=False, checkpoint=None)
    after = evaluate_terms(vae, test)
    assert hist.train["loss"][-1] < hist.train["loss"][0]
    assert after["neg_elbo"] < 0.8 * before["neg_elbo"]
    assert after["kl"] > 0.5, "a trained encoder carries information about x"
    # samples and reconstructions are images of probabilities
    with torch.no_grad():
        s = vae.sample(5, generator=torch.Generator().manual_seed(0))
        r = vae.reconstruct(test.images[:5])
    assert s.shape == r.shape == (5, *SHAPE)
    assert 0 <= s.min() and s.max() <= 1 and 0 <= r.min() and r.max() <= 1


# --- free bits, per-dimension KL (lesson 4) -------------------------------------------------------

def test_per_dim_kl_sums_to_the_mean_kl():
    from course_lib.models.vae import per_dim_kl
    g = torch.Generator().manual_seed(3)
    mu, lv = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    kj = per_dim_kl(mu, lv)
    assert kj.shape == (6,) and (kj >= 0).all()
    assert torch.allclose(kj.sum(), gaussian_kl(mu, lv).mean(), rtol=1e-5)
    one = kl_divergence(Normal(mu[:, 2], torch.exp(0.5 * lv[:, 2])), Normal(0.0, 1.0)).mean()
    assert torch.allclose(kj[2], one, rtol=1e-5)


def test_free_bits_loss_clamps_each_dimension_and_keeps_the_true_kl():
    from course_lib.models.vae import per_dim_kl
    lam = 0.4
    vae = VAE(SHAPE, latent_dim=5, hidden=(16,), free_bits=lam)
    x = _batch()
    torch.manual_seed(0)
    t = vae.loss(x)
    mu, lv = vae.encoder_params(x)
    kj = per_dim_kl(mu, lv)
    assert torch.allclose(t["loss"], t["recon"] + torch.clamp(kj, min=lam).sum(), rtol=1e-5)
    assert torch.allclose(t["kl"], kj.sum(), rtol=1e-5) and torch.allclose(t["neg_elbo"], t["recon"] + t["kl"])
    assert t["loss"] > t["neg_elbo"], "an untrained encoder is near the prior: every dimension is clamped up to lam"
    # a dimension below lam gets no gradient from the KL term
    vae.decoder.requires_grad_(False)
    mu = torch.zeros(8, 5, requires_grad=True)
    torch.clamp(per_dim_kl(mu * 0.01, torch.zeros(8, 5)), min=lam).sum().backward()
    assert torch.all(mu.grad == 0)
    with pytest.raises(ValueError, match="free_bits"):
        VAE(SHAPE, free_bits=-1.0)


def test_plain_vae_has_no_free_bits_attribute_so_checkpoint_keys_do_not_change():
    assert not hasattr(VAE(SHAPE, latent_dim=2, hidden=(8,)), "free_bits")


# --- the autoregressive decoder (lesson 4) --------------------------------------------------------

@pytest.mark.parametrize("ar_hidden", [0, 12])
def test_autoregressive_decoder_is_autoregressive_and_normalised(ar_hidden):
    from course_lib.models.vae import AutoregressiveVAE
    torch.manual_seed(0)
    shape = (1, 2, 3)
    m = AutoregressiveVAE(shape, latent_dim=2, hidden=(8,), ar_hidden=ar_hidden)
    torch.nn.init.normal_(m.ar_weight)
    z = torch.randn(1, 2)
    p = m.decode(z)
    # logit i depends on pixels k < i only (Jacobian strictly lower triangular, and not all zero below)
    x = torch.bernoulli(torch.full((1, *shape), 0.5)).requires_grad_(True)
    logits = p.logits(x)[0]
    J = torch.stack([torch.autograd.grad(logits[i], x, retain_graph=True)[0].flatten() for i in range(6)])
    assert torch.all(J.triu() == 0) and (J.tril(-1) != 0).sum() > 0
    # the 2^6 binary images have total probability 1
    grid = torch.tensor([[(b >> i) & 1 for i in range(6)] for b in range(64)], dtype=torch.float32).reshape(64, *shape)
    logp = m.decode(z.expand(64, 2)).log_prob(grid)
    assert torch.allclose(logp.exp().sum(), torch.tensor(1.0), atol=1e-5)
    # ancestral sampling draws binary images with the model's frequencies
    draws = m.decode(z.expand(4000, 2)).sample()
    assert draws.shape == (4000, *shape) and set(draws.unique().tolist()) <= {0.0, 1.0}
    code = (draws.reshape(4000, 6) * (2 ** torch.arange(6))).sum(1).long()
    freq = torch.bincount(code, minlength=64).float() / 4000
    assert (freq - logp.exp()).abs().max() < 0.05
    with pytest.raises(NotImplementedError):
        _ = p.mean
    torch.manual_seed(1)
    t = m.loss(grid[:10])
    torch.manual_seed(1)
    mu, lv = m.encoder_params(grid[:10])
    z10 = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
    assert torch.allclose(t["recon"], -m.decode(z10).log_prob(grid[:10]).mean(), rtol=1e-5)


# --- lesson 3's measurements and diagrams ------------------------------------------------------------

def test_total_variation_counts_neighbour_differences():
    from course_lib.figures.vae import total_variation
    img = torch.zeros(2, 1, 4, 4)
    img[0, 0, 1, 1] = 1.0                       # one isolated pixel: 4 neighbours differ
    img[1, 0, :, :2] = 1.0                      # a half-filled image: one vertical edge of length 4
    assert total_variation(img).tolist() == [4.0, 4.0]
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, 1, 8, 8, generator=g)
    draws = torch.bernoulli(p.expand(50, 200, 1, 8, 8).reshape(-1, 1, 8, 8), generator=g)
    assert total_variation(draws).mean() > total_variation(p).mean(), "samples are noisier than their means"


def test_diagrams_draw_the_nodes_the_lesson_names():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    from course_lib.figures import diagrams
    fig, ax = diagrams.vae_schematic()
    assert {"x", "encoder", "mu", "sigma", "z", "decoder", "px"} <= set(ax.course_nodes)
    assert ax.course_nodes["z"].get_facecolor()[:3] == to_rgb(diagrams.RANDOM)
    plt.close(fig)
    fig, ax = diagrams.reparameterization_graph()
    nodes = ax.course_nodes
    assert nodes["z_random"].get_facecolor()[:3] == to_rgb(diagrams.RANDOM), "before the trick z is random"
    assert nodes["z_det"].get_facecolor()[:3] == to_rgb(diagrams.DETERMINISTIC), "after it z is computed"
    assert nodes["eps"].get_facecolor()[:3] == to_rgb(diagrams.RANDOM), "the noise is the random input"
    plt.close(fig)


def test_isolated_pixels_counts_lonely_on_pixels():
    from course_lib.figures.vae import isolated_pixels
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 0, 0] = 1.0                       # isolated (corner)
    img[0, 0, 2, 2] = img[0, 0, 2, 3] = 1.0     # a pair: not isolated
    img[0, 0, 4, 0] = 1.0                       # isolated (diagonal neighbours do not count)
    img[0, 0, 3, 1] = 1.0
    assert isolated_pixels(img).tolist() == [3.0]


def test_rate_surgery_figure_stacks_the_three_terms():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.figures.vae import rate_surgery_figure
    parts = {"d = 16": dict(I=6.9, shape=14.6, moments=0.6, rate=22.1), "d = 2": dict(I=4.3, shape=0.3, moments=0.5, rate=5.2)}
    fig, ax = rate_surgery_figure(parts, 6.91)
    tops = {}
    for bar in ax.patches:   # three stacked bars per model, in the order of `parts`
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    assert tops[0] == pytest.approx(6.9 + 14.6 + 0.6) and tops[1] == pytest.approx(4.3 + 0.3 + 0.5)
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 12 and ax.get_title()
    plt.close(fig)
