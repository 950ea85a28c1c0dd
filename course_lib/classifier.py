"""A small digit classifier: the feature extractor of the course's FID and Inception Score.

The FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016) are defined with
Inception-v3 trained on ImageNet: 2048 pool features for the FID, 1000 class probabilities for
the IS. We use a small CNN trained on the digits themselves instead, because

- the Inception weights cannot be downloaded here (no internet), and
- ImageNet classes and features say little about 8x8 or 28x28 handwritten digits (they are
  meant for natural colour images of 299x299 pixels).

So our scores are "FID-digits" and "IS-digits" analogues: they rank models of the same data set
evaluated with the same classifier; they are not comparable with published numbers.

``get_classifier("digits")`` trains (once, then loads from the ``fit`` checkpoint
``classifier-<dataset>``) and returns a :class:`DigitClassifier` in eval mode, on the device,
with ``.features(x)`` (the penultimate layer, N x 64) and ``.probs(x)`` (N x 10).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageData, load_dataset
from .runtime import get_device

__all__ = ["DigitClassifier", "get_classifier"]


class DigitClassifier(nn.Module):
    """conv(16) - conv(32) - maxpool - avgpool to 4x4 - linear(feature_dim) - linear(n_classes).

    ``loss(x, y)`` returns ``{"loss": cross-entropy, "accuracy": ...}`` (nats per example and a
    fraction), so ``course_lib.train.fit`` trains it like every other model of the course.
    """

    def __init__(self, shape=(1, 8, 8), n_classes: int = 10, feature_dim: int = 64):
        super().__init__()
        self.shape = tuple(shape)
        self.n_classes = int(n_classes)
        self.feature_dim = int(feature_dim)
        c = self.shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def _check(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"the classifier was trained on images of shape {self.shape}, got a batch of shape "
                             f"{tuple(x.shape)}; reshape samples to the data's shape (x.view(-1, *data.shape)).")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (after the ReLU), N x feature_dim: the FID's features."""
        self._check(x)
        return self.body(x.float())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities p(y|x), N x n_classes: the Inception Score's input."""
        return torch.softmax(self.logits(x).float(), dim=-1)

    def forward(self, x):
        return self.logits(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        logits = self.logits(x)
        return {"loss": F.cross_entropy(logits.float(), y),
                "accuracy": (logits.argmax(-1) == y).float().mean()}

    @torch.no_grad()
    def accuracy(self, data: ImageData, batch_size: int = 1000) -> float:
        """Fraction of correctly classified examples."""
        device = next(self.parameters()).device
        correct = 0
        for x, y in data.to(device).batches(batch_size, shuffle=False):
            correct += int((self.logits(x).argmax(-1) == y).sum())
        return correct / len(data)


_CACHE: dict = {}


def get_classifier(dataset_name_or_data="digits", device=None, epochs: int | None = None,
                   progress: bool = False) -> DigitClassifier:
    """The course classifier of a data set, trained once and cached (``fit(checkpoint="classifier-<dataset>")``).

    ``dataset_name_or_data``: ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (its training split is
    loaded) or an :class:`ImageData` to train on. ``epochs`` defaults to 15 on digits and 5 on the
    28x28 sets, more on a 28x28 subset so that training takes at least ~2,000 steps (about 99 % test
    accuracy on MNIST, 97-98 % on digits). Returned in eval mode;
    gradients are not needed for FID/IS, so call it under ``torch.no_grad()``.
    """
    from .train import fit

    device = get_device(device)
    if isinstance(dataset_name_or_data, ImageData):
        data = dataset_name_or_data
        name = data.name or "custom"
    else:
        name = str(dataset_name_or_data).lower().replace("_", "-")
        data = load_dataset(name, "train", device=device)
    batch_size = 64 if len(data) < 10_000 else 128
    if epochs is None:  # 5 epochs of full MNIST; at least ~2,000 steps on a smaller set of 28x28 images
        epochs = 15 if data.shape[-1] <= 16 else max(5, math.ceil(2000 * batch_size / len(data)))
    key = (name, data.split, len(data), tuple(data.shape), str(device), epochs)
    if key in _CACHE:
        return _CACHE[key]
    n_classes = max(int(data.labels.max()) + 1, len(data.classes) or 0)
    torch.manual_seed(0)
    model = DigitClassifier(tuple(data.shape), n_classes)
    fit(model, data, epochs=epochs, batch_size=batch_size, lr=1e-3,
        device=device, checkpoint=f"classifier-{name}", progress=progress)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _CACHE[key] = model
    return model
