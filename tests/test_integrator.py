"""Tests of the exact-mode integrator: phi-functions, tableau checks, stiffness independence,
adaptive accuracy against scipy, dense output, divergence and statuses, batching, dtypes and devices
(the stepper, interpolation and controller contracts and the orders: tests/test_stepper_contract.py;
events: tests/test_events.py).

All test flows are small subclasses of :class:`flows.semilinear.SemilinearFlow` defined here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from core.trajectory import Status
from flows.controllers import ConstantStep, IController, PIController
from flows.exprb import ExpRosenbrock43
from flows.interpolation import hermite5_weights
from flows.phi import phi_functions
from flows.semilinear import SemilinearFlow
from flows.solve import solve
from flows.solvers import CoxMatthews4, HochbruckOstermann4

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------------------------------
# test flows
# ------------------------------------------------------------------------------------------------------
class Manufactured(SemilinearFlow):
    """Non-stiff, non-normal L, nonlinear N with the known solution y = (sin t + 2, cos 2t) per coordinate:
    N(t, y) = y_e' - L y_e - (y^2 - y_e^2)/2 (stable: errors are damped)."""

    components = ("theta", "u")

    def __init__(self, B: int = 1, dtype=F64, device="cpu"):
        super().__init__()
        self.B = B
        self.L = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=dtype, device=device).expand(B, 2, 2)

    @property
    def n_lanes(self):
        return self.B

    def linear_operator(self):
        return self.L

    @staticmethod
    def exact(t):
        return torch.stack([torch.sin(t) + 2, torch.cos(2 * t)], -1)

    def nonlinear(self, t, y):
        ye = self.exact(t)[:, None, :]
        dye = torch.stack([torch.cos(t), -2 * torch.sin(2 * t)], -1)[:, None, :]
        return dye - torch.einsum("bij,bnj->bni", self.L, ye) - 0.5 * (y**2 - ye**2)

    def initial_state(self, theta0):
        raise NotImplementedError


class ScalarStiff(SemilinearFlow):
    """y' = lam y + cos t + 0.1 y^2, one lane per lam."""

    def __init__(self, lams):
        super().__init__()
        self.lams = torch.as_tensor(lams, dtype=F64)

    @property
    def n_lanes(self):
        return self.lams.shape[0]

    def linear_operator(self):
        return self.lams[:, None, None]

    def nonlinear(self, t, y):
        return torch.cos(t)[:, None, None] + 0.1 * y**2

    def initial_state(self, theta0):
        return theta0[..., None]


class MemoryFlow(SemilinearFlow):
    """Adam-like test flow: theta with a second-order memory (m, m') driven by g(theta).

        theta' = -0.2 theta - 0.5 tanh(m) + 0.1 cos t
        m''    = -2a m' - w2 m + w2 g,   g = sin(theta) + 0.1 cos(t) theta_{rolled over coordinates}

    L is a companion matrix per lane: complex pair -a +- i sqrt(w2 - a^2) or a double root (Jordan block,
    w2 = a^2)."""

    components = ("theta", "m", "u")

    def __init__(self, a, w2, dtype=F64, device="cpu"):
        super().__init__()
        self.a = torch.as_tensor(a, dtype=dtype, device=device)
        self.w2 = torch.as_tensor(w2, dtype=dtype, device=device)
        self.subset_calls = 0

    @property
    def n_lanes(self):
        return self.a.shape[0]

    def linear_operator(self):
        B = self.a.shape[0]
        L = torch.zeros(B, 3, 3, dtype=self.a.dtype, device=self.a.device)
        L[:, 0, 0] = -0.2
        L[:, 1, 2] = 1.0
        L[:, 2, 1] = -self.w2
        L[:, 2, 2] = -2 * self.a
        return L

    def nonlinear(self, t, y):
        th, m = y[..., 0], y[..., 1]
        g = torch.sin(th) + 0.1 * torch.cos(t)[:, None] * th.roll(1, dims=1)
        out = torch.zeros_like(y)
        out[..., 0] = -0.5 * torch.tanh(m) + 0.1 * torch.cos(t)[:, None]
        out[..., 2] = self.w2[:, None] * g
        return out

    def initial_state(self, theta0):
        return torch.stack([theta0, torch.zeros_like(theta0), torch.zeros_like(theta0)], -1)

    def subset(self, idx):
        self.subset_calls += 1
        sub = MemoryFlow(self.a[idx], self.w2[idx])
        sub.subset_calls = self.subset_calls
        self._last_sub = sub
        return sub


class NoSubset(MemoryFlow):
    def subset(self, idx):
        raise NotImplementedError


class BlowUp(SemilinearFlow):
    """y' = lam y + c y^2 per lane (lam = 0, c = 1 from y0 = 1 blows up at t = 1)."""

    def __init__(self, lam, c, nan_after=None):
        super().__init__()
        self.lam = torch.as_tensor(lam, dtype=F64)
        self.c = torch.as_tensor(c, dtype=F64)
        self.nan_after = nan_after

    @property
    def n_lanes(self):
        return self.lam.shape[0]

    def linear_operator(self):
        return self.lam[:, None, None]

    def nonlinear(self, t, y):
        out = self.c[:, None, None] * y**2
        if self.nan_after is not None:
            out = torch.where((t > self.nan_after)[:, None, None], torch.full_like(out, math.nan), out)
        return out

    def initial_state(self, theta0):
        return theta0[..., None]


def scipy_reference(flow: SemilinearFlow, y0: torch.Tensor, t_eval, method="LSODA", rtol=1e-11,
                    atol=1e-13) -> np.ndarray:
    """Lane-by-lane reference with scipy: (B, T, n, d)."""
    B, n, d = y0.shape
    L = flow.linear_operator()
    out = []
    for b in range(B):
        Lb = L[b:b + 1]

        def rhs(t, yf, b=b, Lb=Lb):
            yt = torch.as_tensor(yf, dtype=F64).reshape(1, n, d)
            # evaluate N on a one-lane slice by embedding the state in the full batch
            Y = y0.clone()
            Y[b] = yt[0]
            tt = torch.full((B,), float(t), dtype=F64)
            Nb = flow.nonlinear(tt, Y)[b:b + 1]
            return (torch.einsum("bij,bnj->bni", Lb, yt) + Nb).reshape(-1).numpy()

        s = solve_ivp(rhs, (float(t_eval[0]), float(t_eval[-1])), y0[b].reshape(-1).numpy(),
                      method=method, rtol=rtol, atol=atol, t_eval=np.asarray(t_eval, dtype=float))
        assert s.success, s.message
        out.append(s.y.T.reshape(len(t_eval), n, d))
    return np.stack(out)


def memory_problem(B_pairs: int = 1):
    # lane 0: complex pair -20 +- 40i; lane 1: double root -30 (Jordan block)
    a = [20.0, 30.0] * B_pairs
    w2 = [2000.0, 900.0] * B_pairs
    flow = MemoryFlow(a, w2)
    theta0 = torch.tensor([[1.0, -0.5]] * (2 * B_pairs), dtype=F64)
    return flow, flow.initial_state(theta0)


# ------------------------------------------------------------------------------------------------------
# phi-functions
# ------------------------------------------------------------------------------------------------------
def phi_scalar_ref(z: complex, k: int) -> complex:
    """phi_k(z): float64 Taylor series for |z| < 0.5, closed form otherwise."""
    if abs(z) < 0.5:
        return sum(z**m / math.factorial(m + k) for m in range(30))
    val = np.exp(z)
    for j in range(k):
        val = (val - 1 / math.factorial(j)) / z
    return val


@pytest.mark.parametrize("z", [1e-12, -1e-12, 1e-6, 0.3, -0.45, -1.0, -3.0, 2.0, -37.0, -1e4, -1e7])
def test_phi_scalar(z):
    P = phi_functions(torch.tensor([[[z]]], dtype=F64), 4)
    for k in range(5):
        ref = phi_scalar_ref(z, k)
        got = float(P[k])
        if ref == 0.0:
            assert got == 0.0
        else:
            assert abs(got - ref) <= 1e-13 * abs(ref), (k, got, ref)


def test_phi_small_argument_no_cancellation():
    z = 1e-12
    P = phi_functions(torch.tensor([[[z]]], dtype=F64), 3)
    assert float(P[1]) == pytest.approx(1 + z / 2, rel=1e-15, abs=0)
    assert float(P[2]) == pytest.approx(0.5 + z / 6, rel=1e-15, abs=0)
    assert float(P[3]) == pytest.approx(1 / 6 + z / 24, rel=1e-15, abs=0)


@pytest.mark.parametrize("lam", [-0.2, -3.0, -1e4])
def test_phi_jordan_block(lam):
    # f(J) for J = [[lam, 1], [0, lam]] is [[f(lam), f'(lam)], [0, f(lam)]], phi_k' = phi_k - k phi_{k+1}
    J = torch.tensor([[[lam, 1.0], [0.0, lam]]], dtype=F64)
    P = phi_functions(J, 3)
    for k in range(4):
        f = phi_scalar_ref(lam, k)
        if abs(lam) < 0.5:
            df = sum(m * lam ** (m - 1) / math.factorial(m + k) for m in range(1, 30))
        elif k == 0:
            df = math.exp(lam)
        else:   # derivative of the closed form, evaluated without cancellation for large |lam|
            df = (phi_scalar_ref(lam, k) - k * phi_scalar_ref(lam, k + 1))
        Pk = P[k][0].numpy()
        assert Pk[0, 0] == pytest.approx(f, rel=1e-13, abs=1e-300)
        assert Pk[1, 1] == pytest.approx(f, rel=1e-13, abs=1e-300)
        assert Pk[1, 0] == 0.0
        tol = 1e-13 if abs(lam) < 100 else 1e-9   # reference loses ~4 digits at lam = -1e4
        assert Pk[0, 1] == pytest.approx(df, rel=tol, abs=1e-300)
    if lam == -1e4:   # phi_1'(z) ~ 1/z^2 for large negative z
        assert P[1][0, 0, 1].item() == pytest.approx(1 / lam**2, rel=1e-3)


@pytest.mark.parametrize("a,w", [(-0.1, 0.2), (-2.0, 3.0), (-1000.0, 500.0)])
def test_phi_rotation_block(a, w):
    # [[a, -w], [w, a]] ~ a + i w: f(Z) = [[Re f, -Im f], [Im f, Re f]]
    Z = torch.tensor([[[a, -w], [w, a]]], dtype=F64)
    P = phi_functions(Z, 3)
    for k in range(4):
        ref = complex(phi_scalar_ref(complex(a, w), k))
        M = P[k][0].numpy()
        assert M[0, 0] == pytest.approx(ref.real, rel=1e-12, abs=1e-15 * abs(ref))
        assert M[1, 0] == pytest.approx(ref.imag, rel=1e-12, abs=1e-15 * abs(ref))
        assert M[0, 1] == pytest.approx(-ref.imag, rel=1e-12, abs=1e-15 * abs(ref))
        assert M[1, 1] == pytest.approx(ref.real, rel=1e-12, abs=1e-15 * abs(ref))


def test_phi_batched_and_float32():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(7, 3, 3, dtype=F64, generator=g)
    S = torch.randn(7, 3, 3, dtype=F64, generator=g)
    Z = -A @ A.transpose(1, 2) + 3 * (S - S.transpose(1, 2))   # symmetric part <= 0: stable
    Z = Z * torch.tensor([1e-8, 1.0, 50.0, 1e3, 1e-3, 2.0, 0.0], dtype=F64)[:, None, None]
    P64 = phi_functions(Z, 2)
    P32 = phi_functions(Z.float(), 2)
    for k in range(3):
        assert P32[k].dtype == torch.float32
        assert torch.allclose(P32[k].double(), P64[k], rtol=1e-4, atol=1e-5 * P64[k].abs().max())
    # identity Z phi_{k+1} = phi_k - I/k! on a moderate matrix
    Zm = Z[1]
    eye = torch.eye(3, dtype=F64)
    assert torch.allclose(Zm @ P64[2][1], P64[1][1] - eye, atol=1e-13)


def test_hermite_weights_reproduce_quintics():
    x = torch.linspace(0, 1, 11, dtype=F64)
    p = lambda s: 1 - 2 * s + 3 * s**2 - s**3 + 0.5 * s**4 - 0.7 * s**5  # noqa: E731
    dp = lambda s: -2 + 6 * s - 3 * s**2 + 2 * s**3 - 3.5 * s**4  # noqa: E731
    w = hermite5_weights(x)
    data = [p(0.0), dp(0.0), p(0.5), dp(0.5), p(1.0), dp(1.0)]
    val = sum(wj * dj for wj, dj in zip(w, data))
    assert torch.allclose(val, p(x), atol=1e-14)


def test_tableau_checked_at_construction():
    class Broken(HochbruckOstermann4):
        def tableau(self, phi):
            a, b = super().tableau(phi)
            b[0] = b[0] * 1.01
            return a, b

    with pytest.raises(ValueError):
        Broken()
    assert HochbruckOstermann4().order == 4 and CoxMatthews4().order == 4


# ------------------------------------------------------------------------------------------------------
# fixed steps (the order of every stepper: tests/test_stepper_contract.py::test_order_of_convergence)
# ------------------------------------------------------------------------------------------------------
def test_stiff_fixed_steps_no_stability_limit():
    flow = ScalarStiff([-1e4])
    y0 = torch.ones(1, 1, 1, dtype=F64)
    T = 1.0
    ref = scipy_reference(flow, y0, [0.0, T], method="Radau", rtol=1e-12, atol=1e-14)[0, -1, 0, 0]
    for h in (0.1, 0.05, 0.02, 0.01):     # |h lam| = 100 ... 1000, far past any explicit stability limit
        sol = solve(flow, y0, torch.tensor([0.0, T], dtype=F64), controller=ConstantStep(h))
        err = abs(float(sol.ys[0, -1, 0, 0]) - ref)
        assert err <= 1e-7 * abs(ref), (h, err)     # |y| ~ 5e-5


METHODS = {  # name -> (solve kwargs, step budget for the stiffness test, dense-output step budget)
    "ho4-doubling": (lambda: {"solver": HochbruckOstermann4()}, 200, 350),
    # exprb43 controls the error of its embedded order-3 solution: more, smaller steps at 1e-10
    "exprb43": (lambda: {"method": ExpRosenbrock43()}, 400, 2500),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_step_count_independent_of_stiffness(method):
    kwargs, budget, _ = METHODS[method]
    flow = ScalarStiff([-1e2, -1e5])
    y0 = (1.0 / -flow.lams)[:, None, None]      # near the slow manifold y ~ cos(t) / |lam|
    sol = solve(flow, y0, torch.tensor([0.0, 2.0], dtype=F64), rtol=1e-8, atol=1e-10, **kwargs())
    assert (sol.status == Status.OK).all()
    acc = sol.stats["accepted"]
    # a 1000-fold stiffer lane needs no more steps (here fewer: its solution is closer to quasi-static)
    assert acc[1] <= 2 * acc[0] and acc.max() <= budget, acc
    ref = scipy_reference(flow, y0, [0.0, 2.0], method="Radau", rtol=1e-12, atol=1e-14)
    assert np.abs(sol.ys[:, -1].numpy() - ref[:, -1]).max() < 1e-7


# ------------------------------------------------------------------------------------------------------
# adaptive accuracy and dense output
# ------------------------------------------------------------------------------------------------------
def test_adaptive_matches_lsoda():
    flow, y0 = memory_problem()
    t_eval = np.linspace(0.0, 5.0, 11)
    ref = scipy_reference(flow, y0, t_eval)
    sol = solve(flow, y0, torch.tensor(t_eval, dtype=F64), rtol=1e-10, atol=1e-12)
    assert (sol.status == Status.OK).all()
    assert np.abs(sol.ys.numpy() - ref).max() <= 1e-8
    assert torch.equal(sol.t_final, torch.full((2,), 5.0, dtype=F64))   # last output hit exactly
    # PI and I controllers both work
    sol_i = solve(flow, y0, torch.tensor(t_eval, dtype=F64), controller=IController())
    assert np.abs(sol_i.ys.numpy() - ref).max() <= 1e-8


@pytest.mark.parametrize("method", list(METHODS))
def test_dense_output_fine_grid(method):
    # smooth problem: 1000 outputs from far fewer steps, accurate to ~1e-9
    kwargs, _, budget = METHODS[method]
    flow = Manufactured()
    y0 = flow.exact(torch.zeros(1, dtype=F64))[:, None, :]
    t = torch.linspace(0, 5, 1000, dtype=F64)
    sol = solve(flow, y0, t, rtol=1e-10, atol=1e-12, **kwargs())
    assert int(sol.status[0]) == Status.OK
    assert int(sol.stats["accepted"][0]) < budget, sol.stats
    assert (sol.ys[0, :, 0] - flow.exact(t)).abs().max() <= 1.5e-9


def test_dense_output_through_stiff_transient():
    # the exact exponential step is accurate at its end even across a fast transient; outputs inside
    # are kept accurate by the dense-output error control
    flow = ScalarStiff([-1e3, -1e2])
    y0 = torch.ones(2, 1, 1, dtype=F64)
    te = np.linspace(0, 1, 1000)
    ref = scipy_reference(flow, y0, te, method="Radau", rtol=1e-13, atol=1e-15)
    sol = solve(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12,
                solver=HochbruckOstermann4())
    assert (sol.status == Status.OK).all() and (sol.stats["accepted"] < 500).all(), sol.stats
    assert np.abs(sol.ys.numpy() - ref).max() <= 1e-11
    loose = solve(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12, dense_control=False,
                  solver=HochbruckOstermann4())
    assert np.abs(loose.ys[:, -1].numpy() - ref[:, -1]).max() <= 1e-11   # end points fine either way


def test_per_lane_output_grids_and_compaction():
    flow, y0 = memory_problem(B_pairs=3)        # 6 lanes
    B = 6
    ends = [0.3, 0.5, 4.0, 1.0, 0.2, 0.7]
    T = 40
    t_out = torch.full((B, T), math.nan, dtype=F64)
    n_out = torch.tensor([10, 25, 40, 12, 3, 33])
    for b in range(B):
        t_out[b, : n_out[b]] = torch.linspace(0, ends[b], int(n_out[b]), dtype=F64)
    sol = solve(flow, y0, t_out, n_out, sync_every=4)
    assert flow.subset_calls >= 1                        # finished lanes were retired
    plain = NoSubset(flow.a, flow.w2)
    sol_nc = solve(plain, y0, t_out, n_out, sync_every=4)
    valid = torch.arange(T)[None, :] < n_out[:, None]
    assert torch.isfinite(sol.ys[valid]).all() and torch.isnan(sol.ys[~valid]).all()
    assert torch.allclose(sol.ys[valid], sol_nc.ys[valid], rtol=0, atol=1e-11)
    for k in ("nfev", "accepted", "rejected"):
        assert torch.equal(sol.stats[k], sol_nc.stats[k])
    for b in (1, 2):
        ref = scipy_reference(flow.subset(torch.tensor([b])), y0[b:b + 1],
                              t_out[b, : n_out[b]].numpy())
        assert np.abs(sol.ys[b, : n_out[b]].numpy() - ref[0]).max() <= 1e-8


# ------------------------------------------------------------------------------------------------------
# divergence and failure statuses
# ------------------------------------------------------------------------------------------------------
def test_divergence_isolated_to_its_lane():
    flow = BlowUp(lam=[0.0, -1.0], c=[1.0, 0.0])
    y0 = torch.ones(2, 1, 1, dtype=F64)
    t_out = torch.linspace(0, 2, 41, dtype=F64)
    sol = solve(flow, y0, t_out, rtol=1e-8, atol=1e-10)
    assert int(sol.status[0]) == Status.DIVERGED
    assert abs(float(sol.diverged_at[0]) - 1.0) < 1e-3
    assert torch.isnan(sol.ys[0, t_out > 1.0]).all()
    # the blow-up amplifies errors like 1/(1 - t)^2: check the relative error where it is moderate
    early = t_out < 0.9
    assert torch.allclose(sol.ys[0, early, 0, 0], 1 / (1 - t_out[early]), rtol=1e-5)
    assert int(sol.status[1]) == Status.OK and math.isnan(float(sol.diverged_at[1]))
    assert torch.allclose(sol.ys[1, :, 0, 0], torch.exp(-t_out), rtol=0, atol=1e-9)


def test_step_underflow_and_max_steps():
    flow = BlowUp(lam=[-1.0, -1.0], c=[0.0, 0.0], nan_after=0.5)   # N is NaN past t = 0.5
    y0 = torch.ones(2, 1, 1, dtype=F64)
    sol = solve(flow, y0, torch.tensor([0.0, 0.25, 1.0], dtype=F64))
    # the step size is driven to its floor by non-finite trial states: the lane diverged at t ~ 0.5
    assert (sol.status == Status.DIVERGED).all()
    assert (sol.t_final <= 0.5 + 1e-12).all() and (sol.t_final > 0.49).all()
    assert torch.isfinite(sol.ys[:, :2]).all() and torch.isnan(sol.ys[:, 2]).all()
    assert torch.allclose(sol.diverged_at, sol.t_final)

    ok = BlowUp(lam=[-1.0, -1.0], c=[0.0, 0.0])
    sol = solve(ok, y0, torch.tensor([0.0, 10.0], dtype=F64), max_steps=5)
    assert (sol.status == Status.MAX_STEPS).all()
    assert (sol.stats["accepted"] + sol.stats["rejected"] == 5).all()


# ------------------------------------------------------------------------------------------------------
# interoperability, dtypes, devices
# ------------------------------------------------------------------------------------------------------
def test_torchdiffeq_agrees():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    flow = Manufactured(B=2)
    y0 = flow.exact(torch.zeros(2, dtype=F64))[:, None, :].expand(2, 3, 2).contiguous()
    t = torch.linspace(0, 1.5, 7, dtype=F64)
    ys_td = torchdiffeq.odeint(flow, y0, t, method="dopri5", rtol=1e-11, atol=1e-12)  # (T, B, n, d)
    sol = solve(flow, y0, t)
    assert torch.allclose(sol.ys, ys_td.permute(1, 0, 2, 3), rtol=0, atol=1e-9)


def test_float32():
    flow = Manufactured(B=2, dtype=torch.float32)
    y0 = flow.exact(torch.zeros(2))[:, None, :].float()
    t = torch.linspace(0, 2, 21)
    sol = solve(flow, y0, t, rtol=1e-5, atol=1e-6)
    assert sol.ys.dtype == torch.float32
    assert (sol.status == Status.OK).all()
    exact = flow.exact(t)[None, :, None, :]
    assert (sol.ys - exact).abs().max() < 1e-3
    # default (float64-sized) tolerances are raised to what float32 can deliver
    sol = solve(flow, y0, t)
    assert (sol.status == Status.OK).all() and (sol.ys - exact).abs().max() < 1e-3


@pytest.mark.cuda
def test_device(device):
    flow, y0 = memory_problem()
    t_eval = torch.linspace(0.0, 3.0, 31, dtype=F64)
    cpu = solve(flow, y0, t_eval)
    dflow = MemoryFlow(flow.a.to(device), flow.w2.to(device), device=device)
    sol = solve(dflow, y0.to(device), t_eval.to(device))
    assert sol.ys.device.type == torch.device(device).type
    assert (sol.status.cpu() == Status.OK).all()
    assert torch.allclose(sol.ys.cpu(), cpu.ys, rtol=0, atol=1e-9)


def test_controllers_contract():
    c = PIController()
    h, st = c.init(torch.tensor([0.1, 0.1, 0.1], dtype=F64), 5)
    acc, hn, st = c.adapt(h, torch.tensor([0.01, 2.0, math.inf], dtype=F64), st)
    assert acc.tolist() == [True, False, False]
    assert hn[0] > h[0] and hn[1] < h[1] and hn[2] == pytest.approx(0.02)
    assert hn[0] <= 5 * h[0]
    # after a rejection, no growth
    acc, hn2, _ = c.adapt(hn, torch.tensor([1e-8, 1e-8, 1e-8], dtype=F64), st)
    assert acc.all() and hn2[1] <= hn[1] and hn2[0] == pytest.approx(5 * hn[0])


def test_exprb43_handles_state_dependent_stiffness():
    """y' = -k(y) (y - cos t) with k = 1e4 (1 + y^2): the stiffness sits in N, not in L = 0. A fixed-L
    exponential method is stability-limited there; exprb43 linearises N and is not."""

    class NonlinearStiff(SemilinearFlow):
        components = ("theta",)

        @property
        def n_lanes(self):
            return 1

        def linear_operator(self):
            return torch.zeros(1, 1, 1, dtype=F64)

        def nonlinear(self, t, y):
            return -1e4 * (1 + y**2) * (y - torch.cos(t)[:, None, None])

        def initial_state(self, theta0):
            raise NotImplementedError

    flow = NonlinearStiff()
    y0 = torch.ones(1, 1, 1, dtype=F64)
    te = [0.0, 1.0, 2.0]
    ref = scipy_reference(flow, y0, te, method="Radau", rtol=1e-12, atol=1e-14)
    sol = solve(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-8, atol=1e-10, method=ExpRosenbrock43())
    assert int(sol.status[0]) == Status.OK
    assert np.abs(sol.ys.numpy() - ref).max() < 1e-7
    etd = solve(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-8, atol=1e-10,
                solver=HochbruckOstermann4(), max_steps=200000)
    assert int(sol.stats["accepted"][0]) * 5 < int(etd.stats["accepted"][0]) + int(etd.stats["rejected"][0])
