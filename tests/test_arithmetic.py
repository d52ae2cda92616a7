"""``--arithmetic torch``: the discrete optimizers in torch.optim's evaluation order, from the CLI
and the studies, bit for bit equal to torch.optim on the same lane; ``spec`` (the default) is the
SPEC formula order (and the compiled engine's)."""
import json

import pytest
import torch

import landscapes
from adamflow.cli import main
from analysis.cli_options import Problem
from core.errors import ConfigError
from runner.experiment import Numerics, run_lanes

LAND = "rosenbrock1d(c=4)"


def _cli_theta(capsys, arithmetic, steps=2000, alpha=1e-3):
    code = main(["run", "--landscape", LAND, "--model", "adam", "--theta0", "-1.5", "--alpha",
                 str(alpha), "--beta1", "0.9", "--beta2", "0.999", "--steps", str(steps),
                 "--arithmetic", arithmetic, "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (lane,) = json.loads(out)["lanes"]
    return [x[0] for x in lane["theta"]]


def _torch_optim(steps=2000, alpha=1e-3):
    land = landscapes.parse(LAND)
    p = torch.tensor([-1.5], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=alpha, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    out = [float(p.detach())]
    for _ in range(steps):
        opt.zero_grad()
        p.grad = land.grad(p.detach()[None])[0].clone()
        opt.step()
        out.append(float(p.detach()))
    return out


def test_cli_torch_arithmetic_is_torch_optim_to_the_last_bit(capsys):
    ours = _cli_theta(capsys, "torch")
    ref = _torch_optim()
    assert len(ours) == len(ref) == 2001
    assert ours == ref                                   # every iterate, bit for bit


def test_spec_arithmetic_differs_from_torch_optim_in_the_last_bits(capsys):
    # alpha = 1e-2: the two orders first differ at k = 29, by one ulp (README)
    spec = _cli_theta(capsys, "spec", alpha=1e-2)
    ref = _torch_optim(alpha=1e-2)
    diff = max(abs(a - b) for a, b in zip(spec, ref))
    assert 0 < diff < 1e-13
    assert _cli_theta(capsys, "torch", alpha=1e-2) == ref


def test_studies_take_the_arithmetic():
    lanes = [{"theta0": [-1.5], "alpha": 1e-3, "beta1": 0.9, "beta2": 0.999}]
    tr = run_lanes("adam", LAND, lanes, [2000], numerics=Numerics(arithmetic="torch"))
    assert tr.meta["arithmetic"] == "torch" and tr.meta["engine"] == "torch"
    assert tr.theta[0, :, 0].tolist() == _torch_optim()
    assert Problem(landscape=LAND, theta0=[[-1.5]], alpha=[1e-3], models=[], beta1=0.9,
                   beta2=0.999, eps=1e-8, u0=[0.0], arithmetic="torch").numerics.arithmetic == "torch"
    with pytest.raises(ConfigError, match="compiled engine"):
        run_lanes("adam", LAND, lanes, [10], numerics=Numerics(arithmetic="torch", engine="compiled"))


def test_unknown_arithmetic_is_one_line_exit_2(capsys):
    code = main(["run", "--landscape", LAND, "--model", "adam", "--theta0", "-1.5", "--alpha",
                 "1e-3", "--steps", "5", "--arithmetic", "exact"])
    out, err = capsys.readouterr()
    assert code == 2 and err.strip().count("\n") == 0 and "arithmetic" in err
