# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 10: the two-stage VAE's second KL, and which component generated a code
#
# Two steps the lesson did not take: it called a library function for the first and never needed the second.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)`: $\mathrm{KL}(q(z \mid y, x)\,\|\,p(z \mid y, u))$ between two diagonal Gaussians, derived by you | 3 |
# | (b) | `responsibilities(u, logits, loc, log_scale)`: for each code $u$, the probability that each component of the mixture prior generated it | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages name the usual mistakes. Graded cells (marked "grade") run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations; the grade cells say which course_lib and torch
# functions your answer must not call (they would answer the exercise for you).
#
# **Units** nats; `logvar` is $\log\sigma^2$, `log_scale` is $\log\sigma$; shapes are given in each statement.
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
from torch.distributions import Normal

from course_lib.tooling.checks import record
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)
F64 = torch.float64

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The KL between the two Gaussians of the detail stage (3 points)
#
# The last term of the SR-VAE's loss compares the encoder $q(z \mid y, x) = \mathcal{N}(\mu_q, \operatorname{diag}\sigma_q^2)$
# with the *learned* conditional prior $p(z \mid y, u) = \mathcal{N}(\mu_p, \operatorname{diag}\sigma_p^2)$, not with
# $\mathcal{N}(0, I)$ as in lesson 3. The lesson called `losses.gaussian_kl_general` for it; here you **derive** it.
#
# Start from $\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q(z) - \log p(z)]$. Both densities factorise over the $d$
# coordinates, so the KL is a sum of $d$ one-dimensional KLs; for one coordinate, write the two Gaussian
# log-densities, and take the expectation under $q$ using $\mathbb{E}_q[z_j] = \mu_{q,j}$ and
# $\mathbb{E}_q[(z_j - c)^2] = \sigma_{q,j}^2 + (\mu_{q,j} - c)^2$.
#
# Write `diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)`: four tensors of shape `(batch, d)` (or broadcastable to it);
# return shape `(batch,)`, one KL per example, in nats.
#
# **Check**: $\mathrm{KL}(q\,\|\,q) = 0$; the value agrees with a Monte Carlo estimate of $\mathbb{E}_q[\log q - \log p]$
# (the self-check draws 200,000 samples); and the self-check names the usual slips.

# %%
def diag_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), one value per example (summed over the last dim)."""
    ### BEGIN SOLUTION
    var_ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + var_ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1.0).sum(dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_mq = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=F64)
_lq = torch.tensor([[0.2, -0.4, 1.0], [-1.0, 0.5, 0.3]], dtype=F64)
_mp = torch.tensor([[-0.3, 0.7, 1.0], [0.5, -1.2, 0.4]], dtype=F64)
_lp = torch.tensor([[0.6, 0.1, -0.5], [0.4, -0.3, 1.2]], dtype=F64)
_kl = diag_gaussian_kl(_mq, _lq, _mp, _lp)
assert torch.is_tensor(_kl) and _kl.shape == (2,), (
    f"for inputs of shape (2, 3) expect one KL per example, shape (2,), got {tuple(getattr(_kl, 'shape', ()))}: "
    "reduce over the last dimension (the coordinates), not over the batch")
assert torch.allclose(diag_gaussian_kl(_mq, _lq, _mq, _lq), torch.zeros(2, dtype=F64), atol=1e-10), (
    "KL(q || q) must be 0: is the constant of each coordinate's KL right?")
_slips = {  # what a usual slip gives on this case (numbers computed once), and what to look at
    (1.128913, 0.706132): "you averaged over the d coordinates: the KL of independent coordinates is their SUM",
    (6.773481, 4.236792): "twice too large: each coordinate's KL carries a factor 1/2",
    (3.083458, 3.32794): "you computed KL(p || q): the expectation is under q, the first argument",
    (2.189308, 4.161108): "the variance ratio is upside down: E_q[(z - mu_p)^2] / sigma_p^2 puts q's variance on top",
    (3.68089, 2.785228): "the squared distance between the means is measured in units of p's variance, not q's",
    (10.989962, 4.162901): "logvar is log sigma^2: the variance is exp(logvar), not exp(2 logvar)",
    (2.460867, 1.656174): "logvar is log sigma^2: the variance is exp(logvar), not exp(logvar / 2)",
    (3.98674, 0.618396): "the sign of the log term: log q - log p contributes log sigma_p - log sigma_q per coordinate",
    (4.88674, 3.618396): "the '- 1' of each coordinate is missing (then KL(q || q) would be d, not 0)",
}
for _vals, _why in _slips.items():
    assert not torch.allclose(_kl, torch.tensor(_vals, dtype=F64), atol=2e-6), _why
assert torch.allclose(_kl, torch.tensor([3.38674032, 2.11839580], dtype=F64), atol=1e-7), (
    f"expected [3.38674, 2.11840] nats, got {_kl.tolist()}: write E_q[log q - log p] for one coordinate, term by term")
_q, _p = Normal(_mq, (_lq / 2).exp()), Normal(_mp, (_lp / 2).exp())
_z = _q.sample((200_000,))
_mc = (_q.log_prob(_z) - _p.log_prob(_z)).sum(-1)
assert ((_mc.mean(0) - _kl).abs() < 5 * _mc.std(0) / math.sqrt(len(_mc))).all(), "your KL disagrees with Monte Carlo"
print("Self-check (a) passed: KL =", [round(v, 5) for v in _kl.tolist()], "nats; Monte Carlo",
      [round(v, 3) for v in _mc.mean(0).tolist()])

# %% grade={"exercise": "diag_gaussian_kl", "points": 3, "forbidden": ["course_lib.losses", "torch.distributions.kl.kl_divergence", "torch.distributions.kl_divergence"]}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(101)
for _b, _d in [(1, 1), (6, 4), (32, 16)]:
    _args = [2 * torch.randn(_b, _d, generator=_g, dtype=F64) for _ in range(4)]
    record(f"diag_gaussian_kl, batch {_b}, d={_d}", diag_gaussian_kl(*_args), rtol=1e-7, atol=1e-9,
           message="one KL per example, summed over the coordinates, for random means and log-variances")
_mu, _lv = torch.randn(5, 3, generator=_g, dtype=F64), torch.randn(5, 3, generator=_g, dtype=F64)
record("diag_gaussian_kl against a broadcast (1, d) prior",
       diag_gaussian_kl(_mu, _lv, torch.full((1, 3), 0.5, dtype=F64), torch.full((1, 3), -0.3, dtype=F64)), rtol=1e-7,
       atol=1e-9, message="the prior's parameters of shape (1, d) broadcast against the batch")
_a, _c = torch.zeros(1, 2, dtype=F64), torch.tensor([[2.0, -1.0]], dtype=F64)
record("diag_gaussian_kl, both orders", [diag_gaussian_kl(_a, _a, _c, _c), diag_gaussian_kl(_c, _c, _a, _a)], rtol=1e-7,
       atol=1e-9, message="the KL is not symmetric: the expectation is under the first distribution, q")
record("diag_gaussian_kl, large log-variances", diag_gaussian_kl(_a, _c * 10, _c, -_c * 10), rtol=1e-7, atol=1e-9,
       message="log-variances of +-20: compute the variance ratio as exp(logvar_q - logvar_p)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) Which component generated $u$? (3 points)
#
# The lesson's mixture prior $p(u) = \sum_k w_k\,\mathcal{N}(u;\ \mu_k, \operatorname{diag}\sigma_k^2)$, $w = \mathrm{softmax}(\text{logits})$,
# is a two-step story: draw a component $k$ with probability $w_k$, then $u$ from that component. Given $u$, how
# likely is each $k$? That posterior over components (the **responsibilities**) tells which component "owns" each
# code, e.g. to label the rows of the lesson's component figure or to find unused components.
#
# Write `responsibilities(u, logits, loc, log_scale)`: `u` of shape `(B, d)`, `logits` `(K,)`, `loc` and `log_scale`
# (log standard deviations) `(K, d)`; return shape `(B, K)`: row $i$ is the distribution of $k$ given $u_i$. Work in
# log space: a code 60 standard deviations from every component must not give NaN. Write the log-densities yourself
# (the constant of each component matters here: find out which one).
#
# **Check**: each row sums to 1; with one component every responsibility is 1; on codes drawn from a known mixture,
# the average responsibility of each component is its weight (the self-check draws them).

# %%
def responsibilities(u, logits, loc, log_scale):
    """P(component k | u) for each row of u: shape (B, K)."""
    ### BEGIN SOLUTION
    log_density = (-0.5 * ((u[:, None, :] - loc[None]) * torch.exp(-log_scale[None])) ** 2
                   - log_scale[None] - 0.5 * math.log(2 * math.pi)).sum(-1)                    # (B, K)
    return torch.softmax(torch.log_softmax(logits, -1) + log_density, dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_u = torch.tensor([[0.5, -1.0], [2.0, 1.0], [-1.5, 0.3]], dtype=F64)
_logits = torch.tensor([0.3, -0.5, 1.0], dtype=F64)
_loc = torch.tensor([[0.0, -1.0], [1.5, 1.5], [-1.0, 0.0]], dtype=F64)
_ls = torch.tensor([[0.2, -0.3], [-0.4, 0.1], [0.5, 0.4]], dtype=F64)
_r = responsibilities(_u, _logits, _loc, _ls)
assert torch.is_tensor(_r) and _r.shape == (3, 3), f"expected shape (B, K) = (3, 3), got {tuple(getattr(_r, 'shape', ()))}"
assert torch.allclose(_r.sum(1), torch.ones(3, dtype=F64)), (
    "each row (one code u) must be a distribution over the K components: normalise over the components, not the batch")
_slips = {
    (0.803189, 0.027142, 0.169669): "the weights w_k are missing: P(k | u) is proportional to w_k p_k(u)",
    (0.46109, 0.005732, 0.533178): "each component's normalising constant is missing: its density carries 1 / sigma_k "
                                   "per coordinate, and the components have different sigma_k",
    (0.803412, 0.000338, 0.19625): "the squared distance is divided by 2 sigma^2: the 1/2 is missing",
    (0.664653, 0.010258, 0.325089): "log_scale is log sigma (a standard deviation): the variance is exp(2 log_scale)",
}
for _vals, _why in _slips.items():
    assert not torch.allclose(_r[0], torch.tensor(_vals, dtype=F64), atol=2e-6), _why
assert torch.allclose(_r[0], torch.tensor([0.694166, 0.01054, 0.295294], dtype=F64), atol=2e-6), (
    f"first row: expected [0.694166, 0.010540, 0.295294], got {[round(v, 6) for v in _r[0].tolist()]}: Bayes' rule, "
    "P(k | u) = w_k p_k(u) / sum_j w_j p_j(u), with p_k the diagonal Gaussian density (all coordinates)")
assert torch.allclose(_r[2], torch.tensor([0.127015, 1.7e-05, 0.872968], dtype=F64), atol=2e-6), (
    "third row wrong while the first is right: check every coordinate of u enters (sum the log-densities over d)")
_one = responsibilities(_u, _logits[:1], _loc[:1], _ls[:1])
assert _one.shape == (3, 1) and torch.allclose(_one, torch.ones(3, 1, dtype=F64)), "one component owns every code"
_far = responsibilities(torch.full((2, 2), 60.0, dtype=F64) * torch.tensor([[1.0], [-1.0]], dtype=F64), _logits, _loc,
                        torch.full((3, 2), -1.0, dtype=F64))
assert torch.isfinite(_far).all() and torch.allclose(_far.sum(1), torch.ones(2, dtype=F64)), (
    "codes far from every component give NaN: exp of the log-densities underflows to 0 / 0; normalise in log space")
_k = torch.multinomial(torch.softmax(_logits, 0), 50_000, replacement=True, generator=make_generator(3))
_draw = _loc[_k] + _ls.exp()[_k] * torch.randn(50_000, 2, dtype=F64, generator=make_generator(4))
_avg = responsibilities(_draw, _logits, _loc, _ls).mean(0)
assert torch.allclose(_avg, torch.softmax(_logits, 0), atol=0.01), (
    f"on codes drawn from the mixture the average responsibilities {_avg.tolist()} should be the weights "
    f"{torch.softmax(_logits, 0).tolist()}")
print("Self-check (b) passed: average responsibilities", [round(v, 3) for v in _avg.tolist()], "vs weights",
      [round(v, 3) for v in torch.softmax(_logits, 0).tolist()])

# %% grade={"exercise": "responsibilities", "points": 3, "forbidden": ["course_lib.distributions"]}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(102)
for _b, _k, _d in [(1, 1, 1), (7, 3, 2), (16, 10, 8)]:
    _u = 2 * torch.randn(_b, _d, generator=_g, dtype=F64)
    _lo = torch.randn(_k, generator=_g, dtype=F64)
    _loc = 2 * torch.randn(_k, _d, generator=_g, dtype=F64)
    _ls = 0.4 * torch.randn(_k, _d, generator=_g, dtype=F64)
    record(f"responsibilities, B={_b}, K={_k}, d={_d}", responsibilities(_u, _lo, _loc, _ls), rtol=1e-6, atol=1e-9,
           message="P(k | u) = w_k p_k(u) / sum_j w_j p_j(u), w = softmax(logits), p_k diagonal Gaussian with std exp(log_scale)")
record("responsibilities with shifted logits", responsibilities(_u, _lo + 7.0, _loc, _ls), rtol=1e-6, atol=1e-9,
       message="the weights are softmax(logits): adding a constant to every logit changes nothing")
record("responsibilities far from every component", responsibilities(50 * torch.ones(3, _d, dtype=F64), _lo, _loc, _ls),
       rtol=1e-6, atol=1e-9, message="codes far from all components: normalise in log space (no 0 / 0)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Put it together (not graded)
#
# Draw codes from a two-component mixture in 2-D, keep which component drew each, and ask your (b) who drew it:
# the fraction of codes whose largest responsibility is the true component (it cannot be 1: the components overlap).
# Your (a) gives the KL from a narrow posterior near one component to each component.

# %%
_logits, _loc, _ls = torch.zeros(2, dtype=F64), torch.tensor([[-1.5, 0.0], [1.5, 0.0]], dtype=F64), torch.zeros(2, 2, dtype=F64)
_k = torch.randint(0, 2, (20_000,), generator=make_generator(5))
_draw = _loc[_k] + torch.randn(20_000, 2, dtype=F64, generator=make_generator(6))
_hit = (responsibilities(_draw, _logits, _loc, _ls).argmax(1) == _k).double().mean().item()
print(f"the largest responsibility names the true component for {_hit:.1%} of the codes "
      f"(the best any rule can do here: Phi(1.5) = {0.5 * (1 + math.erf(1.5 / math.sqrt(2))):.1%})")
print("KL from N((1.2, 0), 0.3^2 I) to each component:",
      [round(v, 2) for v in diag_gaussian_kl(torch.tensor([[1.2, 0.0]], dtype=F64), torch.full((1, 2), 2 * math.log(0.3), dtype=F64),
                                             _loc, 2 * _ls).tolist()], "nats")
