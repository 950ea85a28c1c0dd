# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 4: β-VAE and the decoder's variance
#
# **What you will learn**
# - the β-VAE objective, and what $\beta$ below, at and above 1 does to reconstructions, samples and the latent space;
# - the *rate-distortion* view of a VAE: the KL is a rate, the reconstruction term a distortion, and $\beta$ picks a point on their trade-off curve;
# - how to read a latent space: traversals, the KL of each latent dimension, *active units*, and *posterior collapse*;
# - KL warm-up, a training schedule for $\beta$ that keeps latent units alive;
# - the Gaussian decoder with a learned standard deviation $\gamma$ (seed 003, eq. 3-4): a fixed $\gamma$ is a
#   β-VAE in disguise ($\beta = 2\gamma^2$), and the best $\gamma$ has a closed form.
#
# **You need** lesson 2 (the ELBO) and lesson 3 (the VAE: encoder, decoder, reparameterization, `course_lib.models.VAE`).
#
# **Run time** about 30 s on a CPU in quick mode (`COURSE_QUICK=1`: 8x8 digits, small models, few epochs);
# in full mode (MNIST, 28x28) roughly 10 minutes on one GPU (an estimate from the number of training steps, not a measurement).
# Trained models are saved as checkpoints: re-running the notebook loads them in seconds.
#
# **Units** every loss term is in **nats per example**: summed over pixels and latent dimensions, averaged over the batch.

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import losses
from course_lib.data import lesson_dataset
from course_lib.models import VAE
from course_lib.plots import image_grid, show_images
from course_lib.runtime import describe, get_device, pick, seed_everything
from course_lib.schedules import kl_warmup, warmup_beta
from course_lib.train import evaluate_terms, fit

generator = seed_everything(0)
device = get_device()
# Okabe-Ito palette (colour-blind safe)
C = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
     "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode (`COURSE_QUICK=1`, used by the tests) only changes these sizes:

# %%
LATENT = pick(16, 32)               # latent dimensions d
HIDDEN = pick((128,), (512,))       # hidden layer sizes of the encoder (the decoder mirrors them)
BETAS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0)
EPOCHS_SWEEP = pick(20, 30)         # epochs of each model of the beta sweep
EPOCHS_GAUSS = pick(50, 100)        # epochs of the learned-gamma models (gamma needs steps: Adam moves log gamma ~LR a step)
WARMUP_EPOCHS = pick(25, 20)        # length of the KL warm-up
BATCH, LR = 128, pick(5e-3, 3e-3)

# %% slideshow={"slide_type": "skip"}
train = lesson_dataset("mnist", "train", device=device)
test = lesson_dataset("mnist", "test", device=device)
K = train.dim                       # k in seed 003: the number of pixels of an image
x_show = test.images[:8]            # a few test images for the figures
print(train, test, sep="\n")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The β-VAE objective
#
# The VAE loss has two terms that pull in opposite directions: reconstruct $x$ well, and keep
# $q_\phi(z \mid x)$ close to the prior $p(z)$. The β-VAE (Higgins et al. 2017) weighs the second one
# with a knob $\beta \ge 0$ (course slides, section "β-VAE"):
#
# $$\mathcal{L}_\beta(\theta, \phi; x) = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}\big[-\log p_\theta(x \mid z)\big]}_{\text{reconstruction error}}
#   + \beta \cdot \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)}_{\text{distance to the prior}}$$
#
# (the slides write the reconstruction term as $\|\hat x - x\|$; with a Gaussian decoder it is a squared error, section 6).
#
# - $\beta = 1$: the classic VAE, $\mathcal{L}_1 = -\mathrm{ELBO}$;
# - $\beta > 1$: codes closer to the prior, worse reconstructions;
# - $\beta < 1$: better reconstructions, a less structured latent space.
#
# For $\beta \ne 1$ the objective is no longer the negative ELBO: to compare models we always report
# $-\mathrm{ELBO} = \text{recon} + \text{KL}$ as well.

# %% [markdown] slideshow={"slide_type": "subslide"}
# In code it is one line of `VAE.loss` (lesson 3), with the KL in closed form:
#
# ```python
# mu, logvar = self.encoder_params(x)
# z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)     # reparameterization
# recon = -self.decode(z).log_prob(x).mean()                  # E_q[-log p(x|z)], one sample
# kl = gaussian_kl(mu, logvar).mean()                         # KL(q(z|x) || N(0, I))
# loss = recon + self.beta * kl
# ```
#
# Check: the terms a model reports satisfy these identities for any $\beta$.

# %%
model = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, beta=4.0).to(device)
with torch.no_grad():
    terms = model.loss(x_show)
assert torch.allclose(terms["loss"], terms["recon"] + 4.0 * terms["kl"]), "loss = recon + beta * KL"
assert torch.allclose(terms["neg_elbo"], terms["recon"] + terms["kl"]), "-ELBO = recon + KL, whatever beta"
assert terms["kl"] >= 0
print({k: round(float(v), 3) for k, v in terms.items()})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Rate and distortion
#
# Alemi et al. (2018) name the two terms, averaged over the data:
#
# $$D = \mathbb{E}_{x}\,\mathbb{E}_{q_\phi(z \mid x)}\big[-\log p_\theta(x \mid z)\big] \quad\text{(distortion)}, \qquad
#   R = \mathbb{E}_{x}\,\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) \quad\text{(rate)}.$$
#
# - $R$ bounds the information the code carries about $x$ (in nats): $R = 0$ means $z$ says nothing about $x$;
# - $-\mathrm{ELBO} = D + R$: models with the same ELBO lie on a line of slope $-1$ in the $(R, D)$ plane;
# - the β-VAE minimises $D + \beta R$: $\beta$ is the price of one nat of rate. A large $\beta$ buys a low rate
#   with a high distortion, a small $\beta$ the opposite.
#
# We train one model per $\beta$ (same architecture, same seed, same epochs). `fit(..., checkpoint=...)`
# stores the weights: the checkpoint key includes $\beta$, so each model has its own file.

# %% slideshow={"slide_type": "subslide"}
sweep = {}
for beta in BETAS:
    seed_everything(0)
    m = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, beta=beta)
    hist = fit(m, train, test, epochs=EPOCHS_SWEEP, batch_size=BATCH, lr=LR, checkpoint=f"lesson04-beta{beta:g}",
               progress=False)
    sweep[beta] = m
    print(f"beta = {beta:<4g} {hist.summary()}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Rate and distortion of each model on the test set (nats per example). A reference point: a model that
# ignores $z$ ($R = 0$) can at best output the pixel-wise mean image $\bar x$, with distortion
# $D_0 = -\sum_i [x_i \log \bar x_i + (1 - x_i) \log(1 - \bar x_i)]$.

# %%
seed_everything(1)
rd = {b: evaluate_terms(m, test) for b, m in sweep.items()}          # one z sample per test image
rates = np.array([rd[b]["kl"] for b in BETAS])
distortions = np.array([rd[b]["recon"] for b in BETAS])
x_bar = train.images.mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4)
D0 = losses.bernoulli_nll(torch.logit(x_bar).expand_as(test.images), test.images).mean().item()

print(" beta |  rate R | distortion D | -ELBO = D + R")
for b, r, d in zip(BETAS, rates, distortions):
    print(f"{b:5g} | {r:7.2f} | {d:12.2f} | {r + d:8.2f}")
print(f"D0 (the mean image, R = 0): {D0:.2f}")

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6.5, 4.5))
r_max = rates.max() * 1.1
for c in np.arange(np.floor((rates + distortions).min()), (rates + distortions).max() + 2, 2.0):
    ax.plot([0, r_max], [c, c - r_max], color="grey", lw=0.6, ls=":")
ax.plot(rates, distortions, "-o", color=C["blue"])
labels = {}                                        # models that land on the same point share one label
for b, r, d in zip(BETAS, rates, distortions):
    key = (round(r / 0.3), round(d / 0.3))
    labels.setdefault(key, [r, d, []])[2].append(f"{b:g}")
for r, d, bs in labels.values():
    ax.annotate("β=" + ", ".join(bs), (r, d), textcoords="offset points", xytext=(6, 4), fontsize=9)
ax.axhline(D0, color=C["vermillion"], ls="--", lw=1, label="$D_0$: mean image, no information")
ax.set(xlim=(-0.3, r_max), ylim=(distortions.min() - 1, D0 + 2), xlabel="rate R = KL (nats per example)",
       ylabel="distortion D = E[-log p(x|z)] (nats per example)",
       title="β-VAE sweep in the rate-distortion plane (test set)")
ax.plot([], [], color="grey", lw=0.6, ls=":", label="lines of equal ELBO (D + R = const)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# Checks: as $\beta$ grows the rate goes down and the distortion goes up (up to a small tolerance: each point
# is one finite training run, evaluated with one sample of $z$); no model does worse than $D_0$ by much; and
# the classic VAE ($\beta = 1$, the one that maximises the ELBO) has (about) the best ELBO.

# %%
TOL = 0.2   # nats
assert np.all(np.diff(rates) <= TOL), f"the rate should decrease with beta: {rates.round(2)}"
assert np.all(np.diff(distortions) >= -TOL), f"the distortion should increase with beta: {distortions.round(2)}"
assert rates[0] > rates[-1] + 5 and distortions[-1] > distortions[0] + 5, "the sweep should span the trade-off"
assert np.all(distortions <= D0 + 0.5), "a trained decoder should not be worse than the mean image"
neg_elbo = rates + distortions
assert neg_elbo[BETAS.index(1.0)] <= neg_elbo.min() + 0.5, f"beta = 1 should (about) minimise -ELBO: {neg_elbo.round(2)}"

# %% [markdown] slideshow={"slide_type": "notes"}
# Alemi et al. (2018, Figure 1) draw the same plane: the feasible region lies above a convex curve, the
# β-VAE traces it, and the line D + R = const touching it at slope -1 is the best ELBO. Here the
# distortion never gets near 0 because the Bernoulli likelihood is evaluated on grey-level pixels: the
# cross-entropy of a pixel of value 0.5 is at least log 2 whatever the decoder does.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. What β does to images
#
# Left, test images (top row) and their reconstructions by each model; right, samples from the prior
# $z \sim p(z)$ decoded (decoder means). Small $\beta$: sharp reconstructions, but samples that look like
# nothing (the prior is far from the codes the decoder has seen). Large $\beta$: every reconstruction and
# every sample is the same average digit.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    recs = {b: m.reconstruct(x_show) for b, m in sweep.items()}
    samples = {b: m.sample(8, generator=torch.Generator().manual_seed(0)) for b, m in sweep.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 0.8 * len(BETAS) + 1.8))
show_images(torch.cat([x_show] + [recs[b] for b in BETAS]), nrow=8, ax=axes[0],
            title="Test images (top), reconstructions for β = " + ", ".join(f"{b:g}" for b in BETAS))
show_images(torch.cat([samples[b] for b in BETAS]), nrow=8, ax=axes[1],
            title="Prior samples, one row per β (same z in each column)")
fig.tight_layout()
plt.show()

mse = {b: ((recs[b] - x_show) ** 2).mean().item() for b in BETAS}
assert mse[BETAS[0]] < mse[BETAS[-1]], "reconstructions should get worse as beta grows"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Latent traversals
#
# Take a test image, encode it ($z = \mu_\phi(x)$), and move **one** coordinate $z_j$ over $[-3, 3]$
# (three prior standard deviations) with the others fixed. Which coordinates? Those that carry
# information: the per-dimension KL averaged over the data,
#
# $$\mathrm{KL}_j = \mathbb{E}_x\, \tfrac12\big(\sigma_j^2(x) + \mu_j^2(x) - 1 - \log \sigma_j^2(x)\big), \qquad
#   \sum_j \mathrm{KL}_j = R,$$
#
# is large for the dimensions the decoder uses and about 0 for the others.

# %%
@torch.no_grad()
def per_dim_kl(model, x):
    """KL_j averaged over the batch x: the rate split over latent dimensions (sums to the KL term)."""
    mu, logvar = model.encoder_params(x)
    return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).mean(0)


@torch.no_grad()
def traverse(model, x, dims, values):
    """Decode z = mu(x) with coordinate j replaced by each value: (len(dims) * len(values)) images."""
    z0 = model.encode(x[:1]).mean                                # (1, d)
    z = z0.repeat(len(dims) * len(values), 1)
    for r, j in enumerate(dims):
        z[r * len(values):(r + 1) * len(values), j] = values
    return model.generate(z)


kl_dims = {b: per_dim_kl(m, test.images) for b, m in sweep.items()}
for b in BETAS:
    with torch.no_grad():
        assert torch.allclose(kl_dims[b].sum(), losses.gaussian_kl(*sweep[b].encoder_params(test.images)).mean()), \
            "the per-dimension KLs add up to the KL term"

# %% slideshow={"slide_type": "subslide"}
B_TRAV = 1.0
model = sweep[B_TRAV]
order = torch.argsort(kl_dims[B_TRAV], descending=True)
dims = order[:5].tolist() + [order[-1].item()]                     # the 5 most informative and the least
values = torch.linspace(-3, 3, 9, device=device)
images = traverse(model, x_show[:1], dims, values)

fig, ax = plt.subplots(figsize=(7, 5.2))
show_images(images, nrow=len(values), ax=ax,
            title=f"Traversals, β = {B_TRAV:g}: rows z_j for j = {dims} (KL_j = "
                  + ", ".join(f"{kl_dims[B_TRAV][j]:.2f}" for j in dims) + ")")
ax.set_xlabel("$z_j$ from -3 to 3 (other coordinates at $\\mu_\\phi(x)$)")
ax.title.set_fontsize(8)
fig.tight_layout()
plt.show()

rows = images.reshape(len(dims), len(values), -1)
change = (rows[:, -1] - rows[:, 0]).norm(dim=-1)                   # how much the image moves along each row
print("image change from z_j = -3 to 3:", change.cpu().numpy().round(2))
assert change[0] > 5 * change[-1], "the top-KL dimension should move the image far more than the lowest-KL one"

# %% [markdown] slideshow={"slide_type": "notes"}
# The last row is the dimension with the smallest KL: the decoder ignores it, so moving it changes nothing.
# The other rows often mix several factors (thickness, slant, identity): a β-VAE with beta > 1 tends to give
# more "disentangled" single-factor dimensions on data with independent factors (Higgins et al. 2017), but
# nothing forces it on digits.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Posterior collapse and active units
#
# When a dimension is not worth its price, the encoder sets $q_\phi(z_j \mid x) = p(z_j) = \mathcal{N}(0, 1)$ for
# **every** $x$: $\mathrm{KL}_j = 0$ and the decoder learns to ignore $z_j$. This is *posterior collapse*
# (of one unit, or of all of them). Burda et al. (2016) count the units that are used with an
# *activity statistic*: how much the posterior mean moves with $x$,
#
# $$A_j = \mathrm{Cov}_x\big(\mathbb{E}_{q_\phi(z \mid x)}[z_j]\big) = \mathrm{Var}_x\big(\mu_{\phi,j}(x)\big), \qquad
#   \text{unit } j \text{ is active if } A_j > 10^{-2}.$$

# %%
@torch.no_grad()
def activity(model, x):
    """A_j = Var_x(E_q[z_j]) over the data x (one value per latent dimension)."""
    mu, _ = model.encoder_params(x)
    return mu.var(dim=0, unbiased=False)


def active_units(model, x, threshold=1e-2):
    """Number of latent dimensions whose activity exceeds the threshold (Burda et al. 2016)."""
    return int((activity(model, x) > threshold).sum())


acts = {b: activity(m, test.images) for b, m in sweep.items()}
n_active = {b: active_units(m, test.images) for b, m in sweep.items()}
print("active units per beta:", n_active)

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
kl_matrix = torch.stack([kl_dims[b].sort(descending=True).values for b in BETAS]).cpu().numpy()
im = axes[0].imshow(kl_matrix, cmap="viridis", aspect="auto")
axes[0].set(yticks=range(len(BETAS)), yticklabels=[f"{b:g}" for b in BETAS], ylabel="β",
            xlabel="latent dimension (sorted by KL)", title="Per-dimension KL$_j$ (nats), test set")
fig.colorbar(im, ax=axes[0], label="nats")
cmap = plt.get_cmap("viridis")
for i, b in enumerate(BETAS):
    axes[1].semilogy(range(1, LATENT + 1), acts[b].sort(descending=True).values.cpu().clamp_min(1e-8), "-o", ms=3,
                     color=cmap(i / (len(BETAS) - 1)), label=f"β = {b:g} ({n_active[b]} active)")
axes[1].axhline(1e-2, color="black", ls="--", lw=1, label="threshold $10^{-2}$")
axes[1].set(xlabel="latent dimension (sorted)", ylabel="activity $A_j$ (log scale)",
            title="Activity statistic $A_j = \\mathrm{Var}_x(\\mu_j(x))$")
axes[1].legend(fontsize=7, ncol=2, loc="lower left")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# Checks: fewer units survive as $\beta$ grows (compared between $\beta$s a factor 4 apart: neighbours can swap
# by a few units in short runs), far fewer at the largest $\beta$ (on the 8x8 digits almost none; MNIST,
# richer, keeps more), and the two diagnostics agree: a unit counted inactive carries (almost) no KL.

# %%
counts = [n_active[b] for b in BETAS]
assert all(n_active[b2] <= n_active[b1] for b1 in BETAS for b2 in BETAS if b2 >= 4 * b1), \
    f"a model with a beta 4 times larger should not have more active units: {counts}"
assert counts[0] >= LATENT // 2 and counts[-1] <= counts[0] - LATENT // 4, \
    f"most units active at beta={BETAS[0]}, far fewer at {BETAS[-1]}: {counts}"
for b in BETAS:
    inactive = acts[b] <= 1e-2
    assert (kl_dims[b][inactive] < 0.1).all(), f"beta = {b}: an inactive unit should have KL_j ~ 0"

# %% [markdown] slideshow={"slide_type": "notes"}
# With short training (quick mode) some "active" units are only just above the threshold: their activity
# is still decaying (the beta = 2 curve). The collapsed models (beta >= 4) show what a finished collapse
# looks like: activities two or more orders of magnitude below the threshold.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The Gaussian decoder and its variance γ
#
# For real-valued pixels a natural decoder is $p_\theta(x \mid z) = \mathcal{N}(\hat x, \gamma^2 I)$ with
# $\hat x = f_\theta(z)$ (seed 003, section 2.3.2). With $k$ pixels,
#
# $$-\log p_\theta(x \mid z) = \frac{\|x - \hat x\|^2}{2\gamma^2} + k \log \gamma + \frac k2 \log 2\pi \tag{3}$$
#
# and the loss becomes (seed 003, eq. 4, up to the constant)
#
# $$-\mathrm{ELBO} = \frac{\|x - \hat x\|^2}{2\gamma^2} + k \log \gamma + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) \tag{4}$$

# %%
def gaussian_decoder_nll(x, x_hat, log_gamma):
    """-log N(x; x_hat, gamma^2 I) per example, eq. 3 with its constant."""
    k = x[0].numel()
    sse = ((x - x_hat) ** 2).flatten(1).sum(1)
    return sse / (2 * torch.exp(2 * log_gamma)) + k * log_gamma + 0.5 * k * math.log(2 * math.pi)


x_hat = recs[1.0]
log_g = torch.tensor(math.log(0.3), device=device)
ours = gaussian_decoder_nll(x_show, x_hat, log_g)
ref = -torch.distributions.Normal(x_hat, log_g.exp()).log_prob(x_show).flatten(1).sum(1)
assert torch.allclose(ours, ref, atol=1e-4), "eq. 3 is the log-density of N(x_hat, gamma^2 I)"
assert torch.allclose(ours, losses.gaussian_nll(x_hat, x_show, log_g), atol=1e-4)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### A fixed γ is a β in disguise
#
# With $\gamma$ fixed, $k \log \gamma$ is a constant and
#
# $$-\mathrm{ELBO} = \frac{1}{2\gamma^2}\Big(\|x - \hat x\|^2 + 2\gamma^2\, \mathrm{KL}\Big) + \text{const}:$$
#
# a β-VAE with squared-error distortion and $\beta = 2\gamma^2$, scaled by $1/(2\gamma^2)$. Same minimiser,
# gradients multiplied by a constant (which Adam, scale-invariant, almost ignores). $\gamma = 1$ means
# $\beta = 2$ against a squared error of a few units per image: the KL wins and the code (nearly) collapses,
# carrying a small fraction of the information a learned $\gamma$ lets through.
#
# Check, on one batch with the same noise $\varepsilon$: values and gradients.

# %%
def mse_beta_loss(model, x, beta):
    """The slides' beta-VAE with a squared error: ||x - x_hat||^2 + beta * KL, one reparameterized sample."""
    mu, logvar = model.encoder_params(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = model.decoder(z).view_as(x)
    return (((x - x_hat) ** 2).flatten(1).sum(1) + beta * losses.gaussian_kl(mu, logvar)).mean()


gamma = 0.3
gm = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", gamma=gamma).to(device)
torch.manual_seed(0)
loss_gauss = gm.loss(test.images)["loss"]
g_gauss = torch.autograd.grad(loss_gauss, list(gm.parameters()))
torch.manual_seed(0)                                               # the same epsilon
loss_mse = mse_beta_loss(gm, test.images, beta=2 * gamma ** 2)
g_mse = torch.autograd.grad(loss_mse, list(gm.parameters()))
const = K * math.log(gamma) + 0.5 * K * math.log(2 * math.pi)
assert torch.allclose(loss_gauss, loss_mse / (2 * gamma ** 2) + const, rtol=1e-5)
for a, b in zip(g_gauss, g_mse):
    assert torch.allclose(a, b / (2 * gamma ** 2), rtol=1e-4, atol=1e-7), "gradients differ only by 1/(2 gamma^2)"
print(f"-ELBO with gamma = {gamma}: {loss_gauss.item():.3f} = "
      f"(SSE + {2 * gamma ** 2:.2f} KL) / {2 * gamma ** 2:.2f} + {const:.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Learning γ
#
# With $\gamma$ a parameter (`VAE(likelihood="gaussian", gamma="learned")`, one scalar $\log\gamma$), the model
# chooses its own $\beta$. We train three decoders with $\beta = 1$: Bernoulli (from the sweep), Gaussian with
# $\gamma = 1$, Gaussian with a learned $\gamma$.

# %%
seed_everything(0)
gauss_fixed = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", gamma=1.0)
h_fixed = fit(gauss_fixed, train, test, epochs=EPOCHS_SWEEP, batch_size=BATCH, lr=LR,
              checkpoint="lesson04-gauss-gamma1", progress=False)
seed_everything(0)
gauss_learned = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", gamma="learned")
h_learned = fit(gauss_learned, train, test, epochs=EPOCHS_GAUSS, batch_size=BATCH, lr=LR,
                checkpoint="lesson04-gauss-learned", progress=False)
print("gamma = 1:      ", h_fixed.summary())
print("learned gamma:  ", h_learned.summary())

# %% slideshow={"slide_type": "subslide"}
decoders = {"Bernoulli": sweep[1.0], "Gaussian, γ = 1": gauss_fixed, "Gaussian, learned γ": gauss_learned}
with torch.no_grad():
    dec_recs = {n: m.reconstruct(x_show).clamp(0, 1) for n, m in decoders.items()}
    dec_samples = {n: m.sample(8, generator=torch.Generator().manual_seed(0)).clamp(0, 1) for n, m in decoders.items()}
    dec_kl = {n: evaluate_terms(m, test)["kl"] for n, m in decoders.items()}
    dec_mse = {n: ((m.reconstruct(test.images) - test.images) ** 2).mean().item() for n, m in decoders.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
show_images(torch.cat([x_show] + list(dec_recs.values())), nrow=8, ax=axes[0],
            title="Test images; reconstructions: " + " / ".join(decoders))
show_images(torch.cat(list(dec_samples.values())), nrow=8, ax=axes[1],
            title="Prior samples (decoder means): " + " / ".join(decoders))
for ax in axes:
    ax.title.set_fontsize(9)
fig.tight_layout()
plt.show()
for n in decoders:
    print(f"{n:22s} KL = {dec_kl[n]:6.2f} nats, reconstruction MSE per pixel = {dec_mse[n]:.4f}")

assert dec_kl["Gaussian, γ = 1"] < 0.1 * dec_kl["Gaussian, learned γ"], \
    "with gamma = 1 (beta = 2 against a squared error) the KL is squeezed to a small fraction of the learned-gamma one"
assert dec_mse["Gaussian, learned γ"] < 0.5 * dec_mse["Gaussian, γ = 1"], "learning gamma should sharpen reconstructions"

# %% [markdown] slideshow={"slide_type": "notes"}
# The likelihood values of the Bernoulli and Gaussian decoders are not comparable (a probability mass on
# binary pixels against a density on real pixels), so we compare pictures and the MSE of reconstructions.
# With gamma = 1 most images decode to a blurred, average-looking digit: that is the blur of "VAEs with an MSE loss" when the
# MSE is weighed against the KL with the wrong scale.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The best γ in closed form
#
# For fixed reconstructions, set the derivative of eq. 3 (averaged over $N$ examples) to zero:
#
# $$\frac{\partial}{\partial \gamma}\Big[\frac{S}{2\gamma^2} + k\log\gamma\Big] = -\frac{S}{\gamma^3} + \frac k\gamma = 0
#   \quad\Longrightarrow\quad \gamma^{\star 2} = \frac{S}{k} = \frac{1}{Nk}\sum_{n}\|x_n - \hat x_n\|^2,$$
#
# with $S$ the mean squared error per image: $\gamma^\star$ is the root-mean-square error per pixel
# (`losses.optimal_gamma`; Rybkin et al. 2021 use it in place of learning $\gamma$). Plugged back,
# eq. 3 becomes $\frac k2 \log(2\pi e\, \gamma^{\star 2})$: the decoder's loss is the log of its MSE.
#
# Check: the learned $\gamma$ is close to the RMSE of the reconstructions it was trained on ($z$ sampled
# from $q_\phi$, training data), and eq. 3 is smallest at $\gamma^\star$.

# %%
@torch.no_grad()
def sampled_reconstructions(model, x):
    """Decoder means at z ~ q(z|x): the reconstructions the training loss sees."""
    return model.decode(model.encode(x).sample()).mean


torch.manual_seed(0)
x_hat_tr = sampled_reconstructions(gauss_learned, train.images)
gamma_star = ((train.images - x_hat_tr) ** 2).mean().sqrt()       # the closed form
gamma_learned = gauss_learned.gamma.item()
assert torch.allclose(gamma_star, losses.optimal_gamma(x_hat_tr, train.images))

gammas = torch.logspace(math.log10(0.03), 0, 200, device=device)
with torch.no_grad():
    nll = torch.stack([losses.gaussian_nll(x_hat_tr, train.images, g.log()).mean() for g in gammas])
    nll_star = losses.gaussian_nll(x_hat_tr, train.images, gamma_star.log()).mean()
    kl_tr = losses.gaussian_kl(*gauss_learned.encoder_params(train.images)).mean()

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogx(gammas.cpu(), (nll + kl_tr).cpu(), color=C["blue"], label="-ELBO as a function of γ")
ax.axvline(gamma_star.item(), color=C["vermillion"], ls="--", label=f"γ* = RMSE = {gamma_star.item():.3f}")
ax.axvline(gamma_learned, color=C["green"], ls=":", lw=2, label=f"learned γ = {gamma_learned:.3f}")
ax.set(xlabel="γ (log scale)", ylabel="nats per example", ylim=((nll_star + kl_tr).item() - 20, (nll_star + kl_tr).item() + 300),
       title="-ELBO against γ, reconstructions fixed (training set)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

assert (nll_star <= nll + 1e-4).all(), "eq. 3 should be smallest at gamma* = RMSE"
assert abs(gamma_learned - gamma_star.item()) < 0.1 * gamma_star.item(), \
    f"learned gamma {gamma_learned:.4f} should be close to sqrt(MSE) = {gamma_star.item():.4f}"
assert torch.allclose(nll_star, 0.5 * K * torch.log(2 * math.pi * math.e * gamma_star ** 2), rtol=1e-4)
print(f"learned gamma = {gamma_learned:.4f}, gamma* = {gamma_star.item():.4f}, "
      f"equivalent beta = 2 gamma^2 = {2 * gamma_learned ** 2:.3f}")

# %% [markdown] slideshow={"slide_type": "notes"}
# The learned gamma is slightly above gamma*: Adam moves log gamma by at most about the learning rate per
# step, and gamma* keeps decreasing as the reconstructions improve, so the learned value trails it. A learned
# gamma of about 0.1-0.2 on 8x8 digits is an equivalent beta of 2 gamma^2, a few hundredths, against
# a squared error: much smaller than the gamma = 1 model's beta = 2.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. KL warm-up
#
# Collapse is partly an *optimisation* accident: early in training the decoder is poor, the KL is cheap to
# remove, and a unit that has collapsed gets almost no gradient to come back. KL warm-up (Bowman et al. 2016,
# "KL cost annealing"; Sønderby et al. 2016) starts with $\beta = 0$ (an autoencoder) and raises it linearly
# to 1:
#
# $$\beta_t = \beta_{\max} \cdot \min\Big(1, \frac{t - 1}{T_{\text{warm-up}}}\Big) \quad \text{during epoch } t = 1, 2, \dots$$
#
# `course_lib.schedules.kl_warmup(T, beta_max)` is a `fit` callback that sets `model.beta` after each epoch.
# `fit` keys its checkpoint on the model's hyper-parameters when it starts, so `prepare(model)` sets the
# first epoch's $\beta$ (and records the schedule) before `fit`.

# %%
warmup = kl_warmup(WARMUP_EPOCHS, beta_max=1.0)
schedule = [warmup.beta(t) for t in range(1, EPOCHS_GAUSS + 1)]


class Probe:                      # a stand-in model: records what the callback sets
    beta = None


probe, seen = Probe(), []
warmup.prepare(probe)
for t in range(1, EPOCHS_GAUSS + 1):
    seen.append(probe.beta)       # the beta used during epoch t
    warmup(probe, t, None)        # what fit does after epoch t
assert seen == schedule and schedule[0] == 0.0 and schedule[-1] == 1.0
assert schedule[WARMUP_EPOCHS // 2] == warmup_beta(WARMUP_EPOCHS // 2 + 1, WARMUP_EPOCHS)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Where does collapse bite? The Gaussian decoder with a learned $\gamma$: it starts at $\gamma = 1$, the
# regime where, as we saw, the KL overwhelms a squared error. Units collapse in the first epochs, before
# $\gamma$ has shrunk (in quick mode the rate stays near 0 for about ten epochs: see the middle panel below),
# and come back slowly. We train the same model again, with warm-up.

# %%
seed_everything(0)
gauss_warm = warmup.prepare(VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", gamma="learned"))
h_warm = fit(gauss_warm, train, test, epochs=EPOCHS_GAUSS, batch_size=BATCH, lr=LR, callbacks=[warmup],
             checkpoint="lesson04-gauss-learned-warmup", progress=False)
gauss_warm.beta = 1.0             # the end of the schedule (a model loaded from its checkpoint still has beta_1)
print(h_warm.summary())

seed_everything(2)
res = {name: dict(evaluate_terms(m, test), active=active_units(m, test.images))
       for name, m in {"no warm-up": gauss_learned, "warm-up": gauss_warm}.items()}
for name, r in res.items():
    print(f"{name:10s} test -ELBO = {r['neg_elbo']:7.2f}  KL = {r['kl']:5.2f}  active units = {r['active']:2d}/{LATENT}"
          f"  gamma = {r['gamma']:.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
ep = np.arange(1, EPOCHS_GAUSS + 1)
axes[0].plot(ep, schedule, color=C["orange"], label="warm-up")
axes[0].plot(ep, np.ones_like(ep), color=C["blue"], label="no warm-up")
axes[0].set(xlabel="epoch", ylabel="β", title="The KL weight β_t")
for name, h, c in [("no warm-up", h_learned, C["blue"]), ("warm-up", h_warm, C["orange"])]:
    axes[1].plot(ep, h.val["kl"], color=c, label=name)
    axes[2].plot(ep, h.val["neg_elbo"], color=c, label=name)
axes[1].set(xlabel="epoch", ylabel="nats per example", title="KL (rate), test set")
axes[2].set(xlabel="epoch", ylabel="nats per example", title="-ELBO, test set (lower is better)")
axes[2].set_ylim(min(h_warm.val["neg_elbo"]) - 5, max(h_learned.val["neg_elbo"][EPOCHS_GAUSS // 4:]) + 5)
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "fragment"}
# What we assert is what held in every run we tried: warm-up ends with a better test ELBO and a higher rate.
# The size of the gain depends on the training length: several nats in quick mode, about 2 nats when the
# full-mode settings run on the 8x8 digits; longer training lets the plain model recover part of the way.
# The number of active units differs by a few units either way at this scale, so we only print it.

# %%
assert res["warm-up"]["neg_elbo"] < res["no warm-up"]["neg_elbo"], "warm-up should give a better test ELBO"
assert res["warm-up"]["kl"] > res["no warm-up"]["kl"], "warm-up should keep more information in z"

# %% [markdown] slideshow={"slide_type": "notes"}
# Sønderby et al. (2016) report more active units with warm-up (and with batch normalisation) in deep
# ladder VAEs; Bowman et al. (2016) needed annealing (and word dropout) to get a non-zero KL at all with an
# LSTM decoder. Here the effect comes mostly from the first epochs: with beta ~ 0 the encoder spreads
# information over many units while gamma shrinks from 1 to ~0.1.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Try it: move β
#
# The slider picks one of the trained models of the sweep; the panel shows its rate, distortion and active
# units, test reconstructions and prior samples. The logic is `beta_panel(beta)`, a plain function.

# %%
def beta_panel(beta, n=8, show=True):
    """Rate, distortion, active units, reconstructions and samples of the sweep's model for this beta."""
    m = sweep[beta]
    with torch.no_grad():
        rec = m.reconstruct(x_show[:n])
        smp = m.sample(n, generator=torch.Generator().manual_seed(0))
    out = dict(beta=beta, rate=rd[beta]["kl"], distortion=rd[beta]["recon"], active=n_active[beta],
               reconstructions=rec.cpu(), samples=smp.cpu())
    if show:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        show_images(torch.cat([x_show[:n].cpu(), out["reconstructions"], out["samples"]]), nrow=n, ax=ax,
                    title=f"β = {beta:g}: R = {out['rate']:.2f}, D = {out['distortion']:.2f} nats, "
                          f"{out['active']}/{LATENT} active units\n"
                          "test images / reconstructions / prior samples")
        fig.tight_layout()
        plt.show()
    return out


lo, hi = beta_panel(BETAS[0], show=False), beta_panel(BETAS[-1], show=True)
assert lo["rate"] > hi["rate"] and lo["distortion"] < hi["distortion"]
assert hi["samples"].std(0).mean() < lo["samples"].std(0).mean(), "at large beta all samples look alike"
assert lo["reconstructions"].shape == (8, *train.shape) and 0 <= hi["samples"].min() <= hi["samples"].max() <= 1

# %% slideshow={"slide_type": "subslide"}
try:
    from ipywidgets import SelectionSlider, interact

    def show_beta(beta):
        beta_panel(beta, show=True)           # draw only: the returned dict would be printed under the figure

    interact(show_beta, beta=SelectionSlider(options=list(BETAS), value=1.0, description="β", continuous_update=False))
except ImportError:
    print("ipywidgets is not installed: call beta_panel(beta) with one of", BETAS)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. The β-VAE minimises $D + \beta R$: distortion $D = \mathbb{E}[-\log p_\theta(x \mid z)]$ plus $\beta$ times the rate $R = \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))$; $\beta = 1$ is the negative ELBO.
# 2. Sweeping $\beta$ traces the rate-distortion curve: rate down and distortion up as $\beta$ grows; $\beta = 1$ gives (about) the best ELBO.
# 3. Per-dimension KL and the activity statistic $\mathrm{Var}_x(\mu_j(x)) > 10^{-2}$ find the units the decoder uses; a large $\beta$ switches most of them off.
# 4. A Gaussian decoder with a fixed $\gamma$ is a β-VAE with a squared error and $\beta = 2\gamma^2$; the best $\gamma$ for given reconstructions is their RMSE per pixel, and a learned $\gamma$ finds it.
# 5. KL warm-up ($\beta$ from 0 to 1) avoids early collapse; with a learned $\gamma$ it gave a better ELBO and a higher rate.
#
# **References**
# - I. Higgins et al., *β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework*, ICLR 2017 (the β-weighted objective).
# - A. Alemi et al., *Fixing a Broken ELBO*, ICML 2018 (rate $R$, distortion $D$, $-\mathrm{ELBO} = D + R$, Figure 1: the $(R, D)$ plane).
# - Y. Burda, R. Grosse, R. Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016 (the activity statistic and its threshold 10^-2; VAEs leave many units inactive).
# - S. Bowman et al., *Generating Sentences from a Continuous Space*, CoNLL 2016 (KL cost annealing).
# - C. K. Sønderby et al., *Ladder Variational Autoencoders*, NeurIPS 2016 (warm-up and active units).
# - O. Rybkin, K. Daniilidis, S. Levine, *Simple and Effective VAE Training with Calibrated Decoders*, ICML 2021 (the optimal $\gamma$ in closed form).
# - E. Bardet, *SRVAE math*, 2025 (seed 003, eq. 3-4: the Gaussian decoder with a learned $\gamma$); N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM (section "β-VAE").
#
# **What we got** (printed above, quick mode on 8x8 digits): rate and distortion monotone in $\beta$; all units collapsed at $\beta \ge 4$; learned $\gamma$ within 10 % of the RMSE; warm-up lowered the test $-\mathrm{ELBO}$ of the learned-$\gamma$ model.
