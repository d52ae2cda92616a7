r"""Dormand-Prince 8(5,3) (Hairer, Norsett & Wanner, *Solving ODEs I*, 2nd ed., §II.10): order 8,
12 stages plus the FSAL stage, error estimators of orders 5 and 3 combined as in DOP853, and a dense
output of order 7 from three extra stages.

The coefficients are scipy's (the same published tableau behind ``scipy.integrate.DOP853``), read
from its coefficient module ``scipy/integrate/_ivp/dop853_coefficients.py`` by file, which needs only
numpy (importing ``scipy.integrate`` itself costs 0.25 s of every process start), or from the public
class when that file is not where scipy keeps it. They are checked at import (diffrax's habit):
every row of A sums to its node c, the weights sum to 1, both error weight vectors sum to 0, A is
strictly lower triangular. ``tests/test_fast_engine.py`` measures the order and compares with the
public class.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np


def _load():
    """(A, B, C, E3, E5, D, A_EXTRA, C_EXTRA) as float64 arrays."""
    spec = importlib.util.find_spec("scipy")
    path = os.path.join(os.path.dirname(spec.origin), "integrate", "_ivp", "dop853_coefficients.py") \
        if spec is not None and spec.origin else ""
    if os.path.isfile(path):
        mspec = importlib.util.spec_from_file_location("_adamflow_dop853_coefficients", path)
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)
        ns = mod.N_STAGES
        raw = (mod.A[:ns, :ns], mod.B, mod.C[:ns], mod.E3, mod.E5, mod.D, mod.A[ns + 1:],
               mod.C[ns + 1:])
    else:                                           # pragma: no cover - other scipy layouts
        from scipy.integrate import DOP853 as cls
        raw = (cls.A, cls.B, cls.C, cls.E3, cls.E5, cls.D, cls.A_EXTRA, cls.C_EXTRA)
    return tuple(np.ascontiguousarray(x, dtype=np.float64) for x in raw)


A, B, C, E3, E5, D, A_EXTRA, C_EXTRA = _load()
N_STAGES = 12
ORDER = 8
ERROR_ORDER = 7


def _check() -> None:
    tol = 1e-14
    if A.shape != (N_STAGES, N_STAGES) or E5.shape != (N_STAGES + 1,) or D.shape != (4, 16):
        raise RuntimeError("DOP853 tableau: unexpected shapes")
    if np.abs(A.sum(axis=1) - C).max() > 1e3 * tol or np.abs(A_EXTRA.sum(axis=1) - C_EXTRA).max() > 1e3 * tol:
        raise RuntimeError("DOP853 tableau: rows of A do not sum to c")
    if abs(B.sum() - 1.0) > 1e2 * tol or abs(E3.sum()) > 1e2 * tol or abs(E5.sum()) > 1e2 * tol:
        raise RuntimeError("DOP853 tableau: weights do not sum to 1 (error weights to 0)")
    if np.abs(np.triu(A)).max() != 0.0:
        raise RuntimeError("DOP853 tableau: A is not strictly lower triangular")


_check()
