"""Linear solves with PETSc KSP: one place for options, prefixes and errors.

Each sub-solver has a PETSc options prefix (``potential_``, ``mechanics_``,
``electrochemistry_``, ``fracture_``). Its defaults (scalable Krylov +
algebraic multigrid, never LU) are overridden by ``solver.petsc.<name>`` in
the YAML config, e.g.::

    solver:
      petsc:
        mechanics: {ksp_rtol: 1.0e-10, pc_gamg_threshold: 0.02}
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from petsc4py import PETSc

from .petsc_db import write_options
from .petsc_defaults import DIRECT_OPTIONS, SPD_DEFAULTS

# Direct solves before a failed Krylov solver (direct_fallback 'sticky') is
# tried again; doubled after each retry that fails.
RETRY_KRYLOV_AFTER = 20

# Defaults per sub-solver (symmetric positive definite problems: CG + GAMG).




def direct_ksp(prefix: str, comm) -> PETSc.KSP:
    """A parallel direct solver (MUMPS LU) under ``prefix`` (the fallback of
    the Krylov solvers; options can still be changed under that prefix)."""
    set_options(prefix, DIRECT_OPTIONS)
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setFromOptions()
    return ksp


ASSEMBLY_EVENT = PETSc.Log.Event("nacrackAssembly")  # every matrix/vector assembly of the solvers


@contextmanager
def assembly():
    """Time a block of finite-element assembly as the PETSc log event
    ``nacrackAssembly`` (per log stage: -log_view, benchmarks/coupled.py)."""
    ASSEMBLY_EVENT.begin()
    try:
        yield
    finally:
        ASSEMBLY_EVENT.end()


def global_max_abs(a: np.ndarray, comm) -> float:
    """max |a| over the local arrays of all ranks of ``comm``."""
    from mpi4py import MPI

    local = float(np.max(np.abs(a))) if a.size else 0.0
    return comm.allreduce(local, op=MPI.MAX)


class SolveError(RuntimeError):
    """A solve that did not converge (the caller cuts the time step)."""


def set_options(prefix: str, defaults: dict, overrides: dict | None = None) -> dict:
    """Write defaults then overrides into the global PETSc options database,
    after removing what an earlier problem left under the same prefix (so
    one run's overrides never leak into the next problem built in-process)."""
    opts = PETSc.Options()
    for key in list(opts.getAll()):
        if key.startswith(prefix):
            opts.delValue(key)
    merged = {**defaults, **(overrides or {})}
    write_options(opts, prefix, merged)
    return merged


class LinearSolver:
    """Assemble-and-solve a(u, v) = L(v) with Dirichlet bcs.

    ``prefix`` names the PETSc options; ``near_nullspace`` (a PETSc
    NullSpace, e.g. rigid-body modes) is attached to the matrix for GAMG.
    The matrix is reassembled each solve unless ``constant_matrix``.
    """

    def __init__(self, a, L, bcs, prefix: str, comm, defaults=None, overrides=None,
                 near_nullspace=None, constant_matrix=False, direct_fallback=False):
        self.a, self.L = fem.form(a), fem.form(L)
        self.bcs = list(bcs)
        self.prefix = prefix
        self.options = set_options(prefix, defaults or SPD_DEFAULTS, overrides)
        self.A = fem_petsc.create_matrix(self.a)
        self.b = fem_petsc.create_vector(self.L)
        self.near_nullspace = near_nullspace
        self.constant_matrix = constant_matrix
        self._assembled = False
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefix)
        self.ksp.setOperators(self.A)
        self.ksp.setFromOptions()
        self.iterations = 0
        self.total_iterations = 0
        self.direct_fallback = direct_fallback
        self.fallback_solves = 0
        self._fb_ksp = None
        # 'sticky': after a failed Krylov solve the next `_retry_in` solves go
        # to the direct solver, then Krylov is tried again (the interval
        # doubles after each failed retry); a converged retry returns to Krylov
        self.direct_mode = False
        self.retry_every = RETRY_KRYLOV_AFTER
        self._retry_in = 0

    def assemble(self):
        with assembly():
            self._assemble()

    def _assemble(self):
        if not (self.constant_matrix and self._assembled):
            self.A.zeroEntries()
            fem_petsc.assemble_matrix(self.A, self.a, bcs=self.bcs)
            self.A.assemble()
            if self.near_nullspace is not None:
                self.A.setNearNullSpace(self.near_nullspace)
            self._assembled = True
        with self.b.localForm() as loc:
            loc.set(0.0)
        fem_petsc.assemble_vector(self.b, self.L)
        fem_petsc.apply_lifting(self.b, [self.a], bcs=[self.bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs)

    def solve(self, u: fem.Function) -> int:
        """Solve into ``u``; returns Krylov iterations; raises SolveError."""
        self.assemble()
        if self.direct_mode and self._retry_in > 0:
            self._retry_in -= 1
            self.iterations = 0
            reason = self._solve_direct(u, None)
        else:
            self.ksp.setOperators(self.A)
            self.ksp.solve(self.b, u.x.petsc_vec)
            u.x.scatter_forward()
            reason = self.ksp.getConvergedReason()
            self.iterations = self.ksp.getIterationNumber()
            self.total_iterations += self.iterations
            if reason < 0 and self.direct_fallback:
                if self.direct_fallback == "sticky":
                    if self.direct_mode:  # a retry failed: wait twice as long
                        self.retry_every *= 2
                    self.direct_mode = True
                    self._retry_in = self.retry_every
                reason = self._solve_direct(u, reason)
            elif self.direct_mode:
                self.direct_mode = False
                self._log(f"{self.prefix.rstrip('_')}: Krylov converged again ({self.iterations} iterations) "
                          f"after {self.fallback_solves} direct solve(s); back to Krylov")
        if reason < 0:
            raise SolveError(f"{self.prefix.rstrip('_')} solve diverged (KSP reason {reason}, "
                             f"{self.iterations} iterations)")
        return self.iterations

    def _solve_direct(self, u: fem.Function, krylov_reason: int) -> int:
        """Retry a failed Krylov solve with a parallel direct solve (MUMPS,
        prefix ``<prefix>fallback_``); logged at each failed Krylov solve
        ('sticky') or at the 1st, 10th, 100th... use.
        A near-singular operator (a body cut through by a crack, held only by
        the residual stiffness) defeats the AMG hierarchy but not LU; with
        ``direct_fallback="sticky"`` the direct solver also takes the next
        ``retry_every`` solves (20, doubled after each failed retry), since
        the hard operator lasts while the crack runs, and Krylov returns once
        a retry converges (after a crack jump CG + GAMG converged again in
        78-80 iterations, docs/known-limits.md)."""
        if self._fb_ksp is None:
            self._fb_ksp = direct_ksp(self.prefix + "fallback_", self.ksp.comm)
        self._fb_ksp.setOperators(self.A)
        self._fb_ksp.solve(self.b, u.x.petsc_vec)
        u.x.scatter_forward()
        self.fallback_solves += 1
        if krylov_reason is not None and (self.direct_fallback == "sticky"
                                          or self.fallback_solves in (1, 10, 100, 1000, 10000)):
            then = (f"the direct solver takes the next {self._retry_in} solve(s), then Krylov is tried again"
                    if self.direct_fallback == "sticky"
                    else f"direct fallback used ({self.fallback_solves} time(s) so far)")
            self._log(f"{self.prefix.rstrip('_')}: Krylov solve failed (reason {krylov_reason}, {self.iterations} "
                      f"iterations); {then}")
        reason = self._fb_ksp.getConvergedReason()
        if reason >= 0 and not np.isfinite(u.x.petsc_vec.norm()):
            reason = -1
        return reason

    @staticmethod
    def _log(message: str) -> None:
        import logging

        logging.getLogger("nacrack").info(message)

    def destroy(self):
        self.ksp.destroy()
        self.A.destroy()
        self.b.destroy()
