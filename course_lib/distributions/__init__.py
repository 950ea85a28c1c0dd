"""Distributions the course adds to ``torch.distributions``, one module each.

- :mod:`.von_mises_fisher`: ``VonMisesFisher(loc, scale)`` on the sphere S^(m-1) and
  ``HypersphericalUniform(dim)``, with ``kl_divergence`` between them registered (lesson 9);
- :mod:`.mixture`: ``MixtureOfGaussians(logits, loc, scale)`` over R^d and
  ``kl_mixture_upper_bound(q, p)`` and ``kl_mixture_tight_bound(q, p)`` (lesson 10).

Each module is imported on first use of one of its names.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "VonMisesFisher": "von_mises_fisher",
    "HypersphericalUniform": "von_mises_fisher",
    "MixtureOfGaussians": "mixture",
    "kl_mixture_upper_bound": "mixture",
    "kl_mixture_tight_bound": "mixture",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
