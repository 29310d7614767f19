"""Rank-0 logging: terminal + log.txt, and a progress line for long runs."""

from __future__ import annotations

import logging
import sys
import time

from mpi4py import MPI

LOGGER_NAME = "nacrack"
TERMINAL_COLUMNS = 100  # a progress line on the terminal fits this width; log.txt has it whole


class _TerminalFormatter(logging.Formatter):
    """The terminal's formatter: a record with a ``terminal`` list (a progress
    line: head first, then the optional parts) shows as many parts as fit in
    TERMINAL_COLUMNS; the file handler writes the whole message."""

    def format(self, record: logging.LogRecord) -> str:
        parts = getattr(record, "terminal", None)
        if not parts:
            return super().format(record)
        prefix = self.formatTime(record, self.datefmt) + " "
        line = prefix + parts[0]
        for part in parts[1:]:
            if len(line) + 2 + len(part) > TERMINAL_COLUMNS:
                break
            line += "  " + part
        return line[:TERMINAL_COLUMNS]


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
    term.setFormatter(_TerminalFormatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(term)
    if logfile is not None:
        fh = logging.FileHandler(logfile, mode="a")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


class Progress:
    """One line per reported step: step, time, dt, percentage, ETA, then the
    step's quantities. The terminal shows what fits in TERMINAL_COLUMNS;
    log.txt has the whole line."""

    def __init__(self, t_end: float, every: int = 1):
        self.t_end, self.every = t_end, every
        self.start = time.perf_counter()

    def step(self, step: int, t: float, dt: float, extra: str | list[str] = "") -> None:
        if step % self.every:
            return
        frac = min(max(t / self.t_end, 0.0), 1.0) if self.t_end > 0 else 1.0
        wall = time.perf_counter() - self.start
        eta = wall * (1 - frac) / frac if frac > 0 else float("nan")
        parts = [extra] if isinstance(extra, str) else list(extra)
        parts = [p for p in parts if p]
        full = (f"step {step:5d}  t = {t:.4e} s  dt = {dt:.3e} s  {100 * frac:5.1f}%  "
                f"wall {wall:7.1f} s  eta {eta:7.1f} s  " + "  ".join(parts))
        head = f"step {step:5d} t {t:.4e} s dt {dt:.2e} s {100 * frac:5.1f}% wall {wall:.0f} s eta {eta:.0f} s"
        get_logger().info(full.rstrip(), extra={"terminal": [head, *parts]})
