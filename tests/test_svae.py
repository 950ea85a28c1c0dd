"""Tests of the S-VAE model (course_lib.models.svae.SVAE, lesson 9): its distributions, loss terms
in nats per example, gradients through the vMF sample, the IWAE bound, training, and its errors."""
import math

import pytest
import torch
from torch.distributions import kl_divergence

from course_lib.distributions import HypersphericalUniform, VonMisesFisher
from course_lib.distributions.von_mises_fisher import vmf_kl_uniform
from course_lib.evaluate import elbo, iwae_nll
from course_lib.models.svae import SVAE
from course_lib.train import fit

SHAPE = (1, 8, 8)


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) < 0.4).float()


def test_distributions_of_the_model():
    model = SVAE(SHAPE, latent_dim=3, hidden=(32,))
    x = _batch()
    q = model.encode(x)
    assert isinstance(q, VonMisesFisher) and q.batch_shape == (32,) and q.event_shape == (3,)
    assert torch.allclose(q.loc.norm(dim=-1), torch.ones(32), atol=1e-6)
    assert (q.scale > 1).all()                                   # softplus(h) + 1
    assert isinstance(model.prior, HypersphericalUniform) and model.prior.dim == 3
    z = q.rsample()
    assert model.decode(z).log_prob(x).shape == (32,)            # summed over pixels
    # the closed-form KL of the loss is the registered one
    assert torch.allclose(vmf_kl_uniform(3, q.scale), kl_divergence(q, model.prior))


def test_loss_terms_in_nats_per_example():
    torch.manual_seed(0)
    model = SVAE(SHAPE, latent_dim=4, hidden=(32,), beta=2.0)
    x = _batch()
    terms = model.loss(x)
    assert {"loss", "recon", "kl", "neg_elbo"} <= set(terms)
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    assert torch.allclose(terms["loss"], terms["recon"] + 2.0 * terms["kl"])
    assert torch.allclose(terms["neg_elbo"], terms["recon"] + terms["kl"])
    mu, kappa = model.encoder_params(x)
    assert torch.allclose(terms["kl"], vmf_kl_uniform(4, kappa).mean())
    # recon is -log p(x|z) averaged over the batch: with the same noise, recomputed by hand
    torch.manual_seed(1)
    recon = model.loss(x)["recon"]
    torch.manual_seed(1)
    z = VonMisesFisher(mu, kappa).rsample()
    assert torch.allclose(recon, -model.decode(z).log_prob(x).mean(), atol=1e-5)
    # the untrained model's recon is about 64 pixels * ln 2 (logits near 0)
    assert 20 < terms["recon"].item() < 100


def test_gradients_reach_mu_and_kappa_heads_through_the_sample():
    torch.manual_seed(0)
    model = SVAE(SHAPE, latent_dim=3, hidden=(16,))
    x = _batch()
    recon = model.loss(x)["recon"]                                # the reconstruction term alone
    g_last = torch.autograd.grad(recon, model.encoder[-1].weight)[0]
    assert g_last[:3].abs().sum() > 0, "no gradient to the mean direction through rsample"
    assert g_last[3].abs().sum() > 0, "no gradient to kappa through rsample (implicit reparameterization)"


def test_iwae_bound_and_training():
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = _batch(256, seed=3)
        model = SVAE(SHAPE, latent_dim=3, hidden=(32,))
        nll0 = iwae_nll(model, x, k=20)
        hist = fit(model, x, epochs=15, batch_size=64, lr=3e-3, progress=False)
        assert hist.train["loss"][-1] < hist.train["loss"][0]
        nll1, se = iwae_nll(model, x, k=50, return_std=True)
        assert nll1 < nll0
        neg_elbo = -elbo(model, x, k=1)
        assert nll1 <= neg_elbo + 3 * se                               # L_k >= L_1
        assert math.isfinite(nll1)
    finally:
        torch.set_num_threads(before)


def test_bad_arguments():
    with pytest.raises(ValueError, match="d >= 2"):
        SVAE(SHAPE, latent_dim=1)
    with pytest.raises(ValueError, match="implicit"):
        SVAE(SHAPE, gradient="score")
    with pytest.raises(ValueError, match="likelihood"):
        SVAE(SHAPE, likelihood="poisson")
    with pytest.raises(ValueError, match="shape"):
        SVAE(SHAPE).loss(torch.rand(4, 1, 28, 28))
