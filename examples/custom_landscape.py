"""Any differentiable torch function is a landscape: gradients and Hessian-vector products come from
autograd. Here a 2-D coupled objective, Adam against its first-order nonlocal flow, four starts.

Run: python examples/custom_landscape.py
"""
import torch

import adamflow


def f(theta: torch.Tensor) -> torch.Tensor:          # theta: (2,) -> scalar
    x, y = theta[0], theta[1]
    return (x - 1) ** 2 + 3 * (y - x ** 2) ** 2 + 0.5 * torch.cos(3 * x) * y ** 2


land = adamflow.landscape(f, dim=2, name="coupled")
starts = [[-1.0, 1.0], [0.5, -0.5], [2.0, 2.0], [-0.3, 0.0]]
runs = adamflow.simulate(land, ["adam", "adam-flow1"], starts, alpha=1e-2, beta1=0.9,
                         beta2=0.999, horizon=5.0, every=10)
d, c = runs["adam"], runs["adam-flow1"]
for b, th0 in enumerate(starts):
    k = int(d.n_out[b])
    sup = (d.theta[b, :k] - c.theta[b, :k]).norm(dim=-1).max().item()
    print(f"theta0={th0}  adam f(T)={d.final_f()[b]:.6g}  flow f(T)={c.final_f()[b]:.6g}  "
          f"sup |theta_adam - theta_flow| = {sup:.3e}")
