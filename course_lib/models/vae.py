"""The Gaussian VAE (lessons 3 and 4), in the latent-variable model API of the course.

- ``encode(x)`` -> q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), a ``torch.distributions`` object;
- ``decode(z)`` -> p_theta(x|z): Bernoulli(logits = f_theta(z)) or N(f_theta(z), gamma^2 I),
  whose ``log_prob(x)`` sums over pixels;
- ``prior`` -> p(z) = N(0, I);
- ``loss(x)`` -> the negative beta-ELBO and its terms, in nats per example:

  loss = E_q[-log p_theta(x|z)] + beta * KL(q_phi(z|x) || p(z)),

  the expectation estimated with one reparameterized sample z = mu + sigma * eps, and the
  KL in closed form (:func:`course_lib.losses.gaussian_kl`).

With ``likelihood="gaussian"`` and ``gamma="learned"`` the decoder's standard deviation gamma
is one learned scalar (seed 003, eq. 3-4): -ELBO = ||x - x_hat||^2 / (2 gamma^2) + k log gamma + KL
(+ (k/2) log 2 pi, kept so that the value is a true negative log-likelihood bound).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from ..losses import gaussian_kl
from .layers import check_input, mlp

__all__ = ["VAE"]


class VAE(nn.Module):
    """A fully connected VAE with a Gaussian posterior and a standard normal prior.

    ``VAE(shape=(1, 28, 28), latent_dim=20, hidden=(400,))`` is the pytorch/examples VAE
    (784-400-20); ``hidden=(200, 200), latent_dim=50`` is Burda et al.'s 784-200-200-50.
    """

    def __init__(self, shape, latent_dim: int = 20, hidden=(400,), likelihood: str = "bernoulli",
                 gamma: float | str = 1.0, beta: float = 1.0, activation=nn.ReLU):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"unknown likelihood {likelihood!r}; choose 'bernoulli' or 'gaussian'.")
        self.shape = tuple(shape)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.beta = float(beta)
        n = math.prod(self.shape)
        self.encoder = mlp([n, *hidden, 2 * latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden), n], activation)
        self.learned_gamma = likelihood == "gaussian" and gamma == "learned"
        if self.learned_gamma:
            self.log_gamma = nn.Parameter(torch.zeros(()))
        else:
            if isinstance(gamma, str):
                raise ValueError(f"gamma must be a positive number or 'learned', got {gamma!r}.")
            if gamma <= 0:
                raise ValueError(f"gamma must be positive, got {gamma}.")
            self.register_buffer("log_gamma", torch.tensor(math.log(gamma)))
        self.register_buffer("_zero", torch.zeros(latent_dim), persistent=False)

    # --- the latent-variable model API ---------------------------------------------------
    def encoder_params(self, x: torch.Tensor):
        """mu_phi(x) and log sigma_phi(x)^2, each (batch, latent_dim)."""
        check_input(x, self.shape, type(self).__name__)
        mu, logvar = self.encoder(x.reshape(len(x), -1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor, y=None) -> Independent:
        """q_phi(z|x) = N(mu_phi(x), diag exp(logvar_phi(x)))"""
        mu, logvar = self.encoder_params(x)
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def decode(self, z: torch.Tensor, y=None) -> Independent:
        """p_theta(x|z), a distribution over images whose log_prob sums over pixels."""
        out = self.decoder(z).reshape(*z.shape[:-1], *self.shape)
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=out, validate_args=False), len(self.shape))
        return Independent(Normal(out, self.gamma.expand_as(out), validate_args=False), len(self.shape))

    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I)"""
        return Independent(Normal(self._zero, torch.ones_like(self._zero)), 1)

    @property
    def gamma(self) -> torch.Tensor:
        """The decoder's standard deviation (Gaussian likelihood)."""
        return self.log_gamma.exp()

    # --- training ------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative beta-ELBO, one reparameterized sample, nats per example."""
        mu, logvar = self.encoder_params(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization trick
        recon = -self.decode(z).log_prob(x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        terms = {"loss": recon + self.beta * kl, "recon": recon, "kl": kl, "neg_elbo": recon + kl}
        if self.likelihood == "gaussian":
            terms["gamma"] = self.gamma.detach()
        return terms

    # --- using a trained model -----------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at the posterior mean: E[x | z = mu_phi(x)]."""
        return self.decode(self.encode(x).mean).mean

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of n draws z ~ p(z)."""
        z = torch.randn(n, self.latent_dim, generator=generator).to(self._zero.device)
        return self.decode(z).mean

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder means for given latent codes."""
        return self.decode(z).mean
