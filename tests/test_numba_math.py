"""The compiled math namespace (:mod:`core.numba_math`): its own expm1 against libm."""
import math

import numpy as np
from numba import njit

from core import numba_math
from flows.fast.kernel import step_power


@njit(cache=True)
def _expm1_all(x, out):
    for i in range(x.shape[0]):
        out[i] = numba_math.expm1(x[i])


def _ulps(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(ours - ref) / np.spacing(np.abs(ref))


def test_expm1_is_within_one_ulp_of_libm():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(-40.0, 709.0, 200_000),
        rng.uniform(-1.5, 1.5, 200_000),                   # k in {-2, ..., 2}: the cancellation zone
        np.sign(rng.uniform(-1, 1, 20_000)) * 10.0 ** rng.uniform(-300, 0, 20_000),
        np.arange(-57, 1024) * math.log(2.0),              # range-reduction boundaries
        (np.arange(-57, 1024) + 0.5) * math.log(2.0),
        np.nextafter((np.arange(-57, 1024) + 0.5) * math.log(2.0), np.inf),
        rng.uniform(709.4, 709.78, 1000),                  # 2^k overflows, e^x does not
        np.linspace(-1e-3, 1e-3, 20_001),
    ])
    out = np.empty_like(x)
    _expm1_all(x, out)
    ref = np.array([math.expm1(v) for v in x])
    assert np.isfinite(out).all()
    assert _ulps(out, ref).max() <= 1.0


@njit(cache=True)
def _expm1_array(x):
    y = x.copy()
    numba_math.expm1_array(y, np.empty_like(y), np.empty_like(y), np.empty_like(y))
    return y


def test_expm1_array_is_expm1_bit_for_bit():
    """The lane blocks' expm1 over an array (Horner passes across it) has expm1's bits."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-45.0, 712.0, 50_000), rng.uniform(-1.5, 1.5, 50_000),
                        10.0 ** rng.uniform(-300, 0, 1000), np.arange(-57, 1024) * math.log(2.0),
                        [0.0, -0.0, -np.inf, np.inf, np.nan, 709.78, 1e300, -1e300]])
    one = np.empty_like(x)
    _expm1_all(x, one)
    assert _expm1_array(x).view(np.int64).tolist() == one.view(np.int64).tolist()


def test_expm1_special_values():
    x = np.array([0.0, -0.0, 1e-320, -1e-320, 2.0 ** -60, -40.0, -41.0, -1e300, -np.inf, 709.78,
                  709.8, 710.0, 1e300, np.inf, np.nan])
    out = np.empty_like(x)
    _expm1_all(x, out)
    assert out[0] == 0.0 and out[2] == 1e-320 and out[3] == -1e-320 and out[4] == 2.0 ** -60
    assert (out[5:9] == -1.0).all()
    assert _ulps(out[9:10], np.array([math.expm1(709.78)]))[0] <= 1.0
    assert (out[10:14] == np.inf).all()
    assert np.isnan(out[14])


@njit(cache=True, error_model="numpy")     # the kernels' IEEE division
def _step_power_all(x, out):
    for i in range(x.shape[0]):
        out[i] = step_power(x[i])


def test_step_power_is_within_two_ulp_of_pow():
    """The DOP853 controller's err^(-1/8) from three square roots (flows.fast.kernel.step_power)
    against libm's pow, over the errors a step can have, and at the edges."""
    rng = np.random.default_rng(1)
    x = np.concatenate([10.0 ** rng.uniform(-300, 300, 200_000), rng.uniform(0.0, 2.0, 100_000),
                        2.0 ** np.arange(-1074, 1024, dtype=float)])
    out = np.empty_like(x)
    _step_power_all(x, out)
    ref = x ** -0.125
    assert _ulps(out, ref).max() <= 2.0
    edge = np.array([0.0, np.inf, np.nan])
    out = np.empty_like(edge)
    _step_power_all(edge, out)
    assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2])


@njit(cache=True)
def _select_all(c, a, b, out):
    for i in range(c.shape[0]):
        out[i] = numba_math.select(c[i], a[i], b[i])


def test_select_is_the_conditional_expression():
    """The branch-free pick of the lane blocks: a where c, else b, with a NaN or a signed zero
    passed through as it is."""
    a = np.array([1.0, np.nan, -0.0, 2.5, np.inf])
    b = np.array([np.nan, 3.0, 0.0, -0.0, 7.0])
    c = np.array([True, False, True, False, True])
    out = np.empty(5)
    _select_all(c, a, b, out)
    want = np.array([x if k else y for k, x, y in zip(c, a, b)])
    assert out.view(np.int64).tolist() == want.view(np.int64).tolist()
