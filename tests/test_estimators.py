"""Tests of course_lib.estimators: score-function and pathwise gradient estimators (lesson 3).

Each estimator is checked against exact gradients of expectations known in closed form
(a quadratic and an exponential), within a few standard errors, and against the per-draw
formulas written out by hand; the variances against their closed forms.
"""
import math

import pytest
import torch

from course_lib import estimators as E
from course_lib.losses import gaussian_kl

N = 40_000


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _assert_unbiased(draws, exact, n_se=5.0, what=""):
    mean, se = E.mean_and_stderr(draws)
    z = ((mean - exact) / se).abs().max().item()
    assert z < n_se, f"{what}: |mean - exact| = {z:.1f} standard errors (mean {mean.tolist()}, exact {exact.tolist()})"


@pytest.mark.parametrize("estimator", [E.score_function_grad, E.pathwise_grad])
def test_unbiased_on_quadratic(estimator):
    mu = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    sigma = torch.tensor([0.5, 1.0, 0.3], dtype=torch.float64)
    c = torch.tensor([0.2, 0.0, -1.0], dtype=torch.float64)
    f, _, grad_mu, grad_sigma = E.quadratic_objective(mu, sigma, c)
    assert torch.allclose(grad_mu, 2 * (mu - c)) and torch.allclose(grad_sigma, 2 * sigma)
    g_mu, g_sigma = estimator(f, mu, sigma, N, generator=_gen(0))
    assert g_mu.shape == (N, 3) and g_sigma.shape == (N, 3)
    _assert_unbiased(g_mu, grad_mu, what=f"{estimator.__name__} d/dmu")
    _assert_unbiased(g_sigma, grad_sigma, what=f"{estimator.__name__} d/dsigma")


@pytest.mark.parametrize("estimator", [E.score_function_grad, E.pathwise_grad])
def test_unbiased_on_exponential(estimator):
    # E[exp(z)] = exp(mu + sigma^2 / 2) (log-normal mean): d/dmu = that, d/dsigma = sigma * that
    mu = torch.tensor([0.3, -1.0], dtype=torch.float64)
    sigma = torch.tensor([0.4, 0.8], dtype=torch.float64)
    mean = torch.exp(mu + sigma**2 / 2)

    def f(z):
        return z.exp().sum(1)

    g_mu, g_sigma = estimator(f, mu, sigma, N, generator=_gen(1))
    _assert_unbiased(g_mu, mean, what="d/dmu E[exp z]")
    _assert_unbiased(g_sigma, sigma * mean, what="d/dsigma E[exp z]")


def test_wrong_gradient_is_detected():
    # the check above can fail: a biased estimator (gradient of f at mu, ignoring sigma) is caught
    mu, sigma = torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    f, _, _, grad_sigma = E.quadratic_objective(mu, sigma)
    _, g_sigma = E.pathwise_grad(f, mu, sigma, N, generator=_gen(2))
    with pytest.raises(AssertionError):
        _assert_unbiased(g_sigma * 0.9, grad_sigma)


def test_per_draw_formulas():
    mu, sigma = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    f, *_ = E.quadratic_objective(mu, sigma)
    sf_mu, sf_sigma = E.score_function_grad(f, mu, sigma, 1000, generator=_gen(3))
    pw_mu, pw_sigma = E.pathwise_grad(f, mu, sigma, 1000, generator=_gen(3))
    eps = torch.randn(1000, generator=_gen(3), dtype=torch.float64)   # the same draws
    z = mu + sigma * eps
    assert torch.allclose(sf_mu, z**2 * (z - mu) / sigma**2)
    assert torch.allclose(sf_sigma, z**2 * ((z - mu) ** 2 - sigma**2) / sigma**3)
    assert torch.allclose(pw_mu, 2 * z)
    assert torch.allclose(pw_sigma, 2 * z * eps)


@pytest.mark.parametrize("mu,sigma", [(1.0, 0.1), (1.0, 0.5), (0.5, 2.0), (0.0, 1.0)])
def test_variances_match_closed_form_and_pathwise_is_smaller(mu, sigma):
    mu_t, s_t = torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    f, *_ = E.quadratic_objective(mu_t, s_t)
    sf = E.score_function_grad(f, mu_t, s_t, 100_000, generator=_gen(4))[0]
    pw = E.pathwise_grad(f, mu_t, s_t, 100_000, generator=_gen(5))[0]
    v_sf, v_pw = E.quadratic_score_variance(mu, sigma), E.quadratic_pathwise_variance(mu, sigma)
    assert v_sf.item() == pytest.approx(mu**4 / sigma**2 + 14 * mu**2 + 15 * sigma**2)
    assert v_pw.item() == pytest.approx(4 * sigma**2)
    assert sf.var().item() == pytest.approx(v_sf.item(), rel=0.15)
    assert pw.var().item() == pytest.approx(v_pw.item(), rel=0.05)
    assert pw.var() < sf.var()


def test_closed_form_variances_broadcast():
    sigmas = torch.logspace(-1.5, -0.5, 5)
    v = E.quadratic_score_variance(1.0, sigmas)
    # for mu = 1 the variance mu^4 / sigma^2 + 14 + 15 sigma^2 falls until sigma = 15^(-1/4) ~ 0.51
    assert v.shape == (5,) and (v[:-1] > v[1:]).all()
    assert torch.allclose(E.quadratic_pathwise_variance(1.0, sigmas), 4 * sigmas**2)


def test_baseline_keeps_unbiased_and_reduces_variance():
    mu, sigma = torch.tensor([1.5], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)
    f, expectation, grad_mu, _ = E.quadratic_objective(mu, sigma)
    plain = E.score_function_grad(f, mu, sigma, N, generator=_gen(6))[0]
    based = E.score_function_grad(f, mu, sigma, N, generator=_gen(6), baseline=float(expectation))[0]
    _assert_unbiased(based, grad_mu, what="score function with a baseline")
    # with b = E[f]: (f - b) (z - mu) / sigma^2 = 2 mu eps^2 + sigma (eps^3 - eps), variance 8 mu^2 + 10 sigma^2
    m, s = mu.item(), sigma.item()
    assert based.var().item() == pytest.approx(8 * m**2 + 10 * s**2, rel=0.1)
    assert plain.var().item() == pytest.approx(E.quadratic_score_variance(m, s).item(), rel=0.1)
    assert based.var() < 0.3 * plain.var()


def test_input_errors_and_step_function():
    f, *_ = E.quadratic_objective(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="positive"):
        E.pathwise_grad(f, torch.zeros(2), torch.tensor([1.0, -1.0]), 10)
    with pytest.raises(ValueError, match="same shape"):
        E.score_function_grad(f, torch.zeros(2), torch.ones(3), 10)
    with pytest.raises(ValueError, match="values"):
        E.pathwise_grad(lambda z: z, torch.zeros(2), torch.ones(2), 10)   # (n, 2) instead of (n,)
    with pytest.raises(ValueError, match="differentiable"):
        E.pathwise_grad(lambda z: torch.tensor(z.detach().numpy()).sum(1), torch.zeros(2), torch.ones(2), 10)
    # the score function only evaluates f: a step function is fine
    g_mu, _ = E.score_function_grad(lambda z: (z > 0).double().sum(1), torch.zeros(1, dtype=torch.float64),
                                    torch.ones(1, dtype=torch.float64), N, generator=_gen(7))
    # d/dmu P(z > 0) at mu = 0, sigma = 1 is the normal density at 0
    _assert_unbiased(g_mu, torch.tensor([1 / math.sqrt(2 * math.pi)], dtype=torch.float64), what="step function")


def test_mean_and_stderr():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    m, se = E.mean_and_stderr(x)
    assert torch.allclose(m, torch.tensor([3.0, 6.0]))
    assert torch.allclose(se, torch.tensor([2.0, 4.0]) / math.sqrt(3))
    with pytest.raises(ValueError):
        E.mean_and_stderr(x[:1])


def test_kl_monte_carlo_matches_closed_form():
    g = _gen(8)
    mu = 1.5 * torch.randn(12, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(12, 4, generator=g, dtype=torch.float64)
    est, se = E.kl_monte_carlo(mu, logvar, 20_000, generator=g)
    assert est.shape == se.shape == (12,)
    z = (est - gaussian_kl(mu, logvar)) / se
    assert z.abs().max() < 5
    # and its standard error shrinks like 1 / sqrt(n)
    _, se_small = E.kl_monte_carlo(mu, logvar, 500, generator=g)
    ratio = (se_small / se).mean().item()
    assert ratio == pytest.approx(math.sqrt(20_000 / 500), rel=0.25)
    # at the prior the estimate is exactly 0 (log q = log p for every sample)
    est0, _ = E.kl_monte_carlo(torch.zeros(2, 3), torch.zeros(2, 3), 100, generator=g)
    assert torch.allclose(est0, torch.zeros(2), atol=1e-6)
