"""Tests of the autoregressive models of lesson 8 (course_lib.models.autoregressive).

- the autoregressive property of every model, by gradients: d logit_i / d x_j = 0 wherever x_j is x_i
  itself or comes later in the ordering (colour channels included: R before G before B within a pixel);
- every model is normalised: exp(log_prob) summed over all 2^9 binary 3x3 images (or every K-way
  configuration) is 1;
- samples of tiny models follow their own log_prob (chi-square test), and a wrong model fails the test;
- NADE's O(DH) recurrence equals the naive O(D^2 H) conditionals;
- MADE masks, PixelCNN masks (A/B, colours), the blind spot and its absence in the gated PixelCNN;
- AR(p) least squares and forecasts.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from course_lib.models.autoregressive import (
    FVSBN, MADE, NADE, CodePixelCNN, CodeTransformer, GatedPixelCNN, PixelCNN, all_binary_vectors, bernoulli_log_likelihood,
    categorical_log_likelihood, conv_mask, fit_ar, forecast_ar, made_masks, made_numbers, simulate_ar)
from course_lib.train import fit


def _randomize(model, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.double()


# --- the autoregressive property, by gradients ----------------------------------------------

def _flat_jacobian(model, d, seed=0):
    x = torch.rand(1, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.autograd.functional.jacobian(lambda v: model(v)[0], x)[:, 0, :]   # (D out, D in)


FLAT_MODELS = {
    "fvsbn": lambda: FVSBN(9),
    "nade": lambda: NADE(9, 7),
    "made": lambda: MADE(9, (20, 20)),
    "made-order": lambda: MADE(9, (20, 20), order=[4, 0, 8, 2, 6, 1, 3, 7, 5], seed=3),
}


@pytest.mark.parametrize("name", FLAT_MODELS)
def test_flat_models_are_autoregressive_by_gradients(name):
    model = _randomize(FLAT_MODELS[name]())
    jac = _flat_jacobian(model, 9)
    pos = model.m_in - 1 if isinstance(model, MADE) else torch.arange(9)    # position of each input in the order
    may_see = pos[None, :] < pos[:, None]                                      # output i may see input j
    assert (jac[~may_see] == 0).all(), "an output depends on its own input or a later one"
    if not isinstance(model, MADE):  # FVSBN and NADE use every previous value
        assert (jac[may_see] != 0).all()
    else:
        assert (jac[may_see] != 0).float().mean() > 0.5


def _image_jacobian(model, c, h, w, seed=0):
    """d output feature / d input feature at every pixel: (C_out, H*W, C_in, H*W) with colours f % C."""
    inp = torch.rand(1, model.input_features, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model.network(v)[0], inp)[:, :, :, 0]  # (Fo,H,W,Fi,H,W)
    fo, fi = jac.shape[0], jac.shape[3]
    return jac.reshape(fo, h * w, fi, h * w), torch.arange(fo) % c, torch.arange(fi) % c


def _allowed(col_out, col_in, hw):
    """Output (colour co, pixel i) may see input (colour ci, pixel j): j < i, or j == i and ci < co."""
    i = torch.arange(hw)
    earlier = (i[None, :] < i[:, None])                                            # (i, j)
    same = (i[None, :] == i[:, None])
    colour_before = col_in[None, :] < col_out[:, None]                             # (co, ci)
    return earlier[None, :, None, :] | (same[None, :, None, :] & colour_before[:, None, :, None])


IMAGE_MODELS = {
    "pixelcnn-binary": (lambda: PixelCNN(1, 8, 2, kernel_size=5), 1),
    "pixelcnn-rgb": (lambda: PixelCNN(3, 12, 2, kernel_size=3), 3),
    "pixelcnn-rgb-256way": (lambda: PixelCNN(3, 12, 2, kernel_size=3, num_classes=4, one_hot=False), 3),
    "pixelcnn-rgb-onehot": (lambda: PixelCNN(3, 12, 1, kernel_size=3, num_classes=3), 3),
    "gated-binary": (lambda: GatedPixelCNN(1, 8, 3), 1),
    "gated-rgb": (lambda: GatedPixelCNN(3, 12, 3), 3),
    "gated-rgb-categorical": (lambda: GatedPixelCNN(3, 6, 2, num_classes=3), 3),
    "code-prior": (lambda: CodePixelCNN(5, 8, 3), 1),
}


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_models_are_autoregressive_by_gradients(name):
    make, c = IMAGE_MODELS[name]
    model = _randomize(make(), scale=0.5)
    jac, col_out, col_in = _image_jacobian(model, c, 4, 5)
    allowed = _allowed(col_out, col_in, 20)
    assert (jac[~allowed] == 0).all(), "an output sees its own value, a later colour of its pixel, or a later pixel"
    assert (jac[allowed] != 0).any()
    if c == 3:  # within a pixel, G sees R and B sees R and G: the colour ordering is used, not just allowed
        same_pixel = torch.diagonal(jac, dim1=1, dim2=3).abs().sum(-1)         # (C_out, C_in), summed over pixels
        assert (same_pixel[(col_out == 2)][:, col_in == 0] != 0).any()
        assert (same_pixel[(col_out == 1)][:, col_in == 0] != 0).any()


def test_pixelcnn_has_a_blind_spot_and_the_gated_one_does_not():
    h = w = 6
    plain = _randomize(PixelCNN(1, 8, 4, kernel_size=3, hidden_kernel_size=3), scale=0.5)
    gated = _randomize(GatedPixelCNN(1, 8, 6, kernel_size=3), scale=0.5)
    i = 3 * w + 2   # pixel (3, 2)
    allowed = torch.arange(h * w) < i
    for model, blind in [(plain, True), (gated, False)]:
        jac, _, _ = _image_jacobian(model, 1, h, w)
        seen = (jac[:, i, :, :] != 0).any(0).any(0)
        missing = allowed & ~seen
        if blind:
            assert missing.any(), "a stack of 3x3 masked convolutions should miss pixels above-right"
            r, col = divmod(int(missing.nonzero()[0]), w)
            assert r < 3 and col > 2, "the blind spot is above and to the right of the pixel"
        else:
            assert not missing.any(), f"the gated PixelCNN misses previous pixels {missing.nonzero().flatten().tolist()}"


# --- normalisation: exp(log_prob) sums to 1 -----------------------------------------------

ALL9 = all_binary_vectors(9).double()


@pytest.mark.parametrize("name", FLAT_MODELS)
def test_flat_models_are_normalised_over_all_3x3_binary_images(name):
    model = _randomize(FLAT_MODELS[name]())
    with torch.no_grad():
        total = model.log_prob(ALL9).exp().sum()
    assert abs(float(total) - 1) < 1e-9
    images = ALL9.reshape(512, 1, 3, 3)
    assert torch.allclose(model.log_prob(images), model.log_prob(ALL9))   # images are flattened in raster order


@pytest.mark.parametrize("make,shape", [
    (lambda: PixelCNN(1, 8, 2, kernel_size=3), (1, 3, 3)),
    (lambda: GatedPixelCNN(1, 8, 2), (1, 3, 3)),
    (lambda: PixelCNN(3, 6, 1, kernel_size=3), (3, 1, 3)),
    (lambda: GatedPixelCNN(3, 6, 2), (3, 3, 1)),
])
def test_pixelcnns_are_normalised_over_all_binary_images(make, shape):
    model = _randomize(make(), scale=0.7)
    x = ALL9.reshape(512, *shape)
    with torch.no_grad():
        total = model.log_prob(x).exp().sum()
    assert abs(float(total) - 1) < 1e-9


@pytest.mark.parametrize("make,shape,k", [
    (lambda: PixelCNN(1, 6, 1, kernel_size=3, num_classes=3), (1, 2, 2), 3),
    (lambda: PixelCNN(2, 6, 1, kernel_size=3, num_classes=3, one_hot=False), (2, 1, 2), 3),
    (lambda: GatedPixelCNN(2, 6, 2, num_classes=3), (2, 2, 1), 3),
    (lambda: CodePixelCNN(3, 6, 2), (2, 2), 3),
])
def test_categorical_pixelcnns_are_normalised(make, shape, k):
    model = _randomize(make(), scale=0.7)
    n = math.prod(shape)
    x = torch.tensor(list(itertools.product(range(k), repeat=n))).reshape(-1, *shape)
    with torch.no_grad():
        total = model.log_prob(x).exp().sum()
    assert abs(float(total) - 1) < 1e-9


# --- samples follow log_prob (chi-square) ---------------------------------------------------

def _chi2_pvalue(samples_index, log_probs, n_cells):
    counts = np.bincount(samples_index.numpy(), minlength=n_cells)
    expected = log_probs.exp().numpy() * counts.sum()
    return chisquare(counts, expected / expected.sum() * counts.sum()).pvalue


def _index(bits):
    weights = 2 ** torch.arange(bits.shape[1] - 1, -1, -1)
    return (bits.long() * weights).sum(1)


N_SAMPLES = 20_000


@pytest.mark.parametrize("make", [lambda: FVSBN(4), lambda: NADE(4, 3),
                                  lambda: MADE(4, (8,), order=[2, 0, 3, 1], seed=1)])
def test_samples_of_tiny_flat_models_follow_their_log_prob(make):
    model = _randomize(make(), seed=2).float()
    samples = model.sample(N_SAMPLES, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (N_SAMPLES, 4) and set(samples.unique().tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        lp = model.double().log_prob(all_binary_vectors(4).double())
    assert _chi2_pvalue(_index(samples), lp, 16) > 1e-3
    # the test can fail: the samples do not follow another model's distribution
    other = _randomize(FVSBN(4), seed=5)
    with torch.no_grad():
        assert _chi2_pvalue(_index(samples), other.log_prob(all_binary_vectors(4).double()), 16) < 1e-6


def test_samples_of_a_tiny_pixelcnn_follow_its_log_prob():
    model = _randomize(PixelCNN(2, 4, 1, kernel_size=3), seed=3).float()   # 2 colours, 1x2 image: 16 outcomes
    samples = model.sample(N_SAMPLES, (1, 2), generator=torch.Generator().manual_seed(1))
    bits = samples.reshape(N_SAMPLES, 4)
    with torch.no_grad():
        lp = model.double().log_prob(all_binary_vectors(4).double().reshape(16, 2, 1, 2))
    assert _chi2_pvalue(_index(bits), lp, 16) > 1e-3


def test_samples_of_a_tiny_code_prior_follow_its_log_prob():
    model = _randomize(CodePixelCNN(3, 6, 2), seed=4, scale=0.7).float()
    samples = model.sample(N_SAMPLES, (2, 2), generator=torch.Generator().manual_seed(2))
    assert samples.shape == (N_SAMPLES, 2, 2) and samples.dtype == torch.long
    grid = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2)
    with torch.no_grad():
        lp = model.double().log_prob(grid)
    idx = (samples.reshape(N_SAMPLES, 4) * torch.tensor([27, 9, 3, 1])).sum(1)
    assert _chi2_pvalue(idx, lp, 81) > 1e-3


def test_code_transformer_is_causal_normalised_and_samples_its_log_prob():
    torch.manual_seed(0)
    model = CodeTransformer(3, (2, 2), d_model=8, n_heads=2, n_layers=1).double().eval()
    grid = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2)
    with torch.no_grad():
        lp = model.log_prob(grid)
        assert torch.isclose(torch.logsumexp(lp, 0), torch.zeros((), dtype=lp.dtype), atol=1e-9)
        for pos in range(4):                      # changing the code at `pos` moves no conditional at or before it
            changed = grid.clone().reshape(81, 4)
            changed[:, pos] = (changed[:, pos] + 1) % 3
            moved = (model(changed.reshape(81, 2, 2)) - model(grid)).abs().amax((0, 1)).flatten()
            assert moved[:pos + 1].max() < 1e-12 and (pos == 3 or moved[pos + 1:].max() > 0)
    samples = model.float().sample(N_SAMPLES, (2, 2), generator=torch.Generator().manual_seed(2))
    assert samples.shape == (N_SAMPLES, 2, 2) and samples.dtype == torch.long
    idx = (samples.reshape(N_SAMPLES, 4) * torch.tensor([27, 9, 3, 1])).sum(1)
    assert _chi2_pvalue(idx, lp, 81) > 1e-3
    with pytest.raises(ValueError, match="code grids"):
        model(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="long"):
        model(torch.zeros(2, 2, 2))


# --- NADE: the recurrence ---------------------------------------------------------------------

def test_nade_recurrence_equals_the_naive_conditionals():
    model = _randomize(NADE(12, 6), seed=7)
    x = (torch.rand(5, 12, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    naive = model.conditionals_naive(x)
    assert torch.allclose(model.conditionals_recurrent(x), naive, atol=1e-12)
    assert torch.allclose(model(x), naive, atol=1e-12)
    # by hand for i = 3: h_3 = sigmoid(c + W[:, :3] x_<3), logit = b_3 + V_3 . h_3
    h3 = torch.sigmoid(model.c + model.W[:, :3] @ x[0, :3])
    assert torch.allclose(naive[0, 3], model.b[3] + model.V[3] @ h3)


def test_fvsbn_log_prob_is_the_sum_of_logistic_regressions():
    model = _randomize(FVSBN(5), seed=1)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    total = 0.0
    for i in range(5):
        p = float(torch.sigmoid(model.bias[i] + (model.weight[i, :i] * x[0, :i]).sum()).detach())
        total += math.log(p) if x[0, i] == 1 else math.log(1 - p)
    assert abs(float(model.log_prob(x).detach()) - total) < 1e-10


# --- masks ------------------------------------------------------------------------------------

def test_made_masks_follow_the_numbers():
    m_in = torch.tensor([1, 2, 3])
    (mw, mv) = made_masks(m_in, [torch.tensor([1, 2, 1, 2])])
    assert mw.tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]]    # m(k) >= d
    assert mv.tolist() == [[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]       # d > m(k)
    m_in, hidden = made_numbers(6, (10, 10), order=[5, 4, 3, 2, 1, 0], seed=0)
    assert m_in.tolist() == [6, 5, 4, 3, 2, 1]
    assert all(int(m.min()) >= 1 and int(m.max()) <= 5 for m in hidden)
    paths = made_masks(m_in, hidden)
    conn = paths[2] @ paths[1] @ paths[0]                                     # number of paths from input d to output
    order_pos = m_in[None, :] < m_in[:, None]
    assert (conn[~order_pos] == 0).all()


def test_conv_masks_type_a_and_b():
    a, b = conv_mask(3, "A")[0, 0], conv_mask(3, "B")[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    rgb_a = conv_mask(1, "A", 3, 3, channels=3)[:, :, 0, 0]
    rgb_b = conv_mask(1, "B", 3, 3, channels=3)[:, :, 0, 0]
    assert rgb_a.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]                # G sees R; B sees R and G
    assert rgb_b.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="odd"):
        conv_mask(4, "A")
    with pytest.raises(ValueError, match="'A'"):
        conv_mask(3, "C")


# --- errors a student may cause ---------------------------------------------------------------

def test_clear_errors():
    with pytest.raises(ValueError, match="input_dim=9"):
        FVSBN(9).log_prob(torch.zeros(2, 8))
    with pytest.raises(TypeError, match="float"):
        NADE(4, 3).log_prob(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="C=1"):
        PixelCNN(1).log_prob(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="0..2"):
        CodePixelCNN(3).log_prob(torch.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="permutation"):
        MADE(4, (8,), order=[0, 1, 1, 2])


def test_log_likelihood_helpers():
    logits = torch.tensor([[0.0, 2.0]])
    x = torch.tensor([[1.0, 0.0]])
    expected = math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-2)))
    assert abs(float(bernoulli_log_likelihood(logits, x)) - expected) < 1e-6
    logits = torch.log(torch.tensor([[[0.2], [0.5], [0.3]]]))    # (B=1, K=3, D=1)
    assert abs(float(categorical_log_likelihood(logits, torch.tensor([[1]]))) - math.log(0.5)) < 1e-6


# --- training with fit ----------------------------------------------------------------------

def test_fit_lowers_the_nll_towards_the_data_entropy(tmp_path):
    torch.manual_seed(0)
    # data: 3x3 images, each a horizontal bar on one row: 3 equiprobable images, entropy log 3
    bars = torch.zeros(3, 1, 3, 3)
    for r in range(3):
        bars[r, 0, r] = 1
    data = bars.repeat(200, 1, 1, 1)
    for model in [MADE(9, (32,)), PixelCNN(1, 8, 2, kernel_size=3)]:
        before = float(-model.log_prob(data).mean().detach())
        fit(model, data, epochs=60, batch_size=100, lr=1e-2, checkpoint_dir=tmp_path, progress=False)
        after = float(-model.log_prob(data).mean().detach())
        assert after < before and after < math.log(3) + 0.3, (type(model).__name__, before, after)


# --- AR(p) ------------------------------------------------------------------------------------

def test_fit_ar_recovers_the_coefficients_and_matches_lstsq():
    series = simulate_ar(0.5, [0.6, -0.3], 5000, sigma=1.0, generator=torch.Generator().manual_seed(0))
    c, phi, sigma = fit_ar(series, 2)
    assert abs(phi[0] - 0.6) < 0.05 and abs(phi[1] + 0.3) < 0.05 and abs(c - 0.5) < 0.1 and abs(sigma - 1) < 0.05
    x = series.numpy()
    design = np.column_stack([np.ones(len(x) - 2), x[1:-1], x[:-2]])
    ref = np.linalg.lstsq(design, x[2:], rcond=None)[0]
    assert np.allclose([c, *phi.tolist()], ref, atol=1e-10)


def test_forecast_ar_is_the_recursion_and_tends_to_the_mean():
    f = forecast_ar(torch.tensor([0.0, 1.0, 2.0]), 1.0, [0.5, 0.2], 300)
    assert abs(float(f[0]) - (1 + 0.5 * 2 + 0.2 * 1)) < 1e-12
    assert abs(float(f[1]) - (1 + 0.5 * float(f[0]) + 0.2 * 2)) < 1e-12
    assert abs(float(f[-1]) - 1 / (1 - 0.7)) < 1e-9
    with pytest.raises(ValueError, match="longer"):
        fit_ar(torch.zeros(4), 2)
