# %% [markdown]
# # Exercises, lesson 4: free bits per group, a prior that is not N(0, I), one γ per pixel
#
# Lesson 4 gave every latent dimension its own free bits, kept the prior at $\mathcal{N}(0, I)$, and found the best
# single decoder scale $\gamma$ in closed form. Each exercise takes the step the lesson did not (9 points in all):
#
# 1. `free_bits_groups(mu, logvar, groups, lam)`: free bits for groups of latent dimensions, 3 points;
# 2. `kl_to_prior(mu, logvar, prior_mu, prior_logvar)`: the KL term of a β-VAE whose prior is a diagonal Gaussian
#    other than $\mathcal{N}(0, I)$, 3 points;
# 3. `optimal_gamma_per_pixel(x, x_hat)`: the best decoder scale of each pixel, 3 points.
#
# Write your code between the lines where the notebook says so; run the check cell after each exercise:
# its message names the mistake it found. The graded cells hold more tests, run by the grader. Each exercise
# says which course functions it must not call (the grader gives 0 to a submission that calls one): the point is
# to derive the step yourself.
#
# **Units** nats per example: summed over pixels or latent dimensions. **Run time** a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib.tooling.checks import record
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)


def check(got, want, what, mistakes=()):
    """Compare a number with the expected one; on a mismatch, name the usual mistake that gives what you got."""
    got = float(got)
    if abs(got - want) <= 1e-4 * max(1.0, abs(want)):
        return
    for wrong, why in mistakes:
        if abs(got - wrong) <= 1e-3 * max(1.0, abs(wrong)):
            raise AssertionError(f"{what}: expected {want:.4f}, got {got:.4f}. {why}")
    raise AssertionError(f"{what}: expected {want:.4f}, got {got:.4f}.")


# %% [markdown]
# ## Exercise 1: free bits for groups of latent dimensions (3 points)
#
# The lesson's `VAE(free_bits=λ)` gives each latent **dimension** $\lambda$ free nats. Kingma et al. (2016, eq. 15)
# state free bits for **groups**: the $d$ latent dimensions are split into $G$ groups, and the training loss
# charges each group's KL, averaged over the batch, only above $\lambda$ nats. A group whose dimensions together carry
# less than $\lambda$ nats on average costs exactly $\lambda$, whatever its dimensions do, so nothing pulls them
# towards the prior; a group above $\lambda$ pays its KL as usual.
#
# Write `free_bits_groups(mu, logvar, groups, lam)`:
# - `mu`, `logvar`: shape `(B, d)`, the encoder's $q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag} e^{\text{logvar}})$ for a batch of $B$ images;
# - `groups`: int64, shape `(d,)`, `groups[j]` is the group of dimension $j$, in $0, \dots, G - 1$ (every group has a
#   dimension; a group's dimensions need not be next to each other);
# - `lam`: a float, nats per group.
#
# Return the KL term of the training loss (it replaces the KL of the lesson's loss), a 0-dim tensor in nats per example.
#
# What to check: with one group per dimension you get the lesson's free-bits term; with every dimension in a single
# group, the larger of $\lambda$ and the batch's mean KL; a group below $\lambda$ gets no gradient.
#
# **Do not call** `course_lib.models.vae.per_dim_kl`, `course_lib.losses.gaussian_kl` or `course_lib.losses.gaussian_kl_general`.

# %%
def free_bits_groups(mu, logvar, groups, lam):
    """The free-bits KL term with lam free nats per group of latent dimensions, a 0-dim tensor."""
    ### BEGIN SOLUTION
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar)                  # (B, d): each dimension, each image
    n_groups = int(groups.max()) + 1
    per_group = torch.zeros(len(kl), n_groups, dtype=kl.dtype, device=kl.device).index_add_(1, groups, kl)
    return torch.clamp(per_group.mean(dim=0), min=lam).sum()
    ### END SOLUTION


# %%
_g = torch.tensor([0, 0, 1, 1])                                 # dimensions 0, 1 in group 0; 2, 3 in group 1
_out = free_bits_groups(torch.zeros(2, 4), torch.zeros(2, 4), _g, 0.5)
assert torch.is_tensor(_out) and _out.dim() == 0, \
    f"return one number for the batch (a 0-dim tensor), got {getattr(_out, 'shape', type(_out))}"
check(_out, 1.0, "q = the prior (every KL is 0), 2 groups, lam = 0.5", [
    (0.0, "Each group costs AT LEAST lam: take the max of lam and the group's KL, not the min."),
    (2.0, "You charged lam per dimension (4 x 0.5): lam is per GROUP; or you multiplied lam by the group's size."),
    (0.5, "You charged lam once for the whole latent space, or averaged over the groups: sum over the 2 groups.")])
_mu = torch.tensor([[1.0, 2.0, 0.0, 1.0], [3.0, 0.0, 1.0, 1.0], [0.0, 1.0, 2.0, 2.0]])
check(free_bits_groups(_mu, torch.zeros(3, 4), _g, 0.0), 13 / 3, "lam = 0, a batch of 3, sigma = 1", [
    (13.0, "3 x too large: average over the batch (nats per example), do not sum over it."),
    (26 / 3, "2 x too large: the KL of a dimension has a factor 1/2."),
    (13 / 6, "2 x too small: sum the groups' terms, do not average them.")])
_lv = torch.tensor([[math.log(4.0), math.log(0.25), 0.0, 0.0], [0.0, 0.0, math.log(4.0), math.log(0.25)]])
check(free_bits_groups(torch.zeros(2, 4), _lv, _g, 0.0), 1.125, "lam = 0, mu = 0, sigma^2 = 4 or 1/4", [
    (0.25, "exp(logvar) is sigma^2, the variance: do not take exp(logvar / 2) (the standard deviation)."),
    (2.25, "2 x too large: check the 1/2 of the KL, and average over the batch.")])
_mu = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
check(free_bits_groups(_mu, torch.zeros(2, 4), _g, 0.8), 1.8,
      "group 0 has KL 2 in image 1 and 0 in image 2 (mean 1 > lam), group 1 has mean 0.5 < lam = 0.8", [
          (2.2, "Average each group's KL over the batch FIRST, then compare with lam: clamping each image's KL lets "
                "every image below lam hide."),
          (3.4, "You clamped each dimension at lam: the free nats belong to the group."),
          (1.5, "You clamped the total KL once: each group gets its own lam."),
          (1.3, "Take the max of lam and the group's KL, not the min.")])
_mu = torch.tensor([[1.2, 0.0, 1.2, 0.0], [1.2, 0.0, 1.2, 0.0]])
check(free_bits_groups(_mu, torch.zeros(2, 4), torch.tensor([0, 1, 0, 1]), 1.0), 2.44,
      "groups = [0, 1, 0, 1]: group 0 is dimensions 0 and 2 (KL 1.44), group 1 dimensions 1 and 3 (KL 0)", [
          (2.0, "Group g is every j with groups[j] == g, not a block of neighbouring dimensions.")])
_mu = torch.tensor([[-0.9, 1.3, -0.2, 0.2, 1.1], [-0.2, 1.2, 0.8, -0.7, 0.4],
                    [1.6, 0.3, -0.4, 0.8, -0.7], [-0.9, 2.2, -1.2, -0.4, 1.4]])
_lv = torch.tensor([[-0.2, 1.7, 0.3, -0.1, -1.6], [0.9, -0.4, 1.1, -0.6, -1.7],
                    [-0.2, 1.7, -0.6, -2.2, -1.2], [1.6, 0.0, -0.7, -0.1, 0.7]])
check(free_bits_groups(_mu, _lv, torch.tensor([2, 0, 1, 2, 0]), 1.0), 4.7459,
      "a random batch, 3 groups of unequal size, lam = 1", [
          (4.5334, "You dropped the - log sigma^2 term of the KL."),
          (3.7528, "exp(logvar) is sigma^2, not sigma."),
          (5.4997, "lam is per group, whatever the group's size.")])
_m = torch.tensor([[3.0, 0.1, 0.2, 0.0], [1.0, 0.3, 0.0, 0.2]], requires_grad=True)
free_bits_groups(_m, torch.zeros(2, 4), torch.tensor([0, 0, 1, 1]), 0.5).backward()
assert torch.allclose(_m.grad[:, 2:], torch.zeros(2, 2)), \
    "group 1 carries less than lam: its dimensions must get no gradient (a constant lam, not lam + something)"
assert torch.allclose(_m.grad[:, :2], _m.detach()[:, :2] / 2), \
    "group 0 is above lam: its gradient is that of its KL averaged over the batch, d/dmu = mu / B"
print("Exercise 1: the checks pass.")

# %% grade={"exercise": "free_bits_groups", "points": 3, "forbidden": ["course_lib.models.vae.per_dim_kl", "course_lib.losses.gaussian_kl", "course_lib.losses.gaussian_kl_general"]}
### BEGIN HIDDEN TESTS
_gen = make_generator(41)
_mu, _lv = torch.randn(64, 10, generator=_gen), torch.randn(64, 10, generator=_gen)
_groups = torch.tensor([3, 0, 1, 1, 2, 0, 3, 3, 2, 1])
for _lam in (0.0, 0.5, 1.5, 4.0):
    record(f"free_bits_groups, 4 groups, lambda={_lam}", free_bits_groups(_mu, _lv, _groups, _lam),
           message="average each group's KL over the batch, then max(lambda, .) per group, then sum over groups")
record("free_bits_groups, one group per dimension", free_bits_groups(_mu, _lv, torch.arange(10), 0.7),
       message="with one group per dimension it must equal the lesson's per-dimension free bits")
record("free_bits_groups, a single group", free_bits_groups(_mu, _lv, torch.zeros(10, dtype=torch.long), 20.0),
       message="with a single group it is max(lambda, mean KL of the batch)")
_m = (0.3 * torch.randn(8, 6, generator=_gen)).requires_grad_(True)
_shift = torch.tensor([2.0, 0.0, 0.0, 2.0, 0.0, 0.0])                 # group 0 = dimensions 0 and 3: above lambda
free_bits_groups(_m + _shift, torch.zeros(8, 6), torch.tensor([0, 1, 2, 0, 1, 2]), 0.6).backward()
record("free_bits_groups, gradient", _m.grad,
       message="a group below lambda gets no gradient; a group above it the gradient of its batch-mean KL")
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2: the KL to a prior that is not N(0, I) (3 points)
#
# The lesson's KL term compares $q_\phi(z \mid x)$ with $p(z) = \mathcal{N}(0, I)$. A β-VAE can use any diagonal
# Gaussian prior $p(z) = \mathcal{N}(m, \operatorname{diag} s^2)$: a prior fitted to the codes, a prior of one class in a
# conditional model, the previous layer's output in a hierarchical VAE. Derive
# $\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)$ for $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ in closed form: start from
# $\mathbb{E}_{q}[\log q(z) - \log p(z)]$ in one dimension (the dimensions are independent under both).
#
# Write `kl_to_prior(mu, logvar, prior_mu, prior_logvar)`: `mu`, `logvar` of shape `(B, d)` (the encoder's output, as in
# the lesson; `logvar` $= \log\sigma^2$), `prior_mu` $= m$ and `prior_logvar` $= \log s^2$ of shape `(d,)` (one prior for the
# batch). Return the KL of each image, shape `(B,)`, in nats.
#
# What to check: 0 when $q$ is the prior; the lesson's KL when $m = 0$, $s = 1$; the Monte Carlo estimate of the
# definition (the check cell computes one). The β-VAE's loss is then recon $+\ \beta$ times its batch mean.
#
# **Do not call** `torch.distributions.kl_divergence`, `course_lib.losses.gaussian_kl_general` or
# `course_lib.losses.gaussian_kl`.

# %%
def kl_to_prior(mu, logvar, prior_mu, prior_logvar):
    """KL(N(mu, diag e^logvar) || N(prior_mu, diag e^prior_logvar)) of each example, shape (B,)."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logvar - prior_logvar)                               # sigma^2 / s^2
    mean_term = (mu - prior_mu) ** 2 * torch.exp(-prior_logvar)           # (mu - m)^2 / s^2
    return 0.5 * (ratio + mean_term - 1.0 - (logvar - prior_logvar)).sum(dim=-1)
    ### END SOLUTION


# %%
_m, _ls2 = torch.tensor([1.0, -2.0]), torch.log(torch.tensor([2.0, 0.5]))
_out = kl_to_prior(_m.repeat(3, 1), _ls2.repeat(3, 1), _m, _ls2)
assert torch.is_tensor(_out) and _out.shape == (3,), \
    f"one KL per image: shape (B,) = (3,), got {getattr(_out, 'shape', type(_out))}: sum over the latent dimensions only"
check(_out.abs().max(), 0.0, "q IS the prior N(m, diag s^2), m = (1, -2), s^2 = (2, 0.5)", [
    (1.0, "KL(p || p) must be 0: the '- 1' of each dimension is missing."),
    (2.75, "q equals p but you compared q with N(0, I): use prior_mu and prior_logvar.")])
_ls2 = torch.log(torch.tensor([4.0, 4.0]))
check(kl_to_prior(torch.tensor([[3.0, 0.0]]), _ls2[None], torch.tensor([1.0, -1.0]), _ls2).item(), 0.625,
      "same variances (4), means 2 and 1 apart", [
          (2.5, "Divide (mu - m)^2 by the prior's variance s^2."),
          (1.25, "2 x too large: each dimension's KL has a factor 1/2."),
          (0.3125, "The KL sums over the latent dimensions, it does not average them.")])
_lq, _lp = torch.log(torch.tensor([[1.0, 2.0]])), torch.log(torch.tensor([4.0, 1.0]))
check(kl_to_prior(torch.zeros(1, 2), _lq, torch.zeros(2), _lp).item(), 0.471574, "same means, sigma^2 = (1, 2), s^2 = (4, 1)", [
    (0.903426, "You computed KL(p || q): the KL of the loss is KL(q || p), the expectation under q."),
    (1.596574, "The variance ratio is sigma^2 / s^2 (q's over the prior's), not its inverse."),
    (-0.221574, "Sign of the log term: it is - log sigma^2 + log s^2."),
    (0.303663, "exp(logvar) is a variance: the ratio is sigma^2 / s^2, not sigma / s."),
    (0.178679, "exp(logvar) is a variance: do not take exp(logvar / 2) for q.")])
_gen = make_generator(7)
_mu, _lv = torch.randn(2, 3, generator=_gen), 0.5 * torch.randn(2, 3, generator=_gen)
_pm, _plv = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.4, -0.3, 1.0])
_q, _p = torch.distributions.Normal(_mu, (0.5 * _lv).exp()), torch.distributions.Normal(_pm, (0.5 * _plv).exp())
_z = _mu + (0.5 * _lv).exp() * torch.randn(200_000, 2, 3, generator=_gen)     # draws of q
_mc = (_q.log_prob(_z) - _p.log_prob(_z)).sum(-1).mean(0)             # E_q[log q(z) - log p(z)], 200,000 draws
_se = (_q.log_prob(_z) - _p.log_prob(_z)).sum(-1).std(0) / math.sqrt(200_000)
_out = kl_to_prior(_mu, _lv, _pm, _plv)
assert ((_out - _mc).abs() < 5 * _se + 1e-4).all(), (
    f"a random case: your KL {_out.tolist()} vs the Monte Carlo estimate of E_q[log q - log p] {_mc.tolist()} "
    f"(standard error {_se.max():.4f})")
print("Exercise 2: the checks pass.")

# %% grade={"exercise": "kl_to_prior", "points": 3, "forbidden": ["torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence", "course_lib.losses.gaussian_kl_general", "course_lib.losses.gaussian_kl"]}
### BEGIN HIDDEN TESTS
_gen = make_generator(42)
for _scale in (0.3, 1.0, 3.0):
    _mu, _lv = 2 * torch.randn(9, 5, generator=_gen), torch.randn(9, 5, generator=_gen)
    _pm, _plv = _scale * torch.randn(5, generator=_gen), _scale * torch.randn(5, generator=_gen)
    record(f"kl_to_prior, prior scale {_scale}", kl_to_prior(_mu, _lv, _pm, _plv),
           message="KL(q || p) per image, summed over dimensions: check the variance ratio, (mu - m)^2 / s^2, the log "
                   "term and the 1/2")
_mu, _lv = torch.randn(6, 4, generator=_gen), torch.randn(6, 4, generator=_gen)
record("kl_to_prior, standard prior", kl_to_prior(_mu, _lv, torch.zeros(4), torch.zeros(4)),
       message="with m = 0 and s = 1 it must be the lesson's KL to N(0, I)")
_plv = torch.randn(4, generator=_gen).requires_grad_(True)
kl_to_prior(_mu, _lv, torch.zeros(4), _plv).sum().backward()
record("kl_to_prior, gradient in the prior's log-variance", _plv.grad,
       message="the KL must be differentiable in the prior's parameters (a learned prior): torch operations only")
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3: one γ per pixel (3 points)
#
# The lesson's Gaussian decoder has one standard deviation $\gamma$ for all pixels, and for fixed reconstructions its
# best value has a closed form. A decoder with one $\gamma_i$ per pixel, $p_\theta(x \mid z) = \prod_i \mathcal{N}(x_i;\ \hat x_i, \gamma_i^2)$,
# can be sure where it reconstructs well (the empty border of a digit) and unsure where it does not. For fixed
# reconstructions $\hat x_n$ of $N$ images, derive the $\gamma_i$ that minimise the negative log-likelihood (eq. 3 of the
# lesson with $\gamma_i$ in place of $\gamma$) averaged over the $N$ images, one pixel at a time.
#
# Write `optimal_gamma_per_pixel(x, x_hat, eps=1e-3)`: `x`, `x_hat` of shape `(N, C, H, W)`; return the `(C, H, W)` tensor
# of the best $\gamma_i$. A pixel reconstructed exactly in every image would get $\gamma_i = 0$ and an infinite density:
# return $\max(\gamma_i, \varepsilon)$ there.
#
# What to check: at your $\gamma$ the derivative of the average negative log-likelihood in every $\log\gamma_i$ is 0
# (the check cell asks autograd), and it is never worse than the best single $\gamma$.
#
# **Do not call** `course_lib.losses.optimal_gamma`.

# %%
def optimal_gamma_per_pixel(x, x_hat, eps=1e-3):
    """The best decoder standard deviation of each pixel for fixed reconstructions, floored at eps: (C, H, W)."""
    ### BEGIN SOLUTION
    return ((x - x_hat) ** 2).mean(dim=0).sqrt().clamp_min(eps)
    ### END SOLUTION


# %%
def _avg_nll(x, x_hat, log_gamma):
    """Eq. 3 with one gamma per pixel, averaged over the images."""
    return (0.5 * (x - x_hat) ** 2 * torch.exp(-2 * log_gamma) + log_gamma + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1).mean()


_x = torch.zeros(4, 1, 2, 2)
_xh = _x.clone()
_xh[:, 0, 0, 0] = 0.5                                  # pixel (0, 0): off by 0.5 in every image
_xh[:, 0, 0, 1] = torch.tensor([0.3, -0.3, 0.1, -0.1])  # pixel (0, 1): errors of both signs
_xh[0, 0, 1, 1] = 1.0                                  # pixel (1, 1): off by 1 in one image of 4; pixel (1, 0) exact
_gs = optimal_gamma_per_pixel(_x, _xh)
assert torch.is_tensor(_gs) and _gs.shape == (1, 2, 2), \
    f"one gamma per pixel, shape (C, H, W) = (1, 2, 2), got {getattr(_gs, 'shape', type(_gs))}: reduce over the images (axis 0) only"
check(_gs[0, 0, 0], 0.5, "pixel (0, 0), off by 0.5 in every image", [
    (0.25, "That is gamma^2: return gamma, its square root."),
    (0.001, "The error is the same in every image, but it is still an error: do not subtract its mean (a standard "
            "deviation of x - x_hat around its mean is not the root mean square of x - x_hat)."),
    (1.0, "Average over the images, do not sum.")])
check(_gs[0, 0, 1], math.sqrt(0.05), "pixel (0, 1), errors 0.3, -0.3, 0.1, -0.1", [
    (0.2, "You averaged |x - x_hat|: the Gaussian's best gamma comes from the squared errors."),
    (0.258199, "Divide by N, not N - 1 (torch.std uses N - 1 by default).")])
check(_gs[0, 1, 0], 1e-3, "pixel (1, 0), exact in every image", [
    (0.0, "Floor gamma at eps: gamma = 0 makes the density infinite.")])
check(_gs[0, 1, 1], 0.5, "pixel (1, 1), off by 1 in one image of 4", [
    (0.501, "eps is a floor (max(gamma, eps)), not something to add to every pixel."),
    (0.25, "Average the SQUARED errors and take the square root.")])
_gen = make_generator(3)
_x = torch.rand(30, 2, 3, 3, generator=_gen)
_xh = _x + torch.rand(1, 2, 3, 3, generator=_gen) * torch.randn(30, 2, 3, 3, generator=_gen)
_lg = optimal_gamma_per_pixel(_x, _xh).log().requires_grad_(True)
_avg_nll(_x, _xh, _lg).backward()
assert _lg.grad.abs().max() < 1e-4, \
    f"the average NLL should be flat in every log gamma_i at your gamma; largest derivative {_lg.grad.abs().max():.3g}"
_one = (((_x - _xh) ** 2).mean()).sqrt().log()          # the lesson's best single gamma
assert _avg_nll(_x, _xh, _lg.detach()) <= _avg_nll(_x, _xh, _one) + 1e-5, "one gamma per pixel can only do better"
print("Exercise 3: the checks pass.")

# %% grade={"exercise": "optimal_gamma_per_pixel", "points": 3, "forbidden": ["course_lib.losses.optimal_gamma"]}
### BEGIN HIDDEN TESTS
_gen = make_generator(44)
_x = torch.rand(50, 3, 5, 5, generator=_gen)
_xh = _x + 0.3 * torch.rand(1, 3, 5, 5, generator=_gen) * torch.randn(50, 3, 5, 5, generator=_gen) + 0.05
record("optimal_gamma_per_pixel", optimal_gamma_per_pixel(_x, _xh, eps=0.0), rtol=1e-5,
       message="gamma_i^2 = the squared error of pixel i averaged over the images (axis 0), gamma_i its square root")
_xh[:, :, 2] = _x[:, :, 2]                                             # one row reconstructed exactly
record("optimal_gamma_per_pixel with exact pixels", optimal_gamma_per_pixel(_x, _xh, eps=0.01), rtol=1e-5,
       message="floor gamma at eps where the reconstruction is exact: max(gamma, eps)")
### END HIDDEN TESTS

# %% [markdown]
# ## Use them (not graded)
#
# Your per-pixel $\gamma$ on a made-up decoder that is accurate in the middle of the image and poor at the border:
# the per-pixel model pays far fewer nats than the best single $\gamma$, because it is sure where it can be.

# %%
gen = make_generator(0)
x = torch.rand(200, 1, 28, 28, generator=gen)
noise = torch.full((1, 1, 28, 28), 0.3)
noise[..., 7:21, 7:21] = 0.02                                   # accurate in the centre
x_hat = x + noise * torch.randn(200, 1, 28, 28, generator=gen)
nll_pix = _avg_nll(x, x_hat, optimal_gamma_per_pixel(x, x_hat).log())
nll_one = _avg_nll(x, x_hat, ((x - x_hat) ** 2).mean().sqrt().log())
print(f"best single gamma: {nll_one:.1f} nats per image; one gamma per pixel: {nll_pix:.1f}")
assert nll_pix < nll_one - 100
