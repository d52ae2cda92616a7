"""Nonlocal Adam-family flows (SPEC §3.1-§3.3) as semilinear per-coordinate systems.

Shifted time s >= 0 with s = k * alpha. Bias factors at q(s) = s/alpha + 1:

    eta(s)  = sqrt(1 - b2^q) / (1 - b1^q),     epsq(s) = eps * sqrt(1 - b2^q)
    A(s)    = eta(s) * m / (sqrt(max(v, 0)) + epsq(s))          (the Adam direction)

Memories are causal convolutions m = k_m * g, v = k_v * g^2 with *weighted* kernels (unit mass),
realised exactly as linear states x' = A_k x + b_k g, memory = c_k . x (see :mod:`flows.kernels`).
The theta dynamics is first order (theta' = -A) or second order ((alpha/2) theta'' + theta' = -A,
i.e. theta' = u, u' = -(2/alpha)(u + A)).

State per coordinate: [theta, (u), x_m..., x_v...]. The constant linear part L holds the theta block
and the kernel matrices A_k; the nonlinear part N holds -A (or -(2/alpha) A), b_k g and b_k g^2.

Models (registry names):

* ``adam-flow1``   first-order nonlocal Adam flow (Heredia 2024, arXiv 2411.09734), kernel K1.
* ``adam-flow2``   second-order inertial nonlocal Adam model (Heredia 2026, arXiv 2602.09101), kernel
  lam*K2, theta'(0) = u0.
* ``rmsprop-flow`` theta' = -g/(sqrt(v)+eps), v' = lam (g^2 - v), v(0) = (1-b) g(theta0)^2.
* ``adagrad-flow`` theta' = -g/(sqrt(G)+eps), G' = g^2/alpha, G(0) = g(theta0)^2.
"""
from __future__ import annotations

import torch

from core.hyper import check_alpha, check_beta, check_eps, check_finite, lane_tensor
from core.method import ALPHA, BETA, BETA1, BETA2, EPS, U0
from flows import direction as adam_math
from flows.compiled_form import AdamForm
from flows.kernels import FirstOrderKernel, Realization, SecondOrderKernel
from flows.semilinear import SemilinearFlow
from landscapes.base import Landscape


def one_minus_pow(b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """1 - b^q without cancellation for b near 1 (b in [0, 1), q >= 1)."""
    return -torch.expm1(q * torch.log(b))


class _LaneParams:
    """Per-lane hyper-parameters stored as (B,) tensors (dtype/device of the run)."""

    def __init__(self, B: int, dtype: torch.dtype, device: torch.device, **values):
        for key, val in values.items():
            setattr(self, key, lane_tensor(val, B, dtype, device))
        self._keys = tuple(values)

    def subset(self, idx: torch.Tensor) -> dict:
        return {k: getattr(self, k)[idx] for k in self._keys}


def _block_diag(blocks: list[torch.Tensor]) -> torch.Tensor:
    """List of (B, di, di) -> (B, sum di, sum di)."""
    B = blocks[0].shape[0]
    D = sum(b.shape[-1] for b in blocks)
    out = blocks[0].new_zeros(B, D, D)
    i = 0
    for blk in blocks:
        j = i + blk.shape[-1]
        out[:, i:j, i:j] = blk
        i = j
    return out


class NonlocalAdamFlow(SemilinearFlow):
    """Adam direction driven by memories of g and g^2 with arbitrary realised kernels.

    Args:
        landscape: the objective (batched :class:`landscapes.base.Landscape`).
        alpha, beta1, beta2, eps: per-lane hyper-parameters (scalars, sequences or (B,) tensors).
        order: 1 (theta' = -A) or 2 ((alpha/2) theta'' + theta' = -A).
        kernel_m, kernel_v: :class:`flows.kernels.Realization` of the weighted kernels (B lanes).
        n_lanes, dtype, device: batch layout.
        u0: initial velocity theta'(0) for order 2.
        component_names: names of the kernel states (default x_m0.., x_v0..).
    """

    def __init__(self, landscape: Landscape, *, alpha, beta1, beta2, eps=1e-8, order: int,
                 kernel_m: Realization, kernel_v: Realization, n_lanes: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu", u0=0.0,
                 m_names: tuple[str, ...] | None = None, v_names: tuple[str, ...] | None = None):
        super().__init__()
        check_alpha(alpha)
        check_beta(beta1, "beta1")
        check_beta(beta2, "beta2")
        check_eps(eps)
        check_finite(u0, "u0")
        if order not in (1, 2):
            raise ValueError("order must be 1 or 2")
        self.landscape = landscape
        self.order = order
        self.hp = _LaneParams(n_lanes, dtype, device, alpha=alpha, beta1=beta1, beta2=beta2,
                              eps=eps, u0=u0)
        self.kernel_m = kernel_m
        self.kernel_v = kernel_v
        self._B = n_lanes
        Jm, Jv = kernel_m.A.shape[-1], kernel_v.A.shape[-1]
        m_names = m_names or tuple(f"x_m{j}" for j in range(Jm))
        v_names = v_names or tuple(f"x_v{j}" for j in range(Jv))
        head = ("theta",) if order == 1 else ("theta", "u")
        self.components = head + tuple(m_names) + tuple(v_names)
        self._sl_m = slice(len(head), len(head) + Jm)
        self._sl_v = slice(len(head) + Jm, len(head) + Jm + Jv)
        a = self.hp.alpha
        if order == 1:
            theta_block = a.new_zeros(n_lanes, 1, 1)
        else:
            theta_block = a.new_zeros(n_lanes, 2, 2)
            theta_block[:, 0, 1] = 1.0
            theta_block[:, 1, 1] = -2.0 / a
        self._L = _block_diag([theta_block, kernel_m.A.to(a), kernel_v.A.to(a)])
        self._bm = kernel_m.b.to(a)
        self._bv = kernel_v.b.to(a)
        self._cm = kernel_m.c.to(a)
        self._cv = kernel_v.c.to(a)

    # -- contract -------------------------------------------------------------------------------
    @property
    def n_lanes(self) -> int:
        return self._B

    def linear_operator(self) -> torch.Tensor:
        return self._L

    def memories(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, d) -> m, v each (B, n)."""
        m = (self._cm[:, None, :] * y[..., self._sl_m]).sum(-1)
        v = (self._cv[:, None, :] * y[..., self._sl_v]).sum(-1)
        return m, v

    def direction(self, s: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The Adam direction A(s) = eta m / (sqrt(max(v,0)) + epsq), (B,) x (B,n) x (B,n) -> (B,n)."""
        hp = self.hp
        eta, epsq = adam_math.bias_factors(s / hp.alpha + 1.0, hp.beta1, hp.beta2, hp.eps)
        return adam_math.direction(eta[:, None], epsq[:, None], m, v)

    def direction_partials(self, s: torch.Tensor, m: torch.Tensor, v: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """dA/dm, dA/dv (0 where v <= 0, as for the clamped sqrt) and dA/ds, each (B, n): the
        shared formulas of :mod:`flows.direction`."""
        hp = self.hp
        eta, epsq, deta, depsq = (x[:, None] for x in adam_math.bias_rates(
            s / hp.alpha + 1.0, hp.beta1, hp.beta2, hp.eps, hp.alpha))
        return adam_math.direction_partials(eta, epsq, deta, depsq, m, v)

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form Jacobian of L y + N (see :meth:`SemilinearFlow.jacobian`)."""
        B, n, d = y.shape
        theta = y[..., 0]
        g = self.landscape.grad(theta)
        H = self.landscape.hessian(theta)
        m, v = self.memories(y)
        dA_dm, dA_dv, dA_ds = self.direction_partials(t, m, v)
        rA = 0 if self.order == 1 else 1
        kA = (-torch.ones_like(self.hp.alpha) if self.order == 1 else -2.0 / self.hp.alpha)
        local = self._L[:, None].expand(B, n, d, d).clone()
        local[:, :, rA, self._sl_m] += (kA[:, None] * dA_dm)[..., None] * self._cm[:, None, :]
        local[:, :, rA, self._sl_v] += (kA[:, None] * dA_dv)[..., None] * self._cv[:, None, :]
        J4 = y.new_zeros(B, n, d, n, d)
        ar = torch.arange(n, device=y.device)
        J4[:, ar, :, ar, :] = local.permute(1, 0, 2, 3)
        J4[:, :, self._sl_m, :, 0] += self._bm[:, None, :, None] * H[:, :, None, :]
        J4[:, :, self._sl_v, :, 0] += (self._bv[:, None, :, None] * (2.0 * g)[:, :, None, None]
                                       * H[:, :, None, :])
        Jt = y.new_zeros(B, n, d)
        Jt[:, :, rA] = kA[:, None] * dA_ds
        D = n * d
        return J4.reshape(B, D, D), Jt.reshape(B, D)

    def compiled_form(self) -> AdamForm:
        """This flow as data of the Adam-family form (:mod:`flows.compiled_form`)."""
        a = self.hp.alpha
        B, d = self._B, self.d
        cm, cv, bg, bgg = (a.new_zeros(B, d) for _ in range(4))
        cm[:, self._sl_m] = self._cm
        cv[:, self._sl_v] = self._cv
        bg[:, self._sl_m] = self._bm
        bgg[:, self._sl_v] = self._bv
        kA = -torch.ones_like(a) if self.order == 1 else -2.0 / a
        return AdamForm(L=self._L, cm=cm, cv=cv, bg=bg, bgg=bgg, kA=kA, alpha=a,
                        beta1=self.hp.beta1, beta2=self.hp.beta2, eps=self.hp.eps,
                        row=0 if self.order == 1 else 1, wg=0.0, bias=True)

    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        theta = y[..., 0]
        g = self.landscape.grad(theta)
        m, v = self.memories(y)
        A = self.direction(t, m, v)
        parts = []
        if self.order == 1:
            parts.append(-A[..., None])
        else:
            parts.append(torch.zeros_like(A)[..., None])
            parts.append((-2.0 / self.hp.alpha)[:, None, None] * A[..., None])
        parts.append(self._bm[:, None, :] * g[..., None])
        parts.append(self._bv[:, None, :] * (g * g)[..., None])
        return torch.cat(parts, dim=-1)

    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        y0 = theta0.new_zeros(*theta0.shape, self.d)
        y0[..., 0] = theta0
        if self.order == 2:
            y0[..., 1] = self.hp.u0.to(theta0)[:, None]
        return y0

    def outputs(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        m = torch.einsum("bj,b...nj->b...n", self._cm, y[..., self._sl_m])
        v = torch.einsum("bj,b...nj->b...n", self._cv, y[..., self._sl_v])
        out = {"theta": y[..., 0], "m": m, "v": v}
        if self.order == 2:
            out["u"] = y[..., 1]
        return out

    def subset(self, idx: torch.Tensor) -> "NonlocalAdamFlow":
        km = Realization(self.kernel_m.A[idx], self.kernel_m.b[idx], self.kernel_m.c[idx])
        kv = Realization(self.kernel_v.A[idx], self.kernel_v.b[idx], self.kernel_v.c[idx])
        p = self.hp.subset(idx)
        new = type(self).__new__(type(self))
        NonlocalAdamFlow.__init__(
            new, self.landscape_subset(idx), order=self.order, kernel_m=km, kernel_v=kv,
            n_lanes=int(idx.numel()), dtype=self.hp.alpha.dtype, device=self.hp.alpha.device,
            m_names=self.components[self._sl_m], v_names=self.components[self._sl_v], **p)
        new.name, new.description = self.name, self.description
        return new

    def landscape_subset(self, idx: torch.Tensor) -> Landscape:
        sub = getattr(self.landscape, "subset", None)
        return sub(idx) if callable(sub) else self.landscape


class _KernelAdamFlow(NonlocalAdamFlow):
    """A NonlocalAdamFlow whose two memories use the exact realisation of one kernel family."""

    kernel_class: type = FirstOrderKernel
    flow_order: int = 1
    m_names: tuple[str, ...] = ("m",)
    v_names: tuple[str, ...] = ("v",)

    def __init__(self, landscape: Landscape, *, alpha, beta1=0.9, beta2=0.999, eps=1e-8,
                 n_lanes: int, dtype=torch.float64, device="cpu", u0=0.0):
        a = lane_tensor(alpha, n_lanes, dtype, device)
        check_alpha(a)
        check_beta(beta1, "beta1")
        check_beta(beta2, "beta2")
        km = self.kernel_class(a, lane_tensor(beta1, n_lanes, dtype, device)).realization()
        kv = self.kernel_class(a, lane_tensor(beta2, n_lanes, dtype, device)).realization()
        super().__init__(landscape, alpha=a, beta1=beta1, beta2=beta2, eps=eps,
                         order=self.flow_order, kernel_m=km, kernel_v=kv, n_lanes=n_lanes,
                         dtype=dtype, device=device, u0=u0, m_names=self.m_names,
                         v_names=self.v_names)


class AdamFlow1(_KernelAdamFlow):
    """First-order nonlocal Adam flow: theta' = -A(s), m' = lam1 (g - m), v' = lam2 (g^2 - v)."""

    name = "adam-flow1"
    method = "adam"
    hyper = (ALPHA, BETA1, BETA2, EPS)
    schemes = ("exact", "paper", "paper2024")
    records = ("m", "v")
    description = "first-order nonlocal Adam flow (Heredia 2024), kernel K1, exact local form"


class AdamFlow2(_KernelAdamFlow):
    """Second-order inertial model: (alpha/2) theta'' + theta' = -A(s), memories with lam*K2.

    State per coordinate (theta, u, m, m', v, v'), u = theta'. The fast derivative states u, m', v'
    are left out of the integrator's error control (see
    :meth:`flows.semilinear.SemilinearFlow.error_weights`).
    """

    uncontrolled = ("u", "dm", "dv")
    kernel_class = SecondOrderKernel
    flow_order = 2
    m_names = ("m", "dm")
    v_names = ("v", "dv")

    name = "adam-flow2"
    method = "adam"
    hyper = (ALPHA, BETA1, BETA2, EPS, U0)
    schemes = ("exact", "paper")
    records = ("m", "v", "u")
    signed_records = ("v",)
    description = "second-order inertial nonlocal Adam model (Heredia 2026), kernel lam*K2, u0"


class _AccumulatorFlow(SemilinearFlow):
    """theta' = -g/(sqrt(max(v,0)) + eps) with a linear accumulator v' = -rate v + gain g^2."""

    components = ("theta", "v")

    def __init__(self, landscape: Landscape, *, alpha, eps, n_lanes, dtype, device, **hp):
        super().__init__()
        check_alpha(alpha)
        check_eps(eps)
        self.landscape = landscape
        self._B = n_lanes
        self.hp = _LaneParams(n_lanes, dtype, device, alpha=alpha, eps=eps, **hp)
        rate, gain = self.rate_gain()
        self._L = rate.new_zeros(n_lanes, 2, 2)
        self._L[:, 1, 1] = -rate
        self._gain = gain

    def rate_gain(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def initial_accumulator(self, g0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def n_lanes(self) -> int:
        return self._B

    def linear_operator(self) -> torch.Tensor:
        return self._L

    def compiled_form(self) -> AdamForm:
        """This flow as data of the Adam-family form: wg = 1, v = z[1], no bias factors."""
        a = self.hp.alpha
        B = self._B
        cm, cv, bg, bgg = (a.new_zeros(B, 2) for _ in range(4))
        cv[:, 1] = 1.0
        bgg[:, 1] = self._gain
        zero = torch.zeros_like(a)
        return AdamForm(L=self._L, cm=cm, cv=cv, bg=bg, bgg=bgg, kA=-torch.ones_like(a), alpha=a,
                        beta1=zero, beta2=zero, eps=self.hp.eps, row=0, wg=1.0, bias=False)

    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        theta, v = y[..., 0], y[..., 1]
        g = self.landscape.grad(theta)
        d = -g / (torch.sqrt(torch.clamp(v, min=0.0)) + self.hp.eps[:, None])
        return torch.stack([d, self._gain[:, None] * g * g], dim=-1)

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form Jacobian of L y + N (autonomous: J_t = 0)."""
        B, n, d = y.shape
        theta, v = y[..., 0], y[..., 1]
        g = self.landscape.grad(theta)
        H = self.landscape.hessian(theta)
        pos = v > 0
        rv = torch.sqrt(torch.where(pos, v, torch.zeros_like(v)))
        S = rv + self.hp.eps[:, None]
        J4 = y.new_zeros(B, n, d, n, d)
        ar = torch.arange(n, device=y.device)
        J4[:, :, 0, :, 0] = -H / S[..., None]
        J4[:, ar, 0, ar, 1] = torch.where(
            pos, g / (S * S * 2.0 * torch.where(pos, rv, torch.ones_like(rv))),
            torch.zeros_like(v))
        J4[:, ar, 1, ar, 1] = self._L[:, 1, 1][:, None].expand(B, n)
        J4[:, :, 1, :, 0] = 2.0 * self._gain[:, None, None] * g[..., None] * H
        D = n * d
        return J4.reshape(B, D, D), y.new_zeros(B, D)

    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        g0 = self.landscape.grad(theta0)
        return torch.stack([theta0, self.initial_accumulator(g0)], dim=-1)

    def subset(self, idx: torch.Tensor) -> "_AccumulatorFlow":
        sub = getattr(self.landscape, "subset", None)
        land = sub(idx) if callable(sub) else self.landscape
        p = self.hp.subset(idx)
        return type(self)(land, n_lanes=int(idx.numel()), dtype=self._L.dtype,
                          device=self._L.device, **p)


class RMSPropFlow(_AccumulatorFlow):
    """theta' = -g/(sqrt(v)+eps), v' = lam (g^2 - v), lam = (1-beta)/alpha, v(0) = (1-beta) g0^2."""

    name = "rmsprop-flow"
    method = "rmsprop"
    hyper = (ALPHA, BETA, EPS)
    schemes = ("exact", "paper2024")
    records = ("v",)
    description = "nonlocal RMSProp flow (Heredia 2024), kernel K1, v(0) = (1-beta) g(theta0)^2"

    def __init__(self, landscape: Landscape, *, alpha, beta=0.99, eps=1e-8, n_lanes: int,
                 dtype=torch.float64, device="cpu"):
        check_beta(beta, "beta")
        super().__init__(landscape, alpha=alpha, eps=eps, beta=beta, n_lanes=n_lanes,
                         dtype=dtype, device=device)

    def rate_gain(self):
        lam = (1.0 - self.hp.beta) / self.hp.alpha
        return lam, lam

    def initial_accumulator(self, g0):
        return (1.0 - self.hp.beta)[:, None] * g0 * g0


class AdaGradFlow(_AccumulatorFlow):
    """theta' = -g/(sqrt(G)+eps), G' = g^2/alpha, G(0) = g(theta0)^2 (constant kernel)."""

    name = "adagrad-flow"
    method = "adagrad"
    hyper = (ALPHA, EPS)
    schemes = ("exact", "paper2024")
    records = ("v",)
    description = "nonlocal AdaGrad flow (Heredia 2024), constant kernel, G(0) = g(theta0)^2"

    def __init__(self, landscape: Landscape, *, alpha, eps=1e-8, n_lanes: int,
                 dtype=torch.float64, device="cpu"):
        super().__init__(landscape, alpha=alpha, eps=eps, n_lanes=n_lanes, dtype=dtype,
                         device=device)

    def rate_gain(self):
        return torch.zeros_like(self.hp.alpha), 1.0 / self.hp.alpha

    def initial_accumulator(self, g0):
        return g0 * g0

    def outputs(self, y):
        return {"theta": y[..., 0], "v": y[..., 1]}
