# %% [markdown]
# # Exercises, lesson 2: one step beyond the ELBO of the toy model
#
# The slides' toy model, $z \sim \mathrm{Bernoulli}(p)$, $x \mid z \sim \mathcal{N}(z, \sigma^2)$, with the
# variational family $q(z=1 \mid x) = \pi$. The lesson fitted $p$ with $\sigma$ known, used one sample of $z$ per
# Monte Carlo term and differentiated the closed-form ELBO. Each exercise takes the next step. **8 points** in all.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `m_step(x, pi)`: the EM M-step when $\sigma$ is learned too | 2 |
# | (b) | `iwae_bound(x, pi, p, sigma, k)`: the importance-weighted bound with $k$ samples, exactly | 3 |
# | (c) | `score_gradient(x, pi, p, sigma, z, baseline)`: a score-function estimate of the ELBO's gradient, with a baseline | 3 |
#
# For each: write the function in its cell, run the **self-check** cell below it (its messages say what is
# wrong), then the grade cell (empty for you; the grader puts its own tests back there). Use `torch` operations;
# do not call `course_lib` from your answers. Everything is in **nats per example**. Run time: a few seconds.

# %%
import math

import torch

from course_lib.toy_models import elbo as toy_elbo, log_evidence as toy_log_evidence      # the lesson's exact
from course_lib.toy_models import posterior_z1 as toy_posterior_z1, sample as toy_sample   # model, to check against
from course_lib.tooling.checks import record
from course_lib.runtime import describe, seed_everything

seed_everything(0)
torch.set_default_dtype(torch.float64)
print(describe())


def log_normal(x, mean, sigma):
    """log N(x; mean, sigma^2), elementwise (x a tensor, mean a tensor or float, sigma a float > 0)."""
    return -0.5 * ((x - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


# %% [markdown]
# ## (a) The M-step with a learned $\sigma$ (2 points)
#
# With $q(z=1 \mid x_i) = \pi_i$ fixed (the E-step's output), the average ELBO depends on $\theta = (p, \sigma)$
# through
#
# $$\frac1n \sum_i \Big[(1-\pi_i)\big(\log(1-p) + \log\mathcal{N}(x_i; 0, \sigma^2)\big)
#   + \pi_i\big(\log p + \log\mathcal{N}(x_i; 1, \sigma^2)\big)\Big] + \text{(entropy of } q\text{, no } \theta).$$
#
# The lesson maximised it over $p$ ($\hat p = \frac1n\sum_i \pi_i$). Set the derivative with respect to
# $\sigma^2$ to zero as well, then write `m_step(x, pi)`: `x` and `pi` of shape `(n,)`; return a tuple
# `(p, sigma)` of two scalar tensors, $\sigma$ the **standard deviation**.

# %%
def m_step(x, pi):
    """The (p, sigma) that maximise the average ELBO for fixed q(z=1|x_i) = pi_i."""
    ### BEGIN SOLUTION
    p = pi.mean()
    var = ((1 - pi) * x**2 + pi * (x - 1) ** 2).mean()
    return p, var.sqrt()
    ### END SOLUTION


# %%
# Self-check (a)
_x = torch.tensor([-0.2, 0.1, 0.9, 1.3])
_pi = torch.tensor([0.0, 0.0, 1.0, 1.0])          # q says: the first two come from z = 0, the last two from z = 1
_out = m_step(_x, _pi)
assert isinstance(_out, tuple) and len(_out) == 2, "return a tuple (p, sigma)"
_p, _s = (torch.as_tensor(v) for v in _out)
assert _p.ndim == 0 and _s.ndim == 0, "p and sigma are scalars: average over the examples"
assert abs(_p - 0.5) < 1e-12, f"p should be the mean of pi, 0.5 here; got {_p.item():.4f}"
_want = math.sqrt((0.2**2 + 0.1**2 + 0.1**2 + 0.3**2) / 4)
assert abs(_s - _want) < 1e-12, (
    f"sigma should be {_want:.6f} (root mean squared distance of x_i to its assigned z), got {_s.item():.6f}"
    + ("; that is the variance: return its square root" if abs(_s - _want**2) < 1e-12 else
       "; weight (x_i - 0)^2 by 1 - pi_i and (x_i - 1)^2 by pi_i, then average"))
_xs = torch.tensor([-0.5, 0.2, 0.6, 1.1, 1.7])
_pis = toy_posterior_z1(_xs, 0.4, 0.6)
_p, _s = m_step(_xs, _pis)
_obj = lambda p, s: ((1 - _pis) * (math.log(1 - p) + log_normal(_xs, 0.0, s))
                     + _pis * (math.log(p) + log_normal(_xs, 1.0, s))).mean()
for _dp, _ds in [(0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)]:
    assert _obj(_p.item(), _s.item()) >= _obj(_p.item() + _dp, _s.item() + _ds), \
        "moving p or sigma away from your M-step increases the objective: it is not the maximum"
print(f"M-step: p = {_p.item():.4f}, sigma = {_s.item():.4f}")

# %% grade={"exercise": "m_step", "points": 2, "forbidden": ["course_lib.toy_models.em_step", "course_lib.toy_models.mle_p"]}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(4)
_x, _z = toy_sample(3000, 0.35, 0.7, generator=_g)
# EM with the student's M-step: the log-likelihood never decreases and the fixed point is a stationary point of it
_p, _s = torch.tensor(0.8), torch.tensor(2.0)
_ll = []
for _ in range(300):
    _pi = toy_posterior_z1(_x, _p, _s)
    _p, _s = (torch.as_tensor(v) for v in m_step(_x, _pi))
    _ll.append(toy_log_evidence(_x, _p, _s).mean().item())
record("EM fixed point (p, sigma)", [_p.double(), _s.double()], rtol=1e-5, atol=1e-6,
       message="EM with your M-step should converge to the maximum-likelihood p and sigma of the data")
record("EM log-likelihood, first 10 steps", _ll[:10], rtol=1e-6, atol=1e-6,
       message="each EM step with your M-step must raise the likelihood as the reference does: check both updates")
# random pi: the formula
_pi = torch.rand(50, generator=_g)
_xx = torch.randn(50, generator=_g) * 2
record("m_step on random responsibilities", [torch.as_tensor(v).double() for v in m_step(_xx, _pi)],
       message="p is the mean responsibility; sigma^2 the responsibility-weighted mean of (x - z)^2 (a standard deviation, "
               "not a variance)")
record("EM log-likelihood after 300 steps", _ll[-1], rtol=1e-6, atol=1e-6,
       message="EM with your M-step must converge to the maximum-likelihood (p, sigma)")
### END HIDDEN TESTS

# %% [markdown]
# ## (b) The importance-weighted bound, exactly (3 points)
#
# Identity (2) of the lesson, $p_\theta(x) = \mathbb{E}_{q}[w]$ with $w = p_\theta(x, z) / q(z \mid x)$, holds for
# the average of $k$ independent weights too; Jensen then gives a tighter bound (Burda et al., 2016):
#
# $$\mathcal{L}_k = \mathbb{E}_{z_1, \dots, z_k \sim q}\Big[\log \frac1k \sum_{j=1}^k w_j\Big], \qquad
#   \mathcal{L}_1 = \mathcal{L} \le \mathcal{L}_2 \le \dots \le \log p_\theta(x).$$
#
# On the toy model, $z$ takes two values: the sum depends only on the number $m$ of draws with $z_j = 1$, which
# is $\mathrm{Binomial}(k, \pi)$. So the expectation is a finite sum:
#
# $$\mathcal{L}_k = \sum_{m=0}^{k} \binom{k}{m} \pi^m (1-\pi)^{k-m}\,
#   \log\frac{(k - m)\, w_0 + m\, w_1}{k}, \qquad w_z = \frac{p_\theta(x, z)}{q(z \mid x)}.$$
#
# Write `iwae_bound(x, pi, p, sigma, k)`: `x` a tensor of any shape, `pi` a float in $(0, 1)$, `p`, `sigma`
# floats, `k` a positive int; return a tensor shaped like `x`. Work with **logs**: $\log w_z$, then the log of
# the sum by `torch.logsumexp` (a term with zero weight, $m = 0$ or $m = k$, is $-\infty$ inside the logsumexp,
# which is fine), and the binomial weights by `torch.lgamma` or `math.comb`. It must stay finite for $|x| = 50$.

# %%
def iwae_bound(x, pi, p, sigma, k):
    """Exact importance-weighted bound L_k of the toy model for q(z=1|x) = pi, in nats, shaped like x."""
    ### BEGIN SOLUTION
    log_w0 = math.log(1 - p) + log_normal(x, 0.0, sigma) - math.log(1 - pi)
    log_w1 = math.log(p) + log_normal(x, 1.0, sigma) - math.log(pi)
    total = torch.zeros_like(x)
    for m in range(k + 1):
        log_binom = math.lgamma(k + 1) - math.lgamma(m + 1) - math.lgamma(k - m + 1) \
            + m * math.log(pi) + (k - m) * math.log(1 - pi)
        parts = [log_w0 + math.log(k - m)] if m < k else []
        parts += [log_w1 + math.log(m)] if m > 0 else []
        log_mean = torch.logsumexp(torch.stack(parts), 0) - math.log(k)
        total = total + math.exp(log_binom) * log_mean
    return total
    ### END SOLUTION


# %%
# Self-check (b)
_xs = torch.linspace(-2, 3, 11)
_b1 = iwae_bound(_xs, 0.3, 0.4, 0.5, 1)
assert torch.is_tensor(_b1) and _b1.shape == _xs.shape, "return one value per x"
assert torch.allclose(_b1, toy_elbo(_xs, 0.3, 0.4, 0.5), atol=1e-9), \
    "with k = 1 the bound is the ELBO: check the binomial weights (m = 0: 1 - pi, m = 1: pi) and log w_z"
_log_px = toy_log_evidence(_xs, 0.4, 0.5)
_bs = [iwae_bound(_xs, 0.3, 0.4, 0.5, k) for k in (1, 2, 5, 20)]
for _a, _b in zip(_bs, _bs[1:]):
    assert (_b >= _a - 1e-9).all(), "L_k should not decrease with k; did you average log w instead of log-averaging w?"
assert (_bs[-1] <= _log_px + 1e-9).all(), "L_k is a lower bound of log p(x): it can never exceed it"
_gap20 = (_log_px - _bs[-1]).max().item()
assert _gap20 < 0.1 * (_log_px - _bs[0]).max().item(), (
    f"with k = 20 the bound should be much tighter than the ELBO; gap {_gap20:.3f} nats"
    + ("; it equals the ELBO for every k: you averaged log w (the ELBO) instead of taking the log of the average of w"
       if torch.allclose(_bs[-1], _bs[0], atol=1e-9) else ""))
assert torch.isfinite(iwae_bound(torch.tensor([-50.0, 50.0]), 0.3, 0.4, 0.5, 10)).all(), \
    "not finite at |x| = 50: compute log w_z and use torch.logsumexp, not exp then log"
print("L_k at x = 0.8, k = 1, 2, 5, 20:", [round(iwae_bound(torch.tensor(0.8), 0.3, 0.4, 0.5, k).item(), 4)
                                          for k in (1, 2, 5, 20)], "| log p(x) =",
      round(toy_log_evidence(torch.tensor(0.8), 0.4, 0.5).item(), 4))

# %% grade={"exercise": "iwae_bound", "points": 3, "forbidden": ["course_lib.evaluate.iwae_bound", "course_lib.evaluate.iwae_nll"]}
### BEGIN HIDDEN TESTS
for _x0, _pi, _p, _s, _k in [(0.8, 0.3, 0.4, 0.5, 4), (-0.4, 0.7, 0.2, 1.0, 7), (1.9, 0.5, 0.6, 0.3, 3)]:
    record(f"iwae_bound(x={_x0}, k={_k})", iwae_bound(torch.tensor([_x0]), _pi, _p, _s, _k), rtol=1e-6, atol=1e-8,
           message="L_k = E[log (1/k) sum_i w_i] over the k draws: sum over how many of the k draws have z = 1 "
                   "(binomial weights), log-average the weights (logsumexp - log k), do not average log w")
# limit k -> infinity and shapes
_xx = torch.linspace(-1, 2, 6).reshape(2, 3)
record("iwae_bound on a grid, k=2", iwae_bound(_xx, 0.4, 0.3, 0.7, 2), rtol=1e-6, atol=1e-8,
       message="one bound per x, same shape as x")
record("iwae_bound on a grid, k=100 and k=200", [iwae_bound(_xx, 0.4, 0.3, 0.7, _k) for _k in (100, 200)],
       rtol=1e-6, atol=1e-8, message="for large k the bound approaches log p(x), its gap shrinking like 1/k: "
                                     "check the binomial weights for large k (work in logs)")
### END HIDDEN TESTS

# %% [markdown]
# ## (c) A score-function gradient with a baseline (3 points)
#
# A VAE with a *discrete* latent cannot use the reparameterization trick: $z$ does not move continuously with
# $\pi$. The **score-function** (REINFORCE) estimator still works. Write $\pi = \mathrm{sigmoid}(\ell)$ and
# $f(z) = \log p_\theta(x, z) - \log q(z \mid x)$, so that $\mathcal{L} = \mathbb{E}_q[f(z)]$. Then
#
# $$\frac{\partial \mathcal{L}}{\partial \ell} = \mathbb{E}_{z \sim q}\Big[\big(f(z) - b\big)\,
#   \frac{\partial \log q(z \mid x)}{\partial \ell}\Big], \qquad \frac{\partial \log q(z \mid x)}{\partial \ell} = z - \pi,$$
#
# for any constant **baseline** $b$ (it does not change the mean since $\mathbb{E}_q[z - \pi] = 0$, and the term
# $\mathbb{E}_q[\partial f / \partial \ell] = -\mathbb{E}_q[\partial \log q / \partial \ell]$ is 0 for the same reason).
# A good $b$ (close to $\mathbb{E}_q[f]$) makes the estimate less noisy.
#
# Write `score_gradient(x, pi, p, sigma, z, baseline)`: `x` a float or scalar tensor, `pi`, `p`, `sigma` floats,
# `z` a tensor of samples in $\{0, 1\}$ of any shape, `baseline` a float; return one estimate per sample,
# $(f(z) - b)(z - \pi)$, shaped like `z`.

# %%
def score_gradient(x, pi, p, sigma, z, baseline):
    """Per-sample score-function estimates (f(z) - b)(z - pi) of dELBO/d logit(pi)."""
    ### BEGIN SOLUTION
    log_joint = torch.where(z == 1, math.log(p) + log_normal(x, 1.0, sigma), math.log(1 - p) + log_normal(x, 0.0, sigma))
    log_q = torch.where(z == 1, math.log(pi), math.log(1 - pi))
    return (log_joint - log_q - baseline) * (z - pi)
    ### END SOLUTION


# %%
# Self-check (c)
_x0, _pi, _p, _s = 2.0, 0.3, 0.4, 0.5
_l = torch.tensor(math.log(_pi / (1 - _pi)), requires_grad=True)
toy_elbo(torch.tensor(_x0), torch.sigmoid(_l), _p, _s).backward()
_exact = _l.grad.item()                                            # the true gradient, by autograd on the closed form
_z = (torch.rand(100_000, generator=torch.Generator().manual_seed(0)) < _pi).double()
_g0 = score_gradient(_x0, _pi, _p, _s, _z, 0.0)
assert torch.is_tensor(_g0) and _g0.shape == _z.shape, "return one estimate per sample, shaped like z"
_se0 = _g0.std() / math.sqrt(len(_g0))
assert abs(_g0.mean() - _exact) < 5 * _se0, (
    f"the mean estimate {_g0.mean():.4f} ± {_se0:.4f} should match the exact gradient {_exact:.4f}"
    + ("; the sign is flipped: d log q / d logit is z - pi" if abs(_g0.mean() + _exact) < 5 * _se0 else
       "; f(z) = log p(x, z) - log q(z|x) includes log p(z) and - log q(z|x)"))
_b = toy_elbo(torch.tensor(_x0), _pi, _p, _s).item()                 # baseline: the ELBO itself
_gb = score_gradient(_x0, _pi, _p, _s, _z, _b)
assert abs(_gb.mean() - _exact) < 5 * _gb.std() / math.sqrt(len(_gb)), "a constant baseline keeps the estimate unbiased"
assert _gb.var() < 0.5 * _g0.var(), "with b = ELBO the variance should drop a lot: subtract the baseline from f(z)"
print(f"exact {_exact:.4f}; no baseline: mean {_g0.mean():.4f}, variance {_g0.var():.3f}; "
      f"baseline = ELBO: mean {_gb.mean():.4f}, variance {_gb.var():.3f}")

# %% grade={"exercise": "score_gradient", "points": 3, "forbidden": ["course_lib.estimators.score_function_grad"]}
### BEGIN HIDDEN TESTS
# exact expectation over z in {0, 1}: (1 - pi) g(0) + pi g(1) equals the autograd gradient, for any baseline
for _x0, _pi, _p, _s in [(0.3, 0.5, 0.3, 0.5), (-1.2, 0.8, 0.6, 1.3), (4.0, 0.1, 0.2, 0.4)]:
    for _b in (0.0, -3.0, 5.0):
        _g = score_gradient(_x0, _pi, _p, _s, torch.tensor([0.0, 1.0]), _b)
        record(f"score_gradient(x={_x0}, pi={_pi}, b={_b})", _g, rtol=1e-6, atol=1e-9,
               message="(f(z) - b) d/dl log q(z), with d/dl log q(z) = z - pi for q = Bernoulli(sigmoid(l))")
# shapes: one estimate per sample, shaped like z
_zz = (torch.rand(3, 4, generator=torch.Generator().manual_seed(12)) < 0.4).double()
record("score_gradient on a (3, 4) batch of z", score_gradient(0.5, 0.4, 0.3, 0.5, _zz, 0.0), rtol=1e-6, atol=1e-9,
       message="return one estimate per sample of z, with z's shape")
### END HIDDEN TESTS

# %% [markdown]
# ## What you wrote
#
# - `m_step`: EM for the whole model, $p$ and $\sigma$; each iteration raises the ELBO and, with the E-step, the likelihood.
# - `iwae_bound`: a bound between the ELBO ($k = 1$) and $\log p_\theta(x)$ ($k \to \infty$); lesson 5 uses its Monte Carlo version to evaluate VAEs.
# - `score_gradient`: gradients through a discrete latent; the baseline is the first of many variance-reduction tricks (lesson 3 compares it with the pathwise gradient of continuous latents).
