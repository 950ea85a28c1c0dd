"""Models of the course. Each is an ``nn.Module`` with ``loss(x, y=None)`` returning named terms."""
from .autoencoder import Autoencoder, ConvAutoencoder
from .cvae import CVAE
from .layers import mlp
from .linear_gaussian import LinearGaussian
from .vae import VAE

__all__ = ["Autoencoder", "ConvAutoencoder", "VAE", "CVAE", "LinearGaussian", "mlp"]
