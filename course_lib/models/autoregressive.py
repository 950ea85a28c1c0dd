r"""Autoregressive models (lesson 8): AR(p), FVSBN, NADE, MADE, PixelCNN and the gated PixelCNN.

Every model orders the D dimensions of x (raster order 0..D-1 by default) and writes the
chain rule (seed 002, "Modélisation")

.. math:: p_\theta(x) = \prod_{i=1}^{D} p_{\theta_i}(x_i \mid x_{<i}),

with one conditional per dimension. ``forward(x)`` returns the logits of all D conditionals
in one pass (teacher forcing: each conditional reads the *true* previous values),
``log_prob(x)`` the exact log-likelihood of each example in nats, shape ``(B,)``,
``loss(x)`` the negative log-likelihood in nats per example for :func:`course_lib.train.fit`,
and ``sample(n, ...)`` draws examples one dimension at a time (D passes).

- :class:`FVSBN` (Frey 1998): each conditional is a logistic regression on the previous values.
- :class:`NADE` (Larochelle & Murray 2011): one hidden layer per conditional, weights shared,
  computed with the O(DH) recurrence :math:`a_{i+1} = a_i + W_{:,i} x_i`.
- :class:`MADE` (Germain et al. 2015): an autoencoder whose weight masks remove every path
  from :math:`x_i` to :math:`\hat x_j` for :math:`j \le i` (in the ordering).
- :class:`PixelCNN` (van den Oord et al. 2016a): masked convolutions of type A then B, colour
  channels ordered R, G, B; Bernoulli (binary pixels) or K-way categorical outputs.
- :class:`GatedPixelCNN` (van den Oord et al. 2016b): vertical and horizontal stacks with
  gated activations, no blind spot.
- :class:`CodePixelCNN`: a gated PixelCNN over grids of discrete codes (the VQ-VAE prior).
- :class:`CodeTransformer`: a small causal Transformer over the same code grids, read in raster order
  (the decoder-only Transformer of Vaswani et al. 2017 / Radford et al. 2018, as the prior of VQGAN,
  Esser et al. 2021).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "simulate_ar", "fit_ar", "forecast_ar",
    "bernoulli_log_likelihood", "categorical_log_likelihood", "all_binary_vectors",
    "FVSBN", "NADE", "MADE", "MaskedLinear", "made_masks", "made_numbers",
    "conv_mask", "MaskedConv2d", "PixelCNN", "GatedPixelCNN", "CodePixelCNN", "CodeTransformer",
]


# ----------------------------------------------------------------------------------------
# AR(p) processes: simulate, fit by least squares, forecast
# ----------------------------------------------------------------------------------------
def simulate_ar(c: float, phi, n: int, sigma: float = 1.0, burn_in: int = 200,
                generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A series of length ``n`` from :math:`x_t = c + \sum_{k=1}^p \varphi_k x_{t-k} + \varepsilon_t`,
    :math:`\varepsilon_t \sim \mathcal{N}(0, \sigma^2)` (float64; the first ``burn_in`` values are dropped)."""
    phi = torch.as_tensor(phi, dtype=torch.float64).reshape(-1)
    p = len(phi)
    eps = sigma * torch.randn(n + burn_in + p, generator=generator, dtype=torch.float64)
    x = torch.zeros(n + burn_in + p, dtype=torch.float64)
    for t in range(p, len(x)):
        x[t] = c + torch.dot(phi, x[t - p:t].flip(0)) + eps[t]
    return x[burn_in + p:]


def fit_ar(series, p: int):
    r"""Least-squares fit of AR(p): minimise :math:`\sum_t (x_t - c - \sum_k \varphi_k x_{t-k})^2`.

    Returns ``(c, phi, sigma)``: the constant, the ``p`` coefficients (float64 tensor,
    :math:`\varphi_1` first) and the standard deviation of the residuals.
    """
    x = torch.as_tensor(series, dtype=torch.float64).reshape(-1)
    if p < 1 or len(x) <= 2 * p + 1:
        raise ValueError(f"fit_ar needs p >= 1 and a series longer than 2p + 1 = {2 * p + 1}; got p={p}, "
                         f"length {len(x)}.")
    lags = torch.stack([x[p - k:len(x) - k] for k in range(1, p + 1)], dim=1)  # column k-1 holds x_{t-k}
    design = torch.cat([torch.ones(len(lags), 1, dtype=torch.float64), lags], dim=1)
    target = x[p:]
    coef = torch.linalg.lstsq(design, target.unsqueeze(1)).solution.squeeze(1)
    resid = target - design @ coef
    return float(coef[0]), coef[1:], float(resid.std())


def forecast_ar(series, c: float, phi, steps: int) -> torch.Tensor:
    r"""The mean forecast :math:`\hat x_{T+h} = c + \sum_k \varphi_k \hat x_{T+h-k}` (with
    :math:`\hat x_t = x_t` for observed t), for h = 1..``steps``."""
    phi = torch.as_tensor(phi, dtype=torch.float64).reshape(-1)
    hist = list(torch.as_tensor(series, dtype=torch.float64).reshape(-1)[-len(phi):])
    out = []
    for _ in range(steps):
        nxt = c + sum(phi[k] * hist[-1 - k] for k in range(len(phi)))
        out.append(float(nxt))
        hist.append(torch.tensor(float(nxt), dtype=torch.float64))
    return torch.tensor(out, dtype=torch.float64)


# ----------------------------------------------------------------------------------------
# Log-likelihoods from the conditionals' logits
# ----------------------------------------------------------------------------------------
def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x) = \sum_i x_i \log \sigma(l_i) + (1 - x_i) \log(1 - \sigma(l_i))`, summed over
    every dimension but the first: ``(B, ...)`` -> ``(B,)``, in nats."""
    ll = -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return ll.reshape(len(ll), -1).sum(1)


def categorical_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x) = \sum_i \log \operatorname{softmax}(l_i)_{x_i}`: logits ``(B, K, ...)``, x ``(B, ...)``
    long, -> ``(B,)`` in nats."""
    ll = -F.cross_entropy(logits, x, reduction="none")
    return ll.reshape(len(ll), -1).sum(1)


def all_binary_vectors(d: int) -> torch.Tensor:
    """The 2**d binary vectors of length d, as a (2**d, d) float tensor (row k = the bits of k)."""
    k = torch.arange(2 ** d).unsqueeze(1)
    return ((k >> torch.arange(d - 1, -1, -1)) & 1).float()


# ----------------------------------------------------------------------------------------
# Models on vectors (B, D) of binary values
# ----------------------------------------------------------------------------------------
class _BinaryAR(nn.Module):
    """Shared plumbing: input checks, log_prob, loss, sampling one dimension at a time."""

    def __init__(self, input_dim: int):
        super().__init__()
        if int(input_dim) < 2:
            raise ValueError(f"an autoregressive model needs at least 2 dimensions, got input_dim={input_dim}.")
        self.input_dim = int(input_dim)

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if not torch.is_tensor(x):
            raise TypeError(f"{name} expects a torch.Tensor batch, got {type(x).__name__}.")
        if not x.is_floating_point():
            raise TypeError(f"{name} expects float values (0. or 1.), got dtype {x.dtype}; use x.float().")
        flat = x.reshape(len(x), -1) if x.ndim > 2 else x
        if flat.ndim != 2 or flat.shape[1] != self.input_dim:
            raise ValueError(f"{name} was built for input_dim={self.input_dim} but got a batch of shape "
                             f"{tuple(x.shape)}; pass (B, {self.input_dim}) or images with {self.input_dim} pixels.")
        return flat

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_\theta(x) = \sum_i \log p_{\theta_i}(x_i \mid x_{<i})`, one value per example (nats)."""
        x = self._flat(x)
        return bernoulli_log_likelihood(self(x), x)

    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative log-likelihood in nats per example (and in bits per dimension)."""
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bits_per_dim": nll.detach() / (self.input_dim * math.log(2))}

    def _device(self):
        return next(self.parameters()).device

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws, one dimension at a time in the model's order (D forward passes): (n, D)."""
        x = torch.zeros(n, self.input_dim, device=self._device())
        u = torch.rand(n, self.input_dim, generator=generator).to(x.device)
        for i in self.sampling_order():
            p = torch.sigmoid(self(x)[:, i])
            x[:, i] = (u[:, i] < p).float()
        return x

    def sampling_order(self):
        return range(self.input_dim)


class FVSBN(_BinaryAR):
    r"""Fully visible sigmoid belief network (seed 002, "Cas simple"; Frey 1998):

    .. math:: p(x_i = 1 \mid x_{<i}) = \sigma\big(\alpha_0^{(i)} + \alpha_1^{(i)} x_1 + \dots + \alpha_{i-1}^{(i)} x_{i-1}\big),

    a weight matrix kept strictly lower-triangular by a mask: D(D+1)/2 parameters are used.
    """

    def __init__(self, input_dim: int):
        super().__init__(input_dim)
        d = self.input_dim
        self.weight = nn.Parameter(torch.zeros(d, d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("mask", torch.tril(torch.ones(d, d), diagonal=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional, (B, D)."""
        x = self._flat(x)
        return F.linear(x, self.weight * self.mask, self.bias)


class NADE(_BinaryAR):
    r"""Neural autoregressive density estimator (seed 002; Larochelle & Murray 2011):

    .. math:: h_i = \sigma(a_i), \quad a_1 = c, \quad a_{i+1} = a_i + W_{:,i}\, x_i, \qquad
              p(x_i = 1 \mid x_{<i}) = \sigma(b_i + V_{i,:} h_i).

    The recurrence makes all D conditionals cost O(DH) instead of O(D^2 H).
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim)
        self.hidden_dim = int(hidden_dim)
        d, h = self.input_dim, self.hidden_dim
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(h, d, generator=g) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.randn(d, h, generator=g) / math.sqrt(h))
        self.b = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional, (B, D): the recurrence as an exclusive cumulative sum."""
        x = self._flat(x)
        contrib = x.unsqueeze(2) * self.W.t().unsqueeze(0)          # (B, D, H): W[:, i] x_i
        a = self.c + torch.cumsum(contrib, dim=1) - contrib           # a_i = c + sum_{j<i} W[:, j] x_j
        return self.b + (torch.sigmoid(a) * self.V).sum(-1)

    def conditionals_recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits with the recurrence written as a loop: O(DH) per example."""
        x = self._flat(x)
        a = self.c.expand(len(x), -1)
        out = []
        for i in range(self.input_dim):
            out.append(self.b[i] + torch.sigmoid(a) @ self.V[i])
            a = a + x[:, i:i + 1] * self.W[:, i]
        return torch.stack(out, dim=1)

    def conditionals_naive(self, x: torch.Tensor) -> torch.Tensor:
        r"""The logits computed from scratch for each i, :math:`h_i = \sigma(c + W_{:,<i} x_{<i})`: O(D^2 H)."""
        x = self._flat(x)
        out = []
        for i in range(self.input_dim):
            h = torch.sigmoid(self.c + x[:, :i] @ self.W[:, :i].t())
            out.append(self.b[i] + h @ self.V[i])
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws with the recurrence: D steps of O(H) each per example."""
        x = torch.zeros(n, self.input_dim, device=self._device())
        u = torch.rand(n, self.input_dim, generator=generator).to(x.device)
        a = self.c.expand(n, -1)
        for i in range(self.input_dim):
            p = torch.sigmoid(self.b[i] + torch.sigmoid(a) @ self.V[i])
            x[:, i] = (u[:, i] < p).float()
            a = a + x[:, i:i + 1] * self.W[:, i]
        return x


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"the mask must have shape (out, in) = {(out_features, in_features)}, got {tuple(mask.shape)}.")
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_masks(m_in: torch.Tensor, m_hidden) -> list:
    r"""MADE's masks from the numbers of the units (seed 002, "MADE : principe"; Germain et al. 2015, eq. 12-13).

    ``m_in[d]`` is the position of input d in the ordering (1..D); ``m_hidden[l][k]`` the number of hidden
    unit k of layer l (1..D-1). Hidden layers: :math:`M^W_{k,d} = 1` iff :math:`m^l(k) \ge m^{l-1}(d)`;
    output: :math:`M^V_{d,k} = 1` iff :math:`m^0(d) > m^L(k)`. Returns ``[M^{W_1}, ..., M^{W_L}, M^V]``,
    each (out, in).
    """
    masks, prev = [], torch.as_tensor(m_in)
    for m in m_hidden:
        m = torch.as_tensor(m)
        masks.append((m[:, None] >= prev[None, :]).float())
        prev = m
    masks.append((torch.as_tensor(m_in)[:, None] > prev[None, :]).float())
    return masks


def made_numbers(input_dim: int, hidden_dims, order=None, seed: int = 0):
    """The numbers of MADE's units: ``m_in`` (the ordering, 1..D) and, per hidden layer, integers drawn
    uniformly in [min of the previous layer, D-1] (Germain et al. 2015, section 4)."""
    d = int(input_dim)
    if order is None:
        m_in = torch.arange(1, d + 1)
    else:
        order = torch.as_tensor(order).long()
        if sorted(order.tolist()) != list(range(d)):
            raise ValueError(f"order must be a permutation of 0..{d - 1} (order[k] = the k-th input to generate).")
        m_in = torch.empty(d, dtype=torch.long)
        m_in[order] = torch.arange(1, d + 1)
    g = torch.Generator().manual_seed(seed)
    hidden, low = [], 1
    for h in hidden_dims:
        m = torch.randint(low, d, (int(h),), generator=g)
        hidden.append(m)
        low = int(m.min())
    return m_in, hidden


class MADE(_BinaryAR):
    r"""Masked autoencoder for distribution estimation (seed 002; Germain et al. 2015):

    .. math:: h = g\big(b + (W \odot M^W) x\big), \qquad \hat x = \sigma\big(c + (V \odot M^V) h\big),

    with masks from :func:`made_masks`: no path from :math:`x_i` to :math:`\hat x_j` unless i comes
    before j in ``order`` (default 0..D-1), so one pass gives every conditional.
    """

    def __init__(self, input_dim: int, hidden_dims=(500,), order=None, seed: int = 0):
        super().__init__(input_dim)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        if not self.hidden_dims:
            raise ValueError("MADE needs at least one hidden layer, e.g. hidden_dims=(500,).")
        m_in, m_hidden = made_numbers(self.input_dim, self.hidden_dims, order, seed)
        self.register_buffer("m_in", m_in)
        for i, m in enumerate(m_hidden):
            self.register_buffer(f"m_hidden{i}", m)
        masks = made_masks(m_in, m_hidden)
        sizes = [self.input_dim, *self.hidden_dims, self.input_dim]
        self.layers = nn.ModuleList(MaskedLinear(a, b, m) for a, b, m in zip(sizes[:-1], sizes[1:], masks))

    @property
    def masks(self) -> list:
        return [layer.mask for layer in self.layers]

    def sampling_order(self):
        return torch.argsort(self.m_in).tolist()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional, (B, D), in the inputs' positions."""
        h = self._flat(x)
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        return self.layers[-1](h)


# ----------------------------------------------------------------------------------------
# Images: masked convolutions and PixelCNNs on (B, C, H, W)
# ----------------------------------------------------------------------------------------
def conv_mask(kernel_size, mask_type: str, in_channels: int = 1, out_channels: int = 1,
              channels: int = 1) -> torch.Tensor:
    r"""The 0/1 mask of a PixelCNN convolution, shape (out_channels, in_channels, kh, kw).

    Rows above the centre: 1; the centre row: 1 left of the centre; below and to the right: 0.
    At the centre, feature maps belong to colour ``channels`` groups (channel index modulo
    ``channels``: R, G, B, R, G, B, ...): type ``"A"`` (first layer) lets group g see groups < g,
    type ``"B"`` (later layers) groups <= g. With one channel, A hides the centre and B keeps it.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (first layer) or 'B' (later layers), got {mask_type!r}.")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"use an odd kernel size so that the kernel has a centre, got {(kh, kw)}.")
    if in_channels % channels or out_channels % channels:
        raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} must be multiples of "
                         f"channels={channels} (each feature map belongs to one colour).")
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    ch, cw = kh // 2, kw // 2
    mask[:, :, :ch, :] = 1
    mask[:, :, ch, :cw] = 1
    g_out = torch.arange(out_channels) % channels
    g_in = torch.arange(in_channels) % channels
    centre = g_out[:, None] > g_in[None, :] if mask_type == "A" else g_out[:, None] >= g_in[None, :]
    mask[:, :, ch, cw] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution whose kernel is multiplied by :func:`conv_mask` (type A or B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask_type: str, channels: int = 1):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2))
        self.mask_type = mask_type
        self.register_buffer("mask", conv_mask((kh, kw), mask_type, in_channels, out_channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class _ImageAR(nn.Module):
    """Shared plumbing of the PixelCNNs: input encoding, logits layout, log_prob, loss, sampling."""

    def __init__(self, in_channels: int, num_classes: int | None, one_hot: bool | None):
        super().__init__()
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2 (or None for binary pixels), got {num_classes}.")
        self.in_channels = int(in_channels)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.one_hot = bool(one_hot) if one_hot is not None else self.num_classes is not None
        self.values = 1 if self.num_classes is None else self.num_classes   # logits per colour channel
        k = self.num_classes if (self.num_classes is not None and self.one_hot) else 1
        self.input_features = self.in_channels * k

    # inputs -----------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if not torch.is_tensor(x):
            raise TypeError(f"{name} expects a torch.Tensor batch, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{name} expects images (B, C={self.in_channels}, H, W), got shape {tuple(x.shape)}.")
        if self.num_classes is None:
            if not x.is_floating_point():
                raise TypeError(f"{name} with binary pixels expects float values 0. or 1., got {x.dtype}; use x.float().")
            return x
        if x.is_floating_point():  # values in [0, 1] -> levels 0..K-1
            x = torch.round(x.clamp(0, 1) * (self.num_classes - 1)).long()
        if int(x.min()) < 0 or int(x.max()) >= self.num_classes:
            raise ValueError(f"{name} expects values in 0..{self.num_classes - 1}, got {int(x.min())}..{int(x.max())}.")
        return x

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input: the pixels (binary), or one-hot / scaled levels (K-way); feature f is colour f % C."""
        x = self._check(x)
        if self.num_classes is None:
            return x
        dtype = next(self.parameters()).dtype
        if not self.one_hot:
            return x.to(dtype) / (self.num_classes - 1)
        b, c, h, w = x.shape
        oh = F.one_hot(x, self.num_classes).permute(0, 4, 1, 2, 3)      # (B, K, C, H, W): feature k*C + c
        return oh.reshape(b, self.num_classes * c, h, w).to(dtype)

    def network(self, inp: torch.Tensor) -> torch.Tensor:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: (B, C, H, W) for binary pixels, (B, K, C, H, W) for K-way outputs."""
        out = self.network(self.encode_input(x))
        if self.num_classes is None:
            return out
        b, _, h, w = out.shape
        return out.reshape(b, self.num_classes, self.in_channels, h, w)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_\theta(x) = \sum_{i} \sum_{c} \log p(x_{i,c} \mid x_{<i}, x_{i,<c})`, (B,), in nats."""
        x = self._check(x)
        logits = self(x)
        if self.num_classes is None:
            return bernoulli_log_likelihood(logits, x)
        return categorical_log_likelihood(logits, x)

    def loss(self, x: torch.Tensor, y=None) -> dict:
        """Negative log-likelihood in nats per example (and in bits per dimension)."""
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bits_per_dim": nll.detach() / (x[0].numel() * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, size, generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
        """n images of ``size`` (H, W), drawn pixel by pixel in raster order and R, G, B within a pixel:
        H * W * C forward passes. ``callback(step, canvas)`` is called after each value is drawn.
        Returns floats (B, C, H, W) for binary pixels, levels (long) for K-way outputs."""
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        device = next(self.parameters()).device
        c = self.in_channels
        u = torch.rand(n, c, h, w, generator=generator).to(device)
        if self.num_classes is None:
            x = torch.zeros(n, c, h, w, device=device)
        else:
            x = torch.zeros(n, c, h, w, dtype=torch.long, device=device)
        step = 0
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    logits = _ImageAR.forward(self, x)
                    if self.num_classes is None:
                        x[:, ch, i, j] = (u[:, ch, i, j] < torch.sigmoid(logits[:, ch, i, j])).float()
                    else:
                        cdf = torch.softmax(logits[:, :, ch, i, j], dim=1).cumsum(1)
                        x[:, ch, i, j] = (u[:, ch, i, j, None] > cdf[:, :-1]).sum(1)
                    step += 1
                    if callback is not None:
                        callback(step, x)
        return x


class PixelCNN(_ImageAR):
    r"""PixelCNN (van den Oord et al. 2016a): a masked convolution of type A, ``n_layers`` masked
    convolutions of type B with ReLUs, and a 1x1 type-B output layer.

    - ``in_channels``: colour channels C (ordered R, G, B within a pixel);
    - ``num_classes``: None for binary pixels (Bernoulli logits, (B, C, H, W)), or K for a K-way
      softmax per value (logits (B, K, C, H, W); inputs are levels 0..K-1 or floats in [0, 1]);
    - ``one_hot``: feed K-way inputs as one-hot maps (default) or as levels scaled to [0, 1].

    Its receptive field has a blind spot above and to the right (see :class:`GatedPixelCNN`).
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, n_layers: int = 4,
                 kernel_size: int = 7, hidden_kernel_size: int = 3, num_classes: int | None = None,
                 one_hot: bool | None = None):
        super().__init__(in_channels, num_classes, one_hot)
        c = self.in_channels
        if hidden_channels % c:
            raise ValueError(f"hidden_channels={hidden_channels} must be a multiple of in_channels={c}.")
        layers = [MaskedConv2d(self.input_features, hidden_channels, kernel_size, "A", c)]
        for _ in range(n_layers):
            layers += [nn.ReLU(), MaskedConv2d(hidden_channels, hidden_channels, hidden_kernel_size, "B", c)]
        layers += [nn.ReLU(), MaskedConv2d(hidden_channels, c * self.values, 1, "B", c)]
        self.net = nn.Sequential(*layers)

    def network(self, inp: torch.Tensor) -> torch.Tensor:
        return self.net(inp)


def _gate(t: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the two halves of the channels."""
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    r"""One layer of the gated PixelCNN (van den Oord et al. 2016b, fig. 2).

    Vertical stack: a (k//2 + 1) x k convolution over the rows above and the current row.
    Horizontal stack: a 1 x k masked convolution over the current row, left of (and at) the pixel,
    plus the vertical features *shifted down one row*, so that they only hold rows strictly above.
    Outputs :math:`\tanh(\cdot) \odot \sigma(\cdot)`; the horizontal stack is residual after the first layer.
    """

    def __init__(self, in_features: int, channels_out: int, kernel_size: int, colours: int, first: bool):
        super().__init__()
        k = kernel_size
        self.k, self.first = k, first
        self.v_conv = nn.Conv2d(in_features, 2 * channels_out, (k // 2 + 1, k))
        self.v_to_h = nn.Conv2d(2 * channels_out, 2 * channels_out, 1)
        self.h_conv = MaskedConv2d(in_features, 2 * channels_out, (1, k), "A" if first else "B", colours)
        self.h_out = MaskedConv2d(channels_out, channels_out, 1, "B", colours)

    def forward(self, v: torch.Tensor, h: torch.Tensor):
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))   # rows i - k//2 .. i
        below = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]                 # shift down: rows < i only
        h_pre = self.h_conv(h) + self.v_to_h(below)
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), (h_new if self.first else h + h_new)


class GatedPixelCNN(_ImageAR):
    """Gated PixelCNN with vertical and horizontal stacks (van den Oord et al. 2016b): no blind spot.

    Same inputs, outputs and options as :class:`PixelCNN`; ``n_layers`` gated blocks of kernel
    ``kernel_size``, then a ReLU and a 1x1 type-B output layer.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, n_layers: int = 4,
                 kernel_size: int = 3, num_classes: int | None = None, one_hot: bool | None = None):
        super().__init__(in_channels, num_classes, one_hot)
        c = self.in_channels
        if hidden_channels % c:
            raise ValueError(f"hidden_channels={hidden_channels} must be a multiple of in_channels={c}.")
        self.blocks = nn.ModuleList(
            GatedBlock(self.input_features if i == 0 else hidden_channels, hidden_channels, kernel_size, c, i == 0)
            for i in range(n_layers))
        self.head = MaskedConv2d(hidden_channels, c * self.values, 1, "B", c)

    def network(self, inp: torch.Tensor) -> torch.Tensor:
        v = h = inp
        for block in self.blocks:
            v, h = block(v, h)
        return self.head(F.relu(h))


class CodePixelCNN(GatedPixelCNN):
    """A gated PixelCNN prior over grids of K discrete codes (a VQ-VAE's ``encode_indices``):
    inputs (B, H, W) long in 0..K-1, logits (B, K, H, W), ``sample(n, (H, W))`` -> (n, H, W) long."""

    def __init__(self, num_codes: int, hidden_channels: int = 32, n_layers: int = 4, kernel_size: int = 3):
        super().__init__(1, hidden_channels, n_layers, kernel_size, num_classes=num_codes, one_hot=True)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(x) and x.ndim == 3:
            if x.is_floating_point():
                raise TypeError(f"CodePixelCNN expects code indices (long), got {x.dtype}; use indices.long().")
            x = x.unsqueeze(1)
        return super()._check(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W)."""
        return super().forward(x).squeeze(2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        return categorical_log_likelihood(self(x), x.squeeze(1))

    def loss(self, x: torch.Tensor, y=None) -> dict:
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bits_per_code": nll.detach() / (x[0].numel() * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, size, generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
        return super().sample(n, size, generator, callback).squeeze(1)


class CodeTransformer(nn.Module):
    r"""A causal Transformer prior over grids of K discrete codes, read in raster order.

    The grid (B, H, W) becomes a sequence of L = H W tokens :math:`z_1, \dots, z_L`. The network reads
    :math:`(s, z_1, \dots, z_{L-1})` (``s`` a start token), adds a learned embedding of each position, and
    ``n_layers`` Transformer layers with a **causal** attention mask (position i attends to positions <= i of
    its input, that is to :math:`s, z_{<i}`) output the logits of :math:`p(z_i \mid z_{<i})`, a K-way softmax.
    Unlike a PixelCNN, every position sees all the previous ones from the first layer on (no receptive field
    to grow, no blind spot), at a cost quadratic in L.

    Same interface as :class:`CodePixelCNN`: ``forward(x)`` -> logits (B, K, H, W), ``log_prob(x)`` (B,) in
    nats, ``loss(x)``, ``sample(n, (H, W))`` -> (n, H, W) long (L sequential passes).
    """

    def __init__(self, num_codes: int, grid_shape=(7, 7), d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if int(num_codes) < 2:
            raise ValueError(f"num_codes must be at least 2, got {num_codes}.")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}.")
        self.num_codes = int(num_codes)
        self.grid_shape = tuple(int(v) for v in grid_shape)
        self.length = self.grid_shape[0] * self.grid_shape[1]
        self.token = nn.Embedding(self.num_codes + 1, d_model)          # index K is the start token
        self.position = nn.Parameter(0.02 * torch.randn(self.length, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, self.num_codes)
        causal = torch.triu(torch.full((self.length, self.length), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.ndim != 3 or tuple(x.shape[1:]) != self.grid_shape:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"CodeTransformer expects code grids (B, {self.grid_shape[0]}, {self.grid_shape[1]}), "
                             f"got {shape}.")
        if x.is_floating_point():
            raise TypeError(f"CodeTransformer expects code indices (long), got {x.dtype}; use indices.long().")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_codes):
            raise ValueError(f"codes must lie in 0..{self.num_codes - 1}, got {int(x.min())}..{int(x.max())}.")
        return x.long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(z_i | z_<i) for every position, (B, K, H, W) (teacher forcing: one pass)."""
        x = self._check(x)
        b = len(x)
        seq = x.reshape(b, self.length)
        start = torch.full((b, 1), self.num_codes, dtype=torch.long, device=x.device)
        tokens = torch.cat([start, seq[:, :-1]], dim=1)                  # (s, z_1, ..., z_{L-1})
        h = self.token(tokens) + self.position
        h = self.layers(h, mask=self.causal_mask)
        logits = self.head(self.norm(h))                                 # (B, L, K)
        return logits.transpose(1, 2).reshape(b, self.num_codes, *self.grid_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(z) = sum_i log p(z_i | z_<i), (B,), in nats."""
        x = self._check(x)
        return categorical_log_likelihood(self(x), x)

    def loss(self, x: torch.Tensor, y=None) -> dict:
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bits_per_code": nll.detach() / (self.length * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, size=None, generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
        """n grids drawn one position at a time in raster order (L passes): (n, H, W) long."""
        if size is not None and tuple(size) != self.grid_shape:
            raise ValueError(f"this CodeTransformer models {self.grid_shape} grids, not {tuple(size)}.")
        device = self.head.weight.device
        x = torch.zeros(n, *self.grid_shape, dtype=torch.long, device=device)
        u = torch.rand(n, self.length, generator=generator).to(device)
        flat = x.view(n, self.length)
        for i in range(self.length):
            logits = self(x).reshape(n, self.num_codes, self.length)[:, :, i]
            cdf = torch.softmax(logits.float(), dim=1).cumsum(1)
            flat[:, i] = (u[:, i, None] > cdf[:, :-1]).sum(1)
            if callback is not None:
                callback(i + 1, x)
        return x
