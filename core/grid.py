"""The output index grid shared by discrete runs and flows (t = k alpha)."""
from __future__ import annotations


def output_indices(K: int, every: int) -> list[int]:
    """Recorded update indices k = 0, every, 2 every, ... and always the last one, K."""
    ks = list(range(0, K + 1, every))
    if ks[-1] != K:
        ks.append(K)
    return ks
