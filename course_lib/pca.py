"""Principal component analysis in PyTorch (lesson 1: the linear baseline of an autoencoder).

PCA is the best *linear* autoencoder for the squared error: with encoder
E(x) = W^T (x - m) and decoder D(z) = W z + m, W the d leading right singular
vectors of the centred data, ||D(E(x)) - x||^2 averaged over the training set is
the smallest any rank-d linear map reaches (Eckart-Young), and equals the sum of
the discarded eigenvalues of the covariance (with the 1/N normalisation).

Works on any (N, ...) tensor: examples are flattened to vectors and
:meth:`PCA.inverse_transform` gives them their shape back.
"""
from __future__ import annotations

import torch

__all__ = ["PCA"]


class PCA:
    """PCA by a singular value decomposition of the centred data.

    ``fit(x)`` learns ``mean_`` (D,), ``components_`` (d, D, orthonormal rows) and
    ``explained_variance_`` (d,); ``transform(x)`` -> codes (N, d);
    ``inverse_transform(z)`` -> reconstructions with the shape of the fitted examples.
    """

    def __init__(self, n_components: int):
        if int(n_components) < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}.")
        self.n_components = int(n_components)
        self.mean_ = None
        self.components_ = None
        self.explained_variance_ = None
        self.total_variance_ = None
        self.shape = None

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.ndim < 2:
            raise ValueError("PCA expects a tensor of examples of shape (N, ...) with N >= 1.")
        return x.reshape(len(x), -1)

    def fit(self, x: torch.Tensor) -> "PCA":
        """Learn the mean and the ``n_components`` leading principal directions of ``x``."""
        flat = self._flat(x).double()
        n, dim = flat.shape
        if self.n_components > min(n, dim):
            raise ValueError(f"n_components={self.n_components} exceeds min(N, D) = {min(n, dim)}.")
        self.shape = tuple(x.shape[1:])
        mean = flat.mean(0)
        centred = flat - mean
        # centred = U S V^T: the rows of V^T are the principal directions, S^2 / N the variances
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        var = s**2 / n
        self.mean_ = mean.to(x.dtype)
        self.components_ = vh[: self.n_components].to(x.dtype)
        self.explained_variance_ = var[: self.n_components].to(x.dtype)
        self.total_variance_ = var.sum().to(x.dtype)
        return self

    def _check_fitted(self):
        if self.components_ is None:
            raise RuntimeError("call fit(x) before transform or inverse_transform.")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Codes z = W^T (x - m), shape (N, n_components)."""
        self._check_fitted()
        flat = self._flat(x)
        if flat.shape[1] != self.components_.shape[1]:
            raise ValueError(f"PCA was fitted on examples of {self.components_.shape[1]} values, "
                             f"got {flat.shape[1]}.")
        return (flat - self.mean_.to(flat)) @ self.components_.to(flat).T

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions W z + m, shaped like the fitted examples."""
        self._check_fitted()
        flat = z @ self.components_.to(z) + self.mean_.to(z)
        return flat.reshape(len(z), *self.shape)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """inverse_transform(transform(x))."""
        return self.inverse_transform(self.transform(x))

    def explained_variance_ratio(self) -> torch.Tensor:
        """Share of the total variance each component explains."""
        self._check_fitted()
        return self.explained_variance_ / self.total_variance_
