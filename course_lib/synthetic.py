"""A small image data set whose generative factors are known (lesson 4, disentanglement).

``squares()`` draws one white square on a black 28x28 canvas for every combination of three
factors: its centre's x position, its centre's y position and its side. The factors are
independent and uniform by construction (a full grid, as in dSprites, Matthey et al. 2017), so
a representation can be scored by how its units line up with them. Nothing is random: the same
call returns the same images on every machine and under every course seed.

``mutual_information(codes, factors)`` estimates I(z_j; v_k) for each latent unit j and factor k
from a histogram (each unit cut at its quantiles into bins of equal count), and ``mig(mi, entropies)`` is the mutual
information gap of Chen et al. (2018): for each factor, the gap between the two units that know
most about it, as a fraction of the factor's entropy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import ImageData
from .runtime import get_device

__all__ = ["FACTOR_NAMES", "FactorData", "squares", "factor_entropies", "mutual_information", "mig"]

FACTOR_NAMES = ("x position", "y position", "size")


@dataclass
class FactorData:
    """Images with their factors: ``data`` an :class:`ImageData` (label = the size index), ``factors``
    (N, K) int64 grid indices, ``values`` the K tensors of each factor's values (pixels), ``names``."""

    data: ImageData
    factors: torch.Tensor
    values: tuple
    names: tuple = FACTOR_NAMES

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        levels = ", ".join(f"{n}: {len(v)} values" for n, v in zip(self.names, self.values))
        return f"FactorData(n={len(self)}, shape={tuple(self.data.shape)}, factors: {levels})"


def squares(xs=tuple(range(6, 23, 2)), ys=None, sides=(4, 6, 8, 10), canvas: int = 28, device=None) -> FactorData:
    """One filled square for every (x, y, side) of the grid ``xs x ys x sides``.

    ``xs``, ``ys``: centre coordinates in pixels (columns, rows; ``ys`` defaults to ``xs``); ``sides``: side
    lengths in pixels. A square of side s centred at c covers pixels c - s/2 <= i < c + s/2 (so every
    square of a given side has the same area, wherever it is). Pixels are 0 or 1.
    """
    xs = torch.as_tensor(xs, dtype=torch.float32)
    ys = xs if ys is None else torch.as_tensor(ys, dtype=torch.float32)
    sides = torch.as_tensor(sides, dtype=torch.float32)
    for name, c in (("x", xs), ("y", ys)):
        if (c - sides.max() / 2 < 0).any() or (c + sides.max() / 2 > canvas).any():
            raise ValueError(f"a square of side {sides.max():g} centred at {name} = {c.tolist()} leaves the "
                             f"{canvas}x{canvas} canvas: move the positions inwards or use smaller sides.")
    iy, ix, isz = torch.meshgrid(torch.arange(len(ys)), torch.arange(len(xs)), torch.arange(len(sides)), indexing="ij")
    factors = torch.stack([ix.flatten(), iy.flatten(), isz.flatten()], dim=1)     # (N, 3): x, y, size indices
    cx, cy, s = xs[factors[:, 0]], ys[factors[:, 1]], sides[factors[:, 2]]
    grid = torch.arange(canvas, dtype=torch.float32)
    inside_x = (grid[None, :] >= (cx - s / 2)[:, None]) & (grid[None, :] < (cx + s / 2)[:, None])   # (N, W)
    inside_y = (grid[None, :] >= (cy - s / 2)[:, None]) & (grid[None, :] < (cy + s / 2)[:, None])   # (N, H)
    images = (inside_y[:, :, None] & inside_x[:, None, :]).float().unsqueeze(1)                     # (N, 1, H, W)
    device = get_device(device)
    data = ImageData(images.to(device), factors[:, 2].to(device), [f"side {v:g}" for v in sides.tolist()],
                     "squares", "all")
    return FactorData(data, factors.to(device), (xs, ys, sides))


def factor_entropies(factors: torch.Tensor) -> torch.Tensor:
    """H(v_k) in nats of each factor's empirical distribution: (K,)."""
    out = []
    for k in range(factors.shape[1]):
        p = torch.bincount(factors[:, k].cpu()).float()
        p = p[p > 0] / p.sum()
        out.append(-(p * p.log()).sum())
    return torch.stack(out)


def _bins(u: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin index (0 .. n_bins - 1) of each value of u, the bins cut at u's quantiles (equal counts when u has no
    ties; equal values always share a bin)."""
    edges = torch.quantile(u.double(), torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1])
    return torch.bucketize(u.double(), edges, right=True)


def mutual_information(codes: torch.Tensor, factors: torch.Tensor, n_bins: int = 10) -> torch.Tensor:
    """Plug-in estimate of I(z_j; v_k) in nats, (d, K): unit j of ``codes`` (N, d) cut at its quantiles into
    ``n_bins`` bins, factor k of ``factors`` (N, K) a grid index."""
    codes, factors = codes.detach().cpu(), factors.cpu()
    n, d = codes.shape
    mi = torch.zeros(d, factors.shape[1])
    for j in range(d):
        b = _bins(codes[:, j], n_bins)
        for k in range(factors.shape[1]):
            v = factors[:, k]
            joint = torch.zeros(n_bins, int(v.max()) + 1)
            joint.index_put_((b, v), torch.ones(n), accumulate=True)
            joint /= n
            outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
            nz = joint > 0
            mi[j, k] = (joint[nz] * (joint[nz] / outer[nz]).log()).sum()
    return mi


def mig(mi: torch.Tensor, entropies: torch.Tensor) -> torch.Tensor:
    """Mutual information gap per factor (Chen et al. 2018): (largest - second largest I(z_j; v_k)) / H(v_k), (K,)."""
    top2 = mi.topk(2, dim=0).values                     # (2, K)
    return (top2[0] - top2[1]) / entropies
