# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 3: the reparameterization trick and the Gaussian VAE

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What you will learn**
# - the VAE training loop of the slides, and why its sampling step ("non dérivable !") blocks the gradient;
# - two unbiased estimators of $\nabla \mathbb{E}_{q_\phi(z \mid x)}[f(z)]$: the **score function** (REINFORCE) and
#   the **pathwise** one, $z = \mu + \sigma \odot \varepsilon$, and why VAEs use the second (smaller variance);
# - the closed-form KL divergence of $q_\phi(z \mid x) = \mathcal{N}(\mu_x, \operatorname{diag}\sigma_x^2)$ to the prior $\mathcal{N}(0, I)$;
# - how to train a Gaussian VAE and use it: reconstructions, samples, interpolations, a 2-D latent map,
#   the encoder alone (features) and the decoder alone (generation), prior versus aggregated posterior;
# - where the rate goes: the KL term split into the information the code carries and the mismatch between the
#   aggregated posterior and the prior ("ELBO surgery"), measured on the trained models;
# - the difference between a **sample** $x \sim p_\theta(x \mid z)$ and the decoder's **mean**, and why VAE images are blurry.
#
# **You need** lesson 1 (autoencoders) and lesson 2 (the ELBO).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Run time** (measured with `python -m course_lib timings` on 2 CPU cores (AMD EPYC), no GPU): quick mode, the
# default without a GPU, 23 s for this notebook from a fresh kernel, 2 s for its exercise notebook. Full mode on a
# GPU: not measured. Trained models are cached as checkpoints: a second run loads them.
#
# **Data and likelihood** binarized MNIST with a Bernoulli decoder: the pixels are binarized **dynamically** during
# training (a fresh draw $x_b \sim \mathrm{Bernoulli}(x)$ at every step) and **statically** (one fixed draw) for the
# test set, so that test numbers are reproducible.
#
# **Units** every loss is in **nats per example** (here per image of 784 binary pixels): summed over pixels and
# latent dimensions, averaged over the batch.

# %% [markdown] slideshow={"slide_type": "notes"}
# Set the scene: lesson 2 wrote the ELBO for a toy model whose posterior we could compute; today the encoder is a
# network and the posterior a Gaussian it outputs. Ask: "in the ELBO, which term needs samples of z and which does
# not?" Expected: the reconstruction term E_q[log p(x|z)] needs samples; the KL to N(0, I) has a closed form.

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.distributions import Normal, kl_divergence

from course_lib import estimators
from course_lib.figures import diagrams, vae as figs
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.losses import bernoulli_nll, gaussian_kl
from course_lib.models import VAE
from course_lib.plots import show_images
from course_lib.runtime import describe, get_device, pick, make_generator, seed_everything
from course_lib.train import evaluate_terms, fit
from course_lib.figures.vae import isolated_pixels, total_variation
from course_lib.widgets import decode_point, latent_sliders

generator = seed_everything(0)
device = get_device()
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode only changes the sizes below (and the amount of data: 4,000 MNIST training digits instead of 60,000).

# %%
N_DRAWS = pick(20_000, 200_000)    # draws per setting when we measure an estimator's mean and variance
N_KL = pick(4_000, 40_000)         # Monte Carlo samples for the KL check
LATENT = pick(16, 20)              # latent dimension of the main VAE
HIDDEN = pick((256,), (400,))      # hidden layers (784-400-20 is the VAE of pytorch/examples)
EPOCHS = pick(30, 30)              # epochs of the main VAE
EPOCHS_2D = pick(15, 30)           # epochs of the 2-D VAE of section 11
BATCH = 128
LR = pick(2e-3, 1e-3)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The training loop of the slides
#
# Seed 001, "Optimisation des VAE": one gradient step is
#
# 1. make a batch $\{x_i\}$;
# 2. encoder: compute $\mu_{x_i}, \sigma_{x_i}$ for every $i$;
# 3. **sample** $z_i \sim \mathcal{N}(\mu_{x_i}, \sigma_{x_i}^2)$ $\leftarrow$ *non dérivable !* (not differentiable);
# 4. decoder: compute $\hat x_i$ (here the logits of $p_\theta(x \mid z_i)$);
# 5. compute the loss, the negative ELBO $\;-\mathbb{E}_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)] + \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))$;
# 6. compute the gradient, backpropagate.
#
# The loss needs $\nabla_\phi$ of an expectation **under a distribution that depends on $\phi$**: step 3 sits between
# the encoder's outputs and the loss.

# %% [markdown] slideshow={"slide_type": "notes"}
# Walk through the six steps with the picture of the next slide. Ask the room: "which of these steps has no
# derivative?" Expected answer: step 3, the draw of z; everything else is a differentiable function (networks,
# log-likelihood, closed-form KL).

# %% [markdown] slideshow={"slide_type": "subslide"}
# The VAE in one picture (seed 001 "Principe", seed 004 "VAE loss"): green boxes have learned weights, blue ones are
# computed, the orange circle is drawn at random. The encoder outputs a **distribution**, not a code.

# %%
fig, ax = diagrams.vae_schematic()
plt.show()
assert {"encoder", "mu", "sigma", "z", "decoder", "px"} <= set(ax.course_nodes)
assert ax.course_nodes["z"].get_facecolor()[:3] == matplotlib.colors.to_rgb(diagrams.RANDOM), "z is the random node"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Step 3 done naively: `.sample()` returns a number with no history. The reconstruction term then gives the encoder
# **no gradient at all**; only the KL term (which has a closed form, section 5) still reaches it.

# %%
data = lesson_dataset("mnist", "train", device=device)
x = binarize_static(data.images[:BATCH])                  # 1. a batch (binary pixels)
vae = VAE(data.shape, latent_dim=LATENT, hidden=HIDDEN).to(device)
mu, logvar = vae.encoder_params(x)                        # 2. encoder: mu_x and log sigma_x^2
z = Normal(mu, torch.exp(0.5 * logvar)).sample()          # 3. sample ... with no gradient path
recon = bernoulli_nll(vae.decoder(z).view_as(x), x)       # 4-5. decoder, -log p(x|z) per example

encoder_weights = list(vae.encoder.parameters())
grads = torch.autograd.grad(recon.mean(), encoder_weights, allow_unused=True)
print("z.requires_grad:", z.requires_grad, "| gradient of the reconstruction term w.r.t. the encoder:", grads[0])
assert not z.requires_grad and all(g is None for g in grads), "a plain sample cuts the graph"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Two ways to differentiate an expectation
#
# We want $\nabla_\phi\, \mathbb{E}_{q_\phi(z)}[f(z)]$ (for the VAE: $f(z) = \log p_\theta(x \mid z)$, $q_\phi = q_\phi(z \mid x)$).
#
# **Score function** (REINFORCE, likelihood ratio; Williams 1992). Differentiate the density, not the sample:
#
# $$\nabla_\phi \int q_\phi(z) f(z)\, dz = \int q_\phi(z)\, \nabla_\phi \log q_\phi(z)\, f(z)\, dz
#   = \mathbb{E}_{q_\phi(z)}\big[f(z)\, \nabla_\phi \log q_\phi(z)\big]. \tag{1}$$
#
# It only *evaluates* $f$: it works for discrete $z$ and non-differentiable $f$.
#
# **Pathwise** (reparameterization; Kingma & Welling 2014, Rezende et al. 2014, Bengio et al. 2013). Write the sample
# as a differentiable function of $\phi$ and of noise that does not depend on $\phi$ (seed 001, "Reparametrization trick"):
#
# $$z = \mu + \sigma \odot \varepsilon,\quad \varepsilon \sim \mathcal{N}(0, I)
#   \quad\Longrightarrow\quad
#   \nabla_\phi\, \mathbb{E}_{q_\phi(z)}[f(z)] = \mathbb{E}_{\varepsilon}\big[\nabla_\phi f(\mu_\phi + \sigma_\phi \odot \varepsilon)\big]. \tag{2}$$
#
# It uses $f'$: the gradient tells in which direction to move $z$, not just whether $f(z)$ was good.

# %% [markdown] slideshow={"slide_type": "notes"}
# Derive (1) on the board in two lines: grad of q = q * grad log q. Ask: "which estimator would you use if z were a
# discrete choice, say a digit class?" Expected: the score function, since z -> f(z) has no derivative; the pathwise
# estimator needs f differentiable in z and a sampler written as a differentiable map of noise.

# %% [markdown] slideshow={"slide_type": "subslide"}
# On a function whose expectation is known, $f(z) = z^2$ with $z \sim \mathcal{N}(\mu, \sigma^2)$:
# $\mathbb{E}[f] = \mu^2 + \sigma^2$, so the exact gradient is $(\partial_\mu, \partial_\sigma) = (2\mu, 2\sigma)$.
# One draw of each estimator, written out ($\nabla_\mu \log q = (z-\mu)/\sigma^2$, $\nabla_\sigma \log q = ((z-\mu)^2 - \sigma^2)/\sigma^3$):

# %% slideshow={"slide_type": "subslide"}
mu0, sigma0 = torch.tensor(1.0), torch.tensor(0.5)
eps = torch.randn(N_DRAWS, generator=generator)
z = mu0 + sigma0 * eps                                            # N_DRAWS samples z ~ N(mu, sigma^2)

score_mu = z**2 * (z - mu0) / sigma0**2                           # (1): f(z) * d/dmu log q(z)
score_sigma = z**2 * ((z - mu0) ** 2 - sigma0**2) / sigma0**3     # (1): f(z) * d/dsigma log q(z)
path_mu = 2 * z                                                   # (2): f'(z) * dz/dmu,    dz/dmu = 1
path_sigma = 2 * z * eps                                          # (2): f'(z) * dz/dsigma, dz/dsigma = eps

exact = {"mu": 2 * mu0, "sigma": 2 * sigma0}
for name, draws, param in [("score", score_mu, "mu"), ("score", score_sigma, "sigma"),
                           ("pathwise", path_mu, "mu"), ("pathwise", path_sigma, "sigma")]:
    m, se = estimators.mean_and_stderr(draws)
    print(f"{name:8s} d/d{param:5s}: {m:.4f} ± {se:.4f} (exact {exact[param]:.4f}), variance of one draw {draws.var():8.3f}")
    assert abs(m - exact[param]) < 4 * se, f"the {name} estimator of d/d{param} should be unbiased"
assert path_mu.var() < score_mu.var() and path_sigma.var() < score_sigma.var(), "pathwise has the smaller variance"

# %% [markdown] slideshow={"slide_type": "subslide"}
# `course_lib.estimators` does the same for any `f` with autograd (`score_function_grad`, `pathwise_grad`): same draws,
# same numbers.

# %%
f, expectation, grad_mu, grad_sigma = estimators.quadratic_objective(mu0, sigma0)
g = make_generator(1)
lib_score = estimators.score_function_grad(f, mu0, sigma0, N_DRAWS, generator=g)
g = make_generator(1)
lib_path = estimators.pathwise_grad(f, mu0, sigma0, N_DRAWS, generator=g)
eps_same = torch.randn(N_DRAWS, generator=make_generator(1))
z_same = mu0 + sigma0 * eps_same
assert torch.allclose(lib_score[0], z_same**2 * (z_same - mu0) / sigma0**2)
assert torch.allclose(lib_path[0], 2 * z_same) and torch.allclose(lib_path[1], 2 * z_same * eps_same)
assert torch.allclose(grad_mu, exact["mu"]) and torch.allclose(grad_sigma, exact["sigma"])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Both are unbiased; their variances are not alike
#
# For $f(z) = z^2$ the variance of one draw is known in closed form ($\mathbb{E}\varepsilon^2 = 1$, $\mathbb{E}\varepsilon^4 = 3$, $\mathbb{E}\varepsilon^6 = 15$):
#
# $$\mathrm{Var}\big[\hat g^{\text{score}}_\mu\big] = \frac{\mu^4}{\sigma^2} + 14\mu^2 + 15\sigma^2,
#   \qquad
#   \mathrm{Var}\big[\hat g^{\text{path}}_\mu\big] = \mathrm{Var}[2z] = 4\sigma^2.$$
#
# The score-function variance **explodes as $\sigma \to 0$**, which is where a trained encoder lives (confident posteriors).
# An average of $S$ draws divides both by $S$: the standard error falls like $1/\sqrt{S}$, but the score function needs
# many more samples for the same precision.

# %% [markdown] slideshow={"slide_type": "notes"}
# Point at the left panel: at sigma = 0.03 the score function's variance is more than 10^5 times the pathwise one.
# Ask: "how many samples would the score function need to match one pathwise sample there?" Expected: the ratio
# of variances, printed below (hundreds of thousands); averaging S draws only divides the variance by S.

# %% slideshow={"slide_type": "subslide"}
sigmas = torch.logspace(-1.5, 0.5, 9)
rows = []
for s in sigmas:
    f, _, gm, gs = estimators.quadratic_objective(mu0, s)
    sf = estimators.score_function_grad(f, mu0, s, N_DRAWS, generator=generator)
    pw = estimators.pathwise_grad(f, mu0, s, N_DRAWS, generator=generator)
    for est, (d_mu, d_sigma) in [("score", sf), ("pathwise", pw)]:
        for draws, exact_g in [(d_mu, gm), (d_sigma, gs)]:
            m, se = estimators.mean_and_stderr(draws)
            assert abs(m - exact_g) < 5 * se, f"{est} biased at sigma = {s:.3f}: {m:.4f} vs {exact_g:.4f} ± {se:.4f}"
    rows.append((sf[0].var(), pw[0].var()))
var_score, var_path = map(torch.stack, zip(*rows))

# %% slideshow={"slide_type": "subslide"}
theory_score = estimators.quadratic_score_variance(mu0, sigmas)
theory_path = estimators.quadratic_pathwise_variance(mu0, sigmas)
assert torch.allclose(var_score, theory_score, rtol=0.25), "measured score-function variance should match the formula"
assert torch.allclose(var_path, theory_path, rtol=0.1), "measured pathwise variance should match 4 sigma^2"
assert (var_path < var_score).all(), "pathwise variance is smaller at every sigma"
assert var_score[0] / var_path[0] > 1e5, "at the smallest sigma the ratio exceeds 10^5"
print("variance ratio score / pathwise:", ", ".join(f"{r:.0f}" for r in var_score / var_path))

# %% slideshow={"slide_type": "subslide"}
S_values = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128])
s_fixed = torch.tensor(0.2)
f, _, gm, _ = estimators.quadratic_objective(mu0, s_fixed)
sf_mu = estimators.score_function_grad(f, mu0, s_fixed, N_DRAWS, generator=generator)[0]
pw_mu = estimators.pathwise_grad(f, mu0, s_fixed, N_DRAWS, generator=generator)[0]


def stderr_of_average(draws, S):
    """Spread (std) of S-sample averages, from N_DRAWS // S independent averages."""
    return draws[: (len(draws) // S) * S].reshape(-1, S).mean(1).std()


se_score = torch.stack([stderr_of_average(sf_mu, int(S)) for S in S_values])
se_path = torch.stack([stderr_of_average(pw_mu, int(S)) for S in S_values])
assert torch.allclose(se_path, (4 * s_fixed**2 / S_values).sqrt(), rtol=0.2), "std of an S-sample average = sd / sqrt(S)"

# %% slideshow={"slide_type": "subslide"}
figs.estimator_variance_figure(sigmas, var_score, theory_score, var_path, theory_path, S_values, se_score,
                                    se_path, mu0, s_fixed)
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# A baseline b (the score function with f(z) - b instead of f(z)) keeps it unbiased, since E_q[grad log q] = 0, and
# can reduce its variance a lot: `score_function_grad(..., baseline=b)`. This is how REINFORCE is used in practice,
# for instance with discrete latent variables, where no reparameterization exists. It does not remove the 1/sigma growth in general, and for a continuous
# Gaussian latent the pathwise estimator is both simpler and better: that is the reparameterization trick.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The reparameterized sample in a VAE
#
# The encoder outputs $\mu_\phi(x)$ and $\log\sigma_\phi^2(x)$ (a log-variance: any real number is valid). The sample
#
# $$z = \mu_\phi(x) + \exp\big(\tfrac12 \log\sigma_\phi^2(x)\big) \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)$$
#
# is a deterministic node; the randomness enters through $\varepsilon$ only.

# %% [markdown] slideshow={"slide_type": "notes"}
# Show the graph below. Ask: "we still draw a random number: why can the gradient pass now?" Expected: the
# random number eps no longer depends on phi; z is a differentiable function of (mu, sigma) with eps held fixed,
# dz/dmu = 1 and dz/dsigma = eps, so backpropagation goes through z to the encoder.

# %% [markdown] slideshow={"slide_type": "subslide"}
# The trick as a computation graph (Kingma & Welling 2019, Fig. 2.3, redrawn): left, $z$ is a random node and the
# gradient of the loss stops there; right, the random node is the input $\varepsilon$, $z$ is computed, and the
# gradient (red) reaches $\mu$, $\sigma$ and the encoder's weights $\phi$.

# %% slideshow={"slide_type": "subslide"}
fig, ax = diagrams.reparameterization_graph()
plt.show()
assert "z_random" in ax.course_nodes and "z_det" in ax.course_nodes and "eps" in ax.course_nodes

# %% [markdown] slideshow={"slide_type": "subslide"}
# Checks: gradients now reach the encoder through the reconstruction term, and $z$ has mean $\mu$ and variance
# $\sigma^2$ (it *is* a sample of $q_\phi(z \mid x)$).

# %%
mu, logvar = vae.encoder_params(x)
eps = torch.randn_like(mu)
z = mu + torch.exp(0.5 * logvar) * eps                     # the reparameterization trick
recon = bernoulli_nll(vae.decoder(z).view_as(x), x)
grads = torch.autograd.grad(recon.mean(), encoder_weights)
assert all(g is not None and g.abs().sum() > 0 for g in grads), "the reconstruction term now trains the encoder"

with torch.no_grad():   # moments of many reparameterized samples of the first example
    mu1, std1 = mu[0], torch.exp(0.5 * logvar[0])
    zs = mu1 + std1 * torch.randn(N_KL, LATENT, device=device)
    t_mean = (zs.mean(0) - mu1) / (std1 / math.sqrt(N_KL))                       # z-scores of the sample means
    assert t_mean.abs().max() < 5, "sample mean of z should be mu"
    assert torch.allclose(zs.var(0), std1**2, rtol=0.1), "sample variance of z should be sigma^2"
print(f"gradient norm on the first encoder layer: {grads[0].norm():.3f}; moments of z match (mu, sigma^2)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The KL term in closed form
#
# For $q_\phi(z \mid x) = \mathcal{N}(\mu, \Sigma)$, $\Sigma = \operatorname{diag}\sigma^2$, and $p(z) = \mathcal{N}(0, I)$ in $d$ dimensions
# (seed 001, "Fonction de coût"; seed 004, "Analysis of the loss"):
#
# $$\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big) = \tfrac12\big(\operatorname{tr}\Sigma + \mu^\top\mu - d - \log\det\Sigma\big)
#   = \tfrac12 \sum_{j=1}^d \big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big). \tag{3}$$
#
# One value per example, summed over the latent dimensions. It is $0$ only at $\mu = 0, \sigma = 1$; it grows when the
# code moves away from the origin ($\mu_j^2$) and when the posterior gets sharp ($-\log\sigma_j^2$).

# %% [markdown] slideshow={"slide_type": "notes"}
# Derive one dimension on the board: E_q[log q - log p] with log N(z; mu, s^2). Ask: "what does the KL charge for
# a posterior that is very sharp, sigma -> 0, even at mu = 0?" Expected: -log sigma^2 / 2 grows without bound: a
# code known to infinite precision carries infinitely many nats; the KL is the price of information.

# %% slideshow={"slide_type": "subslide"}
def kl_to_standard_normal(mu, logvar):
    """(3): KL(N(mu, diag e^logvar) || N(0, I)), one value per example."""
    return 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(dim=-1)


mu_q, logvar_q = 1.5 * torch.randn(16, LATENT, generator=generator), torch.randn(16, LATENT, generator=generator)
kl_closed = kl_to_standard_normal(mu_q, logvar_q)
q = Normal(mu_q, torch.exp(0.5 * logvar_q))
kl_torch = kl_divergence(q, Normal(torch.zeros_like(mu_q), torch.ones_like(mu_q))).sum(-1)
kl_mc, kl_se = estimators.kl_monte_carlo(mu_q, logvar_q, N_KL, generator=generator)   # E_q[log q(z) - log p(z)]
assert torch.allclose(kl_closed, gaussian_kl(mu_q, logvar_q)), "same as course_lib.losses.gaussian_kl"
assert torch.allclose(kl_closed, kl_torch, rtol=1e-5), "same as torch.distributions.kl_divergence"
z_scores = (kl_mc - kl_closed) / kl_se
assert z_scores.abs().max() < 5, f"Monte Carlo KL disagrees with (3): largest |z-score| {z_scores.abs().max():.1f}"
assert torch.allclose(kl_to_standard_normal(torch.zeros(1, LATENT), torch.zeros(1, LATENT)), torch.zeros(1))
print(f"closed form vs Monte Carlo ({N_KL} samples) on 16 examples: largest |z-score| {z_scores.abs().max():.2f}")

# %% slideshow={"slide_type": "subslide"}
figs.kl_figure(kl_to_standard_normal, kl_closed, kl_mc, kl_se, LATENT)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The Gaussian VAE and its loss
#
# `course_lib.models.VAE` puts sections 1-5 together: an MLP encoder outputs $(\mu_\phi(x), \log\sigma_\phi^2(x))$,
# $q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$; an MLP decoder outputs logits, $p_\theta(x \mid z)$ is a
# product of Bernoullis over the pixels; $p(z) = \mathcal{N}(0, I)$. Its `loss` is the negative ELBO with **one**
# reparameterized sample and the closed-form KL, in nats per example:
#
# $$\ell(x) = \underbrace{-\log p_\theta(x \mid \mu + \sigma \odot \varepsilon)}_{\texttt{recon}:\ \text{summed over pixels}}
#  + \beta\, \underbrace{\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big)}_{\texttt{kl}:\ \text{summed over latent dims}},
#  \qquad \beta = 1. \tag{4}$$
#
# Check that it computes exactly (4), with the same noise:

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "the untrained model below has recon about 549 nats: where does that number come from?" Expected: with
# logits near 0 every one of the 784 pixels costs about log 2 = 0.69 nats, and 784 log 2 = 543.

# %% slideshow={"slide_type": "subslide"}
seed_everything(123)
terms = vae.loss(x)
seed_everything(123)
mu, logvar = vae.encoder_params(x)
z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
by_hand = bernoulli_nll(vae.decoder(z).view_as(x), x).mean() + kl_to_standard_normal(mu, logvar).mean()
assert torch.allclose(terms["loss"], by_hand), "VAE.loss is (4) averaged over the batch"
assert torch.allclose(terms["loss"], terms["recon"] + terms["kl"])
assert torch.allclose(-vae.decode(z).log_prob(x).mean(), bernoulli_nll(vae.decoder(z).view_as(x), x).mean(), rtol=1e-5)
print({k: round(float(v.detach()), 2) for k, v in terms.items()}, "(untrained, nats per example)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Training
#
# Pixels are binarized **dynamically** (a fresh Bernoulli draw $x_b \sim \mathrm{Bernoulli}(x)$ at every step,
# `transform=binarize_dynamic`); the test set is binarized once (static), so test numbers are reproducible.
# The encoder only ever sees binary images, so from here on we encode binarized images.
# `fit` runs the loop of section 1 with Adam, and loads the weights when this configuration was trained before.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "why binarize dynamically rather than once?" Expected: a fresh binarization each epoch is a form of data
# augmentation (the model sees many binary versions of each grey digit), which limits overfitting on 4,000 images;
# the test set is binarized once so that numbers are comparable between runs.

# %% slideshow={"slide_type": "subslide"}
train = data
test = lesson_dataset("mnist", "test", device=device)
test_bin = test.map(binarize_static)
train_bin = train.map(binarize_static)   # a fixed binarization of the training set, to encode it later

# %% slideshow={"slide_type": "subslide"}
seed_everything(0)
vae = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN)
untrained = evaluate_terms(vae.to(device), test_bin)
history = fit(vae, train, test_bin, epochs=EPOCHS, batch_size=BATCH, lr=LR, transform=binarize_dynamic,
              checkpoint="lesson03-vae-mnist")
trained = evaluate_terms(vae, test_bin)
print(history.summary())
print(f"test negative ELBO: untrained {untrained['neg_elbo']:.2f}, trained {trained['neg_elbo']:.2f} nats per image "
      f"({train.dim} pixels; recon {trained['recon']:.2f} + KL {trained['kl']:.2f})")
assert trained["neg_elbo"] < 0.75 * untrained["neg_elbo"], "training should lower the test negative ELBO a lot"
assert trained["kl"] > 1.0, "the posterior should carry information about x (KL > 0)"
assert trained["neg_elbo"] > 100 and history.last("neg_elbo", "val") > history.last("neg_elbo", "train"), \
    "quick mode stays above the ~100 nats of the full data set, and its test value is above its training value"

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
history.plot(terms=["recon"], ax=axes[0], title="Reconstruction term E_q[-log p(x|z)]")
history.plot(terms=["kl"], ax=axes[1], title="KL(q(z|x) || p(z))")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# The KL rises while the reconstruction falls: the encoder starts near the prior (KL ~ 0, the code says nothing
# about x) and pays nats of KL for every nat of reconstruction it buys. Ask: "is 120 nats good?" Expected: on MNIST
# with d = 20 and all 60,000 training images, Kingma & Welling (2014, Fig. 2, read from the plot; their network
# differs from ours) reach about 100 nats per image; quick mode trains on 4,000 images for a few seconds, so it stays
# some 20 nats above, and its test value is above its training value (it starts to overfit).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Reconstructions
#
# $\hat x = \mathbb{E}_{p_\theta}[x \mid z = \mu_\phi(x)]$: the decoder's pixel probabilities at the posterior mean.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "the reconstruction is grey where the input is black or white: is the decoder wrong?" Expected: no, it shows
# probabilities; a grey pixel says "this pixel is on in some binarizations of digits with this code and off in
# others". The next section turns those probabilities into samples.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    x_test = test_bin.images[:10]
    x_hat = vae.reconstruct(x_test)
show_images(torch.cat([test.images[:10], x_test, x_hat]), nrow=10,
            title="Test images (top), binarized input (middle), VAE reconstruction (bottom)")
plt.show()
assert x_hat.shape == x_test.shape and 0 <= x_hat.min() and x_hat.max() <= 1

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():   # -log p(x | z = mu(x)) against the best image-independent model: the mean pixel probabilities
    nll_vae = bernoulli_nll(vae.decode(vae.encode(x_test).mean).base_dist.logits, x_test).mean()
    p_mean = train_bin.images.mean(0, keepdim=True).clamp(1e-3, 1 - 1e-3).expand_as(x_test)
    nll_mean = bernoulli_nll(torch.logit(p_mean), x_test).mean()
print(f"-log p(x|z=mu): VAE {nll_vae:.2f} vs mean image {nll_mean:.2f} nats per image")
assert nll_vae < 0.7 * nll_mean, "reconstructions should explain x much better than the mean image"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Decoder only: generation
#
# Seed 004, "Generation part – decoder only": drop the encoder, draw $z \sim p(z) = \mathcal{N}(0, I)$, decode.
# It works because training pushed every $q_\phi(z \mid x)$ towards $\mathcal{N}(0, I)$: prior samples look like codes
# the decoder has seen.
#
# The decoder gives a **distribution** $p_\theta(x \mid z) = \prod_i \mathrm{Bernoulli}(x_i; \lambda_i(z))$, with pixel probabilities
# $\lambda(z) = \mathrm{sigmoid}(\text{decoder logits})$. A true sample of the
# model is $z \sim p(z)$ then $x \sim p_\theta(x \mid z)$: a binary image. Most papers instead show the **mean**
# $\mathbb{E}[x \mid z] = \lambda(z)$, the pixel probabilities ($p(z)$ stays the prior).

# %% [markdown] slideshow={"slide_type": "subslide"}
# The same 10 draws of $z$: the means (top row) and two Bernoulli draws of $x$ for each (rows 2 and 3).

# %%
with torch.no_grad():
    z_prior = torch.randn(40, LATENT, generator=generator).to(device)
    p_x = vae.decode(z_prior)                        # p_theta(x | z): 784 independent Bernoullis per z
    means = p_x.mean                                 # E[x | z]: the pixel probabilities
    draws = torch.cat([p_x.sample(), p_x.sample()])  # two true samples x ~ p_theta(x | z) per z
show_images(torch.cat([means[:10], draws[:10], draws[40:50]]), nrow=10,
            title="Decoder means E[x | z] (top) and two samples x ~ p(x | z) (rows 2-3), z ~ N(0, I)")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The samples are the means plus **independent** per-pixel coin flips: salt-and-pepper noise around the strokes.
# Measured by the total variation (the sum of $|$differences$|$ between neighbouring pixels, `figs.total_variation`;
# small for clean strokes, large for speckle) and by the number of isolated "on" pixels (no "on" neighbour):

# %%
tv_mean, tv_draw, tv_data = total_variation(means), total_variation(draws), total_variation(test_bin.images)
iso_mean, iso_draw = isolated_pixels((means > 0.5).float()), isolated_pixels(draws)
iso_data = isolated_pixels(test_bin.images)
print(f"total variation per image: means {tv_mean.mean():.0f}, samples {tv_draw.mean():.0f}, "
      f"binarized test images {tv_data.mean():.0f}")
print(f"isolated pixels per image: means (> 0.5) {iso_mean.mean():.1f}, samples {iso_draw.mean():.1f}, "
      f"binarized test images {iso_data.mean():.1f}")
assert (tv_draw[:40] > tv_mean).float().mean() > 0.9 and (tv_draw[40:] > tv_mean).float().mean() > 0.9, \
    "a sample is noisier than its mean (E|x_i - x_j| >= |lambda_i - lambda_j| for independent pixels)"
assert tv_draw.mean() > 1.3 * tv_mean.mean() and iso_draw.mean() > 2 * iso_mean.mean() + 1, \
    "the samples carry much more speckle than the means"
assert tv_draw.mean() > tv_data.mean(), "the model's samples are noisier than binarized digits"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why figures (and FID) use the means.** The noise in a sample is not structure the model learned: given $z$ the
# decoder says the pixels are *independent*, so all it can add is speckle, i.e. the per-pixel uncertainty
# $\lambda_i(1 - \lambda_i)$ made visible. The mean shows what $z$ encodes, is deterministic given $z$ (reproducible figures), and
# is what an image metric such as FID compares without rewarding or punishing coin flips. It is a convention, and
# it hides part of the model: a reported image is a *summary* of $p_\theta(x \mid z)$, not a draw from the model whose
# likelihood we report (Kingma & Welling 2019, section 2.8.2; lesson 5 computes FID on means).

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "if our samples are binary, why is the data set we compare to not binary?" Expected: the test images we
# show are grey MNIST; the model was trained on binarized versions of them, and its means estimate the probability
# that each pixel is on, which is close to the grey level. That is why the mean, not the sample, looks like MNIST.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9b. Why are VAE samples blurry?
#
# Kingma & Welling (2019, *An Introduction to VAEs*, section 2.8.2) give the reason. Maximising the ELBO over the data
# fits the model by maximum likelihood: it minimises $\mathrm{KL}(q_{\mathcal D}(x)\,\|\,p_\theta(x))$ (data first, model
# second; more precisely $\mathrm{KL}(q_{\mathcal D,\phi}(x, z)\,\|\,p_\theta(x, z))$). This direction punishes a model
# that puts little density where there is data, and barely punishes density where there is none. A model that is
# not flexible enough to match the data therefore **spreads out**: $p_\theta(x)$ is broader than the data.
#
# With a decoder whose pixels are independent given $z$, "broader" takes a visible form. A code $z$ between the
# codes of several training digits must explain all of them; the best independent-pixel distribution is their
# pixel-wise average. Its **mean** is a superposition (grey, blurred strokes) and its **samples** are that average
# with independent noise (speckle).

# %% [markdown] slideshow={"slide_type": "subslide"}
# One number measures both: the entropy of the decoder's distribution,
# $\mathcal{H}[p_\theta(x \mid z)] = \sum_i \mathcal{H}(\lambda_i)$, 0 for a decoder sure of every pixel and up to $\log 2$ nats for each
# undecided (grey) pixel: the nats of coin flips a sample adds to its mean. Prior draws fall between training codes
# more often than the posterior means $\mu_\phi(x)$ of real images do, so they decode blurrier than reconstructions:

# %% slideshow={"slide_type": "subslide"}
def decoder_entropy(probs):
    """H[p_theta(x|z)] = sum_i H(Bernoulli(lambda_i)) in nats, one value per image: the blur (or speckle) of a decoding."""
    return torch.distributions.Bernoulli(probs=probs.clamp(1e-6, 1 - 1e-6)).entropy().flatten(1).sum(1)


with torch.no_grad():
    recon_means = vae.reconstruct(test_bin.images[:400])
    prior_means = vae.generate(torch.randn(400, LATENT, generator=generator).to(device))
h_rec, h_pri = decoder_entropy(recon_means), decoder_entropy(prior_means)
print(f"entropy of p(x|z), nats per image: reconstructions {h_rec.mean():.1f}, prior samples {h_pri.mean():.1f} "
      f"(784 log 2 = {784 * math.log(2):.0f} for an all-grey image)")
assert h_pri.mean() > 1.05 * h_rec.mean(), "decoded prior draws are blurrier than reconstructions"
assert decoder_entropy(test_bin.images).max() < 0.1, "binarized data has no grey pixels: the blur is the model's"

# %% [markdown] slideshow={"slide_type": "notes"}
# Link back to the figure of section 9: grey strokes in the means, speckle in the samples, two faces of the same
# independence assumption. Ask: "what would make samples sharp?" Expected: a decoder whose pixels depend on each
# other given z (autoregressive decoders, PixelVAE; lesson 4 shows their catch: posterior collapse), a more flexible
# posterior or prior, or another objective (GANs use a different divergence and are sharp but drop modes).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Interpolations in latent space
#
# Encode two test images, walk on the straight line $z_t = (1-t)\,\mu_\phi(x_a) + t\,\mu_\phi(x_b)$ and decode.
# Compare with a cross-fade in pixel space, $(1-t)\,x_a + t\,x_b$: the latent path goes *through* digits,
# the pixel path superimposes two.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "why does the latent path stay on digits while the pixel path does not?" Expected: the decoder maps every
# point near the training codes to a digit-like image, while the average of two digit images is not a digit.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    ia, ib = 0, int((test.labels != test.labels[0]).nonzero()[0])     # two images of different classes
    x_a, x_b = test_bin.images[ia:ia + 1], test_bin.images[ib:ib + 1]
    t = torch.linspace(0, 1, 10, device=device)[:, None]
    z_path = (1 - t) * vae.encode(x_a).mean + t * vae.encode(x_b).mean
    latent_path = vae.generate(z_path)
    pixel_path = (1 - t[:, :, None, None]) * x_a + t[:, :, None, None] * x_b
assert torch.allclose(latent_path[0], vae.reconstruct(x_a)[0], atol=1e-5)
assert torch.allclose(latent_path[-1], vae.reconstruct(x_b)[0], atol=1e-5)
d_b = ((latent_path - x_b) ** 2).sum((1, 2, 3))
assert d_b[-1] < d_b[0], "the path should end nearer x_b than it starts"

# %% slideshow={"slide_type": "subslide"}
show_images(torch.cat([latent_path, pixel_path]), nrow=10,
            title=f"Latent interpolation (top) vs pixel cross-fade (bottom): {int(test.labels[ia])} to {int(test.labels[ib])}")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. A 2-D latent space: the learned manifold
#
# With $d = 2$ we can see everything at once (Kingma & Welling 2014, Fig. 4): the codes $\mu_\phi(x)$ of test images
# coloured by class, and the decoder evaluated on a grid. The grid uses Gaussian quantiles, so that each cell holds
# the same prior mass.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "which digits are hard to separate in two dimensions?" Let the room read it off the scatter (4/9 and 3/5/8
# usually overlap). The logistic regression of section 13 puts a number on it: 2 dimensions classify far worse.
# The 2-D model is also the less flexible one, and its reconstructions are the blurrier ones (printed below the
# figure): section 9b in action.

# %%
seed_everything(0)
vae2 = VAE(train.shape, latent_dim=2, hidden=HIDDEN)
history2 = fit(vae2, train, test_bin, epochs=EPOCHS_2D, batch_size=BATCH, lr=LR, transform=binarize_dynamic,
               checkpoint="lesson03-vae2d-mnist")
print(history2.summary())
with torch.no_grad():
    codes2 = vae2.encode(test_bin.images).mean

# %% slideshow={"slide_type": "subslide"}
quantiles = Normal(0.0, 1.0).icdf(torch.linspace(0.03, 0.97, 15))     # equal prior mass
fig, axes = figs.codes_and_decoder_figure(codes2, test, vae2.generate, quantiles, device=device)

# %% slideshow={"slide_type": "subslide"}
h_rec2 = decoder_entropy(vae2.reconstruct(test_bin.images[:400]))
print(f"entropy of the reconstructions (blur), nats per image: d = 2: {h_rec2.mean():.1f}, d = {LATENT}: {h_rec.mean():.1f}")
assert codes2.shape == (len(test), 2) and torch.isfinite(codes2).all()
assert history2.last("loss", "val") > history.last("loss", "val"), "2 latent dimensions reconstruct worse than LATENT"
assert h_rec2.mean() > 1.2 * h_rec.mean(), "the less flexible 2-D model is the blurrier one (section 9b)"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 12. Which $p(z)$ to sample from? Prior versus aggregated posterior
#
# Seed 001, "Échantillonnage lors de l'inférence":
# - **option 1**: the aggregated posterior, the mixture of the encodings of the training set,
#   $\;q(z) = \frac1n \sum_{i=1}^n q_\phi(z \mid x_i) = \frac1n \sum_i \mathcal{N}(\mu_{x_i}, \sigma_{x_i}^2)$;
#   faithful to the data, but it stores $n$ components and is a poor estimate with few data or large $d$;
# - **option 2**: force $q(z)$ to follow the prior $p(z) = \mathcal{N}(0, I)$ (the KL term) and sample the prior.
#
# Sampling the mixture is two lines: pick a training example, sample its posterior.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "why not always use option 1, since it is faithful to the data?" Expected: it needs the whole training set
# (or its n encodings) at generation time and, with few data or many dimensions, it is a bumpy mixture of narrow
# Gaussians that mostly reproduces training images; option 2 needs nothing but N(0, I).

# %%
def sample_aggregated_posterior(model, images, n, generator=None):
    """z ~ (1/n) sum_i q_phi(z | x_i): a uniform index i, then z = mu_i + sigma_i * eps."""
    mu_all, logvar_all = model.encoder_params(images)
    i = torch.randint(len(images), (n,), generator=generator).to(images.device)
    eps = torch.randn(n, mu_all.shape[1], generator=generator).to(images.device)
    return mu_all[i] + torch.exp(0.5 * logvar_all[i]) * eps


# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    z_agg2 = sample_aggregated_posterior(vae2, train_bin.images, 20_000, generator).cpu()
figs.aggregated_posterior_figure(z_agg2)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# How far is the aggregated posterior from the prior? Its mean and covariance are exact (law of total variance):
# $m = \frac1n\sum_i \mu_i$, $\;C = \operatorname{Cov}_i(\mu_i) + \frac1n \sum_i \operatorname{diag}\sigma_i^2$. The KL of the moment-matched
# Gaussian $\mathcal{N}(m, C)$ to $\mathcal{N}(0, I)$ (full covariance: $\tfrac12(\operatorname{tr}C + m^\top m - d - \log\det C)$) measures the
# mismatch in the first two moments: small, but not 0 (the KL term pulls each $q_\phi(z \mid x_i)$, and hence the mixture, towards the prior;
# the reconstruction term pulls them apart).

# %% slideshow={"slide_type": "subslide"}
def aggregated_moments(model, images):
    """Mean and covariance of the aggregated posterior (1/n) sum_i N(mu_i, diag sigma_i^2)."""
    mu_all, logvar_all = model.encoder_params(images)
    return mu_all.mean(0), torch.cov(mu_all.T) + torch.diag(logvar_all.exp().mean(0))


def kl_full_to_standard_normal(m, cov):
    return 0.5 * (cov.trace() + m @ m - len(m) - torch.logdet(cov))


# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    m_agg, cov_agg = aggregated_moments(vae, train_bin.images)
    kl_moment = kl_full_to_standard_normal(m_agg, cov_agg)
    z_agg = sample_aggregated_posterior(vae, train_bin.images, 20_000, generator)
    mean_kl_per_example = gaussian_kl(*vae.encoder_params(train_bin.images)).mean()
print(f"d = {LATENT}: KL(N(m, C) || N(0, I)) = {kl_moment:.3f} nats; mean KL(q(z|x_i) || p(z)) = {mean_kl_per_example:.2f} nats")
print("variances of the aggregated posterior per dimension:", np.round(cov_agg.diag().cpu().numpy(), 2))
assert torch.allclose(z_agg.mean(0), m_agg, atol=0.05) and torch.allclose(torch.cov(z_agg.T), cov_agg, atol=0.06), \
    "the mixture sampler should have the moments (m, C)"
assert 0 < kl_moment < 0.1 * mean_kl_per_example, "the aggregate is much closer to the prior than any single q(z|x_i)"

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    gen_agg = vae.generate(sample_aggregated_posterior(vae, train_bin.images, 400, generator))
    gen_pri = vae.generate(torch.randn(400, LATENT, generator=generator).to(device))
h_agg, h_pri = decoder_entropy(gen_agg).mean(), decoder_entropy(gen_pri).mean()
print(f"blur (entropy of p(x|z), nats per image): option 1 {h_agg:.1f}, option 2 {h_pri:.1f}")
assert h_agg < 0.95 * h_pri, "codes drawn from the aggregated posterior decode sharper than prior draws"

# %% slideshow={"slide_type": "subslide"}
figs.aggregate_vs_prior_figure(gen_agg[:20], gen_pri[:20], m_agg, cov_agg.diag())
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Both options give digits, but option 1 gives sharper ones (asserted with the entropy of section 9b): its codes are
# near real codes, while the prior also visits the "holes", regions it covers and no training code does (in the
# 2-D histogram, the dark patches inside the prior's circles), where the decoder averages neighbouring digits.
# The moments alone do not show the holes: the moment-matched KL is a fraction of a nat to a few nats. The next
# slides measure the rest of the mismatch, the shape of q(z). Ask: "how could we make prior samples as good as
# option 1 without storing the data?" Expected: fit a richer prior to the aggregated posterior (a mixture of
# Gaussians, as in seed 003, or a VampPrior), or push the aggregate to the prior with beta > 1 (lesson 4), at the
# cost of reconstructions.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 12b. Where the rate goes: ELBO surgery
#
# Averaged over a data set $\{x_n\}_{n=1}^N$, the KL term of (4) is the **rate** $R$, the nats per example the code
# spends. Hoffman & Johnson (2016, "ELBO surgery") split it. Draw the index $n$ uniformly and $z \sim q_\phi(z \mid x_n)$:
# the marginal of $z$ is the aggregated posterior $q(z) = \frac1N \sum_n q_\phi(z \mid x_n)$. Add and subtract
# $\log q(z)$ inside each KL:
#
# $$R = \frac1N \sum_{n=1}^N \mathrm{KL}\big(q_\phi(z \mid x_n)\,\|\,p(z)\big)
#   = \underbrace{\frac1N \sum_{n=1}^N \mathbb{E}_{q_\phi(z \mid x_n)}\Big[\log \frac{q_\phi(z \mid x_n)}{q(z)}\Big]}_{I_q(x;\,z)}
#   + \underbrace{\mathbb{E}_{q(z)}\Big[\log \frac{q(z)}{p(z)}\Big]}_{\mathrm{KL}(q(z)\,\|\,p(z))}. \tag{5}$$
#
# - $I_q(x; z)$, the **mutual information** between the example and its code: how much the code says about *which*
#   of the $N$ examples it came from. It lies between $0$ and $\log N$, since $q(z) \ge \frac1N q_\phi(z \mid x_n)$.
# - $\mathrm{KL}(q(z)\,\|\,p(z))$: how far the codes of the whole data set are from the prior. These nats buy no
#   information about $x$; they are the mismatch that sends prior draws into holes.

# %% [markdown] slideshow={"slide_type": "subslide"}
# Because $p(z)$ is Gaussian, the second term splits once more. With $\mathcal{N}(m, C)$ the Gaussian with the moments
# of $q(z)$ (previous slide), $\log \mathcal{N}(z; m, C) - \log p(z)$ is quadratic in $z$, so its mean under $q(z)$ equals
# its mean under $\mathcal{N}(m, C)$:
#
# $$\mathrm{KL}(q(z)\,\|\,p(z)) = \underbrace{\mathrm{KL}\big(q(z)\,\|\,\mathcal{N}(m, C)\big)}_{\text{shape: bumps and holes}}
#   + \underbrace{\mathrm{KL}\big(\mathcal{N}(m, C)\,\|\,p(z)\big)}_{\text{moments}}. \tag{6}$$
#
# Both terms of (5) are expectations over draws $(n, z)$; $\log q(z)$ is a mixture of $N$ Gaussians, evaluated exactly
# with a log-sum-exp over all of them. We use the **test** set; its size $N$ is printed below.

# %% slideshow={"slide_type": "subslide"}
def log_aggregate(z, mu_all, logvar_all, chunk=256):
    """log q(z) = log (1/N) sum_n N(z; mu_n, diag sigma_n^2), one value per row of z (in chunks of rows)."""
    components = Normal(mu_all, torch.exp(0.5 * logvar_all))                      # N components, shape (N, d)
    return torch.cat([torch.logsumexp(components.log_prob(zc[:, None]).sum(-1), dim=1)
                      for zc in z.split(chunk)]) - math.log(len(mu_all))


def rate_surgery_draws(model, images, n_draws, generator):
    """Per draw (n, z): log q(z|x_n) - log q(z) (a term of I) and log q(z) - log p(z) (a term of KL(q(z) || p(z)))."""
    mu_all, logvar_all = model.encoder_params(images)
    n = torch.randint(len(images), (n_draws,), generator=generator).to(images.device)    # x_n, uniform
    q_n = Normal(mu_all[n], torch.exp(0.5 * logvar_all[n]))
    z = q_n.mean + q_n.stddev * torch.randn(q_n.mean.shape, generator=generator).to(images.device)
    log_q = log_aggregate(z, mu_all, logvar_all)
    return q_n.log_prob(z).sum(-1) - log_q, log_q - Normal(0.0, 1.0).log_prob(z).sum(-1)

# %% slideshow={"slide_type": "subslide"}
N_SURGERY = 4_000                                  # draws (n, z) per model
with torch.no_grad():
    surgery = {}
    for name, model in [(f"d = {LATENT}", vae), ("d = 2", vae2)]:
        mi, kl_agg = rate_surgery_draws(model, test_bin.images, N_SURGERY, generator)
        rate = gaussian_kl(*model.encoder_params(test_bin.images)).mean().item()
        moments = kl_full_to_standard_normal(*aggregated_moments(model, test_bin.images)).item()
        surgery[name] = dict(rate=rate, I=mi.mean().item(), kl_agg=kl_agg.mean().item(), moments=moments,
                             shape=kl_agg.mean().item() - moments, se=estimators.mean_and_stderr(mi + kl_agg)[1].item(),
                             sum=(mi + kl_agg).mean().item(), mi_max=mi.max().item())
log_n = math.log(len(test_bin))
for name, s in surgery.items():
    print(f"{name}: rate {s['rate']:.2f} (closed form) = I {s['I']:.2f} + KL(q(z) || p(z)) {s['kl_agg']:.2f} "
          f"[shape {s['shape']:.2f} + moments {s['moments']:.2f}]; Monte Carlo sum {s['sum']:.2f} ± {s['se']:.2f}; "
          f"N = {len(test_bin)}, log N = {log_n:.2f}")

# %% slideshow={"slide_type": "subslide"}
figs.rate_surgery_figure(surgery, log_n)
plt.show()

# %% slideshow={"slide_type": "skip"}
for name, s in surgery.items():
    assert abs(s["sum"] - s["rate"]) < 4 * s["se"], f"{name}: the two Monte Carlo terms add up to the rate (5)"
    assert s["mi_max"] <= log_n + 1e-4, "every term of I is at most log N"
s16, s2 = surgery[f"d = {LATENT}"], surgery["d = 2"]
assert min(s16["shape"], s2["shape"]) > -4 * max(s16["se"], s2["se"]), "(6): the shape term is a KL, >= 0"
assert s16["I"] > log_n - 0.2, f"d = {LATENT}: I reaches its ceiling log N"
assert s16["shape"] > 0.5 * s16["rate"] and s16["shape"] > 5 * s16["moments"], "most of the rate is shape mismatch"
assert s2["I"] > 2 * s2["kl_agg"], "d = 2: most of the rate is information about x"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What (5) and (6) say about the aggregated posterior of section 12** (printed above; the ranges are quick mode,
# course seeds 0-4, on the 1,000 test images):
# - **d = 2**, the histogram of section 12: most of the rate is information, $I_q(x; z)$ = 4.2-4.3 of 5.0-5.2 nats;
#   $\mathrm{KL}(q(z)\,\|\,p(z))$ = 0.75-0.83 nats, shared between the moments (marginals a little off the prior's) and
#   the shape (the dark patches and ridges of the histogram). The prior is a fair summary of where the 2-D codes lie.
# - **d = 16** (20 in full mode): $I_q(x; z)$ = 6.89-6.90 nats sits at its ceiling $\log N = 6.91$: the posteriors of the
#   $N$ test images hardly overlap, so each code says which image it came from. The rest of the rate, 15-16.5 of
#   22-23 nats, is $\mathrm{KL}(q(z)\,\|\,p(z))$, almost all of it shape (14.6-15.8 nats): the aggregate is $N$ separate
#   narrow bumps, far from the smooth prior, while its first two moments are within a nat of the prior's. These are the holes of section 12 in numbers: a prior draw lands between bumps, where the decoder
#   averages its neighbours (blurrier, section 9b); an option-1 draw lands inside a bump.
# - The ceiling depends on $N$: on a larger data set $I_q$ can grow and the shape term shrink. Hoffman & Johnson
#   measure the split on the training set.

# %% [markdown] slideshow={"slide_type": "notes"}
# Derive (5) on the board in two lines: log q(z|x)/p(z) = log q(z|x)/q(z) + log q(z)/p(z), then average over
# n and z. Ask: "can I(x; z) exceed log N?" Expected: no; the code can at most say which of the N examples it came
# from. Then ask: "so where do the other 15 nats of the 16-D model go?" Expected: into the mismatch between the
# aggregate and the prior, almost all of it shape, not moments: a richer prior (a mixture of Gaussians, a VampPrior)
# would recover part of those nats, and sampling it would land nearer the bumps, like option 1.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 13. Encoder only: abstraction
#
# Seed 004, "Abstraction part – encoder only": feed $x$, read $\mu(X)$ and $\Sigma(X)$: a compact description of the image.
# The labels were never used in training, yet a linear classifier on the $d$ numbers $\mu_\phi(x)$ finds the digit.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "is the accuracy below good?" Expected: chance is 10 %; the VAE compresses each image to LATENT numbers
# without ever seeing a label, and a linear classifier still finds the digit most of the time.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    feat_train = vae.encode(train_bin.images).mean.cpu().numpy()
    feat_test = vae.encode(test_bin.images).mean.cpu().numpy()
y_train, y_test = train.labels.cpu().numpy(), test.labels.cpu().numpy()
clf = LogisticRegression(max_iter=2000).fit(feat_train, y_train)
acc_codes = clf.score(feat_test, y_test)
acc_codes2 = LogisticRegression(max_iter=2000).fit(
    vae2.encode(train_bin.images).mean.detach().cpu().numpy(), y_train).score(codes2.cpu().numpy(), y_test)
chance = np.bincount(y_test).max() / len(y_test)
print(f"test accuracy of logistic regression: on mu(x), d = {LATENT}: {acc_codes:.1%}; on mu(x), d = 2: {acc_codes2:.1%}; "
      f"majority class: {chance:.1%}")
assert acc_codes > chance + 0.5, "the codes should carry the class, far above chance"
assert acc_codes > acc_codes2, "more latent dimensions, more information"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 14. Try it: one slider per latent dimension
#
# Start from the code of a test image and move one coordinate at a time. `latent_sliders` decodes the point with
# `decode_point` (a plain function, checked below), so it also runs without a browser.

# %% [markdown] slideshow={"slide_type": "notes"}
# Let a student drive: find a slider that changes the digit's identity and one that only changes its style.
# Ask: "why do some sliders do nothing?" Expected: those dimensions carry almost no information (their KL is
# near 0); lesson 4 measures that per dimension.

# %%
with torch.no_grad():
    base = vae.encode(test_bin.images[:1]).mean[0]
latent_sliders(vae.generate, LATENT, device=device, base=base)

# %% [markdown] slideshow={"slide_type": "subslide"}
# The check of `decode_point`: the base point decodes to the reconstruction, and moving $z_1$ changes the image.

# %%
image0 = decode_point(vae.generate, base.tolist(), device=device)
assert torch.allclose(image0, vae.reconstruct(test_bin.images[:1])[0].cpu(), atol=1e-5), "the base point is the reconstruction"
moved = base.clone()
moved[0] += 2.0
image1 = decode_point(vae.generate, moved.tolist(), device=device)
assert image1.shape == train.shape and (image1 - image0).abs().max() > 1e-3, "moving z_1 changes the image"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. Sampling $z \sim q_\phi(z \mid x)$ blocks the gradient; $\nabla_\phi \mathbb{E}_{q_\phi}[f]$ needs an estimator.
# 2. The score function $\mathbb{E}[f\,\nabla\log q]$ and the pathwise $\mathbb{E}[\nabla f(\mu + \sigma\varepsilon)]$ are both unbiased (checked within 5 s.e.); the pathwise variance is smaller, by orders of magnitude when $\sigma$ is small.
# 3. $\mathrm{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal{N}(0, I)) = \frac12\sum_j(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2)$, matched by Monte Carlo.
# 4. The Gaussian VAE minimises (4): reconstruction + KL in nats per example; it reconstructs, generates from $\mathcal{N}(0, I)$, interpolates, and its codes classify digits without labels.
# 5. Figures show decoder means; true samples add independent pixel noise. Both are blurry or noisy because maximum likelihood spreads a too-simple model over the data (Kingma & Welling 2019, 2.8.2). Codes from the aggregated posterior decode sharper than prior draws: with d = 16 the rate is the information $I_q(x; z)$, at its ceiling $\log N$, plus a larger shape mismatch between $q(z)$ and $p(z)$ (ELBO surgery).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **References**
# - D. P. Kingma, M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014 (section 2.4 the reparameterization trick; appendix B the Gaussian KL; Fig. 4 the 2-D manifold).
# - D. J. Rezende, S. Mohamed, D. Wierstra, *Stochastic Backpropagation and Approximate Inference in Deep Generative Models*, ICML 2014.
# - Y. Bengio, N. Léonard, A. Courville, *Estimating or Propagating Gradients Through Stochastic Neurons for Conditional Computation*, arXiv:1308.3432, 2013.
# - R. J. Williams, *Simple statistical gradient-following algorithms for connectionist reinforcement learning*, Machine Learning 8, 1992 (REINFORCE).
# - S. Mohamed, M. Rosca, M. Figurnov, A. Mnih, *Monte Carlo Gradient Estimation in Machine Learning*, JMLR 2020 (a survey of both estimators).
# - M. D. Hoffman, M. J. Johnson, *ELBO surgery: yet another way to carve up the variational evidence lower bound*, NIPS 2016 Workshop on Advances in Approximate Bayesian Inference (the split of the average KL into I(x; z) and KL(q(z) || p(z))).

# %% [markdown] slideshow={"slide_type": "subslide"}
# - D. P. Kingma, M. Welling, *An Introduction to Variational Autoencoders*, Foundations and Trends in ML, 2019 (Fig. 2.3 the reparameterization graph; section 2.8.2 blurriness).
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM, 2021 ("Optimisation des VAE", "Échantillonnage lors de l'inférence"); B. Banerjee, *VAE continued* (encoder-only and decoder-only use).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What we got** (printed above; quick mode: 4,000 MNIST digits, d = 16, 30 epochs, dynamic binarization): test
# negative ELBO from 550 nats per image untrained to about 117 (distortion ~94 + rate ~22; Kingma & Welling 2014
# reach about 100 with all of MNIST); true samples have twice the total variation of the decoder means; prior draws
# decode blurrier than reconstructions (entropy of p(x|z) ~105 vs ~97 nats), the 2-D model far blurrier (~163); a
# logistic regression on the 16 code means reaches about 86 % test accuracy (54 % with d = 2, chance 10 %); the
# moment-matched aggregated posterior is ~0.6 nats from N(0, I), yet on the 1,000 test images the 22 nats of rate
# split into I(x; z) = 6.9 = log N and KL(q(z) || p(z)) = 15, almost all of it shape (seed 0).

# %% [markdown] slideshow={"slide_type": "notes"}
# Recap in one breath per line. Ask: "which of the five points would change with a Gaussian decoder on grey
# pixels?" Expected: only the likelihood term of (4) and the meaning of a sample; lesson 4 shows the Gaussian
# decoder and its variance gamma.
