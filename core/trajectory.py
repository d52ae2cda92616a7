"""The trajectory container shared by discrete optimizers and flows.

A :class:`Trajectory` holds B lanes (independent runs) sampled at output indices. Lanes may have
different step sizes alpha and horizons, so the arrays are padded: lane ``b`` has ``n_out[b]`` valid
samples; entries past it are NaN. Times are per lane, ``t[b, j] = k[b, j] * alpha[b]`` for discrete
methods (k = number of updates done) and the requested output times for flows.

Contract (what producers fill, what analysis reads):

* ``t``      (B, T)     output times (float)
* ``theta``  (B, T, n)  parameters
* ``f``      (B, T)     objective values
* ``extras`` dict name -> (B, T, n) tensors: moments ``m``, ``v``, velocity ``u`` ... as available
* ``status`` (B,) int   :class:`Status` codes
* ``diverged_at`` (B,) float time of divergence (NaN when the lane did not diverge)
* ``n_out`` (B,) int    number of valid samples per lane
* ``params`` dict name -> list (len B) of per-lane parameters (alpha, beta1, ...), plain Python values
* ``stats``  dict name -> (B,) tensors of per-lane counters (nfev, accepted, rejected, ...)
* ``meta``   dict of run-wide information (model name, landscape spec, ...)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

#: A lane whose |theta| exceeds this bound (or becomes NaN/inf) is marked diverged.
DIVERGENCE_BOUND = 1e12


class Status:
    """Per-lane status codes, open to new ones.

    The built-in codes are plain ints (``Status.OK == 0``, ``Status.DIVERGED``, ...), usable in
    ``torch.where``/``torch.full``. A model or integrator that needs another outcome registers it
    once with :meth:`register` (for example ``EVENT = Status.register("event", "a terminal event
    stopped the lane")``); :meth:`label` turns any code into its name for JSON and tables.
    """

    OK = 0
    DIVERGED = 1          # NaN, inf or |theta| > DIVERGENCE_BOUND
    STEP_UNDERFLOW = 2    # adaptive step size fell below its floor
    MAX_STEPS = 3         # step budget exhausted before the horizon
    EVENT = 4             # a terminal event stopped the lane before the horizon

    _labels: dict[int, str] = {0: "ok", 1: "diverged", 2: "step_underflow", 3: "max_steps",
                               4: "event"}
    _help: dict[int, str] = {
        0: "reached the horizon", 1: "NaN, inf or |theta| > DIVERGENCE_BOUND",
        2: "adaptive step size fell below its floor", 3: "step budget exhausted",
        4: "a terminal event stopped the lane"}

    @classmethod
    def register(cls, label: str, help: str = "") -> int:
        """The code of ``label``, registering it (next free code) when new; idempotent."""
        if not label or not label.replace("_", "").isalnum() or label != label.lower():
            raise ValueError(f"status label must be lower_snake_case, got {label!r}")
        for code, name in cls._labels.items():
            if name == label:
                return code
        code = max(cls._labels) + 1
        cls._labels[code] = label
        cls._help[code] = help
        return code

    @classmethod
    def label(cls, code: int) -> str:
        """The name of ``code`` (``"ok"``, ``"diverged"``, ...); ``"status_<code>"`` if unknown."""
        return cls._labels.get(int(code), f"status_{int(code)}")

    @classmethod
    def code(cls, label: str) -> int:
        for code, name in cls._labels.items():
            if name == label:
                return code
        raise KeyError(f"unknown status {label!r}")

    @classmethod
    def labels(cls) -> dict[int, str]:
        return dict(cls._labels)


def diverged_mask(theta: torch.Tensor) -> torch.Tensor:
    """(B, n) -> (B,) bool: NaN, inf or any |theta_i| > DIVERGENCE_BOUND."""
    bad = ~torch.isfinite(theta) | (theta.abs() > DIVERGENCE_BOUND)
    return bad.any(dim=-1)


@dataclass
class Trajectory:
    t: torch.Tensor
    theta: torch.Tensor
    f: torch.Tensor
    status: torch.Tensor
    diverged_at: torch.Tensor
    n_out: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    params: dict[str, list[Any]] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: per-lane event records of a run with events (empty otherwise): "t" (B, K) float NaN-padded,
    #: "index" (B, K) long -1-padded, "direction" (B, K) long (+1/-1, 0-padded), "count" (B,) long
    events: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_lanes(self) -> int:
        return int(self.theta.shape[0])

    @property
    def dim(self) -> int:
        return int(self.theta.shape[-1])

    def final_theta(self) -> torch.Tensor:
        """(B, n) last valid sample of each lane (the state at divergence for diverged lanes)."""
        idx = (self.n_out - 1).clamp(min=0).to(self.theta.device)
        return self.theta[torch.arange(self.n_lanes, device=self.theta.device), idx]

    def final_f(self) -> torch.Tensor:
        idx = (self.n_out - 1).clamp(min=0).to(self.f.device)
        return self.f[torch.arange(self.n_lanes, device=self.f.device), idx]

    def lane(self, b: int) -> dict[str, Any]:
        """Lane ``b`` as plain Python lists (valid samples only)."""
        k = int(self.n_out[b])
        out: dict[str, Any] = {
            "t": self.t[b, :k].tolist(),
            "theta": self.theta[b, :k].tolist(),
            "f": self.f[b, :k].tolist(),
        }
        for name, arr in self.extras.items():
            out[name] = arr[b, :k].tolist()
        return out

    def status_label(self, b: int) -> str:
        return Status.label(int(self.status[b]))

    def diverged_time(self, b: int) -> float | None:
        x = float(self.diverged_at[b])
        return None if math.isnan(x) else x

    def to(self, device: str | torch.device) -> "Trajectory":
        mv = lambda x: x.to(device)  # noqa: E731
        return Trajectory(
            t=mv(self.t), theta=mv(self.theta), f=mv(self.f), status=mv(self.status),
            diverged_at=mv(self.diverged_at), n_out=mv(self.n_out),
            extras={k: mv(v) for k, v in self.extras.items()}, params=dict(self.params),
            stats={k: mv(v) for k, v in self.stats.items()}, meta=dict(self.meta),
            events={k: mv(v) for k, v in self.events.items()},
        )

    @staticmethod
    def concat(trajs: list["Trajectory"]) -> "Trajectory":
        """Stack lanes of several trajectories (padding the time axis with NaN)."""
        T = max(tr.t.shape[1] for tr in trajs)

        def pad(x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] == T:
                return x
            shape = list(x.shape)
            shape[1] = T - x.shape[1]
            return torch.cat([x, torch.full(shape, float("nan"), dtype=x.dtype, device=x.device)], 1)

        extras_keys = set().union(*(tr.extras.keys() for tr in trajs))
        extras = {}
        for key in extras_keys:
            parts = []
            for tr in trajs:
                if key in tr.extras:
                    parts.append(pad(tr.extras[key]))
                else:
                    parts.append(torch.full((tr.n_lanes, T, tr.dim), float("nan"),
                                            dtype=tr.theta.dtype, device=tr.theta.device))
            extras[key] = torch.cat(parts, 0)
        params: dict[str, list[Any]] = {}
        keys = []
        for tr in trajs:
            keys += [k for k in tr.params if k not in keys]
        for key in keys:
            params[key] = sum((list(tr.params.get(key, [None] * tr.n_lanes)) for tr in trajs), [])
        stat_keys = set().union(*(tr.stats.keys() for tr in trajs))
        stats = {}
        for key in stat_keys:
            stats[key] = torch.cat([
                tr.stats[key] if key in tr.stats else torch.zeros(tr.n_lanes, dtype=torch.long)
                for tr in trajs])
        events: dict[str, torch.Tensor] = {}
        if any(tr.events for tr in trajs):
            K = max(tr.events["t"].shape[1] if tr.events else 0 for tr in trajs)
            fills = {"t": float("nan"), "index": -1, "direction": 0}
            ref = next(tr.events for tr in trajs if tr.events)
            for key, fill in fills.items():
                parts = []
                for tr in trajs:
                    x = tr.events.get(key)
                    if x is None:
                        x = torch.full((tr.n_lanes, 0), fill, dtype=ref[key].dtype, device=ref[key].device)
                    parts.append(torch.cat([x, torch.full((x.shape[0], K - x.shape[1]), fill, dtype=x.dtype,
                                                          device=x.device)], 1))
                events[key] = torch.cat(parts, 0)
            events["count"] = torch.cat([
                tr.events["count"] if tr.events else torch.zeros(tr.n_lanes, dtype=torch.long,
                                                                  device=ref["count"].device)
                for tr in trajs])
        return Trajectory(
            t=torch.cat([pad(tr.t) for tr in trajs]),
            theta=torch.cat([pad(tr.theta) for tr in trajs]),
            f=torch.cat([pad(tr.f) for tr in trajs]),
            status=torch.cat([tr.status for tr in trajs]),
            diverged_at=torch.cat([tr.diverged_at for tr in trajs]),
            n_out=torch.cat([tr.n_out for tr in trajs]),
            extras=extras, params=params, stats=stats, meta={"parts": [tr.meta for tr in trajs]},
            events=events,
        )
