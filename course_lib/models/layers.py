"""Small building blocks shared by the models."""
from __future__ import annotations

from torch import nn

__all__ = ["mlp", "check_input"]


def mlp(sizes, activation=nn.ReLU, final_activation=None) -> nn.Sequential:
    """A multi-layer perceptron: Linear(sizes[0], sizes[1]), activation, ..., Linear(sizes[-2], sizes[-1])."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    if final_activation is not None:
        layers.append(final_activation())
    return nn.Sequential(*layers)


def check_input(x, shape, model: str) -> None:
    """Raise a clear error when a batch does not have the shape a model was built for."""
    import torch

    if not torch.is_tensor(x):
        raise TypeError(f"{model} expects a torch.Tensor batch, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"{model} expects float pixels in [0, 1], got dtype {x.dtype}; use x.float() / 255.")
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{model} was built for examples of shape {tuple(shape)} but got a batch of shape {tuple(x.shape)}; "
            "build the model with the dataset's shape (data.shape)."
        )
