"""Run a flow over lanes and return a :class:`core.trajectory.Trajectory`.

Output times are per lane (lanes may have different alpha): ``t_out`` (B, T) padded with NaN and
``n_out`` (B,) valid counts. :func:`output_grid` builds the standard grid t = k*alpha for
k = 0, every, 2*every, ..., K (K always included), shared with the discrete optimizers.
"""
from __future__ import annotations

import math

import torch

from core.grid import output_indices
from core.trajectory import Trajectory
from flows.fast.solve import solve_fast
from flows.semilinear import SemilinearFlow
from flows.solve import solve
from landscapes.base import trajectory_values


def output_grid(alpha: torch.Tensor, K: list[int] | torch.Tensor, every: int = 1
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-lane output grids t = k*alpha.

    Returns (t_out (B, T) NaN-padded, k_out (B, T) long (-1 padded), n_out (B,) long).
    """
    B = alpha.shape[0]
    Ks = [int(k) for k in (K.tolist() if isinstance(K, torch.Tensor) else K)]
    rows = [output_indices(k, every) for k in Ks]
    T = max(len(r) for r in rows)
    k_out = torch.full((B, T), -1, dtype=torch.long)
    for b, r in enumerate(rows):
        k_out[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    k_out = k_out.to(alpha.device)
    t_out = torch.where(k_out >= 0, k_out.to(alpha.dtype) * alpha[:, None],
                        torch.full_like(alpha[:, None].expand(B, T), math.nan))
    n_out = torch.tensor([len(r) for r in rows], dtype=torch.long, device=alpha.device)
    return t_out, k_out, n_out


def simulate(flow: SemilinearFlow, theta0: torch.Tensor, t_out: torch.Tensor,
             n_out: torch.Tensor | None = None, *, rtol: float | None = None,
             atol: float | None = None, params: dict | None = None, meta: dict | None = None,
             events: list | None = None, engine: str = "torch", **solve_kwargs) -> Trajectory:
    """Integrate ``flow`` from theta0 (B, n) with the exact-mode integrator and sample it at t_out.

    ``rtol``/``atol`` (default 1e-10/1e-12), ``events`` (:class:`flows.events.Event` list) and
    ``solve_kwargs`` go to :func:`flows.solve.solve`. With events, the trajectory's ``events`` holds the
    per-lane records {"t", "index", "direction", "count"} (see :class:`flows.solve.Solution`).
    ``engine``: "torch" (:func:`flows.solve.solve`, the reference) or "compiled"
    (:func:`flows.fast.solve.solve_fast`; ``solve_kwargs`` then max_steps, max_step, threads)."""

    B, n = theta0.shape
    if n_out is None:
        n_out = torch.full((B,), t_out.shape[1], dtype=torch.long, device=theta0.device)
    y0 = flow.initial_state(theta0)
    if engine == "compiled":
        if events:
            raise ValueError("simulate: events run on the torch engine")
        sol = solve_fast(flow, y0, t_out, n_out, rtol=rtol, atol=atol, **solve_kwargs)
    elif engine == "torch":
        sol = solve(flow, y0, t_out, n_out, rtol=rtol, atol=atol, events=events, **solve_kwargs)
    else:
        raise ValueError(f"simulate: engine must be 'torch' or 'compiled', got {engine!r}")
    outs = flow.outputs(sol.ys)                      # each (B, T, n)
    theta = outs.pop("theta")
    f = trajectory_values(flow.landscape, theta)
    # samples actually reached: up to n_out, and before divergence (outputs after it are NaN)
    rows = torch.arange(theta.shape[1], device=theta.device)[None, :]
    reached = (rows < n_out[:, None]) & torch.isfinite(theta).all(dim=-1)
    valid = reached.long().cumprod(dim=1).sum(dim=1)
    return Trajectory(
        t=t_out.clone(), theta=theta, f=f, status=sol.status, diverged_at=sol.diverged_at,
        n_out=valid, extras=outs, params=dict(params or {}),
        stats={k: v for k, v in sol.stats.items()},
        meta={"model": flow.name, "landscape": flow.landscape.spec(), **(meta or {})},
        events=sol.events() if events else {},
    )
