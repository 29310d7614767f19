"""Memory of long runs (solver/numerics/memory.py)."""
import ctypes
import ctypes.util

import numpy as np
import pytest


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_bytes() -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("no glibc mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def test_large_blocks_are_mapped_and_go_back_to_the_system_when_freed():
    """With PETSc initialised (this build's SuperLU_dist sets glibc's
    M_MMAP_MAX to 0: a 50 MB array then came from the heap, 0.8 MB mapped in
    all), allow_mmap() makes a block of 50 MB its own mapping again, and
    freeing it unmaps it: an LU factor freed at a remesh is returned to the
    system instead of leaving a hole in the heap that the next, larger factor
    does not fit (configs/specimen.yaml: ~170 MB per rank per remesh held)."""
    from petsc4py import PETSc  # noqa: F401  PetscInitialize loads the libraries

    from solver.numerics.memory import MMAP_THRESHOLD_BYTES, allow_mmap

    assert allow_mmap()
    before = _mapped_bytes()
    block = np.ones(50_000_000 // 8)
    held = _mapped_bytes() - before
    assert held >= 50_000_000 > MMAP_THRESHOLD_BYTES, held
    del block
    assert _mapped_bytes() - before < 1_000_000
