"""Matrix phi-functions of exponential integrators.

    phi_0(Z) = exp(Z),    phi_k(Z) = int_0^1 exp((1 - s) Z) s^(k-1) / (k-1)! ds = sum_m Z^m / (m + k)!

so that phi_k(0) = 1/k! and Z phi_{k+1}(Z) = phi_k(Z) - I/k!. The recurrence and the closed forms
((e^z - 1)/z, ...) cancel catastrophically for small |Z|; we avoid both.

Method (Saad 1992; Sidje, Expokit 1998; Al-Mohy & Higham 2011, Thm. 2.1): for Z of size d build the
block matrix of size d (k+1)

        [ Z  I  0 ... 0 ]
        [ 0  0  I ... 0 ]
    M = [       ...     ]          (identity blocks on the first block super-diagonal)
        [ 0  0  0 ... I ]
        [ 0  0  0 ... 0 ]

Derivation: the first block row X(t) = [X_0, ..., X_k] of exp(tM) solves X' = X M, X(0) = [I, 0, ...],
i.e. X_0' = X_0 Z and X_j' = X_{j-1}; hence X_0 = e^{tZ}, X_j(t) = int_0^t X_{j-1} = t^j phi_j(tZ).
At t = 1 the first block row of exp(M) is [e^Z, phi_1(Z), ..., phi_k(Z)].

``torch.linalg.matrix_exp`` (scaling and squaring with a Taylor/Pade kernel) evaluates it with no
subtraction of nearly equal quantities, for any Z: tiny or huge norms, non-normal matrices, Jordan
blocks, complex eigenvalue pairs (real rotation blocks). Batched over any leading dimensions.
"""
from __future__ import annotations

import torch


def augmented_matrix(Z: torch.Tensor, k: int) -> torch.Tensor:
    """(..., d, d) -> (..., d(k+1), d(k+1)): the block matrix M above."""
    *lead, d, d2 = Z.shape
    if d != d2:
        raise ValueError(f"phi_functions: Z must be square, got {tuple(Z.shape)}")
    m = d * (k + 1)
    M = Z.new_zeros(*lead, m, m)
    M[..., :d, :d] = Z
    eye = torch.eye(d, dtype=Z.dtype, device=Z.device)
    for j in range(k):
        M[..., j * d:(j + 1) * d, (j + 1) * d:(j + 2) * d] = eye
    return M


def phi_functions(Z: torch.Tensor, k: int) -> list[torch.Tensor]:
    """[phi_0(Z) = exp(Z), phi_1(Z), ..., phi_k(Z)], each of the shape of Z (..., d, d).

    Args:
        Z: real or complex square matrices, any leading batch dimensions (for the integrators: h L
           per lane, (B, d, d)).
        k: highest index (k >= 0).
    """
    if k < 0:
        raise ValueError("phi_functions: k must be >= 0")
    if k == 0:
        return [torch.linalg.matrix_exp(Z)]
    d = Z.shape[-1]
    E = torch.linalg.matrix_exp(augmented_matrix(Z, k))
    return [E[..., :d, j * d:(j + 1) * d] for j in range(k + 1)]


def phi_combination(Z: torch.Tensor, vectors: list[torch.Tensor]) -> torch.Tensor:
    """sum_{k=1}^{p} phi_k(Z) w_k for vectors ``[w_1, ..., w_p]`` (each (..., m) or None for zero),
    from one matrix exponential of size m + p (Al-Mohy & Higham 2011, Thm. 2.1):

        A^ = [[Z, W], [0, K]],   W = [w_p, ..., w_1],   K = the p x p upper shift matrix,
        exp(A^) e_{m+p} = [sum_k phi_k(Z) w_k ; ...].

    Much cheaper than the full phi matrices when only a few products are needed (m + p instead of
    m (k + 1)).
    """
    p = len(vectors)
    *lead, m, _ = Z.shape
    A = Z.new_zeros(*lead, m + p, m + p)
    A[..., :m, :m] = Z
    for k, w in enumerate(vectors, start=1):
        if w is not None:
            A[..., :m, m + p - k] = w
    for i in range(p - 1):
        A[..., m + i, m + i + 1] = 1.0
    E = torch.linalg.matrix_exp(A)
    return E[..., :m, m + p - 1]
