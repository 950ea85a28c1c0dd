r"""A linear-Gaussian latent-variable model, where the likelihood and the posterior are exact.

.. math::

    p(z) = \mathcal{N}(0, I_d), \qquad p_\theta(x \mid z) = \mathcal{N}(W z + b, \sigma^2 I_D),

(probabilistic PCA, Tipping & Bishop 1999). Integrating z out gives the exact evidence

.. math:: p_\theta(x) = \mathcal{N}(x;\; b,\; W W^\top + \sigma^2 I_D),

and Bayes' rule the exact posterior

.. math::

    p_\theta(z \mid x) = \mathcal{N}\big(M^{-1} W^\top (x - b) / \sigma^2,\; M^{-1}\big),
    \qquad M = I_d + W^\top W / \sigma^2.

It has the course's latent-variable API (``encode``, ``decode``, ``prior``, ``loss``), so the
estimators of :mod:`course_lib.evaluate` can be checked against exact values (lesson 5, tests).
``encode`` returns, by ``posterior=``:

- ``"exact"``: the true posterior (full covariance): every importance weight equals p(x), so the
  IWAE estimate is exact for any k;
- ``"mean_field"``: the best diagonal Gaussian in KL(q || p(z|x)) (mean of the posterior,
  variances 1 / diag(M)): the VAE's family, a deliberately approximate q;

and ``q_scale`` (multiplies q's standard deviations) and ``q_shift`` (added to q's mean) make it
as wrong as you like. :meth:`exact_elbo` is the ELBO of that q in closed form, :meth:`elbo_of` the
ELBO of any Gaussian q (for the approximation and amortization gaps of lesson 5).
"""
from __future__ import annotations


import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

__all__ = ["LinearGaussian"]

_POSTERIORS = ("exact", "mean_field")


class LinearGaussian(nn.Module):
    """p(z) = N(0, I_d), p(x|z) = N(W z + b, sigma^2 I_D); x and z are vectors (batch, D), (batch, d)."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float, posterior: str = "exact",
                 q_scale: float = 1.0, q_shift: float = 0.0):
        super().__init__()
        W = torch.as_tensor(W)
        if W.ndim != 2:
            raise ValueError(f"W must be a D x d matrix, got shape {tuple(W.shape)}.")
        if posterior not in _POSTERIORS:
            raise ValueError(f"posterior must be one of {_POSTERIORS}, got {posterior!r}.")
        if sigma <= 0 or q_scale <= 0:
            raise ValueError("sigma and q_scale must be positive.")
        self.register_buffer("W", W.clone())
        self.register_buffer("b", torch.as_tensor(b, dtype=W.dtype).clone().reshape(W.shape[0]))
        self.sigma = float(sigma)
        self.posterior = posterior
        self.q_scale = float(q_scale)
        self.q_shift = float(q_shift)

    @classmethod
    def random(cls, data_dim: int = 5, latent_dim: int = 2, sigma: float = 0.5, seed: int = 0,
               dtype=torch.float64, **kwargs) -> "LinearGaussian":
        """A model with W and b drawn from N(0, 1) (a fixed seed)."""
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(data_dim, latent_dim, generator=g, dtype=dtype)
        b = torch.randn(data_dim, generator=g, dtype=dtype)
        return cls(W, b, sigma, **kwargs)

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    # --- exact quantities -------------------------------------------------------------------
    def marginal(self) -> MultivariateNormal:
        """p_theta(x) = N(b, W W^T + sigma^2 I)."""
        cov = self.W @ self.W.T + self.sigma ** 2 * torch.eye(self.data_dim, dtype=self.W.dtype, device=self.W.device)
        return MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p_theta(x), one value per example (nats)."""
        return self.marginal().log_prob(x)

    def _precision(self) -> torch.Tensor:
        """M = I + W^T W / sigma^2, the posterior precision."""
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        return eye + self.W.T @ self.W / self.sigma ** 2

    def exact_posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """p_theta(z | x) = N(M^{-1} W^T (x - b) / sigma^2, M^{-1})."""
        cov = torch.linalg.inv(self._precision())
        mean = (x - self.b) @ self.W @ cov.T / self.sigma ** 2
        return MultivariateNormal(mean, covariance_matrix=cov.expand(len(x), -1, -1))

    # --- the latent-variable model API ------------------------------------------------------
    def encode(self, x: torch.Tensor, y=None):
        """q(z|x): the exact posterior or its mean-field approximation, scaled and shifted."""
        post = self.exact_posterior(x)
        mean = post.mean + self.q_shift
        if self.posterior == "exact":
            return MultivariateNormal(mean, scale_tril=self.q_scale * post.scale_tril)
        std = self._precision().diagonal().rsqrt().expand_as(mean)
        return Independent(Normal(mean, self.q_scale * std), 1)

    def decode(self, z: torch.Tensor, y=None) -> Independent:
        """p_theta(x|z) = N(W z + b, sigma^2 I), log_prob summed over the D coordinates."""
        mean = z @ self.W.T + self.b
        return Independent(Normal(mean, torch.full_like(mean, self.sigma)), 1)

    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I_d)"""
        zero = torch.zeros(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        return Independent(Normal(zero, torch.ones_like(zero)), 1)

    def exact_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """ELBO of the encoder's q in closed form: log p(x) - KL(q(z|x) || p(z|x)) (the key equation)."""
        return self.elbo_of(self.encode(x), x)

    def elbo_of(self, q, x: torch.Tensor) -> torch.Tensor:
        """Closed-form ELBO of any Gaussian q over z (one per example of x: a diagonal ``Independent(Normal)``
        or a ``MultivariateNormal``): log p(x) - KL(q || p(z|x)), one value per example (nats).

        With the best diagonal q (``posterior="mean_field"``, no scale or shift) the remaining
        KL is the approximation gap; any other q adds an amortization gap (Cremer et al. 2018)."""
        if isinstance(q, Independent):
            q = MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))
        if tuple(q.mean.shape) != (len(x), self.latent_dim):
            raise ValueError(f"q has mean of shape {tuple(q.mean.shape)}, expected ({len(x)}, {self.latent_dim}): "
                             "one Gaussian over z per example of x.")
        return self.log_marginal(x) - torch.distributions.kl_divergence(q, self.exact_posterior(x))

    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative ELBO with one sample of q (nats per example); nothing is trained by default."""
        q = self.encode(x)
        z = q.rsample()
        recon = -self.decode(z).log_prob(x).mean()
        kl = (q.log_prob(z) - self.prior.log_prob(z)).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws x ~ p_theta(x) by ancestral sampling (z, then x)."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=self.W.dtype).to(self.W.device)
        eps = torch.randn(n, self.data_dim, generator=generator, dtype=self.W.dtype).to(self.W.device)
        return z @ self.W.T + self.b + self.sigma * eps

    def extra_repr(self) -> str:
        return (f"D={self.data_dim}, d={self.latent_dim}, sigma={self.sigma}, posterior={self.posterior!r}, "
                f"q_scale={self.q_scale}, q_shift={self.q_shift}")
