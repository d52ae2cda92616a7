"""The compiled engine of the exact mode: one adaptive loop per lane inside one numba kernel.

* :mod:`flows.fast.dop853`  the Dormand-Prince 8(5,3) tableau and its order-7 dense output;
* :mod:`flows.fast.rhs`     the compiled right-hand sides of the Adam-family form, the Newton form
  and the modified-equation velocities (:mod:`flows.compiled_form`) over a compiled lane gradient,
  curvature and third derivative (:mod:`landscapes.compiled`);
* :mod:`flows.fast.rodas5p` the Rodas5P Rosenbrock tableau and its order-4 dense output;
* :mod:`flows.fast.lane_control` what both steppers' lane loops share: start, starting step,
  divergence bound, step floor, stalls and their statuses;
* :mod:`flows.fast.kernel`  the explicit per-lane integrator, DOP853 (step, error control, dense
  output, statuses), and the pieces of its loop that the lane blocks share;
* :mod:`flows.fast.block`   lane blocks: the DOP853 lanes of an Adam-family flow 8 at a time, stage
  by stage, each lane with its own step and control, the same bits as one lane at a time;
* :mod:`flows.fast.rosenbrock` the stiff per-lane integrator, Rodas5P, for the Adam-family form
  (closed-form block-diagonal Jacobian, one d x d LU per coordinate);
* :mod:`flows.fast.ensemble` the one entry point: lane queues through blocks, then single lanes
  on their stepper, ``prange`` over both;
* :mod:`flows.fast.solve`   :func:`solve_fast`, the :class:`flows.solve.Solution` contract of the
  torch engine, and :func:`fast_support` (why a flow/landscape/option cannot run compiled).
"""
