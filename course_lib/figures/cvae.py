"""Lesson 6 helpers: halves of digits, a generator's accuracy per class, figures and the class-mixing widget.

The ideas (concatenation, the conditional ELBO) live in :mod:`course_lib.models.cvae` and in the
lesson; this module holds the plumbing the slides import.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..models.cvae import soft_label
from ..plots import PALETTE, decode_grid, show_images

__all__ = ["split_halves", "join_halves", "generated_class_accuracy", "accuracy_bars", "completion_grid",
           "mixing_row", "class_mixer", "score_table", "prior_hole_figure", "class_grids"]


def split_halves(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper, lower) halves of N x C x H x W images, each N x C x H/2 x W."""
    if images.ndim != 4 or images.shape[2] % 2:
        raise ValueError(f"expected N x C x H x W images with an even height, got shape {tuple(images.shape)}.")
    h = images.shape[2] // 2
    return images[:, :, :h], images[:, :, h:]


def join_halves(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """Stack an upper and a lower half back into whole images."""
    return torch.cat([upper, lower], dim=2)


@torch.no_grad()
def generated_class_accuracy(sample, classifier, num_classes: int = 10, n_per_class: int = 100,
                             seed: int = 0) -> torch.Tensor:
    """Fraction of ``sample(n, c)``'s images that ``classifier`` assigns to the requested class c, per class.

    ``sample(n, c)``: n images of class c (e.g. ``CVAE.sample``); ``classifier``: an object with
    ``.probs(x)``. Returns a tensor of ``num_classes`` accuracies. ``seed`` fixes the draws of z
    (moved by ``COURSE_SEED``, :func:`course_lib.runtime.make_generator`).
    """
    from ..runtime import make_generator

    g = make_generator(seed)
    acc = torch.zeros(num_classes)
    for c in range(num_classes):
        x = sample(n_per_class, c, generator=g)
        acc[c] = (classifier.probs(x).argmax(1).cpu() == c).float().mean()
    return acc


def accuracy_bars(acc_per_seed: torch.Tensor, ax=None, title: str = "", classes=None):
    """Bars of the mean accuracy per class over seeds (rows of ``acc_per_seed``) with their spread (std)."""
    acc = torch.as_tensor(acc_per_seed, dtype=torch.float32)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    mean, std = acc.mean(0).numpy(), acc.std(0).numpy() if len(acc) > 1 else np.zeros(acc.shape[1])
    k = np.arange(acc.shape[1])
    ax.bar(k, mean, yerr=std, capsize=4, color=PALETTE["sky"], edgecolor=PALETTE["blue"],
           label=f"mean over {len(acc)} seeds (bar: ± 1 std)")
    ax.axhline(0.9, color=PALETTE["vermillion"], ls="--", label="90 %")
    ax.set_xticks(k, classes if classes is not None else [str(i) for i in k])
    ax.set(ylim=(0, 1.05), xlabel="requested class y", ylabel="accuracy of the classifier", title=title)
    ax.legend(loc="lower left", fontsize=12)
    return ax


def completion_grid(upper, truth, blur, samples, ax=None, title: str = ""):
    """One row per example: true digit | deterministic prediction | CVAE completions (joined to the upper half).

    ``upper``, ``truth``, ``blur``: (n, C, h, W); ``samples``: (n, s, C, h, W).
    """
    n, s = samples.shape[:2]
    rows = []
    for i in range(n):
        u = upper[i:i + 1]
        rows += [join_halves(u, truth[i:i + 1]), join_halves(u, blur[i:i + 1]),
                 join_halves(u.expand(s, *u.shape[1:]), samples[i])]
    ax = show_images(torch.cat(rows).cpu(), nrow=s + 2, title=title, ax=ax)
    return ax


@torch.no_grad()
def mixing_row(generate, z: torch.Tensor, a: int, b: int, ts, num_classes: int = 10) -> torch.Tensor:
    """Decoder means of one code z (shape (d,)) with the soft labels (1 - t) one_hot(a) + t one_hot(b)."""
    y = torch.stack([soft_label(a, b, float(t), num_classes) for t in ts]).to(z.device)
    return generate(z.reshape(1, -1).expand(len(y), -1), y)


def class_mixer(generate, z: torch.Tensor, num_classes: int = 10, classifier=None):
    """Widget: two class pickers and a mixing slider t; shows the decoded soft label for a few codes z
    (rows of ``z``) and, with a classifier, its probability of each of the two classes."""
    import ipywidgets as W

    def render(a=4, b=9, t=0.5):
        y = soft_label(a, b, t, num_classes).to(z.device).expand(len(z), -1)
        x = generate(z, y)
        fig, ax = plt.subplots(figsize=(2.2 * len(z), 2.8))
        title = f"y = {1 - t:.2f} x one_hot({a}) + {t:.2f} x one_hot({b})"
        if classifier is not None:
            p = classifier.probs(x).mean(0)
            title += f"\nclassifier: p({a}) = {p[a]:.2f}, p({b}) = {p[b]:.2f}"
        show_images(x.cpu(), nrow=len(z), title=title, ax=ax)
        plt.show()

    classes = list(range(num_classes))
    return W.interactive(render, a=W.Dropdown(options=classes, value=4, description="class a"),
                         b=W.Dropdown(options=classes, value=9, description="class b"),
                         t=W.FloatSlider(min=0.0, max=1.0, step=0.05, value=0.5, description="mix t",
                                         continuous_update=False))


def score_table(table: dict, columns=("FID-digits", "IS-digits", "confidence")) -> str:
    """A text table of ``{model: [(score_1, score_2, ...) per seed]}``: mean ± std over seeds per column."""
    lines = [f"{'model':<8}" + "".join(f"{c:>18}" for c in columns)]
    for name, rows in table.items():
        t = torch.as_tensor(rows, dtype=torch.float64).reshape(len(rows), -1)
        std = t.std(0) if len(t) > 1 else torch.zeros(t.shape[1])
        lines.append(f"{name:<8}" + "".join(f"{m:>11.2f} ± {s:<5.2f}" for m, s in zip(t.mean(0), std)))
    return "\n".join(lines)


def class_grids(generate, classes, values, device=None):
    """For each class y of ``classes``, ``generate(z, y)`` on the grid ``values`` x ``values`` of (z_1, z_2),
    side by side (:func:`course_lib.plots.decode_grid`); returns (fig, axes)."""
    fig, axes = plt.subplots(1, len(classes), figsize=(6 * len(classes), 6), squeeze=False)
    n = len(values)
    for ax, c in zip(axes[0], classes):
        decode_grid(lambda zz, c=c: generate(zz, torch.full((len(zz),), c, device=zz.device)), values=values,
                    device=device, ax=ax, title=f"y = {c}, z on a {n} x {n} grid")
    return fig, axes[0]


def prior_hole_figure(codes: torch.Tensor, labels: torch.Tensor, cls: int, ax=None, title: str = ""):
    """2-D posterior means of every class (grey) and of class ``cls`` (colour), over the 1-, 2- and 3-sigma
    circles of N(0, I), with the class's mean code marked."""
    codes, labels = torch.as_tensor(codes).float(), torch.as_tensor(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5))
    mine = labels == cls
    ax.scatter(codes[~mine, 0], codes[~mine, 1], s=6, color="0.75", label="other classes")
    ax.scatter(codes[mine, 0], codes[mine, 1], s=12, color=PALETTE["vermillion"], label=f"class {cls}")
    centre = codes[mine].mean(0)
    ax.plot(*centre, marker="X", ms=14, color=PALETTE["black"], ls="none", label=f"mean of class {cls}")
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2, 3):
        ax.plot(r * np.cos(t), r * np.sin(t), color=PALETTE["blue"], lw=1, ls="--" if r > 1 else "-")
    ax.set_aspect("equal")
    ax.set(xlabel="z_1", ylabel="z_2", title=title)
    ax.legend(fontsize=12, loc="upper right")
    return ax
