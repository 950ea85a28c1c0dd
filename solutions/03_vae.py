# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 3: one step beyond the Gaussian VAE
#
# Lesson 3 wrote the KL of $q_\phi(z \mid x)$ to $\mathcal{N}(0, I)$, the score-function estimator without a baseline and
# the reparameterization of a **diagonal** Gaussian. Each exercise takes the next step.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)`: the KL between two diagonal Gaussians (a prior that is not $\mathcal{N}(0, I)$) | 3 |
# | (b) | `score_function_loo(fz, z, mu, sigma)`: the score-function estimator with a leave-one-out baseline | 3 |
# | (c) | `reparameterize_full(mu, L, eps)`: a reparameterized sample of a Gaussian with a full covariance | 2 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages say what to look at. Graded cells (marked "grade") run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations only (no NumPy, no `torch.distributions` in your
# answers: the point is to write the formula).
#
# **Units** nats, one value per example, summed over latent dimensions. `logvar` is $\log \sigma^2$.
#
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib.tooling.checks import record
from course_lib.runtime import get_device, seed_everything

seed_everything(0)
device = get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The KL between two diagonal Gaussians (3 points)
#
# Seed 003 (the two-stage VAE) needs $\mathrm{KL}(q(z \mid x)\,\|\,p(z \mid y, u))$, where the prior of $z$ is a Gaussian
# whose mean and variance a network outputs, not $\mathcal{N}(0, I)$. For $q = \mathcal{N}(\mu_q, \operatorname{diag}\sigma_q^2)$ and
# $p = \mathcal{N}(\mu_p, \operatorname{diag}\sigma_p^2)$ in $d$ dimensions, derive (one dimension at a time:
# $\mathbb{E}_q[\log q(z) - \log p(z)]$ with $\mathbb{E}_q[(z - \mu_p)^2] = \sigma_q^2 + (\mu_q - \mu_p)^2$) and write
#
# $$\mathrm{KL}(q\,\|\,p) = \tfrac12 \sum_{j=1}^d \Big(\log\frac{\sigma_{p,j}^2}{\sigma_{q,j}^2} + \frac{\sigma_{q,j}^2 + (\mu_{q,j} - \mu_{p,j})^2}{\sigma_{p,j}^2} - 1\Big).$$
#
# `kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)`: four tensors of shape `(batch, d)`; return shape `(batch,)`.
# With $\mu_p = 0$, $\log\sigma_p^2 = 0$ it must give the lesson's eq. (3).

# %%
def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last dimension."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1.0).sum(-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**: run this cell; it says what is wrong, if anything.

# %%
_z = torch.zeros(4, 3)
_kl = kl_diag_gaussians(_z, _z, _z, _z)
assert torch.is_tensor(_kl), "kl_diag_gaussians should return a torch tensor"
assert _kl.shape == (4,), (f"for inputs of shape (4, 3) expect one KL per example, shape (4,), got {tuple(_kl.shape)}: "
                           "sum over the latent dimension (dim=-1), not over the batch")
assert torch.allclose(_kl, torch.zeros(4), atol=1e-6), f"KL(q || q) must be 0, got {_kl.tolist()}: check the '- 1'"
_m, _l = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
_std = 0.5 * (_l.exp() + _m**2 - 1 - _l).sum(-1)
assert torch.allclose(kl_diag_gaussians(_m, _l, torch.zeros(1, 2), torch.zeros(1, 2)), _std, atol=1e-5), \
    "with p = N(0, I) your KL should equal the lesson's eq. (3)"
_kl = kl_diag_gaussians(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), math.log(4.0)))
assert abs(_kl.item() - 0.5 * (math.log(4.0) + 0.25 - 1)) < 1e-5, (
    f"KL(N(0, 1) || N(0, 4)) = (log 4 + 1/4 - 1) / 2 = {0.5 * (math.log(4.0) + 0.25 - 1):.4f}, got {_kl.item():.4f}: "
    "the variance ratio is sigma_q^2 / sigma_p^2 (q on top), and the log term is log(sigma_p^2 / sigma_q^2)")
_kl = kl_diag_gaussians(torch.full((1, 1), 3.0), torch.zeros(1, 1), torch.full((1, 1), 1.0), torch.full((1, 1), math.log(4.0)))
assert abs(_kl.item() - 0.5 * (math.log(4.0) + 0.25 + 1.0 - 1)) < 1e-5, (
    f"KL(N(3, 1) || N(1, 4)) = (log 4 + 1/4 + (3 - 1)^2 / 4 - 1) / 2, got {_kl.item():.4f}: "
    "the squared mean difference is divided by the PRIOR's variance sigma_p^2")
print("Self-check (a) passed.")

# %% grade={"exercise": "kl_diag_gaussians", "points": 3}
### BEGIN HIDDEN TESTS
from torch.distributions import Normal, kl_divergence

from course_lib.losses import gaussian_kl_general as _ref

_g = torch.Generator().manual_seed(31)
for _batch, _d in [(1, 1), (7, 5), (32, 20)]:
    _a = [2 * torch.randn(_batch, _d, generator=_g) for _ in range(4)]
    _got = kl_diag_gaussians(*_a)
    assert _got.shape == (_batch,)
    assert torch.allclose(_got, _ref(*_a), rtol=1e-4, atol=1e-4)
    _q, _p = Normal(_a[0], torch.exp(0.5 * _a[1])), Normal(_a[2], torch.exp(0.5 * _a[3]))
    assert torch.allclose(_got, kl_divergence(_q, _p).sum(-1), rtol=1e-4, atol=1e-4)
    assert (_got >= -1e-5).all()
    record(f"kl_diag_gaussians, batch {_batch}, d={_d}", _got,
           message="KL(q || p) = 1/2 sum_j [log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1]")
# not symmetric
_a = [torch.tensor([[0.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.tensor([[2.0]])]
assert not torch.allclose(kl_diag_gaussians(*_a), kl_diag_gaussians(_a[2], _a[3], _a[0], _a[1]))
# gradients: d KL / d mu_q = (mu_q - mu_p) / sigma_p^2
_mq = torch.randn(3, 4, generator=_g, requires_grad=True)
_mp, _lp = torch.randn(3, 4, generator=_g), torch.randn(3, 4, generator=_g)
kl_diag_gaussians(_mq, torch.zeros(3, 4), _mp, _lp).sum().backward()
assert torch.allclose(_mq.grad, (_mq.detach() - _mp) * torch.exp(-_lp), atol=1e-5)
record("d KL / d mu_q", _mq.grad, message="the KL must be differentiable: torch operations only, no .item() or NumPy")
record("KL(p || q) for swapped arguments", kl_diag_gaussians(_a[2], _a[3], _a[0], _a[1]),
       message="the KL is not symmetric: q (the first pair) is the distribution the expectation is taken under")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The score function with a leave-one-out baseline (3 points)
#
# Lesson 3's score-function estimator of $\nabla_\mu \mathbb{E}_{q}[f(z)]$, $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, uses one draw:
# $\hat g = f(z)\,(z - \mu)/\sigma^2$. Since $\mathbb{E}_q[\nabla_\mu \log q(z)] = 0$, subtracting any $b$ that does not depend on
# $z$ keeps it unbiased: $\hat g = (f(z) - b)\,(z - \mu)/\sigma^2$. A good $b$ is close to $\mathbb{E}_q[f]$. With $n$ draws
# $z_1, \dots, z_n$, the **leave-one-out** baseline uses the other draws (Kool et al. 2019; Mnih & Rezende 2016):
#
# $$\hat g_i = \big(f(z_i) - b_i\big)\,\frac{z_i - \mu}{\sigma^2}, \qquad b_i = \frac{1}{n - 1}\sum_{k \ne i} f(z_k).$$
#
# $b_i$ is independent of $z_i$, so each $\hat g_i$ is unbiased. Write `score_function_loo(fz, z, mu, sigma)`:
# `fz` of shape `(n,)` holds $f(z_i)$, `z` has shape `(n, d)`, `mu` and `sigma` shape `(d,)`; return the `(n, d)`
# per-draw estimates $\hat g_i$. Do it without a Python loop over $i$ (hint: $\sum_{k \ne i} = \sum_k - $ the $i$-th term).

# %%
def score_function_loo(fz, z, mu, sigma):
    """Per-draw score-function estimates of d/dmu E_q[f], with the leave-one-out baseline: (n, d)."""
    ### BEGIN SOLUTION
    n = fz.shape[0]
    baseline = (fz.sum() - fz) / (n - 1)
    return (fz - baseline)[:, None] * (z - mu) / sigma**2
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_fz = torch.tensor([1.0, 3.0])
_z = torch.tensor([[1.0], [-1.0]])
_g = score_function_loo(_fz, _z, torch.zeros(1), torch.ones(1))
assert torch.is_tensor(_g) and _g.shape == (2, 1), f"expected shape (n, d) = (2, 1), got {getattr(_g, 'shape', type(_g))}"
assert torch.allclose(_g, torch.tensor([[-2.0], [-2.0]])), (
    f"with f = (1, 3) and n = 2 the baselines are b = (3, 1) (the OTHER draw), so g = ((1 - 3) * 1, (3 - 1) * (-1)) = "
    f"(-2, -2); got {_g.flatten().tolist()}: b_i must leave out f(z_i) (the batch mean would give (-1, -1))")
_g = score_function_loo(torch.full((5,), 7.0), torch.randn(5, 3), torch.zeros(3), torch.ones(3))
assert torch.allclose(_g, torch.zeros(5, 3), atol=1e-5), "a constant f has zero gradient: every f(z_i) - b_i should be 0"
_g = score_function_loo(torch.tensor([0.0, 2.0, 4.0]), torch.tensor([[2.0], [2.0], [2.0]]), torch.zeros(1),
                        torch.full((1,), 2.0))
assert torch.allclose(_g, torch.tensor([[-1.5], [0.0], [1.5]])), (
    f"expected (-1.5, 0, 1.5) for sigma = 2, got {_g.flatten().tolist()}: divide (z - mu) by sigma SQUARED")
_mu, _s = torch.tensor([1.0]), torch.tensor([0.5])
_zz = _mu + _s * torch.randn(40_000, 1, generator=torch.Generator().manual_seed(0))
_fz = (_zz**2).sum(1)
_loo = score_function_loo(_fz, _zz, _mu, _s)
_plain = _fz[:, None] * (_zz - _mu) / _s**2
assert abs(_loo.mean() - 2.0) < 5 * _loo.std() / 200, f"the estimate of d/dmu E[z^2] = 2 mu = 2 is biased: {_loo.mean():.3f}"
assert _loo.var() < 0.5 * _plain.var(), "the baseline should reduce the variance well below the plain estimator's"
print(f"Self-check (b) passed: variance {_plain.var():.2f} without baseline, {_loo.var():.2f} with it.")

# %% grade={"exercise": "score_function_loo", "points": 3}
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(32)
_mu, _s = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.0, 0.7])
_zz = _mu + _s * torch.randn(8, 3, generator=_gen)
_fz = torch.randn(8, generator=_gen)
_want = torch.stack([(_fz[i] - torch.cat([_fz[:i], _fz[i + 1:]]).mean()) * (_zz[i] - _mu) / _s**2 for i in range(8)])
assert torch.allclose(score_function_loo(_fz, _zz, _mu, _s), _want, atol=1e-5)
record("score_function_loo, 8 draws", score_function_loo(_fz, _zz, _mu, _s),
       message="draw i: (f(z_i) - mean of the OTHER draws' f) (z_i - mu) / sigma^2")
# unbiased for f(z) = sum exp(z): d/dmu E = exp(mu + sigma^2 / 2)
_zz = _mu + _s * torch.randn(200_000, 3, generator=_gen)
_g = score_function_loo(_zz.exp().sum(1), _zz, _mu, _s)
_exact = torch.exp(_mu + _s**2 / 2)
assert ((_g.mean(0) - _exact).abs() < 5 * _g.std(0) / math.sqrt(len(_g))).all()
# not the batch mean (that would include f(z_i) itself and be biased for small n)
_zz = _mu + _s * torch.randn(3, 3, generator=_gen)
_fz = torch.randn(3, generator=_gen)
assert not torch.allclose(score_function_loo(_fz, _zz, _mu, _s), (_fz - _fz.mean())[:, None] * (_zz - _mu) / _s**2)
record("score_function_loo, 3 draws", score_function_loo(_fz, _zz, _mu, _s),
       message="the baseline leaves f(z_i) itself out (the batch mean would make it biased)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) Reparameterizing a full-covariance Gaussian (2 points)
#
# A diagonal $q_\phi(z \mid x)$ cannot express correlations between latent dimensions. A full covariance
# $\Sigma = L L^\top$, with $L$ lower triangular with a positive diagonal (its Cholesky factor, which an encoder can
# output; Kingma & Welling 2019, section 2.5.2), is reparameterized as
#
# $$z = \mu + L\,\varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I) \quad\Longrightarrow\quad z \sim \mathcal{N}(\mu, L L^\top).$$
#
# Write `reparameterize_full(mu, L, eps)`: `mu` and `eps` of shape `(batch, d)`, `L` of shape `(batch, d, d)` (one
# factor per example); return $z$, shape `(batch, d)`, differentiable in `mu` and `L`. Use the `eps` you are given.

# %%
def reparameterize_full(mu, L, eps):
    """z = mu + L eps for each example of the batch: (batch, d)."""
    ### BEGIN SOLUTION
    return mu + torch.einsum("bij,bj->bi", L, eps)
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**

# %%
_mu = torch.tensor([[1.0, -1.0]], requires_grad=True)
_L = torch.tensor([[[2.0, 0.0], [0.5, 1.0]]], requires_grad=True)
_eps = torch.tensor([[1.0, 2.0]])
_z = reparameterize_full(_mu, _L, _eps)
assert torch.is_tensor(_z) and _z.shape == (1, 2), f"z should have the shape of mu, (1, 2), got {getattr(_z, 'shape', None)}"
assert torch.allclose(_z, torch.tensor([[3.0, 1.5]])), (
    f"z = mu + L eps = (1 + 2*1, -1 + 0.5*1 + 1*2) = (3, 1.5), got {_z.tolist()}: multiply L (rows) by eps, "
    "not eps by L (L^T eps is the transpose)")
assert _z.requires_grad, "z has no gradient history: build it from mu and L with torch operations"
_z.sum().backward()
assert torch.allclose(_L.grad, torch.tensor([[[1.0, 2.0], [1.0, 2.0]]])), "dz_i / dL_ij should be eps_j"
_Lb = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])
_zb = reparameterize_full(torch.zeros(2, 2), _Lb, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
assert torch.allclose(_zb, torch.tensor([[1.0, 2.0], [0.0, 3.0]])), \
    f"each example uses its own L: expected [[1, 2], [0, 3]], got {_zb.tolist()}"
print("Self-check (c) passed.")

# %% grade={"exercise": "reparameterize_full", "points": 2}
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(33)
_b, _d = 5, 4
_mu = torch.randn(_b, _d, generator=_gen)
_L = torch.tril(torch.randn(_b, _d, _d, generator=_gen))
_eps = torch.randn(_b, _d, generator=_gen)
assert torch.allclose(reparameterize_full(_mu, _L, _eps), _mu + (_L @ _eps[..., None])[..., 0], atol=1e-5)
record("reparameterize_full, batch of 5", reparameterize_full(_mu, _L, _eps),
       message="z = mu + L eps for each example (a batched matrix-vector product), not eps L or L^T eps")
# the samples have covariance L L^T
_L1 = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
_n = 50_000
_zs = reparameterize_full(torch.zeros(_n, 3), _L1.expand(_n, 3, 3), torch.randn(_n, 3, generator=_gen))
assert torch.allclose(torch.cov(_zs.T), _L1 @ _L1.T, atol=0.03)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Put it together (not graded)
#
# 1. Your KL of (a) is what a VAE with a **learned prior** pays: here $\mathrm{KL}(q\,\|\,p)$ for the posterior of one
#    test digit against $\mathcal{N}(0, I)$ and against a prior centred on the code of another digit.
# 2. The leave-one-out baseline of (b) on the lesson's $f(z) = z^2$: its variance, against the plain estimator's,
#    as $\sigma$ shrinks.

# %%
d = 4
mu_q, logvar_q = torch.tensor([[1.5, -0.3, 0.2, 0.8]]), torch.full((1, d), -2.0)
kl_std = kl_diag_gaussians(mu_q, logvar_q, torch.zeros(1, d), torch.zeros(1, d)).item()
kl_near = kl_diag_gaussians(mu_q, logvar_q, mu_q + 0.1, torch.full((1, d), -1.0)).item()
print(f"KL to N(0, I): {kl_std:.2f} nats; to a prior centred near the code: {kl_near:.2f} nats")
assert kl_near < kl_std

mu0 = torch.tensor([1.0])
for s in (1.0, 0.3, 0.1):
    sig = torch.tensor([s])
    zz = mu0 + sig * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(1))
    fz = (zz**2).sum(1)
    plain = fz[:, None] * (zz - mu0) / sig**2
    loo = score_function_loo(fz, zz, mu0, sig)
    print(f"sigma = {s:3.1f}: variance of one draw, plain {plain.var():9.1f}, leave-one-out {loo.var():7.2f}, "
          f"pathwise {(2 * zz).var():.3f}")
