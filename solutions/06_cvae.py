# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 6: the conditional VAE, one step further
#
# The lesson conditioned on $y$ by concatenation, generated with a chosen label, measured whether a generator respects
# its condition and learned a class prior. Each exercise is the next step.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `class_log_posterior(model, x, log_prior, eps)`: the CVAE as a classifier, $\log p(y \mid x)$ from the conditional ELBO of every label | 4 |
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
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from course_lib import evaluate as ev
from course_lib.tooling.checks import record
from course_lib.classifier import get_classifier
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.models import CVAE
from course_lib.plots import show_images
from course_lib.runtime import get_device, make_generator, seed_everything
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
# ## (a) The CVAE as a classifier (4 points)
#
# The lesson used the CVAE to generate a digit of a chosen class. Turned around, it also says which class an image
# belongs to: by Bayes' rule $p(y \mid x) \propto p(y)\, p_\theta(x \mid y)$, and the conditional ELBO is a lower
# bound of $\log p_\theta(x \mid y)$ that the model can compute for **every** candidate label. So estimate
#
# $$\log p(y \mid x) \approx \mathrm{ELBO}(x \mid y) + \log p(y) - \log \sum_{y'} \exp\big(\mathrm{ELBO}(x \mid y') + \log p(y')\big)$$
#
# and classify by its argmax. Write `class_log_posterior(model, x, log_prior, eps)`:
#
# - `model` has the lesson's API (`encode(x, y)` returns $q_\phi(z \mid x, y)$, `decode(z, y)` a distribution over
#   images whose `log_prob` sums over pixels, `prior` is $p(z) = \mathcal{N}(0, I)$); `x` has shape `(batch, C, H, W)`;
# - `log_prior` holds $\log p(y)$ for the `num_classes = len(log_prior)` labels;
# - `eps` of shape `(k, batch, d)` is standard normal noise: use it for the $k$ reparameterized codes of each
#   $q_\phi(z \mid x, y)$ (no other randomness, so that the result is reproducible), average the reconstruction term
#   over the $k$ codes, and take the KL term in closed form (`torch.distributions.kl_divergence`, lesson 3).
#
# Return a tensor `(batch, num_classes)` of $\log p(y \mid x)$. **Check**: rows are log-probabilities; on the test
# digits, the argmax agrees with the true label most of the time (printed below).

# %%
def class_log_posterior(model, x, log_prior, eps):
    """log p(y|x) for every label y, from the conditional ELBO (k codes z = mu + sigma * eps) and the prior p(y)."""
    ### BEGIN SOLUTION
    k, n = eps.shape[:2]
    scores = []
    for c in range(len(log_prior)):
        y = torch.full((n,), c, dtype=torch.long, device=x.device)
        q = model.encode(x, y)                                     # q(z | x, y) for the candidate label y
        z = q.mean + q.stddev * eps                                # (k, batch, d)
        log_px = model.decode(z.flatten(0, 1), y.repeat(k)).log_prob(x.repeat(k, 1, 1, 1)).view(k, n).mean(0)
        scores.append(log_px - kl_divergence(q, model.prior))
    scores = torch.stack(scores, dim=1) + log_prior.to(x.device)
    return scores - torch.logsumexp(scores, dim=1, keepdim=True)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)** on a tiny model whose ELBO is known: 3 classes, $d = 2$, 2 x 2 images,
# $q(z \mid x, y) = \mathcal{N}(a_y + \tfrac12 \textstyle\sum_i x_i, \operatorname{diag} e^{b_y})$ and
# $p(x \mid z, y) = \mathrm{Bernoulli}(\text{logits } z W + c_y)$.

# %%
class _Tiny(torch.nn.Module):
    def __init__(self, a=0.0, b=0.0, W=0.0, c=0.0):
        super().__init__()
        self.a, self.b = torch.as_tensor(a).expand(3, 2).float(), torch.as_tensor(b).expand(3, 2).float()
        self.W, self.c = torch.as_tensor(W).expand(2, 4).float(), torch.as_tensor(c).expand(3, 4).float()
        self.prior = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)

    def encode(self, x, y):
        mu = self.a[y] + 0.5 * x.flatten(1).sum(1, keepdim=True)
        return Independent(Normal(mu, torch.exp(0.5 * self.b[y])), 1)

    def decode(self, z, y):
        return Independent(Bernoulli(logits=(z @ self.W + self.c[y]).view(-1, 1, 2, 2)), 3)


_x, _e = torch.zeros(4, 1, 2, 2), torch.zeros(1, 4, 2)
_flat = torch.zeros(3)                                                        # log p(y) up to a constant
_kl = _Tiny(a=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]),
            b=torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, -1.0]]))             # only the KL terms differ
_out = class_log_posterior(_kl, _x, _flat, _e)
assert torch.is_tensor(_out) and _out.shape == (4, 3), f"return (batch, num_classes) = (4, 3), got {tuple(_out.shape)}"
assert torch.allclose(_out.logsumexp(1), torch.zeros(4), atol=1e-5), (
    "each row must be a log-distribution over the labels: subtract the logsumexp over the labels (dim 1), not over the batch")
_neg_kl = -torch.tensor([0.0, 0.574361, 2.183940])                           # -KL(q(z|x,y) || N(0, I)) per label
_want = _neg_kl - _neg_kl.logsumexp(0)
assert not torch.allclose(_out[0], torch.full((3,), -math.log(3)), atol=1e-3), (
    "all labels get the same probability although their KL terms differ: encode x with each candidate label y")
assert torch.allclose(_out[0], _want, atol=1e-4), (
    f"KL terms 0, 0.574, 2.184 and equal reconstructions: expect {_want.tolist()}, got {_out[0].tolist()}; "
    "the ELBO SUBTRACTS the KL, in closed form, KL(q || prior) in that order (the KL is not symmetric)")
_skew = torch.log(torch.tensor([0.2, 0.3, 0.5]))
_out2 = class_log_posterior(_kl, _x, _skew, _e)
assert torch.allclose(_out2[0], _want + _skew - (_want + _skew).logsumexp(0), atol=1e-4), (
    "with p(y) = (0.2, 0.3, 0.5) the log-posterior must move by log p(y): add log_prior (not subtract it) to each "
    "label's ELBO before normalising")
_pix = _Tiny(c=torch.tensor([[0.0] * 4, [2.0] * 4, [-1.0] * 4]))               # only the reconstruction differs
_ones = torch.ones(4, 1, 2, 2)
_rec = -4 * torch.nn.functional.softplus(-torch.tensor([0.0, 2.0, -1.0]))     # log p(x = 1 | logits c_y), 4 pixels
_out = class_log_posterior(_pix, _ones, _flat, torch.zeros(1, 4, 2))
assert torch.allclose(_out[0], _rec - _rec.logsumexp(0), atol=1e-4), (
    f"only the pixels differ here: expect {(_rec - _rec.logsumexp(0)).tolist()}, got {_out[0].tolist()}; "
    "log p(x|z, y) is the SUM over the 4 pixels (decode(...).log_prob already sums), not their mean")
_noisy = _Tiny(b=math.log(4.0), W=torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]),
               c=torch.tensor([[0.0] * 4, [1.0] * 4, [-1.0] * 4]))
_eps = torch.tensor([[[1.0, 0.0]] * 4, [[-3.0, 0.0]] * 4])                   # k = 2 codes per image
_z0 = 2.0 + 2.0 * torch.tensor([1.0, -3.0])                                   # mu = 2 (x = ones), sigma = 2
_lp = -4 * torch.nn.functional.softplus(-(_z0.view(1, 2) + torch.tensor([0.0, 1.0, -1.0]).view(3, 1)))
_want = _lp.mean(1)                                                           # the KL is the same for the 3 labels
_z0 = 2.0 * torch.tensor([1.0, -3.0])                                         # mu = 0 (x = zeros)
_lp = -4 * torch.nn.functional.softplus(_z0.view(1, 2) + torch.tensor([0.0, 1.0, -1.0]).view(3, 1))
_want = torch.stack([_want, _lp.mean(1)])
_mixed = torch.cat([torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)])          # two images of ones, two of zeros
_out = class_log_posterior(_noisy, _mixed, _flat, _eps)[[0, 2]]
assert torch.allclose(_out, _want - _want.logsumexp(1, keepdim=True), atol=1e-4), (
    f"expect {(_want - _want.logsumexp(1, keepdim=True)).tolist()}, got {_out.tolist()}: the codes are z = mu + sigma * eps "
    "(sigma = 2 here, the posterior standard deviation, not its variance), one per row of eps, and the reconstruction "
    "term is their MEAN over the k codes of each image (dim 0 of eps), not over the whole batch")
print("Self-check (a) passed.")

# %% [markdown]
# The lesson's CVAE as a classifier of 500 test digits, with $p(y) = 1/10$ and $k = 4$ codes per label:

# %%
_n = 500
with torch.no_grad():
    _lp = class_log_posterior(cvae, test_bin.images[:_n], torch.full((10,), -math.log(10)),
                              torch.randn(4, _n, 2, generator=make_generator(7)).to(device))
print(f"argmax_y log p(y|x) is the true label for {(_lp.argmax(1) == test_bin.labels[:_n]).float().mean():.1%} "
      f"of {_n} test digits (a model trained to generate, never to classify)")

# %% grade={"exercise": "class_log_posterior", "points": 4, "forbidden": ["course_lib.evaluate.elbo", "course_lib.evaluate.iwae_nll", "course_lib.evaluate.log_weights", "course_lib.evaluate.iwae_bound"]}
### BEGIN HIDDEN TESTS
_g = make_generator(61)
_idx = torch.randperm(len(test_bin), generator=_g)[:100].to(device)
_eps = torch.randn(3, 100, 2, generator=_g).to(device)
_skewed = torch.log_softmax(torch.randn(10, generator=_g), 0).to(device)
with torch.no_grad():
    _lp = class_log_posterior(cvae, test_bin.images[_idx], _skewed, _eps)
record("class_log_posterior of 100 test digits with a skewed p(y)", _lp.double().cpu(), rtol=1e-4, atol=2e-3,
       message="for every label y: encode x with y, k codes mu + sigma * eps, mean reconstruction over the codes minus "
               "the closed-form KL, plus log p(y); then normalise over the labels")
record("labels chosen by the CVAE", _lp.argmax(1).double().cpu(), rtol=0, atol=0.5,
       message="the argmax over labels of your log-posterior")
_t = _Tiny(a=torch.tensor([[0.5, -1.0], [1.0, 0.0], [0.0, 2.0]]), b=torch.tensor([[0.3, -0.2], [0.0, 0.5], [-1.0, 0.0]]),
           W=torch.tensor([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, -1.0, 1.0]]), c=torch.tensor([[0.2] * 4, [-1.0] * 4, [1.0] * 4]))
_xt = (torch.rand(5, 1, 2, 2, generator=_g) < 0.5).float()
_lt = class_log_posterior(_t, _xt, torch.log(torch.tensor([0.5, 0.3, 0.2])), torch.randn(4, 5, 2, generator=_g))
record("class_log_posterior of a tiny model", _lt.double(), rtol=1e-5, atol=1e-5,
       message="check the sign of the KL, the sum over pixels, the mean over the k codes and the prior p(y)")
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


class _LabelCode(torch.nn.Module):
    """encode(x, y): the posterior mean is (y, 0) whatever x; decode(z, y): every pixel has probability sigmoid(z_1 - y)."""

    def encode(self, x, y):
        return Independent(Normal(torch.stack([y.float(), torch.zeros(len(y))], 1), torch.ones(len(y), 2)), 1)

    def decode(self, z, y):
        return Independent(Bernoulli(logits=(z[:, :1] - y.float()[:, None]).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)), 3)


_src, _tgt = torch.tensor([3, 1, 4]), torch.tensor([1, 4, 1])
_got = style_transfer(_LabelCode(), torch.zeros(3, 1, 2, 2), _src, _tgt)
assert not torch.allclose(_got, torch.full_like(_got, 0.5)), (
    "you encoded x with the TARGET label: the style is q(z | x, y_source), the code of x with its own label")
assert torch.allclose(_got, torch.sigmoid((_src - _tgt).float()).view(3, 1, 1, 1).expand(3, 1, 2, 2)), (
    "encode with y_source, decode the posterior mean with y_target")
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

# %% grade={"exercise": "style_transfer", "points": 3, "forbidden": []}
### BEGIN HIDDEN TESTS
_g = make_generator(62)
_idx = torch.randperm(len(test_bin), generator=_g)[:200].to(device)
_x, _ys = test_bin.images[_idx], test_bin.labels[_idx]
_yt = torch.randint(0, 10, (200,), generator=_g).to(device)
_got = style_transfer(cvae, _x, _ys, _yt)
record("style_transfer of 200 test digits", _got, atol=1e-4,
       message="encode x WITH ITS OWN label (y_source), take the posterior mean, decode it with the target label "
               "(decoder means)")
_got_t = style_transfer(_LabelCode(), torch.zeros(6, 1, 2, 2), torch.tensor([0, 2, 5, 7, 9, 1]), torch.tensor([3, 3, 1, 0, 9, 8]))
record("style_transfer of a model whose code is the label", _got_t, atol=1e-5,
       message="the code comes from q(z | x, y_source), not from the target label")
record("the classifier recognises the target class in style-transferred digits",
       (classifier.probs(_got).argmax(1) == _yt).float().mean(), atol=0.05,
       message="decode with y_target: the output should be a digit of the target class")
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

# %% grade={"exercise": "per_class_fid", "points": 3, "forbidden": []}
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
record("per_class_fid: the calls to sample", torch.tensor(_m.calls, dtype=torch.float64).flatten(), atol=0,
       message="one call per class, in order 0..9, each for n_per_class images")
record("per_class_fid of a fixed sampler", _got.double(), rtol=1e-4, atol=1e-4,
       message="one generator, created before the loop; for class c, n samples of class c against the real digits "
               "of class c")
# the per-class FID sees what the overall FID cannot: a swapped pair of classes
class _Swapped(_Fixed):
    def sample(self, n, c, generator=None):
        return super().sample(n, {3: 5, 5: 3}.get(int(c), int(c)), generator)


_sw = per_class_fid(_Swapped(test), data, pooled, n_per_class=50, seed=5)
record("per_class_fid with classes 3 and 5 swapped", _sw.double(), rtol=1e-4, atol=1e-4,
       message="compare each class's samples with the real digits OF THAT CLASS")
### END HIDDEN TESTS
