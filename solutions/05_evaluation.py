# %% [markdown]
# # Exercises, lesson 5: evaluating a VAE
#
# Three next steps of the lesson's ideas, each checked on cases where the answer is known:
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) `effective_sample_size` | how many of the $k$ importance weights of the IWAE bound really count, in log space | 2 |
# | (b) `best_gaussian` | the per-example optimal Gaussian $q^*$ (Adam on one example's ELBO): the amortization gap | 2 |
# | (c) `fid_infinity` | the FID extrapolated to infinitely many samples from FIDs at several $n$ | 1 |
#
# Each exercise: a statement, a cell for your code (replace the `raise NotImplementedError`), a self-check
# you can run, and a grade cell with hidden tests. Runs in a few seconds on a CPU.
# Units: log-densities, ELBOs and gaps in **nats**, one value per example.

# %% slideshow={"slide_type": "skip"}
import math

import torch
from torch.distributions import Independent, Normal

from course_lib.tooling.checks import record
from course_lib.models.linear_gaussian import LinearGaussian
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)

# %% [markdown]
# ## (a) The effective sample size of importance weights (2 points)
#
# The IWAE bound averages $k$ weights $w_i = p_\theta(x \mid z_i)\,p(z_i)/q_\phi(z_i \mid x)$. When one weight is
# much larger than the others, the average is that one weight: $k$ samples are worth one. The **effective
# sample size** (Kong 1992; Owen 2013, section 9.3) says how many count:
#
# $$\mathrm{ESS} = \frac{\big(\sum_{i=1}^k w_i\big)^2}{\sum_{i=1}^k w_i^2} \in [1, k],$$
#
# $k$ when all weights are equal (e.g. $q_\phi$ is the true posterior), 1 when one weight dominates.
#
# Write `effective_sample_size(log_w)`: `log_w` has shape `(k, batch)` (the log-weights, samples along the first
# dimension); return a tensor of shape `(batch,)`. On MNIST $\log w_i \approx -100$: $w_i^2 \approx e^{-200}$
# underflows in float32, so stay in log space.

# %%
def effective_sample_size(log_w):
    ### BEGIN SOLUTION
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    ### END SOLUTION


# %%
# Self-check (a)
_equal = torch.zeros(7, 3, dtype=torch.float64) - 2.0
_out = effective_sample_size(_equal)
assert torch.is_tensor(_out) and _out.shape == (3,), \
    f"expected one value per example, shape (3,), got {getattr(_out, 'shape', type(_out))}: reduce over dim 0 (the k samples)"
assert torch.allclose(_out, torch.full((3,), 7.0, dtype=torch.float64)), \
    f"7 equal weights give ESS = 7, got {_out.tolist()}: (sum w)^2 / sum w^2 (square the sum, not the terms)"
_one = torch.tensor([[0.0], [-50.0], [-50.0], [-50.0]], dtype=torch.float64)
assert abs(float(effective_sample_size(_one)[0]) - 1.0) < 1e-9, "one weight e^50 times larger than the others: ESS = 1"
_far = effective_sample_size(torch.randn(10, 2) - 1000.0)
assert torch.isfinite(_far).all() and (_far >= 1 - 1e-4).all(), \
    "log-weights near -1000 give NaN or inf: exp underflows; write both sums with torch.logsumexp (w^2 = exp(2 log w))"
print("(a) self-check passed")

# %% grade={"exercise": "effective_sample_size", "points": 2, "forbidden": []}
### BEGIN HIDDEN TESTS
_g = make_generator(11)
_lw = torch.randn(50, 4, generator=_g, dtype=torch.float64) * 2
record("effective_sample_size of random log-weights", effective_sample_size(_lw), rtol=1e-7, atol=1e-9,
       message="ESS = (sum_i w_i)^2 / sum_i w_i^2 over the k samples (axis 0), one value per example")
record("effective_sample_size of shifted log-weights", effective_sample_size(_lw - 3000.0), rtol=1e-6, atol=1e-6,
       message="subtract the largest log-weight before exponentiating: the ESS does not change when log w shifts")
_e = effective_sample_size(torch.randn(200, 6, generator=_g) * 3 - 120.0)
record("effective_sample_size in float32", _e, rtol=1e-4, atol=1e-3, message="stay finite in float32 for log-weights near -120")
# the exact posterior as proposal: every weight equals p(x), ESS = k; a worse q: fewer
_m = LinearGaussian.random(4, 2, sigma=0.5, seed=3)
_x = _m.sample(6, make_generator(4))
seed_everything(12)
for _shift in (0.0, 1.5):
    _mm = LinearGaussian(_m.W, _m.b, 0.5, posterior="exact", q_shift=_shift)
    _q = _mm.encode(_x)
    _z = _q.sample((30,))
    _lw = _mm.decode(_z.reshape(-1, 2)).log_prob(_x.repeat(30, 1)).reshape(30, 6) + _mm.prior.log_prob(_z) - _q.log_prob(_z)
    record(f"effective_sample_size of 30 weights, exact posterior shifted by {_shift}", effective_sample_size(_lw),
           rtol=1e-5, atol=1e-5, message="with the exact posterior as proposal every weight is p(x): ESS = k")
### END HIDDEN TESTS

# %% [markdown]
# ## (b) The best Gaussian for one example: the amortization gap (2 points)
#
# Lesson 5, section 5: the encoder gives $q_\phi(z \mid x) = \mathcal{N}(\mu, \mathrm{diag}\, e^{\log\sigma^2})$; the best
# diagonal Gaussian for this one $x$, $q^*$, maximises the ELBO
#
# $$\mathcal{L}(\mu, \log\sigma^2) = \mathbb{E}_{\epsilon \sim \mathcal{N}(0, I)}\big[\log p_\theta(x, z)\big]_{z = \mu + \sigma \odot \epsilon}
# + \underbrace{\tfrac12 \textstyle\sum_j \log\sigma_j^2 + \tfrac{d}{2}(1 + \log 2\pi)}_{\text{entropy of } q},$$
#
# and the **amortization gap** is $\mathcal{L}[q^*] - \mathcal{L}[q_\phi] \ge 0$ (Cremer et al. 2018).
#
# Write `best_gaussian(log_joint, mu, logvar, steps=500, lr=0.05, n_samples=32)`:
# - `log_joint(z)` takes codes of shape `(S, d)` and returns $\log p_\theta(x \mid z) + \log p(z)$, shape `(S,)`,
#   for one fixed $x$;
# - start at `mu`, `logvar` (shape `(d,)`: the encoder's output), run `steps` steps of `torch.optim.Adam`
#   (learning rate `lr`) on $-\mathcal{L}$, estimated with `n_samples` reparameterized samples per step;
# - return the final `(mu, logvar)`, detached tensors of shape `(d,)`. Do not change the tensors you were given.

# %%
def best_gaussian(log_joint, mu, logvar, steps=500, lr=0.05, n_samples=32):
    ### BEGIN SOLUTION
    mu = mu.detach().clone().requires_grad_(True)
    logvar = logvar.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, logvar], lr=lr)
    for _ in range(steps):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(n_samples, len(mu), dtype=mu.dtype)
        neg_elbo = -(log_joint(z).mean() + 0.5 * logvar.sum())     # the entropy's constant has no gradient
        opt.zero_grad()
        neg_elbo.backward()
        opt.step()
    return mu.detach(), logvar.detach()
    ### END SOLUTION


# %%
# Self-check (b): a 1-D "posterior" N(3, 0.5^2) up to a constant: the best Gaussian is that one
_target = Normal(torch.tensor(3.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
_mu0, _lv0 = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
seed_everything(0)
_res = best_gaussian(lambda z: _target.log_prob(z[:, 0]), _mu0, _lv0, steps=400, lr=0.05)
assert isinstance(_res, tuple) and len(_res) == 2, "return the pair (mu, logvar)"
_mu, _lv = _res
assert _mu.shape == (1,) and _lv.shape == (1,), f"mu and logvar keep the shape (d,) = (1,), got {_mu.shape}, {_lv.shape}"
assert not _mu.requires_grad and not _lv.requires_grad, "return detached tensors (.detach())"
assert float(_mu0[0]) == 0.0 and float(_lv0[0]) == 0.0, "do not change the tensors you were given: work on clones"
assert abs(float(_mu[0]) - 3.0) < 0.15, \
    f"the best mean is 3, got {float(_mu[0]):.3f}: maximise the ELBO (minimise its negative) with z = mu + sigma * eps"
assert abs(float(_lv[0]) - math.log(0.25)) < 0.3, \
    (f"the best log-variance is log 0.25 = {math.log(0.25):.3f}, got {float(_lv[0]):.3f}: without the entropy term "
     "0.5 * sum(logvar) the variance collapses to 0; sigma = exp(0.5 * logvar), not exp(logvar)")
# a 2-D "posterior" N((3, -1), diag(0.5^2, 2^2)): each coordinate has its own variance, and the entropy term sums over them
_target2 = Normal(torch.tensor([3.0, -1.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64))
seed_everything(0)
_mu2, _lv2 = best_gaussian(lambda z: _target2.log_prob(z).sum(1), torch.zeros(2, dtype=torch.float64),
                           torch.zeros(2, dtype=torch.float64), steps=400, lr=0.05)
assert _mu2.shape == (2,) and torch.allclose(_mu2, torch.tensor([3.0, -1.0], dtype=torch.float64), atol=0.3), \
    f"the best mean is (3, -1), got {_mu2.tolist()}: one mean per latent dimension"
assert torch.allclose(_lv2, torch.log(torch.tensor([0.25, 4.0], dtype=torch.float64)), atol=0.4), \
    (f"the best log-variances are (log 0.25, log 4) = (-1.39, 1.39), got {[round(v, 2) for v in _lv2.tolist()]}: the "
     "entropy of q is 0.5 * the SUM of the log-variances (not their mean), and log_joint(z) is averaged over the samples")
print("(b) self-check passed")

# %% grade={"exercise": "best_gaussian", "points": 2, "forbidden": ["course_lib.evaluate.refine_gaussian", "course_lib.evaluate.inference_gaps"]}
### BEGIN HIDDEN TESTS
# A linear-Gaussian model: the best diagonal Gaussian is known (posterior mean, precisions diag(M)),
# and the closed-form ELBO of any q gives the gaps exactly.
_m = LinearGaussian.random(6, 3, sigma=0.5, seed=5, posterior="mean_field")
_bad = LinearGaussian(_m.W, _m.b, 0.5, posterior="mean_field", q_shift=0.8, q_scale=2.5)   # a poor "encoder"
_x = _m.sample(3, make_generator(6))
seed_everything(1)
for _i in range(3):
    _xi = _x[_i:_i + 1]
    _q0 = _bad.encode(_xi)                                # the poor encoder's q: the start
    _lj = lambda z, xi=_xi: _m.decode(z).log_prob(xi.expand(len(z), -1)) + _m.prior.log_prob(z)  # noqa: E731
    _mu, _lv = best_gaussian(_lj, _q0.mean[0], _q0.variance[0].log(), steps=800, lr=0.03, n_samples=32)
    _qr = Independent(Normal(_mu.unsqueeze(0), torch.exp(0.5 * _lv).unsqueeze(0)), 1)
    _er = float(_m.elbo_of(_qr, _xi)[0])
    record(f"best_gaussian mean, example {_i}", _mu.detach(), rtol=0, atol=0.2,
           message="maximise the reparameterized ELBO over (mu, log sigma^2) by Adam, starting from the encoder's q: "
                   "the result must reach the best Gaussian's mean")
    record(f"ELBO of best_gaussian's q, example {_i}", _er, rtol=0, atol=0.2,
           message="the ELBO of your q must close (almost all of) the amortization gap")
### END HIDDEN TESTS

# %% [markdown]
# ## (c) The FID at infinitely many samples (1 point)
#
# Lesson 5, section 9: the FID of $n$ samples is biased upwards, by roughly $b/n$. Chong & Forsyth (2020)
# therefore fit $\mathrm{FID}_n \approx \mathrm{FID}_\infty + b/n$ to FIDs measured at several $n$ and report the
# intercept $\mathrm{FID}_\infty$, which compares models evaluated with different numbers of samples.
#
# Write `fid_infinity(ns, fids)`: `ns` and `fids` are sequences of equal length (at least two different `n`),
# return the pair of Python floats `(fid_inf, b)` of the least-squares line of the FIDs against $1/n$.

# %%
def fid_infinity(ns, fids):
    ### BEGIN SOLUTION
    x = 1.0 / torch.as_tensor(ns, dtype=torch.float64)
    A = torch.stack([torch.ones_like(x), x], dim=1)
    coef = torch.linalg.lstsq(A, torch.as_tensor(fids, dtype=torch.float64).unsqueeze(1)).solution[:, 0]
    return float(coef[0]), float(coef[1])
    ### END SOLUTION


# %%
# Self-check (c)
_res = fid_infinity([100, 200, 400], [12.0 + 500 / 100, 12.0 + 500 / 200, 12.0 + 500 / 400])
assert isinstance(_res, tuple) and len(_res) == 2, "return the pair (fid_inf, b)"
assert abs(float(_res[0]) - 12.0) < 1e-8, f"FIDs exactly 12 + 500/n give FID_inf = 12, got {float(_res[0])}: regress on 1/n, not n"
assert abs(float(_res[1]) - 500.0) < 1e-6, f"... and b = 500, got {float(_res[1])}"
print("(c) self-check passed")

# %% grade={"exercise": "fid_infinity", "points": 1, "forbidden": []}
### BEGIN HIDDEN TESTS
_g = make_generator(13)
_ns = [50, 50, 100, 100, 200, 500, 1000, 1000]
_f = [7.0 + 900.0 / n + float(torch.randn((), generator=_g)) for n in _ns]
_res = fid_infinity(_ns, _f)
record("fid_infinity returns two Python floats", float(all(isinstance(v, float) for v in _res)), atol=0,
       message="return (float(fid_inf), float(b)), not tensors")
record("fid_infinity on noisy 1/n data", list(_res), rtol=1e-8, atol=1e-8,
       message="ordinary least squares of FID against x = 1/n: (intercept = FID at n = infinity, slope)")
_res = fid_infinity(torch.tensor([10, 20]), torch.tensor([3.0, 2.0]))
record("fid_infinity through two points", list(_res), rtol=1e-8, atol=1e-8, message="accept tensors as well as lists")
### END HIDDEN TESTS
