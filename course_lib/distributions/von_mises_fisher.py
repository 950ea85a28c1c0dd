r"""The von Mises-Fisher distribution on the sphere S^(m-1) and the uniform distribution on it (lesson 9).

Davidson et al. (2018), "Hyperspherical Variational Auto-Encoders"; seed 000, eq. (3):

.. math:: q(z \mid \mu, \kappa) = \mathcal{C}_m(\kappa) \exp(\kappa \mu^\top z), \qquad
          \mathcal{C}_m(\kappa) = \frac{\kappa^{m/2-1}}{(2\pi)^{m/2} I_{m/2-1}(\kappa)},

for :math:`z, \mu` on the unit sphere :math:`S^{m-1} \subset \mathbb{R}^m` and :math:`\kappa > 0`.

Numerics. Everything that involves a Bessel function works with :func:`log_bessel_iv`, the
logarithm of :math:`I_v(\kappa)`, computed in float64 whatever the input dtype (a power series in
log space for small :math:`\sqrt{v^2+\kappa^2}`, the uniform asymptotic expansion of Debye/Olver
otherwise), so that the log-density, entropy, KL, samples and their gradients stay finite for m
from 2 to 256 and kappa from 1e-3 to 1e5 where :math:`I_v(\kappa)` itself under- or overflows.
Results are returned in the dtype of ``loc``.

Sampling (Wood 1994): the component :math:`w = \mu^\top z` by a one-dimensional rejection sampler,
a uniform direction orthogonal to :math:`e_1`, and a Householder reflection taking :math:`e_1` to
:math:`\mu`. The gradient of ``rsample`` with respect to kappa is the implicit reparameterization
gradient of :math:`w` (Figurnov et al. 2018), :math:`\partial w / \partial\kappa =
-\partial_\kappa F(w \mid \kappa) / p(w \mid \kappa)` with :math:`F` the CDF of :math:`w`, which is
unbiased; ``rsample(..., gradient="pathwise")`` gives the pathwise term alone (differentiating Wood's
transform with the accepted proposal held fixed), which is biased (Naesseth et al. 2017), for the lesson.
"""
from __future__ import annotations

import math
from numbers import Number

import torch
from torch.distributions import Distribution, constraints, register_kl

__all__ = [
    "VonMisesFisher",
    "HypersphericalUniform",
    "log_bessel_iv",
    "bessel_ratio",
    "vmf_log_normalizer",
    "log_sphere_area",
    "vmf_kl_uniform",
    "wood_parameters",
    "wood_acceptance_rate",
    "householder_to",
]

_WORK = torch.float64          # Bessel functions and the sampler always run in float64
_SERIES_TERMS = 160            # terms of the power series (enough for sqrt(v^2 + k^2) < _DEBYE_FROM)
_DEBYE_FROM = 50.0             # use the uniform asymptotic expansion when sqrt(v^2 + k^2) >= this
_QUAD_NODES = 96               # Gauss-Legendre nodes of the implicit gradient's tail integral


# ------------------------------------------------------------------------------------------
# Bessel functions in log space
# ------------------------------------------------------------------------------------------
def _log_iv_series(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""log I_v(k) = log sum_j (k/2)^(2j+v) / (j! Gamma(v+j+1)), summed in log space."""
    k_max = float(k.detach().max()) if k.numel() else 1.0
    n_terms = int(min(_SERIES_TERMS, 1.2 * k_max + 40))   # terms peak near j = k/2 and then fall geometrically
    j = torch.arange(n_terms, dtype=k.dtype, device=k.device)
    v_, k_ = v.unsqueeze(-1), k.unsqueeze(-1)
    terms = (2 * j + v_) * torch.log(k_ / 2) - torch.lgamma(j + 1) - torch.lgamma(v_ + j + 1)
    return torch.logsumexp(terms, dim=-1)


def _log_iv_debye(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Uniform asymptotic expansion (Olver; DLMF 10.41.3) written with s = sqrt(v^2 + k^2):

    log I_v(k) ~ -log(2 pi)/2 - log(s)/2 + s + v log(k / (v + s)) + log(1 + sum_n u_n(t) / v^n),
    t = v / s, each u_n(t) / v^n a polynomial in 1/s and v^2/s^2 (finite at v = 0); error O(s^-5).
    """
    s = torch.sqrt(v * v + k * k)
    p = 1 / s
    q = (v * p) ** 2                       # t^2
    u1 = p * (3 - 5 * q) / 24
    u2 = p**2 * (81 - 462 * q + 385 * q**2) / 1152
    u3 = p**3 * (30375 - 369603 * q + 765765 * q**2 - 425425 * q**3) / 414720
    u4 = p**4 * (4465125 - 94121676 * q + 349922430 * q**2 - 446185740 * q**3 + 185910725 * q**4) / 39813120
    return (-0.5 * math.log(2 * math.pi) - 0.5 * torch.log(s) + s + v * (torch.log(k) - torch.log(v + s))
            + torch.log1p(u1 + u2 + u3 + u4))


def log_bessel_iv(v, kappa: torch.Tensor) -> torch.Tensor:
    r"""log I_v(kappa), the modified Bessel function of the first kind, for v >= 0 and kappa > 0.

    I_v(kappa) = sum_j (kappa/2)^(2j+v) / (j! Gamma(v+j+1)) over- or underflows long before its
    logarithm does (I_127(1e-3) ~ 10^-632.7, I_0(1e5) ~ 10^43426.5), so the lesson only ever uses the log:
    a series in log space where sqrt(v^2 + kappa^2) < 50, the uniform asymptotic expansion beyond
    (relative error below 1e-9 there). Computed in float64, differentiable (autograd gives
    d/dkappa log I_v = I_{v+1}/I_v + v/kappa), returned in kappa's dtype.
    """
    kappa = torch.as_tensor(kappa)
    out_dtype = kappa.dtype if kappa.is_floating_point() else torch.get_default_dtype()
    k = kappa.to(_WORK)
    v = torch.as_tensor(v, dtype=_WORK, device=k.device)
    v, k = torch.broadcast_tensors(v, k)
    big = torch.sqrt(v * v + k * k) >= _DEBYE_FROM
    # each branch only sees arguments where it is used (no NaN leaking into the other's gradient)
    k_series = torch.where(big, torch.ones_like(k), k)
    k_debye = torch.where(big, k, torch.full_like(k, 2 * _DEBYE_FROM))
    out = torch.where(big, _log_iv_debye(v, k_debye), _log_iv_series(v, k_series))
    return out.to(out_dtype)


def _log_iv_pair(v: float, k: torch.Tensor):
    """(log I_v(k), log I_{v+1}(k)) in float64 from one call (the two orders stacked)."""
    both = log_bessel_iv(torch.tensor([v, v + 1.0], dtype=_WORK, device=k.device).reshape(2, *([1] * k.dim())),
                         k.to(_WORK).unsqueeze(0))
    return both[0], both[1]


def bessel_ratio(v, kappa: torch.Tensor) -> torch.Tensor:
    r"""A_v(kappa) = I_{v+1}(kappa) / I_v(kappa), from the difference of two log-Bessel values.

    For the vMF on S^(m-1) with v = m/2 - 1 it is E[mu^T z] (the mean resultant length);
    d/dkappa A_v = 1 - A_v^2 - (2v + 1) A_v / kappa.
    """
    kappa = torch.as_tensor(kappa)
    out_dtype = kappa.dtype if kappa.is_floating_point() else torch.get_default_dtype()
    log_i, log_i1 = _log_iv_pair(float(v), kappa.to(_WORK))
    return torch.exp(log_i1 - log_i).to(out_dtype)


def log_sphere_area(m: int) -> float:
    r"""log of the surface area of S^(m-1) in R^m: A_m = 2 pi^(m/2) / Gamma(m/2)."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def vmf_log_normalizer(m: int, kappa: torch.Tensor) -> torch.Tensor:
    r"""log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log(2 pi) - log I_{m/2-1}(kappa)   (seed eq. 3)."""
    kappa = torch.as_tensor(kappa)
    k = kappa.to(_WORK)
    v = 0.5 * m - 1
    out = v * torch.log(k) - 0.5 * m * math.log(2 * math.pi) - log_bessel_iv(v, k)
    return out.to(kappa.dtype if kappa.is_floating_point() else torch.get_default_dtype())


def vmf_kl_uniform(m: int, kappa: torch.Tensor) -> torch.Tensor:
    r"""KL(vMF(mu, kappa) || U(S^(m-1))) = kappa A_{m/2-1}(kappa) + log C_m(kappa) + log A_m,

    with A_{m/2-1} = I_{m/2}/I_{m/2-1} = E[mu^T z] and A_m the area of the sphere; it does not
    depend on mu. Clamped at 0 (rounding can give -1e-16 when kappa -> 0).
    """
    kappa = torch.as_tensor(kappa)
    kl = -_vmf_entropy(m, kappa.to(_WORK)) + log_sphere_area(m)
    return kl.clamp_min(0.0).to(kappa.dtype if kappa.is_floating_point() else torch.get_default_dtype())


def _vmf_entropy(m: int, k: torch.Tensor) -> torch.Tensor:
    """H = -log C_m(k) - k A(k), float64, from one pair of log-Bessel values."""
    v = 0.5 * m - 1
    log_i, log_i1 = _log_iv_pair(v, k)
    log_c = v * torch.log(k) - 0.5 * m * math.log(2 * math.pi) - log_i
    return -log_c - k * torch.exp(log_i1 - log_i)


# ------------------------------------------------------------------------------------------
# Wood's (1994) rejection sampler for w = mu^T z
# ------------------------------------------------------------------------------------------
def wood_parameters(m: int, kappa: torch.Tensor):
    r"""Envelope parameters of Wood (1994): b, a, d (float64).

    b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2))   (Wood's (-2k + sqrt(4k^2 + (m-1)^2)) / (m-1),
    rationalised so that it does not cancel at large kappa), a = ((m-1) + 2k + sqrt(4k^2 + (m-1)^2)) / 4,
    d = 4ab / (1+b) - (m-1) log(m-1).
    """
    k = torch.as_tensor(kappa).to(_WORK)
    root = torch.sqrt(4 * k * k + (m - 1) ** 2)
    b = (m - 1) / (2 * k + root)
    a = ((m - 1) + 2 * k + root) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    return b, a, d


def _wood_proposal(m: int, b: torch.Tensor, eps: torch.Tensor):
    """Proposal w = (1 - (1+b) eps) / (1 - (1-b) eps) as (1 - w, t), 1 - w = 2 b eps / (1 - (1-b) eps) exactly."""
    den = 1 - (1 - b) * eps
    one_minus_w = 2 * b * eps / den
    return one_minus_w, den


def _wood_sample_w(m: int, kappa: torch.Tensor, generator=None, max_rounds: int = 1000):
    """Accepted (1 - w, eps) for every entry of kappa (float64), drawn until all are accepted."""
    b, a, d = wood_parameters(m, kappa)
    shape, dev = kappa.shape, kappa.device
    alpha = torch.full(shape, 0.5 * (m - 1), dtype=_WORK, device=dev)
    one_minus_w = torch.zeros(shape, dtype=_WORK, device=dev)
    eps_acc = torch.zeros(shape, dtype=_WORK, device=dev)
    todo = torch.ones(shape, dtype=torch.bool, device=dev)
    for _ in range(max_rounds):
        if not bool(todo.any()):
            return one_minus_w, eps_acc
        eps = _beta_sample(alpha, generator)
        omw, den = _wood_proposal(m, b, eps)
        t = 2 * a * b / den
        u = _uniform(shape, dev, generator)
        accept = todo & ((m - 1) * torch.log(t) - t + d >= torch.log(u))
        one_minus_w = torch.where(accept, omw, one_minus_w)
        eps_acc = torch.where(accept, eps, eps_acc)
        todo = todo & ~accept
    raise RuntimeError(f"Wood's sampler did not accept every proposal in {max_rounds} rounds; "
                       "this should not happen for kappa in [1e-3, 1e5]: check kappa for NaN.")


def _uniform(shape, device, generator):
    if generator is None:
        return torch.rand(shape, dtype=_WORK, device=device).clamp_min(1e-300)
    return torch.rand(shape, dtype=_WORK, generator=generator).to(device).clamp_min(1e-300)


def _beta_sample(alpha: torch.Tensor, generator):
    """eps ~ Beta(alpha, alpha) as G1 / (G1 + G2) with Gamma draws (torch's Beta takes no generator)."""
    if generator is None:
        g1 = torch._standard_gamma(alpha)
        g2 = torch._standard_gamma(alpha)
    else:
        a_cpu = alpha.cpu()
        g1 = torch._standard_gamma(a_cpu, generator=generator).to(alpha.device)
        g2 = torch._standard_gamma(a_cpu, generator=generator).to(alpha.device)
    return g1 / (g1 + g2).clamp_min(1e-300)


def wood_acceptance_rate(m: int, kappa: float, n: int = 20_000, generator=None) -> float:
    """Fraction of Wood proposals accepted, measured on n proposals (for the lesson's plot)."""
    k = torch.full((n,), float(kappa), dtype=_WORK)
    b, a, d = wood_parameters(m, k)
    eps = _beta_sample(torch.full((n,), 0.5 * (m - 1), dtype=_WORK), generator)
    _, den = _wood_proposal(m, b, eps)
    t = 2 * a * b / den
    u = _uniform((n,), torch.device("cpu"), generator)
    return float(((m - 1) * torch.log(t) - t + d >= torch.log(u)).double().mean())


def _implicit_dw_dkappa(m: int, kappa: torch.Tensor, one_minus_w: torch.Tensor, R: torch.Tensor | None = None) -> torch.Tensor:
    r"""dw/dkappa = -d/dkappa F(w | kappa) / p(w | kappa), the implicit reparameterization gradient.

    p(w) is proportional to exp(kappa w) (1 - w^2)^((m-3)/2) on [-1, 1] and d/dkappa log p(t) = t - R
    with R = E[w], so d/dkappa F(w) = int_{-1}^w (t - R) p(t) dt = -int_w^1 (t - R) p(t) dt. We integrate
    over the tail that does not contain the bulk (t >= w >= R or t <= w < R: a positive integrand,
    no cancellation), in the angle t = cos(phi) (no endpoint singularity, even for m = 2):

      dw/dkappa = sin(phi_w) int (|cos phi - R|) exp(kappa (cos phi - w)) (sin phi / sin phi_w)^(m-2) dphi

    over [0, phi_w] (upper tail, Gauss-Legendre) or [phi_w, pi] (lower tail, Gauss-Legendre in s with
    phi = phi_w + (pi - phi_w) s^4, which puts nodes where the integrand decays fast at large kappa).
    """
    k = kappa.to(_WORK)
    omw = one_minus_w.to(_WORK).clamp(0.0, 2.0)
    w = 1 - omw
    R = bessel_ratio(0.5 * m - 1, k) if R is None else R.to(_WORK)
    phi_w = 2 * torch.asin(torch.sqrt(omw / 2).clamp(0.0, 1.0))        # accurate for w near 1
    x, wt = _gauss_legendre(_QUAD_NODES, k.device)                       # nodes on [0, 1]
    upper = w >= R
    pw, kk, RR = phi_w.unsqueeze(-1), k.unsqueeze(-1), R.unsqueeze(-1)
    # upper tail: phi = phi_w * x
    phi_up = pw * x
    jac_up = pw.expand_as(phi_up)
    # lower tail: phi = phi_w + (pi - phi_w) x^4
    span = math.pi - pw
    phi_lo = pw + span * x**4
    jac_lo = span * 4 * x**3
    phi = torch.where(upper.unsqueeze(-1), phi_up, phi_lo)
    jac = torch.where(upper.unsqueeze(-1), jac_up, jac_lo)
    # cos(phi) - cos(phi_w) = -2 sin((phi + phi_w)/2) sin((phi - phi_w)/2), stable for small angles
    dcos = -2 * torch.sin((phi + pw) / 2) * torch.sin((phi - pw) / 2)
    sin_pw = torch.sin(pw).clamp_min(1e-300)
    log_ratio = torch.log(torch.sin(phi).clamp_min(1e-300)) - torch.log(sin_pw)
    log_f = kk * dcos + (m - 2) * log_ratio
    gap = (dcos + (1 - RR) - (1 - w).unsqueeze(-1)).abs()                # |cos phi - R| = |(cos phi - w) + (w - R)|
    integrand = gap * torch.exp(log_f.clamp(max=700.0)) * jac
    out = sin_pw.squeeze(-1) * (integrand * wt).sum(-1)
    return torch.nan_to_num(out, nan=0.0, posinf=1e300).clamp_min(0.0)


_GL_CACHE: dict = {}


def _gauss_legendre(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (n, str(device))
    if key not in _GL_CACHE:
        import numpy as np

        x, w = np.polynomial.legendre.leggauss(n)
        _GL_CACHE[key] = (torch.tensor((x + 1) / 2, dtype=_WORK, device=device),
                          torch.tensor(w / 2, dtype=_WORK, device=device))
    return _GL_CACHE[key]


class _ImplicitOneMinusW(torch.autograd.Function):
    """Returns the sampled 1 - w; its backward uses d(1 - w)/dkappa = -dw/dkappa (implicit gradient)."""

    @staticmethod
    def forward(ctx, kappa, one_minus_w, mean_w, m):
        ctx.m = m
        ctx.save_for_backward(kappa, one_minus_w, mean_w)
        return one_minus_w.clone()

    @staticmethod
    def backward(ctx, grad):
        kappa, omw, mean_w = ctx.saved_tensors
        dw = _implicit_dw_dkappa(ctx.m, kappa, omw, mean_w)
        return -grad * dw, None, None, None


def _pathwise_one_minus_w(m: int, kappa: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """1 - w as Wood's transform of the accepted eps, differentiated with eps held fixed (biased)."""
    root = torch.sqrt(4 * kappa * kappa + (m - 1) ** 2)
    b = (m - 1) / (2 * kappa + root)
    return _wood_proposal(m, b, eps)[0]


def householder_to(mu: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Apply an orthogonal map Q with Q e_1 = mu to x (both (..., m)).

    Q = H = I - 2 u u^T with u = (e_1 - mu) / |e_1 - mu| (H e_1 = mu) when mu_1 <= 0, and
    Q = -H' with u' = (e_1 + mu) / |e_1 + mu| (-H' e_1 = mu) when mu_1 > 0, so that the
    vector normalised is never shorter than sqrt(2). Any orthogonal Q with Q e_1 = mu maps
    vMF(e_1, kappa) to vMF(mu, kappa), since the former is invariant under rotations fixing e_1.
    """
    e1 = torch.zeros_like(mu)
    e1[..., 0] = 1.0
    flip = (mu[..., :1] > 0)
    sign = torch.where(flip, -1.0, 1.0).to(mu.dtype)
    u = e1 - sign * mu                                         # e_1 - mu or e_1 + mu
    u = u / torch.sqrt((u * u).sum(-1, keepdim=True).clamp_min(1e-30))
    hx = x - 2 * u * (u * x).sum(-1, keepdim=True)
    return torch.where(flip, -hx, hx)


# ------------------------------------------------------------------------------------------
# The distributions
# ------------------------------------------------------------------------------------------
class VonMisesFisher(Distribution):
    r"""vMF(mu, kappa) on S^(m-1): density C_m(kappa) exp(kappa mu^T z) w.r.t. the surface measure.

    - ``loc``: mu, shape ``(..., m)``, unit vectors (m >= 2); normalise your encoder's output with
      ``torch.nn.functional.normalize`` first.
    - ``scale``: kappa > 0, shape ``loc.shape[:-1]`` (a trailing dimension of size 1 is accepted).
    - ``rsample(sample_shape, gradient="implicit")``: Wood's sampler; gradients w.r.t. loc and
      kappa are unbiased. ``gradient="pathwise"`` keeps only the pathwise term (biased; lesson 9).
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.positive}
    support = constraints.real_vector   # the unit sphere (torch has no sphere constraint)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale, validate_args=None):
        if not torch.is_tensor(loc) or not loc.is_floating_point():
            raise TypeError("loc must be a floating-point tensor of unit vectors, shape (..., m); "
                            "build it with torch.nn.functional.normalize(h, dim=-1).")
        if loc.device.type == "mps":
            raise RuntimeError("VonMisesFisher computes its Bessel functions in float64, which Apple's MPS does not support: "
                               "run this lesson on the CPU (COURSE_DEVICE=cpu) or on CUDA.")
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape (..., m) with m >= 2 (a point of S^(m-1)), got {tuple(loc.shape)}.")
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if scale.dim() == loc.dim() and scale.shape[-1] == 1:
            scale = scale.squeeze(-1)
        try:
            batch_shape = torch.broadcast_shapes(loc.shape[:-1], scale.shape)
        except RuntimeError:
            raise ValueError(f"scale (kappa) must have shape loc.shape[:-1] = {tuple(loc.shape[:-1])} (one kappa per "
                             f"direction), got {tuple(scale.shape)}.") from None
        self.loc = loc.expand(*batch_shape, loc.shape[-1])
        self.scale = scale.expand(batch_shape)
        self.m = int(loc.shape[-1])
        if validate_args is not False:
            self._check_params()
        super().__init__(batch_shape, torch.Size([self.m]), validate_args=False)

    def _check_params(self):
        with torch.no_grad():
            if not bool(torch.isfinite(self.loc).all()):
                raise ValueError("loc contains NaN or infinite values; check the encoder's output (lower the learning rate?).")
            norms = self.loc.to(_WORK).norm(dim=-1)
            if norms.numel() and float((norms - 1).abs().max()) > 1e-3:
                raise ValueError(f"loc must lie on the unit sphere (|mu| = 1), got norms between {float(norms.min()):.4g} and "
                                 f"{float(norms.max()):.4g}; normalise it with torch.nn.functional.normalize(loc, dim=-1).")
            if not bool(torch.isfinite(self.scale).all()) or not bool((self.scale > 0).all()):
                raise ValueError("scale (kappa) must be finite and > 0; produce it with softplus(h) + 1 (as Davidson et "
                                 f"al.) rather than h itself; got min {float(self.scale.min()):.4g}.")

    # --- moments -------------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """E[z] = A_{m/2-1}(kappa) mu, with A = I_{m/2} / I_{m/2-1} (its length is below 1)."""
        return bessel_ratio(0.5 * self.m - 1, self.scale).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    # --- densities -------------------------------------------------------------------------
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log C_m(kappa) + kappa mu^T z (seed eq. 3), computed in float64, returned in loc's dtype."""
        if value.shape[-1] != self.m:
            raise ValueError(f"value must have last dimension m = {self.m}, got shape {tuple(value.shape)}.")
        dot = (value.to(_WORK) * self.loc.to(_WORK)).sum(-1)
        k = self.scale.to(_WORK)
        return (vmf_log_normalizer(self.m, k) + k * dot).to(self.loc.dtype)

    def entropy(self) -> torch.Tensor:
        """H = -log C_m(kappa) - kappa A_{m/2-1}(kappa)."""
        return _vmf_entropy(self.m, self.scale.to(_WORK)).to(self.loc.dtype)

    # --- sampling --------------------------------------------------------------------------
    def rsample(self, sample_shape=torch.Size(), gradient: str = "implicit", generator=None) -> torch.Tensor:
        """Wood (1994): w = mu^T z by 1-D rejection, v uniform on S^(m-2), z = Q (w, sqrt(1-w^2) v), Q e_1 = mu."""
        if gradient not in ("implicit", "pathwise"):
            raise ValueError(f"gradient must be 'implicit' (unbiased) or 'pathwise' (biased, for the lesson), got {gradient!r}.")
        shape = self._extended_shape(sample_shape)              # sample + batch + (m,)
        kappa = self.scale.to(_WORK).expand(shape[:-1])
        with torch.no_grad():
            omw, eps = _wood_sample_w(self.m, kappa.detach(), generator)
        if gradient == "implicit":
            with torch.no_grad():   # E[w] once per distribution, not once per sample
                mean_w = bessel_ratio(0.5 * self.m - 1, self.scale.detach().to(_WORK)).expand(shape[:-1])
            omw = _ImplicitOneMinusW.apply(kappa, omw, mean_w, self.m)
        else:
            omw = _pathwise_one_minus_w(self.m, kappa, eps)
        w = 1 - omw
        with torch.no_grad():
            if generator is None:
                v = torch.randn(*shape[:-1], self.m - 1, dtype=_WORK, device=kappa.device)
            else:
                v = torch.randn(*shape[:-1], self.m - 1, dtype=_WORK, generator=generator).to(kappa.device)
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        radius = torch.sqrt((omw * (2 - omw)).clamp_min(0.0))   # sqrt(1 - w^2)
        z_e1 = torch.cat([w.unsqueeze(-1), radius.unsqueeze(-1) * v], dim=-1)
        z = householder_to(self.loc.to(_WORK).expand(shape), z_e1)
        return z.to(self.loc.dtype)

    def sample(self, sample_shape=torch.Size(), generator=None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return VonMisesFisher(self.loc.expand(*batch_shape, self.m), self.scale.expand(batch_shape), validate_args=False)

    def __repr__(self):
        return f"VonMisesFisher(m={self.m}, batch_shape={tuple(self.batch_shape)})"


class HypersphericalUniform(Distribution):
    """The uniform distribution on S^(dim-1) in R^dim: density 1 / A_dim, A_dim = 2 pi^(dim/2) / Gamma(dim/2)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, dim: int, batch_shape=torch.Size(), device=None, dtype=None, validate_args=None):
        if isinstance(dim, bool) or not isinstance(dim, (int,)) and not (isinstance(dim, Number) and float(dim).is_integer()):
            raise TypeError(f"dim is the ambient dimension m (an integer >= 2; the sphere is S^(m-1)), got {dim!r}.")
        dim = int(dim)
        if dim < 2:
            raise ValueError(f"dim is the ambient dimension m >= 2 (S^1 is the circle in R^2), got {dim}.")
        self.dim = dim
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._dtype = dtype or torch.get_default_dtype()
        super().__init__(torch.Size(batch_shape), torch.Size([dim]), validate_args=False)

    @property
    def log_area(self) -> float:
        return log_sphere_area(self.dim)

    def sample(self, sample_shape=torch.Size(), generator=None) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        if generator is None:
            x = torch.randn(shape, device=self._device, dtype=self._dtype)
        else:
            x = torch.randn(shape, generator=generator, dtype=self._dtype).to(self._device)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[-1] != self.dim:
            raise ValueError(f"value must have last dimension {self.dim}, got shape {tuple(value.shape)}.")
        return torch.full(value.shape[:-1], -self.log_area, dtype=value.dtype, device=value.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, self.log_area, dtype=self._dtype, device=self._device)

    def expand(self, batch_shape, _instance=None):
        return HypersphericalUniform(self.dim, batch_shape, self._device, self._dtype)

    def __repr__(self):
        return f"HypersphericalUniform(dim={self.dim})"


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(q: VonMisesFisher, p: HypersphericalUniform) -> torch.Tensor:
    if q.m != p.dim:
        raise ValueError(f"the vMF lives on S^{q.m - 1} in R^{q.m} but the uniform on S^{p.dim - 1}: use HypersphericalUniform({q.m}).")
    return vmf_kl_uniform(q.m, q.scale)
