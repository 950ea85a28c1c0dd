"""Figures of lesson 10 (the two-stage super-resolution VAE): plotting plumbing kept off the slides."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ..plots import LINE_COLORS, PALETTE, show_images

__all__ = ["blow_up", "show_rows", "show_low_high_pairs", "show_components", "plot_kl_bound_1d", "kl_to_mixture_1d"]


def blow_up(y: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour enlargement of low-resolution images, so that they show pixel blocks beside x."""
    return F.interpolate(y.float().cpu(), size=tuple(size), mode="nearest")


def show_rows(rows: dict, title: str = "", width: float = 12.0, ax=None):
    """One row of images per entry of ``rows`` (label -> N x C x H x W, same N and size), labels on the left."""
    labels, images = list(rows), [r.detach().float().cpu().clamp(0, 1) for r in rows.values()]
    n = len(images[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(width, width / n * len(images) + 0.8))
    show_images(torch.cat(images), nrow=n, ax=ax, title=title)
    h = images[0].shape[-2] + 1
    ax.set_yticks([h * (i + 0.5) for i in range(len(labels))])
    ax.set_yticklabels(labels, fontsize=12)
    ax.title.set_fontsize(14)
    ax.figure.tight_layout()
    return ax.figure, ax


def show_low_high_pairs(y: torch.Tensor, x: torch.Tensor, title: str = "", width: float = 12.0):
    """Generated pairs: the low-resolution y (enlarged) above the high-resolution x decoded from it."""
    return show_rows({"y (low res.)": blow_up(y, x.shape[-2:]), "x (high res.)": x}, title=title, width=width)


def kl_to_mixture_1d(m: float, s: float, weights, means, scales, n_grid: int = 20001) -> float:
    """KL(N(m, s^2) || sum_k w_k N(means_k, scales_k^2)) in 1-D, by quadrature on a fine grid (float64)."""
    u = torch.linspace(m - 12 * s, m + 12 * s, n_grid, dtype=torch.float64)
    q = torch.distributions.Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
    w = torch.as_tensor(weights, dtype=torch.float64)
    comps = torch.distributions.Normal(torch.as_tensor(means, dtype=torch.float64),
                                       torch.as_tensor(scales, dtype=torch.float64))
    log_p = torch.logsumexp(w.log() + comps.log_prob(u[:, None]), dim=1)
    log_q = q.log_prob(u)
    return float(torch.trapezoid(log_q.exp() * (log_q - log_p), u))


def plot_kl_bound_1d(ms, exact, bound, means, title: str = "", ax=None, tight=None):
    """The exact KL to a two-component mixture and the convexity bound (and, if given, the tighter bound
    -log sum_k w_k exp(-KL_k)), as the posterior mean moves."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(ms, bound, color=LINE_COLORS[1], lw=2.5, label=r"bound $\sum_k w_k\,\mathrm{KL}(q\,\|\,p_k)$")
    if tight is not None:
        ax.plot(ms, tight, color=LINE_COLORS[2], lw=2.5, ls="--",
                label=r"tighter $-\log\sum_k w_k e^{-\mathrm{KL}(q\,\|\,p_k)}$")
    ax.plot(ms, exact, color=LINE_COLORS[0], lw=2.5, label=r"exact $\mathrm{KL}(q\,\|\,\sum_k w_k p_k)$")
    for mu in means:
        ax.axvline(mu, color=PALETTE["black"], ls=":", lw=1)
    ax.set_xlabel("mean of q", fontsize=13)
    ax.set_ylabel("nats", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.set_title(title, fontsize=13)
    ax.legend(fontsize=12)
    ax.set_ylim(bottom=0)
    return ax


def show_components(images_per_component: list, weights, components=None, title: str = "", ax=None):
    """One row per mixture component (its decoded samples), labelled with the component's index and weight."""
    components = range(len(weights)) if components is None else components
    rows = {f"k={k}, w={float(w):.2f}": imgs for k, imgs, w in zip(components, images_per_component, weights)}
    return show_rows(rows, title=title, ax=ax)

