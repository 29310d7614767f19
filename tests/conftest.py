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
