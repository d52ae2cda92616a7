"""Tests of flows.kernels: memory kernels, realizations, fits and the two convolution evaluators."""
import math

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from flows.kernels import (
    ExponentialSumKernel,
    FirstOrderKernel,
    PowerLawKernel,
    SecondOrderKernel,
    convolve_realization,
    fit_exponential_sum,
    history_convolution,
    k2,
)

F64 = torch.float64
BETAS2 = [0.99, 0.9, 0.5, 0.2]


def _trapz_mass(kernel, T, n=400001):
    t = torch.linspace(0.0, T, n, dtype=F64)
    return torch.trapezoid(kernel(t), t, dim=-1)


# ---------------------------------------------------------------- mass, shape, continuity
@pytest.mark.parametrize("beta", [0.9, 0.5, 0.2, 0.0])
def test_first_order_unit_mass(beta):
    k = FirstOrderKernel(0.1, beta)
    lam = (1 - beta) / 0.1
    assert abs(float(_trapz_mass(k, 60 / lam)) - 1.0) < 1e-6
    assert float(k.mass()) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("beta", [0.9, 0.5, 0.2])
def test_second_order_unit_mass_and_zero_at_origin(beta):
    alpha = 0.1
    k = SecondOrderKernel(alpha, beta)
    lam = (1 - beta) / alpha
    T = 80 * max(alpha, 1 / lam)
    assert abs(float(_trapz_mass(k, T)) - 1.0) < 1e-6
    assert float(k.mass()) == pytest.approx(1.0, abs=1e-14)
    assert float(k(torch.zeros(1, dtype=F64))[0]) == 0.0
    # closed-form cumulative integral matches the mass at large tau
    assert float(k.integral(torch.tensor([T], dtype=F64))[0]) == pytest.approx(1.0, abs=1e-12)


def test_power_law_unit_mass():
    k = PowerLawKernel(0.5, 3.0)
    from scipy.integrate import quad
    num = quad(lambda x: float(k(torch.tensor([x], dtype=F64))[0]), 0, np.inf, epsabs=1e-13,
               epsrel=1e-12, limit=200)[0]
    assert abs(num - 1.0) < 1e-9
    assert float(k.integral(torch.tensor([1e3], dtype=F64))[0]) == pytest.approx(1 - (1 + 2e3) ** -2,
                                                                                rel=1e-14)
    assert float(k.mass()) == 1.0
    t = torch.tensor([0.0, 0.5, 3.0], dtype=F64)
    assert torch.allclose(k(t), (2 / 0.5) * (1 + t / 0.5) ** -3.0, rtol=1e-14)


def test_regime_shapes():
    t = torch.linspace(0, 40, 4001, dtype=F64)
    assert (SecondOrderKernel(0.1, 0.2)(t) < 0).any()           # b < 1/2 changes sign
    for b in (0.5, 0.6, 0.9, 0.999):
        assert (SecondOrderKernel(0.1, b)(t) >= 0).all()
    assert (FirstOrderKernel(0.1, 0.9)(t) > 0).all()
    # causal: zero for tau < 0
    assert float(SecondOrderKernel(0.1, 0.9)(torch.tensor([-1.0], dtype=F64))[0]) == 0.0


def test_k2_regime_formulas():
    alpha = 0.3
    t = torch.linspace(0, 5, 101, dtype=F64)
    x = t / alpha
    for b in (0.9, 0.7):
        kap = math.sqrt(2 * b - 1)
        ref = (2 / kap) * torch.exp(-x) * torch.sinh(kap * x)
        assert torch.allclose(SecondOrderKernel(alpha, b).K2(t), ref, rtol=1e-12, atol=1e-300)
    ref = 2 * x * torch.exp(-x)
    assert torch.allclose(SecondOrderKernel(alpha, 0.5).K2(t), ref, rtol=1e-14)
    w = math.sqrt(1 - 2 * 0.2)
    ref = (2 / w) * torch.exp(-x) * torch.sin(w * x)
    assert torch.allclose(SecondOrderKernel(alpha, 0.2).K2(t), ref, rtol=1e-12, atol=1e-15)


def test_k2_continuity_across_half():
    alpha = 0.1
    t = torch.linspace(0, 3, 301, dtype=F64)
    mid = SecondOrderKernel(alpha, 0.5)(t)
    for d in (1e-9, -1e-9):
        v = SecondOrderKernel(alpha, 0.5 + d)(t)
        assert torch.isfinite(v).all()
        rel = ((v - mid).abs().max() / mid.abs().max()).item()
        assert rel < 1e-7, (d, rel)


def test_k2_large_tau_no_overflow():
    t = torch.tensor([0.0, 1e3, 1e5, 1e8], dtype=F64)
    for b in (0.999999, 0.9, 0.5 + 1e-12, 0.5, 0.2):
        v = k2(t, torch.tensor(1e-3, dtype=F64), torch.tensor(b, dtype=F64))
        assert torch.isfinite(v).all()


# ---------------------------------------------------------------- realizations
def _tau():
    return torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-4, 1.5, 60, dtype=F64)])


@pytest.mark.parametrize("beta", [0.9, 0.6])
def test_realization_first_order(beta):
    k = FirstOrderKernel(0.1, beta)
    R = k.realization()
    assert R.J == 1
    t = _tau()
    assert torch.allclose(R.kernel(t)[0], k(t), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("beta", [0.999, 0.9, 0.5 + 1e-9, 0.5, 0.5 - 1e-9, 0.2, 0.0])
def test_realization_second_order(beta):
    k = SecondOrderKernel(0.1, beta)
    R = k.realization()
    assert R.J == 2
    t = _tau()
    ref = k(t)
    assert torch.allclose(R.kernel(t)[0], ref, rtol=1e-10, atol=1e-12 * ref.abs().max())


def test_exponential_sum_real_and_complex():
    w = torch.tensor([0.5, 0.3 + 0.2j, 0.3 - 0.2j, 1.0], dtype=torch.complex128)
    l = torch.tensor([0.2, 1.0 + 3.0j, 1.0 - 3.0j, 5.0], dtype=torch.complex128)
    k = ExponentialSumKernel(w, l)
    t = _tau()
    ref = (w[None] * torch.exp(-l[None] * t[:, None].to(w.dtype))).sum(-1).real
    assert torch.allclose(k(t), ref, rtol=1e-13)
    R = k.realization()
    assert R.J == 4
    assert torch.allclose(R.kernel(t)[0], ref, rtol=1e-10, atol=1e-13)
    assert float(k.mass()) == pytest.approx(float((w / l).sum().real), rel=1e-14)
    kr = ExponentialSumKernel(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0]))
    assert torch.allclose(kr.realization().kernel(t)[0], kr(t), rtol=1e-11)
    with pytest.raises(ConfigError):
        ExponentialSumKernel(torch.tensor([1.0 + 1j]), torch.tensor([1.0 + 1j]))   # no partner
    with pytest.raises(ConfigError):
        ExponentialSumKernel(torch.tensor([1.0]), torch.tensor([-1.0]))             # growing


# ---------------------------------------------------------------- convolutions
def _signal(s, vec=False):
    g = torch.sin(3 * s) + s ** 2
    if vec:
        return torch.stack([g, torch.cos(s), -0.5 * s], dim=-1)[None]     # (1, N, 3)
    return g[None]


@pytest.mark.parametrize("kind,beta", [("K1", 0.9), ("K1", 0.2), ("K2", 0.99), ("K2", 0.5),
                                       ("K2", 0.2)])
@pytest.mark.parametrize("vec", [False, True])
def test_history_vs_realization(kind, beta, vec):
    alpha = 0.05
    kern = (FirstOrderKernel if kind == "K1" else SecondOrderKernel)(alpha, beta)
    # nonuniform grid on [0, 3]
    u = torch.linspace(0, 1, 241, dtype=F64)
    s = 3 * (u + 0.15 * torch.sin(math.pi * u) ** 2 * u)
    s = 3 * s / s[-1]
    g = _signal(s, vec)
    mh = history_convolution(kern, s, g)
    mr = convolve_realization(kern.realization(), s, g)
    assert mh.shape == g.shape == mr.shape
    scale = mh.abs().max()
    assert ((mh - mr).abs().max() / scale).item() < 1e-11


@pytest.mark.parametrize("kind,beta", [("K1", 0.9), ("K2", 0.99), ("K2", 0.5), ("K2", 0.2)])
def test_constant_signal_closed_form(kind, beta):
    alpha = 0.1
    kern = (FirstOrderKernel if kind == "K1" else SecondOrderKernel)(alpha, beta)
    s = torch.linspace(0, 4, 201, dtype=F64)
    g = torch.ones(1, 201, dtype=F64)
    exact = kern.integral(s)
    mh = history_convolution(kern, s, g)[0]
    mr = convolve_realization(kern.realization(), s, g)[0]
    # g = 1 is linear: both are exact up to rounding / quadrature
    assert (mh - exact).abs().max().item() < 1e-12
    assert (mr - exact).abs().max().item() < 1e-12


def test_smooth_signal_converges_to_true_convolution():
    # K1 with g = sin(3r) + r^2: exact convolution in closed form; error O(h^2)
    alpha, beta = 0.1, 0.5
    lam = (1 - beta) / alpha
    kern = FirstOrderKernel(alpha, beta)

    def exact(s):
        # int_0^s lam e^{-lam(s-r)} (sin 3r + r^2) dr
        a = lam * (lam * torch.sin(3 * s) - 3 * torch.cos(3 * s) + 3 * torch.exp(-lam * s)) / (lam ** 2 + 9)
        b = s ** 2 - 2 * s / lam + 2 / lam ** 2 * (1 - torch.exp(-lam * s))
        return a + b

    errs = []
    for N in (101, 201, 401):
        s = torch.linspace(0, 2, N, dtype=F64)
        m = convolve_realization(kern.realization(), s, _signal(s))[0]
        errs.append((m - exact(s)).abs().max().item())
    assert errs[-1] < 1e-4
    assert errs[0] / errs[1] > 3.5 and errs[1] / errs[2] > 3.5            # second order in h


def test_power_law_history_vs_fit_realization():
    pk = PowerLawKernel(0.2, 2.0)
    fit = fit_exponential_sum(pk, 14, 200.0)
    s = torch.linspace(0, 5, 301, dtype=F64)
    g = _signal(s)
    mh = history_convolution(pk, s, g)
    mr = convolve_realization(fit.realization(), s, g)
    me = history_convolution(fit, s, g)
    assert ((me - mr).abs().max() / me.abs().max()).item() < 1e-11
    # kernel rel. error eps bounds the memory error by eps * int |k||g|
    bound = float(fit.fit_error) * g.abs().max()
    assert (mh - mr).abs().max().item() <= 1.01 * bound + 1e-12


# ---------------------------------------------------------------- power-law fit
@pytest.mark.parametrize("p,J", [(1.5, 12), (2.0, 16), (3.0, 12)])
def test_power_law_fit_accuracy(p, J):
    pk = PowerLawKernel(1.0, p)
    fit = fit_exponential_sum(pk, J, 1e3)
    assert float(fit.fit_error) <= 1e-3
    t = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-3, 3, 3001, dtype=F64)])
    rel = ((fit(t) - pk(t)).abs() / pk(t)).max().item()
    assert rel <= 1.2 * float(fit.fit_error) + 1e-12
    R = fit.realization()
    assert torch.allclose(R.kernel(t[::50])[0], fit(t[::50]), rtol=1e-9, atol=1e-14)


# ---------------------------------------------------------------- validation, lanes, dtypes
def test_bad_input():
    with pytest.raises(ConfigError):
        PowerLawKernel(1.0, 1.0)
    with pytest.raises(ConfigError):
        PowerLawKernel(1.0, 0.5)
    with pytest.raises(ConfigError):
        PowerLawKernel(0.0, 2.0)
    with pytest.raises(ConfigError):
        FirstOrderKernel(0.0, 0.9)
    with pytest.raises(ConfigError):
        SecondOrderKernel(-1.0, 0.9)
    with pytest.raises(ConfigError):
        SecondOrderKernel(0.1, 1.0)
    with pytest.raises(ConfigError):
        FirstOrderKernel(0.1, torch.tensor([0.5, 1.0]))
    with pytest.raises(ConfigError):
        SecondOrderKernel(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.6]))


def test_per_lane_parameters():
    alpha = torch.tensor([0.1, 0.05, 0.2, 0.1], dtype=F64)
    beta = torch.tensor([0.99, 0.5, 0.2, 0.5 + 1e-9], dtype=F64)
    k = SecondOrderKernel(alpha, beta)
    t = torch.linspace(0, 2, 51, dtype=F64)
    v = k(t)
    assert v.shape == (4, 51)
    for i in range(4):
        assert torch.allclose(v[i], SecondOrderKernel(float(alpha[i]), float(beta[i]))(t), rtol=1e-14)
    assert torch.allclose(k(t.expand(4, -1)), v)
    R = k.realization()
    assert R.A.shape == (4, 2, 2)
    assert torch.allclose(R.kernel(t), v, rtol=1e-9, atol=1e-12)
    s = torch.linspace(0, 2, 81, dtype=F64)
    g = torch.stack([torch.sin(3 * s) + s ** 2 * (i + 1) for i in range(4)])
    mh = history_convolution(k, s, g)
    mr, xs = convolve_realization(R, s, g, return_states=True)
    assert xs.shape == (4, 81, 2)
    assert torch.allclose(xs[..., 0], mr)
    assert ((mh - mr).abs().max() / mh.abs().max()).item() < 1e-11
    # per-lane power law and its per-lane fit
    pk = PowerLawKernel(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 3.0]))
    fit = fit_exponential_sum(pk, 10, 100.0)
    assert fit.weights.shape == (2, 10) and fit.fit_error.shape == (2,)
    assert (fit.fit_error < 1e-2).all()


def test_float32():
    s = torch.linspace(0, 2, 101, dtype=torch.float32)
    g = (torch.sin(3 * s) + s ** 2)[None]
    for k in (FirstOrderKernel(0.1, 0.9), SecondOrderKernel(0.1, 0.5), SecondOrderKernel(0.1, 0.2)):
        v = k(s)
        assert v.dtype == torch.float32
        mh = history_convolution(k, s, g)
        mr = convolve_realization(k.realization(), s, g)
        assert mh.dtype == mr.dtype == torch.float32
        assert ((mh - mr).abs().max() / mh.abs().max()).item() < 1e-5
        v64 = k(s.double())
        assert ((v.double() - v64).abs().max() / v64.abs().max()).item() < 1e-6


@pytest.mark.cuda
def test_device(device):
    s = torch.linspace(0, 2, 101, dtype=F64, device=device)
    g = (torch.sin(3 * s) + s ** 2)[None]
    k = SecondOrderKernel(torch.tensor([0.1]), torch.tensor([0.3]), device=device)
    v = k(s)
    assert v.device.type == device.type
    mh = history_convolution(k, s, g)
    mr = convolve_realization(k.realization(), s, g)
    assert mh.device.type == mr.device.type == device.type
    assert ((mh - mr).abs().max() / mh.abs().max()).item() < 1e-11
