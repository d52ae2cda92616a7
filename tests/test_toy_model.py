"""A new model is one definition plus one registry line: a toy optimizer and its flow defined in this
file only, then run through ``adamflow run`` (library and CLI) and the refinement study.

Toy method: "scaled gradient descent" theta_k = theta_{k-1} - alpha kappa g_k, with a hyper-parameter
``kappa`` that no built-in model has; its continuous model is the gradient flow theta' = -kappa g.
On f = a (x - c)^2 both are closed-form: x_k - c = (1 - 2 a kappa alpha)^k (x0 - c) and
x(t) - c = exp(-2 a kappa t) (x0 - c), so the E_T of the refinement study is known exactly.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from adamflow.cli import main as cli_main
from analysis.cli_options import Problem
from analysis.refine import refine
from core.hyper import check_nonneg
from core.method import ALPHA, HyperParam
from discrete.base import DiscreteOptimizer, col
from flows.semilinear import SemilinearFlow
from runner import experiment, registry

# --------------------------------------------------------------------------- the whole new model
KAPPA = HyperParam("kappa", 1.0, check_nonneg, "gradient scale of the toy method")


class ScaledGD(DiscreteOptimizer):
    name = "toy-gd"
    description = "toy: theta <- theta - alpha kappa g"
    hyper = (ALPHA, KAPPA)

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["step"] = col(h64["alpha"] * h64["kappa"], dtype)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        new = dict(state)
        new["theta"] = state["theta"] - state["hyper"]["step"] * grad
        new["count"] = state["count"] + 1
        return new


class ScaledGradientFlow(SemilinearFlow):
    name = "toy-gd-flow"
    description = "toy: theta' = -kappa g"
    method = "toy-gd"
    hyper = (ALPHA, KAPPA)
    components = ("theta",)

    def __init__(self, landscape, *, alpha, kappa=1.0, n_lanes, dtype=torch.float64, device="cpu"):
        super().__init__()
        self.landscape = landscape
        self.kappa = torch.as_tensor(kappa, dtype=dtype, device=device).expand(n_lanes).clone()
        self._B = n_lanes

    @property
    def n_lanes(self):
        return self._B

    def linear_operator(self):
        return self.kappa.new_zeros(self._B, 1, 1)

    def nonlinear(self, t, y):
        return -self.kappa[:, None, None] * self.landscape.grad(y[..., 0])[..., None]

    def initial_state(self, theta0):
        return theta0[..., None].clone()
# ------------------------------------------------------------------------ end of the new model

A, C, X0 = 0.5, 1.0, 3.0       # f = A (x - C)^2 = quadratic(diag=[A], center=[C])
LAND = f"quadratic(diag=[{A}],center=[{C}])"


@pytest.fixture(autouse=True)
def toy_registered():
    registry.register(ScaledGD)
    registry.register(ScaledGradientFlow)
    yield
    registry.unregister("toy-gd-flow")
    registry.unregister("toy-gd")


def test_descriptor_pairs_the_method():
    m = registry.methods()["toy-gd"]
    assert m.discrete.name == "toy-gd" and [f.name for f in m.flows] == ["toy-gd-flow"]
    assert registry.get_model("toy-gd-flow").schemes == ("exact",)
    assert "kappa" in registry.hyper_params()
    assert ScaledGD.hyperparameters == {"alpha": None, "kappa": 1.0}


def test_run_library_matches_closed_form():
    alpha, K = 0.01, 200
    spec = experiment.RunSpec(landscape=LAND, models=["toy-gd", "toy-gd-flow"], theta0=[[X0]],
                              alpha=[alpha], kappa=[0.5, 2.0], steps=K, every=50)
    (di, d), (fi, fl) = experiment.run(spec)
    assert di.kind == "discrete" and fi.kind == "flow"
    for b, g in enumerate([0.5, 2.0]):
        assert d.params["kappa"][b] == g and fl.params["kappa"][b] == g
        ks = torch.tensor([0, 50, 100, 150, 200], dtype=torch.float64)
        disc = C + (1 - 2 * A * g * alpha) ** ks * (X0 - C)
        flow = C + torch.exp(-2 * A * g * ks * alpha) * (X0 - C)
        assert int(d.n_out[b]) == 5 and int(fl.n_out[b]) == 5
        assert torch.allclose(d.theta[b, :, 0], disc, rtol=0, atol=1e-13)
        assert torch.allclose(fl.theta[b, :, 0], flow, rtol=0, atol=1e-9)


def test_cli_generates_the_new_option(tmp_path, capsys):
    out = tmp_path / "toy.json"
    rc = cli_main(["run", "--landscape", LAND, "--model", "toy-gd", "toy-gd-flow", "--theta0", "3",
                   "--alpha", "0.01", "--kappa", "2", "--steps", "100", "--json", str(out)])
    assert rc == 0
    lanes = json.loads(out.read_text())["lanes"]
    assert [ln["model"] for ln in lanes] == ["toy-gd", "toy-gd-flow"]
    for ln in lanes:
        assert ln["kappa"] == 2.0 and ln["status"] == "ok" and len(ln["t"]) == 101
    want = C + math.exp(-2 * A * 2.0 * 1.0) * (X0 - C)
    assert lanes[1]["final_theta"][0] == pytest.approx(want, abs=1e-9)
    rc = cli_main(["run", "--landscape", LAND, "--model", "toy-gd", "--theta0", "3",
                   "--alpha", "0.01", "--kappa", "-1", "--steps", "5"])
    assert rc == 2
    assert "kappa must be a finite number >= 0" in capsys.readouterr().err


def test_refine_with_the_new_pair_matches_closed_form():
    alphas = [0.04, 0.02, 0.01]
    prob = Problem(landscape=LAND, theta0=[[X0]], alpha=alphas, models=["toy-gd-flow"],
                   beta1=0.9, beta2=0.999, eps=1e-8, u0=[0.0])
    res = refine(prob, horizon=1.0, reference="toy-gd")
    assert [r["alpha"] for r in res["rows"]] == alphas
    for r in res["rows"]:
        a, K = r["alpha"], r["K"]
        want = abs((1 - 2 * A * a) ** K - math.exp(-2 * A * K * a)) * (X0 - C)
        assert r["status"] == "ok"
        assert r["E_T"] == pytest.approx(want, rel=1e-6)
    (s,) = res["slopes"]
    assert s["p_T"] == pytest.approx(1.0, abs=0.05)        # GD vs gradient flow: O(alpha)


def test_register_refuses_inconsistent_declarations():
    class Clash(ScaledGD):
        name = "toy-clash"
        hyper = (ALPHA, HyperParam("kappa", 1.0, None, "other meaning"))

    with pytest.raises(ValueError, match="declared differently"):
        registry.register(Clash)

    class Orphan(ScaledGradientFlow):
        name = "toy-orphan"
        method = "no-such-optimizer"

    with pytest.raises(ValueError, match="not a registered discrete optimizer"):
        registry.register(Orphan)
    with pytest.raises(ValueError, match="built-in"):
        registry.register(type("Adam2", (ScaledGD,), {"name": "adam"}))
