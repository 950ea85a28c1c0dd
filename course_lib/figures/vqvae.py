"""Figures and the "try it" widget of lesson 7 (VQ-VAE): code usage, the codebook, the code-grid editor.

The logic is in plain functions (:func:`edit_code_grid`, :func:`single_code_grids`), tested without a
browser; :func:`code_grid_editor` builds an ``ipywidgets`` widget that also builds without a frontend.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from ..plots import CLASS_CMAP, LINE_COLORS, PALETTE, show_images

__all__ = ["edit_code_grid", "single_code_grids", "code_patches", "usage_histogram", "show_code_grid",
           "code_grid_editor", "plot_code_cells", "plot_code_watch"]


def edit_code_grid(indices: torch.Tensor, row: int, col: int, code: int) -> torch.Tensor:
    """A copy of one code grid (H, W) or a batch (B, H, W) with position (row, col) set to ``code``."""
    if indices.ndim not in (2, 3):
        raise ValueError(f"expected a code grid (H, W) or a batch of them (B, H, W), got shape {tuple(indices.shape)}.")
    h, w = indices.shape[-2:]
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position ({row}, {col}) is outside the {h}x{w} code grid.")
    out = indices.clone()
    out[..., row, col] = int(code)
    return out


def single_code_grids(num_codes: int, grid_shape, background: int, row: int | None = None,
                      col: int | None = None) -> torch.Tensor:
    """K code grids (K, H, W) filled with the ``background`` code, each with code k at (row, col)
    (the centre by default): decoding them shows what each code draws on its own."""
    h, w = grid_shape
    row = h // 2 if row is None else row
    col = w // 2 if col is None else col
    grids = torch.full((num_codes, h, w), int(background), dtype=torch.long)
    grids[:, row, col] = torch.arange(num_codes)
    return grids


@torch.no_grad()
def code_patches(images: torch.Tensor, indices: torch.Tensor, num_codes: int, context: int = 1) -> torch.Tensor:
    """What each code stands for in the data: the mean image patch around the positions that use it.

    ``images`` (N, C, H, W), ``indices`` (N, h, w) their code grids, one cell = (H/h) x (W/w) pixels. The patch
    is the cell plus ``context`` cells on each side; returns (K, C, P, P) (zeros for an unused code).
    """
    n, c, hh, ww = images.shape
    cell = hh // indices.shape[1]
    pad = context * cell
    size = (2 * context + 1) * cell
    cols = F.unfold(F.pad(images.float(), (pad, pad, pad, pad)), kernel_size=size, stride=cell)   # (N, C*P*P, h*w)
    cols = cols.transpose(1, 2).reshape(-1, c * size * size)
    idx = indices.reshape(-1).to(cols.device)
    sums = torch.zeros(num_codes, c * size * size, device=cols.device).index_add_(0, idx, cols)
    counts = torch.bincount(idx, minlength=num_codes).clamp_min(1)[:, None]
    return (sums / counts).reshape(num_codes, c, size, size)


def plot_code_cells(codes: torch.Tensor, z_e: torch.Tensor, extent: float = 6.0, ax=None,
                    title: str = "Each shaded cell is sent to its code (eq. 1)"):
    """2-D codes (K <= 10) as stars over their nearest-code cells, with the encoder outputs ``z_e`` as dots."""
    codes, z_e = codes.detach().cpu(), z_e.detach().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5))
    grid = torch.linspace(-extent, extent, 300)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    cells = ((torch.stack([gx, gy], -1)[..., None, :] - codes) ** 2).sum(-1).argmin(-1)
    ax.imshow(cells.numpy(), extent=(-extent, extent, -extent, extent), origin="lower", cmap=CLASS_CMAP,
              vmin=-0.5, vmax=9.5, alpha=0.35)
    ax.scatter(z_e[:, 0], z_e[:, 1], s=10, color=PALETTE["black"], label="encoder outputs $z_e$")
    ax.scatter(codes[:, 0], codes[:, 1], s=220, marker="*", color=PALETTE["vermillion"], edgecolor="white",
               label="codes $e_k$")
    for j, (cx, cy) in enumerate(codes.tolist()):
        ax.annotate(str(j), (cx, cy), xytext=(6, 6), textcoords="offset points", fontsize=13,
                    color=PALETTE["vermillion"])
    ax.set(title=title, xlabel="dimension 1", ylabel="dimension 2")
    ax.legend(fontsize=12, loc="upper left", framealpha=0.9)
    return ax


def plot_code_watch(histories: dict, axes=None):
    """Three panels from ``watch_codes`` logs (``{label: history.train}``, or ``{label: [history.train, ...]}`` for
    several seeds, one thin line each): encoder scale, distance to the codes (the ``commitment`` term), fraction of
    the probe's positions whose code changed since the previous epoch."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(15, 4))
    for (label, logs), color in zip(histories.items(), LINE_COLORS):
        logs = logs if isinstance(logs, (list, tuple)) else [logs]
        for i, log in enumerate(logs):
            ep = np.arange(1, len(log["z_norm"]) + 1)
            kw = dict(color=color, lw=1.5, alpha=0.9, label=label if i == 0 else None)
            axes[0].semilogy(ep, log["z_norm"], "o-", ms=4, **kw)
            axes[1].semilogy(ep, log["commitment"], "o-", ms=4, **kw)
            axes[2].plot(ep[1:], log["codes_changed"][1:], "o-", ms=4, **kw)
    axes[0].set(title=r"Encoder scale $\|z_e(x)\|^2$", xlabel="epoch", ylabel="per image (log scale)")
    axes[1].set(title=r"Distance to the codes $\|z_e - e\|^2$", xlabel="epoch", ylabel="per image (log scale)")
    axes[2].set(title="Codes changed since the last epoch", xlabel="epoch", ylabel="fraction of positions",
                ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=12)
        ax.tick_params(labelsize=12)
    return axes


def usage_histogram(counts, ax=None, title: str = "Code usage", color: str = PALETTE["blue"], label=None,
                    sort: bool = True):
    """Bar chart of the fraction of grid positions that use each code (sorted, most used first)."""
    counts = torch.as_tensor(counts).float().cpu()
    freq = (counts / counts.sum()).numpy()
    if sort:
        freq = np.sort(freq)[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(len(freq)), freq, width=0.8, color=color, label=label)
    ax.axhline(1.0 / len(freq), color=PALETTE["black"], ls="--", lw=1.2, label="uniform use, 1/K")
    ax.set_xlabel("code, most used first" if sort else "code index k")
    ax.set_ylabel("fraction of positions")
    ax.set_title(title)
    ax.tick_params(labelsize=12)
    ax.legend(fontsize=12)
    return ax


def show_code_grid(indices: torch.Tensor, ax=None, title: str = "Code grid", highlight=None):
    """One code grid (H, W) as a table of integers, optionally with one cell framed."""
    grid = indices.detach().cpu().numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.zeros_like(grid, dtype=float), cmap="Greys", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(grid):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=12)
    if highlight is not None:
        r, c = highlight
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec=PALETTE["vermillion"], lw=3))
    ax.set_xticks(range(grid.shape[1]))
    ax.set_yticks(range(grid.shape[0]))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title)
    return ax


def code_grid_editor(model, indices: torch.Tensor, patches: torch.Tensor | None = None):
    """Edit one cell of an image's code grid and see the decoded image change.

    ``model`` has ``decode_indices`` and ``num_codes``; ``indices`` is one code grid (H, W). The right panel
    shows the chosen code: decoded alone (a grid filled with it), and its mean data patch when ``patches``
    (from :func:`code_patches`) is given.
    """
    import ipywidgets as W

    indices = indices.detach().cpu()
    h, w = indices.shape
    device = next(model.parameters()).device

    def render(row=h // 2, col=w // 2, code=int(indices[h // 2, w // 2])):
        edited = edit_code_grid(indices, row, col, code)
        images = model.decode_indices(torch.stack([indices, edited, torch.full_like(indices, code)]).to(device)).cpu()
        cell = images.shape[-1] // w
        # 13 inches for five panels (two-line titles): a slide at 1024 x 768 draws it at >= 2/3 of its size
        fig, axes = plt.subplots(1, 5 if patches is not None else 4, figsize=(13, 3.4))
        show_code_grid(edited, ax=axes[0], title=f"code grid:\n({row}, {col}) = {code}", highlight=(row, col))
        titles = ["decoded\noriginal", f"decoded, code\n{int(indices[row, col])} -> {code}", f"a grid filled\nwith code {code}"]
        for i, (ax, img, t) in enumerate(zip(axes[1:], images, titles)):
            show_images(img[None], ax=ax, title=t)
            if i < 2:   # frame the edited cell (show_images pads by 1 pixel)
                ax.add_patch(Rectangle((col * cell + 0.5, row * cell + 0.5), cell, cell, fill=False,
                                       ec=PALETTE["vermillion"], lw=2))
        if patches is not None:
            show_images(patches[code][None], ax=axes[4], title=f"code {code} in the data\n(mean patch)")
        fig.tight_layout()
        plt.show()

    controls = dict(row=W.IntSlider(min=0, max=h - 1, value=h // 2, description="row", continuous_update=False),
                    col=W.IntSlider(min=0, max=w - 1, value=w // 2, description="column", continuous_update=False),
                    code=W.IntSlider(min=0, max=model.num_codes - 1, value=int(indices[h // 2, w // 2]),
                                     description="code", continuous_update=False))
    return W.interactive(render, **controls)
