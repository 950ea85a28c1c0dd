"""Interactive "try it" widgets. Each builder's logic is a plain function, tested without a browser.

Builders return an ``ipywidgets`` widget (display it, or let it be the cell's value);
they work without a live frontend (nbval, a plain Python session).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .plots import CLASS_CMAP, show_images

__all__ = ["decode_point", "latent_plane_explorer", "latent_sliders", "sliders"]


@torch.no_grad()
def decode_point(generate, coords, device=None) -> torch.Tensor:
    """Decode one latent point (a sequence of floats) into one image (C x H x W) with ``generate``."""
    z = torch.tensor([list(map(float, coords))], dtype=torch.float32)
    if device is not None:
        z = z.to(device)
    return generate(z)[0].cpu()


def sliders(render, **ranges):
    """Build ``ipywidgets.interactive(render, ...)`` with one FloatSlider per keyword.

    ``ranges``: name -> (min, max, step, value). ``render(**values)`` draws a figure.
    """
    import ipywidgets as W

    controls = {
        k: W.FloatSlider(min=lo, max=hi, step=st, value=v, description=k, continuous_update=False)
        for k, (lo, hi, st, v) in ranges.items()
    }
    return W.interactive(render, **controls)


def latent_plane_explorer(generate, z=None, labels=None, extent: float = 3.0, device=None):
    """Move a point in the 2-D latent plane and see the decoded image.

    Left: the latent codes of the data (``z``, coloured by ``labels``) with the chosen point;
    right: ``generate`` applied to that point.
    """

    def render(z1=0.0, z2=0.0):
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.8))
        if z is not None:
            zz = z.detach().cpu()
            a.scatter(zz[:, 0], zz[:, 1], c=None if labels is None else labels.cpu(), cmap=CLASS_CMAP, vmin=-0.5, vmax=9.5, s=4, alpha=0.5)
        a.scatter([z1], [z2], marker="x", s=120, color="black", linewidths=3)
        a.set_xlim(-extent, extent)
        a.set_ylim(-extent, extent)
        a.set_xlabel("$z_1$")
        a.set_ylabel("$z_2$")
        a.set_title("Latent plane")
        show_images(decode_point(generate, (z1, z2), device)[None], title=f"Decoded z = ({z1:.1f}, {z2:.1f})", ax=b)
        plt.show()

    step = extent / 30
    return sliders(render, z1=(-extent, extent, step, 0.0), z2=(-extent, extent, step, 0.0))


def latent_sliders(generate, latent_dim: int, extent: float = 3.0, device=None, base=None, rows: int = 10):
    """One slider per latent dimension, every one of them, in a grid beside the image decoded from the point.

    The sliders fill ``ceil(latent_dim / rows)`` columns (two for 16 or 20 dimensions), so that the
    image and every slider are on screen together (JupyterLab at 1440 x 900, RISE at 1280 x 720).
    Returns an ``HBox(grid of sliders, output)``; ``box.controls`` maps "z1", "z2", ... to the sliders.
    """
    import math

    import ipywidgets as W

    base = torch.zeros(latent_dim) if base is None else base.detach().cpu().clone()
    names = [f"z{i + 1}" for i in range(latent_dim)]

    def render(**values):
        z = base.clone()
        for i, name in enumerate(names):
            z[i] = values[name]
        _, ax = plt.subplots(figsize=(3, 3))
        show_images(decode_point(generate, z.tolist(), device)[None], title="Decoded image", ax=ax)
        plt.show()

    controls = {name: W.FloatSlider(min=-extent, max=extent, step=extent / 20, value=float(base[i]), description=name,
                                    continuous_update=False, readout_format=".1f",
                                    style={"description_width": "2.2em"}, layout=W.Layout(width="auto"))
                for i, name in enumerate(names)}
    columns = max(1, math.ceil(latent_dim / rows))
    grid = W.GridBox(list(controls.values()), layout=W.Layout(
        grid_template_columns=f"repeat({columns}, minmax(0, 1fr))", grid_gap="0 12px", width=f"{min(30 * columns, 64)}em",
        max_width="64%"))
    box = W.HBox([grid, W.interactive_output(render, controls)], layout=W.Layout(align_items="center"))
    box.controls = controls
    return box
