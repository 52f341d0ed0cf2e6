"""The config file's enumerated words, in one import-light place.

Shared by the spec types, the config schema and the CLI's flags (which must not pay for
importing ``dataclasses``), so a new process type or kill mode is added once.
"""

PROCESS_TYPES = ("simple", "oneshot", "forking", "notify")
RESTART_POLICIES = ("never", "always", "on-failure", "on-success")
BACKOFF_KINDS = ("exponential", "linear", "fixed")
KILL_MODES = ("control-group", "process-group", "process", "mixed")
HEALTH_TYPES = ("http", "tcp", "exec")
GROUP_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
LOG_MODES = ("capture", "inherit", "null")
