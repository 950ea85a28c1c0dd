"""Plotting plumbing of lesson 5 (evaluation), so that a code slide shows the idea, not matplotlib calls.

Every function takes numbers the lesson computed, draws one figure (colour-blind-safe
``plots.PALETTE``, legends and ticks >= 12 pt) and returns ``(fig, axes)``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plots import PALETTE, show_images

__all__ = ["estimator_check_figure", "nll_vs_k_figure", "gaps_figure", "image_sets_figure",
           "fid_spread_figure", "kid_bias_figure", "temperature_figure", "grey_fraction"]

C = PALETTE
FS = 12   # legend and tick font size: readable from the back of a room


def _style(ax, title, xlabel, ylabel):
    ax.set_title(title, fontsize=FS + 1)
    ax.set_xlabel(xlabel, fontsize=FS)
    ax.set_ylabel(ylabel, fontsize=FS)
    ax.tick_params(labelsize=FS)


def grey_fraction(images: torch.Tensor, low: float = 0.1, high: float = 0.9) -> float:
    """Fraction of pixels strictly between ``low`` and ``high``: how grey (blurred) a set of images is."""
    return float(((images > low) & (images < high)).float().mean())


def estimator_check_figure(ks, gap, sem, exact_gap, elbo_gap):
    """Linear-Gaussian model: IWAE NLL minus the exact NLL against k, for the mean-field and exact q."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.errorbar(ks, gap, yerr=sem, marker="o", capsize=3, color=C["blue"], label="mean-field q")
    ax.plot(ks, exact_gap, "s--", color=C["green"], label="exact posterior q")
    ax.axhline(elbo_gap, color=C["orange"], ls=":", lw=2, label="closed-form ELBO gap = KL(q || p(z|x))")
    ax.axhline(0, color=C["black"], lw=0.8)
    ax.set_xscale("log")
    _style(ax, "Linear-Gaussian model: IWAE NLL minus the exact NLL", "number of importance samples k",
           "nats per example")
    ax.legend(fontsize=FS)
    fig.tight_layout()
    return fig, ax


def nll_vs_k_figure(ks, nll, sem, neg_elbo, title):
    """IWAE NLL (with standard errors over images) against k, and the -ELBO as a line."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.errorbar(ks, [nll[k] for k in ks], yerr=[sem[k] for k in ks], marker="o", capsize=3, color=C["blue"],
                label="IWAE NLL estimate")
    ax.axhline(neg_elbo, color=C["orange"], ls=":", lw=2, label="-ELBO")
    ax.set_xscale("log")
    _style(ax, title, "number of importance samples k", "nats per image")
    ax.legend(fontsize=FS)
    fig.tight_layout()
    return fig, ax


def gaps_figure(gaps: dict):
    """Per test image, the inference gap log p(x) - ELBO(q_phi) as two stacked bars: approximation gap
    (bottom) and amortization gap (top), images sorted by their total gap."""
    approx, amort = gaps["approximation"].numpy(), gaps["amortization"].numpy()
    order = np.argsort(approx + amort)
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.bar(x, approx[order], color=C["sky"], label=f"approximation gap (mean {approx.mean():.2f} nats)")
    ax.bar(x, amort[order], bottom=approx[order], color=C["vermillion"],
           label=f"amortization gap (mean {amort.mean():.2f} nats)")
    ax.set_xticks([])
    _style(ax, "log p(x) - ELBO of the encoder, split in two", "test images (sorted by total gap)", "nats")
    ax.legend(fontsize=FS, loc="upper left")
    fig.tight_layout()
    return fig, ax


def image_sets_figure(sets: dict, scores: dict, n_show: int = 36, errors: dict | None = None):
    """Top row: a grid of images for each set; bottom row: bars of FID (log scale) and IS per set.

    ``scores[name] = (FID, IS)``; ``errors[name] = (std of the FID, std of the IS)`` over repeats, drawn as bars."""
    names = list(sets)
    m = len(names)
    fig = plt.figure(figsize=(13, 7))
    grid = fig.add_gridspec(2, 2 * m, height_ratios=[1, 1.1])
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[0, 2 * i:2 * i + 2])
        show_images(sets[name][:n_show], nrow=6, title=name, ax=ax)
        ax.title.set_fontsize(FS)
    colors = [C[c] for c in ("green", "sky", "blue", "purple", "vermillion", "orange")][:m]
    short = [n.split(" (")[0].replace("VAE ", "") for n in names]
    axes = [fig.add_subplot(grid[1, :m]), fig.add_subplot(grid[1, m:])]
    for ax, idx, title, log in [(axes[0], 0, "FID-digits (lower is better)", True),
                                (axes[1], 1, "IS-digits (higher is better)", False)]:
        ax.bar(range(m), [scores[n][idx] for n in names], color=colors,
               yerr=None if errors is None else [errors[n][idx] for n in names], capsize=5)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(m))
        ax.set_xticklabels(short, rotation=25, ha="right", fontsize=FS)
        _style(ax, title, "", title.split()[0])
    fig.tight_layout()
    return fig, axes


def fid_spread_figure(spread: dict, fit_c: float | None = None):
    """Left: FID against the number of samples n (mean and standard deviation over draws, each draw a dot).
    Right: the standard deviation relative to the mean, with the fit c / sqrt(n)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    colors = [C["blue"], C["green"], C["orange"], C["purple"]]
    for (name, by_n), color in zip(spread.items(), colors):
        ns = np.array(sorted(by_n))
        mean = np.array([float(by_n[n].mean()) for n in ns])
        std = np.array([float(by_n[n].std()) for n in ns])
        for n in ns:
            v = by_n[n].numpy()
            axes[0].plot(np.full(len(v), n) * np.exp(np.random.RandomState(int(n)).uniform(-0.08, 0.08, len(v))),
                         v, ".", color=color, alpha=0.35, ms=4)
        axes[0].errorbar(ns, mean, yerr=std, marker="o", capsize=4, color=color, label=f"{name}: mean ± std")
        axes[1].plot(ns, std / mean, "o-", color=color, label=name)
    if fit_c is not None:
        grid = np.geomspace(min(min(d) for d in spread.values()), max(max(d) for d in spread.values()), 50)
        axes[1].plot(grid, fit_c / np.sqrt(grid), "--", color=C["black"], label=f"{fit_c:.2f} / sqrt(n)")
    axes[0].set(xscale="log", yscale="log")
    axes[1].set(xscale="log", yscale="log")
    _style(axes[0], "FID of n images vs the fixed reference", "number of images n", "FID")
    _style(axes[1], "Spread across draws", "number of images n", "std / mean")
    for ax in axes:
        ax.legend(fontsize=FS)
    fig.tight_layout()
    return fig, axes


def kid_bias_figure(fid_spread: dict, kid_spread: dict):
    """FID of every pool (first panel, log scale), then the KID of each pool on its own axis: mean ± standard
    error over the draws against the number of images n. Three panels a row at most (a slide at 1024 x 768
    draws a wider figure too small to read); returns the used axes, FID first."""
    pools = list(kid_spread)
    n = 1 + len(pools)
    cols = min(n, 3)                               # at most three panels a row: labels stay >= 12 px on a slide
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.7 * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.axis("off")
    axes = axes[:n]
    colors = [C["blue"], C["green"], C["orange"], C["purple"]]

    def curve(ax, by_n, color, label):
        ns = np.array(sorted(by_n))
        mean = np.array([float(by_n[n].mean()) for n in ns])
        se = np.array([float(by_n[n].std()) / np.sqrt(len(by_n[n])) for n in ns])
        ax.errorbar(ns, mean, yerr=se, marker="o", capsize=4, color=color, label=label)
        ax.set_xscale("log")

    for (pool, by_n), color in zip(fid_spread.items(), colors):
        curve(axes[0], by_n, color, pool)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=FS)
    _style(axes[0], "FID", "number of images n", "FID (mean ± s.e.)")
    for ax, pool, color in zip(axes[1:], pools, colors):
        curve(ax, kid_spread[pool], color, pool)
        ax.axhline(0.0, color=C["black"], lw=1, ls=":")
        _style(ax, f"KID: {pool}", "number of images n", "KID (mean ± s.e.)")
    fig.tight_layout()
    return fig, axes


def temperature_figure(curve: list, nll: dict | None = None):
    """FID, IS, precision/recall and (optionally) the NLL of the tempered model against the temperature T.

    ``curve``: one dict per T with keys ``T``, ``FID``, ``IS`` and optionally ``FID_sd``, ``IS_sd`` (error
    bars), ``precision``, ``recall`` (and ``precision_sd``, ``recall_sd``)."""
    ts = [r["T"] for r in curve]
    panels = [("FID", "FID (lower is better)", C["blue"]), ("IS", "IS (higher is better)", C["vermillion"])]
    has_pr = "precision" in curve[0]
    n = len(panels) + has_pr + (nll is not None)
    rows, cols = (1, n) if n <= 3 else (2, 2)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols if rows == 1 else 11, 4 * rows), squeeze=False)
    axes = list(axes.flat)[:n]
    for ax, (key, title, color) in zip(axes, panels):
        ax.errorbar(ts, [r[key] for r in curve], yerr=[r.get(key + "_sd", 0.0) for r in curve], fmt="o-",
                    capsize=3, color=color)
        ax.axvline(1.0, color=C["black"], ls=":", lw=1)
        _style(ax, title, "temperature T", key)
    i = len(panels)
    if has_pr:
        for key, color, marker in [("precision", C["blue"], "o"), ("recall", C["orange"], "s")]:
            axes[i].errorbar(ts, [r[key] for r in curve], yerr=[r.get(key + "_sd", 0.0) for r in curve],
                             marker=marker, capsize=3, color=color, label=key)
        axes[i].axvline(1.0, color=C["black"], ls=":", lw=1)
        axes[i].set_ylim(-0.03, 1.03)
        axes[i].legend(fontsize=FS)
        _style(axes[i], "precision and recall (k = 3)", "temperature T", "fraction")
        i += 1
    if nll is not None:
        t = sorted(nll)
        axes[i].errorbar(t, [nll[x][0] for x in t], yerr=[nll[x][1] for x in t], marker="s", capsize=3,
                         color=C["green"])
        axes[i].axvline(1.0, color=C["black"], ls=":", lw=1)
        _style(axes[i], "NLL of test digits under p_T (lower is better)", "temperature T", "nats per image")
    fig.tight_layout()
    return fig, axes
