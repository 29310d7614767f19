"""Shared fixtures. Tests run serially and (marker ``mpi``) under
``mpirun -n 2 python3 -m mpi4py -m pytest -m mpi``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(comm):
    """A temporary directory that every rank sees (rank 0 creates it)."""
    root = Path(__file__).resolve().parents[1] / "build" / "test-tmp"
    path = None
    if comm.rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        path = tempfile.mkdtemp(dir=root)
    path = Path(comm.bcast(path, root=0))
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


# --- validation records (make validate -> validation/report.md) -------------
#
# ``record_validation(case, reference, measured, tolerance, passed=None,
# run_dir=None)`` notes one verified quantity of a test: the theory or
# reference value, the measured one, the tolerance (a short text, e.g.
# "3% rel"), and, if the test computes it, whether that comparison passed.
# Call it before the test's assert: at teardown the record gets the test's
# outcome and wall time and is written, on rank 0, as one JSON line into
# build/validation/<session>.jsonl (the directory is VALIDATION_DIR if set).
# With VALIDATION=1 (make validate) a run directory passed as run_dir is
# turned into figures by ``python3 -m solver report`` when record is called
# (all ranks must call it then), copied to validation/figures/<test>-np<N>/,
# and each pytest session writes its wall time to session-np<N>.json.
# tests/validation_report.py collects all this into validation/report.md.
# Recording never changes what a test asserts.

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _validation_dir() -> Path:
    return Path(os.environ.get("VALIDATION_DIR", ROOT / "build" / "validation"))


def pytest_sessionstart(session):
    session._validation_start = time.perf_counter()


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("VALIDATION") != "1":
        return
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        out = _validation_dir()
        out.mkdir(parents=True, exist_ok=True)
        wall = time.perf_counter() - getattr(session, "_validation_start", time.perf_counter())
        (out / f"session-np{comm.size}.json").write_text(json.dumps(
            {"ranks": comm.size, "wall_s": round(wall, 1), "exitstatus": int(exitstatus),
             "tests": session.testscollected, "failed": session.testsfailed}) + "\n")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ranks2: heavy physics check that make test runs on 2 ranks only (make validate: 1 and 2 ranks)")


def pytest_runtest_setup(item):
    """``ranks2`` tests skip on 1 rank unless VALIDATION=1: the serial pass of
    make test would double their cost, and serial = parallel is C1's check."""
    if item.get_closest_marker("ranks2") is None or os.environ.get("VALIDATION") == "1":
        return
    from mpi4py import MPI

    if MPI.COMM_WORLD.size == 1:
        pytest.skip("ranks2: make test runs it on 2 ranks; make validate on 1 and 2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item._validation_call = rep  # read by record_validation at teardown


def _plain(value):
    """JSON-safe copy: numpy scalars/arrays to Python numbers/lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _figures(run_dir: Path, test_name: str) -> list[str]:
    dest = ROOT / "validation" / "figures" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    # a child of an mpirun rank must not join the MPI job: drop its variables
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_", "MPI_LOCALRANK"))}
    proc = subprocess.run([sys.executable, "-m", "solver", "report", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"record_validation: solver report {run_dir} failed: {proc.stderr.strip()}", file=sys.stderr)
        return []
    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for png in sorted((Path(run_dir) / "figures").glob("*.png")):
        shutil.copy2(png, dest / png.name)
        made.append(str((dest / png.name).relative_to(ROOT)))
    return made


@pytest.fixture
def record_validation(request):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    records: list[dict] = []
    start = time.perf_counter()

    def record(case, reference, measured, tolerance, passed=None, run_dir=None):
        figures = []
        if run_dir is not None and os.environ.get("VALIDATION") == "1":
            comm.barrier()  # every rank has written the run
            if comm.rank == 0:
                figures = _figures(Path(run_dir), f"{request.node.name}-np{comm.size}")
            comm.barrier()
        records.append({"case": str(case), "reference": _plain(reference), "measured": _plain(measured),
                        "tolerance": str(tolerance), "passed": None if passed is None else bool(passed),
                        "figures": figures})

    yield record
    if not records:
        return
    rep = getattr(request.node, "_validation_call", None)
    wall = rep.duration if rep is not None else time.perf_counter() - start  # the test body's wall time
    outcome = rep.outcome if rep is not None else "error"
    if comm.rank == 0:
        out = _validation_dir()
        out.mkdir(parents=True, exist_ok=True)
        session = f"np{comm.size}"
        with open(out / f"{session}.jsonl", "a") as fh:
            for r in records:
                r.update(test=request.node.nodeid, ranks=comm.size, outcome=outcome, wall_s=round(wall, 2),
                         when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                if r["passed"] is None:
                    r["passed"] = outcome == "passed"
                else:
                    r["passed"] = r["passed"] and outcome == "passed"
                fh.write(json.dumps(r) + "\n")
