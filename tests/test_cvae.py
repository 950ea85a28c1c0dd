"""Lesson 6: the conditional VAE.

- the loss terms of ``CVAE.loss`` against a computation by hand (one-hot, concatenation, reparameterization,
  Bernoulli reconstruction, closed-form KL);
- ``iwae_nll`` of a conditional model against the exact conditional likelihood of a conditional
  linear-Gaussian model;
- a trained CVAE's samples are recognised as the requested class by the course classifier;
- soft labels at the ends of the mixing slider equal the hard labels;
- the deterministic predictor's likelihood, and the blur it learns where a CVAE learns several completions.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from course_lib import evaluate as ev
from course_lib.figures.cvae import generated_class_accuracy, join_halves, mixing_row, split_halves
from course_lib.models import CVAE
from course_lib.models.cvae import DeterministicPredictor, condition_vector, soft_label
from course_lib.models.linear_gaussian import LinearGaussian
from course_lib.train import fit


def _small_cvae(seed=0, **kw):
    torch.manual_seed(seed)
    return CVAE((1, 4, 4), num_classes=3, latent_dim=2, hidden=(8,), **kw)


def _batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 4, 4, generator=g) < 0.5).float()
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


# --- the loss against a hand computation ----------------------------------------------------------
def test_loss_terms_match_a_hand_computation():
    model = _small_cvae()
    x, y = _batch()
    torch.manual_seed(5)
    terms = model.loss(x, y)
    # by hand, with the same noise: concatenate, encode, reparameterize, concatenate, decode
    torch.manual_seed(5)
    onehot = torch.zeros(len(y), 3)
    onehot[torch.arange(len(y)), y] = 1.0
    out = model.encoder(torch.cat([x.reshape(len(x), -1), onehot], 1))
    mu, logvar = out[:, :2], out[:, 2:]
    eps = torch.randn(len(x), 2)
    z = mu + torch.exp(logvar / 2) * eps
    p = torch.sigmoid(model.decoder(torch.cat([z, onehot], 1)))
    xf = x.reshape(len(x), -1)
    recon = -(xf * torch.log(p) + (1 - xf) * torch.log(1 - p)).sum(1).mean()
    kl = (0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar)).sum(1).mean()
    assert torch.allclose(terms["recon"], recon, atol=1e-4)
    assert torch.allclose(terms["kl"], kl, atol=1e-5)
    assert torch.allclose(terms["loss"], recon + kl, atol=1e-4)
    # the KL is the one of the distributions the API returns
    assert torch.allclose(kl_divergence(model.encode(x, y), model.prior).mean(), kl, atol=1e-5)


def test_gaussian_likelihood_loss_is_minus_log_prob():
    model = _small_cvae(likelihood="gaussian", gamma=0.5)
    x, y = _batch()
    torch.manual_seed(3)
    terms = model.loss(x, y)
    torch.manual_seed(3)
    q = model.encode(x, y)
    z = q.rsample()
    mean = model.decoder_logits(z, y)
    by_hand = (0.5 * ((x - mean) / 0.5) ** 2 + math.log(0.5) + 0.5 * math.log(2 * math.pi)).sum((1, 2, 3)).mean()
    assert torch.allclose(terms["recon"], by_hand, atol=1e-4)


def test_encode_decode_prior_api_and_the_role_of_y():
    model = _small_cvae()
    x, y = _batch()
    q = model.encode(x, y)
    assert q.event_shape == (2,) and q.batch_shape == (6,)
    z = q.rsample()
    px = model.decode(z, y)
    assert px.log_prob(x).shape == (6,)
    assert model.prior.event_shape == (2,) and torch.equal(model.prior.mean, torch.zeros(2))
    # integer labels and their one-hot float version give the same distributions
    onehot = F.one_hot(y, 3).float()
    assert torch.allclose(model.decode(z, onehot).base_dist.logits, px.base_dist.logits)
    assert torch.allclose(model.encode(x, onehot).mean, q.mean)
    # another label changes the decoder's output
    assert not torch.allclose(model.decode(z, (y + 1) % 3).base_dist.logits, px.base_dist.logits)


def test_sample_shapes_and_clear_errors():
    model = _small_cvae()
    g = torch.Generator().manual_seed(0)
    assert model.sample(5, 2, generator=g).shape == (5, 1, 4, 4)
    assert model.sample(3, torch.tensor([0, 1, 2])).shape == (3, 1, 4, 4)
    assert model.sample(4, soft_label(0, 1, 0.5, 3)).shape == (4, 1, 4, 4)
    # the same z with an int class and with a tensor of that class
    a = model.sample(4, 1, generator=torch.Generator().manual_seed(7))
    b = model.sample(4, torch.full((4,), 1), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a, b)
    x, y = _batch()
    with pytest.raises(ValueError, match="conditional"):
        model.loss(x)
    with pytest.raises(ValueError, match="0..2"):
        model.loss(x, torch.full((6,), 3))
    with pytest.raises(ValueError, match="3 numbers per example"):
        model.loss(x, torch.rand(6, 4))
    with pytest.raises(ValueError, match="one y per example"):
        model.loss(x, y[:4])
    with pytest.raises(ValueError, match="n = 5"):
        model.sample(5, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        model.loss(torch.rand(6, 1, 5, 5), y)


def test_real_valued_conditions_are_flattened():
    y_img = torch.rand(4, 1, 2, 3)
    v = condition_vector(y_img, 6)
    assert v.shape == (4, 6) and torch.equal(v, y_img.reshape(4, 6))
    upper, lower = split_halves(torch.rand(3, 1, 6, 5))
    assert upper.shape == lower.shape == (3, 1, 3, 5)
    x = torch.rand(3, 1, 6, 5)
    assert torch.equal(join_halves(*split_halves(x)), x)


# --- soft labels: the ends of the slider are the hard labels ----------------------------------------
def test_soft_labels_at_the_slider_ends_equal_the_hard_labels():
    model = _small_cvae()
    z = torch.randn(2)
    assert torch.equal(soft_label(0, 2, 0.0, 3), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(soft_label(0, 2, 1.0, 3), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(soft_label(0, 2, 0.25, 3), torch.tensor([0.75, 0.0, 0.25]))
    assert torch.equal(soft_label(1, 1, 0.3, 3), torch.tensor([0.0, 1.0, 0.0]))
    row = mixing_row(model.generate, z, 0, 2, torch.linspace(0, 1, 5), num_classes=3)
    hard = model.generate(z.expand(2, -1), torch.tensor([0, 2]))
    assert torch.allclose(row[0], hard[0], atol=1e-6) and torch.allclose(row[-1], hard[1], atol=1e-6)
    assert not torch.allclose(row[2], hard[0]) and not torch.allclose(row[2], hard[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        soft_label(0, 1, 1.5, 3)
    with pytest.raises(ValueError, match="not in"):
        soft_label(0, 3, 0.5, 3)


# --- iwae_nll of a conditional model vs an exact conditional likelihood ------------------------------
class ConditionalLinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z, y) = N(W z + V y + b, sigma^2 I): given y, the linear-Gaussian model of lesson 5
    shifted by V y, so log p(x|y) = log N(x - V y; b, W W^T + sigma^2 I) exactly, and so is the posterior."""

    def __init__(self, base: LinearGaussian, V: torch.Tensor):
        super().__init__()
        self.base = base
        self.register_buffer("V", V)

    def encode(self, x, y):
        return self.base.encode(x - y @ self.V.T)

    def decode(self, z, y):
        mean = z @ self.base.W.T + self.base.b + y @ self.V.T
        return Independent(Normal(mean, torch.full_like(mean, self.base.sigma)), 1)

    @property
    def prior(self):
        return self.base.prior

    def log_likelihood(self, x, y):
        return self.base.log_marginal(x - y @ self.V.T)


def _conditional_lg(posterior, **q):
    torch.manual_seed(0)
    base = LinearGaussian.random(data_dim=5, latent_dim=2, sigma=0.6, seed=3, posterior=posterior, **q)
    g = torch.Generator().manual_seed(4)
    V = torch.randn(5, 3, generator=g, dtype=torch.float64)
    model = ConditionalLinearGaussian(base, V)
    y = torch.randn(256, 3, generator=g, dtype=torch.float64)
    z = torch.randn(256, 2, generator=g, dtype=torch.float64)
    x = model.decode(z, y).sample()
    return model, x, y


@pytest.mark.parametrize("k", [1, 7, 50])
def test_iwae_nll_of_a_conditional_model_is_exact_with_the_true_posterior(k):
    model, x, y = _conditional_lg("exact")
    exact = -model.log_likelihood(x, y)
    torch.manual_seed(0)
    est = ev.iwae_nll(model, (x, y), k=k, reduction="none", batch_size=16)
    assert torch.allclose(est, exact, atol=1e-8)
    # y matters: shuffled conditions give another (worse on average) likelihood
    wrong = ev.iwae_nll(model, (x, y.flip(0)), k=k)
    assert wrong > float(exact.mean()) + 1.0


def test_iwae_nll_of_a_conditional_model_approaches_the_exact_value():
    model, x, y = _conditional_lg("mean_field", q_scale=1.5, q_shift=0.3)   # a deliberately poor q
    exact = float(-model.log_likelihood(x, y).mean())
    torch.manual_seed(0)
    neg_elbo = -ev.elbo(model, (x, y), k=100)
    nll = {k: ev.iwae_nll(model, (x, y), k=k) for k in (1, 10, 1000)}
    assert neg_elbo > exact + 0.3, "this q leaves a clear ELBO gap"
    assert nll[1] > nll[10] > nll[1000] > exact - 0.02, "-L_k decreases with k, from above"
    assert nll[1000] - exact < 0.1 * (neg_elbo - exact), "and reaches -log p(x|y)"


# --- a trained CVAE respects the condition ---------------------------------------------------------
def test_trained_cvae_samples_are_recognised_as_the_requested_class():
    from course_lib.classifier import get_classifier
    from course_lib.data import binarize_dynamic, load_dataset

    train = load_dataset("mnist5k", "train", device="cpu")
    classifier = get_classifier(train.name, device="cpu")   # trained separately, never sees the CVAE
    torch.manual_seed(0)
    model = CVAE(train.shape, num_classes=10, latent_dim=2, hidden=(256,))
    fit(model, train, epochs=8, batch_size=64, lr=3e-3, transform=binarize_dynamic, device="cpu", progress=False)
    acc = generated_class_accuracy(model.sample, classifier, 10, n_per_class=50, seed=0)
    assert acc.mean() >= 0.9, f"samples recognised as the requested digit only {acc.mean():.1%} of the time: {acc}"
    assert acc.min() >= 0.5
    # an untrained CVAE does not respect the condition: the test can fail
    torch.manual_seed(0)
    untrained = CVAE(train.shape, num_classes=10, latent_dim=2, hidden=(256,))
    assert generated_class_accuracy(untrained.sample, classifier, 10, n_per_class=20).mean() < 0.5


# --- the deterministic predictor ------------------------------------------------------------------
def test_deterministic_predictor_log_prob_is_the_bernoulli_likelihood():
    torch.manual_seed(0)
    det = DeterministicPredictor((1, 2, 3), cond_dim=4, hidden=(5,))
    x = (torch.rand(7, 1, 2, 3) < 0.5).float()
    y = torch.rand(7, 4)
    p = det.predict(y)
    by_hand = (x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3))
    assert torch.allclose(det.log_prob(x, y), by_hand, atol=1e-5)
    assert torch.allclose(det.loss(x, y)["loss"], -by_hand.mean(), atol=1e-5)


def test_two_completions_blur_for_the_deterministic_net_and_stay_sharp_for_the_cvae():
    """One condition, two equally likely completions (all pixels on / all off): the deterministic network
    learns 0.5 everywhere; the CVAE's samples are near-binary and of both kinds; its conditional NLL is lower."""
    g = torch.Generator().manual_seed(0)
    n = 512
    on = (torch.rand(n, generator=g) < 0.5).float()
    x = on[:, None, None, None].expand(n, 1, 2, 4).contiguous()
    y = torch.ones(n, 1)
    torch.manual_seed(0)
    det = DeterministicPredictor((1, 2, 4), cond_dim=1, hidden=(16,))
    fit(det, (x, y), epochs=60, batch_size=64, lr=1e-2, device="cpu", progress=False)
    assert torch.allclose(det.predict(y[:1]), torch.full((1, 1, 2, 4), float(on.mean())), atol=0.05)
    torch.manual_seed(0)
    cvae = CVAE((1, 2, 4), num_classes=1, latent_dim=1, hidden=(16,))
    fit(cvae, (x, y), epochs=60, batch_size=64, lr=1e-2, device="cpu", progress=False)
    s = cvae.sample(200, y[:1].expand(200, -1), generator=torch.Generator().manual_seed(1)).mean((1, 2, 3))
    assert ((s < 0.15) | (s > 0.85)).float().mean() > 0.8, "CVAE samples should be one completion or the other"
    assert 0.25 < (s > 0.5).float().mean() < 0.75, "both completions should be drawn"
    nll_det = -det.log_prob(x, y).mean().item()
    nll_cvae = ev.iwae_nll(cvae, (x, y), k=200)
    assert nll_det == pytest.approx(8 * math.log(2), abs=0.1)
    assert nll_cvae < nll_det - 2.0


def test_score_table_reports_mean_and_std_over_seeds():
    from course_lib.figures.cvae import score_table

    text = score_table({"A": [(1.0, 2.0), (3.0, 4.0)]}, columns=("x", "y"))
    assert "2.00 ± 1.41" in text and "3.00 ± 1.41" in text


# --- the learned class prior p(z | y) = N(m_y, I) -------------------------------------------------
def test_class_prior_kl_and_iwae_use_the_class_means():
    model = _small_cvae(class_prior=True)
    with torch.no_grad():
        model.prior_means.copy_(torch.tensor([[1.0, -2.0], [0.0, 0.5], [3.0, 0.0]]))
    x, y = _batch()
    torch.manual_seed(5)
    terms = model.loss(x, y)
    p_zy = model.conditional_prior(y)
    assert torch.equal(p_zy.mean, model.prior_means[y].detach()), "m_y is the row of class y"
    kl = kl_divergence(model.encode(x, y), p_zy).mean()
    assert torch.allclose(terms["kl"], kl, atol=1e-5), "the loss's KL is KL(q(z|x,y) || N(m_y, I))"
    # the KL to N(0, I) would be different: the class means are used
    assert not torch.allclose(kl_divergence(model.encode(x, y), model.prior).mean(), kl, atol=1e-2)
    # iwae with k = 1 averages to the ELBO with the class prior
    torch.manual_seed(0)
    lw = ev.log_weights(model, x, y, k=4000)
    q = model.encode(x, y)
    z = q.sample((4000,))
    direct = (model.decode(z.flatten(0, 1), y.repeat(4000)).log_prob(x.repeat(4000, 1, 1, 1)).view(4000, -1)
              + p_zy.log_prob(z) - q.log_prob(z)).mean(0).detach()
    assert torch.allclose(lw.mean(0).float(), direct, atol=0.15), "log-weights use log p(z | y)"
    # the prior means get gradients, and samples are drawn around m_y
    terms["loss"].backward()
    assert model.prior_means.grad is not None and model.prior_means.grad.abs().sum() > 0
    zero = _small_cvae(class_prior=False)
    assert zero.prior_means is None and torch.equal(zero.conditional_prior(y).mean, torch.zeros(len(y), 2))


def test_class_prior_sample_is_centred_on_the_class_mean():
    model = _small_cvae(class_prior=True)
    with torch.no_grad():
        model.prior_means.copy_(torch.tensor([[5.0, -5.0], [0.0, 0.0], [0.0, 0.0]]))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    shifted = model.sample(4, 0, generator=g1)
    z = torch.randn(4, 2, generator=g2) + torch.tensor([5.0, -5.0])
    assert torch.allclose(shifted, model.generate(z, torch.zeros(4, dtype=torch.long)), atol=1e-6)
