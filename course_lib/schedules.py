"""Schedules for the KL weight beta, as callbacks for :func:`course_lib.train.fit` (lesson 4).

KL warm-up (Bowman et al. 2016, "KL cost annealing"; Sønderby et al. 2016, "warm-up") trains
with the loss  E_q[-log p_theta(x|z)] + beta_t * KL(q_phi(z|x) || p(z)),  beta_t growing
linearly from ``start`` (0 by default) to ``beta_max`` over the first ``epochs`` epochs, then
held at ``beta_max``. Early on the model is (almost) an autoencoder, so the encoder learns to
put information in z before the KL term starts to pull q_phi(z|x) towards the prior.

Usage::

    warmup = kl_warmup(10, beta_max=1.0)
    model = VAE(data.shape, latent_dim=16)
    warmup.prepare(model)                      # beta of epoch 1, set BEFORE fit
    fit(model, data, epochs=30, callbacks=[warmup], checkpoint="lesson04-warmup")

``fit`` calls ``warmup(model, epoch, history)`` after each epoch; the callback sets
``model.beta`` to the value of the next epoch. ``prepare`` matters twice: ``fit`` computes
the checkpoint key from the model's hyper-parameters *when it starts*, so the first epoch's
beta and the schedule itself (stored as ``model.kl_warmup``) must be there by then; otherwise
a warm-up run and a plain run could share a checkpoint.
"""
from __future__ import annotations

__all__ = ["warmup_beta", "kl_warmup", "KLWarmup"]


def warmup_beta(epoch: int, epochs: int, beta_max: float = 1.0, start: float = 0.0) -> float:
    """The beta used **during** training epoch ``epoch`` (1-based) of a linear warm-up.

    beta = start + (beta_max - start) * min(1, (epoch - 1) / epochs):
    ``start`` in epoch 1, ``beta_max`` from epoch ``epochs + 1`` on (``epochs = 0``: no warm-up).
    """
    if epoch < 1:
        raise ValueError(f"epochs are counted from 1 (as in fit), got epoch={epoch}.")
    if epochs < 0:
        raise ValueError(f"the warm-up length must be >= 0 epochs, got {epochs}.")
    if epochs == 0:
        return float(beta_max)
    frac = min(1.0, (epoch - 1) / epochs)
    return float(start + (beta_max - start) * frac)


class KLWarmup:
    """Callback ``cb(model, epoch, history)`` for ``fit``: a linear KL warm-up (see the module doc).

    ``cb.beta(epoch)`` is the weight of a (1-based) epoch; ``cb.prepare(model)`` sets the first
    epoch's weight and records the schedule on the model before ``fit`` starts.
    """

    def __init__(self, epochs: int, beta_max: float = 1.0, start: float = 0.0):
        if epochs < 0:
            raise ValueError(f"the warm-up length must be >= 0 epochs, got {epochs}.")
        if beta_max < 0 or start < 0:
            raise ValueError(f"beta must be >= 0, got start={start}, beta_max={beta_max}.")
        self.epochs = int(epochs)
        self.beta_max = float(beta_max)
        self.start = float(start)

    def __repr__(self) -> str:
        return f"kl_warmup(epochs={self.epochs}, beta_max={self.beta_max}, start={self.start})"

    def beta(self, epoch: int) -> float:
        """beta during training epoch ``epoch`` (1-based)."""
        return warmup_beta(epoch, self.epochs, self.beta_max, self.start)

    @property
    def initial(self) -> float:
        """beta of the first epoch: what ``model.beta`` must be when ``fit`` starts."""
        return self.beta(1)

    def prepare(self, model):
        """Set ``model.beta`` to the first epoch's value and record the schedule on the model
        (``model.kl_warmup``, a tuple that ``fit``'s checkpoint key includes). Returns the model."""
        model.beta = self.initial
        model.kl_warmup = (self.epochs, self.beta_max, self.start)
        return model

    def __call__(self, model, epoch: int, history=None) -> None:
        """Called by ``fit`` after epoch ``epoch``: set the weight of epoch ``epoch + 1``."""
        model.beta = self.beta(epoch + 1)


def kl_warmup(epochs: int, beta_max: float = 1.0, start: float = 0.0) -> KLWarmup:
    """A linear KL warm-up over ``epochs`` epochs, from ``start`` to ``beta_max``, as a ``fit`` callback.

    Call ``.prepare(model)`` (or set ``model.beta = cb.initial``) before ``fit``.
    """
    return KLWarmup(epochs, beta_max, start)
