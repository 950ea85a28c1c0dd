# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 9: the hyperspherical VAE
#
# Three steps the lesson did not take, each checked on cases where the answer is known:
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) `log_density_w` | the normalised density of $w = \mu^\top z$ under $\mathrm{vMF}(\mu, \kappa)$ (the target of Wood's sampler) | 3 |
# | (b) `g_cor` | the correction term of Davidson et al. (2018) that removes the bias of the pathwise gradient | 4 |
# | (c) `estimate_kappa` | the maximum-likelihood concentration $\hat\kappa$ of points on the sphere | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run its **self-check** cell: its
# messages name the usual mistakes. Graded cells (marked "grade") run hidden tests when your work is collected: do not
# edit or delete them. Use torch and `log_bessel_iv` / `bessel_ratio` from course_lib (they work in log space); the
# grade cells say which course_lib functions your answer must not call.
#
# Runs in a few seconds on a CPU. Units: log-densities and KLs in **nats**.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib.distributions.von_mises_fisher import bessel_ratio, log_bessel_iv, wood_parameters
from course_lib.tooling.checks import record
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)
F64 = torch.float64

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The density of $w = \mu^\top z$ (3 points)
#
# The lesson used that $w = \mu^\top z$, for $z \sim \mathrm{vMF}(\mu, \kappa)$ on $\mathcal{S}^{m-1}$, has a density
# $\propto e^{\kappa w}(1 - w^2)^{(m-3)/2}$ on $(-1, 1)$, and normalised it numerically. Find its normalising
# constant in closed form. Hints: write $z = w\mu + \sqrt{1 - w^2}\,v$ with $v$ a unit vector orthogonal to $\mu$;
# the set of $z$ with a given $w$ is a sphere $\mathcal{S}^{m-2}$ of radius $\sqrt{1-w^2}$; integrate the vMF density
# (eq. 3 of the lesson) over it. The area of the unit sphere $\mathcal{S}^{k-1} \subset \mathbb{R}^k$ is
# $2\pi^{k/2}/\Gamma(k/2)$.
#
# Write `log_density_w(w, m, kappa)`: `w` a float64 tensor of values in $(-1, 1)$, `kappa` a positive float64 tensor
# (broadcastable with `w`); return $\log p(w \mid \kappa)$ elementwise, in log space (finite for $m = 64$, $\kappa = 10^3$),
# differentiable in `kappa`.
#
# **Check**: it integrates to 1 over $(-1, 1)$ and its mean is the lesson's $E[\mu^\top z]$, for several $m$ and $\kappa$.

# %%
def log_density_w(w, m, kappa):
    """log p(w | kappa) of w = mu^T z, z ~ vMF(mu, kappa) on S^(m-1), elementwise."""
    ### BEGIN SOLUTION
    v = m / 2 - 1
    log_norm = v * torch.log(kappa) - (m / 2) * math.log(2 * math.pi) - log_bessel_iv(v, kappa)
    log_ring = math.log(2) + (m - 1) / 2 * math.log(math.pi) - math.lgamma((m - 1) / 2)     # area of S^(m-2)
    return log_norm + log_ring + kappa * w + (m - 3) / 2 * torch.log1p(-w * w)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_w = torch.tensor([-0.5, 0.2, 0.8], dtype=F64)
_lp = log_density_w(_w, 5, torch.tensor(3.0, dtype=F64))
assert torch.is_tensor(_lp) and _lp.shape == (3,), f"one log-density per value of w, shape (3,), got {getattr(_lp, 'shape', None)}"
_slips = {  # what a usual slip gives at m = 5, kappa = 3, w = (-0.5, 0.2, 0.8) (numbers computed once)
    (-2.595403, -0.248543, 0.570628): "the set of z with a given w is a sphere S^(m-2) in R^(m-1), not S^(m-1): its area "
                                      "is 2 pi^((m-1)/2) / Gamma((m-1)/2)",
    (-3.026926, -0.556636, -0.22788): "the exponent of (1 - w^2) is (m - 3)/2: radius^(m-2) of the ring times the "
                                      "1/sqrt(1 - w^2) of the change of variable",
    (-3.170767, -0.577047, -0.738705): "the exponent of (1 - w^2) is (m - 3)/2, not (m - 1)/2",
    (-2.167489, 0.179371, 0.998542): "the Bessel function in C_m(kappa) is I_(m/2 - 1), not I_(m/2) (off-by-one in the order)",
    (-5.865692, -3.518832, -2.699661): "the area of the ring of z with a given w is missing (log 2 pi^((m-1)/2) / Gamma((m-1)/2))",
    (0.116915, -1.736225, -4.517054): "the sign of kappa w: the density grows towards w = 1 (z near mu)",
    (-4.531003, -2.184143, -1.364972): "the (m/2 - 1) log kappa of log C_m(kappa) is missing",
}
for _vals, _why in _slips.items():
    assert not torch.allclose(_lp, torch.tensor(_vals, dtype=F64), atol=2e-6), _why
_grid = torch.linspace(-1, 1, 200_001, dtype=F64)[1:-1]
for _m, _k in ((3, 0.5), (5, 3.0), (10, 20.0), (64, 1000.0)):
    _p = log_density_w(_grid, _m, torch.tensor(_k, dtype=F64)).exp()
    _mass, _mean = torch.trapezoid(_p, _grid).item(), torch.trapezoid(_grid * _p, _grid).item()
    assert math.isfinite(_mass) and abs(_mass - 1) < 1e-4, (
        f"m = {_m}, kappa = {_k}: the density integrates to {_mass:.6f}, not 1: check the normalising constant")
    assert abs(_mean - bessel_ratio(_m / 2 - 1, torch.tensor(_k, dtype=F64)).item()) < 1e-4, (
        f"m = {_m}, kappa = {_k}: integrates to 1 but its mean {_mean:.5f} is not E[mu^T z]: check the exponents")
assert torch.allclose(_lp, torch.tensor([-2.8830848, -0.5362247, 0.2829460], dtype=F64), atol=1e-6), (
    f"expected [-2.88308, -0.53622, 0.28295] at m = 5, kappa = 3, got {_lp.tolist()}")
_kk = torch.tensor(3.0, dtype=F64, requires_grad=True)
assert log_density_w(_w, 5, _kk).sum().requires_grad, "keep it differentiable in kappa (torch operations only)"
print("Self-check (a) passed.")

# %% grade={"exercise": "log_density_w", "points": 3, "forbidden": ["course_lib.distributions.von_mises_fisher.vmf_log_normalizer", "course_lib.distributions.von_mises_fisher.log_sphere_area", "course_lib.distributions.von_mises_fisher.vmf_kl_uniform", "course_lib.distributions.von_mises_fisher.VonMisesFisher"]}
### BEGIN HIDDEN TESTS
for _m in (2, 3, 7, 64, 256):
    _ws = torch.linspace(-0.99, 0.999, 9, dtype=F64)
    _ks = torch.logspace(-2, 3, 9, dtype=F64)
    record(f"log_density_w, m={_m}", log_density_w(_ws, _m, _ks), rtol=1e-7, atol=1e-8,
           message="log C_m(kappa) + log area(S^(m-2)) + kappa w + (m - 3)/2 log(1 - w^2), in log space")
_kk = torch.tensor(2.5, dtype=F64, requires_grad=True)
_g, = torch.autograd.grad(log_density_w(torch.tensor([0.3, -0.6], dtype=F64), 6, _kk).sum(), _kk)
record("d log p(w) / d kappa at m=6, kappa=2.5", _g, rtol=1e-6, atol=1e-9,
       message="the log-density must be differentiable in kappa (torch operations only)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The correction term $g_{cor}$ (4 points)
#
# The lesson measured that the pathwise term alone, $g_{rep} = \mathbb{E}\big[\partial_\kappa f(h(\varepsilon, \kappa))\big]$
# with Wood's map $h$ and the accepted $\varepsilon$ held fixed, is biased. Naesseth et al. (2017) and Davidson et al.
# (2018, eq. 8-9) give the reason: the accepted $\varepsilon$ do not follow the proposal $s(\varepsilon)$ but
#
# $$\pi(\varepsilon \mid \kappa) = s(\varepsilon)\,\frac{p(h(\varepsilon, \kappa) \mid \kappa)}{r(h(\varepsilon, \kappa) \mid \kappa)},$$
#
# with $p$ the target density of $w$ (your (a)) and $r$ the proposal's density of $w$ (the density of $h(\varepsilon, \kappa)$ when
# $\varepsilon \sim s$), and $\pi$ **depends on** $\kappa$. Differentiate $\mathbb{E}_{\pi(\varepsilon \mid \kappa)}[f(h(\varepsilon, \kappa))]$
# (an integral over $\varepsilon$) with respect to $\kappa$: one part is $g_{rep}$, the other is $g_{cor}$, an expectation
# over the accepted $\varepsilon$. Write that second part. You will need $r$: a change of variable from $\varepsilon$ to $w$.
#
# Write `g_cor(f, eps, kappa, m)`: `f` maps a tensor of $w$ values to a tensor of the same shape, `eps` (shape `(n,)`,
# float64) are accepted proposals, `kappa` a float; return a 0-d tensor, your estimate of $g_{cor}$ from these `eps`.
# Use the given `wood_b` and `wood_map` (Wood's $b(\kappa)$ and $h(\varepsilon, \kappa)$, differentiable) and
# `torch.autograd` for the derivative in $\kappa$.
#
# **Check**: $g_{rep} + g_{cor}$ is the exact $\partial_\kappa \mathbb{E}[w] = 1 - A^2 - \frac{m-1}\kappa A$ (lesson,
# section 7), within the Monte Carlo error, where $g_{rep}$ alone is off by 13 % (the self-check draws the $\varepsilon$).

# %% slideshow={"slide_type": "subslide"}
def wood_b(kappa, m):
    """Wood's b = (m - 1) / (2 kappa + sqrt(4 kappa^2 + (m - 1)^2)); kappa a tensor (differentiable)."""
    return (m - 1) / (2 * kappa + torch.sqrt(4 * kappa**2 + (m - 1) ** 2))


def wood_map(eps, kappa, m):
    """h(eps, kappa) = (1 - (1 + b) eps) / (1 - (1 - b) eps), Wood's map from a proposal eps in (0, 1) to w."""
    b = wood_b(kappa, m)
    return (1 - (1 + b) * eps) / (1 - (1 - b) * eps)


def accepted_eps(m, kappa, n, generator):
    """n proposals eps ~ Beta((m-1)/2, (m-1)/2) that pass Wood's acceptance test (float64)."""
    b, a, d = wood_parameters(m, torch.tensor(kappa, dtype=F64))
    out = torch.empty(0, dtype=F64)
    while len(out) < n:
        g1, g2 = (torch._standard_gamma(torch.full((n,), (m - 1) / 2, dtype=F64), generator=generator) for _ in range(2))
        eps = g1 / (g1 + g2)                                              # a Beta draw with a generator
        t = 2 * a * b / (1 - (1 - b) * eps)
        keep = (m - 1) * torch.log(t) - t + d >= torch.log(torch.rand(n, dtype=F64, generator=generator))
        out = torch.cat([out, eps[keep]])
    return out[:n]


def g_rep(f, eps, kappa, m):
    """The pathwise term: mean over eps of d f(h(eps, kappa)) / d kappa with eps held fixed."""
    k = torch.tensor(float(kappa), dtype=F64, requires_grad=True)
    return torch.autograd.grad(f(wood_map(eps, k, m)).mean(), k)[0]


# %%
def g_cor(f, eps, kappa, m):
    """Estimate of the correction term from the accepted proposals eps (a 0-d tensor)."""
    ### BEGIN SOLUTION
    k = torch.tensor(float(kappa), dtype=F64, requires_grad=True)
    b = wood_b(k, m)
    den = 1 - (1 - b) * eps
    w = (1 - (1 + b) * eps) / den
    log_jacobian = torch.log(2 * b) - 2 * torch.log(den)           # log |dh/deps|: r(h) = s(eps) / |dh/deps|
    log_ratio = log_density_w(w, m, k) + log_jacobian               # log p(h | kappa) - log r(h | kappa) + log s(eps)
    return torch.autograd.grad((f(w).detach() * log_ratio).mean(), k)[0]
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)** (it uses your (a): make (a) pass first)

# %%
_eps = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=F64)
_c = g_cor(lambda w: w, _eps, 2.0, 5)
assert torch.is_tensor(_c) and _c.dim() == 0, "return a 0-d tensor (the average over the eps)"
_slips = {  # what a usual slip gives for f = w at m = 5, kappa = 2 on these five eps (numbers computed once)
    0.141267: "the kappa-dependence of p's normalising constant is missing: use the normalised log p(w | kappa) of (a)",
    0.130089: "w = h(eps, kappa) moves with kappa inside log p(h(eps, kappa) | kappa): do not detach it there",
    0.164485: "r is missing: the proposal's density of w is s(eps) / |dh/deps|, and |dh/deps| depends on kappa",
    0.293489: "the Jacobian enters with the wrong sign: log r(h) = log s(eps) - log |dh/deps|",
    -0.050754: "f(w) is missing: g_cor = E_pi[f(h) d/dkappa log(p(h) / r(h))], not the score alone",
    0.1774: "you summed over the eps: g_cor is an expectation, estimate it with the mean",
}
for _v, _why in _slips.items():
    assert abs(_c.item() - _v) > 2e-6, _why
assert abs(_c.item() - 0.0354800606) < 1e-8, f"for f = w on these eps expected 0.0354801, got {_c.item():.7f}"
assert abs(g_cor(lambda w: w**2, _eps, 2.0, 5).item() + 0.0211144042) < 1e-8, (
    "right for f = w but not for f = w^2: multiply by f(w) (not by w), f evaluated at h(eps, kappa)")
_m, _k = 5, 2.0
_e = accepted_eps(_m, _k, 100_000, make_generator(7))
_A = bessel_ratio(_m / 2 - 1, torch.tensor(_k, dtype=F64)).item()
_exact = 1 - _A**2 - (_m - 1) * _A / _k
_total = (g_rep(lambda w: w, _e, _k, _m) + g_cor(lambda w: w, _e, _k, _m)).item()
print(f"m = 5, kappa = 2: g_rep = {g_rep(lambda w: w, _e, _k, _m).item():.4f}, g_rep + g_cor = {_total:.4f}, exact {_exact:.4f}")
assert abs(_total - _exact) < 0.001, f"g_rep + g_cor = {_total:.4f} should be the exact gradient {_exact:.4f}"
print("Self-check (b) passed.")

# %% grade={"exercise": "g_cor", "points": 4, "forbidden": ["course_lib.distributions.von_mises_fisher.VonMisesFisher"]}
### BEGIN HIDDEN TESTS
_student_log_density_w = log_density_w


def log_density_w(w, m, kappa):   # (b) is graded on its own: a mistake in (a) is not counted twice
    v = m / 2 - 1
    return (v * torch.log(kappa) - (m / 2) * math.log(2 * math.pi) - log_bessel_iv(v, kappa) + math.log(2)
            + (m - 1) / 2 * math.log(math.pi) - math.lgamma((m - 1) / 2) + kappa * w + (m - 3) / 2 * torch.log1p(-w * w))


try:
    _e = torch.linspace(0.02, 0.98, 25, dtype=F64)
    for _m, _k in ((3, 1.0), (10, 2.0), (10, 20.0)):
        record(f"g_cor, f = w, m={_m}, kappa={_k}", g_cor(lambda w: w, _e, _k, _m), rtol=1e-6, atol=1e-10,
               message="g_cor = mean over eps of f(h) d/dkappa [log p(h | kappa) + log |dh/deps|], h = h(eps, kappa)")
        record(f"g_cor, f = exp(2w), m={_m}, kappa={_k}", g_cor(lambda w: torch.exp(2 * w), _e, _k, _m), rtol=1e-6,
               atol=1e-10, message="multiply the derivative of the log-ratio by f(h(eps, kappa)), any f")
finally:
    log_density_w = _student_log_density_w
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) Fitting $\kappa$ to points on the sphere (3 points)
#
# Given $n$ points $z_i \in \mathcal{S}^{m-1}$, find the maximum-likelihood vMF concentration $\hat\kappa$. Write the
# log-likelihood with the lesson's eq. 3; the best $\hat\mu$ is the direction of $\sum_i z_i$; set the derivative in
# $\kappa$ to zero (you need $\partial_\kappa \log I_v(\kappa) = I_{v+1}(\kappa)/I_v(\kappa) + v/\kappa$) and solve the equation you get
# for $\kappa$ numerically, to 8 digits: it has no closed form. Any root finder will do; Banerjee et al. (2005) give
# a good start, $\kappa_0 = \bar r(m - \bar r^2)/(1 - \bar r^2)$ with $\bar r$ the length of the mean of the points.
#
# Write `estimate_kappa(z)`: `z` of shape `(n, m)` (float64, unit rows); return a 0-d tensor $\hat\kappa$.
# `bessel_ratio(v, kappa)` gives $I_{v+1}(\kappa)/I_v(\kappa)$.
#
# **Check**: on points drawn from a vMF with $\kappa = 8$ you recover about 8; on any points, $\hat\kappa$ solves your
# equation to $10^{-8}$.

# %%
def estimate_kappa(z):
    """Maximum-likelihood concentration of the points z (n, m) on the sphere."""
    ### BEGIN SOLUTION
    m = z.shape[1]
    r = z.mean(0).norm()
    kappa = r * (m - r**2) / (1 - r**2)
    for _ in range(20):                      # Newton on A(kappa) = r, A' = 1 - A^2 - (m - 1) A / kappa
        a = bessel_ratio(m / 2 - 1, kappa)
        kappa = kappa - (a - r) / (1 - a**2 - (m - 1) / kappa * a)
    return kappa
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**: fixed points first (n = 6 points in m = 4 dimensions), then points drawn with a known $\kappa$.

# %%
_z = torch.nn.functional.normalize(torch.tensor([[3.0, 1.0, 0.0, 0.5], [2.0, -1.0, 1.0, 0.0], [4.0, 0.5, -0.5, 1.0],
                                                 [1.0, 0.0, 2.0, -1.0], [3.0, -0.5, 0.0, 0.0], [2.5, 1.0, 1.0, -0.5]],
                                                dtype=F64), dim=1)
_kh = estimate_kappa(_z)
assert torch.is_tensor(_kh) and _kh.dim() == 0, "return a 0-d tensor (one kappa for the whole sample)"
assert torch.isfinite(_kh), ("kappa_hat is not finite: r_bar is the length of the MEAN of the points (below 1), not the "
                             "mean of their lengths (which is 1), nor the length of their sum")
_r = _z.mean(0).norm().item()
if abs(bessel_ratio(2.0, _kh).item() - _r) < 1e-6:
    raise AssertionError("your kappa_hat solves I_(m/2+1) / I_(m/2) = r_bar: on S^(m-1) the mean resultant length is "
                         "I_(m/2) / I_(m/2-1), i.e. bessel_ratio(m/2 - 1, kappa) (off-by-one in the order)")
if abs(bessel_ratio(2.5, _kh).item() - _r) < 1e-6 or abs(bessel_ratio(1.5, _kh).item() - _r) < 1e-6:
    raise AssertionError("the order of the Bessel ratio is off by 1/2: v = m/2 - 1, with m = z.shape[1] (the dimension, "
                         "not the number of points)")
_gap = abs(bessel_ratio(1.0, _kh).item() - _r)
assert _gap < 1e-8, (f"A(kappa_hat) - r_bar = {_gap:.2e}: not solved to 8 digits (Banerjee's start is only an "
                     "approximation: iterate your root finder until the equation holds)")
_e = accepted_eps(5, 8.0, 20_000, make_generator(1))
_wv = wood_map(_e, torch.tensor(8.0, dtype=F64), 5)
_v = torch.nn.functional.normalize(torch.randn(20_000, 4, dtype=F64, generator=make_generator(2)), dim=1)
_zs = torch.cat([_wv[:, None], (1 - _wv**2).sqrt()[:, None] * _v], 1)          # vMF(e_1, 8) on S^4
_ks = estimate_kappa(_zs).item()
assert abs(_ks - 8.0) < 0.4, f"kappa_hat = {_ks:.3f} for 20,000 points drawn with kappa = 8"
print(f"Self-check (c) passed: kappa_hat = {_kh.item():.4f} on the fixed points, {_ks:.3f} on points with kappa = 8")

# %% grade={"exercise": "estimate_kappa", "points": 3, "forbidden": ["course_lib.distributions.von_mises_fisher.VonMisesFisher"]}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
for _m, _spread in ((2, 1.5), (3, 0.3), (10, 0.8), (64, 0.15)):
    _pts = torch.nn.functional.normalize(torch.randn(400, _m, generator=_g, dtype=F64) * _spread
                                         + torch.nn.functional.one_hot(torch.tensor(0), _m).double(), dim=1)
    record(f"estimate_kappa, m={_m}", estimate_kappa(_pts), rtol=1e-6, atol=1e-8,
           message="solve A_m(kappa) = |mean of z| for kappa, A_m = I_(m/2) / I_(m/2-1), to 8 digits")
### END HIDDEN TESTS
