"""Monte Carlo gradient estimators for expectations under a Gaussian (lesson 3).

We want the gradient of ``E_{q(z)}[f(z)]`` with respect to the parameters ``(mu, sigma)`` of
``q = N(mu, diag sigma^2)``. Sampling ``z ~ q`` is not differentiable, so two estimators exist:

- the **score-function** (REINFORCE, likelihood-ratio) estimator (Williams 1992):

  grad E_q[f(z)] = E_q[(f(z) - b) grad log q(z)],   b a constant baseline (0 by default);

- the **pathwise** (reparameterization) estimator (Kingma & Welling 2014; Rezende et al. 2014):

  z = mu + sigma * eps, eps ~ N(0, I)  =>  grad E_q[f(z)] = E_eps[grad f(mu + sigma * eps)].

Both functions return ``n_samples`` **single-sample** estimates (one per draw), so that their
mean, variance and standard error can be measured; average ``S`` of them for an ``S``-sample
estimator (variance divided by ``S``). ``f`` maps a batch of points ``z`` of shape
``(n, *mu.shape)`` to ``n`` values; the pathwise estimator needs it differentiable, the
score-function estimator only evaluates it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import Normal

__all__ = [
    "score_function_grad",
    "pathwise_grad",
    "mean_and_stderr",
    "quadratic_objective",
    "quadratic_score_variance",
    "quadratic_pathwise_variance",
    "kl_monte_carlo",
]


def _params(mu, sigma):
    mu = torch.as_tensor(mu, dtype=torch.get_default_dtype()) if not torch.is_tensor(mu) else mu
    sigma = torch.as_tensor(sigma, dtype=mu.dtype, device=mu.device) if not torch.is_tensor(sigma) else sigma
    if mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must have the same shape, got {tuple(mu.shape)} and {tuple(sigma.shape)}.")
    if not bool((sigma > 0).all()):
        raise ValueError("sigma must be positive (it is a standard deviation, not a log-variance).")
    return mu.detach(), sigma.detach()


def _broadcast(*values):
    """Tensors of one dtype, broadcast against each other (for the closed-form variances)."""
    ref = next((v for v in values if torch.is_tensor(v)), None)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.get_default_dtype()
    device = ref.device if ref is not None else None
    return torch.broadcast_tensors(*(torch.as_tensor(v, dtype=dtype, device=device) for v in values))


def _noise(n: int, mu: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """eps ~ N(0, I) of shape (n, *mu.shape), drawn on the CPU generator then moved to mu's device."""
    eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
    return eps.to(mu.device)


def _check_values(fz: torch.Tensor, n: int) -> torch.Tensor:
    if fz.shape != (n,):
        raise ValueError(f"f must map a batch of {n} points to {n} values (shape ({n},)), got shape {tuple(fz.shape)}; "
                         "sum over the dimensions of z inside f.")
    return fz


def score_function_grad(f: Callable, mu, sigma, n_samples: int, generator: torch.Generator | None = None,
                        baseline: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-sample score-function (REINFORCE) estimates of grad_{mu, sigma} E_{N(mu, sigma^2)}[f(z)].

    For each draw z_s ~ N(mu, sigma^2): ``(f(z_s) - baseline) * grad log q(z_s)``, with
    grad_mu log q = (z - mu) / sigma^2 and grad_sigma log q = ((z - mu)^2 - sigma^2) / sigma^3
    (computed here with autograd on ``Normal.log_prob``). Returns ``(g_mu, g_sigma)``, each of shape
    ``(n_samples, *mu.shape)``.
    """
    mu, sigma = _params(mu, sigma)
    z = (mu + sigma * _noise(n_samples, mu, generator)).detach()   # a plain sample: no gradient path
    with torch.no_grad():
        weight = _check_values(f(z), n_samples) - baseline
    mu_s = mu.expand_as(z).clone().requires_grad_(True)          # one copy per draw: per-draw gradients
    sigma_s = sigma.expand_as(z).clone().requires_grad_(True)
    log_q = Normal(mu_s, sigma_s).log_prob(z)
    g_mu, g_sigma = torch.autograd.grad(log_q.sum(), (mu_s, sigma_s))
    w = weight.reshape(-1, *([1] * mu.dim()))
    return w * g_mu, w * g_sigma


def pathwise_grad(f: Callable, mu, sigma, n_samples: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-sample pathwise (reparameterization) estimates of grad_{mu, sigma} E_{N(mu, sigma^2)}[f(z)].

    For each draw eps_s ~ N(0, I): z_s = mu + sigma * eps_s and the gradient of f(z_s) through that
    path, i.e. grad_mu = f'(z_s) and grad_sigma = f'(z_s) * eps_s. Returns ``(g_mu, g_sigma)``, each of
    shape ``(n_samples, *mu.shape)``.
    """
    mu, sigma = _params(mu, sigma)
    eps = _noise(n_samples, mu, generator)
    mu_s = mu.expand_as(eps).clone().requires_grad_(True)
    sigma_s = sigma.expand_as(eps).clone().requires_grad_(True)
    z = mu_s + sigma_s * eps                                      # the reparameterization trick
    fz = _check_values(f(z), n_samples)
    if not fz.requires_grad:
        raise ValueError("f(z) does not depend on z through differentiable torch operations: "
                         "the pathwise estimator needs a differentiable f (use torch functions, no .item()/.numpy()).")
    g_mu, g_sigma = torch.autograd.grad(fz.sum(), (mu_s, sigma_s))
    return g_mu, g_sigma


def mean_and_stderr(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the first axis and its standard error, std / sqrt(n)."""
    n = samples.shape[0]
    if n < 2:
        raise ValueError("need at least two samples for a standard error.")
    return samples.mean(0), samples.std(0) / math.sqrt(n)


# --- a test function whose expectation and estimator variances are known in closed form ---------

def quadratic_objective(mu, sigma, c=0.0):
    """f(z) = sum_j (z_j - c_j)^2 under z ~ N(mu, diag sigma^2): returns ``(f, E[f], grad_mu, grad_sigma)``.

    E[f] = sum_j (mu_j - c_j)^2 + sigma_j^2, so grad_mu = 2 (mu - c) and grad_sigma = 2 sigma.
    ``f`` takes a batch ``(n, *mu.shape)`` and returns ``(n,)``.
    """
    mu, sigma = _params(mu, sigma)
    c = torch.as_tensor(c, dtype=mu.dtype, device=mu.device)

    def f(z):
        return ((z - c) ** 2).reshape(len(z), -1).sum(1)

    expectation = ((mu - c) ** 2 + sigma ** 2).sum()
    return f, expectation, 2 * (mu - c), 2 * sigma


def quadratic_score_variance(mu, sigma, c=0.0) -> torch.Tensor:
    """Variance of one score-function estimate of d/dmu E[(z - c)^2], z ~ N(mu, sigma^2), 1-D, no baseline.

    With m = mu - c, the estimate is (m + sigma eps)^2 eps / sigma, whose variance is
    m^4 / sigma^2 + 14 m^2 + 15 sigma^2 (moments of eps: E eps^2 = 1, E eps^4 = 3, E eps^6 = 15). Broadcasts ``mu``, ``sigma`` and ``c``.
    """
    mu, sigma, c = _broadcast(mu, sigma, c)
    m = mu - c
    return m ** 4 / sigma ** 2 + 14 * m ** 2 + 15 * sigma ** 2


def quadratic_pathwise_variance(mu, sigma, c=0.0) -> torch.Tensor:
    """Variance of one pathwise estimate of d/dmu E[(z - c)^2]: the estimate is 2 (z - c), variance 4 sigma^2.

    Broadcasts ``mu``, ``sigma`` and ``c`` (e.g. a grid of sigmas)."""
    mu, sigma, c = _broadcast(mu, sigma, c)
    return 4 * sigma ** 2 + 0 * (mu - c)


# --- the KL term by sampling ----------------------------------------------------------------------

def kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo KL(N(mu, diag e^logvar) || N(0, I)) per example, with its standard error.

    KL = E_q[log q(z) - log p(z)], estimated with ``n_samples`` draws z ~ q for each row of ``mu``
    (shape ``(batch, d)``). Returns ``(estimate, stderr)``, each of shape ``(batch,)``: compare with
    :func:`course_lib.losses.gaussian_kl`.
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both be (batch, d), got {tuple(mu.shape)} and {tuple(logvar.shape)}.")
    mu, logvar = mu.detach(), logvar.detach()
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
    z = mu + std * eps                                                    # (S, batch, d)
    log_q = Normal(mu, std).log_prob(z).sum(-1)
    log_p = Normal(torch.zeros_like(mu), torch.ones_like(mu)).log_prob(z).sum(-1)
    return mean_and_stderr(log_q - log_p)
