# %% [markdown] slideshow={"slide_type": "slide"}
# # Lesson 1: autoencoders, a refresher
#
# **What you will learn**
# - the autoencoder as a *learned compression* $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$, and how it is trained
#   (one training step written out, then the course's `fit`);
# - three reconstruction losses (MSE, MAE, binary cross-entropy) and what each one penalises;
# - two variants: the *denoising* and the *convolutional* autoencoder;
# - the autoencoder as non-linear dimensionality reduction, against PCA;
# - why a plain autoencoder is a poor *generative* model, the problem the VAE solves.
#
# **You need** PyTorch basics (tensors, `nn.Module`, autograd); what gradient descent does.
#
# **Run time** quick mode (`COURSE_QUICK=1`, 8x8 digits, CPU): about 20 s for the whole notebook.
# Full mode (MNIST, 28x28): a few minutes on a GPU, the first time; later runs load the checkpoints.
#
# **Units** every loss is *per example*: summed over the pixels, averaged over the batch.
# The binary cross-entropy is in **nats per example**; the squared (MSE) and absolute (MAE) errors are in
# squared and absolute pixel units per example (pixels are in $[0, 1]$).

# %% slideshow={"slide_type": "skip"}
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib import plots
from course_lib.data import lesson_dataset
from course_lib.losses import reconstruction_error
from course_lib.models import Autoencoder, ConvAutoencoder
from course_lib.pca import PCA
from course_lib.runtime import describe, get_device, pick, seed_everything
from course_lib.train import fit
from course_lib.widgets import decode_point, latent_plane_explorer

generator = seed_everything(0)
device = get_device()
# Okabe-Ito palette (colour-blind safe)
C = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
     "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
print(describe())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Quick mode (`COURSE_QUICK=1`, used by the tests) only changes the data set: the 8x8 digits instead of MNIST.
# The sizes below follow the images, so full mode without the MNIST files (it falls back to the digits) trains
# exactly like quick mode.

# %%
DATASET = pick("digits", "mnist")
train = lesson_dataset(DATASET, "train", device=device)
test = lesson_dataset(DATASET, "test", device=device)
n_pixels = train.dim
SMALL = n_pixels <= 64                      # 8x8 digits, else 28x28 MNIST


def by_size(small, large):
    return small if SMALL else large


LATENT = by_size(8, 16)                     # d, the code size of the main autoencoder
HIDDEN = by_size((128, 64), (512, 256))     # hidden widths of the fully connected encoder (mirrored in the decoder)
CHANNELS = by_size((16, 32), (32, 64))      # channels of the convolutional autoencoder
EPOCHS = by_size(40, 30)
BATCH = by_size(128, 256)
LR = by_size(3e-3, 1e-3)
NOISE = 0.4                                 # sigma of the denoising corruption
N_SHOW = by_size(8, 10)                     # images per row in figures
N_GEN = by_size(360, 2000)                  # random codes decoded in the generative-model section
print(train, test, sep="\n")

# %% slideshow={"slide_type": "skip"}
if SMALL and device.type == "cpu":
    # Tiny models: one thread is fastest, and idle threads spinning on a busy machine
    # (a CI runner, a shared server) can make training ten times slower.
    torch.set_num_threads(1)

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
torch.manual_seed(1)
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
x_hat_ = torch.linspace(0.005, 0.995, 199)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, target in zip(axes, [1.0, 0.5]):
    t = torch.full_like(x_hat_, target)
    logits_ = torch.logit(x_hat_)
    ax.plot(x_hat_, (x_hat_ - t) ** 2, color=C["blue"], lw=2, label=r"MSE $(x-\hat x)^2$")
    ax.plot(x_hat_, (x_hat_ - t).abs(), color=C["orange"], lw=2, ls="--", label=r"MAE $|x-\hat x|$")
    ax.plot(x_hat_, bce_with_logits(logits_, t), color=C["green"], lw=2, ls="-.", label="BCE")
    ax.axvline(target, color="grey", lw=0.8)
    ax.set(title=f"Penalty of one pixel whose true value is x = {target}", xlabel=r"prediction $\hat x$",
           ylabel="loss of the pixel", ylim=(0, 3))
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

h_half = bce_with_logits(torch.tensor(0.0), torch.tensor(0.5))
assert abs(h_half - math.log(2)) < 1e-6, "at x = x_hat = 0.5 the BCE is the binary entropy H(0.5) = log 2"

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

# %% [markdown] slideshow={"slide_type": "subslide"}
# `fit` repeats that step over mini-batches and epochs, logs the loss terms for the training and the test data,
# and saves the weights (`checkpoint=`): running the cell again loads them.

# %%
torch.manual_seed(1)
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

fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
hist_ae.plot(ax=axes[0], title="Autoencoder training (BCE)")
plots.show_reconstructions(x_test.cpu(), x_rec.cpu(), n=N_SHOW, ax=axes[1],
                           title="Test images (top) and their reconstructions H(x) (bottom)")
fig.tight_layout()
plt.show()
print(f"||H(x) - x|| <= eps = {eps:.2f} for 95% of the test images "
      f"(the mean image: {err_mean_image.quantile(0.95):.2f})")
assert hist_ae.train["loss"][-1] < hist_ae.train["loss"][0], "training lowered the loss"
assert eps < 0.75 * err_mean_image.quantile(0.95), "the codes carry information: much better than the mean image"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The same reconstruction under the three losses
#
# Per-pixel penalty maps of the trained autoencoder's reconstructions. For the BCE we show the *excess*
# over its floor, $\mathrm{BCE}(x, \hat x) - H(x)$ (the KL divergence between two Bernoullis), which is 0 where
# $\hat x = x$.

# %%
with torch.no_grad():
    xs, logit_s = x_test[:N_SHOW], ae.decode(ae.encode(x_test[:N_SHOW]))
    xh = torch.sigmoid(logit_s)
    maps = {
        "squared error": (xs - xh) ** 2,
        "absolute error": (xs - xh).abs(),
        "BCE - H(x)": bce_with_logits(logit_s, xs) - bce_with_logits(torch.logit(xs, eps=1e-6), xs),
    }
    per_example = {k: reconstruction_error(v, xs, k) for k, v in [("mse", xh), ("mae", xh), ("bce", logit_s)]}

fig, axes = plt.subplots(5, N_SHOW, figsize=(1.2 * N_SHOW + 1.5, 6.6))
rows = [("x", xs, 0, 1), ("x_hat", xh, 0, 1)] + [(k, v, 0, None) for k, v in maps.items()]
for r, (name, imgs, lo, hi) in enumerate(rows):
    vmax = hi if hi is not None else float(imgs.max())
    for c in range(N_SHOW):
        ax = axes[r, c]
        im = ax.imshow(imgs[c, 0].cpu(), cmap="gray_r" if r < 2 else "viridis", vmin=lo, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
            ax.set_ylabel(name, fontsize=9)
    if r >= 2:
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02, pad=0.01)
fig.suptitle("Where each loss puts its penalty (pixel by pixel)")
plt.show()

assert torch.allclose(maps["squared error"].flatten(1).sum(1), per_example["mse"], rtol=1e-5)
assert torch.allclose(maps["absolute error"].flatten(1).sum(1), per_example["mae"], rtol=1e-5)
assert (per_example["mae"] >= per_example["mse"]).all(), "|e| >= e^2 when |e| <= 1: the MAE is the larger sum"
assert (maps["BCE - H(x)"] > -1e-4).all(), "BCE - H(x) is a KL divergence: non-negative"
print({k: [round(v, 2) for v in vals.tolist()[:4]] for k, vals in per_example.items()})

# %% [markdown] slideshow={"slide_type": "notes"}
# The squared-error map is nearly black except on the worst pixels: it concentrates the penalty on large
# errors, and an MSE-trained model happily leaves many small errors (a blur). The absolute-error map lights up
# more evenly. The BCE excess is largest on pixels predicted confidently on the wrong side.

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

# %%
torch.manual_seed(1)
dae = Autoencoder(train.shape, latent_dim=LATENT, hidden=HIDDEN, recon="bce", noise=NOISE)
hist_dae = fit(dae, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-dae")
print(hist_dae.summary())

noise_gen = torch.Generator().manual_seed(123)
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

# %%
torch.manual_seed(1)
cae = ConvAutoencoder(train.shape, latent_dim=LATENT, channels=CHANNELS, recon="bce")
print(cae.encoder)


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

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
names = list(table)
colors = [C["sky"], C["blue"], C["orange"]]
axes[0].barh(names, [table[k][0] for k in names], color=colors)
axes[0].set(title="Number of parameters", xlabel="parameters (log scale)", xscale="log")
axes[1].barh(names, [table[k][1] for k in names], color=colors)
axes[1].set(title=f"Test reconstruction error, d = {LATENT}", xlabel="squared error per image")
axes[1].set_yticks([])
fig.tight_layout()
plt.show()
assert table["convolutional AE"][0] < table["fully connected AE"][0], "weight sharing: fewer parameters"
assert table["convolutional AE"][1] < table[f"PCA, {LATENT} components"][1], "and still better than linear PCA"

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

# %%
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
torch.manual_seed(1)
ae2 = Autoencoder(train.shape, latent_dim=2, hidden=HIDDEN, recon="mse")    # the same loss as PCA
hist_ae2 = fit(ae2, train, test, epochs=EPOCHS, batch_size=BATCH, lr=LR, checkpoint="lesson01-ae2")
print(hist_ae2.summary())

with torch.no_grad():
    err_ae2 = reconstruction_error(ae2.reconstruct(x_test), x_test, "mse").mean().item()
    err_pca2 = reconstruction_error(pca2.reconstruct(x_test), x_test, "mse").mean().item()
    codes_ae2, codes_pca2 = ae2.encode(x_test), pca2.transform(x_test)
print(f"test squared error per image with d = 2: autoencoder {err_ae2:.3f}, PCA {err_pca2:.3f}")
assert err_ae2 < 0.9 * err_pca2, "with d = 2 the non-linear autoencoder reconstructs the test set better than PCA"

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
plots.latent_scatter(codes_pca2, test.labels, title=f"PCA, 2 components (test MSE {err_pca2:.2f})", ax=axes[0],
                     classes=test.classes, s=10)
plots.latent_scatter(codes_ae2, test.labels, title=f"Autoencoder, d = 2 (test MSE {err_ae2:.2f})", ax=axes[1],
                     classes=test.classes, s=10)
axes[0].set(xlabel="first principal component", ylabel="second principal component")
fig.suptitle("Test images in a 2-D code space, coloured by digit class")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# Hinton & Salakhutdinov (2006, Fig. 3) show the same comparison on MNIST: the 2-D codes of a deep autoencoder
# separate the classes much better than the first two principal components. Note the axes: the autoencoder's
# codes have no reason to be centred or of unit scale, a point that matters in the next section.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The autoencoder as a generative model?
#
# The decoder maps codes to images: **decode = generate**.
# 1. choose a code $z \in \mathbb{R}^d$ at random;
# 2. decode it, $\hat x = \mathcal{D}(z)$.
#
# **Micro-quiz.** What do we get in practice?
# 1. a plausible synthetic observation;
# 2. a poor reconstruction.

# %% slideshow={"slide_type": "fragment"}
with torch.no_grad():
    z_random = torch.randn(N_GEN, LATENT, generator=generator).to(device)     # z ~ N(0, I)
    x_random = ae.generate(z_random)
ax = plots.show_images(x_random[:2 * N_SHOW].cpu(), nrow=N_SHOW,
                       title=f"Decoded z ~ N(0, I), d = {LATENT}: the plain autoencoder as a generator")

# %% [markdown] slideshow={"slide_type": "fragment"}
# **Answer: mostly (2).** A few draws look like digits, most are blends and smudges. Nothing in the training
# told the decoder what to do with a code no training image was mapped to, and we do not know where the codes
# are:
# - how should we choose $z$? *a priori* we do not know;
# - the latent space has no regularity (continuity) between the training codes;
# - $d \ll n$, but $d$ is still too large to fill by hand.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### A sparse, irregular latent space
#
# Left: the 2-D autoencoder's training codes, with draws from $\mathcal{N}(0, I)$. Right: the decoder on a
# regular grid over the same square. The codes form clusters of very different sizes and densities, with gaps
# between them; the decoder morphs one digit into another across a gap and extrapolates outside the codes.
# The $\mathcal{N}(0, I)$ draws ignore all of this: many fall in gaps or in the crowded centre where classes overlap.

# %%
with torch.no_grad():
    codes_train2 = ae2.encode(train.images)
extent = float(codes_train2.abs().quantile(0.99)) * 1.1
fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
plots.latent_scatter(codes_train2, train.labels, ax=axes[0], classes=train.classes, s=5,
                     title="Training codes (colour: class) and 200 draws z ~ N(0, I) (black)")
z_prior = torch.randn(200, 2, generator=generator)
axes[0].scatter(z_prior[:, 0], z_prior[:, 1], marker="x", s=12, color=C["black"], lw=0.8)
axes[0].set(xlim=(-extent, extent), ylim=(-extent, extent))
plots.decode_grid(ae2.generate, extent=extent, n=15, device=device, ax=axes[1],
                  title=f"Decoded grid over [-{extent:.1f}, {extent:.1f}]², z_2 up, z_1 right")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The codes of the $d$-dimensional autoencoder, one coordinate at a time, against the $\mathcal{N}(0, 1)$ density
# we drew from: shifted, stretched, lumpy, and each coordinate different.

# %%
with torch.no_grad():
    codes_train = ae.encode(train.images)
shown = min(LATENT, 4)
fig, axes = plt.subplots(1, shown + 1, figsize=(3.1 * (shown + 1), 3.0))
grid_z = torch.linspace(-10, 10, 400)
for j in range(shown):
    ax = axes[j]
    ax.hist(codes_train[:, j].cpu(), bins=40, density=True, color=C["sky"], label="codes E(x)")
    ax.plot(grid_z, torch.exp(-grid_z**2 / 2) / math.sqrt(2 * math.pi), color=C["vermillion"], label="N(0, 1)")
    ax.set(title=f"coordinate z_{j + 1}", xlabel=f"$z_{j + 1}$", ylabel="density")
lo = float(codes_train[:, :shown].min()) - 1
hi = float(codes_train[:, :shown].max()) + 1
for ax in axes[:shown]:
    ax.set_xlim(min(lo, -4), max(hi, 4))
axes[0].legend(fontsize=7)
norm_codes, norm_prior = codes_train.norm(dim=1).cpu(), z_random.norm(dim=1).cpu()
axes[-1].hist(norm_codes, bins=40, density=True, alpha=0.7, color=C["sky"], label="codes")
axes[-1].hist(norm_prior, bins=40, density=True, alpha=0.7, color=C["orange"], label="N(0, I) draws")
axes[-1].set(title="length ||z||", xlabel="||z||", ylabel="density")
axes[-1].legend(fontsize=7)
fig.suptitle(f"Codes of the training images (d = {LATENT}) vs the distribution we sampled z from")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Three measurements of the mismatch:
# 1. **Where the codes are.** Fit a Gaussian $\mathcal{N}(m, S)$ to the training codes and compare it with the
#    $\mathcal{N}(0, I)$ we sample from. Their KL divergence has a closed form (seed 004, the KL term of the VAE loss):
#    $$\mathrm{KL}\big(\mathcal{N}(m, S) \,\|\, \mathcal{N}(0, I)\big) = \tfrac12\big(\operatorname{tr} S + m^\top m - d - \log\det S\big). \tag{5}$$
# 2. **Does the autoencoder recognise its own samples?** Trained to be the identity on the data, it leaves a
#    data-like image almost unchanged, $\mathcal{H}(\hat x) \approx \hat x$; an image off the data is moved.
# 3. **Distance to the nearest training image**, for decoded random codes and for test reconstructions.

# %%
with torch.no_grad():
    m_codes, S_codes = codes_train.mean(0), torch.cov(codes_train.T)
    kl_codes = 0.5 * (S_codes.trace() + m_codes @ m_codes - LATENT - torch.logdet(S_codes))    # eq. (5), nats
    idx = torch.randperm(len(test), generator=generator)[:N_GEN].to(device)
    x_recs = x_rec[idx]                                                         # test reconstructions H(x)
    moved_random = (ae.reconstruct(x_random) - x_random).flatten(1).norm(dim=1)     # ||H(D(z)) - D(z)||
    moved_recon = (ae.reconstruct(x_recs) - x_recs).flatten(1).norm(dim=1)
    X_train = train.flat()
    nn_random = torch.cdist(x_random.flatten(1), X_train).min(1).values
    nn_recon = torch.cdist(x_recs.flatten(1), X_train).min(1).values
print(f"1. KL(codes || N(0, I)) = {kl_codes:.1f} nats for d = {LATENT} "
      f"(code means {m_codes.abs().mean():.1f} in absolute value, standard deviations {S_codes.diag().sqrt().mean():.1f})")
print(f"2. median ||H(x_hat) - x_hat||: decoded z ~ N(0, I) {moved_random.median():.2f}, "
      f"test reconstructions {moved_recon.median():.2f}")
print(f"3. median distance to the nearest training image: decoded z ~ N(0, I) {nn_random.median():.2f}, "
      f"test reconstructions {nn_recon.median():.2f}")
assert kl_codes > LATENT, "the codes are far from N(0, I): more than 1 nat per latent dimension"
assert moved_random.median() > 1.5 * moved_recon.median(), "decoded random codes are off the data: H moves them"
assert nn_random.median() > nn_recon.median(), "and they lie farther from the training images than reconstructions"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### What the VAE changes
#
# - The encoder outputs a **distribution** $q_\phi(z \mid x) = \mathcal{N}(\mu_x, \operatorname{diag} \sigma_x^2)$,
#   not a point: one $x$ corresponds to many nearby codes, so the decoder must be good on a neighbourhood, not
#   only at isolated points.
# - A KL term pulls every $q_\phi(z \mid x)$ towards a prior $p(z) = \mathcal{N}(0, I)$: the codes fill the
#   region we sample from.
# - Then generating is: $z \sim p(z)$, $x \sim p_\theta(x \mid z)$.
#
# [Lesson 2](02_elbo.ipynb) derives the objective (the ELBO); [lesson 3](03_vae.ipynb) builds and trains the VAE.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Try it: walk the latent plane
#
# Move the point in the 2-D latent plane of the `d = 2` autoencoder and watch the decoded image. Inside a
# cluster you get a clean digit; between clusters, morphs; outside the codes, garbage.
# (The logic is `course_lib.widgets.decode_point`; we check it first.)

# %%
with torch.no_grad():
    i = 0
    z_i = codes_ae2[i].tolist()                         # the code of the first test image
    via_widget = decode_point(ae2.generate, z_i, device=device)
    direct = ae2.reconstruct(x_test[i:i + 1])[0].clamp(0, 1).cpu()
assert via_widget.shape == train.shape
assert torch.allclose(via_widget, direct, atol=1e-5), "decoding the code of x gives the reconstruction of x"
explorer = latent_plane_explorer(ae2.generate, z=codes_train2, labels=train.labels, extent=extent, device=device)
explorer

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# 1. An autoencoder $\mathcal{H} = \mathcal{D} \circ \mathcal{E}$ compresses $\mathbb{R}^n \to \mathbb{R}^d \to \mathbb{R}^n$ and is trained by backpropagation through both parts to make $\|\mathcal{H}(x) - x\|$ small.
# 2. The loss is a modelling choice: MSE punishes large errors, MAE all errors alike, BCE (computed from logits) confident mistakes; BCE is a Bernoulli negative log-likelihood in nats.
# 3. A denoising autoencoder maps $\tilde x = x + \delta$ to the clean $x$ and beats a plain one on noisy inputs; a convolutional one shares weights and needs fewer parameters.
# 4. With $d = 2$ the non-linear autoencoder reconstructs better than PCA, the best linear one.
# 5. Its latent space is sparse and irregular: random codes decode to poor images. The VAE ([lessons 2](02_elbo.ipynb) and [3](03_vae.ipynb)) fixes this with a distribution per $x$ and a prior $p(z)$.
#
# **References**
# - N. Audebert, *RCP211 – Auto-encodeurs variationnels*, CNAM course slides, 2021 (section "Rappels sur les auto-encodeurs": eq. (1)-(3), the micro-quiz).
# - G. E. Hinton, R. R. Salakhutdinov, *Reducing the dimensionality of data with neural networks*, Science 313, 2006 (Fig. 3: 2-D codes of an autoencoder vs PCA on MNIST).
# - P. Baldi, K. Hornik, *Neural networks and principal component analysis: learning from examples without local minima*, Neural Networks 2, 1989 (a linear autoencoder learns the principal subspace).
# - P. Vincent, H. Larochelle, Y. Bengio, P.-A. Manzagol, *Extracting and composing robust features with denoising autoencoders*, ICML 2008.
# - J. Masci, U. Meier, D. Cireşan, J. Schmidhuber, *Stacked convolutional auto-encoders for hierarchical feature extraction*, ICANN 2011; X. Guo et al., *Deep clustering with convolutional autoencoders*, ICONIP 2017.
# - D. E. Rumelhart, G. E. Hinton, R. J. Williams, *Learning representations by back-propagating errors*, Nature 323, 1986.
#
# **What we got** (printed above; quick mode, 8x8 digits): with $d = 2$ the autoencoder's test squared error is
# about 2.2 per image against 3.4 for PCA; on noisy inputs ($\sigma = 0.4$) the denoising autoencoder's error to
# the clean image is about 2.3 against 3.9 for the plain one (5.4 for the noisy input itself); random codes
# the training codes are about 40 nats (KL) away from the $\mathcal{N}(0, I)$ we sample from, and the autoencoder
# moves its decoded random codes about 3 times more than it moves reconstructions of real digits.
