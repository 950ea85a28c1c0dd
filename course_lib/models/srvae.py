r"""The two-stage super-resolution VAE of seed 003 (section 3), with an optional mixture prior (section 4).

Variables: x the image (k_x pixels), y = d(x) its low-resolution copy (k_y pixels, a deterministic
average-pooling of x), u the latent of the low-resolution image, z the latent of the detail.

Generative model (eq. 7, with x independent of u given y):

    p(x, y, z, u) = p(x | y, z) p(z | y, u) p(y | u) p(u),
    p(y | u) = N(y_hat(u), gamma_2^2 I),  p(x | y, z) = N(x_hat(y, z), gamma_1^2 I)   (eq. 16),
    p(z | y, u) = N(mu(y, u), diag sigma^2(y, u)),  p(u) = N(0, I) or a mixture of Gaussians (eq. 22).

Inference model (eq. 9 and 13): q(y | x) = delta(y - d(x)), q(u | y), q(z | x), diagonal Gaussians.

Loss (the negative ELBO, eq. 19 and 21 with the errata corrected), in nats per example:

    -ELBO = E_q[-log p(x | y, z)] + E_q[-log p(y | u)] + KL(q(u | y) || p(u)) + E_q(u|y)[KL(q(z | x) || p(z | y, u))]
          = [k_x log gamma_1 + k_x / (2 gamma_1^2) MSE(x, x_hat)] + [k_y log gamma_2 + k_y / (2 gamma_2^2) MSE(y, y_hat)]
            + KL_u + KL_z   (+ (k_x + k_y)/2 log 2 pi, kept so that the value is a true bound),

one reparameterized sample of u and of z per example; KL_z between two diagonal Gaussians in closed
form (:func:`course_lib.losses.gaussian_kl_general`); KL_u in closed form for the standard normal
prior, and for the mixture prior either the convexity bound (``kl_u="bound"``,
:func:`course_lib.distributions.kl_mixture_upper_bound`), the tighter bound -log sum_k w_k exp(-KL(q || p_k))
(``kl_u="tight"``, :func:`course_lib.distributions.kl_mixture_tight_bound`) or a one-sample Monte Carlo
estimate (``kl_u="mc"``: log q(u|y) - log p(u) at the sampled u).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal

from ..distributions.mixture import MixtureOfGaussians, kl_mixture_tight_bound, kl_mixture_upper_bound
from ..losses import LOG_2PI, gaussian_kl, gaussian_kl_general, gaussian_nll
from .layers import check_input, mlp

__all__ = ["SRVAE", "downscale", "neg_log_gaussian_from_mse"]


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """y = d(x): the low-resolution copy of x, the average of each factor x factor block of pixels."""
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"the image size {tuple(x.shape[-2:])} is not a multiple of factor={factor}; "
                         "choose a factor that divides it (2 or 4 for 28x28 digits).")
    return F.avg_pool2d(x, factor)


def neg_log_gaussian_from_mse(mse: torch.Tensor, log_gamma: torch.Tensor | float, k: int) -> torch.Tensor:
    r"""-log N(x; x_hat, gamma^2 I) written with the mean squared error per pixel (seed 003, eq. 21 corrected):

    .. math:: -\log p(x \mid \cdot) = k \log\gamma + \frac{k}{2\gamma^2}\,\mathrm{MSE}(x, \hat x) + \frac k2 \log 2\pi,
              \qquad \mathrm{MSE}(x, \hat x) = \frac1k \sum_{n=1}^{k} (x_n - \hat x_n)^2,

    k the number of pixels. (The seed writes k/(2 gamma) and an MSE without the square: both are errata.)
    """
    log_gamma = torch.as_tensor(log_gamma, dtype=mse.dtype, device=mse.device)
    return k * log_gamma + k * mse * torch.exp(-2 * log_gamma) / 2 + 0.5 * k * LOG_2PI


class SRVAE(nn.Module):
    """Two-stage VAE: u -> y (low resolution) -> x (full resolution), seed 003 sections 3-4.

    ``SRVAE(shape=(1, 28, 28), factor=4, u_dim=8, z_dim=16, hidden=256, prior="mixture", n_components=10)``

    - ``factor``: y = average-pooling of x by ``factor`` (28x28 -> 14x14 for 2, 7x7 for 4);
    - ``prior``: ``"normal"`` (p(u) = N(0, I)) or ``"mixture"`` (learned weights, means and scales, eq. 22);
    - ``kl_u``: with the mixture prior, ``"bound"`` (sum_k w_k KL(q || p_k)), ``"tight"`` (-log sum_k w_k e^-KL(q || p_k))
      or ``"mc"`` (one-sample estimate);
    - ``gamma_init``: the initial decoder standard deviations gamma_1 = gamma_2 (both learned).

    The networks are small MLPs; the x decoder outputs the bilinear upsampling of y plus a correction.
    """

    def __init__(self, shape=(1, 28, 28), factor: int = 4, u_dim: int = 8, z_dim: int = 16, hidden: int = 256,
                 prior: str = "normal", n_components: int = 10, kl_u: str = "bound", gamma_init: float = 1.0):
        super().__init__()
        if prior not in ("normal", "mixture"):
            raise ValueError(f"unknown prior {prior!r}; choose 'normal' or 'mixture'.")
        if kl_u not in ("bound", "tight", "mc"):
            raise ValueError(f"unknown kl_u {kl_u!r}; choose 'bound' (convexity bound), 'tight' (the tighter bound "
                             "-log sum_k w_k exp(-KL_k)) or 'mc' (Monte Carlo).")
        if gamma_init <= 0:
            raise ValueError(f"gamma_init must be positive, got {gamma_init}.")
        self.shape = tuple(shape)
        self.factor = int(factor)
        c, h, w = self.shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"factor={factor} does not divide the image size {h}x{w}; choose 2 or 4 for 28x28 digits.")
        self.low_shape = (c, h // self.factor, w // self.factor)
        self.k_x, self.k_y = math.prod(self.shape), math.prod(self.low_shape)
        self.u_dim, self.z_dim, self.hidden = int(u_dim), int(z_dim), int(hidden)
        self.prior_kind, self.kl_u_kind = prior, kl_u
        self.n_components = int(n_components) if prior == "mixture" else 1
        k_x, k_y = self.k_x, self.k_y
        self.enc_u = mlp([k_y, hidden, 2 * u_dim])            # q(u | y)
        self.dec_y = mlp([u_dim, hidden, k_y])                # mean of p(y | u)
        self.enc_z = mlp([k_x, hidden, 2 * z_dim])            # q(z | x)
        self.prior_z_net = mlp([k_y + u_dim, hidden, 2 * z_dim])  # p(z | y, u)
        self.dec_x = mlp([k_y + z_dim, hidden, k_x])          # correction to upsample(y), mean of p(x | y, z)
        self.log_gamma_x = nn.Parameter(torch.full((), math.log(gamma_init)))   # gamma_1
        self.log_gamma_y = nn.Parameter(torch.full((), math.log(gamma_init)))   # gamma_2
        if prior == "mixture":
            g = torch.Generator().manual_seed(0)
            self.mix_logits = nn.Parameter(torch.zeros(self.n_components))
            self.mix_loc = nn.Parameter(torch.randn(self.n_components, u_dim, generator=g))
            self.mix_log_scale = nn.Parameter(torch.zeros(self.n_components, u_dim))
        self.register_buffer("_zero", torch.zeros(u_dim), persistent=False)

    # --- the pieces of the model -----------------------------------------------------------
    def low_res(self, x: torch.Tensor) -> torch.Tensor:
        """y = d(x), deterministic (q(y | x) is a Dirac)."""
        return downscale(x, self.factor)

    @staticmethod
    def _params(out: torch.Tensor):
        """Split a network's output into a mean and a log-variance (clamped to a safe range)."""
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0)

    @staticmethod
    def _gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
        return Independent(Normal(mu, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)

    def encode_u(self, y: torch.Tensor) -> Independent:
        """q(u | y), a diagonal Gaussian over R^u_dim."""
        check_input(y, self.low_shape, type(self).__name__ + ".encode_u")
        return self._gaussian(*self._params(self.enc_u(y.flatten(1))))

    def encode_z(self, x: torch.Tensor) -> Independent:
        """q(z | x), a diagonal Gaussian over R^z_dim (eq. 13: y adds nothing to x)."""
        check_input(x, self.shape, type(self).__name__ + ".encode_z")
        return self._gaussian(*self._params(self.enc_z(x.flatten(1))))

    def prior_z(self, y: torch.Tensor, u: torch.Tensor) -> Independent:
        """p(z | y, u), a diagonal Gaussian (a learned conditional prior)."""
        return self._gaussian(*self._params(self.prior_z_net(torch.cat([y.flatten(1), u], dim=1))))

    def y_hat(self, u: torch.Tensor) -> torch.Tensor:
        """The mean of p(y | u), a batch of low-resolution images."""
        return self.dec_y(u).reshape(len(u), *self.low_shape)

    def x_hat(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | y, z): the bilinear upsampling of y plus a learned correction."""
        up = F.interpolate(y, size=self.shape[1:], mode="bilinear", align_corners=False)
        return up + self.dec_x(torch.cat([y.flatten(1), z], dim=1)).reshape(len(z), *self.shape)

    def decode_y(self, u: torch.Tensor) -> Independent:
        """p(y | u) = N(y_hat(u), gamma_2^2 I) over low-resolution images."""
        mean = self.y_hat(u)
        return Independent(Normal(mean, self.gamma_y.expand_as(mean), validate_args=False), 3, validate_args=False)

    def decode_x(self, y: torch.Tensor, z: torch.Tensor) -> Independent:
        """p(x | y, z) = N(x_hat(y, z), gamma_1^2 I)."""
        mean = self.x_hat(y, z)
        return Independent(Normal(mean, self.gamma_x.expand_as(mean), validate_args=False), 3, validate_args=False)

    @property
    def prior(self):
        """p(u): N(0, I) or the learned mixture of Gaussians (eq. 22)."""
        if self.prior_kind == "normal":
            return Independent(Normal(self._zero, torch.ones_like(self._zero), validate_args=False), 1,
                               validate_args=False)
        return MixtureOfGaussians(self.mix_logits, self.mix_loc, self.mix_log_scale.exp())

    @property
    def gamma_x(self) -> torch.Tensor:
        """gamma_1, the standard deviation of p(x | y, z)."""
        return self.log_gamma_x.exp()

    @property
    def gamma_y(self) -> torch.Tensor:
        """gamma_2, the standard deviation of p(y | u)."""
        return self.log_gamma_y.exp()

    def kl_u(self, mu: torch.Tensor, logvar: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q(u | y) || p(u)) per example, q(u | y) = N(mu, diag exp(logvar)): closed form for the normal
        prior; for the mixture the convexity bound (``kl_u="bound"``), the tighter bound (``kl_u="tight"``) or
        log q(u|y) - log p(u) at the sample u."""
        if self.prior_kind == "normal":
            return gaussian_kl(mu, logvar)
        q_u = self._gaussian(mu, logvar)
        if self.kl_u_kind == "bound":
            return kl_mixture_upper_bound(q_u, self.prior)
        if self.kl_u_kind == "tight":
            return kl_mixture_tight_bound(q_u, self.prior)
        if u is None:
            u = q_u.rsample()
        return q_u.log_prob(u) - self.prior.log_prob(u)

    # --- training ------------------------------------------------------------------------
    def terms(self, x: torch.Tensor) -> dict:
        """Every term of the negative ELBO (eq. 19), one value per example (shape (batch,)).

        Noise is drawn with ``torch.randn_like``: first for u, then for z.
        """
        check_input(x, self.shape, type(self).__name__)
        y = self.low_res(x)                                         # y = d(x): q(y | x) is a Dirac
        mu_u, logvar_u = self._params(self.enc_u(y.flatten(1)))     # q(u | y)
        u = mu_u + torch.exp(0.5 * logvar_u) * torch.randn_like(mu_u)
        mu_z, logvar_z = self._params(self.enc_z(x.flatten(1)))     # q(z | x)
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mu_z)
        mu_pz, logvar_pz = self._params(self.prior_z_net(torch.cat([y.flatten(1), u], dim=1)))  # p(z | y, u)
        return {
            "recon_x": gaussian_nll(self.x_hat(y, z), x, self.log_gamma_x),   # -log p(x | y, z)
            "recon_y": gaussian_nll(self.y_hat(u), y, self.log_gamma_y),      # -log p(y | u)
            "kl_u": self.kl_u(mu_u, logvar_u, u),                             # KL(q(u | y) || p(u)), or its bound
            "kl_z": gaussian_kl_general(mu_z, logvar_z, mu_pz, logvar_pz),    # KL(q(z | x) || p(z | y, u))
        }

    def loss(self, x: torch.Tensor, labels=None) -> dict:
        """Negative ELBO (eq. 19) and its terms, nats per example (labels, if given, are ignored)."""
        t = {k: v.mean() for k, v in self.terms(x).items()}
        t["loss"] = t["recon_x"] + t["recon_y"] + t["kl_u"] + t["kl_z"]
        t["gamma_x"] = self.gamma_x.detach()
        t["gamma_y"] = self.gamma_y.detach()
        return t

    # --- using a trained model -------------------------------------------------------------
    @torch.no_grad()
    def super_resolve(self, y: torch.Tensor, n: int = 1, sample: bool = True) -> torch.Tensor:
        """n high-resolution images for each low-resolution y: u ~ q(u | y), z ~ p(z | y, u), x = mean of p(x | y, z).

        Returns a tensor of shape (n, len(y), *shape): several x for one y (the conditional is not deterministic).
        ``sample=False`` uses the means of q(u | y) and p(z | y, u) instead (one most typical x).
        """
        check_input(y, self.low_shape, type(self).__name__ + ".super_resolve")
        q_u = self.encode_u(y)
        out = []
        for _ in range(n):
            u = q_u.sample() if sample else q_u.mean
            p_z = self.prior_z(y, u)
            z = p_z.sample() if sample else p_z.mean
            out.append(self.x_hat(y, z))
        return torch.stack(out)

    @torch.no_grad()
    def generate(self, u: torch.Tensor, sample_z: bool = True):
        """From given u: y = mean of p(y | u), z ~ p(z | y, u) (or its mean), x = mean of p(x | y, z). Returns (y, x)."""
        if u.dim() != 2 or u.shape[1] != self.u_dim:
            raise ValueError(f"u must have shape (n, {self.u_dim}), got {tuple(u.shape)}.")
        y = self.y_hat(u)
        p_z = self.prior_z(y, u)
        z = p_z.sample() if sample_z else p_z.mean
        return y, self.x_hat(y, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """n draws u ~ p(u), then y and x (decoder means): returns (y, x) of shapes (n, *low_shape), (n, *shape)."""
        if generator is not None:
            state = torch.random.get_rng_state()
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        try:
            u = self.prior.sample((n,)).to(self._zero.device)
            return self.generate(u)
        finally:
            if generator is not None:
                torch.random.set_rng_state(state)
