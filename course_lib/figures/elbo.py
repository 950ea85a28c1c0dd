"""Figures of lesson 2 (the ELBO on the slides' toy model), so that each code slide shows the idea in a few lines.

Each function draws one titled figure with labelled axes (fonts of at least 12 pt) in the Okabe-Ito
``PALETTE`` and returns the matplotlib ``Figure``. The lesson computes and asserts the numbers shown.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plots import PALETTE

__all__ = ["evidence", "posteriors", "kl_fits", "elbo_curve", "mc_running", "objectives", "key_equation_bars"]

FONT = 12
_ORDER = ("blue", "orange", "green", "vermillion", "purple", "sky", "black")


def _np(t):
    return t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)


def _style(ax, title, xlabel, ylabel, legend=True, loc="best"):
    ax.set_title(title, fontsize=FONT + 1)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    if legend:
        ax.legend(fontsize=FONT, loc=loc)


def evidence(x_data, xs, components: dict, density, x_wide, log_px, naive, title: str):
    """Left: histogram of samples, the weighted components and p(x). Right: log p(x) by logsumexp and
    the naive formula where it is finite."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    ax = axes[0]
    ax.hist(_np(x_data), bins=60, density=True, color=PALETTE["sky"], alpha=0.6, label=f"{len(x_data)} samples")
    for (name, values), c in zip(components.items(), ("blue", "vermillion")):
        ax.plot(_np(xs), _np(values), "--", lw=2, color=PALETTE[c], label=name)
    ax.plot(_np(xs), _np(density), color=PALETTE["black"], lw=2, label=r"$p_\theta(x)$")
    _style(ax, title, "x", "density")
    ax = axes[1]
    ok = np.isfinite(_np(naive))
    ax.plot(_np(x_wide), _np(log_px), color=PALETTE["black"], lw=2, label="logsumexp")
    ax.plot(_np(x_wide)[ok], _np(naive)[ok], ":", color=PALETTE["orange"], lw=3.5, label="naive log(sum(exp))")
    _style(ax, "Exact log-evidence", "x", r"$\log p_\theta(x)$ (nats)")
    fig.tight_layout()
    return fig


def posteriors(xs, curves: dict, prior: float, title: str):
    """One curve p(z=1|x) per entry ``label -> (values, x where it is 1/2)``, and the prior as a line."""
    fig, ax = plt.subplots(figsize=(8.5, 4.4))
    for (label, (r, x_half)), c in zip(curves.items(), _ORDER):
        ax.plot(_np(xs), _np(r), color=PALETTE[c], lw=2.5, label=label)
        ax.axvline(float(x_half), color=PALETTE[c], ls=":", lw=1.2)
    ax.axhline(prior, color=PALETTE["black"], ls="--", lw=1.2, label=f"prior p = {prior}")
    _style(ax, title, "x", r"$p_\theta(z=1\mid x)$")
    fig.tight_layout()
    return fig


def kl_fits(z, p, fits: dict, landscapes: dict, means, sds):
    """Left: the target density p and the Gaussian fits ``label -> (m, s)``. Right: log10 of each KL as a
    function of (m, s) (``landscapes``: ``label -> table`` of shape (len(means), len(sds)))."""
    fig, axes = plt.subplots(1, 1 + len(landscapes), figsize=(6.5 + 4.3 * len(landscapes), 4.4))
    ax = axes[0]
    zz = _np(z)
    ax.fill_between(zz, _np(p), color=PALETTE["sky"], alpha=0.5, label="target p (two modes)")
    for (label, (m, s)), c in zip(fits.items(), ("blue", "vermillion")):
        q = np.exp(-0.5 * ((zz - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        ax.plot(zz, q, color=PALETTE[c], lw=2.5, label=f"{label}: m = {m:.1f}, s = {s:.2f}")
    _style(ax, "Best Gaussian q for each direction", "z", "density", loc="upper left")
    ax.set_ylim(0, float(np.max(_np(p))) * 1.6)
    for ax, ((label, table), (fit_label, (m, s))) in zip(axes[1:], zip(landscapes.items(), fits.items())):
        mesh = ax.pcolormesh(_np(sds), _np(means), np.log10(_np(table) + 1e-3), cmap="viridis", shading="auto")
        ax.plot([s], [m], marker="*", ms=16, color="white", markeredgecolor="black")
        cb = fig.colorbar(mesh, ax=ax)
        cb.set_label("log10 KL (nats)", fontsize=FONT - 1)
        _style(ax, label, "s (standard deviation of q)", "m (mean of q)", legend=False)
    fig.tight_layout()
    return fig


def elbo_curve(pis, bound, log_px: float, pi_star: float, title: str):
    """The ELBO as a function of pi under the line log p(x), the gap shaded, the posterior marked."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    pis, bound = _np(pis), _np(bound)
    ax.axhline(log_px, color=PALETTE["black"], lw=2, label=r"$\log p_\theta(x)$")
    ax.plot(pis, bound, color=PALETTE["blue"], lw=2.5, label=r"ELBO $\mathcal{L}(\pi)$")
    ax.fill_between(pis, bound, log_px, color=PALETTE["orange"], alpha=0.3, label=r"gap = KL$(q\,\|\,p_\theta(z\mid x))$")
    ax.axvline(pi_star, color=PALETTE["vermillion"], ls="--", lw=2,
               label=rf"$\pi^\star = p_\theta(z=1\mid x) = {pi_star:.3f}$")
    ax.set_ylim(float(bound.min()) - 0.1, log_px + 0.15)
    _style(ax, title, r"$\pi = q(z=1\mid x)$", "nats", loc="lower center")
    fig.tight_layout()
    return fig


def mc_running(terms, exact: float, title: str):
    """Running mean of Monte Carlo ELBO terms against the closed form +- 2 standard errors."""
    terms = _np(terms).astype(float)
    s = np.arange(1, len(terms) + 1)
    sd = terms.std(ddof=1)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.plot(s, np.cumsum(terms) / s, color=PALETTE["blue"], lw=2, label="running Monte Carlo mean")
    ax.fill_between(s, exact - 2 * sd / np.sqrt(s), exact + 2 * sd / np.sqrt(s), color=PALETTE["sky"], alpha=0.3,
                    label="closed form ± 2 standard errors")
    ax.axhline(exact, color=PALETTE["black"], ls="--", label="closed-form ELBO")
    ax.set_xscale("log")
    ax.set_ylim(exact - 1.0, exact + 1.0)
    _style(ax, title, "number of samples S", "ELBO (nats)")
    fig.tight_layout()
    return fig


def objectives(ps, curves: dict, p_mle: float, paths: dict, p_true: float):
    """Left: objectives as functions of p (``label -> values``; the first is drawn thick). Right: the fitted p
    along each optimisation (``label -> sequence``)."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    ax = axes[0]
    top = None
    for i, ((label, values), c) in enumerate(zip(curves.items(), ("black", "orange", "sky", "green", "purple"))):
        v = _np(values)
        top = float(v.max()) if top is None else top
        ax.plot(_np(ps), v, color=PALETTE[c], lw=3 if i == 0 else 2, ls="-" if i in (0, len(curves) - 1) else "--",
                label=label)
    ax.axvline(p_mle, color=PALETTE["vermillion"], ls=":", lw=2, label=f"MLE p = {p_mle:.3f}")
    ax.set_ylim(top - 1.5, top + 0.15)
    _style(ax, "Objectives as functions of p", "p", "nats per example", loc="lower left")
    ax.legend(fontsize=FONT, loc="lower left")
    ax = axes[1]
    for (label, path), c in zip(paths.items(), ("orange", "blue", "purple")):
        path = _np(torch.stack(list(path)) if isinstance(path, list) else path)
        ax.plot(np.arange(1, len(path) + 1), path, color=PALETTE[c], lw=2, label=label)
    ax.axhline(p_mle, color=PALETTE["vermillion"], ls=":", lw=2, label="maximum likelihood")
    ax.axhline(p_true, color=PALETTE["black"], ls="--", lw=1, label="true p")
    ax.set_xscale("log")
    _style(ax, "Fitted p along the optimisation", "EM iteration / Adam step", "p")
    fig.tight_layout()
    return fig


def key_equation_bars(values: dict):
    """Bars of the first five entries of ``values`` (nats), titled with log p(x) = ELBO + KL."""
    names = list(values)[:5]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.barh(names, [values[k] for k in names], color=[PALETTE[c] for c in ("black", "blue", "orange", "sky", "purple")])
    ax.axvline(0, color="grey", lw=0.8)
    ax.invert_yaxis()
    ax.tick_params(labelsize=FONT)
    ax.set_xlabel("nats", fontsize=FONT)
    ax.set_title(f"log p(x) = ELBO + KL: {values['log p(x)']:.3f} = {values['ELBO']:.3f} + "
                 f"{values['KL(q || p(z|x))']:.3f}   (p(z=1|x) = {values['p(z=1|x)']:.3f})", fontsize=FONT)
    fig.tight_layout()
    return fig
