"""Process supervision helpers for ``gradq up``: parent-death signals, port checks, restart backoff.

Children must not outlive a supervisor that was SIGKILLed (nothing would stop them, and a
second ``gradq up`` would find them on its ports). On Linux each child asks the kernel for a signal
when its parent dies (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec). Elsewhere (macOS,
BSD) there is no such call: children still run in their own process groups, so Ctrl-C or SIGTERM to
``gradq up`` stops them all, but after a SIGKILL of ``gradq up`` stop them with
``kill -- -<pgid>`` (the pids are in ``<state-dir>/logs``) or run the stack under a service manager.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a child up this long has recovered: its next failure starts over at 1 s


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies (Linux only;
    None elsewhere, see the module docstring)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        os.setsid()  # own process group: stopping the child also stops its pool processes
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def port_in_use(host: str, port: int) -> bool:
    """Does something already listen on (``host``, ``port``)? (A bind test, as the child would.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def restart_delay(consecutive_failures: int) -> float:
    """Seconds before restart number ``consecutive_failures`` (1, 2, 4, ... capped at 30 s)."""
    exponent = max(0, consecutive_failures - 1)
    return min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2**exponent)


def signal_name(returncode: int) -> str:
    """``exited with code 1`` / ``was killed by SIGKILL`` from a Popen return code."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
