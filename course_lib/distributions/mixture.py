r"""A mixture of diagonal Gaussians over R^d, and the convexity bound on a KL to it (lesson 10).

Seed 003, eq. 22: the prior on the latent u of the two-stage VAE becomes

.. math:: p(u) = \mathrm{MoG}(w, \mu, \sigma) = \sum_{k=1}^{K} w_k\, \mathcal{N}(u; \mu_k, \operatorname{diag}\sigma_k^2),
          \qquad w = \mathrm{softmax}(\text{logits}).

The KL from a Gaussian posterior q to a mixture has no closed form. Because the KL is convex
in its second argument, it is bounded by the mixture of the component KLs (seed 003, section 4):

.. math:: \mathrm{KL}\Big(q \,\Big\|\, \sum_k w_k p_k\Big) \le \sum_k w_k\, \mathrm{KL}(q \,\|\, p_k),

each term a KL between two diagonal Gaussians in closed form (:func:`kl_mixture_upper_bound`).
A tighter closed-form bound follows from Jensen's inequality for the concave log,
:math:`\mathbb{E}_q \log \sum_k w_k p_k(u) \ge \log \sum_k w_k \exp(\mathbb{E}_q \log p_k(u))`:

.. math:: \mathrm{KL}\Big(q \,\Big\|\, \sum_k w_k p_k\Big) \le -\log \sum_k w_k\, e^{-\mathrm{KL}(q \| p_k)}
          \le \sum_k w_k\, \mathrm{KL}(q \,\|\, p_k)

(:func:`kl_mixture_tight_bound`; the second inequality is Jensen for the convex exp).
:func:`kl_monte_carlo` estimates the KL itself, :math:`\mathbb{E}_q[\log q(u) - \log p(u)]`.
"""
from __future__ import annotations

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, constraints, kl_divergence

__all__ = ["MixtureOfGaussians", "kl_mixture_upper_bound", "kl_mixture_tight_bound", "kl_monte_carlo"]


class MixtureOfGaussians(MixtureSameFamily):
    r"""p(u) = sum_k w_k N(u; loc_k, diag scale_k^2), a distribution over R^d (seed 003, eq. 22).

    - ``logits``: shape ``(K,)``, the unnormalised log-weights (w = softmax(logits));
    - ``loc``, ``scale``: shape ``(K, d)``, each component's mean and standard deviations.

    (Leading batch dimensions are allowed: ``logits (..., K)``, ``loc``/``scale (..., K, d)``.)
    ``log_prob(u)`` (``u`` of shape ``(..., d)``) is ``logsumexp_k [log w_k + log N(u; loc_k, scale_k^2)]``;
    ``sample`` picks a component k ~ Categorical(w), then u ~ N(loc_k, scale_k^2). There is no
    ``rsample`` (the choice of k is discrete) and no closed-form entropy or KL: use
    :func:`kl_mixture_upper_bound` or :func:`kl_monte_carlo`.
    """

    arg_constraints = {"logits": constraints.real_vector, "loc": constraints.real,
                       "scale": constraints.positive}

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        for name, t in (("logits", logits), ("loc", loc), ("scale", scale)):
            if not torch.is_tensor(t) or not t.is_floating_point():
                raise TypeError(f"MixtureOfGaussians: {name} must be a float tensor, got "
                                f"{type(t).__name__ if not torch.is_tensor(t) else t.dtype}; use torch.tensor(..., dtype=torch.float32).")
        if loc.dim() < 2 or loc.shape != scale.shape:
            raise ValueError(f"MixtureOfGaussians: loc and scale must both have shape (K, d), got "
                             f"{tuple(loc.shape)} and {tuple(scale.shape)}; one row per component.")
        if logits.shape != loc.shape[:-1]:
            raise ValueError(f"MixtureOfGaussians: logits must have shape (K,) = {tuple(loc.shape[:-1])} "
                             f"(one per row of loc), got {tuple(logits.shape)}.")
        if validate_args is not False and not bool((scale > 0).all()):
            raise ValueError("MixtureOfGaussians: every scale must be positive; parameterise it as log_scale.exp().")
        self._loc, self._scale = loc, scale
        super().__init__(Categorical(logits=logits, validate_args=False),
                         Independent(Normal(loc, scale, validate_args=False), 1), validate_args=False)

    @property
    def logits(self) -> torch.Tensor:
        """The normalised log-weights log w_k, shape (K,)."""
        return self.mixture_distribution.logits

    @property
    def weights(self) -> torch.Tensor:
        """The mixture weights w_k (they sum to 1), shape (K,)."""
        return self.mixture_distribution.probs

    @property
    def loc(self) -> torch.Tensor:
        """Component means, shape (K, d)."""
        return self._loc

    @property
    def scale(self) -> torch.Tensor:
        """Component standard deviations, shape (K, d)."""
        return self._scale

    @property
    def n_components(self) -> int:
        return self._loc.shape[-2]

    def component(self, k: int) -> Independent:
        """The k-th component N(loc_k, diag scale_k^2), a distribution over R^d."""
        return Independent(Normal(self._loc[..., k, :], self._scale[..., k, :]), 1)

    def expand(self, batch_shape, _instance=None) -> "MixtureOfGaussians":
        """The same mixture repeated over a batch shape (the components are shared, not copied)."""
        batch_shape = torch.Size(batch_shape)
        k, d = self._loc.shape[-2:]
        return MixtureOfGaussians(self.mixture_distribution.logits.expand(batch_shape + (k,)),
                                  self._loc.expand(batch_shape + (k, d)), self._scale.expand(batch_shape + (k, d)),
                                  validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        d = self._loc.shape[-1]
        if not torch.is_tensor(value) or value.shape[-1:] != (d,):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"MixtureOfGaussians.log_prob expects points of shape (..., {d}), got {shape}.")
        return super().log_prob(value)

    def __repr__(self) -> str:
        return f"MixtureOfGaussians(K={self.n_components}, d={self._loc.shape[-1]})"


def _check_pair(q, p) -> None:
    if not isinstance(p, MixtureOfGaussians):
        raise TypeError(f"p must be a MixtureOfGaussians, got {type(p).__name__}.")
    base = getattr(q, "base_dist", None)
    if not (isinstance(q, Independent) and isinstance(base, Normal) and q.reinterpreted_batch_ndims == 1):
        raise TypeError("q must be a diagonal Gaussian: Independent(Normal(mu, sigma), 1), "
                        f"got {type(q).__name__}.")
    if q.event_shape != p.event_shape:
        raise ValueError(f"q and p live in different spaces: event shapes {tuple(q.event_shape)} and "
                         f"{tuple(p.event_shape)}.")


def kl_mixture_upper_bound(q: Independent, p: MixtureOfGaussians) -> torch.Tensor:
    r"""The convexity bound of seed 003, section 4, one value per distribution in q's batch:

    .. math:: \mathrm{KL}\Big(q \,\Big\|\, \sum_k w_k p_k\Big) \le \sum_k w_k\, \mathrm{KL}(q \,\|\, p_k),

    with each :math:`\mathrm{KL}(q \,\|\, p_k)` between diagonal Gaussians in closed form.
    ``q``: ``Independent(Normal(mu, sigma), 1)`` with batch shape ``(B,)`` and event ``(d,)``;
    ``p``: a :class:`MixtureOfGaussians` over R^d with one set of K components. Returns ``(B,)``.
    Equality holds for one component (K = 1).
    """
    _check_pair(q, p)
    mu, sigma = q.base_dist.loc.unsqueeze(-2), q.base_dist.scale.unsqueeze(-2)       # (B, 1, d)
    per_component = kl_divergence(Normal(mu, sigma), Normal(p.loc, p.scale)).sum(-1)  # (B, K)
    return (p.weights * per_component).sum(-1)


def _component_kls(q: Independent, p: MixtureOfGaussians) -> torch.Tensor:
    """KL(q || p_k) for every posterior in q's batch and every component: shape (B, K)."""
    mu, sigma = q.base_dist.loc.unsqueeze(-2), q.base_dist.scale.unsqueeze(-2)       # (B, 1, d)
    return kl_divergence(Normal(mu, sigma), Normal(p.loc, p.scale)).sum(-1)


def kl_mixture_tight_bound(q: Independent, p: MixtureOfGaussians) -> torch.Tensor:
    r"""The tighter closed-form bound :math:`-\log \sum_k w_k \exp(-\mathrm{KL}(q \,\|\, p_k))`, one value per
    distribution in q's batch (shape ``(B,)``), computed with ``logsumexp``.

    It lies between the KL and the convexity bound (:func:`kl_mixture_upper_bound`): Jensen for the concave
    log gives :math:`\mathbb{E}_q \log p(u) \ge \log \sum_k w_k e^{\mathbb{E}_q \log p_k(u)}`, and
    :math:`\mathbb{E}_q \log p_k = -\mathrm{KL}(q \| p_k) - H(q)`. Equality for one component.
    """
    _check_pair(q, p)
    return -torch.logsumexp(torch.log_softmax(p.mixture_distribution.logits, -1) - _component_kls(q, p), dim=-1)


def kl_monte_carlo(q, p, n_samples: int = 1000, generator_seed: int | None = None) -> torch.Tensor:
    r"""Monte Carlo estimate of KL(q || p) = E_q[log q(u) - log p(u)] with ``n_samples`` draws u ~ q,
    one value per distribution in q's batch. Unbiased; its standard error falls as 1/sqrt(n_samples)."""
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    u = q.sample((n_samples,))                                                         # (n, B, d)
    return (q.log_prob(u) - p.log_prob(u)).mean(0)
