"""Stop signals: SIGTERM (batch scheduler) and SIGINT (Ctrl-C) become a stop
request that the time loop honours at its next safe point, on every rank."""

from __future__ import annotations

import signal
from contextlib import contextmanager

from mpi4py import MPI


class Interrupted(Exception):
    """SIGINT / SIGTERM received: stop cleanly, write state, exit 130."""


_pending_stop: list[str] = []  # names of the signals received and not yet acted on


@contextmanager
def signals_request_stop():
    """Turn SIGTERM (batch scheduler) and SIGINT (Ctrl-C) into a stop request.

    The handler only records the signal; the time loop acts on it at the next
    safe point (``check_stop``), which every rank reaches in the same order, so
    the state written is always that of a completed step and no rank is left
    inside a collective call. A second signal stops at once."""

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if _pending_stop:
            raise Interrupted(f"{name} (second signal)")
        _pending_stop.append(name)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)}
    _pending_stop.clear()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    # PetscInitialize catches SIGPIPE and calls MPI_Abort. When mpirun dies, Open MPI's
    # error message to the dead launcher raises SIGPIPE inside opal_output, and that
    # abort re-enters opal_output: the ranks hung for good (kill -9 of mpirun, measured).
    # Ignored (Python's own default), a write to a closed pipe fails with EPIPE instead.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _pending_stop.clear()


def check_stop(comm: MPI.Comm) -> None:
    """Raise Interrupted on every rank if any rank has received SIGTERM/SIGINT.

    Collective: call it only where all ranks pass in the same order."""
    if comm.allreduce(1 if _pending_stop else 0, op=MPI.MAX):
        raise Interrupted(_pending_stop[0] if _pending_stop else "a signal on another rank")
