"""Loss terms of the course, each in nats (or squared units) **per example**.

Every function returns one value per example (a tensor of shape ``(batch,)``),
summed over pixels or latent dimensions; models average over the batch. So a
table or a curve never mixes sums and means.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "per_example_sum",
    "reconstruction_error",
    "bernoulli_nll",
    "gaussian_nll",
    "gaussian_kl",
    "gaussian_kl_general",
    "optimal_gamma",
]

LOG_2PI = math.log(2 * math.pi)


def per_example_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the first: (batch, ...) -> (batch,)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}; "
                         "reshape the decoder output to the input's shape (x_hat.view_as(x)).")


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Autoencoder reconstruction losses, summed over pixels, one value per example.

    - ``"mse"``: sum_i (x_i - x_hat_i)^2
    - ``"mae"``: sum_i |x_i - x_hat_i|
    - ``"bce"``: -sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)], with ``x_hat`` given as
      **logits** (numerically stable)
    """
    _same_shape(x_hat, x, "reconstruction_error")
    if kind == "mse":
        return per_example_sum((x_hat - x) ** 2)
    if kind == "mae":
        return per_example_sum((x_hat - x).abs())
    if kind == "bce":
        return per_example_sum(F.binary_cross_entropy_with_logits(x_hat, x, reduction="none"))
    raise ValueError(f"unknown reconstruction loss {kind!r}; choose 'mse', 'mae' or 'bce'.")


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p_theta(x|z) for a Bernoulli decoder with the given logits, summed over pixels.

    -log p(x|z) = -sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))]
    """
    _same_shape(logits, x, "bernoulli_nll")
    return per_example_sum(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor, log_gamma: torch.Tensor | float = 0.0) -> torch.Tensor:
    """-log p_theta(x|z) for the Gaussian decoder N(x_hat, gamma^2 I) (seed 003, eq. 3, with its constant):

    -log p(x|z) = ||x - x_hat||^2 / (2 gamma^2) + k log gamma + (k / 2) log(2 pi),

    k the number of pixels. ``log_gamma`` is a scalar or broadcasts against ``x``.
    """
    _same_shape(x_hat, x, "gaussian_nll")
    log_gamma = torch.as_tensor(log_gamma, dtype=x.dtype, device=x.device)
    per_pixel = 0.5 * (x - x_hat) ** 2 * torch.exp(-2 * log_gamma) + log_gamma + 0.5 * LOG_2PI
    return per_example_sum(per_pixel.expand_as(x))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q_phi(z|x) || p(z)) for q = N(mu, diag(sigma^2)) and p = N(0, I), summed over latent dims:

    KL = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2)

    (the slides' 1/2 (tr(Sigma) + mu^T mu - d - log det Sigma)). ``logvar`` = log sigma^2.
    """
    _same_shape(mu, logvar, "gaussian_kl")
    return 0.5 * per_example_sum(logvar.exp() + mu ** 2 - 1.0 - logvar)


def gaussian_kl_general(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, diag e^{logvar_q}) || N(mu_p, diag e^{logvar_p})), summed over dims:

    KL = 1/2 sum_j [logvar_p - logvar_q + (e^{logvar_q} + (mu_q - mu_p)^2) / e^{logvar_p} - 1]
    """
    return 0.5 * per_example_sum(
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1.0
    )


def optimal_gamma(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The gamma that minimises the Gaussian NLL for fixed reconstructions: gamma^2 = MSE (per pixel)."""
    _same_shape(x_hat, x, "optimal_gamma")
    return ((x - x_hat) ** 2).mean().sqrt()
