# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 5: evaluating a VAE
#
# **What you will learn**
# - why "how likely is the test data?" and "do the samples look real?" are two different questions;
# - the **importance-weighted bound** (IWAE) that turns an encoder into a likelihood estimator, and how to
#   check an estimator on a model whose likelihood is known;
# - where the ELBO's gap comes from: the **approximation gap** and the **amortization gap**, measured;
# - the **Fréchet distance** (FID) and the **Inception Score** (IS) with a digit classifier: how noisy an FID
#   is, why it is biased for small samples, why it likes a "temperature" above 1, and what neither can see;
# - two newer scores: the **kernel distance** (KID), unbiased where the FID is not, and **precision and recall**,
#   which split "realistic" from "diverse".
#
# **You need** lesson 2 (the ELBO and its gap), lesson 3 (the Gaussian VAE, true samples vs decoder means),
# lesson 4 (`fit`, rate and distortion).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Run time** (measured with `python -m course_lib timings` on 2 CPU cores (AMD EPYC), no GPU): quick mode, the
# default without a GPU, 41 s for this notebook from a fresh kernel, 5 s for its exercise notebook. Full mode on a
# GPU: not measured. Trained models are cached as checkpoints: a second run loads them.
#
# **Units** log-likelihoods, ELBOs, NLLs and gaps are in **nats per example**: summed over the 784 pixels
# and the latent dimensions, averaged over test images (nats per image, the unit of Burda et al. 2015).

# %% [markdown] slideshow={"slide_type": "notes"}
# Start with the question: "you trained two VAEs; which one is better?" Let the room answer (lower loss,
# nicer samples...) and write the answers down: the lesson shows that each of them measures something
# different, and that each number comes with an error bar. Expected answer by the end: "it depends on the
# question, and on how many samples you used".

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt
import torch

from course_lib.figures import evaluation as figs
from course_lib import evaluate as ev
from course_lib.classifier import get_classifier
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.models import VAE
from course_lib.models.linear_gaussian import LinearGaussian
from course_lib.plots import show_images
from course_lib.runtime import describe, get_device, is_quick, pick, make_generator, seed_everything
from course_lib.tables import Table
from course_lib.train import fit
from course_lib.widgets import sliders

generator = seed_everything(0)
device = get_device()
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode only shrinks the training time and the numbers of test images and samples; the model is the
# same 784-200-200-50 VAE in both modes:

# %%
DATASET = "mnist"                  # quick: mnist5k (4,000 train / 1,000 test real digits); full: MNIST
LATENT, HIDDEN = 50, (200, 200)    # Burda et al.'s 784-200-200-50 VAE
EPOCHS = pick(30, 500)             # full: meant to fit in 10 minutes on one GPU
KS = pick([1, 10, 100, 1000], [1, 10, 100, 1000, 5000])   # numbers of importance samples
N_NLL = pick(200, 10_000)          # test images for the NLL
N_GAP, K_GAP = pick(20, 100), pick(2000, 5000)            # images whose q is optimised one by one; IWAE k
N_LG = pick(400, 2000)             # examples of the linear-Gaussian model
FID_SIZES, DRAWS, N_POOL = [50, 100, 200, 500, 1000], 30, 5000   # the FID's spread: sizes, draws, pool
TEMPERATURES = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
QUICK = is_quick()

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

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "can a model have a great likelihood and terrible samples?" Expected answer: yes (Theis et al. 2016,
# section 3.2): mix a good model p with white noise, 0.01 p + 0.99 noise. Its log-likelihood is at least
# log 0.01 + log p(x): it loses at most log 100 ~ 4.6 nats per image (little, on ~100 nats), yet 99 samples in
# 100 are noise. (Mixing in only 1 % of noise costs at most -log 0.99 ~ 0.01 nats, and 1 sample in 100 is
# noise.) And the reverse: a memorizer. Both numbers are needed.

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

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "why not sample z from the prior and average p(x|z)?" Expected answer: almost every z from the prior
# decodes to another digit, so p(x|z) is ~e^-300 except on a tiny region; you would need astronomically many
# samples. The encoder tells us where that region is.

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
# On MNIST the weights are about $e^{-100}$: we work with $\log w_i$ and `logsumexp`.

# %% slideshow={"slide_type": "subslide"}
def iwae_bound(log_px_given_z, log_pz, log_qz):
    """log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), from (k, batch) log-densities -> (batch,)."""
    log_w = log_px_given_z + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


lw = torch.randn(50, 4, dtype=torch.float64) - 100.0         # log-weights of the size we meet on MNIST
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

# %% [markdown] slideshow={"slide_type": "notes"}
# The flattening is the only trick: the decoder takes a 2-D batch of codes. The exercise asks how many of the
# k weights actually count (the effective sample size): when one weight dominates, k = 1000 is worth 1.

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

# %% slideshow={"slide_type": "subslide"}
g = make_generator(0)
u, v = torch.randn(2, 5, generator=g, dtype=torch.float64)
v = (v - (v @ u) / (u @ u) * u) * u.norm() / (v - (v @ u) / (u @ u) * u).norm()   # v orthogonal to u, same norm
W = torch.stack([u, 0.6 * u + 0.8 * v], dim=1)        # two columns at an angle of arccos(0.6): correlated posterior
b = torch.randn(5, generator=g, dtype=torch.float64)
lg_exact = LinearGaussian(W, b, sigma=0.5, posterior="exact")
lg_meanfield = LinearGaussian(W, b, sigma=0.5, posterior="mean_field")
x_lg = lg_exact.sample(N_LG, generator=g)
exact_nll = -lg_exact.log_marginal(x_lg)                # -log N(x; b, W W^T + sigma^2 I), per example
elbo_gap = float((lg_exact.log_marginal(x_lg) - lg_meanfield.exact_elbo(x_lg)).mean())
print(f"exact NLL {exact_nll.mean():.4f} nats; ELBO gap of the mean-field q {elbo_gap:.4f} nats")

# %% [markdown] slideshow={"slide_type": "notes"}
# The mean-field q here is the best diagonal Gaussian there is (mean of the posterior, precisions from the
# diagonal of M): its gap is pure "approximation gap", a name we meet again in section 5.

# %% slideshow={"slide_type": "subslide"}
seed_everything(1)
lg_rows = {}
for name, model in [("exact q", lg_exact), ("mean-field q", lg_meanfield)]:
    lg_rows[name] = [ev.iwae_nll(model, x_lg, k=k, reduction="none") for k in KS]

# exact posterior: every weight is p(x), so every k gives the exact value (to round-off)
for k, per in zip(KS, lg_rows["exact q"]):
    assert torch.allclose(per, exact_nll, atol=1e-9), f"k={k}: with the true posterior IWAE is exact"
# mean-field: k = 1 is the ELBO (closed form here), and the bound tightens towards the exact value
gap = [float((per - exact_nll).mean()) for per in lg_rows["mean-field q"]]
sem = [float((per - exact_nll).std() / math.sqrt(N_LG)) for per in lg_rows["mean-field q"]]
assert abs(gap[0] - elbo_gap) < 4 * sem[0], "IWAE with k = 1 estimates the ELBO"
assert all(g1 < g0 + 3 * s for g0, g1, s in zip(gap, gap[1:], sem)), "the bound tightens with k (up to noise)"
assert all(gk > -3 * s for gk, s in zip(gap, sem)), "never below the exact NLL (up to noise)"
assert gap[-1] < 0.1 * elbo_gap, "with enough samples the bound closes 90 % of the ELBO's gap"

# %% slideshow={"slide_type": "subslide"}
fig, ax = figs.estimator_check_figure(
    KS, gap, sem, [float((per - exact_nll).mean()) for per in lg_rows["exact q"]], elbo_gap)
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# The error bars are standard errors over the examples. The k = 1 point sits on the closed-form ELBO gap;
# with the exact posterior the estimate has zero variance. Ask: "why is zero variance a warning sign in
# practice?" Expected answer: it only happens when q is the posterior, so on a VAE a zero-variance estimate
# means a bug (e.g. the same z reused). This is the test to run on any new estimator before trusting it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A VAE on binarized digits
#
# Bernoulli decoder, trained with the ELBO on **dynamically binarized** images (a fresh draw
# $x \sim \mathrm{Bernoulli}(\text{grey levels})$ each epoch, `binarize_dynamic` as `fit`'s transform, as in
# Burda et al.); the test set is binarized **statically** (once, with a fixed seed) so that every $k$ sees
# the same images. Adam, learning rate $10^{-3}$, batches of 100. We print the **rate** (the KL term) and
# the **distortion** ($-\mathbb{E}_q \log p_\theta(x\mid z)$) of lesson 4 on the test set.

# %% slideshow={"slide_type": "subslide"}
train = lesson_dataset(DATASET, "train")
test = lesson_dataset(DATASET, "test")
test_bin = test.map(binarize_static)                # one fixed binarization of the test set

seed_everything(0)
vae = VAE(train.shape, latent_dim=LATENT, hidden=HIDDEN, likelihood="bernoulli")
history = fit(vae, train, test_bin, epochs=EPOCHS, batch_size=100, lr=1e-3, transform=binarize_dynamic,
              checkpoint=f"lesson05-vae-{train.name}")
rate, distortion = history.last("kl", "val"), history.last("recon", "val")
print(history.summary())
print(f"test: rate {rate:.2f} nats, distortion {distortion:.2f} nats, -ELBO {rate + distortion:.2f} nats")
assert rate > 5, "the codes carry information about real 28x28 digits (several nats per image)"

# %% [markdown] slideshow={"slide_type": "notes"}
# Rate + distortion is the -ELBO of lesson 4. The rate says how many nats the code carries about each
# image. Ask: "is -ELBO the model's NLL?" Expected answer: no, an upper bound on it; next slide.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### NLL against the number of samples

# %%
seed_everything(2)
nll_set = test_bin.take(N_NLL)
per_k = {k: ev.iwae_nll(vae, nll_set, k=k, reduction="none") for k in KS}
neg_elbo = -ev.elbo(vae, nll_set, k=10, reduction="none")        # the ELBO, averaged over 10 samples
nll = {k: float(v.mean()) for k, v in per_k.items()}
nll_sem = {k: float(v.std() / math.sqrt(len(nll_set))) for k, v in per_k.items()}
print("  ".join(f"k={k}: {nll[k]:.2f} ± {nll_sem[k]:.2f}" for k in KS), f"| -ELBO {neg_elbo.mean():.2f} nats")
# paired comparisons (same images): the differences are far more precise than the bars below
for k0, k1 in zip(KS, KS[1:]):
    diff = per_k[k0] - per_k[k1]
    assert diff.mean() > -3 * diff.std() / math.sqrt(len(diff)), f"NLL(k={k1}) should not exceed NLL(k={k0})"
k_max = KS[-1]
diff = neg_elbo - per_k[k_max]
assert diff.mean() > 3 * diff.std() / math.sqrt(len(diff)), "the IWAE NLL lies below -ELBO"

# %% slideshow={"slide_type": "subslide"}
fig, ax = figs.nll_vs_k_figure(KS, nll, nll_sem, float(neg_elbo.mean()),
                                     f"VAE on binarized {train.name}: NLL estimate vs k")
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Error bars: standard error over test images (they vary by tens of nats from image to image). The
# comparison between two k is paired (same images), which is why the assertions can detect differences
# smaller than the bars. The drop from the ELBO to the IWAE value is a lower bound on the average KL between
# the encoder and the true posterior: the next section splits it in two.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### What we reached, and the GPU target
#
# Full mode (MNIST, one GPU): the 784-200-200-50 VAE should reach an IWAE NLL ($k = 5000$) **at or below
# 89 nats** within 10 minutes of training (not measured yet: no GPU where this lesson was written).
# Burda et al. (2015, Table 1) report 86.76 nats for this VAE with $k = 5000$ after 3,280 epochs. In quick
# mode the model sees 4,000 digits for 30 epochs: its NLL is far from that and no target applies.

# %%
print(f"data: {train.name} ({len(train)} training, {len(test)} test images of shape {tuple(train.shape)})")
print(f"IWAE NLL (k = {k_max}, {len(nll_set)} test images): {nll[k_max]:.2f} ± {nll_sem[k_max]:.2f} nats; "
      f"-ELBO {neg_elbo.mean():.2f}; training {history.epochs} epochs in {history.seconds / 60:.1f} min "
      f"on {history.device}" + (" (loaded from checkpoint)" if history.loaded else ""))
if train.name == "mnist":
    print("target (NLL <= 89 nats, training <= 10 min):",
          "met" if nll[k_max] <= 89 and history.seconds <= 600 else "NOT met")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Where the gap comes from: approximation and amortization
#
# Cremer, Li & Duvenaud (2018, Table 1) split the **inference gap** $\log p_\theta(x) - \mathcal{L}[q_\phi]$ in two
# with $q^*$, the **best** diagonal Gaussian for this one $x$:
#
# $$\log p_\theta(x) - \mathcal{L}[q_\phi] = \underbrace{\log p_\theta(x) - \mathcal{L}[q^*]}_{\text{approximation gap}}
# + \underbrace{\mathcal{L}[q^*] - \mathcal{L}[q_\phi]}_{\text{amortization gap}}.$$
#
# - **approximation**: no diagonal Gaussian matches the true posterior ($= \mathrm{KL}(q^* \| p_\theta(z\mid x))$; a
#   richer family would shrink it);
# - **amortization**: one encoder network for all images does not output the best $q$ for each (a better or
#   longer-trained encoder would shrink it).
#
# Lesson 2 named them on its toy model, where the family contains the posterior (no approximation gap) and a
# shared $q$ had a large amortization gap. On the VAE we measure both: for a few test digits, start from the
# encoder's $(\mu, \log\sigma^2)$ and run Adam on that digit's ELBO (`ev.refine_gaussian`, the model fixed);
# $\log p_\theta(x)$ by IWAE with large $k$ and $q^*$ as proposal.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "which gap would a normalising-flow posterior reduce, and which a bigger encoder?" Expected answer:
# the flow the approximation gap, the bigger (or longer-trained) encoder the amortization gap. Cremer et al.
# found the gap often due to the encoder rather than to the Gaussian family. Our IWAE value is itself a lower bound on log p(x),
# so the approximation gap printed is a lower bound on the true one.

# %% slideshow={"slide_type": "subslide"}
seed_everything(4)
x_gap = test_bin.images[:N_GAP]
gaps = ev.inference_gaps(vae, x_gap, steps=100, lr=0.05, n_samples=16, k_elbo=500, k_iwae=K_GAP)
approx, amort = gaps["approximation"], gaps["amortization"]
mc_amort = 3 * (gaps["elbo_q_star_sem"] ** 2 + gaps["elbo_encoder_sem"] ** 2).sqrt()   # 3 MC standard errors
print(f"{N_GAP} test digits: log p(x) {gaps['log_px'].mean():.2f}, ELBO(q*) {gaps['elbo_q_star'].mean():.2f}, "
      f"ELBO(q_phi) {gaps['elbo_encoder'].mean():.2f} nats")
print(f"approximation gap {approx.mean():.2f} nats, amortization gap {amort.mean():.2f} nats (means)")
assert (amort > -mc_amort).all(), "optimising q per digit never loses ELBO (within Monte Carlo error)"
assert (approx > -3 * gaps["elbo_q_star_sem"]).all(), "no Gaussian beats log p(x) (within Monte Carlo error)"
assert amort.mean() > 0.5 and approx.mean() > 0.5, "both gaps are real, not noise"
if QUICK:
    assert amort.mean() > approx.mean(), "here the encoder, not the Gaussian family, loses more"

# %% slideshow={"slide_type": "subslide"}
fig, ax = figs.gaps_figure(gaps)
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Each bar is one test digit. Both parts are positive for every digit, up to Monte Carlo error. In quick mode
# the encoder saw 4,000 digits for 30 epochs and the amortization gap is the larger; the
# exercise computes q* for the linear-Gaussian model, where the answer is known in closed form.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Sample quality: the Fréchet distance (FID)
#
# Map real and generated images to features $f(x)$, fit a Gaussian to each set, and compare the Gaussians
# with the **squared** Fréchet (2-Wasserstein) distance (seed slides, "Fréchet Inception Distance"; Heusel et al.
# 2017, eq. 6):
#
# $$\mathrm{FID} = \|\mu_r - \mu_g\|^2 + \mathrm{Tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2}\big).$$
#
# Low FID: close distributions of features. $\Sigma_r\Sigma_g$ is not symmetric; its square root's trace is
# the sum of $\sqrt{\lambda_i}$ of the symmetric PSD matrix $\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2}$, computed
# with two `eigh`, in float64:

# %% slideshow={"slide_type": "subslide"}
def sqrt_psd(S):
    """Symmetric square root of a PSD matrix."""
    vals, vecs = torch.linalg.eigh(S)
    return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1, S1, mu2, S2):
    r1 = sqrt_psd(S1)
    tr_sqrt = torch.linalg.eigvalsh(r1 @ S2 @ r1).clamp_min(0).sqrt().sum()     # Tr (S1 S2)^{1/2}
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(S1 + S2) - 2 * tr_sqrt)


mu1, mu2 = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
a, b_ = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
assert abs(frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b_)) - (5.0 + 1.0 + 1.0)) < 1e-10  # diagonal case
S = (lambda A: A @ A.T)(torch.randn(3, 3, dtype=torch.float64))
assert abs(frechet_distance(mu1, S, mu2, torch.eye(3, dtype=torch.float64))
           - ev.frechet_distance(mu1, S, mu2, torch.eye(3))) < 1e-9, "same as course_lib"

# %% [markdown] slideshow={"slide_type": "notes"}
# Check on the diagonal case by hand: the mean term is 1 + 4 = 5, the covariance term is
# sum (sqrt(a) - sqrt(b))^2 = 1 + 1 + 0 = 2. Ask: "why not the KL between the two Gaussians?" Expected
# answer: it is infinite or huge when a covariance is (nearly) singular, e.g. all samples alike; the
# Fréchet distance stays finite. Careful: the FID is the *square* of the 2-Wasserstein distance between the
# two Gaussians; its square root is a metric (triangle inequality), the FID itself is not.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Which features? Ours, not Inception's
#
# The published FID (and IS) use **Inception-v3** trained on ImageNet (2048 pooled features, 1000 classes).
# We cannot download those weights here, and they are the wrong tool for 28x28 handwritten digits. So
# `course_lib.classifier.get_classifier` gives a small CNN trained on the digits' training split (in quick
# mode its weights ship with the course: no training), and we use its penultimate layer (64 features) for
# the FID and its softmax for the IS. Our scores are **FID-digits / IS-digits**: they rank models of the
# same data, they are **not** comparable with published numbers (a VAE scores in the hundreds here: the
# features are not normalised).

# %%
classifier = get_classifier(train.name, device=device)
acc = classifier.accuracy(test)
print(f"digit classifier: test accuracy {acc:.3f}")
assert acc >= 0.97, "the feature extractor classifies real test digits well"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The Inception Score
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

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "what is the IS of a model that draws perfect 3s only?" Expected answer: 1 (every p(y|x) equals the
# marginal). And of one perfect image per class, repeated? 10, the maximum: section 11.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Real images, reconstructions, samples, noise
#
# Reference: one half of the test images. Compared with the same number of: the other half (the floor of the
# FID for this sample size), reconstructions of that half, **decoder means** $\mathbb{E}[x \mid z]$ at
# $z \sim p(z)$, true samples $x \sim p_\theta(x \mid z)$ at the same $z$, and uniform noise.
#
# **Why FID on decoder means?** Lesson 3: a Bernoulli sample draws every pixel independently, so it shows
# the model's pixel noise (speckles), not a stroke; the mean is the picture the model has of the digit, what
# VAE papers show and score. It is a choice, and it has a cost: a mean is an *average* of the digits
# compatible with $z$, so it is grey and blurry. Say which one you report.

# Every score below comes from random sets (a random half of the test set, random codes $z$): we repeat the
# comparison on `REPEATS` random splits and draws and give each score as mean ± standard deviation.

# %% slideshow={"slide_type": "subslide"}
REPEATS, half = 5, len(test) // 2


def image_sets(r):
    """The reference half and the five sets to score, for the r-th random split of the test set and draw of z."""
    order = torch.randperm(len(test), generator=make_generator(10 + r)).to(test.device)
    with torch.no_grad():
        p_x = vae.decode(torch.randn(half, LATENT, generator=make_generator(20 + r)).to(device))
        return test.images[order[:half]], {
            "real (other half)": test.images[order[half:2 * half]],
            "reconstructions": vae.reconstruct(test_bin.images[order[half:2 * half]]),
            "VAE means E[x|z]": p_x.mean, "VAE samples x~p(x|z)": p_x.sample(),
            "uniform noise": torch.rand(half, *test.shape, generator=make_generator(30 + r)).to(device)}


@torch.no_grad()
def fid_is(ref_f, f):
    """FID-digits and IS-digits from the classifier's features: one pass of the classifier per set."""
    return ev.fid(ref_f, f), ev.inception_score_from_probs(torch.softmax(classifier.head(f.to(device)), 1))


# %% slideshow={"slide_type": "subslide"}
feats = lambda x: ev.features_of(x, classifier)  # noqa: E731
splits = [image_sets(r) for r in range(REPEATS)]
ref_feats = [feats(ref_r) for ref_r, _ in splits]
runs = [{name: fid_is(f_r, feats(x)) for name, x in sets_r.items()} for f_r, (_, sets_r) in zip(ref_feats, splits)]
fid_of, is_of = ({n: torch.tensor([run[n][i] for run in runs]) for n in runs[0]} for i in (0, 1))
Table(["set of images", "FID-digits (lower: closer to real)", "IS-digits (higher: sharper, more varied)"],
      [[name, f"{fid_of[name].mean():.1f} ± {fid_of[name].std():.1f}", f"{is_of[name].mean():.2f} ± {is_of[name].std():.2f}"]
       for name in fid_of], title=f"Mean ± standard deviation over {REPEATS} random splits and draws")

# %% [markdown] slideshow={"slide_type": "notes"}
# Read the table before the figure. Ask: "which is better, the means or the true samples?" Let the room vote,
# then show the next slide. The ± is the standard deviation over the five repeats: the spread of one score.

# %% slideshow={"slide_type": "subslide"}
reference, sets = splits[0]                          # the first repeat: shown, and reused below
held_out = sets["real (other half)"]
order_ = ["real (other half)", "reconstructions", "VAE means E[x|z]", "uniform noise"]
for a, b in zip(order_, order_[1:]):
    assert (fid_of[a] < fid_of[b]).all(), f"FID: {a} < {b}, on every repeat"
assert ev.fid(reference, reference, features=classifier) < 1e-6, "FID of a set against itself is 0"
diff_fid = fid_of["VAE means E[x|z]"] - fid_of["VAE samples x~p(x|z)"]
diff_is = is_of["VAE means E[x|z]"] - is_of["VAE samples x~p(x|z)"]
if QUICK:
    assert diff_fid.min() > 0, "quick mode: binary samples are closer in FID than grey means, on every repeat"
assert diff_is.min() > 0, "the IS prefers the means, on every repeat"

# %% slideshow={"slide_type": "subslide"}
fig, axes = figs.image_sets_figure(sets, {n: (fid_of[n].mean(), is_of[n].mean()) for n in fid_of},
                                   errors={n: (fid_of[n].std(), is_of[n].std()) for n in fid_of})

# %% [markdown] slideshow={"slide_type": "notes"}
# Reconstructions use the encoder's information about a real image and land between real images and
# samples. The two scores can disagree on means vs samples: in quick mode the FID prefers the speckled binary
# samples and the IS the grey means (on every repeat); in full mode the FID's preference changes (see the
# printed table). The classifier's features of grey, blurry means are far from those of sharp real strokes
# (FID), while speckled binary samples look less like any one digit to it (IS). Neither is a likelihood. The
# FID of real against real is not 0: the bias of the estimator at this sample size (next section).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. How noisy is an FID?
#
# The FID is computed from $n$ random samples: it is a random number (section 8's ± is its spread at
# $n = 500$). How large is that spread, and does the **mean** depend on $n$? Draw many sets of $n$ decoder means
# (and of $n$ real training digits) and compute each one's FID against the same reference, for several $n$.

# %% slideshow={"slide_type": "subslide"}
seed_everything(5)
ref_features = ref_feats[0]
pools = {"VAE means": ev.features_of(vae.sample(N_POOL, generator=make_generator(5)), classifier),
         "real training digits": ev.features_of(train.images[:N_POOL], classifier)}
spread = ev.fid_spread(ref_features, pools, FID_SIZES, draws=DRAWS)   # {pool: {n: DRAWS FIDs}}
gen, real = spread["VAE means"], spread["real training digits"]
rel = {n: float(gen[n].std() / gen[n].mean()) for n in FID_SIZES}
c = sum(rel[n] / math.sqrt(n) for n in FID_SIZES) / sum(1 / n for n in FID_SIZES)  # least squares: rel = c/sqrt(n)
n_2pc = math.ceil((c / 0.02) ** 2)
se = lambda v: float(v.std() / math.sqrt(len(v)))  # noqa: E731  (standard error of a mean over draws)
for n in FID_SIZES:
    print(f"n = {n:4d}: samples {gen[n].mean():6.1f} ± {gen[n].std():5.1f} ({100 * rel[n]:.1f} %, "
          f"range {gen[n].min():.0f}-{gen[n].max():.0f}); real {real[n].mean():5.1f} ± {real[n].std():4.1f}")
print(f"std/mean ~ {c:.2f}/sqrt(n): a 2 % standard deviation needs n ~ {n_2pc} samples")

# %% [markdown] slideshow={"slide_type": "notes"}
# Each line: 30 draws of n images from a pool of 5,000 decoder means (draws overlap a little at n = 1000,
# which hides about 10 % of the spread) and from the training digits; the reference set is fixed, so its own
# noise is not counted: a real comparison is noisier still.

# %% slideshow={"slide_type": "skip"}
assert all(0.6 < rel[n] * math.sqrt(n) / c < 1.6 for n in FID_SIZES), "the spread shrinks like 1/sqrt(n)"
assert gen[200].max() - gen[200].min() > 0.10 * gen[200].mean(), "two draws of 200 images can differ by > 10 %"
assert 300 <= n_2pc <= 5000, "a stable FID (2 % spread) needs several hundred to thousands of samples here"
assert gen[50].mean() - gen[1000].mean() > 2 * math.hypot(se(gen[50]), se(gen[1000])), "biased upwards at small n"
assert real[50].mean() > 5 * real[1000].mean(), "real vs real: the FID falls roughly as 1/n, far from 0 at n = 50"

# %% slideshow={"slide_type": "subslide"}
fig, axes = figs.fid_spread_figure(spread, fit_c=c)
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Two lessons. (1) Spread: the standard deviation falls like 1/sqrt(n); compare two models only when their
# difference is several standard deviations, and report FID with n and an error bar (several seeds). Papers
# use n = 10,000 or 50,000. (2) Bias: the mean FID falls with n: real vs real is about 90 at n = 50 and
# about 10 at n = 1000; the bias is roughly c/n (Chong & Forsyth 2020), so only sets of the same size are
# comparable. Ask: "a paper reports FID 12 with 1,000 samples, another 10 with 50,000: which is better?"
# Expected answer: cannot tell. The exercise extrapolates the FID to n = infinity.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### An unbiased score: the kernel distance (KID)
#
# Binkowski et al. (2018, section 3) replace the two Gaussians by a kernel $k(a, b) = (a^\top b / F + 1)^3$ on the
# $F$ features and estimate the squared **maximum mean discrepancy** between real features $r_{1..m}$ and
# generated ones $g_{1..n}$, leaving out the pairs $i = j$:
#
# $$\mathrm{KID} = \frac{1}{m(m-1)}\sum_{i \ne j} k(r_i, r_j) + \frac{1}{n(n-1)}\sum_{i \ne j} k(g_i, g_j)
#   - \frac{2}{mn}\sum_{i, j} k(r_i, g_j).$$
#
# Each sum is an unbiased average, so the KID's **mean does not depend on $n$** (it can dip below 0 when the two
# distributions match). `ev.kid_spread` scores the same subsets as the FID above:

# %% slideshow={"slide_type": "subslide"}
kid_spread = ev.kid_spread(ref_features, pools, FID_SIZES, draws=DRAWS)   # same seed: the same subsets
kid_gen, kid_real = kid_spread["VAE means"], kid_spread["real training digits"]
for n in FID_SIZES:
    print(f"n = {n:4d}: KID samples {kid_gen[n].mean():6.0f} ± {kid_gen[n].std():4.0f}; "
          f"real {kid_real[n].mean():4.0f} ± {kid_real[n].std():3.0f}")
for name, by_n in kid_spread.items():
    drift = by_n[50].mean() - by_n[1000].mean()
    assert abs(drift) < 3 * math.hypot(se(by_n[50]), se(by_n[1000])), f"{name}: the KID's mean does not move with n"
assert kid_gen[1000].mean() - kid_real[1000].mean() > 5 * math.hypot(se(kid_gen[1000]), se(kid_real[1000])), \
    "the KID still separates the VAE's means from real digits"

# %% slideshow={"slide_type": "subslide"}
fig, axes = figs.kid_bias_figure(spread, kid_spread)
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Left: the FID's mean falls with n (both pools); middle and right: the KID's mean is the same at every n within
# its error bars (standard errors over the 30 draws; for real digits the small-n points are noisy, the
# assert compares n = 50 with n = 1000), while its spread still shrinks like 1/sqrt(n). So KIDs of sets of
# different sizes are comparable; FIDs are not. Ask: "why not always report the KID then?" Expected answer: it is
# noisier relative to its size at small n, and the community's numbers are FIDs; report both with n.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Try it: the sampling temperature
#
# Sample $z \sim \mathcal{N}(0, T^2 I)$ instead of $p(z)$ and decode the means. This is sampling from another
# model, $p_T(x) = \int p_\theta(x \mid z)\,\mathcal{N}(z; 0, T^2 I)\,dz$: $T = 1$ is the model we trained. At
# $T = 0$ every image is the same: IS = 1, a large FID. We also measure the **likelihood** of test digits
# under $p_T$ (IWAE, same encoder as proposal: `ev.TemperedPrior`), and **precision and recall**
# (Kynkäänniemi et al. 2019): each set's *manifold* is the union of balls around its feature vectors, each ball
# reaching the point's 3rd nearest neighbour; **precision** is the fraction of generated points inside the real
# manifold (realistic samples), **recall** the fraction of real points inside the generated one (coverage).

# %% slideshow={"slide_type": "subslide"}
Z_DRAWS = 3                                            # draws of the codes: the error bars
z_T = [torch.randn(half, LATENT, generator=make_generator(40 + j)).to(device) for j in range(Z_DRAWS)]
KEYS = ("FID", "IS", "precision", "recall", "grey", "spread")


def scores_at(T, z):
    """FID, IS, precision, recall, grey fraction and feature spread of the decoder means at codes T z."""
    with torch.no_grad():
        x_T = vae.decode(T * z).mean
    f_T = ev.features_of(x_T, classifier)
    return (*fid_is(ref_features, f_T), *ev.precision_recall(ref_features, f_T, k=3), figs.grey_fraction(x_T),
            float(torch.trace(ev.gaussian_stats(f_T)[1])))


curve = []
for T in TEMPERATURES:                                 # the same codes for every T: smooth curves
    v = torch.tensor([scores_at(T, z) for z in z_T], dtype=torch.float64)
    curve.append({"T": T, **dict(zip(KEYS, v.mean(0).tolist())), **{k + "_sd": float(v[:, i].std())
                                                                      for i, k in enumerate(KEYS)}})

# %% slideshow={"slide_type": "subslide"}
seed_everything(6)
nll_T = {T: ev.iwae_nll(ev.TemperedPrior(vae, T), nll_set.take(100), k=100, return_std=True)
         for T in TEMPERATURES if T > 0}
for r in curve:
    print(f"T = {r['T']:.2f}: FID {r['FID']:6.1f} ± {r['FID_sd']:4.1f}, IS {r['IS']:.2f} ± {r['IS_sd']:.2f}, "
          f"precision {r['precision']:.2f}, recall {r['recall']:.2f}, grey {r['grey']:.3f}, "
          f"spread {r['spread']:5.0f}" + (f", NLL {nll_T[r['T']][0]:.1f}" if r["T"] > 0 else ""))

# %% [markdown] slideshow={"slide_type": "notes"}
# Each score: mean ± standard deviation over three draws of the 500 codes (the same codes are scaled for every T).
# "grey": fraction of pixels strictly between 0.1 and 0.9; "spread": trace of the covariance of the classifier's
# features (diversity as the FID sees it). At T = 1 this is section 8's model with other codes: its FID differs
# from section 8's by about one spread of a draw, no more.

# %% slideshow={"slide_type": "subslide"}
at = {r["T"]: r for r in curve}
gap_ = lambda t, u, key: (at[t][key] - at[u][key]) / math.hypot(at[t][key + "_sd"], at[u][key + "_sd"])  # noqa: E731
real_f = ev.features_of(held_out, classifier)
grey_real, spread_real = figs.grey_fraction(held_out), float(torch.trace(ev.gaussian_stats(real_f)[1]))
assert abs(at[1.0]["FID"] - fid_of["VAE means E[x|z]"].mean()) < 3 * max(at[1.0]["FID_sd"], fid_of["VAE means E[x|z]"].std()), \
    "T = 1 is section 8's model: the same FID up to the spread of a draw"
assert abs(at[0.0]["IS"] - 1) < 1e-4 and gap_(0.0, 1.0, "FID") > 3, "T = 0: one image, IS = 1, bad FID"
assert gap_(1.0, 2.0, "FID") > 3 and gap_(2.0, 1.0, "IS") > 3, "FID and IS: T = 2 beats T = 1 by > 3 spreads"
assert at[2.5]["grey"] < at[1.0]["grey"] and at[2.5]["spread"] > at[1.0]["spread"], "sharper and more diverse"
assert grey_real < at[2.5]["grey"] and spread_real > at[2.5]["spread"], "still greyer, less diverse than real digits"
assert gap_(2.0, 0.5, "recall") > 3 and gap_(3.0, 1.0, "recall") > 3, "recall rises with T: low T covers little"
best_T = min(nll_T, key=lambda t: nll_T[t][0])
assert 0.75 <= best_T <= 1.25 and nll_T[2.5][0] > nll_T[1.0][0] + 10, "the likelihood prefers T ~ 1, by > 10 nats"

# %% slideshow={"slide_type": "subslide"}
fig, axes = figs.temperature_figure(curve, nll_T)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Why the scores like $T > 1$, and what to report

# %% [markdown] slideshow={"slide_type": "subslide"}
# - At $T = 1$ many codes decode to **averages** of several digits: grey, blurry strokes. Larger $\|z\|$ pushes
#   the decoder's logits further from 0: fewer grey pixels, bolder strokes and more varied features, closer
#   to real digits **in the classifier's eyes**. The FID and IS reward that sharpness and diversity: both are
#   better at $T = 2$ than at $T = 1$ by more than three times their spread over draws of the codes.
# - **Precision and recall** split the two. Recall (coverage of the real digits) rises with $T$ on every course
#   seed, by more than three spreads from $T = 0.5$ to $T = 2$: low $T$ covers little. Precision (realistic samples)
#   is where a VAE differs from the GANs of Kynkäänniemi et al. (2019, Fig. 1), whose truncation trick buys precision
#   with recall: our low-$T$ samples are grey averages, and whether the classifier's features put them inside the
#   real manifold depends on the training run (course seed 0: precision falls from 0.84 at $T = 0.5$ to 0.76 at
#   $T = 2$; course seed 1: it rises from 0.37 to 0.58). So we assert only the recall. One number (FID) mixes both.
# - The **likelihood** of test digits is best near $T = 1$ and worse by more than 10 nats at $T = 2.5$: the
#   scores measure something that is not likelihood (section 1).

# %% [markdown] slideshow={"slide_type": "subslide"}
# - Practice: report scores at $T = 1$ (the model as trained), or **state** the temperature or truncation
#   used. GANs do the reverse trade, $T < 1$: the "truncation trick" (Brock et al. 2019, BigGAN) buys fidelity
#   with diversity; Glow (Kingma & Dhariwal 2018) shows samples at $T = 0.7$. A score at a tuned $T$ is a
#   different model's score.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "if you tuned T on the FID and reported the best FID, what did you report?" Expected answer: the FID
# of another model, p_T, chosen on the test metric; and its likelihood is worse. Then move the slider:
# watch the strokes get bolder and stranger past T = 2.

# %% slideshow={"slide_type": "subslide"}
def show_temperature(T=1.0):
    """32 decoder means at z ~ N(0, T^2 I), with their FID-digits and IS-digits."""
    with torch.no_grad():
        x = vae.decode(T * z_T[0]).mean
    fid_t, is_t = ev.fid(ref_features, ev.features_of(x, classifier)), ev.inception_score(x, classifier=classifier)
    ax = show_images(x[:32], nrow=16, title=f"T = {T:.2f}: FID-digits {fid_t:.0f}, IS-digits {is_t:.2f}")
    ax.figure.set_size_inches(12, 2.2)
    plt.show()


sliders(show_temperature, T=(0.0, 3.0, 0.1, 1.0))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. What FID and IS cannot see
#
# - **Memorization.** Copying training images gives an excellent FID and IS; only a likelihood on *held-out*
#   data (or a nearest-neighbour check) exposes it. Below: the "model" that returns training images.
# - **FID** compares two Gaussians: it ignores everything beyond the first two moments of the features; it is
#   noisy and **biased upwards for small samples** (section 9), so compare sets of the same size; and it
#   depends entirely on the feature network (Inception on ImageNet in papers, our CNN here).
# - **IS** never looks at real data: one perfect image per class scores the maximum (mode collapse *within*
#   a class is invisible); it only makes sense for data whose classes the classifier knows.
# - For a **conditional** model $p_\theta(x \mid y)$ (seed slides), also check that a classifier recovers the
#   conditioning label $y$ from the samples.

# %% slideshow={"slide_type": "subslide"}
fid_memo = torch.tensor([ev.fid(ref_feats[r], feats(train.images[torch.randperm(len(train),
                          generator=make_generator(50 + r))[:half].to(train.device)])) for r in range(REPEATS)])
one_per_class = torch.stack([test.images[(test.labels == c).nonzero()[0, 0]] for c in range(10)]).repeat(half // 10, 1, 1, 1)
is_collapse = ev.inception_score(one_per_class, classifier=classifier)
print(f"training images as 'samples': FID-digits {fid_memo.mean():.1f} ± {fid_memo.std():.1f} "
      f"(VAE means: {fid_of['VAE means E[x|z]'].mean():.1f} ± {fid_of['VAE means E[x|z]'].std():.1f})")
print(f"ten images repeated: IS-digits {is_collapse:.2f} (real data: {is_of['real (other half)'].mean():.2f} "
      f"± {is_of['real (other half)'].std():.2f})")
assert (fid_memo < fid_of["VAE means E[x|z]"]).all(), "a memorizer beats the VAE on FID, on every split"
assert is_collapse > is_of["real (other half)"].mean() - 3 * is_of["real (other half)"].std(), \
    "ten images repeated score as well as real data on IS (within the spread of real data)"

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: "how would you catch the memorizer?" Expected answer: its likelihood of test images is terrible (it
# puts all its mass on the training set), or: for each sample, the nearest training image is identical.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. Likelihood and sample quality are different questions; report both, with the same data and protocol.
# 2. The IWAE bound $\mathcal{L}_k$ is the ELBO at $k=1$, grows with $k$ and tends to $\log p_\theta(x)$; check estimators where the likelihood is exact.
# 3. The ELBO's gap = approximation gap (the Gaussian family) + amortization gap (the encoder): both measured, both positive.
# 4. FID (Gaussians of classifier features) and IS (confident, balanced predictions) are random, and the FID is biased for small n (the KID is not): give n and error bars; ours are FID-digits.
# 5. Scores can prefer $T \ne 1$ or memorization: report $T = 1$ or state the temperature; recall shows what low $T$ gives up; a held-out likelihood sees what they miss.

# %% [markdown] slideshow={"slide_type": "notes"}
# Go back to the answers written down at the start ("lower loss", "nicer samples") and sort them: the loss is
# a bound on the likelihood (section 2, and its two gaps in section 5); "nicer samples" is FID/IS, with n, an
# error bar and T = 1. Ask: "what would you report for your VAE?" Expected answer: IWAE NLL with k and the
# binarization, FID-digits with n, the number of draws and the temperature.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **References**
# - Y. Burda, R. Grosse, R. Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016 (arXiv:1509.00519): eq. 9, Theorem 1; Table 1: VAE 784-200-200-50, 86.76 nats with $k=5000$.
# - C. Cremer, X. Li, D. Duvenaud, *Inference Suboptimality in Variational Autoencoders*, ICML 2018: Table 1 (the gaps).
# - M. Heusel et al., *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*, NeurIPS 2017 (the FID, eq. 6).
# - T. Salimans et al., *Improved Techniques for Training GANs*, NeurIPS 2016 (the Inception Score, section 4).
# - M. J. Chong, D. Forsyth, *Effectively Unbiased FID and Inception Score and Where to Find Them*, CVPR 2020 (the bias in n).
# - M. Bińkowski, D. J. Sutherland, M. Arbel, A. Gretton, *Demystifying MMD GANs*, ICLR 2018 (the KID, section 3: unbiased, cubic polynomial kernel).

# %% [markdown] slideshow={"slide_type": "subslide"}
# - T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen, T. Aila, *Improved Precision and Recall Metric for Assessing Generative Models*, NeurIPS 2019 (k-NN manifolds, k = 3; Fig. 1 the truncation trade-off).
# - A. Brock, J. Donahue, K. Simonyan, *Large Scale GAN Training for High Fidelity Natural Image Synthesis*, ICLR 2019 (truncation); D. P. Kingma, P. Dhariwal, *Glow*, NeurIPS 2018 (temperature).
# - L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative models*, ICLR 2016; M. E. Tipping, C. M. Bishop, *Probabilistic PCA*, JRSS B 1999.
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides (section "Evaluation des VAE").
#
# **What we got** (printed above): the IWAE NLL below $-$ELBO; both gaps positive; FID-digits real < reconstructions < means < noise on every repeat, its spread and bias against n, a KID flat in n; FID best at large T, recall rising with T (precision: no direction that holds on every seed), likelihood best near T = 1.
