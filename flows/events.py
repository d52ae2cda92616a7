"""Events of the exact-mode integrator: zero crossings located on the dense output, per lane.

An :class:`Event` watches a scalar condition g(t, y) per lane. It fires where g crosses zero in an
accepted step, in the given direction (+1: from g < 0 to g >= 0, -1: from g > 0 to g <= 0, 0: both; a
start value of exactly 0 is no side, so a lane restarted on the root does not fire again at once):

* **terminal**: the lane stops at the event time with status ``Status.EVENT``; its ``t_final`` is the
  event time and outputs after it stay NaN;
* **switching** (``handler`` given): ``handler(t, y, fired) -> y_new`` may jump the state and may change
  the flow's branch (for example a per-lane sign tensor stored on the flow, which may change its linear
  part); the lane restarts at (t_event, y_new) and the stepper recomputes what it cached
  (``made_jump``);
* **recording** (neither): the crossing is recorded and the step is kept as it was, so the lane's
  solution is bit-identical to a solve without the event.

How :func:`flows.solve.solve` uses them (the contract):

* ``condition(t, y)`` and ``handler(t, y, fired)`` receive all B lanes of the solve in their original
  order, t (B,), y (B, n, d), fired (B,) bool, whatever lanes the loop has retired meanwhile (those
  carry their final state); ``condition`` returns a (B,) tensor; the loop keeps ``handler``'s result only
  on the fired lanes, so changes to the flow must be limited to them. The loop evaluates every
  condition once per step on the step's end state (host-sync free), pauses a lane whose step crossed
  zero, and resolves the paused lanes at its next host synchronisation: each crossing is located by
  :func:`find_root` (bracketed Illinois / regula falsi with a bisection safeguard, vectorised over lanes)
  on the step's interpolant to |dt| <= max(1e-13 max(1, |t|), ``tol``). The earliest terminal or
  switching event of a step wins (ties: the first in the list); recording events up to it are recorded
  with it. Outputs in (t, t_event] come from the truncated step's interpolant (the value left of the
  event), later ones from the steps after the restart.
* Two zeros inside one step (g back on its side at the step's end) are not seen, as in every
  detector that compares the condition at step ends; where the flow can return to the event surface
  within a step (a bouncing ball restarted on the floor, with steps longer than a flight), cap the
  step with ``solve(..., max_step=...)``.

References: the scipy ``solve_ivp`` events (terminal, direction) and diffrax's ``Event``; Illinois:
M. Dowell, P. Jarratt, "A modified regula falsi method for computing the root of an equation",
BIT 11 (1971) 168-174.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Event:
    """A zero crossing of ``condition(t, y) -> (B,)`` to act on (see the module docstring).

    Args:
        condition: g(t, y) per lane.
        terminal: stop the lane at the event (status ``Status.EVENT``).
        direction: +1 rising, -1 falling, 0 both.
        handler: ``handler(t, y, fired) -> y_new`` for a switching event (not with ``terminal``).
        name: label for reports.
        tol: absolute tolerance of the event time (the floor is 1e-13 max(1, |t|)).
    """

    condition: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    terminal: bool = False
    direction: int = 0
    handler: Callable | None = None
    name: str = ""
    tol: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.condition):
            raise TypeError("Event: condition must be callable")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"Event: direction must be -1, 0 or +1, got {self.direction!r}")
        if self.terminal and self.handler is not None:
            raise ValueError("Event: a terminal event stops the lane; it takes no handler")
        if self.handler is not None and not callable(self.handler):
            raise TypeError("Event: handler must be callable")
        if not (self.tol >= 0 and math.isfinite(self.tol)):
            raise ValueError(f"Event: tol must be finite and >= 0, got {self.tol!r}")

    @property
    def acting(self) -> bool:
        """Whether the event changes the lane (terminal or switching), not only records."""
        return self.terminal or self.handler is not None


def crossings(g0: torch.Tensor, g1: torch.Tensor, directions: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero crossings between condition values g0 (start) and g1 (end), (B, E) each.

    Returns (hit, rising): ``hit`` where a crossing in the event's direction (``directions`` (E,))
    happened, ``rising`` where g0 < 0 (the crossing's direction is +1 there, -1 elsewhere)."""
    rising = (g0 < 0) & (g1 >= 0)
    falling = (g0 > 0) & (g1 <= 0)
    hit = (rising & (directions >= 0)) | (falling & (directions <= 0))
    return hit, g0 < 0


def find_root(f: Callable[[torch.Tensor], torch.Tensor], fa: torch.Tensor, fb: torch.Tensor,
              xtol: torch.Tensor, mask: torch.Tensor, max_iter: int = 200, check_every: int = 4
              ) -> torch.Tensor:
    """Bracketed root of f on [0, 1] per lane, vectorised (Illinois with a bisection safeguard).

    Args:
        f: (B,) -> (B,), evaluated for all lanes at once (values of lanes outside ``mask`` are ignored).
        fa, fb: f(0), f(1) (B,), of opposite signs (fb may be 0) on the lanes of ``mask``.
        xtol: (B,) tolerance on x.
        mask: (B,) bool, the lanes to solve.

    Returns:
        x (B,): the end of the final bracket on the far side of the root (f(x) has fb's side or is 0),
        within ``xtol`` of the crossing (or as close as the dtype resolves); 1 outside ``mask``.
        A NaN value of f counts as the far side.
    """
    a = torch.zeros_like(fa)
    b = torch.ones_like(fa)
    s0 = torch.sign(fa)
    done = ~mask
    side = torch.zeros_like(fa, dtype=torch.long)      # +1: b moved last, -1: a moved last
    w1 = torch.full_like(fa, 2.0)                       # bracket width one and two iterations ago
    w2 = torch.full_like(fa, 4.0)
    for it in range(max_iter):
        w = b - a
        mid = 0.5 * (a + b)
        c = (a * fb - b * fa) / (fb - fa)
        bisect = (w > 0.5 * w2) | ~torch.isfinite(c) | (c <= a) | (c >= b)
        c = torch.where(bisect, mid, c)
        fc = f(c)
        upd = ~done
        far = upd & ~(fc * s0 > 0)
        near = upd & (fc * s0 > 0)
        # Illinois: an end kept twice in a row has its value halved
        fa = torch.where(far & (side == 1), 0.5 * fa, fa)
        fb = torch.where(near & (side == -1), 0.5 * fb, fb)
        b, fb = torch.where(far, c, b), torch.where(far, fc, fb)
        a, fa = torch.where(near, c, a), torch.where(near, fc, fa)
        a = torch.where(upd & (fc == 0), c, a)
        side = torch.where(far, torch.ones_like(side), torch.where(near, -torch.ones_like(side), side))
        w2, w1 = torch.where(upd, w1, w2), torch.where(upd, w, w1)
        mid = 0.5 * (a + b)
        done = done | (b - a <= xtol) | (mid <= a) | (mid >= b)
        if (it + 1) % check_every == 0 and bool(done.all()):
            break
    return torch.where(mask, b, torch.ones_like(b))


class EventLog:
    """Per-lane event records, growing as events are added: time, event index, direction."""

    def __init__(self, B: int, dtype: torch.dtype, device) -> None:
        self.t = torch.full((B, 0), float("nan"), dtype=dtype, device=device)
        self.index = torch.full((B, 0), -1, dtype=torch.long, device=device)
        self.direction = torch.zeros((B, 0), dtype=torch.long, device=device)
        self.count = torch.zeros(B, dtype=torch.long, device=device)

    def add(self, lanes: torch.Tensor, t: torch.Tensor, index: torch.Tensor,
            direction: torch.Tensor) -> None:
        """One record for each of ``lanes`` (distinct lane numbers, (k,) long)."""
        if lanes.numel() == 0:
            return
        pos = self.count[lanes]
        need = int(pos.max()) + 1
        cap = self.t.shape[1]
        if need > cap:
            grow = max(need, 2 * cap, 4) - cap
            B = self.t.shape[0]
            self.t = torch.cat([self.t, self.t.new_full((B, grow), float("nan"))], 1)
            self.index = torch.cat([self.index, self.index.new_full((B, grow), -1)], 1)
            self.direction = torch.cat([self.direction, self.direction.new_zeros((B, grow))], 1)
        self.t[lanes, pos] = t
        self.index[lanes, pos] = index
        self.direction[lanes, pos] = direction
        self.count[lanes] = pos + 1

    def records(self) -> dict[str, torch.Tensor]:
        """{"t": (B, K) NaN-padded, "index": (B, K) -1-padded, "direction": (B, K) 0-padded,
        "count": (B,)}, K = the largest count."""
        K = int(self.count.max()) if self.count.numel() else 0
        return {"t": self.t[:, :K].clone(), "index": self.index[:, :K].clone(),
                "direction": self.direction[:, :K].clone(), "count": self.count.clone()}


__all__ = ["Event", "EventLog", "crossings", "find_root"]
