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

``free_bits=lam`` (nats per latent dimension; Kingma et al. 2016, eq. 15) replaces the KL term of
the *training* loss by sum_j max(lam, KL_j), KL_j the batch average of dimension j's KL: a
dimension that carries less than lam nats costs nothing more, so the encoder is free to use it.
The reported ``kl`` and ``neg_elbo`` stay the true ones.

:class:`AutoregressiveVAE` has a "powerful" decoder (lesson 4): each binary pixel also sees the
pixels before it in raster order, p_theta(x|z) = prod_i p(x_i | x_<i, z) (a fully visible sigmoid
belief net, Frey 1998, whose logits get a term from z), which can model much of x without z.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from ..losses import gaussian_kl
from .layers import check_input, mlp

__all__ = ["VAE", "AutoregressiveVAE", "AutoregressiveBernoulli", "per_dim_kl"]


def per_dim_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL_j = mean over the batch of 1/2 (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2): (d,), sums to the mean KL."""
    return 0.5 * (logvar.exp() + mu ** 2 - 1.0 - logvar).mean(0)


class VAE(nn.Module):
    """A fully connected VAE with a Gaussian posterior and a standard normal prior.

    ``VAE(shape=(1, 28, 28), latent_dim=20, hidden=(400,))`` is the pytorch/examples VAE
    (784-400-20); ``hidden=(200, 200), latent_dim=50`` is Burda et al.'s 784-200-200-50.
    """

    def __init__(self, shape, latent_dim: int = 20, hidden=(400,), likelihood: str = "bernoulli",
                 gamma: float | str = 1.0, beta: float = 1.0, activation=nn.ReLU, free_bits: float = 0.0):
        super().__init__()
        if free_bits < 0:
            raise ValueError(f"free_bits is a number of nats per latent dimension, >= 0; got {free_bits}.")
        if free_bits > 0:   # only set when used, so that checkpoint keys of plain VAEs do not change
            self.free_bits = float(free_bits)
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
        lam = getattr(self, "free_bits", 0.0)
        kl_term = per_dim_kl(mu, logvar).clamp_min(lam).sum() if lam > 0 else kl
        terms = {"loss": recon + self.beta * kl_term, "recon": recon, "kl": kl, "neg_elbo": recon + kl}
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


class AutoregressiveBernoulli(torch.distributions.Distribution):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i(x_<i, z))) over flattened binary images.

    ``logit_fn(x_flat)`` returns the (batch, D) logits, logit i depending on the pixels before i only
    (and on z, which it holds). ``log_prob(x)`` is exact and parallel (teacher forcing);
    ``sample()`` draws pixel by pixel (D passes).
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(self, logit_fn, batch: int, shape, device=None):
        self.logit_fn, self.shape_, self.device_ = logit_fn, tuple(shape), device
        super().__init__(batch_shape=torch.Size([batch]), event_shape=self.shape_, validate_args=False)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every pixel given the pixels before it: (batch, D)."""
        return self.logit_fn(x.reshape(len(x), -1))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        return -F.binary_cross_entropy_with_logits(self.logit_fn(flat), flat, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        if len(sample_shape):
            raise ValueError("AutoregressiveBernoulli.sample draws one image per z: call it without a sample shape.")
        n, d = self.batch_shape[0], math.prod(self.shape_)
        x = torch.zeros(n, d, device=self.device_)
        for i in range(d):
            x[:, i] = torch.bernoulli(torch.sigmoid(self.logit_fn(x)[:, i]))
        return x.reshape(n, *self.shape_)

    @property
    def mean(self):
        raise NotImplementedError("the pixel means of an autoregressive decoder have no closed form: "
                                  "average several .sample() draws instead.")


class AutoregressiveVAE(VAE):
    """A Bernoulli VAE whose decoder also sees the previous pixels (raster order): a powerful decoder.

    logit_i = f_theta(z)_i + sum_{k<i} W_ik x_k (+ a masked hidden layer, MADE-style (Germain et al. 2015),
    when ``ar_hidden`` > 0: hidden unit m sees pixels k <= deg_m, output i sees hidden units with deg_m < i).
    """

    def __init__(self, shape, latent_dim: int = 20, hidden=(400,), beta: float = 1.0, activation=nn.ReLU,
                 free_bits: float = 0.0, ar_hidden: int = 0):
        super().__init__(shape, latent_dim, hidden, "bernoulli", 1.0, beta, activation, free_bits)
        n = math.prod(self.shape)
        self.ar_hidden = int(ar_hidden)
        self.ar_weight = nn.Parameter(torch.zeros(n, n))
        self.register_buffer("ar_mask", torch.tril(torch.ones(n, n), diagonal=-1), persistent=False)
        if self.ar_hidden:
            deg = torch.arange(self.ar_hidden) % (n - 1) + 1          # hidden degrees 1 .. n-1
            pix = torch.arange(1, n + 1)                                # pixel i has degree i
            self.ar_in = nn.Linear(n, self.ar_hidden)
            self.ar_out = nn.Linear(self.ar_hidden, n, bias=False)
            self.ar_z = nn.Linear(latent_dim, self.ar_hidden)
            self.register_buffer("ar_in_mask", (deg[:, None] >= pix[None, :]).float(), persistent=False)
            self.register_buffer("ar_out_mask", (pix[:, None] > deg[None, :]).float(), persistent=False)

    def decode(self, z: torch.Tensor, y=None) -> AutoregressiveBernoulli:
        context = self.decoder(z)
        h_z = self.ar_z(z) if self.ar_hidden else None

        def logit_fn(x_flat):
            out = context + x_flat @ (self.ar_weight * self.ar_mask).T
            if self.ar_hidden:
                h = torch.relu(F.linear(x_flat, self.ar_in.weight * self.ar_in_mask, self.ar_in.bias) + h_z)
                out = out + F.linear(h, self.ar_out.weight * self.ar_out_mask)
            return out

        return AutoregressiveBernoulli(logit_fn, len(z), self.shape, z.device)
