"""core.numba_pointers.data_pointer: the address of an element, as arr.ctypes would give."""
import numpy as np
import pytest
from numba import carray, njit
from numba.core.errors import TypingError

from core.numba_pointers import data_pointer


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
