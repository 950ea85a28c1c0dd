"""Tests of the mixture-of-Gaussians prior (seed 003, eq. 22) and of the convexity bound on a KL to it.

The density is integrated on a grid, the bound is compared with a component-by-component
computation, with a Monte Carlo KL (it must lie above) and with the exact KL for one component.
"""
import math

import pytest
import torch
from torch.distributions import Independent, MixtureSameFamily, Normal, kl_divergence

from course_lib.distributions import MixtureOfGaussians, kl_mixture_tight_bound, kl_mixture_upper_bound
from course_lib.distributions.mixture import kl_monte_carlo


def _mixture(k=3, d=2, seed=0, spread=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, generator=g, dtype=dtype)
    loc = spread * torch.randn(k, d, generator=g, dtype=dtype)
    scale = 0.3 + torch.rand(k, d, generator=g, dtype=dtype)
    return MixtureOfGaussians(logits, loc, scale)


def _posterior(b=5, d=2, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mu = 1.5 * torch.randn(b, d, generator=g, dtype=dtype)
    sigma = 0.2 + torch.rand(b, d, generator=g, dtype=dtype)
    return Independent(Normal(mu, sigma), 1)


def test_is_a_torch_distribution_over_rd():
    p = _mixture(k=4, d=3)
    assert isinstance(p, torch.distributions.Distribution) and isinstance(p, MixtureSameFamily)
    assert p.event_shape == (3,) and p.batch_shape == ()
    assert p.sample((7,)).shape == (7, 3)
    assert p.log_prob(torch.zeros(5, 3, dtype=torch.float64)).shape == (5,)
    assert torch.allclose(p.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert p.loc.shape == p.scale.shape == (4, 3) and p.n_components == 4
    batch = p.expand((5,))
    u = torch.randn(5, 3, dtype=torch.float64)
    assert batch.batch_shape == (5,) and torch.allclose(batch.log_prob(u), p.log_prob(u))


def test_density_integrates_to_one_on_a_2d_grid():
    p = _mixture(k=3, d=2, spread=1.5)
    step = 0.04
    ticks = torch.arange(-12.0, 12.0, step, dtype=torch.float64) + step / 2      # midpoints
    u1, u2 = torch.meshgrid(ticks, ticks, indexing="ij")
    grid = torch.stack([u1.reshape(-1), u2.reshape(-1)], dim=1)
    mass = p.log_prob(grid).exp().sum() * step ** 2
    assert abs(mass.item() - 1.0) < 1e-3, f"the mixture density integrates to {mass.item():.5f}, not 1"


def test_log_prob_is_the_weighted_sum_of_component_densities():
    p = _mixture(k=3, d=2)
    u = torch.randn(10, 2, dtype=torch.float64)
    w = torch.softmax(p.mixture_distribution.logits, -1)
    dens = sum(w[k] * Normal(p.loc[k], p.scale[k]).log_prob(u).sum(-1).exp() for k in range(3))
    assert torch.allclose(p.log_prob(u), dens.log(), rtol=1e-10)
    # the k-th component is N(loc_k, diag scale_k^2)
    assert torch.allclose(p.component(1).log_prob(u), Normal(p.loc[1], p.scale[1]).log_prob(u).sum(-1))


def test_sample_moments_match_the_mixture():
    p = _mixture(k=3, d=2)
    torch.manual_seed(0)
    u = p.sample((200_000,))
    w = p.weights[:, None]
    mean = (w * p.loc).sum(0)
    second = (w * (p.scale ** 2 + p.loc ** 2)).sum(0)
    assert torch.allclose(u.mean(0), mean, atol=0.03)
    assert torch.allclose((u ** 2).mean(0), second, rtol=0.03)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        MixtureOfGaussians(torch.zeros(3), torch.zeros(3, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="logits"):
        MixtureOfGaussians(torch.zeros(4), torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="positive"):
        MixtureOfGaussians(torch.zeros(3), torch.zeros(3, 2), -torch.ones(3, 2))
    with pytest.raises(TypeError, match="float"):
        MixtureOfGaussians(torch.zeros(3, dtype=torch.long), torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        MixtureOfGaussians(torch.zeros(3), torch.zeros(3, 2), torch.ones(3, 2)).log_prob(torch.zeros(4, 3))
    p = _mixture()
    with pytest.raises(TypeError, match="diagonal Gaussian"):
        kl_mixture_upper_bound(Normal(torch.zeros(2), torch.ones(2)), p)
    with pytest.raises(TypeError, match="MixtureOfGaussians"):
        kl_mixture_upper_bound(_posterior(), Independent(Normal(torch.zeros(2), torch.ones(2)), 1))


def test_bound_equals_weighted_sum_of_component_kls():
    p = _mixture(k=4, d=3)
    q = _posterior(b=6, d=3)
    got = kl_mixture_upper_bound(q, p)
    assert got.shape == (6,)
    want = torch.zeros(6, dtype=torch.float64)
    for k in range(4):                                       # component by component, with torch's registered KL
        pk = Independent(Normal(p.loc[k].expand(6, 3), p.scale[k].expand(6, 3)), 1)
        want += p.weights[k] * kl_divergence(q, pk)
    assert torch.allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_is_above_the_monte_carlo_kl(seed):
    p = _mixture(k=5, d=2, seed=seed)
    q = _posterior(b=8, d=2, seed=seed + 10)
    bound = kl_mixture_upper_bound(q, p)
    torch.manual_seed(seed)
    u = q.sample((50_000,))
    terms = q.log_prob(u) - p.log_prob(u)
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    assert (bound >= mc - 4 * se).all(), f"bound {bound} below the Monte Carlo KL {mc}"
    assert (bound - mc).max() > 0.1, "with well-separated components the bound should be loose somewhere"
    assert torch.allclose(kl_monte_carlo(q, p, 50_000, generator_seed=seed), mc)


def test_bound_is_exact_for_one_component():
    p = _mixture(k=1, d=3)
    q = _posterior(b=4, d=3)
    exact = kl_divergence(q, Independent(Normal(p.loc[0].expand(4, 3), p.scale[0].expand(4, 3)), 1))
    assert torch.allclose(kl_mixture_upper_bound(q, p), exact, rtol=1e-10)
    torch.manual_seed(0)
    assert torch.allclose(kl_monte_carlo(q, p, 100_000), exact, rtol=0.02, atol=0.02)


def test_bound_is_differentiable_in_the_mixture_parameters():
    logits = torch.zeros(3, requires_grad=True)
    loc = torch.randn(3, 2, requires_grad=True)
    log_scale = torch.zeros(3, 2, requires_grad=True)
    p = MixtureOfGaussians(logits, loc, log_scale.exp())
    kl_mixture_upper_bound(_posterior(dtype=torch.float32), p).sum().backward()
    for t in (logits, loc, log_scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tight_bound_lies_between_the_monte_carlo_kl_and_the_convexity_bound(seed):
    p = _mixture(k=5, d=2, seed=seed)
    q = _posterior(b=8, d=2, seed=seed + 10)
    tight, loose = kl_mixture_tight_bound(q, p), kl_mixture_upper_bound(q, p)
    torch.manual_seed(seed)
    u = q.sample((50_000,))
    terms = q.log_prob(u) - p.log_prob(u)
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    assert (tight >= mc - 4 * se).all(), f"tight bound {tight} below the Monte Carlo KL {mc}"
    assert (tight <= loose + 1e-12).all()
    assert (loose - tight).max() > 0.1, "with separated components the tighter bound is visibly tighter somewhere"
    by_hand = -torch.log(sum(p.weights[k] * torch.exp(-kl_divergence(
        q, Independent(Normal(p.loc[k].expand(8, 2), p.scale[k].expand(8, 2)), 1))) for k in range(5)))
    assert torch.allclose(tight, by_hand, rtol=1e-10)


def test_tight_bound_is_exact_for_one_component_and_stable_for_huge_kls():
    p = _mixture(k=1, d=3)
    q = _posterior(b=4, d=3)
    assert torch.allclose(kl_mixture_tight_bound(q, p), kl_mixture_upper_bound(q, p), rtol=1e-10)
    far = MixtureOfGaussians(torch.zeros(2, dtype=torch.float64), torch.full((2, 3), 100.0, dtype=torch.float64),
                             torch.ones(2, 3, dtype=torch.float64))
    assert torch.isfinite(kl_mixture_tight_bound(q, far)).all()
