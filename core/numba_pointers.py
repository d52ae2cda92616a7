"""Raw data pointers of arrays inside compiled code, for the landscapes' C-callable functions.

``arr.ctypes`` inside numba builds a ctypes object that holds a reference to the array: passing one
to a first-class function costs NRT reference counts (atomic increments and decrements) on every
call. In the lane blocks' step loop (:mod:`flows.fast.block`) those atomics were 14% of the run
(perf: ``NRT_incref``/``NRT_decref``, adam-flow2 at 1e5 lanes). :func:`data_pointer` is the same
address without the object, :func:`row_pointer` that of a row of a 2D array: the caller keeps the
array alive, as it does anyway.
"""
from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic


@intrinsic
def data_pointer(typingctx, arr, offset):
    """&arr.flat[offset] of a C-contiguous float64 array, as a ``float64*`` (no bounds check: the
    caller's offset must lie inside the array)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"):
        raise TypingError(f"data_pointer: a C-contiguous float64 array, not {arr}")
    if not isinstance(offset, types.Integer):
        raise TypingError(f"data_pointer: an integer offset, not {offset}")
    sig = types.CPointer(types.float64)(arr, offset)

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        off = context.cast(builder, args[1], signature.args[1], types.intp)
        return cgutils.pointer_add(builder, a.data, builder.mul(off, context.get_constant(
            types.intp, 8)))

    return sig, codegen


@intrinsic
def row_pointer(typingctx, arr, row):
    """&arr[row, 0] of a C-contiguous 2D float64 array, as a ``float64*`` (``data_pointer(arr,
    row * arr.shape[1])``; no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"
            and arr.ndim == 2):
        raise TypingError(f"row_pointer: a C-contiguous 2D float64 array, not {arr}")
    if not isinstance(row, types.Integer):
        raise TypingError(f"row_pointer: an integer row, not {row}")
    sig = types.CPointer(types.float64)(arr, row)

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        stride = cgutils.unpack_tuple(builder, a.strides, 2)[0]
        return cgutils.pointer_add(builder, a.data, builder.mul(i, stride))

    return sig, codegen
