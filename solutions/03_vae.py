# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 3: the three formulas of a Gaussian VAE
#
# You write the three lines that make a VAE a VAE; `course_lib` does the rest.
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `gaussian_kl(mu, logvar)`: the KL of $q_\phi(z \mid x)$ to the prior $\mathcal{N}(0, I)$ | 3 |
# | (b) | `reparameterize(mu, logvar, eps)`: a sample of $q_\phi(z \mid x)$ that gradients can pass through | 2 |
# | (c) | `negative_elbo(x, logits, mu, logvar)`: the loss, in nats per example | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then run the **self-check** cell
# below it: its messages say what to look at. Graded cells (marked "grade") run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations only (no NumPy), and do not call
# `course_lib.losses`: the point is to write the formula.
#
# **Units** as in the course: nats per example, summed over pixels and latent dimensions, averaged over the batch.
# `logvar` is $\log \sigma^2$, one value per latent dimension.
#
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import math

import torch
import torch.nn.functional as F

from course_lib.runtime import get_device, seed_everything

seed_everything(0)
device = get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The KL term in closed form (3 points)
#
# For $q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ and $p(z) = \mathcal{N}(0, I)$ in $d$ dimensions (lesson 3, eq. 3):
#
# $$\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big) = \tfrac12\big(\operatorname{tr}\Sigma + \mu^\top\mu - d - \log\det\Sigma\big)
#   = \tfrac12 \sum_{j=1}^{d} \big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big).$$
#
# Write `gaussian_kl(mu, logvar)`: `mu` and `logvar` have shape `(batch, d)`; return a tensor of shape `(batch,)`,
# one KL per example, **summed** over the $d$ latent dimensions.

# %%
def gaussian_kl(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the last dimension: (batch, d) -> (batch,)."""
    ### BEGIN SOLUTION
    return 0.5 * (logvar.exp() + mu**2 - 1.0 - logvar).sum(dim=-1)
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**: run this cell; it says what is wrong, if anything.

# %%
_kl = gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 3))
assert torch.is_tensor(_kl), "gaussian_kl should return a torch tensor"
assert _kl.shape == (4,), (f"for mu, logvar of shape (4, 3) expect one KL per example, shape (4,), got {tuple(_kl.shape)}: "
                           "sum over the latent dimension (dim=-1), not over the batch")
assert torch.allclose(_kl, torch.zeros(4), atol=1e-6), \
    f"q = N(0, I) is the prior: the KL must be 0, got {_kl.tolist()}; check the '- 1' and the '- log sigma^2' terms"
_kl = gaussian_kl(torch.zeros(1, 1), torch.ones(1, 1))
assert _kl.item() > 0, (f"your KL is {_kl.item():.4f} for mu = 0, logvar = 1: a KL is never negative; "
                        "check the sign of the -log sigma^2 term (it is -logvar)")
assert abs(_kl.item() - 0.5 * (math.e - 2)) < 1e-5, \
    (f"for mu = 0, logvar = 1 the KL is (e - 1 - 1) / 2 = {0.5 * (math.e - 2):.4f}, got {_kl.item():.4f}: "
     "sigma^2 = exp(logvar), and the log-variance term enters with a minus sign (- logvar)")
_kl = gaussian_kl(torch.tensor([[2.0, 0.0]]), torch.zeros(1, 2))
assert abs(_kl.item() - 2.0) < 1e-5, (f"for mu = (2, 0), sigma = 1 the KL is mu^T mu / 2 = 2, got {_kl.item():.4f}: "
                                      "check the mu^2 term and the factor 1/2, and that you sum (not average) over dimensions")
print("Self-check (a) passed.")

# %% grade={"exercise": "gaussian_kl", "points": 3}
### BEGIN HIDDEN TESTS
from torch.distributions import Normal, kl_divergence

from course_lib.losses import gaussian_kl as _reference_kl

_g = torch.Generator().manual_seed(31)
for _batch, _d in [(1, 1), (7, 5), (32, 20)]:
    _mu = 2 * torch.randn(_batch, _d, generator=_g)
    _lv = 1.5 * torch.randn(_batch, _d, generator=_g)
    _got = gaussian_kl(_mu, _lv)
    assert _got.shape == (_batch,)
    assert torch.allclose(_got, _reference_kl(_mu, _lv), rtol=1e-5, atol=1e-5)
    _q = Normal(_mu, torch.exp(0.5 * _lv))
    assert torch.allclose(_got, kl_divergence(_q, Normal(0.0, 1.0)).sum(-1), rtol=1e-4, atol=1e-5)
    assert (_got >= -1e-6).all()
# small and large variances (the sign of each term matters at both ends)
_mu = torch.zeros(2, 3)
_lv = torch.tensor([[-4.0, -4.0, -4.0], [3.0, 3.0, 3.0]])
assert torch.allclose(gaussian_kl(_mu, _lv), _reference_kl(_mu, _lv), rtol=1e-5)
# summed over dimensions: d identical dimensions give d times the 1-D value
_one = gaussian_kl(torch.full((1, 1), 0.7), torch.full((1, 1), -0.3))
_six = gaussian_kl(torch.full((1, 6), 0.7), torch.full((1, 6), -0.3))
assert torch.allclose(_six, 6 * _one, rtol=1e-5)
# differentiable
_mu = torch.randn(3, 4, generator=_g, requires_grad=True)
gaussian_kl(_mu, torch.zeros(3, 4)).sum().backward()
assert torch.allclose(_mu.grad, _mu.detach(), atol=1e-5)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) The reparameterization trick (2 points)
#
# A sample $z \sim \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ written as a differentiable function of $(\mu, \log\sigma^2)$ and of
# noise $\varepsilon \sim \mathcal{N}(0, I)$ that does not depend on them:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \sigma = \exp\big(\tfrac12 \log\sigma^2\big).$$
#
# Write `reparameterize(mu, logvar, eps)`: all three have the same shape; return $z$, same shape. Use the `eps` you are
# given (do not draw new noise), so that the result is reproducible and gradients reach `mu` and `logvar`.

# %%
def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps, differentiable in mu and logvar."""
    ### BEGIN SOLUTION
    return mu + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**

# %%
_mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
_lv = torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
_eps = torch.tensor([[0.5, 1.0]])
_z = reparameterize(_mu, _lv, _eps)
assert torch.is_tensor(_z) and _z.shape == _mu.shape, f"z should have the shape of mu, {tuple(_mu.shape)}"
assert torch.allclose(reparameterize(_mu, _lv, torch.zeros(1, 2)), _mu), "with eps = 0 the sample should be mu"
assert torch.allclose(_z, torch.tensor([[1.5, 0.0]])), (
    f"for mu = (1, -2), sigma^2 = (1, 4), eps = (0.5, 1) expect z = (1.5, 0.0), got {_z.tolist()}: "
    "multiply eps by the standard deviation sigma = exp(logvar / 2), not by the variance or by logvar")
assert _z.requires_grad, ("z has no gradient history: build it from mu and logvar with torch operations "
                          "(no .detach(), .item(), torch.normal or .sample())")
_z.sum().backward()
assert _mu.grad is not None and torch.allclose(_mu.grad, torch.ones(1, 2)), "dz/dmu should be 1"
assert _lv.grad is not None and torch.allclose(_lv.grad, torch.tensor([[0.25, 1.0]])), (
    f"dz/dlogvar should be sigma * eps / 2 = (0.25, 1.0), got {None if _lv.grad is None else _lv.grad.tolist()}")
print("Self-check (b) passed.")

# %% grade={"exercise": "reparameterize", "points": 2}
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(32)
_mu = torch.randn(64, 6, generator=_g, requires_grad=True)
_lv = torch.randn(64, 6, generator=_g, requires_grad=True)
_eps = torch.randn(64, 6, generator=_g)
_z = reparameterize(_mu, _lv, _eps)
assert torch.allclose(_z, _mu + torch.exp(0.5 * _lv) * _eps, atol=1e-6)
assert torch.equal(reparameterize(_mu, _lv, _eps), _z), "the same eps must give the same z (no fresh noise)"
(_z**2).sum().backward()
assert torch.allclose(_mu.grad, 2 * _z.detach(), atol=1e-5)
assert torch.allclose(_lv.grad, 2 * _z.detach() * 0.5 * torch.exp(0.5 * _lv.detach()) * _eps, atol=1e-5)
# moments: many samples of one q have mean mu and variance sigma^2
_m, _s = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.2, 1.0, 3.0])
_zs = reparameterize(_m.expand(40_000, 3), (2 * _s.log()).expand(40_000, 3), torch.randn(40_000, 3, generator=_g))
assert ((_zs.mean(0) - _m).abs() < 5 * _s / 200).all()
assert torch.allclose(_zs.std(0), _s, rtol=0.03)
# very small variances stay finite
assert torch.isfinite(reparameterize(torch.zeros(2), torch.full((2,), -60.0), torch.ones(2))).all()
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (c) The negative ELBO (3 points)
#
# With a Bernoulli decoder whose logits are $\ell = f_\theta(z)$, one sample $z$ per example, and the closed-form KL:
#
# $$-\mathrm{ELBO}(x) \approx \underbrace{-\sum_{i=1}^{D} \big[x_i \log \mathrm{sigmoid}(\ell_i) + (1 - x_i)\log\big(1 - \mathrm{sigmoid}(\ell_i)\big)\big]}_{-\log p_\theta(x \mid z)\ \text{summed over pixels}}
#  + \mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big).$$
#
# Write `negative_elbo(x, logits, mu, logvar)`: `x` and `logits` have shape `(batch, C, H, W)`, `mu` and `logvar`
# shape `(batch, d)`; return a **scalar**: the per-example value above averaged over the batch (nats per example).
# Use your `gaussian_kl`, and for the reconstruction `F.binary_cross_entropy_with_logits(logits, x, reduction="none")`,
# which computes the bracket per pixel without overflow for large logits. (The grader checks (c) with a correct
# `gaussian_kl`, so a mistake in (a) costs points only once.)

# %%
def negative_elbo(x, logits, mu, logvar):
    """Bernoulli reconstruction (summed over pixels) + KL (summed over latent dims), averaged over the batch."""
    ### BEGIN SOLUTION
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").reshape(len(x), -1).sum(dim=1)
    return (recon + gaussian_kl(mu, logvar)).mean()
    ### END SOLUTION


# %% [markdown]
# **Self-check (c)**

# %%
_x = torch.zeros(2, 1, 2, 2)
_x[0, 0, 0, 0] = 1.0
_val = negative_elbo(_x, torch.zeros(2, 1, 2, 2), torch.zeros(2, 3), torch.zeros(2, 3))
assert torch.is_tensor(_val) and _val.dim() == 0, (
    f"negative_elbo should return a scalar (the average over the batch), got shape {tuple(_val.shape)}")
assert abs(_val.item() - 4 * math.log(2)) < 1e-5, (
    f"with logits 0 each of the 4 pixels costs log 2 and the KL is 0, so the loss is 4 log 2 = {4 * math.log(2):.4f} "
    f"nats per example; got {_val.item():.4f}: sum over pixels (not mean), then average over the batch")
_val = negative_elbo(_x, torch.zeros(2, 1, 2, 2), torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.zeros(2, 3))
assert abs(_val.item() - (4 * math.log(2) + 1.0)) < 1e-5, (
    f"one example has KL 2 and the other 0: the batch average adds 1 nat, expected {4 * math.log(2) + 1:.4f}, "
    f"got {_val.item():.4f}; add the KL per example before averaging over the batch")
_val = negative_elbo(torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 200.0), torch.zeros(1, 3), torch.zeros(1, 3))
assert torch.isfinite(_val) and _val.item() < 1e-3, (
    "with logits +200 and x = 1 the reconstruction cost should be ~0, not inf or nan: "
    "use F.binary_cross_entropy_with_logits, not log(sigmoid(...))")
print("Self-check (c) passed.")

# %% grade={"exercise": "negative_elbo", "points": 3}
### BEGIN HIDDEN TESTS
from course_lib.losses import bernoulli_nll as _ref_nll
from course_lib.losses import gaussian_kl as _ref_kl
from course_lib.models import VAE as _VAE

# (c) is graded on its own: while these tests run, gaussian_kl is the reference one, so a mistake in (a)
# is not counted twice.
_student_kl = globals().get("gaussian_kl")
gaussian_kl = _ref_kl
try:
    _g = torch.Generator().manual_seed(33)
    _x = (torch.rand(16, 1, 8, 8, generator=_g) < 0.4).float()
    _logits = 3 * torch.randn(16, 1, 8, 8, generator=_g)
    _mu, _lv = torch.randn(16, 5, generator=_g), torch.randn(16, 5, generator=_g)
    _want = (_ref_nll(_logits, _x) + _ref_kl(_mu, _lv)).mean()
    assert torch.allclose(negative_elbo(_x, _logits, _mu, _lv), _want, rtol=1e-5)
    # grey-level targets too (the formula does not assume binary pixels)
    _xg = torch.rand(4, 1, 8, 8, generator=_g)
    assert torch.allclose(negative_elbo(_xg, _logits[:4], _mu[:4], _lv[:4]),
                          (_ref_nll(_logits[:4], _xg) + _ref_kl(_mu[:4], _lv[:4])).mean(), rtol=1e-5)
    # extreme logits stay finite
    _big = 500 * torch.sign(torch.randn(16, 1, 8, 8, generator=_g))
    assert torch.isfinite(negative_elbo(_x, _big, _mu, _lv))
    # the same number as the course's VAE.loss with the same noise
    _model = _VAE((1, 8, 8), latent_dim=5, hidden=(32,))
    torch.manual_seed(5)
    _terms = _model.loss(_x)
    torch.manual_seed(5)
    _m, _l = _model.encoder_params(_x)
    _z = _m + torch.exp(0.5 * _l) * torch.randn_like(_m)
    assert torch.allclose(negative_elbo(_x, _model.decoder(_z).view_as(_x), _m, _l), _terms["neg_elbo"], rtol=1e-5)
finally:
    gaussian_kl = _student_kl
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Put it together (not graded)
#
# Your three functions are all a VAE needs beyond its two networks. The loop below is the one of the slides:
# batch, encoder, reparameterized sample, decoder, loss, backpropagation. The loss should fall well below its
# starting value of about $64 \log 2 \approx 44$ nats per image.

# %%
from course_lib.data import binarize_dynamic, load_dataset
from course_lib.models import VAE

data = load_dataset("digits", "train", device=device)
vae = VAE(data.shape, latent_dim=8, hidden=(128,)).to(device)
opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
losses = []
for step, (x, _) in zip(range(200), (b for _ in range(100) for b in data.batches(128))):
    x = binarize_dynamic(x)                                   # 1. a batch (binary pixels)
    mu, logvar = vae.encoder_params(x)                        # 2. encoder
    z = reparameterize(mu, logvar, torch.randn_like(mu))      # 3. sample, reparameterized
    logits = vae.decoder(z).view_as(x)                        # 4. decoder
    loss = negative_elbo(x, logits, mu, logvar)               # 5. loss
    opt.zero_grad()
    loss.backward()                                           # 6. gradients
    opt.step()
    losses.append(loss.detach())
losses = torch.stack(losses)
first, last = losses[:10].mean().item(), losses[-10:].mean().item()
print(f"negative ELBO: {first:.1f} -> {last:.1f} nats per image over {len(losses)} steps")
assert last < 0.7 * first, "the loss should fall: check (a)-(c) above"
