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
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: the previous file stays, no half temporary is left
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:  # a signal
        tmp.unlink(missing_ok=True)
        raise


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
        error = None
        if self.comm.rank == 0:
            try:
                if new_cols or replaced or not self.path.exists():
                    self._write_all()
                else:
                    buf = io.StringIO()
                    csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n").writerow(
                        {k: _fmt(v) for k, v in row.items()})
                    with open(self.path, "a") as fh:
                        fh.write(buf.getvalue())
                        fh.flush()
            except OSError as exc:
                error = (exc.errno, exc.strerror or str(exc), str(self.path))
        _agree_io(self.comm, error)

    def rewrite(self) -> None:
        """Write the whole table atomically (rank 0 writes; collective: an
        error is raised on every rank)."""
        error = None
        if self.comm.rank == 0:
            try:
                self._write_all()
            except OSError as exc:
                error = (exc.errno, exc.strerror or str(exc), str(self.path))
        _agree_io(self.comm, error)

    def _write_all(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue(), sync=False)


def _agree_io(comm: MPI.Comm, error) -> None:
    """Collective: rank 0's I/O error (errno, text, path) raised as OSError on every rank."""
    if comm.size > 1:
        error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(*error)


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


def check_output_dir(outdir: Path, what: str, must_exist: bool = False) -> None:
    """Refuse (ConfigError, one line naming ``what``) an output directory that
    cannot be one: an existing file or device (/dev/null), a read-only or
    unsearchable directory, a path below a file. Nothing is created here."""
    import os

    from ..config import PathError

    outdir = Path(outdir)
    if outdir.exists() or outdir.is_symlink():
        if not outdir.is_dir():
            kind = "a file" if outdir.is_file() else ("a broken link" if not outdir.exists() else "not a directory")
            raise PathError([f"{what}: {outdir} exists and is {kind} (expected a directory for the run's files, "
                               "or a path that does not exist yet)"])
        if not os.access(outdir, os.W_OK | os.X_OK):
            raise PathError([f"{what}: directory {outdir} is not writable (expected a directory you can write)"])
        return
    if must_exist:
        raise PathError([f"{what}: {outdir} does not exist (--restart continues a run in an existing directory)"])
    parent = outdir.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PathError([f"{what}: {parent} is not a directory, so {outdir} cannot be created (expected a path "
                           "below a directory)"])
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError([f"{what}: {outdir} cannot be created: directory {parent} is not writable (expected a "
                           "path you can write)"])
    try:  # every rank (same file system, same verdict); exist_ok makes the race harmless
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathError([f"{what}: cannot create the directory {outdir} ({exc.strerror or exc}; expected a path "
                         "you can write)"]) from None


def check_readable_dir(directory: Path, what: str) -> None:
    """Refuse a directory that is missing, a file or unreadable (ConfigError)."""
    import os

    from ..config import PathError

    directory = Path(directory)
    if not directory.is_dir():
        raise PathError([f"{what} {directory}: {'not a directory' if directory.exists() else 'not found'} "
                           "(expected the output directory of a run)"])
    if not os.access(directory, os.R_OK | os.X_OK):
        raise PathError([f"{what} {directory}: not readable (permission denied)"])
