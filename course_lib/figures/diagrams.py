"""Diagrams the lessons draw with matplotlib (lesson 3): no image files, the same colours as the figures.

- :func:`vae_schematic`: x -> encoder q_phi -> (mu, sigma) -> sample z -> decoder -> p_theta(x|z);
- :func:`reparameterization_graph`: the sampling step as a computation graph, before (z ~ N(mu, sigma^2),
  a random node the gradient cannot cross) and after the trick (z = mu + sigma * eps, a deterministic node;
  eps is a random *input*).

Each function returns ``(fig, ax)`` and the artists it drew in ``ax.course_nodes`` (name -> patch), so a
test can check what is on the picture without looking at pixels.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Circle

from ..plots import PALETTE

__all__ = ["vae_schematic", "reparameterization_graph", "DETERMINISTIC", "RANDOM", "PARAMETER"]

# Okabe-Ito colours (colour-blind safe) for the three kinds of node
DETERMINISTIC = PALETTE["sky"]  # sky blue: computed from its inputs
RANDOM = PALETTE["orange"]        # orange: drawn at random
PARAMETER = PALETTE["green"]     # green: networks with learned weights
_FONT = 13


def _box(ax, name, xy, text, color, w=1.6, h=0.8, fontsize=_FONT):
    x, y = xy
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04,rounding_size=0.12",
                           fc=color, ec="black", lw=1.5, alpha=0.9)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    ax.course_nodes[name] = patch
    return patch


def _circle(ax, name, xy, text, color, r=0.45, fontsize=_FONT):
    patch = Circle(xy, r, fc=color, ec="black", lw=1.5, alpha=0.9)
    ax.add_patch(patch)
    ax.text(*xy, text, ha="center", va="center", fontsize=fontsize)
    ax.course_nodes[name] = patch
    return patch


def _arrow(ax, a, b, color="black", style="-|>", ls="-", lw=1.8, rad=0.0, shrink=24):
    arr = FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=18, color=color, lw=lw, ls=ls,
                          connectionstyle=f"arc3,rad={rad}", shrinkA=shrink, shrinkB=shrink)
    ax.add_patch(arr)
    return arr


def _canvas(ax, figsize, xlim, ylim):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.axis("off")
    ax.course_nodes = {}
    return fig, ax


def vae_schematic(ax=None, figsize=(12, 3.4)):
    """The VAE of seed 001/004: x -> encoder -> (mu, sigma) -> z -> decoder -> p_theta(x|z), with the loss terms."""
    fig, ax = _canvas(ax, figsize, (-0.6, 13.2), (-1.9, 2.2))
    _box(ax, "x", (0.3, 0), "image\n$x$", "white", w=1.3)
    _box(ax, "encoder", (2.5, 0), "encoder\n$q_\\phi(z \\mid x)$", PARAMETER, w=2.0)
    _box(ax, "mu", (4.9, 0.55), "$\\mu_\\phi(x)$", DETERMINISTIC, w=1.5, h=0.65)
    _box(ax, "sigma", (4.9, -0.55), "$\\sigma_\\phi(x)$", DETERMINISTIC, w=1.5, h=0.65)
    _circle(ax, "z", (7.2, 0), "$z$", RANDOM, r=0.5)
    _box(ax, "decoder", (9.5, 0), "decoder\n$f_\\theta(z)$", PARAMETER, w=2.0)
    _box(ax, "px", (12.0, 0), "$p_\\theta(x \\mid z)$\n(pixel probs)", DETERMINISTIC, w=2.0)
    _arrow(ax, (0.3, 0), (2.5, 0), shrink=40)
    _arrow(ax, (2.5, 0), (4.9, 0.55), shrink=40)
    _arrow(ax, (2.5, 0), (4.9, -0.55), shrink=40)
    _arrow(ax, (4.9, 0.55), (7.2, 0), shrink=32)
    _arrow(ax, (4.9, -0.55), (7.2, 0), shrink=32)
    _arrow(ax, (7.2, 0), (9.5, 0), shrink=40)
    _arrow(ax, (9.5, 0), (12.0, 0), shrink=44)
    ax.text(7.2, 0.85, "sample\n$z \\sim \\mathcal{N}(\\mu, \\sigma^2)$", ha="center", va="bottom", fontsize=_FONT - 1)
    ax.text(4.9, -1.25, "KL$(q_\\phi(z \\mid x)\\,\\|\\,p(z))$", ha="center", va="top", fontsize=_FONT,
            color=PALETTE["vermillion"])
    ax.text(12.0, 0.75, "$-\\log p_\\theta(x \\mid z)$", ha="center", va="bottom", fontsize=_FONT,
            color=PALETTE["vermillion"])
    ax.text(9.5, -1.25, "loss = $-\\log p_\\theta(x \\mid z)$ + KL\n(nats per example)", ha="center", va="top",
            fontsize=_FONT)
    return fig, ax


def reparameterization_graph(ax=None, figsize=(12, 4.6)):
    """Two computation graphs side by side: sampling z directly (left) and z = mu + sigma * eps (right).

    Blue boxes are deterministic nodes, orange circles random ones; solid red arrows are the paths
    the gradient of the loss takes back to phi, the dashed grey arrow the one it cannot take.
    """
    fig, ax = _canvas(ax, figsize, (-0.5, 15.5), (-3.4, 2.9))
    grad = PALETTE["vermillion"]
    for dx, title in [(0.0, "before: $z$ is drawn"), (8.0, "after: $z = \\mu + \\sigma \\odot \\varepsilon$")]:
        ax.text(dx + 3.5, 2.75, title, ha="center", va="top", fontsize=_FONT + 1)
        _box(ax, f"phi{dx:g}", (dx + 0.6, 0), "$\\phi$", PARAMETER, w=1.0)
        _box(ax, f"mu{dx:g}", (dx + 2.6, 0.9), "$\\mu$", DETERMINISTIC, w=1.0, h=0.7)
        _box(ax, f"sigma{dx:g}", (dx + 2.6, -0.9), "$\\sigma$", DETERMINISTIC, w=1.0, h=0.7)
        _box(ax, f"f{dx:g}", (dx + 6.6, 0), "loss\n$f(z)$", DETERMINISTIC, w=1.2)
        for a in ((dx + 2.6, 0.9), (dx + 2.6, -0.9)):
            _arrow(ax, (dx + 0.6, 0), a, shrink=26)
    # before: z is a random node, the gradient stops there
    _circle(ax, "z_random", (4.6, 0), "$z$", RANDOM, r=0.5)
    _arrow(ax, (2.6, 0.9), (4.6, 0), shrink=26)
    _arrow(ax, (2.6, -0.9), (4.6, 0), shrink=26)
    _arrow(ax, (4.6, 0), (6.6, 0), shrink=30)
    _arrow(ax, (6.6, 0), (4.6, 0), color=grad, rad=0.6, shrink=28)
    _arrow(ax, (4.6, 0), (2.6, 0.9), color="grey", ls="--", rad=0.5, shrink=28)
    _arrow(ax, (4.6, 0), (2.6, -0.9), color="grey", ls="--", rad=-0.5, shrink=28)
    ax.text(3.6, -2.1, "no $\\partial z / \\partial \\phi$:\nthe gradient stops at $z$", ha="center",
            va="center", fontsize=_FONT - 1, color="dimgrey")
    # after: eps is a random input, z a deterministic node
    _circle(ax, "eps", (10.6, -2.1), "$\\varepsilon$", RANDOM, r=0.45)
    _box(ax, "z_det", (12.6, 0), "$z$", DETERMINISTIC, w=1.0)
    _arrow(ax, (10.6, 0.9), (12.6, 0), shrink=26)
    _arrow(ax, (10.6, -0.9), (12.6, 0), shrink=26)
    _arrow(ax, (10.6, -2.1), (12.6, 0), shrink=26)
    _arrow(ax, (12.6, 0), (14.6, 0), shrink=30)
    ax.text(11.2, -2.1, "$\\varepsilon \\sim \\mathcal{N}(0, I)$: a random\ninput with no $\\phi$ in it", ha="left",
            va="center", fontsize=_FONT - 2)
    _arrow(ax, (14.6, 0), (12.6, 0), color=grad, rad=0.6, shrink=28)
    _arrow(ax, (12.6, 0), (10.6, 0.9), color=grad, rad=0.5, shrink=28)
    _arrow(ax, (12.6, 0), (10.6, -0.9), color=grad, rad=-0.5, shrink=28)
    _arrow(ax, (10.6, 0.9), (8.6, 0), color=grad, rad=0.5, shrink=28)
    _arrow(ax, (10.6, -0.9), (8.6, 0), color=grad, rad=-0.5, shrink=28)
    ax.text(12.0, 1.75, "$\\partial z/\\partial\\mu = 1,\\ \\partial z/\\partial\\sigma = \\varepsilon$", ha="center",
            va="center", fontsize=_FONT - 1, color=grad)
    ax.plot([], [], color=grad, lw=2, label="gradient of the loss")
    ax.scatter([], [], s=150, c=RANDOM, edgecolors="black", label="random node")
    ax.add_patch(FancyBboxPatch((-10, -10), 0.1, 0.1, fc=DETERMINISTIC, ec="black", label="deterministic node"))
    ax.add_patch(FancyBboxPatch((-10, -10), 0.1, 0.1, fc=PARAMETER, ec="black", label="parameters"))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=4, fontsize=12, frameon=False)
    return fig, ax
