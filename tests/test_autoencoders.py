"""Lesson 1: reconstruction losses, (denoising, convolutional) autoencoders, and PCA."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.losses import reconstruction_error
from course_lib.models import Autoencoder, ConvAutoencoder
from course_lib.pca import PCA
from course_lib.train import fit


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is fastest, and spinning threads on a busy machine are very slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _manifold_data(n=600, dim=32, k=2, seed=0):
    """Images-like vectors in [0, 1]^dim on a k-dimensional curved manifold."""
    g = _gen(seed)
    z = torch.randn(n, k, generator=g)
    a = 2.0 * torch.randn(k, dim, generator=g)
    return torch.sigmoid(z @ a + 0.5 * torch.sin(3 * z[:, :1]))


# --------------------------------------------------------------------------- reconstruction_error

def test_reconstruction_error_matches_formulas_per_example():
    g = _gen(1)
    x = torch.rand(7, 1, 5, 6, generator=g, dtype=torch.float64)
    logits = 3 * torch.randn(7, 1, 5, 6, generator=g, dtype=torch.float64)
    x_hat = torch.sigmoid(logits)
    mse = reconstruction_error(x_hat, x, "mse")
    mae = reconstruction_error(x_hat, x, "mae")
    bce = reconstruction_error(logits, x, "bce")
    for t in (mse, mae, bce):
        assert t.shape == (7,), "one value per example"
    for i in range(7):
        assert torch.isclose(mse[i], sum((x[i] - x_hat[i]).reshape(-1) ** 2))
        assert torch.isclose(mae[i], sum((x[i] - x_hat[i]).reshape(-1).abs()))
        by_hand = -sum((x[i] * torch.log(x_hat[i]) + (1 - x[i]) * torch.log(1 - x_hat[i])).reshape(-1))
        assert torch.isclose(bce[i], by_hand, rtol=1e-9)
    # pixels in [0, 1]: |e| >= e^2
    assert (mae >= mse).all()


def test_bce_takes_logits_and_is_stable():
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    logits = torch.tensor([[200.0, -200.0, -200.0, 200.0]])
    bce = reconstruction_error(logits, x, "bce")
    assert torch.isfinite(bce).all()
    assert torch.allclose(bce, torch.tensor([400.0]), rtol=1e-6), "a confident wrong logit l costs |l|"
    # giving probabilities instead of logits gives a different (wrong) value
    p = torch.full((1, 4), 0.7)
    assert not torch.allclose(reconstruction_error(p, x, "bce"), reconstruction_error(torch.logit(p), x, "bce"))


def test_bce_minimum_is_at_x_hat_equal_x_and_equals_the_entropy():
    xs = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=torch.float64)
    grid = torch.linspace(-6, 6, 12001, dtype=torch.float64)
    for x in xs:
        values = F.binary_cross_entropy_with_logits(grid, x.expand_as(grid), reduction="none")
        best = torch.sigmoid(grid[values.argmin()])
        assert abs(best - x) < 2e-3
        entropy = -(x * torch.log(x) + (1 - x) * torch.log(1 - x))
        assert abs(values.min() - entropy) < 1e-6, "the floor of the BCE is the binary entropy H(x)"
        l = torch.logit(x).clone().requires_grad_(True)
        F.binary_cross_entropy_with_logits(l, x).backward()
        assert abs(l.grad) < 1e-12, "the gradient vanishes at x_hat = x"


def test_reconstruction_error_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_error(torch.zeros(2, 64), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        reconstruction_error(torch.zeros(2, 3), torch.zeros(2, 3), "huber")


# --------------------------------------------------------------------------- Autoencoder

def test_autoencoder_shapes_parameters_and_loss():
    torch.manual_seed(0)
    shape, d, hidden = (1, 8, 8), 3, (20, 10)
    ae = Autoencoder(shape, latent_dim=d, hidden=hidden, recon="mse")
    x = torch.rand(5, *shape, generator=_gen(2))
    z = ae.encode(x)
    assert z.shape == (5, d)
    assert ae.decode(z).shape == x.shape
    n = 64
    sizes = [n, *hidden, d]
    dense = lambda s: sum(a * b + b for a, b in zip(s[:-1], s[1:]))  # Linear(a, b): a b weights, b biases
    expected = dense(sizes) + dense(sizes[::-1])  # encoder, then the mirrored decoder
    assert _n_params(ae) == expected
    terms = ae.loss(x)
    assert set(terms) >= {"loss", "recon"} and terms["loss"].ndim == 0
    assert torch.allclose(terms["loss"], ((ae.decode(ae.encode(x)) - x) ** 2).flatten(1).sum(1).mean())


@pytest.mark.parametrize("recon", ["mse", "mae", "bce"])
def test_autoencoder_loss_is_the_chosen_reconstruction_error(recon):
    torch.manual_seed(0)
    ae = Autoencoder((1, 4, 4), latent_dim=2, hidden=(8,), recon=recon)
    x = torch.rand(6, 1, 4, 4, generator=_gen(3))
    out = ae.decode(ae.encode(x))
    assert torch.allclose(ae.loss(x)["loss"], reconstruction_error(out, x, recon).mean())
    images = ae.reconstruct(x)
    if recon == "bce":  # the decoder outputs logits; reconstruct and generate give probabilities
        assert torch.allclose(images, torch.sigmoid(out))
    assert (ae.generate(torch.randn(10, 2) * 5) >= 0).all() and (ae.generate(torch.randn(10, 2) * 5) <= 1).all()


def test_gradients_reach_the_encoder_through_the_decoder():
    torch.manual_seed(0)
    ae = Autoencoder((1, 8, 8), latent_dim=2, hidden=(16,))
    ae.loss(torch.rand(4, 1, 8, 8))["loss"].backward()
    for p in ae.encoder.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    # and the encoder is updated by a step of gradient descent on the reconstruction loss
    before = [p.detach().clone() for p in ae.encoder.parameters()]
    torch.optim.SGD(ae.parameters(), lr=0.1).step()
    assert any(not torch.equal(a, p) for a, p in zip(before, ae.encoder.parameters()))


def test_autoencoder_input_errors_are_explained():
    ae = Autoencoder((1, 8, 8), latent_dim=2)
    with pytest.raises(ValueError, match="built for examples of shape"):
        ae.loss(torch.rand(3, 1, 28, 28))
    with pytest.raises(TypeError, match="float pixels"):
        ae.loss(torch.zeros(3, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        Autoencoder((1, 8, 8), recon="l3")


# --------------------------------------------------------------------------- denoising

def test_corruption_statistics_monte_carlo():
    # unclipped (x = 1/2, sigma small): E ||x_tilde - x||^2 = n sigma^2
    torch.manual_seed(0)
    sigma, n = 0.05, 64
    ae = Autoencoder((1, 8, 8), latent_dim=2, noise=sigma)
    x = torch.full((20_000, 1, 8, 8), 0.5)
    xt = ae.corrupt(x)
    sq = ((xt - x) ** 2).flatten(1).sum(1)
    se = sq.std() / math.sqrt(len(sq))
    assert abs(sq.mean() - n * sigma**2) < 4 * se
    assert abs((xt - x).mean()) < 4 * sigma / math.sqrt(xt.numel())
    # clipped (x = 0, sigma = 1): E[clip(Z, 0, 1)] = phi(0) - phi(1) + P(Z > 1)
    ae1 = Autoencoder((1, 8, 8), latent_dim=2, noise=1.0)
    xt = ae1.corrupt(torch.zeros(5_000, 1, 8, 8))
    assert xt.min() >= 0 and xt.max() <= 1
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    expected = phi(0) - phi(1) + 0.5 * math.erfc(1 / math.sqrt(2))
    values = xt.reshape(-1)
    assert abs(values.mean() - expected) < 4 * values.std() / math.sqrt(len(values))


def test_denoising_autoencoder_corrupts_only_in_training_mode():
    torch.manual_seed(0)
    dae = Autoencoder((1, 4, 4), latent_dim=2, hidden=(8,), recon="mse", noise=0.3)
    x = torch.rand(8, 1, 4, 4, generator=_gen(4))
    dae.eval()
    clean = reconstruction_error(dae.decode(dae.encode(x)), x, "mse").mean()
    assert torch.allclose(dae.loss(x)["loss"], clean), "evaluation: reconstruct the input as is"
    dae.train()
    torch.manual_seed(5)
    noisy = dae.loss(x)["loss"]
    torch.manual_seed(5)
    x_tilde = dae.corrupt(x)
    # training: input x_tilde, target the clean x
    assert torch.allclose(noisy, reconstruction_error(dae.decode(dae.encode(x_tilde)), x, "mse").mean())
    assert not torch.allclose(noisy, clean)
    assert Autoencoder((1, 4, 4), noise=0.0).corrupt(x) is x


def test_denoising_autoencoder_beats_plain_one_on_noisy_inputs():
    data = _manifold_data(n=800, dim=16)
    x = data.reshape(len(data), 1, 4, 4)
    train, test = x[:600], x[600:]
    models = {}
    for name, noise in [("plain", 0.0), ("denoising", 0.3)]:
        torch.manual_seed(0)
        models[name] = Autoencoder((1, 4, 4), latent_dim=2, hidden=(32,), recon="mse", noise=noise)
        fit(models[name], train, epochs=60, batch_size=100, lr=1e-2, progress=False)
    noisy = (test + 0.3 * torch.randn(test.shape, generator=_gen(9))).clamp(0, 1)
    with torch.no_grad():
        err = {k: reconstruction_error(m.reconstruct(noisy), test, "mse").mean() for k, m in models.items()}
    err_input = reconstruction_error(noisy, test, "mse").mean()
    assert err["denoising"] < err["plain"] < err_input


# --------------------------------------------------------------------------- ConvAutoencoder

@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 12)])
def test_conv_autoencoder_shapes(shape):
    torch.manual_seed(0)
    cae = ConvAutoencoder(shape, latent_dim=5, channels=(4, 8))
    x = torch.rand(3, *shape)
    z = cae.encode(x)
    assert z.shape == (3, 5)
    assert cae.decode(z).shape == x.shape
    assert cae.loss(x)["loss"].ndim == 0


def test_conv_parameter_count_does_not_depend_on_image_size():
    small = ConvAutoencoder((1, 8, 8), latent_dim=4, channels=(6, 10))
    big = ConvAutoencoder((1, 32, 32), latent_dim=4, channels=(6, 10))
    convs = lambda m: [l for l in m.encoder if isinstance(l, torch.nn.Conv2d)]
    for layer in convs(small):
        c_out, c_in, k, _ = layer.weight.shape
        assert _n_params(layer) == c_out * (c_in * k * k + 1)
    assert [_n_params(l) for l in convs(small)] == [_n_params(l) for l in convs(big)]
    # only the dense bottleneck grows: Linear(10 * H/4 * W/4, d)
    assert _n_params(big.encoder[-1]) - _n_params(small.encoder[-1]) == 10 * (64 - 4) * 4
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder((1, 10, 10), latent_dim=2)


# --------------------------------------------------------------------------- PCA

def test_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA as SkPCA

    x = _manifold_data(n=300, dim=20, k=4, seed=3).double()
    ours = PCA(3).fit(x)
    ref = SkPCA(3).fit(x.numpy())
    assert torch.allclose(ours.reconstruct(x), torch.from_numpy(ref.inverse_transform(ref.transform(x.numpy()))),
                          atol=1e-10)
    # same directions up to sign, same variances (scikit-learn divides by N - 1)
    dots = (ours.components_ @ torch.from_numpy(ref.components_).T).diag().abs()
    assert torch.allclose(dots, torch.ones(3, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(ours.explained_variance_ * 300 / 299, torch.from_numpy(ref.explained_variance_))


def test_pca_error_is_the_discarded_variance_and_is_optimal():
    x = _manifold_data(n=400, dim=12, k=3, seed=4).double()
    full = PCA(12).fit(x)
    lam = full.explained_variance_
    assert torch.allclose(full.reconstruct(x), x, atol=1e-10), "all components: exact"
    assert torch.allclose(full.components_ @ full.components_.T, torch.eye(12, dtype=torch.float64), atol=1e-10)
    assert (lam[:-1] >= lam[1:]).all()
    for d in (1, 2, 5):
        pca = PCA(d).fit(x)
        err = ((pca.reconstruct(x) - x) ** 2).sum(1).mean()
        assert torch.isclose(err, lam[d:].sum(), rtol=1e-9), "Eckart-Young: error = sum of discarded eigenvalues"
        assert torch.isclose(pca.explained_variance_ratio().sum(), lam[:d].sum() / lam.sum())
        # any other d-dimensional orthogonal projection does worse
        q, _ = torch.linalg.qr(torch.randn(12, d, generator=_gen(d), dtype=torch.float64))
        m = x.mean(0)
        other = ((x - m) @ q @ q.T + m - x).pow(2).sum(1).mean()
        assert other > err


def test_linear_autoencoder_trained_by_gradient_descent_reaches_pca():
    """Baldi & Hornik (1989): a linear AE with the squared error is at best PCA, and gets there."""
    x = _manifold_data(n=300, dim=10, k=3, seed=5)
    d = 2
    pca_err = float(((PCA(d).fit(x).reconstruct(x) - x) ** 2).sum(1).mean())
    torch.manual_seed(0)
    enc, dec = torch.nn.Linear(10, d), torch.nn.Linear(d, 10)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-2)
    for _ in range(1500):
        loss = ((dec(enc(x)) - x) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = float(((dec(enc(x)) - x) ** 2).sum(1).mean())
    assert final >= pca_err * (1 - 1e-4), "no linear autoencoder beats PCA"
    assert final <= pca_err * 1.02, "gradient descent gets to the PCA error"


def test_nonlinear_autoencoder_beats_pca_on_a_curved_manifold():
    x = _manifold_data(n=800, dim=16, k=2, seed=6)
    pca_err = float(((PCA(2).fit(x).reconstruct(x) - x) ** 2).sum(1).mean())
    torch.manual_seed(0)
    ae = Autoencoder((16,), latent_dim=2, hidden=(64, 32), recon="mse")
    fit(ae, x, epochs=60, batch_size=100, lr=1e-2, progress=False)
    with torch.no_grad():
        ae_err = float(reconstruction_error(ae.reconstruct(x), x, "mse").mean())
    assert ae_err < 0.8 * pca_err


def test_pca_errors_and_shapes():
    x = torch.rand(10, 1, 2, 3)
    pca = PCA(2)
    with pytest.raises(RuntimeError, match="fit"):
        pca.transform(x)
    pca.fit(x)
    assert pca.transform(x).shape == (10, 2)
    assert pca.inverse_transform(pca.transform(x)).shape == x.shape
    with pytest.raises(ValueError, match="fitted on examples of 6"):
        pca.transform(torch.rand(4, 5))
    with pytest.raises(ValueError, match="exceeds"):
        PCA(7).fit(x)
    with pytest.raises(ValueError, match="at least 1"):
        PCA(0)


# --------------------------------------------------------------------------- lesson-1 figures

def test_box_grid_codes_cover_the_box_in_reading_order():
    from course_lib.figures.autoencoders import box_grid_codes

    z = box_grid_codes([-1.0, -2.0], [3.0, 4.0], n=5)
    assert z.shape == (25, 2)
    assert torch.allclose(z[0], torch.tensor([-1.0, 4.0])), "top-left: smallest z_1, largest z_2"
    assert torch.allclose(z[4], torch.tensor([3.0, 4.0])), "z_1 increases along a row"
    assert torch.allclose(z[-1], torch.tensor([3.0, -2.0])), "bottom-right: largest z_1, smallest z_2"
    assert (z[5:, 1] <= z[:-5, 1]).all(), "z_2 decreases from row to row"


def test_lesson1_figures_draw_with_readable_legends():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.figures import autoencoders as af

    g = _gen(7)
    x = torch.rand(4, 1, 6, 6, generator=g)
    codes, labels = torch.randn(50, 2, generator=g), torch.arange(50) % 10
    figs = [af.pixel_penalties(lambda l, t: F.binary_cross_entropy_with_logits(l, t, reduction="none")),
            af.penalty_maps(x, x.flip(0), {"sq": (x - x.flip(0)) ** 2}),
            af.model_bars({"a": (10, 1.0), "b": (100, 0.5)}, 2),
            af.code_histograms(torch.randn(100, 3, generator=g), shown=3),
            af.latent_box(codes, labels, codes[:10], torch.arange(10) % 2 == 0, codes.min(0).values,
                          codes.max(0).values, torch.rand(9, 1, 6, 6, generator=g)),
            af.confidence_bars({"a": 0.9, "b": 0.5}, "t"),
            af.generator_scores({"a": (0.9, 2.29), "b": (0.5, 2.0), "c": (0.7, 2.2)}, "t")]
    for fig in figs:
        for ax in fig.axes:
            leg = ax.get_legend()
            if leg is not None:
                assert min(t.get_fontsize() for t in leg.get_texts()) >= 12
        assert any(ax.get_title() for ax in fig.axes) or fig._suptitle is not None
        plt.close(fig)
