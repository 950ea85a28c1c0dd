r"""The slides' toy latent-variable model, where every quantity is exact.

Lesson 2 ("The ELBO") uses the model of the RCP211 slides (section
"Inférence variationnelle"):

.. math::

    z \sim \mathrm{Bernoulli}(p), \qquad x \mid z \sim \mathcal{N}(z, \sigma^2),

with the model parameter :math:`\theta = \{p\}` and a known noise level
:math:`\sigma`. The latent space has two points, so the evidence is a sum of
two terms and the posterior, the ELBO and both KL divergences have closed
forms. The variational family is Bernoulli too: :math:`q(z=1 \mid x) = \pi`.

Every function is vectorised and broadcasts its arguments (``x``, ``pi``,
``p``, ``sigma`` may be floats or tensors of compatible shapes), keeps the
autograd graph (so ``p`` or ``pi`` can be fitted by gradient ascent) and
computes in log space with ``logsumexp``/``logsigmoid`` so that it stays
finite for large ``|x|``. Values are in **nats per example** (one value per
``x``). Probabilities equal to 0 or 1 are allowed (``0 log 0 = 0``).

The functions are the course's reference implementations: the lesson shows
the few lines that matter and the exercise notebook compares the student's
versions with these.
"""
from __future__ import annotations

import math
from typing import Union

import torch

__all__ = [
    "BernoulliGaussianToy",
    "gaussian_log_prob",
    "log_joint",
    "log_evidence",
    "posterior_logit",
    "posterior_z1",
    "kl_bernoulli",
    "elbo",
    "elbo_terms",
    "elbo_mc",
    "kl_to_posterior",
    "sample",
    "mle_p",
    "em_step",
    "mixture_log_prob",
    "kl_on_grid",
    "fit_gaussian_kl",
]

Tensorish = Union[float, int, torch.Tensor]

_LOG_2PI = math.log(2.0 * math.pi)


def _args(*values: Tensorish) -> tuple[torch.Tensor, ...]:
    """The arguments as tensors of one floating dtype (the promoted dtype of the
    floating tensors among them, else the default dtype) on the first tensor's device."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    floats = [v.dtype for v in tensors if v.is_floating_point()]
    dtype = floats[0] if floats else torch.get_default_dtype()
    for d in floats[1:]:
        dtype = torch.promote_types(dtype, d)
    device = tensors[0].device if tensors else None
    return tuple(torch.as_tensor(v, dtype=dtype, device=device) for v in values)


def _check_prob(name: str, v: torch.Tensor) -> None:
    v = v.detach()
    if bool(((v < 0) | (v > 1) | torch.isnan(v)).any()):
        raise ValueError(f"{name} must be a probability in [0, 1]; got values outside it "
                         f"(min {v.min().item():.3g}, max {v.max().item():.3g}).")


def _check_sigma(sigma: torch.Tensor) -> None:
    if bool((sigma.detach() <= 0).any()):
        raise ValueError("sigma must be > 0 (it is the standard deviation of x given z).")


def gaussian_log_prob(x: Tensorish, mean: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""Log-density of a 1-D Gaussian, :math:`\log \mathcal{N}(x; m, \sigma^2)
    = -\frac{(x-m)^2}{2\sigma^2} - \log\sigma - \frac12 \log 2\pi`."""
    x, mean, sigma = _args(x, mean, sigma)
    return -0.5 * ((x - mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * _LOG_2PI


def log_joint(x: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""The two log-joints :math:`\log p(x, z) = \log p(z) + \log p(x \mid z)` for z = 0, 1.

    Returns a tensor with a last dimension of size 2:
    ``[..., 0] = log(1 - p) + log N(x; 0, sigma^2)`` and
    ``[..., 1] = log p + log N(x; 1, sigma^2)`` (``-inf`` where ``p`` is 0 or 1).
    """
    x, p, sigma = _args(x, p, sigma)
    _check_prob("p", p)
    _check_sigma(sigma)
    l0 = torch.log1p(-p) + gaussian_log_prob(x, 0.0, sigma)
    l1 = torch.log(p) + gaussian_log_prob(x, 1.0, sigma)
    l0, l1 = torch.broadcast_tensors(l0, l1)
    return torch.stack([l0, l1], dim=-1)


def log_evidence(x: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""Exact log-evidence of the toy model (nats per example).

    .. math::

        \log p(x) = \log \sum_{z \in \{0,1\}} p(z)\, p(x \mid z)
                  = \log\big((1-p)\,\mathcal{N}(x; 0, \sigma^2) + p\,\mathcal{N}(x; 1, \sigma^2)\big),

    computed as a ``logsumexp`` of the two log-joints, so that it stays finite
    where both densities underflow (large ``|x|``).
    """
    return torch.logsumexp(log_joint(x, p, sigma), dim=-1)


def posterior_logit(x: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""Logit of the exact posterior, :math:`\log\frac{p(z=1\mid x)}{p(z=0\mid x)}
    = \log\frac{p}{1-p} + \frac{2x - 1}{2\sigma^2}` (linear in x)."""
    x, p, sigma = _args(x, p, sigma)
    _check_prob("p", p)
    _check_sigma(sigma)
    return torch.log(p) - torch.log1p(-p) + (2.0 * x - 1.0) / (2.0 * sigma**2)


def posterior_z1(x: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""Exact posterior by Bayes' rule,

    .. math::

        p(z=1 \mid x) = \frac{p\,\mathcal{N}(x; 1, \sigma^2)}{p(x)}
                      = \exp\big(\log p(x, z=1) - \log p(x)\big)
                      = \mathrm{sigmoid}\Big(\log\tfrac{p}{1-p} + \tfrac{2x-1}{2\sigma^2}\Big).
    """
    return torch.sigmoid(posterior_logit(x, p, sigma))


def kl_bernoulli(a: Tensorish, b: Tensorish) -> torch.Tensor:
    r"""KL divergence between Bernoulli distributions,

    .. math::

        \mathrm{KL}(\mathrm{Ber}(a) \,\|\, \mathrm{Ber}(b))
        = a \log\frac{a}{b} + (1-a)\log\frac{1-a}{1-b},

    with :math:`0 \log 0 = 0` (``inf`` when ``a > 0 = b`` or ``a < 1 = b``)."""
    a, b = _args(a, b)
    return (torch.xlogy(a, a) - torch.xlogy(a, b)
            + torch.xlogy(1.0 - a, 1.0 - a) - torch.xlogy(1.0 - a, 1.0 - b))


def elbo_terms(x: Tensorish, pi: Tensorish, p: Tensorish, sigma: Tensorish) -> dict[str, torch.Tensor]:
    r"""The ELBO of the Bernoulli family :math:`q(z=1 \mid x) = \pi`, term by term.

    .. math::

        \mathcal{L}(\theta, \phi; x)
        = \underbrace{\mathbb{E}_{q}[\log p(x \mid z)]}_{\texttt{recon}}
          + \underbrace{\mathbb{E}_{q}[\log p(z)]}_{\texttt{log\_prior}}
          \underbrace{- \mathbb{E}_{q}[\log q(z \mid x)]}_{\texttt{entropy}}
        = \texttt{recon} - \underbrace{\mathrm{KL}(q(z \mid x) \,\|\, p(z))}_{\texttt{kl}},

    with :math:`\mathbb{E}_q[f(z)] = (1-\pi) f(0) + \pi f(1)`. Returns a dict
    with ``elbo``, ``recon``, ``log_prior``, ``entropy`` and ``kl`` (each in
    nats, one value per example).
    """
    x, pi, p, sigma = _args(x, pi, p, sigma)
    _check_prob("pi", pi)
    _check_prob("p", p)
    _check_sigma(sigma)
    recon = (1.0 - pi) * gaussian_log_prob(x, 0.0, sigma) + pi * gaussian_log_prob(x, 1.0, sigma)
    log_prior = torch.xlogy(1.0 - pi, 1.0 - p) + torch.xlogy(pi, p)
    entropy = -(torch.xlogy(1.0 - pi, 1.0 - pi) + torch.xlogy(pi, pi))
    kl = kl_bernoulli(pi, p)
    elbo_value = recon + log_prior + entropy
    recon, log_prior, entropy, kl, elbo_value = torch.broadcast_tensors(
        recon, log_prior, entropy, kl, elbo_value)
    return {"elbo": elbo_value, "recon": recon, "log_prior": log_prior, "entropy": entropy, "kl": kl}


def elbo(x: Tensorish, pi: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""Closed-form ELBO, :math:`\mathbb{E}_q[\log p(x\mid z)] + \mathbb{E}_q[\log p(z)]
    - \mathbb{E}_q[\log q(z\mid x)]`, for :math:`q(z=1\mid x)=\pi` (see :func:`elbo_terms`)."""
    return elbo_terms(x, pi, p, sigma)["elbo"]


def kl_to_posterior(x: Tensorish, pi: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""The gap of the bound, :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))`,

    .. math::

        \pi \log\frac{\pi}{p(z=1\mid x)} + (1-\pi)\log\frac{1-\pi}{p(z=0\mid x)},

    computed from the posterior logit with ``logsigmoid`` (finite for large
    ``|x|``). By the key equation it equals ``log_evidence - elbo``.
    """
    x, pi, p, sigma = _args(x, pi, p, sigma)
    _check_prob("pi", pi)
    s = posterior_logit(x, p, sigma)
    log_r1 = torch.nn.functional.logsigmoid(s)
    log_r0 = torch.nn.functional.logsigmoid(-s)
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    term1 = torch.where(pi > 0, torch.xlogy(pi, pi) - pi * log_r1, zero)
    term0 = torch.where(pi < 1, torch.xlogy(1.0 - pi, 1.0 - pi) - (1.0 - pi) * log_r0, zero)
    return term0 + term1


def elbo_mc(x: Tensorish, pi: Tensorish, p: Tensorish, sigma: Tensorish, n_samples: int = 1000,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo estimate of the ELBO and its standard error.

    .. math::

        \mathcal{L} \approx \frac1S \sum_{s=1}^S \big[\log p(x \mid z_s) + \log p(z_s)
        - \log q(z_s \mid x)\big], \qquad z_s \sim q(z \mid x) = \mathrm{Ber}(\pi).

    Returns ``(mean, stderr)``, each with the broadcast shape of the arguments;
    ``stderr`` is the sample standard deviation over ``sqrt(S)``.
    """
    x, pi, p, sigma = _args(x, pi, p, sigma)
    _check_prob("pi", pi)
    shape = torch.broadcast_shapes(x.shape, pi.shape, p.shape, sigma.shape)
    pi_b = pi.expand(shape)
    u = torch.rand((n_samples, *shape), generator=generator, dtype=pi.dtype).to(pi.device)
    z = (u < pi_b).to(pi.dtype)
    log_px_z = gaussian_log_prob(x, z, sigma)
    one = z > 0.5
    log_pz = torch.where(one, torch.log(p).expand(z.shape), torch.log1p(-p).expand(z.shape))
    log_qz = torch.where(one, torch.log(pi_b).expand(z.shape), torch.log1p(-pi_b).expand(z.shape))
    terms = log_px_z + log_pz - log_qz
    mean = terms.mean(0)
    stderr = terms.std(0) / math.sqrt(n_samples) if n_samples > 1 else torch.full_like(mean, float("nan"))
    return mean, stderr


def sample(n: int, p: Tensorish, sigma: Tensorish,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw ``n`` examples from the model: :math:`z \sim \mathrm{Ber}(p)`, then
    :math:`x = z + \sigma \varepsilon` with :math:`\varepsilon \sim \mathcal{N}(0, 1)`.

    Returns ``(x, z)``, both of shape ``(n,)``. Moments: :math:`\mathbb{E}[x] = p`,
    :math:`\mathrm{Var}[x] = \sigma^2 + p(1-p)`.
    """
    p_t, sigma_t = _args(p, sigma)
    _check_prob("p", p_t)
    _check_sigma(sigma_t)
    p_t, sigma_t = p_t.detach(), sigma_t.detach()
    u = torch.rand(n, generator=generator, dtype=p_t.dtype)
    z = (u < p_t).to(p_t.dtype)
    eps = torch.randn(n, generator=generator, dtype=p_t.dtype)
    return z + sigma_t * eps, z


def em_step(x: Tensorish, p: Tensorish, sigma: Tensorish) -> torch.Tensor:
    r"""One EM step = maximising the ELBO in q, then in p.

    E-step: :math:`\pi_i = p(z=1 \mid x_i)` (the bound becomes tight);
    M-step: :math:`\arg\max_p \sum_i \mathcal{L}(p; \pi_i, x_i) = \frac1n \sum_i \pi_i`.
    """
    return posterior_z1(x, p, sigma).mean()


def mle_p(x: Tensorish, sigma: Tensorish, tol: float = 1e-12, max_iter: int = 200) -> float:
    r"""Exact maximum-likelihood :math:`\hat p = \arg\max_p \frac1n\sum_i \log p(x_i)`.

    The average log-evidence is concave in p and its derivative has the sign
    of :math:`h(p) = \frac1n \sum_i p(z=1 \mid x_i; p) - p` on (0, 1) (the
    MLE is the fixed point of :func:`em_step`), so bisection on the sign of
    ``h`` finds it; returns 0 or 1 when the maximum is on the boundary.
    Computed in float64; returns a Python float.
    """
    x, sigma = (v.detach().to(torch.float64) for v in _args(x, sigma))
    x = x.reshape(-1)
    lo, hi = 0.0, 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        h = posterior_z1(x, torch.tensor(mid, dtype=torch.float64), sigma).mean().item() - mid
        if h > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)


def mixture_log_prob(z: Tensorish, weights, means, sds) -> torch.Tensor:
    r"""Log-density of a 1-D Gaussian mixture, :math:`\log \sum_k w_k \mathcal{N}(z; m_k, s_k^2)`
    (``logsumexp`` over the components; one value per element of ``z``)."""
    z, w, m, s = _args(z, weights, means, sds)
    if bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
        raise ValueError("the mixture weights must be non-negative and sum to 1.")
    _check_sigma(s)
    comp = torch.log(w) + gaussian_log_prob(z[..., None], m, s)
    return torch.logsumexp(comp, dim=-1)


def kl_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \,\|\, q) = \int p(z) \log\frac{p(z)}{q(z)}\,dz` by the trapezoid rule on the
    grid ``z`` (1-D, increasing), from the log-densities on that grid. Where :math:`p = 0` the integrand is 0."""
    if log_p.shape != z.shape or log_q.shape != z.shape:
        raise ValueError(f"log_p, log_q and z must have one value per grid point; got shapes "
                         f"{tuple(log_p.shape)}, {tuple(log_q.shape)} and {tuple(z.shape)}.")
    p = log_p.exp()
    integrand = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return torch.trapezoid(integrand, z)


def fit_gaussian_kl(log_p: torch.Tensor, z: torch.Tensor, direction: str, means: torch.Tensor,
                    sds: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    r"""The Gaussian :math:`q = \mathcal{N}(m, s^2)` that minimises a KL divergence to the density ``p``
    given on the grid ``z``, by exhaustive search over the candidates ``means`` x ``sds``.

    ``direction="forward"`` minimises :math:`\mathrm{KL}(p \,\|\, q)` (mode-covering; its minimum is
    moment matching), ``"reverse"`` minimises :math:`\mathrm{KL}(q \,\|\, p)` (mode-seeking).
    Returns ``(m, s, table)``: the best candidate and the KL of every candidate, shape
    ``(len(means), len(sds))``, in nats.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' (KL(p || q)) or 'reverse' (KL(q || p)), got {direction!r}.")
    means, sds = (torch.as_tensor(v, dtype=z.dtype) for v in (means, sds))
    table = torch.empty(len(means), len(sds), dtype=z.dtype)
    for i, m in enumerate(means):      # one row at a time: memory stays len(sds) x len(z)
        log_q = gaussian_log_prob(z, m, sds[:, None])
        lp = log_p.expand_as(log_q)
        table[i] = torch.stack([kl_on_grid(a, b, z) for a, b in
                                (zip(lp, log_q) if direction == "forward" else zip(log_q, lp))])
    k = int(table.argmin())
    return float(means[k // len(sds)]), float(sds[k % len(sds)]), table


class BernoulliGaussianToy:
    r"""The toy model :math:`z \sim \mathrm{Ber}(p)`, :math:`x \mid z \sim \mathcal{N}(z, \sigma^2)`.

    A thin object around the module's functions, for code that passes a
    model around: ``BernoulliGaussianToy(0.3, 0.5).log_evidence(x)``.
    """

    def __init__(self, p: Tensorish = 0.5, sigma: Tensorish = 1.0):
        p_t, sigma_t = _args(p, sigma)
        _check_prob("p", p_t)
        _check_sigma(sigma_t)
        self.p = p
        self.sigma = sigma

    def __repr__(self) -> str:
        def f(v):
            return f"{float(v):.4g}" if not isinstance(v, torch.Tensor) or v.numel() == 1 else "tensor"
        return f"BernoulliGaussianToy(p={f(self.p)}, sigma={f(self.sigma)})"

    def log_evidence(self, x: Tensorish) -> torch.Tensor:
        """Exact log p(x); see :func:`log_evidence`."""
        return log_evidence(x, self.p, self.sigma)

    def posterior_z1(self, x: Tensorish) -> torch.Tensor:
        """Exact p(z=1|x); see :func:`posterior_z1`."""
        return posterior_z1(x, self.p, self.sigma)

    def elbo(self, x: Tensorish, pi: Tensorish) -> torch.Tensor:
        """Closed-form ELBO for q(z=1|x) = pi; see :func:`elbo`."""
        return elbo(x, pi, self.p, self.sigma)

    def elbo_terms(self, x: Tensorish, pi: Tensorish) -> dict[str, torch.Tensor]:
        """ELBO term by term; see :func:`elbo_terms`."""
        return elbo_terms(x, pi, self.p, self.sigma)

    def kl_to_posterior(self, x: Tensorish, pi: Tensorish) -> torch.Tensor:
        """KL(q(z|x) || p(z|x)); see :func:`kl_to_posterior`."""
        return kl_to_posterior(x, pi, self.p, self.sigma)

    def elbo_mc(self, x: Tensorish, pi: Tensorish, n_samples: int = 1000,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte Carlo ELBO and its standard error; see :func:`elbo_mc`."""
        return elbo_mc(x, pi, self.p, self.sigma, n_samples=n_samples, generator=generator)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(x, z)``, ``n`` of each; see :func:`sample`."""
        return sample(n, self.p, self.sigma, generator=generator)
