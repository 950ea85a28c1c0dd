# %% [markdown]
# # Exercises, lesson 1: one step beyond the plain autoencoder
#
# Lesson 1 trained a denoising autoencoder with Gaussian noise and found that the plain autoencoder's code space
# has no structure that tells us where to sample. Each exercise takes the next step (8 points in all):
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `salt_and_pepper(x, prob, generator)`: another corruption for a denoising autoencoder | 2 |
# | (b) | `contractive_penalty(x, W, b)`: the squared Frobenius norm of the encoder's Jacobian (Rifai et al., 2011) | 3 |
# | (c) | `sparsity_penalty(h, rho)`: the KL sparsity penalty of a sparse autoencoder | 3 |
#
# Write your code where it says `raise NotImplementedError(...)`, then run the **self-check** cell just below:
# its messages say what is wrong. The grade cells run more tests when your notebook is graded: they record
# values of your functions on hidden inputs, and an exercise earns its points when those values match the
# reference solution's. Use `torch` operations only.
#
# **Units** penalties are one value per example (or per batch for (c)), summed over units, in the units of the
# formula (the sparsity penalty is a KL divergence, in nats). The whole notebook runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib.tooling.checks import record
from course_lib.runtime import seed_everything

generator = seed_everything(0)

# %% [markdown]
# ## (a) Salt-and-pepper noise (2 points)
#
# The lesson corrupted $x$ with Gaussian noise. Scanned documents suffer another kind: **salt-and-pepper** noise,
# where a pixel is, with probability `prob`, replaced by pure white (0) or pure black (1), each with probability
# 1/2, and otherwise kept. Write `salt_and_pepper(x, prob, generator)`:
#
# - draw `u = torch.rand(x.shape, generator=generator)` **then** `v = torch.rand(x.shape, generator=generator)`
#   (on the CPU; move them to `x.device`), in this order, so that the result is reproducible;
# - a pixel is corrupted where `u < prob`; a corrupted pixel becomes 1 where `v < 0.5`, else 0;
# - return a new tensor of the shape and dtype of `x` (do not modify `x` in place).
#
# A denoising autoencoder would then be trained to map `salt_and_pepper(x, ...)` back to the clean `x`.

# %%
def salt_and_pepper(x, prob, generator):
    """x with each pixel replaced, with probability prob, by 1 (if v < 0.5) or 0; u then v drawn with generator."""
    ### BEGIN SOLUTION
    u = torch.rand(x.shape, generator=generator).to(x.device)
    v = torch.rand(x.shape, generator=generator).to(x.device)
    noise = (v < 0.5).to(x.dtype)
    return torch.where(u < prob, noise, x)
    ### END SOLUTION


# %%
# Self-check (a)
_x = torch.full((2000, 1, 4, 4), 0.5)
_x_copy = _x.clone()
_xt = salt_and_pepper(_x, 0.2, torch.Generator().manual_seed(0))
assert torch.is_tensor(_xt) and _xt.shape == _x.shape, "the corrupted image must have the shape of x"
assert torch.equal(_x, _x_copy), "salt_and_pepper changed x in place: build a new tensor (torch.where, x.clone())"
assert set(torch.unique(_xt).tolist()) <= {0.0, 0.5, 1.0}, \
    "a pixel is either kept or set to exactly 0 or 1; did you add noise instead of replacing the pixel?"
_changed = (_xt != 0.5).float().mean().item()
assert abs(_changed - 0.2) < 0.01, (
    f"{_changed:.1%} of the pixels changed, expected about 20 % for prob = 0.2"
    + (": you corrupt where u > prob, not u < prob" if abs(_changed - 0.8) < 0.02 else ""))
_ones = (_xt == 1).float().mean().item()
assert abs(_ones - 0.1) < 0.01, f"{_ones:.1%} of the pixels are 1, expected half of the corrupted ones (10 %)"
assert torch.equal(salt_and_pepper(_x, 0.0, torch.Generator().manual_seed(0)), _x), "prob = 0 keeps x"
assert torch.equal(_xt, salt_and_pepper(_x, 0.2, torch.Generator().manual_seed(0))), \
    "the same generator seed should give the same result: draw u and v with torch.rand(x.shape, generator=generator)"
_g = torch.Generator().manual_seed(7)
_u, _v = torch.rand(_x.shape, generator=_g), torch.rand(_x.shape, generator=_g)    # the draws your function makes
_xt7 = salt_and_pepper(_x, 0.2, torch.Generator().manual_seed(7))
assert torch.equal(_xt7 != 0.5, _u < 0.2), \
    "the corrupted pixels should be exactly those where u < prob, u the FIRST draw (u, then v)"
assert torch.equal(_xt7[_u < 0.2] == 1, _v[_u < 0.2] < 0.5), (
    "a corrupted pixel should become 1 where v < 0.5 and 0 elsewhere"
    + (": yours are the other way round (v > 0.5 gives 1)" if torch.equal(_xt7[_u < 0.2] == 1, _v[_u < 0.2] >= 0.5) else ""))
print(f"{_changed:.1%} of the pixels corrupted, {_ones:.1%} set to 1")

# %% grade={"exercise": "salt_and_pepper", "points": 2}
# Grade cell: hidden tests check the exact draw order and other shapes.
### BEGIN HIDDEN TESTS
_x = torch.rand(3, 1, 5, 7, generator=torch.Generator().manual_seed(3))
_x64 = torch.rand(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
_out = salt_and_pepper(_x64, 0.5, torch.Generator().manual_seed(0))
record("salt_and_pepper(x, 0.3)", salt_and_pepper(_x, 0.3, torch.Generator().manual_seed(42)), rtol=0, atol=0,
       message="draw u, then v, from the generator; a corrupted pixel (u < prob) becomes 1 where v < 0.5, else 0")
record("salt_and_pepper(x, 1.0)", salt_and_pepper(_x, 1.0, torch.Generator().manual_seed(1)), rtol=0, atol=0,
       message="with prob = 1 every pixel is corrupted")
record("salt_and_pepper keeps the dtype", str(_out.dtype), message="return a tensor of x's dtype (float64 here)")
record("salt_and_pepper(x64, 0.5)", _out, rtol=0, atol=0,
       message="a float64 batch of another shape: same rule, u then v, the result in x's dtype")
### END HIDDEN TESTS

# %% [markdown]
# ## (b) The contractive penalty (3 points)
#
# The lesson found codes that change abruptly between training points. A **contractive autoencoder**
# (Rifai et al., 2011) adds to the reconstruction loss the squared Frobenius norm of the encoder's Jacobian,
# which penalises codes that move a lot when the input moves a little. For a one-layer encoder
# $h = \mathrm{sigmoid}(W x + b)$ with $W \in \mathbb{R}^{d \times n}$, since
# $\partial h_j / \partial x_i = h_j (1 - h_j) W_{ji}$,
#
# $$\Big\|\frac{\partial h}{\partial x}\Big\|_F^2 = \sum_{j=1}^d \big(h_j (1 - h_j)\big)^2 \sum_{i=1}^n W_{ji}^2 .$$
#
# Write `contractive_penalty(x, W, b)` for a batch `x` of shape `(B, n)`, `W` of shape `(d, n)`, `b` of shape
# `(d,)`; return the penalty of each example, shape `(B,)`. Use the closed form (no autograd inside).

# %%
def contractive_penalty(x, W, b):
    """||d sigmoid(W x + b) / dx||_F^2 for each row x of the batch, shape (B,)."""
    ### BEGIN SOLUTION
    h = torch.sigmoid(x @ W.T + b)                  # (B, d)
    return ((h * (1 - h)) ** 2 * (W**2).sum(1)).sum(1)
    ### END SOLUTION


# %%
# Self-check (b)
_g = torch.Generator().manual_seed(1)
_W, _b = torch.randn(3, 5, generator=_g, dtype=torch.float64), torch.randn(3, generator=_g, dtype=torch.float64)
_x = torch.randn(4, 5, generator=_g, dtype=torch.float64)
_out = contractive_penalty(_x, _W, _b)
assert torch.is_tensor(_out) and _out.shape == (4,), \
    f"return one penalty per example, shape (4,); got {getattr(_out, 'shape', type(_out))}: sum over j (and i), not over the batch"
_J = torch.autograd.functional.jacobian(lambda v: torch.sigmoid(_W @ v + _b), _x[0])    # (d, n) for one example
_want = (_J**2).sum()
_h0 = torch.sigmoid(_W @ _x[0] + _b)
_unsquared = (_h0 * (1 - _h0) * (_W**2).sum(1)).sum()
assert torch.allclose(_out[0], _want), (
    f"penalty of the first example {_out[0]:.6f}, the Jacobian by autograd gives {_want:.6f}"
    + (": square h(1 - h) too, each entry of the Jacobian is h_j (1 - h_j) W_ji"
       if torch.allclose(_out[0], _unsquared) else
       "; check the shapes: h is (B, d), sum_i W_ji^2 is a (d,) vector, and W x is x @ W.T for a batch"))
assert (_out >= 0).all(), "a squared norm is never negative"
print("contractive penalties:", [round(v, 4) for v in _out.tolist()])

# %% grade={"exercise": "contractive_penalty", "points": 3, "forbidden": ["torch.autograd.functional.jacobian", "torch.func.jacrev", "torch.func.jacfwd"]}
# Grade cell: hidden tests compare with the Jacobian by autograd for other sizes, and the saturation limit.
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
for _n, _d, _B in [(8, 2, 3), (20, 7, 5), (1, 1, 2)]:
    _W = torch.randn(_d, _n, generator=_g, dtype=torch.float64)
    _b = torch.randn(_d, generator=_g, dtype=torch.float64)
    _x = torch.randn(_B, _n, generator=_g, dtype=torch.float64)
    _out = contractive_penalty(_x, _W, _b)
    record(f"contractive_penalty, n={_n}, d={_d}, batch {_B}", _out, rtol=1e-8, atol=1e-10,
           message="the penalty is sum_j (h_j (1 - h_j))^2 sum_i W_ji^2 for each example: one value per example")
# saturated units (h = 0 or 1) contract perfectly
_W = torch.ones(2, 3, dtype=torch.float64)
record("contractive_penalty of saturated units", contractive_penalty(
    torch.full((1, 3), 100.0, dtype=torch.float64), _W, torch.zeros(2, dtype=torch.float64)), rtol=0, atol=1e-50,
    message="saturated sigmoid units (h = 0 or 1) have zero slope: the penalty vanishes")
### END HIDDEN TESTS

# %% [markdown]
# ## (c) The sparsity penalty (3 points)
#
# A **sparse autoencoder** (Ng, 2011) asks each hidden unit $j$, with activations $h_j \in (0, 1)$, to be active
# only rarely: its mean activation over a batch, $\hat\rho_j = \frac1B \sum_b h_{bj}$, should be close to a small
# target $\rho$ (say 0.05). The penalty is the KL divergence of lesson 2 between two Bernoulli distributions,
# the target first:
#
# $$\Omega = \sum_j \mathrm{KL}\big(\mathrm{Ber}(\rho) \,\|\, \mathrm{Ber}(\hat\rho_j)\big)
#   = \sum_j \Big[\rho \log\frac{\rho}{\hat\rho_j} + (1 - \rho) \log\frac{1 - \rho}{1 - \hat\rho_j}\Big] \quad\text{(nats)}.$$
#
# Write `sparsity_penalty(h, rho)`: `h` of shape `(B, m)` with values in $(0, 1)$, `rho` a float in $(0, 1)$;
# return a scalar tensor (one value for the batch).

# %%
def sparsity_penalty(h, rho):
    """sum_j KL(Ber(rho) || Ber(mean_b h[b, j])), in nats, a scalar tensor."""
    ### BEGIN SOLUTION
    rho_hat = h.mean(0)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    ### END SOLUTION


# %%
# Self-check (c)
_h = torch.tensor([[0.1, 0.5], [0.3, 0.7]], dtype=torch.float64)     # mean activations 0.2 and 0.6
_out = sparsity_penalty(_h, 0.2)
assert torch.is_tensor(_out) and _out.ndim == 0, "return one number for the batch (a scalar tensor): sum over the units"
_kl = lambda a, b: a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))
_want = _kl(0.2, 0.2) + _kl(0.2, 0.6)
_swapped = _kl(0.2, 0.2) + _kl(0.6, 0.2)
assert abs(_out.item() - _want) < 1e-9, (
    f"penalty {_out.item():.6f}, expected {_want:.6f}"
    + (": you computed KL(Ber(rho_hat) || Ber(rho)); the target rho goes first" if abs(_out.item() - _swapped) < 1e-9
       else ": average h over the batch (dimension 0) before the KL, one KL per unit"))
assert abs(sparsity_penalty(torch.full((5, 3), 0.05, dtype=torch.float64), 0.05).item()) < 1e-12, \
    "when every unit's mean activation is rho the penalty is 0"
print(f"sparsity penalty {_out.item():.4f} nats")

# %% grade={"exercise": "sparsity_penalty", "points": 3, "forbidden": ["torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence", "course_lib.toy_models.kl_bernoulli"]}
# Grade cell: hidden tests check random batches and that minimising the penalty drives the means to rho.
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(9)
for _rho in [0.05, 0.3, 0.9]:
    _h = torch.sigmoid(torch.randn(16, 6, generator=_g, dtype=torch.float64))
    record(f"sparsity_penalty, rho={_rho}", sparsity_penalty(_h, _rho), rtol=1e-8, atol=1e-10,
           message="KL(rho || rho_hat_j) summed over units, rho_hat_j the mean activation of unit j over the batch")
_logits = torch.zeros(32, 4, requires_grad=True)
_opt = torch.optim.SGD([_logits], lr=20.0)
for _ in range(300):
    _loss = sparsity_penalty(torch.sigmoid(_logits), 0.1)
    _opt.zero_grad()
    _loss.backward()
    _opt.step()
record("mean activations after descending the penalty", torch.sigmoid(_logits).mean(0), rtol=0, atol=0.01,
       message="gradient descent on the penalty must bring every unit's mean activation to rho")
### END HIDDEN TESTS

# %% [markdown]
# ## Going further (not graded)
#
# Train the lesson's `Autoencoder` as a denoising autoencoder with your `salt_and_pepper` corruption (subclass it
# and override `corrupt`), and compare its squared error to the clean images with that of the Gaussian-noise
# denoiser of the lesson, on salt-and-pepper inputs. Then add `contractive_penalty` of the first encoder layer to
# the loss and look again at the 2-D code plane of section 7: are the holes smaller?
