"""Tests of course_lib.toy_models: the slides' Bernoulli-latent toy model.

Each test checks an identity of lesson 2 against an independent computation
(explicit sums of densities, numerical integration, sample moments), so that
a wrong sign or a missing term in the module makes it fail.
"""
import math

import pytest
import torch

from course_lib import toy_models as tm

P, SIGMA = 0.3, 0.5
# moderate and extreme x (both densities underflow in float64 far beyond |x| ~ 20 sigma)
X_GRID = torch.cat([torch.linspace(-4.0, 5.0, 37), torch.tensor([-1e3, -60.0, 60.0, 1e3])]).double()
PI_GRID = torch.tensor([0.0, 1e-6, 0.1, 0.3, 0.5, 0.7, 0.9, 1 - 1e-6, 1.0]).double()


def _normal_pdf(x, m, s):
    return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def test_log_evidence_matches_explicit_sum():
    for x in [-2.0, -0.3, 0.0, 0.5, 1.0, 2.7]:
        for p, s in [(0.3, 0.5), (0.9, 1.3), (0.5, 0.2)]:
            explicit = math.log((1 - p) * _normal_pdf(x, 0, s) + p * _normal_pdf(x, 1, s))
            got = tm.log_evidence(torch.tensor(x, dtype=torch.float64), p, s).item()
            assert got == pytest.approx(explicit, abs=1e-12)


def test_log_evidence_is_a_normalised_density():
    # integral of p(x) over x is 1 (trapezoid on a wide fine grid)
    x = torch.linspace(-8, 9, 200001, dtype=torch.float64)
    for p, s in [(0.3, 0.5), (0.8, 1.0)]:
        mass = torch.trapezoid(tm.log_evidence(x, p, s).exp(), x).item()
        assert mass == pytest.approx(1.0, abs=1e-8)


def test_log_evidence_finite_and_asymptotic_for_large_x():
    x = torch.tensor([-1e3, 1e3], dtype=torch.float64)
    got = tm.log_evidence(x, P, SIGMA)
    assert torch.isfinite(got).all()
    # far away only the nearest component counts
    near0 = math.log(1 - P) + tm.gaussian_log_prob(x[0], 0.0, SIGMA).item()
    near1 = math.log(P) + tm.gaussian_log_prob(x[1], 1.0, SIGMA).item()
    assert got[0].item() == pytest.approx(near0, rel=1e-12)
    assert got[1].item() == pytest.approx(near1, rel=1e-12)


def test_posterior_matches_bayes_by_explicit_sums():
    for x in [-1.5, 0.0, 0.4, 0.5, 0.9, 2.0]:
        for p, s in [(0.3, 0.5), (0.6, 1.0), (0.05, 0.3)]:
            joint1 = p * _normal_pdf(x, 1, s)
            joint0 = (1 - p) * _normal_pdf(x, 0, s)
            bayes = joint1 / (joint0 + joint1)
            got = tm.posterior_z1(torch.tensor(x, dtype=torch.float64), p, s).item()
            assert got == pytest.approx(bayes, abs=1e-12)
    # symmetric case: at x = 1/2 with p = 1/2 both values of z are equally likely
    assert tm.posterior_z1(0.5, 0.5, 0.7).item() == pytest.approx(0.5, abs=1e-7)


def test_posterior_matches_numerical_integration_of_joint():
    # P(z=1 | x in [a, b]) by integrating the joint numerically; for a narrow
    # interval it converges to p(z=1 | x = (a+b)/2)
    x0, h = 0.8, 1e-4
    xs = torch.linspace(x0 - h, x0 + h, 2001, dtype=torch.float64)
    j1 = torch.trapezoid(P * torch.exp(tm.gaussian_log_prob(xs, 1.0, SIGMA)), xs)
    j0 = torch.trapezoid((1 - P) * torch.exp(tm.gaussian_log_prob(xs, 0.0, SIGMA)), xs)
    assert (j1 / (j0 + j1)).item() == pytest.approx(tm.posterior_z1(x0, P, SIGMA).item(), abs=1e-6)


def test_posterior_limits_for_large_x():
    r = tm.posterior_z1(torch.tensor([-1e3, 1e3], dtype=torch.float64), P, SIGMA)
    assert r[0].item() == 0.0 and r[1].item() == 1.0
    assert tm.posterior_z1(3.0, 0.0, SIGMA).item() == 0.0
    assert tm.posterior_z1(-3.0, 1.0, SIGMA).item() == 1.0


def test_key_equation_log_evidence_equals_elbo_plus_kl_on_grid():
    x = X_GRID[:, None]
    pi = PI_GRID[None, :]
    for p, s in [(P, SIGMA), (0.9, 2.0), (0.5, 0.1)]:
        lhs = tm.log_evidence(x, p, s).expand(-1, pi.shape[1])
        rhs = tm.elbo(x, pi, p, s) + tm.kl_to_posterior(x, pi, p, s)
        finite = torch.isfinite(rhs)
        assert finite[: 37].all()  # moderate x: everything finite
        err = (lhs - rhs)[finite].abs() / lhs[finite].abs().clamp_min(1.0)
        assert err.max().item() < 1e-10, (p, s, err.max().item())


def test_elbo_split_recon_minus_kl_to_prior():
    terms = tm.elbo_terms(X_GRID[:, None], PI_GRID[None, :], P, SIGMA)
    torch.testing.assert_close(terms["elbo"], terms["recon"] - terms["kl"], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(terms["kl"], -(terms["log_prior"] + terms["entropy"]), rtol=1e-12, atol=1e-12)
    # explicit expectation of log p(x|z) + log p(z) - log q(z) for an interior pi
    x, pi = 0.7, 0.25
    explicit = sum(
        w * (math.log(_normal_pdf(x, z, SIGMA)) + math.log(pz) - math.log(w))
        for z, w, pz in [(0, 1 - pi, 1 - P), (1, pi, P)]
    )
    assert tm.elbo(torch.tensor(x, dtype=torch.float64), pi, P, SIGMA).item() == pytest.approx(explicit, abs=1e-12)


def test_elbo_is_a_lower_bound_tight_at_the_posterior():
    pis = torch.linspace(0, 1, 1001, dtype=torch.float64)[None, :]
    x = torch.linspace(-3, 4, 29, dtype=torch.float64)[:, None]
    log_px = tm.log_evidence(x, P, SIGMA)
    bound = tm.elbo(x, pis, P, SIGMA)
    assert (bound <= log_px + 1e-12).all()
    # equality at q = exact posterior, and the grid maximum is next to it
    r = tm.posterior_z1(x, P, SIGMA)
    torch.testing.assert_close(tm.elbo(x, r, P, SIGMA), log_px, rtol=0, atol=1e-12)
    assert torch.allclose(tm.kl_to_posterior(x, r, P, SIGMA), torch.zeros_like(r), atol=1e-12)
    best = pis[0, bound.argmax(dim=1)]
    assert (best - r[:, 0]).abs().max().item() <= 1e-3
    # strictly below elsewhere: gap is positive away from the posterior
    far = (pis - r).abs() > 0.05
    assert ((log_px - bound)[far] > 1e-6).all()


def test_kl_bernoulli_properties():
    a = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(tm.kl_bernoulli(a, a), torch.zeros_like(a), atol=1e-15)
    b = torch.tensor(0.3, dtype=torch.float64)
    assert (tm.kl_bernoulli(a, b) >= 0).all()
    assert tm.kl_bernoulli(0.2, 0.6).item() == pytest.approx(
        0.2 * math.log(0.2 / 0.6) + 0.8 * math.log(0.8 / 0.4), abs=1e-7)
    assert math.isinf(tm.kl_bernoulli(0.5, 0.0).item())


def test_monte_carlo_elbo_agrees_with_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([-1.0, 0.2, 0.5, 1.4, 3.0], dtype=torch.float64)
    for pi in [0.1, 0.5, 0.9]:
        mean, se = tm.elbo_mc(x, pi, P, SIGMA, n_samples=20000, generator=g)
        exact = tm.elbo(x, pi, P, SIGMA)
        z = ((mean - exact) / se).abs()
        assert (z < 4.5).all(), (pi, z)
        assert (se > 0).all() and (se < 0.1).all()
    # deterministic q: no variance, exact value
    mean, se = tm.elbo_mc(x, 1.0, P, SIGMA, n_samples=50, generator=g)
    torch.testing.assert_close(mean, tm.elbo(x, 1.0, P, SIGMA))
    assert (se == 0).all()


def test_sampling_moments():
    g = torch.Generator().manual_seed(1)
    n = 400_000
    for p, s in [(0.3, 0.5), (0.8, 1.5)]:
        x, z = tm.sample(n, p, s, generator=g)
        assert x.shape == z.shape == (n,)
        assert set(torch.unique(z).tolist()) <= {0.0, 1.0}
        var = s**2 + p * (1 - p)
        assert abs(x.mean().item() - p) < 5 * math.sqrt(var / n)
        assert abs(z.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
        # variance of the sample variance ~ (m4 - var^2) / n; a generous bound
        assert x.var().item() == pytest.approx(var, rel=0.02)
        # x - z is the Gaussian noise
        assert (x - z).std().item() == pytest.approx(s, rel=0.01)


def test_mle_is_em_fixed_point_and_maximises_log_likelihood():
    g = torch.Generator().manual_seed(2)
    x, _ = tm.sample(3000, P, SIGMA, generator=g)
    x = x.double()
    p_hat = tm.mle_p(x, SIGMA)
    ps = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    ll = tm.log_evidence(x[:, None], ps[None, :], SIGMA).mean(0)
    assert abs(ps[ll.argmax()].item() - p_hat) <= 1.5e-3
    assert tm.log_evidence(x, p_hat, SIGMA).mean() >= ll.max() - 1e-12
    assert tm.em_step(x, p_hat, SIGMA).item() == pytest.approx(p_hat, abs=1e-9)
    p = torch.tensor(0.9, dtype=torch.float64)
    for _ in range(300):
        p = tm.em_step(x, p, SIGMA)
    assert p.item() == pytest.approx(p_hat, abs=1e-6)
    # the maximum is on the boundary when the data say so
    assert tm.mle_p(torch.full((10,), -3.0), SIGMA) < 1e-9
    assert tm.mle_p(torch.full((10,), 4.0), SIGMA) > 1 - 1e-9


def test_gradients_flow_to_p_and_pi():
    p = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    pi = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.1, 0.9, 1.3], dtype=torch.float64)
    tm.elbo(x, pi, p, SIGMA).mean().backward()
    # d/dp of E_q[log p(z)] = pi/p - (1-pi)/(1-p)
    assert p.grad.item() == pytest.approx(0.6 / 0.4 - 0.4 / 0.6, abs=1e-12)
    assert torch.isfinite(pi.grad)
    assert torch.autograd.gradcheck(lambda q: tm.log_evidence(x, q, SIGMA), (p.detach().requires_grad_(),))


def test_dtype_shape_and_class():
    x32 = torch.linspace(-1, 2, 5)
    assert tm.log_evidence(x32, P, SIGMA).dtype == torch.float32
    assert tm.log_evidence(x32.double(), P, SIGMA).dtype == torch.float64
    assert tm.elbo(x32[:, None], torch.rand(3)[None, :], P, SIGMA).shape == (5, 3)
    model = tm.BernoulliGaussianToy(P, SIGMA)
    torch.testing.assert_close(model.log_evidence(x32), tm.log_evidence(x32, P, SIGMA))
    torch.testing.assert_close(model.elbo(x32, 0.2) + model.kl_to_posterior(x32, 0.2), model.log_evidence(x32))
    assert "p=0.3" in repr(model)


@pytest.mark.parametrize("bad", [dict(p=1.5), dict(p=-0.1), dict(sigma=0.0), dict(sigma=-1.0)])
def test_invalid_parameters_are_explained(bad):
    kw = dict(p=P, sigma=SIGMA) | bad
    with pytest.raises(ValueError, match="p must be|sigma must be"):
        tm.log_evidence(0.5, **kw)


def test_invalid_pi_is_explained():
    with pytest.raises(ValueError, match="pi must be"):
        tm.elbo(0.5, 1.2, P, SIGMA)


# --------------------------------------------------------------------------- KL divergence (lesson 2, section 4)

Z_GRID = torch.linspace(-12.0, 12.0, 2401, dtype=torch.float64)


def _gauss_kl(m1, s1, m2, s2):
    """KL(N(m1, s1^2) || N(m2, s2^2)) in closed form."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_mixture_log_prob_matches_explicit_sum_and_integrates_to_one():
    w, m, s = [0.3, 0.7], [-1.0, 2.0], [0.5, 1.5]
    for z in [-2.0, 0.0, 1.3]:
        explicit = math.log(sum(wk * _normal_pdf(z, mk, sk) for wk, mk, sk in zip(w, m, s)))
        got = tm.mixture_log_prob(torch.tensor(z, dtype=torch.float64), w, m, s).item()
        assert got == pytest.approx(explicit, abs=1e-12)
    mass = torch.trapezoid(tm.mixture_log_prob(Z_GRID, w, m, s).exp(), Z_GRID).item()
    assert mass == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match="sum to 1"):
        tm.mixture_log_prob(Z_GRID, [0.3, 0.3], m, s)


def test_kl_on_grid_matches_the_gaussian_closed_form_and_is_asymmetric():
    for (m1, s1), (m2, s2) in [((0.0, 1.0), (1.0, 2.0)), ((-1.0, 0.5), (0.5, 1.0)), ((2.0, 1.5), (2.0, 1.5))]:
        lp = tm.gaussian_log_prob(Z_GRID, m1, s1)
        lq = tm.gaussian_log_prob(Z_GRID, m2, s2)
        assert tm.kl_on_grid(lp, lq, Z_GRID).item() == pytest.approx(_gauss_kl(m1, s1, m2, s2), abs=1e-5)
        assert tm.kl_on_grid(lq, lp, Z_GRID).item() == pytest.approx(_gauss_kl(m2, s2, m1, s1), abs=1e-5)
    lp, lq = tm.gaussian_log_prob(Z_GRID, 0.0, 1.0), tm.gaussian_log_prob(Z_GRID, 1.0, 2.0)
    assert abs(tm.kl_on_grid(lp, lq, Z_GRID) - tm.kl_on_grid(lq, lp, Z_GRID)) > 0.1, "KL is not symmetric"
    with pytest.raises(ValueError, match="one value per grid point"):
        tm.kl_on_grid(lp[:-1], lq, Z_GRID)


def test_forward_kl_fit_is_moment_matching_and_reverse_fit_picks_the_heavier_mode():
    z = torch.linspace(-8.0, 8.0, 801, dtype=torch.float64)
    w, m, s = [0.35, 0.65], [-2.5, 1.5], [0.6, 0.4]
    log_p = tm.mixture_log_prob(z, w, m, s)
    means, sds = torch.linspace(-4, 4, 161), torch.linspace(0.1, 4, 79)   # steps of 0.05
    mean_p = sum(wk * mk for wk, mk in zip(w, m))
    sd_p = math.sqrt(sum(wk * (sk**2 + mk**2) for wk, mk, sk in zip(w, m, s)) - mean_p**2)
    m_f, s_f, table_f = tm.fit_gaussian_kl(log_p, z, "forward", means, sds)
    assert abs(m_f - mean_p) <= 0.026 and abs(s_f - sd_p) <= 0.026
    m_r, s_r, table_r = tm.fit_gaussian_kl(log_p, z, "reverse", means, sds)
    assert abs(m_r - 1.5) <= 0.026 and abs(s_r - 0.4) <= 0.026
    # well-separated modes: the reverse minimum is about -log(weight of the mode)
    assert table_r.min().item() == pytest.approx(-math.log(0.65), abs=0.01)
    assert (table_f > -1e-9).all() and (table_r > -1e-9).all()
    # a Gaussian target: both directions find it
    log_g = tm.gaussian_log_prob(z, 0.5, 1.0)
    for direction in ("forward", "reverse"):
        m_g, s_g, table = tm.fit_gaussian_kl(log_g, z, direction, means, sds)
        assert (m_g, s_g) == (pytest.approx(0.5, abs=1e-6), pytest.approx(1.0, abs=1e-6))
        assert table.min().item() == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="direction must be"):
        tm.fit_gaussian_kl(log_g, z, "sideways", means, sds)


def test_lesson2_figures_draw_with_readable_legends():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.figures import elbo as ef

    z = torch.linspace(-5, 5, 101, dtype=torch.float64)
    table = torch.rand(5, 4, dtype=torch.float64)
    figs = [ef.kl_fits(z, tm.mixture_log_prob(z, [0.5, 0.5], [-1, 1], [0.5, 0.5]).exp(),
                       {"f": (0.0, 1.0), "r": (1.0, 0.5)}, {"a": table, "b": table}, torch.linspace(-1, 1, 5),
                       torch.linspace(0.5, 2, 4)),
            ef.elbo_curve(torch.linspace(0, 1, 11), -torch.rand(11) - 1, -0.5, 0.4, "t"),
            ef.mc_running(torch.randn(100), 0.0, "t"),
            ef.key_equation_bars({"log p(x)": -1.0, "ELBO": -1.2, "KL(q || p(z|x))": 0.2, "a": -1.0, "b": 0.2,
                                  "p(z=1|x)": 0.5})]
    for fig in figs:
        for ax in fig.axes:
            leg = ax.get_legend()
            if leg is not None:
                assert min(t.get_fontsize() for t in leg.get_texts()) >= 12
        assert any(ax.get_title() for ax in fig.axes)
        plt.close(fig)
