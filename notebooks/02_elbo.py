# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 2: the ELBO
#
# **What you will learn**
# - what the *evidence* $p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz$ is, and why a VAE cannot compute it;
# - the **KL divergence**: definition, why it is never negative, why it is not symmetric, and what each
#   direction does when it fits a simple $q$ to a complicated $p$ (mode-covering vs mode-seeking);
# - the *evidence lower bound* (ELBO), derived twice: with Jensen's inequality and with the key equation
#   $\log p_\theta(x) = \mathcal{L}(\theta, \phi; x) + \mathrm{KL}(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x))$;
# - why maximising the ELBO fits the model; what a too-simple $q$ costs: the approximation and amortization gaps.
#
# Everything is shown on the course slides' toy model, where all of these quantities are exact.
#
# **You need** lesson 1 (autoencoders); Bayes' rule; expectations.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Run time** (measured with `python -m course_lib timings` on 2 CPU cores (AMD EPYC), no GPU): quick mode, the
# default without a GPU, 6 s for this notebook from a fresh kernel, 3 s for its exercise notebook. Full mode on a GPU:
# not measured. Trained models are cached as checkpoints: a second run loads them.
#
# **Units** every log-likelihood, ELBO and KL is in **nats per example** (natural log, one value per $x$,
# averaged over a data set).

# %% [markdown] slideshow={"slide_type": "notes"}
# Lesson 1 ended on "the autoencoder does not tell us where to sample". Today: the objective that makes a latent
# model both an encoder and a sampler. Ask: what would you maximise to fit a generative model? Expected answer:
# the likelihood of the data; today we see why it is intractable and what we maximise instead.

# %% slideshow={"slide_type": "skip"}
import math

import torch

from course_lib.figures import elbo as figs
from course_lib import toy_models as tm
from course_lib.plots import PALETTE
from course_lib.runtime import describe, pick, seed_everything

generator = seed_everything(0)
# The toy model is tiny: compute in float64 so that the identities below hold to ~1e-12
# (and so that q(z=1|x) = sigmoid(logit) never rounds to exactly 0 or 1 while we fit it).
torch.set_default_dtype(torch.float64)
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode only shrinks grids, sample sizes and step counts (one cell):

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

# %% [markdown] slideshow={"slide_type": "notes"}
# Make the dimension argument concrete: a grid of 10 points per axis in d = 20 dimensions is 10^20 decoder calls.
# Ask: why not sample z from the prior and average p(x|z)? Expected answer: unbiased but useless, almost every
# z explains x badly; we need to sample where the posterior is, which is what the encoder will learn.

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

# %% slideshow={"slide_type": "subslide"}
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


# %% [markdown] slideshow={"slide_type": "notes"}
# Point at the three functions: each is one line of math. Ask: why logsumexp rather than log of a sum?
# Expected answer: far from the data both densities underflow to 0 and log(0) = -inf; next slide shows it.

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

# %% slideshow={"slide_type": "subslide"}
x_data, z_data = tm.sample(N_DATA, P_TRUE, SIGMA, generator=generator)
xs = torch.linspace(-2, 3, N_GRID)
components = {r"$(1-p)\,\mathcal{N}(x;0,\sigma^2)$": (1 - P_TRUE) * log_normal(xs, 0.0, SIGMA).exp(),
              r"$p\,\mathcal{N}(x;1,\sigma^2)$": P_TRUE * log_normal(xs, 1.0, SIGMA).exp()}
assert abs(x_data.mean().item() - P_TRUE) < 5 * math.sqrt((SIGMA**2 + P_TRUE * (1 - P_TRUE)) / N_DATA), \
    "the mean of x should be p"

# %% slideshow={"slide_type": "subslide"}
fig = figs.evidence(x_data, xs, components, log_evidence(xs, P_TRUE, SIGMA).exp(), x_wide, log_px, naive,
                    title=f"Toy model, p = {P_TRUE}, σ = {SIGMA}")

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
curves = {}
for sigma in (0.2, 0.5, 1.0):
    r = posterior_z1(xs, P_TRUE, sigma)
    x_half = 0.5 - sigma**2 * math.log(P_TRUE / (1 - P_TRUE))    # where both explanations are equally likely
    curves[f"σ = {sigma}"] = (r, x_half)
    assert abs(posterior_z1(torch.tensor(x_half), P_TRUE, sigma).item() - 0.5) < 1e-12
    by_hand = P_TRUE * log_normal(xs, 1.0, sigma).exp() / (    # Bayes with explicit densities
        (1 - P_TRUE) * log_normal(xs, 0.0, sigma).exp() + P_TRUE * log_normal(xs, 1.0, sigma).exp())
    assert torch.allclose(r, by_hand, atol=1e-12)
    assert torch.allclose(r, tm.posterior_z1(xs, P_TRUE, sigma), atol=1e-12)

# %% slideshow={"slide_type": "subslide"}
fig = figs.posteriors(xs, curves, P_TRUE, title=f"Exact posterior $p_\\theta(z=1\\mid x)$, p = {P_TRUE}")
slopes = [(c[0][1:] - c[0][:-1]).max().item() for c in curves.values()]
assert slopes[0] > slopes[1] > slopes[2], "the smaller sigma, the sharper the posterior"
assert all(x_half > 0.5 for _, x_half in curves.values()), "the prior favours z = 0: the midpoint moves right of 1/2"

# %% [markdown] slideshow={"slide_type": "notes"}
# The dotted lines sit right of 1/2 because the prior favours z = 0 (p = 0.3): an x needs to be a bit
# larger than 1/2 to be attributed to z = 1 (both asserted). Ask: what happens to the posterior when sigma grows
# very large? Expected answer: the observation says little, the posterior flattens towards the prior p.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The KL divergence
#
# Seed 001 ("Régularisation") measures how different two distributions $P$ and $Q$ are with the
# **Kullback-Leibler divergence**, in nats:
#
# $$\mathrm{KL}(P \,\|\, Q) = \sum_i P(x_i) \log \frac{P(x_i)}{Q(x_i)}
#   \qquad\Big(\text{densities: } \int p(x) \log\frac{p(x)}{q(x)}\,dx\Big) \;=\; \mathbb{E}_P\Big[\log \frac{P}{Q}\Big]. \tag{1}$$
#
# - **Non-negative** (Gibbs' inequality): the log is concave, so by Jensen, $\mathbb{E}[\log Y] \le \log \mathbb{E}[Y]$:
#   $$-\mathrm{KL}(P \,\|\, Q) = \mathbb{E}_P\Big[\log \frac{Q}{P}\Big] \le \log \mathbb{E}_P\Big[\frac{Q}{P}\Big] = \log \sum_i Q(x_i) = 0,$$
#   with equality iff $P = Q$.
# - **Not symmetric**: $\mathrm{KL}(P \,\|\, Q) \ne \mathrm{KL}(Q \,\|\, P)$ in general; it is not a distance.
# - It is infinite as soon as $Q(x_i) = 0$ where $P(x_i) > 0$.

# %% slideshow={"slide_type": "subslide"}
def kl_discrete(P, Q):
    """KL(P || Q) = sum_i P_i log(P_i / Q_i) over the last dimension, with 0 log 0 = 0 (eq. 1)."""
    return (torch.xlogy(P, P) - torch.xlogy(P, Q)).sum(-1)


P_ = torch.softmax(torch.randn(1000, 6, generator=generator), -1)      # 1,000 random distributions on 6 points
Q_ = torch.softmax(torch.randn(1000, 6, generator=generator), -1)
kl_pq, kl_qp = kl_discrete(P_, Q_), kl_discrete(Q_, P_)
assert (kl_pq >= 0).all() and (kl_qp >= 0).all(), "Gibbs: KL >= 0 for 1,000 random pairs"
assert kl_discrete(P_, P_).abs().max() < 1e-12, "KL(P || P) = 0"
assert (kl_pq - kl_qp).abs().max() > 0.1, "KL is not symmetric"
ref = torch.distributions.kl_divergence(torch.distributions.Categorical(P_), torch.distributions.Categorical(Q_))
assert torch.allclose(kl_pq, ref), "same as torch.distributions"
a, b = torch.tensor([0.1, 0.9]), torch.tensor([0.5, 0.5])
print(f"KL(Ber(0.9) || Ber(0.5)) = {kl_discrete(a, b):.3f} nats, KL(Ber(0.5) || Ber(0.9)) = {kl_discrete(b, a):.3f} nats")
assert kl_discrete(b, a) > kl_discrete(a, b), "P = Ber(0.5) puts mass where Q = Ber(0.9) is small"

# %% [markdown] slideshow={"slide_type": "notes"}
# Derive Gibbs on the board: one line of Jensen. Then the asymmetry with the two Bernoullis printed above.
# Ask: which is larger, and why? Expected answer: KL(Ber(0.5) || Ber(0.9)) is larger: P = Ber(0.5) puts half its
# mass on the outcome that Q = Ber(0.9) finds unlikely (0.1), and the log-ratio there is large.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Forward or reverse? Fitting one Gaussian to two modes
#
# Let $p$ be a mixture of two Gaussians and $q = \mathcal{N}(m, s^2)$. Minimise each direction over $(m, s)$
# (numerically: every candidate on a grid, the integral by the trapezoid rule):
# - **forward** $\mathrm{KL}(p \,\|\, q) = \mathbb{E}_p[\log p - \log q]$ is large wherever $p > 0$ and $q \approx 0$:
#   $q$ must **cover** all of $p$'s mass (mode-covering; its minimum is moment matching);
# - **reverse** $\mathrm{KL}(q \,\|\, p) = \mathbb{E}_q[\log q - \log p]$ is large wherever $q > 0$ and $p \approx 0$:
#   $q$ must stay **inside** $p$, so it picks a mode (mode-seeking). The ELBO uses this direction (section 6).

# %% slideshow={"slide_type": "subslide"}
z = torch.linspace(-7, 7, 561)
W_MIX, M_MIX, S_MIX = [0.4, 0.6], [-2.0, 2.0], [0.5, 0.5]
log_p = tm.mixture_log_prob(z, W_MIX, M_MIX, S_MIX)                   # the bimodal target
means, sds = torch.linspace(-4, 4, 81), torch.linspace(0.2, 4, 39)    # candidate (m, s), steps of 0.1
log_q = tm.gaussian_log_prob(z, means[:, None, None], sds[None, :, None])  # every candidate q on the z grid
forward = torch.trapezoid(log_p.exp() * (log_p - log_q), z)           # KL(p || q), shape (81, 39)
reverse = torch.trapezoid(log_q.exp() * (log_q - log_p), z)           # KL(q || p)
best = lambda table: (means[table.argmin() // len(sds)].item(), sds[table.argmin() % len(sds)].item())
fits = {"forward KL(p || q)": best(forward), "reverse KL(q || p)": best(reverse)}

# %% slideshow={"slide_type": "subslide"}
fig = figs.kl_fits(z, log_p.exp(), fits, {"KL(p || q) over (m, s)": forward, "KL(q || p) over (m, s)": reverse},
                           means, sds)

# %% [markdown] slideshow={"slide_type": "subslide"}
# The checks: the forward fit is the moment-matching Gaussian (mean and standard deviation of $p$) and spreads
# over both modes; the reverse fit sits on the heavier mode with that mode's width; the lighter mode is a local
# minimum of the reverse KL (the valley at $m = -2$ in its landscape), a worse one.

# %%
mean_p = sum(w * m for w, m in zip(W_MIX, M_MIX))
sd_p = math.sqrt(sum(w * (s**2 + m**2) for w, m, s in zip(W_MIX, M_MIX, S_MIX)) - mean_p**2)
(m_f, s_f), (m_r, s_r) = fits.values()
print(f"forward: m = {m_f:.2f}, s = {s_f:.2f} (moments of p: {mean_p:.2f}, {sd_p:.2f}); reverse: m = {m_r:.2f}, s = {s_r:.2f}")
assert abs(m_f - mean_p) < 0.051 and abs(s_f - sd_p) < 0.051, "the forward fit matches the moments of p"
assert s_f > 3 * max(S_MIX), "the forward fit covers both modes: it is much wider than either"
assert abs(m_r - M_MIX[1]) < 0.051 and abs(s_r - S_MIX[1]) < 0.051, "the reverse fit sits on the heavier mode"
left = reverse[means < 0]                                             # candidates centred on the left
m_left = means[means < 0][left.argmin() // len(sds)].item()
assert abs(m_left - M_MIX[0]) < 0.051 and left.min() > reverse.min(), "the other mode: a worse local minimum"
assert (forward > -1e-9).all() and (reverse > -1e-9).all(), "Gibbs, again"
assert torch.allclose(tm.kl_on_grid(log_p, log_q[40, 10], z), forward[40, 10]), "same as the course_lib version"

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask before revealing the figure: if q must cover p (forward), where does it go? If q must stay where p is
# (reverse)? Expected answers: in the middle, wide; on one mode, narrow. Then: the VAE minimises KL(q || p(z|x)),
# the reverse direction, so its q under-estimates the posterior's spread and can miss modes.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The ELBO with Jensen's inequality
#
# Take any distribution $q_\phi(z \mid x)$ that is positive where $p(x, z)$ is, multiply and divide:
#
# $$p_\theta(x) = \int \frac{p_\theta(x, z)}{q_\phi(z \mid x)}\, q_\phi(z \mid x)\, dz
#   = \mathbb{E}_{q_\phi(z \mid x)}\Big[\frac{p_\theta(x, z)}{q_\phi(z \mid x)}\Big] \tag{2}$$
#
# The log is concave, so (Jensen, as for Gibbs' inequality) $\log \mathbb{E}[Y] \ge \mathbb{E}[\log Y]$:
#
# $$\log p_\theta(x) \;\ge\; \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x, z) - \log q_\phi(z \mid x)\big]
#   =: \mathcal{L}(\theta, \phi; x) \tag{3}$$

# %% [markdown] slideshow={"slide_type": "fragment"}
# With $\log p_\theta(x, z) = \log p_\theta(x \mid z) + \log p(z)$ the bound splits into the two terms of the
# VAE loss, the second a KL divergence (1):
#
# $$\mathcal{L}(\theta, \phi; x) = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)}_{\text{distance to the prior}}. \tag{4}$$

# %% [markdown] slideshow={"slide_type": "notes"}
# Two lines of algebra: importance-sampling identity, then Jensen. Ask: where does the inequality lose something?
# Expected answer: Jensen is tight only when p(x, z)/q(z|x) is constant in z, that is when q is the posterior;
# the next slide measures exactly how much is lost.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The key equation: how loose is the bound?
#
# Expand the KL between $q_\phi$ and the true posterior, using Bayes $p_\theta(z \mid x) = p_\theta(x \mid z)\,p(z)/p_\theta(x)$:
#
# $$\begin{aligned}
# \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big)
#  &= \mathbb{E}_{q_\phi}\big[\log q_\phi(z \mid x) - \log p_\theta(x \mid z) - \log p(z) + \log p_\theta(x)\big] \\
#  &= -\mathbb{E}_{q_\phi}[\log p_\theta(x \mid z)] + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) + \log p_\theta(x)
#   \;=\; -\mathcal{L}(\theta, \phi; x) + \log p_\theta(x).
# \end{aligned}$$
#
# Rearranged, this is the **key equation** (Doersch 2016; Kingma & Welling 2014, eq. 1):
#
# $$\boxed{\;\log p_\theta(x) = \mathcal{L}(\theta, \phi; x) + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big)\;}$$

# %% [markdown] slideshow={"slide_type": "fragment"}
# - the KL is $\ge 0$ (Gibbs), so $\mathcal{L} \le \log p_\theta(x)$ (Jensen again);
# - the **gap** is exactly how far $q_\phi$ is from the true posterior: the bound is tight iff $q_\phi(z \mid x) = p_\theta(z \mid x)$;
# - maximising $\mathcal{L}$ over $\phi$ pushes $q_\phi$ towards the posterior; over $\theta$, it pushes the evidence up.

# %% [markdown] slideshow={"slide_type": "subslide"}
# > **Erratum (seed 001, slide "Approximation du postérieur").** The slide writes
# > $\mathrm{KL}(q_\phi(z|x) \,|\, p_\theta(z|x)) = -\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] \;\mathbf{-}\; \mathrm{KL}(q_\phi(z|x) \,|\, p_\theta(z)) + \log p_\theta(x)$.
# > The KL to the prior enters with a **plus** sign, as derived above: $-\mathbb{E}_q[\log p(z)] + \mathbb{E}_q[\log q] = +\mathrm{KL}(q \,\|\, p(z))$.
# > With the minus sign the next line of the slide, $= -\mathcal{L} + \log p_\theta(x)$, would not follow from the
# > slide's own definition $\mathcal{L} = \mathbb{E}_q[\log p_\theta(x|z)] - \mathrm{KL}(q \,\|\, p(z))$. The
# > conclusions of the slide (maximise the ELBO) are right. Checked numerically below on the toy model.

# %% slideshow={"slide_type": "subslide"}
x_chk, pi_chk = torch.linspace(-2, 3, 11), 0.8
terms = tm.elbo_terms(x_chk, pi_chk, P_TRUE, SIGMA)                       # recon = E_q[log p(x|z)], kl = KL(q || p(z))
lhs = tm.kl_to_posterior(x_chk, pi_chk, P_TRUE, SIGMA)                     # KL(q || p(z|x))
correct = -terms["recon"] + terms["kl"] + log_evidence(x_chk, P_TRUE, SIGMA)
as_in_seed = -terms["recon"] - terms["kl"] + log_evidence(x_chk, P_TRUE, SIGMA)
assert torch.allclose(lhs, correct, atol=1e-12), "the decomposition with + KL(q || p(z)) holds"
assert ((lhs - as_in_seed) - 2 * terms["kl"]).abs().max() < 1e-12 and (terms["kl"] > 0.01).all(), \
    "the seed's version is off by 2 KL(q || p(z)), which is not 0 here"
print(f"max error: + KL {(lhs - correct).abs().max():.1e} nats, - KL (seed) {(lhs - as_in_seed).abs().max():.2f} nats")

# %% [markdown] slideshow={"slide_type": "notes"}
# Say it plainly: the slide has a sign slip; the boxed equation is right. Ask: how can you check a decomposition
# like this without redoing the algebra? Expected answer: on a model where every term is exact, as here; the
# wrong sign is off by twice the KL to the prior.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The ELBO on the toy model
#
# Take a Bernoulli variational family, $q(z=1 \mid x) = \pi$. Expectations under $q$ are sums of two terms,
# $\mathbb{E}_q[f(z)] = (1-\pi) f(0) + \pi f(1)$, so the three terms of (3) are exact
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


# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: the entropy term is - E_q[log q]; why does it appear in a bound we maximise? Expected answer: without it
# the best q would be a point mass on the single best z (what an autoencoder's encoder does); the entropy
# rewards q for keeping its spread. Section 9 measures what a point mass costs.

# %% [markdown] slideshow={"slide_type": "subslide"}
# Fix an observation $x$ and move $\pi$: the ELBO stays under $\log p_\theta(x)$ and touches it at
# $\pi^\star = p_\theta(z=1 \mid x)$; the gap is the KL to the posterior.

# %% slideshow={"slide_type": "subslide"}
x_obs = 0.8
pis = torch.linspace(0, 1, N_GRID)
bound = elbo(x_obs, pis, P_TRUE, SIGMA)
log_px_obs = log_evidence(torch.tensor(x_obs), P_TRUE, SIGMA).item()
pi_star = posterior_z1(torch.tensor(x_obs), P_TRUE, SIGMA).item()
assert bound.max() <= log_px_obs + 1e-12 and abs(pis[bound.argmax()] - pi_star) <= 1 / (N_GRID - 1)

# %% slideshow={"slide_type": "subslide"}
fig = figs.elbo_curve(pis, bound, log_px_obs, pi_star,
                      title=f"ELBO of q(z=1|x) = π at x = {x_obs} (p = {P_TRUE}, σ = {SIGMA})")

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
assert (pi_grid[0, L.argmax(dim=1)] - r[:, 0]).abs().max() <= 1.0 / (N_GRID - 1), "the ELBO is maximal at pi = p(z=1|x)"
print(f"max |gap - KL| over {gap.numel()} (x, pi) pairs: {(gap - kl).abs().max():.2e} nats")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. What a VAE computes: a Monte Carlo ELBO
#
# A VAE cannot sum over $z$. It draws $z_s \sim q_\phi(z \mid x)$ and averages (usually one sample per $x$ and
# step):
#
# $$\mathcal{L}(\theta, \phi; x) \approx \frac1S \sum_{s=1}^S \big[\log p_\theta(x \mid z_s) + \log p(z_s) - \log q_\phi(z_s \mid x)\big],
#   \qquad z_s \sim q_\phi(z \mid x).$$
#
# It is unbiased: its mean is the closed form, its standard error shrinks like $1/\sqrt{S}$.

# %% slideshow={"slide_type": "subslide"}
pi_q = 0.2   # far from the posterior (0.59), so that the samples disagree
z_s = (torch.rand(N_MC, generator=generator) < pi_q).double()           # z_s ~ Bernoulli(pi)
mc_terms = (log_normal(x_obs, z_s, SIGMA)                                # log p(x | z_s)
            + torch.where(z_s == 1, math.log(P_TRUE), math.log(1 - P_TRUE))  # log p(z_s)
            - torch.where(z_s == 1, math.log(pi_q), math.log(1 - pi_q)))     # log q(z_s | x)
mc, se = mc_terms.mean(), mc_terms.std() / math.sqrt(N_MC)
exact = elbo(x_obs, pi_q, P_TRUE, SIGMA)
print(f"Monte Carlo ELBO = {mc:.4f} ± {se:.4f} (S = {N_MC}); closed form = {exact:.4f} nats")
assert abs(mc - exact) < 4 * se, "the Monte Carlo ELBO should agree with the closed form within 4 standard errors"
mc_all, se_all = tm.elbo_mc(x_grid[:, 0], pi_q, P_TRUE, SIGMA, n_samples=N_MC, generator=generator)  # many x at once
z_scores = (mc_all - tm.elbo(x_grid[:, 0], pi_q, P_TRUE, SIGMA)) / se_all
assert z_scores.abs().max() < 5, f"largest |z-score| over {len(z_scores)} x: {z_scores.abs().max():.2f}"

# %% slideshow={"slide_type": "subslide"}
fig = figs.mc_running(mc_terms, exact.item(), title=f"Monte Carlo ELBO at x = {x_obs}, π = {pi_q}")

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: the estimator is unbiased for the ELBO; is exp(estimate) unbiased for exp(ELBO)? Expected answer: no
# (Jensen once more); unbiasedness does not survive a non-linear function. Lesson 5's importance-weighted bound
# builds on the same identity (2) with several samples.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Maximising the ELBO fits the model
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

# %% [markdown] slideshow={"slide_type": "notes"}
# The target of every fit below is this p_mle, not the true 0.3: with finite data the best we can do is the
# maximum of the likelihood. Ask: what would the average ELBO be at p_mle with the exact posterior as q?
# Expected answer: the average log-likelihood itself (the gap is 0).

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
# A VAE does not store one $\pi_i$ per example: an **encoder** maps $x$ to $q_\phi(z=1 \mid x)$ (*amortised*
# inference: one network for all $x$). Here $q_\phi(z=1 \mid x) = \mathrm{sigmoid}(w x + b)$, $\phi = (w, b)$,
# fitted jointly with $p$ by gradient ascent on the average ELBO. The exact posterior logit,
# $\log\frac{p}{1-p} + \frac{2x-1}{2\sigma^2}$, is linear in $x$: the encoder can match it.

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


# %% slideshow={"slide_type": "subslide"}
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
curves = {r"average $\log p_\theta(x_i)$": avg_log_lik}
curves.update({f"bound of EM step {t} (touches at {em_path[t]:.2f})": em_bounds[t] for t in range(3)})
curves[r"ELBO, best shared $\pi$"] = shared_profile
paths = {"EM (best q per point)": em_path, "amortised encoder, Adam": amortised_path, r"shared $\pi$, Adam": shared_path}
for t in range(3):
    i_t = (ps - em_path[t]).abs().argmin()
    assert (em_bounds[t] <= avg_log_lik + 1e-12).all() and abs(em_bounds[t][i_t] - avg_log_lik[i_t]) < 0.01, \
        "each EM bound lies under the log-likelihood and touches it at the current p"
    assert abs(ps[em_bounds[t].argmax()] - em_path[t + 1]) <= 1.0 / (N_P - 1), "its maximum is the next EM iterate"

# %% slideshow={"slide_type": "subslide"}
fig = figs.objectives(ps, curves, p_mle, paths, P_TRUE)

# %% [markdown] slideshow={"slide_type": "notes"}
# Left: each dashed curve is the ELBO with q frozen at the posterior of the current p: it lies under the
# log-likelihood and touches it at the current p, and its maximum is the next EM iterate (all asserted). The
# shared-pi bound (purple) is far below and increases towards p = 0: the restricted family pulls the model to a
# degenerate solution where its poor q is exact. The same mechanism, milder, exists in VAEs with a diagonal
# Gaussian q. Ask: why does the amortised encoder not suffer from it? Expected answer: its family contains the
# exact posterior for every p.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Naming the gaps (Cremer, Li & Duvenaud, 2018)
#
# For a model $\theta$ and a data point $x$, with $\mathcal{Q}$ the variational family and
# $q^\star = \arg\max_{q \in \mathcal{Q}} \mathcal{L}(q)$ the best member *for this $x$*:
#
# $$\underbrace{\log p_\theta(x) - \mathcal{L}(q_\phi)}_{\text{inference gap} \;=\; \mathrm{KL}(q_\phi \,\|\, p_\theta(z|x))}
#  = \underbrace{\log p_\theta(x) - \mathcal{L}(q^\star)}_{\text{approximation gap: the family}}
#  + \underbrace{\mathcal{L}(q^\star) - \mathcal{L}(q_\phi)}_{\text{amortization gap: the encoder}}.$$
#
# On the toy model at $\hat p$, averaged over the data: the Bernoulli family contains the posterior (no
# approximation gap); a family of **point masses**, the deterministic code of lesson 1's autoencoder, does not;
# the encoder of (b) has no amortization gap, the shared $\pi$ of (c) a large one. (Lesson 5 measures both gaps
# of a VAE on MNIST.)

# %% slideshow={"slide_type": "subslide"}
lp = log_evidence(x_fit, p_mle, SIGMA).mean()
best_bern = elbo(x_fit, posterior_z1(x_fit, p_mle, SIGMA), p_mle, SIGMA).mean()    # q* per x: the posterior
best_point = log_joint(x_fit, p_mle, SIGMA).max(-1).values.mean()               # q* = a point mass on the best z
with torch.no_grad():
    q_linear = torch.sigmoid(w * x_fit + b)                                      # the encoder of (b)
    q_shared = pi_g[elbo(x_fit[None, :], pi_g, p_mle, SIGMA).mean(1).argmax()]   # the best shared pi at p_mle
gaps = {"linear encoder (b)": q_linear, "shared pi (c)": q_shared.expand_as(x_fit)}

# %% slideshow={"slide_type": "subslide"}
for name, q in gaps.items():
    total = kl_to_posterior(x_fit, q, p_mle, SIGMA).mean()                       # inference gap, as a KL
    approx, amort = lp - best_bern, best_bern - elbo(x_fit, q, p_mle, SIGMA).mean()
    gaps[name] = (total.item(), approx.item(), amort.item())
    print(f"{name:>19}: inference gap {total:.4f} = approximation {approx:.4f} + amortization {amort:.4f} nats")
    assert abs(total - (approx + amort)) < 1e-9, "the two gaps add up to KL(q || posterior)"
print(f"point masses: approximation gap {lp - best_point:.4f} nats")
assert abs(lp - best_bern) < 1e-12 and lp - best_point > 0.05, "Bernoulli q: no approximation gap; point masses: one"
assert gaps["linear encoder (b)"][2] < 1e-3 < 0.05 < gaps["shared pi (c)"][2], "amortization gap: (b) ~0, (c) large"

# %% [markdown] slideshow={"slide_type": "notes"}
# The point-mass line connects back to lesson 1: an autoencoder's encoder is a point-mass q, and its "ELBO" has
# no entropy term; the approximation gap is what that costs here. Ask: in a VAE with a diagonal Gaussian q, which
# gap would you expect to dominate? Expected answer: it depends; Cremer et al. find the amortization gap often
# dominates on MNIST, which is why lesson 5 optimises q per test point.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Try it
#
# Move $p$, $\sigma$, the observation $x$ and the variational $\pi$: the ELBO and the KL to the posterior
# always add up to $\log p_\theta(x)$, and the KL vanishes at $\pi = p_\theta(z=1 \mid x)$.

# %% slideshow={"slide_type": "subslide"}
def key_equation(p=0.3, sigma=0.5, pi=0.5, x=0.8, show=True):
    """The key equation for one (p, sigma, pi, x): values in nats, and a bar chart."""
    values = {"log p(x)": log_evidence(torch.tensor(x), p, sigma).item(),
              "ELBO": elbo(x, pi, p, sigma).item(),
              "KL(q || p(z|x))": kl_to_posterior(torch.tensor(x), pi, p, sigma).item(),
              "E_q log p(x|z)": tm.elbo_terms(x, pi, p, sigma)["recon"].item(),
              "KL(q || p(z))": tm.kl_bernoulli(pi, p).item(),
              "p(z=1|x)": posterior_z1(torch.tensor(x), p, sigma).item()}
    if show:
        figs.key_equation_bars(values)
    return values


# %% slideshow={"slide_type": "subslide"}
v = key_equation(p=0.3, sigma=0.5, pi=0.5, x=0.8)
assert abs(v["log p(x)"] - (v["ELBO"] + v["KL(q || p(z|x))"])) < 1e-10
assert abs(v["ELBO"] - (v["E_q log p(x|z)"] - v["KL(q || p(z))"])) < 1e-10
assert key_equation(pi=v["p(z=1|x)"], show=False)["KL(q || p(z|x))"] < 1e-12, "at pi = p(z=1|x) the gap closes"

# %% slideshow={"slide_type": "subslide"}
from course_lib.widgets import sliders

# one slider per argument: (min, max, step, start)
sliders(key_equation, p=(0.01, 0.99, 0.01, 0.3), sigma=(0.1, 2.0, 0.05, 0.5), pi=(0.0, 1.0, 0.01, 0.5),
        x=(-3.0, 4.0, 0.05, 0.8))

# %% [markdown] slideshow={"slide_type": "notes"}
# Let a student drive: set pi to the printed p(z=1|x) and watch the KL bar vanish; then move x far right and
# ask why the KL to the prior grows when pi stays at 0.5 while p is small. Expected answer: q keeps weight on
# z = 1 that the prior finds unlikely.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. The evidence $p_\theta(x) = \int p_\theta(x \mid z)\,p(z)\,dz$ and the posterior are intractable in a VAE; on the toy model they are a two-term sum and Bayes' rule.
# 2. $\mathrm{KL}(P\,\|\,Q) = \mathbb{E}_P[\log P/Q] \ge 0$, not symmetric: fitting $q$ by $\mathrm{KL}(p\,\|\,q)$ covers the modes, by $\mathrm{KL}(q\,\|\,p)$ picks one.
# 3. Jensen gives $\log p_\theta(x) \ge \mathcal{L} = \mathbb{E}_{q_\phi}[\log p_\theta(x \mid z)] - \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))$, estimated without bias by sampling $z \sim q_\phi$.
# 4. Key equation: $\log p_\theta(x) = \mathcal{L} + \mathrm{KL}(q_\phi(z \mid x)\,\|\,p_\theta(z \mid x))$ (seed 001 has a sign slip; checked to 1e-12 here).
# 5. Maximising the ELBO is maximum likelihood when $q$ can reach the posterior; otherwise the approximation and amortization gaps bias $\theta$.

# %% [markdown] slideshow={"slide_type": "notes"}
# One sentence per line. Ask: which of the two gaps does a bigger encoder network reduce, and which a richer q
# family? Expected answer: the amortization gap; the approximation gap.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **References**
# - D. P. Kingma, M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014 (section 2.2, eq. 1-3: the bound and its two forms).
# - C. Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908, 2016 (section 2.1, the key equation).
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides, 2021 ("Régularisation": the KL; "Inférence variationnelle": the Bernoulli toy model and the ELBO).
# - C. Cremer, X. Li, D. Duvenaud, *Inference Suboptimality in Variational Autoencoders*, ICML 2018 (approximation and amortization gaps).
# - C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, section 10.1.2 and Fig. 10.3 (forward vs reverse KL on a bimodal target).
# - R. M. Neal, G. E. Hinton, *A view of the EM algorithm that justifies incremental, sparse, and other variants*, 1998 (EM as coordinate ascent on the ELBO).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What we got** (asserted above): the forward KL fit is the moment-matching Gaussian, the reverse fit sits on
# the heavier mode; EM and the amortised encoder land on the maximum-likelihood $\hat p$; a shared $\pi$ drives
# $p$ towards 0; the printed gaps:

# %%
print("forward fit (m, s) = ({:.1f}, {:.1f}), reverse fit ({:.1f}, {:.1f});".format(*fits["forward KL(p || q)"],
                                                                            *fits["reverse KL(q || p)"]),
      f"MLE p = {p_mle:.4f}, "
      f"EM {p_em:.4f}, amortised {p_amortised:.4f}, shared pi {p_shared:.4f}")
print({k: f"amortization gap {g[2]:.4f} nats" for k, g in gaps.items()}, f"point-mass approximation gap {lp - best_point:.4f}")
