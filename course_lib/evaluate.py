r"""Evaluating latent-variable models: likelihood (ELBO, IWAE) and sample quality (FID, IS).

Two different questions (lesson 5):

- **How likely is held-out data under the model?** The negative log-likelihood
  :math:`-\log p_\theta(x)` in nats per example, estimated with the importance-weighted
  bound of Burda et al. (2015, eq. 9):

  .. math::

      \log p_\theta(x) \;\ge\; \mathcal{L}_k(x) = \mathbb{E}_{z_1..z_k \sim q_\phi(z|x)}
      \Big[\log \frac{1}{k} \sum_{i=1}^k \frac{p_\theta(x \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x)}\Big],

  with :math:`\mathcal{L}_1` the ELBO, :math:`\mathcal{L}_k \le \mathcal{L}_{k+1}` and
  :math:`\mathcal{L}_k \to \log p_\theta(x)` as :math:`k \to \infty` (their Theorem 1).
  :func:`iwae_nll` returns :math:`-\mathcal{L}_k` averaged over a data set, :func:`elbo`
  the ELBO. Both work for any model with the course's API: ``encode(x, y)`` -> q over z,
  ``decode(z, y)`` -> p over x whose ``log_prob`` sums over pixels, ``prior`` -> p(z).

- **Do samples look like data?** The Fréchet distance between Gaussians fitted to
  features of real and generated images (:func:`fid`, Heusel et al. 2017) and the
  Inception Score :math:`\exp(\mathbb{E}_x \mathrm{KL}(p(y|x) \,\|\, p(y)))`
  (:func:`inception_score`, Salimans et al. 2016). The published scores use Inception-v3
  trained on ImageNet; here the features and class probabilities come from a small
  digit classifier (:mod:`course_lib.classifier`), so the numbers are "FID-digits" and
  "IS-digits": useful to compare models on the same data, not comparable with papers.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.distributions import Independent, Normal

from .data import ImageData
from .runtime import get_device

__all__ = [
    "iwae_bound",
    "log_weights",
    "iwae_nll",
    "elbo",
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "inception_score",
    "inception_score_from_probs",
    "refine_gaussian",
    "TemperedPrior",
    "inference_gaps",
    "features_of",
    "fid_spread",
    "polynomial_kernel",
    "kid",
    "kid_spread",
    "knn_radii",
    "precision_recall",
]


# ----------------------------------------------------------------------------------------
# Likelihood: the ELBO and the importance-weighted bound
# ----------------------------------------------------------------------------------------
def iwae_bound(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""The importance-weighted bound from per-sample log-densities (Burda et al. 2015, eq. 9).

    With :math:`\log w_i = \log p_\theta(x \mid z_i) + \log p(z_i) - \log q_\phi(z_i \mid x)`,

    .. math:: \mathcal{L}_k = \log \frac{1}{k} \sum_{i=1}^k w_i = \mathrm{logsumexp}_i(\log w_i) - \log k,

    computed with ``logsumexp`` so that it stays finite when every :math:`w_i` underflows.
    Inputs have shape ``(k, batch)`` (samples along ``dim``); returns ``(batch,)``, in nats.
    """
    log_w = log_px_given_z + log_pz - log_qz
    k = log_w.shape[dim]
    return torch.logsumexp(log_w, dim=dim) - math.log(k)


def _model_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return get_device()


def _as_xy(data):
    """(x, y) tensors from an ImageData, an (x, y) pair or a tensor (then y is None)."""
    if isinstance(data, ImageData):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    if torch.is_tensor(data):
        return data, None
    raise TypeError(f"expected an ImageData, an (x, y) pair or a tensor of examples, got {type(data).__name__}.")


def _check_log_prob(t: torch.Tensor, shape: tuple, what: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)} (one value per example): "
            "its log_prob must sum over pixels / latent dimensions; wrap it in "
            "torch.distributions.Independent(..., reinterpreted_batch_ndims)."
        )


@torch.no_grad()
def log_weights(model, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1,
                chunk_size: int | None = None, q=None) -> torch.Tensor:
    r"""Log importance weights :math:`\log p_\theta(x|z_i) + \log p(z_i) - \log q_\phi(z_i|x)`,
    :math:`z_i \sim q_\phi(z \mid x)`, for one batch: a ``(k, batch)`` float64 tensor.

    ``q``: the proposal, a distribution over z with batch shape ``(batch,)`` (default: the
    encoder's ``model.encode(x, y)``; e.g. a per-example optimised q from :func:`refine_gaussian`).

    The ``k`` samples are drawn ``chunk_size`` at a time; each chunk's ``(chunk, batch, d)``
    codes are flattened into one ``(chunk * batch, d)`` batch for ``decode`` (models take 2-D
    ``z``). ``chunk_size=None`` keeps about 2**22 decoded pixels per chunk (2**26 on a GPU).
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of samples, got {k}.")
    n = len(x)
    q = model.encode(x, y) if q is None else q
    # a prior that depends on the condition (CVAE with class_prior=True): p(z | y), batch shape (batch,)
    prior = model.conditional_prior(y) if hasattr(model, "conditional_prior") and y is not None else model.prior
    if tuple(q.batch_shape) != (n,):
        raise ValueError(f"the proposal q has batch shape {tuple(q.batch_shape)}, expected ({n},): one "
                         "distribution per example of x.")
    if chunk_size is None:  # about 2**22 decoded values per chunk on a CPU, 2**26 on a GPU
        budget = 1 << (26 if x.device.type == "cuda" else 22)
        chunk_size = max(1, min(k, budget // max(1, n * x[0].numel())))
    out = []
    done = 0
    while done < k:
        c = min(chunk_size, k - done)
        z = q.sample((c,))                                   # (c, batch, d)
        log_qz = q.log_prob(z)                               # (c, batch)
        log_pz = prior.log_prob(z)                           # (c, batch)
        z_flat = z.reshape(c * n, *z.shape[2:])
        x_rep = x.unsqueeze(0).expand(c, *x.shape).reshape(c * n, *x.shape[1:])
        y_rep = None if y is None else y.unsqueeze(0).expand(c, *y.shape).reshape(c * n, *y.shape[1:])
        log_px_z = model.decode(z_flat, y_rep).log_prob(x_rep)
        _check_log_prob(log_px_z, (c * n,), "decode(z).log_prob(x)")
        _check_log_prob(log_qz, (c, n), "encode(x).log_prob(z)")
        _check_log_prob(log_pz, (c, n), "prior.log_prob(z)")
        out.append(log_px_z.reshape(c, n).double() + log_pz.double() - log_qz.double())
        done += c
    return torch.cat(out, dim=0)


def _bound(model, data, k: int, batch_size: int, transform, chunk_size, kind: str) -> torch.Tensor:
    """Per-example bound (float64, CPU): 'iwae' = L_k, 'elbo' = mean of the k log-weights."""
    x_all, y_all = _as_xy(data)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    values = []
    try:
        for start in range(0, len(x_all), batch_size):
            x = x_all[start:start + batch_size].to(device)
            y = None if y_all is None else y_all[start:start + batch_size].to(device)
            if transform is not None:
                x = transform(x)
            lw = log_weights(model, x, y, k=k, chunk_size=chunk_size)
            b = torch.logsumexp(lw, 0) - math.log(k) if kind == "iwae" else lw.mean(0)
            values.append(b.cpu())
    finally:
        model.train(was_training)
    out = torch.cat(values)
    if not torch.isfinite(out).all():
        raise FloatingPointError(
            f"the {kind} bound is not finite for {int((~torch.isfinite(out)).sum())} examples: check that the "
            "data lie in the decoder's support (e.g. binary pixels for a Bernoulli decoder)."
        )
    return out


def _reduce(per_example: torch.Tensor, reduction: str, return_std: bool):
    if reduction == "none":
        return per_example
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
    mean = float(per_example.mean())
    if not return_std:
        return mean
    sem = float(per_example.std() / math.sqrt(len(per_example))) if len(per_example) > 1 else float("nan")
    return mean, sem


def iwae_nll(model, data, k: int = 1000, batch_size: int = 100, transform: Callable | None = None,
             return_std: bool = False, reduction: str = "mean", chunk_size: int | None = None):
    r"""Importance-sampled estimate of :math:`-\log p_\theta(x)`, in nats per example
    (Burda et al. 2015, eq. 9):

    .. math::

        -\log p_\theta(x) \approx -\log \frac{1}{k} \sum_{i=1}^k
        \frac{p_\theta(x \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x)}, \qquad z_i \sim q_\phi(z \mid x).

    Its expectation is :math:`-\mathcal{L}_k \ge -\log p_\theta(x)`; it decreases with ``k`` and
    equals the exact value for any ``k`` when :math:`q_\phi` is the true posterior.

    - ``model``: the course API (``encode(x, y)``, ``decode(z, y)``, ``prior``); labels are
      passed for conditional models (``data`` an ImageData or an ``(x, y)`` pair; a bare
      tensor passes ``y=None``).
    - ``transform``: applied to each batch before evaluation (e.g. a binarization); for
      comparisons across ``k`` use a fixed data set (``data.map(binarize_static)``).
    - Runs under ``torch.no_grad()`` in eval mode on the model's device; samples are drawn
      ``chunk_size`` at a time, so ``k`` can be in the thousands.
    - Returns the average over ``data`` (a float); with ``return_std=True`` also its
      standard error over examples; with ``reduction="none"`` the per-example values (CPU, float64).
    """
    per_example = -_bound(model, data, k, batch_size, transform, chunk_size, "iwae")
    return _reduce(per_example, reduction, return_std)


def elbo(model, data, k: int = 1, batch_size: int = 100, transform: Callable | None = None,
         return_std: bool = False, reduction: str = "mean", chunk_size: int | None = None):
    r"""Monte Carlo estimate of the ELBO (the k = 1 bound, Kingma & Welling 2014), nats per example:

    .. math::

        \mathcal{L}_1(x) = \mathbb{E}_{q_\phi(z|x)}\big[\log p_\theta(x \mid z) + \log p(z) - \log q_\phi(z \mid x)\big]
        \approx \frac{1}{k} \sum_{i=1}^k \log \frac{p_\theta(x \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x)}.

    ``k`` is the number of samples averaged (more samples: less noise, same bound). A
    log-likelihood bound (negative); ``-elbo(...)`` is comparable with :func:`iwae_nll`.
    Arguments and return values as in :func:`iwae_nll`.
    """
    per_example = _bound(model, data, k, batch_size, transform, chunk_size, "elbo")
    return _reduce(per_example, reduction, return_std)


# ----------------------------------------------------------------------------------------
# Sample quality: Fréchet distance and Inception Score
# ----------------------------------------------------------------------------------------
def _float64(a) -> torch.Tensor:
    if torch.is_tensor(a):
        return a.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def gaussian_stats(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (unbiased, 1/(N-1)) of an N x F feature matrix, in float64 on the CPU."""
    f = _float64(features)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"expected an N x F matrix of features with N >= 2, got shape {tuple(f.shape)}.")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    vals, vecs = torch.linalg.eigh(0.5 * (s + s.T))
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1, S1, mu2, S2) -> float:
    r"""Squared Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2)
    (Dowson & Landau 1982; the FID of Heusel et al. 2017, eq. 6). It is the *square* of a metric:
    its square root obeys the triangle inequality, the value itself need not:

    .. math:: d^2 = \|\mu_1 - \mu_2\|^2 + \mathrm{Tr}\big(S_1 + S_2 - 2 (S_1 S_2)^{1/2}\big).

    :math:`\mathrm{Tr}(S_1 S_2)^{1/2} = \mathrm{Tr}(S_1^{1/2} S_2 S_1^{1/2})^{1/2}`, the sum of the square
    roots of the eigenvalues of the symmetric PSD matrix :math:`S_1^{1/2} S_2 S_1^{1/2}`: computed with
    two symmetric eigen-decompositions in float64 (stable where ``sqrtm`` of the non-symmetric
    :math:`S_1 S_2` returns complex round-off).
    """
    mu1, mu2, S1, S2 = (_float64(a) for a in (mu1, mu2, S1, S2))
    if mu1.shape != mu2.shape or S1.shape != S2.shape or S1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"S {tuple(S1.shape)}, {tuple(S2.shape)}.")
    r1 = _sqrt_psd(S1)
    m = r1 @ S2 @ r1
    tr_sqrt = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(0).sqrt().sum()
    d2 = ((mu1 - mu2) ** 2).sum() + torch.trace(S1) + torch.trace(S2) - 2 * tr_sqrt
    return float(d2.clamp_min(0))


def _images(data) -> torch.Tensor:
    if isinstance(data, ImageData):
        return data.images
    if torch.is_tensor(data):
        return data
    return torch.as_tensor(np.asarray(data), dtype=torch.float32)


def _feature_fn(features):
    """A callable images -> N x F features from a callable, a classifier or a dataset name."""
    if features is None:
        return None
    if isinstance(features, str):
        from .classifier import get_classifier

        features = get_classifier(features)
    if hasattr(features, "features") and callable(features.features):
        return features.features
    if callable(features):
        return features
    raise TypeError(f"features must be a callable, a classifier with .features, a dataset name or None; "
                    f"got {type(features).__name__}.")


@torch.no_grad()
def _apply(fn, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        if device is not None:
            x = x.to(device)
        out.append(fn(x).detach().float().cpu())
    return torch.cat(out)


def fid(real, generated, features=None, batch_size: int = 500) -> float:
    r"""Fréchet distance between Gaussians fitted to features of ``real`` and ``generated`` data:

    .. math:: \mathrm{FID} = \|\mu_r - \mu_g\|^2 + \mathrm{Tr}\big(S_r + S_g - 2 (S_r S_g)^{1/2}\big).

    - ``features``: a classifier with ``.features(x)`` (e.g. ``get_classifier("digits")``), any
      callable images -> N x F, or a dataset name (the course classifier of that dataset);
      ``None`` when ``real`` and ``generated`` already are N x F feature matrices.
    - ``real``/``generated``: ImageData, image tensors (N x C x H x W) or feature matrices.

    With the course classifier's features this is an "FID-digits": it ranks models of the
    same data; it is not the Inception-v3 FID of papers. It is biased upwards for small N
    (compare sets of equal size).
    """
    fr, fg = _feature_pair(real, generated, features, batch_size)
    mu_r, s_r = gaussian_stats(fr)
    mu_g, s_g = gaussian_stats(fg)
    return frechet_distance(mu_r, s_r, mu_g, s_g)


def inception_score_from_probs(probs, splits: int = 1, return_std: bool = False):
    r"""Inception Score of an N x C matrix of class probabilities p(y|x) (Salimans et al. 2016):

    .. math:: \mathrm{IS} = \exp\Big(\mathbb{E}_x\, \mathrm{KL}\big(p(y \mid x) \,\|\, p(y)\big)\Big),
              \qquad p(y) = \mathbb{E}_x\, p(y \mid x),

    between 1 (every prediction equals the marginal) and C (confident and balanced).
    With ``splits`` > 1 the rows are cut into that many groups, the score computed in each,
    and the mean returned (and the standard deviation with ``return_std=True``), as in the
    original code.
    """
    p = _float64(probs)
    if p.ndim != 2:
        raise ValueError(f"expected an N x C matrix of probabilities, got shape {tuple(p.shape)}.")
    if (p < -1e-6).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("rows of probs must be probability vectors (non-negative, summing to 1): "
                         "apply softmax to logits first.")
    scores = []
    for part in torch.tensor_split(p, splits):
        py = part.mean(0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, py)).sum(1)   # 0 log 0 = 0 in both terms
        scores.append(float(torch.exp(kl.mean())))
    mean = float(np.mean(scores))
    return (mean, float(np.std(scores))) if return_std else mean


def inception_score(generated, classifier=None, splits: int = 1, batch_size: int = 500,
                    return_std: bool = False):
    r"""Inception Score :math:`\exp(\mathbb{E}_x \mathrm{KL}(p(y|x) \,\|\, p(y)))` of generated images,
    with class probabilities from ``classifier`` (an object with ``.probs(x)``, a callable
    images -> probabilities, or a dataset name). ``classifier=None``: ``generated`` already is an
    N x C matrix of probabilities. See :func:`inception_score_from_probs` for ``splits``.

    High when each image is classified confidently (low entropy of p(y|x)) and the classes
    are balanced (high entropy of p(y)). It never looks at real data.
    """
    if classifier is None:
        probs = _images(generated)
    else:
        if isinstance(classifier, str):
            from .classifier import get_classifier

            classifier = get_classifier(classifier)
        fn = classifier.probs if hasattr(classifier, "probs") else classifier
        device = _model_device(classifier) if isinstance(classifier, torch.nn.Module) else None
        probs = _apply(fn, _images(generated), batch_size, device)
    return inception_score_from_probs(probs, splits=splits, return_std=return_std)


# ----------------------------------------------------------------------------------------
# Inference suboptimality: the approximation gap and the amortization gap (Cremer et al. 2018)
# ----------------------------------------------------------------------------------------
def refine_gaussian(model, x: torch.Tensor, y: torch.Tensor | None = None, steps: int = 300, lr: float = 0.05,
                    n_samples: int = 16, q=None, generator: torch.Generator | None = None) -> Independent:
    r"""The best diagonal Gaussian for each example, found by gradient ascent on its own ELBO:

    .. math:: q^*(z \mid x) = \arg\max_{\mu, \log\sigma^2}\;
              \mathbb{E}_{z = \mu + \sigma\epsilon}\big[\log p_\theta(x \mid z) + \log p(z) - \log q(z)\big],

    Adam on ``(mu, logvar)`` of every example at once (the examples do not interact: one sum of
    independent objectives), starting from ``q`` (default: the encoder's ``model.encode(x, y)``), with
    ``n_samples`` reparameterized samples per step, the entropy of q in closed form and a cosine decay
    of the learning rate (so that the last iterate has settled). The model's weights are not changed. Returns
    ``Independent(Normal(mu, sigma), 1)`` with batch shape ``(batch,)``, detached.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            q0 = model.encode(x, y) if q is None else q
            mu0, var0 = q0.mean.detach(), q0.variance.detach()
        if mu0.ndim != 2:
            raise ValueError(f"refine_gaussian expects codes of shape (batch, d), got {tuple(mu0.shape)}.")
        mu = mu0.clone().requires_grad_(True)
        logvar = var0.log().clone().requires_grad_(True)
        opt = torch.optim.Adam([mu, logvar], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)   # a settled final iterate
        n, d = mu.shape
        x_rep = x.unsqueeze(0).expand(n_samples, *x.shape).reshape(n_samples * n, *x.shape[1:])
        y_rep = None if y is None else y.unsqueeze(0).expand(n_samples, *y.shape).reshape(n_samples * n, *y.shape[1:])
        for _ in range(steps):
            eps = torch.randn(n_samples, n, d, generator=generator, dtype=mu.dtype).to(mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps                               # (S, batch, d)
            log_px_z = model.decode(z.reshape(n_samples * n, d), y_rep).log_prob(x_rep).reshape(n_samples, n)
            entropy = 0.5 * logvar.sum(-1) + 0.5 * d * (1 + math.log(2 * math.pi))   # of q, in closed form
            elbo = (log_px_z + model.prior.log_prob(z)).mean(0) + entropy        # (batch,)
            gm, gl = torch.autograd.grad(-elbo.sum(), [mu, logvar])              # only q's parameters
            mu.grad, logvar.grad = gm, gl
            opt.step()
            sched.step()
    finally:
        model.train(was_training)
    return Independent(Normal(mu.detach(), torch.exp(0.5 * logvar.detach())), 1)


def inference_gaps(model, x: torch.Tensor, y: torch.Tensor | None = None, k_elbo: int = 1000,
                   k_iwae: int = 5000, q_star=None, **refine) -> dict:
    r"""The inference gap of each example split in two (Cremer, Li & Duvenaud 2018, Table 1), in nats:

    .. math::

        \underbrace{\log p_\theta(x) - \mathcal{L}[q_\phi]}_{\text{inference gap}}
        = \underbrace{\log p_\theta(x) - \mathcal{L}[q^*]}_{\text{approximation gap}}
        + \underbrace{\mathcal{L}[q^*] - \mathcal{L}[q_\phi]}_{\text{amortization gap}},

    with :math:`q_\phi` the encoder's Gaussian, :math:`q^*` the best diagonal Gaussian of each example
    (:func:`refine_gaussian`, started from :math:`q_\phi`; arguments in ``refine``), both ELBOs
    averaged over ``k_elbo`` fresh samples and :math:`\log p_\theta(x)` estimated by the IWAE bound
    with ``k_iwae`` samples of :math:`q^*` (a lower bound, so the approximation gap printed is a lower
    bound too; the encoder as proposal gives a noisier estimate when it is far from :math:`q^*`).
    Returns per-example float64 tensors ``log_px``, ``elbo_q_star``, ``elbo_encoder``,
    ``approximation``, ``amortization``, and their Monte Carlo standard errors ``*_sem``.
    """
    q_enc = model.encode(x, y)
    q_star = refine_gaussian(model, x, y, q=q_enc, **refine) if q_star is None else q_star
    lw_enc = log_weights(model, x, y, k=k_elbo, q=q_enc)
    lw_star = log_weights(model, x, y, k=k_elbo, q=q_star)
    iwae = iwae_bound(log_weights(model, x, y, k=k_iwae, q=q_star), 0, 0)   # q* is the better proposal
    elbo_enc, elbo_star = lw_enc.mean(0), lw_star.mean(0)
    sem = lambda lw: lw.std(0) / math.sqrt(lw.shape[0])  # noqa: E731
    return {"log_px": iwae.cpu(), "elbo_q_star": elbo_star.cpu(), "elbo_encoder": elbo_enc.cpu(),
            "approximation": (iwae - elbo_star).cpu(), "amortization": (elbo_star - elbo_enc).cpu(),
            "elbo_q_star_sem": sem(lw_star).cpu(), "elbo_encoder_sem": sem(lw_enc).cpu(), "q_star": q_star}


class TemperedPrior(nn.Module):
    r"""A latent-variable model with its prior replaced by :math:`\mathcal{N}(0, T^2 I)` (temperature ``T``).

    Sampling :math:`z \sim \mathcal{N}(0, T^2 I)` and decoding is sampling from the tempered model
    :math:`p_T(x) = \int p_\theta(x \mid z)\, \mathcal{N}(z; 0, T^2 I)\, dz`; wrapping the model lets
    :func:`iwae_nll` measure that model's likelihood (same encoder as proposal).
    """

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"the temperature must be positive for a likelihood, got {temperature}.")
        self.model = model
        self.temperature = float(temperature)

    def encode(self, x, y=None):
        return self.model.encode(x, y)

    def decode(self, z, y=None):
        return self.model.decode(z, y)

    @property
    def prior(self):
        p = self.model.prior
        return Independent(Normal(p.mean, self.temperature * p.stddev), 1)


# ----------------------------------------------------------------------------------------
# How noisy is an FID? Repeated draws at several sample sizes
# ----------------------------------------------------------------------------------------
@torch.no_grad()
def features_of(images, features, batch_size: int = 500) -> torch.Tensor:
    """N x F features (float32, CPU) of images with a classifier's ``.features`` or a callable."""
    fn = _feature_fn(features)
    device = getattr(fn, "__self__", None)
    device = _model_device(device) if isinstance(device, torch.nn.Module) else None
    return _apply(fn, _images(images), batch_size, device)


def fid_spread(reference_features: torch.Tensor, pools: dict, sizes, draws: int = 20, seed: int = 0) -> dict:
    """FIDs of ``draws`` random subsets of each size ``n`` in ``sizes`` (without replacement) from each
    pool of features (``{name: N x F}``), against the fixed ``reference_features``.

    Returns ``{name: {n: float64 tensor of draws FIDs}}``. Subsets of one pool overlap when ``n`` is
    not small against the pool, which makes the spread look smaller than that of truly fresh draws
    (by a factor of about sqrt(1 - n / pool size)).
    """
    mu_r, s_r = gaussian_stats(reference_features)
    return _subset_draws(pools, sizes, draws, seed,
                         lambda subset: frechet_distance(mu_r, s_r, *gaussian_stats(subset)))


def _subset_draws(pools: dict, sizes, draws: int, seed: int, score) -> dict:
    """``{name: {n: float64 tensor of score(subset)}}`` over ``draws`` random subsets of size ``n`` of each pool;
    the same subsets for the same ``seed`` (so FID and KID spreads compare draw by draw)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, pool in pools.items():
        pool = _float64(pool)
        out[name] = {}
        for n in sizes:
            if n > len(pool):
                raise ValueError(f"pool {name!r} has {len(pool)} examples, fewer than n = {n}.")
            vals = [score(pool[torch.randperm(len(pool), generator=g)[:n]]) for _ in range(draws)]
            out[name][n] = torch.tensor(vals, dtype=torch.float64)
    return out


# ----------------------------------------------------------------------------------------
# Kernel Inception Distance (Binkowski et al. 2018): an unbiased alternative to the FID
# ----------------------------------------------------------------------------------------
def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The KID's kernel :math:`k(a, b) = (a^\top b / F + 1)^3` between the rows of two N x F and
    M x F feature matrices (Binkowski et al. 2018, section 3): an N x M matrix."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _kid_from_features(fr: torch.Tensor, fg: torch.Tensor) -> float:
    m, n = len(fr), len(fg)
    if m < 2 or n < 2:
        raise ValueError(f"the KID needs at least 2 examples in each set, got {m} and {n}.")
    k_rr, k_gg, k_rg = polynomial_kernel(fr, fr), polynomial_kernel(fg, fg), polynomial_kernel(fr, fg)
    within_r = (k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1))   # pairs i != j only: unbiased
    within_g = (k_gg.sum() - k_gg.diagonal().sum()) / (n * (n - 1))
    return float(within_r + within_g - 2 * k_rg.mean())


def _feature_pair(real, generated, features, batch_size):
    """Both sets as float64 N x F feature matrices: given as such, or computed with ``features``."""
    fn = _feature_fn(features)
    if fn is None:
        fr, fg = _float64(_images(real)), _float64(_images(generated))
        if fr.ndim != 2 or fg.ndim != 2:
            raise ValueError("images were given without features=: pass features=get_classifier(...) "
                             "or N x F feature matrices.")
    else:
        fr, fg = (_float64(features_of(d, fn, batch_size)) for d in (real, generated))
    return fr, fg


def kid(real, generated, features=None, batch_size: int = 500) -> float:
    r"""Kernel Inception Distance (Binkowski et al. 2018, eq. 2 and section 3): the unbiased estimate of
    the squared maximum mean discrepancy between the feature distributions of ``real`` and ``generated``,

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i \ne j} k(r_i, r_j)
              + \frac{1}{n(n-1)}\sum_{i \ne j} k(g_i, g_j) - \frac{2}{mn}\sum_{i,j} k(r_i, g_j),

    with the cubic polynomial kernel :func:`polynomial_kernel`. Its expectation does not depend on the
    sample sizes (the FID's does), so sets of different sizes are comparable; it can be slightly
    negative when the two distributions are equal. Arguments as in :func:`fid`. O((m + n)^2) memory:
    fine for a few thousand examples.
    """
    fr, fg = _feature_pair(real, generated, features, batch_size)
    if fr.shape[1] != fg.shape[1]:
        raise ValueError(f"feature sizes differ: {fr.shape[1]} and {fg.shape[1]}.")
    return _kid_from_features(fr, fg)


def kid_spread(reference_features: torch.Tensor, pools: dict, sizes, draws: int = 20, seed: int = 0) -> dict:
    """As :func:`fid_spread`, for the KID: ``{name: {n: float64 tensor of draws KIDs}}``, the same subsets
    as :func:`fid_spread` with the same ``seed`` (so the two spreads can be compared draw by draw)."""
    ref = _float64(reference_features)
    return _subset_draws(pools, sizes, draws, seed, lambda subset: _kid_from_features(ref, subset))


# ----------------------------------------------------------------------------------------
# Precision and recall of a generative model (Kynkäänniemi et al. 2019)
# ----------------------------------------------------------------------------------------
def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Distance from each row of an N x F matrix to its k-th nearest neighbour among the other rows."""
    f = _float64(features)
    if not 1 <= k < len(f):
        raise ValueError(f"k must be between 1 and N - 1 = {len(f) - 1}, got {k}.")
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values          # the smallest distance is the point itself (0)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Boolean per point: inside at least one ball (centre, radius)."""
    return (torch.cdist(points, centres) <= radii[None, :]).any(dim=1)


def precision_recall(real, generated, features=None, k: int = 3, batch_size: int = 500) -> tuple[float, float]:
    r"""Improved precision and recall of a generative model (Kynkäänniemi et al. 2019, eqs. 1-3).

    Each set's **manifold** is the union of balls around its feature vectors, each ball reaching the
    point's k-th nearest neighbour in the same set. **Precision**: the fraction of generated points inside
    the real manifold (are the samples realistic?); **recall**: the fraction of real points inside the
    generated manifold (does the model cover the data?). Both in [0, 1]. Arguments as in :func:`fid`
    (the paper uses k = 3 and VGG-16 features; ours are the course classifier's).
    """
    fr, fg = _feature_pair(real, generated, features, batch_size)
    precision = _coverage(fg, fr, knn_radii(fr, k)).double().mean()
    recall = _coverage(fr, fg, knn_radii(fg, k)).double().mean()
    return float(precision), float(recall)
