"""Rank-0 logging: terminal + log.txt, and a progress line for long runs."""

from __future__ import annotations

import logging
import sys
import time

from mpi4py import MPI

LOGGER_NAME = "nacrack"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def setup_logging(logfile=None, comm=MPI.COMM_WORLD, level=logging.INFO) -> logging.Logger:
    """Log on rank 0 only (terminal and ``logfile``); other ranks stay silent."""
    log = get_logger()
    log.handlers.clear()
    log.propagate = False
    if comm.rank != 0:
        log.addHandler(logging.NullHandler())
        log.setLevel(logging.CRITICAL + 1)
        return log
    log.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    term = logging.StreamHandler(sys.stdout)
    term.setFormatter(fmt)
    log.addHandler(term)
    if logfile is not None:
        fh = logging.FileHandler(logfile, mode="a")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


class Progress:
    """One line per reported step: step, time, dt, percentage and ETA."""

    def __init__(self, t_end: float, every: int = 1):
        self.t_end, self.every = t_end, every
        self.start = time.perf_counter()

    def step(self, step: int, t: float, dt: float, extra: str = "") -> None:
        if step % self.every:
            return
        frac = min(max(t / self.t_end, 0.0), 1.0) if self.t_end > 0 else 1.0
        wall = time.perf_counter() - self.start
        eta = wall * (1 - frac) / frac if frac > 0 else float("nan")
        get_logger().info(
            f"step {step:5d}  t = {t:.4e} s  dt = {dt:.3e} s  {100 * frac:5.1f}%  "
            f"wall {wall:7.1f} s  eta {eta:7.1f} s  {extra}"
        )
