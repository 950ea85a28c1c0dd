# %% [markdown]
# # Exercises, lesson 4: free bits, a learned prior scale, a per-pixel γ
#
# Lesson 4 used free bits through `VAE(free_bits=λ)`, fitted one scalar decoder scale $\gamma$ in closed form, and
# kept the prior at $\mathcal{N}(0, I)$. Each exercise takes the next step (9 points in all):
#
# 1. `free_bits_kl(mu, logvar, lam)`: the free-bits KL term of the training loss, 3 points;
# 2. `kl_to_scaled_prior(mu, logvar, log_s)`: the KL to a prior $\mathcal{N}(0, s^2 I)$ with a learned scale, 2 points;
# 3. `optimal_prior_scale(mu, logvar)`: the best $s$ in closed form, 2 points;
# 4. `optimal_gamma_per_pixel(x, x_hat)`: one decoder scale $\gamma_i$ per pixel, in closed form, 2 points.
#
# Write your code between the lines where the notebook says so; run the check cell after each exercise:
# its message tells you what to look at. The graded cells hold more tests, run by the grader.
#
# **Units** nats per example: summed over pixels or latent dimensions. **Run time** a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib import losses
from course_lib.tooling.checks import record
from course_lib.runtime import get_device, seed_everything

seed_everything(0)
device = get_device()

# %% [markdown]
# ## Exercise 1: free bits (3 points)
#
# Kingma et al. (2016, eq. 15) replace the KL term of the loss by a sum over latent dimensions of
# $\max(\lambda, \cdot)$ applied to each dimension's KL **averaged over the batch**:
#
# $$\mathcal{K}_\lambda = \sum_{j=1}^d \max\Big(\lambda,\ \frac1B \sum_{b=1}^B \mathrm{KL}_j(x_b)\Big), \qquad
#   \mathrm{KL}_j(x) = \tfrac12\big(\sigma_j^2(x) + \mu_j^2(x) - 1 - \log\sigma_j^2(x)\big).$$
#
# Write `free_bits_kl(mu, logvar, lam)`: `mu`, `logvar` of shape `(B, d)`, `lam` a float (nats per dimension);
# return a 0-dimensional tensor. Note the order: average over the batch **first**, then clamp, then sum (clamping each
# example's KL would let every example hide below $\lambda$).

# %%
def free_bits_kl(mu, logvar, lam):
    """sum_j max(lam, batch mean of KL_j): the free-bits KL term, a 0-dim tensor."""
    ### BEGIN SOLUTION
    kl_dim = (0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar)).mean(dim=0)
    return torch.maximum(kl_dim, torch.full_like(kl_dim, lam)).sum()
    ### END SOLUTION


# %%
_out = free_bits_kl(torch.zeros(5, 3), torch.zeros(5, 3), 0.0)
assert torch.is_tensor(_out) and _out.dim() == 0, \
    f"return one number for the batch (a 0-dim tensor), got {getattr(_out, 'shape', type(_out))}"
assert abs(_out.item()) < 1e-6, "q = N(0, I) and lam = 0: the KL term is 0"
assert abs(free_bits_kl(torch.zeros(5, 3), torch.zeros(5, 3), 0.5).item() - 1.5) < 1e-6, \
    "three dimensions with KL 0 each cost lam = 0.5: the term is 3 * 0.5 = 1.5; clamp each dimension at lam from below"
_mu = torch.tensor([[2.0, 0.0], [0.0, 0.0]])   # dimension 0: KL 2 for the first example, 0 for the second
assert abs(free_bits_kl(_mu, torch.zeros(2, 2), 0.5).item() - (1.0 + 0.5)) < 1e-6, (
    "dimension 0 has batch-mean KL (2 + 0) / 2 = 1 (> lam), dimension 1 has 0 (< lam): expect 1 + 0.5 = 1.5; "
    "average over the batch BEFORE clamping")
print("Exercise 1: the checks pass.")

# %% grade={"exercise": "free_bits_kl", "points": 3}
assert free_bits_kl(torch.zeros(4, 2), torch.zeros(4, 2), 0.1).dim() == 0
### BEGIN HIDDEN TESTS
from course_lib.models import VAE as _VAE

_g = torch.Generator().manual_seed(41)
_mu, _lv = torch.randn(64, 10, generator=_g), torch.randn(64, 10, generator=_g)
_kl_dim = 0.5 * (_lv.exp() + _mu**2 - 1 - _lv).mean(0)
for _lam in (0.0, 0.5, 1.0, 3.0):
    assert torch.allclose(free_bits_kl(_mu, _lv, _lam), _kl_dim.clamp_min(_lam).sum(), rtol=1e-5)
    record(f"free_bits_kl, lambda={_lam}", free_bits_kl(_mu, _lv, _lam),
           message="average each dimension's KL over the batch FIRST, then max(lambda, .), then sum over dimensions")
# lam = 0: the plain KL averaged over the batch
assert torch.allclose(free_bits_kl(_mu, _lv, 0.0), losses.gaussian_kl(_mu, _lv).mean(), rtol=1e-5)
# no gradient through a dimension below lam, the usual one above it
_m = (0.05 * torch.randn(8, 2, generator=_g)).requires_grad_(True)
_m2 = torch.cat([_m[:, :1] * 0 + 3.0, _m[:, 1:]], 1)
free_bits_kl(_m2, torch.zeros(8, 2), 0.5).backward()
assert torch.allclose(_m.grad[:, 1], torch.zeros(8)), "a dimension below lam gets no gradient"
record("free-bits gradient", _m.grad, message="a dimension whose KL is below lambda gets no gradient (clamp, not a max with a detached value)")
# the course VAE's free-bits training loss uses the same term
_model = _VAE((1, 4, 4), latent_dim=3, hidden=(8,), free_bits=0.7)
_x = (torch.rand(16, 1, 4, 4, generator=_g) < 0.5).float()
torch.manual_seed(0)
_t = _model.loss(_x)
_mu, _lv = _model.encoder_params(_x)
assert torch.allclose(_t["loss"], _t["recon"] + free_bits_kl(_mu, _lv, 0.7), rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2: the KL to a prior with a learned scale (2 points)
#
# Instead of $p(z) = \mathcal{N}(0, I)$, take $p(z) = \mathcal{N}(0, s^2 I)$ with one learned scale $s$ (parameterised by
# $\log s$). For $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ in $d$ dimensions, derive and write
#
# $$\mathrm{KL}\big(q\,\|\,\mathcal{N}(0, s^2 I)\big) = \tfrac12 \sum_{j=1}^d \Big(\frac{\sigma_j^2 + \mu_j^2}{s^2} - 1 - \log\sigma_j^2 + \log s^2\Big).$$
#
# `kl_to_scaled_prior(mu, logvar, log_s)`: `mu`, `logvar` of shape `(B, d)`, `log_s` a 0-dim tensor; return shape `(B,)`.

# %%
def kl_to_scaled_prior(mu, logvar, log_s):
    """KL(N(mu, diag e^logvar) || N(0, s^2 I)) per example, s = exp(log_s)."""
    ### BEGIN SOLUTION
    s2 = torch.exp(2 * log_s)
    return 0.5 * ((torch.exp(logvar) + mu**2) / s2 - 1.0 - logvar + 2 * log_s).sum(-1)
    ### END SOLUTION


# %%
_out = kl_to_scaled_prior(torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor(0.0))
assert torch.is_tensor(_out) and _out.shape == (3,), f"one KL per example, shape (3,), got {getattr(_out, 'shape', None)}"
assert torch.allclose(_out, torch.zeros(3), atol=1e-6), "with s = 1 and q = N(0, I) the KL is 0"
_out = kl_to_scaled_prior(torch.zeros(1, 1), torch.full((1, 1), math.log(4.0)), torch.tensor(math.log(2.0)))
assert abs(_out.item()) < 1e-5, f"q = N(0, 4) and s = 2: q IS the prior, the KL must be 0; got {_out.item():.4f}: s^2 = exp(2 log s)"
_out = kl_to_scaled_prior(torch.full((1, 1), 2.0), torch.zeros(1, 1), torch.tensor(math.log(2.0)))
assert abs(_out.item() - 0.5 * (5 / 4 - 1 + math.log(4.0))) < 1e-5, (
    f"q = N(2, 1), s = 2: expect ((1 + 4) / 4 - 1 - 0 + log 4) / 2 = {0.5 * (0.25 + math.log(4.0)):.4f}, got {_out.item():.4f}: "
    "divide sigma^2 + mu^2 by s^2 and ADD log s^2")
print("Exercise 2: the checks pass.")

# %% grade={"exercise": "kl_to_scaled_prior", "points": 2}
assert kl_to_scaled_prior(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor(0.3)).shape == (2,)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(42)
for _ls in (-1.0, 0.0, 0.4):
    _mu, _lv = 2 * torch.randn(9, 5, generator=_g), torch.randn(9, 5, generator=_g)
    _ref = losses.gaussian_kl_general(_mu, _lv, torch.zeros_like(_mu), torch.full_like(_lv, 2 * _ls))
    assert torch.allclose(kl_to_scaled_prior(_mu, _lv, torch.tensor(_ls)), _ref, rtol=1e-4, atol=1e-5)
    record(f"kl_to_scaled_prior, log s={_ls}", kl_to_scaled_prior(_mu, _lv, torch.tensor(_ls)),
           message="KL(N(mu, sigma^2) || N(0, s^2)) = 1/2 sum_j [(sigma_j^2 + mu_j^2) / s^2 - 1 - log sigma_j^2 + 2 log s]")
_ls = torch.tensor(0.2, requires_grad=True)
_mu, _lv = torch.randn(6, 4, generator=_g), torch.randn(6, 4, generator=_g)
kl_to_scaled_prior(_mu, _lv, _ls).sum().backward()
_want = (-(_lv.exp() + _mu**2) * math.exp(-0.4) + 1).sum()          # d/dlog s of the sum
assert _ls.grad is not None and torch.allclose(_ls.grad, _want, rtol=1e-4)
record("d KL / d log s", _ls.grad, message="the KL must be differentiable in log s: torch operations only")
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3: the best prior scale in closed form (2 points)
#
# Averaged over $N$ examples and the $d$ dimensions, the KL of exercise 2 depends on $s$ through
# $\frac{1}{2}\big(\frac{M}{s^2} + d\log s^2\big)$ with $M = \frac1N\sum_n \sum_j (\sigma_{nj}^2 + \mu_{nj}^2)$. Set the
# derivative in $s^2$ to zero: $s^{\star 2} = M / d$, the second moment of the aggregated posterior per dimension (as
# $\gamma^{\star 2} = \mathrm{MSE}$ in the lesson). Write `optimal_prior_scale(mu, logvar)`: return $s^\star$ (not $s^{\star 2}$), a
# 0-dim tensor.

# %%
def optimal_prior_scale(mu, logvar):
    """s* = sqrt(mean over examples and dimensions of sigma^2 + mu^2), a 0-dim tensor."""
    ### BEGIN SOLUTION
    return (torch.exp(logvar) + mu * mu).mean().sqrt()
    ### END SOLUTION


# %%
_s = optimal_prior_scale(torch.zeros(4, 3), torch.zeros(4, 3))
assert torch.is_tensor(_s) and _s.dim() == 0, f"return one number (a 0-dim tensor), got {getattr(_s, 'shape', type(_s))}"
assert abs(_s.item() - 1.0) < 1e-6, "posteriors equal to N(0, I): the best prior is N(0, I), s* = 1"
_s = optimal_prior_scale(torch.full((4, 3), 3.0), torch.full((4, 3), math.log(7.0)))
assert abs(_s.item() - 4.0) < 1e-5, (f"sigma^2 = 7 and mu = 3: s*^2 = 7 + 9 = 16, s* = 4; got {_s.item():.4f}: "
                                     "use sigma^2 + mu^2 (the second moment), and return its square ROOT")
print("Exercise 3: the checks pass.")

# %% grade={"exercise": "optimal_prior_scale", "points": 2}
assert optimal_prior_scale(torch.randn(5, 2), torch.randn(5, 2)).dim() == 0
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(43)
_mu, _lv = 1.5 * torch.randn(200, 6, generator=_g), torch.randn(200, 6, generator=_g)
_s = optimal_prior_scale(_mu, _lv)
_ls = _s.detach().log().clone().requires_grad_(True)
_obj = losses.gaussian_kl_general(_mu, _lv, torch.zeros_like(_mu), (2 * _ls).expand_as(_lv)).mean()
_obj.backward()
assert abs(_ls.grad.item()) < 1e-3, "the average KL is stationary in log s at s*"
record("optimal_prior_scale", _s, rtol=1e-4, atol=1e-6,
       message="s*^2 = the mean over examples AND dimensions of sigma^2 + mu^2 (return s, not s^2)")
for _f in (0.9, 1.1):
    assert losses.gaussian_kl_general(_mu, _lv, torch.zeros_like(_mu),
                                      torch.full_like(_lv, 2 * math.log(_f * _s.item()))).mean() > _obj.detach()
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4: one γ per pixel (2 points)
#
# The lesson's decoder has one $\gamma$ for all pixels. With one $\gamma_i$ per pixel, $-\log p_\theta(x \mid z) =
# \sum_i \big[\frac{(x_i - \hat x_i)^2}{2\gamma_i^2} + \log\gamma_i\big] + \frac k2\log 2\pi$, and for fixed reconstructions the
# best $\gamma_i$ solves one equation per pixel: $\gamma_i^{\star 2} = \frac1N \sum_n (x_{n,i} - \hat x_{n,i})^2$, the MSE of pixel $i$
# over the data. Write `optimal_gamma_per_pixel(x, x_hat)`: `x`, `x_hat` of shape `(N, C, H, W)`; return the
# `(C, H, W)` tensor of $\gamma_i^\star$. Add `eps = 1e-3` to each $\gamma_i^\star$ (a pixel that is always 0, as at the border of
# MNIST, would otherwise get $\gamma = 0$ and an infinite density).

# %%
def optimal_gamma_per_pixel(x, x_hat, eps=1e-3):
    """gamma*_i = sqrt(mean over the data of (x_i - x_hat_i)^2) + eps, shape (C, H, W)."""
    ### BEGIN SOLUTION
    return ((x - x_hat) ** 2).mean(dim=0).sqrt() + eps
    ### END SOLUTION


# %%
_x = torch.zeros(4, 1, 2, 2)
_xh = _x.clone()
_xh[:, 0, 0, 0] = 0.5                     # pixel (0, 0) is off by 0.5 in every image, the others are exact
_gs = optimal_gamma_per_pixel(_x, _xh)
assert torch.is_tensor(_gs) and _gs.shape == (1, 2, 2), \
    f"one gamma per pixel, shape (C, H, W) = (1, 2, 2), got {getattr(_gs, 'shape', type(_gs))}: average over axis 0 only"
assert torch.allclose(_gs, torch.tensor([[[0.501, 0.001], [0.001, 0.001]]])), (
    f"expected 0.5 + eps for pixel (0, 0) and eps elsewhere, got {_gs.flatten().tolist()}: "
    "square root of the mean squared error of each pixel, plus eps")
print("Exercise 4: the checks pass.")

# %% grade={"exercise": "optimal_gamma_per_pixel", "points": 2}
assert optimal_gamma_per_pixel(torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)).shape == (1, 4, 4)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(44)
_x = torch.rand(50, 3, 5, 5, generator=_g)
_xh = _x + torch.rand(1, 3, 5, 5, generator=_g) * torch.randn(50, 3, 5, 5, generator=_g)
_gs = optimal_gamma_per_pixel(_x, _xh, eps=0.0)
assert torch.allclose(_gs, ((_x - _xh) ** 2).mean(0).sqrt(), rtol=1e-5)
# it minimises the per-pixel Gaussian NLL averaged over the data
_lg = _gs.log().clone().requires_grad_(True)
losses.gaussian_nll(_xh, _x, _lg).mean().backward()
assert _lg.grad.abs().max() < 1e-4
assert torch.allclose(optimal_gamma_per_pixel(_x, _x), torch.full((3, 5, 5), 1e-3))
record("optimal_gamma_per_pixel", _gs, message="gamma^2 of each pixel = its squared error averaged over the examples (axis 0)")
record("optimal_gamma_per_pixel of perfect reconstructions", optimal_gamma_per_pixel(_x, _x),
       message="floor gamma at eps (default 1e-3) so that log gamma stays finite")
### END HIDDEN TESTS

# %% [markdown]
# ## Use them (not graded)
#
# Your per-pixel $\gamma$ on a made-up decoder that is exact in the middle of the image and poor at the border: the
# per-pixel model pays much less than the best single $\gamma$ of the lesson, because it is sure where it can be.

# %%
g = torch.Generator().manual_seed(0)
x = torch.rand(200, 1, 28, 28, generator=g)
noise = torch.full((1, 1, 28, 28), 0.3)
noise[..., 7:21, 7:21] = 0.02                                   # accurate in the centre
x_hat = x + noise * torch.randn(200, 1, 28, 28, generator=g)
g_pix = optimal_gamma_per_pixel(x, x_hat)
nll_pix = losses.gaussian_nll(x_hat, x, g_pix.log()).mean()
nll_one = losses.gaussian_nll(x_hat, x, losses.optimal_gamma(x_hat, x).log()).mean()
print(f"best single gamma: {nll_one:.1f} nats per image; one gamma per pixel: {nll_pix:.1f}")
assert nll_pix < nll_one
