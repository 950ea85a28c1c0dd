# %% [markdown]
# # Exercises, lesson 1: autoencoders
#
# Three short exercises on the ideas of lesson 1 (8 points in all):
#
# 1. `reconstruction_losses`: the MSE, MAE and BCE of a reconstruction, per example (3 points);
# 2. `corrupt`: the corruption of a denoising autoencoder (2 points);
# 3. `TinyAutoencoder`: an encoder $\mathbb{R}^n \to \mathbb{R}^d$ and a decoder $\mathbb{R}^d \to \mathbb{R}^n$ (3 points).
#
# Write your code where it says `raise NotImplementedError(...)`, then run the **self-check** cell just below:
# its messages say what is wrong. The grade cells (marked as not editable) run more tests when your notebook is
# graded; an exercise earns its points when its grade cell runs without error.
#
# **Units** as in the course: each loss is one value per example, *summed over the pixels* (no mean over the
# pixels); the BCE is in nats. The whole notebook runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.runtime import seed_everything

generator = seed_everything(0)
torch.set_num_threads(1)   # tiny tensors: one thread is fastest (and graders run many notebooks at once)

# %% [markdown]
# ## Exercise 1: reconstruction losses (3 points)
#
# Write `reconstruction_losses(x_hat, x, logits)` for a batch of images `x` of shape `(B, C, H, W)` (values in
# $[0, 1]$), a reconstruction `x_hat` of the same shape (values in $[0, 1]$) and the decoder's `logits` (same
# shape, $\hat x = \mathrm{sigmoid}(\ell)$). Return a tuple `(mse, mae, bce)` of three tensors of shape `(B,)`:
#
# $$\mathrm{mse} = \sum_i (x_i - \hat x_i)^2, \qquad \mathrm{mae} = \sum_i |x_i - \hat x_i|, \qquad
#   \mathrm{bce} = -\sum_i \big[x_i \log \sigma(\ell_i) + (1 - x_i) \log(1 - \sigma(\ell_i))\big],$$
#
# sums over all the pixels of one example. The BCE must stay finite for confident logits (say $\ell = \pm 100$):
# compute it from the logits, with `F.binary_cross_entropy_with_logits(..., reduction="none")` or the stable
# formula $\max(\ell, 0) - x\ell + \log(1 + e^{-|\ell|})$, not from $\log \sigma(\ell)$.

# %%
def reconstruction_losses(x_hat, x, logits):
    """Per-example (mse, mae, bce), each of shape (B,), summed over every pixel of an example."""
    ### BEGIN SOLUTION
    mse = ((x_hat - x) ** 2).flatten(1).sum(1)
    mae = (x_hat - x).abs().flatten(1).sum(1)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return mse, mae, bce
    ### END SOLUTION


# %%
# Self-check
_x = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]], [[[0.5, 0.5], [0.0, 1.0]]]])     # 2 images of 2x2 pixels
_xh = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]], [[[0.7, 0.5], [0.0, 0.6]]]])
_out = reconstruction_losses(_xh, _x, torch.logit(_xh, eps=1e-6))
assert isinstance(_out, tuple) and len(_out) == 3, "return a tuple (mse, mae, bce)"
_mse, _mae, _bce = _out
for _name, _t in [("mse", _mse), ("mae", _mae), ("bce", _bce)]:
    assert torch.is_tensor(_t) and _t.shape == (2,), \
        f"{_name} should have shape (2,), one value per example, got {getattr(_t, 'shape', type(_t))}: sum over the pixels of each example, not over the batch"
assert abs(_mse[0]) < 1e-6 and abs(_mae[0]) < 1e-6, "a perfect reconstruction has MSE = MAE = 0"
assert torch.allclose(_mse[1], torch.tensor(0.2**2 + 0.4**2)), \
    f"MSE of the 2nd example should be 0.2^2 + 0.4^2 = 0.2, got {_mse[1]:.4f}: sum (not mean) of squared errors"
assert torch.allclose(_mae[1], torch.tensor(0.6)), f"MAE of the 2nd example should be 0.2 + 0.4 = 0.6, got {_mae[1]:.4f}"
assert (_bce > -1e-6).all(), "the BCE is never negative: check the minus sign"
assert torch.isfinite(reconstruction_losses(_x, _x, torch.full_like(_x, 100.0))[2]).all(), \
    "the BCE is infinite for logits = 100: compute it from the logits (binary_cross_entropy_with_logits), not log(sigmoid)"
print("mse", _mse.tolist(), "| mae", _mae.tolist(), "| bce", _bce.tolist())

# %% grade={"exercise": "reconstruction_losses", "points": 3}
# Grade cell: hidden tests compare with course_lib's reference on random batches.
### BEGIN HIDDEN TESTS
from course_lib.losses import reconstruction_error

_g = torch.Generator().manual_seed(11)
for _shape in [(5, 1, 8, 8), (3, 3, 4, 6), (1, 1, 28, 28)]:
    _x = torch.rand(_shape, generator=_g)
    _l = 3 * torch.randn(_shape, generator=_g)
    _xh = torch.sigmoid(_l)
    _mse, _mae, _bce = reconstruction_losses(_xh, _x, _l)
    assert _mse.shape == (_shape[0],) and _mae.shape == (_shape[0],) and _bce.shape == (_shape[0],)
    assert torch.allclose(_mse, reconstruction_error(_xh, _x, "mse"), rtol=1e-5)
    assert torch.allclose(_mae, reconstruction_error(_xh, _x, "mae"), rtol=1e-5)
    assert torch.allclose(_bce, reconstruction_error(_l, _x, "bce"), rtol=1e-5)
_x = torch.tensor([[[[0.0, 1.0, 0.0, 1.0]]]])
_l = torch.tensor([[[[100.0, -100.0, -100.0, 100.0]]]])
_bce = reconstruction_losses(torch.sigmoid(_l), _x, _l)[2]
assert torch.allclose(_bce, torch.tensor([200.0]), atol=1e-3), "stable BCE at confident wrong logits"
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2: the corruption of a denoising autoencoder (2 points)
#
# A denoising autoencoder is trained on $\tilde x = x + \delta$ with $\delta \sim \mathcal{N}(0, \sigma^2 I)$,
# clipped to the pixel range $[0, 1]$, and asked to reconstruct the clean $x$. Write `corrupt(x, sigma, generator)`
# returning $\tilde x = \mathrm{clip}(x + \sigma\,\varepsilon, 0, 1)$ with $\varepsilon \sim \mathcal{N}(0, I)$ of the
# shape of `x`, drawn with `torch.randn(x.shape, generator=generator)` (on the CPU, then moved to `x.device`) so
# that the result is reproducible. Do not modify `x` in place.

# %%
def corrupt(x, sigma, generator):
    """x_tilde = clip(x + sigma * eps, 0, 1), eps ~ N(0, I) drawn with torch.randn(x.shape, generator=generator)."""
    ### BEGIN SOLUTION
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    return (x + sigma * eps).clamp(0.0, 1.0)
    ### END SOLUTION


# %%
# Self-check
_x = torch.rand(4, 1, 8, 8, generator=generator)
_x_copy = _x.clone()
_xt = corrupt(_x, 0.3, torch.Generator().manual_seed(0))
assert torch.is_tensor(_xt) and _xt.shape == _x.shape, "x_tilde must have the shape of x"
assert torch.equal(_x, _x_copy), "corrupt changed x in place: build a new tensor (x + ..., not x += ...)"
assert _xt.min() >= 0 and _xt.max() <= 1, "x_tilde must be clipped to [0, 1] (torch.clamp)"
assert not torch.allclose(_xt, _x), "with sigma = 0.3, x_tilde should differ from x: did you add the noise?"
assert torch.allclose(corrupt(_x, 0.0, torch.Generator().manual_seed(0)), _x), "with sigma = 0, x_tilde = x"
assert torch.equal(_xt, corrupt(_x, 0.3, torch.Generator().manual_seed(0))), \
    "the same generator seed should give the same x_tilde: draw eps with torch.randn(x.shape, generator=generator)"
print(f"mean |x_tilde - x| = {(_xt - _x).abs().mean():.3f} for sigma = 0.3")

# %% grade={"exercise": "corrupt", "points": 2}
# Grade cell: hidden tests check the exact draw and the noise statistics (Monte Carlo).
### BEGIN HIDDEN TESTS
_x = torch.rand(6, 1, 5, 5, generator=torch.Generator().manual_seed(3))
_ref_eps = torch.randn(_x.shape, generator=torch.Generator().manual_seed(42))
assert torch.allclose(corrupt(_x, 0.25, torch.Generator().manual_seed(42)), (_x + 0.25 * _ref_eps).clamp(0, 1))
# unclipped: x = 0.5, sigma = 0.05 -> mean 0.5, std 0.05
_xt = corrupt(torch.full((200_000,), 0.5), 0.05, torch.Generator().manual_seed(1))
assert abs(_xt.mean() - 0.5) < 1e-3 and abs(_xt.std() - 0.05) < 1e-3
# clipped: x = 0, sigma = 1 -> E[clip(Z, 0, 1)] = phi(0) - phi(1) + 1 - Phi(1)
_phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
_expected = _phi(0) - _phi(1) + 0.5 * math.erfc(1 / math.sqrt(2))
_xt = corrupt(torch.zeros(200_000), 1.0, torch.Generator().manual_seed(2))
assert abs(_xt.mean().item() - _expected) < 5e-3, "clipping to [0, 1]"
assert (_xt == 0).float().mean().sub(0.5).abs() < 0.01, "half of the pixels clip to 0"
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3: a tiny autoencoder (3 points)
#
# Complete `TinyAutoencoder(n, hidden, d)`, a fully connected autoencoder $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$:
#
# - `self.encoder`: $\mathcal{E}: \mathbb{R}^n \to \mathbb{R}^d$, `Linear(n, hidden)`, ReLU, `Linear(hidden, d)`
#   (no activation on the code: $z$ may be any real vector);
# - `self.decoder`: $\mathcal{D}: \mathbb{R}^d \to \mathbb{R}^n$, `Linear(d, hidden)`, ReLU, `Linear(hidden, n)`
#   (it outputs logits);
# - `encode(x)`: flattens a batch `(B, ...)` of `n` values per example into `(B, n)` and returns the codes `(B, d)`;
# - `decode(z)`: returns `(B, n)` logits.
#
# It then has $(n h + h) + (h d + d) + (d h + h) + (h n + n)$ parameters, $h$ = `hidden`.

# %%
class TinyAutoencoder(nn.Module):
    def __init__(self, n, hidden, d):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, d))
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n))
        ### END SOLUTION

    def encode(self, x):
        """(B, ...) -> codes z of shape (B, d)."""
        ### BEGIN SOLUTION
        return self.encoder(x.flatten(1))
        ### END SOLUTION

    def decode(self, z):
        """(B, d) -> logits of shape (B, n)."""
        ### BEGIN SOLUTION
        return self.decoder(z)
        ### END SOLUTION

    def forward(self, x):
        return self.decode(self.encode(x))


# %%
# Self-check
_model = TinyAutoencoder(64, 32, 2)
_x = torch.rand(5, 1, 8, 8, generator=generator)
_z = _model.encode(_x)
assert _z.shape == (5, 2), f"encode should map (5, 1, 8, 8) to codes of shape (5, 2), got {tuple(_z.shape)}: flatten, then the encoder"
_out = _model.decode(_z)
assert _out.shape == (5, 64), f"decode should map (5, 2) to (5, 64), got {tuple(_out.shape)}"
assert _model(_x).shape == (5, 64)
_n_params = sum(p.numel() for p in _model.parameters())
_expected = (64 * 32 + 32) + (32 * 2 + 2) + (2 * 32 + 32) + (32 * 64 + 64)
assert _n_params == _expected, \
    f"{_n_params} parameters, expected {_expected}: encoder Linear(n, h), ReLU, Linear(h, d); decoder Linear(d, h), ReLU, Linear(h, n)"
print(f"TinyAutoencoder(64, 32, 2): {_n_params} parameters")

# %% grade={"exercise": "tiny_autoencoder", "points": 3}
# Grade cell: hidden tests check other sizes, the linear code, the gradient path, and that it trains.
### BEGIN HIDDEN TESTS
for _n, _h, _d in [(10, 7, 3), (784, 64, 16)]:
    _m = TinyAutoencoder(_n, _h, _d)
    assert sum(p.numel() for p in _m.parameters()) == (_n * _h + _h) + (_h * _d + _d) + (_d * _h + _h) + (_h * _n + _n)
    assert _m.encode(torch.rand(4, _n)).shape == (4, _d)
    assert _m.decode(torch.randn(4, _d)).shape == (4, _n)
torch.manual_seed(0)
_m = TinyAutoencoder(64, 32, 4)
_z = _m.encode(torch.rand(256, 64))
assert (_z < 0).any(), "the code must be linear (no ReLU after the last encoder layer)"
assert (_m.decode(torch.randn(256, 4)) < 0).any(), "the decoder outputs logits (no activation at the end)"
_m.zero_grad()
F.binary_cross_entropy_with_logits(_m(torch.rand(8, 64)), torch.rand(8, 64)).backward()
assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in _m.encoder.parameters()), "the encoder gets gradients"
_g = torch.Generator().manual_seed(5)    # data on a 4-D manifold of [0, 1]^64
_data = torch.sigmoid(torch.randn(512, 4, generator=_g) @ (2 * torch.randn(4, 64, generator=_g)))
_opt = torch.optim.Adam(_m.parameters(), lr=1e-2)
_losses = []
for _ in range(100):
    _loss = F.binary_cross_entropy_with_logits(_m(_data), _data, reduction="none").sum(1).mean()
    _opt.zero_grad()
    _loss.backward()
    _opt.step()
    _losses.append(_loss.item())
assert _losses[-1] < 0.8 * _losses[0], "a working autoencoder learns to reconstruct"
### END HIDDEN TESTS

# %% [markdown]
# ## Going further (not graded)
#
# Train `TinyAutoencoder(64, 32, 2)` on the digits with your `reconstruction_losses` (the BCE term) and compare
# its test MSE with a 2-component PCA (`course_lib.pca.PCA`), as in section 6 of the lesson.
