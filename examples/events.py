"""Events: zero crossings located on the dense output, per lane.

1. A switched linear system x' = -k x while x > 1/2, then x' = -c: the switch is located by root
   finding to 1e-10 and the solution after it follows the closed form 1/2 - c (t - ln2/k).
2. A terminal event on the first-order Adam flow: each lane stops when f(theta) falls below 1e-3
   (time to tolerance of the continuous model, per alpha), status "event".

Run: python examples/events.py
"""
import math

import torch

import landscapes
from flows.adam import AdamFlow1
from flows.events import Event
from flows.semilinear import SemilinearFlow
from flows.simulate import output_grid, simulate
from flows.solve import solve

F64 = torch.float64


class Switched(SemilinearFlow):
    """x' = -k x on branch 0, x' = -c on branch 1 (a per-lane flag the event handler flips)."""

    def __init__(self, k, c):
        super().__init__()
        self.k, self.c = torch.tensor(k, dtype=F64), torch.tensor(c, dtype=F64)
        self.branch = torch.zeros_like(self.k, dtype=torch.bool)

    @property
    def n_lanes(self):
        return self.k.shape[0]

    def linear_operator(self):
        return torch.where(self.branch, 0.0, -self.k)[:, None, None]

    def nonlinear(self, t, y):
        return torch.where(self.branch, -self.c, 0.0)[:, None, None].expand_as(y).clone()

    def jacobian(self, t, y):
        return self.linear_operator().clone(), torch.zeros(y.shape[0], 1, dtype=F64)

    def initial_state(self, theta0):
        return theta0[..., None]


def flip(t, y, fired):
    flow.branch = flow.branch | fired
    return y


flow = Switched([1.0, 2.0, 1.5], [2.0, 1.0, 0.5])
t = torch.linspace(0.0, 0.9, 91, dtype=F64)
sol = solve(flow, torch.ones(3, 1, 1, dtype=F64), t,
            events=[Event(lambda t, y: y[:, 0, 0] - 0.5, direction=-1, handler=flip)])
for b in range(3):
    ts = math.log(2.0) / float(flow.k[b])
    exact = torch.where(t < ts, torch.exp(-flow.k[b] * t), 0.5 - flow.c[b] * (t - ts))
    print(f"lane {b}: switch at t={float(sol.event_t[b, 0]):.12f}, switch time error "
          f"{abs(float(sol.event_t[b, 0]) - ts):.1e}, max |x - closed form| = "
          f"{float((sol.ys[b, :, 0, 0] - exact).abs().max()):.1e}")

land = landscapes.parse("rosenbrock1d(c=1.5)")
alpha = torch.tensor([1e-2, 3e-2, 1e-1], dtype=F64)
adam = AdamFlow1(land, alpha=alpha, beta1=0.9, beta2=0.999, n_lanes=3)
t_out, _, n_out = output_grid(alpha, [int(round(20 / float(a))) for a in alpha], 10)
reach = Event(lambda t, y: land.value(y[..., 0]) - 1e-3, terminal=True, direction=-1, name="f<1e-3")
traj = simulate(adam, torch.full((3, 1), -1.5, dtype=F64), t_out, n_out, events=[reach])
for b in range(3):
    print(f"adam-flow1 alpha={float(alpha[b]):g}: status={traj.status_label(b)}, f < 1e-3 "
          f"from t={float(traj.events['t'][b, 0]):.6f}")
