r"""The hyperspherical VAE (S-VAE, lesson 9; Davidson et al. 2018), in the course's latent-variable model API.

- ``encode(x)`` -> q_phi(z|x) = vMF(mu_phi(x), kappa_phi(x)) on S^(d-1) in R^d, with
  mu_phi(x) = h_mu / |h_mu| and kappa_phi(x) = softplus(h_kappa) + 1 (the "+ 1" of Davidson
  et al.'s code keeps the posterior from collapsing onto the uniform prior early in training);
- ``decode(z)`` -> p_theta(x|z): Bernoulli(logits = f_theta(z)) or N(f_theta(z), gamma^2 I)
  (fixed gamma), whose ``log_prob(x)`` sums over pixels;
- ``prior`` -> p(z) = U(S^(d-1)), the uniform distribution on the sphere;
- ``loss(x)`` -> the negative ELBO in nats per example,

  loss = E_q[-log p_theta(x|z)] + beta * KL(vMF(mu, kappa) || U(S^(d-1))),

  one reparameterized sample (Wood's sampler with the implicit, unbiased kappa-gradient) and the
  KL in closed form (:func:`course_lib.distributions.von_mises_fisher.vmf_kl_uniform`).

``latent_dim`` is the ambient dimension d (the sphere S^(d-1)), as in Davidson et al.'s Table 1:
"S-VAE, d = 2" has its codes on the circle S^1.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal
from torch.nn import functional as F

from ..distributions.von_mises_fisher import HypersphericalUniform, VonMisesFisher, vmf_kl_uniform
from .layers import check_input, mlp

__all__ = ["SVAE"]


class SVAE(nn.Module):
    """A fully connected VAE with a von Mises-Fisher posterior and a uniform prior on S^(d-1)."""

    def __init__(self, shape, latent_dim: int = 3, hidden=(256,), likelihood: str = "bernoulli",
                 gamma: float = 1.0, beta: float = 1.0, gradient: str = "implicit", activation=nn.ReLU):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"unknown likelihood {likelihood!r}; choose 'bernoulli' or 'gaussian'.")
        if int(latent_dim) < 2:
            raise ValueError(f"latent_dim is the ambient dimension d >= 2 of the sphere S^(d-1), got {latent_dim}.")
        if gradient not in ("implicit", "pathwise"):
            raise ValueError(f"gradient must be 'implicit' (unbiased) or 'pathwise' (biased), got {gradient!r}.")
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}.")
        self.shape = tuple(shape)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.beta = float(beta)
        self.gradient = gradient
        self.gamma = float(gamma)
        n = math.prod(self.shape)
        self.encoder = mlp([n, *hidden, latent_dim + 1], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden), n], activation)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # --- the latent-variable model API ---------------------------------------------------
    def encoder_params(self, x: torch.Tensor):
        """mu_phi(x) on the unit sphere (batch, d) and kappa_phi(x) > 1 (batch,)."""
        check_input(x, self.shape, type(self).__name__)
        h = self.encoder(x.reshape(len(x), -1))
        mu = F.normalize(h[:, :-1], dim=-1)
        kappa = F.softplus(h[:, -1]) + 1.0
        return mu, kappa

    def encode(self, x: torch.Tensor, y=None) -> VonMisesFisher:
        """q_phi(z|x) = vMF(mu_phi(x), kappa_phi(x))"""
        mu, kappa = self.encoder_params(x)
        return VonMisesFisher(mu, kappa)

    def decode(self, z: torch.Tensor, y=None) -> Independent:
        """p_theta(x|z), a distribution over images whose log_prob sums over pixels."""
        out = self.decoder(z).reshape(*z.shape[:-1], *self.shape)
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=out, validate_args=False), len(self.shape))
        return Independent(Normal(out, torch.full_like(out, self.gamma), validate_args=False), len(self.shape))

    @property
    def prior(self) -> HypersphericalUniform:
        """p(z) = U(S^(d-1))"""
        return HypersphericalUniform(self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)

    # --- training ------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative beta-ELBO, one reparameterized vMF sample, nats per example."""
        mu, kappa = self.encoder_params(x)
        z = VonMisesFisher(mu, kappa).rsample(gradient=self.gradient)
        recon = -self.decode(z).log_prob(x).mean()
        kl = vmf_kl_uniform(self.latent_dim, kappa).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl, "neg_elbo": recon + kl,
                "kappa": kappa.detach().mean()}

    # --- using a trained model -----------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at the posterior mode: E[x | z = mu_phi(x)]."""
        return self.decode(self.encoder_params(x)[0]).mean

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of n draws z ~ U(S^(d-1))."""
        return self.decode(self.prior.sample((n,), generator=generator)).mean

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder means for given latent codes (projected onto the sphere)."""
        return self.decode(F.normalize(z, dim=-1)).mean
