"""PL bound check of SPEC §5 (paper protocol of arXiv 2602.09101), vectorised with numpy.

On a sampled trajectory (s_i, Phi_i), Phi = f - f*:

* env(s_i)  = max of max(Phi, floor) over the samples with s in [s_i - window, s_i] (both ends
  included; floor = 1e-16, window = 0.1);
* B         = max of env over the samples with s >= T_end - tail (tail = 1.7);
* omega     = minus the least-squares slope of log(env - B) against s - delta over the samples with
  delta <= s <= T_end - tail and env > B (delta = 1);
* A         = max over samples s >= delta of (env - B) exp(omega (s - delta));
* violation = max(env - (A exp(-omega (s - delta)) + B)) over s >= delta.

By construction of A the violation is 0 up to round-off (the bound touches env at the sample that
sets A); it is reported as computed, not clipped.

The window end point s_i - window is compared with a relative slack of 1e-9 so that a sample lying
on it up to the round-off of s = k*alpha counts as inside ("both ends included").

The sliding-window maximum is a range-maximum query on a sparse table (O(N log W) time and memory,
W the largest window in samples): no Python loop over samples.
"""
from __future__ import annotations

import math

import numpy as np

#: relative slack on the window's left end point (see the module docstring)
WINDOW_SLACK = 1e-9


def sliding_max(s: np.ndarray, x: np.ndarray, window: float) -> np.ndarray:
    """max of x_j over the samples with s_i - window <= s_j <= s_i (s nondecreasing)."""
    s = np.asarray(s, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    N = s.shape[0]
    if N == 0:
        return x.copy()
    if np.any(np.diff(s) < 0):
        raise ValueError("sliding_max needs a nondecreasing time grid")
    slack = WINDOW_SLACK * np.maximum(1.0, np.abs(s))
    lo = np.searchsorted(s, s - window - slack, side="left")
    idx = np.arange(N)
    length = idx - lo + 1                               # >= 1
    kmax = int(length.max()).bit_length() - 1
    levels = [x]
    for k in range(1, kmax + 1):
        prev = levels[-1]
        half = 1 << (k - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    table = np.full((kmax + 1, N), -np.inf)
    for k, lev in enumerate(levels):
        table[k, : lev.shape[0]] = lev
    k = np.frexp(length.astype(np.float64))[1] - 1      # floor(log2(length))
    right = idx - (1 << k) + 1
    return np.maximum(table[k, lo], table[k, right])


def pl_bound(s, phi, delta: float = 1.0, window: float = 0.1, tail: float = 1.7,
             floor: float = 1e-16) -> dict:
    """The PL bound check of SPEC §5 on one sampled trajectory.

    Args:
        s: (N,) nondecreasing sample times (non-finite samples are dropped with their phi).
        phi: (N,) Phi = f - f* at those times.

    Returns a dict: scalars ``B``, ``omega``, ``A``, ``violation``, ``n_fit`` (samples in the fit),
    ``ok`` (False when the fit window has fewer than 2 usable samples; then omega, A and violation
    are NaN and ``reason`` says why); arrays ``s``, ``env``, ``bound`` (NaN before delta),
    ``excess`` = env - bound, and the index ``touch`` of the sample that sets A.
    """
    s = np.asarray(s, dtype=np.float64).ravel()
    phi = np.asarray(phi, dtype=np.float64).ravel()
    if s.shape != phi.shape:
        raise ValueError("s and phi must have the same length")
    keep = np.isfinite(s) & np.isfinite(phi)
    s, phi = s[keep], phi[keep]
    nan = math.nan
    out = {"B": nan, "omega": nan, "A": nan, "violation": nan, "n_fit": 0, "ok": False,
           "reason": None, "s": s, "env": np.full_like(s, nan), "bound": np.full_like(s, nan),
           "excess": np.full_like(s, nan), "touch": None,
           "delta": float(delta), "window": float(window), "tail": float(tail)}
    if s.size == 0:
        out["reason"] = "no samples"
        return out
    env = sliding_max(s, np.maximum(phi, floor), window)
    out["env"] = env
    t_end = s[-1]
    t_cut = t_end - tail
    tail_mask = s >= t_cut
    B = float(env[tail_mask].max())
    out["B"] = B
    fit = (s >= delta) & (s <= t_cut) & (env > B)
    n_fit = int(fit.sum())
    out["n_fit"] = n_fit
    if n_fit < 2:
        out["reason"] = (f"fewer than 2 samples with {delta:g} <= s <= T_end - {tail:g} "
                         f"= {t_cut:g} and env > B")
        return out
    x = s[fit] - delta
    y = np.log(env[fit] - B)
    xc = x - x.mean()
    denom = float(np.dot(xc, xc))
    if denom <= 0:
        out["reason"] = "degenerate fit window (all samples at one time)"
        return out
    slope = float(np.dot(xc, y - y.mean())) / denom
    omega = -slope
    after = s >= delta
    ia = np.flatnonzero(after)
    if ia.size == 0:
        out["reason"] = "no samples after delta"
        return out
    scaled = (env[ia] - B) * np.exp(omega * (s[ia] - delta))
    j = int(np.argmax(scaled))
    A = float(scaled[j])
    bound = np.full_like(s, nan)
    bound[ia] = A * np.exp(-omega * (s[ia] - delta)) + B
    excess = env - bound
    out.update({"omega": omega, "A": A, "violation": float(np.max(excess[ia])), "ok": True,
                "bound": bound, "excess": excess, "touch": int(ia[j])})
    return out


def violation_indices(result: dict, rel_tol: float = 1e-12) -> np.ndarray:
    """Indices where env exceeds the fitted bound by more than rel_tol * max(env)."""
    excess = result["excess"]
    if not result.get("ok") or excess.size == 0:
        return np.zeros(0, dtype=np.int64)
    thr = rel_tol * float(np.nanmax(np.abs(result["env"])))
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(np.nan_to_num(excess, nan=-np.inf) > thr)


def scalars(result: dict) -> dict:
    """The JSON part of a :func:`pl_bound` result."""
    out = {k: result[k] for k in ("B", "omega", "A", "violation", "n_fit", "ok")}
    if result.get("reason"):
        out["reason"] = result["reason"]
    return out
