# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 8: masks and likelihoods of autoregressive models
#
# You write the pieces that make a network autoregressive, and the number that scores it; `course_lib` does the rest.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `made_masks_for_order(order, hidden_numbers)`: MADE's masks for **any ordering** and **several hidden layers** | 3 |
# | (b) | `rgb_conv_mask(kernel_size, mask_type, in_channels, out_channels)`: a PixelCNN mask for **colour** images | 3 |
# | (c) | `bits_per_dim(logits, x)`: the log-likelihood of K-way conditionals, in bits per dimension | 2 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages say what to look at. Graded cells (marked "grade") run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations only: `course_lib.models.autoregressive` is not available to you here (a submission that
# calls it scores 0 on the exercise).
#
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
import torch.nn.functional as F

from course_lib.tooling.checks import record
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) MADE's masks for any ordering and any depth (3 points)
#
# Lesson 8 built the masks of one hidden layer for the order $x_1, \dots, x_D$. In general (Germain et al. 2015,
# eq. 12-13), input d gets the number $m^0(d)$ = **its position in the ordering** (1 for the first input generated,
# D for the last), hidden unit k of layer l a number $m^l(k) \in \{1, \dots, D-1\}$, and
#
# $$M^{W^l}_{k,k'} = \mathbb{1}\big[m^l(k) \ge m^{l-1}(k')\big] \quad (l = 1..L), \qquad
#   M^V_{d,k} = \mathbb{1}\big[m^0(d) > m^L(k)\big].$$
#
# Write `made_masks_for_order(order, hidden_numbers)`:
# - `order`: a list of the D input indices in the order they are generated (`order[0]` first), e.g. `[2, 0, 1]`
#   means $x_2$ first, then $x_0$, then $x_1$, so $m^0 = (2, 3, 1)$;
# - `hidden_numbers`: a list of L long tensors, the numbers $m^l(k)$ of each hidden layer;
# - return the list of L + 1 float masks `[M^{W^1}, ..., M^{W^L}, M^V]`, each of shape (units out, units in).

# %%
def made_masks_for_order(order, hidden_numbers):
    """MADE masks [M^W1, ..., M^WL, M^V] (each (out, in), float 0/1) for an ordering and hidden numbers m^l(k)."""
    ### BEGIN SOLUTION
    d = len(order)
    position = torch.zeros(d, dtype=torch.long)
    position[torch.as_tensor(order, dtype=torch.long)] = torch.arange(1, d + 1)
    numbers = [position] + [torch.as_tensor(m, dtype=torch.long) for m in hidden_numbers]
    masks = [(numbers[l + 1].unsqueeze(1) >= numbers[l].unsqueeze(0)).float() for l in range(len(hidden_numbers))]
    masks.append((position.unsqueeze(1) > numbers[-1].unsqueeze(0)).float())
    return masks
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**: run this cell; it says what is wrong, if anything.

# %%
_m = made_masks_for_order([0, 1, 2], [torch.tensor([1, 2])])
assert isinstance(_m, (list, tuple)) and len(_m) == 2, \
    f"one hidden layer gives two masks (M^W, M^V), got {len(_m) if isinstance(_m, (list, tuple)) else type(_m)}"
assert tuple(_m[0].shape) == (2, 3) and tuple(_m[1].shape) == (3, 2), \
    (f"shapes (out, in): M^W (2 hidden, 3 inputs), M^V (3 outputs, 2 hidden); got {tuple(_m[0].shape)}, "
     f"{tuple(_m[1].shape)}")
assert _m[0].tolist() == [[1, 0, 0], [1, 1, 0]], \
    f"M^W for m(k) = (1, 2): unit k sees input d iff m(k) >= m(d); got {_m[0].tolist()}"
assert _m[1].tolist() == [[0, 0], [1, 0], [1, 1]], \
    f"M^V: output d sees unit k iff m(d) > m(k) (strictly: x̂_d must not see x_d); got {_m[1].tolist()}"
_m = made_masks_for_order([2, 0, 1], [torch.tensor([1, 2])])
assert _m[0].tolist() == [[0, 0, 1], [1, 0, 1]], \
    ("order [2, 0, 1]: x_2 is generated first, so m^0 = (2, 3, 1) (m^0[d] is the POSITION of input d, not order[d]); "
     f"expected M^W [[0, 0, 1], [1, 0, 1]], got {_m[0].tolist()}")
_m = made_masks_for_order([0, 1, 2, 3], [torch.tensor([1, 2, 3]), torch.tensor([2, 2, 3])])
assert len(_m) == 3 and tuple(_m[1].shape) == (3, 3), \
    "two hidden layers: three masks; the second compares layer-2 numbers with layer-1 numbers (not with the inputs)"
print("Self-check (a) passed.")

# %% grade={"exercise": "made_masks_for_order", "points": 3, "forbidden": ["course_lib.models.autoregressive"]}
### BEGIN HIDDEN TESTS
_g = make_generator(81)
for _d, _hidden in [(5, (8,)), (7, (10, 12)), (9, (6, 6, 6))]:
    _order = torch.randperm(_d, generator=_g).tolist()
    _numbers, _low = [], 1
    for _h in _hidden:                                   # hidden numbers in [min of the previous layer, D - 1]
        _numbers.append(torch.randint(_low, _d, (_h,), generator=_g))
        _low = int(_numbers[-1].min())
    _got = made_masks_for_order(_order, _numbers)
    record(f"made_masks_for_order, D={_d}, hidden={_hidden}", [torch.as_tensor(_m).float() for _m in _got],
           rtol=0, atol=0, message="hidden layers: M[k, j] = 1 when m_l(k) >= m_(l-1)(j); output: M[i, k] = 1 when the "
                                   "input's position in the ordering is > m_L(k) (strictly: no path from x_i to x_hat_i)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) A PixelCNN mask for colour images (3 points)
#
# Lesson 8 masked the kernel of a one-channel image. With colours, each feature map belongs to a colour:
# map `f` is colour `f % 3` (R = 0, G = 1, B = 2, then R, G, B, ...), for inputs and outputs alike. The rule
# (van den Oord et al. 2016a, eq. 6 of the lesson): every map sees **all** colours of the rows above and of the
# pixels to the left; **at the centre** of the kernel, an output map of colour $g$ sees input maps of colour
# $g' < g$ (type A) or $g' \le g$ (type B); nothing below or to the right.
#
# Write `rgb_conv_mask(kernel_size, mask_type, in_channels, out_channels)`: `kernel_size` odd, `mask_type` `"A"` or
# `"B"`, channel counts multiples of 3; return a float 0/1 tensor of shape
# `(out_channels, in_channels, kernel_size, kernel_size)`.

# %%
def rgb_conv_mask(kernel_size, mask_type, in_channels, out_channels):
    """PixelCNN kernel mask for RGB feature maps (map f has colour f % 3): (out, in, k, k) float 0/1."""
    ### BEGIN SOLUTION
    k, centre = kernel_size, kernel_size // 2
    rows = torch.arange(k).view(k, 1)
    cols = torch.arange(k).view(1, k)
    spatial = ((rows < centre) | ((rows == centre) & (cols < centre))).float()      # strictly before the centre
    colour_out = (torch.arange(out_channels) % 3).view(-1, 1)
    colour_in = (torch.arange(in_channels) % 3).view(1, -1)
    at_centre = (colour_in < colour_out) if mask_type == "A" else (colour_in <= colour_out)
    mask = spatial.expand(out_channels, in_channels, k, k).clone()
    mask[:, :, centre, centre] = at_centre.float()
    return mask
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_a = rgb_conv_mask(1, "A", 3, 3)
assert tuple(_a.shape) == (3, 3, 1, 1), f"shape (out, in, k, k) = (3, 3, 1, 1), got {tuple(_a.shape)}"
assert _a[:, :, 0, 0].tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]], \
    (f"type A centre (rows: output colour R, G, B; columns: input colour): R sees nothing, G sees R, B sees R and G; "
     f"got {_a[:, :, 0, 0].tolist()}")
_b = rgb_conv_mask(1, "B", 3, 3)
assert _b[:, :, 0, 0].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]], \
    f"type B centre: each colour also sees its own colour; got {_b[:, :, 0, 0].tolist()}"
_a3 = rgb_conv_mask(3, "A", 3, 6)
assert tuple(_a3.shape) == (6, 3, 3, 3)
assert (_a3[:, :, 0, :] == 1).all() and (_a3[:, :, 1, 0] == 1).all(), \
    "every map sees all colours of the row above and of the pixel to the left"
assert (_a3[:, :, 2, :] == 0).all() and (_a3[:, :, 1, 2] == 0).all(), "nothing below or to the right"
assert _a3[3, 0, 1, 1] == 0 and _a3[4, 0, 1, 1] == 1, \
    "output map 3 is red (3 % 3 = 0): it sees no colour at the centre in type A; map 4 is green: it sees red"
print("Self-check (b) passed.")

# %% grade={"exercise": "rgb_conv_mask", "points": 3, "forbidden": ["course_lib.models.autoregressive"]}
### BEGIN HIDDEN TESTS
for _k, _t, _i, _o in [(3, "A", 3, 12), (5, "B", 12, 12), (7, "A", 3, 6), (1, "B", 12, 9), (5, "A", 6, 3)]:
    record(f"rgb_conv_mask({_k}, {_t!r}, {_i}, {_o})", torch.as_tensor(rgb_conv_mask(_k, _t, _i, _o)).float(),
           rtol=0, atol=0, message="shape (out, in, k, k); pixels above and to the left are all seen; at the centre, "
                                   "colour g = f % 3 of the output sees input colours < g (type A) or <= g (type B)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) The likelihood of K-way conditionals, in bits per dimension (2 points)
#
# A PixelCNN with a K-way softmax (256 grey levels, or K codes of a VQ-VAE) outputs logits $l_{i,k}$ for every
# dimension i. The log-likelihood is $\log p(x) = \sum_{i=1}^{D} \log \operatorname{softmax}(l_{i,\cdot})_{x_i}$, and papers on
# colour images report **bits per dimension**, $-\log_2 p(x) / D = -\log p(x) / (D \ln 2)$.
#
# Write `bits_per_dim(logits, x)`: `logits` of shape (B, K, *dims) (the class axis second, as in
# `F.cross_entropy`), `x` long of shape (B, *dims) with values in 0..K-1; return one value per example, shape (B,),
# with D = the number of dimensions of one example (the product of `dims`).

# %%
def bits_per_dim(logits, x):
    """-log2 p(x) / D for K-way conditionals: logits (B, K, *dims), x (B, *dims) long -> (B,)."""
    ### BEGIN SOLUTION
    log_probs = torch.log_softmax(logits, dim=1)
    picked = log_probs.gather(1, x.unsqueeze(1)).squeeze(1)          # log p(x_i | x_<i), (B, *dims)
    flat = picked.reshape(len(x), -1)
    return -flat.sum(1) / (flat.shape[1] * math.log(2))
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**

# %%
_bpd = bits_per_dim(torch.zeros(2, 256, 3, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.long))
assert torch.is_tensor(_bpd) and _bpd.shape == (2,), f"one value per example, shape (2,), got {getattr(_bpd, 'shape', _bpd)}"
assert torch.allclose(_bpd, torch.full((2,), 8.0)), \
    (f"uniform logits over 256 levels cost log2(256) = 8 bits per dimension, got {_bpd.tolist()}: divide by D and by "
     "ln 2, and use the log-softmax (not the raw logits)")
_l = torch.log(torch.tensor([[[0.5, 0.25], [0.5, 0.75]]]))             # (B=1, K=2, D=2)
_v = bits_per_dim(_l, torch.tensor([[0, 1]]))
assert abs(float(_v) - (-(math.log2(0.5) + math.log2(0.75)) / 2)) < 1e-5, \
    f"p = 0.5 then 0.75: (1 + 0.415) / 2 = 0.708 bits per dimension, got {float(_v):.4f}: pick the probability of x_i"
print("Self-check (c) passed.")

# %% grade={"exercise": "bits_per_dim", "points": 2, "forbidden": ["course_lib.models.autoregressive"]}
### BEGIN HIDDEN TESTS
_g = make_generator(8)
for _shape, _k in [((4, 7, 7), 32), ((3, 3, 5, 5), 256), ((2, 10), 3)]:
    _logits = 3 * torch.randn(_shape[0], _k, *_shape[1:], generator=_g)
    _x = torch.randint(0, _k, _shape, generator=_g)
    record(f"bits_per_dim, shape {_shape}, K={_k}", bits_per_dim(_logits, _x), rtol=1e-5, atol=1e-5,
           message="-log p summed over the dimensions of each example, divided by (number of dimensions x ln 2): "
                   "a value 0.69 (= ln 2) times the expected one means nats instead of bits")
_big = torch.tensor([[[100.0], [0.0]]])
record("bits_per_dim with a logit of 100", bits_per_dim(_big, torch.tensor([[1]])), rtol=1e-5, atol=1e-5,
       message="use log_softmax (or cross_entropy): softmax then log overflows for large logits")
### END HIDDEN TESTS
