# %% [markdown]
# # Exercises, lesson 5: evaluating a VAE
#
# Three formulas from the lesson, each checked on cases where the answer is known:
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) `iwae_bound` | the importance-weighted bound from per-sample log-densities, with `logsumexp` | 2 |
# | (b) `frechet_distance` | the Fréchet distance between two Gaussians (the FID's formula) | 2 |
# | (c) `inception_score` | the Inception Score of a matrix of class probabilities | 1 |
#
# Each exercise: a statement, a cell for your code (replace the `raise NotImplementedError`), a self-check
# you can run, and a grade cell with hidden tests. Runs in a few seconds on a CPU.
# Units: log-densities in **nats**, one value per example.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib import evaluate as ev
from course_lib.models.linear_gaussian import LinearGaussian
from course_lib.runtime import seed_everything

seed_everything(0)

# %% [markdown]
# ## (a) The importance-weighted bound (2 points)
#
# For one image $x$ and $k$ codes $z_i \sim q_\phi(z \mid x)$, with log-weights
# $\log w_i = \log p_\theta(x \mid z_i) + \log p(z_i) - \log q_\phi(z_i \mid x)$ (Burda et al. 2015, eq. 9):
#
# $$\hat{\mathcal{L}}_k(x) = \log \frac{1}{k} \sum_{i=1}^{k} w_i .$$
#
# Write `iwae_bound(log_px_given_z, log_pz, log_qz)`: three tensors of shape `(k, batch)` (the samples along
# the first dimension), returning a tensor of shape `(batch,)`. On MNIST the $w_i$ are around $e^{-90}$ and
# can be far smaller: `exp` underflows to 0, so work in log space with `torch.logsumexp`.

# %%
def iwae_bound(log_px_given_z, log_pz, log_qz):
    ### BEGIN SOLUTION
    log_w = log_px_given_z + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
    ### END SOLUTION


# %%
# Self-check (a)
_lw = torch.tensor([[-1.0, -3.0], [-2.0, -3.0], [-4.0, -3.0]], dtype=torch.float64)   # k = 3, batch = 2
_zero = torch.zeros_like(_lw)
_out = iwae_bound(_lw, _zero, _zero)
assert torch.is_tensor(_out) and _out.shape == (2,), \
    f"expected one value per example, shape (2,), got {getattr(_out, 'shape', type(_out))}: reduce over dim 0 (the k samples)"
assert abs(float(_out[1]) + 3.0) < 1e-9, \
    "when all k log-weights equal -3 the bound is -3: divide the sum of weights by k (subtract log k)"
_direct = math.log((math.exp(-1) + math.exp(-2) + math.exp(-4)) / 3)
assert abs(float(_out[0]) - _direct) < 1e-9, \
    f"for log-weights (-1, -2, -4) expected log(mean(exp)) = {_direct:.6f}, got {float(_out[0]):.6f}"
_signs = iwae_bound(_zero, _zero + 1.0, _zero + 3.0)
assert torch.allclose(_signs, torch.full((2,), -2.0, dtype=torch.float64)), \
    "log w = log p(x|z) + log p(z) - log q(z|x): check the signs (q divides)"
_far = iwae_bound(_lw - 1000.0, _zero, _zero)
assert torch.isfinite(_far).all(), \
    "log-weights near -1000 give -inf: exp underflows to 0; use torch.logsumexp instead of log(sum(exp))"
print("(a) self-check passed")

# %% grade={"exercise": "iwae_bound", "points": 2}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(11)
for _k, _b in [(1, 5), (7, 3), (500, 4)]:
    _a, _p, _q = (torch.randn(_k, _b, generator=_g, dtype=torch.float64) * 20 - 100 for _ in range(3))
    assert torch.allclose(iwae_bound(_a, _p, _q), ev.iwae_bound(_a, _p, _q), atol=1e-8), (_k, _b)
_a = torch.randn(4, 3, generator=_g, dtype=torch.float64) - 5000.0
assert torch.allclose(iwae_bound(_a, torch.zeros_like(_a), torch.zeros_like(_a)),
                      ev.iwae_bound(_a, torch.zeros_like(_a), torch.zeros_like(_a)), atol=1e-8)
# on a model with a known likelihood: the exact posterior gives the exact log p(x), for any k
_m = LinearGaussian.random(4, 2, sigma=0.5, seed=3)
_x = _m.sample(6, torch.Generator().manual_seed(4))
_qz = _m.encode(_x)
_z = _qz.sample((9,))
_lpxz = _m.decode(_z.reshape(-1, 2)).log_prob(_x.repeat(9, 1)).reshape(9, 6)
assert torch.allclose(iwae_bound(_lpxz, _m.prior.log_prob(_z), _qz.log_prob(_z)), _m.log_marginal(_x), atol=1e-8)
### END HIDDEN TESTS

# %% [markdown]
# ## (b) The Fréchet distance (2 points)
#
# The FID fits a Gaussian to the features of real images, $\mathcal{N}(\mu_1, S_1)$, and one to generated
# images, $\mathcal{N}(\mu_2, S_2)$, and returns (Heusel et al. 2017)
#
# $$d^2 = \|\mu_1 - \mu_2\|^2 + \mathrm{Tr}\big(S_1 + S_2 - 2\,(S_1 S_2)^{1/2}\big).$$
#
# Write `frechet_distance(mu1, S1, mu2, S2)` for float64 tensors (`mu` of shape `(F,)`, `S` of shape `(F, F)`,
# symmetric positive semi-definite), returning a Python float. $S_1 S_2$ is not symmetric; use
# $\mathrm{Tr}(S_1 S_2)^{1/2} = \sum_i \sqrt{\lambda_i}$, with $\lambda_i$ the eigenvalues of the symmetric PSD
# matrix $S_1^{1/2} S_2 S_1^{1/2}$ (`torch.linalg.eigh` / `eigvalsh`; clamp tiny negative eigenvalues to 0).

# %%
def frechet_distance(mu1, S1, mu2, S2):
    ### BEGIN SOLUTION
    vals, vecs = torch.linalg.eigh(S1)
    r1 = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    tr_sqrt = torch.linalg.eigvalsh(r1 @ S2 @ r1).clamp_min(0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(S1) + torch.trace(S2) - 2 * tr_sqrt)
    ### END SOLUTION


# %%
# Self-check (b)
_mu = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
_S = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
_d0 = float(frechet_distance(_mu, _S, _mu, _S))
assert abs(_d0) < 1e-8, f"a Gaussian is at distance 0 from itself, got {_d0}: check the factor 2 in front of the trace of the square root"
_d_mean = float(frechet_distance(_mu, _S, _mu + torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64), _S))
assert abs(_d_mean - 25.0) < 1e-8, f"shifting the mean by (3, 4, 0) should give 25, got {_d_mean}: the mean term is the SQUARED distance"
_D1 = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
_D2 = torch.diag(torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64))
_d_diag = float(frechet_distance(_mu, _D1, _mu, _D2))
assert abs(_d_diag - 2.0) < 1e-8, \
    f"for diagonal covariances the answer is sum (sqrt(a) - sqrt(b))^2 = 2, got {_d_diag}: check the matrix square root (of eigenvalues, not entries)"
print("(b) self-check passed")

# %% grade={"exercise": "frechet_distance", "points": 2}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(12)
for _f in (2, 5, 20):
    _A = torch.randn(_f, _f, generator=_g, dtype=torch.float64)
    _B = torch.randn(_f, _f, generator=_g, dtype=torch.float64)
    _S1, _S2 = _A @ _A.T + 0.01 * torch.eye(_f, dtype=torch.float64), _B @ _B.T
    _m1, _m2 = torch.randn(_f, generator=_g, dtype=torch.float64), torch.randn(_f, generator=_g, dtype=torch.float64)
    _ref = ev.frechet_distance(_m1, _S1, _m2, _S2)
    assert abs(float(frechet_distance(_m1, _S1, _m2, _S2)) - _ref) < 1e-6 * max(1.0, _ref), _f
    assert abs(float(frechet_distance(_m2, _S2, _m1, _S1)) - _ref) < 1e-6 * max(1.0, _ref), "symmetric"
# singular (rank-1) covariances: still finite, 0 against itself
_v = torch.randn(4, 1, generator=_g, dtype=torch.float64)
_R = _v @ _v.T
assert abs(float(frechet_distance(_v[:, 0], _R, _v[:, 0], _R))) < 1e-6
### END HIDDEN TESTS

# %% [markdown]
# ## (c) The Inception Score (1 point)
#
# For $N$ generated images a classifier gives $p(y \mid x_n)$, the rows of an $N \times C$ matrix `probs`.
# With the marginal $p(y) = \frac1N \sum_n p(y \mid x_n)$ (Salimans et al. 2016):
#
# $$\mathrm{IS} = \exp\Big(\frac1N \sum_n \mathrm{KL}\big(p(y \mid x_n) \,\|\, p(y)\big)\Big),
# \qquad \mathrm{KL}(p \,\|\, q) = \sum_y p_y \log\frac{p_y}{q_y}.$$
#
# Write `inception_score(probs)` returning a Python float. Confident one-hot rows contain zeros:
# $0 \log 0 = 0$ in both terms of the KL, $p(y \mid x) \log p(y \mid x)$ and $p(y \mid x) \log p(y)$ (`torch.xlogy(a, b)` is $a \log b$ with $0 \log 0 = 0$).

# %%
def inception_score(probs):
    ### BEGIN SOLUTION
    p_y = probs.mean(0, keepdim=True)
    kl = (torch.xlogy(probs, probs) - torch.xlogy(probs, p_y)).sum(1)
    return float(torch.exp(kl.mean()))
    ### END SOLUTION


# %%
# Self-check (c)
_balanced = torch.eye(10, dtype=torch.float64).repeat(3, 1)
_s = float(inception_score(_balanced))
assert math.isfinite(_s), "one-hot rows give NaN: 0 * log 0 must count as 0 (use torch.xlogy)"
assert abs(_s - 10) < 1e-6, f"confident, balanced predictions over 10 classes give IS = 10, got {_s}: check the exp and the marginal p(y)"
_same = torch.tensor([[0.7, 0.2, 0.1]] * 8, dtype=torch.float64)
_s1 = float(inception_score(_same))
assert abs(_s1 - 1) < 1e-9, f"identical predictions give IS = 1 (each KL to the marginal is 0), got {_s1}: p(y) is the mean of the rows"
print("(c) self-check passed")

# %% grade={"exercise": "inception_score", "points": 1}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(13)
_P = torch.softmax(3 * torch.randn(300, 10, generator=_g, dtype=torch.float64), 1)
assert abs(float(inception_score(_P)) - ev.inception_score_from_probs(_P)) < 1e-6
_one_class = torch.zeros(20, 5, dtype=torch.float64)
_one_class[:, 2] = 1
assert abs(float(inception_score(_one_class)) - 1) < 1e-9, "confident but always the same class: IS = 1"
_imbalanced = torch.eye(4, dtype=torch.float64)[torch.tensor([0, 0, 0, 1])]   # p(y) = (3/4, 1/4, 0, 0)
assert abs(float(inception_score(_imbalanced)) - math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))) < 1e-9
### END HIDDEN TESTS
