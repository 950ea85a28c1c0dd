# %% [markdown]
# # Exercises, lesson 2: the ELBO
#
# Three functions of the slides' toy model, $z \sim \mathrm{Bernoulli}(p)$, $x \mid z \sim \mathcal{N}(z, \sigma^2)$,
# each the idea of a section of the lesson. **7 points** in all.
#
# | exercise | function | points |
# |---|---|---|
# | 1 | `log_evidence(x, p, sigma)`: the evidence, with `logsumexp` | 2 |
# | 2 | `posterior_z1(x, p, sigma)`: the true posterior, by Bayes' rule | 2 |
# | 3 | `elbo(x, pi, p, sigma)`: the ELBO of $q(z=1 \mid x) = \pi$ | 3 |
#
# For each: write the function in its cell, run the **self-check** cell below it (its messages say what is
# wrong), then the grade cell (empty for you; the grader puts its own tests back there). Each exercise is graded
# on its own: do not call one exercise's function from another. Everything is in **nats per example**
# (natural log, one value per $x$). Run time: a few seconds on a CPU.

# %%
import math

import torch

from course_lib.runtime import describe, seed_everything

seed_everything(0)
print(describe())


def log_normal(x, mean, sigma):
    """log N(x; mean, sigma^2), elementwise (x a tensor, mean a tensor or float, sigma a float > 0)."""
    return -0.5 * ((x - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


# %% [markdown]
# ## Exercise 1: the evidence (2 points)
#
# Write `log_evidence(x, p, sigma)` that returns, elementwise,
#
# $$\log p_\theta(x) = \log\big((1-p)\,\mathcal{N}(x; 0, \sigma^2) + p\,\mathcal{N}(x; 1, \sigma^2)\big).$$
#
# - `x`: a float tensor of any shape; `p`: a float with $0 < p < 1$; `sigma`: a float $> 0$. Returns a tensor shaped like `x`.
# - Work in log space: build the two log-joints $\log p(x, z) = \log p(z) + \log p(x \mid z)$ for $z = 0, 1$
#   (with `log_normal` above) and combine them with `torch.logsumexp` (or `torch.logaddexp`). The naive
#   `log(sum of exp)` returns `-inf` as soon as both densities underflow, which happens for $|x|$ of a few tens.

# %%
def log_evidence(x, p, sigma):
    """log p(x) of the toy model, in nats, one value per element of x."""
    ### BEGIN SOLUTION
    log_joint = torch.stack([math.log(1 - p) + log_normal(x, 0.0, sigma),
                             math.log(p) + log_normal(x, 1.0, sigma)])
    return torch.logsumexp(log_joint, dim=0)
    ### END SOLUTION


# %%
# Self-check (exercise 1)
_x = torch.linspace(-2.0, 3.0, 11, dtype=torch.float64)
_out = log_evidence(_x, 0.3, 0.5)
assert isinstance(_out, torch.Tensor) and _out.shape == _x.shape, \
    f"log_evidence should return one value per x, shape {tuple(_x.shape)}; got {getattr(_out, 'shape', type(_out))}"
_pdf = lambda x, m, s: math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
_expected = math.log(0.7 * _pdf(0.5, 0, 0.5) + 0.3 * _pdf(0.5, 1, 0.5))
_got = log_evidence(torch.tensor([0.5], dtype=torch.float64), 0.3, 0.5).item()
assert abs(_got - _expected) < 1e-9, (
    f"at x=0.5, p=0.3, sigma=0.5 log p(x) should be {_expected:.6f}, got {_got:.6f}: check that z=0 has "
    "weight 1-p and mean 0, z=1 weight p and mean 1, and that you add log p(z) (not p(z)) to log N")
assert _out.exp().max() < 1, "p(x) > 1 for sigma=0.5? Did you return the log-density, not the log of an unnormalised one?"
_far = log_evidence(torch.tensor([40.0, -40.0], dtype=torch.float64), 0.3, 0.5)
assert torch.isfinite(_far).all(), (
    f"log p(x) is {_far.tolist()} at x = +-40: both densities underflow to 0 there; "
    "combine the log-joints with torch.logsumexp instead of taking the log of a sum of exp")
print("exercise 1: self-check passed")

# %% grade={"exercise": "log_evidence", "points": 2}
### BEGIN HIDDEN TESTS
import course_lib.toy_models as _ref

for _p in [0.01, 0.3, 0.5, 0.99]:
    for _s in [0.1, 0.5, 1.0, 3.0]:
        _xg = torch.cat([torch.linspace(-5, 6, 45), torch.tensor([-1e3, -100.0, 100.0, 1e3])]).double()
        _mine = log_evidence(_xg, _p, _s)
        _want = _ref.log_evidence(_xg, _p, _s)
        assert torch.isfinite(_mine).all(), f"log p(x) not finite for p={_p}, sigma={_s} (large |x|?)"
        assert torch.allclose(_mine, _want, rtol=1e-9, atol=1e-9), \
            f"log p(x) differs from the reference by {(_mine - _want).abs().max():.3g} for p={_p}, sigma={_s}"
# any shape, float32 too
_x2 = torch.randn(4, 3)
assert log_evidence(_x2, 0.4, 0.8).shape == (4, 3)
assert torch.allclose(log_evidence(_x2, 0.4, 0.8).double(), _ref.log_evidence(_x2.double(), 0.4, 0.8), atol=1e-5)
# normalised density
_xi = torch.linspace(-10, 11, 100001, dtype=torch.float64)
assert abs(torch.trapezoid(log_evidence(_xi, 0.7, 1.2).exp(), _xi).item() - 1) < 1e-8
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2: the true posterior (2 points)
#
# Write `posterior_z1(x, p, sigma)` that returns, elementwise, the posterior probability of $z = 1$ by Bayes' rule,
#
# $$p_\theta(z=1 \mid x) = \frac{p(x, z{=}1)}{p(x, z{=}0) + p(x, z{=}1)}
#   = \frac{p\,\mathcal{N}(x; 1, \sigma^2)}{(1-p)\,\mathcal{N}(x; 0, \sigma^2) + p\,\mathcal{N}(x; 1, \sigma^2)}.$$
#
# - Same arguments as exercise 1; returns a tensor shaped like `x`, with values in $[0, 1]$ and **no NaN**, even for $|x|$ = 1000.
# - Dividing the two densities fails where both underflow (0/0). Work with logs: the log-joints and a
#   `logsumexp`, or the log-odds $\log p(x, z{=}1) - \log p(x, z{=}0)$ and `torch.sigmoid`. Do not call exercise 1's function.

# %%
def posterior_z1(x, p, sigma):
    """p(z=1 | x) of the toy model, one value per element of x."""
    ### BEGIN SOLUTION
    log_odds = (math.log(p) + log_normal(x, 1.0, sigma)) - (math.log(1 - p) + log_normal(x, 0.0, sigma))
    return torch.sigmoid(log_odds)
    ### END SOLUTION


# %%
# Self-check (exercise 2)
_x = torch.linspace(-2.0, 3.0, 11, dtype=torch.float64)
_r = posterior_z1(_x, 0.3, 0.5)
assert isinstance(_r, torch.Tensor) and _r.shape == _x.shape, "posterior_z1 should return one value per x"
assert ((_r >= 0) & (_r <= 1)).all(), f"a probability must be in [0, 1]; got min {_r.min():.3g}, max {_r.max():.3g}"
_bayes = 0.3 * _pdf(0.8, 1, 0.5) / (0.7 * _pdf(0.8, 0, 0.5) + 0.3 * _pdf(0.8, 1, 0.5))
_got = posterior_z1(torch.tensor([0.8], dtype=torch.float64), 0.3, 0.5).item()
assert abs(_got - _bayes) < 1e-9, (
    f"at x=0.8, p=0.3, sigma=0.5, p(z=1|x) should be {_bayes:.6f}, got {_got:.6f}"
    + (": that is p(z=0|x), swap the two joints" if abs(_got - (1 - _bayes)) < 1e-9 else
       ": check the prior weights p and 1-p and the two means"))
assert (_r[1:] >= _r[:-1]).all(), "the posterior of z=1 should increase with x (x is centred on z)"
_far = posterior_z1(torch.tensor([-1000.0, 1000.0], dtype=torch.float64), 0.3, 0.5)
assert not torch.isnan(_far).any(), (
    "NaN at x = +-1000: both densities underflow to 0 and you divide 0 by 0; work with log-densities")
assert _far[0] < 1e-6 and _far[1] > 1 - 1e-6, f"far left z=0 is certain, far right z=1; got {_far.tolist()}"
print("exercise 2: self-check passed")

# %% grade={"exercise": "posterior", "points": 2}
### BEGIN HIDDEN TESTS
import course_lib.toy_models as _ref

for _p in [0.02, 0.3, 0.5, 0.95]:
    for _s in [0.1, 0.5, 2.0]:
        _xg = torch.cat([torch.linspace(-4, 5, 37), torch.tensor([-1e3, -60.0, 60.0, 1e3])]).double()
        _mine = posterior_z1(_xg, _p, _s)
        assert not torch.isnan(_mine).any(), f"NaN posterior for p={_p}, sigma={_s} (large |x|?)"
        assert torch.allclose(_mine, _ref.posterior_z1(_xg, _p, _s), rtol=1e-9, atol=1e-12), \
            f"posterior differs from the reference for p={_p}, sigma={_s}"
# decision boundary x = 1/2 - sigma^2 logit(p), and the symmetry z <-> 1-z, x <-> 1-x, p <-> 1-p
_s, _p = 0.7, 0.2
_xh = torch.tensor([0.5 - _s**2 * math.log(_p / (1 - _p))], dtype=torch.float64)
assert abs(posterior_z1(_xh, _p, _s).item() - 0.5) < 1e-9
_xs = torch.linspace(-3, 3, 13, dtype=torch.float64)
assert torch.allclose(posterior_z1(_xs, _p, _s), 1 - posterior_z1(1 - _xs, 1 - _p, _s), atol=1e-12)
assert posterior_z1(torch.randn(2, 5), 0.6, 1.0).shape == (2, 5)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3: the ELBO (3 points)
#
# Write `elbo(x, pi, p, sigma)`: the evidence lower bound of the variational distribution $q(z=1 \mid x) = \pi$,
#
# $$\mathcal{L} = \mathbb{E}_{q}[\log p(x \mid z)] + \mathbb{E}_{q}[\log p(z)] - \mathbb{E}_{q}[\log q(z \mid x)],
#   \qquad \mathbb{E}_q[f(z)] = (1-\pi)\, f(0) + \pi\, f(1).$$
#
# - `x`: a float tensor; `pi`: a float or a tensor that broadcasts with `x`, values in $[0, 1]$ **including 0 and 1**;
#   `p` ($0 < p < 1$) and `sigma` ($> 0$): floats. Returns the broadcast shape of `x` and `pi`.
# - At $\pi = 0$ or $1$ a term $0 \cdot \log 0$ appears: its value is 0. `torch.xlogy(a, b)` computes
#   $a \log b$ and returns 0 when $a = 0$.
# - Check yourself with the lesson: $\mathcal{L} \le \log p(x)$, with equality at $\pi = p_\theta(z=1 \mid x)$.

# %%
def elbo(x, pi, p, sigma):
    """ELBO of q(z=1|x) = pi for the toy model, in nats, one value per element."""
    ### BEGIN SOLUTION
    pi = torch.as_tensor(pi, dtype=x.dtype)
    recon = (1 - pi) * log_normal(x, 0.0, sigma) + pi * log_normal(x, 1.0, sigma)   # E_q[log p(x|z)]
    log_prior = (1 - pi) * math.log(1 - p) + pi * math.log(p)                          # E_q[log p(z)]
    neg_entropy = torch.xlogy(1 - pi, 1 - pi) + torch.xlogy(pi, pi)                    # E_q[log q(z|x)]
    return recon + log_prior - neg_entropy
    ### END SOLUTION


# %%
# Self-check (exercise 3)
import course_lib.toy_models as tm   # the lesson's exact log-evidence and posterior, to check against

_x, _pi = torch.tensor([0.7], dtype=torch.float64), 0.25
_expected = sum(w * (math.log(_pdf(0.7, z, 0.5)) + math.log(pz) - math.log(w))
                for z, w, pz in [(0, 0.75, 0.7), (1, 0.25, 0.3)])
_got = elbo(_x, _pi, 0.3, 0.5).item()
assert abs(_got - _expected) < 1e-9, (
    f"at x=0.7, pi=0.25, p=0.3, sigma=0.5 the ELBO should be {_expected:.6f}, got {_got:.6f}"
    + ("; you have + E_q[log q]: the entropy term enters with a minus sign"
       if abs(_got - (_expected + 2 * (0.75 * math.log(0.75) + 0.25 * math.log(0.25)))) < 1e-9 else
       "; check the three expectations, each weighted by 1-pi (z=0) and pi (z=1)"))
_ends = elbo(torch.tensor([0.7, 0.7], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64), 0.3, 0.5)
assert torch.isfinite(_ends).all(), (
    f"ELBO at pi = 0 and 1 is {_ends.tolist()}: 0 * log 0 gives NaN in floating point; use torch.xlogy")
_xs = torch.linspace(-2, 3, 21, dtype=torch.float64)
_log_px = tm.log_evidence(_xs, 0.3, 0.5)
assert (elbo(_xs, 0.5, 0.3, 0.5) <= _log_px + 1e-12).all(), "the ELBO must never exceed log p(x)"
_tight = elbo(_xs, tm.posterior_z1(_xs, 0.3, 0.5), 0.3, 0.5)
assert torch.allclose(_tight, _log_px, atol=1e-9), (
    "at pi = p(z=1|x) the bound should be tight (ELBO = log p(x)); "
    f"largest difference {(_tight - _log_px).abs().max():.3g} nats")
print("exercise 3: self-check passed")

# %% grade={"exercise": "elbo", "points": 3}
### BEGIN HIDDEN TESTS
import course_lib.toy_models as _ref

_xg = torch.cat([torch.linspace(-3, 4, 29), torch.tensor([-50.0, 50.0])]).double()[:, None]
_pig = torch.tensor([0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0], dtype=torch.float64)[None, :]
for _p, _s in [(0.3, 0.5), (0.9, 2.0), (0.05, 0.2)]:
    _mine = elbo(_xg, _pig, _p, _s)
    assert _mine.shape == (31, 7), f"x of shape (31, 1) and pi of shape (1, 7) should broadcast to (31, 7), got {tuple(_mine.shape)}"
    assert torch.isfinite(_mine).all(), f"ELBO not finite for p={_p}, sigma={_s} (pi = 0 or 1? large |x|?)"
    assert torch.allclose(_mine, _ref.elbo(_xg, _pig, _p, _s), rtol=1e-10, atol=1e-9), \
        f"ELBO differs from the reference for p={_p}, sigma={_s}"
    # key equation: log p(x) - ELBO = KL(q || p(z|x))
    _gap = _ref.log_evidence(_xg, _p, _s) - _mine
    assert torch.allclose(_gap, _ref.kl_to_posterior(_xg, _pig, _p, _s), rtol=1e-9, atol=1e-7), \
        f"log p(x) - ELBO is not KL(q || p(z|x)) for p={_p}, sigma={_s}"
# a float pi, and gradients flow to pi (what an encoder needs)
assert elbo(torch.tensor([0.3, 0.9]), 0.4, 0.5, 1.0).shape == (2,)
_pt = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
elbo(torch.tensor([0.2, 1.1], dtype=torch.float64), _pt, 0.4, 0.6).sum().backward()
assert _pt.grad is not None and torch.isfinite(_pt.grad)
### END HIDDEN TESTS

# %% [markdown]
# ## What you wrote
#
# - `log_evidence`: the quantity we want to maximise, tractable here because $z$ takes two values.
# - `posterior_z1`: what an encoder should output; it needs the evidence, so in a VAE it is approximated by $q_\phi(z \mid x)$.
# - `elbo`: the bound a VAE maximises instead; its gap to `log_evidence` is $\mathrm{KL}(q \,\|\, p_\theta(z \mid x))$.
