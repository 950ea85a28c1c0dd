# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 9: the hyperspherical VAE
#
# Three next steps of the lesson, each checked on cases where the answer is known:
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) `kl_vmf_uniform` | the KL of a vMF to the uniform prior on the sphere, from log-Bessel values only | 3 |
# | (b) `householder` | the reflection that carries $e_1$ to $\mu$, applied to a batch of vectors | 2 |
# | (c) `estimate_kappa` | the maximum-likelihood concentration $\hat\kappa$ of points on the sphere | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run its **self-check** cell.
# Graded cells (marked "grade") run hidden tests when your work is collected: do not edit or delete them.
# Use torch and `log_bessel_iv` / `bessel_ratio` from course_lib (they work in log space); do not call
# `course_lib`'s own KL, `householder_to` or `VonMisesFisher` methods inside your answers.
#
# Runs in a few seconds on a CPU. Units: KLs in **nats**.

# %% slideshow={"slide_type": "skip"}
import math

import torch
from torch.nn import functional as F

from course_lib.distributions.von_mises_fisher import bessel_ratio, log_bessel_iv
from course_lib.tooling.checks import record
from course_lib.runtime import seed_everything

seed_everything(0)
F64 = torch.float64

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The KL to the uniform prior, in log space (3 points)
#
# For $q = \mathrm{vMF}(\mu, \kappa)$ on $\mathcal{S}^{m-1}$ and the uniform $p$ (density $1/A_m$, $A_m = 2\pi^{m/2}/\Gamma(m/2)$),
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q(z) - \log p(z)] = \log\mathcal{C}_m(\kappa) + \kappa\,\mathbb{E}_q[\mu^\top z] + \log A_m,
#   \qquad \mathbb{E}_q[\mu^\top z] = \frac{I_{m/2}(\kappa)}{I_{m/2-1}(\kappa)},$$
#
# with $\log\mathcal{C}_m(\kappa) = (\tfrac m2 - 1)\log\kappa - \tfrac m2\log(2\pi) - \log I_{m/2-1}(\kappa)$.
#
# Write `kl_vmf_uniform(m, kappa)`: `kappa` is a float64 tensor of any shape; return the KL elementwise, same shape.
# Use `log_bessel_iv(v, kappa)` (it returns $\log I_v(\kappa)$) and never $I_v$ itself: the KL must stay finite for
# $m = 256$, $\kappa = 10^{-3}$ (where $I_{127}(\kappa) \approx 10^{-634}$) and for $\kappa = 10^5$ (where $I_0 \approx 10^{43427}$).
# `torch.lgamma` gives $\log\Gamma$.

# %%
def kl_vmf_uniform(m, kappa):
    """KL(vMF(mu, kappa) || U(S^(m-1))) elementwise in kappa, from log I_v values only."""
    ### BEGIN SOLUTION
    v = m / 2 - 1
    log_iv, log_iv1 = log_bessel_iv(v, kappa), log_bessel_iv(v + 1, kappa)
    log_norm = v * kappa.log() - (m / 2) * math.log(2 * math.pi) - log_iv
    log_area = math.log(2) + (m / 2) * math.log(math.pi) - math.lgamma(m / 2)
    return log_norm + kappa * torch.exp(log_iv1 - log_iv) + log_area
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_k = torch.tensor([0.5, 2.0, 10.0], dtype=F64)
_kl = kl_vmf_uniform(3, _k)
assert torch.is_tensor(_kl) and _kl.shape == _k.shape, f"expected one KL per kappa, shape {tuple(_k.shape)}"
_want = _k / torch.tanh(_k) - 1 + torch.log(_k / torch.sinh(_k))     # on S^2: C_3 = k / (4 pi sinh k), A_3 = 4 pi
assert torch.allclose(_kl, _want, rtol=1e-8), (
    f"on S^2 the KL is k coth k - 1 + log(k / sinh k) = {_want.tolist()}, got {_kl.tolist()}: check the sign of "
    "log I_v in log C, the area term log(2 pi^(m/2) / Gamma(m/2)), and that the mean is I_(m/2) / I_(m/2-1) (order v + 1 on top)")
_small = kl_vmf_uniform(10, torch.tensor([1e-3], dtype=F64))
assert 0 <= _small.item() < 1e-6, f"kappa -> 0 is the uniform distribution: the KL should be ~ kappa^2 / (2m) = 5e-8, got {_small.item():.3g}"
_big = kl_vmf_uniform(256, torch.tensor([1e-3, 1e5], dtype=F64))
assert torch.isfinite(_big).all(), ("the KL is not finite at m = 256: compute with log I_v only (no exp of log_bessel_iv "
                                    "on its own, no scipy.special.iv)")
print("Self-check (a) passed.")

# %% grade={"exercise": "kl_vmf_uniform", "points": 3}
### BEGIN HIDDEN TESTS
from course_lib.distributions.von_mises_fisher import vmf_kl_uniform as _ref_kl

for _m in (2, 3, 7, 64, 256):
    _ks = torch.logspace(-3, 5, 17, dtype=F64)
    _got = kl_vmf_uniform(_m, _ks)
    assert _got.shape == _ks.shape and torch.isfinite(_got).all()
    assert torch.allclose(_got, _ref_kl(_m, _ks), rtol=1e-7, atol=1e-9)
    assert (_got > -1e-9).all()
    # the KL grows with kappa
    assert (torch.diff(_got) > -1e-9).all()
    record(f"kl_vmf_uniform, m={_m}, kappa 1e-3..1e5", _got, rtol=1e-7, atol=1e-9,
           message="KL = kappa A_m(kappa) + log C_m(kappa) + log area(S^(m-1)), in log space (log-Bessel) so that "
                   "it stays finite from kappa = 1e-3 to 1e5")
# shapes are kept
assert kl_vmf_uniform(4, torch.full((2, 3), 5.0, dtype=F64)).shape == (2, 3)
# differentiable in kappa: dKL/dkappa = kappa * dA/dkappa
_kk = torch.tensor([3.0], dtype=F64, requires_grad=True)
_g, = torch.autograd.grad(kl_vmf_uniform(5, _kk).sum(), _kk)
_A = bessel_ratio(1.5, _kk.detach())
assert torch.allclose(_g, _kk.detach() * (1 - _A**2 - 4 * _A / _kk.detach()), rtol=1e-6)
record("d KL / d kappa at m=5, kappa=3", _g, rtol=1e-6, message="the KL must be differentiable in kappa (torch operations only)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The Householder reflection (2 points)
#
# Wood's sampler draws $z'$ around $e_1 = (1, 0, \dots, 0)$; the reflection
#
# $$H = I - 2uu^\top, \qquad u = \frac{e_1 - \mu}{\|e_1 - \mu\|},$$
#
# is orthogonal, symmetric, and maps $e_1$ to $\mu$, so $Hz' \sim \mathrm{vMF}(\mu, \kappa)$.
#
# Write `householder(mu, x)`: `mu` and `x` have shape `(n, m)` (each `mu[i]` a unit vector); return $Hx$ row by row,
# shape `(n, m)`, **without** building the $m \times m$ matrix ($Hx = x - 2u\,(u^\top x)$). Where $\mu = e_1$ (then
# $u$ is undefined), return $x$ unchanged.

# %%
def householder(mu, x):
    """Row i: (I - 2 u u^T) x[i] with u = (e_1 - mu[i]) / |e_1 - mu[i]|; x[i] itself where mu[i] = e_1."""
    ### BEGIN SOLUTION
    u = -mu.clone()
    u[:, 0] += 1
    norm = u.norm(dim=1, keepdim=True)
    u = u / norm.clamp_min(1e-12)
    reflected = x - 2 * u * (u * x).sum(1, keepdim=True)
    return torch.where(norm > 1e-12, reflected, x)
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_mu = F.normalize(torch.tensor([[1.0, 2.0, 2.0], [0.0, -1.0, 0.0]], dtype=F64), dim=1)
_e1 = torch.tensor([[1.0, 0.0, 0.0]] * 2, dtype=F64)
_h = householder(_mu, _e1)
assert torch.is_tensor(_h) and _h.shape == (2, 3), "return one reflected vector per row, shape (n, m)"
assert torch.allclose(_h, _mu), f"H e_1 should be mu = {_mu.tolist()}, got {_h.tolist()}: u = (e_1 - mu) / |e_1 - mu|"
_x = torch.tensor([[0.3, -1.0, 2.0], [1.0, 1.0, 1.0]], dtype=F64)
assert torch.allclose(householder(_mu, _x).norm(dim=1), _x.norm(dim=1)), "a reflection keeps lengths: normalise u"
assert torch.allclose(householder(_mu, householder(_mu, _x)), _x), "H is its own inverse (H H = I)"
assert torch.allclose(householder(_e1, _x), _x), "where mu = e_1, return x unchanged (no NaN)"
print("Self-check (b) passed.")

# %% grade={"exercise": "householder", "points": 2}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(9)
for _m in (2, 5, 64):
    _mu = F.normalize(torch.randn(40, _m, generator=_g, dtype=F64), dim=1)
    _mu[0] = 0
    _mu[0, 0] = 1.0                                      # mu = e_1
    _mu[1] = 0
    _mu[1, 0] = -1.0                                     # mu = -e_1
    _x = torch.randn(40, _m, generator=_g, dtype=F64)
    _y = torch.randn(40, _m, generator=_g, dtype=F64)
    _hx, _hy = householder(_mu, _x), householder(_mu, _y)
    assert _hx.shape == _x.shape and torch.isfinite(_hx).all()
    assert torch.allclose((_hx * _hy).sum(1), (_x * _y).sum(1), atol=1e-10)          # orthogonal
    _e = torch.zeros(40, _m, dtype=F64)
    _e[:, 0] = 1
    assert torch.allclose(householder(_mu, _e), _mu, atol=1e-10)                      # e_1 -> mu
    assert torch.allclose(_hx[0], _x[0])
    record(f"householder, m={_m}", [_hx, _hy], rtol=1e-9, atol=1e-10,
           message="H x = x - 2 u (u . x) with u = (e_1 - mu) / |e_1 - mu|; H = I when mu = e_1")
    # the plain formula with the full matrix
    for _i in range(2, 6):
        _u = _e[_i] - _mu[_i]
        _u = _u / _u.norm()
        assert torch.allclose(_hx[_i], (torch.eye(_m, dtype=F64) - 2 * torch.outer(_u, _u)) @ _x[_i], atol=1e-10)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) Fitting $\kappa$ to points on the sphere (3 points)
#
# Given $n$ points $z_i \in \mathcal{S}^{m-1}$, the maximum-likelihood vMF has $\hat\mu = \bar z / \|\bar z\|$ and $\hat\kappa$ solving
#
# $$A_m(\hat\kappa) = \frac{I_{m/2}(\hat\kappa)}{I_{m/2-1}(\hat\kappa)} = \bar r, \qquad \bar r = \Big\|\frac1n\sum_i z_i\Big\| \in (0, 1),$$
#
# (set the $\kappa$-derivative of the log-likelihood, $n(\partial_\kappa \log\mathcal{C}_m(\kappa) + \hat\mu^\top\bar z\,)$, to 0).
# No closed form: start from the approximation of Banerjee et al. (2005), $\kappa_0 = \bar r(m - \bar r^2)/(1 - \bar r^2)$,
# and refine with Newton's method, using $A_m'(\kappa) = 1 - A_m^2 - \frac{m-1}{\kappa}A_m$:
#
# $$\kappa_{t+1} = \kappa_t - \frac{A_m(\kappa_t) - \bar r}{A_m'(\kappa_t)}.$$
#
# Write `estimate_kappa(z, steps=5)`: `z` has shape `(n, m)` (float64, unit rows); return a 0-d tensor $\hat\kappa$.
# `bessel_ratio(v, kappa)` gives $I_{v+1}(\kappa)/I_v(\kappa)$.

# %%
def estimate_kappa(z, steps=5):
    """Maximum-likelihood concentration of the points z (n, m) on the sphere: Banerjee's start, then Newton."""
    ### BEGIN SOLUTION
    m = z.shape[1]
    r = z.mean(0).norm()
    kappa = r * (m - r**2) / (1 - r**2)
    for _ in range(steps):
        a = bessel_ratio(m / 2 - 1, kappa)
        kappa = kappa - (a - r) / (1 - a**2 - (m - 1) / kappa * a)
    return kappa
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**: points from a known vMF (course_lib's sampler).

# %%
from course_lib.distributions import VonMisesFisher

_mu = F.normalize(torch.ones(1, 5, dtype=F64), dim=1)
_z = VonMisesFisher(_mu, torch.tensor([8.0], dtype=F64)).sample((20_000,), generator=torch.Generator().manual_seed(1))[:, 0]
_k = estimate_kappa(_z)
assert torch.is_tensor(_k) and _k.dim() == 0, "return a 0-d tensor (one kappa for the whole sample)"
assert abs(_k.item() - 8.0) < 0.4, (f"kappa_hat = {_k.item():.3f} for data drawn with kappa = 8: r_bar is the norm of the "
                                    "MEAN of the points (not the mean of their norms, which is 1)")
_r = _z.mean(0).norm()
assert abs(bessel_ratio(1.5, _k).item() - _r.item()) < 1e-8, (
    "kappa_hat should solve A(kappa) = r_bar exactly: check the Newton step, A' = 1 - A^2 - (m - 1) A / kappa, "
    "and that bessel_ratio is called with v = m/2 - 1")
print(f"Self-check (c) passed: kappa_hat = {_k.item():.3f} (true 8)")

# %% grade={"exercise": "estimate_kappa", "points": 3}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
for _m, _kt in ((2, 1.5), (3, 40.0), (10, 3.0), (64, 500.0)):
    _mu = F.normalize(torch.randn(1, _m, generator=_g, dtype=F64), dim=1)
    _z = VonMisesFisher(_mu, torch.tensor([_kt], dtype=F64)).sample((20_000,), generator=_g)[:, 0]
    _k = estimate_kappa(_z)
    assert _k.dim() == 0 and torch.isfinite(_k)
    assert abs(_k.item() / _kt - 1) < 0.06, (_m, _kt, _k.item())
    _r = _z.mean(0).norm()
    assert abs(bessel_ratio(_m / 2 - 1, _k).item() - _r.item()) < 1e-7
    record(f"estimate_kappa, m={_m}, kappa={_kt}", _k, rtol=1e-5, atol=1e-8,
           message="solve A_m(kappa) = |mean of z| for kappa: Banerjee's start, then Newton steps until it holds")
# Newton improves on the starting approximation
_z = VonMisesFisher(F.normalize(torch.ones(1, 3, dtype=F64), dim=1), torch.tensor([2.0], dtype=F64)).sample((5000,), generator=_g)[:, 0]
_r = _z.mean(0).norm()
_k0 = _r * (3 - _r**2) / (1 - _r**2)
assert abs(bessel_ratio(0.5, estimate_kappa(_z)) - _r) < abs(bessel_ratio(0.5, _k0) - _r)
### END HIDDEN TESTS
