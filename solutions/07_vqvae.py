# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 7: the VQ-VAE's quantizer, its moving averages, its perplexity
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `quantize(z_e, codebook)`: nearest codes of a **grid** of vectors, with the straight-through gradient | 3 |
# | (b) | `ema_step(cluster_size, code_sum, vectors, indices, decay, eps)`: one moving-average codebook update | 3 |
# | (c) | `perplexity(indices, num_codes)`: the effective number of codes used | 2 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then the **self-check** below it.
# Graded cells run hidden tests when your work is collected: do not edit or delete them. Use `torch` operations
# only, and do not call `course_lib.models.vqvae` (the point is to write the formulas).
#
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
import torch.nn.functional as F

from course_lib.tooling.checks import record
from course_lib.runtime import seed_everything

seed_everything(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The quantizer on a grid, with straight-through (3 points)
#
# The encoder outputs a grid `z_e` of shape `(B, D, H, W)`: one $D$-dimensional vector per position. The codebook
# has shape `(K, D)`. Write `quantize(z_e, codebook)` returning
#
# - `indices`, shape `(B, H, W)`, int64: at each position, $k = \arg\min_j \lVert z_e - e_j \rVert_2$ (lesson 7, eq. 1);
# - `quantized`, shape `(B, D, H, W)`: equal to the chosen codes $e_k$ in the forward pass, and carrying the
#   decoder's gradient to `z_e` **unchanged** (straight-through, $z_e + \mathrm{sg}[z_q - z_e]$).
#
# Mind the axes: the code dimension is axis 1 of `z_e` but the last axis of `codebook`.

# %%
def quantize(z_e, codebook):
    """Nearest codes of a (B, D, H, W) grid -> (quantized (B, D, H, W) with straight-through, indices (B, H, W))."""
    ### BEGIN SOLUTION
    b, d, h, w = z_e.shape
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
    indices = torch.cdist(flat.detach(), codebook.detach()).argmin(dim=1)
    z_q = codebook[indices].reshape(b, h, w, d).permute(0, 3, 1, 2)
    quantized = z_e + (z_q - z_e).detach()
    return quantized, indices.reshape(b, h, w)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_codes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
_z = torch.tensor([[[[9.0, 1.0]], [[0.5, 8.0]]]])            # B=1, D=2, H=1, W=2: vectors (9, 0.5) and (1, 8)
_z.requires_grad_(True)
_out = quantize(_z, _codes)
assert isinstance(_out, tuple) and len(_out) == 2, "return (quantized, indices)"
_q, _i = _out
assert _i.shape == (1, 1, 2), (f"indices should have shape (B, H, W) = (1, 1, 2), got {tuple(_i.shape)}: "
                               "reshape the flat assignments back to the grid")
assert _i.dtype == torch.int64, f"indices should be int64 (argmin gives it), got {_i.dtype}"
assert _i.tolist() == [[[1, 2]]], (f"expected codes [[1, 2]] for vectors (9, 0.5) and (1, 8), got {_i.tolist()}: "
                                   "the code dimension is axis 1 of z_e (permute it to the last axis before comparing)")
assert _q.shape == _z.shape, f"quantized should have the shape of z_e, {tuple(_z.shape)}, got {tuple(_q.shape)}"
assert torch.allclose(_q.detach(), torch.tensor([[[[10.0, 0.0]], [[0.0, 10.0]]]])), \
    "quantized should hold the chosen codes e_k, in the (B, D, H, W) layout"
_up = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
_q.backward(_up)
assert _z.grad is not None, "no gradient reached z_e: build quantized as z_e + (z_q - z_e).detach()"
assert torch.allclose(_z.grad, _up), ("the gradient at z_e should be exactly the one arriving at quantized "
                                      "(straight-through); did you detach the wrong part?")
print("Self-check (a) passed.")

# %% grade={"exercise": "quantize", "points": 3}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(71)
for _b, _d, _h, _w, _k in [(2, 3, 4, 5, 7), (1, 16, 7, 7, 32), (3, 1, 2, 2, 4)]:
    _z = torch.randn(_b, _d, _h, _w, generator=_g, requires_grad=True)
    _cb = torch.randn(_k, _d, generator=_g, requires_grad=True)
    _q, _i = quantize(_z, _cb)
    _flat = _z.detach().permute(0, 2, 3, 1).reshape(-1, _d)
    _want = ((_flat[:, None] - _cb.detach()[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(_i.reshape(-1), _want) and _i.shape == (_b, _h, _w)
    assert torch.allclose(_q.detach().permute(0, 2, 3, 1).reshape(-1, _d), _cb.detach()[_want], atol=1e-5)
    _up = torch.randn(_q.shape, generator=_g)
    (_gz,) = torch.autograd.grad((_q * _up).sum(), _z, retain_graph=True)
    assert torch.allclose(_gz, _up)
    _gc = torch.autograd.grad((_q * _up).sum(), _cb, allow_unused=True)[0]
    assert _gc is None or _gc.abs().max() == 0, "the straight-through output gives no gradient to the codebook"
    record(f"quantize indices, z_e {(_b, _d, _h, _w)}, K={_k}", _i, message="the nearest code by squared Euclidean "
           "distance, for each position of the grid: indices of shape (B, H, W)")
    record(f"quantize output, z_e {(_b, _d, _h, _w)}, K={_k}", _q.detach(), atol=1e-5,
           message="the chosen codes, laid out as z_e (B, D, H, W): permute back after the lookup")
    record(f"straight-through gradient, z_e {(_b, _d, _h, _w)}", [_gz, torch.zeros(()) if _gc is None else _gc],
           atol=1e-6, message="z_q = z_e + (e - z_e).detach(): the decoder's gradient reaches z_e unchanged, "
                               "the codebook gets none from this path")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) One moving-average codebook update (3 points)
#
# Lesson 7, eq. 5 (van den Oord et al. 2017, appendix A.1). `vectors` `(N, D)` are the encoder outputs of the
# current batch and `indices` `(N,)` their codes; $n_k$ is how many vectors chose code $k$ and $s_k$ their sum:
#
# $$N_k \leftarrow \gamma N_k + (1-\gamma)\, n_k, \qquad m_k \leftarrow \gamma m_k + (1-\gamma)\, s_k,$$
# $$\tilde N_k = \frac{N_k + \epsilon}{\sum_j N_j + K\epsilon} \sum_j N_j, \qquad e_k = \frac{m_k}{\tilde N_k}.$$
#
# Write `ema_step(cluster_size, code_sum, vectors, indices, decay, eps)`: `cluster_size` $(K,)$ and `code_sum`
# $(K, D)$ are the current $N$ and $m$; return the **new** `(cluster_size, code_sum, codebook)` without modifying
# the inputs. The sums $\sum_j N_j$ use the **updated** $N$.

# %%
def ema_step(cluster_size, code_sum, vectors, indices, decay, eps):
    """One EMA step with Laplace smoothing -> (new cluster_size (K,), new code_sum (K, D), codebook (K, D))."""
    ### BEGIN SOLUTION
    k = cluster_size.shape[0]
    one_hot = F.one_hot(indices, k).to(vectors.dtype)
    new_size = decay * cluster_size + (1 - decay) * one_hot.sum(0)
    new_sum = decay * code_sum + (1 - decay) * one_hot.T @ vectors
    total = new_size.sum()
    smoothed = (new_size + eps) / (total + k * eps) * total
    return new_size, new_sum, new_sum / smoothed[:, None]
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_N, _m = torch.ones(3), torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
_v = torch.tensor([[4.0, 0.0], [6.0, 2.0], [1.0, 1.0]])
_i = torch.tensor([0, 0, 2])
_out = ema_step(_N, _m, _v, _i, decay=0.5, eps=0.0)
assert isinstance(_out, tuple) and len(_out) == 3, "return (cluster_size, code_sum, codebook)"
_N1, _m1, _e1 = _out
assert torch.equal(_N, torch.ones(3)), "do not modify cluster_size in place: return new tensors"
assert torch.allclose(_N1, torch.tensor([1.5, 0.5, 1.0])), \
    f"N = 0.5 * 1 + 0.5 * n with n = (2, 0, 1) gives (1.5, 0.5, 1.0), got {_N1.tolist()}: count the vectors per code"
assert torch.allclose(_m1, torch.tensor([[5.5, 1.5], [1.0, 1.0], [2.0, 2.0]])), \
    f"m = 0.5 m + 0.5 s with s_0 = (10, 2), s_2 = (1, 1); got {_m1.tolist()}: sum the vectors assigned to each code"
assert torch.allclose(_e1, _m1 / _N1[:, None]), "with eps = 0 each code is m_k / N_k"
_e0 = ema_step(_N, _m, _v, _i, decay=0.0, eps=0.0)[2]
assert torch.allclose(_e0[0], torch.tensor([5.0, 1.0])), \
    "with decay 0 a used code is the mean of its vectors: code 0 should be ((4,0)+(6,2))/2 = (5, 1)"
_e_s = ema_step(torch.tensor([2.0, 0.0]), torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.zeros(0, 2),
                torch.zeros(0, dtype=torch.long), decay=1.0, eps=0.1)[2]
assert torch.isfinite(_e_s).all(), "a code with N_k = 0 must not divide by 0: add eps as in the smoothing formula"
assert torch.allclose(_e_s[0], torch.tensor([2.0 / ((2.0 + 0.1) / (2.0 + 0.2) * 2.0), 0.0])), \
    "the smoothed size is (N_k + eps) / (sum N + K eps) * sum N"
print("Self-check (b) passed.")

# %% grade={"exercise": "ema_step", "points": 3}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(72)
_K, _D = 6, 4
_N = torch.rand(_K, generator=_g) + 0.5
_m = torch.randn(_K, _D, generator=_g)
_v = torch.randn(50, _D, generator=_g)
_i = torch.randint(0, _K - 1, (50,), generator=_g)            # the last code gets nothing
_N0, _m0 = _N.clone(), _m.clone()
for _decay, _eps in [(0.99, 1e-5), (0.9, 0.0), (0.0, 1e-3)]:
    _n = torch.bincount(_i, minlength=_K).float()
    _s = torch.zeros(_K, _D).index_add_(0, _i, _v)
    _Nw = _decay * _N + (1 - _decay) * _n
    _mw = _decay * _m + (1 - _decay) * _s
    _ew = _mw / ((_Nw + _eps) / (_Nw.sum() + _K * _eps) * _Nw.sum())[:, None]
    _a, _b, _c = ema_step(_N, _m, _v, _i, _decay, _eps)
    assert torch.allclose(_a, _Nw, atol=1e-6) and torch.allclose(_b, _mw, atol=1e-5)
    assert torch.allclose(_c, _ew, atol=1e-5, rtol=1e-5)
    assert torch.equal(_N, _N0) and torch.equal(_m, _m0)
    record(f"ema_step, decay={_decay}, eps={_eps}", [_a, _b, _c], atol=1e-5,
           message="N <- decay N + (1 - decay) n, m <- decay m + (1 - decay) sum of assigned vectors, codes = m / "
                   "Laplace-smoothed N; do not modify the inputs in place")
# many steps with the same batch: each used code converges to the mean of its vectors
_Nc, _mc = torch.ones(_K), torch.zeros(_K, _D)
for _ in range(400):
    _Nc, _mc, _ec = ema_step(_Nc, _mc, _v, _i, 0.95, 1e-6)
for _j in _i.unique():
    assert torch.allclose(_ec[_j], _v[_i == _j].mean(0), atol=1e-3)
record("codes after 400 EMA steps", _ec[_i.unique()], atol=1e-3,
       message="repeated EMA steps on one batch must reach the mean of the vectors assigned to each code")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) Perplexity from indices (2 points)
#
# With $p_k$ the fraction of the positions (all of them: batch and grid) that use code $k$,
#
# $$\text{perplexity} = \exp\Big(-\sum_k p_k \log p_k\Big) \qquad (0 \log 0 = 0).$$
#
# Write `perplexity(indices, num_codes)`: `indices` is an int64 tensor of any shape with values in
# `0..num_codes-1`; return a 0-dimensional float tensor.

# %%
def perplexity(indices, num_codes):
    """exp(entropy of the code frequencies) of all positions in `indices`."""
    ### BEGIN SOLUTION
    p = F.one_hot(indices.reshape(-1), num_codes).float().mean(0)
    return torch.exp(-torch.special.xlogy(p, p).sum())
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**

# %%
_p = perplexity(torch.arange(8).reshape(2, 2, 2), 8)
assert torch.is_tensor(_p) and _p.ndim == 0, "return a 0-dimensional tensor (one number for all positions)"
assert abs(float(_p) - 8) < 1e-4, f"8 codes used once each: perplexity 8, got {float(_p):.4f}"
_p = perplexity(torch.full((3, 7, 7), 5), 16)
assert torch.isfinite(_p), "one code used, 15 unused: 0 log 0 must count as 0 (got NaN); skip or mask p = 0"
assert abs(float(_p) - 1) < 1e-5, f"a single code used everywhere: perplexity 1, got {float(_p):.4f}"
_p = perplexity(torch.tensor([0, 0, 1, 2]), 4)
assert abs(float(_p) - math.exp(1.5 * math.log(2))) < 1e-4, \
    f"frequencies (1/2, 1/4, 1/4, 0) give exp(1.5 log 2) = {math.exp(1.5 * math.log(2)):.4f}, got {float(_p):.4f}"
print("Self-check (c) passed.")

# %% grade={"exercise": "perplexity", "points": 2}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(73)
for _k in (2, 32, 512):
    _idx = torch.randint(0, _k, (4, 7, 7), generator=_g)
    _cnt = torch.bincount(_idx.reshape(-1), minlength=_k).double()
    _q = _cnt[_cnt > 0] / _cnt.sum()
    assert abs(float(perplexity(_idx, _k)) - math.exp(-(_q * _q.log()).sum().item())) < 1e-3 * _k
    record(f"perplexity, K={_k}", float(perplexity(_idx, _k)), rtol=1e-4, atol=1e-6,
           message="exp of the entropy of the codes' usage frequencies over every position of the batch "
                   "(unused codes contribute 0 log 0 = 0)")
assert abs(float(perplexity(torch.arange(512), 512)) - 512) < 0.05
assert float(perplexity(torch.tensor([3]), 1024)) == 1.0 or abs(float(perplexity(torch.tensor([3]), 1024)) - 1) < 1e-6
# the number of codes matters only through unused codes, which change nothing
assert abs(float(perplexity(torch.tensor([0, 1, 1]), 2)) - float(perplexity(torch.tensor([0, 1, 1]), 50))) < 1e-5
record("perplexity of one code used", float(perplexity(torch.tensor([3]), 1024)), rtol=1e-6, atol=1e-6,
       message="a single code used: perplexity 1")
### END HIDDEN TESTS

# %% [markdown]
# **Going further** (not graded): train `course_lib.models.vqvae.VQVAE` with `restart_after=None` and a larger
# codebook (K = 128): how many codes are dead after one epoch? What does `data_init=True` change?
