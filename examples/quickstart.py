"""Discrete Adam beside its first- and second-order continuous models (arXiv 2411.09734, 2602.09101).

Run: python examples/quickstart.py
"""
import adamflow

ALPHA, STEPS = 1e-3, 3000
runs = adamflow.simulate("rosenbrock1d(c=4)", ["adam", "adam-flow1", "adam-flow2"], -1.5,
                         alpha=ALPHA, beta1=0.99, beta2=0.999, u0=[0.0, 1.0], steps=STEPS,
                         every=100)
disc = runs["adam"]
for name, traj in runs.items():
    for b in range(traj.n_lanes):
        u0 = traj.params.get("u0", [None] * traj.n_lanes)[b]
        gap = (traj.theta[b] - disc.theta[0]).abs().max().item()
        label = name if u0 is None else f"{name} u0={u0:g}"
        print(f"{label:<18} status={traj.status_label(b):<4} theta(T)={traj.final_theta()[b, 0]:.10f}"
              f"  max |theta - theta_adam| = {gap:.3e}")
