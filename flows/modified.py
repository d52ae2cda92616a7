"""Modified-equation flows (SPEC §3.5): continuous models that match a discrete optimizer to a chosen
order in alpha, each with the fixed-horizon error slope that backward error analysis predicts.

Time. Every model shares t = k alpha (SPEC §0): the flow at t = k alpha is compared with iterate k.
"Slope p" means E = O(alpha^p) at a fixed horizon T, for E_T = |theta_K - theta(K alpha)| and the
sup-norm error E_sup = max_{k <= K} |theta_k - theta(k alpha)| (SPEC §4, clean protocol), in the
asymptotic regime alpha -> 0 (where it begins is measured, not assumed: ``adamflow figs --only
modified`` and the README table).

Gradient descent, theta_{k+1} = theta_k - alpha g(theta_k). The modified equation theta' = F with
F = F0 + alpha F1 + alpha^2 F2 + ... is fixed by requiring the time-alpha map of the flow to equal
the GD map order by order (Taylor expansion of the flow map: theta(t + alpha) = theta + alpha F +
alpha^2/2 F'F + alpha^3/6 (F'F'F + F''(F, F)) + ...):

    gd-flow            theta' = -g                                                  slope 1
    gd-flow2           theta' = -g - (alpha/2) H g                                  slope 2
    gd-flow3           theta' = -g - (alpha/2) H g - alpha^2 (H^2 g/3 + T[g,g]/12)  slope 3
    gd-principal-flow  theta' = (1/alpha) log(I - alpha H) H^{-1} g = -phi(alpha H) g

with T[g,g] = grad(g^T H g) at fixed g (:meth:`landscapes.base.Landscape.third_contraction`) and
phi(z) = -log(1 - z)/z = 1 + z/2 + z^2/3 + ... The principal flow sums every H-only term of the
series (it lacks the T terms from order 3 on): on a quadratic, where T = 0, it IS the GD map at
every k: theta(k alpha) - x* = (I - alpha H)^k (theta_0 - x*), for every alpha with alpha lambda < 1
for all eigenvalues lambda of H. Where some alpha lambda >= 1 the GD map has an eigenvalue <= 0,
which no real flow can produce (a flow map is exp of something, with positive eigenvalues on the
symmetric part): the velocity is inf/NaN there and the lane ends as DIVERGED (a status, not an
exception). Predicted slope: 2 on a general landscape (its alpha^2 term lacks -T[g,g]/12, so it
is gd-flow2 plus part of the next order), 3 and beyond where T = 0; on a quadratic it is exact (error
at rounding level at every k).

Heavy ball, torch SGD-momentum form (:class:`discrete.classic.HeavyBall`): b_k = mu b_{k-1} + g_k,
theta_k = theta_{k-1} - alpha b_k, i.e. theta_{k+1} - theta_k = mu (theta_k - theta_{k-1}) -
alpha g(theta_k) with theta_{-1} = theta_0. Taylor in t = k alpha gives the mass ODE

    heavyball-flow     (alpha (1+mu)/2) theta'' + (1 - mu) theta' = -g,
                       theta'(0) = -g(theta_0)/(1 + mu)                             slope 2 (E_T)

(state (theta, u = theta'); stiff linear part [[0, 1], [0, -2(1-mu)/(alpha(1+mu))]]). Its slow
manifold theta' = F(theta) is the discrete map's slow manifold to O(alpha):

    heavyball-reduced-flow  theta' = -g/(1-mu) - alpha (1+mu)/(2 (1-mu)^3) H g,
                            theta(0) = theta_0 + alpha mu/(1-mu)^2 g(theta_0)      slope 2 (E_T)

Both carry an initial condition that accounts for the initial layer: the discrete velocity starts
at 0 (b_0 = 0) and relaxes to the slow manifold like mu^k; in the layer theta_k - theta_0 =
-alpha g_0/(1-mu) (k - mu (1 - mu^k)/(1-mu)) + O(alpha^2), so after it the iterates follow the slow
flow started from the shifted point theta_0 + alpha mu g_0/(1-mu)^2 (the reduced flow's start). The
mass ODE relaxes in the same way with rate 2(1-mu)/(alpha(1+mu)) and shift
(u(0) + g_0/(1-mu)) alpha (1+mu)/(2(1-mu)), which equals that shift exactly for
u(0) = -g_0/(1+mu). Within the layer the iterates and the flows differ by O(alpha) (the reduced
flow starts shifted; the mass ODE relaxes like exp(-2k(1-mu)/(1+mu)) instead of mu^k, a small
constant for mu near 1), so E_sup has slope 1 and E_T, taken after the layer, slope 2.

Adam at fixed betas (:class:`discrete.classic.Adam`). As alpha -> 0 the moments follow the
gradient, m -> g, v -> g^2, and the flow is sign-like:

    adam-sign-flow     theta' = -g/sqrt(g^2 + eps)                                  slope 1

(SPEC §3.5's smooth form; Adam itself divides by |g| + eps: the two differ by < sqrt(eps) where g
passes through 0, below the O(alpha) error at the step sizes studied). To O(alpha) the memories lag
the trajectory by beta/(1-beta) steps: m_k = g - alpha beta1/(1-beta1) H theta' + O(alpha^2) and
v_k = g^2 - 2 alpha beta2/(1-beta2) g (H theta') + O(alpha^2) (bias correction exact for a constant
g; its effect after the first 1/(1-beta) steps is exponentially small). Expanding
m/(sqrt v + eps) and the Euler term of the flow map gives the O(alpha) modified equation (the
model of Cattaneo, Klusowski & Shigida, "On the implicit bias of Adam", ICML 2024, derived here in
the form of this codebase; :mod:`flows.modified_math`):

    adam-modified-flow theta' = F0 + alpha c(g) (H F0),   F0 = -g/(|g| + eps),
                       c(g) = beta1/((1-beta1)(|g|+eps)) - beta2 |g|/((1-beta2)(|g|+eps)^2)
                              + eps/(2 (|g|+eps)^2)                                 slope 2

(per coordinate; for eps -> 0, c = (beta1/(1-beta1) - beta2/(1-beta2))/|g|, which is their
l1-gradient-norm (anti-)regularizer). The asymptotic regime needs the horizon to span many memory
times, T >> alpha/(1-beta2): at betas .99/.999 and alpha = 1e-3 one memory time of v is already 1.

Derivatives. H v from ``landscape.hvp`` where the landscape writes it (separable landscapes:
phi'' v; quadratic, rosenbrock), by automatic differentiation of ``grad`` otherwise; T[g, g] from
``landscape.third_contraction`` (separable: phi''' g^2 with ``d3phi_point``). All of them stay
differentiable in theta, so the exponential Rosenbrock integrator's Jacobian (by autograd of the
right-hand side, :meth:`flows.semilinear.SemilinearFlow.jacobian`) is exact where the landscape's
derivatives are analytic.

Models and methods: gd-flow, gd-flow2, gd-flow3, gd-principal-flow model ``gd``; heavyball-flow,
heavyball-reduced-flow model ``heavyball``; adam-sign-flow, adam-modified-flow model ``adam``.
References: E. Hairer, C. Lubich, G. Wanner, "Geometric Numerical Integration" (2006), ch. IX
(modified equations); D. Barrett, B. Dherin, "Implicit gradient regularization", ICLR 2021 (gd-flow2);
N. Kovachki, A. Stuart, "Continuous time analysis of momentum methods", JMLR 22 (2021) (heavy ball);
M. D. Cattaneo, J. M. Klusowski, B. Shigida, ICML 2024 (Adam).
"""
from __future__ import annotations

import torch

from core.method import ALPHA, BETA1, BETA2, EPS, MOMENTUM, HyperParam
from core.pointwise import TORCH
from flows.compiled_form import (
    ADAM_MODIFIED,
    ADAM_SIGN,
    GD_PRINCIPAL,
    GD_SERIES,
    HEAVYBALL_REDUCED,
    AdamForm,
    ModifiedForm,
)
from flows.modified_math import make_modified_math
from flows.velocity import VelocityFlow
from landscapes.base import Landscape, Separable

(gd_velocity, principal_factor, heavyball_reduced_velocity, sign_velocity, adam_leading,
 adam_correction) = make_modified_math(TORCH)


# -- derivatives that stay differentiable in theta ---------------------------------------------------

def hessian_action(landscape: Landscape, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """H(theta) vec (B, n): the landscape's own ``hvp`` where it writes one (analytic, torch ops),
    else reverse-mode autograd of ``grad`` with the graph kept (so the result can be differentiated
    in theta once more, as the Jacobian of the flow needs)."""
    if type(landscape).hvp is not Landscape.hvp:
        return landscape.hvp(theta, vec)
    with torch.enable_grad():
        x = theta if theta.requires_grad else theta.detach().requires_grad_(True)
        g = landscape.grad(x)
        if not g.requires_grad:
            return torch.zeros_like(theta)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=vec, create_graph=theta.requires_grad,
                                    allow_unused=True)
    return torch.zeros_like(theta) if hv is None else hv


# -- the flows ---------------------------------------------------------------------------------------

class _GDSeries(VelocityFlow):
    """The GD modified equation truncated after alpha^(order-1)."""

    method = "gd"
    hyper: tuple[HyperParam, ...] = (ALPHA,)
    order = 1

    def velocity(self, theta):
        land = self.landscape
        g = land.grad(theta)
        Hg = HHg = Tgg = None
        if self.order >= 2:
            Hg = hessian_action(land, theta, g)
        if self.order >= 3:
            HHg = hessian_action(land, theta, Hg)
            Tgg = land.third_contraction(theta, g)
        return gd_velocity(self.order, self.col("alpha"), g, Hg, HHg, Tgg)

    def compiled_form(self) -> ModifiedForm:
        """The same gd_velocity per coordinate on the compiled engine
        (:mod:`flows.compiled_form`)."""
        return ModifiedForm(kind=GD_SERIES, alpha=self.alpha, order=self.order)


class GDFlow(_GDSeries):
    """Gradient flow theta' = -g: GD to first order (predicted slope 1)."""

    name = "gd-flow"
    description = "gradient flow theta' = -g: GD to O(alpha) (slope 1)"
    order = 1


class GDFlow2(_GDSeries):
    """theta' = -g - (alpha/2) H g: GD to second order (predicted slope 2)."""

    name = "gd-flow2"
    description = "GD modified equation theta' = -g - (alpha/2) H g (slope 2)"
    order = 2


class GDFlow3(_GDSeries):
    """theta' = -g - (alpha/2) H g - alpha^2 (H^2 g/3 + T[g,g]/12): GD to third order (slope 3)."""

    name = "gd-flow3"
    description = "GD modified equation to O(alpha^3): -g - (alpha/2) Hg - alpha^2 (H^2 g/3 + T[g,g]/12)"
    order = 3


class GDPrincipalFlow(VelocityFlow):
    """theta' = -phi(alpha H) g, phi(z) = -log(1-z)/z: the principal logarithm of the GD map
    (exact on quadratics where alpha lambda_max(H) < 1; the lane diverges where it is >= 1).

    Separable landscapes: phi(alpha phi''(theta_i)) g_i per coordinate; otherwise the symmetric
    eigendecomposition H = V diag(lambda) V^T per lane (``torch.linalg.eigh``)."""

    name = "gd-principal-flow"
    description = ("principal flow theta' = (1/alpha) log(I - alpha H) H^-1 g: GD exactly on "
                   "quadratics (alpha lambda < 1)")
    method = "gd"
    hyper = (ALPHA,)

    def velocity(self, theta):
        land = self.landscape
        g = land.grad(theta)
        a = self.col("alpha")
        if isinstance(land, Separable):
            return -principal_factor(a * land.d2phi(theta)) * g
        H = land.hessian(theta)
        H = 0.5 * (H + H.transpose(-1, -2))
        lam, V = torch.linalg.eigh(H)
        coef = principal_factor(a * lam)
        return -torch.einsum("bij,bj->bi", V, coef * torch.einsum("bji,bj->bi", V, g))

    def compiled_form(self) -> ModifiedForm:
        """-phi(alpha phi''(theta_i)) g_i per coordinate on the compiled engine (separable
        landscapes; the lane is NaN where alpha phi'' >= 1: :mod:`flows.compiled_form`)."""
        return ModifiedForm(kind=GD_PRINCIPAL, alpha=self.alpha)


class HeavyBallFlow(VelocityFlow):
    """Mass ODE (alpha (1+mu)/2) theta'' + (1-mu) theta' = -g with theta'(0) = -g_0/(1+mu)
    (state (theta, u)); heavy ball in torch form to second order in E_T (module docstring)."""

    name = "heavyball-flow"
    description = ("heavy-ball mass ODE (alpha(1+mu)/2) theta'' + (1-mu) theta' = -g, "
                   "theta'(0) = -g0/(1+mu) (E_T slope 2)")
    method = "heavyball"
    components = ("theta", "u")
    hyper = (ALPHA, MOMENTUM)

    def __init__(self, landscape, *, n_lanes, dtype=torch.float64, device="cpu", **hyper):
        super().__init__(landscape, n_lanes=n_lanes, dtype=dtype, device=device, **hyper)
        a, mu = self.alpha, self.momentum
        #: u' = -friction u - gain g
        self.friction = 2 * (1 - mu) / (a * (1 + mu))
        self.gain = 2 / (a * (1 + mu))
        self._L[:, 0, 1] = 1.0
        self._L[:, 1, 1] = -self.friction

    def initial_state(self, theta0):
        u0 = -self.landscape.grad(theta0) / (1 + self.col("momentum"))
        return torch.stack([theta0, u0], dim=-1)

    def nonlinear(self, t, y):
        g = self.landscape.grad(y[..., 0])
        return torch.stack([torch.zeros_like(g), -self.gain[:, None] * g], dim=-1)

    def compiled_form(self) -> AdamForm:
        """The mass ODE is the Adam-family form (:mod:`flows.compiled_form`) with no direction
        (kA = 0, no memories): z' = L z + bg g with bg = (0, -gain)."""
        B = self.n_lanes
        z = self.alpha.new_zeros(B, 2)
        bg = z.clone()
        bg[:, 1] = -self.gain
        zero = self.alpha.new_zeros(B)
        return AdamForm(L=self._L, cm=z, cv=z, bg=bg, bgg=z, kA=zero, alpha=self.alpha,
                        beta1=zero, beta2=zero, eps=torch.ones_like(zero), row=0, wg=0.0,
                        bias=False)


class HeavyBallReducedFlow(VelocityFlow):
    """theta' = -g/(1-mu) - alpha (1+mu)/(2(1-mu)^3) H g from theta_0 + alpha mu g_0/(1-mu)^2:
    the slow manifold of heavy ball with its initial shift (E_T slope 2)."""

    name = "heavyball-reduced-flow"
    description = ("heavy-ball slow flow -g/(1-mu) - alpha(1+mu)/(2(1-mu)^3) Hg from the shifted "
                   "start theta0 + alpha mu g0/(1-mu)^2 (E_T slope 2)")
    method = "heavyball"
    hyper = (ALPHA, MOMENTUM)

    def initial_state(self, theta0):
        mu = self.col("momentum")
        shift = self.col("alpha") * mu / (1 - mu) ** 2 * self.landscape.grad(theta0)
        return (theta0 + shift)[..., None]

    def velocity(self, theta):
        g = self.landscape.grad(theta)
        Hg = hessian_action(self.landscape, theta, g)
        return heavyball_reduced_velocity(self.col("alpha"), self.col("momentum"), g, Hg)

    def compiled_form(self) -> ModifiedForm:
        """The same velocity per coordinate on the compiled engine (:mod:`flows.compiled_form`);
        the shifted start is :meth:`initial_state`'s, in torch, as on the torch engine."""
        return ModifiedForm(kind=HEAVYBALL_REDUCED, alpha=self.alpha, momentum=self.momentum)


class AdamSignFlow(VelocityFlow):
    """theta' = -g/sqrt(g^2 + eps): Adam's fixed-beta limit to first order (slope 1)."""

    name = "adam-sign-flow"
    description = "sign-like flow theta' = -g/sqrt(g^2 + eps): Adam at fixed betas to O(alpha)"
    method = "adam"
    hyper = (ALPHA, EPS)

    def velocity(self, theta):
        return sign_velocity(self.col("eps"), self.landscape.grad(theta))

    def compiled_form(self) -> ModifiedForm:
        """The same velocity per coordinate on the compiled engine (:mod:`flows.compiled_form`)."""
        return ModifiedForm(kind=ADAM_SIGN, alpha=self.alpha, eps=self.eps)


class AdamModifiedFlow(VelocityFlow):
    """theta' = F0 + alpha c(g) (H F0), F0 = -g/(|g|+eps): Adam's O(alpha) modified equation
    (Cattaneo, Klusowski & Shigida 2024; slope 2 once the horizon spans many memory times)."""

    name = "adam-modified-flow"
    description = ("Adam's O(alpha) modified equation F0 + alpha c(g) H F0, F0 = -g/(|g|+eps) "
                   "(Cattaneo et al. 2024; slope 2)")
    method = "adam"
    hyper = (ALPHA, BETA1, BETA2, EPS)

    def velocity(self, theta):
        g = self.landscape.grad(theta)
        eps = self.col("eps")
        F0 = adam_leading(eps, g)
        c = adam_correction(self.col("beta1"), self.col("beta2"), eps, g)
        return F0 + self.col("alpha") * c * hessian_action(self.landscape, theta, F0)

    def compiled_form(self) -> ModifiedForm:
        """The same velocity per coordinate on the compiled engine (:mod:`flows.compiled_form`)."""
        return ModifiedForm(kind=ADAM_MODIFIED, alpha=self.alpha, eps=self.eps, beta1=self.beta1,
                            beta2=self.beta2)


#: predicted fixed-horizon slopes (E_T, E_sup) of each flow against its method (module docstring);
#: read by the refinement figure and the tests
PREDICTED_SLOPES: dict[str, tuple[float, float]] = {
    "gd-flow": (1.0, 1.0), "gd-flow2": (2.0, 2.0), "gd-flow3": (3.0, 3.0),
    "gd-principal-flow": (2.0, 2.0),
    "heavyball-flow": (2.0, 1.0), "heavyball-reduced-flow": (2.0, 1.0),
    "adam-sign-flow": (1.0, 1.0), "adam-modified-flow": (2.0, 2.0),
}

MODIFIED_FLOWS: tuple[type, ...] = (GDFlow, GDFlow2, GDFlow3, GDPrincipalFlow, HeavyBallFlow,
                                    HeavyBallReducedFlow, AdamSignFlow, AdamModifiedFlow)
