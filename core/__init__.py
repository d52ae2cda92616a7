"""The bottom layer: types and helpers that every other package imports, importing none of them.

* :mod:`core.errors`     -- :class:`ConfigError` (one-line user errors, exit code 2 in the CLI)
* :mod:`core.trajectory` -- :class:`Trajectory`, lane :class:`Status` codes (open to new codes)
* :mod:`core.hyper`      -- per-lane hyper-parameter tensors, validators, dtype/device
* :mod:`core.method`     -- the method descriptor (hyper-parameters declared once, schemes, records)
* :mod:`core.oracle`     -- the oracle a discrete step receives (loss, gradient, HVP at any point)
* :mod:`core.grid`       -- output index grids shared by discrete runs and flows
* :mod:`core.output`     -- atomic JSON/CSV/PNG writers
* :mod:`core.published`  -- locating the published reference traces beside the checkout

Layering (each package imports only from those before it; ``tests/test_layering.py`` checks it)::

    core -> landscapes -> discrete, flows -> runner -> analysis -> paper_figs -> adamflow
"""
