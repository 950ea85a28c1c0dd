# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 1: autoencoders, a refresher
#
# **What you will learn**
# - the autoencoder as a *learned compression* $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$, and how it is trained
#   (one training step written out, then the course's `fit`);
# - three reconstruction losses (MSE, MAE, binary cross-entropy) and what each one penalises;
# - two variants: the *denoising* and the *convolutional* autoencoder;
# - the autoencoder as non-linear dimensionality reduction, against PCA;
# - how a plain autoencoder does as a *generative* model (random codes, then a Gaussian fitted to its codes),
#   measured against a VAE, and what the VAE adds.
#
# **You need** PyTorch basics (tensors, `nn.Module`, autograd); what gradient descent does.
#
# **Run time** (measured with `python -m course_lib timings` on 2 CPU cores (AMD EPYC), no GPU): quick mode, the
# default without a GPU, 36 s for this notebook from a fresh kernel, 4 s for its exercise notebook. Full mode on a
# GPU: not measured. Trained models are cached as checkpoints: a second run loads them.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Units** every loss is *per example*: summed over the pixels, averaged over the batch.
# The binary cross-entropy is in **nats per example**; the squared (MSE) and absolute (MAE) errors are in
# squared and absolute pixel units per example (pixels are grey levels in $[0, 1]$, not binarized).

# %% [markdown] slideshow={"slide_type": "notes"}
# Open with the plan: an autoencoder is a compressor we train; by the end of the hour we will have measured why it
# is not a generator. Ask the room: who has trained an autoencoder? What loss did you use, and why?
# Expected answers: MSE "because it is the default", sometimes BCE; we come back to that choice in section 2.

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt

import torch
import torch.nn.functional as F

from course_lib import plots
from course_lib.figures import autoencoders as figs
from course_lib.classifier import get_classifier
from course_lib.data import binarize_dynamic, binarize_static, lesson_dataset
from course_lib.losses import reconstruction_error
from course_lib.models import VAE, Autoencoder, ConvAutoencoder
from course_lib.pca import PCA
from course_lib.plots import PALETTE
from course_lib.runtime import describe, get_device, pick, make_generator, seed_everything
from course_lib.train import evaluate_terms, fit
from course_lib.widgets import decode_point, latent_plane_explorer

generator = seed_everything(0)
device = get_device()
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# The only cell where quick and full mode differ: the sizes. The data come from `lesson_dataset("mnist", ...)`:
# 4,000 training and 1,000 test digits of MNIST in quick mode, all of MNIST in full mode.

# %% slideshow={"slide_type": "subslide"}
LATENT = 16                                 # d, the code size of the main autoencoders
HIDDEN = pick((256, 64), (512, 256))        # hidden widths of the fully connected encoder (mirrored in the decoder)
CHANNELS = pick((16, 32), (32, 64))         # channels of the convolutional autoencoder
EPOCHS = pick(8, 30)
BATCH = pick(64, 128)
LR = pick(2e-3, 1e-3)
NOISE = 0.4                                 # sigma of the denoising corruption
N_SHOW = 10                                 # images per row in figures
N_GEN = pick(1_000, 5_000)                  # random codes decoded in the generative-model section
VAE_SIZES = dict(latent_dim=pick(16, 20), hidden=pick((256,), (400,)))   # lesson 3's VAE, for comparison
VAE_TRAINING = dict(epochs=30, batch_size=128, lr=pick(2e-3, 1e-3))      # and its training settings

train = lesson_dataset("mnist", "train", device=device)
test = lesson_dataset("mnist", "test", device=device)
n_pixels = train.dim
print(train, test, sep="\n")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The autoencoder: a learned compression
#
# For a random variable $X \in \mathbb{R}^n$ (an image of $n$ pixels), an autoencoder is a network
# $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$ made of
# - an **encoder** $\mathcal{E}: \mathbb{R}^n \to \mathbb{R}^d$, with $d \ll n$,
# - a **decoder** $\mathcal{D}: \mathbb{R}^d \to \mathbb{R}^n$,
#
# trained so that the round trip loses little:
#
# $$\|\mathcal{H}(x) - x\| = \|\mathcal{D}(\mathcal{E}(x)) - x\| \le \varepsilon. \tag{1}$$
#
# The codes $z = \mathcal{E}(x)$ live in the **latent space** $\mathcal{Z} \subset \mathbb{R}^d$. The bottleneck
# $d \ll n$ is what makes it a compression: the identity map is out of reach, so the network has to find the
# structure of the data.

# %% [markdown] slideshow={"slide_type": "notes"}
# Draw the hourglass: n pixels in, d numbers in the middle, n pixels out. Ask: with d = n, what is the best
# autoencoder? Expected answer: the identity, which learns nothing; the bottleneck forces it to find structure.

# %% [markdown] slideshow={"slide_type": "subslide"}
# The course's `Autoencoder` is two multi-layer perceptrons; its encoder and decoder are
#
# ```python
# self.encoder = mlp([n, *hidden, d])               # E: R^n -> R^d
# self.decoder = mlp([d, *reversed(hidden), n])     # D: R^d -> R^n
# ```
#
# and `encode(x)` flattens the image first, `decode(z)` gives the image its shape back.

# %%
seed_everything(1)
ae = Autoencoder(train.shape, latent_dim=LATENT, hidden=HIDDEN, recon="bce").to(device)
x = test.images[:5]
z = ae.encode(x)            # z = E(x)
x_out = ae.decode(z)        # D(z): one value per pixel (logits, see section 2)
print(f"x: {tuple(x.shape)} -> z: {tuple(z.shape)} -> D(z): {tuple(x_out.shape)};"
      f" compression {n_pixels} -> {LATENT} numbers ({n_pixels / LATENT:.0f}x)")
assert z.shape == (len(x), LATENT), "the encoder maps R^n to R^d"
assert x_out.shape == x.shape, "the decoder maps R^d back to R^n (reshaped as an image)"

# %% slideshow={"slide_type": "subslide"}
ax = plots.show_images(train.images[:4 * N_SHOW].cpu(), nrow=2 * N_SHOW,
                       title=f"Training images: {train.name}, {tuple(train.shape)}, {len(train)} examples")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Reconstruction losses
#
# We look for the weights that minimise a reconstruction loss, averaged over the data:
#
# $$\theta^\star = \arg\min_\theta\ \mathcal{L}(x, \hat x), \qquad \hat x = \mathcal{D}(\mathcal{E}(x)). \tag{2}$$
#
# The slides leave the choice of $\mathcal{L}$ to the task. Three common ones, summed over the $n$ pixels:
#
# | loss | $\mathcal{L}(x, \hat x)$ | penalises |
# |---|---|---|
# | squared error (MSE) | $\sum_i (x_i - \hat x_i)^2$ | large errors much more than small ones (quadratic) |
# | absolute error (MAE) | $\sum_i \lvert x_i - \hat x_i \rvert$ | every unit of error the same (linear), so it is robust to a few bad pixels |
# | binary cross-entropy (BCE) | $-\sum_i \big[x_i \log \hat x_i + (1 - x_i) \log(1 - \hat x_i)\big]$ | confident mistakes without bound: $\hat x_i \to 0$ where $x_i = 1$ costs $+\infty$ |
#
# The BCE is the negative log-likelihood of a Bernoulli decoder $p_\theta(x \mid z)$ with means $\hat x$: it
# is in nats, and it comes back in lesson 3 as the reconstruction term of the VAE.

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask: MNIST pixels are grey levels in [0, 1], not 0/1; is the BCE still a valid loss? Expected answer: yes as a
# loss (minimum at x_hat = x), but not a normalised likelihood of grey values, and its floor is not 0
# (next slide). Lesson 4 returns to the choice of likelihood.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **BCE with logits.** The decoder outputs *logits* $\ell_i$ and $\hat x_i = \mathrm{sigmoid}(\ell_i)$. Written in
# $\ell$, the BCE of one pixel is
#
# $$-\big[x \log \sigma(\ell) + (1 - x) \log (1 - \sigma(\ell))\big] = \max(\ell, 0) - x\,\ell + \log\big(1 + e^{-|\ell|}\big),$$
#
# which never takes the log of a probability that rounded to 0. On grey pixels ($0 < x < 1$) its minimum,
# at $\hat x = x$, is not 0 but the binary entropy $H(x) = -x \log x - (1-x)\log(1-x)$.

# %%
def bce_with_logits(logits, x):
    """Per-pixel BCE from logits, in the stable form max(l, 0) - x l + log(1 + exp(-|l|))."""
    return logits.clamp(min=0) - x * logits + torch.log1p(torch.exp(-logits.abs()))


def bce_naive(logits, x):
    """The same formula from probabilities (what not to do)."""
    p = torch.sigmoid(logits)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p))


# %% slideshow={"slide_type": "subslide"}
l_ = torch.linspace(-8, 8, 161, dtype=torch.float64)
x_ = torch.rand(161, dtype=torch.float64, generator=generator)
assert torch.allclose(bce_with_logits(l_, x_), bce_naive(l_, x_), atol=1e-10), "same formula where both are finite"
assert torch.allclose(bce_with_logits(l_, x_), F.binary_cross_entropy_with_logits(l_, x_, reduction="none"))
far = torch.tensor([40.0, -40.0])     # confident logits, float32
print("BCE of a pixel with x = 0: stable", bce_with_logits(far, torch.zeros(2)).tolist(),
      "| naive", bce_naive(far, torch.zeros(2)).tolist())
assert torch.isinf(bce_naive(far, torch.zeros(2))[0]), "sigmoid(40) rounds to 1 in float32 and log(1 - 1) = -inf"
assert torch.allclose(bce_with_logits(far, torch.zeros(2)), torch.tensor([40.0, 0.0]), atol=1e-6)

# %% slideshow={"slide_type": "subslide"}
fig = figs.pixel_penalties(bce_with_logits, targets=(1.0, 0.5))
h_half = bce_with_logits(torch.tensor(0.0), torch.tensor(0.5))
assert abs(h_half - math.log(2)) < 1e-6, "at x = x_hat = 0.5 the BCE is the binary entropy H(0.5) = log 2"
e_ = torch.linspace(-1, 1, 201)
assert (e_.abs() >= e_**2).all(), "for errors in [-1, 1] the absolute error is above the squared error"

# %% [markdown] slideshow={"slide_type": "notes"}
# On the right, the BCE curve has its minimum at the right place (x_hat = 0.5) but not at 0: its floor is the
# entropy of the target, log 2 here. That is why BCE values on grey-level images never reach 0, and why
# comparing models by BCE is fine but reading it as "error" is not. The MAE is above the MSE everywhere an
# error is below 1, which is always the case for pixels in [0, 1].

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Training: backpropagation through decoder and encoder
#
# An autoencoder trains like any network: stochastic gradient descent on (2), gradients by backpropagation.
# Encoder and decoder are trained **jointly**: the gradient flows from the loss through $\mathcal{D}$, then
# through $\mathcal{E}$. One step, written out (BCE with logits, nats per example):

# %%
optimizer = torch.optim.Adam(ae.parameters(), lr=LR)
x, _ = next(train.batches(BATCH, generator=generator))

z = ae.encoder(x.flatten(1))                   # E(x): (B, d)
logits = ae.decoder(z).view_as(x)              # D(z): logits of x_hat, (B, 1, H, W)
loss = bce_with_logits(logits, x).flatten(1).sum(1).mean()   # sum over pixels, mean over the batch
optimizer.zero_grad()
loss.backward()                                # dL/d(decoder), then dL/d(encoder)
optimizer.step()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Checks: every weight of the encoder received a gradient through the decoder, and the loss we wrote is the
# model's own `loss` (which `fit` minimises).

# %%
for name, part in [("encoder", ae.encoder), ("decoder", ae.decoder)]:
    for pname, p in part.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"
with torch.no_grad():
    recomputed = bce_with_logits(ae.decoder(ae.encoder(x.flatten(1))).view_as(x), x).flatten(1).sum(1).mean()
    assert torch.allclose(recomputed, ae.loss(x)["loss"], rtol=1e-5), "our loss = Autoencoder.loss"
    assert torch.allclose(recomputed, reconstruction_error(ae.decode(ae.encode(x)), x, "bce").mean(), rtol=1e-5)
print(f"loss of the batch before the step: {loss.item():.2f} nats per example")

# %% [markdown] slideshow={"slide_type": "notes"}
# Walk through the five lines: encode, decode, loss in nats per example, backward, step. Ask: which weights does
# the loss depend on directly, and how do the encoder's weights get a gradient? Expected answer: only on the
# decoder's output; the encoder gets its gradient through the decoder (chain rule), hence "jointly".

# %% [markdown] slideshow={"slide_type": "subslide"}
# `fit` repeats that step over mini-batches and epochs, logs the loss terms for the training and the test data,
# and saves the weights (`checkpoint=`): running the cell again loads them.

# %%
seed_everything(1)
ae = Autoencoder(train.shape, latent_dim=LATENT, hidden=HIDDEN, recon="bce")
hist_ae = fit(ae, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-ae")
print(hist_ae.summary())

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    x_test = test.images
    x_rec = ae.reconstruct(x_test)                     # sigmoid(D(E(x)))
    err = (x_rec - x_test).flatten(1).norm(dim=1)      # ||H(x) - x||, one per test image
    err_mean_image = (train.images.mean(0) - x_test).flatten(1).norm(dim=1)   # "d = 0": always the mean image
eps = err.quantile(0.95).item()
print(f"||H(x) - x|| <= eps = {eps:.2f} for 95% of the test images "
      f"(the mean image: {err_mean_image.quantile(0.95):.2f})")
assert hist_ae.train["loss"][-1] < hist_ae.train["loss"][0], "training lowered the loss"
assert eps < 0.75 * err_mean_image.quantile(0.95), "the codes carry information: much better than the mean image"

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
hist_ae.plot(terms=["loss"], ax=axes[0], title="Autoencoder training (BCE)")
plots.show_reconstructions(x_test.cpu(), x_rec.cpu(), n=N_SHOW, ax=axes[1],
                           title="Test images (top) and their reconstructions H(x) (bottom)")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The same reconstruction under the three losses
#
# Per-pixel penalty maps of the trained autoencoder's reconstructions. For the BCE we show the *excess*
# over its floor, $\mathrm{BCE}(x, \hat x) - H(x)$, which is 0 where $\hat x = x$. That excess is a
# **Kullback-Leibler (KL) divergence**, the measure of mismatch between two distributions that the rest of the
# course uses (lesson 2 studies it). For distributions $P$ and $Q$ over the same outcomes $k$,
#
# $$\mathrm{KL}(P \,\|\, Q) = \sum_k P(k) \log \frac{P(k)}{Q(k)} \ \text{nats} \;\ge 0, \tag{KL}$$
#
# with equality only when $P = Q$; it is not symmetric ($\mathrm{KL}(P \| Q) \ne \mathrm{KL}(Q \| P)$ in general), and for
# densities the sum becomes an integral. For one pixel, $P = \mathrm{Bernoulli}(x)$ and $Q = \mathrm{Bernoulli}(\hat x)$ give
# $x \log \frac{x}{\hat x} + (1 - x) \log \frac{1 - x}{1 - \hat x} = \mathrm{BCE}(x, \hat x) - H(x)$.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    xs, logit_s = x_test[:N_SHOW], ae.decode(ae.encode(x_test[:N_SHOW]))
    xh = torch.sigmoid(logit_s)
    maps = {
        "(x - x_hat)^2": (xs - xh) ** 2,
        "|x - x_hat|": (xs - xh).abs(),
        "BCE - H(x)": bce_with_logits(logit_s, xs) - bce_with_logits(torch.logit(xs, eps=1e-6), xs),
    }
    per_example = {k: reconstruction_error(v, xs, k) for k, v in [("mse", xh), ("mae", xh), ("bce", logit_s)]}


# %% slideshow={"slide_type": "subslide"}
fig = figs.penalty_maps(xs, xh, maps)

# %% slideshow={"slide_type": "subslide"}
assert torch.allclose(maps["(x - x_hat)^2"].flatten(1).sum(1), per_example["mse"], rtol=1e-5)
assert torch.allclose(maps["|x - x_hat|"].flatten(1).sum(1), per_example["mae"], rtol=1e-5)
assert (per_example["mae"] >= per_example["mse"]).all(), "|e| >= e^2 when |e| <= 1: the MAE is the larger sum"
kl_pixel = xs * torch.log(xs.clamp_min(1e-6) / xh) + (1 - xs) * torch.log((1 - xs).clamp_min(1e-6) / (1 - xh))
assert torch.allclose(maps["BCE - H(x)"], kl_pixel, atol=1e-3, rtol=1e-3), "BCE - H(x) = KL(Ber(x) || Ber(x_hat))"
assert (maps["BCE - H(x)"] > -1e-4).all(), "BCE - H(x) is a KL divergence: non-negative"
print({k: [round(v, 2) for v in vals.tolist()[:4]] for k, vals in per_example.items()})
worst = {k: v.flatten().sort(descending=True).values for k, v in maps.items()}
share = {k: (v[: len(v) // 20].sum() / v.sum()).item() for k, v in worst.items()}   # worst 5 % of pixels
print("share of each penalty carried by the worst 5 % of pixels:", {k: f"{v:.0%}" for k, v in share.items()})
assert share["(x - x_hat)^2"] > share["|x - x_hat|"], "the squared error concentrates on the worst pixels"

# %% [markdown] slideshow={"slide_type": "notes"}
# The squared-error map is dark except on the worst pixels: it concentrates the penalty on large errors (the
# share printed above), and an MSE-trained model happily leaves many small errors (a blur). The absolute-error
# map lights up more evenly. The BCE excess is largest on pixels predicted confidently on the wrong side.
# Ask: which loss would you pick to get sharp strokes? Expected answer: none of the three fixes blur by itself;
# the blur comes from averaging over what the code cannot tell apart (lesson 4 comes back to it).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Denoising autoencoder
#
# Train the network to undo a corruption: feed $\tilde x = x + \delta$ and reconstruct the *clean* $x$:
#
# $$\|\mathcal{H}(\tilde x) - x\| \le \varepsilon, \qquad \tilde x = x + \delta. \tag{3}$$
#
# Here $\delta \sim \mathcal{N}(0, \sigma^2 I)$ and $\tilde x$ is clipped to $[0, 1]$. The network cannot copy its
# input any more: it has to learn what digits look like (Vincent et al., 2008). The corruption is two lines,
# and the loss compares the output with the clean $x$:
#
# ```python
# x_tilde = (x + sigma * torch.randn_like(x)).clamp(0, 1)      # Autoencoder.corrupt
# loss = reconstruction_error(self.decode(self.encode(x_tilde)), x, "bce").mean()   # target: the clean x
# ```
#
# (`Autoencoder(..., noise=sigma)` does this in training mode; in evaluation mode it reconstructs its input.)

# %% slideshow={"slide_type": "subslide"}
seed_everything(1)
dae = Autoencoder(train.shape, latent_dim=LATENT, hidden=HIDDEN, recon="bce", noise=NOISE)
hist_dae = fit(dae, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-dae")
print(hist_dae.summary())

noise_gen = make_generator(123)
with torch.no_grad():
    delta = NOISE * torch.randn(x_test.shape, generator=noise_gen).to(device)
    x_noisy = (x_test + delta).clamp(0, 1)                               # x_tilde, a fixed draw
    denoised, plain = dae.reconstruct(x_noisy), ae.reconstruct(x_noisy)
    mse = {name: reconstruction_error(v, x_test, "mse").mean().item()
           for name, v in [("noisy input", x_noisy), ("plain AE", plain), ("denoising AE", denoised)]}
print("squared error to the clean image, per example:", {k: round(v, 2) for k, v in mse.items()})
assert mse["denoising AE"] < mse["noisy input"], "the denoising AE removes noise: its output is closer to x than x_tilde"
assert mse["denoising AE"] < 0.85 * mse["plain AE"], "on noisy inputs the denoising AE beats the plain AE"

# %% slideshow={"slide_type": "subslide"}
k = N_SHOW
grid = torch.cat([x_noisy[:k], plain[:k], denoised[:k], x_test[:k]]).cpu()
ax = plots.show_images(grid, nrow=k, title=f"Rows: noisy input (σ = {NOISE}), plain AE, denoising AE, clean image")

# %% [markdown] slideshow={"slide_type": "notes"}
# Read the rows top to bottom: the plain AE, never trained on noise, returns smudges (some of them the wrong
# digit); the denoising AE returns a clean digit, closer to the clean image (the errors printed above).
# Ask: why can the denoising AE not just copy its input? Expected answer: the target is the clean x, and copying
# the noisy input costs the noise's squared error; it must learn what a digit looks like to remove it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Convolutional autoencoder
#
# Images have local structure: a convolution applies the same small filter everywhere, so a layer with
# $c_{\text{in}}$ input channels, $c_{\text{out}}$ filters of size $k \times k$ has
#
# $$c_{\text{out}}\,(c_{\text{in}}\,k^2 + 1) \ \text{parameters, whatever the image size,}$$
#
# where a dense layer from $n$ pixels to $h$ units has $h\,(n + 1)$. `ConvAutoencoder` uses two stride-2
# convolutions down, a linear layer to the code $z \in \mathbb{R}^d$, and the mirror image up with transposed
# convolutions (Masci et al., 2011; Guo et al., 2017, the slides' example).

# %% slideshow={"slide_type": "subslide"}
seed_everything(1)
cae = ConvAutoencoder(train.shape, latent_dim=LATENT, channels=CHANNELS, recon="bce")
print(cae.encoder)


# %% slideshow={"slide_type": "subslide"}
def n_params(module):
    return sum(p.numel() for p in module.parameters())


conv = [m for m in cae.encoder if isinstance(m, torch.nn.Conv2d)]
for m in conv:
    c_out, c_in, kh, kw = m.weight.shape
    assert n_params(m) == c_out * (c_in * kh * kw + 1), "c_out (c_in k^2 + 1) parameters"
bigger = ConvAutoencoder((1, 4 * train.shape[1], 4 * train.shape[2]), latent_dim=LATENT, channels=CHANNELS)
assert [n_params(m) for m in bigger.encoder if isinstance(m, torch.nn.Conv2d)] == [n_params(m) for m in conv], \
    "a convolution's parameter count does not depend on the image size"
assert n_params(ae.encoder[0]) == HIDDEN[0] * (n_pixels + 1), "a dense layer's grows with the number of pixels"

# %% slideshow={"slide_type": "subslide"}
hist_cae = fit(cae, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-cae")
print(hist_cae.summary())

pca_d = PCA(LATENT).fit(train.images)
with torch.no_grad():
    table = {
        f"PCA, {LATENT} components": (n_pixels * (LATENT + 1), pca_d.reconstruct(x_test)),
        "fully connected AE": (n_params(ae), ae.reconstruct(x_test)),
        "convolutional AE": (n_params(cae), cae.reconstruct(x_test)),
    }
    table = {k: (p, reconstruction_error(r, x_test, "mse").mean().item()) for k, (p, r) in table.items()}
print(f"{'model (d = ' + str(LATENT) + ')':<24} {'parameters':>10} {'test MSE per image':>20}")
for k, (p, e) in table.items():
    print(f"{k:<24} {p:>10,} {e:>20.3f}")

# %% slideshow={"slide_type": "subslide"}
fig = figs.model_bars(table, LATENT)
assert table["convolutional AE"][0] < table["fully connected AE"][0], "weight sharing: fewer parameters"
assert table["convolutional AE"][1] < min(table[k][1] for k in table if k != "convolutional AE"), \
    "and the lowest error of the three"

# %% [markdown] slideshow={"slide_type": "notes"}
# The convolutional AE has several times fewer parameters than the fully connected one and the lowest error of
# the three (asserted above). The fully connected AE was trained on the BCE, not on the squared error that PCA
# minimises, so it need not beat PCA on this measure: compare the bars. Ask: where do the fully connected AE's
# parameters go? Expected answer: the first layer, 784 x 256 weights; the convolutions need a few thousand.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Non-linear dimensionality reduction: the autoencoder vs PCA
#
# PCA is the best **linear** autoencoder for the squared error: with $W \in \mathbb{R}^{n \times d}$ the $d$
# leading principal directions and $m$ the mean, $\mathcal{E}(x) = W^\top (x - m)$ and $\mathcal{D}(z) = W z + m$
# (Baldi & Hornik, 1989). Its training error is the variance it throws away,
#
# $$\frac1N \sum_{k=1}^N \|\mathcal{D}(\mathcal{E}(x_k)) - x_k\|^2 = \sum_{j > d} \lambda_j, \tag{4}$$
#
# $\lambda_j$ the eigenvalues of the data covariance (Eckart-Young). An autoencoder with non-linear layers can
# bend its "subspace": with the same $d = 2$ it should lose less. PCA by an SVD:

# %% slideshow={"slide_type": "subslide"}
X = train.flat().double()
m = X.mean(0)
_, S, Vh = torch.linalg.svd(X - m, full_matrices=False)     # X - m = U S V^T
W = Vh[:2].T                                                # n x 2: the leading principal directions
z_pca = (X - m) @ W                                         # E(x) = W^T (x - m)
x_pca = z_pca @ W.T + m                                     # D(z) = W z + m

lam = S**2 / len(X)                                         # eigenvalues of the covariance
assert torch.allclose(((x_pca - X) ** 2).sum(1).mean(), lam[2:].sum()), "eq. (4): error = discarded variance"
pca2 = PCA(2).fit(train.images)                             # the same, from course_lib
assert torch.allclose(pca2.reconstruct(train.images).flatten(1).double(), x_pca, atol=1e-4)
print(f"2 principal components explain {lam[:2].sum() / lam.sum():.0%} of the variance")

# %% slideshow={"slide_type": "subslide"}
seed_everything(1)
ae2 = Autoencoder(train.shape, latent_dim=2, hidden=HIDDEN, recon="mse")    # the same loss as PCA
hist_ae2 = fit(ae2, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-ae2")
print(hist_ae2.summary())

with torch.no_grad():
    err_ae2 = reconstruction_error(ae2.reconstruct(x_test), x_test, "mse").mean().item()
    err_pca2 = reconstruction_error(pca2.reconstruct(x_test), x_test, "mse").mean().item()
    codes_ae2, codes_pca2 = ae2.encode(x_test), pca2.transform(x_test)
print(f"test squared error per image with d = 2: autoencoder {err_ae2:.3f}, PCA {err_pca2:.3f}")
assert err_ae2 < 0.9 * err_pca2, "with d = 2 the non-linear autoencoder reconstructs the test set better than PCA"

# %% slideshow={"slide_type": "subslide"}
fig = figs.code_planes({"PCA, 2 components": (codes_pca2, err_pca2), "Autoencoder, d = 2": (codes_ae2, err_ae2)}, test)

# %% [markdown] slideshow={"slide_type": "subslide"}
# How well do the 2-D codes separate the classes? Classify each test code by the majority class of its 10
# nearest training codes (no training involved):

# %%
def knn_accuracy(codes_tr, labels_tr, codes_te, labels_te, k=10):
    """Share of test codes whose k nearest training codes vote for their class."""
    idx = torch.cdist(codes_te, codes_tr).topk(k, largest=False).indices
    return (labels_tr[idx].mode(1).values == labels_te).float().mean().item()


with torch.no_grad():
    acc_ae2 = knn_accuracy(ae2.encode(train.images), train.labels, codes_ae2, test.labels)
    acc_pca2 = knn_accuracy(pca2.transform(train.images), train.labels, codes_pca2, test.labels)
print(f"10-nearest-neighbour accuracy on 2-D codes: autoencoder {acc_ae2:.0%}, PCA {acc_pca2:.0%}")
assert acc_ae2 > acc_pca2 + 0.1, "the autoencoder's 2-D codes separate the classes better than PCA's"

# %% [markdown] slideshow={"slide_type": "notes"}
# Hinton & Salakhutdinov (2006, Fig. 3) show the same comparison on MNIST; here the neighbour vote makes it a
# number. Note the axes: the autoencoder's codes have no reason to be centred or of unit scale, a point that
# matters in the next section. Ask: is the autoencoder's plane a good place to sample from? Let them guess.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The autoencoder as a generative model?
#
# The decoder maps codes to images: **decode = generate**.
# 1. choose a code $z \in \mathbb{R}^d$ at random;
# 2. decode it, $\hat x = \mathcal{D}(z)$.
#
# **Micro-quiz** (seed 001). What do we get in practice?
# 1. a plausible synthetic observation;
# 2. a poor reconstruction.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    z_normal = torch.randn(N_GEN, LATENT, generator=generator).to(device)     # z ~ N(0, I)
    x_normal = ae.generate(z_normal)
ax = plots.show_images(x_normal[:2 * N_SHOW].cpu(), nrow=N_SHOW,
                       title=f"Decoded z ~ N(0, I), d = {LATENT}: the plain autoencoder as a generator")

# %% [markdown] slideshow={"slide_type": "notes"}
# Let the room vote before showing the fragment. Expected answer: mostly (2), smudges. Then ask: is that because
# the decoder is bad, or because we drew the codes from the wrong place? The next slides separate the two.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where are the codes?
#
# Nothing in the training fixed the position or the scale of the codes. Fit a Gaussian $\mathcal{N}(m, S)$ to the
# training codes and compare it with the $\mathcal{N}(0, I)$ we drew from. For two Gaussians the KL divergence
# (KL) of section 3, written with an integral, has a closed form (seed 001, "Régularisation"; lesson 3 derives the diagonal case):
#
# $$\mathrm{KL}\big(\mathcal{N}(m, S) \,\|\, \mathcal{N}(0, I)\big) = \tfrac12\big(\operatorname{tr} S + m^\top m - d - \log\det S\big). \tag{5}$$

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    codes_train = ae.encode(train.images)
    m_codes, S_codes = codes_train.mean(0), torch.cov(codes_train.T)
    kl_codes = 0.5 * (S_codes.trace() + m_codes @ m_codes - LATENT - torch.logdet(S_codes))    # eq. (5), nats
print(f"KL(N(m, S) || N(0, I)) = {kl_codes:.1f} nats for d = {LATENT}; code means {m_codes.abs().mean():.1f} "
      f"in absolute value, standard deviations {S_codes.diag().sqrt().mean():.1f} (N(0, I): 0 and 1)")
assert kl_codes > LATENT, "the codes are far from N(0, I): more than 1 nat per latent dimension"

# %% slideshow={"slide_type": "subslide"}
fig = figs.code_histograms(codes_train, shown=4)

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Sample the Gaussian fitted to the codes
#
# Be fair to the autoencoder: draw the codes from the Gaussian **fitted** to the training codes instead of
# $\mathcal{N}(0, I)$. Its maximum-likelihood fit is the sample mean $m$ and covariance $S$ computed above; with
# $S = L L^\top$ (Cholesky), $z = m + L\varepsilon$, $\varepsilon \sim \mathcal{N}(0, I)$, is a draw, and
# $\hat x = \mathcal{D}(z)$ a generated image. This is a real method, not a straw man: Ghosh et al. (2020, *From
# variational to deterministic autoencoders*) fit a Gaussian, or a mixture of 10, to the codes of a regularised
# deterministic autoencoder after training ("ex-post density estimation"), and Dai & Wipf (2019, *Diagnosing and
# enhancing VAE models*) fit a second VAE to the codes of a first.
#
# To judge it we need a **variational autoencoder** (VAE) trained on the same digits: an autoencoder whose encoder
# outputs a Gaussian distribution $q_\phi(z \mid x)$ over codes instead of one code, trained so that the codes follow
# a prior $p(z) = \mathcal{N}(0, I)$ (end of this lesson; lessons 2 and 3 build it). We use the VAE of
# [lesson 3](03_vae.ipynb), with its sizes and training (binarized pixels; the same checkpoint, so whichever
# lesson runs first trains it). Its generator is $z \sim \mathcal{N}(0, I)$, decoded.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    L_codes = torch.linalg.cholesky(S_codes)
    z_fitted = m_codes + torch.randn(N_GEN, LATENT, generator=generator).to(device) @ L_codes.T    # z ~ N(m, S)

seed_everything(0)
vae = VAE(train.shape, **VAE_SIZES)
test_bin = test.map(binarize_static)
hist_vae = fit(vae, train, test_bin, **VAE_TRAINING, transform=binarize_dynamic, checkpoint="lesson03-vae-mnist")
print(hist_vae.summary())
assert torch.allclose(z_fitted.mean(0), m_codes, atol=0.2 * S_codes.diag().sqrt().max()), "draws centred on m"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Two scores of a generator, from the course's digit classifier on $N_{\text{gen}}$ decoded draws: the
# **confidence** (its largest class probability, averaged: how digit-like the images are) and the **class entropy**
# (the entropy of the share of draws given to each class, in nats: $\log 10 = 2.30$ when every class gets 10 %).
# Reference: the reconstructions $\mathcal{D}(\mathcal{E}(x))$ of the test images. For the autoencoder's codes, also
# the distance of each code to its nearest training code.

# %% slideshow={"slide_type": "subslide"}
clf = get_classifier(train.name)            # the course's digit classifier (97.7 % on the quick test digits)


def digit_scores(images):
    """(confidence, class entropy in nats) of a set of images, by the course's classifier."""
    probs = clf.probs(images)
    share = torch.bincount(probs.argmax(1), minlength=10).float() / len(images)
    return probs.max(1).values.mean().item(), -(share * share.clamp_min(1e-12).log()).sum().item()


# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    sets = {"test codes E(x)": ae.encode(test.images), "fitted N(m, S)": z_fitted, "N(0, I)": z_normal}
    nearest = {k: torch.cdist(z, codes_train).min(1).values.median().item() for k, z in sets.items()}
    decoded = {k: ae.generate(z) for k, z in sets.items()}
    decoded["VAE, z ~ N(0, I)"] = vae.generate(torch.randn(N_GEN, vae.latent_dim, generator=generator).to(device))
    scores = {k: digit_scores(images) for k, images in decoded.items()}
confidence = {k: c for k, (c, _) in scores.items()}
for k, (c, h) in scores.items():
    print(f"{k:>16}: classifier confidence {c:.2f}, class entropy {h:.2f} nats"
          + (f", median distance to the nearest training code {nearest[k]:.2f}" if k in nearest else ""))

# %% slideshow={"slide_type": "skip"}
assert nearest["fitted N(m, S)"] > 1.3 * nearest["test codes E(x)"], "fitted draws land far from the codes"
assert confidence["test codes E(x)"] > confidence["fitted N(m, S)"] + 0.05, "their decodings are less digit-like"
assert confidence["fitted N(m, S)"] > confidence["N(0, I)"] + 0.15, "but far more digit-like than N(0, I) draws"
assert confidence["fitted N(m, S)"] > confidence["VAE, z ~ N(0, I)"] - pick(0.0, 0.05), "as digit-like as VAE draws"
assert abs(scores["fitted N(m, S)"][1] - scores["VAE, z ~ N(0, I)"][1]) < 0.1, "as evenly spread over the classes"

# %% slideshow={"slide_type": "subslide"}
fig = figs.generator_scores(scores, f"Decoded codes, {N_GEN} draws each (d = {LATENT})")

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    rows = torch.cat([decoded[k][:N_SHOW] for k in decoded])
ax = plots.show_images(rows.cpu(), nrow=N_SHOW, title="Rows: reconstructions of test digits; decoded N(m, S) "
                       "draws; decoded N(0, I) draws; VAE prior draws")

# %% [markdown] slideshow={"slide_type": "notes"}
# Say: N(0, I) was simply the wrong place (the KL above). Drawing from the Gaussian fitted to the codes fixes
# most of it: the classifier is at least as sure of those images as of a VAE's samples, and spreads them over the
# classes as evenly (the numbers above; the next slide gives them over five seeds). The draws still
# land between the codes, where the decoder was never trained, and are less digit-like than reconstructions.
# Ask: in 16 dimensions, why is a fitted Gaussian draw far from every one of 4,000 codes? Expected answer: the
# codes fill a thin, curved part of the ellipsoid; volume grows like r^16.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Then what does the VAE add?
#
# Not better-looking samples, by this measure. Over course seeds 0-4 (quick mode, 1,000 draws each), the classifier
# is at least as sure of the fitted-Gaussian draws as of the VAE's prior draws (confidence 0.80 ± 0.01 vs
# 0.75 ± 0.01; reconstructions 0.89-0.90, $\mathcal{N}(0, I)$ draws 0.49-0.57) and both spread over the classes
# alike (class entropy 2.24 ± 0.01 vs 2.21 ± 0.01 nats). The asserts above check, on every seed, that the fitted
# draws are no less digit-like than the VAE's (full mode: within 0.05) and within 0.1 nat in class entropy.
# What the VAE adds is a **probabilistic model** with three things the fitted Gaussian does not give:
# - a **likelihood bound**: its loss is the negative evidence lower bound, $-\mathrm{ELBO} \ge -\log p_\theta(x)$
#   (lesson 2), in nats per image, so models can be compared on held-out data (below: against the exact
#   likelihood of the *independent-pixel* model, each pixel on with its frequency in the training set). The
#   autoencoder with a fitted Gaussian has no $\log p(x)$: its decoder is deterministic, so its images lie on a
#   $d$-dimensional surface of $\mathbb{R}^n$;
# - a **posterior** $q_\phi(z \mid x)$ per image, with a spread $\sigma_\phi(x)$ that says how precisely the code is known;
# - a **rate**: the KL term $\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))$ counts the nats the code carries about $x$, and
#   the prior is part of the objective rather than fitted afterwards. A deterministic code has no finite rate.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    vae_terms = evaluate_terms(vae, test_bin)                              # recon + KL, nats per binarized image
    sigma_post = vae.encode(test_bin.images).stddev                        # sigma_phi(x), one per image and dim
    p_on = train.images.mean(0, keepdim=True).clamp(1e-3, 1 - 1e-3)       # independent pixels, the mean image
    nll_indep = reconstruction_error(torch.logit(p_on).expand_as(test_bin.images), test_bin.images, "bce").mean()
print(f"VAE on the binarized test digits: -ELBO {vae_terms['neg_elbo']:.1f} nats per image "
      f"(reconstruction {vae_terms['recon']:.1f} + rate {vae_terms['kl']:.1f}); independent-pixel model {nll_indep:.1f}; "
      f"posterior spread: median sigma {sigma_post.median():.2f} (prior: 1)")
assert vae_terms["neg_elbo"] < nll_indep - 50, "the bound certifies a model far better than independent pixels"
assert 5 < vae_terms["kl"] < vae_terms["neg_elbo"], "the code carries a measured number of nats"
assert sigma_post.median() < 0.5, "the posterior pins most codes down well below the prior's spread"

# %% [markdown] slideshow={"slide_type": "notes"}
# The honest summary of this section: for sampling digits, "fit a Gaussian to the codes afterwards" is a fine
# baseline (Ghosh et al. 2020 build their generative model on it). The VAE's case rests on the three numbers
# printed here: a bound on log p(x) in nats (in quick mode the independent-pixel model is some 90 nats worse),
# a posterior spread per code dimension (median sigma well below the prior's 1), and a rate of some 20 nats that
# the training objective itself controls (lesson 4 moves it with beta). Ask: which of the three would you need to
# detect an out-of-distribution image? Expected answer: the likelihood bound.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### In two dimensions we can look: the 2-D autoencoder's code plane
#
# Take the box that holds the training codes of the $d = 2$ autoencoder of section 6 and draw codes uniformly
# in it. A draw is **far** when it is farther from every training code than 95 % of the *test* codes are.

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    codes2 = ae2.encode(train.images)
    lo, hi = codes2.min(0).values, codes2.max(0).values                         # the box of the codes
    u = lo + (hi - lo) * torch.rand(N_GEN, 2, generator=generator).to(device)   # uniform draws in the box
    radius = torch.cdist(ae2.encode(test.images), codes2).min(1).values.quantile(0.95)
    far = torch.cdist(u, codes2).min(1).values > radius
    probs_u = clf.probs(ae2.generate(u))
    probs_rec = clf.probs(ae2.reconstruct(test.images))
    freq = torch.bincount(probs_u.argmax(1), minlength=10).float() / N_GEN      # classes the box produces
    grid_images = ae2.generate(figs.box_grid_codes(lo, hi, 15).to(device))


# %% slideshow={"slide_type": "subslide"}
fig = figs.latent_box(codes2, train.labels, u[:300], far[:300], lo, hi, grid_images, train.classes)

# %% [markdown] slideshow={"slide_type": "subslide"}
# What the figure and the numbers below say:
# - **holes**: a large part of the box is far from every code (open circles);
# - yet the 2-D decoder draws a digit almost everywhere: far from the codes it *extrapolates* the digits at the
#   edge of the cloud, and the classifier is *surer* of those far draws than of the 2-D model's reconstructions of
#   test digits, which are blurry (a 2-number code loses detail): over course seeds 0-4, confidence 0.93-0.95 vs
#   0.78-0.83; the draws it is unsure of (blends) sit where two classes meet: their nearest training codes are of
#   mixed classes;
# - what fails is the **distribution**: uniform codes give each class in proportion to the area of its
#   region, not the 10 % of each class in the data.

# %% slideshow={"slide_type": "subslide"}
tv = 0.5 * (freq - 0.1).abs().sum()               # total variation distance to 10 % per class
print(f"far from every code: {far.float().mean():.0%} of the box")
print(f"classifier confidence: far draws {probs_u[far].max(1).values.mean():.2f}, "
      f"near draws {probs_u[~far].max(1).values.mean():.2f}, test reconstructions {probs_rec.max(1).values.mean():.2f}")
print("classes of decoded uniform draws:", {c: f"{f:.0%}" for c, f in zip(train.classes, freq.tolist())},
      f"| total variation from 10 % each: {tv:.2f}")
assert far.float().mean() > 0.25, "more than a quarter of the box is far from every training code"
assert probs_u[far].max(1).values.mean() > probs_rec.max(1).values.mean() + 0.05, "far draws: surer than reconstructions"
assert freq.max() > 0.2 and tv > 0.2, "the box over-produces some classes: the proportions are wrong"
labs = train.labels[torch.cdist(u, codes2).topk(10, largest=False).indices]        # classes of the 10 nearest codes
purity, unsure = (labs == labs.mode(1).values[:, None]).float().mean(1), probs_u.max(1).values < 0.6
print(f"share of the majority class among the 10 nearest codes: unsure draws {purity[unsure].mean():.2f}, "
      f"others {purity[~unsure].mean():.2f}")
assert purity[unsure].mean() < purity[~unsure].mean() - 0.1, "the unsure draws sit where classes meet"

# %% [markdown] slideshow={"slide_type": "notes"}
# The honest lesson of this slide: in 2-D the decoder is a smooth sheet of images, so it has no room for
# garbage; the failure is that we do not know *where* to sample to get the data's proportions (here zeros and
# threes dominate). In 16-D (previous slide) there is also room between the codes, and decoded random codes are
# less digit-like. Ask: which distribution of codes would give the right proportions? Expected answer: the
# distribution of the training codes themselves, which we do not know in closed form; the VAE imposes one.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### What the VAE changes
#
# - The encoder outputs a **distribution** $q_\phi(z \mid x) = \mathcal{N}(\mu_x, \operatorname{diag} \sigma_x^2)$,
#   not a point: one $x$ corresponds to many nearby codes, so the decoder is trained on a neighbourhood, not
#   only at isolated points.
# - A KL term (section 3) pulls every $q_\phi(z \mid x)$ towards a prior $p(z) = \mathcal{N}(0, I)$ *during* training,
#   where the fitted Gaussian of this section is chosen *after* it.
# - Then generating is: $z \sim p(z)$, $x \sim p_\theta(x \mid z)$, and the objective bounds $\log p_\theta(x)$.
#
# As measured above, a Gaussian fitted to an autoencoder's codes already samples about as well by our classifier;
# the VAE's gain is the model: a likelihood bound, a posterior and a rate.
#
# [Lesson 2](02_elbo.ipynb) derives the objective (the ELBO); [lesson 3](03_vae.ipynb) builds and trains the VAE.

# %% [markdown] slideshow={"slide_type": "notes"}
# Link each bullet to a measurement: the KL to the prior fixes the position and scale during training (eq. 5 is
# the VAE's KL term, with q in place of the fitted Gaussian); a fitted Gaussian does the same after training, and
# by our classifier its samples are as good. Be honest with the room: the VAE is not needed for nicer samples of
# MNIST; it is needed for a model whose likelihood, posterior and rate we can compute (lessons 2-5).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Try it: walk the latent plane
#
# Move the point in the 2-D latent plane of the `d = 2` autoencoder and watch the decoded image: clean digits on
# the clusters, blends where two classes meet, thicker copies of the edge digits far outside.
# (The logic is `course_lib.widgets.decode_point`; we check it first.)

# %% slideshow={"slide_type": "subslide"}
with torch.no_grad():
    z_0 = codes_ae2[0].tolist()                         # the code of the first test image
    via_widget = decode_point(ae2.generate, z_0, device=device)
    direct = ae2.reconstruct(x_test[:1])[0].clamp(0, 1).cpu()
assert via_widget.shape == train.shape
assert torch.allclose(via_widget, direct, atol=1e-5), "decoding the code of x gives the reconstruction of x"

# %% slideshow={"slide_type": "subslide"}
latent_plane_explorer(ae2.generate, z=codes2, labels=train.labels, extent=1.1 * float(codes2.abs().max()),
                      device=device)

# %% [markdown] slideshow={"slide_type": "notes"}
# Drag the point from the middle of one cluster to another and then far outside. Ask: where would you put a
# prior so that sampling it gives every digit? Expected answer: on the clusters, weighted by their size.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. An autoencoder $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$ compresses $\mathbb{R}^n \to \mathbb{R}^d \to \mathbb{R}^n$, trained by backpropagation through both parts.
# 2. The loss is a choice: MSE punishes large errors, MAE all alike, BCE (from logits) confident mistakes, in nats.
# 3. A denoising AE maps $\tilde x = x + \delta$ to the clean $x$; a convolutional AE shares weights: fewer parameters, lower error.
# 4. With $d = 2$ the non-linear autoencoder reconstructs better than PCA, the best linear one.
# 5. Random codes: wrong place ($\mathcal{N}(0, I)$), between the codes (16-D), wrong proportions (2-D). A Gaussian fitted to the codes fixes the place and samples as well as a VAE by our classifier; the VAE adds a likelihood bound, a posterior and a rate.
#
# **What we got** (quick mode, 4,000 MNIST digits, CPU; printed above): see the closing slide.

# %% [markdown] slideshow={"slide_type": "notes"}
# Five lines to recap; the numbers are on the next slide. Ask: which of the three failures of random codes does
# the fitted Gaussian address, and what does the VAE give that it does not? Expected answer: the position and
# scale; the VAE gives a bound on log p(x), a posterior per image and a rate in nats.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **References**
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides, 2021 (section "Rappels sur les auto-encodeurs": eq. (1)-(3), the micro-quiz).
# - G. E. Hinton, R. R. Salakhutdinov, *Reducing the dimensionality of data with neural networks*, Science 313, 2006 (Fig. 3: 2-D codes of an autoencoder vs PCA on MNIST).
# - P. Baldi, K. Hornik, *Neural networks and principal component analysis: learning from examples without local minima*, Neural Networks 2, 1989.
# - P. Vincent, H. Larochelle, Y. Bengio, P.-A. Manzagol, *Extracting and composing robust features with denoising autoencoders*, ICML 2008.
# - J. Masci, U. Meier, D. Cireşan, J. Schmidhuber, *Stacked convolutional auto-encoders*, ICANN 2011; X. Guo et al., *Deep clustering with convolutional autoencoders*, ICONIP 2017.
# - D. E. Rumelhart, G. E. Hinton, R. J. Williams, *Learning representations by back-propagating errors*, Nature 323, 1986.

# %% [markdown] slideshow={"slide_type": "subslide"}
# - P. Ghosh, M. S. M. Sajjadi, A. Vergari, M. Black, B. Schölkopf, *From variational to deterministic autoencoders*, ICLR 2020 (ex-post density estimation: a Gaussian or a 10-component mixture fitted to the codes).
# - B. Dai, D. Wipf, *Diagnosing and enhancing VAE models*, ICLR 2019 (the two-stage VAE: a second VAE fitted to the codes of the first).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What we got** (quick mode, 4,000 MNIST digits, 8 epochs):

# %%
print(f"d = 2, test squared error per image: autoencoder {err_ae2:.1f}, PCA {err_pca2:.1f}")
print(f"noisy inputs (sigma = {NOISE}), squared error to the clean image: denoising AE {mse['denoising AE']:.1f}, "
      f"plain AE {mse['plain AE']:.1f}, the noisy input itself {mse['noisy input']:.1f}")
print(f"d = {LATENT}, test squared error: " + ", ".join(f"{k} {e:.1f}" for k, (_, e) in table.items()))
print("decoded codes, classifier confidence and class entropy: "
      + ", ".join(f"{k} {c:.2f} / {h:.2f}" for k, (c, h) in scores.items()))
print(f"VAE at this lesson's sizes: -ELBO {vae_terms['neg_elbo']:.1f} nats per binarized test image, "
      f"rate {vae_terms['kl']:.1f} nats")
