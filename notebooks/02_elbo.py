# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 2: the ELBO
#
# **What you will learn**
# - what the *evidence* $p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz$ is, and why a VAE cannot compute it;
# - the *evidence lower bound* (ELBO), derived twice: with Jensen's inequality and with the key equation
#   $\log p_\theta(x) = \mathcal{L}(\theta, \phi; x) + \mathrm{KL}(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x))$;
# - why maximising the ELBO fits the model, and what a too-simple $q_\phi$ costs.
#
# Everything is shown on the course slides' toy model, where all of these quantities are exact.
#
# **You need** lesson 1 (autoencoders); Bayes' rule; what a KL divergence is.
#
# **Run time** a few seconds on a CPU, in quick mode (`COURSE_QUICK=1`) and in full mode alike; no GPU needed.
#
# **Units** every log-likelihood, ELBO and KL is in **nats per example** (natural log, one value per $x$,
# averaged over a data set).

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt
import torch

from course_lib import toy_models as tm
from course_lib.runtime import describe, pick, seed_everything

generator = seed_everything(0)
# The toy model is tiny: compute in float64 so that the identities below hold to ~1e-12
# (and so that q(z=1|x) = sigmoid(logit) never rounds to exactly 0 or 1 while we fit it).
torch.set_default_dtype(torch.float64)

# Okabe-Ito palette (colour-blind safe)
C = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
     "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode (`COURSE_QUICK=1`, used by the tests) only shrinks grids, sample sizes and step counts:

# %%
N_DATA = pick(2_000, 10_000)     # examples drawn from the toy model for the fitting part
N_GRID = pick(301, 1001)         # points of the x and pi grids in figures and checks
N_P = pick(199, 499)             # points of the p grid (objectives as functions of p)
N_MC = pick(4_000, 40_000)       # Monte Carlo samples z ~ q(z|x)
N_EM = pick(150, 300)            # EM iterations
N_STEPS = pick(600, 2_000)       # Adam steps for the gradient-based fits

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The evidence, and why it is hard
#
# A latent-variable model draws a code $z \sim p(z)$, then an observation $x \sim p_\theta(x \mid z)$ (the decoder).
# Fitting it by maximum likelihood means maximising, over the data set, the **evidence**
#
# $$p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz, \qquad
#   \hat\theta = \arg\max_\theta \; \mathbb{E}_{p_\mathcal{D}}\big[\log p_\theta(x)\big].$$
#
# In a VAE this integral is out of reach:
# - $z$ has tens or hundreds of dimensions: no grid covers it;
# - $p_\theta(x \mid z)$ is a neural network: no closed form;
# - sampling $z \sim p(z)$ almost never hits the few $z$ that explain a given $x$, so
#   $\frac1S\sum_s p_\theta(x \mid z_s)$ has a huge variance.
#
# The **posterior** $p_\theta(z \mid x) = p_\theta(x \mid z)\, p(z) / p_\theta(x)$, what an encoder should
# output, needs $p_\theta(x)$ too: it is just as intractable.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. A model where everything is exact (the slides' toy model)
#
# $$z \sim \mathrm{Bernoulli}(p), \qquad x \mid z \sim \mathcal{N}(z, \sigma^2), \qquad \theta = \{p\},\ \sigma \text{ known}.$$
#
# ($p$ is the model's parameter; $p(\cdot)$ with an argument is a density, as on the slides.)
# The latent space has two points, so the integral is a sum of two terms:
#
# $$p_\theta(x) = (1-p)\, \mathcal{N}(x; 0, \sigma^2) + p\, \mathcal{N}(x; 1, \sigma^2).$$
#
# In log space, with $\log p(x, z) = \log p(z) + \log p(x \mid z)$, this is a `logsumexp` of the two log-joints,
# which stays finite when both densities underflow:

# %%
P_TRUE, SIGMA = 0.3, 0.5


def log_normal(x, mean, sigma):
    """log N(x; mean, sigma^2)."""
    return -0.5 * ((x - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def log_joint(x, p, sigma):
    """log p(x, z) = log p(z) + log p(x | z), for z = 0 and z = 1 (stacked on the last dimension)."""
    p = torch.as_tensor(p)
    return torch.stack(torch.broadcast_tensors(torch.log(1 - p) + log_normal(x, 0.0, sigma),   # z = 0
                                               torch.log(p) + log_normal(x, 1.0, sigma)), -1)  # z = 1


def log_evidence(x, p, sigma):
    """log p(x) = log[(1 - p) N(x; 0, sigma^2) + p N(x; 1, sigma^2)], in nats."""
    return torch.logsumexp(log_joint(x, p, sigma), dim=-1)


# %% [markdown] slideshow={"slide_type": "subslide"}
# Check: it is the formula, it integrates to one, and it stays finite far from the data where the naive
# formula (`log` of a sum of `exp`) returns $-\infty$.

# %%
x_wide = torch.linspace(-30, 30, 6001)
log_px = log_evidence(x_wide, P_TRUE, SIGMA)
naive = torch.log((1 - P_TRUE) * torch.exp(log_normal(x_wide, 0.0, SIGMA))
                  + P_TRUE * torch.exp(log_normal(x_wide, 1.0, SIGMA)))

ok = torch.isfinite(naive)
normal = naive > -600   # below ~ -708 exp() returns denormals (few significant bits), then 0
assert torch.allclose(log_px[normal], naive[normal], rtol=1e-12), "logsumexp and the direct formula should agree"
assert not ok.all(), "far from the data the naive formula underflows to log(0) = -inf"
assert torch.isfinite(log_px).all()
assert torch.allclose(log_px, tm.log_evidence(x_wide, P_TRUE, SIGMA)), "same as the course_lib reference"
mass = torch.trapezoid(log_px.exp(), x_wide).item()
assert abs(mass - 1.0) < 1e-6, f"p(x) should integrate to 1, got {mass}"
print(f"integral of p(x) dx = {mass:.8f}; naive formula is -inf for |x| > {x_wide[ok].abs().max():.1f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Sampling the model (ancestral sampling: first $z$, then $x$) and the exact evidence:

# %%
x_data, z_data = tm.sample(N_DATA, P_TRUE, SIGMA, generator=generator)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
xs = torch.linspace(-2, 3, N_GRID)
ax = axes[0]
ax.hist(x_data.numpy(), bins=60, density=True, color=C["sky"], alpha=0.6, label=f"{N_DATA} samples")
ax.plot(xs, (1 - P_TRUE) * log_normal(xs, 0.0, SIGMA).exp(), "--", color=C["blue"], label=r"$(1-p)\,\mathcal{N}(x;0,\sigma^2)$")
ax.plot(xs, P_TRUE * log_normal(xs, 1.0, SIGMA).exp(), "--", color=C["vermillion"], label=r"$p\,\mathcal{N}(x;1,\sigma^2)$")
ax.plot(xs, log_evidence(xs, P_TRUE, SIGMA).exp(), color=C["black"], label=r"$p_\theta(x)$")
ax.set(title=f"Toy model, p = {P_TRUE}, σ = {SIGMA}", xlabel="x", ylabel="density")
ax.legend(fontsize=8)
ax = axes[1]
ax.plot(x_wide, log_px, color=C["black"], label="logsumexp")
ax.plot(x_wide[ok], naive[ok], ":", color=C["orange"], lw=3, label="naive log(sum(exp)) (where finite)")
ax.set(title="Exact log-evidence", xlabel="x", ylabel=r"$\log p_\theta(x)$ (nats)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

assert abs(x_data.mean().item() - P_TRUE) < 5 * math.sqrt((SIGMA**2 + P_TRUE * (1 - P_TRUE)) / N_DATA), \
    "the mean of x should be p"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The true posterior, by Bayes' rule
#
# $$p_\theta(z=1 \mid x) = \frac{p\, \mathcal{N}(x; 1, \sigma^2)}{p_\theta(x)}
#   = \exp\big(\log p(x, z{=}1) - \log p_\theta(x)\big)
#   = \mathrm{sigmoid}\Big(\log\frac{p}{1-p} + \frac{2x-1}{2\sigma^2}\Big).$$
#
# Here it needs the evidence, which we have. In a VAE it does not exist in closed form: the encoder
# $q_\phi(z \mid x)$ will have to approximate it.

# %%
def posterior_z1(x, p, sigma):
    """p(z=1 | x) = p(x, z=1) / p(x) by Bayes' rule, in log space."""
    return torch.exp(log_joint(x, p, sigma)[..., 1] - log_evidence(x, p, sigma))


# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for sigma, color in [(0.2, C["blue"]), (0.5, C["orange"]), (1.0, C["green"])]:
    r = posterior_z1(xs, P_TRUE, sigma)
    ax.plot(xs, r, color=color, label=f"σ = {sigma}")
    # the posterior is 1/2 where both explanations are equally likely: x = 1/2 - sigma^2 logit(p)
    x_half = 0.5 - sigma**2 * math.log(P_TRUE / (1 - P_TRUE))
    ax.axvline(x_half, color=color, ls=":", lw=1)
    assert abs(posterior_z1(torch.tensor(x_half), P_TRUE, sigma).item() - 0.5) < 1e-12
    # Bayes "by hand" with explicit densities, and the course_lib reference
    by_hand = P_TRUE * log_normal(xs, 1.0, sigma).exp() / (
        (1 - P_TRUE) * log_normal(xs, 0.0, sigma).exp() + P_TRUE * log_normal(xs, 1.0, sigma).exp())
    assert torch.allclose(r, by_hand, atol=1e-12)
    assert torch.allclose(r, tm.posterior_z1(xs, P_TRUE, sigma), atol=1e-12)
ax.axhline(P_TRUE, color=C["black"], ls="--", lw=1, label="prior p")
ax.set(title=f"Exact posterior $p_\\theta(z=1\\mid x)$, p = {P_TRUE}", xlabel="x", ylabel=r"$p_\theta(z=1\mid x)$")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# The dotted lines sit left of 1/2 because the prior favours z = 0 (p = 0.3): an x needs to be a bit
# larger than 1/2 to be attributed to z = 1. The smaller sigma, the sharper the posterior.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The ELBO with Jensen's inequality
#
# Take any distribution $q_\phi(z \mid x)$ that is positive where $p(x, z)$ is, multiply and divide:
#
# $$p_\theta(x) = \int \frac{p_\theta(x, z)}{q_\phi(z \mid x)}\, q_\phi(z \mid x)\, dz
#   = \mathbb{E}_{q_\phi(z \mid x)}\Big[\frac{p_\theta(x, z)}{q_\phi(z \mid x)}\Big] \tag{1}$$
#
# The log is concave, so (Jensen) $\log \mathbb{E}[Y] \ge \mathbb{E}[\log Y]$:
#
# $$\log p_\theta(x) \;\ge\; \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x, z) - \log q_\phi(z \mid x)\big]
#   =: \mathcal{L}(\theta, \phi; x) \tag{2}$$
#
# With $\log p_\theta(x, z) = \log p_\theta(x \mid z) + \log p(z)$ the bound splits into the two terms of the
# VAE loss:
#
# $$\mathcal{L}(\theta, \phi; x) = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)}_{\text{distance to the prior}}.$$

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The key equation: how loose is the bound?
#
# Expand the KL between $q_\phi$ and the true posterior, using Bayes $p_\theta(z \mid x) = p_\theta(x \mid z)\,p(z)/p_\theta(x)$:
#
# $$\begin{aligned}
# \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big)
#  &= \mathbb{E}_{q_\phi}\big[\log q_\phi(z \mid x) - \log p_\theta(x \mid z) - \log p(z) + \log p_\theta(x)\big] \\
#  &= -\mathbb{E}_{q_\phi}[\log p_\theta(x \mid z)] + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) + \log p_\theta(x).
# \end{aligned}$$
#
# Rearranged, this is the **key equation** (Doersch 2016; Kingma & Welling 2014, eq. 1):
#
# $$\boxed{\;\log p_\theta(x) = \mathcal{L}(\theta, \phi; x) + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big)\;}$$
#
# - the KL is $\ge 0$, so $\mathcal{L} \le \log p_\theta(x)$ (Jensen again);
# - the **gap** is exactly how far $q_\phi$ is from the true posterior: the bound is tight iff $q_\phi(z \mid x) = p_\theta(z \mid x)$;
# - maximising $\mathcal{L}$ over $\phi$ pushes $q_\phi$ towards the posterior; over $\theta$, it pushes the evidence up.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The ELBO on the toy model
#
# Take a Bernoulli variational family, $q(z=1 \mid x) = \pi$. Expectations under $q$ are sums of two terms,
# $\mathbb{E}_q[f(z)] = (1-\pi) f(0) + \pi f(1)$, so the three terms of (2) are exact
# (`torch.xlogy` makes $0 \log 0 = 0$, for $\pi \in \{0, 1\}$):

# %%
def elbo(x, pi, p, sigma):
    """E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)] for q(z=1|x) = pi, in nats."""
    pi = torch.as_tensor(pi)
    recon = (1 - pi) * log_normal(x, 0.0, sigma) + pi * log_normal(x, 1.0, sigma)
    log_prior = torch.xlogy(1 - pi, torch.as_tensor(1 - p)) + torch.xlogy(pi, torch.as_tensor(p))
    entropy = -(torch.xlogy(1 - pi, 1 - pi) + torch.xlogy(pi, pi))
    return recon + log_prior + entropy


def kl_to_posterior(x, pi, p, sigma):
    """KL(q(z|x) || p(z|x)) = E_q[log q(z|x) - log p(z|x)], with log p(z|x) = log p(x, z) - log p(x)."""
    pi = torch.as_tensor(pi)
    log_post = log_joint(x, p, sigma) - log_evidence(x, p, sigma)[..., None]   # log p(z|x), z = 0, 1
    return (torch.xlogy(1 - pi, 1 - pi) - (1 - pi) * log_post[..., 0]
            + torch.xlogy(pi, pi) - pi * log_post[..., 1])


# %% [markdown] slideshow={"slide_type": "subslide"}
# Fix an observation $x$ and move $\pi$: the ELBO stays under $\log p_\theta(x)$ and touches it at
# $\pi^\star = p_\theta(z=1 \mid x)$; the gap is the KL to the posterior.

# %%
x_obs = 0.8
pis = torch.linspace(0, 1, N_GRID)
bound = elbo(x_obs, pis, P_TRUE, SIGMA)
log_px_obs = log_evidence(torch.tensor(x_obs), P_TRUE, SIGMA)
pi_star = posterior_z1(torch.tensor(x_obs), P_TRUE, SIGMA)

fig, ax = plt.subplots(figsize=(7, 4))
ax.axhline(log_px_obs.item(), color=C["black"], label=r"$\log p_\theta(x)$")
ax.plot(pis, bound, color=C["blue"], lw=2, label=r"ELBO $\mathcal{L}(\pi)$")
ax.fill_between(pis, bound, log_px_obs.expand_as(pis), color=C["orange"], alpha=0.3,
                label=r"gap = KL$(q\,\|\,p_\theta(z\mid x))$")
ax.axvline(pi_star.item(), color=C["vermillion"], ls="--", label=rf"$\pi^\star = p_\theta(z=1\mid x) = {pi_star:.3f}$")
ax.set(title=f"ELBO of q(z=1|x) = π at x = {x_obs} (p = {P_TRUE}, σ = {SIGMA})", xlabel=r"$\pi = q(z=1\mid x)$",
       ylabel="nats", ylim=(bound.min().item() - 0.1, log_px_obs.item() + 0.15))
ax.legend(fontsize=8, loc="lower center")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The checks, on a grid of observations (extreme ones included) and of $\pi$:
# the key equation holds, the ELBO is a lower bound, and the best $\pi$ is the posterior.

# %%
x_grid = torch.cat([torch.linspace(-3, 4, 71), torch.tensor([-50.0, 50.0])])[:, None]
pi_grid = torch.linspace(0, 1, N_GRID)[None, :]
L = elbo(x_grid, pi_grid, P_TRUE, SIGMA)
gap = log_evidence(x_grid, P_TRUE, SIGMA) - L
kl = kl_to_posterior(x_grid, pi_grid, P_TRUE, SIGMA)
assert torch.isfinite(kl).all() and torch.isfinite(gap).all()
assert torch.allclose(gap, kl, atol=1e-5, rtol=1e-9), "key equation: log p(x) - ELBO = KL(q || posterior)"
assert (gap >= -1e-12).all(), "the ELBO never exceeds log p(x)"
assert torch.allclose(L, tm.elbo(x_grid, pi_grid, P_TRUE, SIGMA)), "same as the course_lib reference"
assert torch.allclose(tm.kl_to_posterior(x_grid, pi_grid, P_TRUE, SIGMA), kl, rtol=1e-9, atol=1e-9)
r = posterior_z1(x_grid, P_TRUE, SIGMA)
assert torch.allclose(elbo(x_grid, r, P_TRUE, SIGMA), log_evidence(x_grid, P_TRUE, SIGMA), atol=1e-10), \
    "at q = posterior the bound is tight"
best_pi = pi_grid[0, L.argmax(dim=1)]
assert (best_pi - r[:, 0]).abs().max() <= 1.0 / (N_GRID - 1), "the ELBO is maximal at pi = p(z=1|x)"
print(f"max |gap - KL| over {gap.numel()} (x, pi) pairs: {(gap - kl).abs().max():.2e} nats")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. What a VAE computes: a Monte Carlo ELBO
#
# A VAE cannot sum over $z$. It draws $z_s \sim q_\phi(z \mid x)$ and averages (usually one sample per $x$ and
# step):
#
# $$\mathcal{L}(\theta, \phi; x) \approx \frac1S \sum_{s=1}^S \big[\log p_\theta(x \mid z_s) + \log p(z_s) - \log q_\phi(z_s \mid x)\big],
#   \qquad z_s \sim q_\phi(z \mid x).$$
#
# It is unbiased: its mean is the closed form, its standard error shrinks like $1/\sqrt{S}$.

# %%
pi_q = 0.2   # far from the posterior (0.59), so that the samples disagree
z_s = (torch.rand(N_MC, generator=generator) < pi_q).double()           # z_s ~ Bernoulli(pi)
terms = (log_normal(x_obs, z_s, SIGMA)                                   # log p(x | z_s)
         + torch.where(z_s == 1, math.log(P_TRUE), math.log(1 - P_TRUE))  # log p(z_s)
         - torch.where(z_s == 1, math.log(pi_q), math.log(1 - pi_q)))     # log q(z_s | x)
mc, se = terms.mean(), terms.std() / math.sqrt(N_MC)
exact = elbo(x_obs, pi_q, P_TRUE, SIGMA)
print(f"Monte Carlo ELBO = {mc:.4f} ± {se:.4f} (S = {N_MC}); closed form = {exact:.4f} nats")
assert abs(mc - exact) < 4 * se, "the Monte Carlo ELBO should agree with the closed form within 4 standard errors"

# the course_lib version, for many x at once
mc_all, se_all = tm.elbo_mc(x_grid[:, 0], pi_q, P_TRUE, SIGMA, n_samples=N_MC, generator=generator)
z_scores = (mc_all - tm.elbo(x_grid[:, 0], pi_q, P_TRUE, SIGMA)) / se_all
assert z_scores.abs().max() < 5, f"largest |z-score| over {len(z_scores)} x: {z_scores.abs().max():.2f}"

# %% slideshow={"slide_type": "subslide"}
running = terms.cumsum(0) / torch.arange(1, N_MC + 1)
s_axis = torch.arange(1, N_MC + 1).double()
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(s_axis, running, color=C["blue"], label="running Monte Carlo mean")
ax.fill_between(s_axis, exact - 2 * terms.std() / s_axis.sqrt(), exact + 2 * terms.std() / s_axis.sqrt(),
                color=C["sky"], alpha=0.3, label="closed form ± 2 standard errors")
ax.axhline(exact, color=C["black"], ls="--", label="closed-form ELBO")
ax.set(xscale="log", title=f"Monte Carlo ELBO at x = {x_obs}, π = {pi_q}", xlabel="number of samples S",
       ylabel="ELBO (nats)", ylim=(exact.item() - 1.0, exact.item() + 1.0))
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Maximising the ELBO fits the model
#
# On a data set, we maximise the average ELBO (nats per example) over $\theta$ **and** $q$:
#
# $$\max_{\theta, \phi}\ \frac1n \sum_{i=1}^n \mathcal{L}(\theta, \phi; x_i)
#   = \frac1n \sum_i \log p_\theta(x_i) - \frac1n \sum_i \mathrm{KL}\big(q_\phi(z \mid x_i) \,\|\, p_\theta(z \mid x_i)\big).$$
#
# When $q$ can reach the posterior, the KL can be made 0 and the maximum is the maximum-likelihood $\hat p$.
# Here $\hat p$ is exact (the average log-evidence is concave in $p$): the target.

# %%
x_fit = x_data
p_mle = tm.mle_p(x_fit, SIGMA)      # bisection on the derivative of the average log-evidence
ps = torch.linspace(0.001, 0.999, N_P)
avg_log_lik = log_evidence(x_fit[:, None], ps[None, :], SIGMA).mean(0)   # (1/n) sum_i log p(x_i), per p
assert abs(ps[avg_log_lik.argmax()] - p_mle) <= 1.0 / (N_P - 1)
print(f"true p = {P_TRUE}, maximum-likelihood p = {p_mle:.4f} (n = {N_DATA})")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### (a) The best $q$ for each point: EM
#
# Coordinate ascent on the ELBO is the EM algorithm (Neal & Hinton, 1998):
# - **E-step**, over $q$: $\pi_i = p_\theta(z=1 \mid x_i)$; the KL is 0, the bound touches $\log p_\theta(x_i)$;
# - **M-step**, over $p$: only $\mathbb{E}_q[\log p(z)] = (1-\pi_i)\log(1-p) + \pi_i \log p$ depends on $p$,
#   maximal at $p = \frac1n \sum_i \pi_i$.

# %%
p_em = torch.tensor(0.9)                    # a bad start on purpose
em_path, em_bounds = [p_em], []
for t in range(N_EM):
    pi_i = posterior_z1(x_fit, p_em.item(), SIGMA)            # E-step: q(z=1|x_i) = p(z=1|x_i)
    if t < 3:   # keep the bound as a function of p, for the figure
        em_bounds.append(elbo(x_fit[:, None], pi_i[:, None], ps[None, :], SIGMA).mean(0))
    p_em = pi_i.mean()                                        # M-step
    em_path.append(p_em)
print(f"EM: p = {p_em:.6f} after {N_EM} iterations")
assert abs(p_em - p_mle) < 1e-4, "maximising the ELBO with the optimal q should recover the maximum-likelihood p"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### (b) An amortised encoder: a VAE in miniature
#
# A VAE does not store one $\pi_i$ per example: an **encoder** maps $x$ to $q_\phi(z=1 \mid x)$.
# Here $q_\phi(z=1 \mid x) = \mathrm{sigmoid}(w x + b)$, $\phi = (w, b)$, and $p$ and $\phi$ are fitted jointly by
# gradient ascent on the average ELBO. The exact posterior logit, $\log\frac{p}{1-p} + \frac{2x-1}{2\sigma^2}$, is
# linear in $x$: the encoder can match it, so the fit should land on $\hat p$ too.

# %%
def fit_by_gradient(encoder_params, encoder, steps, lr=0.05):
    """Maximise the average ELBO over logit(p) and the encoder's parameters with Adam."""
    logit_p = torch.tensor(math.log(0.9 / 0.1), requires_grad=True)          # start at p = 0.9
    opt = torch.optim.Adam([logit_p, *encoder_params], lr=lr)
    path = []
    for _ in range(steps):
        loss = -elbo(x_fit, encoder(x_fit), torch.sigmoid(logit_p), SIGMA).mean()   # nats per example
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(torch.sigmoid(logit_p.detach()))
    return torch.stack(path), -loss.detach()


w = torch.zeros((), requires_grad=True)
b = torch.zeros((), requires_grad=True)
amortised_path, amortised_elbo = fit_by_gradient([w, b], lambda x: torch.sigmoid(w * x + b), N_STEPS)
p_amortised = amortised_path[-1]
print(f"amortised encoder: p = {p_amortised:.4f}, w = {w.item():.2f} (exact 1/σ² = {1 / SIGMA**2:.2f}), "
      f"b = {b.item():.2f} (exact {math.log(p_mle / (1 - p_mle)) - 0.5 / SIGMA**2:.2f})")
assert abs(p_amortised - p_mle) < 0.01, "an encoder that can represent the posterior recovers the MLE"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### (c) A $q$ that is too simple: one $\pi$ shared by all $x$
#
# Now $q(z=1 \mid x) = \pi$ ignores $x$. It cannot follow the posterior, the KL term cannot vanish, and
# maximising the ELBO now trades likelihood for a smaller gap: it prefers models whose posterior a constant
# $q$ fits, here $p \to 0$ (every $x$ is explained by $z = 0$, the posterior is then $z=0$ everywhere and the gap is 0).

# %%
logit_pi = torch.zeros((), requires_grad=True)
shared_path, shared_elbo = fit_by_gradient([logit_pi], lambda x: torch.sigmoid(logit_pi).expand_as(x), N_STEPS)
p_shared = shared_path[-1]

# the same objective as a function of p, with the best shared pi for each p (grid search over pi)
A, B = log_normal(x_fit, 0.0, SIGMA).mean(), log_normal(x_fit, 1.0, SIGMA).mean()   # E_q[log p(x|z)] is linear in pi
pi_g = torch.linspace(0, 1, N_GRID)[:, None]
shared_profile = ((1 - pi_g) * A + pi_g * B - tm.kl_bernoulli(pi_g, ps[None, :])).max(0).values

print(f"shared pi: p = {p_shared:.4f} (MLE {p_mle:.4f}); average ELBO {shared_elbo:.4f} "
      f"vs {amortised_elbo:.4f} nats for the amortised encoder")
assert abs(p_shared - p_mle) > 0.1, "a too-restricted q should bias the fitted p"
assert shared_elbo < amortised_elbo, "the restricted family reaches a lower ELBO"
assert shared_profile.argmax() == 0, "with a shared pi the bound is best at the boundary p -> 0"

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
ax = axes[0]
ax.plot(ps, avg_log_lik, color=C["black"], lw=2.5, label=r"average $\log p_\theta(x_i)$ (= ELBO with the best q per point)")
for t, (bound_t, color) in enumerate(zip(em_bounds, [C["orange"], C["sky"], C["green"]])):
    ax.plot(ps, bound_t, "--", color=color, label=f"ELBO with q from EM step {t} (touches at p = {em_path[t]:.2f})")
ax.plot(ps, shared_profile, color=C["purple"], lw=2, label=r"ELBO, best shared $\pi$")
ax.axvline(p_mle, color=C["vermillion"], ls=":", label=f"MLE p = {p_mle:.3f}")
lo = avg_log_lik.max().item()
ax.set(title="Objectives as functions of p (nats per example)", xlabel="p", ylabel="nats per example",
       ylim=(lo - 1.5, lo + 0.15))
ax.legend(fontsize=7, loc="lower left")
ax = axes[1]
ax.plot(range(1, len(em_path) + 1), torch.stack(em_path), "o-", ms=3, color=C["orange"], label="EM (best q per point)")
ax.plot(range(1, N_STEPS + 1), amortised_path, color=C["blue"], label="amortised encoder, Adam")
ax.plot(range(1, N_STEPS + 1), shared_path, color=C["purple"], label=r"shared $\pi$, Adam")
ax.axhline(p_mle, color=C["vermillion"], ls=":", label="maximum likelihood")
ax.axhline(P_TRUE, color=C["black"], ls="--", lw=1, label="true p")
ax.set(xscale="log", title="Fitted p along the optimisation", xlabel="EM iteration / Adam step (start = 1)", ylabel="p")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Left: each dashed curve is the ELBO with q frozen at the posterior of the current p: it lies under the
# log-likelihood and touches it at the current p, and its maximum is the next EM iterate. The shared-pi bound
# (purple) is far below and increases towards p = 0: the restricted family pulls the model to a degenerate
# solution where its poor q is exact. The same mechanism, milder, exists in VAEs with a diagonal Gaussian q.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Try it
#
# Move $p$, $\sigma$, the observation $x$ and the variational $\pi$: the ELBO and the KL to the posterior
# always add up to $\log p_\theta(x)$, and the KL vanishes at $\pi = p_\theta(z=1 \mid x)$.

# %%
def elbo_bars(p=0.3, sigma=0.5, pi=0.5, x=0.8, show=True):
    """The key equation for one (p, sigma, pi, x): values in nats and a bar chart."""
    values = {
        "log p(x)": log_evidence(torch.tensor(x), p, sigma).item(),
        "ELBO": elbo(x, pi, p, sigma).item(),
        "KL(q || p(z|x))": kl_to_posterior(torch.tensor(x), pi, p, sigma).item(),
        "E_q log p(x|z)": tm.elbo_terms(x, pi, p, sigma)["recon"].item(),
        "KL(q || p(z))": tm.kl_bernoulli(pi, p).item(),
    }
    values["p(z=1|x)"] = posterior_z1(torch.tensor(x), p, sigma).item()
    if show:
        names = list(values)[:5]
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.barh(names, [values[k] for k in names],
                color=[C["black"], C["blue"], C["orange"], C["sky"], C["purple"]])
        ax.axvline(0, color="grey", lw=0.8)
        ax.invert_yaxis()
        ax.set(title=f"log p(x) = ELBO + KL: {values['log p(x)']:.3f} = {values['ELBO']:.3f} + "
                     f"{values['KL(q || p(z|x))']:.3f}   (p(z=1|x) = {values['p(z=1|x)']:.3f})",
               xlabel="nats")
        ax.title.set_fontsize(9)
        fig.tight_layout()
        plt.show()
    return values


v = elbo_bars(p=0.3, sigma=0.5, pi=0.5, x=0.8)
assert abs(v["log p(x)"] - (v["ELBO"] + v["KL(q || p(z|x))"])) < 1e-10
assert abs(v["ELBO"] - (v["E_q log p(x|z)"] - v["KL(q || p(z))"])) < 1e-10
v_star = elbo_bars(p=0.3, sigma=0.5, pi=v["p(z=1|x)"], x=0.8, show=False)
assert v_star["KL(q || p(z|x))"] < 1e-12, "at pi = p(z=1|x) the gap closes"

# %% slideshow={"slide_type": "subslide"}
from course_lib.widgets import sliders

try:  # one slider per argument: (min, max, step, start)
    widget = sliders(elbo_bars, p=(0.01, 0.99, 0.01, 0.3), sigma=(0.1, 2.0, 0.05, 0.5),
                     pi=(0.0, 1.0, 0.01, 0.5), x=(-3.0, 4.0, 0.05, 0.8))
except ImportError:
    widget = "ipywidgets is not installed: call elbo_bars(p, sigma, pi, x) with your own values."
widget


# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. The evidence $p_\theta(x) = \int p_\theta(x \mid z)\,p(z)\,dz$ and the posterior $p_\theta(z \mid x)$ are intractable in a VAE; on the toy model they are a two-term sum and Bayes' rule.
# 2. For any $q_\phi(z \mid x)$, Jensen gives $\log p_\theta(x) \ge \mathcal{L} = \mathbb{E}_{q_\phi}[\log p_\theta(x \mid z)] - \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))$.
# 3. The key equation $\log p_\theta(x) = \mathcal{L} + \mathrm{KL}(q_\phi(z \mid x)\,\|\,p_\theta(z \mid x))$: the gap is the distance from $q_\phi$ to the true posterior (checked to 1e-5 on a grid).
# 4. The ELBO can be estimated by sampling $z \sim q_\phi$ (what a VAE does), without bias.
# 5. Maximising the ELBO over $\theta$ and $q$ recovers maximum likelihood when $q$ can match the posterior (EM, amortised encoder); a too-simple $q$ biases $\theta$.
#
# **References**
# - D. P. Kingma, M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014 (section 2.2, eq. 1-3: the bound and its two forms).
# - C. Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908, 2016 (section 2.1, the key equation).
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides, 2021 (section "Inférence variationnelle": the Bernoulli toy model and the ELBO).
# - R. M. Neal, G. E. Hinton, *A view of the EM algorithm that justifies incremental, sparse, and other variants*, 1998 (EM as coordinate ascent on the ELBO).
#
# **What we got** (printed above): EM and the amortised encoder land on the maximum-likelihood $\hat p$; a shared $\pi$ drives $p$ towards 0.
