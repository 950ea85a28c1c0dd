"""Figures of lesson 1 (autoencoders), so that each code slide shows the idea in a few lines.

Every function draws one titled figure with labelled axes (fonts of at least 12 pt), the
Okabe-Ito ``PALETTE`` for lines and bars and ``CLASS_CMAP`` for digit classes, and returns the
matplotlib ``Figure``. The numbers they show are computed by the lesson, which asserts them.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plots import IMAGE_CMAP, PALETTE, latent_scatter, latent_scatters, show_images

__all__ = ["pixel_penalties", "penalty_maps", "model_bars", "code_histograms", "box_grid_codes",
           "code_planes", "latent_box", "confidence_bars", "generator_scores"]

FONT = 12


def _np(t):
    return t.detach().float().cpu().numpy() if torch.is_tensor(t) else np.asarray(t, dtype=np.float32)


def pixel_penalties(bce, targets=(1.0, 0.5)):
    """Penalty of one pixel as a function of the prediction x_hat, for each true value in ``targets``.

    ``bce(logits, x)``: the per-pixel binary cross-entropy from logits.
    """
    x_hat = torch.linspace(0.005, 0.995, 199)
    fig, axes = plt.subplots(1, len(targets), figsize=(12, 4.2), sharey=True)
    for ax, target in zip(np.atleast_1d(axes), targets):
        t = torch.full_like(x_hat, target)
        ax.plot(x_hat, (x_hat - t) ** 2, color=PALETTE["blue"], lw=2.5, label=r"MSE $(x-\hat x)^2$")
        ax.plot(x_hat, (x_hat - t).abs(), color=PALETTE["orange"], lw=2.5, ls="--", label=r"MAE $|x-\hat x|$")
        ax.plot(x_hat, bce(torch.logit(x_hat), t), color=PALETTE["green"], lw=2.5, ls="-.", label="BCE")
        ax.axvline(target, color="grey", lw=0.8)
        ax.set_title(f"One pixel whose true value is x = {target}", fontsize=FONT + 1)
        ax.set_xlabel(r"prediction $\hat x$", fontsize=FONT)
        ax.set_ylim(0, 3)
        ax.tick_params(labelsize=FONT)
        ax.legend(fontsize=FONT)
    np.atleast_1d(axes)[0].set_ylabel("loss of the pixel", fontsize=FONT)
    fig.tight_layout()
    return fig


def penalty_maps(x, x_hat, maps: dict):
    """Rows: the images ``x``, their reconstructions ``x_hat``, then one heat map per entry of ``maps``."""
    rows = [("x", x, 1.0), ("x_hat", x_hat, 1.0)] + [(k, v, None) for k, v in maps.items()]
    n = len(x)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 2, 1.35 * len(rows) + 0.8), squeeze=False)
    for r, (name, imgs, hi) in enumerate(rows):
        imgs = _np(imgs)
        vmax = hi if hi is not None else float(imgs.max())
        for c in range(n):
            ax = axes[r, c]
            im = ax.imshow(imgs[c, 0], cmap=IMAGE_CMAP if r < 2 else "viridis", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=FONT)
        if r >= 2:
            cb = fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02, pad=0.01)
            cb.ax.tick_params(labelsize=10)
    fig.suptitle("Where each loss puts its penalty, pixel by pixel", fontsize=FONT + 2)
    return fig


def model_bars(table: dict, latent_dim: int):
    """Two bar charts from ``{name: (parameters, test error)}``: parameters (log scale) and error."""
    names = list(table)
    colors = [PALETTE[k] for k in ("sky", "blue", "orange", "green", "purple")][:len(names)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    axes[0].barh(names, [table[k][0] for k in names], color=colors)
    axes[0].set_xscale("log")
    axes[0].set_title("Number of parameters", fontsize=FONT + 1)
    axes[0].set_xlabel("parameters (log scale)", fontsize=FONT)
    axes[1].barh(names, [table[k][1] for k in names], color=colors)
    axes[1].set_title(f"Test reconstruction error, d = {latent_dim}", fontsize=FONT + 1)
    axes[1].set_xlabel("squared error per image", fontsize=FONT)
    axes[1].set_yticks([])
    for ax in axes:
        ax.tick_params(labelsize=FONT)
    fig.tight_layout()
    return fig


def code_histograms(codes, shown: int = 4):
    """Histograms of the first ``shown`` code coordinates against the N(0, 1) density."""
    codes = _np(codes)
    fig, axes = plt.subplots(1, shown, figsize=(3.2 * shown, 3.4), squeeze=False)
    lo, hi = min(float(codes[:, :shown].min()) - 1, -4), max(float(codes[:, :shown].max()) + 1, 4)
    grid = np.linspace(lo, hi, 400)
    for j, ax in enumerate(axes[0]):
        ax.hist(codes[:, j], bins=40, density=True, color=PALETTE["sky"], label="codes E(x)")
        ax.plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), color=PALETTE["vermillion"], lw=2,
                label="N(0, 1)")
        ax.set_xlim(lo, hi)
        ax.set_title(f"coordinate $z_{{{j + 1}}}$", fontsize=FONT + 1)
        ax.tick_params(labelsize=10)
    axes[0, 0].set_ylabel("density", fontsize=FONT)
    axes[0, 0].legend(fontsize=FONT)
    fig.suptitle("Codes of the training images, coordinate by coordinate, vs the N(0, 1) we sampled",
                 fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def box_grid_codes(lo, hi, n: int = 15) -> torch.Tensor:
    """An n x n grid of 2-D codes over the box [lo_1, hi_1] x [lo_2, hi_2], row by row from the top
    (z_2 decreasing), z_1 increasing along a row: the order :func:`latent_box` tiles the images in."""
    lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
    z1 = torch.linspace(float(lo[0]), float(hi[0]), n)
    z2 = torch.linspace(float(hi[1]), float(lo[1]), n)
    a, b = torch.meshgrid(z1, z2, indexing="xy")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def code_planes(panels: dict, data):
    """Side by side, the 2-D codes of ``data``'s images by each method, coloured by digit class.

    ``panels``: {method name: (codes (N, 2), test squared error per image)}; ``data``: the images' dataset
    (its ``labels`` and ``classes``). The first panel's axes are named as PCA's components.
    """
    fig, axes = latent_scatters({f"{name} (test MSE {mse:.2f})": codes for name, (codes, mse) in panels.items()},
                                data.labels, data.classes, s=10, height=4.8, width=6)
    axes[0].set(xlabel="first principal component", ylabel="second principal component")
    fig.suptitle("Test images in a 2-D code space, coloured by digit class")
    fig.tight_layout()
    return fig


def latent_box(codes, labels, draws, far, lo, hi, grid_images, classes=None):
    """Left: 2-D training codes by class, random draws in their box (open circles far from every code,
    crosses near one). Right: the decoder on a regular grid over the same box (``grid_images`` from
    :func:`box_grid_codes`)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    latent_scatter(codes, labels, ax=axes[0], classes=classes, s=4,
                   title="Training codes, and uniform draws in their box")
    d, far = _np(draws), np.asarray(_np(far), dtype=bool)
    axes[0].scatter(d[~far, 0], d[~far, 1], marker="x", s=14, lw=0.9, color=PALETTE["black"],
                    label="draw near a code")
    axes[0].scatter(d[far, 0], d[far, 1], marker="o", s=16, facecolors="none", lw=0.9,
                    edgecolors=PALETTE["black"], label="draw far from every code")
    axes[0].legend(fontsize=FONT, loc="lower left", framealpha=0.9)
    lo, hi = _np(lo), _np(hi)
    axes[0].set_xlim(lo[0], hi[0])
    axes[0].set_ylim(lo[1], hi[1])
    n = int(round(math.sqrt(len(grid_images))))
    show_images(grid_images, nrow=n, ax=axes[1],
                title=f"Decoder on a {n} x {n} grid over the same box")
    for ax in axes:
        ax.title.set_fontsize(FONT + 1)
    fig.tight_layout()
    return fig


def confidence_bars(values: dict, title: str):
    """Horizontal bars: mean classifier confidence (max probability) of each set of decoded images."""
    names = list(values)
    colors = [PALETTE[k] for k in ("blue", "green", "orange", "vermillion", "purple")][:len(names)]
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(names) + 1.4))
    ax.barh(names, [values[k] for k in names], color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean max-probability of the course classifier", fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    fig.tight_layout()
    return fig


def generator_scores(scores: dict, title: str):
    """Two bar panels, one bar per generator: classifier confidence and class entropy (nats, log 10 marked).

    ``scores``: {name: (confidence, class entropy)}.
    """
    names = list(scores)
    colours = [PALETTE[k] for k in ("blue", "orange", "vermillion", "green", "purple", "sky")][: len(names)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for j, (ax, label) in enumerate(zip(axes, ["classifier confidence", "class entropy (nats)"])):
        vals = [scores[n][j] for n in names]
        ax.set_xlim(0, 1.0 if j == 0 else 2.5)
        ax.barh(range(len(names)), vals, color=colours)
        for i, v in enumerate(vals):
            ax.text(v - 0.02 * ax.get_xlim()[1], i, f"{v:.2f}", va="center", ha="right", color="white",
                    fontsize=FONT, fontweight="bold")
        ax.set_yticks(range(len(names)), names if j == 0 else [""] * len(names), fontsize=FONT)
        ax.invert_yaxis()
        ax.set_xlabel(label, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    axes[1].axvline(math.log(10), color="black", ls="--", lw=1.2)
    axes[1].set_title("dashed: log 10 = 2.30 nats, 10 % per class", fontsize=FONT)
    axes[0].set_title("how digit-like (1: sure of one class)", fontsize=FONT)
    fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig
