# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 6: the conditional VAE, one step further
#
# The lesson conditioned on $y$ by concatenation, kept the prior $p(z) = \mathcal{N}(0, I)$, generated with a chosen
# label and measured whether a generator respects its condition. Each exercise is the next step.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `negative_elbo_class_prior(x, logits, mu, logvar, prior_mu)`: the conditional negative ELBO with a prior that depends on the class, $p(z \mid y) = \mathcal{N}(m_y, I)$ | 4 |
# | (b) | `style_transfer(model, x, y_source, y_target)`: write the digit $x$ of class `y_source` in the same style as class `y_target` | 3 |
# | (c) | `per_class_fid(model, real, features, n_per_class, seed)`: the FID of the generated digits of each class against the real digits of that class | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell below it.
# Graded cells (marked "grade") run hidden tests when your work is collected: do not edit or delete them.
#
# **Units** nats per example, summed over pixels and latent dimensions, averaged over the batch.
#
# Runs in about 10 s on a CPU (it trains one small CVAE, 8 epochs, once).

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib import evaluate as ev
from course_lib.tooling.checks import record
from course_lib.classifier import get_classifier
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.models import CVAE
from course_lib.plots import show_images
from course_lib.runtime import get_device, seed_everything
from course_lib.train import fit

seed_everything(0)
device = get_device()
data = lesson_dataset("mnist", "train", device=device)
test = lesson_dataset("mnist", "test", device=device)
test_bin = test.map(binarize_static)
cvae = CVAE(data.shape, num_classes=10, latent_dim=2, hidden=(256,))
fit(cvae, data, epochs=8, batch_size=64, lr=3e-3, transform=binarize_dynamic, checkpoint="exercise06-cvae",
    progress=False)
classifier = get_classifier(data.name, device=device)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) A prior that depends on the class (4 points)
#
# The lesson used $p(z) = \mathcal{N}(0, I)$ for every $y$. Sohn et al. (2015) let the prior depend on the condition,
# $p_\theta(z \mid y)$. The simplest version: one learned mean per class, $p(z \mid y) = \mathcal{N}(m_y, I)$. The
# conditional ELBO becomes
#
# $$-\mathrm{ELBO}(x \mid y) = \mathbb{E}_{q_\phi(z \mid x, y)}[-\log p_\theta(x \mid z, y)] + \mathrm{KL}\big(q_\phi(z \mid x, y)\,\|\,\mathcal{N}(m_y, I)\big),$$
#
# and for $q_\phi = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ in $d$ dimensions
#
# $$\mathrm{KL}\big(\mathcal{N}(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal{N}(m, I)\big) = \tfrac12 \sum_{j=1}^d \big(\sigma_j^2 + (\mu_j - m_j)^2 - 1 - \log\sigma_j^2\big).$$
#
# Write `negative_elbo_class_prior(x, logits, mu, logvar, prior_mu)`: `x` and `logits` (the decoder's Bernoulli logits
# at one sample $z$) have shape `(batch, C, H, W)`; `mu`, `logvar` ($\log\sigma^2$) and `prior_mu` (the $m_y$ of each
# example's class) shape `(batch, d)`. Return a **scalar**: the reconstruction term summed over pixels plus the KL
# summed over latent dimensions, averaged over the batch. Use
# `F.binary_cross_entropy_with_logits(logits, x, reduction="none")` for the pixels.

# %%
def negative_elbo_class_prior(x, logits, mu, logvar, prior_mu):
    """Bernoulli reconstruction + KL(N(mu, diag exp(logvar)) || N(prior_mu, I)), nats per example."""
    ### BEGIN SOLUTION
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (logvar.exp() + (mu - prior_mu) ** 2 - 1.0 - logvar).sum(1)
    return (recon + kl).mean()
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**

# %%
_x = torch.zeros(2, 1, 2, 2)
_val = negative_elbo_class_prior(_x, torch.zeros(2, 1, 2, 2), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
assert torch.is_tensor(_val) and _val.dim() == 0, (
    f"return a scalar (the average over the batch), got shape {tuple(_val.shape)}")
assert abs(_val.item() - 4 * math.log(2)) < 1e-5, (
    f"logits 0 cost log 2 per pixel (4 pixels) and q = prior gives KL 0: expect {4 * math.log(2):.4f}, got "
    f"{_val.item():.4f}; sum the pixels (do not average them), then average over the batch")
_m = torch.tensor([[1.0, -2.0, 0.5]])
_val = negative_elbo_class_prior(_x[:1], torch.zeros(1, 1, 2, 2), _m, torch.zeros(1, 3), _m)
assert abs(_val.item() - 4 * math.log(2)) < 1e-5, (
    "mu equal to the prior mean and sigma = 1: the KL must be 0; use (mu - prior_mu)^2, not mu^2")
_val = negative_elbo_class_prior(_x[:1], torch.zeros(1, 1, 2, 2), torch.zeros(1, 3), torch.zeros(1, 3), _m)
assert abs(_val.item() - (4 * math.log(2) + 0.5 * (1 + 4 + 0.25))) < 1e-5, (
    f"mu = 0, sigma = 1, prior mean (1, -2, 0.5): the KL is |m|^2 / 2 = 2.625; got {_val.item() - 4 * math.log(2):.4f}")
_val = negative_elbo_class_prior(_x[:1], torch.zeros(1, 1, 2, 2), torch.zeros(1, 1), torch.ones(1, 1), torch.zeros(1, 1))
assert abs(_val.item() - (4 * math.log(2) + 0.5 * (math.e - 2))) < 1e-5, (
    "logvar = 1: sigma^2 = exp(logvar) and the log-variance term enters as - logvar")
print("Self-check (a) passed.")

# %% grade={"exercise": "negative_elbo_class_prior", "points": 4}
### BEGIN HIDDEN TESTS
from torch.distributions import Normal, kl_divergence

from course_lib.losses import bernoulli_nll

_g = torch.Generator().manual_seed(61)
for _b, _d in [(1, 1), (5, 2), (16, 8)]:
    _x = (torch.rand(_b, 1, 4, 3, generator=_g) < 0.4).float()
    _lg = 3 * torch.randn(_b, 1, 4, 3, generator=_g)
    _mu, _lv, _pm = 2 * torch.randn(3, _b, _d, generator=_g)
    _ref = bernoulli_nll(_lg, _x) + kl_divergence(Normal(_mu, torch.exp(0.5 * _lv)), Normal(_pm, 1.0)).sum(1)
    _got = negative_elbo_class_prior(_x, _lg, _mu, _lv, _pm)
    assert _got.dim() == 0 and torch.allclose(_got, _ref.mean(), rtol=1e-5, atol=1e-4)
    record(f"negative_elbo_class_prior, batch {_b}, d={_d}", _got, rtol=1e-5, atol=1e-4,
           message="Bernoulli NLL summed over pixels + KL(N(mu, sigma^2) || N(m_y, I)) summed over z, averaged "
                   "over the batch (the KL's mean difference is mu - m_y)")
# large logits stay finite
assert torch.isfinite(negative_elbo_class_prior(torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), -200.0),
                                                torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)))
# the prior means are learnable: d loss / d m = -(mu - m) / batch
_pm = torch.zeros(4, 3, requires_grad=True)
_mu = torch.randn(4, 3, generator=_g)
negative_elbo_class_prior(torch.zeros(4, 1, 2, 2), torch.zeros(4, 1, 2, 2), _mu, torch.zeros(4, 3), _pm).backward()
assert torch.allclose(_pm.grad, -_mu / 4, atol=1e-6)
record("d loss / d m_y", _pm.grad, atol=1e-6, message="the prior means must get gradients (keep m_y in the graph)")
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) Style transfer (3 points)
#
# In the lesson, $z \sim p(z)$ held the style and $y$ the class. Take the style from a **real** digit instead: encode it
# with its own label, keep the posterior mean $\mu_\phi(x, y_{\text{source}})$, and decode it with another label:
#
# $$\hat x = \mathbb{E}\big[x \mid z = \mu_\phi(x, y_{\text{source}}),\, y_{\text{target}}\big].$$
#
# Write `style_transfer(model, x, y_source, y_target)`: `model` is a `CVAE`, `x` a batch of images, `y_source` and
# `y_target` tensors of labels (one per image). Return the decoder's means (pixel probabilities), the shape of `x`.
# Use `model.encode(x, y)` and `model.decode(z, y)` (they return distributions: `.mean`).

# %%
def style_transfer(model, x, y_source, y_target):
    """Decode the posterior mean of q(z | x, y_source) with the label y_target."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        z = model.encode(x, y_source).mean
        return model.decode(z, y_target).mean
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_x, _y = test_bin.images[:6], test_bin.labels[:6]
_out = style_transfer(cvae, _x, _y, _y)
assert torch.is_tensor(_out) and _out.shape == _x.shape, f"return images of the shape of x, {tuple(_x.shape)}"
assert 0 <= float(_out.min()) and float(_out.max()) <= 1, "return the decoder's mean (probabilities), not logits"
assert torch.allclose(_out, cvae.reconstruct(_x, _y), atol=1e-5), (
    "with y_target = y_source you should get the reconstruction: use the posterior MEAN (no sampling) of q(z|x, y_source)")
assert torch.equal(style_transfer(cvae, _x, _y, (_y + 1) % 10), style_transfer(cvae, _x, _y, (_y + 1) % 10)), (
    "the result should be deterministic: do not sample z")
assert not torch.allclose(style_transfer(cvae, _x, _y, (_y + 1) % 10), _out), "decode with y_target, not y_source"
print("Self-check (b) passed.")

# %% [markdown]
# Five test digits (left column), written as every class:

# %%
_x5, _y5 = test_bin.images[:5], test_bin.labels[:5]
_rows = [torch.cat([_x5[i:i + 1], style_transfer(cvae, _x5[i:i + 1].expand(10, -1, -1, -1),
                                                  _y5[i].expand(10), torch.arange(10, device=device))])
         for i in range(5)]
show_images(torch.cat(_rows), nrow=11, title="Test digit, then its style with y = 0..9")
plt.show()

# %% grade={"exercise": "style_transfer", "points": 3}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(62)
_idx = torch.randperm(len(test_bin), generator=_g)[:200].to(device)
_x, _ys = test_bin.images[_idx], test_bin.labels[_idx]
_yt = torch.randint(0, 10, (200,), generator=_g).to(device)
with torch.no_grad():
    _ref = cvae.decode(cvae.encode(_x, _ys).mean, _yt).mean
_got = style_transfer(cvae, _x, _ys, _yt)
assert _got.shape == _x.shape and torch.allclose(_got, _ref, atol=1e-5)
record("style_transfer of 200 test digits", _got, atol=1e-4,
       message="encode x WITH ITS OWN label, take the posterior mean, decode it with the target label (decoder means)")
# the style comes from x with ITS label: encoding with the target label gives something else
with torch.no_grad():
    _wrong = cvae.decode(cvae.encode(_x, _yt).mean, _yt).mean
assert not torch.allclose(_got[_yt != _ys], _wrong[_yt != _ys], atol=1e-3)
# the output is the requested class
assert (classifier.probs(_got).argmax(1) == _yt).float().mean() > 0.75
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) The FID per class (3 points)
#
# The lesson's accuracy asks "is a requested 7 a 7?". A generator that draws **the same** perfect 7 every time scores
# 100 % there. The FID *within* each class also asks "are the generated 7s as varied as the real 7s?":
#
# $$\mathrm{FID}_c = \mathrm{FID}\big(\{x \in \text{real data} : \text{label}(x) = c\},\; \{x \sim p_\theta(x \mid y = c)\}\big).$$
#
# Write `per_class_fid(model, real, features, n_per_class=200, seed=0)`: `model.sample(n, c, generator=...)` returns
# `n` images of class `c`; `real` is an `ImageData` (`.images`, `.labels`); `features` is what `ev.fid` takes
# (a classifier with `.features`, or a function images -> feature matrix). For each class `c` in `0 .. 9`: draw
# `n_per_class` images with **one** generator `torch.Generator().manual_seed(seed)` created before the loop, and compute
# `ev.fid(real images of class c, generated images, features=features)`. Return a tensor of the 10 values (float).

# %%
def per_class_fid(model, real, features, n_per_class=200, seed=0):
    """FID of the generated digits of each class against the real digits of that class: a tensor of 10 values."""
    ### BEGIN SOLUTION
    g = torch.Generator().manual_seed(seed)
    values = []
    for c in range(10):
        generated = model.sample(n_per_class, c, generator=g)
        values.append(ev.fid(real.images[real.labels == c], generated, features=features))
    return torch.tensor(values)
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**: two fake "models" that draw real test digits. `Copier` returns different digits of the class,
# `Collapsed` always the same one: its FIDs must be the larger. Features: 7 x 7 average-pooled pixels (fast).

# %%
def pooled(x):
    return F.avg_pool2d(x, 4).flatten(1)


class Copier:
    """Draws n real digits of class c (from a pool that is not `data`), at random."""

    def __init__(self, pool, repeat_one=False):
        self.pool, self.repeat_one = pool, repeat_one

    def sample(self, n, c, generator=None):
        imgs = self.pool.images[self.pool.labels == c]
        i = torch.randint(len(imgs), (n,), generator=generator).to(imgs.device)
        return imgs[i[:1]].expand(n, -1, -1, -1) if self.repeat_one else imgs[i]


_f_copy = per_class_fid(Copier(test), data, pooled, n_per_class=80)
_f_coll = per_class_fid(Copier(test, repeat_one=True), data, pooled, n_per_class=80)
assert torch.is_tensor(_f_copy) and _f_copy.shape == (10,), f"return a tensor of 10 FIDs, got {type(_f_copy)}"
assert (_f_copy >= 0).all(), "an FID is never negative"
assert (_f_coll > 2 * _f_copy).all(), (
    "a generator that always draws the same digit must get a much larger FID than one drawing varied real digits: "
    "compare with the real images OF THE SAME CLASS (real.labels == c)")
assert torch.equal(per_class_fid(Copier(test), data, pooled, 80, seed=3), per_class_fid(Copier(test), data, pooled, 80, seed=3)), (
    "use torch.Generator().manual_seed(seed) and pass it to model.sample")
print("Self-check (c) passed. Copier:", [round(v, 1) for v in _f_copy.tolist()])

# %% [markdown]
# The CVAE, with the course classifier's features (the FID of the lesson):

# %%
_fid_cvae = per_class_fid(cvae, test, classifier, n_per_class=100)
print("per-class FID-digits of the CVAE:", [round(v) for v in _fid_cvae.tolist()])

# %% grade={"exercise": "per_class_fid", "points": 3}
### BEGIN HIDDEN TESTS
class _Fixed:
    """sample(n, c): real digits of class c in a fixed order drawn from the generator; records the calls."""

    def __init__(self, pool):
        self.pool, self.calls = pool, []

    def sample(self, n, c, generator=None):
        self.calls.append((n, int(c)))
        imgs = self.pool.images[self.pool.labels == c]
        return imgs[torch.randint(len(imgs), (n,), generator=generator).to(imgs.device)]


_m = _Fixed(test)
_got = per_class_fid(_m, data, pooled, n_per_class=50, seed=5)
assert _m.calls == [(50, c) for c in range(10)], f"one call per class, in order 0..9: {_m.calls}"
_g = torch.Generator().manual_seed(5)
_ref = []
for _c in range(10):
    _gen = _Fixed(test).sample(50, _c, generator=_g)
    _ref.append(ev.fid(data.images[data.labels == _c], _gen, features=pooled))
assert torch.allclose(_got.double(), torch.tensor(_ref, dtype=torch.float64), rtol=1e-4, atol=1e-4)
record("per_class_fid of a fixed sampler", _got.double(), rtol=1e-4, atol=1e-4,
       message="one generator, created before the loop; for class c, n samples of class c against the real digits "
               "of class c")
# the per-class FID sees what the overall FID cannot: a swapped pair of classes
class _Swapped(_Fixed):
    def sample(self, n, c, generator=None):
        return super().sample(n, {3: 5, 5: 3}.get(int(c), int(c)), generator)


_sw = per_class_fid(_Swapped(test), data, pooled, n_per_class=50, seed=5)
assert _sw[3] > 2 * _got[3] and _sw[5] > 2 * _got[5] and torch.allclose(_sw[0], _got[0])
record("per_class_fid with classes 3 and 5 swapped", _sw.double(), rtol=1e-4, atol=1e-4,
       message="compare each class's samples with the real digits OF THAT CLASS")
### END HIDDEN TESTS
