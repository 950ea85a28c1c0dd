# %% [markdown]
# # Exercises, lesson 4: the decoder's variance and active units
#
# Three short exercises on the formulas of lesson 4 (6 points in all):
#
# 1. `gaussian_decoder_nll(x, x_hat, log_gamma)`: the Gaussian decoder's negative log-likelihood (seed 003, eq. 3), 2 points;
# 2. `optimal_gamma(x, x_hat)`: the best decoder standard deviation for fixed reconstructions, 2 points;
# 3. `active_units(mu, threshold)`: which latent dimensions a VAE uses (Burda et al. 2016), 2 points.
#
# Write your code between the lines where the notebook says so; run the check cell after each exercise:
# its message tells you what to look at. The graded cells hold more tests, run by the grader.
#
# **Units** nats per example: summed over pixels, one value per example. **Run time** under 20 s on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib import losses
from course_lib.data import lesson_dataset
from course_lib.models import VAE
from course_lib.runtime import get_device, seed_everything
from course_lib.train import fit

seed_everything(0)
device = get_device()

# %% [markdown]
# ## Exercise 1: the Gaussian decoder's negative log-likelihood (2 points)
#
# With the decoder $p_\theta(x \mid z) = \mathcal{N}(\hat x, \gamma^2 I)$ and $k$ pixels per image (seed 003, eq. 3,
# with its constant):
#
# $$-\log p_\theta(x \mid z) = \frac{\|x - \hat x\|^2}{2\gamma^2} + k \log \gamma + \frac k2 \log 2\pi.$$
#
# Write `gaussian_decoder_nll(x, x_hat, log_gamma)`:
# - `x`, `x_hat`: tensors of the same shape `(batch, ...)` (images `(batch, C, H, W)` or vectors `(batch, D)`);
# - `log_gamma`: a 0-dimensional tensor, $\log \gamma$ (we learn $\log\gamma$ so that $\gamma > 0$);
# - returns a tensor of shape `(batch,)`: one value per example, summed over all pixels ($k$ = pixels per example).
#
# Use `log_gamma` directly (no `torch.log(torch.exp(...))`), so that the gradient flows through it.

# %%
def gaussian_decoder_nll(x, x_hat, log_gamma):
    """-log N(x; x_hat, gamma^2 I), one value per example."""
    ### BEGIN SOLUTION
    k = x[0].numel()
    sse = ((x - x_hat) ** 2).reshape(len(x), -1).sum(dim=1)
    return sse / (2 * torch.exp(2 * log_gamma)) + k * log_gamma + 0.5 * k * math.log(2 * math.pi)
    ### END SOLUTION


# %%
_x = torch.zeros(3, 1, 2, 2)
_out = gaussian_decoder_nll(_x, _x, torch.tensor(0.0))
assert torch.is_tensor(_out) and _out.shape == (3,), \
    f"expected one value per example, shape (3,), got {getattr(_out, 'shape', type(_out))}: sum over every axis but the first"
assert torch.allclose(_out, torch.full((3,), 2 * math.log(2 * math.pi))), \
    "with x = x_hat and gamma = 1 only the constant is left: (k/2) log(2 pi) with k = 4 pixels; check the constant and k"
_out = gaussian_decoder_nll(_x, _x + 1.0, torch.tensor(0.0))
assert torch.allclose(_out, torch.full((3,), 2.0 + 2 * math.log(2 * math.pi))), \
    "with x - x_hat = 1 on 4 pixels and gamma = 1 the squared-error term is 4 / 2 = 2: check the factor 1/(2 gamma^2)"
_out = gaussian_decoder_nll(_x, _x, torch.tensor(math.log(2.0)))
assert torch.allclose(_out, torch.full((3,), 4 * math.log(2.0) + 2 * math.log(2 * math.pi))), \
    "with gamma = 2 the normaliser adds k log gamma = 4 log 2: check the k log(gamma) term"
_out = gaussian_decoder_nll(_x, _x + 1.0, torch.tensor(math.log(2.0)))
assert torch.allclose(_out, torch.full((3,), 0.5 + 4 * math.log(2.0) + 2 * math.log(2 * math.pi))), \
    "with x - x_hat = 1 on 4 pixels and gamma = 2 the squared-error term is 4 / (2 * 2^2) = 0.5: divide by gamma SQUARED"
print("Exercise 1: the checks pass.")

# %% grade={"exercise": "gaussian_decoder_nll", "points": 2}
_x = torch.rand(5, 1, 8, 8)
assert gaussian_decoder_nll(_x, _x, torch.tensor(0.0)).shape == (5,)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(4)
for _shape in [(7, 1, 8, 8), (4, 3, 5, 5), (6, 10)]:
    _x, _xh = torch.rand(_shape, generator=_g), torch.rand(_shape, generator=_g)
    for _lg in [-2.3, -0.4, 0.0, 0.7]:
        _lg = torch.tensor(_lg)
        _ref = -torch.distributions.Normal(_xh, _lg.exp()).log_prob(_x).reshape(len(_x), -1).sum(1)
        _got = gaussian_decoder_nll(_x, _xh, _lg)
        assert _got.shape == (_shape[0],)
        assert torch.allclose(_got, _ref, rtol=1e-4, atol=1e-4)
        assert torch.allclose(_got, losses.gaussian_nll(_xh, _x, _lg), rtol=1e-4, atol=1e-4)
# the gradient with respect to log gamma: -||x - x_hat||^2 / gamma^2 + k
_lg = torch.tensor(-1.0, requires_grad=True)
gaussian_decoder_nll(_x, _xh, _lg).sum().backward()
_sse = ((_x - _xh) ** 2).sum(1)
assert _lg.grad is not None and torch.allclose(_lg.grad, (-_sse / math.exp(-2.0) + 10).sum(), rtol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2: the best γ in closed form (2 points)
#
# For fixed reconstructions, the $\gamma$ that minimises the average of eq. 3 over a batch of $N$ examples solves
# $\partial/\partial\gamma = 0$:
#
# $$\gamma^{\star 2} = \frac{1}{N k} \sum_{n=1}^N \|x_n - \hat x_n\|^2,$$
#
# the mean squared error **per pixel** (over the whole batch). Write `optimal_gamma(x, x_hat)`, returning $\gamma^\star$
# (not $\gamma^{\star 2}$) as a 0-dimensional tensor.

# %%
def optimal_gamma(x, x_hat):
    """gamma* = sqrt(mean squared error per pixel), a 0-dim tensor."""
    ### BEGIN SOLUTION
    return ((x - x_hat) ** 2).mean().sqrt()
    ### END SOLUTION


# %%
_x = torch.zeros(4, 1, 2, 2)
_gs = optimal_gamma(_x, _x + 0.5)
assert torch.is_tensor(_gs) and _gs.dim() == 0, \
    f"return one number for the whole batch (a 0-dim tensor), got {getattr(_gs, 'shape', type(_gs))}"
assert torch.isclose(_gs, torch.tensor(0.5)), \
    f"every pixel is off by 0.5, so gamma* = 0.5; got {float(_gs):.4f}: return the square ROOT of the MEAN squared error"
_xh = _x.clone()
_xh[0] = 1.0                       # one image in four is off by 1 on every pixel: MSE = 1/4
assert torch.isclose(optimal_gamma(_x, _xh), torch.tensor(0.5)), \
    "average the squared error over the batch AND the pixels (per pixel, not per image)"
print("Exercise 2: the checks pass.")

# %% grade={"exercise": "optimal_gamma", "points": 2}
_x = torch.rand(10, 1, 8, 8)
assert optimal_gamma(_x, _x + 0.1).dim() == 0
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
for _shape, _scale in [((16, 1, 8, 8), 0.1), ((9, 3, 4, 4), 0.5), ((20, 30), 2.0)]:
    _x = torch.rand(_shape, generator=_g)
    _xh = _x + _scale * torch.randn(_shape, generator=_g)
    _gs = optimal_gamma(_x, _xh)
    assert torch.allclose(_gs, losses.optimal_gamma(_xh, _x), rtol=1e-5)
    # it minimises the batch-averaged NLL: the derivative in log gamma vanishes there, and nearby values are worse
    _lg = _gs.detach().log().clone().requires_grad_(True)
    _nll = losses.gaussian_nll(_xh, _x, _lg).mean()
    _nll.backward()
    assert abs(_lg.grad.item()) < 1e-3 * _x[0].numel()
    for _f in (0.9, 1.1):
        assert losses.gaussian_nll(_xh, _x, (_f * _gs).log()).mean() > _nll.detach()
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3: active units (2 points)
#
# A latent unit $j$ is *active* when its posterior mean moves with the data (Burda et al. 2016):
#
# $$A_j = \mathrm{Cov}_x\big(\mathbb{E}_{q_\phi(z \mid x)}[z_j]\big) = \mathrm{Var}_x\big(\mu_{\phi,j}(x)\big) > \text{threshold} \quad (10^{-2}).$$
#
# Write `active_units(mu, threshold=1e-2)`: `mu` is a `(N, d)` tensor of posterior means $\mu_\phi(x_n)$ over a data set;
# return a **boolean** tensor of shape `(d,)`, `True` where unit $j$ is active. (Whether you divide by $N$ or
# $N - 1$ does not matter here.)

# %%
def active_units(mu, threshold=1e-2):
    """Boolean mask (d,): Var over the data of each coordinate of the posterior mean > threshold."""
    ### BEGIN SOLUTION
    return mu.var(dim=0, unbiased=False) > threshold
    ### END SOLUTION


# %%
_g = torch.Generator().manual_seed(0)
_mu = torch.cat([torch.randn(500, 2, generator=_g),            # units 0, 1 move with x: active
                 1e-3 * torch.randn(500, 2, generator=_g)], 1)  # units 2, 3 stay at 0: collapsed
_a = active_units(_mu)
assert torch.is_tensor(_a) and _a.shape == (4,), \
    f"return one value per latent unit, shape (d,) = (4,), got {getattr(_a, 'shape', type(_a))}: reduce over the data axis 0"
assert _a.dtype == torch.bool, f"return a boolean mask (compare with the threshold), got dtype {_a.dtype}"
assert _a.tolist() == [True, True, False, False], \
    f"units 0 and 1 vary (variance ~1), units 2 and 3 do not (variance ~1e-6); got {_a.tolist()}: check the axis of the variance"
print("Exercise 3: the checks pass.")

# %% grade={"exercise": "active_units", "points": 2}
_mu = torch.randn(100, 3)
assert active_units(_mu).shape == (3,)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(6)
# a collapsed unit far from 0 (mean 5, no spread) is inactive: the statistic is a variance, not a second moment
_mu = torch.cat([5.0 + 1e-3 * torch.randn(400, 1, generator=_g), 0.3 * torch.randn(400, 1, generator=_g),
                 0.05 * torch.randn(400, 1, generator=_g), -2.0 + 0.2 * torch.randn(400, 1, generator=_g)], 1)
assert active_units(_mu).tolist() == [False, True, False, True]          # variances ~1e-6, 0.09, 0.0025, 0.04
assert active_units(_mu, threshold=1e-3).tolist() == [False, True, True, True]
assert active_units(_mu, threshold=0.05).tolist() == [False, True, False, False]
assert active_units(torch.randn(1000, 7, generator=_g)).all()
_mu = torch.randn(300, 12, generator=_g) * torch.logspace(-3, 0, 12)
assert torch.equal(active_units(_mu), _mu.var(0, unbiased=False) > 1e-2)
### END HIDDEN TESTS

# %% [markdown]
# ## Use them: collapse and the best γ on real models
#
# Two small VAEs trained for a few seconds on 8x8 digits: a Bernoulli β-VAE at β = 0.5 and at β = 8. Your
# `active_units` counts the units each one uses; then the best γ of a Gaussian decoder for the β = 0.5 model's
# reconstructions. (This part is not graded.)

# %%
data = lesson_dataset("digits", "train", device=device)
models = {}
for beta in (0.5, 8.0):
    seed_everything(0)
    models[beta] = VAE(data.shape, latent_dim=8, hidden=(64,), beta=beta)
    fit(models[beta], data, epochs=10, batch_size=128, lr=5e-3, checkpoint=f"exercise04-beta{beta:g}", progress=False)

with torch.no_grad():
    for beta, m in models.items():
        mu, _ = m.encoder_params(data.images)
        print(f"beta = {beta:g}: {int(active_units(mu).sum())} active units out of {m.latent_dim}")
    x_hat = models[0.5].reconstruct(data.images)
    g_star = optimal_gamma(data.images, x_hat)
    print(f"gamma* for the beta = 0.5 model's reconstructions: {float(g_star):.3f}, "
          f"NLL {gaussian_decoder_nll(data.images, x_hat, g_star.log()).mean():.2f} nats per image "
          f"(at gamma = 1: {gaussian_decoder_nll(data.images, x_hat, torch.tensor(0.0)).mean():.2f})")
assert active_units(models[8.0].encoder_params(data.images)[0].detach()).sum() \
    < active_units(models[0.5].encoder_params(data.images)[0].detach()).sum()
