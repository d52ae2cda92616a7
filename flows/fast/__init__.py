"""The compiled engine of the exact mode: one adaptive loop per lane inside one numba kernel.

* :mod:`flows.fast.dop853`  the Dormand-Prince 8(5,3) tableau and its order-7 dense output;
* :mod:`flows.fast.rhs`     the compiled right-hand sides of the Adam-family form, the Newton form
  and the modified-equation velocities (:mod:`flows.compiled_form`) over a compiled lane gradient,
  curvature and third derivative (:mod:`landscapes.compiled`);
* :mod:`flows.fast.kernel`  the per-lane integrator (step, error control, dense output, statuses),
  ``prange`` over lanes;
* :mod:`flows.fast.solve`   :func:`solve_fast`, the :class:`flows.solve.Solution` contract of the
  torch engine, and :func:`fast_support` (why a flow/landscape/option cannot run compiled).
"""
