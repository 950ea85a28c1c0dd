"""Tests of the von Mises-Fisher distribution, the uniform distribution on the sphere (lesson 9)
and the S-VAE model.

Every formula of the lesson against something independent: log I_v against scipy's exponentially
scaled Bessel function, sample moments against the Bessel ratio, densities against quadrature, the
KL against Monte Carlo and against a formula written with scipy, the kappa-gradient of rsample
against the derivative of E[mu^T z] (and the pathwise-only estimator shown biased), and the
stability grid m in 2..256, kappa in 1e-3..1e5, float32 and float64.
"""
import math

import numpy as np
import pytest
import scipy.special as sp
import torch
from torch.distributions import kl_divergence
from torch.nn import functional as F

from course_lib.distributions import HypersphericalUniform, VonMisesFisher
from course_lib.distributions.von_mises_fisher import (bessel_ratio, householder_to, log_bessel_iv, log_sphere_area,
                                                       vmf_kl_uniform, vmf_log_normalizer, wood_acceptance_rate)

F64 = torch.float64


def _e1(m, n=1, dtype=F64):
    loc = torch.zeros(n, m, dtype=dtype)
    loc[:, 0] = 1
    return loc


def _dA_dkappa(m, k):
    """d/dkappa of A(kappa) = I_{m/2}/I_{m/2-1}: 1 - A^2 - (m - 1) A / kappa (independent scipy values)."""
    A = sp.ive(m / 2, k) / sp.ive(m / 2 - 1, k)
    return 1 - A * A - (m - 1) * A / k


# --- Bessel functions ----------------------------------------------------------------------

@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 1.5, 4.0, 12.5, 49.0, 63.0, 127.0])
def test_log_bessel_matches_scipy(v):
    k = np.logspace(-3, 5, 161)
    ref = np.log(sp.ive(v, k)) + k
    ok = np.isfinite(ref)                         # scipy underflows for large v and small kappa
    assert ok.sum() > 100
    got = log_bessel_iv(v, torch.tensor(k, dtype=F64)).numpy()
    assert np.allclose(got[ok], ref[ok], rtol=1e-9, atol=1e-9)
    # where scipy underflows, the first two terms of the series: (k/2)^v / Gamma(v+1) (1 + k^2 / (4 (v+1)))
    small = k < 1e-2
    lead = v * np.log(k[small] / 2) - sp.gammaln(v + 1) + np.log1p(k[small] ** 2 / (4 * (v + 1)))
    assert np.allclose(got[small], lead, rtol=1e-9, atol=1e-9)   # the next term is O(k^4) < 1e-9


def test_log_bessel_gradient_is_ratio_plus_v_over_kappa():
    k = torch.tensor([1e-3, 0.3, 7.0, 49.0, 51.0, 300.0, 1e4, 1e5], dtype=F64, requires_grad=True)
    for v in [0.0, 0.5, 3.0, 20.0, 60.0]:
        g, = torch.autograd.grad(log_bessel_iv(v, k).sum(), k)
        kk = k.detach().numpy()
        want = sp.ive(v + 1, kk) / sp.ive(v, kk) + v / kk
        ok = np.isfinite(want)
        assert np.allclose(g.numpy()[ok], want[ok], rtol=1e-7)


def test_bessel_ratio_values_and_dtype():
    k = torch.tensor([1e-3, 1.0, 10.0, 1e5], dtype=torch.float32)
    r = bessel_ratio(0.5, k)            # m = 3: A = coth(k) - 1/k
    assert r.dtype == torch.float32
    kk = k.double()
    want = 1 / torch.tanh(kk) - 1 / kk
    assert torch.allclose(r.double(), want, rtol=1e-4)


# --- densities ----------------------------------------------------------------------------

@pytest.mark.parametrize("kappa", [1e-3, 0.5, 5.0, 80.0])
def test_log_prob_integrates_to_one_on_the_circle(kappa):
    theta = torch.linspace(0, 2 * math.pi, 20001, dtype=F64)[:-1]
    z = torch.stack([theta.cos(), theta.sin()], -1)
    loc = F.normalize(torch.tensor([[0.3, -1.0]], dtype=F64), dim=-1)
    p = VonMisesFisher(loc, torch.tensor([kappa], dtype=F64)).log_prob(z).exp()
    integral = p.sum() * (2 * math.pi / len(theta))
    assert abs(integral.item() - 1) < 1e-8
    # m = 2 is the von Mises distribution: density exp(kappa cos(theta - theta_mu)) / (2 pi I_0(kappa))
    theta_mu = math.atan2(loc[0, 1], loc[0, 0])
    vm = torch.distributions.VonMises(torch.tensor(theta_mu, dtype=F64), torch.tensor(kappa, dtype=F64))
    assert torch.allclose(p.log(), vm.log_prob(theta), atol=1e-6)   # torch's I_0 is a polynomial fit (~1e-7)


@pytest.mark.parametrize("kappa", [1e-3, 1.0, 10.0, 200.0])
def test_log_prob_integrates_to_one_on_the_sphere_s2(kappa):
    # Gauss-Legendre in cos(theta) (theta from the pole mu), uniform in the azimuth
    x, w = np.polynomial.legendre.leggauss(400)
    phi = torch.linspace(0, 2 * math.pi, 65, dtype=F64)[:-1]
    ct = torch.tensor(x, dtype=F64)
    st = torch.sqrt(1 - ct**2)
    z = torch.stack([ct[:, None].expand(-1, 64), st[:, None] * phi.cos(), st[:, None] * phi.sin()], -1)
    mu = F.normalize(torch.tensor([[0.2, 0.5, -0.8]], dtype=F64), dim=-1)
    zr = householder_to(mu.expand(400, 64, 3), z)         # rotate the grid: e_1 -> mu
    p = VonMisesFisher(mu, torch.tensor([kappa], dtype=F64)).log_prob(zr).exp()
    integral = (p.mean(-1) * 2 * math.pi * torch.tensor(w, dtype=F64)).sum()
    assert abs(integral.item() - 1) < 1e-6
    # closed form on S^2: C_3(kappa) = kappa / (4 pi sinh kappa)
    if kappa < 500:
        want = math.log(kappa / (4 * math.pi * math.sinh(kappa)))
        assert vmf_log_normalizer(3, torch.tensor(kappa, dtype=F64)).item() == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_uniform_distribution():
    for m in [2, 3, 10, 256]:
        u = HypersphericalUniform(m, dtype=F64)
        z = u.sample((5000,))
        assert z.shape == (5000, m)
        assert torch.allclose(z.norm(dim=-1), torch.ones(5000, dtype=F64))
        assert (z.mean(0).abs() < 5 / math.sqrt(5000)).all()
        assert torch.allclose(u.log_prob(z), torch.full((5000,), -log_sphere_area(m), dtype=F64))
        assert u.entropy().item() == pytest.approx(log_sphere_area(m))
    assert log_sphere_area(2) == pytest.approx(math.log(2 * math.pi))
    assert log_sphere_area(3) == pytest.approx(math.log(4 * math.pi))
    # a vMF with kappa -> 0 is the uniform distribution
    q = VonMisesFisher(_e1(7), torch.tensor([1e-6], dtype=F64))
    assert q.log_prob(_e1(7)).item() == pytest.approx(-log_sphere_area(7), abs=1e-5)


# --- sampling -----------------------------------------------------------------------------

@pytest.mark.parametrize("m", [2, 3, 10, 64])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0, 1000.0])
def test_sample_moments_match_bessel_ratio(m, kappa):
    g = torch.Generator().manual_seed(m * 1000 + int(kappa))
    mu = F.normalize(torch.randn(1, m, generator=g, dtype=F64), dim=-1)
    q = VonMisesFisher(mu, torch.tensor([kappa], dtype=F64))
    z = q.sample((20_000,), generator=g)[:, 0]
    assert torch.allclose(z.norm(dim=-1), torch.ones(len(z), dtype=F64), atol=1e-12)
    w = z @ mu[0]
    A = sp.ive(m / 2, kappa) / sp.ive(m / 2 - 1, kappa)
    se = w.std().item() / math.sqrt(len(w))
    assert abs(w.mean().item() - A) < 5 * se
    assert torch.allclose(q.mean[0], torch.tensor(A, dtype=F64) * mu[0], rtol=1e-9)
    # the mean vector: E[z] = A mu (the components orthogonal to mu average to 0)
    assert ((z.mean(0) - A * mu[0]).abs() < 6 * z.std(0) / math.sqrt(len(z)) + 1e-12).all()
    # second moment of w: E[w^2] = 1 - (m - 1) A / kappa
    w2 = (w * w).mean().item()
    assert abs(w2 - (1 - (m - 1) * A / kappa)) < 6 * (w * w).std().item() / math.sqrt(len(w))


def test_householder_maps_e1_to_mu_and_is_orthogonal():
    g = torch.Generator().manual_seed(0)
    for m in [2, 3, 17]:
        mu = F.normalize(torch.randn(50, m, generator=g, dtype=F64), dim=-1)
        mu[0] = _e1(m)[0]
        mu[1] = -_e1(m)[0]
        assert torch.allclose(householder_to(mu, _e1(m, 50)), mu, atol=1e-12)
        x = torch.randn(50, m, generator=g, dtype=F64)
        y = torch.randn(50, m, generator=g, dtype=F64)
        hx, hy = householder_to(mu, x), householder_to(mu, y)
        assert torch.allclose((hx * hy).sum(-1), (x * y).sum(-1), atol=1e-10)


def test_wood_acceptance_rate_is_high_and_matches_the_sampler():
    g = torch.Generator().manual_seed(0)
    for m in [2, 3, 10, 100]:
        for k in [0.1, 10.0, 1000.0]:
            rate = wood_acceptance_rate(m, k, n=20_000, generator=g)
            assert 0.5 < rate <= 1.0, (m, k, rate)


# --- KL divergence and entropy -------------------------------------------------------------

def _kl_scipy(m, k):
    """KL(vMF || U) = k I_{m/2}/I_{m/2-1} + (m/2-1) log k - (m/2) log 2pi - log I_{m/2-1}(k) + log A_m."""
    log_i = np.log(sp.ive(m / 2 - 1, k)) + k
    log_area = math.log(2) + m / 2 * math.log(math.pi) - sp.gammaln(m / 2)
    return k * sp.ive(m / 2, k) / sp.ive(m / 2 - 1, k) + (m / 2 - 1) * np.log(k) - m / 2 * np.log(2 * np.pi) - log_i + log_area


@pytest.mark.parametrize("m", [2, 3, 5, 10, 40, 100])
def test_kl_matches_independent_scipy_formula(m):
    k = np.logspace(-2, 4, 25)
    want = _kl_scipy(m, k)
    ok = np.isfinite(want)
    q = VonMisesFisher(_e1(m, len(k)), torch.tensor(k, dtype=F64))
    got = kl_divergence(q, HypersphericalUniform(m, dtype=F64)).numpy()
    assert np.allclose(got[ok], want[ok], rtol=1e-7, atol=1e-9)
    assert (got >= 0).all()
    # small kappa: KL ~ kappa^2 / (2 m)
    assert vmf_kl_uniform(m, torch.tensor(1e-3, dtype=F64)).item() == pytest.approx(1e-6 / (2 * m), rel=1e-2)


@pytest.mark.parametrize("m,kappa", [(2, 1.0), (3, 10.0), (10, 3.0), (50, 200.0)])
def test_kl_and_entropy_match_monte_carlo(m, kappa):
    g = torch.Generator().manual_seed(m)
    q = VonMisesFisher(F.normalize(torch.randn(1, m, generator=g, dtype=F64), dim=-1), torch.tensor([kappa], dtype=F64))
    p = HypersphericalUniform(m, dtype=F64)
    z = q.sample((40_000,), generator=g)
    log_ratio = q.log_prob(z) - p.log_prob(z)
    kl, se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(40_000)
    assert abs(kl - kl_divergence(q, p).item()) < 5 * se
    neg = -q.log_prob(z)
    assert abs(neg.mean().item() - q.entropy().item()) < 5 * neg.std().item() / math.sqrt(40_000)


def test_kl_requires_matching_dimensions():
    with pytest.raises(ValueError, match="HypersphericalUniform"):
        kl_divergence(VonMisesFisher(_e1(3), torch.ones(1, dtype=F64)), HypersphericalUniform(4))


# --- gradients ----------------------------------------------------------------------------

GRAD_POINTS = [(2, 0.5), (3, 1.0), (5, 2.0), (10, 20.0)]


@pytest.mark.parametrize("m,kappa", GRAD_POINTS)
def test_rsample_kappa_gradient_is_unbiased_and_pathwise_alone_is_biased(m, kappa):
    n = 50_000
    exact = _dA_dkappa(m, kappa)           # d/dkappa E[mu^T z]
    torch.manual_seed(m)
    results = {}
    for gradient in ("implicit", "pathwise"):
        ks = torch.full((n,), kappa, dtype=F64, requires_grad=True)   # one kappa per sample: per-sample gradients
        w = VonMisesFisher(_e1(m, n), ks).rsample(gradient=gradient)[:, 0]
        g, = torch.autograd.grad(w.sum(), ks)
        assert torch.isfinite(g).all()
        results[gradient] = (g.mean().item(), g.std().item() / math.sqrt(n))
    mean, se = results["implicit"]
    assert abs(mean - exact) < 4 * se, f"implicit gradient {mean:.5f} +- {se:.5f}, exact {exact:.5f}"
    mean, se = results["pathwise"]
    assert abs(mean - exact) > 8 * se, f"the pathwise term alone should be biased here: {mean:.5f} +- {se:.5f} vs {exact:.5f}"


def test_rsample_loc_gradient_is_unbiased():
    # E[a^T z] = A(kappa) a^T mu with mu = h / |h|: its gradient w.r.t. h is A (I - mu mu^T) a / |h|
    m, kappa, n = 4, 3.0, 50_000
    h0 = torch.tensor([0.5, -1.0, 2.0, 0.3], dtype=F64)
    a = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=F64)
    torch.manual_seed(0)
    h = h0.repeat(n, 1).requires_grad_(True)                    # one copy per sample: per-sample gradients
    z = VonMisesFisher(F.normalize(h, dim=-1), torch.full((n,), kappa, dtype=F64)).rsample()
    g, = torch.autograd.grad((z @ a).sum(), h)
    mu = h0 / h0.norm()
    A = sp.ive(m / 2, kappa) / sp.ive(m / 2 - 1, kappa)
    want = A * (a - mu * (mu @ a)) / h0.norm()
    se = g.std(0) / math.sqrt(n)
    assert ((g.mean(0) - want).abs() < 5 * se + 1e-12).all(), (g.mean(0), want, se)


def test_log_prob_entropy_kl_gradients_match_finite_differences():
    for m in [2, 7, 64]:
        for kappa in [0.05, 3.0, 400.0]:
            k = torch.tensor([kappa], dtype=F64, requires_grad=True)
            q = VonMisesFisher(_e1(m), k)
            for fn in (lambda q: q.entropy(), lambda q: kl_divergence(q, HypersphericalUniform(m, dtype=F64)),
                       lambda q: q.log_prob(_e1(m)), lambda q: q.mean[..., 0]):
                g, = torch.autograd.grad(fn(q).sum(), k)
                h = 1e-3 * kappa
                fd = (fn(VonMisesFisher(_e1(m), k.detach() + h)) - fn(VonMisesFisher(_e1(m), k.detach() - h))).item() / (2 * h)
                assert g.item() == pytest.approx(fd, rel=1e-4, abs=1e-10), (m, kappa)


# --- the stability grid ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m", [2, 3, 5, 10, 32, 64, 128, 256])
def test_stability_grid(dtype, m):
    """Finite values and gradients, unit-norm samples, KL >= 0, for kappa from 1e-3 to 1e5."""
    g = torch.Generator().manual_seed(m)
    kappas = torch.logspace(-3, 5, 17, dtype=dtype)
    raw = torch.randn(len(kappas), m, generator=g, dtype=dtype).requires_grad_(True)
    log_k = kappas.log().clone().requires_grad_(True)
    q = VonMisesFisher(F.normalize(raw, dim=-1), log_k.exp())
    z = q.rsample((8,))
    lp, ent = q.log_prob(z), q.entropy()
    kl = kl_divergence(q, HypersphericalUniform(m, dtype=dtype))
    for name, t in [("z", z), ("log_prob", lp), ("entropy", ent), ("kl", kl), ("mean", q.mean)]:
        assert t.dtype == dtype and torch.isfinite(t).all(), f"{name} not finite at m={m}, {dtype}"
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert ((z.double().norm(dim=-1) - 1).abs() < tol).all()
    assert (kl >= 0).all()
    obj = lp.sum() + ent.sum() + kl.sum() + (z * torch.linspace(-1, 1, m, dtype=dtype)).sum() + q.mean.sum()
    g_loc, g_k = torch.autograd.grad(obj, [raw, log_k])
    assert torch.isfinite(g_loc).all() and torch.isfinite(g_k).all(), f"gradients not finite at m={m}, {dtype}"
    # kappa-gradient of the sample pushes w up (dw/dkappa >= 0)
    k2 = kappas.double().clone().requires_grad_(True)
    w = VonMisesFisher(_e1(m, len(kappas)), k2).rsample()[:, 0]
    dw, = torch.autograd.grad(w.sum(), k2)
    assert torch.isfinite(dw).all() and (dw >= 0).all()
    # float32 and float64 agree on the log-density (computed in float64 inside)
    lp64 = VonMisesFisher(F.normalize(raw.detach().double(), dim=-1), kappas.double()).log_prob(z.detach().double())
    assert torch.allclose(lp.detach().double(), lp64, rtol=1e-5, atol=1e-3 + 1e-7 * kappas.double().max())


# --- clear errors ---------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unit sphere"):
        VonMisesFisher(torch.tensor([[1.0, 1.0]]), torch.ones(1))
    with pytest.raises(ValueError, match="> 0"):
        VonMisesFisher(_e1(3), torch.tensor([0.0], dtype=F64))
    with pytest.raises(ValueError, match="> 0"):
        VonMisesFisher(_e1(3), torch.tensor([float("nan")], dtype=F64))
    with pytest.raises(ValueError, match="NaN"):
        VonMisesFisher(torch.tensor([[float("nan"), 1.0]]), torch.ones(1))
    with pytest.raises(ValueError, match="m >= 2"):
        VonMisesFisher(torch.ones(3, 1), torch.ones(3))
    with pytest.raises(ValueError, match="one kappa per"):
        VonMisesFisher(_e1(3, 4), torch.ones(5, dtype=F64))
    with pytest.raises(TypeError, match="floating-point"):
        VonMisesFisher(torch.tensor([[1, 0]]), torch.ones(1))
    with pytest.raises(ValueError, match="ambient dimension"):
        HypersphericalUniform(1)
    with pytest.raises(ValueError, match="implicit"):
        VonMisesFisher(_e1(3), torch.ones(1, dtype=F64)).rsample(gradient="score")
    # a trailing kappa dimension of size 1 (Davidson et al.'s convention) is accepted
    q = VonMisesFisher(_e1(3, 4), torch.ones(4, 1, dtype=F64))
    assert q.batch_shape == (4,) and q.event_shape == (3,) and q.rsample((2,)).shape == (2, 4, 3)


def test_implicit_gradient_matches_the_cdf_derivative_on_s2():
    """On S^2 (m = 3) w has density k e^(k(w+1)) / (e^(2k) - 1) and CDF F = expm1(k(w+1)) / expm1(2k):
    dw/dk = -dF/dk / p(w) exactly, with dF/dk by autograd; the quadrature must agree, in both tails."""
    from course_lib.distributions.von_mises_fisher import _implicit_dw_dkappa

    for kappa in [0.1, 1.0, 10.0, 50.0]:
        w = torch.tensor([-0.99, -0.5, 0.0, 0.3, 0.7, 0.9, 0.99, 0.999], dtype=F64)
        k = torch.full_like(w, kappa).requires_grad_(True)
        cdf = torch.expm1(k * (w + 1)) / torch.expm1(2 * k)
        dF, = torch.autograd.grad(cdf.sum(), k)
        k = k.detach()
        log_p = torch.log(k) + k * (w + 1) - torch.log(torch.expm1(2 * k))
        want = -dF / log_p.exp()
        got = _implicit_dw_dkappa(3, k, 1 - w)
        keep = log_p > -30                                    # far tails: p(w) ~ 0, never sampled
        assert torch.allclose(got[keep], want[keep], rtol=1e-6, atol=1e-12), (kappa, got, want)
