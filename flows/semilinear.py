"""The contract between continuous models (flows) and the integrators.

Every flow in adamflow is a *semilinear, per-coordinate* system

    dy/dt = L y + N(t, y),        y of shape (B, n, d)

* B lanes (independent runs), n coordinates of theta, d components per coordinate (for example
  (theta, m, v) for the first-order Adam flow, (theta, u, m, m', v, v') for the second-order one).
* L is a constant (B, d, d) matrix per lane, the same for every coordinate: it holds the stiff linear
  part (friction 2/alpha, memory roots ~ 1/alpha). ``L y`` means ``einsum('bij,bnj->bni', L, y)``.
* N(t, y) is the nonlinear remainder (gradients, the Adam direction, bias factors). ``t`` is a (B,)
  tensor of per-lane times: lanes advance with their own step sizes.

Integrators see only this interface (never a model name): exponential integrators use L exactly and
treat N explicitly; explicit solvers (torchdiffeq) call ``forward(t, y) = L y + N(t, y)``.
"""
from __future__ import annotations

import abc

import torch


def apply_linear(L: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, d, d) x (B, n, d) -> (B, n, d): the per-coordinate matrix product L y."""
    return torch.einsum("bij,bnj->bni", L, y)


class SemilinearFlow(torch.nn.Module, abc.ABC):
    """Base class of all flows. Subclasses implement the abstract members below.

    ``forward(t, y)`` works with ``torchdiffeq.odeint`` directly: ``t`` may be a scalar tensor (shared
    time) or a (B,) tensor, ``y`` is (B, n, d).
    """

    #: registry name (``adam-flow1`` ...)
    name: str = ""
    #: one-line description for ``adamflow models``
    description: str = ""
    #: names of the d per-coordinate components, in state order (must include "theta")
    components: tuple[str, ...] = ("theta",)

    @property
    def d(self) -> int:
        return len(self.components)

    def index(self, component: str) -> int:
        return self.components.index(component)

    @property
    @abc.abstractmethod
    def n_lanes(self) -> int:
        """B."""

    @abc.abstractmethod
    def linear_operator(self) -> torch.Tensor:
        """(B, d, d) constant stiff linear part L."""

    @abc.abstractmethod
    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """N(t, y): (B,) x (B, n, d) -> (B, n, d)."""

    @abc.abstractmethod
    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        """(B, n) -> y0 (B, n, d)."""

    def theta(self, y: torch.Tensor) -> torch.Tensor:
        """(..., n, d) -> (..., n): the parameters."""
        return y[..., self.index("theta")]

    def outputs(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named per-coordinate quantities to report, each (..., n). Default: every component."""
        return {c: y[..., i] for i, c in enumerate(self.components)}

    def subset(self, idx: torch.Tensor) -> "SemilinearFlow":
        """The same flow restricted to lanes ``idx`` (used to retire finished lanes)."""
        raise NotImplementedError

    def lane_time(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B = y.shape[0]
        if t.dim() == 0:
            return t.expand(B)
        return t

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        return apply_linear(self.linear_operator(), y) + self.nonlinear(self.lane_time(t, y), y)
