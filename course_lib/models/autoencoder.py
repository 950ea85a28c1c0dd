"""Deterministic autoencoders (lesson 1): H = D o E, trained to reconstruct x.

loss: ||D(E(x)) - x|| summed over pixels, averaged over the batch (MSE, MAE or BCE).
With ``noise > 0`` it is a denoising autoencoder: it reconstructs the clean x
from x_tilde = x + noise * eps, eps ~ N(0, I) (clipped to [0, 1]).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..losses import reconstruction_error
from .layers import check_input, mlp

__all__ = ["Autoencoder", "ConvAutoencoder"]


class _AEBase(nn.Module):
    def __init__(self, shape, latent_dim: int, recon: str, noise: float):
        super().__init__()
        if recon not in ("mse", "mae", "bce"):
            raise ValueError(f"unknown reconstruction loss {recon!r}; choose 'mse', 'mae' or 'bce'.")
        self.shape = tuple(shape)
        self.latent_dim = latent_dim
        self.recon = recon
        self.noise = float(noise)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """x_tilde = clip(x + noise * eps, 0, 1)."""
        if self.noise <= 0:
            return x
        return (x + self.noise * torch.randn_like(x)).clamp(0.0, 1.0)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """D(E(x)) as an image in [0, 1]."""
        out = self.decode(self.encode(x))
        return torch.sigmoid(out) if self.recon == "bce" else out

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latent codes into images in [0, 1]."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.recon == "bce" else out.clamp(0, 1)

    def loss(self, x: torch.Tensor, y=None) -> dict:
        check_input(x, self.shape, type(self).__name__)
        out = self.decode(self.encode(self.corrupt(x) if self.training else x))
        recon = reconstruction_error(out, x, self.recon).mean()
        return {"loss": recon, "recon": recon}


class Autoencoder(_AEBase):
    """A fully connected autoencoder R^n -> R^d -> R^n.

    With ``recon="bce"`` the decoder outputs logits; use :meth:`reconstruct` for images.
    """

    def __init__(self, shape, latent_dim: int = 2, hidden=(256, 128), recon: str = "bce", noise: float = 0.0):
        super().__init__(shape, latent_dim, recon, noise)
        n = math.prod(self.shape)
        self.encoder = mlp([n, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), n])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = E(x)"""
        return self.encoder(x.reshape(len(x), -1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = D(z) (logits when the loss is BCE)"""
        return self.decoder(z).reshape(len(z), *self.shape)


class ConvAutoencoder(_AEBase):
    """A convolutional autoencoder: two stride-2 convolutions down, two transposed convolutions up.

    Works for any image whose height and width are multiples of 4 (8x8 digits, 28x28 MNIST).
    """

    def __init__(self, shape, latent_dim: int = 16, channels=(32, 64), recon: str = "bce", noise: float = 0.0):
        super().__init__(shape, latent_dim, recon, noise)
        c, h, w = self.shape
        if h % 4 or w % 4:
            raise ValueError(f"ConvAutoencoder needs height and width divisible by 4, got {h}x{w}.")
        c1, c2 = channels
        self.inner = (c2, h // 4, w // 4)
        flat = c2 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat), nn.ReLU(), nn.Unflatten(1, self.inner),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),
        )

    def encode(self, x):
        """z = E(x)"""
        return self.encoder(x)

    def decode(self, z):
        """x_hat = D(z) (logits when the loss is BCE)"""
        return self.decoder(z)
