"""Independent scipy references for the flows (plain numpy right-hand sides, SPEC §3).

Used by the flow tests: solve_ivp(LSODA, rtol=1e-11) on single lanes of rosenbrock1d.
"""
import math

from scipy.integrate import solve_ivp


def grad_rb1d(x, c):
    return -2.0 * (1.0 - x) + 4.0 * c * x * (x * x - 1.0)


def _bias(s, alpha, b1, b2, eps):
    q = s / alpha + 1.0
    c1 = 1.0 - b1 ** q
    c2 = 1.0 - b2 ** q
    return math.sqrt(c2) / c1, eps * math.sqrt(c2)


def rhs_flow1(c, alpha, b1, b2, eps):
    l1, l2 = (1 - b1) / alpha, (1 - b2) / alpha

    def f(s, y):
        th, m, v = y
        g = grad_rb1d(th, c)
        eta, epsq = _bias(s, alpha, b1, b2, eps)
        A = eta * m / (math.sqrt(max(v, 0.0)) + epsq)
        return [-A, l1 * (g - m), l2 * (g * g - v)]

    return f


def rhs_flow2(c, alpha, b1, b2, eps):
    k1, k2 = 2 * (1 - b1) / alpha ** 2, 2 * (1 - b2) / alpha ** 2

    def f(s, y):
        th, u, m, dm, v, dv = y
        g = grad_rb1d(th, c)
        eta, epsq = _bias(s, alpha, b1, b2, eps)
        A = eta * m / (math.sqrt(max(v, 0.0)) + epsq)
        return [u, -(2 / alpha) * (u + A), dm, -(2 / alpha) * dm + k1 * (g - m),
                dv, -(2 / alpha) * dv + k2 * (g * g - v)]

    return f


def lsoda_flow(model, c, theta0, alpha, b1, b2, T, u0=0.0, eps=1e-8, t_eval=None, rtol=1e-11,
               atol=1e-13, method="LSODA"):
    if model == "adam-flow1":
        f, y0 = rhs_flow1(c, alpha, b1, b2, eps), [theta0, 0.0, 0.0]
    else:
        f, y0 = rhs_flow2(c, alpha, b1, b2, eps), [theta0, u0, 0.0, 0.0, 0.0, 0.0]
    sol = solve_ivp(f, (0.0, T), y0, method=method, rtol=rtol, atol=atol, t_eval=t_eval)
    assert sol.success, sol.message
    return sol
