# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 5: evaluating a VAE
#
# **What you will learn**
# - why "how likely is the test data?" and "do the samples look real?" are two different questions;
# - the **importance-weighted bound** (IWAE) that turns an encoder into a likelihood estimator, tighter than
#   the ELBO and exact in the limit; how to check an estimator on a model whose likelihood is known;
# - the **Fréchet distance** (FID) and the **Inception Score** (IS), computed with a digit classifier, and
#   what neither can see.
#
# **You need** lesson 2 (the ELBO and its gap), lessons 3-4 (the Gaussian VAE, `fit`).
#
# **Run time** quick mode (`COURSE_QUICK=1`, 8x8 digits, CPU): about 30 s. Full mode (MNIST, GPU): about
# 10 minutes, mostly training the 784-200-200-50 VAE (once: `fit` saves a checkpoint).
#
# **Units** log-likelihoods, ELBOs and NLLs are in **nats per example**: summed over pixels and latent
# dimensions, averaged over the test set (on MNIST: nats per image, the unit of Burda et al. 2015).

# %% slideshow={"slide_type": "skip"}
import math
import time

import matplotlib.pyplot as plt
import torch

from course_lib import evaluate as ev
from course_lib.classifier import get_classifier
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.models import VAE
from course_lib.models.linear_gaussian import LinearGaussian
from course_lib.plots import show_images
from course_lib.runtime import describe, get_device, pick, seed_everything
from course_lib.train import fit

generator = seed_everything(0)
device = get_device()
# Okabe-Ito palette (colour-blind safe)
C = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
     "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode only shrinks the data set, the model's latent size, the training time and the number of samples:

# %%
DATASET = pick("digits", "mnist")        # 8x8 scikit-learn digits (quick) or MNIST 28x28 (full)
LATENT = pick(16, 50)                    # full: Burda et al.'s 784-200-200-50 VAE
HIDDEN = (200, 200)
EPOCHS = pick(60, 500)                   # full: meant to fit in 10 minutes on one GPU
KS = pick([1, 10, 100, 1000], [1, 10, 100, 1000, 5000])   # numbers of importance samples
N_LG = pick(400, 2000)                   # examples of the linear-Gaussian model
TEMPERATURES = pick([0.0, 0.5, 1.0, 1.5, 2.5], [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Two questions
#
# A generative model can be judged by
#
# 1. **likelihood**: how much probability it gives to held-out data, $-\log p_\theta(x)$ in nats per image.
#    It rewards covering every test example (a model that forgets a digit style pays for it), and it is
#    comparable across models of the same data;
# 2. **sample quality**: whether $x \sim p_\theta(x)$ look like data. Judged by people, or by statistics of a
#    classifier's features (FID) and predictions (IS).
#
# They can disagree (Theis et al. 2016): a model that adds a little noise to perfect samples keeps a good
# likelihood and looks bad; a model that copies its training set looks perfect and has no likelihood at
# all on new data. VAEs typically have good likelihoods and blurry samples. So a paper reports both.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Likelihood: the ELBO is only a bound
#
# A VAE maximises the ELBO (lesson 2), whose gap is the encoder's error:
#
# $$\log p_\theta(x) = \underbrace{\mathbb{E}_{q_\phi(z\mid x)}\Big[\log \frac{p_\theta(x \mid z)\,p(z)}{q_\phi(z \mid x)}\Big]}_{\mathcal{L}(\theta, \phi; x)\ \text{(ELBO)}}
#  + \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big).$$
#
# Reporting $-\mathcal{L}$ as the NLL overstates it by that KL. We need $p_\theta(x)$ itself:
#
# $$p_\theta(x) = \int p_\theta(x \mid z)\,p(z)\,dz = \mathbb{E}_{q_\phi(z \mid x)}\Big[\underbrace{\frac{p_\theta(x \mid z)\,p(z)}{q_\phi(z \mid x)}}_{w(z)}\Big]:$$
#
# an average of **importance weights** $w$, with the encoder as proposal: it samples where the posterior is.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The importance-weighted bound (Burda et al. 2015, eq. 9)
#
# Average $k$ weights, then take the log:
#
# $$\mathcal{L}_k(x) = \mathbb{E}_{z_1,\dots,z_k \sim q_\phi(z \mid x)}\Big[\log \frac{1}{k}\sum_{i=1}^{k} \frac{p_\theta(x \mid z_i)\,p(z_i)}{q_\phi(z_i \mid x)}\Big].$$
#
# - $\mathcal{L}_1$ is the ELBO; by Jensen $\mathcal{L}_k \le \log p_\theta(x)$ for every $k$;
# - $\mathcal{L}_k \le \mathcal{L}_{k+1}$ and $\mathcal{L}_k \to \log p_\theta(x)$ as $k \to \infty$ (their Theorem 1);
# - if $q_\phi$ is the true posterior, every $w_i = p_\theta(x)$: exact for any $k$.
#
# The estimate $-\log\frac1k\sum_i w_i$ is the **IWAE NLL** (in expectation an upper bound on $-\log p_\theta(x)$).
# In code the weights are $e^{-90}$ on MNIST: we work with $\log w_i$ and `logsumexp`.

# %%
def iwae_bound(log_px_given_z, log_pz, log_qz):
    """log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), from (k, batch) log-densities -> (batch,)."""
    log_w = log_px_given_z + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


lw = torch.randn(50, 4, dtype=torch.float64) - 90.0          # log-weights of the size we meet on MNIST
zero = torch.zeros_like(lw)
assert torch.allclose(iwae_bound(lw, zero, zero), ev.iwae_bound(lw, zero, zero)), "same as course_lib"
assert torch.isfinite(iwae_bound(lw - 700, zero, zero)).all(), "finite where exp(log w) underflows to 0"
assert (iwae_bound(lw, zero, zero) >= lw.mean(0)).all(), "log of the mean >= mean of the logs (Jensen)"

# %% [markdown] slideshow={"slide_type": "subslide"}
# `course_lib.evaluate.iwae_nll(model, data, k)` does this for any model of the course (`encode`, `decode`,
# `prior`): it draws the $k$ codes in chunks, flattens $k \times$ batch into one batch for the decoder, and
# returns $-\mathcal{L}_k$ averaged over `data`. The lines that matter:
#
# ```python
# q = model.encode(x, y)                         # q_phi(z|x)
# z = q.sample((k,))                             # (k, batch, d)
# log_w = (model.decode(z.flatten(0, 1), y_k).log_prob(x_k).view(k, -1)   # log p(x|z_i)
#          + model.prior.log_prob(z) - q.log_prob(z))                     # + log p(z_i) - log q(z_i|x)
# nll = -(torch.logsumexp(log_w, 0) - math.log(k))
# ```

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Check the estimator where the answer is known
#
# A **linear-Gaussian** latent model (probabilistic PCA) has a closed-form likelihood and posterior:
#
# $$p(z) = \mathcal{N}(0, I), \quad p_\theta(x \mid z) = \mathcal{N}(Wz + b, \sigma^2 I)
# \;\Rightarrow\; p_\theta(x) = \mathcal{N}(x;\, b,\, WW^\top + \sigma^2 I),$$
# $$p_\theta(z \mid x) = \mathcal{N}\big(M^{-1}W^\top(x-b)/\sigma^2,\; M^{-1}\big), \qquad M = I + W^\top W/\sigma^2.$$
#
# `LinearGaussian` has the same API as the VAE. Its encoder returns either the exact posterior or the
# **mean-field** one (diagonal covariance, like a VAE's): the posterior here is correlated, so the diagonal
# $q$ cannot match it and the ELBO has a gap.

# %%
g = torch.Generator().manual_seed(0)
u, v = torch.randn(2, 5, generator=g, dtype=torch.float64)
v = (v - (v @ u) / (u @ u) * u) * u.norm() / (v - (v @ u) / (u @ u) * u).norm()   # v orthogonal to u, same norm
W = torch.stack([u, 0.6 * u + 0.8 * v], dim=1)        # two columns at an angle of arccos(0.6): correlated posterior
b = torch.randn(5, generator=g, dtype=torch.float64)
lg_exact = LinearGaussian(W, b, sigma=0.5, posterior="exact")
lg_meanfield = LinearGaussian(W, b, sigma=0.5, posterior="mean_field")
x_lg = lg_exact.sample(N_LG, generator=g)
exact_nll = -lg_exact.log_marginal(x_lg)                # -log N(x; b, W W^T + sigma^2 I), per example
print(f"exact NLL {exact_nll.mean():.4f} nats; ELBO gap of the mean-field q "
      f"{(lg_exact.log_marginal(x_lg) - lg_meanfield.exact_elbo(x_lg)).mean():.4f} nats")

# %% slideshow={"slide_type": "subslide"}
torch.manual_seed(1)
lg_rows = {}
for name, model in [("exact q", lg_exact), ("mean-field q", lg_meanfield)]:
    lg_rows[name] = [ev.iwae_nll(model, x_lg, k=k, reduction="none") for k in KS]

# exact posterior: every weight is p(x), so every k gives the exact value (to round-off)
for k, per in zip(KS, lg_rows["exact q"]):
    assert torch.allclose(per, exact_nll, atol=1e-9), f"k={k}: with the true posterior IWAE is exact"
# mean-field: k = 1 is the ELBO (closed form here), and the bound tightens towards the exact value
gap = [float((per - exact_nll).mean()) for per in lg_rows["mean-field q"]]
sem = [float((per - exact_nll).std() / math.sqrt(N_LG)) for per in lg_rows["mean-field q"]]
elbo_gap = float((lg_exact.log_marginal(x_lg) - lg_meanfield.exact_elbo(x_lg)).mean())
assert abs(gap[0] - elbo_gap) < 4 * sem[0], "IWAE with k = 1 estimates the ELBO"
assert all(g1 < g0 + 3 * s for g0, g1, s in zip(gap, gap[1:], sem)), "the bound tightens with k (up to noise)"
assert all(gk > -3 * s for gk, s in zip(gap, sem)), "never below the exact NLL (up to noise)"
assert gap[-1] < 0.1 * elbo_gap, "with enough samples the bound closes 90 % of the ELBO's gap"
print("k:", KS)
print("NLL estimate - exact NLL (mean-field q):", [f"{x:.4f}" for x in gap])

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.errorbar(KS, gap, yerr=sem, marker="o", capsize=3, color=C["blue"], label="mean-field q")
ax.plot(KS, [float((per - exact_nll).mean()) for per in lg_rows["exact q"]], "s--", color=C["green"],
        label="exact posterior q")
ax.axhline(elbo_gap, color=C["orange"], ls=":", label="closed-form ELBO gap = KL(q || p(z|x))")
ax.axhline(0, color=C["black"], lw=0.8)
ax.set(xscale="log", title="Linear-Gaussian model: IWAE NLL minus the exact NLL",
       xlabel="number of importance samples k", ylabel="nats per example")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# The error bars are standard errors over the examples. The k = 1 point sits on the closed-form ELBO gap;
# with the exact posterior the estimate has zero variance. This is the test to run on any new likelihood
# estimator before trusting it on a VAE, where no exact value exists.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A VAE on binarized digits
#
# Bernoulli decoder, trained with the ELBO on **dynamically binarized** images (a fresh draw
# $x \sim \mathrm{Bernoulli}(\text{grey levels})$ each epoch, `binarize_dynamic` as `fit`'s transform, as in
# Burda et al.); the test set is binarized once with a fixed seed so that every $k$ sees the same images.
# Adam, learning rate $10^{-3}$, batches of 100.

# %%
train = lesson_dataset(DATASET, "train")
test = lesson_dataset(DATASET, "test")
test_bin = test.map(binarize_static)                # one fixed binarization of the test set

torch.manual_seed(0)
vae = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="bernoulli")
history = fit(vae, train, test_bin, epochs=EPOCHS, batch_size=100, lr=1e-3, transform=binarize_dynamic,
              checkpoint=f"lesson05-vae-{train.name}")
print(history.summary())

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### NLL against the number of samples

# %%
torch.manual_seed(2)
t0 = time.perf_counter()
per_k = {k: ev.iwae_nll(vae, test_bin, k=k, reduction="none") for k in KS}
neg_elbo = -ev.elbo(vae, test_bin, k=10, reduction="none")        # the ELBO, averaged over 10 samples
eval_seconds = time.perf_counter() - t0
n_test = len(test_bin)
nll = {k: float(v.mean()) for k, v in per_k.items()}
nll_sem = {k: float(v.std() / math.sqrt(n_test)) for k, v in per_k.items()}
for k in KS:
    print(f"k = {k:5d}: IWAE NLL = {nll[k]:.2f} ± {nll_sem[k]:.2f} nats")
print(f"-ELBO = {neg_elbo.mean():.2f} nats ({eval_seconds:.1f} s of evaluation)")

# paired comparisons (same images): the differences are far more precise than the bars below
for k0, k1 in zip(KS, KS[1:]):
    diff = per_k[k0] - per_k[k1]
    assert diff.mean() > -3 * diff.std() / math.sqrt(n_test), f"NLL(k={k1}) should not exceed NLL(k={k0})"
k_max = KS[-1]
diff = neg_elbo - per_k[k_max]
assert diff.mean() > 3 * diff.std() / math.sqrt(n_test), "the IWAE NLL lies below -ELBO"

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.errorbar(KS, [nll[k] for k in KS], yerr=[nll_sem[k] for k in KS], marker="o", capsize=3,
            color=C["blue"], label="IWAE NLL estimate")
ax.axhline(float(neg_elbo.mean()), color=C["orange"], ls=":", label="-ELBO")
ax.set(xscale="log", title=f"VAE on binarized {train.name}: NLL estimate vs k",
       xlabel="number of importance samples k", ylabel="nats per image")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Error bars: standard error over test images (they vary by tens of nats from image to image). The
# comparison between two k is paired (same images), which is why the assertions above can detect
# differences smaller than the bars. The drop from the ELBO to the IWAE value is a lower bound on the
# average KL between the encoder and the true posterior.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### What we reached, and the GPU target
#
# Full mode (MNIST, one GPU): the 784-200-200-50 VAE should reach an IWAE NLL ($k = 5000$) **at or below
# 89 nats** within 10 minutes of training. Burda et al. (2015, Table 1) report 86.76 nats for this VAE with
# $k = 5000$ after 3,280 epochs. In quick mode the data are 8x8 digits (64 pixels): the numbers are not
# comparable with MNIST's and no target applies.

# %%
print(f"data: {train.name} ({len(train)} training, {n_test} test images of shape {tuple(train.shape)})")
print(f"IWAE NLL (k = {k_max}): {nll[k_max]:.2f} ± {nll_sem[k_max]:.2f} nats per image; "
      f"-ELBO {neg_elbo.mean():.2f}")
print(f"training: {history.epochs} epochs in {history.seconds / 60:.1f} min on {history.device}"
      + (" (loaded from checkpoint)" if history.loaded else ""))
if train.name == "mnist":
    print("target (NLL <= 89 nats, training <= 10 min):",
          "met" if nll[k_max] <= 89 and history.seconds <= 600 else "NOT met")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Sample quality: the Fréchet distance (FID)
#
# Map real and generated images to features $f(x)$, fit a Gaussian to each set, and compare the Gaussians
# with the Fréchet (2-Wasserstein) distance (seed slides, "Fréchet Inception Distance"; Heusel et al. 2017):
#
# $$\mathrm{FID} = \|\mu_r - \mu_g\|^2 + \mathrm{Tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2}\big).$$
#
# Low FID: close distributions of features. $\Sigma_r\Sigma_g$ is not symmetric; its square root's trace is
# the sum of $\sqrt{\lambda_i}$ of the symmetric PSD matrix $\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2}$, computed
# with two `eigh`, in float64:

# %%
def sqrt_psd(S):
    """Symmetric square root of a PSD matrix."""
    vals, vecs = torch.linalg.eigh(S)
    return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1, S1, mu2, S2):
    r1 = sqrt_psd(S1)
    tr_sqrt = torch.linalg.eigvalsh(r1 @ S2 @ r1).clamp_min(0).sqrt().sum()     # Tr (S1 S2)^{1/2}
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(S1 + S2) - 2 * tr_sqrt)


# two known Gaussians with diagonal covariances: FID = ||mu1 - mu2||^2 + sum_j (sqrt(a_j) - sqrt(b_j))^2
mu1, mu2 = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
a, b_ = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
assert abs(frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b_)) - (5.0 + 1.0 + 1.0)) < 1e-10
A = torch.randn(3, 3, dtype=torch.float64)
S = A @ A.T
assert abs(frechet_distance(mu1, S, mu2, torch.eye(3, dtype=torch.float64))
           - ev.frechet_distance(mu1, S, mu2, torch.eye(3))) < 1e-9, "same as course_lib"
assert abs(frechet_distance(mu2, S, mu2, S)) < 1e-9, "a Gaussian is at distance 0 from itself"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Which features? Ours, not Inception's
#
# The published FID (and IS) use **Inception-v3** trained on ImageNet (2048 pooled features, 1000 classes).
# We cannot download those weights here, and they are the wrong tool for 8x8 or 28x28 handwritten digits.
# So `course_lib.classifier.get_classifier` trains a small CNN on the digits (once: a `fit` checkpoint) and
# we use its penultimate layer (64 features) for the FID and its softmax for the IS. Our scores are
# **FID-digits / IS-digits**: they rank models of the same data, they are **not** comparable with published
# numbers.

# %%
classifier = get_classifier(train.name, device=device)
acc = classifier.accuracy(test)
print(f"digit classifier: test accuracy {acc:.3f}")
assert acc > 0.95, "the feature extractor should classify real digits well"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The Inception Score
#
# A good generator's images should each be classified confidently ($p(y \mid x)$ peaked) and cover the
# classes evenly ($p(y) = \mathbb{E}_x\, p(y \mid x)$ flat) (seed slides; Salimans et al. 2016):
#
# $$\mathrm{IS} = \exp\Big(\mathbb{E}_{x \sim p_\theta}\, \mathrm{KL}\big(p(y \mid x) \,\|\, p(y)\big)\Big) \in [1, \text{number of classes}].$$

# %%
def inception_score(probs):
    """exp(E_x KL(p(y|x) || p(y))) from an N x C matrix of class probabilities."""
    p_y = probs.mean(0, keepdim=True)
    kl = (torch.xlogy(probs, probs) - torch.xlogy(probs, p_y)).sum(1)    # 0 log 0 = 0
    return float(torch.exp(kl.mean()))


confident_balanced = torch.eye(10).repeat(5, 1)                  # one-hot, every class 5 times
constant = torch.softmax(torch.randn(10), 0).expand(50, 10)      # the same prediction for every image
assert abs(inception_score(confident_balanced) - 10) < 1e-5, "confident and balanced: IS = number of classes"
assert abs(inception_score(constant) - 1) < 1e-6, "constant predictions: IS = 1"
mixed = torch.softmax(2 * torch.randn(100, 10), 1)
assert abs(inception_score(mixed) - ev.inception_score_from_probs(mixed)) < 1e-5, "same as course_lib"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Real images, reconstructions, samples, noise
#
# Reference: one half of the test images. Compared with the same number of: the other half (the floor
# of the FID for this sample size), the VAE's reconstructions of that half, samples from the prior
# (decoder means at $z \sim p(z)$), and uniform noise.

# %%
order = torch.randperm(n_test, generator=torch.Generator().manual_seed(0)).to(test.device)
half = n_test // 2
reference, held_out = test.images[order[:half]], test.images[order[half:2 * half]]
with torch.no_grad():
    sets = {
        "real (other half)": held_out,
        "reconstructions": vae.reconstruct(test_bin.images[order[half:2 * half]]),
        "VAE samples": vae.sample(half, generator=torch.Generator().manual_seed(1)),
        "uniform noise": torch.rand(held_out.shape, generator=torch.Generator().manual_seed(2)).to(test.device),
    }
scores = {name: (ev.fid(reference, x, features=classifier), ev.inception_score(x, classifier=classifier))
          for name, x in sets.items()}
print(f"{'set':<20}{'FID-digits':>12}{'IS-digits':>11}")
for name, (f, s) in scores.items():
    print(f"{name:<20}{f:>12.2f}{s:>11.2f}")
fid_of = {name: f for name, (f, _) in scores.items()}
assert fid_of["real (other half)"] < fid_of["VAE samples"] < fid_of["uniform noise"]
assert ev.fid(reference, reference, features=classifier) < 1e-6, "FID of a set against itself is 0"

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 6, figsize=(15, 3.2), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6, 1.6]})
for ax, (name, x) in zip(axes, sets.items()):
    show_images(x[:36], nrow=6, title=name, ax=ax)
names = list(scores)
colors = [C["green"], C["sky"], C["blue"], C["vermillion"]]
axes[4].bar(range(4), [scores[n][0] for n in names], color=colors)
axes[4].set(title="FID-digits (lower is better)", ylabel="FID", xticks=range(4))
axes[5].bar(range(4), [scores[n][1] for n in names], color=colors)
axes[5].set(title="IS-digits (higher is better)", ylabel="IS", xticks=range(4))
for ax in axes[4:]:
    ax.set_xticklabels(["real", "recon", "samples", "noise"], rotation=30)
    ax.set_xlabel("image set")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Reconstructions use the encoder's information about a real image and land between real images and
# samples. Prior samples are blurrier and sometimes between digits: that is where a VAE's FID is lost. The
# FID of real against real is not 0: it is the bias of the estimator at this sample size (see limits).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Try it: the sampling temperature
#
# Sample $z \sim \mathcal{N}(0, T^2 I)$ instead of $p(z)$. At $T = 0$ every sample is the same image: IS = 1
# and a large FID (no diversity). Raising $T$ adds diversity and, for a VAE whose prior samples are blurry,
# sharper strokes; too large a $T$ leaves the region the decoder was trained on. Find where each score is best.

# %%
def temperature_scores(T=1.0, n=None, show=True):
    """FID-digits and IS-digits of n decoder means at z ~ N(0, T^2 I); draws a few samples."""
    n = n or half
    z = T * torch.randn(n, LATENT, generator=torch.Generator().manual_seed(3)).to(device)
    with torch.no_grad():
        x = vae.decode(z).mean
    result = {"T": T, "FID": ev.fid(reference, x, features=classifier),
              "IS": ev.inception_score(x, classifier=classifier)}
    if show:
        ax = show_images(x[:32], nrow=16, title=f"T = {T:.2f}: FID-digits {result['FID']:.1f}, IS-digits {result['IS']:.2f}")
        ax.figure.set_size_inches(10, 1.8)
        plt.show()
    return result


curve = [temperature_scores(T, show=False) for T in TEMPERATURES]
print("  ".join(f"T={r['T']:.2f}: FID {r['FID']:.1f}, IS {r['IS']:.2f}" for r in curve))
assert abs(curve[0]["IS"] - 1) < 1e-4, "T = 0: one image repeated, IS = 1"
at_1 = next(r for r in curve if r["T"] == 1.0)
assert curve[0]["FID"] > at_1["FID"], "T = 0 (no diversity at all) is far from the data in FID"
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot([r["T"] for r in curve], [r["FID"] for r in curve], "o-", color=C["blue"], label="FID-digits")
ax.set(title="Sampling temperature", xlabel="temperature T", ylabel="FID-digits")
ax2 = ax.twinx()
ax2.plot([r["T"] for r in curve], [r["IS"] for r in curve], "s--", color=C["vermillion"], label="IS-digits")
ax2.set_ylabel("IS-digits")
ax.legend(handles=ax.get_lines() + ax2.get_lines(), loc="center right", fontsize=8)
fig.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
temperature_scores(1.0)
try:
    from ipywidgets import FloatSlider, fixed, interact

    interact(temperature_scores, T=FloatSlider(value=1.0, min=0.0, max=3.0, step=0.1, description="T"),
             n=fixed(None), show=fixed(True))
except ImportError:
    print("ipywidgets is not installed: call temperature_scores(T) with your own values.")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. What FID and IS cannot see
#
# - **Memorization.** Copying training images gives an excellent FID and IS; only a likelihood on *held-out*
#   data (or a nearest-neighbour check) exposes it. Below: the "model" that returns training images.
# - **FID** compares two Gaussians: it ignores everything beyond the first two moments of the features, it is
#   **biased upwards for small samples** (real vs real is not 0 above), so compare sets of the same size;
#   and it depends entirely on the feature network (Inception on ImageNet in papers, our CNN here).
# - **IS** never looks at real data: one perfect image per class scores the maximum (mode collapse *within*
#   a class is invisible); it only makes sense for data whose classes the classifier knows.
# - For a **conditional** model $p_\theta(x \mid y)$ (seed slides), also check that a classifier recovers the
#   conditioning label $y$ from the samples.

# %%
memorized = train.images[torch.randperm(len(train), generator=torch.Generator().manual_seed(4))[:half].to(train.device)]
fid_memo, is_memo = ev.fid(reference, memorized, features=classifier), ev.inception_score(memorized, classifier=classifier)
one_per_class = torch.stack([test.images[(test.labels == c).nonzero()[0, 0]] for c in range(10)]).repeat(half // 10, 1, 1, 1)
is_collapse = ev.inception_score(one_per_class, classifier=classifier)
print(f"training images as 'samples': FID-digits {fid_memo:.2f}, IS-digits {is_memo:.2f}")
print(f"ten images repeated: IS-digits {is_collapse:.2f} (real data: {scores['real (other half)'][1]:.2f})")
assert fid_memo < fid_of["VAE samples"], "a memorizer beats the VAE on FID"
assert is_collapse > 0.9 * scores["real (other half)"][1], "ten images repeated score as well as real data on IS"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. Likelihood and sample quality are different questions; report both, with the same data and protocol.
# 2. The IWAE bound $\mathcal{L}_k = \mathbb{E}\log\frac1k\sum_i p_\theta(x\mid z_i)p(z_i)/q_\phi(z_i\mid x)$ is the ELBO at $k=1$, grows with $k$ and tends to $\log p_\theta(x)$; compute it with `logsumexp`.
# 3. Check estimators on a model with an exact likelihood: on the linear-Gaussian model IWAE is exact with the true posterior and closes the mean-field gap as $k$ grows.
# 4. FID compares Gaussians fitted to classifier features; IS rewards confident, balanced predictions. Ours use a digit CNN: FID-digits, not comparable with papers.
# 5. Neither sees memorization or within-class collapse; a held-out likelihood does see the first.
#
# **References**
# - Y. Burda, R. Grosse, R. Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016 (arXiv:1509.00519, 2015): eq. 9, Theorem 1; Table 1: VAE 784-200-200-50, 86.76 nats with $k=5000$.
# - M. Heusel et al., *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*, NeurIPS 2017 (the FID, eq. 6).
# - T. Salimans et al., *Improved Techniques for Training GANs*, NeurIPS 2016 (the Inception Score, section 4).
# - L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative models*, ICLR 2016.
# - M. E. Tipping, C. M. Bishop, *Probabilistic principal component analysis*, JRSS B, 1999 (the linear-Gaussian model).
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides (section "Evaluation des VAE").
#
# **What we got** (printed above): the IWAE NLL for $k$ up to the largest value, below $-$ELBO; the training
# time and hardware; FID-digits ordered real < reconstructions, samples < noise.
