"""The one error that stops ``dd-procmgrd`` before it serves anything.

A leaf module (no imports) so that the listener policy, the web listener and the daemon's
entry point can all raise or catch it without importing each other.
"""


class DaemonStartError(Exception):
    """The daemon cannot start as asked; the message names the flag or file to fix."""
