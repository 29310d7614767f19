"""The output directory (docs/user/outputs.md): files written so a kill never
leaves a half file.

    config.resolved.yaml  fields.xdmf/.h5  scalars.csv  summary.json
    checkpoint/  log.txt  figures/

Small files are written to a temporary name and renamed (atomic on POSIX).
scalars.csv gets one complete line per step (rewritten atomically on restart).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from mpi4py import MPI

# Columns every run writes (units in the names); physics modules may add more.
SCALAR_COLUMNS = [
    "step", "time_s", "dt_s", "current_density_A_m2", "cell_voltage_V", "charge_C_m",
    "metal_area_m2", "deposited_volume_m3_m", "dendrite_tip_m", "crack_tip_m",
    "crack_length_m", "max_pressure_Pa", "elastic_energy_J_m", "stagger_iterations",
    "newton_iterations", "krylov_iterations", "wall_s",
]


def atomic_write_text(path: Path, text: str, sync: bool = True) -> None:
    """Write to a temporary name, then rename over ``path`` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


class ScalarTable:
    """scalars.csv: one row per step, rank 0 writes, rewritten atomically."""

    def __init__(self, path: Path, comm: MPI.Comm = MPI.COMM_WORLD, columns=None):
        self.path, self.comm = Path(path), comm
        self.columns = list(columns or SCALAR_COLUMNS)
        self.rows: list[dict] = []

    def load_existing(self, upto_step: int | None = None) -> None:
        """Read an existing table (restart); keep rows with step <= upto_step."""
        if not self.path.exists():
            return
        with open(self.path) as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames:
                for c in reader.fieldnames:
                    if c not in self.columns:
                        self.columns.append(c)
            for row in reader:
                if None in row.values() or None in row:  # a cut or malformed line
                    continue
                try:
                    step = int(row["step"])
                except (KeyError, TypeError, ValueError):
                    continue
                if upto_step is None or step <= upto_step:
                    self.rows.append(row)
        self.rewrite()  # drop the rows after the restart step from the file too

    def append(self, row: dict) -> None:
        """Add a row (replacing rows with the same or a later step).

        The common case appends one complete line with a single write (a
        killed run loses at most that line); a new column or a replaced row
        rewrites the file atomically (temporary file + rename)."""
        new_cols = [k for k in row if k not in self.columns]
        self.columns.extend(new_cols)
        replaced = bool(self.rows) and int(self.rows[-1]["step"]) >= int(row["step"])
        self.rows = [r for r in self.rows if int(r["step"]) < int(row["step"])]
        self.rows.append(row)
        if self.comm.rank != 0:
            return
        if new_cols or replaced or not self.path.exists():
            self.rewrite()
            return
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n").writerow(
            {k: _fmt(v) for k, v in row.items()})
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())
            fh.flush()

    def rewrite(self) -> None:
        """Write the whole table atomically (rank 0)."""
        if self.comm.rank != 0:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue(), sync=False)


def _fmt(v):
    if isinstance(v, float):
        return repr(v)
    return v


def prepare_directory(outdir: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> Path:
    outdir = Path(outdir)
    if comm.rank == 0:
        (outdir / "figures").mkdir(parents=True, exist_ok=True)
        (outdir / "checkpoint").mkdir(parents=True, exist_ok=True)
    comm.barrier()
    return outdir
