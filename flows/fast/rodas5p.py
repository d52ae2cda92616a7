r"""Rodas5P (G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical
benchmarks within the Julia Differential Equations package", BIT Numer. Math. 63, 27 (2023)):
a stiffly accurate, L-stable Rosenbrock-Wanner method of order 5 with 8 stages, an embedded
solution of order 4 and a dense output of order 4 (in the stiff limit as well).

The coefficients are the published ones in the transformed (``W``) form of Hairer & Wanner,
*Solving ODEs II*, §IV.7 (the form of their RODAS code): with W = I/(h gamma) - J, J = dF/dy and
J_t = dF/dt at the start of the step (t, y),

    W k_i = F(t + c_i h, U_i) + d_i h J_t + sum_{j<i} (C_ij / h) k_j,
    U_i   = y + sum_{j<i} A_ij k_j  (i <= 6),     U_i = U_{i-1} + k_{i-1}  (i = 7, 8),
    y_new = U_8 + k_8,

the embedded solution is U_8 (so k_8 is the error estimate), and the dense output on the step is

    y(t + theta h) = (1 - theta) y + theta (y_new + (1 - theta)(q_1 + theta (q_2 + theta q_3))),
    q_r = sum_j H_rj k_j.

``tests/test_fast_rosenbrock.py`` measures the three orders (local error h^6, estimate h^5, dense
output h^5) on a non-autonomous stiff problem.
"""
from __future__ import annotations

import numpy as np

N_STAGES = 8
#: order of the embedded solution (the error estimate is O(h^5))
ERROR_ORDER = 4

GAMMA = 0.21193756319429014

A = np.zeros((N_STAGES, N_STAGES))
A[1, 0] = 3.0
A[2, :2] = [2.849394379747939, 0.45842242204463923]
A[3, :3] = [-6.954028509809101, 2.489845061869568, -10.358996098473584]
A[4, :4] = [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641]
A[5, :5] = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
            0.030198172008377946]

C = np.zeros((N_STAGES, N_STAGES))
C[1, 0] = -14.155112264123755
C[2, :2] = [-17.97296035885952, -2.859693295451294]
C[3, :3] = [147.12150275711716, -1.41221402718213, 71.68940251302358]
C[4, :4] = [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306]
C[5, :5] = [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
            -0.6610691825249471]
C[6, :6] = [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783,
            -19.097331116725623, -28.087943162872662]
C[7, :7] = [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047,
            -40.06618937091002, -54.66780262877968, -9.48861652309627]

#: stage times c_i and time-derivative weights d_i (0 for the last three stages, at t + h)
NODES = np.array([0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716,
                  0.4288403609558664, 1.0, 1.0, 1.0])
D = np.array([0.21193756319429014, -0.42387512638858027, -0.3384627126235924,
              1.8046452872882734, 2.325825639765069, 0.0, 0.0, 0.0])

#: dense-output weights q_r = sum_j H[r, j] k_j
H = np.array([
    [25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
     0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
    [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
     20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
    [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
     -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722],
])


def _check() -> None:
    # the transformed form's structure: A and C strictly lower triangular, A's last rows unused
    # (stages 7 and 8 continue from the previous stage), gamma = d_1, and d_i = 0 where c_i = 1
    assert np.array_equal(A, np.tril(A, -1)) and np.array_equal(C, np.tril(C, -1))
    assert not A[6:].any()
    assert D[0] == GAMMA and not D[5:].any() and (NODES[5:] == 1.0).all()
    assert H.shape == (3, N_STAGES)


_check()
