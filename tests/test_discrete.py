"""Tests for the batched discrete optimizers (package ``discrete``, SPEC §2, §8.1)."""
from __future__ import annotations

import math

import pytest
import torch

import discrete
from core.errors import ConfigError
from core.trajectory import DIVERGENCE_BOUND, Status, Trajectory
from landscapes.base import Landscape


# ----------------------------------------------------------------------------- test landscapes
class DiagQuad(Landscape):
    """f = sum_i d_i (x_i - c_i)^2 with per-lane d, c of shape (B, n)."""

    name = "test_diagquad"

    def __init__(self, d: torch.Tensor, c: torch.Tensor):
        self.d, self.c = d, c

    def value(self, theta):
        d, c = self.d.to(theta), self.c.to(theta)
        return (d * (theta - c) ** 2).sum(-1)

    def grad(self, theta):
        d, c = self.d.to(theta), self.c.to(theta)
        return 2 * d * (theta - c)

    def lane(self, b: int) -> "DiagQuad":
        return DiagQuad(self.d[b:b + 1], self.c[b:b + 1])

    def spec(self):
        return "test_diagquad"


class Rosen1D(Landscape):
    """f = (1-x)^2 + c (x^2-1)^2 with per-lane c of shape (B,)."""

    name = "test_rosen1d"
    dim = 1

    def __init__(self, c):
        self.c = torch.as_tensor(c, dtype=torch.float64).reshape(-1)

    def _c(self, theta):
        return self.c.to(theta).unsqueeze(-1)

    def value(self, theta):
        x = theta
        return ((1 - x) ** 2 + self._c(theta) * (x * x - 1) ** 2).sum(-1)

    def grad(self, theta):
        x = theta
        return -2 * (1 - x) + 4 * self._c(theta) * x * (x * x - 1)

    def lane(self, b: int) -> "Rosen1D":
        return Rosen1D(self.c[b:b + 1] if self.c.numel() > 1 else self.c)

    def spec(self):
        return "test_rosen1d"


def random_quadratic(B, n, gen):
    d = torch.rand(B, n, generator=gen, dtype=torch.float64) * 5 + 0.1
    c = torch.randn(B, n, generator=gen, dtype=torch.float64)
    theta0 = torch.randn(B, n, generator=gen, dtype=torch.float64) * 2
    return DiagQuad(d, c), theta0


def random_rosen(B, gen):
    c = torch.rand(B, generator=gen, dtype=torch.float64) * 4
    theta0 = torch.rand(B, 1, generator=gen, dtype=torch.float64) * 3 - 1.5
    return Rosen1D(c), theta0


# ----------------------------------------------------------------------------- torch.optim reference
def torch_reference(model, hyper, lane_land, theta0_lane, steps):
    """Run torch.optim on one lane ((1, n) parameter); returns (steps+1, n) iterates."""
    p = torch.nn.Parameter(theta0_lane.detach().clone().unsqueeze(0))
    if model == "adam":
        opt = torch.optim.Adam([p], lr=hyper["alpha"], betas=(hyper["beta1"], hyper["beta2"]),
                               eps=hyper["eps"])
    elif model == "rmsprop":
        opt = torch.optim.RMSprop([p], lr=hyper["alpha"], alpha=hyper["beta"], eps=hyper["eps"])
    elif model == "adagrad":
        opt = torch.optim.Adagrad([p], lr=hyper["alpha"], eps=hyper["eps"], lr_decay=0,
                                  initial_accumulator_value=0)
    elif model == "gd":
        opt = torch.optim.SGD([p], lr=hyper["alpha"])
    elif model == "heavyball":
        opt = torch.optim.SGD([p], lr=hyper["alpha"], momentum=hyper["momentum"], dampening=0)
    else:  # pragma: no cover
        raise AssertionError(model)
    out = [p.detach()[0].clone()]
    for _ in range(steps):
        p.grad = lane_land.grad(p.detach())
        opt.step()
        out.append(p.detach()[0].clone())
    return torch.stack(out)


def random_hyper(model, B, gen):
    u = lambda lo, hi: (torch.rand(B, generator=gen, dtype=torch.float64) * (hi - lo) + lo)  # noqa
    alpha = 10 ** u(-3.5, -1.3)
    if model == "adam":
        return {"alpha": alpha, "beta1": u(0.5, 0.99), "beta2": u(0.9, 0.9999),
                "eps": 10 ** u(-9, -6)}
    if model == "rmsprop":
        return {"alpha": alpha, "beta": u(0.8, 0.999), "eps": 10 ** u(-9, -6)}
    if model == "adagrad":
        return {"alpha": alpha * 10, "eps": 10 ** u(-10, -6)}
    if model == "gd":
        return {"alpha": alpha}
    return {"alpha": alpha, "momentum": u(0.0, 0.95)}


def assert_ulps(a: torch.Tensor, b: torch.Tensor, ulps: int):
    """|a - b| <= ulps * eps(dtype) * max(|a|, |b|) elementwise (ulps = 0: bitwise)."""
    if ulps == 0:
        bad = a != b
        assert not bool(bad.any()), f"{int(bad.sum())} mismatches, max |diff| {(a - b).abs().max()}"
        return
    tol = ulps * torch.finfo(a.dtype).eps * torch.maximum(a.abs(), b.abs())
    assert bool(((a - b).abs() <= tol).all()), f"max |diff| {(a - b).abs().max()}"


def assert_close_to_scale(a: torch.Tensor, b: torch.Tensor, ulps: int):
    """|a - b| <= ulps * eps(dtype) * max|b| (ulps of the trajectory's scale: an update
    theta - step can cancel, so ulps of the result alone are too strict)."""
    tol = ulps * torch.finfo(a.dtype).eps * b.abs().max()
    assert bool(((a - b).abs() <= tol).all()), f"max |diff| {(a - b).abs().max()} > {tol}"


ALL = ["gd", "heavyball", "adam", "rmsprop", "adagrad"]


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("problem", ["quadratic", "rosen1d"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torch_optim(model, dtype, problem, seed):
    gen = torch.Generator().manual_seed(1000 * seed + 7)
    B = 11 if seed == 2 else 4      # B >= 8 exercises the vectorised kernels on the lane axis
    if problem == "quadratic":
        land, theta0 = random_quadratic(B, 1 + 4 * seed, gen)
    else:
        land, theta0 = random_rosen(B, gen)
    theta0 = theta0.to(dtype)
    hyper = random_hyper(model, B, gen)
    steps = 150
    traj = discrete.get(model)(arithmetic="torch", **hyper).run(land, theta0, steps=steps)
    spec = discrete.get(model)(**hyper).run(land, theta0, steps=steps)
    assert traj.theta.shape == (B, steps + 1, theta0.shape[1])
    assert bool((traj.status == Status.OK).all())
    for b in range(B):
        lane_hyper = {k: float(v[b]) for k, v in hyper.items()}
        ref = torch_reference(model, lane_hyper, land.lane(b), theta0[b], steps)
        assert ref.dtype == dtype
        # CPU kernels are replayed in torch's exact order: bitwise in float64 and float32
        assert_ulps(traj.theta[b], ref, 0)
        # the literal SPEC evaluation order agrees to a few ulps per step (first 5 steps, before
        # rounding differences can be amplified by the dynamics)
        assert_close_to_scale(spec.theta[b, :6], ref[:6], 8)


@pytest.mark.parametrize("model", ALL)
def test_spec_arithmetic_single_step_ulps(model):
    """One step from the same random state: spec and torch orders differ by a few ulps at most."""
    gen = torch.Generator().manual_seed(11)
    land, theta0 = random_quadratic(64, 5, gen)
    hyper = random_hyper(model, 64, gen)
    a = discrete.get(model)(**hyper)
    b = discrete.get(model)(arithmetic="torch", **hyper)
    st = a.init_state(theta0)
    for name in a.moment_names:
        st[name] = torch.rand(theta0.shape, generator=gen, dtype=theta0.dtype)
    st["count"] = st["count"] + 3
    g = land.grad(theta0)
    sa, sb = a.step(dict(st), 4, g), b.step(dict(st), 4, g)
    assert_close_to_scale(sa["theta"], sb["theta"], 4)
    with pytest.raises(ConfigError):
        discrete.get(model)(arithmetic="fast", **hyper)


@pytest.mark.parametrize("model", ALL)
def test_lanes_independent_of_batch(model):
    """A lane's bits do not depend on how many other lanes are run beside it."""
    gen = torch.Generator().manual_seed(5)
    land, theta0 = random_quadratic(17, 3, gen)
    hyper = random_hyper(model, 17, gen)
    full = discrete.get(model)(**hyper).run(land, theta0, steps=60)
    for b in (0, 8, 16):
        one = discrete.get(model)(**{k: v[b:b + 1] for k, v in hyper.items()}).run(
            land.lane(b), theta0[b:b + 1], steps=60)
        assert torch.equal(full.theta[b], one.theta[0])
        assert torch.equal(full.f[b], one.f[0])


# ----------------------------------------------------------------------------- SPEC §8.1
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spec_facts_first_adam_step(dtype):
    land = Rosen1D(4.0)
    theta0 = torch.tensor([[-1.5]], dtype=dtype)
    assert float(land.value(theta0.double())) == 12.5
    assert float(Rosen1D(1.5).value(theta0.double())) == 8.59375
    g1 = land.grad(theta0)
    assert float(g1) == -35.0
    opt = discrete.get("adam")(alpha=1e-3, beta1=0.99, beta2=0.999, eps=1e-8)
    traj = opt.run(land, theta0, steps=1)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert math.isclose(float(traj.extras["m"][0, 1, 0]), -0.35, rel_tol=tol)
    assert math.isclose(float(traj.extras["v"][0, 1, 0]), 1.225, rel_tol=tol)
    assert math.isclose(float(traj.theta[0, 1, 0]), -1.499, rel_tol=tol, abs_tol=1e-9)
    assert float(traj.extras["m"][0, 0, 0]) == 0.0 and float(traj.extras["v"][0, 0, 0]) == 0.0
    assert float(traj.f[0, 0]) == 12.5
    assert math.isclose(float(traj.t[0, 1]), 1e-3, rel_tol=tol)


# ----------------------------------------------------------------------------- recording
@pytest.mark.parametrize("model", ALL)
def test_stride_recording(model):
    gen = torch.Generator().manual_seed(3)
    land, theta0 = random_quadratic(3, 2, gen)
    hyper = random_hyper(model, 3, gen)
    K, every = 45, 7
    full = discrete.get(model)(**hyper).run(land, theta0, steps=K, every=1)
    strided = discrete.get(model)(**hyper).run(land, theta0, steps=K, every=every)
    ks = list(range(0, K + 1, every)) + [K]
    assert ks == discrete.sample_indices(K, every)
    assert strided.theta.shape == (3, len(ks), 2)
    assert torch.equal(strided.theta, full.theta[:, ks])
    assert torch.equal(strided.f, full.f[:, ks])
    assert torch.equal(strided.t, full.t[:, ks])
    assert set(strided.extras) == set(discrete.get(model).moment_names)
    for name in strided.extras:
        assert torch.equal(strided.extras[name], full.extras[name][:, ks])
    assert strided.n_out.tolist() == [len(ks)] * 3
    # t = k * alpha per lane
    expect_t = torch.tensor(ks, dtype=torch.float64)[None] * hyper["alpha"][:, None]
    assert torch.equal(strided.t, expect_t)


def test_trajectory_fields():
    land = Rosen1D([1.5, 4.0])
    theta0 = torch.tensor([[-1.5], [0.5]], dtype=torch.float64)
    opt = discrete.get("adam")(alpha=torch.tensor([1e-3, 1e-2], dtype=torch.float64), beta1=0.9, beta2=[0.99, 0.999])
    traj = opt.run(land, theta0, steps=10, every=5, record_moments=False)
    assert isinstance(traj, Trajectory)
    assert traj.extras == {}
    assert traj.params == {"alpha": [1e-3, 1e-2], "beta1": [0.9, 0.9], "beta2": [0.99, 0.999],
                           "eps": [1e-8, 1e-8]}
    assert traj.meta["model"] == "adam" and traj.meta["landscape"] == "test_rosen1d"
    assert traj.stats["steps"].tolist() == [10, 10] and traj.stats["steps"].dtype == torch.long
    assert traj.status.tolist() == [0, 0]
    assert bool(torch.isnan(traj.diverged_at).all())
    assert traj.t.shape == (2, 3) and traj.f.shape == (2, 3)
    for j in range(3):
        assert torch.equal(traj.f[:, j], land.value(traj.theta[:, j]))
    zero = discrete.get("gd")(alpha=0.1).run(land, theta0, steps=0)
    assert zero.theta.shape == (2, 1, 1) and torch.equal(zero.theta[:, 0], theta0)


# ----------------------------------------------------------------------------- divergence
def _gd_divergence_step(theta0: float, alpha: float, d: float = 1.0) -> int:
    x, k = theta0, 0
    while True:
        k += 1
        x = x - alpha * (2 * d * x)
        if not math.isfinite(x) or abs(x) > DIVERGENCE_BOUND:
            return k


@pytest.mark.parametrize("every", [1, 3])
def test_divergence_lane_isolated(every):
    d = torch.ones(3, 1, dtype=torch.float64)
    c = torch.zeros(3, 1, dtype=torch.float64)
    land = DiagQuad(d, c)
    theta0 = torch.tensor([[1.0], [1.0], [0.7]], dtype=torch.float64)
    alpha = torch.tensor([0.1, 10.0, 0.3], dtype=torch.float64)
    K = 40
    traj = discrete.get("gd")(alpha=alpha).run(land, theta0, steps=K, every=every)
    k_div = _gd_divergence_step(1.0, 10.0)
    assert k_div == 10
    assert traj.status.tolist() == [Status.OK, Status.DIVERGED, Status.OK]
    assert traj.status_label(1) == "diverged"
    assert traj.diverged_time(1) == k_div * 10.0
    assert traj.diverged_time(0) is None and traj.diverged_time(2) is None
    ks = discrete.sample_indices(K, every)
    n_valid = sum(k < k_div for k in ks)
    assert traj.n_out.tolist() == [len(ks), n_valid, len(ks)]
    assert bool(torch.isfinite(traj.theta[1, :n_valid]).all())
    assert bool(torch.isnan(traj.theta[1, n_valid:]).all())
    assert bool(torch.isnan(traj.f[1, n_valid:]).all())
    assert bool(torch.isnan(traj.t[1, n_valid:]).all())
    assert traj.stats["steps"].tolist() == [K, k_div - 1, K]
    assert bool(torch.isfinite(traj.final_theta()).all())
    # healthy lanes bit-identical to a run without the diverging lane
    keep = [0, 2]
    healthy = discrete.get("gd")(alpha=alpha[keep]).run(
        DiagQuad(d[keep], c[keep]), theta0[keep], steps=K, every=every)
    assert torch.equal(traj.theta[keep], healthy.theta)
    assert torch.equal(traj.f[keep], healthy.f)


@pytest.mark.parametrize("model", ["adam", "heavyball", "rmsprop"])
def test_divergence_other_models_keep_healthy_lanes(model):
    """Lane 1 starts far out on a steep quartic and overflows; lane 0 is unaffected."""
    land = Rosen1D([4.0, 4.0])
    theta0 = torch.tensor([[-1.5], [-1.5]], dtype=torch.float64)
    big = 1e5 if model == "heavyball" else 1e13     # adaptive steps are bounded by ~alpha
    alpha = torch.tensor([1e-3, big], dtype=torch.float64)
    traj = discrete.get(model)(alpha=alpha).run(land, theta0, steps=300, every=1)
    assert traj.status.tolist() == [Status.OK, Status.DIVERGED]
    alone = discrete.get(model)(alpha=alpha[:1]).run(Rosen1D([4.0]), theta0[:1], steps=300)
    assert torch.equal(traj.theta[0], alone.theta[0])
    for name in traj.extras:
        assert torch.equal(traj.extras[name][0], alone.extras[name][0])
    kd = round(traj.diverged_time(1) / big)
    assert kd >= 1
    assert traj.n_out[1] == kd


def test_immediate_overflow_and_early_stop():
    land = DiagQuad(torch.ones(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    theta0 = torch.ones(2, 2, dtype=torch.float64)
    traj = discrete.get("gd")(alpha=1e300).run(land, theta0, steps=1000)
    assert traj.status.tolist() == [Status.DIVERGED] * 2
    assert traj.n_out.tolist() == [1, 1]
    assert traj.diverged_at.tolist() == [1e300, 1e300]
    assert torch.equal(traj.theta[:, 0], theta0)
    assert bool(torch.isnan(traj.theta[:, 1:]).all())
    assert traj.stats["steps"].tolist() == [0, 0]


def test_nonfinite_start():
    land = DiagQuad(torch.ones(2, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
    theta0 = torch.tensor([[float("nan")], [1.0]], dtype=torch.float64)
    traj = discrete.get("adam")(alpha=0.01).run(land, theta0, steps=5)
    assert traj.status.tolist() == [Status.DIVERGED, Status.OK]
    assert traj.n_out.tolist() == [0, 6]
    assert traj.diverged_at[0] == 0.0


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("model", ALL)
def test_bad_alpha(model, bad):
    with pytest.raises(ConfigError):
        discrete.get(model)(alpha=bad)
    with pytest.raises(ConfigError):
        discrete.get(model)(alpha=torch.tensor([1e-3, bad]))


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("model,key", [("adam", "beta1"), ("adam", "beta2"), ("rmsprop", "beta"),
                                       ("heavyball", "momentum")])
def test_bad_beta(model, key, bad):
    with pytest.raises(ConfigError):
        discrete.get(model)(alpha=1e-3, **{key: bad})
    with pytest.raises(ConfigError):
        discrete.get(model)(alpha=1e-3, **{key: [0.5, bad]})


@pytest.mark.parametrize("model", ["adam", "rmsprop", "adagrad"])
def test_bad_eps(model):
    for bad in (-1e-8, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            discrete.get(model)(alpha=1e-3, eps=bad)
    discrete.get(model)(alpha=1e-3, eps=0.0)


def test_registry_and_misc_errors():
    assert list(discrete.MODELS) == ["gd", "heavyball", "adam", "rmsprop", "adagrad", "jumpadam",
                                    "aitkengd", "polyak", "hilladam"]
    names = [n for n, _ in discrete.available()]
    assert names == list(discrete.MODELS)
    assert all(isinstance(d, str) and d and "\n" not in d for _, d in discrete.available())
    with pytest.raises(ConfigError, match="adam"):
        discrete.get("nadam")
    with pytest.raises(ConfigError):
        discrete.get("adam")()                       # alpha required
    with pytest.raises(ConfigError):
        discrete.get("adam")(alpha=1e-3, lr=1e-3)    # unknown hyper-parameter
    assert discrete.get("adam").hyperparameters == {"alpha": None, "beta1": 0.9, "beta2": 0.999,
                                                    "eps": 1e-8}
    assert discrete.get("adagrad").hyperparameters["eps"] == 1e-8
    assert discrete.get("adam").moment_names == ("m", "v")
    land = Rosen1D(4.0)
    opt = discrete.get("gd")(alpha=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError):                 # 3 alphas for 2 lanes
        opt.run(land, torch.zeros(2, 1, dtype=torch.float64), steps=3)
    with pytest.raises(ConfigError):
        discrete.get("gd")(alpha=0.1).run(land, torch.zeros(2, dtype=torch.float64), steps=3)
    with pytest.raises(ConfigError):
        discrete.get("gd")(alpha=0.1).run(land, torch.zeros(2, 1), steps=-1)
    with pytest.raises(ConfigError):
        discrete.get("gd")(alpha=0.1).run(land, torch.zeros(2, 1), steps=3, every=0)


def test_step_api_and_state():
    opt = discrete.get("adam")(alpha=[1e-3, 1e-2])
    theta0 = torch.tensor([[-1.5], [0.3]], dtype=torch.float64)
    st = opt.init_state(theta0)
    assert st["count"].shape == (2,) and set(opt.moment_names) <= set(st)
    land = Rosen1D(4.0)
    f, g = land.value_and_grad(st["theta"])
    new = opt.step(st, 1, g, f)
    assert torch.equal(st["theta"], theta0)          # input state untouched
    assert new["count"].tolist() == [1.0, 1.0]
    assert not torch.equal(new["theta"], theta0)


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("model", ALL)
def test_device(device, model):
    gen = torch.Generator().manual_seed(11)
    land, theta0 = random_quadratic(5, 3, gen)
    hyper = random_hyper(model, 5, gen)
    cpu = discrete.get(model)(**hyper).run(land, theta0, steps=80, every=3)
    dev_hyper = {k: v.to(device) for k, v in hyper.items()}
    traj = discrete.get(model)(**dev_hyper).run(land, theta0.to(device), steps=80, every=3)
    assert traj.theta.device.type == device.type
    torch.testing.assert_close(traj.theta.cpu(), cpu.theta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(traj.f.cpu(), cpu.f, rtol=1e-10, atol=1e-12)
    # divergence handling on the device too
    bad = discrete.get("gd")(alpha=torch.tensor([0.1, 1e300], dtype=torch.float64,
                                                 device=device)).run(
        DiagQuad(torch.ones(2, 1), torch.zeros(2, 1)), torch.ones(2, 1, device=device,
                                                                 dtype=torch.float64), steps=5)
    assert bad.status.cpu().tolist() == [Status.OK, Status.DIVERGED]


def test_lane_pow_matches_python_pow():
    """Bias corrections use libm pow, like torch.optim's Python ``beta ** step``, for any B."""
    gen = torch.Generator().manual_seed(2)
    beta = torch.rand(4096, generator=gen, dtype=torch.float64) * 0.2 + 0.8
    for k in (1, 2, 3, 7, 100, 12345):
        out = discrete.lane_pow(beta, torch.full_like(beta, float(k)))
        ref = torch.tensor([b ** float(k) for b in beta.tolist()], dtype=torch.float64)
        assert torch.equal(out, ref)
    half = discrete.lane_pow(1 - beta, torch.full_like(beta, 0.5))
    assert torch.equal(half, torch.tensor([(1 - b) ** 0.5 for b in beta.tolist()],
                                          dtype=torch.float64))
