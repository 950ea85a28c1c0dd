"""Plotting plumbing of lessons 3 and 4, so that a code slide shows the idea, not the matplotlib calls.

Every function takes the numbers the lesson computed, draws one figure (colour-blind-safe
``plots.PALETTE``, legends and ticks >= 12 pt) and returns ``(fig, axes)``.
"""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal

from ..plots import PALETTE, decode_grid, latent_scatter, show_images

__all__ = ["estimator_variance_figure", "kl_figure", "aggregated_posterior_figure", "aggregate_vs_prior_figure",
           "rate_distortion_figure", "kl_per_dim_figure", "warmup_figure", "gamma_curve_figure", "collapse_figure",
           "per_dim_kl_values", "total_variation", "isolated_pixels", "factor_images_figure", "factor_unit_figure",
           "rate_surgery_figure", "codes_and_decoder_figure", "beta_sweep_figure"]

C = PALETTE
FS = 12   # legend and tick font size: readable from the back of a room


def _np(t):
    return t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum of |differences| between horizontally and vertically adjacent pixels, one value per image.

    An image made of clean strokes has a small total variation; salt-and-pepper noise a large one.
    """
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).sum(1)
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).sum(1)
    return dh + dw


def isolated_pixels(binary: torch.Tensor) -> torch.Tensor:
    """Number of 'on' pixels (> 0.5) whose 4 neighbours are all 'off', one value per image: speckle."""
    padded = torch.nn.functional.pad(binary, (1, 1, 1, 1))
    neighbours = (padded[..., :-2, 1:-1] > 0.5).float() + (padded[..., 2:, 1:-1] > 0.5).float() \
        + (padded[..., 1:-1, :-2] > 0.5).float() + (padded[..., 1:-1, 2:] > 0.5).float()
    return ((binary > 0.5) & (neighbours == 0)).flatten(1).sum(1).float()


def estimator_variance_figure(sigmas, var_score, theory_score, var_path, theory_path, S_values, se_score, se_path,
                              mu0, s_fixed):
    """Lesson 3, section 3: variance of one draw against sigma (left), standard error against S (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    ax.loglog(_np(sigmas), _np(var_score), "o", color=C["vermillion"], label="score function (measured)")
    ax.loglog(_np(sigmas), _np(theory_score), "-", color=C["vermillion"], label=r"$\mu^4/\sigma^2 + 14\mu^2 + 15\sigma^2$")
    ax.loglog(_np(sigmas), _np(var_path), "s", color=C["blue"], label="pathwise (measured)")
    ax.loglog(_np(sigmas), _np(theory_path), "-", color=C["blue"], label=r"$4\sigma^2$")
    ax.set(title=rf"Variance of one draw of $\partial_\mu \mathbb{{E}}[z^2]$, $\mu$ = {float(mu0):.0f}",
           xlabel=r"$\sigma$", ylabel="variance")
    ax.legend(fontsize=FS - 1)
    ax = axes[1]
    ax.loglog(_np(S_values), _np(se_score), "o-", color=C["vermillion"], label="score function")
    ax.loglog(_np(S_values), _np(se_path), "s-", color=C["blue"], label="pathwise")
    ax.loglog(_np(S_values), _np(se_score[0] / S_values.sqrt()), ":", color=C["black"], label=r"$\propto 1/\sqrt{S}$")
    ax.set(title=rf"Standard error of an $S$-sample estimate, $\sigma$ = {float(s_fixed):.1f}",
           xlabel="number of samples S", ylabel=r"std of the estimate of $\partial_\mu$")
    ax.legend(fontsize=FS)
    for ax in axes:
        ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, axes


def kl_figure(kl_fn, kl_closed, kl_mc, kl_se, latent):
    """Lesson 3, section 5: the 1-D KL map over (mu, sigma) and closed form vs Monte Carlo."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    m_grid, ls_grid = torch.meshgrid(torch.linspace(-3, 3, 121), torch.linspace(-3, 1.5, 121), indexing="xy")
    kl_map = kl_fn(m_grid[..., None], 2 * ls_grid[..., None])
    im = ax.contourf(m_grid.numpy(), ls_grid.exp().numpy(), kl_map.numpy(), levels=20, cmap="cividis")
    ax.plot([0], [1], "*", color=C["vermillion"], ms=16, label=r"KL = 0 at $\mu=0, \sigma=1$")
    plt.colorbar(im, ax=ax, label="KL (nats)")
    ax.set(yscale="log", title="KL of a 1-D posterior to N(0, 1), eq. (3)", xlabel=r"$\mu$", ylabel=r"$\sigma$")
    ax.legend(fontsize=FS, loc="lower left")
    ax = axes[1]
    ax.errorbar(_np(kl_closed), _np(kl_mc), yerr=2 * _np(kl_se), fmt="o", color=C["blue"], ms=4,
                label="Monte Carlo ± 2 s.e.")
    lim = [0, float(kl_closed.max()) * 1.05]
    ax.plot(lim, lim, "--", color=C["black"], label="y = x")
    ax.set(title=f"Closed form vs Monte Carlo, d = {latent}", xlabel="closed-form KL (nats)",
           ylabel="Monte Carlo KL (nats)")
    ax.legend(fontsize=FS)
    for ax in axes:
        ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, axes


def aggregated_posterior_figure(z_agg2):
    """Lesson 3, section 12: 2-D histogram of the aggregated posterior with the prior's circles, and marginals."""
    z_agg2 = torch.as_tensor(z_agg2).cpu()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    h = ax.hist2d(z_agg2[:, 0].numpy(), z_agg2[:, 1].numpy(), bins=60, range=[[-3.5, 3.5], [-3.5, 3.5]],
                  density=True, cmap="cividis")
    plt.colorbar(h[3], ax=ax, label="density")
    for r in (1, 2, 3):   # circles of the prior N(0, I) at 1, 2 and 3 standard deviations
        ax.add_patch(plt.Circle((0, 0), r, fill=False, color=C["orange"], ls="--", lw=1.5))
    ax.set(title="Aggregated posterior, d = 2\n(dashed: prior at 1, 2, 3 sd)", xlabel="$z_1$", ylabel="$z_2$",
           aspect="equal")
    grid_1d = torch.linspace(-4, 4, 200)
    for j, ax in enumerate(axes[1:]):
        ax.hist(z_agg2[:, j].numpy(), bins=80, density=True, color=C["sky"], label="aggregated posterior")
        ax.plot(grid_1d, Normal(0.0, 1.0).log_prob(grid_1d).exp(), color=C["vermillion"], lw=2, label="prior N(0, 1)")
        ax.set(title=f"Marginal of $z_{j + 1}$", xlabel=f"$z_{j + 1}$", ylabel="density")
        ax.legend(fontsize=FS, loc="upper left")
    for ax in axes:
        ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, axes


def codes_and_decoder_figure(codes, data, generate, values, device=None):
    """Left: the 2-D codes of ``data``'s images, coloured by class (``data.labels``, ``data.classes``);
    right: ``generate`` on the grid ``values`` x ``values`` of the two latent coordinates."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    latent_scatter(codes, data.labels, ax=axes[0], classes=data.classes,
                   title="Test codes $\\mu_\\phi(x)$, d = 2, coloured by class")
    decode_grid(generate, values=values, device=device, ax=axes[1],
                title="Decoder on a grid of Gaussian quantiles of $z_1, z_2$")
    fig.tight_layout()
    return fig, axes


def beta_sweep_figure(x_show, recs: dict, samples: dict, betas):
    """Left: ``x_show`` (top row) and, one row per beta of ``betas``, its reconstructions ``recs[beta]``;
    right: the prior samples ``samples[beta]``, one row per beta (the same z in each column)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.95 * len(betas) + 2))
    show_images(torch.cat([x_show] + [recs[b] for b in betas]), nrow=len(x_show), ax=axes[0],
                title="Test images (top), reconstructions,\nβ = " + ", ".join(f"{b:g}" for b in betas) + " (rows)")
    show_images(torch.cat([samples[b] for b in betas]), nrow=len(x_show), ax=axes[1],
                title="Prior samples, one row per β\n(same z in each column)")
    fig.tight_layout()
    return fig, axes


def aggregate_vs_prior_figure(gen_agg, gen_pri, m_agg, var_agg):
    """Lesson 3, section 12: decoded samples of both options and the moments of q(z) per dimension."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    show_images(gen_agg, nrow=5, ax=axes[0], title="Option 1: z ~ aggregated posterior")
    show_images(gen_pri, nrow=5, ax=axes[1], title="Option 2: z ~ N(0, I)")
    ax = axes[2]
    dims = np.arange(1, len(_np(m_agg)) + 1)
    ax.bar(dims, _np(var_agg), width=0.6, color=C["sky"], label="variance of q(z)")
    ax.plot(dims, _np(m_agg), "o", color=C["blue"], label="mean of q(z)")
    ax.axhline(1.0, color=C["vermillion"], ls="--", label="prior variance 1")
    ax.axhline(0.0, color=C["black"], lw=0.8)
    ax.set(title="Moments of q(z) per dimension", xlabel="latent dimension j")
    ax.legend(fontsize=FS - 2, loc="lower right")
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, axes


def rate_distortion_figure(betas, rates, distortions, D0):
    """Lesson 4, section 2: the beta sweep in the (R, D) plane with lines of equal ELBO."""
    rates, distortions = np.asarray(rates), np.asarray(distortions)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    r_max = rates.max() * 1.1 + 1
    lo, hi = (rates + distortions).min(), (rates + distortions).max()
    for c in np.linspace(lo - 10, hi + 10, 8):
        ax.plot([0, r_max], [c, c - r_max], color="grey", lw=0.7, ls=":")
    ax.plot(rates, distortions, "-o", color=C["blue"], ms=7)
    for b, r, d in zip(betas, rates, distortions):
        ax.annotate(f"β={b:g}", (r, d), textcoords="offset points", xytext=(6, 4), fontsize=FS)
    ax.axhline(D0, color=C["vermillion"], ls="--", lw=1.2, label="$D_0$: mean image, R = 0")
    ax.plot([], [], color="grey", lw=0.7, ls=":", label="D + R = const (equal ELBO)")
    ax.set(xlim=(-1, r_max), ylim=(distortions.min() - 10, D0 + 15), xlabel="rate R = KL (nats per image)",
           ylabel="distortion D (nats per image)", title="β-VAE sweep in the rate-distortion plane (test set)")
    ax.legend(fontsize=FS)
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, ax


def per_dim_kl_values(kl_dims, betas):
    """(len(betas), d) array of the per-dimension KLs, each row sorted in decreasing order."""
    return np.stack([np.sort(_np(kl_dims[b]))[::-1] for b in betas])


def kl_per_dim_figure(kl_dims, betas, threshold, n_active):
    """Lesson 4, section 5: per-dimension KL (sorted) for each beta, with the activity threshold."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    cmap = plt.get_cmap("viridis")
    mat = per_dim_kl_values(kl_dims, betas)
    for i, b in enumerate(betas):
        ax.semilogy(np.arange(1, mat.shape[1] + 1), np.clip(mat[i], 1e-5, None), "-o", ms=4,
                    color=cmap(i / max(1, len(betas) - 1)), label=f"β = {b:g}: {n_active[b]} active")
    ax.axhline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:g} nats")
    ax.set(xlabel="latent dimension j (sorted by KL$_j$)", ylabel="KL$_j$ (nats, log scale)",
           title="Per-dimension KL on the test set")
    ax.legend(fontsize=FS - 1, ncol=2, loc="lower left")
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, ax


def collapse_figure(histories, epochs, labels, active, latent):
    """Lesson 4, section 7: test KL per epoch of several runs, and their active units."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    colors = [C["blue"], C["orange"], C["green"], C["vermillion"], C["purple"]]
    ep = np.arange(1, epochs + 1)
    for h, lab, c in zip(histories, labels, colors):
        axes[0].plot(ep, h.val["kl"], color=c, lw=2, label=lab)
    axes[0].set(xlabel="epoch", ylabel="KL (nats per image)", title="Rate on the test set during training")
    axes[0].legend(fontsize=FS - 1)
    axes[1].barh(range(len(labels)), active, color=colors[:len(labels)])
    axes[1].set(yticks=range(len(labels)), yticklabels=[lab.replace(", ", ",\n") for lab in labels],
                xlim=(0, latent), xlabel=f"active units (of {latent})", title="Active units at the end")
    for ax in axes:
        ax.tick_params(labelsize=FS - 1)
    fig.tight_layout()
    return fig, axes


def warmup_figure(schedule, epochs):
    """Lesson 4: the KL weight beta_t of a warm-up schedule."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, epochs + 1), schedule, "-o", ms=3, color=C["orange"])
    ax.set(xlabel="epoch t", ylabel="β_t", title="KL warm-up")
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, ax


def gamma_curve_figure(gammas, neg_elbo, gamma_star, gamma_learned):
    """Lesson 4, section 6: -ELBO against gamma with the reconstructions fixed, gamma* and the learned gamma."""
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.semilogx(_np(gammas), _np(neg_elbo), color=C["blue"], lw=2, label="-ELBO as a function of γ")
    ax.axvline(float(gamma_star), color=C["vermillion"], ls="--", lw=2, label=f"γ* = RMSE = {float(gamma_star):.3f}")
    ax.axvline(float(gamma_learned), color=C["green"], ls=":", lw=2.5, label=f"learned γ = {float(gamma_learned):.3f}")
    best = float(np.min(_np(neg_elbo)))
    ax.set(xlabel="γ (log scale)", ylabel="nats per image", ylim=(best - 50, best + 1500),
           title="-ELBO against γ, reconstructions fixed (training set)")
    ax.legend(fontsize=FS)
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, ax


def factor_images_figure(images, factor_text, nrow=8):
    """Lesson 4, section 8: a few images of the synthetic data set with their factors as titles."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.45 * n, 1.9))
    for ax, img, text in zip(np.atleast_1d(axes), images, factor_text):
        ax.imshow(_np(img).squeeze(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(text, fontsize=FS - 2)
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    return fig, axes


def factor_unit_figure(mi_norm, betas, factor_names, gaps, active):
    """Lesson 4, section 8: I(z_j; v_k) / H(v_k) for each unit j (rows, sorted by KL) and factor k (columns), one
    panel per beta; ``active[beta]`` units are active (the others are labelled "off")."""
    fig, axes = plt.subplots(1, len(betas), figsize=(3.5 * len(betas) + 1.6, 3.9), squeeze=False,
                             gridspec_kw={"wspace": 0.45})
    for i, (ax, b) in enumerate(zip(axes[0], betas)):
        m = _np(mi_norm[b])
        im = ax.imshow(m, cmap="cividis", vmin=0, vmax=1, aspect="auto")
        for (j, k), v in np.ndenumerate(m):
            ax.text(k, j, f"{v:.2f}", ha="center", va="center", fontsize=FS - 1, color="black" if v > 0.5 else "white")
        ax.set_xticks(range(len(factor_names)), [n.replace(" ", "\n") for n in factor_names], fontsize=FS - 1)
        ax.set_yticks(range(m.shape[0]), [f"z{j + 1}" + ("" if j < active[b] else " (off)") for j in range(m.shape[0])],
                      fontsize=FS - 1)
        ax.set_title(f"β = {b:g}: MIG = {float(np.mean(_np(gaps[b]))):.2f}", fontsize=FS)
    fig.colorbar(im, ax=axes[0].tolist(), label="I(z_j; v_k) / H(v_k)", shrink=0.9)
    fig.suptitle("What each unit knows about each factor (units sorted by KL; MIG: mean over factors)", fontsize=FS)
    return fig, axes


def rate_surgery_figure(parts: dict, log_n: float, title: str = "Where the rate goes (test set)"):
    """Lesson 3, section 12b: one stacked bar per model, the rate split into I(x; z), the shape mismatch
    KL(q(z) || N(m, C)) and the moment mismatch KL(N(m, C) || p(z)).

    ``parts``: {model name: {"I": nats, "shape": nats, "moments": nats, "rate": nats (closed form)}}.
    """
    names = list(parts)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for key, label, colour, hatch in [("I", "$I_q(x; z)$: which example", C["blue"], None),
                                      ("shape", "KL(q(z) || N(m, C)): shape", C["orange"], "//"),
                                      ("moments", "KL(N(m, C) || p(z)): moments", C["green"], None)]:
        h = np.array([float(parts[n][key]) for n in names])
        ax.bar(x, h, 0.5, bottom=bottom, color=colour, hatch=hatch, edgecolor="black", lw=0.6, label=label)
        bottom += h
    ax.plot(x, [float(parts[n]["rate"]) for n in names], "D", color=C["black"], ms=9,
            label="rate R, closed form (3)")
    ax.axhline(log_n, color=C["vermillion"], ls="--", lw=1.5, label=f"log N = {log_n:.1f}: the most I can be")
    ax.set_xticks(x, names)
    ax.set_ylabel("nats per example", fontsize=FS)
    ax.set_title(title, fontsize=FS + 1)
    ax.set_xlim(-0.6, len(names) - 0.4 + 1.4)
    ax.legend(fontsize=FS, loc="upper right")
    ax.tick_params(labelsize=FS)
    fig.tight_layout()
    return fig, ax
