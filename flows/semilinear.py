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

from core.method import ALPHA, HyperParam
from core.method import defaults as hyper_defaults


def apply_linear(L: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, d, d) x (B, n, d) -> (B, n, d): the per-coordinate matrix product L y."""
    return torch.matmul(y, L.transpose(-1, -2))


def linear_kron(L: torch.Tensor, n: int) -> torch.Tensor:
    """(B, d, d) -> (B, n d, n d): L acting on every coordinate (block diagonal, row-major layout)."""
    B, d, _ = L.shape
    eye = torch.eye(n, dtype=L.dtype, device=L.device)
    return torch.einsum("ik,brc->birkc", eye, L).reshape(B, n * d, n * d)


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

    # -- the method descriptor (core.method): declared once, everything else is generated --------
    #: hyper-parameters (:class:`core.method.HyperParam`), keyword arguments of the constructor
    hyper: tuple[HyperParam, ...] = (ALPHA,)
    #: derived: name -> default (None = required)
    hyperparameters: dict[str, float | None] = {"alpha": None}
    #: solution schemes this flow supports ("exact" always; "paper", "paper2024" where they apply)
    schemes: tuple[str, ...] = ("exact",)
    #: what a run reports besides theta (keys of :meth:`outputs`)
    records: tuple[str, ...] = ()
    #: records that may change sign although they should not (min and a flag are reported)
    signed_records: tuple[str, ...] = ()
    #: registry name of the discrete optimizer this flow models (None: none)
    method: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.hyperparameters = hyper_defaults(cls.hyper)

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

    #: components left out of the integrator's error control (see :meth:`error_weights`)
    uncontrolled: tuple[str, ...] = ()

    def error_weights(self) -> torch.Tensor:
        """(d,) weights of the components in the local-error norm: 1 = controlled, 0 = not.

        Fast derivative states that relax on the alpha time scale onto values set by the slow
        states (u = theta', m', v' of the second-order model) can be left out: their local errors
        are damped within O(alpha) and reach theta, m, v only through integration, where they are
        controlled. Listed in :attr:`uncontrolled`.
        """
        return torch.tensor([0.0 if c in self.uncontrolled else 1.0 for c in self.components],
                            dtype=torch.float64)

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Jacobian of the full right-hand side F = L y + N(t, y) per lane.

        Returns ``(J_y, J_t)``: J_y (B, D, D) = dF/dy and J_t (B, D) = dF/dt with the state flattened
        row-major, D = n d (component c of coordinate i at index i d + c). Used by the exponential
        Rosenbrock integrator (:mod:`flows.exprb`). This default differentiates ``nonlinear`` by
        reverse-mode autograd (D + 1 backward passes); flows override it with closed forms.
        """
        B, n, d = y.shape
        D = n * d
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            yy = y.detach().clone().requires_grad_(True)
            Nv = self.nonlinear(tt, yy).reshape(B, D)
            rows, trow = [], []
            for k in range(D):
                gy, gt = torch.autograd.grad(Nv[:, k].sum(), (yy, tt), retain_graph=True,
                                             allow_unused=True)
                rows.append(torch.zeros_like(yy).reshape(B, D) if gy is None else gy.reshape(B, D))
                trow.append(torch.zeros_like(tt) if gt is None else gt)
        Jy = torch.stack(rows, dim=1) + linear_kron(self.linear_operator(), n)
        return Jy.detach(), torch.stack(trow, dim=1).detach()

    def subset(self, idx: torch.Tensor) -> "SemilinearFlow":
        """The same flow restricted to lanes ``idx`` (used to retire finished lanes)."""
        raise NotImplementedError

    def events(self) -> list:
        """The events the model itself needs (:class:`flows.events.Event` list): a switched flow's
        switching events (the gated jump flow's gates). The runner passes them to the exact
        integrator; default none. Models with events run on the torch engine."""
        return []

    def lane_time(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B = y.shape[0]
        if t.dim() == 0:
            return t.expand(B)
        return t

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        return apply_linear(self.linear_operator(), y) + self.nonlinear(self.lane_time(t, y), y)
