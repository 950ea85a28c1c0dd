"""The VQ-VAE (lesson 7): a discrete latent grid, a learned codebook, the straight-through gradient.

Seed 002, "VQ-VAE" (van den Oord, Vinyals, Kavukcuoglu 2017, *Neural Discrete Representation
Learning*). The encoder maps an image to a grid of vectors z_e(x) (code_dim x H x W); each vector is
replaced by its nearest code of a codebook {e_1, ..., e_K}:

    k = argmin_j ||z_e(x) - e_j||_2,   z_q(x) = e_k,

so q(z = k | x) = 1 for the nearest code and 0 otherwise (a categorical, deterministic posterior). With a
uniform prior p(z) over the K codes of each of the N grid positions, KL(q || p) = N log K, a constant: the
VQ-ELBO is log p_theta(x | z_q(x)) - N log K. The argmin has no gradient, so the decoder's input gradient
is copied to the encoder's output (straight-through, ``z_e + sg[z_q - z_e]``). The loss, in nats per example
(summed over pixels, grid positions and code dimensions, averaged over the batch), is

    -log p_theta(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + omega ||z_e(x) - sg[e]||^2,

the reconstruction term, the codebook term (moves the codes only) and the commitment term (moves the
encoder only), weighted by omega (``commitment_weight``; the paper calls it beta, a symbol this course keeps
for the KL weight of the beta-VAE).

Codebook health: ``ema=True`` replaces the codebook term by exponential moving averages (appendix A.1
of the paper) with Laplace smoothing; ``restart_after=n`` re-initialises a code unused for n training
steps from a random encoder output of the current batch; ``data_init=True`` sets the codebook from
encoder outputs at the first training step.

``lesson7_vqvae(train)`` builds and trains (or loads) the lesson's main model; lesson 8 trains a
PixelCNN prior on its code grids.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent

from .layers import check_input

__all__ = ["VectorQuantizer", "EMAVectorQuantizer", "VQVAE", "VQOutput", "nearest_codes", "codebook_loss",
           "commitment_loss", "straight_through", "perplexity", "code_histogram", "lesson7_vqvae",
           "lesson7_config", "watch_codes"]


# --- the math of the lesson, one small function each ------------------------------------------------------

def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """k(z) = argmin_j ||z - e_j||^2 for each row z of ``z`` (N, D); ``codebook`` (K, D) -> indices (N,).

    Uses ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2 (one matrix product, no N x K x D tensor).
    """
    d = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)[None, :]
    return d.argmin(dim=1)


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_e + sg[z_q - z_e]: equals z_q in the forward pass, passes the gradient to z_e unchanged."""
    return z_e + (z_q - z_e).detach()


def codebook_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||sg[z_e] - e||^2 per example (summed over all but the first axis): moves the codes only."""
    return (z_e.detach() - z_q).pow(2).flatten(1).sum(1)


def commitment_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||z_e - sg[e]||^2 per example (summed over all but the first axis): moves the encoder only."""
    return (z_e - z_q.detach()).pow(2).flatten(1).sum(1)


def code_histogram(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each of the ``num_codes`` codes is used in ``indices`` (any shape): counts, (K,)."""
    return torch.bincount(indices.reshape(-1), minlength=num_codes)


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(H(p)), p_k = fraction of the positions in ``indices`` assigned to code k.

    K when the K codes are used equally often, 1 when a single code is used; never more than the number
    of positions, so a small batch under-estimates the codebook's usage.
    """
    p = code_histogram(indices, num_codes).float()
    p = p / p.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class VQOutput(NamedTuple):
    quantized: torch.Tensor     # z_e + sg[z_q - z_e], shape of z_e
    vq_loss: torch.Tensor       # what the quantizer adds to the loss, per example averaged over the batch
    indices: torch.Tensor       # (B, H, W) nearest codes
    codebook: torch.Tensor      # ||sg[z_e] - e||^2, batch mean
    commitment: torch.Tensor    # ||z_e - sg[e]||^2, batch mean (unweighted)
    perplexity: torch.Tensor    # of this batch's assignments


# --- quantizers ---------------------------------------------------------------------------------------------

class VectorQuantizer(nn.Module):
    """Nearest-code quantization of a grid of vectors, trained by the codebook and commitment terms.

    ``VectorQuantizer(num_codes=K, code_dim=D, commitment_weight=0.25)``: ``forward(z_e)`` with z_e of shape
    (B, D, H, W) returns ``(quantized, vq_loss, indices)``: ``quantized`` equals the nearest codes and carries the
    straight-through gradient to z_e; ``vq_loss = codebook + omega * commitment`` (omega = ``commitment_weight``;
    ``beta=`` is accepted as its older name) (nats-per-example
    convention: summed over positions and dimensions, averaged over the batch); ``indices`` (B, H, W).

    Remedies for dead codes: ``restart_after=n`` (a code unused for n training steps is moved onto a
    random encoder output of the current batch); ``data_init=True`` (the first training batch sets the
    codebook from random encoder outputs).
    """

    def __init__(self, num_codes: int, code_dim: int, commitment_weight: float = 0.25,
                 restart_after: int | None = None, data_init: bool = False, *, beta: float | None = None):
        super().__init__()
        if beta is not None:   # the older name of the commitment weight
            commitment_weight = beta
        if int(num_codes) < 1 or int(code_dim) < 1:
            raise ValueError(f"num_codes and code_dim must be positive integers, got {num_codes} and {code_dim}.")
        if commitment_weight < 0:
            raise ValueError(f"commitment_weight (omega) must be >= 0, got {commitment_weight}.")
        if restart_after is not None and int(restart_after) < 1:
            raise ValueError(f"restart_after must be a positive number of steps or None, got {restart_after}.")
        self.num_codes = int(num_codes)
        self.code_dim = int(code_dim)
        self.commitment_weight = float(commitment_weight)
        self.restart_after = None if restart_after is None else int(restart_after)
        self.data_init = bool(data_init)
        self._init_codebook()
        self.register_buffer("unused_steps", torch.zeros(self.num_codes, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(not self.data_init))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    def _init_codebook(self):
        bound = 1.0 / self.num_codes  # the small uniform initialisation of the paper's reference code
        self.codebook = nn.Parameter(torch.empty(self.num_codes, self.code_dim).uniform_(-bound, bound))

    @property
    def beta(self) -> float:
        """The commitment weight under its older name (see ``commitment_weight``)."""
        return self.commitment_weight

    @property
    def codes(self) -> torch.Tensor:
        """The codebook e_1..e_K, (K, D)."""
        return self.codebook

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, code_dim={self.code_dim}, commitment_weight={self.commitment_weight}, "
                f"restart_after={self.restart_after}, data_init={self.data_init}")

    def _check(self, z_e: torch.Tensor) -> None:
        if not torch.is_tensor(z_e) or z_e.ndim != 4 or z_e.shape[1] != self.code_dim:
            shape = tuple(z_e.shape) if torch.is_tensor(z_e) else type(z_e).__name__
            raise ValueError(f"the quantizer expects z_e of shape (batch, code_dim={self.code_dim}, H, W), got "
                             f"{shape}; give it the encoder's output grid.")

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of an index grid (B, H, W) -> (B, D, H, W)."""
        if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"code indices must be integers, got dtype {indices.dtype}; use indices.long().")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(f"code indices must lie in 0..{self.num_codes - 1}, got values in "
                             f"{int(indices.min())}..{int(indices.max())}.")
        return self.codes[indices.long()].permute(0, 3, 1, 2).contiguous()

    def quantize(self, z_e: torch.Tensor) -> VQOutput:
        """Every output of the quantizer (see :class:`VQOutput`)."""
        self._check(z_e)
        with torch.autocast(z_e.device.type, enabled=False):   # distances in float32, even under bf16 autocast
            z_e = z_e.float()
            b, d, h, w = z_e.shape
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
            if self.training and not bool(self.initialised):
                self._data_init(flat.detach())
            with torch.no_grad():
                idx = nearest_codes(flat, self.codes)
            if self.training:
                self._update(flat.detach(), idx)
            indices = idx.view(b, h, w)
            z_q = self.codes[idx].view(b, h, w, d).permute(0, 3, 1, 2)
            cb = codebook_loss(z_e, z_q).mean()
            cm = commitment_loss(z_e, z_q).mean()
            quantized = straight_through(z_e, z_q)
            ppl = perplexity(indices, self.num_codes).detach()
        return VQOutput(quantized, self._vq_loss(cb, cm), indices, cb, cm, ppl)

    def _vq_loss(self, cb, cm):
        return cb + self.commitment_weight * cm

    def forward(self, z_e: torch.Tensor):
        out = self.quantize(z_e)
        return out.quantized, out.vq_loss, out.indices

    # --- codebook health ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _data_init(self, flat: torch.Tensor) -> None:
        pick = torch.randint(len(flat), (self.num_codes,), device=flat.device)
        self._set_codes(torch.arange(self.num_codes, device=flat.device), flat[pick])
        self.initialised.fill_(True)

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, values: torch.Tensor) -> None:
        self.codebook.data[which] = values

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """After the assignment of a training batch: count unused steps, restart dead codes."""
        used = code_histogram(idx, self.num_codes) > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)
        if self.restart_after is not None:
            self.restart_dead_codes(flat)

    @torch.no_grad()
    def restart_dead_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Move every code unused for ``restart_after`` steps onto a random row of ``flat`` (encoder
        outputs, (N, D)); returns the indices of the restarted codes."""
        dead = (self.unused_steps >= (self.restart_after or 1)).nonzero().flatten()
        if len(dead):
            pick = torch.randint(len(flat), (len(dead),), device=flat.device)
            self._set_codes(dead, flat[pick])
            self.unused_steps[dead] = 0
            self.restarts += len(dead)
        return dead


class EMAVectorQuantizer(VectorQuantizer):
    """Codebook learned by exponential moving averages (van den Oord et al. 2017, appendix A.1).

    For the assignments of the current batch, n_k = number of vectors assigned to code k and
    s_k = their sum:

        N_k <- rho N_k + (1 - rho) n_k,   m_k <- rho m_k + (1 - rho) s_k,   e_k = m_k / N~_k,

    with Laplace smoothing N~_k = (N_k + eps) / (N + K eps) * N, N = sum_k N_k (so no code divides by 0).
    The cluster sizes N_k start at 1 and m_k at e_k (not at 0: a first update would otherwise pull
    every code towards 0). ``decay`` is rho (the paper's gamma; this course keeps gamma for the decoder's
    standard deviation). ``vq_loss = omega * commitment`` (the codebook term has no gradient to give).
    """

    def __init__(self, num_codes: int, code_dim: int, commitment_weight: float = 0.25, decay: float = 0.99,
                 eps: float = 1e-5, restart_after: int | None = None, data_init: bool = False, *,
                 beta: float | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay (rho) must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.eps = float(eps)
        super().__init__(num_codes, code_dim, commitment_weight, restart_after, data_init, beta=beta)

    def _init_codebook(self):
        init = torch.randn(self.num_codes, self.code_dim)
        self.register_buffer("codebook", init.clone())
        self.register_buffer("cluster_size", torch.ones(self.num_codes))
        self.register_buffer("code_sum", init.clone())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", decay={self.decay}, eps={self.eps}"

    def _vq_loss(self, cb, cm):
        return self.commitment_weight * cm

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, values: torch.Tensor) -> None:
        self.codebook[which] = values
        self.code_sum[which] = values
        self.cluster_size[which] = 1.0

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """One EMA step with the assignments ``idx`` of the vectors ``flat`` (N, D) of the current batch."""
        one_hot = F.one_hot(idx, self.num_codes).type_as(flat)            # (N, K)
        n = one_hot.sum(0)                                                # n_k
        s = one_hot.t() @ flat                                            # s_k, (K, D)
        rho = self.decay
        self.cluster_size.mul_(rho).add_((1 - rho) * n)
        self.code_sum.mul_(rho).add_((1 - rho) * s)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_(self.code_sum / smoothed[:, None])

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        self.ema_update(flat, idx)
        super()._update(flat, idx)


# --- the model ---------------------------------------------------------------------------------------------

class VQVAE(nn.Module):
    """A small convolutional VQ-VAE for 28x28 images: a 7x7 grid of codes, Bernoulli decoder.

    Encoder: conv 4x4 stride 2 (28 -> 14), conv 4x4 stride 2 (14 -> 7), conv 1x1 to ``code_dim``.
    Decoder: conv 3x3, transposed conv (7 -> 14), transposed conv (14 -> 28) to pixel logits,
    p_theta(x | z_q) = prod Bernoulli(x_i | sigmoid(logit_i)).

    ``loss(x)`` returns, in nats per example: ``loss`` (what is minimised), ``recon`` (-log p(x | z_q)),
    ``codebook`` (||sg[z_e] - e||^2, reported but not minimised with ``ema=True``), ``commitment``
    (||z_e - sg[e]||^2, unweighted), ``kl`` (= N log K, constant), ``neg_elbo`` (recon + kl, the negative
    VQ-ELBO) and ``perplexity`` (of the batch's codes).
    """

    def __init__(self, shape=(1, 28, 28), num_codes: int = 32, code_dim: int = 16, hidden: int = 32,
                 commitment_weight: float = 0.25, ema: bool = True, decay: float = 0.99,
                 restart_after: int | None = 20, data_init: bool = False, *, beta: float | None = None):
        super().__init__()
        if beta is not None:   # the older name of the commitment weight
            commitment_weight = beta
        self.shape = tuple(shape)
        c, h, w = self.shape
        if h % 4 or w % 4:
            raise ValueError(f"VQVAE halves the image twice: height and width must be multiples of 4, got {self.shape}.")
        self.grid_shape = (h // 4, w // 4)
        self.hidden = int(hidden)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, c, 4, stride=2, padding=1),
        )
        if ema:
            self.quantizer = EMAVectorQuantizer(num_codes, code_dim, commitment_weight, decay=decay,
                                                restart_after=restart_after,
                                                data_init=data_init)
        else:
            self.quantizer = VectorQuantizer(num_codes, code_dim, commitment_weight, restart_after=restart_after,
                                             data_init=data_init)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    @property
    def rate_bits(self) -> float:
        """Bits per image: (number of codes in the grid) x log2 K."""
        return self.grid_shape[0] * self.grid_shape[1] * math.log2(self.num_codes)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """z_e(x), (B, code_dim, H/4, W/4)."""
        check_input(x, self.shape, type(self).__name__)
        return self.encoder(x)

    def decode_logits(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q)

    def decode(self, z_q: torch.Tensor) -> Independent:
        """p_theta(x | z_q), a distribution over images whose log_prob sums over pixels."""
        return Independent(Bernoulli(logits=self.decode_logits(z_q).float(), validate_args=False), len(self.shape))

    def loss(self, x: torch.Tensor, y=None) -> dict:
        out = self.quantizer.quantize(self.encode_latent(x))
        recon = -self.decode(out.quantized).log_prob(x).mean()
        kl = torch.tensor(self.grid_shape[0] * self.grid_shape[1] * math.log(self.num_codes), device=x.device)
        return {"loss": recon + out.vq_loss, "recon": recon, "codebook": out.codebook.detach(),
                "commitment": out.commitment.detach(), "kl": kl, "neg_elbo": recon.detach() + kl,
                "perplexity": out.perplexity}

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """The code grid of each image: (B, H/4, W/4) integers in 0..K-1 (no codebook update)."""
        was = self.quantizer.training
        self.quantizer.eval()
        try:
            return self.quantizer.quantize(self.encode_latent(x)).indices
        finally:
            self.quantizer.train(was)

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images (pixel probabilities, B x C x H x W) decoded from code grids (B, H/4, W/4)."""
        if indices.ndim != 3 or tuple(indices.shape[1:]) != self.grid_shape:
            raise ValueError(f"decode_indices expects a batch of code grids of shape (B, {self.grid_shape[0]}, "
                             f"{self.grid_shape[1]}), got {tuple(indices.shape)}; add a batch axis with [None].")
        return torch.sigmoid(self.decode_logits(self.quantizer.lookup(indices.to(self.quantizer.codes.device))).float())

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of p_theta(x | z_q(x))."""
        return self.decode_indices(self.encode_indices(x))


# --- watching the codes during training --------------------------------------------------------------------

def watch_codes(probe: torch.Tensor):
    """A ``fit`` callback that logs, after every epoch, on the fixed images ``probe``:

    - ``z_norm``: mean ||z_e(x)||^2 per image (the encoder's scale: it drifts without commitment);
    - ``codes_changed``: fraction of the probe's grid positions whose code changed since the last epoch
      (NaN at the first epoch);
    - ``dead_codes``: codes that no probe position uses; ``probe_perplexity``: perplexity of the probe's codes.

    The values go into ``history.train``, so they are saved with the checkpoint.
    """
    state = {}

    @torch.no_grad()
    def log_codes(model, epoch, history):
        x = probe.to(next(model.parameters()).device)
        z_norm = model.encode_latent(x).float().pow(2).flatten(1).sum(1).mean()
        idx = model.encode_indices(x)
        prev = state.get("indices")
        changed = float("nan") if prev is None or prev.shape != idx.shape else float((idx != prev).float().mean())
        state["indices"] = idx
        k = model.num_codes
        for name, value in [("z_norm", float(z_norm)), ("codes_changed", changed),
                            ("dead_codes", float((code_histogram(idx, k) == 0).sum())),
                            ("probe_perplexity", float(perplexity(idx, k)))]:
            history.train.setdefault(name, []).append(value)

    return log_codes


# --- the lesson's main model (lesson 8 loads it) -------------------------------------------------------------

def lesson7_config() -> dict:
    """Sizes of the lesson's main VQ-VAE, quick / full mode (read at call time)."""
    from ..runtime import pick

    return dict(
        model=dict(num_codes=32, code_dim=16, hidden=32, commitment_weight=0.25, ema=True, decay=0.95,
                   restart_after=20),
        train=dict(epochs=pick(6, 10), batch_size=64, lr=3e-3),
    )


def lesson7_vqvae(train, device=None, progress: bool = True):
    """Build and train (or load) the main VQ-VAE of lesson 7; returns ``(model, history)``.

    - ``train``: the lesson's training data, ``lesson_dataset("mnist", "train")`` (28x28 digits; the
      checkpoint is keyed by these data, so pass the same set to load the lesson's weights).
    - The code grid is **7 x 7** with **K = 32** codes (``model.num_codes``) of dimension 16, in both modes
      (full mode trains longer on more data: 6 epochs of 4,000 digits quick, 10 epochs of MNIST full).
      EMA codebook (decay rho = 0.95) with Laplace smoothing, dead codes restarted after 20 unused steps,
      commitment weight omega = 0.25.
    - Trained on **dynamically binarized** pixels (``transform=binarize_dynamic``) with a Bernoulli
      decoder: encode binarized images (``binarize_static(x)``) to get the codes the model saw.
    - ``fit(..., checkpoint="lesson07-vqvae")``: load-or-train; ``history.train`` also holds the
      :func:`watch_codes` diagnostics on the first 500 training images. Use ``model.encode_indices(x)`` ->
      (B, 7, 7) int64 in 0..K-1 and ``model.decode_indices(indices)`` -> (B, 1, 28, 28) probabilities.
    """
    from ..data import binarize_dynamic, binarize_static
    from ..runtime import seed_everything
    from ..train import fit

    cfg = lesson7_config()
    seed_everything(0)
    model = VQVAE(tuple(train.shape), **cfg["model"])
    history = fit(model, train, epochs=cfg["train"]["epochs"], batch_size=cfg["train"]["batch_size"],
                  lr=cfg["train"]["lr"], transform=binarize_dynamic, device=device, checkpoint="lesson07-vqvae",
                  callbacks=[watch_codes(binarize_static(train.images[:500]))], progress=progress)
    model.eval()
    return model, history
