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
from core.method import ALPHA, HyperParam
from core.method import checks as method_checks
from core.method import defaults as method_defaults
from core.oracle import Oracle
from core.threading_policy import small_batch_threads
from core.trajectory import Status, Trajectory, diverged_mask
from core.validation import MAX_STEPS, check_memory, n_samples
from discrete import fast
from discrete.powers import lane_pow  # noqa: F401  (re-exported: discrete.classic uses it)

#: how often (in steps) run() checks whether every lane has diverged (the only host sync in the loop)
EARLY_STOP_CHECK = 64


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
    #: the hyper-parameters, declared once (:class:`core.method.HyperParam`: default, check, CLI
    #: flag, help); ``hyperparameters`` and ``checks`` are derived from it
    hyper: ClassVar[tuple[HyperParam, ...]] = (ALPHA,)
    #: derived: ordered mapping hyper-parameter name -> default (None: required)
    hyperparameters: ClassVar[dict[str, float | None]] = {"alpha": None}
    #: derived: validator per hyper-parameter, called as check(value, name)
    checks: ClassVar[dict[str, Callable[[LaneValue, str], None]]] = {}
    #: family code of the compiled update (:mod:`discrete.fast`); None: torch engine only
    compiled_code: ClassVar[int | None] = None
    #: names of the (B, n) moment tensors in the state, reported as Trajectory extras
    moment_names: ClassVar[tuple[str, ...]] = ()
    #: derived: what a run records besides theta and f (= moment_names)
    records: ClassVar[tuple[str, ...]] = ()
    signed_records: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.hyperparameters = method_defaults(cls.hyper)
        cls.checks = method_checks(cls.hyper)
        cls.records = tuple(cls.moment_names)

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
        self.values: dict[str, LaneValue] = values

    # ------------------------------------------------------------------ state
    def lane_hyper(self, B: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Hyper-parameters as (B,) float64 tensors on ``device`` (validated at construction)."""
        return {k: lane_tensor(v, B, torch.float64, device) for k, v in self.values.items()}

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
             value: torch.Tensor | None = None, oracle: Oracle | None = None) -> dict[str, Any]:
        """One update of every lane; returns the new state (the input state is not modified).

        ``k`` is the 1-based global update index, ``grad`` = grad f(theta_{k-1}) (B, n) and
        ``value`` = f(theta_{k-1}) (B,) (unused by the classical methods). ``oracle``
        (:class:`core.oracle.Oracle`) gives the loss, gradient and HVP at any other point, for
        closure-style methods (line searches, secant jumps, Newton-type steps); its evaluations are
        counted in the run's stats. Per-lane bias corrections use ``state["count"]``, not ``k``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ run
    def run(self, landscape, theta0: torch.Tensor, steps, every: int = 1,
            record_moments: bool = True, engine: str = "torch") -> Trajectory:
        """See :meth:`_run`; small CPU batches run with one intra-op thread.

        ``engine="compiled"`` runs the same updates in one compiled kernel
        (:mod:`discrete.fast`; :func:`discrete.fast.compiled_support` says where it applies)."""
        if not isinstance(theta0, torch.Tensor):
            raise ConfigError("theta0 must be a (B, n) tensor")
        if engine == "compiled":
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ConfigError(f"every must be an integer >= 1, got {every!r}")
            if theta0.dim() != 2:
                raise ConfigError("theta0 must be a (B, n) tensor")
            why = fast.compiled_support(self, landscape, theta0.dtype, theta0.device)
            if why is not None:
                raise ConfigError(f"the compiled engine cannot run this: {why}")
            return fast.run_compiled(self, landscape, theta0, self._lane_steps(steps, theta0.shape[0]),
                                     every, record_moments)
        if engine != "torch":
            raise ConfigError(f"engine must be 'torch' or 'compiled', got {engine!r}")
        with small_batch_threads(theta0):
            return self._run(landscape, theta0, steps, every, record_moments)

    @staticmethod
    def _lane_steps(steps, B: int) -> list[int]:
        vals = steps.tolist() if isinstance(steps, torch.Tensor) else steps
        vals = [vals] * B if isinstance(vals, int) and not isinstance(vals, bool) else list(vals)
        if len(vals) != B:
            raise ConfigError(f"steps has {len(vals)} values for {B} lanes")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"steps must be an integer >= 0, got {v!r}")
            if v > MAX_STEPS:
                raise ConfigError(f"steps must be at most {MAX_STEPS:.0e}, got {v}")
        return vals

    def _run(self, landscape, theta0: torch.Tensor, steps, every: int = 1,
             record_moments: bool = True) -> Trajectory:
        """Run ``steps`` updates on all lanes and record every ``every``-th iterate.

        ``steps`` is one count for every lane or one per lane (K_b): lane b stops after K_b updates
        (its state is frozen; the other lanes go on bit for bit as if alone). Lane b is sampled at
        k = 0, every, 2*every, ... and always at k = K_b; ``t = k * alpha``; rows past a lane's last
        sample are NaN. Only the sampled rows are stored. A lane whose iterate becomes NaN/inf or
        exceeds :data:`core.trajectory.DIVERGENCE_BOUND` at update k_div is marked
        ``Status.DIVERGED`` with ``diverged_at = k_div * alpha``; its state is frozen at
        theta_{k_div-1} (other lanes are unaffected, bit for bit) and its samples with
        k >= k_div are NaN, so ``n_out`` counts the samples with k < k_div.
        ``stats["steps"]`` is the number of updates applied (k_div - 1 for a diverged lane);
        ``stats["oracle_value"]``, ``["oracle_grad"]``, ``["oracle_hvp"]`` count the evaluations the
        method made (per lane: batched calls made while the lane was running).
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be an integer >= 1, got {every!r}")
        if not isinstance(theta0, torch.Tensor) or theta0.dim() != 2:
            raise ConfigError("theta0 must be a (B, n) tensor")
        Ks = self._lane_steps(steps, theta0.shape[0])
        # the recorded rows (theta, f, moments) before the index lists are built
        B0, n0 = theta0.shape
        rows = max((n_samples(K, every) for K in Ks), default=1)
        # 8 bytes per recorded value and row index, ~48 per entry of the Python index lists
        check_memory(B0 * rows * (48.0 + 8.0 * (2 + n0 * (1 + len(self.moment_names)))),
                     f"{self.name} over {B0} lanes of {rows} recorded samples")
        state = self.init_state(theta0)
        theta = state["theta"]
        B, n = theta.shape
        dtype, device = theta.dtype, theta.device
        h64 = state["hyper"]["h64"]
        alpha64 = h64["alpha"]
        K_max = max(Ks) if Ks else 0
        ends = set(Ks)                     # the steps after which some lane stops
        uniform = len(ends) <= 1

        lane_ks = [sample_indices(K, every) for K in Ks]
        T = max((len(r) for r in lane_ks), default=1)
        # recording plan: k -> (lanes, rows); one shared column when every lane samples k at row j
        plan: dict[int, tuple[torch.Tensor | None, torch.Tensor | int]] = {}
        if uniform:
            for j, k in enumerate(sample_indices(K_max, every)):
                plan[k] = (None, j)
        else:
            at: dict[int, list[tuple[int, int]]] = {}
            for b, r in enumerate(lane_ks):
                for j, k in enumerate(r):
                    at.setdefault(k, []).append((b, j))
            for k, pairs in at.items():
                lanes = torch.tensor([b for b, _ in pairs], dtype=torch.long, device=device)
                rows = torch.tensor([j for _, j in pairs], dtype=torch.long, device=device)
                if len(pairs) == B and bool((rows == rows[0]).all()):
                    plan[k] = (None, int(rows[0]))
                else:
                    plan[k] = (lanes, rows)
        nan = float("nan")
        out_theta = torch.full((B, T, n), nan, dtype=dtype, device=device)
        out_f = torch.full((B, T), nan, dtype=dtype, device=device)
        names = self.moment_names if record_moments else ()
        out_mom = {name: torch.full((B, T, n), nan, dtype=dtype, device=device) for name in names}

        alive = ~diverged_mask(theta)
        Kt = torch.tensor(Ks, dtype=torch.long, device=device)
        k_div = torch.where(alive, Kt + 1, 0).to(device=device, dtype=torch.long)
        nan_t = torch.tensor(nan, dtype=dtype, device=device)
        oracle = Oracle(landscape)
        extra = {kind: torch.zeros(B, dtype=torch.long, device=device) for kind in Oracle.KINDS}

        def record(k: int, st: dict[str, Any], f: torch.Tensor) -> None:
            lanes, j = plan[k]
            if lanes is None:
                a2 = alive.unsqueeze(-1)
                out_theta[:, j] = torch.where(a2, st["theta"], nan_t)
                out_f[:, j] = torch.where(alive, f, nan_t)
                for name in names:
                    out_mom[name][:, j] = torch.where(a2, st[name], nan_t)
                return
            al = alive[lanes]
            a2 = al.unsqueeze(-1)
            out_theta[lanes, j] = torch.where(a2, st["theta"][lanes], nan_t)
            out_f[lanes, j] = torch.where(al, f[lanes], nan_t)
            for name in names:
                out_mom[name][lanes, j] = torch.where(a2, st[name][lanes], nan_t)

        done = True
        for k in range(1, K_max + 1):
            f, g = oracle.value_and_grad(state["theta"])
            before = dict(oracle.counts)
            if k - 1 in plan:
                # a lane's last sample (k - 1 = K_b < K_max) takes f from `value`, as at the end
                record(k - 1, state, f if uniform or k - 1 not in ends else
                       torch.where(Kt == k - 1, landscape.value(state["theta"]), f))
            new = self.step(state, k, g, f, oracle)
            running = alive if uniform else alive & (Kt >= k)
            for kind in Oracle.KINDS:       # evaluations the step made beyond g_k and f_k
                if oracle.counts[kind] != before[kind]:
                    extra[kind] += running.long() * (oracle.counts[kind] - before[kind])
            bad = running & diverged_mask(new["theta"])
            k_div = torch.where(bad, k, k_div)
            alive = alive & ~bad
            state = self._select(running & ~bad, new, state, B)
            if k % EARLY_STOP_CHECK == 0 and not bool((alive & (Kt >= k)).any()):
                done = False      # every lane that still had steps to do has diverged
                break
        if done and K_max in plan:
            f = landscape.value(state["theta"])
            record(K_max, state, f)

        k_rows = torch.full((B, T), -1, dtype=torch.long)
        for b, r in enumerate(lane_ks):
            k_rows[b, :len(r)] = torch.tensor(r, dtype=torch.long)
        k_rows = k_rows.to(device)
        valid = (k_rows >= 0) & (k_rows < k_div.unsqueeze(1))
        n_out = valid.sum(dim=1)
        diverged = k_div <= Kt
        t = torch.where(valid, (k_rows.to(torch.float64) * alpha64.unsqueeze(1)).to(dtype), nan_t)
        diverged_at = torch.where(diverged, (k_div.to(torch.float64) * alpha64).to(dtype), nan_t)
        status = torch.where(diverged, Status.DIVERGED, Status.OK).to(torch.long)
        steps_done = torch.where(diverged, (k_div - 1).clamp(min=0), Kt)
        params = {key: [float(x) for x in val.cpu().tolist()] for key, val in h64.items()}
        spec = landscape.spec() if hasattr(landscape, "spec") else repr(landscape)
        stats = {"steps": steps_done}
        # g_k and f_k once per attempted update (the diverging one included), plus the extras
        attempted = torch.where(diverged, k_div, Kt)
        stats["oracle_value"] = attempted + extra["value"]
        stats["oracle_grad"] = attempted + extra["grad"]
        stats["oracle_hvp"] = extra["hvp"]
        return Trajectory(
            t=t, theta=out_theta, f=out_f, status=status, diverged_at=diverged_at, n_out=n_out,
            extras=out_mom, params=params, stats=stats,
            meta={"model": self.name, "landscape": spec, "steps": K_max if uniform else Ks,
                  "every": every},
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
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({args})"
