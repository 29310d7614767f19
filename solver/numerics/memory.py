"""Memory of a long run: freeing a replaced model at once, and giving freed
large blocks back to the operating system.

Two things make the resident memory of an adaptive run grow with the number
of remeshes rather than with the mesh:

1. A replaced model (forms, solvers, PETSc matrices, LU factors) sits in
   reference cycles; Python's cyclic collector frees it only when it happens
   to run, and on more than one rank petsc4py parks the PETSc objects it
   collects until a collective cleanup (``release_memory``).
2. Loading SuperLU_dist (linked into this PETSc build through hypre) sets
   glibc's ``M_MMAP_MAX`` to 0: from then on every allocation, however large,
   comes from the brk heap. An LU factorisation's arrays grow a little with
   each remesh, so each new factor fits in none of the holes the old ones
   left, and the heap only grows (``allow_mmap``).
3. On more than one rank the PETSc objects of a collected model are parked
   by petsc4py on their own communicators (DOLFINx's duplicates of the old
   mesh's), and ``release_memory`` cleans only COMM_WORLD's: ``retire``
   destroys them, collectively, when the model is replaced.
"""
from __future__ import annotations

import ctypes

from mpi4py import MPI

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
MMAP_THRESHOLD_BYTES = 4 << 20  # blocks of at least 4 MiB: their own mapping, unmapped on free
TRIM_THRESHOLD_BYTES = 32 << 20  # free memory at the top of the heap beyond this goes back to the system
MMAP_MAX = 65536  # glibc's default number of mapped blocks


def allow_mmap() -> bool:
    """Large blocks (>= MMAP_THRESHOLD_BYTES) mapped on their own again, so that
    freeing one returns it to the system. Call after PETSc is initialised (the
    library that turns mmap off is loaded with it). Returns False where there is
    no glibc mallopt (the call is then a no-op)."""
    try:  # the process's own symbols (libc among them): no library search, no subprocess
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_MAX, MMAP_MAX) == 1
    ok &= mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1  # a fixed threshold (no dynamic raise)
    ok &= mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return bool(ok)


def resident_mib() -> float:
    """This process's resident memory [MiB] (VmRSS; where /proc is missing,
    the peak from getrusage)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def release_memory(comm=MPI.COMM_WORLD) -> None:
    """Free a replaced model now (collective on ``comm``). Its forms, solvers
    and PETSc matrices (with their LU factors) hang in reference cycles
    (closures that hold the model), which only the cyclic garbage collector
    frees, and it runs on Python allocation counts, not on the memory held in
    C; and on more than one rank petsc4py parks the PETSc objects it
    collects until a collective cleanup. The caller must have let go of the
    model. Without this a 250-grain run of configs/specimen.yaml grew to
    12 GB per rank over 51 remeshes and was killed; 64 grains at step 86 on
    2 ranks: 1.13 GB per rank, 0.47 GB with it (1 rank, step 70: 1.37 GB,
    0.56 GB)."""
    import gc

    from petsc4py import PETSc

    gc.collect()
    # on a parallel communicator petsc4py does not destroy a collected object
    # at once (the destroy is collective, the collection is not): it parks it
    # until this collective call
    PETSc.garbage_cleanup(comm)


def _petsc_objects(root) -> list:
    """The petsc4py objects reachable from ``root`` through the attributes of
    solver and DOLFINx objects and the lists, tuples and dicts among them, in
    a traversal order that is the same on every rank (attribute and item
    order; sets, functions, modules and classes are not entered)."""
    from petsc4py import PETSc

    found, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, PETSc.Object):
            found.append(obj)
            continue
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple)):
            children = list(obj)
        elif type(obj).__module__.split(".")[0] in ("solver", "dolfinx") and hasattr(obj, "__dict__") \
                and not isinstance(obj, type):
            children = list(vars(obj).values())
        else:
            continue
        stack.extend(reversed(children))
    return found


def retire(old, new, comm=MPI.COMM_WORLD) -> int:
    """Destroy, collectively, the PETSc objects of a replaced model ``old``
    (matrices, vectors, solvers with their LU factors) that ``new`` does not
    share. Left to the garbage collector they are, on more than one rank,
    parked by petsc4py on their own communicators (DOLFINx's duplicates of
    the old mesh's), which ``release_memory`` never cleans once that mesh is
    gone: on 64 grains, 2 ranks, 16 remeshes of the same model, 278 -> 323
    MB per rank without and 277 -> 281 MB with this. Returns the number of
    objects destroyed."""
    keep = {id(o) for o in _petsc_objects(new)}
    doomed = [o for o in _petsc_objects(old) if id(o) not in keep and o.handle]
    for obj in doomed:  # the same objects in the same order on every rank (collective destroys)
        obj.destroy()
    comm.Barrier()
    return len(doomed)
