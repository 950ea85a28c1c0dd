r"""The conditional VAE (lesson 6; Sohn, Lee & Yan 2015), in the latent-variable model API of the course.

The condition y enters both networks **by concatenation** (seed 002, "Entraînement du VAE conditionnel"):

- ``encode(x, y)`` -> q_phi(z|x, y) = N(mu_phi([x, y]), diag sigma_phi([x, y])^2);
- ``decode(z, y)`` -> p_theta(x|z, y) = Bernoulli(logits = f_theta([z, y])) (or N(f_theta([z, y]), gamma^2 I)),
  whose ``log_prob(x)`` sums over pixels;
- ``prior`` -> p(z) = N(0, I), the same for every y (the seed's generation: choose y, draw z ~ p(z),
  concatenate [y, z], decode); with ``class_prior=True`` a learned prior per condition,
  p(z | y) = N(m_y, I) with ``m_y = y @ prior_means`` (one learned mean per class; Sohn et al.'s prior
  network in its simplest form), given by ``conditional_prior(y)``;
- ``loss(x, y)`` -> the negative conditional ELBO, in nats per example:

  .. math::

      -\mathrm{ELBO}(x \mid y) = \mathbb{E}_{q_\phi(z|x,y)}[-\log p_\theta(x \mid z, y)]
                                + \mathrm{KL}(q_\phi(z \mid x, y) \,\|\, p(z))
                                \;\ge\; -\log p_\theta(x \mid y),

  with one reparameterized sample and the closed-form Gaussian KL.

The condition ``y`` can be

- a tensor of integer labels, shape ``(batch,)``: one-hot encoded into ``num_classes`` numbers;
- a float tensor whose examples hold ``num_classes`` numbers, e.g. ``(batch, num_classes)`` soft labels
  (a mixture of two classes) or ``(batch, 1, 14, 28)`` pixels (the upper half of a digit, with
  ``num_classes=392``): flattened and used as is.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from ..losses import bernoulli_nll, gaussian_kl
from .layers import check_input, mlp

__all__ = ["CVAE", "DeterministicPredictor", "condition_vector", "soft_label"]


def condition_vector(y, num_classes: int, batch: int | None = None, what: str = "CVAE") -> torch.Tensor:
    """The vector the networks see for the condition y: one-hot(y) for integer labels, y flattened otherwise.

    Returns a float tensor of shape ``(batch, num_classes)``.
    """
    if y is None:
        raise ValueError(f"{what} is conditional: pass the condition y (labels or a tensor of "
                         f"{num_classes} numbers per example), e.g. model.loss(x, y).")
    if not torch.is_tensor(y):
        raise TypeError(f"{what} expects y as a torch.Tensor, got {type(y).__name__}; use torch.as_tensor(y).")
    if not y.is_floating_point():
        if y.ndim != 1:
            raise ValueError(f"{what}: integer labels must have shape (batch,), got {tuple(y.shape)}.")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(f"{what}: labels must lie in 0..{num_classes - 1}, got values from "
                             f"{int(y.min())} to {int(y.max())}; build the model with the right num_classes.")
        out = F.one_hot(y.long(), num_classes).float()
    else:
        out = y.reshape(len(y), -1).float()
        if out.shape[1] != num_classes:
            raise ValueError(f"{what}: a float condition must hold {num_classes} numbers per example "
                             f"(soft labels or a flattened condition), got shape {tuple(y.shape)}.")
    if batch is not None and len(out) != batch:
        raise ValueError(f"{what}: {len(out)} conditions for a batch of {batch}; pass one y per example.")
    return out


def soft_label(a: int, b: int, t: float, num_classes: int = 10) -> torch.Tensor:
    """The mixed condition (1 - t) * one_hot(a) + t * one_hot(b), shape ``(num_classes,)``.

    ``t = 0`` is exactly the hard label ``a`` and ``t = 1`` exactly ``b`` (the ends of the lesson's slider).
    """
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"the mixing weight t must lie in [0, 1], got {t}.")
    for c in (a, b):
        if not 0 <= int(c) < num_classes:
            raise ValueError(f"class {c} is not in 0..{num_classes - 1}.")
    y = torch.zeros(num_classes)
    y[int(a)] += 1.0 - float(t)
    y[int(b)] += float(t)
    return y


class CVAE(nn.Module):
    """A fully connected conditional VAE: encoder [x, y] -> (mu, log sigma^2), decoder [z, y] -> logits.

    ``CVAE(shape=(1, 28, 28), num_classes=10, latent_dim=16, hidden=(256,))``.
    """

    def __init__(self, shape, num_classes: int, latent_dim: int = 16, hidden=(256,),
                 likelihood: str = "bernoulli", gamma: float = 1.0, activation=nn.ReLU, class_prior: bool = False):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"unknown likelihood {likelihood!r}; choose 'bernoulli' or 'gaussian'.")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}.")
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}.")
        self.shape = tuple(shape)
        self.num_classes = int(num_classes)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.gamma = float(gamma)
        n = math.prod(self.shape)
        self.encoder = mlp([n + self.num_classes, *hidden, 2 * self.latent_dim], activation)
        self.decoder = mlp([self.latent_dim + self.num_classes, *reversed(hidden), n], activation)
        self.register_buffer("_zero", torch.zeros(self.latent_dim), persistent=False)
        # p(z | y) = N(m_y, I): one learned mean per class (rows), m_y = condition vector @ prior_means
        self.prior_means = nn.Parameter(torch.zeros(self.num_classes, self.latent_dim)) if class_prior else None

    # --- the latent-variable model API ---------------------------------------------------
    def _y(self, y, batch: int) -> torch.Tensor:
        return condition_vector(y, self.num_classes, batch, type(self).__name__).to(self._zero.device)

    def encoder_params(self, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
        """mu_phi([x, y]) and log sigma_phi([x, y])^2, each (batch, latent_dim)."""
        check_input(x, self.shape, type(self).__name__)
        h = torch.cat([x.reshape(len(x), -1), self._y(y, len(x))], dim=1)   # concatenation [x, y]
        mu, logvar = self.encoder(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor, y) -> Independent:
        """q_phi(z|x, y) = N(mu_phi([x, y]), diag exp(logvar_phi([x, y])))"""
        mu, logvar = self.encoder_params(x, y)
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def decoder_logits(self, z: torch.Tensor, y) -> torch.Tensor:
        """f_theta([z, y]) reshaped to images (batch, *shape): logits (Bernoulli) or means (Gaussian)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode expects codes of shape (batch, {self.latent_dim}), got {tuple(z.shape)}.")
        h = torch.cat([z, self._y(y, len(z))], dim=1)                      # concatenation [z, y]
        return self.decoder(h).reshape(len(z), *self.shape)

    def decode(self, z: torch.Tensor, y) -> Independent:
        """p_theta(x|z, y), a distribution over images whose log_prob sums over pixels."""
        out = self.decoder_logits(z, y)
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=out, validate_args=False), len(self.shape))
        return Independent(Normal(out, torch.full_like(out, self.gamma), validate_args=False), len(self.shape))

    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I), whatever y (with ``class_prior=True`` the prior depends on y: ``conditional_prior``)."""
        return Independent(Normal(self._zero, torch.ones_like(self._zero)), 1)

    def prior_mean(self, y, batch: int) -> torch.Tensor:
        """m_y of each example, (batch, latent_dim): zeros without a class prior."""
        if self.prior_means is None:
            return self._zero.expand(batch, -1)
        return self._y(y, batch) @ self.prior_means

    def conditional_prior(self, y) -> Independent:
        """p(z | y) = N(m_y, I), batch shape (batch,) (N(0, I) for every y without a class prior)."""
        m = self.prior_mean(y, len(condition_vector(y, self.num_classes, what=type(self).__name__)))
        return Independent(Normal(m, torch.ones_like(m)), 1)

    # --- training ------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative conditional ELBO, one reparameterized sample, nats per example."""
        mu, logvar = self.encoder_params(x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)     # reparameterization trick
        if self.likelihood == "bernoulli":
            recon = bernoulli_nll(self.decoder_logits(z, y), x).mean()
        else:
            recon = -self.decode(z, y).log_prob(x).mean()
        kl = gaussian_kl(mu - self.prior_mean(y, len(x)), logvar).mean()   # KL(q || N(m_y, I)): shift by m_y
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    # --- using a trained model -----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, y, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of n draws z ~ p(z) with condition y: an int (n images of that class), or a
        tensor of n labels / n conditions (one image each)."""
        if isinstance(y, int) or (torch.is_tensor(y) and y.ndim == 0 and not y.is_floating_point()):
            y = torch.full((int(n),), int(y), dtype=torch.long)
        elif torch.is_tensor(y) and y.is_floating_point() and y.ndim == 1 and len(y) == self.num_classes:
            y = y.expand(int(n), -1)     # one soft label for all n images
        if not torch.is_tensor(y) or len(y) != int(n):
            raise ValueError(f"sample(n, y): y must be an int class or a tensor of n = {n} labels/conditions, "
                             f"got {type(y).__name__}{'' if not torch.is_tensor(y) else tuple(y.shape)}.")
        y = y.to(self._zero.device)
        z = torch.randn(int(n), self.latent_dim, generator=generator).to(self._zero.device)
        return self.decode(z + self.prior_mean(y, int(n)), y).mean

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y) -> torch.Tensor:
        """Decoder means for given latent codes and conditions."""
        return self.decode(z, y).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y) -> torch.Tensor:
        """The decoder's mean at the posterior mean: E[x | z = mu_phi(x, y), y]."""
        return self.decode(self.encode(x, y).mean, y).mean


class DeterministicPredictor(nn.Module):
    r"""A network y -> pixel probabilities, no latent variable: p_theta(x|y) = prod_i Bernoulli(x_i; f_theta(y)_i).

    Trained by maximum likelihood (``loss``: -log p_theta(x|y), nats per example, the binary
    cross-entropy summed over pixels). Its best output is the per-pixel mean of the possible x
    given y: where several completions are possible, a blur of them.
    """

    def __init__(self, shape, cond_dim: int, hidden=(256,), activation=nn.ReLU):
        super().__init__()
        self.shape = tuple(shape)
        self.cond_dim = int(cond_dim)
        self.net = mlp([self.cond_dim, *hidden, math.prod(self.shape)], activation)

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(condition_vector(y, self.cond_dim, what=type(self).__name__)).reshape(len(y), *self.shape)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|y), one value per example (exact: there is no latent variable)."""
        check_input(x, self.shape, type(self).__name__)
        return -bernoulli_nll(self.logits(y), x)

    def loss(self, x: torch.Tensor, y=None) -> dict:
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll, "nll": nll}

    @torch.no_grad()
    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """The predicted pixel probabilities (batch, *shape)."""
        return torch.sigmoid(self.logits(y))
