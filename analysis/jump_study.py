"""The Jump Adam seed experiments (SPEC §7, issue 10): what the seed's claims turn out to be.

Three studies, each a plain result dict (figures and tables are drawn from these only,
:mod:`paper_figs.jump_adam`):

* :func:`phases` -- the seed's three phases (chaos: gate closed, basin entry, warp: the effective
  step multiplier grows towards the trust coefficient) made visible: f - f*, the fraction of
  coordinates whose gate is open and the mean effective multiplier |executed step| / |Adam step|
  per step, Adam beside Jump Adam at the same lr, on a lane-batched landscape;
  :func:`mlp_phases` -- the same on a small network (``torch.optim`` classes, full batch);
* :func:`conditioning` -- steps to |g| < tol for GD, Adam, Jump Adam and Aitken GD on quadratics
  of condition number 1..1e4, separable (A diagonal) and rotated (A = Q diag Q^T), and on the sextic;
* :func:`gate_map` -- over a grid of starting points of a coupled quadratic (where the secant
  curvature (g_k - g_{k-1})_i / (theta_{k-1} - theta_{k-2})_i is not the Hessian diagonal) and of
  the separable quadratic with the same spectrum: Adam's steps to tolerance over Jump Adam's, and
  the fraction of steps on which the gate was open.

Phase labels (:func:`phase_labels`) are read from the data, per step, on a centred rolling window
of ``window`` steps: "converged" where |g| < 1e-8, else "warp" where the mean multiplier exceeds
``warp`` (default 2), "chaos" where the open fraction is below ``closed`` (default 0.1), "basin"
otherwise.
"""
from __future__ import annotations

import math
from typing import Any

import torch

import landscapes
from core.trajectory import Status
from discrete.torch_optim import JumpAdam
from runner.experiment import Numerics, run_lanes

#: steps budget of the steps-to-tolerance studies; a lane that does not get there reports None
BUDGET = 5000


def grad_norms(land, theta: torch.Tensor) -> torch.Tensor:
    """(B, T) Euclidean norm of grad f at every sample of ``theta`` (B, T, n); NaN rows stay NaN."""
    B, T, n = theta.shape
    out = torch.full((B, T), math.nan, dtype=theta.dtype)
    for t in range(T):
        x = theta[:, t]
        ok = torch.isfinite(x).all(dim=1)
        if bool(ok.any()):
            g = land.grad(torch.where(ok[:, None], x, torch.zeros_like(x)))
            out[:, t] = torch.where(ok, g.norm(dim=1), torch.full_like(out[:, t], math.nan))
    return out


def first_below(values: torch.Tensor, k: torch.Tensor, tol: float) -> list[int | None]:
    """Per lane, the first step index k at which ``values`` < tol (None when never)."""
    out: list[int | None] = []
    for b in range(values.shape[0]):
        hit = (values[b] < tol).nonzero()
        out.append(int(k[b, hit[0, 0]]) if hit.numel() else None)
    return out


def _steps(traj, alpha: torch.Tensor | list[float]) -> torch.Tensor:
    a = torch.as_tensor(alpha, dtype=traj.t.dtype).reshape(-1, 1)
    return torch.round(traj.t / a).nan_to_num(-1).long()


def _run(model: str, land, theta0: list[list[float]], K: int, **hyper) -> Any:
    B = len(theta0)
    lanes = [{"theta0": th, **{k: (v[b] if isinstance(v, list) else v) for k, v in hyper.items()}}
             for b, th in enumerate(theta0)]
    return run_lanes(model, land, lanes, [K] * B, every=1, numerics=Numerics())


def rolling_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Centred moving average of a 1-D tensor (shorter windows at the ends)."""
    w = max(1, int(window))
    c = torch.cat([torch.zeros(1, dtype=x.dtype), torch.cumsum(x.nan_to_num(0.0), 0)])
    n = x.shape[0]
    i = torch.arange(n)
    lo = (i - w // 2).clamp(min=0)
    hi = (i + w - w // 2).clamp(max=n)
    return (c[hi] - c[lo]) / (hi - lo).to(x.dtype)


def phase_labels(gate: torch.Tensor, mult: torch.Tensor, grad: torch.Tensor | None = None, *,
                 window: int = 50, warp: float = 2.0, closed: float = 0.1,
                 tol: float = 1e-8) -> list[str]:
    """Per step: "converged" (|g| < tol: the gate is closed because nothing moves), else "warp",
    "chaos" or "basin" (module docstring)."""
    g, m = rolling_mean(gate, window), rolling_mean(mult, window)
    done = [False] * gate.shape[0] if grad is None else (grad < tol).tolist()
    return ["converged" if d else ("warp" if mm > warp else ("chaos" if gg < closed else "basin"))
            for gg, mm, d in zip(g.tolist(), m.tolist(), done)]


def phase_spans(labels: list[str]) -> list[dict[str, Any]]:
    """Runs of equal labels: [{"phase", "start", "end"}] (step indices, end exclusive)."""
    spans: list[dict[str, Any]] = []
    for k, lab in enumerate(labels):
        if spans and spans[-1]["phase"] == lab:
            spans[-1]["end"] = k + 1
        else:
            spans.append({"phase": lab, "start": k, "end": k + 1})
    return spans


def phases(spec: str, theta0: list[float], *, lr: float = 1e-2, K: int = 3000,
           f_star: float = 0.0, **jump) -> dict[str, Any]:
    """Adam and Jump Adam from ``theta0`` on ``spec``: per step k, f - f*, the open fraction and
    mean multiplier of Jump Adam, its phase labels and spans."""
    land = landscapes.parse(spec)
    out: dict[str, Any] = {"landscape": spec, "theta0": theta0, "lr": lr, "K": K, "jump": jump}
    for model in ("adam", "jumpadam"):
        traj = _run(model, land, [theta0], K, alpha=lr, **(jump if model == "jumpadam" else {}))
        n = int(traj.n_out[0])
        out[model] = {"k": _steps(traj, [lr])[0, :n].tolist(),
                      "gap": (traj.f[0, :n] - f_star).tolist(),
                      "grad": grad_norms(land, traj.theta[:1, :n])[0].tolist(),
                      "status": int(traj.status[0])}
        if model == "jumpadam":
            gate = traj.extras["gate"][0, :n].mean(dim=-1)
            mult = traj.extras["multiplier"][0, :n].mean(dim=-1)
            labels = phase_labels(gate, mult, torch.tensor(out[model]["grad"]))
            out[model].update(gate=gate.tolist(), multiplier=mult.tolist(),
                              spans=phase_spans(labels))
    return out


def _mlp_data(seed: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2.0, 2.0, n, dtype=torch.float64)[:, None]
    y = torch.sin(2.0 * x) + 0.05 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return x, y


def _mlp(seed: int, width: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(1, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, 1)).to(torch.float64)


def mlp_phases(*, lr: float = 1e-2, K: int = 3000, width: int = 16, seed: int = 0,
               **jump) -> dict[str, Any]:
    """A 1-``width``-1 tanh network fitted to sin(2x) + noise (64 points, full batch, float64,
    fixed seeds), trained by ``torch.optim.Adam`` and :class:`discrete.torch_optim.JumpAdam` from
    the same initial weights: loss, open fraction and multiplier per step."""
    x, y = _mlp_data(seed)
    out: dict[str, Any] = {"landscape": f"mlp 1-{width}-1 tanh, sin(2x) + noise, 64 points",
                           "lr": lr, "K": K, "jump": jump}
    for name in ("adam", "jumpadam"):
        net = _mlp(seed, width)
        opt = (torch.optim.Adam(net.parameters(), lr=lr) if name == "adam"
               else JumpAdam(net.parameters(), lr=lr, **jump))
        loss_k, gate, mult, gnorm = [], [], [], []
        for _ in range(K + 1):
            opt.zero_grad()
            loss = torch.mean((net(x) - y) ** 2)
            loss.backward()
            loss_k.append(float(loss.detach()))
            gnorm.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters()))))
            if len(loss_k) > K:
                break
            opt.step()
            if name == "jumpadam":
                gate.append(opt.last_gate_fraction)
                mult.append(opt.last_multiplier)
        out[name] = {"k": list(range(K + 1)), "gap": loss_k, "grad": gnorm}
        if name == "jumpadam":
            g = torch.tensor([0.0] + gate, dtype=torch.float64)
            m = torch.tensor([1.0] + mult, dtype=torch.float64)
            out[name].update(gate=g.tolist(), multiplier=m.tolist(),
                             spans=phase_spans(phase_labels(g, m, torch.tensor(gnorm))))
    return out


def _spectrum_matrix(cond: float, n: int, rotated: bool, seed: int = 0) -> torch.Tensor:
    eig = torch.logspace(0.0, math.log10(cond), n, dtype=torch.float64) if cond > 1 \
        else torch.ones(n, dtype=torch.float64)
    if not rotated:
        return torch.diag(eig)
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    A = q @ torch.diag(eig) @ q.T
    return (A + A.T) / 2


def conditioning(*, conds=(1.0, 10.0, 100.0, 1e3, 1e4), n: int = 10, tol: float = 1e-8,
                 lr: float = 1e-2, K: int = BUDGET, **jump) -> dict[str, Any]:
    """Steps to |g| < tol from theta0 = (1, ..., 1) on f = x^T A x (Hessian 2A, eigenvalues of A
    log-spaced in [1, cond]); GD and Aitken GD at alpha = 1/L (L = 2 cond, the stable step that
    is exact at cond 1), Adam and Jump Adam at ``lr``. Plus the sextic from x0 = 1, every method at
    ``lr``. None = not within K steps."""
    rows: list[dict[str, Any]] = []
    mats, names = [], []
    for rotated in (False, True):
        for c in conds:
            mats.append(_spectrum_matrix(c, n, rotated))
            names.append(("rotated" if rotated else "separable", c))
    A = torch.stack(mats)
    land = landscapes.Quadratic(A=A)
    B = A.shape[0]
    theta0 = [[1.0] * n] * B
    L = [2.0 * c for _, c in names]
    runs = {"gd": dict(alpha=[1.0 / x for x in L]), "aitkengd": dict(alpha=[1.0 / x for x in L]),
            "adam": dict(alpha=lr), "jumpadam": dict(alpha=lr, **jump)}
    steps: dict[str, list] = {}
    diverged: dict[str, list] = {}
    for model, hp in runs.items():
        traj = _run(model, land, theta0, K, **hp)
        alpha = hp["alpha"] if isinstance(hp["alpha"], list) else [hp["alpha"]] * B
        steps[model] = first_below(grad_norms(land, traj.theta), _steps(traj, alpha), tol)
        diverged[model] = [int(s) == int(Status.DIVERGED) for s in traj.status.tolist()]
    for b, (kind, c) in enumerate(names):
        rows.append({"problem": f"quadratic {kind}", "cond": c,
                     **{m: steps[m][b] for m in runs},
                     "diverged": [m for m in runs if diverged[m][b]]})
    sextic = landscapes.parse("sextic")
    srow: dict[str, Any] = {"problem": "sextic (x0 = 1)", "cond": None, "diverged": []}
    for model in runs:
        traj = _run(model, sextic, [[1.0]], K, alpha=lr, **(jump if model == "jumpadam" else {}))
        srow[model] = first_below(grad_norms(sextic, traj.theta), _steps(traj, [lr]), tol)[0]
        if int(traj.status[0]) == int(Status.DIVERGED):
            srow["diverged"].append(model)
    rows.append(srow)
    return {"tol": tol, "K": K, "n": n, "lr": lr, "jump": jump, "rows": rows}


def gate_map(*, coupling: float = 0.9, half_width: float = 2.0, points: int = 31,
             tol: float = 1e-8, lr: float = 1e-2, K: int = 2000, **jump) -> dict[str, Any]:
    """Over a points x points grid of theta0 in [-w, w]^2: on the coupled quadratic
    A = [[1, rho], [rho, 1]] and on the separable one with A's spectrum (diag(1 - rho, 1 + rho)),
    log2(Adam's steps / Jump Adam's steps) to |g| < tol (K + 1 where not reached) and the
    fraction of Jump Adam's steps with an open gate (mean over coordinates and steps)."""
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    X, Y = torch.meshgrid(axis, axis, indexing="xy")
    theta0 = torch.stack([X.reshape(-1), Y.reshape(-1)], dim=1).tolist()
    rho = coupling
    problems = {"coupled": torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64),
                "separable": torch.diag(torch.tensor([1.0 - rho, 1.0 + rho], dtype=torch.float64))}
    out: dict[str, Any] = {"axis": axis.tolist(), "coupling": rho, "tol": tol, "K": K, "lr": lr,
                           "jump": jump}
    for key, A in problems.items():
        land = landscapes.Quadratic(A=A)
        res: dict[str, Any] = {"A": A.tolist()}
        for model in ("adam", "jumpadam"):
            traj = _run(model, land, theta0, K, alpha=lr, **(jump if model == "jumpadam" else {}))
            s = first_below(grad_norms(land, traj.theta), _steps(traj, [lr] * len(theta0)), tol)
            res[model] = [K + 1 if v is None else v for v in s]
            if model == "jumpadam":
                res["open_fraction"] = traj.extras["gate"][:, 1:].mean(dim=(1, 2)).tolist()
        steps = {m: torch.tensor(res[m], dtype=torch.float64).clamp(min=1)   # 0 at the minimizer
                 for m in ("adam", "jumpadam")}
        ratio = torch.log2(steps["adam"] / steps["jumpadam"])
        res["log2_speedup"] = ratio.reshape(points, points).tolist()
        res["open_fraction"] = torch.tensor(res["open_fraction"]).reshape(points, points).tolist()
        out[key] = res
    return out
