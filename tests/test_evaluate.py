"""Tests of course_lib.evaluate (ELBO, IWAE, FID, IS), the linear-Gaussian model and the classifier.

Likelihood estimators are checked against the exact log p(x) of a linear-Gaussian model;
the Fréchet distance against closed forms and scipy; the Inception Score on its two extremes.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal

from course_lib import evaluate as ev
from course_lib.data import binarize_static, from_tensors, load_dataset
from course_lib.models import VAE
from course_lib.models.linear_gaussian import LinearGaussian

D, d = 5, 2


def correlated_model(posterior="mean_field", q_scale=1.0, q_shift=0.0, cos=0.6):
    """W's two columns at an angle of arccos(0.6): the posterior is correlated (rho ~ -0.6), so a
    diagonal (mean-field) q leaves a gap of about 0.2 nats at k = 1."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(D, generator=g, dtype=torch.float64)
    v = torch.randn(D, generator=g, dtype=torch.float64)
    v = v - (v @ u) / (u @ u) * u
    v = v / v.norm() * u.norm()
    W = torch.stack([u, cos * u + math.sqrt(1 - cos ** 2) * v], 1)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    return LinearGaussian(W, b, 0.5, posterior=posterior, q_scale=q_scale, q_shift=q_shift)


# ---------------------------------------------------------------------------------------------
# iwae_bound
# ---------------------------------------------------------------------------------------------
def test_iwae_bound_is_log_mean_exp_and_stable():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(7, 3, generator=g, dtype=torch.float64) for _ in range(3))
    expected = torch.log(torch.exp(a + b - c).mean(0))
    assert torch.allclose(ev.iwae_bound(a, b, c), expected, atol=1e-12)
    # k = 1: the single log-weight (the ELBO's one-sample estimate)
    assert torch.allclose(ev.iwae_bound(a[:1], b[:1], c[:1]), (a + b - c)[0])
    # weights far below exp(-745) (float64 underflow): naive log(mean(exp)) is -inf, logsumexp is not
    lw = a - 2000.0
    out = ev.iwae_bound(lw, torch.zeros_like(lw), torch.zeros_like(lw))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, expected_lme(lw), atol=1e-9)
    # the bound lies between the mean and the max of the log-weights (Jensen, and log mean <= max)
    w = a + b - c
    out = ev.iwae_bound(a, b, c)
    assert (out >= w.mean(0) - 1e-12).all() and (out <= w.max(0).values + 1e-12).all()


def expected_lme(lw):
    m = lw.max(0).values
    return m + torch.log(torch.exp(lw - m).mean(0))


# ---------------------------------------------------------------------------------------------
# The linear-Gaussian model itself
# ---------------------------------------------------------------------------------------------
def test_linear_gaussian_exact_posterior_and_marginal():
    m = correlated_model(posterior="exact")
    x = m.sample(50, torch.Generator().manual_seed(1))
    z = torch.randn(50, d, dtype=torch.float64)
    # Bayes: log p(x|z) + log p(z) - log p(z|x) = log p(x), whatever z
    lhs = m.decode(z).log_prob(x) + m.prior.log_prob(z) - m.exact_posterior(x).log_prob(z)
    assert torch.allclose(lhs, m.log_marginal(x), atol=1e-10)
    # ancestral samples have the marginal's moments: mean b, covariance W W^T + sigma^2 I
    xs = m.sample(200_000, torch.Generator().manual_seed(2))
    cov = m.marginal().covariance_matrix
    assert torch.allclose(xs.mean(0), m.b, atol=5 * float(cov.diagonal().max().sqrt()) / math.sqrt(len(xs)))
    assert torch.allclose(torch.cov(xs.T), cov, atol=0.05)
    # the mean-field q has the posterior's mean and the precision's diagonal as its precision
    q = correlated_model().encode(x)
    assert torch.allclose(q.mean, m.exact_posterior(x).mean)
    assert torch.allclose(q.variance[0], 1 / m._precision().diagonal())


# ---------------------------------------------------------------------------------------------
# iwae_nll and elbo against the exact log-likelihood
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 100])
def test_iwae_is_exact_with_the_true_posterior(k):
    m = correlated_model(posterior="exact")
    x = m.sample(64, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    per = ev.iwae_nll(m, x, k=k, batch_size=20, chunk_size=7, reduction="none")
    assert per.shape == (64,)
    # every importance weight equals p(x): zero variance, exact for any k
    assert torch.allclose(per, -m.log_marginal(x), atol=1e-10)
    lw = ev.log_weights(m, x, k=k, chunk_size=7)
    assert lw.shape == (k, 64) and float(lw.std(0).max() if k > 1 else 0.0) < 1e-10


def test_elbo_and_iwae_bounds_with_an_approximate_posterior():
    torch.manual_seed(0)
    m = correlated_model()           # mean-field q: the VAE's family
    n = 400
    x = m.sample(n, torch.Generator().manual_seed(1))
    log_px = m.log_marginal(x)
    exact_elbo = m.exact_elbo(x)
    gap = float((log_px - exact_elbo).mean())
    assert (exact_elbo <= log_px + 1e-12).all(), "the ELBO is a lower bound, point by point"
    assert gap > 0.15, "this q should leave a clear gap (else the tests below could not fail)"

    # the Monte Carlo ELBO estimates the closed-form ELBO without bias
    el, sem = ev.elbo(m, x, k=50, return_std=True)
    per = ev.elbo(m, x, k=50, reduction="none") - exact_elbo
    assert abs(float(per.mean())) < 4 * float(per.std()) / math.sqrt(n)
    assert el < float(log_px.mean())

    # L_k for k = 1, 10, 100, 1000 on the same data, per example
    ks = [1, 10, 100, 1000]
    bounds = [-ev.iwae_nll(m, x, k=k, reduction="none") for k in ks]
    # k = 1 is the ELBO
    diff1 = bounds[0] - exact_elbo
    assert abs(float(diff1.mean())) < 4 * float(diff1.std()) / math.sqrt(n)
    # monotone in expectation: each step up is positive on average, beyond noise
    for lo, hi, k in zip(bounds, bounds[1:], ks[1:]):
        step = hi - lo
        assert float(step.mean()) > 2 * float(step.std()) / math.sqrt(n), f"L_{k} should exceed the previous bound"
    # and never above log p(x) beyond noise
    for b, k in zip(bounds, ks):
        excess = b - log_px
        assert float(excess.mean()) < 3 * float(excess.std()) / math.sqrt(n), f"L_{k} above log p(x)"

    # convergence at k = 1000. Tolerance: the bias of L_k is about Var(w / p(x)) / (2k) for large k
    # (delta method; Maddison et al. 2017, Nowozin 2018), plus 4 standard errors of the mean over
    # the n examples. Var(w / p(x)) is measured from the weights (p(x) is known here).
    k = 1000
    lw = ev.log_weights(m, x, k=k)
    rel_var = float(torch.exp(lw - log_px).var(0).mean())
    remaining = log_px - bounds[-1]
    tol = rel_var / (2 * k) + 4 * float(remaining.std()) / math.sqrt(n)
    assert tol < gap / 10, "the tolerance must be much smaller than the k=1 gap for the check to mean something"
    assert abs(float(remaining.mean())) < tol, f"L_1000 should be within {tol:.4f} nats of log p(x)"


def test_iwae_passes_labels_to_conditional_models():
    """A conditional linear-Gaussian model: x = W z + b + shift[y] + noise. The exact posterior
    of the right class makes the estimate exact: labels must stay aligned with examples after
    the k x batch flattening."""
    base = correlated_model(posterior="exact")
    shifts = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 3

    class Conditional(torch.nn.Module):
        prior = property(lambda self: base.prior)

        def encode(self, x, y):
            return base.encode(x - shifts[y])

        def decode(self, z, y):
            if y is None or len(y) != len(z):
                raise AssertionError("decode needs one label per code")
            p = base.decode(z)
            return Independent(Normal(p.mean + shifts[y], p.stddev), 1)

    y = torch.arange(30) % 3
    x = base.sample(30, torch.Generator().manual_seed(1)) + shifts[y]
    exact = -base.log_marginal(x - shifts[y])
    per = ev.iwae_nll(Conditional(), (x, y), k=10, batch_size=8, chunk_size=4, reduction="none")
    assert torch.allclose(per, exact, atol=1e-10)


def test_iwae_on_a_vae_over_image_data():
    torch.manual_seed(0)
    data = load_dataset("digits", "test", device="cpu").take(60).map(binarize_static)
    model = VAE(data.shape, latent_dim=4, hidden=(32,))
    model.train()
    nll, sem = ev.iwae_nll(model, data, k=200, batch_size=25, return_std=True)
    neg_elbo, _ = ev.elbo(model, data, k=200, return_std=True)
    per_iwae = ev.iwae_nll(model, data, k=200, reduction="none")
    per_elbo = -ev.elbo(model, data, k=200, reduction="none")
    assert model.training, "the evaluation must restore the model's mode"
    assert math.isfinite(nll) and sem > 0
    assert float((per_iwae <= per_elbo + 1e-9).float().mean()) > 0.95, "IWAE NLL <= -ELBO for each image"
    assert nll < -neg_elbo
    # a transform is applied to every batch (here: binarized again, identical)
    assert abs(ev.iwae_nll(model, data, k=1, transform=lambda x: (x > 0.5).float()) - ev.iwae_nll(model, data, k=1)) < 5
    with pytest.raises(ValueError, match="k must be"):
        ev.iwae_nll(model, data, k=0)


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------
def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    a, b = rng.uniform(0.5, 2, size=4), rng.uniform(0.5, 2, size=4)
    # commuting (diagonal) covariances: ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert abs(ev.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) - expected) < 1e-10
    # general covariances: against scipy's sqrtm
    from scipy.linalg import sqrtm

    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    S1, S2 = A @ A.T + 0.1 * np.eye(4), B @ B.T + 0.1 * np.eye(4)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(S1 + S2 - 2 * np.real(sqrtm(S1 @ S2)))
    assert abs(ev.frechet_distance(mu1, S1, mu2, S2) - ref) < 1e-8
    assert abs(ev.frechet_distance(mu1, S1, mu2, S2) - ev.frechet_distance(mu2, S2, mu1, S1)) < 1e-8
    assert ev.frechet_distance(mu1, S1, mu1, S1) < 1e-8
    # singular covariances (rank 1): still finite and non-negative
    s = np.outer(mu1, mu1)
    assert 0 <= ev.frechet_distance(mu1, s, mu1, s) < 1e-6


def test_fid_of_samples_converges_to_the_closed_form():
    g = torch.Generator().manual_seed(0)
    n, f = 20_000, 3
    L1 = torch.tensor([[1.0, 0, 0], [0.5, 1.0, 0], [0, 0.3, 0.7]], dtype=torch.float64)
    L2 = torch.tensor([[0.8, 0, 0], [0.0, 1.3, 0], [0.4, 0, 1.0]], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64)
    x1 = torch.randn(n, f, generator=g, dtype=torch.float64) @ L1.T
    x2 = torch.randn(n, f, generator=g, dtype=torch.float64) @ L2.T + mu2
    exact = ev.frechet_distance(torch.zeros(f), L1 @ L1.T, mu2, L2 @ L2.T)
    assert abs(ev.fid(x1, x2) - exact) < 0.05 * exact
    assert ev.fid(x1, x1) < 1e-8


def test_fid_grows_with_noise_on_digits():
    data = load_dataset("digits", "test", device="cpu")
    g = torch.Generator().manual_seed(0)
    half_a, half_b = data.images[:180], data.images[180:]
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731  (pixels as features: no classifier needed)
    noisy = [ev.fid(half_a, (half_b + s * torch.randn(half_b.shape, generator=g)).clamp(0, 1), features=flat)
             for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    assert ev.fid(data, data, features=flat) < 1e-8
    assert all(b > a for a, b in zip(noisy, noisy[1:])), f"FID should grow with the noise level: {noisy}"
    assert noisy[0] < 0.25 * noisy[-1], "two halves of the same data are much closer than noisy data"
    with pytest.raises(ValueError, match="features"):
        ev.fid(half_a, half_b)


# ---------------------------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------------------------
def test_inception_score_extremes():
    C = 10
    confident = torch.eye(C).repeat(20, 1)                    # one-hot, 20 of each class
    assert abs(ev.inception_score_from_probs(confident) - C) < 1e-6
    assert abs(ev.inception_score(confident, splits=4) - C) < 1e-6  # each split stays balanced
    assert abs(ev.inception_score_from_probs(torch.full((50, C), 1 / C)) - 1) < 1e-9
    constant = torch.softmax(torch.randn(C), 0).expand(50, C)  # the same prediction for every x
    assert abs(ev.inception_score_from_probs(constant) - 1) < 1e-9
    one_class = torch.eye(C)[torch.zeros(40, dtype=torch.long)]  # confident but all the same class
    assert abs(ev.inception_score_from_probs(one_class) - 1) < 1e-9
    mixed = torch.softmax(3 * torch.randn(200, C, generator=torch.Generator().manual_seed(0)), 1)
    s, sd = ev.inception_score_from_probs(mixed, splits=5, return_std=True)
    assert 1 < s < C and sd >= 0
    # exp of the mutual information between x and y: check against the direct formula
    py = mixed.double().mean(0)
    kl = (mixed.double() * (mixed.double().log() - py.log())).sum(1).mean()
    assert abs(ev.inception_score_from_probs(mixed) - float(kl.exp())) < 1e-9
    with pytest.raises(ValueError, match="softmax"):
        ev.inception_score_from_probs(torch.randn(5, C))


# ---------------------------------------------------------------------------------------------
# The course classifier (features for FID, probabilities for IS)
# ---------------------------------------------------------------------------------------------
def test_classifier_features_probs_and_scores(tmp_path, monkeypatch):
    from course_lib.classifier import get_classifier

    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    train = load_dataset("digits", "train", device="cpu").take(600)
    test = load_dataset("digits", "test", device="cpu")
    clf = get_classifier(train, device="cpu", epochs=8)
    assert get_classifier(train, device="cpu", epochs=8) is clf, "cached"
    assert any(p.name.startswith("classifier-digits") for p in tmp_path.iterdir()), "a fit checkpoint"
    assert clf.accuracy(test) > 0.85
    with torch.no_grad():
        f, p = clf.features(test.images[:7]), clf.probs(test.images[:7])
    assert f.shape == (7, clf.feature_dim) and p.shape == (7, 10)
    assert torch.allclose(p.sum(1), torch.ones(7))
    # real test digits score high, uniform noise low; FID orders real < noisy < noise
    noise = from_tensors(torch.rand(180, *test.shape, generator=torch.Generator().manual_seed(0)))
    is_real, is_noise = ev.inception_score(test, clf), ev.inception_score(noise, clf)
    assert is_real > 4 and is_real > 1.5 * is_noise
    a, b = test.images[:180], test.images[180:]
    real = ev.fid(a, b, clf)
    noisy = ev.fid(a, (b + 0.4 * torch.randn(b.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1), clf)
    assert real < noisy < ev.fid(a, noise, clf)
    with pytest.raises(ValueError, match="shape"):
        clf.features(torch.rand(3, 1, 28, 28))


# ---------------------------------------------------------------------------------------------
# The classifier that ships with the package (quick mode's mnist5k): loaded, never trained
# ---------------------------------------------------------------------------------------------
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_shipped_mnist5k_classifier_loads_without_training(tmp_path, monkeypatch):
    import time

    from course_lib import classifier as clf_mod
    from course_lib import train as train_mod

    path = clf_mod.shipped_weights_path("mnist5k")
    assert path is not None and path.exists(), "course_lib/weights/classifier-mnist5k.pt ships with the package"
    assert path.stat().st_size < 400_000, "a few hundred KB at most"
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))

    def no_training(*args, **kwargs):
        raise AssertionError("get_classifier('mnist5k') must load the shipped weights, not train")

    monkeypatch.setattr(train_mod, "fit", no_training)
    monkeypatch.setattr(clf_mod, "_CACHE", {})
    t0 = time.perf_counter()
    clf = clf_mod.get_classifier("mnist5k", device="cpu")
    assert time.perf_counter() - t0 < 1.0, "loads in well under a second"
    assert clf_mod.get_classifier("mnist5k", device="cpu") is clf, "cached"
    train5k = load_dataset("mnist5k", "train", device="cpu")
    assert clf_mod.get_classifier(train5k, device="cpu") is clf, "the mnist5k train split as ImageData: shipped too"
    assert not any(tmp_path.iterdir()), "no checkpoint written: nothing was trained"
    assert not clf.training and not any(p.requires_grad for p in clf.parameters())
    meta = clf.meta
    assert meta["dataset"] == "mnist5k" and meta["split"] == "train" and meta["n_train"] == 4000
    # the file holds only tensors and plain values: it loads with weights_only=True
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == {"model", "meta"}
    for k, v in clf.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    # >= 97 % on the 1,000 mnist5k test digits (never seen in training)
    test = load_dataset("mnist5k", "test", device="cpu")
    acc = clf.accuracy(test)
    assert acc >= 0.97, f"shipped classifier: {acc:.3f} on the mnist5k test split"
    assert abs(acc - meta["test_accuracy"]) < 1e-9, "the file's recorded accuracy is the measured one"
    # the training split is disjoint from the test split (trained on TRAIN only)
    train = load_dataset("mnist5k", "train", device="cpu")
    flat_train = {bytes(row) for row in (train.flat() * 255).round().to(torch.uint8).numpy()}
    assert not any(bytes(row) in flat_train for row in (test.flat() * 255).round().to(torch.uint8).numpy())


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="the official MNIST test files are not here")
def test_shipped_mnist5k_classifier_on_official_mnist_test_set():
    from course_lib.classifier import get_classifier

    official = load_dataset("mnist", "test", root=SHARED_DATA, device="cpu", download=False)
    assert len(official) == 10_000
    acc = get_classifier("mnist5k", device="cpu").accuracy(official)
    assert acc >= 0.97, f"shipped classifier: {acc:.4f} on the official MNIST test set"


def test_random_shift_moves_whole_images():
    from course_lib.classifier import random_shift

    x = torch.zeros(50, 1, 28, 28)
    x[:, 0, 10:18, 10:18] = 1.0
    torch.manual_seed(0)
    y = random_shift(x, 2)
    assert y.shape == x.shape and torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3))), "a square in the middle stays whole"
    rows = y[:, 0].sum(2).argmax(1)
    assert set(rows.tolist()) == set(range(8, 13)), "shifts from -2 to +2 pixels"


# ---------------------------------------------------------------------------------------------
# Lesson 5, second edition: the gaps, the tempered prior, the FID's spread
# ---------------------------------------------------------------------------------------------
def test_elbo_of_any_gaussian_q_in_closed_form():
    m = correlated_model()
    x = m.sample(20, torch.Generator().manual_seed(1))
    assert torch.allclose(m.elbo_of(m.encode(x), x), m.exact_elbo(x))
    # the exact posterior closes the gap; any other q leaves a positive one (the KL to the posterior)
    exact = correlated_model(posterior="exact")
    assert torch.allclose(exact.elbo_of(exact.encode(x), x), m.log_marginal(x), atol=1e-10)
    shifted = correlated_model(q_shift=0.5, q_scale=1.5)
    assert (shifted.elbo_of(shifted.encode(x), x) < m.exact_elbo(x)).all(), "the mean-field optimum beats a shifted q"
    # Monte Carlo agrees with the closed form
    lw = ev.log_weights(shifted, x, k=20_000)
    assert torch.allclose(lw.mean(0), shifted.exact_elbo(x), atol=5 * float(lw.std(0).max()) / math.sqrt(20_000))
    with pytest.raises(ValueError, match="one Gaussian over z per example"):
        m.elbo_of(m.encode(x[:3]), x)


def test_log_weights_with_a_given_proposal():
    m = correlated_model()
    x = m.sample(10, torch.Generator().manual_seed(2))
    post = correlated_model(posterior="exact").exact_posterior(x)
    lw = ev.log_weights(m, x, k=50, q=post)                      # the true posterior as proposal: all equal p(x)
    assert torch.allclose(lw, m.log_marginal(x).expand(50, -1), atol=1e-9)
    with pytest.raises(ValueError, match="batch shape"):
        ev.log_weights(m, x, k=5, q=m.encode(x[:4]))


def test_refine_gaussian_finds_the_best_diagonal_gaussian():
    bad = correlated_model(q_shift=0.7, q_scale=2.0)            # a poor encoder
    best = correlated_model()                                    # the best diagonal q, in closed form
    x = bad.sample(8, torch.Generator().manual_seed(3))
    before = [p.clone() for p in bad.buffers()]
    torch.manual_seed(0)
    q = ev.refine_gaussian(bad, x, steps=600, lr=0.03, n_samples=32)
    assert all(torch.equal(a, b) for a, b in zip(before, bad.buffers())), "the model is not changed"
    assert q.batch_shape == (8,) and not q.mean.requires_grad
    e_bad, e_ref, e_best = bad.exact_elbo(x), bad.elbo_of(q, x), best.exact_elbo(x)
    assert (e_ref > e_best - 0.05).all(), "reaches the optimum's ELBO"
    assert (e_ref - e_bad > 0.9 * (e_best - e_bad)).all(), "closes the amortization gap"
    assert torch.allclose(q.mean, best.encode(x).mean, atol=0.1)
    assert torch.allclose(q.stddev, best.encode(x).stddev, rtol=0.2)


def test_inference_gaps_match_closed_forms():
    bad = correlated_model(q_shift=0.5, q_scale=1.5)
    best = correlated_model()
    x = bad.sample(10, torch.Generator().manual_seed(4))
    torch.manual_seed(1)
    gaps = ev.inference_gaps(bad, x, steps=500, lr=0.03, n_samples=32, k_elbo=4000, k_iwae=4000)
    log_px = bad.log_marginal(x)
    amort_true = best.exact_elbo(x) - bad.exact_elbo(x)
    approx_true = log_px - best.exact_elbo(x)                    # KL(q* || p(z|x)), about 0.2 nats
    tol = 5 * torch.sqrt(gaps["elbo_q_star_sem"] ** 2 + gaps["elbo_encoder_sem"] ** 2) + 0.05
    assert ((gaps["amortization"] - amort_true).abs() < tol).all()
    assert ((gaps["approximation"] - approx_true).abs() < 5 * gaps["elbo_q_star_sem"] + 0.05).all()
    err = gaps["log_px"] - log_px                               # IWAE with q*: a tight lower bound (up to noise)
    assert err.abs().max() < 0.1 and float(err.mean()) < 0.02 and float(err.mean()) > -0.05
    assert torch.allclose(gaps["approximation"] + gaps["amortization"], gaps["log_px"] - gaps["elbo_encoder"])


def test_tempered_prior_is_the_scaled_linear_gaussian():
    m = correlated_model(posterior="exact")
    x = m.sample(30, torch.Generator().manual_seed(5))
    for T in (0.5, 1.0, 2.0):
        hot = LinearGaussian(m.W * T, m.b, m.sigma)              # z ~ N(0, T^2 I) is W T u with u ~ N(0, I)
        exact = -hot.log_marginal(x)
        torch.manual_seed(0)
        est = ev.iwae_nll(ev.TemperedPrior(m, T), x, k=5000, reduction="none")
        assert torch.allclose(est, exact, atol=0.05 if T != 1.0 else 1e-9), T
        assert float((est - exact).mean()) > -0.01, "an upper bound on the NLL (up to noise)"
    with pytest.raises(ValueError, match="positive"):
        ev.TemperedPrior(m, 0.0)


def test_fid_spread_shrinks_with_n_and_is_biased_for_small_n():
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(2000, 4, generator=g, dtype=torch.float64)
    same = torch.randn(4000, 4, generator=g, dtype=torch.float64)        # same distribution as the reference
    shifted = torch.randn(4000, 4, generator=g, dtype=torch.float64) + 1.0
    out = ev.fid_spread(reference, {"same": same, "shifted": shifted}, [20, 100, 500], draws=40, seed=1)
    assert set(out) == {"same", "shifted"} and all(len(v) == 40 for v in out["same"].values())
    # same distribution: FID ~ bias only, falling roughly as 1/n
    means = [float(out["same"][n].mean()) for n in (20, 100, 500)]
    assert means[0] > 3 * means[1] > 3 * means[2] > 0
    # shifted by 1 in each of 4 coordinates: FID -> 4, with a spread that falls like 1/sqrt(n)
    sd = [float(out["shifted"][n].std()) for n in (20, 100, 500)]
    assert sd[0] > 1.5 * sd[1] > 1.5 * sd[2]
    assert abs(float(out["shifted"][500].mean()) - 4.0) < 0.5
    with pytest.raises(ValueError, match="fewer than"):
        ev.fid_spread(reference, {"same": same[:10]}, [20])


def test_features_of_matches_the_classifier():
    from course_lib.classifier import get_classifier

    clf = get_classifier("mnist5k", device="cpu")
    x = load_dataset("mnist5k", "test", device="cpu").images[:700]
    f = ev.features_of(x, clf, batch_size=300)
    with torch.no_grad():
        assert torch.allclose(f, clf.features(x), atol=1e-5) and f.shape == (700, 64)
    assert abs(ev.fid(f[:350], f[350:]) - ev.fid(x[:350], x[350:], features=clf)) < 1e-6


def test_eval_plots_draw_without_a_display():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.figures import evaluation as figs

    g = torch.Generator().manual_seed(0)
    gaps = {"approximation": torch.rand(5, generator=g), "amortization": torch.rand(5, generator=g)}
    fig, _ = figs.gaps_figure(gaps)
    imgs = {"a": torch.rand(6, 1, 8, 8), "b": torch.rand(6, 1, 8, 8)}
    fig2, _ = figs.image_sets_figure(imgs, {"a": (1.0, 2.0), "b": (10.0, 3.0)})
    spread = {"p": {10: torch.rand(5, dtype=torch.float64) + 1, 100: torch.rand(5, dtype=torch.float64) + 1}}
    fig3, _ = figs.fid_spread_figure(spread, fit_c=0.5)
    curve = [{"T": t, "FID": 10 - t, "IS": 1 + t} for t in (0.0, 1.0, 2.0)]
    fig4, axes = figs.temperature_figure(curve, {1.0: (5.0, 0.1), 2.0: (6.0, 0.1)})
    assert len(axes) == 3
    pr = [{**r, "precision": 0.9 - 0.1 * r["T"], "recall": 0.1 * r["T"], "FID_sd": 0.5} for r in curve]
    fig5, axes = figs.temperature_figure(pr, {1.0: (5.0, 0.1), 2.0: (6.0, 0.1)})
    assert len(axes) == 4 and axes[2].get_legend() is not None, "a precision/recall panel"
    fig6, axes = figs.kid_bias_figure(spread, {"p": spread["p"], "q": spread["p"]})
    assert len(axes) == 3, "the FID, then one KID panel per pool"
    fig8, axes = figs.kid_bias_figure(spread, {k: spread["p"] for k in "pqrs"})
    assert len(axes) == 5 and fig8.get_size_inches()[0] <= 14, "five panels: two rows of three at most (slides)"
    assert len({round(ax.get_position().y0, 3) for ax in axes}) == 2
    plt_close = [fig8]
    fig7, _ = figs.image_sets_figure(imgs, {"a": (1.0, 2.0), "b": (10.0, 3.0)}, errors={"a": (0.1, 0.1), "b": (1.0, 0.2)})
    assert figs.grey_fraction(torch.tensor([0.0, 0.5, 1.0, 0.95])) == 0.25
    import matplotlib.pyplot as plt

    for f in (fig, fig2, fig3, fig4, fig5, fig6, fig7, *plt_close):
        plt.close(f)


# ---------------------------------------------------------------------------------------------
# KID (Binkowski et al. 2018)
# ---------------------------------------------------------------------------------------------
def _kid_by_loops(r, g):
    """The unbiased MMD^2 with the cubic polynomial kernel, written pair by pair (O(n^2) Python loops)."""
    f = r.shape[1]
    k = lambda a, b: (float(a @ b) / f + 1.0) ** 3  # noqa: E731
    m, n = len(r), len(g)
    rr = sum(k(r[i], r[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    gg = sum(k(g[i], g[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    rg = sum(k(r[i], g[j]) for i in range(m) for j in range(n)) / (m * n)
    return rr + gg - 2 * rg


def test_kid_matches_the_direct_pairwise_sum():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(13, 4, generator=g, dtype=torch.float64)
    x = 0.5 + 1.3 * torch.randn(9, 4, generator=g, dtype=torch.float64)     # different sizes, different law
    assert ev.kid(r, x) == pytest.approx(_kid_by_loops(r, x), rel=1e-10, abs=1e-12)
    assert ev.kid(r, x) == pytest.approx(ev.kid(x, r), rel=1e-10), "symmetric in its two sets"
    assert ev.kid(r, x) > 0


def test_kid_with_features_callable():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(20, 1, 4, 4, generator=g), torch.rand(15, 1, 4, 4, generator=g) ** 2
    feats = lambda x: x.flatten(1)  # noqa: E731
    assert ev.kid(a, b, features=feats) == pytest.approx(_kid_by_loops(a.flatten(1).double(), b.flatten(1).double()),
                                                           rel=1e-6)


def test_kid_is_unbiased_where_fid_is_not():
    """Samples of one law: the KID's mean is the same at every n (0 with fresh sets on both sides); the FID's
    mean is positive and falls with n."""
    g = torch.Generator().manual_seed(2)
    pool, ref = torch.randn(4000, 3, generator=g, dtype=torch.float64), torch.randn(400, 3, generator=g, dtype=torch.float64)
    kids = ev.kid_spread(ref, {"p": pool}, [10, 200], draws=200, seed=0)["p"]
    fids = ev.fid_spread(ref, {"p": pool}, [10, 200], draws=200, seed=0)["p"]
    se = lambda v: float(v.std()) / math.sqrt(len(v))  # noqa: E731
    assert abs(kids[10].mean() - kids[200].mean()) < 4 * math.hypot(se(kids[10]), se(kids[200])), "KID: no bias in n"
    assert fids[10].mean() > 5 * fids[200].mean() > 0, "the FID is biased upwards at small n"
    fresh = torch.tensor([ev.kid(torch.randn(8, 3, generator=g, dtype=torch.float64),
                                 torch.randn(8, 3, generator=g, dtype=torch.float64)) for _ in range(400)])
    assert abs(fresh.mean()) < 4 * se(fresh), "fresh sets of one law: the KID averages to 0"


def test_kid_errors():
    with pytest.raises(ValueError, match="at least 2"):
        ev.kid(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="feature sizes"):
        ev.kid(torch.zeros(4, 3), torch.zeros(5, 2))


# ---------------------------------------------------------------------------------------------
# Precision and recall (Kynkäänniemi et al. 2019)
# ---------------------------------------------------------------------------------------------
def test_knn_radii_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert torch.allclose(ev.knn_radii(x, k=1), torch.tensor([1.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(ev.knn_radii(x, k=2), torch.tensor([3.0, 2.0, 3.0, 5.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="k must be"):
        ev.knn_radii(x, k=4)


def _two_clusters(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 2, generator=g, dtype=torch.float64)
    b = torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.tensor([100.0, 0.0], dtype=torch.float64)
    return a, b


def test_precision_recall_known_answers():
    a, b = _two_clusters()
    real = torch.cat([a, b])
    assert ev.precision_recall(real, real.clone()) == (1.0, 1.0), "the data itself: precision = recall = 1"
    # a model that covers one of the two modes exactly: every sample is realistic, half the data is missed
    assert ev.precision_recall(real, a.clone()) == (1.0, 0.5)
    # samples far from the data: none is realistic, none of the data is covered
    assert ev.precision_recall(real, real + 1000.0) == (0.0, 0.0)
    # half the samples on the data (all of it covered), half far away: precision 1/2, recall 1
    assert ev.precision_recall(real, torch.cat([real, real + 1000.0])) == (0.5, 1.0)


def test_precision_recall_truncation_trade_off():
    """A narrower generator (the truncation / low-temperature trick) trades recall for precision."""
    g = torch.Generator().manual_seed(3)
    real = torch.randn(600, 2, generator=g, dtype=torch.float64)
    narrow = 0.3 * torch.randn(600, 2, generator=g, dtype=torch.float64)
    wide = 3.0 * torch.randn(600, 2, generator=g, dtype=torch.float64)
    p_n, r_n = ev.precision_recall(real, narrow)
    p_w, r_w = ev.precision_recall(real, wide)
    assert p_n > 0.95 and r_n < 0.5, (p_n, r_n)
    assert p_w < 0.6 and r_w > 0.9, (p_w, r_w)
