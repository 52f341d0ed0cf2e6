"""The exec shim: how a child learns its own PID and gets its sockets at fds 3, 4, ...

systemd sets ``LISTEN_PID``/``WATCHDOG_PID`` to the service's PID and passes sockets as
fds 3, 4, ... . The daemon cannot: the PID is unknown before fork, ``pass_fds`` keeps the
daemon's fd numbers, and ``preexec_fn`` is refused (see ``spawner``). So a service that
needs either (``sockets:`` or ``watchdog_sec``) is exec'd through a shim that sets the
variables to ``$$``, moves the fds and execs the real command — same PID, so the values
are right for the command too. Other services are exec'd directly.

Which shim (measured on the CI machine, median of 30 spawns, ``/bin/true`` alone 4.1 ms):

* ``/bin/sh -c 'VAR=$$; export VAR; exec 3<&7 7<&-; exec "$@"'``: +3.8 ms. dash cannot
  name fds above 9, so it is used when every fd to move is a single digit — in practice
  for watchdog-only services (no fds);
* ``python -I -S -c SHIM``: +32 ms (interpreter start-up). Used to move fds >= 10;
* a compiled C shim would cost ~0.5 ms but needs a compiler at install time or a binary
  per architecture: not worth it for a once-per-start cost.

The shim adds nothing to the environment: dash's exported ``PWD`` is unset and Python's
coerced ``LC_CTYPE`` is dropped unless the service was given them.

Features ask for the shim with :func:`request` from their ``prepare_exec`` hook (the
request travels on the plan); :class:`ExecShim` (registered last) rewrites the plan once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.engine.spawner import ExecPlan, ShimRequest, check_executable
from trio_procmgr.listen_env import shim_argv

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor


def request(plan: ExecPlan, *, fds: Sequence[int] = (), pid_vars: Sequence[str] = ()) -> None:
    """For the spawn of ``plan``: move ``fds`` to 3.. (in call order), set ``pid_vars``."""
    req = plan.shim = plan.shim or ShimRequest()
    req.fds.extend(fds)
    req.pid_vars.extend(v for v in pid_vars if v not in req.pid_vars)


class ExecShim(Feature):
    """Rewrites a plan that asked for the shim, once, after every other feature."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context

    def prepare_exec(self, sup: "Supervisor", plan: ExecPlan) -> None:
        req, plan.shim = plan.shim, None
        if req is None:
            return
        check_executable(plan)  # the shim's exec would hide a missing binary
        for var in req.pid_vars:
            plan.env.pop(var, None)
        plan.pass_fds = tuple(plan.pass_fds) + tuple(fd for fd in req.fds
                                                     if fd not in plan.pass_fds)
        plan.argv = shim_argv(plan.argv, fd_sources=req.fds, pid_vars=req.pid_vars,
                              env=plan.env, python=sys.executable)


FEATURE = ExecShim
