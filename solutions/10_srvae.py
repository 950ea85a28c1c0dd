# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 10: the formulas of the two-stage VAE and of its mixture prior
#
# The lesson called `course_lib` for these; here you write them.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)`: the KL between two diagonal Gaussians (the $\mathrm{KL}(q(z \mid x)\,\|\,p(z \mid y, u))$ of eq. 19) | 2 |
# | (b) | `srvae_neg_elbo(x, x_hat, y, y_hat, log_gamma_1, log_gamma_2, kl_u, kl_z)`: eq. 21, corrected, for both stages | 3 |
# | (c) | `mixture_kl_bound(mu, logvar, logits, loc, log_scale)`: the seed's convexity bound on $\mathrm{KL}(q\,\|\,\text{mixture})$ | 3 |
# | (d) | `mixture_kl_tighter_bound(...)`: a tighter upper bound, $-\log\sum_k w_k e^{-\mathrm{KL}(q \| p_k)}$ | 2 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages say what to look at. Graded cells (marked "grade") run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations only, and do not call `course_lib.losses` or
# `course_lib.distributions`: the point is to write the formula.
#
# **Units** nats; `logvar` is $\log\sigma^2$; shapes are given in each statement. Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
from torch.distributions import Independent, Normal

from course_lib.tooling.checks import record
from course_lib.runtime import seed_everything

seed_everything(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The KL between two diagonal Gaussians (2 points)
#
# The last term of the SR-VAE's loss compares the encoder $q(z \mid x) = \mathcal{N}(\mu_q, \operatorname{diag}\sigma_q^2)$ with a
# *learned* prior $p(z \mid y, u) = \mathcal{N}(\mu_p, \operatorname{diag}\sigma_p^2)$, not with $\mathcal{N}(0, I)$. For $d$ independent
# coordinates,
#
# $$\mathrm{KL}(q\,\|\,p) = \frac12 \sum_{j=1}^{d}\Big[\log\frac{\sigma_{p,j}^2}{\sigma_{q,j}^2} + \frac{\sigma_{q,j}^2 + (\mu_{q,j} - \mu_{p,j})^2}{\sigma_{p,j}^2} - 1\Big].$$
#
# Write `diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)`: four tensors of shape `(batch, d)` (or broadcastable to it);
# return shape `(batch,)`, the KL **summed** over the last dimension.

# %%
def diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last dimension."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1.0).sum(dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_z = torch.zeros(3, 2)
_kl = diag_gaussian_kl(_z, _z, _z, _z)
assert torch.is_tensor(_kl) and _kl.shape == (3,), (
    f"for inputs of shape (3, 2) expect one KL per example, shape (3,), got {tuple(getattr(_kl, 'shape', ()))}: "
    "sum over the last dimension")
assert torch.allclose(_kl, torch.zeros(3), atol=1e-6), "KL(q || q) must be 0: check the '- 1' and the log-variance terms"
_kl = diag_gaussian_kl(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), math.log(4.0)))
_want = 0.5 * (math.log(4.0) + 1 / 4 - 1)
assert abs(_kl.item() - _want) < 1e-5, (
    f"q = N(0, 1), p = N(0, 4): KL = (log 4 + 1/4 - 1) / 2 = {_want:.4f}, got {_kl.item():.4f}; the variance ratio is "
    "sigma_q^2 / sigma_p^2 (q's variance on top), and the log term is log sigma_p^2 - log sigma_q^2")
_kl = diag_gaussian_kl(torch.tensor([[3.0]]), torch.zeros(1, 1), torch.tensor([[1.0]]), torch.full((1, 1), math.log(2.0)))
_want = 0.5 * (math.log(2.0) + (1 + 4) / 2 - 1)
assert abs(_kl.item() - _want) < 1e-5, (
    f"q = N(3, 1), p = N(1, 2): expected {_want:.4f}, got {_kl.item():.4f}; the squared distance of the means is divided "
    "by p's variance, not q's")
print("Self-check (a) passed.")

# %% grade={"exercise": "diag_gaussian_kl", "points": 2}
### BEGIN HIDDEN TESTS
from torch.distributions import kl_divergence as _kl_div

_g = torch.Generator().manual_seed(101)
for _b, _d in [(1, 1), (6, 4), (32, 16)]:
    _mq, _lq, _mp, _lp = (2 * torch.randn(_b, _d, generator=_g, dtype=torch.float64) for _ in range(4))
    _got = diag_gaussian_kl(_mq, _lq, _mp, _lp)
    _want = _kl_div(Normal(_mq, torch.exp(_lq / 2)), Normal(_mp, torch.exp(_lp / 2))).sum(-1)
    assert _got.shape == (_b,)
    assert torch.allclose(_got, _want, rtol=1e-8, atol=1e-10)
    record(f"diag_gaussian_kl, batch {_b}, d={_d}", _got, rtol=1e-7, atol=1e-9,
           message="KL(q || p) = 1/2 sum_j [lv_p - lv_q + (e^lv_q + (mu_q - mu_p)^2) / e^lv_p - 1], one value per example")
# not symmetric: swapping q and p changes the value
_a, _b2 = torch.tensor([[0.0]]), torch.tensor([[2.0]])
assert not torch.allclose(diag_gaussian_kl(_a, _a, _b2, _b2), diag_gaussian_kl(_b2, _b2, _a, _a))
# the standard-normal case of lesson 3
_mu, _lv = torch.randn(5, 3, generator=_g), torch.randn(5, 3, generator=_g)
assert torch.allclose(diag_gaussian_kl(_mu, _lv, torch.zeros(5, 3), torch.zeros(5, 3)),
                      0.5 * (_lv.exp() + _mu ** 2 - 1 - _lv).sum(-1), rtol=1e-5)
# broadcasting a (1, d) prior against a batch
assert diag_gaussian_kl(_mu, _lv, torch.zeros(1, 3), torch.zeros(1, 3)).shape == (5,)
record("diag_gaussian_kl against a broadcast (1, d) prior", diag_gaussian_kl(_mu, _lv, torch.zeros(1, 3), torch.zeros(1, 3)),
       message="the prior's parameters broadcast against the batch")
record("diag_gaussian_kl is not symmetric", diag_gaussian_kl(_b2, _b2, _a, _a).double(),
       message="the divergence of q from p: q's variance on top, p's variance below")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The two-stage negative ELBO, eq. 21 corrected (3 points)
#
# With $\mathrm{MSE}(x, \hat x) = \frac{1}{k}\sum_{n=1}^{k}(x_n - \hat x_n)^2$ (the mean over the $k$ pixels of **one** image,
# with the square) and two Gaussian decoders with deviations $\gamma_1$ (for $x$, $k_x$ pixels) and $\gamma_2$ (for $y$,
# $k_y$ pixels):
#
# $$-\mathrm{ELBO} = k_x\log\gamma_1 + \frac{k_x}{2\gamma_1^2}\mathrm{MSE}(x, \hat x) + k_y\log\gamma_2 + \frac{k_y}{2\gamma_2^2}\mathrm{MSE}(y, \hat y)
#  + \frac{k_x + k_y}{2}\log 2\pi + \mathrm{KL}_u + \mathrm{KL}_z .$$
#
# (The seed writes $\frac{k}{2\gamma}$, one $k$ for both images, and drops the constant: three things to fix.)
#
# Write `srvae_neg_elbo(x, x_hat, y, y_hat, log_gamma_1, log_gamma_2, kl_u, kl_z)`: `x`, `x_hat` of shape `(batch, C, H, W)`,
# `y`, `y_hat` of shape `(batch, C, h, w)`, the log-gammas scalar tensors, `kl_u` and `kl_z` of shape `(batch,)`.
# Return a **scalar**: the per-example value averaged over the batch. Take $k_x$ and $k_y$ from the shapes.

# %%
def srvae_neg_elbo(x, x_hat, y, y_hat, log_gamma_1, log_gamma_2, kl_u, kl_z):
    """Eq. 21 (corrected) per example, averaged over the batch: nats per example."""
    ### BEGIN SOLUTION
    def one_stage(a, a_hat, log_gamma):
        k = a[0].numel()
        mse = ((a - a_hat) ** 2).reshape(len(a), -1).mean(dim=1)
        return k * log_gamma + k * mse / (2 * torch.exp(2 * log_gamma)) + 0.5 * k * math.log(2 * math.pi)

    return (one_stage(x, x_hat, log_gamma_1) + one_stage(y, y_hat, log_gamma_2) + kl_u + kl_z).mean()
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_x, _y = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)
_zero = torch.tensor(0.0)
_val = srvae_neg_elbo(_x, _x, _y, _y, _zero, _zero, torch.zeros(2), torch.zeros(2))
assert torch.is_tensor(_val) and _val.dim() == 0, "return a scalar: the average over the batch"
assert abs(_val.item() - 10 * math.log(2 * math.pi)) < 1e-4, (
    f"perfect reconstructions, gamma = 1, KLs 0: only the constants (16 + 4)/2 log 2 pi = {10 * math.log(2 * math.pi):.4f} "
    f"remain; got {_val.item():.4f}: check k_x = 16 and k_y = 4 (pixels per image) and the (k/2) log 2 pi terms")
_xh = _x + 0.1
_val = srvae_neg_elbo(_x, _xh, _y, _y, torch.tensor(math.log(0.1)), _zero, torch.zeros(2), torch.zeros(2))
_want = 16 * math.log(0.1) + 16 / (2 * 0.01) * 0.01 + 10 * math.log(2 * math.pi)
assert abs(_val.item() - _want) < 1e-3, (
    f"x - x_hat = 0.1 everywhere, gamma_1 = 0.1: expected {_want:.4f}, got {_val.item():.4f}; the squared error is divided by "
    "2 gamma^2 (the seed's 2 gamma is the erratum), and the MSE has a square")
_val = srvae_neg_elbo(_x, _x, _y, _y, _zero, _zero, torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0]))
assert abs(_val.item() - (10 * math.log(2 * math.pi) + 3.0)) < 1e-4, "add kl_u + kl_z per example, then average"
print("Self-check (b) passed.")

# %% grade={"exercise": "srvae_neg_elbo", "points": 3}
### BEGIN HIDDEN TESTS
from course_lib.models.srvae import SRVAE as _SRVAE

_g = torch.Generator().manual_seed(102)
_x = torch.rand(5, 1, 28, 28, generator=_g)
_xh = _x + 0.2 * torch.randn(5, 1, 28, 28, generator=_g)
_y = torch.rand(5, 1, 7, 7, generator=_g)
_yh = _y + 0.3 * torch.randn(5, 1, 7, 7, generator=_g)
_l1, _l2 = torch.tensor(-1.7), torch.tensor(0.4)
_ku, _kz = torch.rand(5, generator=_g) * 10, torch.rand(5, generator=_g) * 20
_ref = (-Normal(_xh, _l1.exp()).log_prob(_x).flatten(1).sum(1) - Normal(_yh, _l2.exp()).log_prob(_y).flatten(1).sum(1)
        + _ku + _kz).mean()
assert torch.allclose(srvae_neg_elbo(_x, _xh, _y, _yh, _l1, _l2, _ku, _kz), _ref, rtol=1e-5)
record("srvae_neg_elbo on a random batch", srvae_neg_elbo(_x, _xh, _y, _yh, _l1, _l2, _ku, _kz), rtol=1e-5,
       message="the corrected eq. 21 for both stages: ||x - x_hat||^2 / (2 gamma^2) + k log gamma + (k/2) log 2 pi, "
               "plus the two KLs, averaged over the batch")
# the same number as the course's SR-VAE loss with the same noise
torch.manual_seed(0)
_m = _SRVAE(factor=4, u_dim=3, z_dim=4, hidden=16, gamma_init=0.3)
torch.manual_seed(3)
_t = _m.loss(_x)
torch.manual_seed(3)
_yy = torch.nn.functional.avg_pool2d(_x, 4)
_mu, _lv = _m.enc_u(_yy.flatten(1)).chunk(2, -1)
_u = _mu + torch.exp(_lv / 2) * torch.randn_like(_mu)
_mz, _lz = _m.enc_z(_x.flatten(1)).chunk(2, -1)
_zz = _mz + torch.exp(_lz / 2) * torch.randn_like(_mz)
_val = srvae_neg_elbo(_x, _m.x_hat(_yy, _zz), _yy, _m.y_hat(_u), _m.log_gamma_x, _m.log_gamma_y,
                      torch.full((5,), _t["kl_u"].item()), torch.full((5,), _t["kl_z"].item()))
assert torch.allclose(_val, _t["loss"], rtol=1e-4)
record("srvae_neg_elbo equals the model's loss", _val, rtol=1e-4, message="same number as SRVAE.loss with the same noise")
# differentiable in gamma
_lg = torch.tensor(-1.0, requires_grad=True)
srvae_neg_elbo(_x, _xh, _y, _yh, _lg, _l2, _ku, _kz).backward()
assert _lg.grad is not None and torch.isfinite(_lg.grad)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) The convexity bound on the KL to a mixture (3 points)
#
# For a diagonal Gaussian $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ and the mixture prior
# $p = \sum_k w_k\,\mathcal{N}(\mu_k, \operatorname{diag}\sigma_k^2)$, $w = \mathrm{softmax}(\text{logits})$ (seed 003, section 4):
#
# $$\mathrm{KL}\Big(q\,\Big\|\,\sum_k w_k p_k\Big) \le \sum_{k=1}^{K} w_k\,\mathrm{KL}(q\,\|\,p_k).$$
#
# Write `mixture_kl_bound(mu, logvar, logits, loc, log_scale)`: `mu`, `logvar` of shape `(B, d)` (B posteriors),
# `logits` of shape `(K,)`, `loc` and `log_scale` (log standard deviations) of shape `(K, d)`. Return shape `(B,)`.
# Use your `diag_gaussian_kl` with broadcasting (a `(B, 1, d)` against a `(1, K, d)`), no Python loop over components.

# %%
def mixture_kl_bound(mu, logvar, logits, loc, log_scale):
    """sum_k w_k KL(N(mu, e^logvar) || N(loc_k, e^(2 log_scale_k))), one value per row of mu."""
    ### BEGIN SOLUTION
    per_component = diag_gaussian_kl(mu[:, None, :], logvar[:, None, :], loc[None], 2 * log_scale[None])   # (B, K)
    return (torch.softmax(logits, dim=-1) * per_component).sum(dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**

# %%
_mu, _lv = torch.zeros(3, 2), torch.zeros(3, 2)
_bound = mixture_kl_bound(_mu, _lv, torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2))
assert torch.is_tensor(_bound) and _bound.shape == (3,), f"one bound per posterior: shape (3,), got {tuple(_bound.shape)}"
assert torch.allclose(_bound, torch.zeros(3), atol=1e-6), "one component equal to q: the KL (and the bound) is 0"
_bound = mixture_kl_bound(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([0.0, math.log(3.0)]),
                          torch.tensor([[2.0], [0.0]]), torch.zeros(2, 1))
assert abs(_bound.item() - 0.25 * 2.0) < 1e-5, (
    f"weights (1/4, 3/4), KLs (2, 0): the bound is 1/4 * 2 + 3/4 * 0 = 0.5, got {_bound.item():.4f}; the weights are "
    "softmax(logits), and log_scale is a log standard deviation (its log-variance is 2 * log_scale)")
_bound = mixture_kl_bound(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, 1), torch.full((1, 1), math.log(2.0)))
assert abs(_bound.item() - 0.5 * (math.log(4.0) + 0.25 - 1)) < 1e-5, (
    "p = N(0, 2^2): the component's variance is exp(2 * log_scale) = 4, not exp(log_scale)")
print("Self-check (c) passed.")

# %% grade={"exercise": "mixture_kl_bound", "points": 3}
### BEGIN HIDDEN TESTS
from course_lib.distributions import MixtureOfGaussians as _MoG
from course_lib.distributions import kl_mixture_upper_bound as _ref_bound
from torch.distributions import kl_divergence as _kl_div


def _ref_kl(a, b, c, d):
    """Reference KL between diagonal Gaussians (log-variances b, d), summed over the last dimension."""
    return _kl_div(Normal(a, torch.exp(b / 2)), Normal(c, torch.exp(d / 2))).sum(-1)


# (c) is graded on its own: a mistake in (a) is not counted twice
_student_kl = globals().get("diag_gaussian_kl")
diag_gaussian_kl = _ref_kl
try:
    _g = torch.Generator().manual_seed(103)
    for _B, _K, _d in [(1, 1, 1), (7, 3, 2), (16, 10, 8)]:
        _mu = torch.randn(_B, _d, generator=_g, dtype=torch.float64)
        _lv = torch.randn(_B, _d, generator=_g, dtype=torch.float64) - 1
        _lo = torch.randn(_K, generator=_g, dtype=torch.float64)
        _loc = 2 * torch.randn(_K, _d, generator=_g, dtype=torch.float64)
        _ls = 0.3 * torch.randn(_K, _d, generator=_g, dtype=torch.float64)
        _got = mixture_kl_bound(_mu, _lv, _lo, _loc, _ls)
        _want = _ref_bound(Independent(Normal(_mu, torch.exp(_lv / 2)), 1), _MoG(_lo, _loc, _ls.exp()))
        assert _got.shape == (_B,)
        assert torch.allclose(_got, _want, rtol=1e-8, atol=1e-10)
        record(f"mixture_kl_bound, B={_B}, K={_K}, d={_d}", _got, rtol=1e-7, atol=1e-9,
               message="sum_k w_k KL(q || p_k) with w = softmax(logits) and p_k's log-variance 2 log scale_k")
    # unnormalised logits: adding a constant changes nothing
    assert torch.allclose(mixture_kl_bound(_mu, _lv, _lo + 5, _loc, _ls), _got)
    record("mixture_kl_bound with shifted logits", mixture_kl_bound(_mu, _lv, _lo + 5, _loc, _ls), rtol=1e-7, atol=1e-9,
           message="the weights are softmax(logits): adding a constant to the logits changes nothing")
finally:
    diag_gaussian_kl = _student_kl
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (d) A tighter upper bound (2 points)
#
# The lesson showed the convexity bound is loose when the components are far apart. A tighter one: the
# log-density of a mixture is a `logsumexp`, and `logsumexp` is **convex** in its arguments, so by Jensen
#
# $$\mathbb{E}_q\log\sum_k w_k p_k(u) \;\ge\; \log\sum_k w_k \exp\big(\mathbb{E}_q \log p_k(u)\big)
# \quad\Longrightarrow\quad
# \mathrm{KL}\Big(q\,\Big\|\,\sum_k w_k p_k\Big) \;\le\; -\log\sum_{k=1}^{K} w_k\, e^{-\mathrm{KL}(q \| p_k)}
# \;\le\; \sum_k w_k\,\mathrm{KL}(q\,\|\,p_k)$$
#
# (the second inequality is Jensen again, for the convex $t \mapsto e^{-t}$). Write `mixture_kl_tighter_bound`,
# same arguments and shape as (c). Compute it stably: $-\log\sum_k e^{\log w_k - \mathrm{KL}_k}$ with `torch.logsumexp`
# (KLs of hundreds of nats must not give `inf`).

# %%
def mixture_kl_tighter_bound(mu, logvar, logits, loc, log_scale):
    """-log sum_k w_k exp(-KL(q || p_k)), one value per row of mu."""
    ### BEGIN SOLUTION
    per_component = diag_gaussian_kl(mu[:, None, :], logvar[:, None, :], loc[None], 2 * log_scale[None])   # (B, K)
    return -torch.logsumexp(torch.log_softmax(logits, dim=-1) - per_component, dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (d)**

# %%
_args = (torch.tensor([[3.0]]), torch.full((1, 1), 2 * math.log(0.5)), torch.zeros(2), torch.tensor([[-3.0], [3.0]]),
         torch.zeros(2, 1))
_tight = mixture_kl_tighter_bound(*_args)
assert torch.is_tensor(_tight) and _tight.shape == (1,), "one value per posterior, shape (B,)"
_near = 0.5 * (0.0 - 2 * math.log(0.5) + 0.25 - 1)                    # KL(N(3, 0.5^2) || N(3, 1))
_far = _near + 0.5 * 36                                                # + (6^2) / 2
_want = -math.log(0.5 * math.exp(-_near) + 0.5 * math.exp(-_far))
assert abs(_tight.item() - _want) < 1e-4, (
    f"q = N(3, 0.5^2), components N(-3, 1) and N(3, 1), equal weights: expected {_want:.4f}, got {_tight.item():.4f}; "
    "it is -logsumexp(log w_k - KL_k), with log w = log_softmax(logits)")
assert _tight.item() < mixture_kl_bound(*_args).item(), "the tighter bound must be below the convexity bound (c)"
_huge = mixture_kl_tighter_bound(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(2), torch.full((2, 1), 100.0),
                                 torch.zeros(2, 1))
assert torch.isfinite(_huge).all() and abs(_huge.item() - 5000.0) < 1.0, (
    "KLs of 5,000 nats: exp(-KL) underflows to 0; use torch.logsumexp, not log(sum(exp(...)))")
print("Self-check (d) passed.")

# %% grade={"exercise": "mixture_kl_tighter_bound", "points": 2}
### BEGIN HIDDEN TESTS
from torch.distributions import kl_divergence as _kl_div


def _ref_kl(a, b, c, d):
    """Reference KL between diagonal Gaussians (log-variances b, d), summed over the last dimension."""
    return _kl_div(Normal(a, torch.exp(b / 2)), Normal(c, torch.exp(d / 2))).sum(-1)


_student_kl = globals().get("diag_gaussian_kl")
diag_gaussian_kl = _ref_kl
try:
    _g = torch.Generator().manual_seed(104)
    _mu = torch.randn(12, 2, generator=_g, dtype=torch.float64)
    _lv = torch.randn(12, 2, generator=_g, dtype=torch.float64) - 1
    _lo = torch.randn(4, generator=_g, dtype=torch.float64)
    _loc = 3 * torch.randn(4, 2, generator=_g, dtype=torch.float64)
    _ls = 0.3 * torch.randn(4, 2, generator=_g, dtype=torch.float64)
    _tight = mixture_kl_tighter_bound(_mu, _lv, _lo, _loc, _ls)
    _kls = _ref_kl(_mu[:, None], _lv[:, None], _loc[None], 2 * _ls[None])
    _w = torch.softmax(_lo, 0)
    assert _tight.shape == (12,)
    assert torch.allclose(_tight, -torch.log((_w * torch.exp(-_kls)).sum(-1)), rtol=1e-8)
    assert (_tight <= (_w * _kls).sum(-1) + 1e-9).all()
    # above the Monte Carlo KL (it is an upper bound)
    _q = Independent(Normal(_mu, torch.exp(_lv / 2)), 1)
    _comp = Normal(_loc, _ls.exp())
    torch.manual_seed(5)
    _u = _q.sample((40_000,))
    _logp = torch.logsumexp(torch.log(_w) + _comp.log_prob(_u[:, :, None, :]).sum(-1), dim=-1)
    _terms = _q.log_prob(_u) - _logp
    _mc, _se = _terms.mean(0), _terms.std(0) / 200
    assert (_tight >= _mc - 5 * _se).all()
    record("mixture_kl_tighter_bound", _tight, rtol=1e-7, atol=1e-9,
           message="-log sum_k w_k exp(-KL(q || p_k)): use logsumexp for stability")
    # exact for one component
    _one = mixture_kl_tighter_bound(_mu, _lv, _lo[:1], _loc[:1], _ls[:1])
    assert torch.allclose(_one, _kls[:, 0], rtol=1e-8)
    record("mixture_kl_tighter_bound with one component", _one, rtol=1e-7, atol=1e-9,
           message="with one component the bound is the KL itself")
finally:
    diag_gaussian_kl = _student_kl
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Put it together (not graded)
#
# The lesson's 1-D picture in two dimensions: $q = \mathcal{N}(m, 0.5^2 I)$ moves from one component of a
# two-component mixture to the other; the Monte Carlo KL (unbiased), your tighter bound (d) and the
# convexity bound (c). The tighter bound should stay within about $\log 2$ of the KL everywhere; the convexity
# bound pays for the far component.

# %%
_logits, _loc, _ls = torch.zeros(2), torch.tensor([[-3.0, 0.0], [3.0, 0.0]]), torch.zeros(2, 2)
_comp = Normal(_loc, _ls.exp())
print("  m   |  MC KL | tighter (d) | convexity (c)")
for _m in (-3.0, -1.5, 0.0, 1.5, 3.0):
    _mu, _lv = torch.tensor([[_m, 0.0]]), torch.full((1, 2), 2 * math.log(0.5))
    _q = Independent(Normal(_mu, torch.exp(_lv / 2)), 1)
    torch.manual_seed(0)
    _u = _q.sample((20_000,))
    _logp = torch.logsumexp(torch.log_softmax(_logits, 0) + _comp.log_prob(_u[:, :, None, :]).sum(-1), dim=-1)
    _mc = (_q.log_prob(_u) - _logp).mean().item()
    _t, _c = mixture_kl_tighter_bound(_mu, _lv, _logits, _loc, _ls).item(), mixture_kl_bound(_mu, _lv, _logits, _loc, _ls).item()
    print(f"{_m:5.1f} | {_mc:6.2f} | {_t:11.2f} | {_c:13.2f}")
    assert _mc - 0.05 <= _t <= _c + 1e-6 and _t - _mc < math.log(2) + 0.05
