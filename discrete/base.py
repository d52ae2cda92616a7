"""Base class and run loop shared by all batched discrete optimizers.

Conventions (SPEC §0, §2)
-------------------------
* ``theta`` is a (B, n) tensor: B independent lanes of dimension n. All optimizer state (moments,
  buffers) is (B, n); hyper-parameters are per lane, (B,) tensors, broadcast from scalars, sequences
  or tensors with :func:`core.hyper.lane_tensor` when :meth:`DiscreteOptimizer.run` sees B.
* ``g_k = grad f(theta_{k-1})`` for k = 1, 2, ...; ``theta_k`` is the iterate after k updates and is
  reported at time ``t = k * alpha`` (per lane).
* All moments start at 0.

State
-----
:meth:`DiscreteOptimizer.init_state` returns a dict with

* ``"theta"``  (B, n) current iterate,
* ``"count"``  (B,) float64 per-lane update counter (drives bias corrections; optimizers such as
  Hill-ADAM may reset it per lane),
* one (B, n) tensor per name in :attr:`DiscreteOptimizer.moment_names`,
* ``"hyper"`` a dict of per-lane hyper-parameter tensors (constant during a run; not lane-selected).

Optimizers that need more history (previous gradient or iterate for secant/Aitken methods) add
further (B, ...) tensors to the state; :meth:`run` freezes every tensor entry whose leading dimension
is B, so nothing else has to change. :meth:`step` receives the loss value at ``theta_{k-1}`` too (for
Polyak steps and Hill-ADAM).

Numerical reproducibility
-------------------------
Each update is written with the same elementwise kernels and operation order as ``torch.optim`` so
that lanes agree with a per-lane ``torch.optim`` run bitwise on CPU (see ``tests/test_discrete.py``).
Scalar quantities torch computes in Python double precision (``1 - beta``, ``lr / (1 - beta1**k)``,
``(1 - beta2**k) ** 0.5``) are computed here in float64 and then cast to the working dtype, and powers
use the libm ``pow`` (see :func:`lane_pow`) so that results do not depend on a lane's position.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from core.errors import ConfigError
from core.grid import output_indices as sample_indices
from core.hyper import LaneValue, lane_tensor
from core.threading_policy import small_batch_threads
from core.trajectory import Status, Trajectory, diverged_mask

#: how often (in steps) run() checks whether every lane has diverged (the only host sync in the loop)
EARLY_STOP_CHECK = 64


def lane_pow(base: torch.Tensor, expo: torch.Tensor) -> torch.Tensor:
    """Elementwise ``base ** expo`` for (B,) float64 tensors, equal to Python's ``float ** float``.

    On CPU the vectorised ``torch.pow`` kernel (SLEEF) may differ from libm ``pow`` in the last bit,
    and which lanes take the vectorised path depends on B. Feeding strided (non-contiguous) views
    makes the kernel use its scalar ``std::pow`` path for every element, which is what Python (and
    hence ``torch.optim``) uses for ``beta ** step``. On other devices plain ``torch.pow`` is used.
    """
    base, expo = torch.broadcast_tensors(base, expo)
    if base.device.type != "cpu":
        return torch.pow(base, expo)
    pair = torch.stack([base.reshape(-1), expo.reshape(-1)], dim=1)
    return torch.pow(pair[:, 0], pair[:, 1]).reshape(base.shape)


def col(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) -> (B, 1) in ``dtype`` (float64 values are rounded once, like torch's Python scalars)."""
    return x.to(dtype).unsqueeze(-1)


class DiscreteOptimizer:
    """A batched discrete optimizer (B lanes, per-lane hyper-parameters).

    Subclasses set the class attributes and implement :meth:`_init_moments` and :meth:`step`.
    Construct with hyper-parameters as keyword arguments (scalar, length-B sequence or (B,)
    tensor each); omitted ones take the defaults in :attr:`hyperparameters` (``None`` = required).
    """

    #: registry name
    name: ClassVar[str] = ""
    #: one-line description shown by the CLI
    description: ClassVar[str] = ""
    #: ordered mapping hyper-parameter name -> default (None: required)
    hyperparameters: ClassVar[dict[str, float | None]] = {"alpha": None}
    #: validator per hyper-parameter (``core.hyper.check_*``), called as check(value, name)
    checks: ClassVar[dict[str, Callable[[LaneValue, str], None]]] = {}
    #: names of the (B, n) moment tensors in the state, reported as Trajectory extras
    moment_names: ClassVar[tuple[str, ...]] = ()

    #: floating-point evaluation order: "spec" evaluates the SPEC §2 formulas literally
    #: (left to right, as written); "torch" replays torch.optim's kernels bit for bit.
    ARITHMETIC = ("spec", "torch")

    def __init__(self, arithmetic: str = "spec", **hyper: LaneValue) -> None:
        if arithmetic not in self.ARITHMETIC:
            raise ConfigError(f"arithmetic must be one of {', '.join(self.ARITHMETIC)}, "
                              f"got {arithmetic!r}")
        self.arithmetic = arithmetic
        unknown = [k for k in hyper if k not in self.hyperparameters]
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown hyper-parameter(s) {', '.join(unknown)} "
                f"(expected {', '.join(self.hyperparameters)})")
        values: dict[str, LaneValue] = {}
        for key, default in self.hyperparameters.items():
            val = hyper.get(key, default)
            if val is None:
                raise ConfigError(f"{self.name}: hyper-parameter {key} is required")
            check = self.checks.get(key)
            if check is not None:
                check(val, key)
            values[key] = val
        self.hyper: dict[str, LaneValue] = values

    # ------------------------------------------------------------------ state
    def lane_hyper(self, B: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Hyper-parameters as (B,) float64 tensors on ``device`` (validated at construction)."""
        return {k: lane_tensor(v, B, torch.float64, device) for k, v in self.hyper.items()}

    def _prepare_hyper(self, h64: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, Any]:
        """Derived per-lane constants used by :meth:`step` (subclasses extend). Keeps ``h64``."""
        return {"h64": h64, "dtype": dtype, "alpha": col(h64["alpha"], dtype)}

    def _init_moments(self, theta0: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: torch.zeros_like(theta0) for name in self.moment_names}

    def init_state(self, theta0: torch.Tensor) -> dict[str, Any]:
        """State for a run from ``theta0`` (B, n); see the module docstring for its entries."""
        if not isinstance(theta0, torch.Tensor) or theta0.dim() != 2:
            raise ConfigError("theta0 must be a (B, n) tensor")
        if theta0.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"theta0 must be float32 or float64, got {theta0.dtype}")
        B = theta0.shape[0]
        theta = theta0.detach().clone()
        state: dict[str, Any] = {
            "theta": theta,
            "count": torch.zeros(B, dtype=torch.float64, device=theta.device),
        }
        state.update(self._init_moments(theta))
        state["hyper"] = self._prepare_hyper(self.lane_hyper(B, theta.device), theta.dtype)
        return state

    def step(self, state: dict[str, Any], k: int, grad: torch.Tensor,
             value: torch.Tensor | None = None) -> dict[str, Any]:
        """One update of every lane; returns the new state (the input state is not modified).

        ``k`` is the 1-based global update index, ``grad`` = grad f(theta_{k-1}) (B, n) and
        ``value`` = f(theta_{k-1}) (B,) (unused by the classical methods). Per-lane bias corrections
        use ``state["count"]``, not ``k``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ run
    def run(self, landscape, theta0: torch.Tensor, steps: int, every: int = 1,
            record_moments: bool = True) -> Trajectory:
        """See :meth:`_run`; small CPU batches run with one intra-op thread."""
        if not isinstance(theta0, torch.Tensor):
            raise ConfigError("theta0 must be a (B, n) tensor")
        with small_batch_threads(theta0):
            return self._run(landscape, theta0, steps, every, record_moments)

    def _run(self, landscape, theta0: torch.Tensor, steps: int, every: int = 1,
             record_moments: bool = True) -> Trajectory:
        """Run ``steps`` updates on all lanes and record every ``every``-th iterate.

        Samples are taken at k = 0, every, 2*every, ... and always at k = steps; ``t = k * alpha``.
        Only the sampled rows are stored. A lane whose iterate becomes NaN/inf or exceeds
        :data:`core.trajectory.DIVERGENCE_BOUND` at update k_div is marked
        ``Status.DIVERGED`` with ``diverged_at = k_div * alpha``; its state is frozen at
        theta_{k_div-1} (other lanes are unaffected, bit for bit) and its samples with
        k >= k_div are NaN, so ``n_out`` counts the samples with k < k_div.
        ``stats["steps"]`` is the number of updates applied (k_div - 1 for a diverged lane).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"steps must be an integer >= 0, got {steps!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be an integer >= 1, got {every!r}")
        state = self.init_state(theta0)
        theta = state["theta"]
        B, n = theta.shape
        dtype, device = theta.dtype, theta.device
        h64 = state["hyper"]["h64"]
        alpha64 = h64["alpha"]

        ks = sample_indices(steps, every)
        row_of = {k: j for j, k in enumerate(ks)}
        T = len(ks)
        nan = float("nan")
        out_theta = torch.full((B, T, n), nan, dtype=dtype, device=device)
        out_f = torch.full((B, T), nan, dtype=dtype, device=device)
        names = self.moment_names if record_moments else ()
        out_mom = {name: torch.full((B, T, n), nan, dtype=dtype, device=device) for name in names}

        alive = ~diverged_mask(theta)
        sentinel = steps + 1
        k_div = torch.where(alive, sentinel, 0).to(device=device, dtype=torch.long)
        nan_t = torch.tensor(nan, dtype=dtype, device=device)

        def record(j: int, st: dict[str, Any], f: torch.Tensor) -> None:
            a2 = alive.unsqueeze(-1)
            out_theta[:, j] = torch.where(a2, st["theta"], nan_t)
            out_f[:, j] = torch.where(alive, f, nan_t)
            for name in names:
                out_mom[name][:, j] = torch.where(a2, st[name], nan_t)

        done = True
        for k in range(1, steps + 1):
            f, g = landscape.value_and_grad(state["theta"])
            if k - 1 in row_of:
                record(row_of[k - 1], state, f)
            new = self.step(state, k, g, f)
            bad = alive & diverged_mask(new["theta"])
            k_div = torch.where(bad, k, k_div)
            alive = alive & ~bad
            state = self._select(alive, new, state, B)
            if k % EARLY_STOP_CHECK == 0 and not bool(alive.any()):
                done = False
                break
        if done:
            f = landscape.value(state["theta"])
            record(row_of[steps], state, f)

        ks_t = torch.tensor(ks, dtype=torch.long, device=device)
        n_out = (ks_t.unsqueeze(0) < k_div.unsqueeze(1)).sum(dim=1)
        diverged = k_div <= steps
        valid = ks_t.unsqueeze(0) < k_div.unsqueeze(1)
        t = torch.where(valid, (ks_t.to(torch.float64).unsqueeze(0) * alpha64.unsqueeze(1)).to(dtype),
                        nan_t)
        diverged_at = torch.where(diverged, (k_div.to(torch.float64) * alpha64).to(dtype), nan_t)
        status = torch.where(diverged, int(Status.DIVERGED), int(Status.OK)).to(torch.long)
        steps_done = torch.where(diverged, (k_div - 1).clamp(min=0),
                                 torch.full_like(k_div, steps))
        params = {key: [float(x) for x in val.cpu().tolist()] for key, val in h64.items()}
        spec = landscape.spec() if hasattr(landscape, "spec") else repr(landscape)
        return Trajectory(
            t=t, theta=out_theta, f=out_f, status=status, diverged_at=diverged_at, n_out=n_out,
            extras=out_mom, params=params, stats={"steps": steps_done},
            meta={"model": self.name, "landscape": spec, "steps": steps, "every": every},
        )

    @staticmethod
    def _select(alive: torch.Tensor, new: dict[str, Any], old: dict[str, Any], B: int) -> dict[str, Any]:
        """Per lane: the new state where ``alive``, else the old (frozen) one."""
        out: dict[str, Any] = {}
        for key, val in new.items():
            prev = old.get(key)
            if isinstance(val, torch.Tensor) and isinstance(prev, torch.Tensor) \
                    and val.dim() >= 1 and val.shape[0] == B:
                mask = alive.reshape((B,) + (1,) * (val.dim() - 1))
                out[key] = torch.where(mask, val, prev)
            else:
                out[key] = val
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"
