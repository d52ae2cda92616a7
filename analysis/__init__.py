"""Studies on trajectories: alpha-refinement, Lyapunov/PL monitors, rates, basins, velocity,
positivity. Each study module exposes a library function returning plain results (dicts/arrays),
a figure function drawing from those results only, and the CLI hooks ``COMMAND``, ``HELP``,
``add_arguments(parser)`` and ``main(args) -> int`` (registered in :data:`STUDIES`).
"""

#: study modules wired into the CLI (``adamflow <COMMAND>``), in help order
STUDIES = (
    "analysis.refine",
    "analysis.lyapunov",
    "analysis.rates",
    "analysis.basin",
    "analysis.velocity",
    "analysis.positivity",
    "analysis.sweep",
)
