"""core.numba_pointers: the address of an element or a row, as arr.ctypes would give."""
import numpy as np
import pytest
from numba import carray, njit
from numba.core.errors import TypingError

from core.numba_pointers import data_pointer, row_pointer


@njit(cache=True)
def _window(a, offset, n):
    return carray(data_pointer(a, offset), (n,)).copy()


def test_data_pointer_addresses_the_element_at_the_offset():
    a = np.arange(24.0).reshape(4, 6)
    assert np.array_equal(_window(a, 6 * 2, 6), a[2])
    assert np.array_equal(_window(a, 7, 3), a.reshape(-1)[7:10])
    assert np.array_equal(_window(a[3], 1, 5), a[3, 1:])      # a row view: its own start


def test_data_pointer_refuses_a_strided_array():
    a = np.arange(24.0).reshape(4, 6)
    with pytest.raises(TypingError, match="C-contiguous float64"):
        _window(a[:, 1], 0, 2)


@njit(cache=True)
def _row(a, row):
    return carray(row_pointer(a, row), (a.shape[1],)).copy()


def test_row_pointer_addresses_the_row():
    a = np.arange(24.0).reshape(4, 6)
    for i in range(4):
        assert np.array_equal(_row(a, i), a[i])
    with pytest.raises(TypingError, match="C-contiguous 2D float64"):
        _row(a.T, 0)
