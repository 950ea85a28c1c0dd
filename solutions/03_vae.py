# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 3: one step beyond the Gaussian VAE
#
# Lesson 3 wrote the KL of $q_\phi(z \mid x)$ to $\mathcal{N}(0, I)$, the score-function estimator without a baseline and
# the reparameterization of a **diagonal** Gaussian. Each exercise takes the next step.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)`: the KL to a learned Gaussian prior, derived and checked by Monte Carlo | 3 |
# | (b) | `score_function_loo(fz, z, mu, sigma)`: the score-function estimator with a leave-one-out baseline | 3 |
# | (c) | `reparameterize_full(mu, L, eps)`: a reparameterized sample of a Gaussian with a full covariance | 2 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages say what to look at. Graded cells (marked "grade") record values of your functions on
# hidden inputs when your work is collected, and compare them with the reference solution's: do not edit or delete
# them. Use `torch` operations only (no NumPy, no `torch.distributions` in your answers: the point is to derive
# the formula).
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
# ## (a) The KL to a learned Gaussian prior (3 points)
#
# Lesson 3 derived the KL of $q_\phi(z \mid x) = \mathcal{N}(\mu_q, \operatorname{diag}\sigma_q^2)$ to the fixed prior
# $\mathcal{N}(0, I)$ (its eq. 3). A VAE with a **learned prior** (seed 003, the two-stage VAE: the prior of $z$ is a
# Gaussian whose mean and variance a network outputs) pays instead $\mathrm{KL}(q \,\|\, p)$ with
# $p = \mathcal{N}(\mu_p, \operatorname{diag}\sigma_p^2)$. Derive its closed form from the definition,
# $\mathrm{KL}(q \,\|\, p) = \mathbb{E}_{q}[\log q(z) - \log p(z)]$, one latent dimension at a time, and write it:
#
# `kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)`: four tensors of shape `(batch, d)` (`logvar` is
# $\log\sigma^2$); return one KL per example, shape `(batch,)`, in nats, differentiable in all four inputs.
#
# **The check** (the self-check below does it): on random inputs your closed form must agree with a Monte Carlo
# estimate of the definition (draws $z \sim q$, the average of $\log q(z) - \log p(z)$), and with $\mu_p = 0$,
# $\log\sigma_p^2 = 0$ it must give the lesson's eq. (3). Write the formula with `torch` operations: a submission
# that calls `torch.distributions` or `course_lib.losses` for the KL earns no points.

# %%
def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last dimension."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1.0).sum(-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**: run this cell; each check targets one usual mistake and says which.

# %%
from torch.distributions import Normal   # for the Monte Carlo check only


def _kl_mc(mu_q, logvar_q, mu_p, logvar_p, n=200_000, seed=0):
    """Monte Carlo estimate of E_q[log q(z) - log p(z)] and its standard error, one per example."""
    _q, _p = Normal(mu_q, torch.exp(0.5 * logvar_q)), Normal(mu_p, torch.exp(0.5 * logvar_p))
    _zs = _q.mean + _q.stddev * torch.randn((n, *mu_q.shape), generator=torch.Generator().manual_seed(seed),
                                            dtype=mu_q.dtype)
    _t = (_q.log_prob(_zs) - _p.log_prob(_zs)).sum(-1)
    return _t.mean(0), _t.std(0) / math.sqrt(n)


_mq = torch.tensor([[0.5, -1.0, 0.2], [1.5, 0.3, -0.4]], dtype=torch.float64)
_lq = torch.tensor([[0.3, -0.7, 0.1], [-0.5, 0.4, 0.9]], dtype=torch.float64)
_mp = torch.tensor([[-0.4, 0.6, 1.0], [0.2, -1.1, 0.5]], dtype=torch.float64)
_lp = torch.tensor([[0.8, 0.2, -0.6], [0.5, -0.3, 1.2]], dtype=torch.float64)
_kl = kl_diag_gaussians(_mq, _lq, _mp, _lp)
assert torch.is_tensor(_kl), "kl_diag_gaussians should return a torch tensor"
assert _kl.shape == (2,), (f"for inputs of shape (2, 3) expect one KL per example, shape (2,), got {tuple(_kl.shape)}: "
                           "sum over the latent dimension (dim=-1), not over the batch")
_same = kl_diag_gaussians(_mq, _lq, _mq, _lq)
assert torch.allclose(_same, torch.zeros(2, dtype=torch.float64), atol=1e-9), (
    f"KL(q || q) must be 0, got {_same.tolist()}: check the constant (-1 per dimension) and that the log term "
    "is a log-ratio of the two variances")
_zero = torch.zeros_like(_mq)
_std = 0.5 * (_lq.exp() + _mq**2 - 1 - _lq).sum(-1)
_got = kl_diag_gaussians(_mq, _lq, _zero, _zero)
assert torch.allclose(_got, _std, atol=1e-9), (
    f"with p = N(0, I) your KL should equal the lesson's eq. (3): {_std.tolist()}, got {_got.tolist()}"
    + (": it is 2x too large, did you forget the 1/2?" if torch.allclose(_got, 2 * _std) else ""))
_got = kl_diag_gaussians(_mq, _lq, _zero, _lp)          # a prior centred at 0 with other variances
_want = torch.tensor([0.8654003865233084, 1.128411360132427], dtype=torch.float64)      # the reference's values
_swapped = torch.tensor([1.570030222505416, 2.3998643743017247], dtype=torch.float64)   # ... of KL(p || q)
assert torch.allclose(_got, _want, atol=1e-9), (
    f"KL(q || N(0, diag sigma_p^2)) should be {_want.tolist()}, got {_got.tolist()}: "
    + ("your function computes KL(p || q): the expectation is under q, the FIRST pair of arguments"
       if torch.allclose(_got, _swapped, atol=1e-9) else
       "check how the two variances enter, and which of the two Gaussians the expectation is taken under"))
_got = kl_diag_gaussians(_mq, _lp, _mp, _lp)              # equal variances: only the means differ
_want = torch.tensor([1.8130316105322544, 1.9573636947061004], dtype=torch.float64)
assert torch.allclose(_got, _want, atol=1e-9), (
    f"with equal variances the KL should be {_want.tolist()}, got {_got.tolist()}: with sigma_q = sigma_p only the "
    "squared mean difference remains; check what it is divided by (a variance, not a standard deviation)")
_mc, _se = _kl_mc(_mq, _lq, _mp, _lp)
assert ((_kl - _mc).abs() < 5 * _se).all(), (
    f"your KL {_kl.tolist()} disagrees with the Monte Carlo estimate {_mc.tolist()} (± {_se.tolist()})")
_a = _mq.clone().requires_grad_(True)
kl_diag_gaussians(_a, _lq, _mp, _lp).sum().backward()
assert _a.grad is not None and torch.isfinite(_a.grad).all() and _a.grad.abs().sum() > 0, \
    "the KL must be differentiable in mu_q: build it with torch operations, no .item() or NumPy"
print(f"Self-check (a) passed: {_kl.tolist()} nats; Monte Carlo {_mc.tolist()} ± {_se.max():.3f}")

# %% grade={"exercise": "kl_diag_gaussians", "points": 3, "forbidden": ["course_lib.losses.gaussian_kl_general", "course_lib.losses.gaussian_kl", "course_lib.estimators.kl_monte_carlo", "torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence"]}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(31)
for _batch, _d in [(1, 1), (7, 5), (32, 20)]:
    _a = [2 * torch.randn(_batch, _d, generator=_g) for _ in range(4)]
    record(f"kl_diag_gaussians, batch {_batch}, d={_d}", kl_diag_gaussians(*_a), rtol=1e-4, atol=1e-4,
           message="your KL differs on random Gaussians: derive E_q[log q - log p] one dimension at a time, "
                   "then sum over the d dimensions")
_a = [torch.tensor([[0.0, 0.5]]), torch.tensor([[0.0, -1.0]]), torch.tensor([[1.0, -0.5]]), torch.tensor([[2.0, 0.3]])]
record("KL(q || p) and KL(p || q)", [kl_diag_gaussians(*_a), kl_diag_gaussians(_a[2], _a[3], _a[0], _a[1])],
       message="the KL is not symmetric: the expectation is under q, the first pair of arguments")
_mq = torch.randn(3, 4, generator=_g, requires_grad=True)
_lq = torch.randn(3, 4, generator=_g, requires_grad=True)
_mp, _lp = torch.randn(3, 4, generator=_g), torch.randn(3, 4, generator=_g)
kl_diag_gaussians(_mq, _lq, _mp, _lp).sum().backward()
record("d KL / d mu_q and d KL / d logvar_q", [_mq.grad, _lq.grad], rtol=1e-4, atol=1e-5,
       message="the KL must be differentiable in mu_q and logvar_q: torch operations only, no .item() or NumPy")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The score function with a leave-one-out baseline (3 points)
#
# Lesson 3's score-function estimator of $\nabla_\mu \mathbb{E}_{q}[f(z)]$, $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, uses one
# draw and no baseline; its notes say that subtracting a baseline $b$ keeps it unbiased as long as $b$ does not
# depend on the draw it is subtracted from. With $n$ draws $z_1, \dots, z_n$ at hand, a cheap good baseline for
# draw $i$ is the **leave-one-out** one: the average of $f$ over the *other* $n - 1$ draws (Kool et al. 2019; Mnih &
# Rezende 2016). It is independent of $z_i$, so each per-draw estimate stays unbiased.
#
# Write `score_function_loo(fz, z, mu, sigma)`: `fz` of shape `(n,)` holds $f(z_i)$, `z` has shape `(n, d)`, `mu`
# and `sigma` shape `(d,)`; return the `(n, d)` per-draw estimates of $\nabla_\mu \mathbb{E}_q[f]$, each with its own
# leave-one-out baseline, without a Python loop over $i$.
#
# **The check**: averaged over many draws, your estimates must match the exact gradient ($2\mu$ for $f(z) = z^2$),
# with a variance well below that of the lesson's estimator without a baseline.

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

# %% grade={"exercise": "score_function_loo", "points": 3, "forbidden": ["course_lib.estimators.score_function_grad"]}
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(32)
_mu, _s = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.0, 0.7])
_zz = _mu + _s * torch.randn(8, 3, generator=_gen)
_fz = torch.randn(8, generator=_gen)
record("score_function_loo, 8 draws", score_function_loo(_fz, _zz, _mu, _s),
       message="draw i: (f(z_i) - mean of the OTHER draws' f) (z_i - mu) / sigma^2")
# f(z) = sum exp(z), many draws: the mean estimate (exact value exp(mu + sigma^2 / 2))
_zz = _mu + _s * torch.randn(200_000, 3, generator=_gen)
record("score_function_loo, mean of 200,000 draws of f = sum exp(z)",
       score_function_loo(_zz.exp().sum(1), _zz, _mu, _s).mean(0), rtol=1e-3, atol=1e-3,
       message="averaged over many draws the estimate must be unbiased: check the baseline leaves f(z_i) out")
_zz = _mu + _s * torch.randn(3, 3, generator=_gen)
_fz = torch.randn(3, generator=_gen)
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
# the next step after the lesson's diagonal trick: turn the standard normal noise into a draw of
# $\mathcal{N}(\mu, L L^\top)$ by a differentiable map of $(\mu, L)$.
#
# Write `reparameterize_full(mu, L, eps)`: `mu` and `eps` of shape `(batch, d)`, `L` of shape `(batch, d, d)` (one
# factor per example); return $z$, shape `(batch, d)`, differentiable in `mu` and `L`. Use the `eps` you are given.
#
# **The check**: for $\varepsilon \sim \mathcal{N}(0, I)$ your $z$ must have mean $\mu$ and covariance $L L^\top$ (the
# self-check measures both on many draws), and each example must use its own $L$.

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
_n = 40_000
_L1 = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
_m1 = torch.tensor([0.5, -2.0, 1.0])
_zs = reparameterize_full(_m1.expand(_n, 3), _L1.expand(_n, 3, 3), torch.randn(_n, 3, generator=torch.Generator().manual_seed(0)))
assert torch.allclose(_zs.mean(0), _m1, atol=0.03), f"the draws should have mean mu = {_m1.tolist()}, got {_zs.mean(0).tolist()}"
_cov = torch.cov(_zs.T)
assert torch.allclose(_cov, _L1 @ _L1.T, atol=0.03), (
    f"the covariance of your draws is\n{_cov}\nnot L L^T =\n{_L1 @ _L1.T}"
    + (":\nit is L^T L: you multiplied eps by L (or used L^T); L's rows act on eps" if torch.allclose(_cov, _L1.T @ _L1, atol=0.03)
       else ""))
assert torch.allclose(_z, torch.tensor([[3.0, 1.5]])), (
    f"for mu = (1, -1), L = [[2, 0], [0.5, 1]], eps = (1, 2) expected z = (3, 1.5), got {_z.tolist()}")
assert _z.requires_grad, "z has no gradient history: build it from mu and L with torch operations"
_z.sum().backward()
assert torch.allclose(_L.grad, torch.tensor([[[1.0, 2.0], [1.0, 2.0]]])), "dz_i / dL_ij should be eps_j"
_Lb = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])
_zb = reparameterize_full(torch.zeros(2, 2), _Lb, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
assert torch.allclose(_zb, torch.tensor([[1.0, 2.0], [0.0, 3.0]])), \
    f"each example uses its own L: expected [[1, 2], [0, 3]], got {_zb.tolist()}"
print("Self-check (c) passed.")

# %% grade={"exercise": "reparameterize_full", "points": 2, "forbidden": ["torch.distributions.MultivariateNormal.rsample"]}
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(33)
_b, _d = 5, 4
_mu = torch.randn(_b, _d, generator=_gen)
_L = torch.tril(torch.randn(_b, _d, _d, generator=_gen))
_eps = torch.randn(_b, _d, generator=_gen)
record("reparameterize_full, batch of 5", reparameterize_full(_mu, _L, _eps),
       message="z = mu + L eps for each example (a batched matrix-vector product), not eps L or L^T eps")
# the samples have covariance L L^T
_L1 = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
_n = 50_000
_zs = reparameterize_full(torch.zeros(_n, 3), _L1.expand(_n, 3, 3), torch.randn(_n, 3, generator=_gen))
record("covariance of 50,000 draws", torch.cov(_zs.T), rtol=1e-3, atol=1e-3,
       message="the draws must have covariance L L^T: multiply L by eps (L eps), not L^T eps or eps L")
_mu = torch.randn(2, 3, generator=_gen, requires_grad=True)
_L = torch.tril(torch.randn(2, 3, 3, generator=_gen)).requires_grad_(True)
reparameterize_full(_mu, _L, torch.randn(2, 3, generator=_gen)).pow(2).sum().backward()
record("gradients of sum z^2 w.r.t. mu and L", [_mu.grad, _L.grad], rtol=1e-4, atol=1e-5,
       message="z must be a differentiable function of mu and L (torch operations only)")
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
