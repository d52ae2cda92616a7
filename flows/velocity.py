"""Flows of the form theta' = V(theta): no stiff linear part (L = 0), one component per coordinate
unless a subclass declares more, and per-lane hyper-parameters taken from the declaration.

:class:`VelocityFlow` is the shared skeleton of the limit and modified-equation flows (the Newton
flows of :mod:`flows.newton`, the Polyak flow of :mod:`flows.polyak_flow`, the flows of
:mod:`flows.modified`): the constructor checks every declared hyper-parameter with its own check
and stores it as a (B,) lane tensor under its name; ``subset`` rebuilds the flow on a subset of
lanes (and of the landscape's per-lane parameters). Subclasses give :meth:`velocity`.
"""
from __future__ import annotations

import torch

from core.hyper import lane_tensor
from flows.semilinear import SemilinearFlow
from landscapes.base import Landscape


class VelocityFlow(SemilinearFlow):
    """theta' = V(theta) per lane (L = 0). The constructor takes every declared hyper-parameter
    per lane, checked by its declaration (:class:`core.method.HyperParam`)."""

    components = ("theta",)
    schemes = ("exact",)
    records = ()

    def __init__(self, landscape: Landscape, *, n_lanes: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu", **hyper):
        super().__init__()
        unknown = sorted(set(hyper) - {p.name for p in self.hyper})
        if unknown:
            raise TypeError(f"{self.name}: unexpected hyper-parameter(s) {unknown}")
        self.landscape = landscape
        self._B = n_lanes
        for p in self.hyper:
            val = hyper.get(p.name, p.default)
            if val is None:
                raise TypeError(f"{self.name}: missing hyper-parameter {p.name!r}")
            p.validate(val)
            setattr(self, p.name, lane_tensor(val, n_lanes, dtype, device))
        self._L = self.alpha.new_zeros(n_lanes, self.d, self.d)

    @property
    def n_lanes(self) -> int:
        return self._B

    def linear_operator(self) -> torch.Tensor:
        return self._L

    def col(self, name: str) -> torch.Tensor:
        """(B, 1): the per-lane hyper-parameter ``name``, broadcast over coordinates."""
        return getattr(self, name)[:, None]

    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        return theta0[..., None].clone()

    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.velocity(y[..., 0])[..., None]

    def velocity(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n) theta'."""
        raise NotImplementedError

    def subset(self, idx: torch.Tensor) -> "VelocityFlow":
        sub = getattr(self.landscape, "subset", None)
        land = sub(idx) if callable(sub) else self.landscape
        return type(self)(land, n_lanes=int(idx.numel()), dtype=self.alpha.dtype,
                          device=self.alpha.device,
                          **{p.name: getattr(self, p.name)[idx] for p in self.hyper})
