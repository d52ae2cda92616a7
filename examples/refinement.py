"""The alpha-refinement study from Python: how fast the models approach discrete Adam as alpha -> 0.

Run: python examples/refinement.py
"""
import adamflow

res = adamflow.refine("rosenbrock1d(c=1.5)", -1.5, alpha=[5e-2, 2e-2, 1e-2], horizon=2.0,
                      models=["adam-flow1", "adam-flow2"], u0=[0.0, 1.0])
for r in res["rows"]:
    u0 = "" if r["u0"] is None else f" u0={r['u0']:g}"
    print(f"{r['model']}{u0:<7} alpha={r['alpha']:<6g} E_T={r['E_T']:.3e}  E_sup={r['E_sup']:.3e}")
for s in res["slopes"]:
    u0 = "" if s["u0"] is None else f" u0={s['u0']:g}"
    print(f"slope {s['model']}{u0}: p_T={s['p_T']:.3f}  p_sup={s['p_sup']:.3f}")
