"""Input errors.

Every invalid user input (bad hyper-parameter, unknown model or landscape, malformed spec) raises
:class:`ConfigError` with a one-line message; the CLI turns it into ``error: <message>`` on stderr and
exit code 2. Numerical trouble inside a run is *not* an exception: it is a per-lane status
(see :class:`core.trajectory.Status`).
"""


class ConfigError(ValueError):
    """A user-facing, one-line configuration error."""
