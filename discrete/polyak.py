"""Polyak root step (SPEC §2; seeds/polyak_root_step.md): a Newton root-finding step on f - f*.

Update, per block B of the chosen *scope* (g = grad f(theta_{k-1}), f = f(theta_{k-1}))::

    s_B     = (f - f_target)_+ / ||g_B||^2
    theta_B <- theta_B - lr s_B g_B

With ``scope = "global"``, ``lr = 1`` and ``f_target = 0`` this is the seed's rule
p -= (L / ||g||^2) g (SPEC §2: theta <- theta - lr (f - f_target)/||g||^2 g): the Newton step of the
root problem f(theta) = f_target along the gradient, which on f = (x - a)^2 gives
x_n = a + (x_0 - a)/2^n. The linear model of f predicts f_target after a global step with lr = 1.

Scopes (which coordinates share one scalar s; numeric codes per lane, names accepted)
-----------------------------------------------------------------------------------
* ``global`` (0): one block, every coordinate (the seed's rule).
* ``tensor`` (1): one block per parameter tensor (the seed's fix 1, "per-parameter scaling").
* ``layer`` (2): one block per layer (the seed's fix 2).
* ``element`` (3): every coordinate its own block: s_i = (f - f*)/g_i^2, the step (f - f*)/g_i is
  the per-coordinate Newton root step. Each block's step alone zeroes the linear model of f - f*,
  so m blocks stepping together overshoot it m times (linear model f - m (f - f*)); the same holds
  for tensor and layer scopes with m blocks. ``lr = 1/m`` is the step the linear model calls
  consistent. This is measured, not corrected (:mod:`analysis.polyak_study`): a coordinate close to
  its own minimizer has g_i -> 0 while f - f* is held up by the others, so its step (f - f*)/g_i
  grows without bound; the element scope is unstable on every test problem at lr = 1 and throws
  converged runs away again at smaller lr (tensor scopes of scalar tensors are the same thing).

What a tensor and a layer are
-----------------------------
* :class:`PolyakStep` (``torch.optim``): a *tensor* is one parameter tensor; a *layer* is one
  **param group** (:func:`layer_groups` builds one group per module that owns parameters directly,
  e.g. the weight and bias of each ``nn.Linear``); *global* pools every parameter of every group
  whose scope is ``global``: s = (f - f*_G) / sum_p ||g_p||^2 over the pool, each group G applying
  its own ``lr`` and ``f_target`` (normally all groups share them). Parameters without a gradient
  take no part.
* :class:`PolyakLanes` (lanes, registered as ``polyak``): theta (B, n) is the concatenation of the
  tensors of the landscape's declared partition, ``landscape.partition()`` ->
  ``((layer, ((tensor, size), ...)), ...)`` in theta order (``linreg``: layer ``linear`` = tensors
  w, b; ``mlp``: layer ``hidden`` = w, b and ``output`` = v, c; :mod:`landscapes.models`). A
  landscape without ``partition`` is one layer holding one tensor, the whole vector: there tensor =
  layer = global. The constructor argument ``partition`` overrides the landscape's (e.g. x and y of
  a quadratic as two tensors).

Accumulation order (so that lanes and the torch.optim class agree): ||g_p||^2 = sum(g_p * g_p) per
tensor, a layer's squared norm is the left-to-right sum of its tensors', the global one the
left-to-right sum over all tensors in order. With the same gradients the two classes then agree bit
for bit on CPU for every scope (tests/test_polyak.py, the mlp as four tensors in two groups, float32
and float64); a different reduction kernel (another device) may sum a tensor in another order and
agree to rounding.

Guards (never NaN; where a guard fires the block takes no step and records scale 0)
----------------------------------------------------------------------------------
* **below target**: the excess is clamped, (f - f*)_+; where f <= f_target the iterate rests (a
  run that undershoots its target stops there; pick f_target at or below the infimum).
* **flat block**: where ||g_B||^2 <= ``eps`` (element scope: g_i^2 <= eps) that block does not move.
  ``eps`` is absolute (units of g^2) and defaults to 0: near an attained target ||g||^2 -> 0 together
  with f - f* and the scale stays bounded (1/(4 lambda) on lambda x^2), so any positive default
  would stop converging runs early (1e-12 stops (x-3)^2 at |x - 3| = 5e-7). Where the target is not
  attained (f* below the minimum value) ||g|| -> 0 while f - f* stays positive and the step
  (f - f*)/||g|| is unbounded: set ``eps`` (or f_target) for such problems.
* **non-finite**: where lr s_B is not finite (a subnormal ||g||^2, a NaN/inf loss or gradient) the
  block does not move. A finite but enormous step is taken; a lane thrown past the divergence bound
  ends as ``Status.DIVERGED`` (lanes) and the torch class leaves the parameters where it put them.

Records and time
----------------
The lane model records ``scale`` (B, n): lr s of each coordinate's block in the update producing
the sample (0 where guarded, 0 at k = 0); theta_i moved by -scale_i g_i. t = k alpha with
alpha = lr (the torch class defaults lr = 1); the limit lr -> 0 at fixed t is ``polyak-flow``
(:mod:`flows.polyak_flow`).
``arithmetic`` is accepted for the common interface; both orders are the same kernel here.
"""
from __future__ import annotations

from typing import Any

import torch

from core.errors import ConfigError
from core.hyper import (
    LaneValue,
    check_alpha,
    check_choices,
    check_finite,
    check_nonneg,
    choice_code,
)
from core.method import ALPHA, F_TARGET, HyperParam

from .base import DiscreteOptimizer, col

#: the scopes, in the order of their numeric codes (0, 1, 2, 3) used per lane
SCOPES = ("global", "tensor", "layer", "element")
GLOBAL, TENSOR, LAYER, ELEMENT = range(4)

#: ((layer name, ((tensor name, size), ...)), ...) in theta order
Partition = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]


def scope_code(scope: str | float, name: str = "scope") -> int:
    """The code of a scope: "global" -> 0, "tensor" -> 1, "layer" -> 2, "element" -> 3 (codes pass
    through); ConfigError otherwise."""
    return choice_code(scope, SCOPES, name)


def check_scope(x: LaneValue, name: str = "scope") -> None:
    """ConfigError unless every value is a scope name or its code."""
    check_choices(x, SCOPES, name)


SCOPE = HyperParam("scope", 0.0, check_scope,
                   "Polyak scope: 0 global (one scalar), 1 per tensor, 2 per layer, 3 per element "
                   "(tensors and layers: the landscape's partition)", choices=SCOPES)
POLYAK_EPS = HyperParam("polyak_eps", 0.0, check_nonneg,
                        "Polyak flat guard: no step in a block with ||g_B||^2 <= polyak_eps "
                        "(absolute, units g^2)")


# ----------------------------------------------------------------------------- partitions
def whole_vector(n: int) -> Partition:
    """The default partition: one layer ``theta`` of one tensor ``theta`` of size n."""
    return (("theta", (("theta", int(n)),)),)


def check_partition(part, n: int) -> Partition:
    """``part`` as a :data:`Partition` whose sizes add up to n; ConfigError otherwise."""
    try:
        out = tuple((str(lname), tuple((str(tname), size) for tname, size in tensors))
                    for lname, tensors in part)
    except (TypeError, ValueError):
        raise ConfigError("partition must be ((layer, ((tensor, size), ...)), ...)") from None
    sizes = [s for _, ts in out for _, s in ts]
    if not out or any(not ts for _, ts in out) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ConfigError("partition: every layer needs tensors of integer size >= 1")
    if sum(sizes) != n:
        raise ConfigError(f"partition covers {sum(sizes)} coordinates, theta has {n}")
    return out


def landscape_partition(landscape, n: int) -> Partition:
    """The landscape's declared partition (``partition()``), else :func:`whole_vector`."""
    fn = getattr(landscape, "partition", None)
    return check_partition(fn(), n) if callable(fn) else whole_vector(n)


class Blocks:
    """A partition as coordinate slices, with the per-coordinate squared block norms of each scope
    (the accumulation order of the module docstring)."""

    def __init__(self, part: Partition) -> None:
        self.partition = part
        self.tensors: list[tuple[int, int]] = []       # (start, stop) per tensor
        self.layers: list[list[int]] = []              # tensor indices per layer
        a = 0
        for _, tensors in part:
            idx = []
            for _, size in tensors:
                self.tensors.append((a, a + size))
                idx.append(len(self.tensors) - 1)
                a += size
            self.layers.append(idx)
        self.n = a

    def tensor_norms(self, g: torch.Tensor) -> list[torch.Tensor]:
        """(B,) sum(g_p * g_p) per tensor p."""
        if len(self.tensors) == 1:
            return [(g * g).sum(dim=-1)]
        return [(g[:, a:b] * g[:, a:b]).sum(dim=-1) for a, b in self.tensors]

    @staticmethod
    def _total(parts: list[torch.Tensor]) -> torch.Tensor:
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    def sq_norms(self, g: torch.Tensor, code: int) -> torch.Tensor:
        """(B, n): the squared norm of each coordinate's block under scope ``code``."""
        B, n = g.shape
        if code == ELEMENT:
            return g * g
        t = self.tensor_norms(g)
        if code == GLOBAL:
            return self._total(t).unsqueeze(-1).expand(B, n)
        if code == TENSOR:
            return torch.cat([t[j].unsqueeze(-1).expand(B, b - a)
                              for j, (a, b) in enumerate(self.tensors)], dim=-1)
        cols = []
        for idx in self.layers:
            size = sum(self.tensors[j][1] - self.tensors[j][0] for j in idx)
            cols.append(self._total([t[j] for j in idx]).unsqueeze(-1).expand(B, size))
        return torch.cat(cols, dim=-1)

    def ratio(self, g: torch.Tensor, first: int = 0, second: int = 1, by: str = "tensor"
              ) -> torch.Tensor:
        """(B,) ||g_first|| / ||g_second|| over tensors (``by="tensor"``) or layers."""
        t = self.tensor_norms(g)
        if by == "layer":
            t = [self._total([t[j] for j in idx]) for idx in self.layers]
        return torch.sqrt(t[first]) / torch.sqrt(t[second])


# ----------------------------------------------------------------------------- per-block math
def excess(f: torch.Tensor, f_target) -> torch.Tensor:
    """(f - f_target)_+ (NaN stays NaN: the finiteness guard of :func:`polyak_step` takes it)."""
    return torch.clamp(f - f_target, min=0)


def polyak_step(g: torch.Tensor, exc: torch.Tensor, sq_norm: torch.Tensor, lr, eps
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta, scale) with ``theta - delta`` the update: scale = lr * (exc / sq_norm) and
    delta = scale * g where sq_norm > eps, sq_norm and scale are finite, else scale = delta = 0.

    ``exc`` = (f - f*)_+ and ``sq_norm`` (the block's ||g_B||^2) broadcast against ``g``; ``lr`` and
    ``eps`` are tensors (or numbers) in g's dtype. This one kernel serves both classes."""
    ok = (sq_norm > eps) & torch.isfinite(sq_norm)
    s = exc / torch.where(ok, sq_norm, torch.ones_like(sq_norm))
    scale = lr * s
    ok = ok & torch.isfinite(scale)
    scale = torch.where(ok, scale, torch.zeros_like(scale))
    delta = torch.where(ok, scale * g, torch.zeros_like(g))
    return delta, scale


# ----------------------------------------------------------------------------- lane-batched model
class PolyakLanes(DiscreteOptimizer):
    """The Polyak root step batched over lanes (registered as ``polyak``; module docstring).

    Hyper-parameters (per lane): ``alpha`` = lr (required, as for every model; 1 is the seed's
    rule; t = k alpha), ``f_target`` = 0,
    ``scope`` (a name or its code: 0 global, 1 tensor, 2 layer, 3 element; per lane, so one batch
    compares the scopes; the CLI takes the codes) and ``polyak_eps`` = 0 (the flat guard, the
    torch class's ``eps``). ``partition`` (constructor only): a :data:`Partition` overriding the
    landscape's. Records ``scale`` (module docstring).
    """

    name = "polyak"
    description = ("Polyak root step theta <- theta - alpha (f - f_target)_+ g/||g||^2, one scalar "
                   "per scope block (seeds/polyak_root_step.md)")
    hyper = (ALPHA, F_TARGET, SCOPE, POLYAK_EPS)
    moment_names = ("scale",)

    def __init__(self, arithmetic: str = "spec", partition: Partition | None = None,
                 **hyper: LaneValue) -> None:
        sc = hyper.get("scope")
        if isinstance(sc, str) or (isinstance(sc, (list, tuple))
                                   and any(isinstance(s, str) for s in sc)):
            vals = [sc] if isinstance(sc, str) else list(sc)
            hyper["scope"] = [float(scope_code(s)) for s in vals]
        super().__init__(arithmetic, **hyper)
        self.partition = partition
        self._landscape = None

    def run(self, landscape, theta0, steps, every: int = 1, record_moments: bool = True,
            engine: str = "torch"):
        """As :meth:`DiscreteOptimizer.run`; the blocks come from ``partition`` or the landscape."""
        self._landscape = landscape
        try:
            return super().run(landscape, theta0, steps, every, record_moments, engine)
        finally:
            self._landscape = None

    def blocks(self, n: int) -> Blocks:
        """The blocks of an n-dimensional run (constructor partition, landscape's, or one)."""
        if self.partition is not None:
            return Blocks(check_partition(self.partition, n))
        if self._landscape is not None:
            return Blocks(landscape_partition(self._landscape, n))
        return Blocks(whole_vector(n))

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["f_target"] = col(h64["f_target"], dtype)
        h["eps"] = col(h64["polyak_eps"], dtype)
        codes = h64["scope"].round().long()
        h["scope"] = codes.unsqueeze(-1)
        h["scopes"] = sorted({int(c) for c in codes.cpu().tolist()})     # once, at the start
        return h

    def init_state(self, theta0):
        state = super().init_state(theta0)
        state["hyper"]["blocks"] = self.blocks(theta0.shape[-1])
        return state

    def _init_moments(self, theta0):
        return {"scale": torch.zeros_like(theta0)}

    def step(self, state, k, grad, value=None, oracle=None):
        if value is None:
            raise ConfigError("polyak: the step needs the loss value f(theta_{k-1})")
        h = state["hyper"]
        theta = state["theta"]
        exc = excess(value.to(theta.dtype).unsqueeze(-1), h["f_target"])
        delta = scale = None
        for code in h["scopes"]:
            d, s = polyak_step(grad, exc, h["blocks"].sq_norms(grad, code), h["alpha"], h["eps"])
            if delta is None:
                delta, scale = d, s
            else:
                sel = h["scope"] == code
                delta, scale = torch.where(sel, d, delta), torch.where(sel, s, scale)
        new = dict(state)
        new.update(theta=theta - delta, scale=scale, count=state["count"] + 1)
        return new


# ----------------------------------------------------------------------------- torch.optim
def layer_groups(module: torch.nn.Module, **group: Any) -> list[dict[str, Any]]:
    """One param group per submodule that owns parameters directly (``recurse=False``), in
    ``named_modules`` order, each with ``name`` (the module's) and the keys in ``group``: the
    "layers" of :class:`PolyakStep` with ``scope="layer"``."""
    out = []
    for name, mod in module.named_modules():
        ps = [p for p in mod.parameters(recurse=False) if p.requires_grad]
        if ps:
            out.append({"params": ps, "name": name or type(module).__name__, **group})
    return out


class PolyakStep(torch.optim.Optimizer):
    """The Polyak root step for any ``nn.Module`` (SPEC §2; module docstring for scopes, guards)::

        theta_B <- theta_B - lr (f - f_target)_+ / ||g_B||^2 g_B

    Args:
        params: parameters or param groups (every key below may be set per group; a group is the
            block of ``scope="layer"``, see :func:`layer_groups`).
        lr: step factor (> 0; 1 = the full root step). f_target: the target value f* (finite).
        scope: "global", "tensor", "layer" or "element" (or the codes 0..3).
        eps: flat guard, no step in a block with ||g_B||^2 <= eps (>= 0, absolute; default 0).

    :meth:`step` needs a ``closure`` that evaluates the loss (and its gradients) at the current
    parameters; the loss is taken in each parameter's dtype. After a step: :attr:`last_scale` (mean
    of lr s over the elements with a gradient; the one scalar under the global scope),
    :attr:`last_guarded_fraction` (elements whose block took no step) and :meth:`group_stats`.
    State per parameter: ``step`` (updates applied); ``state_dict`` round trips continue bit for
    bit. Hyper-parameters are validated per group (ValueError, one line).
    """

    def __init__(self, params, lr: float = 1.0, f_target: float = 0.0, scope: str = "global",
                 eps: float = 0.0) -> None:
        defaults = dict(lr=lr, f_target=f_target, scope=scope, eps=eps)
        self._validate(defaults)
        super().__init__(params, defaults)
        self._last: list[tuple[list[torch.Tensor], list[torch.Tensor], int]] | None = None

    @staticmethod
    def _validate(group: dict[str, Any]) -> None:
        check_alpha(group["lr"], "lr")
        check_finite(group["f_target"], "f_target")
        check_nonneg(group["eps"], "eps")
        scope_code(group["scope"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._validate({**self.defaults, **param_group})      # before the group is added
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["scope"] = SCOPES[scope_code(group["scope"])]

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss."""
        if closure is None:
            raise RuntimeError("PolyakStep needs a closure that returns the loss (step(closure))")
        with torch.enable_grad():
            loss = closure()
        f = torch.as_tensor(loss).detach()
        entries: list[tuple[dict, int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("PolyakStep does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError("PolyakStep does not support complex parameters")
                g = p.grad
                entries.append((group, gi, p, g, (g * g).sum()))
        pool = None                                    # global: every tensor of a global group
        layer: dict[int, torch.Tensor] = {}            # layer: per group
        for group, gi, _, _, sq in entries:
            code = scope_code(group["scope"])
            if code == GLOBAL:
                pool = sq if pool is None else pool + sq.to(pool.device)
            elif code == LAYER:
                layer[gi] = sq if gi not in layer else layer[gi] + sq
        self._last = [([], [], 0) for _ in self.param_groups]
        for group, gi, p, g, sq in entries:
            code = scope_code(group["scope"])
            q = {GLOBAL: pool, LAYER: layer.get(gi), TENSOR: sq}.get(code)
            q = g * g if code == ELEMENT else q.to(device=g.device)
            like = dict(dtype=g.dtype, device=g.device)
            exc = excess(f.to(**like), torch.tensor(group["f_target"], **like))
            delta, scale = polyak_step(g, exc, q, torch.tensor(group["lr"], **like),
                                       torch.tensor(group["eps"], **like))
            p.sub_(delta)
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.tensor(0.0, dtype=torch.float64)
            state["step"] += 1
            scales, guarded, n = self._last[gi]
            scale = scale.expand_as(g)
            scales.append(scale.sum(dtype=torch.float64))
            guarded.append((scale == 0).sum())
            self._last[gi] = (scales, guarded, n + p.numel())
        return loss

    # -- statistics of the last step (tensors kept; read lazily) --------------------------------
    def _totals(self, i: int) -> tuple[float, float, int]:
        scales, guarded, n = self._last[i]
        return float(sum(float(x) for x in scales)), float(sum(float(x) for x in guarded)), n

    def group_stats(self) -> list[dict[str, float] | None]:
        """Per param group, for the last :meth:`step`: ``{"scale", "guarded_fraction", "numel"}``
        (mean lr s and the fraction of elements that took no step) over the elements with a
        gradient; None for a group without any; [] before a step."""
        out: list[dict[str, float] | None] = []
        for i in range(len(self._last or ())):
            s, gd, n = self._totals(i)
            out.append({"scale": s / n, "guarded_fraction": gd / n, "numel": n} if n else None)
        return out

    def _overall(self, which: int) -> float | None:
        if not self._last:
            return None
        tot = [self._totals(i) for i in range(len(self._last))]
        n = sum(t[2] for t in tot)
        return sum(t[which] for t in tot) / n if n else None

    @property
    def last_scale(self) -> float | None:
        """Mean effective step scale lr s over the elements with a gradient in the last step
        (None before the first)."""
        return self._overall(0)

    @property
    def last_guarded_fraction(self) -> float | None:
        """Fraction of the elements with a gradient whose block took no step (a guard fired, or
        the excess was 0) in the last step (None before the first)."""
        return self._overall(1)


__all__ = ["PolyakLanes", "PolyakStep", "Blocks", "layer_groups", "polyak_step", "excess",
           "scope_code", "check_scope", "check_partition", "landscape_partition", "whole_vector",
           "SCOPES", "SCOPE", "POLYAK_EPS", "Partition"]
