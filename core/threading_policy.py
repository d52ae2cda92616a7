"""Intra-op threading policy for the small tensors of lane-batched loops.

A step of an optimizer or integrator is a few dozen torch ops on tensors of a few (B, n) entries;
on CPU, intra-op threading then costs more than it saves (measured 2-3x slower on two cores).
:func:`small_batch_threads` runs a block single-threaded when the batch is small and restores the
caller's setting afterwards.
"""
from __future__ import annotations

import contextlib

import torch

#: below this many state entries on CPU, loops run with one intra-op thread
SMALL_BATCH = 4096


@contextlib.contextmanager
def small_batch_threads(t: torch.Tensor):
    if t.device.type == "cpu" and t.numel() < SMALL_BATCH and torch.get_num_threads() > 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
    else:
        yield
