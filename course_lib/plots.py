"""Figures the lessons share: image grids, reconstructions, latent scatters, loss curves.

Every function draws on a given matplotlib ``ax`` (or makes a new figure), gives the
figure a title and labelled axes, and uses colour-blind-safe colours: ``PALETTE`` (Okabe &
Ito 2008) for lines, ``CLASS_COLORS`` (Petroff 2021, the ten-colour sequence matplotlib ships
as the ``petroff10`` style, chosen for readers with colour-vision deficiencies) for the ten
digit classes, viridis/cividis for continuous values. Image grids have no ticks.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
import numpy as np
import torch

__all__ = ["image_grid", "show_images", "show_reconstructions", "latent_scatter", "latent_scatters", "loss_curves",
           "decode_grid", "CLASS_CMAP", "CLASS_COLORS", "PALETTE", "IMAGE_CMAP"]

# Okabe-Ito: eight colours told apart with every common colour-vision deficiency.
PALETTE = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
           "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
LINE_COLORS = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")]
# Petroff (2021), "Accessible color sequences for data visualization": ten classes.
CLASS_COLORS = ["#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6",
                "#a96b59", "#e76300", "#b9ac70", "#717581", "#92dadd"]
CLASS_CMAP = ListedColormap(CLASS_COLORS, name="course_classes")
IMAGE_CMAP = "gray_r"


def _to_numpy_images(images) -> np.ndarray:
    if torch.is_tensor(images):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:  # N x H x W
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape N x C x H x W, got {images.shape}.")
    return images


def image_grid(images, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile N x C x H x W images into one H' x W' (x 3) array, ``nrow`` images per row."""
    images = _to_numpy_images(images)
    n, c, h, w = images.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol_rows = int(math.ceil(n / nrow))
    grid = np.ones((c, ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    grid *= 0.5
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid[0] if c == 1 else np.transpose(grid, (1, 2, 0))


def show_images(images, nrow: int | None = None, title: str = "", ax=None, cmap: str = IMAGE_CMAP):
    """Show a batch of images as one grid without ticks; returns the axes."""
    if ax is None:
        n = len(images)
        nrow_ = nrow or int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / nrow_))
        _, ax = plt.subplots(figsize=(min(12, 0.9 * nrow_ + 1), min(9, 0.9 * rows + 1)))
    ax.imshow(image_grid(images, nrow), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return ax


def show_reconstructions(x, x_hat, n: int = 10, title: str = "Inputs (top) and reconstructions (bottom)", ax=None):
    """Inputs in the first row, their reconstructions in the second."""
    x, x_hat = _to_numpy_images(x)[:n], _to_numpy_images(x_hat)[:n]
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 1.0 * n + 1), 2.6))
    return show_images(np.concatenate([x, x_hat]), nrow=len(x), title=title, ax=ax)


def latent_scatter(z, labels=None, title: str = "Latent codes", ax=None, classes=None, s: float = 6):
    """Scatter of 2-D latent codes coloured by class (first two coordinates if d > 2)."""
    z = z.detach().cpu().numpy() if torch.is_tensor(z) else np.asarray(z)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=0.6, color="#0072B2")
    else:
        labels = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap=CLASS_CMAP, s=s, alpha=0.7, vmin=-0.5, vmax=9.5)
        cb = plt.colorbar(sc, ax=ax, ticks=range(10))
        if classes is not None:
            cb.ax.set_yticklabels(list(classes)[:10])
        cb.set_label("class")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return ax


def latent_scatters(panels: dict, labels=None, classes=None, s: float = 8, height: float = 4.6, width: float = 6.5):
    """One :func:`latent_scatter` per entry of ``panels`` ({title: codes}), side by side, each ``width`` inches
    wide; returns (fig, axes)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for ax, (title, z) in zip(axes[0], panels.items()):
        latent_scatter(z, labels, title=title, ax=ax, classes=classes, s=s)
    fig.tight_layout()
    return fig, axes[0]


def loss_curves(history, terms=None, ax=None, title: str | None = None, unit: str = "nats per example"):
    """One curve per loss term and split (train solid, validation dashed)."""
    terms = terms or [k for k in history.train if k != "gamma"]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for i, k in enumerate(terms):
        c = LINE_COLORS[i % len(LINE_COLORS)]
        if k in history.train:
            ep = np.arange(1, len(history.train[k]) + 1)
            ax.plot(ep, history.train[k], color=c, label=f"{k} (train)")
        if k in history.val:
            ep = np.arange(1, len(history.val[k]) + 1)
            ax.plot(ep, history.val[k], color=c, linestyle="--", label=f"{k} (val)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.set_title(title or "Loss terms per epoch")
    ax.legend(fontsize=12)
    return ax


@torch.no_grad()
def decode_grid(decode, extent: float = 3.0, n: int = 15, device=None, title: str = "Decoded latent grid", ax=None,
                values=None):
    """Decode a regular n x n grid of 2-D latent points (rows: z_2 from top, columns: z_1).

    ``decode``: a function from (m, 2) latent codes to (m, C, H, W) images in [0, 1].
    ``values``: the grid coordinates (default ``linspace(-extent, extent, n)``).
    """
    vals = torch.linspace(-extent, extent, n) if values is None else torch.as_tensor(values, dtype=torch.float32)
    z1, z2 = torch.meshgrid(vals, vals.flip(0), indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    if device is not None:
        z = z.to(device)
    images = decode(z)
    ax = show_images(images, nrow=len(vals), title=title, ax=ax)
    return ax
