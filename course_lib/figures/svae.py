"""Figures of lesson 9 (the hyperspherical VAE): plotting plumbing kept off the slides."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plots import CLASS_CMAP, LINE_COLORS, PALETTE

__all__ = ["show_latents", "plot_gradient_bias", "plot_acceptance", "plot_mnist_latents", "plot_sphere_samples",
           "plot_envelope", "show_walk"]


def show_latents(codes: dict, samples: dict, colour, title_suffix: str = "", height: float = 3.8):
    """One panel per model: samples z ~ q(z|x) coloured by ``colour`` (the true angle) and the curve of the centres.

    ``codes`` and ``samples`` map a model name to an N x 2 tensor; for "AE" both are the deterministic codes. The
    S-VAE's panel gets the unit circle dotted.
    """
    fig, axes = plt.subplots(1, len(codes), figsize=(height * len(codes), height))
    for ax, name in zip(np.atleast_1d(axes), codes):
        z, c = samples[name].detach().cpu(), codes[name].detach().cpu()
        ax.scatter(z[:, 0], z[:, 1], c=colour, cmap="twilight", s=8, label="z ~ q(z|x)" if name != "AE" else None)
        ax.plot(c[:, 0], c[:, 1], color=PALETTE["black"], lw=1, label="centre of q(z|x)" if name != "AE" else "codes")
        if name == "S-VAE":
            ax.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color=PALETTE["vermillion"]))
        ax.set(title=name + title_suffix, xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
        ax.legend(loc="lower right", fontsize=10)
    fig.tight_layout()
    plt.show()


def plot_gradient_bias(table, labels=None):
    """Relative error of the two kappa-gradient estimators at each (m, kappa), with 2 s.e. bars.

    ``table`` rows: (m, kappa, exact, implicit, s.e. implicit, pathwise, s.e. pathwise); ``labels`` name the bars.
    """
    fig, ax = plt.subplots(figsize=(10, 3.6))
    rel = np.array([[(gi - ex) / ex, (gp - ex) / ex, 2 * si / ex, 2 * spw / ex] for _, _, ex, gi, si, gp, spw in table])
    xs = np.arange(len(table))
    ax.bar(xs - 0.2, rel[:, 0], 0.4, yerr=rel[:, 2], color=PALETTE["blue"], label="implicit (course_lib)")
    ax.bar(xs + 0.2, rel[:, 1], 0.4, yerr=rel[:, 3], color=PALETTE["vermillion"], label="pathwise term only")
    ax.axhline(0, color=PALETTE["black"], lw=0.8)
    ax.set(xticks=xs, xticklabels=labels or [f"m={m}, κ={k:g}" for m, k, *_ in table], ylabel="relative error",
           title=r"Estimated $\partial_\kappa E[f(\mu^\top z)]$ vs exact (± 2 s.e.)")
    ax.legend()
    plt.show()


def plot_acceptance(kappas, ms, rate, height: float = 3.6):
    """Acceptance rate of Wood's envelope, one curve per m (rows of ``rate``) against kappa (log scale)."""
    fig, ax = plt.subplots(figsize=(8, height))
    for i, m in enumerate(ms):
        ax.semilogx(kappas, rate[i], "o-", color=LINE_COLORS[i % len(LINE_COLORS)], label=f"m = {m}")
    ax.set(title="Wood's sampler: acceptance rate", xlabel=r"$\kappa$", ylabel="fraction accepted", ylim=(0.5, 1.02))
    ax.legend(ncol=3)
    plt.show()


def plot_mnist_latents(z_n, z_s, labels):
    """N-VAE posterior means (left) and S-VAE mean directions on S^1 (right) of test digits, coloured by class.

    On the right the radius is 1 + 0.06 x class, for visibility only (every direction has norm 1).
    """
    z_n, z_s, labels = z_n.detach().cpu(), z_s.detach().cpu(), torch.as_tensor(labels).cpu()
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8), layout="constrained")
    sc = axes[0].scatter(z_n[:, 0], z_n[:, 1], c=labels, cmap=CLASS_CMAP, vmin=-0.5, vmax=9.5, s=8)
    axes[0].set(title="N-VAE, d = 2: posterior means", xlabel="$z_1$", ylabel="$z_2$")
    r = 1 + 0.06 * labels
    axes[1].scatter(z_s[:, 0] * r, z_s[:, 1] * r, c=labels, cmap=CLASS_CMAP, vmin=-0.5, vmax=9.5, s=8)
    axes[1].set(title="S-VAE, d = 2: mean directions on $S^1$\n(radius 1 + 0.06 x class, for visibility)",
                xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
    fig.colorbar(sc, ax=axes, ticks=range(10), label="class")
    plt.show()


def plot_sphere_samples(z3, title: str = "", size: float = 4.6):
    """Points on the unit sphere S^2 (N x 3) over a light wireframe of the sphere."""
    fig = plt.figure(figsize=(size, size))
    ax = fig.add_subplot(projection="3d")
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 30), np.linspace(0, np.pi, 15))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.5)
    ax.scatter(*z3.detach().cpu().T.numpy(), s=6, color=PALETTE["blue"])
    ax.set_box_aspect((1, 1, 1))
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$", zlabel="$z_3$")
    plt.show()


def plot_envelope(w, target, envelope, title: str = "", height: float = 3.6):
    """Wood's envelope M r(w) (the scaled proposal density) over the target density p(w) of w = mu^T z."""
    fig, ax = plt.subplots(figsize=(8, height))
    ax.fill_between(w, 0, target, color=PALETTE["blue"], alpha=0.35, label="target p(w)")
    ax.plot(w, target, color=PALETTE["blue"], lw=1.5)
    ax.plot(w, envelope, color=PALETTE["vermillion"], lw=2, ls="--", label="envelope M r(w)")
    ax.set(title=title, xlabel=r"$w = \mu^\top z$", ylabel="density", xlim=(w[0], w[-1]), ylim=(0, None))
    ax.legend()
    fig.tight_layout()
    plt.show()


def show_walk(rows: dict, size: float = 0.9):
    """One row of 28x28 images per entry of ``rows`` (name -> N x 1 x 28 x 28), no ticks, the name on the left."""
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows) + 0.4), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].detach().cpu().reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=12)
    fig.tight_layout()
    plt.show()
